"""Named recipes: YAML files shipped in the package, each a TrainConfig plus what it reproduces."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

from ..errors import invalid


def _files() -> dict[str, Any]:
    return {p.name[:-5]: p for p in resources.files(__package__).iterdir() if p.name.endswith(".yaml")}


def list_recipes() -> list[tuple[str, str]]:
    out = []
    for name, path in sorted(_files().items()):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        out.append((name, str(doc.get("description", "")).strip()))
    return out


def _file(name: str) -> Any:
    files = _files()
    if name not in files:
        raise invalid("recipe", name, files, hint="imgclf recipes lists them")
    return files[name]


def recipe_bytes(name: str) -> bytes:
    """The recipe's file exactly as shipped, comments and layout included (what `imgclf recipes NAME` prints)."""
    return _file(name).read_bytes()


def recipe_document(name: str) -> dict[str, Any]:
    return yaml.safe_load(recipe_bytes(name).decode("utf-8")) or {}


def load_recipe(name: str) -> dict[str, Any]:
    """The recipe's training settings (its `config:` block) with `recipe` set to its name."""
    doc = recipe_document(name)
    config = dict(doc.get("config") or {})
    config["recipe"] = name
    return config
