"""Demo material: a synthetic captioned dataset and the tiny models trained on it.

``mirada.demo.synthetic`` generates and writes the dataset; ``python -m mirada.demo.train``
(the ``mirada.demo.training`` package) trains the demo models saved under
``shared/vlm/demo_models/``. ``mirada demo`` itself is run by ``mirada.cli.demo_session``.
"""
