"""``frossl-plugin compare``: FroSSL against the host's methods under one budget.

- :mod:`~frossl_plugin.compare.method_settings`: each method's own settings and their source;
- :mod:`~frossl_plugin.compare.run_config`: the shared config and one config per method;
- :mod:`~frossl_plugin.compare.runner`: host subprocesses, progress bar, resume;
- :mod:`~frossl_plugin.compare.report`: CSV, Markdown summary and plots;
- :mod:`~frossl_plugin.compare.command`: the command line.
"""
