"""The one parser for model ids: `<family>:<source>[?key=value&...]`.

Everything else (registry, CLI, worker, catalogue) goes through `parse_model_id`; nothing else
splits model-id strings. Which families exist, their id forms and options come from
`mirada.vlm.families`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mirada.vlm.errors import ModelIdError
from mirada.vlm.families import FAMILIES, Family, Layout
from mirada.vlm.presets import RANDOM_PREFIX, Preset, get_preset, preset_names

# The prefix that names a demo model shipped in the repository.
DEMO_PREFIX = "mirada/"
DEMO_MODELS_DIR = Path(__file__).resolve().parent / "demo_models"


def valid_forms() -> str:
    """Every accepted id form, one indented line each, from the family table."""
    lines = [
        f"  {form:<38} {note}".rstrip()
        for family in FAMILIES.values()
        for form, note in family.form_lines()
    ]
    demo = (
        f"  <hf-repo> may be {DEMO_PREFIX}<name> for a demo model in shared/vlm/demo_models/<name>/"
    )
    return "\n".join([*lines, demo])


VALID_FORMS = "valid model ids:\n" + valid_forms()

_REPO_RE = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_ARCH_RE = re.compile(r"^[A-Za-z0-9][\w.-]*$")
_PATH_START = ("/", "./", "../", "~", ".\\")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
MAX_ID_LENGTH = 4096  # PATH_MAX on Linux: no usable id is longer
# open_clip checkpoint files (open_clip.load_checkpoint reads .safetensors, torch.load the rest)
CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model id. `model_id` is the canonical string (options sorted, defaults dropped)."""

    model_id: str
    family: str
    source: str  # hf repo, local dir, or (open-clip) the architecture / local-dir path
    local_dir: Path | None = None  # set when the weights live in a directory, not the HF cache
    pretrained: str | None = None  # open-clip only: tag or checkpoint path; None = random init
    options: tuple[tuple[str, str], ...] = ()
    checkpoint: Path | None = None  # open-clip only: `pretrained` resolved, when it is a file
    preset: str | None = None  # `<family>:random:<preset>`: real size, random weights

    @property
    def latency_only(self) -> bool:
        """Random weights at a real model's size: fit for benchmarks only."""
        return self.preset is not None

    @property
    def preset_entry(self) -> Preset | None:
        return None if self.preset is None else get_preset(self.family, self.preset)

    @property
    def local_path(self) -> Path | None:
        """The weights' directory or checkpoint file on disk, when the id names one by path
        (demo models are named, not pathed: they travel with Mirada)."""
        return None if self.is_demo else self.local_dir or self.checkpoint

    @property
    def random_init(self) -> bool:
        """open_clip architecture without weights: the parameters come from the RNG."""
        return self.layout is Layout.open_clip and self.local_dir is None and not self.pretrained

    @property
    def pinned_id(self) -> str:
        """The canonical id with its local path absolute: it names the same files from any
        current directory (runs store this form; see mirada.vlm.local_files)."""
        query = "&".join(f"{k}={v}" for k, v in self.options)
        query = f"?{query}" if query else ""
        if self.local_path is None:
            return self.model_id
        if self.layout is Layout.transformers:
            return f"{self.family}:{self.local_path}{query}"
        if self.local_dir is not None:
            return f"{self.family}:local-dir:{self.local_dir}{query}"
        return f"{self.family}:{self.source}/{self.checkpoint}{query}"

    @property
    def family_entry(self) -> Family:
        """This id's row of the family table."""
        return FAMILIES[self.family]

    @property
    def layout(self) -> Layout:
        return self.family_entry.layout

    def option(self, name: str) -> str:
        """The option's value, or its family default."""
        for key, value in self.options:
            if key == name:
                return value
        return self.family_entry.default(name)

    @property
    def is_demo(self) -> bool:
        return self.source.startswith(DEMO_PREFIX)


def _fail(model_id: str, why: str) -> ModelIdError:
    shown = model_id if len(model_id) <= 200 else model_id[:200] + "..."
    return ModelIdError(f"invalid model id {shown!r}: {why}\n{VALID_FORMS}")


def _looks_like_path(source: str) -> bool:
    return source.startswith(_PATH_START) or (len(source) > 1 and source[1] == ":")


def _absolute(model_id: str, path: str) -> Path:
    """`path` made absolute against the current directory; a MiradaError when the system
    refuses it (unknown ~user, a name too long)."""
    try:
        return Path(path).expanduser().resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise _fail(model_id, f"path {path!r} cannot be resolved ({exc})") from None


def _is_dir(path: str) -> bool:
    try:
        return Path(path).is_dir()
    except (OSError, ValueError):  # a name too long for the file system is not a directory
        return False


