"""The reload check: a fresh process, offline, loads the saved model through the public
``from_pretrained`` entry points and must give the in-memory model's outputs."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mirada.demo import synthetic as syn
from mirada.demo.training.common import REPO_ROOT, pixels

logger = logging.getLogger(__name__)

REF_SCENES = 8


def save_arrays(path: Path | str, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` of named arrays (typed as Any: savez's own keywords share the namespace)."""
    named: dict[str, Any] = dict(arrays)
    np.savez(path, **named)


def _reference_inputs() -> tuple[list[Any], list[str]]:
    scenes = syn.demo_scenes(REF_SCENES)
    return [syn.render(s) for s in scenes], [c for s in scenes for c in s.captions]


def reference_outputs(kind: str, model: Any, tokenizer: Any) -> dict[str, np.ndarray]:
    """What the in-memory model gives on fixed inputs, with training-time preprocessing."""
    images, texts = _reference_inputs()
    model.eval()
    with torch.no_grad():
        if kind == "clip":
            tok = tokenizer(texts, padding=True, return_tensors="pt")
            out = model(pixel_values=pixels(images), **tok)
            return {
                "image_embeds": out.image_embeds.numpy(),
                "text_embeds": out.text_embeds.numpy(),
                "logits_per_image": out.logits_per_image.numpy(),
            }
        tok = tokenizer(texts, padding=True, return_tensors="pt", return_token_type_ids=False)
        ids = tok["input_ids"].clone()
        ids[:, 0] = tokenizer.bos_token_id
        pix = pixels(images).repeat_interleave(2, dim=0)
        logits = model(pixel_values=pix, input_ids=ids, attention_mask=tok["attention_mask"]).logits
        gen = model.generate(pixel_values=pixels(images), num_beams=3, max_length=20)
        return {"logits": logits.numpy(), "generated": gen.numpy()}


def reloaded_outputs(kind: str, model_dir: Path) -> dict[str, np.ndarray]:
    """The same, from a model and processor loaded with ``from_pretrained``."""
    images, texts = _reference_inputs()
    with torch.no_grad():
        if kind == "clip":
            from transformers import CLIPModel, CLIPProcessor

            model = CLIPModel.from_pretrained(model_dir).eval()
            proc = CLIPProcessor.from_pretrained(model_dir)
            inputs = proc(text=texts, images=images, padding=True, return_tensors="pt")
            out = model(**inputs)
            return {
                "image_embeds": out.image_embeds.numpy(),
                "text_embeds": out.text_embeds.numpy(),
                "logits_per_image": out.logits_per_image.numpy(),
            }
        from transformers import BlipForConditionalGeneration, BlipProcessor

        model = BlipForConditionalGeneration.from_pretrained(model_dir).eval()
        proc = BlipProcessor.from_pretrained(model_dir)
        pix = proc(images=images, return_tensors="pt")["pixel_values"]
        tok = proc.tokenizer(texts, padding=True, return_tensors="pt", return_token_type_ids=False)
        ids = tok["input_ids"].clone()
        ids[:, 0] = proc.tokenizer.bos_token_id
        logits = model(
            pixel_values=pix.repeat_interleave(2, dim=0),
            input_ids=ids,
            attention_mask=tok["attention_mask"],
        ).logits
        gen = model.generate(pixel_values=pix, num_beams=3, max_length=20)
        return {"logits": logits.numpy(), "generated": gen.numpy()}


def verify_reload(kind: str, model: Any, tokenizer: Any, model_dir: Path) -> dict[str, float]:
    """Compare the in-memory model with a fresh offline process's reload; raise on mismatch."""
    ref = reference_outputs(kind, model, tokenizer)
    with tempfile.TemporaryDirectory() as tmp:
        ref_path, got_path = Path(tmp, "ref.npz"), Path(tmp, "got.npz")
        save_arrays(ref_path, ref)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        cmd = [sys.executable, "-m", "mirada.demo.train", "_reload", kind, str(model_dir)]
        subprocess.run([*cmd, str(got_path)], check=True, env=env, cwd=REPO_ROOT)
        got = dict(np.load(got_path))
    for k in ref:
        if ref[k].shape != got[k].shape:
            raise RuntimeError(f"{model_dir.name} reloads differently: {k} has another shape")
    diffs = {k: float(np.abs(ref[k].astype(np.float64) - got[k]).max()) for k in ref}
    logger.info(f"reload check {model_dir.name}: max abs diffs {diffs}")
    for k, d in diffs.items():  # float noise only (logits are scaled up to ~100x)
        if d > 1e-5 * max(1.0, float(np.abs(ref[k]).max())):
            raise RuntimeError(f"{model_dir.name} reloads differently: {k} differs by {d}")
    return diffs
