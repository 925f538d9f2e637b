"""Hydra callback declared by every plugin config (``hydra.callbacks.frossl_plugin``).

Hydra runs ``on_job_start`` before the host's ``main_pretrain.py`` / ``main_linear.py`` task
function, so the method is registered and the config's plugin keys are applied in time.
"""

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

LAST_CHECKPOINT_RESOLVER = "frossl_last_checkpoint"


def last_checkpoint(directory: str) -> str:
    """Newest ``*.ckpt`` below ``directory`` (by modification time).

    Raises:
        ValueError: if there is no checkpoint below ``directory``.
    """

    checkpoints = sorted(Path(directory).rglob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    if not checkpoints:
        raise ValueError(
            f"No *.ckpt found below {str(Path(directory).resolve())!r}; pretrain first or pass "
            "pretrained_feature_extractor=<path to a .ckpt>."
        )
    return str(checkpoints[-1])


class FroSSLPluginCallback(Callback):
    """Registers FroSSL in the host, adds the ``${frossl_last_checkpoint:DIR}`` resolver,
    applies ``data.eval_crop_size`` for custom image folders and switches on the Lightning
    callbacks enabled in the config (frossl_plugin/callbacks/from_config.py)."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        from frossl_plugin import register
        from frossl_plugin.backbones import register_configured_backbone
        from frossl_plugin.callbacks.from_config import activate as activate_trainer_callbacks
        from frossl_plugin.custom_eval_transforms import apply_custom_eval_crop_size

        if not OmegaConf.has_resolver(LAST_CHECKPOINT_RESOLVER):
            OmegaConf.register_new_resolver(LAST_CHECKPOINT_RESOLVER, last_checkpoint)
        register()
        register_configured_backbone(config)  # backbone.name: timm/<model>, checked early
        apply_custom_eval_crop_size(config)
        activate_trainer_callbacks(config)  # epoch_stats / spectrum_monitor, when enabled
