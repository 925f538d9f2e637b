"""Adds the plugin's methods to solo-learn's registry without editing the host."""

import importlib
import sys
import warnings

METHOD_MODULE = "frossl_plugin.methods.frossl"


def import_host_methods():
    """Returns the host's ``solo.methods`` module, or raises an ImportError that says how to
    make solo-learn importable."""

    try:
        # import_module, not ``import solo.methods``: while the host's package is still
        # executing (the import hook calls us at its end) ``solo.methods`` is not yet an
        # attribute of ``solo``, but it is in sys.modules
        host_methods = importlib.import_module("solo.methods")
    except ImportError as err:
        raise ImportError(
            "frossl-plugin needs solo-learn (https://github.com/vturrisi/solo-learn), which is "
            "not importable here. Run from inside a solo-learn checkout, or put the checkout on "
            f"PYTHONPATH (export PYTHONPATH=$SOLO_LEARN_PATH). Cause: {err}"
        ) from err
    return host_methods


def register_methods() -> None:
    """Puts FroSSL into ``solo.methods.METHODS`` (mutated in place, never rebound: the host's
    entry points hold a reference to that dict object)."""

    from frossl_plugin import METHOD_NAME

    host_methods = import_host_methods()
    method_module = sys.modules.get(METHOD_MODULE)
    if method_module is not None and not hasattr(method_module, "FroSSL"):
        # importing the method module imported the host first (we run at the end of
        # solo.methods): frossl_plugin.methods registers once that import completes
        return
    from frossl_plugin.methods.frossl import FroSSL

    registry = host_methods.METHODS
    current = registry.get(METHOD_NAME)
    if current is FroSSL:
        return
    if current is not None:
        warnings.warn(
            f"solo.methods.METHODS[{METHOD_NAME!r}] already holds "
            f"{current.__module__}.{current.__qualname__}; replacing it with "
            f"{FroSSL.__module__}.{FroSSL.__qualname__}.",
            stacklevel=3,
        )
    registry[METHOD_NAME] = FroSSL
