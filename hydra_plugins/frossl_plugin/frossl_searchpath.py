"""Adds the configs shipped with frossl-plugin to every Hydra app's search path.

Hydra imports this module on every start of every Hydra app: it imports Hydra only.
"""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

CONFIG_PACKAGE = "pkg://frossl_plugin.configs"
# the host's small-image recipes serve the preset group (host_recipes.py); before the plugin's
# own configs, so that a checkout's recipe wins over the plugin's fallback
HOST_RECIPES = "solo-recipes://cifar"


class FroSSLSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        # appended: a user's own --config-path still wins
        search_path.append(provider="frossl-plugin-host-recipes", path=HOST_RECIPES)
        search_path.append(provider="frossl-plugin", path=CONFIG_PACKAGE)
