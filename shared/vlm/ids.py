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


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model id. `model_id` is the canonical string (options sorted, defaults dropped)."""

    model_id: str
    family: str
    source: str  # hf repo, local dir, or (open-clip) the architecture / local-dir path
    local_dir: Path | None = None  # set when the weights live in a directory, not the HF cache
    pretrained: str | None = None  # open-clip only: tag or checkpoint path; None = random init
    options: tuple[tuple[str, str], ...] = ()

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
    return ModelIdError(f"invalid model id {model_id!r}: {why}\n{VALID_FORMS}")


def _looks_like_path(source: str) -> bool:
    return source.startswith(_PATH_START) or (len(source) > 1 and source[1] == ":")


def _resolve_source(model_id: str, source: str) -> Path | None:
    """Local directory for `source`, or None when it names a Hugging Face Hub repo."""
    if source.startswith(DEMO_PREFIX):
        name = source[len(DEMO_PREFIX) :]
        if not _ARCH_RE.match(name):
            raise _fail(model_id, f"bad demo model name {name!r}")
        return DEMO_MODELS_DIR / name
    if _looks_like_path(source):
        return Path(source).expanduser().resolve()
    if not _REPO_RE.match(source) or ".." in source:
        raise _fail(model_id, f"{source!r} is neither an 'org/name' repo nor a path")
    # Like transformers: an existing relative directory wins over a same-named Hub repo.
    if Path(source).is_dir():
        return Path(source).resolve()
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
    family, sep, rest = raw.partition(":")
    if not sep:
        raise _fail(raw, "missing '<family>:' prefix")
    if family not in FAMILIES:
        raise _fail(raw, f"unknown family {family!r} (known: {', '.join(FAMILIES)})")
    body, qsep, query = rest.partition("?")
    if not body:
        raise _fail(raw, "nothing after the family prefix")
    options = _parse_options(raw, family, query) if qsep else ()

    if FAMILIES[family].layout is Layout.transformers:
        local = _resolve_source(raw, body)
        return ModelSpec(_canonical(family, body, options), family, body, local, None, options)

    if body.startswith("local-dir:"):
        path = body[len("local-dir:") :]
        if not path:
            raise _fail(raw, "empty path after 'local-dir:'")
        local = Path(path).expanduser().resolve()
        return ModelSpec(_canonical(family, body, options), family, body, local, None, options)
    arch, slash, pretrained = body.partition("/")
    if not _ARCH_RE.match(arch):
        raise _fail(raw, f"bad open_clip architecture name {arch!r}")
    if slash and not pretrained:
        raise _fail(raw, "empty pretrained tag after '/' (drop the '/' for random init)")
    return ModelSpec(
        _canonical(family, body, options), family, arch, None, pretrained or None, options
    )
