"""The DALI configs build the host's DALI pretraining loader; CPU-only here (``device_id=None``).

Each config that sets ``data.format: dali`` is composed, and its augmentations go through the
host's own DALI transform builder and ``PretrainDALIDataModule`` with ``dali_device="cpu"``
under :func:`cpu_only_dali` (benchmarks/dali_cpu.py), on a tiny JPEG folder. Extra views at the
first crop size go through the same loader written as a string (a pair is refused with DALI).
"""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers import load_benchmark_module, requires_host

dali = pytest.importorskip(
    "nvidia.dali",
    reason="DALI tests need NVIDIA DALI: pip install nvidia-dali-cuda130 (it installs and runs "
    "CPU-only pipelines without a GPU)",
)

DALI_CONFIGS = ["frossl_imagenet100.yaml", "frossl_imagenet.yaml", "frossl_custom_dali.yaml"]
FAST_DALI_CONFIGS = ["frossl_imagenet100_fast.yaml"]
CLASSES, PER_CLASS, BATCH = 5, 4, 4


def compose_config(name, overrides=()):
    from hydra import compose, initialize

    with initialize(version_base="1.2", config_path=None):
        return compose(config_name=name, overrides=list(overrides))


@pytest.fixture(scope="module")
def jpeg_folder(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("dali_images")
    rng = np.random.default_rng(0)
    for label in range(CLASSES):
        folder = root / f"class{label}"
        folder.mkdir()
        for index in range(PER_CLASS):
            height, width = rng.integers(72, 120, size=2)
            pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{index}.jpg", quality=90)
    return root


@pytest.mark.parametrize("name", DALI_CONFIGS + FAST_DALI_CONFIGS)
def test_imagenet_style_configs_use_the_hosts_dali_loader(name):
    cfg = compose_config(name)
    assert cfg.data.format == "dali"
    assert cfg.data.dataset in ("imagenet100", "imagenet", "custom")  # the host's DALI datasets
    assert cfg.accelerator == "gpu"
    if "devices" in cfg and not isinstance(cfg.devices, str) and len(cfg.devices) > 1:
        assert cfg.strategy == "ddp"


@requires_host
@pytest.mark.parametrize("name", DALI_CONFIGS + FAST_DALI_CONFIGS)
def test_host_dali_pretrain_loader_runs_cpu_only(name, jpeg_folder):
    from solo.data.dali_dataloader import PretrainDALIDataModule, build_transform_pipeline_dali
    from solo.data.pretrain_dataloader import FullTransformPipeline, NCropAugmentation

    cpu_only_dali = load_benchmark_module("dali_cpu").cpu_only_dali

    cfg = compose_config(name)
    pipelines = [
        NCropAugmentation(
            build_transform_pipeline_dali(cfg.data.dataset, aug, dali_device="cpu"),
            aug.num_crops,
        )
        for aug in cfg.augmentations
    ]
    num_crops = sum(aug.num_crops for aug in cfg.augmentations)
    datamodule = PretrainDALIDataModule(
        dataset=cfg.data.dataset,
        train_data_path=jpeg_folder,
        transforms=FullTransformPipeline(pipelines),
        num_large_crops=num_crops,
        num_small_crops=0,
        batch_size=BATCH,
        num_workers=1,
        dali_device="cpu",
    )
    datamodule.trainer = SimpleNamespace(local_rank=0, global_rank=0, world_size=1)
    with cpu_only_dali():
        datamodule.setup("fit")
    _, crops, labels = next(iter(datamodule.train_dataloader()))

    crop_size = cfg.augmentations[0].crop_size
    assert len(crops) == num_crops == 2
    for crop in crops:
        assert crop.shape == (BATCH, 3, crop_size, crop_size) and crop.dtype == torch.float32
        assert crop.device.type == "cpu"
        # normalized with ImageNet statistics: roughly centred, not raw 0..255 pixels
        assert crop.abs().max() < 10 and crop.std() > 0.1
    assert not torch.equal(crops[0], crops[1])  # two differently augmented views
    assert labels.shape == (BATCH,) and set(labels.tolist()) <= set(range(CLASSES))


@requires_host
def test_cpu_only_dali_restores_the_hosts_builders():
    from solo.data import dali_dataloader

    cpu_only_dali = load_benchmark_module("dali_cpu").cpu_only_dali

    before = dali_dataloader.PretrainPipelineBuilder.__dict__["pipeline"]
    with cpu_only_dali():
        patched = dali_dataloader.PretrainPipelineBuilder.__dict__["pipeline"]
        assert patched is not before and patched.__wrapped__ is before
    assert dali_dataloader.PretrainPipelineBuilder.__dict__["pipeline"] is before


def _dali_cfg_with_extra_views(jpeg_folder, extra_size, rrc):
    """frossl_custom_dali.yaml at 64 px (two large crops) plus a pipeline of two extra views of
    crop size ``extra_size``, resolved by the host's parse_cfg."""

    from omegaconf import OmegaConf
    from solo.args.pretrain import parse_cfg

    cfg = compose_config(
        "frossl_custom_dali.yaml",
        [
            f"data.train_path={jpeg_folder}",
            f"data.val_path={jpeg_folder}",
            "augmentations.0.crop_size=64",
            "augmentations.1.crop_size=64",
            f"optimizer.batch_size={BATCH}",
            "dali.device=cpu",
        ],
    )
    OmegaConf.set_struct(cfg, False)
    extra = OmegaConf.merge(
        cfg.augmentations[1], {"crop_size": extra_size, "num_crops": 2, "rrc": {"enabled": rrc}}
    )
    cfg.augmentations.append(extra)
    return parse_cfg(cfg)


@requires_host
@pytest.mark.parametrize("rrc", [True, False])
def test_full_size_views_through_the_hosts_dali_loader_are_written_as_a_string(jpeg_folder, rrc):
    """The host's DALI operators cannot take a pair from the config (DALI reads an OmegaConf list
    as one number): FroSSL refuses [64, 64] before training and names the DALI form, the string
    '64', which the host's parse_cfg counts as small crops and its DALI pipeline crops at 64 x 64,
    with random resized crops and without."""

    from solo.data.dali_dataloader import PretrainDALIDataModule, build_transform_pipeline_dali
    from solo.data.pretrain_dataloader import FullTransformPipeline, NCropAugmentation

    from frossl_plugin.methods.frossl import FroSSL

    cpu_only_dali = load_benchmark_module("dali_cpu").cpu_only_dali

    pair = _dali_cfg_with_extra_views(jpeg_folder, [64, 64], rrc)
    with pytest.raises(ValueError, match=r"crop_size=\[64, 64\] with data.format=dali: .*'64'"):
        FroSSL.add_and_assert_specific_cfg(pair)
    with pytest.raises(TypeError):  # what the host would do with it
        build_transform_pipeline_dali(pair.data.dataset, pair.augmentations[2], dali_device="cpu")

    cfg = _dali_cfg_with_extra_views(jpeg_folder, "64", rrc)
    assert (cfg.data.num_large_crops, cfg.data.num_small_crops) == (2, 2)
    FroSSL.add_and_assert_specific_cfg(cfg)
    pipelines = [
        NCropAugmentation(
            build_transform_pipeline_dali(cfg.data.dataset, aug, dali_device=cfg.dali.device),
            aug.num_crops,
        )
        for aug in cfg.augmentations
    ]
    datamodule = PretrainDALIDataModule(
        dataset=cfg.data.dataset,
        train_data_path=jpeg_folder,
        transforms=FullTransformPipeline(pipelines),
        num_large_crops=cfg.data.num_large_crops,
        num_small_crops=cfg.data.num_small_crops,
        batch_size=BATCH,
        num_workers=1,
        dali_device=cfg.dali.device,
    )
    datamodule.trainer = SimpleNamespace(local_rank=0, global_rank=0, world_size=1)
    with cpu_only_dali():
        datamodule.setup("fit")
    _, crops, _ = next(iter(datamodule.train_dataloader()))
    assert [tuple(crop.shape) for crop in crops] == [(BATCH, 3, 64, 64)] * 4
    assert not torch.equal(crops[2], crops[3])  # two differently augmented extra views
