"""The checkpoint a linear probe loads is the one its pretraining config wrote, or a clear error.

The host's main_linear.py loads ``pretrained_feature_extractor`` with ``strict=False``; the
plugin's Hydra callback checks the ``args.json`` beside it (frossl_plugin/probe_checkpoint.py)
before the host loads anything. The unit tests need no host; the last test runs the host's
unmodified main_linear.py.
"""

import json
import os
import warnings
from pathlib import Path

import pytest
from helpers import host_env, requires_host, run_host_script
from omegaconf import OmegaConf
from test_hydra_plugin import CONFIG_DIR, PRETRAIN_CONFIGS, compose_config

from frossl_plugin.hydra_callback import LAST_CHECKPOINT_RESOLVER
from frossl_plugin.probe_checkpoint import (
    ProbeCheckpointError,
    UncheckedCheckpointWarning,
    check_probe_checkpoint,
    last_checkpoint,
)

# pretraining config -> the linear config that probes its checkpoints (by default, or with the
# pretrain_dir=... override its comments name)
LINEAR_CONFIG_OF = {
    "frossl.yaml": "frossl_linear.yaml",
    "frossl_fast.yaml": "frossl_linear.yaml",
    "frossl_cifar100.yaml": "frossl_cifar100_linear.yaml",
    "frossl_cifar10_4views.yaml": "frossl_linear.yaml",
    "frossl_cifar10_8views.yaml": "frossl_linear.yaml",
    "frossl_cifar100_4views.yaml": "frossl_cifar100_linear.yaml",
    "frossl_cifar100_8views.yaml": "frossl_cifar100_linear.yaml",
    "frossl_stl10.yaml": "frossl_stl10_linear.yaml",
    "frossl_stl10_4views.yaml": "frossl_stl10_linear.yaml",
    "frossl_stl10_8views.yaml": "frossl_stl10_linear.yaml",
    "frossl_tinyimagenet.yaml": "frossl_tinyimagenet_linear.yaml",
    "frossl_custom.yaml": "frossl_tinyimagenet_linear.yaml",
    "frossl_custom_dali.yaml": "frossl_tinyimagenet_linear.yaml",
    "frossl_imagenet100.yaml": "frossl_imagenet100_linear.yaml",
    "frossl_imagenet100_fast.yaml": "frossl_imagenet100_linear.yaml",
    "frossl_imagenet.yaml": "frossl_imagenet_linear.yaml",
    "frossl_demo.yaml": "frossl_demo_linear.yaml",
}
FATAL_PREFIX = "frossl-plugin: this run cannot start: "
CLOSED_PORT_PROXY = "http://127.0.0.1:9"  # a download attempt fails at once


@pytest.fixture(autouse=True)
def resolver():
    if not OmegaConf.has_resolver(LAST_CHECKPOINT_RESOLVER):
        OmegaConf.register_new_resolver(LAST_CHECKPOINT_RESOLVER, last_checkpoint)


def write_checkpoint(folder: Path, mtime: float = 1e9, args=None, **settings) -> Path:
    """A checkpoint file in the host's layout, ``args.json`` (the pretraining config) beside it
    unless ``args`` is False; ``settings`` override method / backbone / dataset."""

    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = folder / "run-ep=0.ckpt"
    checkpoint.write_bytes(b"not read by the check")
    os.utime(checkpoint, (mtime, mtime))
    if args is None:
        args = {
            "name": "frossl-cifar10",
            "method": settings.get("method", "frossl"),
            "backbone": {"name": settings.get("backbone", "resnet18"), "kwargs": {}},
            "data": {"dataset": settings.get("dataset", "cifar10"), "format": "image_folder"},
        }
    if args is not False:
        (folder / "args.json").write_text(json.dumps(args))
    return checkpoint


def probe(checkpoint, **settings):
    return OmegaConf.create(
        {
            "pretrain_method": settings.get("method", "frossl"),
            "backbone": {"name": settings.get("backbone", "resnet18")},
            "data": {"dataset": settings.get("dataset", "cifar10")},
            "pretrained_feature_extractor": str(checkpoint),
        }
    )


# ---------------------------------------------------------------- the check


def test_a_matching_checkpoint_passes_without_a_warning(tmp_path):
    checkpoint = write_checkpoint(tmp_path / "run")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_probe_checkpoint(probe(checkpoint)) == str(checkpoint)


@pytest.mark.parametrize(
    "probe_key, setting, pretrained, probed",
    [
        ("pretrain_method", "method", "vicreg", "frossl"),
        ("backbone.name", "backbone", "resnet50", "resnet18"),
        ("data.dataset", "dataset", "cifar100", "cifar10"),
    ],
)
def test_a_disagreeing_checkpoint_is_refused(tmp_path, probe_key, setting, pretrained, probed):
    checkpoint = write_checkpoint(tmp_path / "run", **{setting: pretrained})
    with pytest.raises(ProbeCheckpointError) as raised:
        check_probe_checkpoint(probe(checkpoint, **{setting: probed}))
    message = str(raised.value)
    assert str(checkpoint) in message
    assert f"{probe_key}: the probe has {probed!r}" in message
    assert f"={pretrained!r}" in message
    assert "pretrained_feature_extractor=PATH" in message
    for other_key in {"pretrain_method", "backbone.name", "data.dataset"} - {probe_key}:
        assert f"{other_key}:" not in message  # only the keys that disagree


def test_a_checkpoint_without_args_json_is_loaded_with_a_warning(tmp_path):
    checkpoint = write_checkpoint(tmp_path / "mine", args=False)
    with pytest.warns(UncheckedCheckpointWarning, match="has no args.json beside it"):
        assert check_probe_checkpoint(probe(checkpoint)) == str(checkpoint)


