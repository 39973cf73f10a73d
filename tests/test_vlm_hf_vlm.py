"""The hf-vlm family (issue 24 §2) on tiny random GIT, BLIP-2 (OPT), and LLaVA and Qwen2-VL (chat
templates; Qwen2-VL's processor sizes its output by the image):
captions equal `model.generate` called directly on the same processor output, cut by token
position; options recorded and shown; queue-time checks; a caption run through the worker;
the real-size presets by parameter count (meta device: nothing allocated)."""

from __future__ import annotations

import json
import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers/huggingface_hub read it

from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
import tiny_vlms as tv  # noqa: E402
from cli_runner import run_cli  # noqa: E402
from PIL import Image  # noqa: E402
from run_helpers import work  # noqa: E402

from mirada import queue  # noqa: E402
from mirada.domain import Device  # noqa: E402
from mirada.errors import MiradaError  # noqa: E402
from mirada.queries.captions import caption_table, generation_options  # noqa: E402
from mirada.queries.runs import run_detail  # noqa: E402
from mirada.run_options import CaptionRunOptions  # noqa: E402
from mirada.vlm.base import CaptionOptions  # noqa: E402
from mirada.vlm.errors import DeviceUnavailableError  # noqa: E402
from mirada.vlm.hf_vlm import GENERIC_PROMPT, SQUARE_SIZE, HFVLMAdapter  # noqa: E402
from mirada.vlm.ids import parse_model_id  # noqa: E402
from mirada.vlm.registry import capabilities_for, load_adapter  # noqa: E402

