"""Demo material: a synthetic captioned dataset and the tiny models trained on it.

``mirada.demo.synthetic`` generates and writes the dataset; ``python -m mirada.demo.train``
trains the demo models saved under ``shared/vlm/demo_models/``.
"""
