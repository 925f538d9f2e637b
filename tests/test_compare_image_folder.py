"""Image-folder layouts accepted by ``frossl-plugin compare`` (no host needed)."""

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from helpers import write_tiny_image_folder

from frossl_plugin.compare.image_folder import class_images, prepare_image_folder

SPLIT = "flat-split0.1-seed0"  # the link folder of _flat_folder's split at the defaults


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


def _originals(data: Path):
    return sorted(str(p.resolve()) for p in data.rglob("*.png"))


def _linked(folder: Path):
    """``class -> the real paths`` its links point to."""

    return {
        name: sorted(os.path.realpath(p) for p in images)
        for name, images in class_images(folder).items()
    }


def _counts(folder: Path):
    return {name: len(images) for name, images in class_images(folder).items()}


def _add_images(folder: Path, count: int, prefix: str = "new"):
    for index in range(count):
        shutil.copy(folder / "img0.png", folder / f"{prefix}{index}.png")


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


# --- a split is keyed by the listing it was made from ----------------------------------------


def test_a_grown_folder_is_split_anew_and_the_counts_are_those_used(tmp_path):
    data = _flat_folder(tmp_path / "flat", [6, 6])
    first = prepare_image_folder(data, tmp_path / "out")
    _add_images(data / "class1", 6)
    again = prepare_image_folder(data, tmp_path / "out")
    assert again.train == first.train  # our own link folders, replaced where they were
    train, val = _linked(again.train), _linked(again.val)
    assert sorted(sum(train.values(), []) + sum(val.values(), [])) == _originals(data)
    assert len(train["class1"]) + len(val["class1"]) == 12
    num_train, num_val = sum(map(len, train.values())), sum(map(len, val.values()))
    assert num_train + num_val == 18
    assert f"{num_train} train, {num_val} val images (split anew" in again.description


def test_the_manifest_follows_the_file_count_and_the_files(tmp_path):
    data = _flat_folder(tmp_path / "flat", [4, 4])
    manifest_path = tmp_path / "out" / SPLIT / "train" / "split.json"
    prepare_image_folder(data, tmp_path / "out")
    first = json.loads(manifest_path.read_text())

    (data / "class0" / "img3.png").unlink()
    prepare_image_folder(data, tmp_path / "out")
    fewer = json.loads(manifest_path.read_text())
    assert fewer != first
    train, val = _counts(tmp_path / "out" / SPLIT / "train"), _counts(
        tmp_path / "out" / SPLIT / "val"
    )
    assert train["class0"] + val["class0"] == 3 and fewer["counts"] == train

    # the same number of files, but one of them rewritten (another size)
    shutil.copy(data / "class1" / "img1.png", data / "class0" / "img0.png")
    with open(data / "class0" / "img0.png", "ab") as image:
        image.write(b"x")
    prepare_image_folder(data, tmp_path / "out")
    rewritten = json.loads(manifest_path.read_text())
    assert rewritten != fewer and rewritten["counts"] == fewer["counts"]


def test_an_unchanged_folder_reuses_its_split_and_a_touched_image_does_not(tmp_path):
    data = _flat_folder(tmp_path / "flat", [5, 5])
    split = prepare_image_folder(data, tmp_path / "out")
    manifests = [split.train / "split.json", split.val / "split.json"]
    links = [next((split.train / "class0").iterdir()), next((split.val / "class1").iterdir())]

    def stats(paths):
        return [(os.lstat(path).st_ino, os.lstat(path).st_mtime_ns) for path in paths]

    before = stats(manifests + links)
    again = prepare_image_folder(data, tmp_path / "out")
    assert stats(manifests + links) == before and again == split
    assert "anew" not in again.description

    image = data / "class0" / "img2.png"
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))
    touched = prepare_image_folder(data, tmp_path / "out")
    assert "(split anew: the folder's images changed)" in touched.description
    assert all(now != then for now, then in zip(stats(manifests), before))


