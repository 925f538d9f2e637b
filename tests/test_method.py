"""FroSSL as a solo-learn method, in the host's test style: config, shapes, a fast_dev_run."""

import subprocess
import sys

import pytest
import torch
from helpers import host_env, requires_host, write_tiny_image_folder
from omegaconf import OmegaConf

pytestmark = requires_host

NUM_CLASSES = 5


@pytest.fixture(autouse=True)
def undo_host_changes():
    """Each test undoes what it installed in the host: :func:`frossl_plugin.host.uninstall`."""

    yield
    import frossl_plugin.host

    frossl_plugin.host.uninstall()


def method_cfg(tmp_path, overrides=(), small_crops=0):
    """The demo config, composed through the plugin's search path and parsed by the host;
    ``small_crops`` adds that many 16-px crops (views that the host calls small)."""

    from hydra import compose, initialize
    from solo.args.pretrain import parse_cfg

    data = write_tiny_image_folder(tmp_path / "data", classes=NUM_CLASSES)
    with initialize(version_base="1.2", config_path=None):
        cfg = compose(
            config_name="frossl_demo.yaml",
            overrides=[
                f"data.train_path={data / 'train'}",
                f"data.val_path={data / 'val'}",
                "method_kwargs.proj_hidden_dim=64",
                "method_kwargs.proj_output_dim=32",
                "optimizer.batch_size=8",
                *overrides,
            ],
        )
    OmegaConf.set_struct(cfg, False)
    if small_crops:
        small = OmegaConf.merge(cfg.augmentations[0], {"crop_size": 16, "num_crops": small_crops})
        cfg.augmentations.append(small)
    return parse_cfg(cfg)


def fake_batch(cfg, batch_size=8):
    crops = [
        torch.randn(batch_size, 3, aug.crop_size, aug.crop_size)
        for aug in cfg.augmentations
        for _ in range(aug.num_crops)
    ]
    return [torch.arange(batch_size), crops, torch.randint(0, NUM_CLASSES, (batch_size,))]


def test_forward_shapes_and_checkpoint_layout(tmp_path):
    from frossl_plugin.methods.frossl import FroSSL

    cfg = method_cfg(tmp_path)
    model = FroSSL(cfg).eval()
    out = model(torch.randn(4, 3, 32, 32))
    assert out["feats"].shape == (4, 512)
    assert out["z"].shape == (4, 32)
    assert out["logits"].shape == (4, NUM_CLASSES)
    small = model.multicrop_forward(torch.randn(4, 3, 16, 16))
    assert small["z"].shape == (4, 32)

    prefixes = {key.split(".")[0] for key in model.state_dict()}
    assert prefixes == {"backbone", "projector", "classifier"}
    names = [group["name"] for group in model.learnable_params]
    assert names == ["backbone", "classifier", "projector"]


def test_projector_layers(tmp_path):
    from frossl_plugin.methods.frossl import FroSSL

    layers = [type(m).__name__ for m in FroSSL(method_cfg(tmp_path)).projector]
    assert layers == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d", "ReLU", "Linear"]


