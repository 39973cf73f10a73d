"""Train the tiny demo models on the synthetic shapes dataset (CPU, minutes).

    python -m mirada.demo.train [clip|clip-random|blip|all] [--minutes M] [--out DIR]

* ``demo-clip``: a tiny ``CLIPModel`` (contrastive, batch 128, duplicate scenes removed from
  each batch because CLIP's loss treats them as negatives), with its own byte-level BPE
  tokenizer (``shared/demo/assets/clip-bpe``, trained once with ``tokenizers`` and committed,
  since BPE training is not reproducible).
* ``demo-clip-random``: the same architecture, untrained (seed 0): the chance baseline.
* ``demo-blip``: a tiny ``BlipForConditionalGeneration`` captioner with a hand-written BERT
  ``vocab.txt``. It trains with an extra per-patch shape/colour cross-entropy on the vision
  tokens; those heads live outside the BLIP model and are not saved, so the saved model is a
  standard BLIP.

Each run trains until its wall-clock budget (``--minutes``) or ``--max-steps``, whichever comes
first (the learning-rate schedule follows whichever is further along), evaluates on the
held-out demo split, saves with ``save_pretrained`` (safetensors), checks that a fresh process
with ``HF_HUB_OFFLINE=1`` reloads it (model + processor) to identical outputs, and writes
``training_info.json`` next to the weights.

Modules: ``common`` (paths, preprocessing, architecture size, data stream, budget),
``tokenizer`` (CLIP BPE, BLIP vocabulary), ``clip``, ``blip``, ``verify`` (the offline reload
check) and ``cli`` (the command line; ``mirada.demo.train`` is its entry point). Importing
this package imports nothing heavy; the modules import torch.
"""
