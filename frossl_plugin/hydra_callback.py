"""Hydra callback declared by every plugin config (``hydra.callbacks.frossl_plugin``).

Hydra runs ``on_job_start`` before the host's ``main_pretrain.py`` / ``main_linear.py`` task
function, so the method is registered and the config's plugin keys are applied in time.

Hydra turns an ``Exception`` raised by a callback into a warning and runs the task anyway, so a
failed set-up is raised as :class:`PluginSetupError`, a ``SystemExit``: the host's script stops
with exit code 1 and one message, no traceback.
"""

import multiprocessing
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from frossl_plugin.probe_checkpoint import check_probe_checkpoint, last_checkpoint

LAST_CHECKPOINT_RESOLVER = "frossl_last_checkpoint"


class PluginSetupError(SystemExit):
    """A failed set-up of a plugin config; exits the host's script with code 1."""

    def __init__(self, cause: BaseException):
        super().__init__(f"frossl-plugin: this run cannot start: {cause}")


class FroSSLPluginCallback(Callback):
    """Registers FroSSL in the host, records the jobs of a comparison sweep
    (frossl_plugin/compare/sweep.py), adds the ``${frossl_last_checkpoint:DIR}`` resolver,
    checks the data, applies ``data.eval_crop_size`` for custom image folders, seeds the linear
    probe, checks the linear probe's checkpoint against its config
    (frossl_plugin/probe_checkpoint.py) and switches on the Lightning callbacks enabled in the
    config (frossl_plugin/callbacks/from_config.py).

    Raises:
        PluginSetupError: if any of these steps fails.
    """

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        from frossl_plugin.compare import sweep

        try:
            if sweep.is_sweep_job(config):
                sweep.start_job(config)
            self.set_up(config)
        except Exception as err:
            raise PluginSetupError(err) from err

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        from frossl_plugin.compare import sweep

        if sweep.is_sweep_job(config):
            sweep.finish_job(config, job_return)

    @staticmethod
    def set_up(config: DictConfig) -> None:
        from frossl_plugin.callbacks.from_config import activate as activate_trainer_callbacks
        from frossl_plugin.data_check import check_data
        from frossl_plugin.host import install

        if multiprocessing.get_start_method(allow_none=True) == "loky":
            # a worker of hydra/launcher=joblib makes "loky" the default start method, which
            # the host's DataLoader workers cannot start with; back to the platform's default
            multiprocessing.set_start_method(None, force=True)
        if not OmegaConf.has_resolver(LAST_CHECKPOINT_RESOLVER):
            OmegaConf.register_new_resolver(LAST_CHECKPOINT_RESOLVER, last_checkpoint)
        # registers FroSSL, checks a timm/<model> backbone name early, applies eval_crop_size
        install(config)
        # main_linear.py: the checkpoint agrees with the probe on method, backbone and dataset
        check_probe_checkpoint(config)
        activate_trainer_callbacks(config)  # epoch_stats / spectrum_monitor, when enabled
        if "pretrain_method" in config and "seed" in config:
            # main_pretrain.py seeds itself; main_linear.py does not
            from lightning.pytorch import seed_everything

            seed_everything(config.seed)
        check_data(config)
