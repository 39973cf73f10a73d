"""Typed options of a run, one dataclass per task, checked when the run is queued.

`Run.options` stores `to_dict()`: JSON holding only the keys that differ from their defaults,
so rows keep the shape they had when options were a free dict. `from_dict` refuses unknown keys
and bad values with a MiradaError that names the key, the value and the accepted form; the
queue parses a claimed run's options once and tasks read the dataclass, never raw keys.

Each option is declared once, as a field: its default, accepted form, check and, when users set
it, its `mirada queue` flag (`Flag`: name, help, how its text is parsed), from which the CLI
builds its arguments. Which class serves which task is `mirada.tasks.TASKS`.
"""

from __future__ import annotations

import dataclasses
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from mirada.domain import DEFAULT_SEED, Dtype, Engine, Task, parse_choice
from mirada.errors import MiradaError

RERANK_K = 16
N_RESAMPLES = 1000


class _Refused(ValueError):
    """A value outside the accepted form (the caller names key, value and form; the optional
    message says what exactly is wrong)."""


Check = Callable[[Any], Any]  # value -> stored value; raises _Refused


@dataclass(frozen=True)
class Flag:
    """How users set a run option: its `mirada queue` flag, help, and how the typed text
    becomes the field's value (the field's check then refuses bad values)."""

    name: str  # "--batch-sizes"
    help: str
    metavar: str | None = None
    # text -> value; a ValueError (MiradaError included) says why the text is refused.
    # None: the text itself.
    parse: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None
    repeat: bool = False  # given once per value; the field gets the list
    switch: bool = False  # takes no value; given means True


def _option(default: Any, accepted: str, check: Check, flag: Flag | None = None) -> Any:
    """A field with its accepted form (for messages), its check and its `mirada queue` flag."""
    return field(default=default, metadata={"accepted": accepted, "check": check, "flag": flag})


def option_flag(f: dataclasses.Field[Any]) -> Flag | None:
    """The `mirada queue` flag of an option field (None: set only by Mirada itself)."""
    flag: Flag | None = f.metadata["flag"]
    return flag


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Refused
    return value


def _int_at_least(low: int) -> Check:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise _Refused
        return value

    return check


def _int_between(low: int, high: int) -> Check:
    # Upper bounds keep a typo (num_beams=10000, n_resamples=10**9) from becoming a run that
    # exhausts its worker's memory or time and comes back to do it again on the next worker.
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _Refused
        return value

    return check


def _number_between(low: float, high: float) -> Check:
    def check(value: Any) -> float:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not low <= value <= high:
            raise _Refused
        return float(value)

    return check


def _int_between_or_none(low: int, high: int) -> Check:
    def check(value: Any) -> int | None:
        return None if value is None else _int_between(low, high)(value)

    return check


MAX_BATCH_SIZES_LISTED = 16


