"""Serve a run over HTTP: an upload page, a JSON prediction API, the model card."""

from .app import create_app, serve

__all__ = ["create_app", "serve"]
