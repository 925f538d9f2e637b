"""Registers FroSSL once the host's ``solo.methods`` is imported.

``frossl_plugin_hook.pth`` in site-packages imports ``frossl_plugin._import_hook`` at interpreter
start-up, which calls :func:`install_finder`. It adds a finder to ``sys.meta_path`` that ignores
every import but ``solo.methods`` and ``frossl_plugin.methods.frossl``; when one of them finishes
executing, it calls :func:`frossl_plugin.host.install`. This reaches every host entry point, the
argparse scripts ``main_knn.py`` and ``main_umap.py`` included, and user code that does
``from solo.methods import METHODS``. Set ``FROSSL_PLUGIN_DISABLE_IMPORT_HOOK=1`` to turn it off.
"""

import os
import sys

HOST_REGISTRY_MODULE = "solo.methods"
METHOD_MODULE = "frossl_plugin.methods.frossl"


def _install_after_import() -> None:
    method_module = sys.modules.get(METHOD_MODULE)
    if method_module is not None and not hasattr(method_module, "FroSSL"):
        # the method module imported the host and is still executing: the finder runs this
        # again when it finishes
        return
    try:
        from frossl_plugin.host import install

        install()
    except Exception as err:  # never break the host's own methods
        import warnings

        warnings.warn(f"frossl-plugin could not register FroSSL: {err}", stacklevel=2)


class _InstallAfterExec:
    """Loader proxy: runs the module's own loader, then installs the plugin."""

    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _install_after_import()


class HostRegistryFinder:
    """Meta-path finder that wraps the loaders of the host's registry module and of the
    plugin's method module, and nothing else."""

    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname not in (HOST_REGISTRY_MODULE, METHOD_MODULE):
            return None
        for finder in sys.meta_path:
            if finder is cls or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _InstallAfterExec(spec.loader)
                return spec
        return None


def install_finder() -> None:
    """Puts :class:`HostRegistryFinder` first on ``sys.meta_path`` unless the environment sets
    ``FROSSL_PLUGIN_DISABLE_IMPORT_HOOK``. Idempotent."""

    if os.environ.get("FROSSL_PLUGIN_DISABLE_IMPORT_HOOK"):
        return
    if HostRegistryFinder not in sys.meta_path:
        sys.meta_path.insert(0, HostRegistryFinder)


def remove_finder() -> None:
    """Takes :class:`HostRegistryFinder` off ``sys.meta_path``."""

    while HostRegistryFinder in sys.meta_path:
        sys.meta_path.remove(HostRegistryFinder)