def _text_or_none(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise _Refused
    return value


def _batch_sizes(value: Any) -> tuple[int, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple) or not 1 <= len(value) <= MAX_BATCH_SIZES_LISTED:
        raise _Refused
    return tuple(_int_at_least(1)(v) for v in value)


def _batch_sizes_text(text: str) -> list[int]:
    """'1,8,32' -> [1, 8, 32]."""
    try:
        sizes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--batch-sizes wants numbers like 1,8,32 (got {text!r})") from None
    if not sizes or min(sizes) < 1:
        raise ValueError(f"--batch-sizes wants positive numbers (got {text!r})")
    return sizes


def _seconds_text(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"--max-seconds wants seconds like 60 or 2.5 (got {text!r})") from None


TEMPLATE_EXAMPLE = '"a photo of {}."'


def check_template(template: str) -> None:
    """Refuse a zero-shot template that `template.format(name)` (metrics.retrieval.class_prompts)
    would not turn into one prompt per class: exactly one plain `{}` field, nothing else."""
    try:
        fields = [
            (name, spec, conv)
            for _, name, spec, conv in string.Formatter().parse(template)
            if name is not None
        ]
    except ValueError as exc:  # unbalanced braces
        raise _Refused(f"template {template!r} does not parse ({exc})") from None
    if not fields:
        raise _Refused(
            f"template {template!r} has no {{}} for the category name "
            "({{ and }} are literal braces, not a placeholder)"
        )
    if len(fields) > 1:
        raise _Refused(f"template {template!r} has {len(fields)} fields; it needs exactly one {{}}")
    name, spec, conv = fields[0]
    if name not in ("", "0") or spec or conv:
        # a named field fails with KeyError, a spec or conversion rewrites the category name
        shown = "{" + name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
        raise _Refused(f"template {template!r} has the field {shown}; use a plain {{}}")
    if template.format("cat") == template.format("dog"):  # belt and braces: the class must show
        raise _Refused(f"template {template!r} gives every category the same prompt")


def _templates(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple) or not value:
        raise _Refused
    for template in value:
        if not isinstance(template, str):
            raise _Refused
        check_template(template)
    return tuple(value)


# in canonical order: a name spells its modifiers in this order (new ones go last, so the names
# of runs measured before them stay what they were)
VARIANT_MODIFIERS = ("compile", "channels_last", "threads=N", "tf32", "fast_decode")
_SWITCHES = ("compile", "channels_last", "tf32", "fast_decode")
VARIANT_EXAMPLE = "fp32,bf16,bf16+compile"
MAX_THREADS = 1024


@dataclass(frozen=True)
class Variant:
    """One precision/execution setting of a benchmark: a dtype, optionally compiled (the image
    tower, with torch.compile), channels-last, on N intra-op threads, with TF32 matmuls (fp32
    on CUDA), or fed by the fast JPEG decoder (draft decoding and a tensor resize, which only
    approximates the model's own preprocessing: opt-in, never a default)."""

    dtype: Dtype
    compile: bool = False
    channels_last: bool = False
    threads: int | None = None
    tf32: bool = False
    fast_decode: bool = False

    @property
    def name(self) -> str:
        """Canonical spelling: dtype, then the modifiers in VARIANT_MODIFIERS' order."""
        mods = ["compile"] * self.compile + ["channels_last"] * self.channels_last
        mods += [f"threads={self.threads}"] if self.threads is not None else []
        mods += ["tf32"] * self.tf32 + ["fast_decode"] * self.fast_decode
        return "+".join([self.dtype.value, *mods])

    @property
    def is_reference(self) -> bool:
        """fp32 eager on the default threads: what agreement is measured against."""
        return self == REFERENCE_VARIANT


REFERENCE_VARIANT = Variant(Dtype.fp32)


def parse_variant(text: str) -> Variant:
    """`bf16+compile+threads=2` -> Variant; _Refused naming what is wrong (+tf32 with a dtype
    other than fp32 included: TF32 is a mode of fp32 matmuls)."""
    dtype_text, *mods = [part.strip() for part in text.strip().split("+")]
    try:
        dtype = parse_choice(Dtype, dtype_text, "dtype")
    except MiradaError:
        raise _Refused(
            f"variant {text!r} starts with {dtype_text!r}, not a dtype "
            f"({', '.join(d.value for d in Dtype)})"
        ) from None
    seen: set[str] = set()
    fields: dict[str, Any] = {}
    for mod in mods:
        key, _, arg = mod.partition("=")
        if key in seen:
            raise _Refused(f"variant {text!r} names +{key} twice")
        seen.add(key)
        if key in _SWITCHES and not arg and "=" not in mod:
            fields[key] = True
        elif key == "threads" and arg.isascii() and arg.isdigit() and 1 <= int(arg) <= MAX_THREADS:
            fields["threads"] = int(arg)
        elif key == "threads":
            raise _Refused(
                f"variant {text!r}: threads wants a whole number from 1 to {MAX_THREADS}, "
                "e.g. threads=2"
            )
        else:
            raise _Refused(
                f"variant {text!r} has the unknown modifier {mod!r} "
                f"(accepted: {', '.join('+' + m for m in VARIANT_MODIFIERS)})"
            )
    if fields.get("tf32") and dtype is not Dtype.fp32:
        raise _Refused(
            f"variant {text!r}: +tf32 runs fp32 matmuls on TF32 tensor cores, so it needs fp32 "
            "(write fp32+tf32)"
        )
    return Variant(dtype, **fields)


def _variants(value: Any) -> tuple[Variant, ...] | None:
    """A comma list (as typed after --variants), stored names or Variants -> Variants (stored
    by their canonical names)."""
    if value is None:
        return None
    parts = value.split(",") if isinstance(value, str) else value
    if not isinstance(parts, list | tuple) or not all(isinstance(p, str | Variant) for p in parts):
        raise _Refused
    if not parts or any(isinstance(p, str) and not p.strip() for p in parts):
        raise _Refused("an empty variant")
    variants: list[Variant] = []
    for part in parts:
        variant = part if isinstance(part, Variant) else parse_variant(part)
        if variant in variants:
            raise _Refused(f"variant {variant.name!r} is listed twice")
        variants.append(variant)
    return tuple(variants)


RAY_INSTALL = "pip install 'mirada[ray]'"


def _engine(value: Any) -> Engine:
    try:
        return Engine(value)
    except ValueError:
        raise _Refused from None


def require_engine(options: RunOptions) -> None:
    """Refuse an engine this machine cannot drive (Ray not installed), naming the install
    command; called when a run is queued, so the run never waits for a worker that fails it."""
    if getattr(options, "engine", Engine.inprocess) is not Engine.ray:
        return
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise MiradaError(f"--engine ray needs Ray Data, which is not installed: {RAY_INSTALL}")


def _no_cache() -> Any:
    flag = Flag("--no-cache", "recompute embeddings even when cached", switch=True)
    return _option(False, "true or false", _flag, flag)


def _n_resamples() -> Any:
    return _option(
        N_RESAMPLES, "an integer from 1 to 100000 (bootstrap resamples)", _int_between(1, 100_000)
    )


def _seed() -> Any:
    return _option(
        DEFAULT_SEED,
        "an integer from 0 to 2**32-1 (seeds the bootstrap and any randomly initialised "
        "model weights)",
        _int_between(0, 2**32 - 1),
        Flag(
            "--seed",
            "seed of the bootstrap and of randomly initialised weights, e.g. open-clip:ViT-B-32 "
            "(default 0; two runs with one seed get the same model)",
            metavar="N",
            parse=int,
        ),
    )


def _resolved_model_id() -> Any:
    # set by `pinned`: the model id with its local path absolute, when that differs from the
    # id as typed (the worker loads this one; the run's model_id column keeps what was typed)
    return _option(None, "a model id (set when the run is queued)", _text_or_none)


def _model_files() -> Any:
    # set by `pinned`: fingerprint of the local model files when the run was queued
    return _option(None, "a files fingerprint (set when the run is queued)", _text_or_none)


MAX_PROMPT_CHARS = 2000


def _prompt_text(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or len(value) > MAX_PROMPT_CHARS):
        raise _Refused
    return value


# The generation settings of models that caption. Captions (and so every caption metric)
# depend on them, so they are stored with the run and shown beside its captions.
def _prompt() -> Any:
    return _option(
        None,
        f"a text of at most {MAX_PROMPT_CHARS} characters, or null (the model's default)",
        _prompt_text,
        Flag(
            "--prompt",
            "caption/benchmark: what to ask the captioner: hf-vlm puts it in the chat "
            "template's user turn (or gives it as is to models without one); blip-caption "
            "continues it. Default: the model card's captioning prompt (see the README); "
            '"" for none',
            metavar="TEXT",
        ),
    )


def _num_beams() -> Any:
    return _option(
        3,
        "an integer from 1 to 16 (beam search width; 1 is greedy)",
        _int_between(1, 16),
        Flag(
            "--num-beams",
            "caption/benchmark: beam search width, 1 for greedy decoding (default 3); never "
            "sampled",
            metavar="N",
            parse=int,
        ),
    )


def _max_length() -> Any:
    # Named max_length since BLIP captioning, where it already counted generated tokens only
    # (transformers' max_new_tokens, LAVIS's max_len): one field for both families.
    return _option(
        20,
        "an integer from 1 to 512 (new tokens generated at most; the prompt is not counted)",
        _int_between(1, 512),
        Flag(
            "--max-new-tokens",
            "caption/benchmark: generate at most N new tokens per caption, the prompt not "
            "counted (default 20)",
            metavar="N",
            parse=int,
        ),
    )


@dataclass(frozen=True)
class _RunOptions:
    task: ClassVar[Task]

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def __post_init__(self) -> None:
        """Check (and normalise: lists become tuples) every field, however it was built."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            try:
                object.__setattr__(self, f.name, f.metadata["check"](value))
            except _Refused as exc:
                named = option_flag(f)
                flag = f" (mirada queue {named.name})" if named else ""
                why = f": {exc}" if str(exc) else ""
                raise MiradaError(
                    f"run option {f.name}{flag} of task {self.task} is {value!r}{why}; "
                    f"expected {f.metadata['accepted']}"
                ) from None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Self:
        """Parse stored or requested options; MiradaError for unknown keys and bad values."""
        data = dict(data or {})
        unknown = sorted(set(data) - set(cls.keys()))
        if unknown:
            raise MiradaError(
                f"unknown run option {unknown[0]!r} for task {cls.task}; "
                f"accepted: {', '.join(cls.keys())}"
            )
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """The JSON stored in `Run.options`: non-default keys only, sequences as lists,
        variants by their canonical names."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value != f.default:
                out[f.name] = (
                    [v.name if isinstance(v, Variant) else v for v in value]
                    if isinstance(value, tuple)
                    else value
                )
        return out


@dataclass(frozen=True)
class MatchRunOptions(_RunOptions):
    task: ClassVar[Task] = Task.match

    zeroshot_templates: tuple[str, ...] | None = _option(
        None,
        "a non-empty list of texts, each with exactly one {} for the category name, "
        f"e.g. {TEMPLATE_EXAMPLE}",
        _templates,
        Flag(
            "--template",
            'match: zero-shot prompt template with {} for the category, e.g. "a photo of {}." '
            "(repeatable; averaged per class; default: a few photo templates)",
            metavar="TEXT",
            repeat=True,
        ),
    )
    no_cache: bool = _no_cache()
    no_rerank: bool = _option(False, "true or false", _flag)
    rerank_k: int = _option(
        RERANK_K, "an integer from 1 to 1000 (candidates re-ranked)", _int_between(1, 1000)
    )
    # where the embedding stage runs: this process, or a Ray Data pipeline (worker/ray_engine.py)
    engine: Engine = _option(  # noqa: RUF009 (an enum member: immutable)
        Engine.inprocess,
        " or ".join(e.value for e in Engine),
        _engine,
        Flag(
            "--engine",
            "match: where embeddings are computed: inprocess (default, in the worker) or ray "
            "(a Ray Data pipeline on the cluster at RAY_ADDRESS, or a local Ray; needs "
            "mirada[ray])",
            parse=lambda text: parse_choice(Engine, text, "engine"),
            choices=tuple(e.value for e in Engine),
        ),
    )
    n_resamples: int = _n_resamples()
    seed: int = _seed()
    resolved_model_id: str | None = _resolved_model_id()
    model_files: str | None = _model_files()


@dataclass(frozen=True)
class CaptionRunOptions(_RunOptions):
    task: ClassVar[Task] = Task.caption

    prompt: str | None = _prompt()
    num_beams: int = _num_beams()
    max_length: int = _max_length()
    # CLIPScore / RefCLIPScore with this embedding model (None: not computed); pinned like the
    # run's model when queued (clipscore_resolved_model_id, clipscore_model_files)
    clipscore_model: str | None = _option(
        None,
        "a model id with the embed capability",
        _text_or_none,
        Flag(
            "--clipscore-model",
            "caption: also score captions with CLIPScore and RefCLIPScore under this "
            "embedding model (any model that can run --task match; default: none)",
            metavar="ID",
        ),
    )
    clipscore_resolved_model_id: str | None = _resolved_model_id()
    clipscore_model_files: str | None = _model_files()
    no_cache: bool = _no_cache()  # accepted for every task; generated captions are never cached
    n_resamples: int = _n_resamples()
    seed: int = _seed()
    resolved_model_id: str | None = _resolved_model_id()
    model_files: str | None = _model_files()


@dataclass(frozen=True)
class BenchmarkRunOptions(_RunOptions):
    task: ClassVar[Task] = Task.benchmark

    batch_sizes: tuple[int, ...] | None = _option(
        None,
        f"a list of 1 to {MAX_BATCH_SIZES_LISTED} integers >= 1",
        _batch_sizes,
        Flag(
            "--batch-sizes",
            "benchmark: sweep these batch sizes",
            metavar="N,N,...",
            parse=_batch_sizes_text,
        ),
    )
    warmup_batches: int = _option(2, "an integer from 0 to 100", _int_between(0, 100))
    # the minimum number of timed rounds per operation and batch size (the key keeps its older
    # name: rounds time every variant once, so each round is one timed batch per variant)
    timed_batches: int = _option(
        5, "an integer from 1 to 1000 (the minimum number of timed rounds)", _int_between(1, 1000)
    )
    max_seconds: float = _option(
        60.0,
        "a number of seconds from 0.1 to 3600",
        _number_between(0.1, 3600.0),
        Flag(
            "--max-seconds",
            # no percent signs: argparse formats help texts with %
            "benchmark: time budget in seconds per operation and batch size; rounds stop "
            "sooner once every variant's throughput 95 percent CI is within ±5 percent",
            metavar="S",
            parse=_seconds_text,
        ),
    )
    accuracy_items: int | None = _option(
        None,
        "an integer from 1 to 100000, or null (all items, up to 2,000)",
        _int_between_or_none(1, 100_000),
        Flag(
            "--accuracy-items",
            "benchmark: run the task evaluation on at most N dataset items per variant "
            "(default all, up to 2,000)",
            metavar="N",
            parse=int,
        ),
    )
    # the caption operation's generation settings (models that caption)
    prompt: str | None = _prompt()
    num_beams: int = _num_beams()
    max_length: int = _max_length()
    # several settings measured side by side in one run, with their agreement with fp32
    variants: tuple[Variant, ...] | None = _option(
        None,
        "a comma list of variants, each a dtype (fp32, fp16, bf16) optionally followed by "
        f"+compile, +channels_last, +threads=N, +tf32 (fp32 only) or +fast_decode, e.g. "
        f"{VARIANT_EXAMPLE}",
        _variants,
        Flag(
            "--variants",
            "benchmark: measure these settings side by side, each a dtype (fp32, fp16, bf16) "
            "optionally +compile, +channels_last, +threads=N, +tf32 (fp32 on CUDA) or "
            "+fast_decode (approximate JPEG decoding; never a default), e.g. "
            "fp32,bf16,bf16+compile; fp32 eager is added as the reference that speed-ups and "
            "accuracy are measured against",
            metavar="V,V,...",
            parse=_variants,
        ),
    )
    no_cache: bool = _no_cache()  # accepted for every task; benchmarks never use the cache
    seed: int = _seed()  # random-init weights must match the other tasks' runs of the model
    resolved_model_id: str | None = _resolved_model_id()
    model_files: str | None = _model_files()


def measured_variants(listed: Sequence[Variant]) -> list[Variant]:
    """The variants a benchmark run measures, the fp32 eager reference first (added when not
    listed); empty for a run without --variants."""
    if not listed:
        return []
    return [REFERENCE_VARIANT, *(v for v in listed if not v.is_reference)]


RunOptions = MatchRunOptions | CaptionRunOptions | BenchmarkRunOptions


def check_dtype(options: RunOptions, dtype: Dtype) -> None:
    """Refuse a run dtype its options contradict: a benchmark with --variants loads its
    reference in fp32 and names every other dtype it measures itself."""
    if isinstance(options, BenchmarkRunOptions) and options.variants and dtype is not Dtype.fp32:
        raise MiradaError(
            f"--variants names the dtypes it measures (from fp32); drop --dtype {dtype}, or "
            f"list it as a variant: --variants fp32,{dtype}"
        )


def pinned(options: RunOptions, model_id: str) -> RunOptions:
    """`options` with the model's local path pinned: made absolute against this process's
    directory and its files fingerprinted (mirada.vlm.local_files), so a worker elsewhere loads
    the same files or refuses; an engine this machine lacks is refused. Called when a run is
    queued."""
    from mirada.vlm.ids import parse_model_id
    from mirada.vlm.local_files import pin_model

    require_engine(options)
    pin = pin_model(model_id)
    typed_id = parse_model_id(model_id).model_id
    if isinstance(options, CaptionRunOptions) and options.clipscore_model is not None:
        options = _pinned_clipscore(options)
    return dataclasses.replace(
        options,
        resolved_model_id=pin.model_id if pin.model_id != typed_id else None,
        model_files=pin.files,
    )


def _pinned_clipscore(options: CaptionRunOptions) -> CaptionRunOptions:
    """The --clipscore-model checked (a valid id of a model that embeds images and texts) and
    pinned like the run's model."""
    from mirada.vlm.base import EMBED
    from mirada.vlm.ids import parse_model_id
    from mirada.vlm.local_files import pin_model
    from mirada.vlm.registry import capabilities_for

    model_id = options.clipscore_model or ""
    if EMBED not in capabilities_for(model_id):  # raises a MiradaError for malformed ids
        raise MiradaError(
            f"--clipscore-model {model_id} cannot embed images and texts; pick a model that can "
            "run --task match (a CLIP-like model)"
        )
    family = parse_model_id(model_id).family_entry
    if family.sigmoid_loss:
        # Hessel et al.'s w = 2.5 and clipping at 0 are fitted to CLIP's softmax-trained cosine
        # scale; a SigLIP cosine on that scale is not CLIPScore, and no published rescaling exists
        raise MiradaError(
            f"--clipscore-model {model_id}: CLIPScore is defined for CLIP's cosine scale "
            f"(w = 2.5 and clipping at 0, Hessel et al. 2021); {family.prefix} is trained with a "
            "sigmoid loss, whose cosines sit on another scale, so its 'CLIPScore' would not be "
            "comparable with published ones. Pick a CLIP model (e.g. "
            "hf-clip:openai/clip-vit-base-patch32 or open-clip:ViT-B-32/laion2b_s34b_b79k)."
        )
    pin = pin_model(model_id)
    typed_id = parse_model_id(model_id).model_id
    return dataclasses.replace(
        options,
        clipscore_resolved_model_id=pin.model_id if pin.model_id != typed_id else None,
        clipscore_model_files=pin.files,
    )
