"""Lightning callbacks usable with any host method, added to the host's Trainer from config
(see :mod:`frossl_plugin.callbacks.from_config`). Importing this package imports neither torch
nor Lightning; import the submodules for the classes."""
