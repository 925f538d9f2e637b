"""Hydra configs of frossl-plugin, installed as the package frossl_plugin.configs."""
