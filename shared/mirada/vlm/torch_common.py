"""Torch-side helpers shared by the adapters (imported by adapter modules, and by the benchmark
for its precision variants).

An adapter's family, capabilities and options come from its spec's row of the family table.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from mirada.domain import Device, Dtype
from mirada.vlm.base import Fingerprint, LoadedModel
from mirada.vlm.hub import hub_offline, resolve_hf_dir, revision_of, unavailable
from mirada.vlm.ids import ModelSpec
from mirada.vlm.presets import build_hf_preset

TORCH_DTYPES: dict[Dtype, torch.dtype] = {
    Dtype.fp32: torch.float32,
    Dtype.fp16: torch.float16,
    Dtype.bf16: torch.bfloat16,
}


def torch_dtype(dtype: Dtype) -> torch.dtype:
    return TORCH_DTYPES[dtype]


def torch_device(device: Device) -> torch.device:
    """The torch device of a resolved Device (torch wants its own type, not our enum)."""
    if device is Device.auto:
        raise ValueError("resolve Device.auto first (mirada.vlm.registry.resolve_device)")
    return torch.device(device.value)


M = TypeVar("M")


def hf_from_pretrained(spec: ModelSpec, loader: Callable[..., M], path: Path, **kw: Any) -> M:
    """`loader(path, local_files_only=True)`, hub forced offline; errors become Mirada errors."""
    try:
        with hub_offline():
            return loader(str(path), local_files_only=True, trust_remote_code=False, **kw)
    except Exception as exc:
        # Missing files raise OSError; corrupt or foreign ones fail in safetensors or torch's
        # unpickler with any exception (IndexError, UnpicklingError, ...): all mean unreadable.
        raise unavailable(spec, str(path), f"{type(exc).__name__}: {exc}") from exc


def hf_revision(path: Path, config: Any) -> str | None:
    return getattr(config, "_commit_hash", None) or revision_of(path)


def l2_numpy(x: torch.Tensor) -> np.ndarray:
    """float32, L2-normalised rows, on the CPU."""
    x = x.float()
    x = torch.nn.functional.normalize(x, dim=-1)
    return x.cpu().numpy().astype(np.float32, copy=False)


class HFImageTransform:
    """Picklable PIL -> CHW tensor wrapper around a transformers image processor."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor

    def processed(self, image: Any) -> Any:
        """The processor's output for one image (RGB first)."""
        if getattr(image, "mode", "RGB") != "RGB":
            image = image.convert("RGB")
        return self.processor(images=image, return_tensors="pt")

    def __call__(self, image: Any) -> torch.Tensor:
        return self.processed(image)["pixel_values"][0]


def _resample_name(resample: Any) -> str | None:
    if resample is None:
        return None
    if isinstance(resample, int):  # PIL enum stored as int in processor configs
        from PIL.Image import Resampling

        return Resampling(resample).name.lower()
    return str(getattr(resample, "name", resample)).lower()


def hf_preprocessing(processor: Any) -> dict[str, Any]:
    """Size, mean/std and interpolation of a transformers image processor, for fingerprints."""
    size = getattr(processor, "size", None)
    crop = (
        getattr(processor, "crop_size", None)
        if getattr(processor, "do_center_crop", False)
        else None
    )
    resample = getattr(processor, "resample", None)
    return {
        "size": dict(size) if size is not None else None,
        "crop_size": dict(crop) if crop is not None else None,
        "mean": [float(v) for v in (getattr(processor, "image_mean", None) or [])],
        "std": [float(v) for v in (getattr(processor, "image_std", None) or [])],
        "interpolation": _resample_name(resample),
        "processor": type(processor).__name__,
    }


class TorchAdapter(LoadedModel):
    """Common state of adapters backed by one torch module."""

    def __init__(
        self,
        spec: ModelSpec,
        module: torch.nn.Module,
        device: Device,
        dtype: Dtype,
        revision: str | None,
    ) -> None:
        self.spec = spec
        self.model_id = spec.model_id
        self.family = spec.family
        self.capabilities = spec.family_entry.capabilities
        self.device = device
        self.dtype = dtype
        self.torch_device = torch_device(device)
        self.torch_dtype = torch_dtype(dtype)
        self.revision = revision
        self.init_seed = torch.initial_seed()  # the seed the module's RNG draws came from
        self.module = module.to(device=self.torch_device, dtype=self.torch_dtype).eval()

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    def pixels_in(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return pixel_values.to(device=self.torch_device, dtype=self.torch_dtype)

    def tokens_in(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.torch_device) for k, v in batch.items()}


