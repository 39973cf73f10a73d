"""What both demo models share: paths, preprocessing, architecture size, the training stream,
the validation set, the wall-clock/step budget and the optimiser, and the run record."""

from __future__ import annotations

import json
import math
import platform
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mirada.demo import synthetic as syn

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_OUT = REPO_ROOT / "shared" / "vlm" / "demo_models"

# The normalisation used in training; the saved image processors use the same values.
IMAGE_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP's, the processors' default
IMAGE_STD = (0.26862954, 0.26130258, 0.27577711)
MAX_TEXT_LEN = 32
VAL_SEED = 777
VAL_SIZE = 200

# Architecture shared by both models (ENVIRONMENT.md, "Training tiny demo models").
HIDDEN, MLP, HEADS, VISION_LAYERS, TEXT_LAYERS, PATCH = 64, 256, 4, 3, 2, 8


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------
def pixels(images: Sequence[Any]) -> torch.Tensor:
    """PIL images -> normalised float32 [B, 3, 64, 64], as CLIP/BLIP image processors do."""
    arr = np.stack([np.asarray(im.convert("RGB"), dtype=np.uint8) for im in images])
    x = torch.from_numpy(arr).permute(0, 3, 1, 2).float() * (1.0 / 255.0)
    mean = torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGE_STD).view(1, 3, 1, 1)
    return (x - mean) / std


class TrainStream:
    """The training stream of scenes (demo captions excluded), counted."""

    def __init__(self, seed: int = syn.TRAIN_SEED) -> None:
        self._it = syn.iter_train_scenes(seed)
        self.drawn = 0

    def take(self, n: int) -> list[syn.Scene]:
        self.drawn += n
        return [next(self._it) for _ in range(n)]


def val_scenes() -> list[syn.Scene]:
    """A monitoring set from its own seed (never the demo split, which is only for the end)."""
    return syn.generate_scenes(
        VAL_SIZE, VAL_SEED, unique=True, exclude_captions=syn.demo_captions()
    )


# --------------------------------------------------------------------------------------------
# schedule / loop helpers
# --------------------------------------------------------------------------------------------
@dataclass
class Budget:
    seconds: float
    max_steps: int
    warmup_steps: int = 100
    start: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def progress(self, step: int) -> float:
        return max(step / self.max_steps, self.elapsed() / self.seconds)

    def done(self, step: int) -> bool:
        return self.progress(step) >= 1.0

    def lr_factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, self.progress(step))))


def make_optimizer(params: Sequence[nn.Parameter] | Any, lr: float) -> torch.optim.AdamW:
    return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.98), weight_decay=0.05)


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for g in opt.param_groups:
        g["lr"] = lr


def optimizer_step(
    opt: torch.optim.Optimizer, loss: torch.Tensor, params: Sequence[nn.Parameter] | Any
) -> None:
    """Backward, clip the gradient norm to 1 and step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()


# --------------------------------------------------------------------------------------------
# the run record (training_info.json)
# --------------------------------------------------------------------------------------------
def environment() -> dict[str, str]:
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "torch_threads": str(torch.get_num_threads()),
        "machine": platform.machine(),
    }


def save_model(model: Any, processor: Any, out: Path) -> None:
    """Replace `out` with the model (safetensors) and its processor."""
    if out.exists():
        shutil.rmtree(out)
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)


def record(
    name: str,
    command: str,
    model: nn.Module,
    info: dict[str, Any],
    demo: dict[str, Any],
    reload_diffs: Any,
) -> dict[str, Any]:
    """training_info.json's content: the run's identity, its training `info`, the held-out
    evaluation, the reload check and the environment."""
    return {
        "model": name,
        "command": command,
        "seed": 0,
        "num_params": num_params(model),
        **info,
        "demo_eval": demo,
        "reload_max_abs_diff": reload_diffs,
        "environment": environment(),
    }


def write_info(out: Path, info: dict[str, Any]) -> None:
    (out / "training_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