DATASET_IMAGES = 4  # for conftest's `dataset`
ARCHS = ("git", "blip2", "llava", "qwen2_vl")
SETTINGS = {  # greedy and beam search, never sampled
    "greedy": CaptionOptions(prompt=None, num_beams=1, max_length=6),
    "beam": CaptionOptions(prompt="a photo of", num_beams=3, max_length=6),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [
        Image.fromarray((rng.random((40 + 6 * i, 52, 3)) * 255).astype("uint8")) for i in range(3)
    ]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-vlms")
    return {arch: getattr(tv, f"make_{arch}")(root / arch) for arch in ARCHS}


@pytest.fixture(scope="module")
def adapters(tiny: dict[str, Path]) -> dict[str, HFVLMAdapter]:
    loaded = {arch: load_adapter(f"hf-vlm:{d}", device=Device.cpu) for arch, d in tiny.items()}
    assert all(isinstance(a, HFVLMAdapter) for a in loaded.values())
    return loaded  # type: ignore[return-value]


def _direct(
    path: Path, adapter: HFVLMAdapter, images: list[Image.Image], options: CaptionOptions
) -> tuple[list[str], Any, Any]:
    """What the libraries give when called directly, as their model cards do: the processor on
    the prompt (in the chat template when there is one) and the images, `model.generate`, the
    new tokens decoded. Returns (captions, processor inputs, generate output)."""
    model = transformers.AutoModelForImageTextToText.from_pretrained(path).eval()
    processor = transformers.AutoProcessor.from_pretrained(path)
    processor.tokenizer.padding_side = "left"
    prompt = GENERIC_PROMPT if options.prompt is None and adapter.chat else options.prompt
    text = prompt or ""
    if processor.chat_template:
        content = [{"type": "image"}, {"type": "text", "text": text}]
        text = processor.apply_chat_template(
            [{"role": "user", "content": content}], add_generation_prompt=True
        )
    pixels = [adapter.image_transform(im) for im in images]
    inputs = processor(text=[text] * len(images), images=pixels, padding=True, return_tensors="pt")
    if isinstance(model, transformers.GitForCausalLM):
        # GIT's card: [CLS] + the prompt's ids without special tokens (no [SEP], which would
        # end the caption before it starts)
        ids = processor.tokenizer(text, add_special_tokens=False)["input_ids"]
        row = [model.config.bos_token_id, *ids]  # [CLS]
        inputs["input_ids"] = torch.tensor([row] * len(images))
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    with torch.inference_mode():
        out = model.generate(
            **inputs,
            num_beams=options.num_beams,
            max_new_tokens=options.max_length,
            do_sample=False,
        )
    new = out[:, inputs["input_ids"].shape[1] :]
    texts = processor.tokenizer.batch_decode(new, skip_special_tokens=True)
    return [t.strip() for t in texts], inputs, out


@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("arch", ARCHS)
def test_captions_equal_generate_called_directly(
    tiny: dict[str, Path],
    adapters: dict[str, HFVLMAdapter],
    images: list[Image.Image],
    arch: str,
    setting: str,
) -> None:
    adapter, options = adapters[arch], SETTINGS[setting]
    expected, inputs, out = _direct(tiny[arch], adapter, images, options)
    assert adapter.generate_captions(images, options) == expected
    # the cut is where the prompt ends: generate returned the inputs first, then new tokens
    n = inputs["input_ids"].shape[1]
    assert torch.equal(out[:, :n], inputs["input_ids"]) and out.shape[1] > n
    assert any(expected), "the tiny model generated words"


@pytest.mark.parametrize("arch", ARCHS)
def test_image_transform_feeds_the_processor_unchanged(
    tiny: dict[str, Path], adapters: dict[str, HFVLMAdapter], images: list[Image.Image], arch: str
) -> None:
    """The worker's uint8 images give the processor the pixel values the original image does;
    a processor whose output size follows the image gets a fixed square instead."""
    adapter = adapters[arch]
    if arch == "qwen2_vl":
        assert adapter.square == SQUARE_SIZE
        assert adapter.fingerprint().preprocessing["input"] == f"square {SQUARE_SIZE} px"
        for im in images:
            assert adapter.image_transform(im).shape == (3, SQUARE_SIZE, SQUARE_SIZE)
        return
    assert adapter.square is None  # these processors resize to one fixed size
    processor = adapter.processor.image_processor
    for im in images:
        pixels = adapter.image_transform(im)
        assert pixels.dtype == torch.uint8 and pixels.shape[0] == 3
        direct = processor(images=im, return_tensors="pt")["pixel_values"]
        again = processor(images=pixels, return_tensors="pt")["pixel_values"]
        assert torch.equal(direct, again)


@pytest.mark.parametrize("arch", ["git", "blip2"])
def test_unprompted_captions_equal_the_model_cards_call(
    adapters: dict[str, HFVLMAdapter], tiny: dict[str, Path], images: list[Image.Image], arch: str
) -> None:
    """GIT and BLIP-2 caption from the image alone (`generate(pixel_values=...)`, which starts
    from the tokens Mirada's empty prompt gives)."""
    adapter = adapters[arch]
    model = transformers.AutoModelForImageTextToText.from_pretrained(tiny[arch]).eval()
    processor = transformers.AutoProcessor.from_pretrained(tiny[arch])
    pixel_values = processor(images=images, return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        out = model.generate(pixel_values=pixel_values, max_new_tokens=6, num_beams=1)
    expected = [t.strip() for t in processor.tokenizer.batch_decode(out, skip_special_tokens=True)]
    assert adapter.generate_captions(images, SETTINGS["greedy"]) == expected


@pytest.mark.parametrize("arch", ARCHS)
def test_words_repeating_the_prompt_are_kept(
    adapters: dict[str, HFVLMAdapter], images: list[Image.Image], arch: str
) -> None:
    """A model that says its prompt again keeps those words: the prompt is cut by token
    position, so text matching (which would strip them) is never involved."""
    adapter = adapters[arch]
    cat = adapter.tokenizer.convert_tokens_to_ids("cat")
    generation = adapter.generation_config  # BLIP-2: its language model's
    vocab = adapter.model.get_output_embeddings().weight.shape[0]
    generation.suppress_tokens = [i for i in range(vocab) if i != cat]  # every new token: "cat"
    try:
        captions = adapter.generate_captions(images, CaptionOptions("cat cat", 1, 4))
        recorded = adapter.fingerprint().options["generation"]["checkpoint_settings"]
    finally:
        generation.suppress_tokens = None
    assert captions == ["cat cat cat cat"] * len(images)
    assert len(recorded["suppress_tokens"]) == vocab - 1  # what shaped the captions is stored


def test_batches_equal_one_image_at_a_time(
    adapters: dict[str, HFVLMAdapter], images: list[Image.Image]
) -> None:
    adapter = adapters["llava"]
    batch = adapter.generate_captions(images, SETTINGS["beam"])
    assert batch == [adapter.generate_captions([im], SETTINGS["beam"])[0] for im in images]
    assert adapter.caption_pixels(torch.zeros((0, 3, 32, 32), dtype=torch.uint8)) == []


def test_fingerprint_records_the_generation_settings(
    adapters: dict[str, HFVLMAdapter], images: list[Image.Image]
) -> None:
    llava, git = adapters["llava"], adapters["git"]
    llava.generate_captions(images[:1], CaptionOptions(None, 1, 5))
    record = llava.fingerprint().options["generation"]
    assert record["prompt"] == GENERIC_PROMPT and record["prompt_source"] == "model default"
    assert record["chat_template"] is True and record["decoding"] == "greedy"
    assert record["max_new_tokens"] == 5 and GENERIC_PROMPT in record["text"]
    assert record["text"] != GENERIC_PROMPT  # the chat scaffolding is recorded too
    git.generate_captions(images[:1], CaptionOptions("a photo of", 3, 5))
    record = git.fingerprint().options["generation"]
    assert (record["prompt"], record["chat_template"]) == ("a photo of", False)
    assert (record["decoding"], record["num_beams"]) == ("beam search", 3)
    assert git.fingerprint().options["default_prompt"] is None  # GIT's card: no prompt


# --- ids, options and queue-time checks -----------------------------------------------------


def test_ids_parse_and_name_a_captioner(tiny: dict[str, Path]) -> None:
    spec = parse_model_id(f"hf-vlm:{tiny['llava']}")
    assert spec.family == "hf-vlm" and spec.local_dir == tiny["llava"]
    assert parse_model_id("hf-vlm:HuggingFaceTB/SmolVLM-256M-Instruct").local_dir is None
    assert capabilities_for("hf-vlm:Salesforce/blip2-opt-2.7b") == {"caption"}
    with pytest.raises(MiradaError, match="unknown hf-vlm preset 'nope'"):
        parse_model_id("hf-vlm:random:nope")
    with pytest.raises(MiradaError, match="unknown option 'pooling' for hf-vlm"):
        parse_model_id("hf-vlm:org/model?pooling=mean")


def test_queue_validates_ids_options_and_tasks(dataset: int, tiny: dict[str, Path]) -> None:
    model = f"hf-vlm:{tiny['llava']}"
    with pytest.raises(MiradaError, match="cannot run task 'match'"):
        queue.enqueue(dataset, model, "match")
    with pytest.raises(MiradaError, match=r"num_beams \(mirada queue --num-beams\).* is 0"):
        queue.enqueue(dataset, model, "caption", options={"num_beams": 0})
    with pytest.raises(MiradaError, match=r"max_length .*--max-new-tokens.* is 0"):
        queue.enqueue(dataset, model, "caption", options={"max_length": 0})
    with pytest.raises(MiradaError, match=r"prompt .*--prompt.* at most 2000 characters"):
        queue.enqueue(dataset, model, "caption", options={"prompt": "x" * 2001})
    with pytest.raises(MiradaError, match="latency only"):
        queue.enqueue(dataset, "hf-vlm:random:smolvlm-256m", "caption")
    run = queue.enqueue(
        dataset, model, "caption", options={"prompt": "", "num_beams": 1, "max_length": 4}
    )
    stored = run_detail(run, with_captions=False)["options"]
    assert {k: stored[k] for k in ("prompt", "num_beams", "max_length")} == {
        "prompt": "",
        "num_beams": 1,
        "max_length": 4,
    }


def test_cli_queue_flags(dataset: int, tiny: dict[str, Path]) -> None:
    model = f"hf-vlm:{tiny['git']}"
    base = ("queue", "--dataset", "tiny-demo", "--model", model)
    ok = run_cli(*base, "--task", "caption", "--prompt", "a photo of", "--num-beams", "1")
    assert ok.returncode == 0, ok.stderr
    refused = run_cli(*base, "--task", "match")
    assert refused.returncode != 0 and "cannot run task 'match'" in refused.stderr
    bad = run_cli(*base, "--task", "caption", "--max-new-tokens", "0")
    assert bad.returncode != 0 and "--max-new-tokens" in bad.stderr
    clip = ("queue", "--dataset", "tiny-demo", "--model", "hf-clip:mirada/demo-clip")
    stray = run_cli(*clip, "--task", "match", "--prompt", "a photo of")
    assert stray.returncode != 0 and "--prompt applies to --task caption" in stray.stderr
    listed = run_cli("models", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {r["id"]: r for r in json.loads(listed.stdout)}
    smol = rows["hf-vlm:HuggingFaceTB/SmolVLM-256M-Instruct"]
    assert GENERIC_PROMPT in smol["description"] and "caption" in smol["capabilities"]
    for name in REAL_SIZES:
        assert rows[f"hf-vlm:random:{name}"]["latency_only"] is True


def test_gpu_only_preset_is_refused_on_cpu() -> None:
    with pytest.raises(DeviceUnavailableError, match=r"GPU only.*--device cuda"):
        load_adapter("hf-vlm:random:blip2-opt-2.7b", device=Device.cpu)


def test_gpu_only_preset_is_refused_on_cpu_at_queue_time() -> None:
    """--device cpu is refused when queued; auto is left to the worker that claims it."""
    from mirada.domain import Dtype, Task
    from mirada.errors import MiradaError
    from mirada.queue import validate_run_request

    model = "hf-vlm:random:blip2-opt-2.7b"
    with pytest.raises(MiradaError, match=r"GPU only.*--device cuda"):
        validate_run_request(model, Task.benchmark, Device.cpu, Dtype.fp32, 1)
    validate_run_request(model, Task.benchmark, Device.auto, Dtype.fp32, 1)
    validate_run_request("hf-vlm:random:smolvlm-256m", Task.benchmark, Device.cpu, Dtype.fp32, 1)


# Parameter counts of the real architectures, counted on torch's meta device (nothing is
# allocated): BLIP-2 OPT-2.7b is published as 3.74B, SmolVLM-256M as 256M.
REAL_SIZES = {"blip2-opt-2.7b": 3_744_761_856, "smolvlm-256m": 256_484_928}


@pytest.mark.parametrize("name", list(REAL_SIZES))
def test_presets_have_the_real_parameter_count(name: str) -> None:
    from mirada.vlm.hf_vlm import build_vlm_preset

    preset = parse_model_id(f"hf-vlm:random:{name}").preset_entry
    assert preset is not None
    with torch.device("meta"):
        model, processor, _ = build_vlm_preset(preset)
    assert sum(p.numel() for p in model.parameters()) == REAL_SIZES[name]
    assert processor.tokenizer.convert_tokens_to_ids("<image>") == (
        model.config.image_token_id if name == "smolvlm-256m" else model.config.image_token_index
    )


# --- a caption run through the worker -------------------------------------------------------


@pytest.mark.slow
def test_caption_run_through_the_worker(dataset: int, tmp_path: Path) -> None:
    """The existing caption metrics, degeneration flags and stored captions work unchanged for
    an hf-vlm run, and the settings that produced the captions are stored and shown."""
    # random weights often end a caption at once, and the caption metrics refuse empty ones
    model = f"hf-vlm:{tv.make_llava(tmp_path / 'llava', words_only=True)}"
    opts = CaptionRunOptions(num_beams=2, max_length=5, n_resamples=20)
    run = queue.enqueue(dataset, model, "caption", batch_size=3, options=opts)
    assert work() == 1
    detail = run_detail(run)
    assert detail["status"] == "succeeded", detail["error"]
    assert len(detail["captions"]) == DATASET_IMAGES
    assert {"BLEU-4", "ROUGE-L", "CIDEr", "METEOR"} <= set(detail["metrics"])
    assert all(cap["flags"] is not None for cap in detail["captions"])
    generation = detail["model_fingerprint"]["options"]["generation"]
    assert generation["num_beams"] == 2 and generation["max_new_tokens"] == 5
    shown = generation_options(run)
    assert shown["prompt"] == f"{GENERIC_PROMPT} (the model's default)"
    assert shown["chat template"] == "applied"
    assert shown["decoding"] == "beam search, 2 beams" and shown["max new tokens"] == "5"
    assert "min_new_tokens=3" in shown["checkpoint decoding settings"]
    assert GENERIC_PROMPT in shown["text sent with each image"]
    assert len(caption_table(run)) == DATASET_IMAGES
    assert generation_options(run + 1000) == {}
