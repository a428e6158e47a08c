"""The version, apart from the package so that any module may read it without importing the whole API."""

__version__ = "0.1.0"
