"""``python -m mirada.demo.train``: parse the arguments, train, save and check the models."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from mirada.demo import training
from mirada.demo.training.blip import run_blip
from mirada.demo.training.clip import run_clip, run_clip_random
from mirada.demo.training.common import DEFAULT_OUT
from mirada.demo.training.tokenizer import train_clip_bpe
from mirada.demo.training.verify import reloaded_outputs, save_arrays

logger = logging.getLogger(__name__)


def show_progress() -> None:
    """Print the training package's INFO lines on stdout as ``[HH:MM:SS] message``."""
    package = logging.getLogger(training.__name__)
    package.setLevel(logging.INFO)
    if not package.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("[%(asctime)s] %(message)s", "%H:%M:%S"))
        package.addHandler(handler)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_reload"]:  # internal: the fresh-process half of verify_reload
        _, kind, model_dir, out_path = argv
        save_arrays(out_path, reloaded_outputs(kind, Path(model_dir)))
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m mirada.demo.train",
        description=training.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("what", choices=["clip", "clip-random", "blip", "all"], nargs="?")
    parser.add_argument("--minutes", type=float, help="wall-clock budget per model")
    parser.add_argument("--max-steps", type=int, help="step budget per model")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    # One thread: on our shared 2-core machines, two threads ran 5-10x slower per step
    # whenever other processes were busy (oversubscription).
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--aux-weight", type=float, default=1.0, help="BLIP patch-loss weight")
    parser.add_argument(
        "--bare-per-category",
        type=int,
        default=0,
        help="CLIP: batch items per category captioned with a bare-category prompt "
        '("a photo of a star.") instead of their own caption; 0 (the shipped model) = none',
    )
    parser.add_argument(
        "--zeroshot-weight",
        type=float,
        default=0.0,
        help="CLIP: weight of an extra loss classifying each image among the bare-category "
        "prompts (the match task's zero-shot recipe); 0 = none",
    )
    parser.add_argument(
        "--init-from",
        type=Path,
        help="CLIP: fine-tune this saved demo-clip directory instead of training from scratch",
    )
    parser.add_argument("--lr", type=float, default=1e-3, help="CLIP: peak learning rate")
    parser.add_argument("--train-bpe", action="store_true", help="retrain the CLIP BPE files")
    args = parser.parse_args(argv)
    show_progress()
    torch.set_num_threads(args.threads)
    command = "python -m mirada.demo.train " + " ".join(argv)
    if args.train_bpe:
        logger.info(f"wrote {train_clip_bpe()}")
    what = args.what or ("all" if not args.train_bpe else None)
    if what is None:
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "clip": lambda: run_clip(
            args.out,
            args.minutes or 8.0,
            args.max_steps or 6000,
            command,
            bare_per_category=args.bare_per_category,
            zeroshot_weight=args.zeroshot_weight,
            init_from=args.init_from,
            lr=args.lr,
        ),
        "clip-random": lambda: run_clip_random(args.out, command),
        "blip": lambda: run_blip(
            args.out, args.minutes or 15.0, args.max_steps or 12000, command, args.aux_weight
        ),
    }
    for name in ["clip", "clip-random", "blip"] if what == "all" else [what]:
        info = runners[name]()
        logger.info(f"{name}: {json.dumps(info['demo_eval'])}")
    return 0
