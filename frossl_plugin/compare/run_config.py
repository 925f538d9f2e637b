"""The complete pretraining config of each method of a comparison.

One plugin config is composed for the data (``frossl.yaml`` for CIFAR-10, ``frossl_cifar100``,
``frossl_stl10``, or ``base/pretrain`` plus an augmentation for an image folder) with the shared
settings applied (epochs, batch, backbone, seed, devices, ...). Every method then gets a copy in
which only ``method``, ``method_kwargs`` (and ``momentum``) differ. The copy is written as a
stand-alone Hydra config (``<out>/<method>/pretrain.yaml``) that the host's unmodified
``main_pretrain.py`` runs, so each run can be repeated by hand.
"""

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional

import yaml

from frossl_plugin.compare.image_folder import prepare_image_folder
from frossl_plugin.compare.method_settings import FROSSL, method_settings

BUILTIN_DATASETS = {"cifar10": "frossl", "cifar100": "frossl_cifar100", "stl10": "frossl_stl10"}
FOLDER_CONFIG = "frossl_custom"
HYDRA_SECTION = {
    "output_subdir": None,
    "run": {"dir": "."},
    "callbacks": {
        "frossl_plugin": {"_target_": "frossl_plugin.hydra_callback.FroSSLPluginCallback"}
    },
}


@dataclass
class SharedSettings:
    """What every method of a comparison shares. None keeps the plugin config's value."""

    data: str
    epochs: int
    batch_size: Optional[int] = None
    backbone: Optional[str] = None
    seed: int = 5
    crop_size: Optional[int] = None
    augmentations: Optional[str] = None
    data_root: Optional[str] = None
    num_workers: Optional[int] = None
    accelerator: Optional[str] = None
    devices: Optional[List[int]] = None
    strategy: Optional[str] = None
    precision: Optional[str] = None
    num_nodes: Optional[int] = None
    limit_train_batches: Optional[float] = None
    limit_val_batches: Optional[float] = None
    val_fraction: float = 0.1
    val_subset: Optional[int] = None
    knn: bool = True
    spectrum_every: int = 1
    spectrum_samples: int = 512
    overrides: List[str] = field(default_factory=list)


def dataset_of(data: str) -> str:
    """The host's ``data.dataset`` for ``--data``: a built-in name or ``custom``."""

    return data if data in BUILTIN_DATASETS else "custom"


class SharedConfig(NamedTuple):
    cfg: Any  # omegaconf.DictConfig: the config FroSSL runs with
    base_name: str  # the plugin config it was composed from
    data_description: str  # where the data and its splits come from, for the summary