def test_a_missing_checkpoint_file_is_refused(tmp_path):
    with pytest.raises(ProbeCheckpointError, match="missing.ckpt' is not a file"):
        check_probe_checkpoint(probe(tmp_path / "missing.ckpt"))


def test_pretraining_configs_are_not_checked(tmp_path):
    config = probe(write_checkpoint(tmp_path / "run", dataset="cifar100"))
    del config["pretrain_method"]
    assert check_probe_checkpoint(config) is None


# ---------------------------------------------------------------- ${frossl_last_checkpoint:DIR}


def test_the_resolver_picks_the_newest_checkpoint_that_matches(tmp_path):
    cifar10 = write_checkpoint(tmp_path / "frossl" / "a", mtime=1e9)
    write_checkpoint(tmp_path / "frossl" / "b", mtime=2e9, dataset="cifar100")  # newer
    config = probe(f"${{{LAST_CHECKPOINT_RESOLVER}:{tmp_path / 'frossl'}}}")
    assert config.pretrained_feature_extractor == str(cifar10)
    assert check_probe_checkpoint(config) == str(cifar10)
    # outside a probe's config: the newest, whatever it was pretrained for
    assert last_checkpoint(str(tmp_path / "frossl")) == str(
        tmp_path / "frossl" / "b" / "run-ep=0.ckpt"
    )


def test_the_resolver_refuses_when_no_checkpoint_matches(tmp_path):
    newest = write_checkpoint(tmp_path / "frossl" / "b", mtime=2e9, dataset="cifar100")
    write_checkpoint(tmp_path / "frossl" / "a", mtime=1e9, backbone="resnet50")
    config = probe(f"${{{LAST_CHECKPOINT_RESOLVER}:{tmp_path / 'frossl'}}}")
    with pytest.raises(ProbeCheckpointError) as raised:  # not OmegaConf's wrapper
        check_probe_checkpoint(config)
    message = str(raised.value)
    assert "None of the 2 checkpoint(s)" in message and str(newest) in message
    assert "data.dataset: the probe has 'cifar10', args.json has data.dataset='cifar100'" in message
    assert "pretrained_feature_extractor=PATH" in message


# ---------------------------------------------------------------- where the configs write and look


def test_every_pretraining_config_has_its_own_checkpoint_dir():
    assert set(LINEAR_CONFIG_OF) == set(PRETRAIN_CONFIGS)
    folders = {name: compose_config(name).checkpoint.dir for name in PRETRAIN_CONFIGS}
    assert len(set(folders.values())) == len(folders), folders


@pytest.mark.parametrize("name", sorted(LINEAR_CONFIG_OF))
def test_the_linear_config_finds_what_its_pretraining_config_wrote(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    pretrain = compose_config(name)
    folder = pretrain.checkpoint.dir
    args = OmegaConf.to_container(pretrain)
    del args["hydra"]
    # where the host's Checkpointer writes: <checkpoint.dir>/<method>/<run id>/
    written = write_checkpoint(Path(folder) / pretrain.method / "offline-ab12cd34", args=args)
    linear_name = LINEAR_CONFIG_OF[name]
    linear = compose_config(linear_name)
    overrides = []
    if linear.pretrain_dir != folder:
        # a second pretraining config of this linear config: its comments give the override
        override = f"pretrain_dir={folder}"
        assert override in (CONFIG_DIR / linear_name).read_text(), (linear_name, override)
        overrides = [override]
        linear = compose_config(linear_name, overrides)
    assert Path(check_probe_checkpoint(linear)).resolve() == written.resolve()


def test_each_linear_config_defaults_to_one_pretraining_config():
    defaults = {}
    for name, linear_name in LINEAR_CONFIG_OF.items():
        if compose_config(linear_name).pretrain_dir == compose_config(name).checkpoint.dir:
            defaults.setdefault(linear_name, []).append(name)
    # frossl_linear.yaml: frossl.yaml, frossl_stl10_linear.yaml: frossl_stl10.yaml (2 views), ...
    linear_configs = set(LINEAR_CONFIG_OF.values())
    assert defaults == {linear: [linear.replace("_linear", "")] for linear in linear_configs}


# ---------------------------------------------------------------- the host's main_linear.py


@requires_host
@pytest.mark.host
@pytest.mark.parametrize("found_by", ["path", "resolver"])
def test_host_main_linear_refuses_a_cifar100_backbone_for_a_cifar10_probe(tmp_path, found_by):
    import torch

    folder = tmp_path / "trained_models" / "frossl-cifar10" / "frossl" / "offline-ab12cd34"
    checkpoint = write_checkpoint(folder, dataset="cifar100")
    torch.save({"state_dict": {}}, checkpoint)
    args = ["--config-name", "frossl_linear.yaml", "accelerator=cpu", "data.num_workers=0"]
    if found_by == "path":
        args.append(f"pretrained_feature_extractor='{checkpoint}'")  # quoted: '=' in the name
    env = host_env()
    env.update(https_proxy=CLOSED_PORT_PROXY, http_proxy=CLOSED_PORT_PROXY)
    result = run_host_script("main_linear.py", args, cwd=tmp_path, timeout=300, env=env)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    fatal = [line for line in result.stderr.splitlines() if line.startswith(FATAL_PREFIX)]
    assert len(fatal) == 1, result.stderr
    assert str(checkpoint) in fatal[0]
    assert (
        "data.dataset: the probe has 'cifar10', args.json has data.dataset='cifar100'" in fatal[0]
    )
    assert "pretrained_feature_extractor=PATH" in fatal[0]
    # stopped before the data check, the load and training
    assert "Epoch 0" not in result.stdout + result.stderr
    assert not (tmp_path / "datasets").exists()
    assert not (tmp_path / "trained_models" / "linear").exists()
