"""Describe the machine a worker runs on: what makes hardware comparisons possible."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import sys
from importlib import metadata
from typing import Any

from mirada.domain import Device


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _ram_bytes() -> int:
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except Exception:  # psutil missing or unsupported platform: report unknown
        return 0


def collect_profile(*, with_torch: bool = True) -> dict[str, Any]:
    """Host, OS, CPU, RAM, GPU and library versions. Imports torch only when asked."""
    profile: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "os": f"{platform.system()} {platform.release()}",
        "cpu_model": _cpu_model(),
        "cpu_cores": os.cpu_count() or 0,
        "ram_bytes": _ram_bytes(),
        "gpu_name": None,
        "gpu_memory_bytes": None,
        "python_version": sys.version.split()[0],
        "torch_version": _version("torch"),
        "cuda_version": None,
        "transformers_version": _version("transformers"),
        "open_clip_version": _version("open_clip_torch"),
        "details": {"machine": platform.machine()},
    }
    if with_torch:
        import torch

        profile["details"]["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            profile["gpu_name"] = props.name
            profile["gpu_memory_bytes"] = int(props.total_memory)
            profile["cuda_version"] = torch.version.cuda
            profile["details"]["gpu_count"] = torch.cuda.device_count()
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            profile["gpu_name"] = "Apple MPS"
    return profile


def profile_fingerprint(profile: dict[str, Any]) -> str:
    blob = json.dumps(profile, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def available_devices() -> list[Device]:
    import torch

    devices = [Device.cpu]
    if torch.cuda.is_available():
        devices.append(Device.cuda)
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        devices.append(Device.mps)
    return devices
