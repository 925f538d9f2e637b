"""Hydra plugin of frossl-plugin (a namespace package: no hydra_plugins/__init__.py)."""
