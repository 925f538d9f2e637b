"""More than two full-size views through the unmodified host.

The host's ``parse_cfg`` counts a pipeline's crops as large only when its ``crop_size`` equals the
first pipeline's, and its ``main_pretrain.py`` takes exactly two large crops for FroSSL. The
multiview configs write the extra views at the first crop size S as ``[S, S]``: counted as small
crops, cropped at S x S by torchvision all the same, projected by FroSSL's ``multicrop_forward``.
These tests check, through the host's own code:

- the crops its loaders build from the shipped configs (all S x S), the views that reach the loss
  (4 and 8), and that the online classifier and kNN monitor get the first two crops only;
- two-step runs of the host's ``main_pretrain.py`` with 4 and 8 full-size views, read back from
  the run's ``args.json`` and ``epoch_stats.jsonl``;
- on a host with the method-plugin change (``frossl-plugin export-upstream --plugin-api``), which
  lets FroSSL take 4 true large crops, the same first-step FroSSL loss on the same data and seed:
  the pair route is the same training signal, not an approximation of it (tolerance: 1e-6
  relative; CPU runs of one seed are deterministic, and the values were bitwise equal here);
- the errors for bad views, before training.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import (
    HOST_PATH,
    host_env,
    quiet_cpu_trainer,
    requires_host,
    run_host_script,
    write_tiny_image_folder,
)
from omegaconf import OmegaConf
from test_compare import compose_compare

pytestmark = requires_host

MULTIVIEW_CONFIGS = {  # config: (crop size, views)
    "frossl_cifar10_4views.yaml": (32, 4),
    "frossl_cifar10_8views.yaml": (32, 8),
    "frossl_cifar100_4views.yaml": (32, 4),
    "frossl_cifar100_8views.yaml": (32, 8),
    "frossl_stl10_4views.yaml": (96, 4),
    "frossl_stl10_8views.yaml": (96, 8),
}
BATCH = 8
LOSS_TERMS = ("train_frossl_loss", "train_frossl_invariance", "train_frossl_regularization")


def compose_parsed(name, overrides=()):
    """A shipped config composed with ``overrides`` and resolved by the host's ``parse_cfg``."""

    from hydra import compose, initialize
    from solo.args.pretrain import parse_cfg

    with initialize(version_base="1.2", config_path=None):
        cfg = compose(config_name=name, overrides=list(overrides))
    OmegaConf.set_struct(cfg, False)
    return parse_cfg(cfg)


