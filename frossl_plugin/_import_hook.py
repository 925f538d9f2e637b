"""Registers FroSSL the moment the host's ``solo.methods`` is imported.

A ``.pth`` file in site-packages imports this module at interpreter start-up. It only adds a
finder to ``sys.meta_path`` that ignores every import but ``solo.methods``; when that one
finishes executing, it calls :func:`frossl_plugin.register`. This reaches every host entry point,
the argparse scripts ``main_knn.py`` and ``main_umap.py`` included, and user code that does
``from solo.methods import METHODS``. Set ``FROSSL_PLUGIN_DISABLE_IMPORT_HOOK=1`` to turn it off.
"""

import os
import sys

_HOST_REGISTRY_MODULE = "solo.methods"


class _RegisterAfterExec:
    """Loader proxy: runs the host's loader, then registers the plugin's methods."""

    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        try:
            from frossl_plugin import register

            register()
        except Exception as err:  # never break the host's own methods
            import warnings

            warnings.warn(f"frossl-plugin could not register FroSSL: {err}", stacklevel=2)


class HostRegistryFinder:
    """Meta-path finder that wraps the loader of ``solo.methods`` and nothing else."""

    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname != _HOST_REGISTRY_MODULE:
            return None
        for finder in sys.meta_path:
            if finder is cls or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _RegisterAfterExec(spec.loader)
                return spec
        return None


def install() -> None:
    if os.environ.get("FROSSL_PLUGIN_DISABLE_IMPORT_HOOK"):
        return
    if HostRegistryFinder not in sys.meta_path:
        sys.meta_path.insert(0, HostRegistryFinder)


install()
