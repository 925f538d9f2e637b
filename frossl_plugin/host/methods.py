"""Adds the plugin's methods to solo-learn's registry, ``solo.methods.METHODS``."""

import importlib
import warnings

from frossl_plugin.host.patches import expect, set_item

METHOD_NAME = "frossl"  # FroSSL's key in the host's registry, solo.methods.METHODS


def import_host_methods():
    """Returns the host's ``solo.methods`` module, or raises an ImportError that says how to
    make solo-learn importable."""

    try:
        # import_module, not ``import solo.methods``: while the host's package is still
        # executing (the import hook calls us at its end) ``solo.methods`` is not yet an
        # attribute of ``solo``, but it is in sys.modules
        return importlib.import_module("solo.methods")
    except ImportError as err:
        raise ImportError(
            "frossl-plugin needs solo-learn (https://github.com/vturrisi/solo-learn), which is "
            "not importable here. Run from inside a solo-learn checkout, or put the checkout on "
            f"PYTHONPATH (export PYTHONPATH=$SOLO_LEARN_PATH). Cause: {err}"
        ) from err


def register_methods() -> None:
    """Puts FroSSL into ``solo.methods.METHODS``, mutated in place, never rebound (the host's
    entry points hold a reference to that dict object). Idempotent; warns and replaces if
    another class holds the name. Undone by :func:`frossl_plugin.host.uninstall`.

    Raises:
        HostMismatchError: if ``solo.methods.METHODS`` is not a dict.
    """

    registry = getattr(import_host_methods(), "METHODS", None)
    expect(type(registry) is dict, "solo.methods.METHODS", "a dict", type(registry))
    from frossl_plugin.methods.frossl import FroSSL

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
    set_item(registry, METHOD_NAME, FroSSL)