def folder_overrides(folder: Path):
    return [
        "data.dataset=custom",
        f"data.train_path={folder / 'train'}",
        f"data.val_path={folder / 'val'}",
        "data.num_workers=0",
    ]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Tiny image folders at the two crop sizes of the multiview configs."""

    root = tmp_path_factory.mktemp("multiview")
    return {
        size: write_tiny_image_folder(root / f"{size}px", classes=4, train_per_class=4, size=size)
        for size in (32, 96)
    }


# ---------------------------------------------------------------- what reaches the method


@pytest.mark.parametrize("name", sorted(MULTIVIEW_CONFIGS))
def test_the_hosts_loader_gives_full_size_views_and_the_loss_takes_them_all(
    name, folders, monkeypatch
):
    """The host's torchvision pipelines and dataset, built from the composed config as
    main_pretrain.py builds them, give every crop at S x S; a training step through Lightning
    hands all of them to the loss, and only the first two to the online classifier and kNN."""

    from lightning.pytorch import Callback
    from solo.data.pretrain_dataloader import (
        FullTransformPipeline,
        NCropAugmentation,
        build_transform_pipeline,
        prepare_dataloader,
        prepare_datasets,
    )

    import frossl_plugin.methods.frossl as method_module

    size, views = MULTIVIEW_CONFIGS[name]
    cfg = compose_parsed(
        name,
        folder_overrides(folders[size])
        + [
            f"optimizer.batch_size={BATCH}",
            "method_kwargs.proj_hidden_dim=32",
            "method_kwargs.proj_output_dim=16",
            "knn_eval.enabled=true",
        ],
    )
    assert (cfg.data.num_large_crops, cfg.data.num_small_crops) == (2, views - 2)
    transform = FullTransformPipeline(
        [
            NCropAugmentation(build_transform_pipeline(cfg.data.dataset, aug), aug.num_crops)
            for aug in cfg.augmentations
        ]
    )
    dataset = prepare_datasets(
        cfg.data.dataset, transform, train_data_path=cfg.data.train_path, data_format="image_folder"
    )
    loader = prepare_dataloader(dataset, batch_size=BATCH, num_workers=0)

    model = method_module.FroSSL(cfg)
    seen = {"classifier": [], "knn": []}
    original_loss = method_module.frossl_loss_func

    def loss_spy(z, **kwargs):
        seen["loss"] = [tuple(view.shape) for view in z]
        return original_loss(z, **kwargs)

    monkeypatch.setattr(method_module, "frossl_loss_func", loss_spy)
    model.classifier.register_forward_hook(
        lambda module, args, out: seen["classifier"].append(tuple(args[0].shape))
    )
    model.knn.register_forward_pre_hook(
        lambda module, args, kwargs: seen["knn"].append(tuple(kwargs["train_features"].shape)),
        with_kwargs=True,
    )

    class Crops(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen["crops"] = [tuple(crop.shape) for crop in batch[1]]

    trainer = quiet_cpu_trainer(fast_dev_run=1, callbacks=[Crops()])
    trainer.fit(model, loader)

    assert seen["crops"] == [(BATCH, 3, size, size)] * views  # every view at full size
    assert seen["loss"] == [(BATCH, 16)] * views  # every view reaches the loss
    assert seen["classifier"] == [(BATCH, model.features_dim)] * 2  # the two large crops
    assert seen["knn"] == [(2 * BATCH, model.features_dim)]
    assert math.isfinite(float(trainer.callback_metrics["train_frossl_loss"]))


# ---------------------------------------------------------------- runs of the host's script


def pretrain_args(name: str, folder: Path, *extra: str):
    return [
        f"--config-name={name}",
        *folder_overrides(folder),
        f"optimizer.batch_size={BATCH}",
        "method_kwargs.proj_hidden_dim=32",
        "method_kwargs.proj_output_dim=auto",  # resolved by FroSSL for the views it counts
        "method_kwargs.invariance_weight=auto",
        "max_epochs=1",
        "++limit_train_batches=1",
        "++limit_val_batches=1",
        "knn_eval.enabled=false",
        "accelerator=cpu",
        "sync_batchnorm=false",
        "checkpoint.dir=ckpt",
        "auto_resume.enabled=false",
        "epoch_stats.enabled=true",
        "seed=3",
        *extra,
    ]


def run_record(cwd: Path) -> dict:
    """What a finished run wrote: the host's args.json and the epoch's record."""

    (args_file,) = (cwd / "ckpt" / "frossl").glob("*/args.json")
    (line,) = (cwd / "epoch_stats.jsonl").read_text().splitlines()
    return {"args": json.loads(args_file.read_text()), "epoch": json.loads(line)}


def crops_of(args: dict):
    return [(aug["crop_size"], aug["num_crops"]) for aug in args["augmentations"]]


@pytest.fixture(scope="module")
def host_runs(folders, tmp_path_factory):
    """One-step runs of the unmodified host with 4 and 8 full-size views, at 32 px."""

    runs = {}
    for views in (4, 8):
        cwd = tmp_path_factory.mktemp(f"host_{views}views")
        args = pretrain_args(f"frossl_cifar10_{views}views.yaml", folders[32])
        done = run_host_script("main_pretrain.py", args, cwd=cwd, timeout=600)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
        runs[views] = run_record(cwd)
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("views", [4, 8])
def test_the_unmodified_host_trains_frossl_with_full_size_views(host_runs, views):
    args, epoch = host_runs[views]["args"], host_runs[views]["epoch"]
    assert crops_of(args) == [(32, 2), ([32, 32], views - 2)]
    assert (args["data"]["num_large_crops"], args["data"]["num_small_crops"]) == (2, views - 2)
    # FroSSL counted every crop as a view: auto = 4 x the batch / the views
    assert args["method_kwargs"]["proj_output_dim"] == 4 * BATCH // views
    assert args["method_kwargs"]["invariance_weight"] == pytest.approx(2 / views)  # below 256
    assert epoch["steps"] == 1
    assert math.isfinite(epoch["metrics"]["train_frossl_loss_epoch"])


@pytest.fixture(scope="module")
def plugin_api_host(tmp_path_factory):
    """A clone of the host with the method-plugin change: FroSSL may take any number of large
    crops there."""

    from frossl_plugin.upstream.export import export_plugin_api

    root = tmp_path_factory.mktemp("plugin_api") / "solo-learn"
    subprocess.run(["git", "clone", "-q", str(HOST_PATH), str(root)], check=True)
    export_plugin_api(str(root), message_dir=str(root.parent / "messages"))
    return root


@pytest.mark.slow
def test_full_size_views_give_the_loss_of_four_true_large_crops(
    host_runs, plugin_api_host, folders, tmp_path
):
    """Same data, seed and augmentations: 2 x 32 px + 2 x [32, 32] on the unmodified host, and
    4 x 32 px (all large) on the plugin-API host; the first step's FroSSL loss and terms agree."""

    cwd = tmp_path / "large"
    cwd.mkdir()
    env = host_env()
    env.update(PYTHONPATH=str(plugin_api_host), SOLO_LEARN_PATH=str(plugin_api_host))
    args = pretrain_args("frossl_cifar10_4views.yaml", folders[32], "augmentations.1.crop_size=32")
    done = subprocess.run(
        [sys.executable, str(plugin_api_host / "main_pretrain.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    large = run_record(cwd)
    assert crops_of(large["args"]) == [(32, 2), (32, 2)]
    assert (large["args"]["data"]["num_large_crops"], large["args"]["data"]["num_small_crops"]) == (
        4,
        0,
    )
    pair = host_runs[4]
    assert pair["args"]["method_kwargs"] == large["args"]["method_kwargs"]
    for term in LOSS_TERMS:
        key = f"{term}_epoch"  # one step: the first step's value
        expected = large["epoch"]["metrics"][key]
        assert pair["epoch"]["metrics"][key] == pytest.approx(expected, rel=1e-6, abs=0), term


# ---------------------------------------------------------------- bad views, before training


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["augmentations.1.crop_size=[96,64]"], r"crop_size=\[96, 64\]: .* must be square"),
        (
            ["augmentations.1.crop_size=[64,64]"],
            r"crop_size=\[64, 64\] is not a full-size copy of the first crop "
            r"\(augmentations.0.crop_size=96\).*expected \[96, 96\].*plain integer 64",
        ),
        (["augmentations.1.crop_size=[96,96,96]"], r"expected \[96, 96\]"),
        (["augmentations.0.crop_size=[96,96]"], r"augmentations.0.crop_size=\[96, 96\]: expected"),
        (
            ["data.format=dali", "data.dataset=custom"],
            r"crop_size=\[96, 96\] with data.format=dali: .*cannot take a pair.*'96'",
        ),
        (
            ["data.dataset=custom", "augmentations.1.rrc.enabled=false"],
            r"rrc.enabled=false on data.dataset=custom: .*expected rrc.enabled: true",
        ),
        (["augmentations.1.crop_size='96'"], r"crop_size='96' with data.format=image_folder"),
        (
            ["optimizer.batch_size=6"],
            r"8 views .* optimizer.batch_size=6: .*expected optimizer.batch_size >= 8",
        ),
    ],
)
def test_bad_views_are_refused_naming_the_value(overrides, message, folders):
    from frossl_plugin.methods.frossl import FroSSL

    data = [f"data.train_path={folders[96] / 'train'}", f"data.val_path={folders[96] / 'val'}"]
    cfg = compose_parsed("frossl_stl10_8views.yaml", data + overrides)
    with pytest.raises(ValueError, match=message):
        FroSSL.add_and_assert_specific_cfg(cfg)