def test_the_split_is_stratified_deterministic_disjoint_and_complete(tmp_path):
    data = _flat_folder(tmp_path / "flat", [25, 25, 25, 25, 2])
    split = prepare_image_folder(data, tmp_path / "out", val_fraction=0.1, seed=5)
    train, val = _linked(split.train), _linked(split.val)
    assert sorted(train) == sorted(val) == [f"class{i}" for i in range(5)]
    # about a tenth of every class, at least one image on each side for the smallest one
    counts = [len(val[f"class{i}"]) for i in range(4)]
    assert sorted(counts) == [2, 2, 3, 3]
    assert len(val["class4"]) == len(train["class4"]) == 1
    for name in train:
        assert not set(train[name]) & set(val[name])
        assert sorted(train[name] + val[name]) == _originals(data / name)

    def relative(folder):
        return {
            name: [os.path.relpath(p, data) for p in paths]
            for name, paths in _linked(folder).items()
        }

    same = prepare_image_folder(data, tmp_path / "other_out", val_fraction=0.1, seed=5)
    assert relative(same.val) == relative(split.val)
    other = prepare_image_folder(data, tmp_path / "other_out", val_fraction=0.1, seed=6)
    assert relative(other.val) != relative(split.val)


def test_split_classes_carves_named_disjoint_parts():
    from frossl_plugin.compare.image_folder import split_classes

    classes = {
        f"c{i}": [Path(f"c{i}/{j:03d}.png") for j in range(n)] for i, n in enumerate([3, 50, 30])
    }
    parts = split_classes(classes, {"val": 0.1, "selection": 0.2}, seed=0)
    assert list(parts) == ["train", "val", "selection"]
    for name, images in classes.items():
        held = [image for part in parts.values() for image in part[name]]
        assert sorted(held) == images  # disjoint, and together every image once
        assert all(part[name] for part in parts.values())  # every class in every part
    assert [len(parts["selection"][name]) for name in ("c1", "c2")] == [10, 6]
    assert split_classes(classes, {"val": 0.1, "selection": 0.2}, seed=0) == parts
    with pytest.raises(ValueError, match="sum to less than 1"):
        split_classes(classes, {"val": 0.5, "selection": 0.5}, seed=0)
    with pytest.raises(ValueError, match="expected distinct names other than 'train'"):
        split_classes(classes, {"train": 0.1}, seed=0)
    with pytest.raises(ValueError, match="class 'c0' has 3 images; splitting into train, val, "):
        split_classes(classes, {"val": 0.1, "selection": 0.1, "more": 0.1}, seed=0)


def test_the_validation_subset_follows_the_validation_folder(tmp_path):
    data = write_tiny_image_folder(tmp_path / "data", classes=2, val_per_class=6, size=8)
    subset = prepare_image_folder(data, tmp_path / "out", val_subset=4).val
    manifest = (subset / "split.json").read_text()
    assert prepare_image_folder(data, tmp_path / "out", val_subset=4).val == subset
    assert (subset / "split.json").read_text() == manifest

    Path(_linked(subset)["class0"][0]).unlink()  # an image of the subset, gone
    again = prepare_image_folder(data, tmp_path / "out", val_subset=4)
    assert again.val == subset and (subset / "split.json").read_text() != manifest
    assert all(os.path.exists(path) for paths in _linked(subset).values() for path in paths)
    assert _counts(subset) == {"class0": 2, "class1": 2}
    assert "validation subset of 4 images (chosen anew" in again.description


def test_splitting_without_scikit_learn_says_how_to_install_it(tmp_path, monkeypatch):
    data = _flat_folder(tmp_path / "flat", [3, 3])
    monkeypatch.setitem(sys.modules, "sklearn.model_selection", None)  # import fails
    with pytest.raises(
        ImportError, match=r"needs scikit-learn: pip install 'frossl-plugin\[compare\]'"
    ):
        prepare_image_folder(data, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_stale_split_never_replaces_a_folder_not_made_here(tmp_path):
    data = _flat_folder(tmp_path / "flat", [3, 3])
    split = prepare_image_folder(data, tmp_path / "out")
    (split.val / "split.json").unlink()  # no longer ours
    (split.val / "notes.txt").write_text("keep me")
    _add_images(data / "class0", 2)
    with pytest.raises(ValueError, match="was not made by compare"):
        prepare_image_folder(data, tmp_path / "out")
    assert (split.val / "notes.txt").read_text() == "keep me"


def test_the_content_digest_follows_the_images_used(tmp_path):
    """compare passes it to every job (data.content_digest): it is part of the jobs' identity."""

    root = _flat_folder(tmp_path / "flat", [20, 20])
    first = prepare_image_folder(root, tmp_path / "out")
    assert len(first.content) == 16
    assert prepare_image_folder(root, tmp_path / "out").content == first.content
    subset = prepare_image_folder(root, tmp_path / "out", val_subset=2)
    assert subset.content != first.content  # other validation images
    shutil.copyfile(root / "class0" / "img0.png", root / "class0" / "added.png")
    assert prepare_image_folder(root, tmp_path / "out").content != first.content
