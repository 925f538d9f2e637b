"""The ``train/`` + ``val/`` image folder the host reads, made from the layouts users have.

Accepted layouts of ``--data DIR``:

- ``DIR/train/<class>/*`` with ``DIR/val/`` (or ``valid/``, ``validation/``, ``test/``);
- ``DIR/<class>/*`` only: split stratified by class, with a seed, into train and val.

Both splits must hold the same class names, because the host's ``ImageFolder`` numbers classes
by their sorted names in each split. A split or a smaller validation set (``--val-subset``) is
made of symbolic links under ``OUT/datasets``; the user's files are never moved or changed.
Each link folder's ``split.json`` records the listing it was made from (paths, sizes and
modification times, as a digest): it is reused while the listing is the same, and made anew
when images were added, removed or changed.
"""

import hashlib
import json
import math
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from PIL import Image

# torchvision.datasets.folder.IMG_EXTENSIONS
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
VAL_NAMES = ("val", "valid", "validation", "test")
MANIFEST = "split.json"  # in every link folder made here: what it was made from


@dataclass
class FolderSplit:
    train: Path
    val: Path
    description: str  # how the split was obtained, for the summary
    image_side: int  # smaller side of the first training image (the default crop size)
    content: str = ""  # digest of the train and val images used (see content_digest)


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


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _counts(files: Dict[str, List[Path]]) -> Dict[str, int]:
    return {name: len(images) for name, images in files.items()}


