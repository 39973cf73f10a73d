"""Install the design's top-level folders as one import namespace (everything else: pyproject).

shared/ -> `mirada`, worker/ -> `mirada.worker`, dashboard/ -> `mirada.dashboard`. The package
list is derived from the folders (every folder holding Python files), so a new subpackage can
never be left out of the wheel; tests/test_packaging.py builds the wheel and checks this.
"""

from pathlib import Path

from setuptools import setup

ROOTS = {"mirada": "shared", "mirada.worker": "worker", "mirada.dashboard": "dashboard"}


def _packages() -> list[str]:
    names = []
    for name, folder in ROOTS.items():
        for init in sorted(Path(folder).rglob("*.py")):
            rel = init.parent.relative_to(folder).parts
            if "__pycache__" not in rel:
                names.append(".".join((name, *rel)))
    return sorted(set(names))


setup(packages=_packages(), package_dir=ROOTS)
