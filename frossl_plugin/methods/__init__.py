"""solo-learn methods. Importing this package imports the host (``solo``) and registers the
plugin's methods in ``solo.methods.METHODS``."""

from frossl_plugin import register
from frossl_plugin.methods.frossl import FroSSL

register()

__all__ = ["FroSSL"]
