"""Each method's own settings in a comparison: ``method_kwargs`` (and ``momentum`` for methods
with a momentum encoder), plus the name of the training loss it logs.

Where they come from, first match wins:

1. the host's recommended config for that dataset: ``<host>/scripts/pretrain/<folder>/*.yaml``
   whose ``method`` is the method, with folder ``cifar`` for cifar10/cifar100, ``imagenet-100``
   for imagenet100, ``imagenet`` for imagenet and ``custom`` for image folders (the host ships
   ``byol`` there only). Only its ``method_kwargs`` and ``momentum`` sections are used;
2. the host's CIFAR recipe for the method (``scripts/pretrain/cifar``), for datasets where the
   host recommends nothing for it (STL-10, image folders);
3. :data:`DEFAULT_SETTINGS` below, the documented defaults. Their values are the host's CIFAR
   recommendations (solo-learn at commit 9187ea3), used when the host is installed without its
   ``scripts`` folder.

FroSSL always takes its settings from the plugin's own config for the dataset.
"""

from pathlib import Path
from typing import Any, Dict, Optional

FROSSL = "frossl"

# method -> {"method_kwargs": ..., optional "momentum": ..., "loss_metric": logged loss name}
DEFAULT_SETTINGS: Dict[str, Dict[str, Any]] = {
    "barlow_twins": {
        "method_kwargs": {"proj_hidden_dim": 2048, "proj_output_dim": 2048, "scale_loss": 0.1},
        "loss_metric": "train_barlow_loss",
    },
    "vicreg": {
        "method_kwargs": {
            "proj_hidden_dim": 2048,
            "proj_output_dim": 2048,
            "sim_loss_weight": 25.0,
            "var_loss_weight": 25.0,
            "cov_loss_weight": 1.0,
        },
        "loss_metric": "train_vicreg_loss",
    },
    "simclr": {
        "method_kwargs": {"proj_hidden_dim": 2048, "proj_output_dim": 256, "temperature": 0.2},
        "loss_metric": "train_nce_loss",
    },
    "byol": {
        "method_kwargs": {"proj_hidden_dim": 4096, "proj_output_dim": 256, "pred_hidden_dim": 4096},
        "momentum": {"base_tau": 0.99, "final_tau": 1.0},
        "loss_metric": "train_neg_cos_sim",
    },
    "mocov2plus": {
        "method_kwargs": {
            "proj_hidden_dim": 2048,
            "proj_output_dim": 256,
            "queue_size": 32768,
            "temperature": 0.2,
        },
        "momentum": {"base_tau": 0.99, "final_tau": 0.999},
        "loss_metric": "train_nce_loss",
    },
    "simsiam": {
        "method_kwargs": {
            "proj_hidden_dim": 2048,
            "proj_output_dim": 2048,
            "pred_hidden_dim": 512,
            "temperature": 0.2,
        },
        "loss_metric": "train_neg_cos_sim",
    },
}

LOSS_METRICS = {FROSSL: "train_frossl_loss"}
LOSS_METRICS.update({name: s["loss_metric"] for name, s in DEFAULT_SETTINGS.items()})

HOST_CONFIG_FOLDERS = {
    "cifar10": "cifar",
    "cifar100": "cifar",
    "imagenet100": "imagenet-100",
    "imagenet": "imagenet",
    "custom": "custom",
}


def host_recommended(host_root: Optional[Path], dataset: str, method: str) -> Optional[dict]:
    """The host's recommended ``method_kwargs``/``momentum`` of ``method`` for ``dataset``.

    Returns:
        Optional[dict]: ``{"method_kwargs": ..., ["momentum": ...,] "source": path}``, or None
        when the host has no such config.
    """

    folder = HOST_CONFIG_FOLDERS.get(dataset)
    if host_root is None or folder is None:
        return None
    config_dir = Path(host_root) / "scripts" / "pretrain" / folder
    if not config_dir.is_dir():
        return None
    from omegaconf import OmegaConf

    for path in sorted(config_dir.glob("*.y*ml")):
        try:
            config = OmegaConf.load(path)
        except Exception:  # noqa: BLE001 - an unreadable file is not a recommendation
            continue
        if config.get("method") != method or "method_kwargs" not in config:
            continue
        settings = {"method_kwargs": OmegaConf.to_container(config.method_kwargs, resolve=True)}
        if "momentum" in config:
            settings["momentum"] = OmegaConf.to_container(config.momentum, resolve=True)
        settings["source"] = f"host scripts/pretrain/{folder}/{path.name}"
        return settings
    return None


def method_settings(host_root: Optional[Path], dataset: str, method: str) -> dict:
    """Settings of a baseline ``method`` on ``dataset`` (see the module docstring).

    Returns:
        dict: ``method_kwargs``, optional ``momentum``, ``source`` (where they came from).

    Raises:
        ValueError: if neither the host nor the plugin knows settings for ``method``.
    """

    settings = host_recommended(host_root, dataset, method)
    if settings is not None:
        return settings
    if HOST_CONFIG_FOLDERS.get(dataset) != "cifar":
        settings = host_recommended(host_root, "cifar10", method)
        if settings is not None:
            settings["source"] += f" (the host has no {dataset} recipe for {method})"
            return settings
    if method in DEFAULT_SETTINGS:
        defaults = DEFAULT_SETTINGS[method]
        settings = {"method_kwargs": dict(defaults["method_kwargs"])}
        if "momentum" in defaults:
            settings["momentum"] = dict(defaults["momentum"])
        settings["source"] = "plugin default (host CIFAR recipe)"
        return settings
    raise ValueError(
        f"No settings known for method {method!r} on {dataset!r}: the host has no recommended "
        f"config for it and the plugin's defaults cover {sorted(DEFAULT_SETTINGS)}. Pass them "
        f"with --method-override {method}:method_kwargs.<key>=<value>."
    )
