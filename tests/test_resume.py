"""Resuming: random generators in checkpoints, the checked auto_resume, cut-off checkpoints, and a
run of the unmodified host stopped by a signal and resumed, against an uninterrupted one."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import HOST_PATH, host_env, requires_host, write_tiny_image_folder

# --- random state ---------------------------------------------------------------------------


def test_random_state_survives_a_weights_only_checkpoint_and_replays_the_draws(tmp_path):
    from frossl_plugin.callbacks.random_state import capture_random_state, restore_random_state

    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    state = capture_random_state()
    expected = (random.random(), np.random.rand(), torch.rand(3))
    torch.save({"random_state": state}, tmp_path / "state.ckpt")
    loaded = torch.load(tmp_path / "state.ckpt", weights_only=True)["random_state"]  # as Lightning
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    restore_random_state(loaded)
    replayed = (random.random(), np.random.rand(), torch.rand(3))
    assert replayed[:2] == expected[:2] and torch.equal(replayed[2], expected[2])


def test_a_random_state_without_a_generator_is_refused():
    from frossl_plugin.callbacks.random_state import capture_random_state, restore_random_state

    state = capture_random_state()
    del state["numpy"]
    with pytest.raises(ValueError, match=r"lacks \['numpy'\]"):
        restore_random_state(state)


# --- complete checkpoints -------------------------------------------------------------------


def _checkpoint(path: Path, value: float = 1.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {"w": torch.full((256,), value)}, "epoch": 0}, path)
    return path


def _cut_off(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_a_checkpoint_cut_off_while_written_is_not_complete(tmp_path):
    from frossl_plugin.host.resume import is_complete_checkpoint

    whole = _checkpoint(tmp_path / "whole.ckpt")
    assert is_complete_checkpoint(whole)
    assert not is_complete_checkpoint(_cut_off(_checkpoint(tmp_path / "half.ckpt")))
    (tmp_path / "empty.ckpt").write_bytes(b"")
    assert not is_complete_checkpoint(tmp_path / "empty.ckpt")
    (tmp_path / "text.ckpt").write_text("not a checkpoint")
    assert not is_complete_checkpoint(tmp_path / "text.ckpt")
    assert not is_complete_checkpoint(tmp_path / "missing.ckpt")


# --- the checked auto_resume ------------------------------------------------------------------

RUN = {
    "name": "run",
    "method": "frossl",
    "seed": 1,
    "backbone": {"name": "resnet18", "kwargs": {}},
    "method_kwargs": {"proj_output_dim": 128, "invariance_weight": 1.0},
    "augmentations": [{"crop_size": 32, "num_crops": 2}],
    "data": {"dataset": "custom", "num_workers": 4},
    "max_epochs": 10,
    "optimizer": {"name": "lars", "batch_size": 64, "lr": 0.075, "weight_decay": 1e-4},
    "checkpoint": {"dir": "a"},
    "wandb": {"project": "p", "entity": None},
    "pretrained_feature_extractor": None,
}


def _run_folder(root: Path, name: str, args: dict, epochs=(0,), age_s: float = 0.0) -> Path:
    folder = root / "frossl" / name
    folder.mkdir(parents=True)
    (folder / "args.json").write_text(json.dumps({**args, "wandb_run_id": name}))
    for epoch in epochs:
        path = _checkpoint(folder / f"run-{name}-ep={epoch}.ckpt")
        stamp = time.time() - age_s - 10 * (len(epochs) - epoch)  # later epochs are newer
        os.utime(path, (stamp, stamp))
    return folder


def _with(**changes) -> dict:
    args = json.loads(json.dumps(RUN))
    for key, value in changes.items():
        node = args
        *parents, last = key.split("__")
        for parent in parents:
            node = node[parent]
        node[last] = value
    return args


@pytest.fixture
def resumer(tmp_path):
    pytest.importorskip("solo", reason="needs solo-learn on PYTHONPATH (SOLO_LEARN_PATH)")
    from omegaconf import OmegaConf
    from solo.utils.auto_resumer import AutoResumer

    from frossl_plugin.host.resume import find_checkpoint

    auto_resumer = AutoResumer(checkpoint_dir=tmp_path / "frossl", max_hours=36)

    def find(args):
        return find_checkpoint(auto_resumer, OmegaConf.create(args))

    return find


@requires_host
def test_auto_resume_takes_the_newest_checkpoint_of_the_same_run(tmp_path, resumer):
    _run_folder(tmp_path, "old", RUN, age_s=100)
    newest = _run_folder(tmp_path, "new", RUN, epochs=(0, 1))
    assert resumer(RUN) == (str(newest / "run-new-ep=1.ckpt"), "new")
    # where it saves, logs and loads from is not part of the run
    assert resumer(_with(checkpoint__dir="b", data__num_workers=0))[1] == "new"


@requires_host
@pytest.mark.parametrize(
    "changes, shown",
    [
        ({"seed": 2}, "seed: checkpoint 2, this run 1"),
        (
            {"method_kwargs__invariance_weight": 1.4},
            "method_kwargs.invariance_weight: checkpoint 1.4, this run 1.0",
        ),
        ({"augmentations": [{"crop_size": 32, "num_crops": 4}]}, "augmentations"),
        ({"optimizer__kwargs": {"eta": 0.02}}, "optimizer.kwargs.eta: checkpoint 0.02"),
    ],
)
def test_auto_resume_skips_a_run_the_host_would_take_for_this_one(
    tmp_path, resumer, capfd, changes, shown
):
    """The host's AutoResumer matches only a few keys: these runs would resume each other."""

    from omegaconf import OmegaConf
    from solo.utils.auto_resumer import AutoResumer

    other = _with(**changes)
    _run_folder(tmp_path, "other", other)
    host = AutoResumer(checkpoint_dir=tmp_path / "frossl", max_hours=36)
    assert host.find_checkpoint(OmegaConf.create(RUN))[0] is not None  # the host's own rule
    assert resumer(RUN) == (None, None)
    message = capfd.readouterr().err
    assert "not resuming from" in message and "a different run" in message and shown in message
    same = _run_folder(tmp_path, "same", RUN, age_s=50)  # older, but the same run
    assert resumer(RUN) == (str(same / "run-same-ep=0.ckpt"), "same")