@pytest.mark.parametrize("center", [False, True])
def test_training_step_uses_every_crop_and_logs_the_terms(tmp_path, monkeypatch, center):
    import frossl_plugin.methods.frossl as method_module
    from frossl_plugin.methods.frossl import FroSSL

    # a plain override: configs/base/pretrain.yaml holds the default
    cfg = method_cfg(tmp_path, [f"method_kwargs.center={str(center).lower()}"], small_crops=2)
    assert cfg.method_kwargs.center is center
    assert (cfg.data.num_large_crops, cfg.data.num_small_crops) == (2, 2)
    model = FroSSL(cfg)

    seen, logged = {}, {}
    original = method_module.frossl_loss_func

    def spy(z, **kwargs):
        seen["shapes"] = [tuple(view.shape) for view in z]
        seen["kwargs"] = kwargs
        return original(z, **kwargs)

    monkeypatch.setattr(method_module, "frossl_loss_func", spy)
    monkeypatch.setattr(model, "log", lambda name, value, **kw: logged.update({name: (value, kw)}))
    monkeypatch.setattr(model, "log_dict", lambda *a, **kw: None)

    loss = model.training_step(fake_batch(cfg), 0)
    assert seen["shapes"] == [(8, 32)] * 4
    assert seen["kwargs"] == {
        "invariance_weight": 1.0,
        "gather_across_devices": False,
        "center": center,
    }
    assert set(logged) == {
        "train_frossl_loss",
        "train_frossl_invariance",
        "train_frossl_regularization",
    }
    assert all(kw == {"on_epoch": True, "sync_dist": True} for _, kw in logged.values())
    frossl_loss, invariance, regularization = (
        logged[f"train_frossl_{k}"][0] for k in ("loss", "invariance", "regularization")
    )
    assert torch.allclose(frossl_loss, regularization + invariance)
    assert loss.dim() == 0 and torch.isfinite(loss) and not torch.equal(loss, frossl_loss)


def _fast_dev_run(cfg):
    from lightning.pytorch import Trainer

    from frossl_plugin.methods.frossl import FroSSL

    model = FroSSL(cfg)

    class FakeCrops(torch.utils.data.Dataset):
        def __len__(self):
            return 16

        def __getitem__(self, index):
            crops = [torch.randn(3, 32, 32) for _ in range(cfg.data.num_large_crops)]
            return index, crops, index % NUM_CLASSES

    batches = torch.utils.data.DataLoader(FakeCrops(), batch_size=8)
    trainer = Trainer(
        fast_dev_run=True,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
    )
    before = model.projector[0].weight.detach().clone()
    trainer.fit(model, batches)
    assert not torch.equal(before, model.projector[0].weight)
    return trainer


def test_fast_dev_run(tmp_path, recwarn):
    trainer = _fast_dev_run(method_cfg(tmp_path))  # D = 32 = 4 x the batch of 8: no warning
    assert torch.isfinite(trainer.callback_metrics["train_frossl_loss"])
    assert not [w for w in recwarn if "proj_output_dim" in str(w.message)]


def test_projector_much_wider_than_the_batch_warns_at_train_start(tmp_path):
    cfg = method_cfg(tmp_path, ["method_kwargs.proj_output_dim=65"])
    with pytest.warns(UserWarning, match=r"proj_output_dim=65 is more than 8 x the 8 samples"):
        _fast_dev_run(cfg)


def test_defaults_are_filled(tmp_path):
    from frossl_plugin.methods.frossl import FroSSL

    cfg = method_cfg(tmp_path)
    cfg.method_kwargs = {}
    cfg = FroSSL.add_and_assert_specific_cfg(cfg)
    assert OmegaConf.to_container(cfg.method_kwargs) == {
        "proj_hidden_dim": 2048,
        "proj_output_dim": 16,  # auto: 4 x the batch of 8 / 2 views
        "invariance_weight": 1.0,
        "gather_across_devices": False,
        "center": False,
    }