def content_digest(files: Dict[str, List[Path]], root: Path) -> str:
    """SHA-256 of the listing ``files``: class, path relative to ``root``, size and mtime of each.

    Adding, removing, renaming or rewriting an image changes it, so a link folder made from an
    earlier listing is never taken for the current one.

    Args:
        files: ``class name -> its images``.
        root: the folder the paths are recorded relative to (the user's ``--data`` folder).

    Returns:
        The digest as 64 hexadecimal characters.
    """

    digest = hashlib.sha256()
    for name in sorted(files):
        for image in files[name]:
            stat = image.stat()
            try:
                relative = image.relative_to(root).as_posix()
            except ValueError:  # not under root: the absolute path identifies it
                relative = str(image)
            digest.update(f"{name}\t{relative}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _link_tree(files: Dict[str, List[Path]], target: Path, manifest: dict) -> Tuple[Path, str]:
    """Symbolic links ``target/<class>/<file>``, reused when their manifest equals ``manifest``.

    ``manifest`` must identify the content (see :func:`content_digest`); the per-class counts of
    ``files`` are added to it. A folder holding a different manifest was made here and is
    replaced (links only: the files they point to are left alone); any other folder in the way
    is refused.

    Returns:
        ``target`` and what was done: ``"reused"``, ``"made"`` or ``"remade"``.
    """

    manifest = {**manifest, "counts": _counts(files)}
    manifest_path = target / MANIFEST
    if manifest_path.is_file():
        try:
            found = json.loads(manifest_path.read_text())
        except ValueError:  # an unreadable manifest of ours: made anew below
            found = None
        if found == manifest:
            return target, "reused"
    if target.exists() or target.is_symlink():
        # only a folder this module made (it holds our manifest) is replaced
        if not manifest_path.is_file():
            raise ValueError(
                f"{str(target)!r} exists and was not made by compare (it has no {MANIFEST}); "
                "move it away."
            )
        shutil.rmtree(target)  # links only: their targets are left alone
        action = "remade"
    else:
        action = "made"
    target.mkdir(parents=True)
    # ours from the start: a build stopped half-way is replaced by the next call, not refused
    manifest_path.write_text(json.dumps({"incomplete": True}))
    for name, images in files.items():
        (target / name).mkdir()
        for index, image in enumerate(images):
            # the index keeps names unique when a class has nested folders
            os.symlink(image.resolve(), target / name / f"{index:06d}_{image.name}")
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return target, action


def _sklearn_train_test_split():
    try:
        from sklearn.model_selection import train_test_split
    except ImportError as err:
        from frossl_plugin import install_hint

        raise ImportError(
            f"splitting a folder of class subfolders needs scikit-learn: {install_hint('compare')}"
        ) from err
    return train_test_split


def split_classes(
    classes: Dict[str, List[Path]], parts: Dict[str, float], seed: int, rest: str = "train"
) -> Dict[str, Dict[str, List[Path]]]:
    """Split every class's images into named parts, stratified by class, with a seed.

    The parts are carved in the order of ``parts``, each with scikit-learn's stratified
    ``train_test_split``, and ``rest`` keeps what is left. Each part holds about its fraction
    of every class, and at least one image of every class, as does ``rest``, so every part has
    the same classes. For example ``{"val": 0.1}`` gives ``{"train": ..., "val": ...}``; a
    further part (``{"val": 0.1, "selection": 0.1}``) is carved from what ``val`` left.

    Args:
        classes: ``class name -> its images`` (sorted, as :func:`class_images` returns them).
        parts: ``part name -> fraction of every class``; the fractions sum to less than 1.
        seed: the ``random_state`` of every carve.
        rest: name of the part with the remaining images.

    Returns:
        ``part name -> class name -> sorted images``, ``rest`` first; the parts are disjoint and
        together hold every image once.

    Raises:
        ValueError: for a bad fraction or part name, or a class with fewer images than parts.
        ImportError: if scikit-learn is not installed.
    """

    if not classes:
        raise ValueError("split_classes: expected at least one class, but found none.")
    names = [rest, *parts]
    if not parts or len(set(names)) != len(names):
        raise ValueError(f"parts {list(parts)}: expected distinct names other than {rest!r}.")
    if any(not 0.0 < fraction < 1.0 for fraction in parts.values()) or sum(parts.values()) >= 1:
        raise ValueError(f"parts {parts}: expected fractions in (0, 1) that sum to less than 1.")
    for name, images in classes.items():
        if len(images) < len(names):
            raise ValueError(
                f"class {name!r} has {_plural(len(images), 'image')}; splitting into "
                f"{', '.join(names[:-1])} and {names[-1]} needs at least {len(names)} per class."
            )
    train_test_split = _sklearn_train_test_split()
    total = sum(map(len, classes.values()))
    remaining = {name: list(images) for name, images in classes.items()}
    split = {}
    for step, (part, fraction) in enumerate(parts.items()):
        later = len(parts) - step - 1  # parts still to carve from what this one leaves
        items = [(name, image) for name, images in remaining.items() for image in images]
        # sklearn's stratified split needs a share of at least one per class on both sides
        size = round(fraction * total)
        size = min(max(size, len(classes)), len(items) - len(classes) * (later + 1))
        kept, carved = train_test_split(
            items, test_size=size, stratify=[name for name, _ in items], random_state=seed
        )
        kept_by, carved_by = {name: [] for name in remaining}, {name: [] for name in remaining}
        for grouped, pairs in ((kept_by, kept), (carved_by, carved)):
            for name, image in pairs:
                grouped[name].append(image)
        for name in remaining:  # a small class may get none: move one in, or back
            if not carved_by[name]:
                carved_by[name].append(kept_by[name].pop(0))
            while len(kept_by[name]) < later + 1:
                kept_by[name].append(carved_by[name].pop(0))
        split[part] = {name: sorted(images) for name, images in carved_by.items()}
        remaining = kept_by
    return {rest: {name: sorted(images) for name, images in remaining.items()}, **split}


def _seeded_shuffle(images: List[Path], seed: int, name: str) -> List[Path]:
    shuffled = list(images)
    random.Random(f"{seed}-{name}").shuffle(shuffled)
    return shuffled


def _subset_per_class(
    classes: Dict[str, List[Path]], total: int, seed: int
) -> Dict[str, List[Path]]:
    """About ``total`` images, the same number from every class (as far as each has them)."""

    per_class = max(1, math.ceil(total / len(classes)))
    subset = {}
    for name, images in classes.items():
        subset[name] = sorted(_seeded_shuffle(images, seed, name)[:per_class])
    return subset


def _remade_note(actions: Tuple[str, ...], what: str) -> str:
    return f" ({what} anew: the folder's images changed)" if "remade" in actions else ""


def prepare_image_folder(
    root: Path,
    datasets_dir: Path,
    val_fraction: float = 0.1,
    val_subset: Optional[int] = None,
    seed: int = 0,
) -> FolderSplit:
    """The train and val folders of ``root`` (see the module docstring), checked.

    Args:
        root: the ``--data`` folder.
        datasets_dir: where link folders are made (``OUT/datasets``).
        val_fraction: share of every class held out for validation when ``root`` is split.
        val_subset: validate on about this many images, equally many per class.
        seed: seed of the split and of the validation subset.

    Returns:
        The folders to train and validate on, and a description whose counts are those of the
        folders returned.

    Raises:
        ValueError: for a layout that is not accepted, a bad setting, or a folder in the way
            that was not made here.
        ImportError: if splitting needs scikit-learn and it is not installed.
    """

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
        split = split_classes(classes, {"val": val_fraction}, seed)  # same classes, none empty
        name = f"{root.name}-split{val_fraction:g}-seed{seed}"
        # keyed by the listing: images added, removed or changed since give a new split
        manifest = {
            "source": str(root),
            "content": content_digest(classes, root),
            "val_fraction": val_fraction,
            "seed": seed,
        }
        train, val = split["train"], split["val"]
        train_dir, train_action = _link_tree(train, datasets_dir / name / "train", manifest)
        val_dir, val_action = _link_tree(val, datasets_dir / name / "val", manifest)
        description = (
            f"class folders split per class with seed {seed}: "
            f"{sum(map(len, train.values()))} train, {sum(map(len, val.values()))} val images"
            + _remade_note((train_action, val_action), "split")
        )

    used_val = val
    if val_subset is not None and val_subset < sum(map(len, val.values())):
        subset = used_val = _subset_per_class(val, val_subset, seed)
        manifest = {
            "source": str(val_dir),
            "content": content_digest(val, root),
            "val_subset": val_subset,
            "seed": seed,
        }
        val_dir, subset_action = _link_tree(
            subset, datasets_dir / f"{root.name}-val{val_subset}-seed{seed}", manifest
        )
        description += f"; validation subset of {sum(map(len, subset.values()))} images"
        description += _remade_note((subset_action,), "chosen")
    first_image = next(image for images in train.values() for image in images)
    with Image.open(first_image) as image:
        side = min(image.size)
    content = hashlib.sha256(
        f"{content_digest(train, root)} {content_digest(used_val, root)}".encode()
    ).hexdigest()[:16]
    return FolderSplit(
        train=train_dir, val=val_dir, description=description, image_side=side, content=content
    )


@dataclass
class SelectionSplit:
    """Training images split for hyper-parameter selection: train on ``train``, score on
    ``selection``; both are carved from the training images only, so the split that a comparison
    reports is never seen while choosing."""

    train: Path
    selection: Path
    description: str


def carve_selection(
    train_dir: Path, datasets_dir: Path, fraction: float, seed: int = 0
) -> SelectionSplit:
    """Holds out ``fraction`` of every class of ``train_dir`` as a selection split (stratified,
    scikit-learn), as symbolic links under ``datasets_dir``; reused while the images are the same.

    Raises:
        ValueError: for a fraction outside (0, 1) or a class with fewer than 2 images.
        ImportError: if scikit-learn is not installed.
    """

    if not 0.0 < fraction < 1.0:
        raise ValueError(f"--selection-fraction must be in (0, 1), but found {fraction}.")
    train_dir = Path(train_dir)
    classes = class_images(train_dir)
    if not classes:
        raise ValueError(f"{str(train_dir)!r} has no class subfolders to hold a selection out of.")
    digest = content_digest(classes, train_dir)
    parts = split_classes(classes, {"selection": fraction}, seed)
    manifest = {"source": str(train_dir), "content": digest, "fraction": fraction, "seed": seed}
    target = Path(datasets_dir) / f"selection{fraction:g}-seed{seed}-{digest[:8]}"
    train, _ = _link_tree(parts["train"], target / "train", manifest)
    selection, _ = _link_tree(parts["selection"], target / "selection", manifest)
    counts = [sum(map(len, parts[name].values())) for name in ("train", "selection")]
    description = (
        f"{counts[1]} of the {sum(counts)} training images held out per class with seed {seed} "
        f"(selection split; the reported validation split is never used to choose)"
    )
    return SelectionSplit(train=train, selection=selection, description=description)