@requires_host
def test_auto_resume_falls_back_from_a_cut_off_checkpoint_and_deletes_nothing(
    tmp_path, resumer, capfd
):
    folder = _run_folder(tmp_path, "run", RUN, epochs=(0, 1))
    _cut_off(folder / "run-run-ep=1.ckpt")
    assert resumer(RUN) == (str(folder / "run-run-ep=0.ckpt"), "run")
    message = capfd.readouterr().err
    assert f"not resuming from {folder / 'run-run-ep=1.ckpt'}: it is not a complete" in message
    assert sorted(p.name for p in folder.iterdir()) == [
        "args.json",
        "run-run-ep=0.ckpt",
        "run-run-ep=1.ckpt",
    ]
    _cut_off(folder / "run-run-ep=0.ckpt")
    assert resumer(RUN) == (None, None)  # nothing whole left: a fresh start


@requires_host
def test_a_cut_off_resume_from_checkpoint_is_refused_before_training(tmp_path):
    from omegaconf import OmegaConf

    from frossl_plugin.host.resume import check_resume_from_checkpoint

    path = _cut_off(_checkpoint(tmp_path / "last.ckpt"))
    with pytest.raises(ValueError, match="is not a complete checkpoint"):
        check_resume_from_checkpoint(OmegaConf.create({"resume_from_checkpoint": str(path)}))
    with pytest.raises(ValueError, match="is not a file"):
        check_resume_from_checkpoint(OmegaConf.create({"resume_from_checkpoint": "nope.ckpt"}))
    check_resume_from_checkpoint(OmegaConf.create({"resume_from_checkpoint": None}))
    assert path.exists()


# --- stopped by a signal and resumed, through the unmodified host ---------------------------

EPOCHS = 2
BASELINE = [  # Barlow Twins with the demo's projector size
    "method=barlow_twins",
    "~method_kwargs",
    "+method_kwargs={proj_hidden_dim:512,proj_output_dim:256,scale_loss:0.1}",
]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return write_tiny_image_folder(
        tmp_path_factory.mktemp("resume_data"), classes=5, train_per_class=8, val_per_class=4
    )


def _pretrain_command(data: Path, extra) -> list:
    return [
        sys.executable,
        str(HOST_PATH / "main_pretrain.py"),
        "--config-name=frossl_demo.yaml",
        f"data.train_path={data / 'train'}",
        f"data.val_path={data / 'val'}",
        "data.num_workers=0",
        "optimizer.batch_size=8",
        f"max_epochs={EPOCHS}",
        "accelerator=cpu",
        "checkpoint.dir=ckpt",
        "auto_resume.enabled=true",
        "epoch_stats.enabled=true",
        "seed=3",
        *extra,
    ]