def test_importing_the_method_registers_it(tmp_path):
    code = (
        "from frossl_plugin.methods.frossl import FroSSL; from solo.methods import METHODS; "
        "print(METHODS['frossl'] is FroSSL)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=host_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True" and "could not register" not in result.stderr


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("proj_hidden_dim", 0, "proj_hidden_dim must be a positive integer, but found 0"),
        ("proj_output_dim", -3, "proj_output_dim must be a positive integer or auto, but found -3"),
        ("proj_output_dim", 2.5, "positive integer or auto, but found 2.5"),
        ("proj_output_dim", "wide", "positive integer or auto, but found 'wide'"),
        ("proj_hidden_dim", "2048", "positive integer, but found '2048'"),
        ("proj_hidden_dim", True, "positive integer, but found True"),
        ("invariance_weight", -1.0, "invariance_weight must be a finite number >= 0"),
        ("invariance_weight", "heavy", "finite number >= 0 or auto, but found 'heavy'"),
        ("invariance_weight", "Auto", "finite number >= 0 or auto, but found 'Auto'"),
        ("invariance_weight", float("nan"), "invariance_weight must be a finite number >= 0"),
        ("gather_across_devices", "yes", "gather_across_devices must be true or false"),
        ("center", "yes", "center must be true or false, but found 'yes'"),
        ("center", 1, "center must be true or false, but found 1"),
        ("center", None, "center must be true or false, but found None"),
        ("invariance_wieght", 1.0, r"Unknown FroSSL method_kwargs \['invariance_wieght'\]"),
        ("proj_output_dim", "???", r"method_kwargs.proj_output_dim is missing"),
    ],
)
def test_bad_method_kwargs_raise_value_error(tmp_path, key, value, message):
    from frossl_plugin.methods.frossl import FroSSL

    cfg = method_cfg(tmp_path)
    cfg.method_kwargs = {**OmegaConf.to_container(cfg.method_kwargs), key: value}
    with pytest.raises(ValueError, match=message):
        FroSSL.add_and_assert_specific_cfg(cfg)


def test_custom_eval_crop_size_replaces_the_hosts_224px_pipeline(tmp_path, monkeypatch):
    import solo.data.classification_dataloader as host_loader
    from torchvision import transforms

    from frossl_plugin.host.eval_transforms import apply_custom_eval_crop_size

    monkeypatch.setattr(host_loader, "build_custom_pipeline", host_loader.build_custom_pipeline)
    cfg = method_cfg(tmp_path)

    def sizes(pipeline):
        return [(type(t).__name__, getattr(t, "size", None)) for t in pipeline.transforms[:2]]

    _, host_val = host_loader.prepare_transforms("custom")
    assert sizes(host_val) == [("Resize", 256), ("CenterCrop", (224, 224))]

    assert apply_custom_eval_crop_size(cfg) == 32
    train, val = host_loader.prepare_transforms("custom")
    # the host's Resize(256) + CenterCrop(224), scaled: 32 * 256 / 224 = 36.6 -> 37
    assert sizes(val) == [("Resize", 37), ("CenterCrop", (32, 32))]
    assert isinstance(train.transforms[0], transforms.RandomResizedCrop)
    assert train.transforms[0].size == (32, 32)

    cfg.data.eval_crop_size = 0
    with pytest.raises(ValueError, match="eval_crop_size must be a positive integer, but found 0"):
        apply_custom_eval_crop_size(cfg)
    cfg.data.dataset = "cifar10"  # only custom folders are touched
    assert apply_custom_eval_crop_size(cfg) is None


@pytest.mark.parametrize("crop_size, resize", [(224, 256), (96, 110), (64, 73), (28, 32)])
def test_custom_eval_pipeline_keeps_the_hosts_resize_ratio(
    tmp_path, monkeypatch, crop_size, resize
):
    import solo.data.classification_dataloader as host_loader

    from frossl_plugin.host.eval_transforms import apply_custom_eval_crop_size

    monkeypatch.setattr(host_loader, "build_custom_pipeline", host_loader.build_custom_pipeline)
    host = {
        name: repr(t) for name, t in zip(("train", "val"), host_loader.prepare_transforms("custom"))
    }
    cfg = method_cfg(tmp_path)
    cfg.data.eval_crop_size = crop_size
    apply_custom_eval_crop_size(cfg)
    train, val = host_loader.prepare_transforms("custom")
    assert [type(t).__name__ for t in val.transforms][:2] == ["Resize", "CenterCrop"]
    assert val.transforms[0].size == resize and val.transforms[1].size == (crop_size, crop_size)
    if crop_size == 224:  # exactly the host's own protocol, step for step
        assert {"train": repr(train), "val": repr(val)} == host


# --- collapse risk (configuration advice, in the method module) ---