def compose_shared(shared: SharedSettings, out_dir: Path) -> SharedConfig:
    """The plugin config composed for the data, with the shared settings applied."""

    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    dataset = dataset_of(shared.data)
    if dataset == "custom":
        folder = prepare_image_folder(
            Path(shared.data),
            out_dir / "datasets",
            val_fraction=shared.val_fraction,
            val_subset=shared.val_subset,
            seed=shared.seed,
        )
    config_name = BUILTIN_DATASETS.get(dataset, FOLDER_CONFIG)
    overrides = [f"augmentations={shared.augmentations}"] if shared.augmentations else []
    with initialize_config_module(config_module="frossl_plugin.configs", version_base="1.2"):
        cfg = compose(config_name=config_name, overrides=overrides + list(shared.overrides))
    OmegaConf.set_struct(cfg, False)

    if dataset == "custom":
        crop = shared.crop_size or min(folder.image_side, 224)
        cfg.data.dataset = "custom"
        cfg.data.train_path = str(folder.train)
        cfg.data.val_path = str(folder.val)
        cfg.data.eval_crop_size = crop
        for aug in cfg.augmentations:
            aug.crop_size = crop
        cfg.name = f"compare-{Path(shared.data).resolve().name}"
        data_description = f"{shared.data}: {folder.description}"
    else:
        data_root = Path(shared.data_root or out_dir / "datasets").expanduser().resolve()
        cfg.data.train_path = str(data_root)
        cfg.data.val_path = str(data_root)
        if shared.crop_size:
            for aug in cfg.augmentations:
                aug.crop_size = shared.crop_size
        cfg.name = f"compare-{dataset}"
        data_description = f"{dataset} from torchvision in {data_root} (validation: test split)"
    cfg.name += f"-{shared.epochs}ep"

    cfg.max_epochs = shared.epochs
    if not any(o.lstrip("+~").startswith("scheduler.warmup_epochs") for o in shared.overrides):
        # the host's default, 10 warm-up epochs, is made for runs of hundreds of epochs
        cfg.scheduler.warmup_epochs = min(10, shared.epochs // 10)
    cfg.seed = shared.seed
    for key, value in (
        ("optimizer.batch_size", shared.batch_size),
        ("backbone.name", shared.backbone),
        ("data.num_workers", shared.num_workers),
        ("accelerator", shared.accelerator),
        ("devices", shared.devices),
        ("strategy", shared.strategy),
        ("precision", shared.precision),
        ("num_nodes", shared.num_nodes),
        ("limit_train_batches", shared.limit_train_batches),
        ("limit_val_batches", shared.limit_val_batches),
    ):
        if value is not None:
            OmegaConf.update(cfg, key, value, force_add=True)
    cfg.knn_eval.enabled = shared.knn
    cfg.auto_resume.enabled = False  # an unfinished method restarts from scratch
    cfg.checkpoint.dir = "trained_models"
    cfg.enable_progress_bar = False  # the comparison shows its own
    cfg.epoch_stats = {"enabled": True, "path": "epoch_stats.jsonl"}
    cfg.spectrum_monitor = {
        "enabled": shared.spectrum_every > 0,
        "frequency": max(shared.spectrum_every, 1),
        "num_samples": shared.spectrum_samples,
        "dir": "spectrum",
        "seed": 0,
    }
    return SharedConfig(cfg, config_name, data_description)


def parse_method_overrides(items: List[str]) -> Dict[str, List[tuple]]:
    """``["barlow_twins:method_kwargs.scale_loss=0.05", ...]`` -> ``{method: [(key, value)]}``
    with YAML-parsed values."""

    parsed: Dict[str, List[tuple]] = {}
    for item in items:
        method, sep, assignment = item.partition(":")
        key, eq, value = assignment.partition("=")
        if not sep or not eq or not method or not key:
            raise ValueError(
                f"--method-override {item!r} must look like METHOD:KEY=VALUE, e.g. "
                "barlow_twins:method_kwargs.scale_loss=0.05."
            )
        parsed.setdefault(method, []).append((key, yaml.safe_load(value)))
    return parsed


def method_config(
    shared_cfg, method: str, host_root: Optional[Path], overrides: List[tuple], base_name: str = ""
):
    """``shared_cfg`` with ``method``'s own settings; returns ``(config, settings source)``."""

    from omegaconf import OmegaConf

    cfg = copy.deepcopy(shared_cfg)
    cfg.method = method
    if method == FROSSL:
        source = f"plugin config {base_name}.yaml".replace(" .yaml", "")
    else:
        try:
            settings = method_settings(host_root, cfg.data.dataset, method)
        except ValueError:
            if not any(key.startswith("method_kwargs") for key, _ in overrides):
                raise
            settings = {"method_kwargs": {}, "source": "--method-override"}
        cfg.method_kwargs = settings["method_kwargs"]
        if "momentum" in settings:
            cfg.momentum = settings["momentum"]
        source = settings["source"]
    for key, value in overrides:
        OmegaConf.update(cfg, key, value, force_add=True)
    if overrides:
        source += " + --method-override"
    return cfg, source


def config_yaml(cfg, header: str) -> str:
    """A stand-alone Hydra config: ``cfg`` plus the plugin's Hydra callback and run settings."""

    from omegaconf import OmegaConf

    body = OmegaConf.to_container(cfg, resolve=False)
    document = {
        "defaults": [
            "_self_",
            {"override hydra/hydra_logging": "disabled"},
            {"override hydra/job_logging": "disabled"},
        ],
        "hydra": copy.deepcopy(HYDRA_SECTION),
        **body,
    }
    lines = "".join(f"# {line}\n" for line in header.splitlines())
    return lines + yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
