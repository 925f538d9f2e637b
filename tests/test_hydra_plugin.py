"""The Hydra search-path plugin and the shipped configs (no host needed)."""

import importlib
import subprocess
import sys
import textwrap
from importlib import resources
from pathlib import Path

import pytest
from hydra import compose, initialize
from hydra.core.plugins import Plugins
from hydra.plugins.search_path_plugin import SearchPathPlugin
from omegaconf import OmegaConf

CONFIG_DIR = resources.files("frossl_plugin.configs")
TOP_LEVEL_CONFIGS = sorted(p.name for p in CONFIG_DIR.iterdir() if p.name.endswith(".yaml"))
PRETRAIN_CONFIGS = [
    name
    for name in TOP_LEVEL_CONFIGS
    if name.startswith("frossl") and not name.endswith("_linear.yaml")
]
LINEAR_CONFIGS = [name for name in TOP_LEVEL_CONFIGS if name.endswith("_linear.yaml")]
CALLBACK = "frossl_plugin.hydra_callback.FroSSLPluginCallback"


def compose_config(name, overrides=()):
    with initialize(version_base="1.2", config_path=None):
        return compose(config_name=name, overrides=list(overrides), return_hydra_config=True)


def test_search_path_plugin_is_discovered():
    plugins = Plugins.instance().discover(SearchPathPlugin)
    assert "FroSSLSearchPathPlugin" in [plugin.__name__ for plugin in plugins]


def test_hydra_plugins_is_a_namespace_package():
    namespace = importlib.import_module("hydra_plugins")
    plugin = importlib.import_module("hydra_plugins.frossl_plugin")

    assert getattr(namespace, "__file__", None) is None  # no hydra_plugins/__init__.py
    assert (Path(plugin.__file__).parent / "py.typed").is_file()


def test_the_configs_hydra_loads_are_the_checkouts_file_for_file():
    """What this interpreter's installed package serves, compared by content. Under an editable
    install these may be links to the checkout itself; tests/test_packaging.py compares a built
    wheel's configs with the checkout byte for byte."""

    repo_configs = Path(__file__).resolve().parents[1] / "configs"
    if not repo_configs.is_dir():
        pytest.skip("not run from a source checkout")
    shipped = {
        p.relative_to(repo_configs).as_posix(): p.read_bytes() for p in repo_configs.rglob("*.yaml")
    }
    installed = {}
    for entry in CONFIG_DIR.iterdir():
        for file in entry.iterdir() if entry.is_dir() else [entry]:
            if file.name.endswith(".yaml"):
                name = f"{entry.name}/{file.name}" if entry.is_dir() else file.name
                installed[name] = file.read_bytes()
    assert sorted(installed) == sorted(shipped)
    assert [name for name in shipped if installed[name] != shipped[name]] == []


def test_every_dataset_has_a_pretrain_and_a_linear_config():
    assert {"frossl.yaml", "frossl_linear.yaml", "frossl_demo.yaml"} <= set(TOP_LEVEL_CONFIGS)
    for dataset in ("cifar100", "stl10", "tinyimagenet", "imagenet100", "imagenet", "demo"):
        assert f"frossl_{dataset}.yaml" in PRETRAIN_CONFIGS
        assert f"frossl_{dataset}_linear.yaml" in LINEAR_CONFIGS


@pytest.mark.parametrize("name", PRETRAIN_CONFIGS)
def test_pretrain_configs_compose_on_their_own(name):
    cfg = compose_config(name)
    assert cfg.method == "frossl"
    assert cfg.hydra.callbacks.frossl_plugin._target_ == CALLBACK
    assert cfg.wandb.enabled is False
    assert len(cfg.augmentations) >= 1 and all("crop_size" in aug for aug in cfg.augmentations)
    large = [a for a in cfg.augmentations if a.crop_size == cfg.augmentations[0].crop_size]
    assert sum(a.num_crops for a in large) == 2  # the unmodified host accepts exactly 2
    hidden, output = PROJECTOR.get(name, (2048, 1024))  # the paper's 2048-2048-1024 projector
    assert OmegaConf.to_container(cfg.method_kwargs) == {
        "proj_hidden_dim": hidden,
        "proj_output_dim": output,
        "invariance_weight": INVARIANCE_WEIGHT.get(name, 1.0),
        "gather_across_devices": False,
        "center": CENTER[name],
    }


@pytest.mark.parametrize("name", LINEAR_CONFIGS)
def test_linear_configs_compose_on_their_own(name):
    cfg = compose_config(name, overrides=["pretrained_feature_extractor=x.ckpt"])
    assert cfg.pretrain_method == "frossl" and cfg.backbone.name == "resnet18"
    assert cfg.hydra.callbacks.frossl_plugin._target_ == CALLBACK
    assert cfg.data.dataset == compose_config(name.replace("_linear", "")).data.dataset


