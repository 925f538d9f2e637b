"""solo-learn methods. Importing this package imports the host (``solo``) but registers
nothing: :func:`frossl_plugin.register` does."""

from frossl_plugin.methods.frossl import FroSSL

__all__ = ["FroSSL"]
