"""Comparison sweeps: FroSSL and the host's methods over seeds and variants, on Hydra.

- configs/compare.yaml and configs/preset/: the sweep's config and the methods' presets
  (hydra_plugins/frossl_plugin/host_recipes.py serves the host's own recipes as presets);
- :mod:`~frossl_plugin.compare.sweep`: job folders, config hashes, done markers (with
  hydra_plugins/frossl_plugin/frossl_sweeper.py, the resumable sweeper);
- :mod:`~frossl_plugin.compare.report`: runs.csv, summary.md and plots of a sweep folder;
- :mod:`~frossl_plugin.compare.image_folder`: the train/val folders made from the user's layout;
- :mod:`~frossl_plugin.compare.command`: ``frossl-plugin compare``, the front door.
"""
