"""Built-in reference multimodal models and their registry."""

from mmexport.models.registry import DEFAULT_MODEL, BuiltinModel, builtin_names, get_builtin

__all__ = ["DEFAULT_MODEL", "BuiltinModel", "builtin_names", "get_builtin"]
