"""Metric code for Mirada: pure functions, arrays in, dicts and dataclasses out.

Modules (import the one you need; this package imports nothing heavy on its own):

- `retrieval`: image<->text recall@k, MRR, ranks, top-k, per-category and zero-shot accuracy,
  computed in bounded blocks so large sets never build the full similarity matrix.
- `rerank`: BLIP-style re-ranking of contrastive top-k candidates with ITM probabilities.
- `captioning`: the official COCO caption metrics through pycocoevalcap's own classes.
- `degeneration`: repetition and generic-caption indicators for generated captions.
- `stats`: bootstrap confidence intervals, exact McNemar, paired bootstrap, run comparison.
- `projection`: 2-D t-SNE / PCA views of embeddings.
- `report`: the builders the worker calls (`build_match_report`, `build_caption_report`).
- `types`: the result records they return (`MetricValue`, `ItemOutcome`, `CaptionOutcome`);
  `mirada.results` stores them. Nothing here imports storage (db, results, queries, worker).
"""