def test_views_that_the_host_loads_are_accepted(folders):
    from frossl_plugin.methods.frossl import FroSSL

    data = [f"data.train_path={folders[96] / 'train'}", f"data.val_path={folders[96] / 'val'}"]
    for name, overrides in (
        ("frossl_stl10_8views.yaml", ["optimizer.batch_size=8"]),
        ("frossl_stl10_4views.yaml", ["augmentations.1.rrc.enabled=false"]),  # square images
        ("frossl_stl10_4views.yaml", ["augmentations=stl10_symmetric_weak_small_views"]),
        ("frossl_stl10.yaml", ["optimizer.batch_size=2"]),  # two views: left to the host
    ):
        cfg = compose_parsed(name, data + overrides)
        FroSSL.add_and_assert_specific_cfg(cfg)


@pytest.mark.slow
def test_the_host_stops_on_a_bad_view_before_training(folders, tmp_path):
    args = pretrain_args(
        "frossl_cifar10_4views.yaml", folders[32], "augmentations.1.crop_size=[32,16]"
    )
    done = run_host_script("main_pretrain.py", args, cwd=tmp_path, timeout=300)
    assert done.returncode == 1
    assert "augmentations.1.crop_size=[32, 16]: a full-size view written as a pair must be " in (
        done.stderr
    )
    assert not (tmp_path / "epoch_stats.jsonl").exists() and not (tmp_path / "ckpt").exists()