@pytest.mark.parametrize(
    "batch, dim, warns", [(128, 1024, False), (127, 1024, True), (64, 1024, True), (64, 128, False)]
)
def test_collapse_risk_flags_projectors_over_eight_times_the_batch(batch, dim, warns):
    from frossl_plugin.methods.frossl import collapse_risk

    message = collapse_risk(batch, dim)
    if warns:
        assert f"proj_output_dim={dim} is more than 8 x the {batch} samples" in message
    else:
        assert message is None


def test_collapse_risk_counts_the_global_batch_only_when_gathering():
    from frossl_plugin.methods.frossl import collapse_risk

    assert collapse_risk(64, 1024, world_size=2, gather_across_devices=True) is None
    message = collapse_risk(64, 1024, world_size=2, gather_across_devices=False)
    assert "more than 8 x the 64 samples" in message
    message = collapse_risk(32, 1024, world_size=2, gather_across_devices=True)
    assert "more than 8 x the 64 samples" in message


@pytest.mark.parametrize(
    "batch, devices, nodes, gather, views, dim",
    [
        (8, [0], 1, False, 2, 16),
        (64, [0], 1, False, 2, 128),
        (128, [0], 1, False, 2, 256),
        (255, [0], 1, False, 2, 510),  # below the paper's batch: 2 N
        (256, [0], 1, False, 2, 1024),  # the paper's batch and width
        (2048, [0], 1, False, 2, 1024),
        (256, [0], 1, False, 8, 1024),  # the paper's 8-view runs: 1024 at batch 256
        (64, [0, 1], 2, False, 2, 128),  # each device's batch
        (32, [0, 1], 2, True, 2, 256),  # the global batch of 4 processes
        (64, [0, 1], 2, True, 2, 1024),  # a global batch of 256
        (32, "2", 1, True, 2, 128),  # "2" is two devices, as Lightning reads it
        (32, "0,1", 1, True, 2, 128),
        (32, 2, 1, True, 2, 128),
        (64, [0], 1, False, 4, 64),  # V x D <= 4 N: narrower with more views
        (64, [0], 1, False, 8, 32),
        (1, [0], 1, False, 8, 1),  # never below 1
    ],
)
def test_auto_width_is_the_papers_from_its_batch_else_four_times_the_batch_over_the_views(
    tmp_path, batch, devices, nodes, gather, views, dim
):
    from frossl_plugin.methods.frossl import FroSSL

    cfg = method_cfg(tmp_path)
    cfg.optimizer.batch_size, cfg.devices, cfg.num_nodes = batch, devices, nodes
    cfg.data.num_large_crops, cfg.data.num_small_crops = 2, views - 2
    cfg.method_kwargs.proj_output_dim = "auto"
    cfg.method_kwargs.gather_across_devices = gather
    assert FroSSL.add_and_assert_specific_cfg(cfg).method_kwargs.proj_output_dim == dim


@pytest.mark.parametrize(
    "batch, devices, gather, views, weight",
    [
        (64, [0], False, 2, 1.0),  # two views: the paper's weight at any batch
        (64, [0], False, 4, 0.5),  # below the paper's batch: 2 / V
        (64, [0], False, 8, 0.25),
        (255, [0], False, 3, 2 / 3),
        (256, [0], False, 8, 1.0),  # from the paper's batch up: the paper's, for any V
        (64, 4, True, 8, 1.0),  # the loss sees 4 x 64 gathered
    ],
)
def test_auto_invariance_weight_is_the_papers_from_its_batch_else_two_over_the_views(
    tmp_path, batch, devices, gather, views, weight
):
    from frossl_plugin.methods.frossl import FroSSL

    cfg = method_cfg(tmp_path)
    cfg.optimizer.batch_size, cfg.devices, cfg.num_nodes = batch, devices, 1
    cfg.data.num_large_crops, cfg.data.num_small_crops = 2, views - 2
    cfg.method_kwargs.invariance_weight = "auto"
    cfg.method_kwargs.gather_across_devices = gather
    resolved = FroSSL.add_and_assert_specific_cfg(cfg).method_kwargs.invariance_weight
    assert isinstance(resolved, float) and resolved == pytest.approx(weight)