class HFAdapter(TorchAdapter):
    """An adapter over a transformers model directory: the model, its tokenizer and image
    processor (all local files only), a picklable image transform, the fingerprint and
    tokenisation padded to the batch's longest text."""

    def __init__(
        self,
        spec: ModelSpec,
        device: Device,
        dtype: Dtype,
        model_class: Any,
        options: dict[str, Any] | None = None,
    ) -> None:
        from transformers import AutoImageProcessor, AutoTokenizer

        preset = spec.preset_entry
        if preset is not None:  # real size, random weights (mirada.vlm.presets)
            built = build_hf_preset(preset, model_class)
            model = built.model
            revision: str | None = built.revision
            self.random_tensors = len(model.state_dict())
            self.tokenizer, self.processor = built.tokenizer, built.processor
        else:
            path = resolve_hf_dir(spec)
            model, info = hf_from_pretrained(
                spec, model_class.from_pretrained, path, output_loading_info=True
            )
            # weights the checkpoint lacks are initialised from the (seeded) RNG; say how many
            self.random_tensors = len(info.get("missing_keys") or ())
            self.tokenizer = hf_from_pretrained(spec, AutoTokenizer.from_pretrained, path)
            self.processor = hf_from_pretrained(spec, AutoImageProcessor.from_pretrained, path)
            revision = hf_revision(path, model.config)
        self._transform = HFImageTransform(self.processor)
        self._options = dict(options or {})
        text_config = getattr(model.config, "text_config", None)
        self._max_len = int(getattr(text_config, "max_position_embeddings", 512))
        super().__init__(spec, model, device, dtype, revision)

    @property
    def image_transform(self) -> Callable[[Any], torch.Tensor]:
        return self._transform

    def fingerprint(self) -> Fingerprint:
        return Fingerprint(
            self.model_id,
            self.family,
            self.revision,
            self.dtype,
            hf_preprocessing(self.processor),
            {**self._options, **self.init_record()},
        )

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        # Pad to the batch's longest text, not the model maximum: pooling reads the [CLS]/EOS
        # position, so embeddings are unchanged and short captions run several times faster.
        batch = self.tokenizer(
            list(texts),
            padding="longest",
            truncation=True,
            max_length=self._max_len,
            return_tensors="pt",
        )
        return self.tokens_in({k: batch[k] for k in ("input_ids", "attention_mask")})


# Attribute names of the image tower in the families' torch modules: open_clip CLIP,
# transformers CLIP/BLIP, FLAVA. `+compile` compiles this tower (text towers and the caption
# decoder stay eager: generation's changing sequence lengths would recompile at every step).
IMAGE_TOWERS = ("visual", "vision_model", "image_model")


class VariantUnavailable(Exception):
    """This device or model cannot run a variant; the message says why."""


def dtype_unavailable(device: Device, dtype: Dtype) -> str | None:
    """Why `dtype` cannot run on `device` (known before trying), or None."""
    if device is Device.cuda and dtype is Dtype.bf16 and not torch.cuda.is_bf16_supported():
        return f"this GPU ({torch.cuda.get_device_name()}) does not support bfloat16"
    return None


def tf32_unavailable(device: Device) -> str | None:
    """Why TF32 matmuls cannot run on `device`, or None (CUDA from Ampere, compute 8.0, on)."""
    if device is not Device.cuda:
        return "tf32 applies to CUDA matmuls only"
    major, _ = torch.cuda.get_device_capability()
    if major < 8:
        return f"this GPU ({torch.cuda.get_device_name()}) has no TF32 tensor cores"
    return None


@contextmanager
def tf32_matmuls(device: Device, enabled: bool) -> Iterator[None]:
    """On CUDA, fp32 matmuls and convolutions on TF32 tensor cores (`enabled`) or in full fp32
    for the block, whatever the process had set (cuDNN's default is TF32 convolutions, which
    would make an "fp32" reference quietly TF32). Nothing changes on other devices."""
    if device is not Device.cuda:
        yield
        return
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def module_bytes(adapter: LoadedModel) -> int | None:
    """Bytes of the adapter's torch module's parameters and buffers (its weights in memory);
    None for an adapter not backed by one torch module."""
    if not isinstance(adapter, TorchAdapter):
        return None
    tensors = [*adapter.module.parameters(), *adapter.module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


A = TypeVar("A", bound=LoadedModel)


def variant_adapter(
    adapter: A,
    dtype: Dtype,
    *,
    channels_last: bool = False,
    compile: bool = False,
    tf32: bool = False,
) -> A:
    """A copy of `adapter` whose weights are CAST to `dtype` (inputs follow via pixels_in; not
    autocast, which keeps fp32 weights and on CPU runs slower than fp32 itself), optionally in
    channels-last memory format and with its image tower wrapped by torch.compile (compiled
    on its first call). The module is copied; tokenizer and transforms are shared. TF32 is a
    mode of the device's matmuls, not of the weights: `tf32` only checks that the device has
    it (callers run the calls inside `tf32_matmuls`).

    Raises VariantUnavailable when the adapter or device cannot take the setting."""
    if not isinstance(adapter, TorchAdapter):
        raise VariantUnavailable(f"{adapter.model_id} is not backed by one torch module")
    why = dtype_unavailable(adapter.device, dtype) or (
        tf32_unavailable(adapter.device) if tf32 else None
    )
    if why:
        raise VariantUnavailable(why)
    module = copy.deepcopy(adapter.module).to(dtype=torch_dtype(dtype))
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
    if compile:
        tower = next((name for name in IMAGE_TOWERS if hasattr(module, name)), None)
        if tower is None:
            raise VariantUnavailable(
                f"no image tower to compile in {type(module).__name__} "
                f"(looked for {', '.join(IMAGE_TOWERS)})"
            )
        setattr(module, tower, torch.compile(getattr(module, tower)))
    clone = copy.copy(adapter)
    for name, value in vars(adapter).items():
        if value is adapter.module:  # the module and its aliases (`self.model`)
            setattr(clone, name, module)
    clone.dtype = dtype
    clone.torch_dtype = torch_dtype(dtype)
    return clone