def _pretrain(run_dir: Path, data: Path, extra) -> subprocess.CompletedProcess:
    run_dir.mkdir(exist_ok=True)
    done = subprocess.run(
        _pretrain_command(data, extra),
        cwd=run_dir,
        env=host_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def _stop_after_first_epoch(run_dir: Path, data: Path, extra) -> Path:
    """Starts the run and sends it SIGTERM once its first epoch's checkpoint is whole; Lightning
    then stops after the batch it is on."""

    from frossl_plugin.host.resume import is_complete_checkpoint

    run_dir.mkdir()
    process = subprocess.Popen(
        _pretrain_command(data, extra),
        cwd=run_dir,
        env=host_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        first = list(run_dir.glob("ckpt/*/*/*-ep=0.ckpt"))
        if first and is_complete_checkpoint(first[0]):
            process.send_signal(signal.SIGTERM)
            break
        time.sleep(0.05)
    process.wait(timeout=120)  # Lightning ends a run stopped by SIGTERM with exit code 0
    assert first, "the run wrote no checkpoint"
    assert not list(run_dir.glob("ckpt/*/*/*-ep=1.ckpt")), "stopped too late"
    return first[0]


def _final(run_dir: Path) -> dict:
    from frossl_plugin.host.resume import is_complete_checkpoint

    (path,) = [
        p for p in run_dir.glob(f"ckpt/*/*/*-ep={EPOCHS - 1}.ckpt") if is_complete_checkpoint(p)
    ]
    return torch.load(path, map_location="cpu", weights_only=False)


def _epoch_records(run_dir: Path) -> dict:
    lines = (run_dir / "epoch_stats.jsonl").read_text().splitlines()
    return {record["epoch"]: record["metrics"] for record in map(json.loads, lines)}


def _assert_same_training(resumed: dict, uninterrupted: dict) -> None:
    assert resumed["epoch"] == uninterrupted["epoch"]
    assert resumed["global_step"] == uninterrupted["global_step"]
    assert resumed["state_dict"].keys() == uninterrupted["state_dict"].keys()
    different = [
        key
        for key, value in uninterrupted["state_dict"].items()
        if not torch.equal(resumed["state_dict"][key], value)
    ]
    assert different == []  # bitwise: CPU runs with one seed are deterministic here
    (opt_a,), (opt_b,) = resumed["optimizer_states"], uninterrupted["optimizer_states"]
    assert opt_a["param_groups"] == opt_b["param_groups"]
    for index, state in opt_b["state"].items():
        for name, value in state.items():
            assert torch.equal(opt_a["state"][index][name], value), (index, name)
    assert resumed["lr_schedulers"] == uninterrupted["lr_schedulers"]


@requires_host
@pytest.mark.slow
@pytest.mark.parametrize("method", ["frossl", "barlow_twins"])
def test_a_run_stopped_by_a_signal_resumes_to_the_uninterrupted_result(
    tmp_path, tiny_folder, method
):
    extra = BASELINE if method == "barlow_twins" else []
    _pretrain(tmp_path / "uninterrupted", tiny_folder, extra)

    run_dir = tmp_path / "interrupted"
    first = _stop_after_first_epoch(run_dir, tiny_folder, extra)
    if method == "frossl":  # and was stopped again while saving epoch 1: a cut-off file
        cut = first.with_name(first.name.replace("-ep=0", "-ep=1"))
        shutil.copyfile(first, cut)
        _cut_off(cut)
    resumed = _pretrain(run_dir, tiny_folder, extra)
    resumed_from = first.relative_to(run_dir)  # checkpoint.dir is relative to the run's folder
    assert f"Resuming from previous checkpoint that matches specifications: '{resumed_from}'" in (
        resumed.stdout
    )
    if method == "frossl":
        cut_name = cut.relative_to(run_dir)
        assert f"not resuming from {cut_name}: it is not a complete checkpoint" in resumed.stderr
        assert cut.exists()  # nothing is deleted

    _assert_same_training(_final(run_dir), _final(tmp_path / "uninterrupted"))
    # the logged history after the stop is the uninterrupted run's too
    after = _epoch_records(run_dir)
    before = _epoch_records(tmp_path / "uninterrupted")
    assert sorted(after) == [1, 2]  # epoch 1 from the first part, epoch 2 from the resumed one
    for key in ("val_acc1", "val_knn_acc1", "train_class_loss_epoch"):
        assert after[2][key] == before[2][key], key
