"""Model builders, keyed by name in one registry."""

from .lookup import create_model, get_model_info, list_models
from .registry import register_model

__all__ = ["create_model", "get_model_info", "list_models", "register_model"]
