"""Entry point: ``python -m mirada.demo.train [clip|clip-random|blip|all] ...``.

The training code lives in the ``mirada.demo.training`` package (``--help`` describes it).
"""

from mirada.demo.training.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
