"""open_clip models: built-in architectures with pretrained tags, checkpoint files, local-dir:."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from open_clip.pretrained import get_pretrained_cfg, list_pretrained_tags_by_model

from mirada.domain import Device, Dtype
from mirada.errors import MiradaError
from mirada.vlm.base import Fingerprint, ImageEmbedding
from mirada.vlm.errors import ModelIdError, ModelUnavailableError
from mirada.vlm.hub import (
    OPEN_CLIP_URL_CACHE,
    OPEN_CLIP_WEIGHT_FILES,
    cached_file,
    cached_snapshot,
    hf_cache_dir,
    hub_offline,
    revision_of,
    unavailable,
)
from mirada.vlm.ids import CHECKPOINT_SUFFIXES, ModelSpec
from mirada.vlm.torch_common import TorchAdapter, l2_numpy

_PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode")


def tag_weights_location(arch: str, tag: str) -> tuple[str, tuple[str, ...]] | tuple[None, Path]:
    """Where a tag's weights live: (hf repo, candidate files) or (None, url-cache path)."""
    cfg = get_pretrained_cfg(arch, tag)
    if cfg.get("hf_hub"):
        repo, filename = os.path.split(cfg["hf_hub"])
        if not filename:
            return repo, OPEN_CLIP_WEIGHT_FILES
        stem, ext = os.path.splitext(filename)
        alt = (stem + ".safetensors",) if ext in (".bin", ".pt", ".pth") else ()
        return repo, (*alt, filename)
    return None, OPEN_CLIP_URL_CACHE / os.path.basename(cfg["url"])


def hf_text_repo(arch: str) -> str | None:
    """The HF repo an architecture's text tower/tokenizer comes from (e.g. xlm-roberta-base)."""
    cfg = open_clip.get_model_config(arch) or {}
    text = cfg.get("text_cfg", {})
    return text.get("hf_tokenizer_name") or text.get("hf_model_name")


def missing_text_repo(arch: str) -> str | None:
    """Why `arch`'s text side cannot load offline (its HF repo is not cached), or None.

    A text tower from transformers (hf_model_name, e.g. xlm-roberta-base) needs the repo's
    config.json; a tokenizer alone (hf_tokenizer_name: the SigLIP configs' timm/ViT-*-SigLIP*
    repos) needs its tokenizer_config.json, and config.json too: transformers 5's AutoTokenizer
    reads the repo's config before its tokenizer files."""
    text = (open_clip.get_model_config(arch) or {}).get("text_cfg", {})
    repo = hf_text_repo(arch)
    if not repo:
        return None
    tower = bool(text.get("hf_model_name"))
    needs = ("config.json",) if tower else ("config.json", "tokenizer_config.json")
    if cached_snapshot(repo, needs) is not None:
        return None
    if tower:
        return f"its text tower needs the {repo} config/tokenizer"
    return (
        f"its tokenizer comes from the Hugging Face repo {repo}, which open_clip does not bundle: "
        f"that repo's {' and '.join(needs)} and tokenizer files must be in the cache too"
    )


def _resolve_pretrained(spec: ModelSpec) -> tuple[str | None, dict[str, Any], str | None]:
    """(checkpoint path or None, create_model overrides, revision) without any download."""
    arch, pretrained = spec.source, spec.pretrained
    if open_clip.get_model_config(arch) is None:
        raise ModelIdError(
            f"invalid model id {spec.model_id!r}: unknown open_clip architecture {arch!r} "
            f"(see open_clip.list_models(), or use open-clip:local-dir:<dir>)"
        )
    text_missing = missing_text_repo(arch)
    if text_missing:
        raise unavailable(spec, f"the Hugging Face cache {hf_cache_dir()}", text_missing)
    if pretrained is None:
        return None, {"pretrained_text": False}, None
    if get_pretrained_cfg(arch, pretrained):
        cfg = get_pretrained_cfg(arch, pretrained)
        repo, where = tag_weights_location(arch, pretrained)
        if repo is not None:
            found = cached_file(repo, where)  # type: ignore[arg-type]
            looked = f"the Hugging Face cache {hf_cache_dir()} (repo {repo})"
        else:
            found = where if isinstance(where, Path) and where.is_file() else None
            looked = str(where)
        if found is None:
            raise unavailable(spec, looked)
        overrides = {
            "force_quick_gelu": bool(cfg.get("quick_gelu", False)),
            **{f"image_{k}": cfg[k] for k in _PREPROCESS_KEYS if k in cfg},
            "pretrained_text": False,
        }
        return str(found), overrides, revision_of(Path(found))
    path = spec.checkpoint  # resolved by the id parser: never this process's directory
    if path is not None and path.is_file():
        return str(path), {"pretrained_text": False}, f"{revision_of(path.parent)}:{path.name}"
    tags = ", ".join(list_pretrained_tags_by_model(arch)) or "none"
    if path is not None:
        raise ModelUnavailableError(
            f"model {spec.model_id}: no checkpoint file at {path} (known tags of {arch}: {tags})."
        )
    raise ModelUnavailableError(
        f"model {spec.model_id}: {pretrained!r} is not a known pretrained tag of {arch} "
        f"(known: {tags}); for a checkpoint file give its path, e.g. {arch}/./{pretrained}.pt "
        f"or {arch}//abs/path/{pretrained}.safetensors."
    )


