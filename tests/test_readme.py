"""The README only shows commands and flags that `mirada` really has."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

from mirada.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = (README, ROOT / "examples" / "seed_study.md")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("mirada has no subcommands")


def readme_invocations(paths: tuple[Path, ...] | None = None) -> list[list[str]]:
    """Every `mirada ...` command line inside the docs' fenced code blocks."""
    text = "\n".join(p.read_text() for p in (paths or DOCS))
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
    lines: list[list[str]] = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#", 1)[0].strip()
            match = re.search(r"(?:^|\s|/)mirada\s+(.*)$", line)
            if match:
                lines.append(shlex.split(match.group(1)))
    return lines


def test_readme_commands_exist_with_their_flags() -> None:
    invocations = readme_invocations()
    assert len(invocations) >= 8, "the README shows the CLI in code blocks"
    commands = _subparsers(build_parser())
    for words in invocations:
        name = words[0]
        assert name in commands, f"README shows `mirada {name}`, which does not exist"
        flags = {opt for action in commands[name]._actions for opt in action.option_strings}
        for word in words[1:]:
            if word.startswith("--"):
                flag = word.split("=", 1)[0]
                assert flag in flags, f"README shows `mirada {name} {flag}`, which it lacks"


def test_checker_catches_a_made_up_command(tmp_path: Path) -> None:
    fake = tmp_path / "README.md"
    fake.write_text("```bash\nmirada frobnicate --now\n```\n")
    commands = _subparsers(build_parser())
    assert readme_invocations((fake,)) == [["frobnicate", "--now"]]
    assert "frobnicate" not in commands


def test_dashboard_hints_use_real_commands() -> None:
    """Commands the dashboard suggests in backticks exist, with their flags."""
    sources = list((ROOT / "dashboard" / "mirada").rglob("*.py"))
    # join implicitly concatenated string literals ("...` " "`...") before searching
    texts = [re.sub(r'"\s*\n\s*"', "", p.read_text()) for p in sources]
    hints = [shlex.split(m) for text in texts for m in re.findall(r"`mirada ([^`]+)`", text)]
    assert hints, "the dashboard suggests CLI commands"
    commands = _subparsers(build_parser())
    for words in hints:
        assert words[0] in commands, f"dashboard suggests unknown `mirada {words[0]}`"
        flags = {opt for action in commands[words[0]]._actions for opt in action.option_strings}
        for word in words[1:]:
            if word.startswith("--"):
                assert word in flags, f"dashboard suggests `mirada {words[0]} {word}`"


def test_readme_sets_up_with_two_make_commands() -> None:
    """Users see `make demo` and `make test` in code blocks; other targets live in prose."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", README.read_text(), flags=re.S)
    targets = [
        line.split("#", 1)[0].split()[1]
        for block in blocks
        for line in block.splitlines()
        if line.strip().startswith("make ")
    ]
    assert targets == ["demo", "test"]
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo", "test", "test-fast", "lint"):
        assert re.search(rf"^{target}:", makefile, flags=re.M), f"Makefile lacks `{target}`"
        assert f"make {target}" in README.read_text(), f"README does not mention make {target}"
