"""Tiny random models (hidden 32, 2 layers, 32x32 images) saved like real checkpoints.

Built offline in a few hundred ms each, for plumbing tests: they check that adapters call the
models the way the libraries do, not that the models are any good.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

IMAGE = 32
TOWER: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
}
VISION: dict[str, Any] = {**TOWER, "image_size": IMAGE, "patch_size": 8}
WORDS = (
    "a an the photo of picture cat dog red blue green square circle star on left right "
    "to background gray small big and with two one"
).split()


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable-unicode table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


def write_clip_bpe(directory: Path) -> tuple[Path, Path]:
    """A deterministic CLIP-style BPE (byte alphabet, `</w>` suffix, a few merges)."""
    chars = list(_bytes_to_unicode().values())
    merges = [("t", "h"), ("th", "e</w>"), ("a", "n"), ("c", "a"), ("ca", "t</w>")]
    vocab_list = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges]
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps(vocab))
    merges_txt = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)
    (directory / "merges.txt").write_text(merges_txt)
    return directory / "vocab.json", directory / "merges.txt"


def write_bert_vocab(directory: Path) -> Path:
    """A hand-written BERT WordPiece vocab; BLIP needs [DEC] (bos) and [ENC] too."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "[ENC]"]
    tokens += list(letters) + [f"##{c}" for c in letters] + WORDS + list(".,!?'0123456789")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "vocab.txt"
    path.write_text("\n".join(dict.fromkeys(tokens)) + "\n")
    return path


def make_hf_clip(directory: Path, seed: int = 0) -> Path:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    vocab_file, merges_file = write_clip_bpe(directory / "_bpe")
    tokenizer = CLIPTokenizer(str(vocab_file), str(merges_file))
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    text = {
        **TOWER,
        "vocab_size": len(tokenizer),
        "max_position_embeddings": 32,
        "eos_token_id": eot,  # pooling takes the first EOS; padding uses the same token
        "pad_token_id": eot,
        "bos_token_id": tokenizer.convert_tokens_to_ids("<|startoftext|>"),
    }
    config = CLIPConfig(text_config=text, vision_config=VISION, projection_dim=16)
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": IMAGE}, crop_size={"height": IMAGE, "width": IMAGE}
        ),
        tokenizer=tokenizer,
    )
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def _blip_config(vocab_size: int, tokenizer: Any) -> Any:
    from transformers import BlipConfig

    text = {
        **TOWER,
        "vocab_size": vocab_size,
        "max_position_embeddings": 64,
        "bos_token_id": tokenizer.convert_tokens_to_ids("[DEC]"),
        "pad_token_id": tokenizer.pad_token_id,
        "sep_token_id": tokenizer.sep_token_id,
        "eos_token_id": tokenizer.sep_token_id,
    }
    # BlipVisionConfig's default initializer_range (1e-10) would make the image irrelevant.
    vision = {**VISION, "initializer_range": 0.02}
    return BlipConfig(
        text_config=text, vision_config=vision, projection_dim=16, image_text_hidden_size=16
    )


def _bert_tokenizer(directory: Path, blip: bool) -> Any:
    from transformers import BertTokenizer

    vocab = write_bert_vocab(directory / "_vocab")
    if blip:
        return BertTokenizer(str(vocab), bos_token="[DEC]", additional_special_tokens=["[ENC]"])
    return BertTokenizer(str(vocab))


def make_blip(directory: Path, kind: str = "itm", seed: int = 0) -> Path:
    """kind: 'itm' (BlipForImageTextRetrieval) or 'caption' (BlipForConditionalGeneration)."""
    from transformers import (
        BlipForConditionalGeneration,
        BlipForImageTextRetrieval,
        BlipImageProcessor,
        BlipProcessor,
    )

    tokenizer = _bert_tokenizer(directory, blip=True)
    config = _blip_config(len(tokenizer), tokenizer)
    torch.manual_seed(seed)
    cls = BlipForImageTextRetrieval if kind == "itm" else BlipForConditionalGeneration
    model = cls(config).eval()
    processor = BlipProcessor(
        image_processor=BlipImageProcessor(size={"height": IMAGE, "width": IMAGE}),
        tokenizer=tokenizer,
    )
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def make_flava(directory: Path, seed: int = 0) -> Path:
    from transformers import FlavaConfig, FlavaImageProcessor, FlavaModel

    tokenizer = _bert_tokenizer(directory, blip=False)
    config = FlavaConfig(
        image_config={**VISION},
        text_config={**TOWER, "vocab_size": len(tokenizer), "max_position_embeddings": 64},
        multimodal_config={**TOWER, "num_hidden_layers": 1},
        hidden_size=32,
        projection_dim=16,
    )
    torch.manual_seed(seed)
    model = FlavaModel(config).eval()
    image_processor = FlavaImageProcessor(
        size={"height": IMAGE, "width": IMAGE}, crop_size={"height": IMAGE, "width": IMAGE}
    )
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    image_processor.save_pretrained(directory)
    return directory


OPEN_CLIP_TINY: dict[str, Any] = {
    "embed_dim": 16,
    "vision_cfg": {
        "image_size": IMAGE,
        "layers": 2,
        "width": 32,
        "patch_size": 8,
        "head_width": 16,
    },
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


def make_open_clip_dir(directory: Path, seed: int = 0) -> Path:
    """An open_clip `local-dir:` model: open_clip_config.json + open_clip_model.safetensors."""
    import open_clip
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": OPEN_CLIP_TINY, "preprocess_cfg": {}})
    )
    torch.manual_seed(seed)
    model = open_clip.create_model(f"local-dir:{directory}", pretrained=None)
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        str(directory / "open_clip_model.safetensors"),
    )
    return directory


def register_open_clip_arch(directory: Path, name: str = "mirada-tiny-test") -> str:
    """Register OPEN_CLIP_TINY as a built-in open_clip architecture named `name`."""
    import open_clip

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps(OPEN_CLIP_TINY))
    open_clip.add_model_config(path)
    return name
