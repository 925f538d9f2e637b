"""Checks, before the host builds its loaders, that a plugin config's data is there.

Without this, a missing CIFAR-10 on a machine without network ends in a raw ``URLError`` deep in
torchvision, after the host has made an empty ``datasets/`` folder. Here the torchvision datasets
(cifar10, cifar100, stl10) are looked for where the host will look (``data.train_path`` /
``data.val_path``) and downloaded exactly as the host would; image folders must exist. A failure
names the dataset, the folder and the override that points elsewhere, and removes only the
folders this check itself created.
"""

import shutil
from pathlib import Path
from typing import List, Optional

from omegaconf import DictConfig, OmegaConf

# dataset -> (torchvision class, keyword arguments of each split the host reads)
TORCHVISION_DATASETS = {
    "cifar10": ("CIFAR10", ({"train": True}, {"train": False})),
    "cifar100": ("CIFAR100", ({"train": True}, {"train": False})),
    "stl10": ("STL10", ({"split": "train"}, {"split": "test"})),
}
PATH_KEYS = ("data.train_path", "data.val_path")


class DataNotFoundError(ValueError):
    """The configured data is neither on disk nor downloadable."""


def _missing_parents(path: Path) -> List[Path]:
    """``path`` and its ancestors that do not exist yet, deepest first."""

    missing = []
    for candidate in (path, *path.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    return missing


def _remove_if_empty(folders: List[Path]) -> None:
    for folder in folders:  # deepest first
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _download_or_fail(dataset: str, key: str, root: Path, split_kwargs: dict) -> None:
    import torchvision

    class_name = TORCHVISION_DATASETS[dataset][0]
    dataset_class = getattr(torchvision.datasets, class_name)
    try:
        dataset_class(str(root), download=False, **split_kwargs)
        return
    except RuntimeError:  # torchvision: "Dataset not found or corrupted"
        pass
    created = _missing_parents(root)
    before = set(root.iterdir()) if root.is_dir() else set()
    try:
        dataset_class(str(root), download=True, **split_kwargs)
    except Exception as err:
        written = set(root.iterdir()) - before if root.is_dir() else set()
        for partial in written:  # a half-written archive of this attempt, never older files
            if partial.is_dir():
                shutil.rmtree(partial)
            else:
                partial.unlink()
        _remove_if_empty(created)
        raise DataNotFoundError(
            f"data.dataset={dataset}: not found in {str(root)!r} ({key}), and torchvision could "
            f"not download it ({type(err).__name__}: {err}). Put the dataset there, or point "
            f"{key}=<folder that holds it> at another copy."
        ) from err


def check_data(cfg: DictConfig) -> Optional[str]:
    """Makes sure the data ``cfg`` asks for can be read, before the host builds loaders.

    Returns:
        Optional[str]: the dataset checked, or None when the config names no data.

    Raises:
        DataNotFoundError: naming the dataset, the folder looked in and the override to set.
    """

    dataset = OmegaConf.select(cfg, "data.dataset", default=None)
    if dataset is None:
        return None
    paths = {key: OmegaConf.select(cfg, key, default=None) for key in PATH_KEYS}
    if dataset in TORCHVISION_DATASETS:
        for key, split_kwargs in zip(PATH_KEYS, TORCHVISION_DATASETS[dataset][1]):
            if paths[key] is None:
                raise DataNotFoundError(
                    f"data.dataset={dataset}: {key} is not set; the host would then use a folder "
                    f"inside its own checkout. Set {key}=<folder for {dataset}>."
                )
            _download_or_fail(dataset, key, Path(paths[key]).expanduser().resolve(), split_kwargs)
        return dataset
    for key, path in paths.items():
        if path is None:
            continue  # e.g. pretraining without validation
        folder = Path(path).expanduser().resolve()
        if not folder.exists():
            hint = (
                " Write the demo data with: frossl-plugin demo-data datasets/frossl_demo."
                if "frossl_demo" in str(path)
                else ""
            )
            raise DataNotFoundError(
                f"data.dataset={dataset}: {key}={path!r} does not exist ({str(folder)!r})."
                f" Point {key}=<folder> at the data.{hint}"
            )
    return dataset
