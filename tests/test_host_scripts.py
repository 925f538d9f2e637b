"""The unmodified host's own scripts on the plugin's demo configs, in subprocesses on CPU.

One module-scoped pretraining run feeds main_linear.py, main_knn.py and main_umap.py.
"""

import csv
import json

import pytest
import torch
from helpers import HOST_PATH, requires_host, run_host_script
from omegaconf import OmegaConf

pytestmark = [requires_host, pytest.mark.slow]

# the host's hard-coded CUDA device in its argparse scripts (solo-learn 9187ea3)
HOST_CUDA_LINES = {
    "main_knn.py": "im = im.cuda(non_blocking=True)",
    "main_umap.py": "model = model.to(device)",
}
# what torch raises there without a GPU: a CPU-only build, or a CUDA build without a driver/GPU
NO_CUDA_ERRORS = (
    "AssertionError: Torch not compiled with CUDA enabled",
    "RuntimeError: Found no NVIDIA driver",
    "RuntimeError: No CUDA GPUs are available",
)

QUICK = [
    "max_epochs=1",
    "+limit_train_batches=3",
    "optimizer.batch_size=32",
    "data.num_workers=0",
    "method_kwargs.proj_hidden_dim=128",
    "method_kwargs.proj_output_dim=64",
]


def data_overrides(demo_data):
    return [f"data.train_path={demo_data / 'train'}", f"data.val_path={demo_data / 'val'}"]


def read_metrics(workdir):
    (metrics,) = sorted(workdir.glob("lightning_logs/version_*/metrics.csv"))[-1:]
    rows = list(csv.DictReader(metrics.open()))
    return {key for row in rows for key, value in row.items() if value}, rows


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, demo_data):
    workdir = tmp_path_factory.mktemp("pretrain")
    result = run_host_script(
        "main_pretrain.py",
        ["--config-name", "frossl_demo.yaml", *QUICK, *data_overrides(demo_data)],
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    (checkpoint_dir,) = (workdir / "trained_models" / "demo" / "frossl").iterdir()
    return workdir, checkpoint_dir


def test_main_pretrain_trains_and_logs(pretrained):
    workdir, checkpoint_dir = pretrained
    logged, rows = read_metrics(workdir)
    expected = {
        "train_frossl_loss_epoch",
        "train_frossl_invariance_epoch",
        "train_frossl_regularization_epoch",
        "val_acc1",
        "val_knn_acc1",
    }
    assert expected <= logged
    val_acc = [float(row["val_acc1"]) for row in rows if row.get("val_acc1")]
    assert all(0.0 <= acc <= 100.0 for acc in val_acc)

    args = json.loads((checkpoint_dir / "args.json").read_text())
    assert args["method"] == "frossl"
    # the host writes its config unresolved: eval_crop_size stays the interpolation of
    # configs/base/pretrain.yaml, which resolves where the host reads args.json (OmegaConf.create)
    assert OmegaConf.create(args).data.eval_crop_size == 32
    (checkpoint,) = checkpoint_dir.glob("*.ckpt")
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    assert {key.split(".")[0] for key in state} == {"backbone", "projector", "classifier"}


def test_main_linear_probes_the_checkpoint(pretrained, demo_data):
    workdir, _ = pretrained
    before = set(workdir.glob("lightning_logs/version_*"))
    result = run_host_script(
        "main_linear.py",
        [
            "--config-name",
            "frossl_demo_linear.yaml",
            "max_epochs=1",
            "+limit_train_batches=3",
            "data.num_workers=0",
            *data_overrides(demo_data),
        ],
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert len(set(workdir.glob("lightning_logs/version_*")) - before) == 1
    logged, _ = read_metrics(workdir)
    assert {"val_acc1", "val_loss"} <= logged
    assert list((workdir / "trained_models" / "demo" / "linear").rglob("*.ckpt"))


@pytest.mark.parametrize("script", ["main_knn.py", "main_umap.py"])
def test_argparse_scripts_find_and_load_frossl(pretrained, demo_data, script):
    workdir, checkpoint_dir = pretrained
    args = [
        "--pretrained_checkpoint_dir",
        str(checkpoint_dir),
        "--dataset",
        "custom",
        "--train_data_path",
        str(demo_data / "train"),
        "--val_data_path",
        str(demo_data / "val"),
        "--batch_size",
        "64",
        "--num_workers",
        "0",
    ]
    result = run_host_script(script, args, cwd=workdir)
    if torch.cuda.is_available():
        assert result.returncode == 0, result.stderr[-4000:]
        return
    # on CPU the host's scripts stop at their hard-coded CUDA device, after the method lookup
    # (METHODS["frossl"]) and the checkpoint load succeeded: the last frame is that host line
    assert result.returncode != 0
    assert "KeyError" not in result.stderr
    last_traceback = result.stderr.split("Traceback")[-1]
    assert "load_from_checkpoint" not in last_traceback
    host_line = HOST_CUDA_LINES[script]
    assert f'File "{HOST_PATH / script}"' in last_traceback
    assert host_line in last_traceback, last_traceback
    error = last_traceback.strip().splitlines()[-1]
    assert any(error.startswith(message) for message in NO_CUDA_ERRORS), error