# configs whose method_kwargs differ from the paper's defaults (projector 2048-1024, w = 1)
PROJECTOR = {"frossl_demo.yaml": (512, 256)}  # a small CPU demo
INVARIANCE_WEIGHT = {  # docs/method.md: STL-10 1.4, ImageNet 2.0
    "frossl_stl10.yaml": 1.4,
    "frossl_stl10_4views.yaml": 1.4,
    "frossl_stl10_8views.yaml": 1.4,
    "frossl_imagenet.yaml": 2.0,
}


def _settings(cfg):
    return {
        "backbone": cfg.backbone.name,
        "projector": (cfg.method_kwargs.proj_hidden_dim, cfg.method_kwargs.proj_output_dim),
        "optimizer": (cfg.optimizer.name, cfg.optimizer.lr, cfg.optimizer.weight_decay),
        "lars": (cfg.optimizer.kwargs.eta, cfg.optimizer.kwargs.clip_lr),
        "exclude_bias_n_norm": cfg.optimizer.kwargs.exclude_bias_n_norm,
        "classifier_lr": cfg.optimizer.classifier_lr,
        "scheduler": cfg.scheduler.name,
        "batch": cfg.optimizer.batch_size
        * (len(cfg.devices) if not isinstance(cfg.devices, str) else 1),
        "epochs": cfg.max_epochs,
        "w": cfg.method_kwargs.invariance_weight,
        "center": cfg.method_kwargs.center,
        "crop": cfg.augmentations[0].crop_size,
        "precision": str(cfg.precision),
        "dataset": (cfg.data.dataset, cfg.data.format),
    }


METHOD_DOC = Path(__file__).resolve().parents[1] / "docs" / "method.md"
TABLE_MARKER = "<!-- paper-settings-table: read by tests/test_hydra_plugin.py -->"


def paper_settings_table(path=METHOD_DOC):
    """The settings table of docs/method.md (transcribed from the official configs), by config:
    a pin of the shipped configs against that transcription."""

    lines = path.read_text().split(TABLE_MARKER, 1)[1].strip().splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    table = {}
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        row = dict(zip(header, (cell.strip() for cell in line.strip("|").split("|"))))
        table[row["config"]] = dict(
            lr=float(row["lr"]),
            epochs=int(row["epochs"]),
            batch=int(row["batch"]),
            w=float(row["w"]),
            crop=int(row["crop"]),
            precision=row["precision"],
            dataset=(row["dataset"], row["format"]),
            center={"true": True, "false": False}[row["center"]],
        )
    return table


PAPER = paper_settings_table()


# method_kwargs.center of every pretraining config. The paper's two-view runs used the official
# two-view loss, which centres each feature (center: true; the fast configs are the same recipes);
# its 4- and 8-view runs used the multiview loss (false). The demo (whose README figures were
# measured with it) and the custom-folder configs keep the method default, false.
CENTER = {
    **{name: paper["center"] for name, paper in PAPER.items()},
    "frossl_fast.yaml": True,
    "frossl_imagenet100_fast.yaml": True,
    "frossl_demo.yaml": False,
    "frossl_custom.yaml": False,
    "frossl_custom_dali.yaml": False,
    # the paper's CIFAR recipe with 4 and 8 full-size views: the multiview loss, as its
    # multiview runs
    "frossl_cifar10_4views.yaml": False,
    "frossl_cifar10_8views.yaml": False,
    "frossl_cifar100_4views.yaml": False,
    "frossl_cifar100_8views.yaml": False,
}


def test_every_pretrain_config_declares_its_loss_variant():
    assert sorted(CENTER) == PRETRAIN_CONFIGS


def test_the_settings_table_covers_every_paper_config():
    assert len(PAPER) == 8 and set(PAPER) <= set(PRETRAIN_CONFIGS)


@pytest.mark.parametrize("name", sorted(PAPER))
def test_configs_match_the_settings_table_of_the_docs(name):
    paper = PAPER[name]
    settings = _settings(compose_config(name))
    assert settings["backbone"] == "resnet18"
    assert settings["projector"] == (2048, 1024)
    assert settings["optimizer"] == ("lars", paper["lr"], 1e-4)
    assert settings["lars"] == (0.02, True) and settings["exclude_bias_n_norm"] is True
    assert settings["classifier_lr"] == 0.1 and settings["scheduler"] == "warmup_cosine"
    for key in ("epochs", "batch", "w", "crop", "precision", "dataset", "center"):
        assert settings[key] == paper[key], key