def test_auto_invariance_weight_reaches_the_loss(tmp_path):
    from frossl_plugin.methods.frossl import FroSSL

    cfg = method_cfg(tmp_path, ["method_kwargs.invariance_weight=auto"], small_crops=2)
    model = FroSSL(FroSSL.add_and_assert_specific_cfg(cfg))
    assert model.invariance_weight == pytest.approx(0.5)  # 4 views at a batch below 256


@pytest.mark.parametrize("devices", ["auto", "-1", -1, [], "", True])
def test_auto_width_refuses_devices_it_cannot_count_when_gathering(tmp_path, devices):
    from frossl_plugin.methods.frossl import FroSSL

    cfg = method_cfg(tmp_path)
    cfg.devices = devices
    cfg.method_kwargs.proj_output_dim = "auto"
    cfg.method_kwargs.gather_across_devices = True
    with pytest.raises(ValueError, match=r"devices=.*give devices as a number"):
        FroSSL.add_and_assert_specific_cfg(cfg)
    cfg.method_kwargs.gather_across_devices = False  # the local batch needs no count
    cfg.method_kwargs.proj_output_dim = "auto"
    assert FroSSL.add_and_assert_specific_cfg(cfg).method_kwargs.proj_output_dim == 16


def test_a_loss_batch_the_trainer_does_not_run_stops_training(tmp_path):
    from types import SimpleNamespace

    from frossl_plugin.methods.frossl import FroSSL

    overrides = ["method_kwargs.gather_across_devices=true", "method_kwargs.proj_output_dim=auto"]
    cfg = method_cfg(tmp_path, overrides)
    cfg.devices = [0, 1]  # counted as 2 processes; the trainer below runs 1
    model = FroSSL(cfg)
    model._trainer = SimpleNamespace(world_size=1)
    with pytest.raises(ValueError, match="counted a loss batch of 16 .* runs 1 processes of 8"):
        model.on_train_start()
    model._trainer = SimpleNamespace(world_size=2)
    model.on_train_start()  # the count matches
    # an explicit width does not depend on the count
    cfg = method_cfg(tmp_path, ["method_kwargs.gather_across_devices=true"])
    cfg.devices = [0, 1]
    model = FroSSL(cfg)
    model._trainer = SimpleNamespace(world_size=1)
    model.on_train_start()


def test_auto_width_counts_the_small_crops_the_host_parsed(tmp_path):
    from frossl_plugin.methods.frossl import FroSSL

    cfg = method_cfg(tmp_path, ["method_kwargs.proj_output_dim=auto"], small_crops=2)
    assert FroSSL(cfg).projector[-1].out_features == 8  # 4 x the batch of 8 / 4 views


def test_auto_width_builds_the_projector_and_is_what_the_run_records(tmp_path, recwarn):
    from frossl_plugin.methods.frossl import FroSSL

    cfg = method_cfg(tmp_path, ["method_kwargs.proj_output_dim=auto"])
    model = FroSSL(cfg)
    assert model.projector[-1].out_features == 16 and model.proj_output_dim == 16
    assert cfg.method_kwargs.proj_output_dim == 16  # the host saves this cfg in args.json
    trainer = _fast_dev_run(cfg)
    assert torch.isfinite(trainer.callback_metrics["train_frossl_loss"])
    assert not [w for w in recwarn if "proj_output_dim" in str(w.message)]


def test_the_collapse_warning_names_the_auto_width():
    from frossl_plugin.methods.frossl import collapse_risk

    assert "method_kwargs.proj_output_dim=auto (here 128)" in collapse_risk(64, 1024)
    assert "method_kwargs.proj_output_dim=auto (here 32)" in collapse_risk(64, 1024, views=8)
