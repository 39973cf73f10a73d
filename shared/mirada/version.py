"""The installed version of Mirada (`mirada` is a namespace package over shared/, worker/ and
dashboard/, so the version lives here rather than in an `__init__`)."""

__version__ = "0.1.0"