MULTIVIEW_CONFIGS = {  # config: (dataset, first crop size, views)
    "frossl_stl10_4views.yaml": ("stl10", 96, 4),
    "frossl_stl10_8views.yaml": ("stl10", 96, 8),
    "frossl_cifar10_4views.yaml": ("cifar10", 32, 4),
    "frossl_cifar10_8views.yaml": ("cifar10", 32, 8),
    "frossl_cifar100_4views.yaml": ("cifar100", 32, 4),
    "frossl_cifar100_8views.yaml": ("cifar100", 32, 8),
}


@pytest.mark.parametrize("name", sorted(MULTIVIEW_CONFIGS))
def test_multiview_configs_add_full_size_views(name):
    """2 large crops of S plus V - 2 written [S, S]: the host counts them as small crops, its
    loaders crop them at S x S (tests/test_multiview.py runs them through the host)."""

    dataset, size, views = MULTIVIEW_CONFIGS[name]
    cfg = compose_config(name)
    crops = [(a["crop_size"], a["num_crops"]) for a in OmegaConf.to_container(cfg.augmentations)]
    assert crops == [(size, 2), ([size, size], views - 2)]
    assert cfg.data.dataset == dataset and cfg.data.eval_crop_size == size
    # the extra views are distributed as the first two: only the size is written differently
    first, extra = (OmegaConf.to_container(a) for a in cfg.augmentations)
    assert {**extra, "crop_size": size, "num_crops": 2} == first
    assert cfg.method_kwargs.center is False and cfg.method_kwargs.proj_output_dim == 1024
    header = [line for line in (CONFIG_DIR / name).read_text().splitlines() if line[:1] == "#"]
    assert f"{views} full-size views" in header[0] and "center: false" in " ".join(header)
    if dataset.startswith("cifar"):  # the paper's CIFAR recipe
        two_views = compose_config(
            "frossl.yaml" if dataset == "cifar10" else f"frossl_{dataset}.yaml"
        )
        for key in ("optimizer", "scheduler", "max_epochs", "precision", "backbone"):
            assert cfg[key] == two_views[key], key


@pytest.mark.parametrize("views", [4, 8])
@pytest.mark.parametrize("recipe, size, small", [("cifar", 32, 21), ("stl10", 96, 64)])
def test_small_extra_views_stay_available(recipe, size, small, views):
    name = {
        "cifar": f"frossl_cifar10_{views}views.yaml",
        "stl10": f"frossl_stl10_{views}views.yaml",
    }
    files = {"cifar": "cifar_symmetric_small_views", "stl10": "stl10_symmetric_weak_small_views"}
    override = f"augmentations={files[recipe]} augmentations.1.num_crops={views - 2}"
    assert override in (CONFIG_DIR / name[recipe]).read_text()  # named in the config's header
    cfg = compose_config(name[recipe], override.split())
    crops = [(a.crop_size, a.num_crops) for a in cfg.augmentations]
    assert crops == [(size, 2), (small, views - 2)]


def test_custom_folder_configs_evaluate_at_the_training_resolution():
    for name in ("frossl_demo.yaml", "frossl_tinyimagenet.yaml"):
        cfg = compose_config(name)
        assert cfg.data.dataset == "custom"
        assert cfg.data.eval_crop_size == cfg.augmentations[0].crop_size
        linear = compose_config(
            name.replace(".yaml", "_linear.yaml"), ["pretrained_feature_extractor=x"]
        )
        assert linear.data.eval_crop_size == cfg.data.eval_crop_size


def test_eval_crop_size_follows_the_crop_size_unless_set():
    cfg = compose_config("frossl_custom.yaml", ["augmentations.0.crop_size=64"])
    assert cfg.data.eval_crop_size == 64
    cfg = compose_config("frossl_custom.yaml", ["data.eval_crop_size=48"])
    assert cfg.data.eval_crop_size == 48 and cfg.augmentations[0].crop_size == 32
    assert compose_config("frossl_custom_dali.yaml").data.eval_crop_size is None  # host's 224 px


def test_a_hydra_app_without_config_path_finds_the_configs(tmp_path):
    app = tmp_path / "app.py"
    app.write_text(
        textwrap.dedent(
            """
            import hydra

            @hydra.main(version_base="1.2")
            def main(cfg):
                print("METHOD", cfg.method, "CROPS", [a.crop_size for a in cfg.augmentations])

            main()
            """
        )
    )
    result = subprocess.run(
        [
            sys.executable,
            str(app),
            "--config-name",
            "frossl_stl10_4views.yaml",
            "~hydra.callbacks.frossl_plugin",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "METHOD frossl CROPS [96, [96, 96]]" in result.stdout
