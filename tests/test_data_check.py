"""frossl_plugin.data_check without the host: what is looked for, and what a failure says."""

import pytest
from omegaconf import OmegaConf

from frossl_plugin.data_check import DataNotFoundError, check_data

CLOSED_PORT_PROXY = "http://127.0.0.1:9"


def data_cfg(**data):
    return OmegaConf.create({"data": data})


def test_existing_image_folders_pass(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "val").mkdir()
    cfg = data_cfg(
        dataset="custom", train_path=str(tmp_path / "train"), val_path=str(tmp_path / "val")
    )
    assert check_data(cfg) == "custom"


def test_config_without_data_is_left_alone():
    assert check_data(OmegaConf.create({"method": "frossl"})) is None


@pytest.mark.parametrize("missing", ["train_path", "val_path"])
def test_missing_image_folder_names_key_and_folder(tmp_path, missing):
    paths = {"train_path": str(tmp_path / "train"), "val_path": str(tmp_path / "val")}
    for key, path in paths.items():
        if key != missing:
            (tmp_path / key.split("_")[0]).mkdir()
    with pytest.raises(DataNotFoundError, match=rf"data.{missing}='.*' does not exist"):
        check_data(data_cfg(dataset="imagenet100", **paths))


def test_torchvision_dataset_without_a_path_asks_for_one():
    with pytest.raises(DataNotFoundError, match="data.train_path is not set"):
        check_data(data_cfg(dataset="stl10", train_path=None, val_path=None))


def test_failed_download_removes_only_the_folders_it_made(tmp_path, monkeypatch):
    monkeypatch.setenv("https_proxy", CLOSED_PORT_PROXY)
    monkeypatch.setenv("http_proxy", CLOSED_PORT_PROXY)
    root = tmp_path / "new" / "datasets"
    cfg = data_cfg(dataset="cifar10", train_path=str(root), val_path=str(root))
    with pytest.raises(DataNotFoundError) as raised:
        check_data(cfg)
    message = str(raised.value)
    assert f"data.dataset=cifar10: not found in {str(root)!r} (data.train_path)" in message
    assert "data.train_path=<folder that holds it>" in message
    assert not (tmp_path / "new").exists()
    assert tmp_path.is_dir()
