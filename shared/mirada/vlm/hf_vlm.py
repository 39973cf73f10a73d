"""Any transformers captioning VLM (`hf-vlm:<repo-or-dir>`): AutoModelForImageTextToText with
its AutoProcessor, local files only. A Captioner, nothing else.

How a caption is asked for:
- The prompt is the run's `prompt`, or by default the model card's captioning prompt for the
  model type (`DEFAULT_PROMPTS`; none for GIT and BLIP-2, whose cards caption unprompted), or
  else `GENERIC_PROMPT`. When the processor has a chat template, the prompt goes into one user
  turn beside the image, rendered with `add_generation_prompt=True`; otherwise the processor
  gets the plain prompt text ("" for none).
- Decoding is greedy (num_beams=1) or beam search, never sampled, for at most `max_length`
  new tokens (transformers' `max_new_tokens`: the prompt is not counted).

What comes back is only what the model added, cut by token position, never by matching text
(a model may well start its caption with the prompt's words): a decoder-only model's `generate`
returns its input ids followed by the new tokens, so the caption is `output[:, input_len:]`;
an encoder-decoder's output is the decoder's alone, after its start token. A tokenizer that
appends an end token to every text (BERT's [SEP] for GIT) would end the prompt before anything
is generated, so that suffix is cut from decoder-only inputs (as GIT's model card builds its
input ids).

Images: the worker stacks one fixed-size tensor per image (mirada.worker.data), while the
processor needs the image itself. `VLMImageTransform` runs the image processor's own geometric
steps (resize, crop) without rescaling or normalising, giving a uint8 image the processor then
takes unchanged (checked when the model loads: processing it again gives the same pixel values
as processing the original). Processors whose output size follows the image (Qwen2-VL's
dynamic resolution, Idefics3/SmolVLM's image splitting) get every image as a SQUARE_SIZE
square instead, recorded in the fingerprint: they see a fixed resolution, not the photo's own.

Everything a caption depends on (prompt as sent, chat template used or not, decoding, token
budget, the checkpoint's own generation settings) is recorded in the fingerprint's options
under "generation" after each call, so the run stores what produced its captions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mirada.domain import Device, Dtype
from mirada.vlm.base import DEFAULT_CAPTION_OPTIONS, Captioning, CaptionOptions, Fingerprint
from mirada.vlm.errors import DeviceUnavailableError, ModelUnavailableError
from mirada.vlm.hub import resolve_hf_dir
from mirada.vlm.ids import ModelSpec
from mirada.vlm.presets import Preset, gpu_only_refusal
from mirada.vlm.torch_common import (
    TorchAdapter,
    hf_from_pretrained,
    hf_preprocessing,
    hf_revision,
)

GENERIC_PROMPT = "Describe this image in one sentence."
# Captioning prompts from the model cards, by config.model_type (None: captions unprompted).
DEFAULT_PROMPTS: dict[str, str | None] = {
    "git": None,  # microsoft/git-*: generate(pixel_values) from [CLS]
    "blip-2": None,  # Salesforce/blip2-*: "image captioning" example has no text
    "florence2": "<CAPTION>",  # microsoft/Florence-2-*: the captioning task token
    "paligemma": "caption en",  # google/paligemma-*: "caption {lang}"
}
SQUARE_SIZE = 448  # input side for processors whose output size follows the image
# The checkpoint's generation settings that change greedy/beam output (recorded when set).
DECODING_SETTINGS = (
    "repetition_penalty",
    "no_repeat_ngram_size",
    "length_penalty",
    "early_stopping",
    "min_new_tokens",
    "min_length",
    "bad_words_ids",
    "suppress_tokens",
    "begin_suppress_tokens",
    "sequence_bias",
)


def default_prompt(model_type: str) -> str | None:
    """The model card's captioning prompt for `model_type`, else GENERIC_PROMPT."""
    return DEFAULT_PROMPTS[model_type] if model_type in DEFAULT_PROMPTS else GENERIC_PROMPT


class VLMImageTransform:
    """Picklable PIL -> uint8 CHW tensor: the image processor's geometric steps only (or a
    `square` resize, for processors whose output size follows the image)."""

    def __init__(self, image_processor: Any, square: int | None) -> None:
        self.image_processor = image_processor
        self.square = square

    def __call__(self, image: Any) -> torch.Tensor:
        from PIL.Image import Resampling

        if getattr(image, "mode", "RGB") != "RGB":
            image = image.convert("RGB")
        if self.square is not None:
            image = image.resize((self.square, self.square), Resampling.BICUBIC)
            return torch.from_numpy(_array(image)).permute(2, 0, 1).contiguous()
        out = self.image_processor(
            images=image, do_rescale=False, do_normalize=False, return_tensors="pt"
        )["pixel_values"]
        return out.reshape(out.shape[-3:]).round().clamp(0, 255).to(torch.uint8)


