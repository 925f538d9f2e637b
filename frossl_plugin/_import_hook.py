"""Imported by ``frossl_plugin_hook.pth`` at start-up; see frossl_plugin/host/import_hook.py."""

from frossl_plugin.host.import_hook import install_finder

install_finder()
