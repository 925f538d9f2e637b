"""FroSSL for solo-learn.

Importing this package is cheap: it imports neither torch nor the host. ``register()`` imports
both and adds FroSSL to ``solo.methods.METHODS``.
"""

__version__ = "0.1.0"


def register() -> None:
    """Adds FroSSL to the host's method registry, ``solo.methods.METHODS``, in place, and lets
    the host's backbone table resolve ``timm/<model>`` names: :func:`frossl_plugin.host.install`.

    Idempotent. Warns if another class already holds the name ``"frossl"`` and replaces it.
    :func:`frossl_plugin.host.uninstall` undoes it.

    Raises:
        ImportError: if solo-learn cannot be imported.
    """

    from frossl_plugin.host import install

    install()


def install_hint(extra: str) -> str:
    """How to install one of the package's extras, from the package index or from a checkout."""

    return (
        f"pip install 'frossl-plugin[{extra}]' (from the package index), or "
        f"pip install '.[{extra}]' in a frossl-plugin checkout"
    )


def __getattr__(name):
    # lazily: the start-up hook imports this package, and must stay a few modules long
    if name == "METHOD_NAME":
        from frossl_plugin.host.methods import METHOD_NAME

        return METHOD_NAME
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["METHOD_NAME", "__version__", "install_hint", "register"]
