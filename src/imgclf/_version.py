"""The package version, importable without the package's lazy API (records stamp it)."""

__version__ = "0.1.0"


def newer_layout(written: object, newest: int) -> str | None:
    """Why a file cannot be read when a newer imgclf wrote it (its schema_version above `newest`, this version's):
    said before any field check, where its new keys would read as typos. None for a layout this version reads."""
    if isinstance(written, int) and not isinstance(written, bool) and written > newest:
        return (f"written by a newer imgclf (schema_version {written}; imgclf {__version__} reads up to {newest}): "
                "read it with that version or a later one")
    return None
