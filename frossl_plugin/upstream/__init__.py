"""Exports FroSSL, and an entry-point plugin API, as pull requests to solo-learn.

``frossl-plugin export-upstream PATH`` writes FroSSL into a clean solo-learn checkout in the
host's own layout; ``frossl-plugin export-upstream --plugin-api PATH`` writes the host change that
loads methods from installed packages. See :mod:`frossl_plugin.upstream.export`.
"""
