"""solo-learn methods. Importing this package imports the host (``solo``)."""

from frossl_plugin.methods.frossl import FroSSL

__all__ = ["FroSSL"]
