"""Mirada's shared package: storage, datasets, model adapters, metrics and the queue."""

__version__ = "0.1.0"
