"""The ``train/`` + ``val/`` image folder the host reads, made from the layouts users have.

Accepted layouts of ``--data DIR``:

- ``DIR/train/<class>/*`` with ``DIR/val/`` (or ``valid/``, ``validation/``, ``test/``);
- ``DIR/<class>/*`` only: split per class, with a seed, into train and val.

Both splits must hold the same class names, because the host's ``ImageFolder`` numbers classes
by their sorted names in each split. A split or a smaller validation set (``--val-subset``) is
made of symbolic links under ``OUT/datasets``; the user's files are never moved or changed.
"""

import json
import math
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from PIL import Image

# torchvision.datasets.folder.IMG_EXTENSIONS
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
VAL_NAMES = ("val", "valid", "validation", "test")


@dataclass
class FolderSplit:
    train: Path
    val: Path
    description: str  # how the split was obtained, for the summary
    image_side: int  # smaller side of the first training image (the default crop size)


def _images(folder: Path) -> List[Path]:
    return sorted(
        path
        for path in folder.rglob("*")
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
    )


def class_images(split: Path) -> Dict[str, List[Path]]:
    """``class name -> its images`` for every subfolder of ``split`` (as ``ImageFolder``)."""

    return {
        entry.name: _images(entry)
        for entry in sorted(split.iterdir(), key=lambda p: p.name)
        if entry.is_dir()
    }


def _check_classes(train: Dict[str, List[Path]], val: Dict[str, List[Path]], root: Path):
    if not train:
        raise ValueError(f"--data {str(root)!r}: the training split has no class subfolders.")
    empty = [name for name, images in {**train, **val}.items() if not images]
    if empty:
        raise ValueError(
            f"--data {str(root)!r}: class folders without images {empty[:10]}; every class "
            f"folder needs at least one image ({', '.join(IMAGE_SUFFIXES)})."
        )
    if sorted(train) != sorted(val):
        raise ValueError(
            f"--data {str(root)!r}: train and val must have the same class folders (class "
            f"indices come from the sorted names), but only train has "
            f"{sorted(set(train) - set(val))[:10]} and only val has "
            f"{sorted(set(val) - set(train))[:10]}."
        )


def _link_tree(files: Dict[str, List[Path]], target: Path, manifest: dict) -> Path:
    """Symbolic links ``target/<class>/<file>``; reused when ``manifest`` matches."""

    manifest_path = target / "split.json"
    if manifest_path.is_file() and json.loads(manifest_path.read_text()) == manifest:
        return target
    if target.exists():
        # only a folder this module made (it holds our manifest) is replaced
        if not manifest_path.is_file():
            raise ValueError(f"{str(target)!r} exists and was not made by compare; move it away.")
        shutil.rmtree(target)  # links only: their targets are left alone
    for name, images in files.items():
        (target / name).mkdir(parents=True, exist_ok=True)
        for index, image in enumerate(images):
            # the index keeps names unique when a class has nested folders
            os.symlink(image.resolve(), target / name / f"{index:06d}_{image.name}")
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return target


def _seeded_shuffle(images: List[Path], seed: int, name: str) -> List[Path]:
    shuffled = list(images)
    random.Random(f"{seed}-{name}").shuffle(shuffled)
    return shuffled


def _split_per_class(
    classes: Dict[str, List[Path]], val_fraction: float, seed: int
) -> Dict[str, Dict[str, List[Path]]]:
    train, val = {}, {}
    for name, images in classes.items():
        if len(images) < 2:
            raise ValueError(
                f"class {name!r} has {len(images)} image; splitting into train and val needs "
                "at least 2 per class."
            )
        shuffled = _seeded_shuffle(images, seed, name)
        num_val = min(max(1, round(val_fraction * len(images))), len(images) - 1)
        val[name] = sorted(shuffled[:num_val])
        train[name] = sorted(shuffled[num_val:])
    return {"train": train, "val": val}


def _subset_per_class(
    classes: Dict[str, List[Path]], total: int, seed: int
) -> Dict[str, List[Path]]:
    """About ``total`` images, the same number from every class (as far as each has them)."""

    per_class = max(1, math.ceil(total / len(classes)))
    subset = {}
    for name, images in classes.items():
        subset[name] = sorted(_seeded_shuffle(images, seed, name)[:per_class])
    return subset


def prepare_image_folder(
    root: Path,
    datasets_dir: Path,
    val_fraction: float = 0.1,
    val_subset: Optional[int] = None,
    seed: int = 0,
) -> FolderSplit:
    """The train and val folders of ``root`` (see the module docstring), checked."""

    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise ValueError(f"--data {str(root)!r} is not a folder.")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"--val-fraction must be in (0, 1), but found {val_fraction}.")
    if val_subset is not None and val_subset < 1:
        raise ValueError(f"--val-subset must be >= 1 images, but found {val_subset}.")

    if (root / "train").is_dir():
        val_dir = next((root / n for n in VAL_NAMES if (root / n).is_dir()), None)
        if val_dir is None:
            raise ValueError(
                f"--data {str(root)!r} has train/ but none of {list(VAL_NAMES)}; add a "
                "validation folder, or point --data at a folder of class subfolders to split it."
            )
        train_dir, train, val = root / "train", class_images(root / "train"), class_images(val_dir)
        _check_classes(train, val, root)
        description = f"{train_dir.name}/ and {val_dir.name}/ of the folder"
    else:
        classes = class_images(root)
        loose = [p.name for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES][:5]
        if not classes or loose:
            raise ValueError(
                f"--data {str(root)!r} must be one of cifar10, cifar100, stl10, a folder with "
                f"train/ and val/ subfolders, or a folder of class subfolders (found "
                f"{len(classes)} subfolders and images {loose} directly inside it)."
            )
        split = _split_per_class(classes, val_fraction, seed)  # same classes, none empty
        name = f"{root.name}-split{val_fraction:g}-seed{seed}"
        manifest = {"source": str(root), "val_fraction": val_fraction, "seed": seed}
        train_dir = _link_tree(split["train"], datasets_dir / name / "train", manifest)
        val_dir = _link_tree(split["val"], datasets_dir / name / "val", manifest)
        train, val = split["train"], split["val"]
        description = (
            f"class folders split per class with seed {seed}: "
            f"{sum(map(len, train.values()))} train, {sum(map(len, val.values()))} val images"
        )

    if val_subset is not None and val_subset < sum(map(len, val.values())):
        subset = _subset_per_class(val, val_subset, seed)
        manifest = {"source": str(val_dir), "val_subset": val_subset, "seed": seed}
        val_dir = _link_tree(
            subset, datasets_dir / f"{root.name}-val{val_subset}-seed{seed}", manifest
        )
        description += f"; validation subset of {sum(map(len, subset.values()))} images"
    first_image = next(image for images in train.values() for image in images)
    with Image.open(first_image) as image:
        side = min(image.size)
    return FolderSplit(train=train_dir, val=val_dir, description=description, image_side=side)