# ---------------------------------------------------------------- frossl-plugin compare --views


@pytest.mark.parametrize(
    "extra, expected, crops, label",
    [
        (
            [],
            ["augmentations=cifar_symmetric_4views", "augmentations.1.crop_size=[30,30]"],
            [(30, 2), ([30, 30], 6)],
            "frossl 8 full-size views",
        ),
        (
            ["--extra-views", "small"],
            ["augmentations=cifar_symmetric_small_views", "augmentations.1.crop_size=20"],
            [(30, 2), (20, 6)],
            "frossl 8 views (6 small)",
        ),
    ],
)
def test_compare_views_are_full_size_unless_asked_small(
    folders, tmp_path, capsys, extra, expected, crops, label
):
    import shlex

    from frossl_plugin.cli import main

    argv = ["compare", "--methods", "frossl", "--epochs", "2", "--data", str(folders[32])]
    argv += ["--out", str(tmp_path / "o"), "--crop-size", "30", "--views", "8", "--dry-run"]
    assert main(argv + extra) == 0
    printed = capsys.readouterr().out
    sweep_command = shlex.split(printed.splitlines()[-1].removeprefix("compare: "))
    expected = expected + [
        "augmentations.0.crop_size=30",
        "augmentations.1.num_crops=6",
        f"label='{label}'",
    ]
    for part in expected:
        assert part in sweep_command
    config = compose_compare(expected)
    assert [(group["crop_size"], group["num_crops"]) for group in config["augmentations"]] == crops
    assert config["label"] == label


def test_compare_refuses_extra_views_without_views(tmp_path, capsys):
    from frossl_plugin.cli import main

    argv = ["compare", "--epochs", "1", "--data", str(tmp_path), "--extra-views", "small"]
    assert main(argv + ["--dry-run"]) == 2
    assert "--extra-views small with --views 2: there are no extra views" in capsys.readouterr().err
