"""Any timm model as a backbone (``backbone.name: timm/<model>``), through the host.

A sample of timm families, each at its smallest: ResNet (resnet10t), ConvNeXt (convnext_atto),
ViT (vit_tiny_patch16_224 with 8-px patches at 32 px), RegNet (regnetx_002) and EfficientNet
(efficientnet_b0). For each: output shapes against timm's own model, a ``fast_dev_run`` of the
FroSSL method, and the host's unmodified ``main_linear.py`` loading the backbone of a FroSSL
checkpoint with every key matched.
"""

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch
from helpers import (
    host_env,
    quick_demo_overrides,
    requires_host,
    run_host_script,
    write_tiny_image_folder,
)
from method_cfg import method_cfg

timm = pytest.importorskip("timm", reason="timm backbones need timm: pip install timm")

SIZE = 32
NUM_CLASSES = 5
# the start-up hook (regular installs) is what reaches main_knn.py/main_umap.py
HOOK_INSTALLED = (Path(sysconfig.get_paths()["purelib"]) / "frossl_plugin_hook.pth").is_file()


@pytest.fixture(autouse=True)
def undo_host_changes():
    """Each test undoes what it installed in the host: :func:`frossl_plugin.host.uninstall`."""

    yield
    import frossl_plugin.host

    frossl_plugin.host.uninstall()


# (backbone.name, backbone.kwargs, num_features, downsampling removed by small_input)
FAMILIES = [
    pytest.param("timm/resnet10t", {"small_input": True}, 512, 4, id="resnet"),
    pytest.param("timm/convnext_atto", {"small_input": True}, 320, 4, id="convnext"),
    pytest.param(
        "timm/vit_tiny_patch16_224", {"img_size": SIZE, "patch_size": 8}, 192, None, id="vit"
    ),
    pytest.param("timm/regnetx_002", {"small_input": True}, 368, 2, id="regnet"),
    pytest.param("timm/efficientnet_b0", {"small_input": True}, 1280, 2, id="efficientnet"),
]


def build(name, kwargs):
    from frossl_plugin.host.backbones import TimmBackboneFactory, timm_model_name

    return TimmBackboneFactory(timm_model_name(name))("frossl", **kwargs)


