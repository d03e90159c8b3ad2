"""The package version, importable without the package's lazy API (records stamp it)."""

__version__ = "0.1.0"
