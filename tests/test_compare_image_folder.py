"""Image-folder layouts accepted by ``frossl-plugin compare`` (no host needed)."""

import os
import shutil
from pathlib import Path

import pytest
from helpers import write_tiny_image_folder

from frossl_plugin.compare.image_folder import class_images, prepare_image_folder


def _flat_folder(root: Path, counts) -> Path:
    """``root/<class>/*.png`` with ``counts[i]`` images in class i (no train/val split)."""

    write_tiny_image_folder(root / "tmp", classes=len(counts), train_per_class=max(counts), size=8)
    for label, count in enumerate(counts):
        (root / f"class{label}").mkdir(parents=True)
        for index in range(count):
            shutil.copy(
                root / "tmp" / "train" / f"class{label}" / f"{index}.png",
                root / f"class{label}" / f"img{index}.png",
            )
    shutil.rmtree(root / "tmp")
    return root


def _files(folder: Path):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_train_and_val_folders_are_used_as_they_are(tmp_path):
    data = write_tiny_image_folder(tmp_path / "data", classes=3, size=8)
    split = prepare_image_folder(data, tmp_path / "out")
    assert split.train == data.resolve() / "train" and split.val == data.resolve() / "val"
    assert not (tmp_path / "out").exists()


def test_test_folder_serves_as_validation(tmp_path):
    data = write_tiny_image_folder(tmp_path / "data", classes=3, size=8)
    (data / "val").rename(data / "test")
    split = prepare_image_folder(data, tmp_path / "out")
    assert split.val == data.resolve() / "test" and "test/" in split.description


def test_train_without_any_validation_folder_is_refused(tmp_path):
    data = write_tiny_image_folder(tmp_path / "data", classes=2, size=8)
    shutil.rmtree(data / "val")
    with pytest.raises(ValueError, match=r"has train/ but none of \['val', 'valid'"):
        prepare_image_folder(data, tmp_path / "out")


def test_different_classes_in_train_and_val_are_refused(tmp_path):
    # ImageFolder numbers classes by sorted name per split: a missing class shifts every label
    data = write_tiny_image_folder(tmp_path / "data", classes=3, size=8)
    shutil.rmtree(data / "val" / "class1")
    with pytest.raises(ValueError, match=r"only train has \['class1'\] and only val has \[\]"):
        prepare_image_folder(data, tmp_path / "out")


def test_empty_class_folder_is_refused(tmp_path):
    data = write_tiny_image_folder(tmp_path / "data", classes=2, size=8)
    (data / "train" / "extra").mkdir()
    (data / "val" / "extra").mkdir()
    with pytest.raises(ValueError, match=r"class folders without images \['extra'"):
        prepare_image_folder(data, tmp_path / "out")


def test_class_folders_are_split_per_class_with_the_seed(tmp_path):
    data = _flat_folder(tmp_path / "flat", [10, 20, 3])
    before = _files(data)
    split = prepare_image_folder(data, tmp_path / "out", val_fraction=0.2, seed=3)
    train, val = class_images(split.train), class_images(split.val)
    assert sorted(train) == sorted(val) == ["class0", "class1", "class2"]
    assert {name: len(images) for name, images in val.items()} == {
        "class0": 2,
        "class1": 4,
        "class2": 1,  # at least one per class
    }
    for name in train:
        targets = [os.path.realpath(p) for p in train[name] + val[name]]
        originals = sorted(str(p.resolve()) for p in (data / name).iterdir())
        assert sorted(targets) == originals  # disjoint, and together every image once
        assert all(p.is_symlink() for p in train[name] + val[name])
    assert _files(data) == before  # the user's folder is untouched
    assert "class folders split per class with seed 3: 26 train, 7 val images" in split.description

    again = prepare_image_folder(data, tmp_path / "out", val_fraction=0.2, seed=3)
    assert again == split and class_images(again.val) == val
    other = prepare_image_folder(data, tmp_path / "out", val_fraction=0.2, seed=4)
    assert other.val != split.val
    assert class_images(other.val) != val


def test_split_needs_two_images_per_class(tmp_path):
    data = _flat_folder(tmp_path / "flat", [4, 1])
    with pytest.raises(ValueError, match="class 'class1' has 1 image"):
        prepare_image_folder(data, tmp_path / "out")


def test_validation_subset_is_class_balanced(tmp_path):
    data = write_tiny_image_folder(tmp_path / "data", classes=4, val_per_class=6, size=8)
    split = prepare_image_folder(data, tmp_path / "out", val_subset=8, seed=0)
    counts = {name: len(images) for name, images in class_images(split.val).items()}
    assert counts == {"class0": 2, "class1": 2, "class2": 2, "class3": 2}
    assert split.train == data.resolve() / "train"
    assert "validation subset of 8 images" in split.description
    # a subset at least as large as val keeps val itself
    assert prepare_image_folder(data, tmp_path / "out", val_subset=24).val == data.resolve() / "val"


def test_a_folder_in_the_way_is_never_replaced(tmp_path):
    data = _flat_folder(tmp_path / "flat", [3, 3])
    mine = tmp_path / "out" / "flat-split0.1-seed0" / "train"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="was not made by compare"):
        prepare_image_folder(data, tmp_path / "out")
    assert (mine / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"val_fraction": 0.0}, r"--val-fraction must be in \(0, 1\), but found 0.0"),
        ({"val_fraction": 1.0}, r"--val-fraction must be in \(0, 1\), but found 1.0"),
        ({"val_subset": 0}, "--val-subset must be >= 1 images, but found 0"),
    ],
)
def test_bad_split_settings_are_refused(tmp_path, kwargs, message):
    data = write_tiny_image_folder(tmp_path / "data", classes=2, size=8)
    with pytest.raises(ValueError, match=message):
        prepare_image_folder(data, tmp_path / "out", **kwargs)


def test_loose_images_or_missing_folder_are_refused(tmp_path):
    data = _flat_folder(tmp_path / "flat", [2, 2])
    shutil.copy(data / "class0" / "img0.png", data / "stray.png")
    with pytest.raises(ValueError, match=r"images \['stray.png'\] directly inside it"):
        prepare_image_folder(data, tmp_path / "out")
    with pytest.raises(ValueError, match="is not a folder"):
        prepare_image_folder(tmp_path / "missing", tmp_path / "out")