@pytest.mark.parametrize("name, kwargs, num_features, stem_factor", FAMILIES)
def test_headless_output_shapes(name, kwargs, num_features, stem_factor):
    model = build(name, kwargs).eval()
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        feats = model(x)
        feature_map = model.forward_features(x)
    assert model.num_features == num_features
    assert feats.shape == (2, num_features)
    assert isinstance(model.get_classifier(), torch.nn.Identity)

    # timm's own model with the same kwargs and weights gives the same features
    timm_kwargs = {k: v for k, v in kwargs.items() if k != "small_input"}
    reference = timm.create_model(name[len("timm/") :], num_classes=0, **timm_kwargs).eval()
    if stem_factor is None:  # ViT: tokens of 8-px patches plus the class token
        assert feature_map.shape == (2, (SIZE // 8) ** 2 + 1, num_features)
        reference.load_state_dict(model.state_dict())
        with torch.no_grad():
            torch.testing.assert_close(reference(x), feats)
    else:  # the stem no longer downsamples: the last map is stem_factor x larger
        total_reduction = model.feature_info[-1]["reduction"]
        side = SIZE * stem_factor // total_reduction
        assert feature_map.shape == (2, num_features, side, side)
        with torch.no_grad():
            assert reference.forward_features(x).shape[-1] == max(1, side // stem_factor)


def test_small_input_keeps_pretrained_stem_weights_when_only_the_stride_changes():
    model = build("timm/resnet10t", {"small_input": True})
    reference = timm.create_model("resnet10t", num_classes=0)
    assert model.conv1[0].stride == (1, 1) and reference.conv1[0].stride == (2, 2)
    assert isinstance(model.maxpool, torch.nn.Identity)
    assert model.state_dict().keys() == reference.state_dict().keys()
    convnext = build("timm/convnext_atto", {"small_input": True})
    stem = convnext.stem[0]
    assert (stem.kernel_size, stem.stride, stem.padding) == ((3, 3), (1, 1), (1, 1))


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("timm/convnext_atom", {}, "convnext_atto"),  # close match by spelling
        ("timm/resnet10", {}, "resnet10t"),  # close matches by wildcard
        ("timm/", {}, "Unknown timm model"),
        ("timm/resnet10t", {"num_classes": 10}, "num_classes"),
        ("timm/resnet10t", {"small_input": "yes"}, "small_input"),
        ("timm/resnet10t", {"pretrained": 1}, "pretrained"),
        ("timm/vit_tiny_patch16_224", {"small_input": True}, "patch_size"),
    ],
)
def test_bad_names_and_kwargs_raise_value_error(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build(name, kwargs)


def test_no_download_unless_pretrained(monkeypatch):
    import timm.models._builder as builder

    calls = []
    monkeypatch.setattr(builder, "load_pretrained", lambda *args, **kwargs: calls.append(args))
    build("timm/resnet10t", {})
    assert calls == []
    build("timm/resnet10t", {"pretrained": True})
    assert len(calls) == 1


@requires_host
def test_host_table_resolves_timm_names_and_rejects_unknown_ones():
    from solo.methods.base import BaseMethod

    from frossl_plugin.host.backbones import (
        TimmBackboneFactory,
        install_timm_backbone_table,
        register_timm_backbone,
    )

    host_names = set(BaseMethod._BACKBONES)
    table = install_timm_backbone_table()
    assert BaseMethod._BACKBONES is table and install_timm_backbone_table() is table
    assert host_names <= set(table) and table["resnet18"].__module__.startswith("solo.")
    assert "timm/regnetx_002" in BaseMethod._BACKBONES
    assert table["timm/regnety_002"] == TimmBackboneFactory("regnety_002")
    assert "timm/convnext_atom" not in BaseMethod._BACKBONES
    with pytest.raises(KeyError, match="convnext_atto"):
        BaseMethod._BACKBONES["timm/convnext_atom"]
    assert "resnet1000" not in table
    with pytest.raises(KeyError):
        table["resnet1000"]
    assert register_timm_backbone("timm/regnetx_002") is table["timm/regnetx_002"]

    import frossl_plugin.host

    frossl_plugin.host.uninstall()
    assert type(BaseMethod._BACKBONES) is dict and set(BaseMethod._BACKBONES) == host_names


@requires_host
def test_a_host_table_of_another_shape_is_refused_naming_the_host_commit(monkeypatch):
    from solo.methods.base import BaseMethod

    from frossl_plugin.host import HostMismatchError
    from frossl_plugin.host.backbones import install_timm_backbone_table

    monkeypatch.setattr(BaseMethod, "_BACKBONES", {"resnet18": "not a factory"})
    with pytest.raises(HostMismatchError, match=r"solo-learn 9187ea3.*BaseMethod.*_BACKBONES"):
        install_timm_backbone_table()
    assert BaseMethod._BACKBONES == {"resnet18": "not a factory"}


@requires_host
def test_names_the_host_overrides_in_timm_still_build_timm_models():
    """solo.backbones re-registers convnext_tiny in timm's registry with a builder that fixes
    ``pretrained`` and ``num_classes``; ``timm/convnext_tiny`` still gets timm's."""

    import solo.backbones  # noqa: F401  (re-registers the names)
    from timm.models import _registry

    host_builder = _registry._model_entrypoints["convnext_tiny"]
    assert host_builder.__module__.startswith("solo.")
    model = build("timm/convnext_tiny", {"pretrained": False, "drop_path_rate": 0.1})
    assert type(model).__module__ == "timm.models.convnext" and model.num_features == 768
    assert _registry._model_entrypoints["convnext_tiny"] is host_builder


def two_view_loader(batch_size: int = 4):
    from method_cfg import TwoViewDataset
    from torch.utils.data import DataLoader

    return DataLoader(TwoViewDataset(batch_size, (3, SIZE, SIZE), NUM_CLASSES), batch_size)


def fast_dev_run(method, name, kwargs, ckpt: Path = None, method_kwargs=None, momentum=False):
    from lightning.pytorch import Trainer
    from method_cfg import method_cfg
    from solo.methods import METHODS

    import frossl_plugin

    frossl_plugin.register()
    cfg = method_cfg(method, name, kwargs, method_kwargs, momentum=momentum)
    model = METHODS[method](cfg)
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    trainer = Trainer(accelerator="cpu", fast_dev_run=1, logger=False, enable_progress_bar=False)
    trainer.fit(model, two_view_loader())
    changed = [k for k, v in model.backbone.state_dict().items() if not torch.equal(v, before[k])]
    if ckpt is not None:
        trainer.save_checkpoint(ckpt)
    return model, changed


@requires_host
@pytest.mark.slow
@pytest.mark.parametrize("name, kwargs, num_features, stem_factor", FAMILIES)
def test_frossl_fast_dev_run_and_host_linear_loads_backbone(
    tmp_path, name, kwargs, num_features, stem_factor
):
    ckpt = tmp_path / "frossl.ckpt"
    small = {"proj_hidden_dim": 64, "proj_output_dim": 32}
    model, changed = fast_dev_run("frossl", name, kwargs, ckpt, small)
    assert model.features_dim == num_features
    assert changed, "one training step changed no backbone weight"

    pretrained = {
        k[len("backbone.") :]: v
        for k, v in torch.load(ckpt, weights_only=False)["state_dict"].items()
        if k.startswith("backbone.")
    }
    data = write_tiny_image_folder(tmp_path / "data", classes=NUM_CLASSES, size=SIZE)
    result = run_host_script(
        "main_linear.py",
        [
            "--config-name=frossl_demo_linear.yaml",
            f"pretrained_feature_extractor={ckpt}",
            f"backbone.name={name}",
            f"+backbone.kwargs={_hydra_dict(kwargs)}",
            f"data.train_path={data / 'train'}",
            f"data.val_path={data / 'val'}",
            "data.num_workers=0",
            "optimizer.batch_size=8",
            "max_epochs=1",
            "++limit_train_batches=2",
            "++limit_val_batches=1",
            "accelerator=cpu",
            f"checkpoint.dir={tmp_path / 'linear_models'}",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (linear_ckpt,) = (tmp_path / "linear_models").rglob("*.ckpt")
    linear = {
        k[len("backbone.") :]: v
        for k, v in torch.load(linear_ckpt, weights_only=False)["state_dict"].items()
        if k.startswith("backbone.")
    }
    # the host loads with strict=False and reports nothing: compare every key and parameter
    assert linear.keys() == pretrained.keys()
    reference = build(name, kwargs)
    assert set(reference.state_dict()) == set(pretrained)
    for param_name, _ in reference.named_parameters():  # frozen during the linear probe
        torch.testing.assert_close(linear[param_name], pretrained[param_name], rtol=0, atol=0)


def _hydra_dict(kwargs) -> str:
    items = ", ".join(
        f"{k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in kwargs.items()
    )
    return "{" + items + "}"


@requires_host
@pytest.mark.parametrize(
    "method, method_kwargs, momentum",
    [
        ("barlow_twins", {"proj_hidden_dim": 64, "proj_output_dim": 32}, False),
        ("vicreg", {"proj_hidden_dim": 64, "proj_output_dim": 32}, False),
        (
            "byol",
            {"proj_hidden_dim": 64, "proj_output_dim": 32, "pred_hidden_dim": 64},
            True,
        ),
    ],
)
def test_host_baselines_train_with_a_timm_backbone(method, method_kwargs, momentum):
    model, changed = fast_dev_run(
        method, "timm/regnetx_002", {"small_input": True}, None, method_kwargs, momentum
    )
    assert changed and model.features_dim == 368
    if momentum:  # the momentum copy is built by the same factory
        assert model.momentum_backbone.stem.conv.stride == (1, 1)


@requires_host
@pytest.mark.slow
def test_unmodified_main_pretrain_with_timm_backbone(tmp_path, demo_data):
    """As a new user would: the host's main_pretrain.py with ``backbone.name=timm/...`` (an
    unknown name: tests/test_setup_errors.py)."""

    common = quick_demo_overrides(demo_data, tmp_path / "models")
    result = run_host_script(
        "main_pretrain.py",
        common + ["backbone.name=timm/regnetx_002", "+backbone.kwargs={small_input: true}"],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (ckpt,) = (tmp_path / "models" / "frossl").rglob("*.ckpt")
    state = torch.load(ckpt, weights_only=False)["state_dict"]
    assert state["backbone.stem.conv.weight"].shape == (32, 3, 3, 3)  # regnetx_002's stem
    assert state["classifier.weight"].shape[1] == 368  # num_features
    args = json.loads((ckpt.parent / "args.json").read_text())  # what main_knn.py rebuilds from
    assert args["backbone"] == {"name": "timm/regnetx_002", "kwargs": {"small_input": True}}
    if HOOK_INSTALLED:  # as main_knn.py/main_umap.py rebuild it: only the start-up hook runs
        rebuild = (
            "import json, sys; from omegaconf import OmegaConf; from solo.methods import METHODS;"
            "args = json.load(open(sys.argv[2]));"
            "model = METHODS[args['method']].load_from_checkpoint("
            "sys.argv[1], strict=False, cfg=OmegaConf.create(args));"
            "print(type(model.backbone).__name__, model.backbone.stem.conv.stride)"
        )
        completed = subprocess.run(
            [sys.executable, "-c", rebuild, str(ckpt), str(ckpt.parent / "args.json")],
            cwd=tmp_path,
            env=host_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert completed.returncode == 0, completed.stderr[-3000:]
        assert completed.stdout.split("\n")[-2] == "RegNet (1, 1)"


@pytest.mark.slow
def test_torch_compile_backbone_matches_float64_and_keeps_state_dict_keys():
    """``torch_compile: true`` compiles in place: the same state-dict keys (checkpoints are
    interchangeable), and features and gradients as close to a float64 reference as eager's
    (CPU inductor here; timm/resnet18 as in the throughput benchmark)."""

    compiled = build("timm/resnet18", {"small_input": True, "torch_compile": True})
    eager = build("timm/resnet18", {"small_input": True})
    reference = build("timm/resnet18", {"small_input": True}).double()
    assert compiled.state_dict().keys() == eager.state_dict().keys()
    eager.load_state_dict(compiled.state_dict())
    reference.load_state_dict(compiled.state_dict())
    assert compiled._compiled_call_impl is not None and eager._compiled_call_impl is None

    x = torch.randn(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    results = {}
    for name, model in (("compiled", compiled), ("eager", eager), ("float64", reference)):
        model.train()
        feats = model(x.to(next(model.parameters()).dtype))
        feats.square().mean().backward()
        grads = {n: p.grad.double() for n, p in model.named_parameters()}
        results[name] = (feats.detach().double(), grads)

    ref_feats, ref_grads = results["float64"]
    for name in ("compiled", "eager"):
        feats, grads = results[name]
        assert (feats - ref_feats).norm() / ref_feats.norm() < 1e-5, name
        for param, ref_grad in ref_grads.items():  # relative to the gradient's norm
            if ref_grad.norm() == 0:  # blocks whose last BN starts at zero (timm's init)
                assert grads[param].norm() == 0, (name, param)
                continue
            error = float((grads[param] - ref_grad).norm() / ref_grad.norm())
            assert error < 1e-4, (name, param, error)


# --- the host's ResNets with the small-input (CIFAR) stem, for any dataset ------------------


@requires_host
@pytest.mark.parametrize("method", ["frossl", "barlow_twins", "byol"])
def test_small_input_resnet_has_the_hosts_cifar_stem_on_any_dataset(method):
    from solo.methods import METHODS

    import frossl_plugin

    frossl_plugin.register()
    kwargs = {"frossl": {"proj_output_dim": 32}, "barlow_twins": {}, "byol": {}}[method]
    extra = {
        "barlow_twins": {"proj_hidden_dim": 64, "proj_output_dim": 64, "scale_loss": 0.1},
        "byol": {"proj_hidden_dim": 64, "proj_output_dim": 32, "pred_hidden_dim": 64},
    }.get(method, {})
    folder = METHODS[method](
        method_cfg(
            method,
            "resnet18_small_input",
            method_kwargs={**kwargs, **extra},
            momentum=method == "byol",
        )
    )
    cifar_cfg = method_cfg(
        method, "resnet18", method_kwargs={**kwargs, **extra}, momentum=method == "byol"
    )
    cifar_cfg.data.dataset = "cifar10"
    cifar = METHODS[method](cifar_cfg)
    plain = METHODS[method](
        method_cfg(method, "resnet18", method_kwargs={**kwargs, **extra}, momentum=method == "byol")
    )
    # the same network as the host builds for CIFAR: every module and parameter shape
    assert repr(folder.backbone) == repr(cifar.backbone) != repr(plain.backbone)
    assert folder.features_dim == cifar.features_dim == 512
    assert isinstance(folder.backbone.maxpool, torch.nn.Identity)
    assert folder.backbone.conv1.stride == (1, 1) and folder.backbone.conv1.kernel_size == (3, 3)
    if method == "byol":  # the momentum backbone gets the same stem
        assert repr(folder.momentum_backbone) == repr(folder.backbone)
    # a 28-px image reaches the first stage at full size, not at 7 px
    stem = torch.nn.Sequential(folder.backbone.conv1, folder.backbone.maxpool)
    assert stem(torch.zeros(1, 3, 28, 28)).shape[-1] == 30
    plain_stem = torch.nn.Sequential(plain.backbone.conv1, plain.backbone.maxpool)
    assert plain_stem(torch.zeros(1, 3, 28, 28)).shape[-1] == 7


@requires_host
def test_small_input_names_are_in_the_host_table():
    from solo.methods.base import BaseMethod

    from frossl_plugin.host.backbones import SmallInputResNetFactory, install_timm_backbone_table

    table = install_timm_backbone_table()
    resnets = [name for name in table if name.startswith("resnet") and "small" not in name]
    assert resnets and all(f"{name}_small_input" in BaseMethod._BACKBONES for name in resnets)
    assert isinstance(table["resnet18_small_input"], SmallInputResNetFactory)
    assert "resnet18_small_input_small_input" not in table


@requires_host
@pytest.mark.slow
def test_small_input_backbone_pretrains_and_probes_through_the_host(tmp_path):
    """main_pretrain.py and main_linear.py build ``resnet18_small_input`` from the plugin's
    table, and the probe loads every backbone weight of the checkpoint."""

    data = write_tiny_image_folder(tmp_path / "data", classes=5, size=28)
    backbone = ["backbone.name=resnet18_small_input"]
    result = run_host_script(
        "main_pretrain.py",
        quick_demo_overrides(data, tmp_path / "ckpt") + backbone + ["augmentations.0.crop_size=28"],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    (checkpoint,) = (tmp_path / "ckpt").rglob("*.ckpt")
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    assert tuple(state["backbone.conv1.weight"].shape) == (64, 3, 3, 3)
    args = json.loads((checkpoint.parent / "args.json").read_text())
    assert args["backbone"]["name"] == "resnet18_small_input"

    probe = run_host_script(
        "main_linear.py",
        [
            "--config-name",
            "frossl_demo_linear.yaml",
            f"pretrained_feature_extractor='{checkpoint}'",
            *backbone,
            "data.eval_crop_size=28",
            "optimizer.batch_size=8",
            "max_epochs=1",
            "+limit_train_batches=2",
            "+limit_val_batches=2",
            "data.num_workers=0",
            f"data.train_path={data / 'train'}",
            f"data.val_path={data / 'val'}",
            "checkpoint.dir=linear",
        ],
        cwd=tmp_path,
    )
    assert probe.returncode == 0, probe.stderr[-4000:]
    (linear,) = (tmp_path / "linear").rglob("*.ckpt")
    probed = torch.load(linear, map_location="cpu", weights_only=False)["state_dict"]
    for key in ("backbone.conv1.weight", "backbone.layer4.1.conv2.weight"):
        assert torch.equal(probed[key], state[key]), key  # loaded, and frozen by the probe
