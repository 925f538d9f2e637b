"""A minimal solo-learn method config and batches, for building methods in tests (host needed)."""

from typing import Any, Dict, Optional, Sequence

import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import Dataset


def method_cfg(
    method: str,
    backbone: str,
    backbone_kwargs: Optional[Dict[str, Any]] = None,
    method_kwargs: Optional[Dict[str, Any]] = None,
    batch_size: int = 4,
    num_classes: int = 5,
    optimizer: str = "lars",
    lr: float = 0.3,
    momentum: bool = False,
) -> DictConfig:
    """The keys ``BaseMethod`` reads, with the rest left to the host's defaults (CPU, 1 device)."""

    cfg = {
        "name": "test",
        "method": method,
        "backbone": {"name": backbone, "kwargs": dict(backbone_kwargs or {})},
        "method_kwargs": dict(method_kwargs or {}),
        "data": {
            "dataset": "custom",
            "train_path": ".",
            "val_path": ".",
            "format": "image_folder",
            "num_workers": 0,
            "num_large_crops": 2,
            "num_small_crops": 0,
            "num_classes": num_classes,
        },
        "optimizer": {
            "name": optimizer,
            "batch_size": batch_size,
            "lr": lr,
            "classifier_lr": 0.1,
            "weight_decay": 1e-5,
            "kwargs": {"momentum": 0.9} if optimizer in ("lars", "sgd") else {},
        },
        "scheduler": {"name": "none"},
        "checkpoint": {"enabled": False},
        "auto_resume": {"enabled": False},
        "max_epochs": 1,
        "devices": "1",
        "accelerator": "cpu",
        "num_nodes": 1,
    }
    if momentum:
        cfg["momentum"] = {"base_tau": 0.99, "final_tau": 1.0}
    cfg = OmegaConf.create(cfg)
    OmegaConf.set_struct(cfg, False)
    return cfg


class TwoViewDataset(Dataset):
    """``count`` fixed random samples in the host's pretraining format: item ``i`` is
    ``(i, [x1_i, x2_i], y_i)``, so a DataLoader yields ``[indexes, [X1, X2], targets]``."""

    def __init__(self, count: int, shape: Sequence[int], num_classes: int = 5, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        self.views = torch.randn(2, count, *shape, generator=generator)  # (2, count, *shape)
        self.targets = torch.arange(count) % num_classes

    def __len__(self) -> int:
        return self.views.size(1)

    def __getitem__(self, index: int):
        return index, [self.views[0, index], self.views[1, index]], self.targets[index]