def trimmed_encode_text(model: open_clip.CLIP, tokens: torch.Tensor) -> torch.Tensor:
    """CLIP.encode_text on a context cut to the batch's longest sequence.

    Valid because the text tower is causal (no position attends to later padding) and pools at
    the EOT token; only the positional embedding and causal mask must be cut to match.
    """
    length = tokens.shape[1]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast_dtype)
    x = x + model.positional_embedding[:length].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = open_clip.transformer.text_global_pool(
        x, tokens, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None)
    )
    if model.text_projection is not None:
        if isinstance(model.text_projection, torch.nn.Linear):
            x = model.text_projection(x)
        else:
            x = x @ model.text_projection
    return x


def can_trim(model: torch.nn.Module) -> bool:
    return (
        type(model) is open_clip.CLIP
        and getattr(model, "attn_mask", None) is not None
        and getattr(model, "text_pool_type", None) in ("argmax", "eos")
    )


def trim_tokens(tokens: torch.Tensor, pad_id: int = 0) -> torch.Tensor:
    """Cut padding columns after the batch's last non-pad token."""
    nonpad = (tokens != pad_id).any(dim=0).nonzero()
    last = int(nonpad.max()) + 1 if nonpad.numel() else 1
    return tokens[:, :last]


class OpenCLIPAdapter(ImageEmbedding, TorchAdapter):
    def __init__(self, spec: ModelSpec, device: Device, dtype: Dtype) -> None:
        if spec.local_dir is not None:
            if not (spec.local_dir / "open_clip_config.json").is_file():
                raise unavailable(
                    spec,
                    f"local directory {spec.local_dir}",
                    "need open_clip_config.json + weights",
                )
            kwargs: dict[str, Any] = {}
            name, revision = f"local-dir:{spec.local_dir}", revision_of(spec.local_dir)
            checkpoint = None
        else:
            checkpoint, kwargs, revision = _resolve_pretrained(spec)
            name = spec.source
        try:
            with hub_offline():
                model, _, preprocess = open_clip.create_model_and_transforms(
                    name, pretrained=checkpoint, weights_only=True, **kwargs
                )
                self.tokenizer = open_clip.get_tokenizer(name)
        except MiradaError:
            raise
        except Exception as exc:
            # A file that is not a checkpoint fails inside torch's unpickler or safetensors
            # with whatever exception it hits (IndexError, UnpicklingError, ...): say which file.
            where = checkpoint or name
            raise ModelUnavailableError(
                f"model {spec.model_id}: could not load {where} ({type(exc).__name__}: {exc}); "
                f"it must be an open_clip checkpoint ({', '.join(CHECKPOINT_SUFFIXES)}: "
                "safetensors or a torch state dict) or a directory with open_clip_config.json"
            ) from exc
        self.preprocess = preprocess
        if spec.random_init:
            self.random_tensors = len(model.state_dict())
        super().__init__(spec, model, device, dtype, revision)
        self.model: open_clip.CLIP = self.module
        self.trim = can_trim(model)

    @property
    def embed_dim(self) -> int:
        proj = getattr(self.model.visual, "output_dim", None)
        if proj is None:
            proj = self.model.text_projection.shape[-1]
        return int(proj)

    @property
    def image_transform(self) -> Callable[[Any], torch.Tensor]:
        return self.preprocess  # torchvision Compose: picklable

    def fingerprint(self) -> Fingerprint:
        cfg = getattr(self.model.visual, "preprocess_cfg", {}) or {}
        pre = {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()}
        pre.setdefault("transforms", repr(self.preprocess).replace("\n", " "))
        return Fingerprint(
            self.model_id, self.family, self.revision, self.dtype, pre, self.init_record()
        )

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenizer(list(texts))
        return trim_tokens(tokens) if self.trim else tokens

    @torch.inference_mode()
    def encode_pixels(self, pixel_values: torch.Tensor) -> np.ndarray:
        return l2_numpy(self.model.encode_image(self.pixels_in(pixel_values)))

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.embed_dim), np.float32)
        tokens = self.tokenize(texts).to(self.torch_device)
        if self.trim:
            return l2_numpy(trimmed_encode_text(self.model, tokens))
        return l2_numpy(self.model.encode_text(tokens))


def load(spec: ModelSpec, device: Device, dtype: Dtype) -> OpenCLIPAdapter:
    return OpenCLIPAdapter(spec, device, dtype)