def _array(image: Any) -> Any:
    import numpy as np

    return np.asarray(image, dtype=np.uint8).copy()


def _geometry(spec: ModelSpec, image_processor: Any) -> int | None:
    """None when the image processor's geometric steps give one fixed-size image that it takes
    back unchanged; else the square side every image is resized to first."""
    from PIL import Image

    probe = Image.new("RGB", (61, 47), (90, 140, 200))
    try:
        out = image_processor(
            images=probe, do_rescale=False, do_normalize=False, return_tensors="pt"
        )["pixel_values"]
    except (TypeError, ValueError):  # a processor without these switches
        return SQUARE_SIZE
    if out.ndim < 3 or out.shape[-3] != 3 or out.numel() != out.shape[-3:].numel():
        return SQUARE_SIZE  # patches (Qwen2-VL) or several crops (image splitting)
    again = VLMImageTransform(image_processor, None)(probe)
    direct = image_processor(images=probe, return_tensors="pt")["pixel_values"]
    redone = image_processor(images=again, return_tensors="pt")["pixel_values"]
    if direct.shape != redone.shape or not torch.allclose(direct, redone, atol=1e-5):
        raise ModelUnavailableError(
            f"model {spec.model_id}: its image processor ({type(image_processor).__name__}) "
            "does not take its own resized images back unchanged, so hf-vlm cannot feed it "
            "through the worker's image pipeline; report this model"
        )
    return None


@dataclass(frozen=True)
class _Parts:
    model: torch.nn.Module
    processor: Any
    revision: str | None
    random_tensors: int


def _load_parts(spec: ModelSpec, device: Device) -> _Parts:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    preset = spec.preset_entry
    if preset is not None:
        if preset.gpu_only and device is Device.cpu:
            raise DeviceUnavailableError(gpu_only_refusal(preset))
        model, processor, name = build_vlm_preset(preset)
        return _Parts(model, processor, name, len(model.state_dict()))
    path = resolve_hf_dir(spec)
    model, info = hf_from_pretrained(
        spec, AutoModelForImageTextToText.from_pretrained, path, output_loading_info=True
    )
    processor = hf_from_pretrained(spec, AutoProcessor.from_pretrained, path)
    if not hasattr(processor, "image_processor") or not hasattr(processor, "tokenizer"):
        raise ModelUnavailableError(
            f"model {spec.model_id}: AutoProcessor gave a {type(processor).__name__}, not a "
            f"processor with an image processor and a tokenizer (files in {path})"
        )
    revision = hf_revision(path, model.config)
    return _Parts(model, processor, revision, len(info.get("missing_keys") or ()))


def _is_encoder_decoder(config: Any) -> bool:
    text = config.get_text_config() if hasattr(config, "get_text_config") else None
    return bool(getattr(config, "is_encoder_decoder", False)) or bool(
        getattr(text, "is_encoder_decoder", False)
    )