def _resolve_source(model_id: str, source: str) -> Path | None:
    """Local directory for `source`, or None when it names a Hugging Face Hub repo."""
    if source.startswith(DEMO_PREFIX):
        name = source[len(DEMO_PREFIX) :]
        if not _ARCH_RE.match(name):
            raise _fail(model_id, f"bad demo model name {name!r}")
        return DEMO_MODELS_DIR / name
    if _looks_like_path(source):
        return _absolute(model_id, source)
    if not _REPO_RE.match(source) or ".." in source or max(map(len, source.split("/"))) > 96:
        # the Hub allows 96 characters per part
        raise _fail(model_id, f"{source!r} is neither an 'org/name' repo nor a path")
    # Like transformers: an existing relative directory wins over a same-named Hub repo.
    if _is_dir(source):
        return _absolute(model_id, source)
    return None


def _checkpoint(model_id: str, pretrained: str) -> Path | None:
    """The checkpoint file `pretrained` names, or None when it is an open_clip tag.

    Decided by the text alone: tags are plain names; anything path-like or with a checkpoint
    suffix is a path (resolved here, so it never depends on a later process's directory)."""
    if (
        _looks_like_path(pretrained)
        or "/" in pretrained
        or "\\" in pretrained
        or pretrained.endswith(CHECKPOINT_SUFFIXES)
    ):
        return _absolute(model_id, pretrained)
    if not _ARCH_RE.match(pretrained):
        raise _fail(model_id, f"{pretrained!r} is neither a pretrained tag nor a checkpoint path")
    return None


def _parse_options(model_id: str, family: str, query: str) -> tuple[tuple[str, str], ...]:
    allowed = FAMILIES[family].options
    found: dict[str, str] = {}
    for part in query.split("&"):
        key, sep, value = part.partition("=")
        if not sep or not key or not value:
            raise _fail(model_id, f"option {part!r} is not key=value")
        if key not in allowed:
            valid = ", ".join(allowed) or "none"
            raise _fail(model_id, f"unknown option {key!r} for {family} (valid: {valid})")
        if value not in allowed[key]:
            raise _fail(model_id, f"{key}={value!r}; expected one of {', '.join(allowed[key])}")
        if key in found:
            raise _fail(model_id, f"option {key!r} given twice")
        found[key] = value
    # Canonical form drops defaults, so `flava:x?pooling=projected` and `flava:x` share a cache.
    return tuple(sorted((k, v) for k, v in found.items() if v != allowed[k][0]))


def _canonical(family: str, body: str, options: tuple[tuple[str, str], ...]) -> str:
    query = "&".join(f"{k}={v}" for k, v in options)
    return f"{family}:{body}" + (f"?{query}" if query else "")


def parse_model_id(model_id: str) -> ModelSpec:
    """Parse `model_id`; raise ModelIdError naming the valid forms when it is not one."""
    if not isinstance(model_id, str) or not model_id.strip():
        raise _fail(str(model_id), "empty")
    raw = model_id.strip()
    if len(raw) > MAX_ID_LENGTH:
        raise _fail(raw, f"longer than {MAX_ID_LENGTH} characters")
    if _CONTROL_RE.search(raw):
        raise _fail(raw, "contains a control character (NUL, newline, escape, ...)")
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from undecodable command-line bytes
        raise _fail(raw, "is not valid UTF-8") from None
    family, sep, rest = raw.partition(":")
    if not sep:
        raise _fail(raw, "missing '<family>:' prefix")
    if family not in FAMILIES:
        raise _fail(raw, f"unknown family {family!r} (known: {', '.join(FAMILIES)})")
    body, qsep, query = rest.partition("?")
    if not body:
        raise _fail(raw, "nothing after the family prefix")
    options = _parse_options(raw, family, query) if qsep else ()

    if body.startswith(RANDOM_PREFIX):
        name = body[len(RANDOM_PREFIX) :]
        if get_preset(family, name) is None:
            known = ", ".join(preset_names(family)) or "none"
            raise _fail(raw, f"unknown {family} preset {name!r} (known: {known})")
        # open_clip builds its architecture by name; transformers presets by config
        source = name if FAMILIES[family].layout is Layout.open_clip else body
        canonical = _canonical(family, body, options)
        return ModelSpec(canonical, family, source, None, None, options, None, name)

    if FAMILIES[family].layout is Layout.transformers:
        local = _resolve_source(raw, body)
        return ModelSpec(_canonical(family, body, options), family, body, local, None, options)

    if body.startswith("local-dir:"):
        path = body[len("local-dir:") :]
        if not path:
            raise _fail(raw, "empty path after 'local-dir:'")
        local = _absolute(raw, path)
        return ModelSpec(_canonical(family, body, options), family, body, local, None, options)
    arch, slash, pretrained = body.partition("/")
    if not _ARCH_RE.match(arch):
        raise _fail(raw, f"bad open_clip architecture name {arch!r}")
    if slash and not pretrained:
        raise _fail(raw, "empty pretrained tag after '/' (drop the '/' for random init)")
    checkpoint = _checkpoint(raw, pretrained) if pretrained else None
    return ModelSpec(
        _canonical(family, body, options),
        family,
        arch,
        None,
        pretrained or None,
        options,
        checkpoint,
    )
