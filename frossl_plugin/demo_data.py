"""A small real image dataset that needs no download: scikit-learn's handwritten digits.

1,797 scans of 8x8 grey levels (0-16), ten classes, written as 32x32 RGB PNGs in the
``ImageFolder`` layout the host reads as ``data.dataset: custom``::

    DIR/train/<digit>/<index>.png
    DIR/val/<digit>/<index>.png
"""

from pathlib import Path
from typing import Dict

DEMO_IMAGE_SIZE = 32


def write_digits_image_folder(
    root, val_fraction: float = 0.2, image_size: int = DEMO_IMAGE_SIZE, seed: int = 0
) -> Dict[str, int]:
    """Writes the digits as a train/val image folder under ``root``.

    The split is stratified and fixed by ``seed``. Existing files are never overwritten: a
    complete earlier copy is kept as it is, and a non-empty ``root`` that does not hold one
    is refused.

    Args:
        root: destination folder.
        val_fraction (float): share of each class kept for validation, in (0, 1).
        image_size (int): side of the square PNGs, >= 8.
        seed (int): seed of the split.

    Returns:
        Dict[str, int]: number of images per split.
    """

    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), but found {val_fraction}.")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image_size must be an integer >= 8, but found {image_size!r}.")
    try:
        import numpy as np
        from PIL import Image
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as err:
        from frossl_plugin import install_hint

        raise ImportError(
            f"demo-data needs scikit-learn and Pillow: {install_hint('demo')}"
        ) from err

    root = Path(root)
    digits = load_digits()
    train_idx, val_idx = train_test_split(
        np.arange(len(digits.target)),
        test_size=val_fraction,
        stratify=digits.target,
        random_state=seed,
    )
    splits = {"train": train_idx, "val": val_idx}
    expected = {split: len(idx) for split, idx in splits.items()}

    existing = {split: len(list((root / split).glob("*/*.png"))) for split in splits}
    if existing == expected:
        return expected
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(
            f"{str(root)!r} is not empty and does not hold a complete demo dataset "
            f"(found {existing} images, expected {expected}); choose an empty folder."
        )

    for split, indices in splits.items():
        for index in indices:
            label = int(digits.target[index])
            grey = (digits.images[index] * (255.0 / 16.0)).astype(np.uint8)  # 8 x 8
            image = Image.fromarray(grey, mode="L").resize(
                (image_size, image_size), Image.Resampling.BILINEAR
            )
            folder = root / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            image.convert("RGB").save(folder / f"{index:04d}.png")
    return expected
