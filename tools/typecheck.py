"""Run mypy over the whole `mirada` package as it installs: shared/ -> mirada, worker/ ->
mirada.worker, dashboard/ -> mirada.dashboard.

Why not plain `mypy`: mypy names a module after its folder (shared/queue.py would be
`shared.queue`) and cannot see the editable install's import hook, so it has no way to learn
setup.py's folder mapping. Here every file is handed to mypy with its installed module name,
so imports of `mirada.*` resolve to this checkout and errors point at the real files.
Options come from [tool.mypy] in pyproject.toml; extra arguments are passed to mypy.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from mypy import build
from mypy.errors import CompileError
from mypy.fscache import FileSystemCache
from mypy.main import process_options
from mypy.modulefinder import BuildSource

ROOT = Path(__file__).resolve().parents[1]


def package_roots() -> dict[str, str]:
    """setup.py's ROOTS ({import name: folder}), read without running setup()."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "ROOTS" for t in node.targets
        ):
            return dict(ast.literal_eval(node.value))
    raise SystemExit("setup.py defines no ROOTS mapping")


def sources() -> list[BuildSource]:
    found = []
    for package, folder in package_roots().items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if "__pycache__" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            module = ".".join((package, *parts))
            found.append(BuildSource(str(path.relative_to(ROOT)), module, None, str(ROOT)))
    return found


def main(argv: list[str]) -> int:
    fscache = FileSystemCache()
    # `-c pass` satisfies mypy's "give me a target" check; the real targets are sources().
    config = str(ROOT / "pyproject.toml")
    _, options = process_options(
        ["--config-file", config, *argv, "-c", "pass"], fscache=fscache, program="mypy"
    )
    try:
        result = build.build(sources(), options, None, None, fscache=fscache)
    except CompileError as exc:
        print("\n".join(exc.messages), file=sys.stderr)
        return 2
    for line in result.errors:
        print(line)
    n_errors = sum(": error:" in line for line in result.errors)
    files = len({line.split(":", 1)[0] for line in result.errors if ": error:" in line})
    if n_errors:
        print(f"Found {n_errors} errors in {files} files (checked {len(sources())} modules)")
        return 1
    print(f"Success: no issues found in {len(sources())} modules")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
