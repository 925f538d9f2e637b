"""The demo dataset: real digits as an image folder, written once and never over existing files."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from frossl_plugin.cli import main as cli_main
from frossl_plugin.demo_data import write_digits_image_folder

sklearn_datasets = pytest.importorskip("sklearn.datasets", reason="pip install .[test]")


def test_layout_counts_and_pixels(demo_data):
    train = sorted(demo_data.glob("train/*/*.png"))
    val = sorted(demo_data.glob("val/*/*.png"))
    assert (len(train), len(val)) == (1437, 360)
    assert sorted(p.name for p in (demo_data / "train").iterdir()) == [str(d) for d in range(10)]
    # stratified: every class is in both splits in proportion
    for digit in range(10):
        n_train = len(list((demo_data / "train" / str(digit)).glob("*.png")))
        n_val = len(list((demo_data / "val" / str(digit)).glob("*.png")))
        assert 0.15 < n_val / (n_train + n_val) < 0.25
    # the image is the scan: index 0000 is digit 0 and matches the 8x8 source when shrunk back
    digits = sklearn_datasets.load_digits()
    path = next(p for p in train + val if p.name == "0000.png")
    assert path.parent.name == str(digits.target[0])
    image = Image.open(path)
    assert image.size == (32, 32) and image.mode == "RGB"
    shrunk = np.asarray(image.convert("L").resize((8, 8), Image.Resampling.BOX), dtype=float)
    assert np.corrcoef(shrunk.ravel(), digits.images[0].ravel())[0, 1] > 0.9


def test_rewriting_a_complete_copy_keeps_it(demo_data):
    before = {p: p.stat().st_mtime_ns for p in demo_data.rglob("*.png")}
    assert write_digits_image_folder(demo_data) == {"train": 1437, "val": 360}
    assert {p: p.stat().st_mtime_ns for p in demo_data.rglob("*.png")} == before


def test_refuses_a_folder_with_other_content(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        write_digits_image_folder(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"val_fraction": 0.0}, "val_fraction must be in"),
        ({"val_fraction": 1.5}, "val_fraction must be in"),
        ({"image_size": 4}, "image_size must be an integer >= 8"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_digits_image_folder(tmp_path / "out", **kwargs)


def test_cli_reports_errors_with_a_non_zero_exit(tmp_path, capsys):
    (tmp_path / "other.txt").write_text("x")
    assert cli_main(["demo-data", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err


def test_console_script(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "frossl_plugin.cli",
            "demo-data",
            str(tmp_path / "d"),
            "--val-fraction",
            "0.5",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "898 train, 899 val" in result.stdout
