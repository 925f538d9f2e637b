"""A failed set-up of a plugin config stops the unmodified host's script with one message.

Hydra turns an exception raised in a callback into a warning and runs the task anyway; the
plugin's callback raises a SystemExit instead. Each test runs the host's main_pretrain.py.
"""

from pathlib import Path

import pytest
from helpers import host_env, quick_demo_overrides, requires_host, run_host_script

pytestmark = [requires_host, pytest.mark.host]

FATAL_PREFIX = "frossl-plugin: this run cannot start: "
CLOSED_PORT_PROXY = "http://127.0.0.1:9"  # connection refused at once: no network, no waiting


def assert_stopped_with_one_message(result, expected: str) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    fatal = [line for line in result.stderr.splitlines() if line.startswith(FATAL_PREFIX)]
    assert len(fatal) == 1, result.stderr
    assert expected in fatal[0]
    # the host never started training
    assert "Epoch 0" not in result.stdout + result.stderr
    return fatal[0]


def pretrain(tmp_path: Path, overrides, env=None):
    return run_host_script("main_pretrain.py", overrides, cwd=tmp_path, timeout=300, env=env)


def test_unknown_timm_name_stops_the_run_once(demo_data, tmp_path):
    args = quick_demo_overrides(demo_data, tmp_path / "ckpt") + ["backbone.name=timm/resnet1B"]
    message = assert_stopped_with_one_message(
        pretrain(tmp_path, args), "Unknown timm model 'resnet1B'"
    )
    assert "resnet18" in message  # close matches are listed
    assert not (tmp_path / "ckpt").exists()


def test_bad_eval_crop_size_stops_the_run(demo_data, tmp_path):
    args = quick_demo_overrides(demo_data, tmp_path / "ckpt") + ["data.eval_crop_size=-3"]
    assert_stopped_with_one_message(
        pretrain(tmp_path, args), "data.eval_crop_size must be a positive integer, but found -3"
    )


def test_failed_registration_stops_the_run(demo_data, tmp_path):
    # sitecustomize runs at interpreter start-up in the host's process and breaks registration
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "sitecustomize.py").write_text(
        "import frossl_plugin.host.methods as registration\n"
        "def broken():\n"
        "    raise RuntimeError('solo.methods has no METHODS dict (registration probe)')\n"
        "registration.register_methods = broken\n"
    )
    env = host_env()
    env["PYTHONPATH"] = f"{probe}:{env['PYTHONPATH']}"
    args = quick_demo_overrides(demo_data, tmp_path / "ckpt")
    assert_stopped_with_one_message(
        pretrain(tmp_path, args, env=env), "solo.methods has no METHODS dict (registration probe)"
    )


def test_missing_torchvision_dataset_without_network_names_folder_and_override(tmp_path):
    env = host_env()
    env.update(https_proxy=CLOSED_PORT_PROXY, http_proxy=CLOSED_PORT_PROXY)
    message = assert_stopped_with_one_message(
        pretrain(tmp_path, ["--config-name=frossl.yaml", "accelerator=cpu"], env=env),
        "data.dataset=cifar10: not found in",
    )
    assert str(tmp_path / "datasets") in message
    assert "data.train_path=" in message
    assert not (tmp_path / "datasets").exists()  # no empty folder left behind


def test_missing_dataset_keeps_what_was_already_in_the_folder(tmp_path):
    kept = tmp_path / "datasets" / "notes.txt"
    kept.parent.mkdir()
    kept.write_text("mine")
    env = host_env()
    env.update(https_proxy=CLOSED_PORT_PROXY, http_proxy=CLOSED_PORT_PROXY)
    assert_stopped_with_one_message(
        pretrain(tmp_path, ["--config-name=frossl_cifar100.yaml", "accelerator=cpu"], env=env),
        "data.dataset=cifar100: not found in",
    )
    assert sorted(p.name for p in kept.parent.iterdir()) == ["notes.txt"]
    assert kept.read_text() == "mine"


def test_missing_image_folder_names_the_override(tmp_path):
    message = assert_stopped_with_one_message(
        pretrain(tmp_path, ["--config-name=frossl_demo.yaml", "accelerator=cpu"]),
        "data.train_path='./datasets/frossl_demo/train' does not exist",
    )
    assert "frossl-plugin demo-data datasets/frossl_demo" in message
