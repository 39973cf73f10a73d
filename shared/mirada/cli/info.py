"""`mirada info`: where this installation keeps things and what it can use, for bug reports
and for "where did my runs go?"."""

from __future__ import annotations

import argparse
import shutil
from dataclasses import asdict, dataclass

from mirada.cli import arg, command, print_json
from mirada.domain import Device
from mirada.metrics.formatting import MISSING


@dataclass(frozen=True)
class Info:
    version: str
    home: str
    home_from: str  # "MIRADA_HOME" or "default (per-user folder)"
    legacy_home_notice: str | None  # a ./mirada-data that is no longer read
    database_url: str  # password hidden
    device: Device | None  # what --device auto resolves to here; None: torch is not installed
    torch_version: str | None
    hf_cache: str  # where Hugging Face weights are looked for
    open_clip_cache: str  # open_clip's cache for weights fetched by URL
    java: str | None  # path of `java`, which METEOR 1.5 and the PTB tokenizer need
    meteor_unavailable: str | None  # why METEOR cannot run here, None when it can


def safe_database_url(url: str) -> str:
    """The URL with its password replaced by ***; never the raw text when it cannot be parsed."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # ArgumentError, ValueError: an unparsable URL could hold a secret
        return "(MIRADA_DATABASE_URL is set but cannot be parsed)"


def _device() -> tuple[Device | None, str | None]:
    try:
        import torch
    except ImportError:
        return None, None
    from mirada.vlm.registry import resolve_device

    return resolve_device(), str(torch.__version__)


def collect_info() -> Info:
    from mirada.config import get_settings, home_from_environment, legacy_home_notice
    from mirada.metrics.captioning import java_unavailable_reason
    from mirada.version import __version__
    from mirada.vlm.hub import OPEN_CLIP_URL_CACHE, hf_cache_dir

    settings = get_settings()
    device, torch_version = _device()
    return Info(
        version=__version__,
        home=str(settings.home),
        home_from="MIRADA_HOME" if home_from_environment() else "default (per-user folder)",
        legacy_home_notice=legacy_home_notice(),
        database_url=safe_database_url(settings.database_url),
        device=device,
        torch_version=torch_version,
        hf_cache=str(hf_cache_dir()),
        open_clip_cache=str(OPEN_CLIP_URL_CACHE),
        java=shutil.which("java"),
        meteor_unavailable=java_unavailable_reason(),
    )


LABELS = (
    ("version", "mirada"),
    ("home", "home"),
    ("home_from", "home set by"),
    ("database_url", "database"),
    ("device", "device (auto)"),
    ("torch_version", "torch"),
    ("hf_cache", "weights (HF cache)"),
    ("open_clip_cache", "weights (open_clip URL cache)"),
    ("java", "java (METEOR)"),
)


@command(
    "info",
    "Print the version, data folder, database, device and weights caches of this installation",
    arg("--json", action="store_true", help="print one JSON object"),
    description=(
        "Print what this installation uses: the mirada version, the data folder (MIRADA_HOME,\n"
        "else a per-user folder), the database URL (password hidden), the device `--device\n"
        "auto` picks here, where model weights are looked for (HF_HOME / HF_HUB_CACHE and\n"
        "open_clip's URL cache) and whether Java is available for METEOR."
    ),
)
def info_cmd(args: argparse.Namespace) -> int:
    info = collect_info()
    if args.json:
        print_json(asdict(info))
        return 0
    values = asdict(info)
    width = max(len(label) for _, label in LABELS)
    for key, label in LABELS:
        value = values[key]
        if key == "java" and value is None:
            value = "not found: METEOR unavailable (install a Java runtime)"
        if key == "device" and value is None:
            value = "unavailable (torch is not installed)"
        print(f"{label:<{width}}  {MISSING if value is None else value}")
    # A legacy ./mirada-data notice, if any, was printed on stderr when the settings were read.
    return 0
