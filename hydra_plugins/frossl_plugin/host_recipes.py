"""The ``preset`` config group read from the host's own recipes.

``preset/<method>`` is served from ``<solo-learn>/scripts/pretrain/<folder>/*.yaml``: the recipe
whose ``method`` is ``<method>`` gives ``method``, ``method_kwargs`` and ``momentum`` (nothing
else: a comparison shares everything else). The search path puts this source before the
plugin's own ``configs/preset``, which holds FroSSL and documented fallbacks for checkouts
without ``scripts``. The checkout is ``$SOLO_LEARN_PATH``, else the folder above an importable
``solo`` (the host's own folder when its ``main_pretrain.py`` runs).
"""

from pathlib import Path
from typing import Dict, List, Optional

from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigLoadError, ConfigResult, ConfigSource
from omegaconf import OmegaConf

GROUP = "preset"
RECIPE_KEYS = ("method", "method_kwargs", "momentum")


def host_recipes(folder: str) -> Dict[str, Path]:
    """``{method: recipe file}`` of the host's ``scripts/pretrain/<folder>``; empty when no
    checkout is found or it has no such folder."""

    from frossl_plugin.host.checkout import find_host

    try:
        recipe_dir = find_host() / "scripts" / "pretrain" / folder
    except ValueError:
        return {}
    recipes = {}
    for path in sorted(recipe_dir.glob("*.y*ml")) if recipe_dir.is_dir() else []:
        try:
            method = OmegaConf.load(path).get("method")
        except Exception:  # noqa: BLE001 - an unreadable file is not a recipe
            continue
        if isinstance(method, str):
            recipes.setdefault(method, path)
    return recipes


def recipe_preset(path: Path):
    """The preset of one host recipe: its ``RECIPE_KEYS``."""

    recipe = OmegaConf.load(path)
    return OmegaConf.create({key: recipe[key] for key in RECIPE_KEYS if key in recipe})


class HostRecipeSource(ConfigSource):
    """Serves ``preset/<method>.yaml`` for each recipe of ``solo-recipes://<folder>``."""

    def __init__(self, provider: str, path: str) -> None:
        super().__init__(provider=provider, path=path)
        self.folder = path.split("://", 1)[-1]
        self._recipes: Optional[Dict[str, Path]] = None

    @staticmethod
    def scheme() -> str:
        return "solo-recipes"

    @property
    def recipes(self) -> Dict[str, Path]:
        if self._recipes is None:
            self._recipes = host_recipes(self.folder)
        return self._recipes

    def _method(self, config_path: str) -> Optional[str]:
        group, _, name = self._normalize_file_name(config_path).rpartition("/")
        method = name[: -len(".yaml")]
        return method if group == GROUP and method in self.recipes else None

    def load_config(self, config_path: str) -> ConfigResult:
        method = self._method(config_path)
        if method is None:
            raise ConfigLoadError(f"No host recipe for {config_path!r} in {self.path}")
        return ConfigResult(
            config=recipe_preset(self.recipes[method]),
            path=f"{self.scheme()}://{self.recipes[method]}",
            provider=self.provider,
            header={"package": "_global_"},
        )

    def available(self) -> bool:
        return bool(self.recipes)

    def is_group(self, config_path: str) -> bool:
        return config_path.strip("/") in ("", GROUP) and self.available()

    def is_config(self, config_path: str) -> bool:
        return self._method(config_path) is not None

    def list(self, config_path: str, results_filter: Optional[ObjectType]) -> List[str]:
        if config_path.strip("/") == "":
            return [GROUP] if self.available() and results_filter != ObjectType.CONFIG else []
        if config_path.strip("/") != GROUP or results_filter == ObjectType.GROUP:
            return []
        return sorted(self.recipes)
