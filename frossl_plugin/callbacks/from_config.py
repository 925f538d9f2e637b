"""Adds the plugin's Lightning callbacks to the host's Trainer, switched on from the config.

The host's ``main_pretrain.py`` builds its own callback list; it cannot be edited. Lightning
loads extra callbacks from the entry-point group ``lightning.pytorch.callbacks_factory`` every
time a ``Trainer`` is created, and this plugin declares :func:`trainer_callbacks` there. The
factory returns nothing until the plugin's Hydra callback (which runs before the host's task
function, in every process of a DDP run) calls :func:`activate` with the run's config:

.. code-block:: yaml

    epoch_stats:          # frossl_plugin.callbacks.EpochStats
      enabled: true
      path: epoch_stats.jsonl
    spectrum_monitor:     # frossl_plugin.callbacks.SpectrumMonitor
      enabled: true
      frequency: 1        # every k epochs
      num_samples: 512
      dir: spectrum
      seed: 0
    random_state:         # frossl_plugin.callbacks.RandomStateCheckpoint
      enabled: true       # random generators in checkpoints: a resumed run continues exactly
    progress:             # frossl_plugin.callbacks.EpochProgress
      enabled: true       # a line per epoch (job of the sweep, time left) when the bar is off

Any host method gets them through a plugin config, e.g. ``python main_pretrain.py
--config-name frossl_custom.yaml method=barlow_twins '~method_kwargs'
'+method_kwargs={proj_hidden_dim:2048,proj_output_dim:2048,scale_loss:0.1}'
spectrum_monitor.enabled=true`` (``frossl-plugin compare`` writes such configs).
"""

from importlib.metadata import entry_points
from typing import Any, Dict, List, Optional

ENTRY_POINT_GROUP = "lightning.pytorch.callbacks_factory"
ENTRY_POINT_NAME = "frossl_plugin"

_DEFAULTS = {
    "epoch_stats": {"enabled": False, "path": "epoch_stats.jsonl"},
    "spectrum_monitor": {
        "enabled": False,
        "frequency": 1,
        "num_samples": 512,
        "dir": "spectrum",
        "seed": 0,
    },
    "random_state": {"enabled": False},
    "progress": {"enabled": False},
}

_active: Optional[Dict[str, Dict[str, Any]]] = None
_method_name = ""


def _section(cfg: Any, name: str) -> Dict[str, Any]:
    from omegaconf import DictConfig, OmegaConf

    settings = dict(_DEFAULTS[name])
    node = OmegaConf.select(cfg, name, default=None) if isinstance(cfg, DictConfig) else None
    if node is None and isinstance(cfg, dict):
        node = cfg.get(name)
    if node is not None:
        values = OmegaConf.to_container(node) if isinstance(node, DictConfig) else dict(node)
        unknown = sorted(set(values) - set(settings))
        if unknown:
            raise ValueError(f"Unknown {name} keys {unknown}; expected among {sorted(settings)}.")
        settings.update(values)
    if not isinstance(settings["enabled"], bool):
        raise ValueError(f"{name}.enabled must be true or false, found {settings['enabled']!r}.")
    return settings


def _entry_point_installed() -> bool:
    return any(point.name == ENTRY_POINT_NAME for point in entry_points(group=ENTRY_POINT_GROUP))


def activate(cfg: Any) -> List[str]:
    """Reads ``epoch_stats``, ``spectrum_monitor``, ``random_state`` and ``progress`` from ``cfg``
    for the next Trainers.

    Args:
        cfg: the run's config (DictConfig or dict); missing sections mean disabled.

    Returns:
        List[str]: names of the enabled callbacks.

    Raises:
        ValueError: on unknown keys, or if a callback is enabled but the plugin's entry point is
            not installed (a source tree that was never ``pip install``-ed).
    """

    global _active, _method_name
    settings = {name: _section(cfg, name) for name in _DEFAULTS}
    enabled = [name for name, values in settings.items() if values["enabled"]]
    if enabled and not _entry_point_installed():
        raise ValueError(
            f"{enabled} enabled, but the entry point {ENTRY_POINT_GROUP}:{ENTRY_POINT_NAME} is "
            "not installed; install the plugin (pip install frossl-plugin, or pip install -e .)."
        )
    method = cfg.get("method", "") if hasattr(cfg, "get") else ""
    _method_name = str(method or "")
    _active = {name: settings[name] for name in enabled}
    return enabled


def deactivate() -> None:
    """Makes :func:`trainer_callbacks` return nothing again."""

    global _active
    _active = None


def trainer_callbacks() -> list:
    """Entry-point factory called by every ``lightning.pytorch.Trainer``: the callbacks enabled
    by the last :func:`activate` call (fresh instances), or an empty list."""

    if not _active:
        return []
    callbacks = []
    if "random_state" in _active:
        from frossl_plugin.callbacks.random_state import RandomStateCheckpoint

        callbacks.append(RandomStateCheckpoint())
    if "progress" in _active:
        from frossl_plugin.callbacks.progress import EpochProgress

        callbacks.append(EpochProgress())
    if "spectrum_monitor" in _active:
        from frossl_plugin.callbacks.spectrum_monitor import SpectrumMonitor

        settings = _active["spectrum_monitor"]
        callbacks.append(
            SpectrumMonitor(
                frequency=settings["frequency"],
                num_samples=settings["num_samples"],
                directory=settings["dir"],
                seed=settings["seed"],
                title=_method_name,
            )
        )
    if "epoch_stats" in _active:
        from frossl_plugin.callbacks.epoch_stats import EpochStats

        callbacks.append(EpochStats(path=_active["epoch_stats"]["path"]))
    return callbacks