def _appended_suffix(tokenizer: Any) -> list[int]:
    """The token ids the tokenizer appends after every text (BERT: [SEP]); [] for none."""
    bare = tokenizer("photo", add_special_tokens=False)["input_ids"]
    full = tokenizer("photo")["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return list(full[start + len(bare) :])
    return []


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


class HFVLMAdapter(Captioning, TorchAdapter):
    def __init__(self, spec: ModelSpec, device: Device, dtype: Dtype) -> None:
        parts = _load_parts(spec, device)
        self.random_tensors = parts.random_tensors
        self.processor = parts.processor
        self.tokenizer = parts.processor.tokenizer
        model: Any = parts.model
        self.model_type = str(model.config.model_type)
        self.encoder_decoder = _is_encoder_decoder(model.config)
        if not self.encoder_decoder:
            # generate continues from the last position: pads go on the left
            self.tokenizer.padding_side = "left"
        self.chat = bool(getattr(self.processor, "chat_template", None))
        self.suffix = [] if self.encoder_decoder else _appended_suffix(self.tokenizer)
        self.square = _geometry(spec, self.processor.image_processor)
        self._transform = VLMImageTransform(self.processor.image_processor, self.square)
        self._generation: dict[str, Any] = {}
        super().__init__(spec, model, device, dtype, parts.revision)
        self.model: Any = self.module

    @property
    def image_transform(self) -> Callable[[Any], torch.Tensor]:
        return self._transform

    @property
    def generation_config(self) -> Any:
        """The generation config `generate` decodes with. BLIP-2-style wrappers hand generation
        to their language model, whose own config then applies, not the wrapper's."""
        from transformers import GenerationMixin

        own_generate = type(self.model).generate is not GenerationMixin.generate
        inner = getattr(self.model, "language_model", None)
        if own_generate and isinstance(inner, GenerationMixin):
            return inner.generation_config
        return self.model.generation_config

    def checkpoint_settings(self) -> dict[str, Any]:
        """The generation config's settings that change greedy or beam output, where set."""
        gen = self.generation_config
        return {
            k: _jsonable(getattr(gen, k))
            for k in DECODING_SETTINGS
            if getattr(gen, k, None) not in (None, False, 1.0, 0, [])
        }

    def fingerprint(self) -> Fingerprint:
        preprocessing = hf_preprocessing(self.processor.image_processor)
        preprocessing["input"] = (
            f"square {self.square} px" if self.square else "the image processor's own size"
        )
        options: dict[str, Any] = {
            "model_type": self.model_type,
            "chat_template": self.chat,
            "default_prompt": default_prompt(self.model_type),
        }
        if self._generation:
            options["generation"] = dict(self._generation)
        return Fingerprint(
            self.model_id,
            self.family,
            self.revision,
            self.dtype,
            preprocessing,
            {**options, **self.init_record()},
        )

    def prompt_text(self, options: CaptionOptions) -> tuple[str, str | None]:
        """(the text the processor gets for each image, the prompt it holds)."""
        prompt = options.prompt
        if prompt is None:
            prompt = default_prompt(self.model_type)
        if not self.chat:
            return prompt or "", prompt or None
        content: list[dict[str, str]] = [{"type": "image"}]
        if prompt:
            content.append({"type": "text", "text": prompt})
        messages = [{"role": "user", "content": content}]
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True)
        return str(text), prompt or None

    def model_inputs(self, pixel_values: torch.Tensor, options: CaptionOptions) -> Any:
        """The processor's output for these images (uint8, from `image_transform`) and the
        prompt, the tokenizer's appended suffix cut; on the model's device."""
        text, _ = self.prompt_text(options)
        images = [im for im in pixel_values.cpu()]
        batch = self.processor(
            text=[text] * len(images), images=images, padding=True, return_tensors="pt"
        )
        k = len(self.suffix)
        if k and batch["input_ids"][:, -k:].eq(torch.tensor(self.suffix)).all():
            for key in ("input_ids", "attention_mask", "token_type_ids"):
                if key in batch:
                    batch[key] = batch[key][:, :-k]
        return {
            key: value.to(
                device=self.torch_device,
                dtype=self.torch_dtype if value.is_floating_point() else value.dtype,
            )
            if isinstance(value, torch.Tensor)
            else value
            for key, value in batch.items()
        }

    def generate_kwargs(self, options: CaptionOptions) -> dict[str, Any]:
        return {
            "num_beams": options.num_beams,
            "max_new_tokens": options.max_length,
            "do_sample": False,
        }

    def new_tokens(self, output: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        """What the model added to each row of `output`, by token position."""
        if self.encoder_decoder:
            return output[:, 1:]  # the decoder start token is not generated
        n = input_ids.shape[1]
        if output.shape[1] < n or not torch.equal(output[:, :n], input_ids.to(output.device)):
            raise RuntimeError(
                f"{self.model_id}: generate did not return the prompt's {n} tokens before the "
                "new ones, so the caption cannot be cut from it by position"
            )
        return output[:, n:]

    @torch.inference_mode()
    def caption_pixels(
        self, pixel_values: torch.Tensor, options: CaptionOptions = DEFAULT_CAPTION_OPTIONS
    ) -> list[str]:
        if len(pixel_values) == 0:
            return []
        inputs = self.model_inputs(pixel_values, options)
        kwargs = self.generate_kwargs(options)
        output = self.model.generate(**inputs, **kwargs)
        new = self.new_tokens(output, inputs["input_ids"])
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        self._generation = self.generation_record(options)
        return [str(t).strip() for t in texts]

    def generation_record(self, options: CaptionOptions) -> dict[str, Any]:
        text, prompt = self.prompt_text(options)
        record: dict[str, Any] = {
            "prompt": prompt,
            "prompt_source": "run option" if options.prompt is not None else "model default",
            "chat_template": self.chat,
            "text": text,
            "decoding": "greedy" if options.num_beams == 1 else "beam search",
            "num_beams": options.num_beams,
            "max_new_tokens": options.max_length,
        }
        settings = self.checkpoint_settings()
        if settings:
            record["checkpoint_settings"] = settings
        return record


def load(spec: ModelSpec, device: Device, dtype: Dtype) -> HFVLMAdapter:
    return HFVLMAdapter(spec, device, dtype)


# --- real-size random presets (mirada.vlm.presets) -------------------------------------------

_DEMO_VOCAB = Path(__file__).resolve().parent / "demo_models" / "demo-blip" / "vocab.txt"
# SmolVLM's chat template (HuggingFaceTB/SmolVLM-256M-Instruct): "<|im_start|>User:<image>
# Describe ...<end_of_utterance>\nAssistant:"
SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def word_level_tokenizer(specials: Sequence[str], *, bos: str, eos: str, pad: str) -> Any:
    """A fast word-level tokenizer over the demo BLIP's words plus `specials` (never split),
    `bos` prepended: the presets' offline stand-in for the real tokenizers (their texts
    tokenize to other lengths; the embedding tables keep the real vocabulary size)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = [w for w in _DEMO_VOCAB.read_text().split() if not w.startswith("[")]
    vocab = {t: i for i, t in enumerate(dict.fromkeys([*specials, "<unk>", *words, ":", "."]))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", special_tokens=[(bos, vocab[bos])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        unk_token="<unk>",
        additional_special_tokens=[t for t in specials if t not in (bos, eos, pad)],
    )


def _blip2_parts() -> tuple[Any, dict[str, Any]]:
    from transformers import Blip2Processor, BlipImageProcessor

    tokenizer = word_level_tokenizer(
        ["<pad>", "</s>", "<image>", "\n"], bos="</s>", eos="\n", pad="<pad>"
    )
    # blip2-opt-2.7b's processor: 224 px, CLIP mean/std (BlipImageProcessor's own defaults)
    processor = Blip2Processor(
        BlipImageProcessor(size={"height": 224, "width": 224}), tokenizer, num_query_tokens=32
    )
    ids = tokenizer.convert_tokens_to_ids
    return processor, {
        "image_token_index": ids("<image>"),
        "text_config_ids": {
            "bos_token_id": ids("</s>"),
            "eos_token_id": ids("\n"),  # OPT BLIP-2 stops at a newline (eos_token_id 50118)
            "pad_token_id": ids("<pad>"),
        },
    }


def _smolvlm_parts() -> tuple[Any, dict[str, Any]]:
    from transformers import Idefics3ImageProcessor, Idefics3Processor

    tiles = [f"<row_{r}_col_{c}>" for r in range(1, 5) for c in range(1, 5)]
    tokenizer = word_level_tokenizer(
        [
            "<|endoftext|>",
            "<|im_start|>",
            "<end_of_utterance>",
            "<image>",
            "<fake_token_around_image>",
            "<global-img>",
            *tiles,
            "User",
            "Assistant",
        ],
        bos="<|im_start|>",
        eos="<end_of_utterance>",
        pad="<|endoftext|>",
    )
    image_processor = Idefics3ImageProcessor(
        size={"longest_edge": 4 * 512}, max_image_size={"longest_edge": 512}
    )
    processor = Idefics3Processor(
        image_processor, tokenizer, image_seq_len=64, chat_template=SMOLVLM_CHAT_TEMPLATE
    )
    ids = tokenizer.convert_tokens_to_ids
    return processor, {
        "image_token_id": ids("<image>"),
        "text_config_ids": {
            "bos_token_id": ids("<|im_start|>"),
            "eos_token_id": ids("<end_of_utterance>"),
            "pad_token_id": ids("<|endoftext|>"),
        },
    }


_PRESET_PARTS = {"blip2-opt-2.7b": _blip2_parts, "smolvlm-256m": _smolvlm_parts}


def build_vlm_preset(preset: Preset) -> tuple[torch.nn.Module, Any, str]:
    """(model, processor, revision) of an hf-vlm preset: its config (library defaults plus the
    preset's overrides, token ids from the offline tokenizer), random weights from torch's RNG
    (load_adapter seeds it)."""
    import transformers

    processor, ids = _PRESET_PARTS[preset.name]()
    overrides = {k: dict(v) if isinstance(v, dict) else v for k, v in preset.overrides.items()}
    text_ids = ids.pop("text_config_ids")
    overrides["text_config"] = {**overrides.get("text_config", {}), **text_ids}
    config = getattr(transformers, str(preset.config_class))(**overrides, **ids)
    model = transformers.AutoModelForImageTextToText.from_config(config)
    model.generation_config.bos_token_id = text_ids["bos_token_id"]
    model.generation_config.eos_token_id = text_ids["eos_token_id"]
    model.generation_config.pad_token_id = text_ids["pad_token_id"]
    return model, processor, f"random-transformers-{transformers.__version__}"
