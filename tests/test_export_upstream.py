"""``frossl-plugin export-upstream``: the exports into temporary clones of solo-learn pass the
host's own tests and linters, match the plugin, and train with the host's main_pretrain.py."""

import ast
import importlib.util
import os
import re
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest
import torch
import yaml
from helpers import HOST_PATH, host_env, requires_host, write_tiny_image_folder

from frossl_plugin.losses.frossl import frossl_loss_func
from frossl_plugin.upstream.checkout import license_header
from frossl_plugin.upstream.export import (
    FILES,
    MODULE_MAP,
    export_frossl,
    export_plugin_api,
    host_relative_path,
    plugin_source_path,
)

pytestmark = requires_host

# the linters of the host: black as its .pre-commit-config.yaml runs it; the host configures no
# isort or flake8, so they run with black-compatible settings and solo as third party, which is
# how the host's own modules group their imports
BLACK = ["-m", "black", "--check", "--diff", "--line-length", "100"]
ISORT = ["-m", "isort", "--check-only", "--diff", "--profile", "black", "--line-length", "100"]
ISORT += ["--thirdparty", "solo"]
FLAKE8 = ["-m", "flake8", "--max-line-length", "100", "--extend-ignore", "E203,W503"]
# the host's loss tests, the new tests, and existing method tests as baselines
HOST_TESTS = [
    "tests/losses",
    "tests/methods/test_frossl.py",
    "tests/methods/test_plugins.py",
    "tests/methods/test_base.py",
    "tests/methods/test_simclr.py",
    "tests/methods/test_vicreg.py",
    "tests/methods/test_barlow_twins.py",
    "tests/methods/test_wmse.py",
]
GIT_USER = ["-c", "user.name=export test", "-c", "user.email=export@test.invalid"]
# each exported config (a plain file under frossl_plugin/upstream/files/frossl/) and the plugin
# config whose settings it must keep
CONFIG_SOURCES = {
    "scripts/pretrain/cifar/frossl.yaml": "frossl",
    "scripts/pretrain/stl10/frossl.yaml": "frossl_stl10",
    "scripts/pretrain/stl10/frossl_4views.yaml": "frossl_stl10_4views",
    "scripts/pretrain/stl10/frossl_8views.yaml": "frossl_stl10_8views",
    "scripts/pretrain/imagenet-100/frossl.yaml": "frossl_imagenet100",
    "scripts/pretrain/imagenet/frossl.yaml": "frossl_imagenet",
    "scripts/linear/cifar/frossl.yaml": "frossl_linear",
    "scripts/linear/stl10/frossl.yaml": "frossl_stl10_linear",
    "scripts/linear/imagenet-100/frossl.yaml": "frossl_imagenet100_linear",
    "scripts/linear/imagenet/frossl.yaml": "frossl_imagenet_linear",
}


def _git(root: Path, *args: str) -> str:
    out = subprocess.run(["git", *GIT_USER, *args], cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _clone(destination: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(HOST_PATH), str(destination)], check=True)
    return destination


def _env(root: Path, **extra: str) -> dict:
    env = host_env()
    env["PYTHONPATH"] = str(root)
    env.update(extra)
    return env


def _new_files(root: Path, suffix: str):
    out = _git(root, "ls-files", "--others", "--exclude-standard")
    return [name for name in out.splitlines() if name.endswith(suffix)]


@pytest.fixture(scope="module")
def clones(tmp_path_factory):
    """Three clones: FroSSL only (uncommitted), plugin API only, and both (FroSSL committed)."""

    base = tmp_path_factory.mktemp("export_upstream")
    frossl = _clone(base / "frossl")
    frossl_result = export_frossl(str(frossl))
    api = _clone(base / "plugin_api")
    api_result = export_plugin_api(str(api))
    both = _clone(base / "both")
    both_frossl = export_frossl(str(both))
    _git(both, "add", "-A")
    _git(both, "commit", "-q", "-F", str(both_frossl.commit_message))
    both_result = export_plugin_api(str(both))
    return {
        "frossl": (frossl, frossl_result),
        "api": (api, api_result),
        "both": (both, both_result),
        "base": base,
    }


# ---------------------------------------------------------------- refusals


def test_refuses_a_folder_that_is_not_solo_learn(tmp_path, capsys):
    from frossl_plugin.cli import main

    (tmp_path / "README.md").write_text("not solo-learn\n")
    with pytest.raises(ValueError, match="is not a solo-learn checkout"):
        export_frossl(str(tmp_path))
    assert main(["export-upstream", str(tmp_path)]) == 2
    assert "is not a solo-learn checkout" in capsys.readouterr().err
    assert main(["export-upstream", "--plugin-api", str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_refuses_a_copy_that_is_not_a_git_checkout(tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(HOST_PATH, copy, ignore=shutil.ignore_patterns(".git"))
    with pytest.raises(ValueError, match="not the root of a git work tree"):
        export_frossl(str(copy))


@pytest.mark.parametrize("change", ["modified", "untracked"])
def test_refuses_uncommitted_changes(tmp_path, change, capsys):
    from frossl_plugin.cli import main

    root = _clone(tmp_path / "host")
    if change == "modified":
        (root / "solo" / "losses" / "vicreg.py").write_text("# edited\n")
    else:
        (root / "notes.txt").write_text("scratch\n")
    for export in (export_frossl, export_plugin_api):
        with pytest.raises(ValueError, match="uncommitted changes"):
            export(str(root))
    assert main(["export-upstream", str(root)]) == 2
    assert "uncommitted changes" in capsys.readouterr().err
    # nothing was written
    assert not (root / "solo" / "losses" / "frossl.py").exists()


def test_refuses_to_export_twice(tmp_path):
    root = _clone(tmp_path / "host")
    for export, message in (
        (export_frossl, "already has solo/methods/frossl.py"),
        (export_plugin_api, "already has solo/methods/plugins.py"),
    ):
        export(str(root), message_dir=str(tmp_path / "messages"))
        _git(root, "add", "-A")
        _git(root, "commit", "-q", "-m", "export")
        with pytest.raises(ValueError, match=message):
            export(str(root))


# ---------------------------------------------------------------- what is written


def test_frossl_export_layout(clones):
    root, result = clones["frossl"]
    status = _git(root, "status", "--porcelain", "--untracked-files=all").splitlines()
    changed = sorted(line[3:] for line in status)
    assert changed == sorted(result.added + result.modified)
    assert sorted(result.modified) == [
        "README.md",
        "docs/source/index.rst",
        "solo/losses/__init__.py",
        "solo/methods/__init__.py",
    ]
    for expected in (
        "solo/losses/frossl.py",
        "solo/methods/frossl.py",
        "tests/losses/test_frossl.py",
        "tests/methods/test_frossl.py",
        "docs/source/solo/methods/frossl.rst",
        "docs/source/solo/losses/frossl.rst",
        *CONFIG_SOURCES,
    ):
        assert expected in result.added
    # messages live outside the work tree
    assert result.commit_message.read_text().startswith("Add FroSSL")
    assert "# Add FroSSL" in result.pr_description.read_text()
    assert not str(result.commit_message).startswith(str(root / "solo"))

    header = license_header(root)
    for name in _new_files(root, ".py"):
        text = (root / name).read_text()
        assert text.startswith(header), name
        ast.parse(text, feature_version=(3, 8))  # the host supports Python 3.8
        assert "frossl_plugin" not in text and "frossl-plugin" not in text, name
    for name in _new_files(root, ".yaml") + _new_files(root, ".rst"):
        assert "frossl_plugin" not in (root / name).read_text(), name

    diff = _git(root, "diff")
    for line in (
        "+from solo.losses.frossl import frossl_loss_func",
        '+    "frossl_loss_func",',
        "+from solo.methods.frossl import FroSSL",
        '+    "frossl": FroSSL,',
        '+    "FroSSL",',
        "+   solo/methods/frossl",
        "+   solo/losses/frossl",
        "+* [FroSSL](https://arxiv.org/abs/2310.02903)",
    ):
        assert line in diff.splitlines(), line
    # only additions, and the README row carries no number
    assert not [line for line in diff.splitlines() if line.startswith("-") and line[1:2] != "-"]
    row = [line for line in diff.splitlines() if line.startswith("+| FroSSL")]
    assert len(row) == 1 and not re.search(r"\d+\.\d+", row[0])


def test_exported_modules_are_the_plugin_source(clones):
    root, _ = clones["frossl"]
    header = license_header(root)
    for plugin_module, host_module in MODULE_MAP.items():
        exported = (root / host_relative_path(host_module)).read_text()
        assert exported.startswith(header + "\n")
        body = exported[len(header) + 1 :]
        plugin = plugin_source_path(plugin_module).read_text()
        for old, new in MODULE_MAP.items():
            plugin = plugin.replace(old, new)

        def split(text):
            lines = text.splitlines()
            imports = [i for i, line in enumerate(lines) if re.match(r"(from|import) ", line)]
            first, last = imports[0], imports[-1]
            outside = lines[:first] + lines[last + 1 :]
            return outside, sorted(line for line in lines[first : last + 1] if line.strip())

        # the same code; only the import section is regrouped
        assert split(body) == split(plugin)


@pytest.mark.parametrize("center", [False, True])
@pytest.mark.parametrize("num_views,n,d", [(2, 32, 16), (4, 8, 64), (3, 16, 16)])
def test_exported_loss_gives_the_plugin_numbers(clones, num_views, n, d, center):
    root, _ = clones["frossl"]
    spec = importlib.util.spec_from_file_location(
        "exported_frossl_loss", root / "solo" / "losses" / "frossl.py"
    )
    exported = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(exported)  # the loss module needs only torch

    generator = torch.Generator().manual_seed(num_views * n + d)
    z = torch.randn(num_views, n, d, generator=generator)
    z = z + torch.randn(num_views, 1, d, generator=generator)  # features with non-zero means
    z.requires_grad_()
    z_copy = z.detach().clone().requires_grad_()
    ours = frossl_loss_func(z, invariance_weight=1.4, center=center)
    theirs = exported.frossl_loss_func(z_copy, invariance_weight=1.4, center=center)
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)
    ours[0].backward()
    theirs[0].backward()
    assert torch.equal(z.grad, z_copy.grad)


def test_exported_configs_compose_to_the_plugin_settings(clones):
    from hydra import compose, initialize_config_dir, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    root, _ = clones["frossl"]
    shipped = {
        p.relative_to(FILES / "frossl").as_posix() for p in FILES.glob("frossl/scripts/*/*/*.yaml")
    }
    assert shipped == set(CONFIG_SOURCES)
    for host_path, plugin_config in CONFIG_SOURCES.items():
        GlobalHydra.instance().clear()
        with initialize_config_module(config_module="frossl_plugin.configs", version_base="1.2"):
            plugin = OmegaConf.to_container(compose(config_name=plugin_config))
        GlobalHydra.instance().clear()
        folder = (root / host_path).parent
        with initialize_config_dir(config_dir=str(folder), version_base="1.2"):
            host = OmegaConf.to_container(compose(config_name=Path(host_path).name))
        GlobalHydra.instance().clear()

        assert "hydra" not in host and "eval_crop_size" not in host["data"]
        for key in ("method", "method_kwargs", "optimizer", "scheduler", "max_epochs"):
            assert host.get(key) == plugin.get(key), (host_path, key)
        for key in ("dataset", "train_path", "val_path", "format"):
            assert host["data"][key] == plugin["data"][key], (host_path, key)
        assert host["precision"] == plugin["precision"]
        if host_path.startswith("scripts/pretrain/"):
            assert host["augmentations"] == plugin["augmentations"], host_path
            assert host["backbone"] == plugin["backbone"]
            # the loss the paper ran for the number of views: centred for two views only
            two_views = sum(aug["num_crops"] for aug in host["augmentations"]) == 2
            assert host["method_kwargs"]["center"] is two_views, host_path
            text = (root / host_path).read_text()
            assert f"  center: {str(two_views).lower()} # the paper's" in text, host_path
        else:
            assert host["pretrain_method"] == "frossl"
        # the host's Lightning convention: GPUs by list, DDP
        assert host["accelerator"] == "gpu" and isinstance(host["devices"], list)
        # the host's wandb group, as every host config has it
        assert host["wandb"] == yaml.safe_load((folder / "wandb" / "private.yaml").read_text())


@pytest.mark.parametrize("export", [export_frossl, export_plugin_api])
def test_a_missing_anchor_line_fails_before_anything_is_written(tmp_path, export):
    root = _clone(tmp_path / "host")
    index = root / "docs" / "source" / "index.rst"
    index.write_text(index.read_text().replace("\n   ", "\n    "))  # toctrees indented by 4
    _git(root, "commit", "-q", "-am", "a host that differs")
    with pytest.raises(ValueError, match=r"docs/source/index.rst: expected the line '   .*'"):
        export(str(root))
    assert not _git(root, "status", "--porcelain", "--untracked-files=all").strip()


def test_plugin_api_export_layout(clones):
    root, result = clones["api"]
    assert sorted(result.added) == [
        "docs/source/tutorials/method_plugins.rst",
        "solo/methods/plugins.py",
        "tests/methods/test_plugins.py",
    ]
    assert sorted(result.modified) == sorted(
        [
            "solo/methods/__init__.py",
            "solo/methods/base.py",
            "solo/methods/wmse.py",
            "solo/methods/mae.py",
            "main_pretrain.py",
            "docs/source/index.rst",
            "README.md",
        ]
    )
    diff = _git(root, "diff")
    removed = [line for line in diff.splitlines() if line.startswith("-") and line[1:2] != "-"]
    assert removed == ['-        assert cfg.method in ["wmse", "mae"]']
    for name in result.added + result.modified:
        if name.endswith(".py"):
            ast.parse((root / name).read_text(), feature_version=(3, 8))
    assert (
        "frossl" not in diff.lower()
        and "frossl" not in (root / "solo/methods/plugins.py").read_text()
    )


# ---------------------------------------------------------------- the host's own checks


@pytest.mark.slow
@pytest.mark.parametrize("clone", ["frossl", "both"])
def test_host_linters_pass_on_the_exported_files(clones, clone):
    root, result = clones[clone]
    black_version = subprocess.run(
        [sys.executable, "-m", "black", "--version"], capture_output=True, text=True
    )
    if black_version.returncode != 0:
        pytest.skip("needs black, isort and flake8: pip install black==23.12.0 isort flake8")
    if "23.12.0" not in black_version.stdout:
        # other black releases reformat the host's own, untouched lines differently
        pytest.skip(f"the host's pre-commit pins black 23.12.0, found {black_version.stdout!r}")
    new_py = _new_files(root, ".py")
    changed_py = [name for name in result.modified if name.endswith(".py")]
    for command, files in ((BLACK, new_py + changed_py), (ISORT, new_py), (FLAKE8, new_py)):
        out = subprocess.run(
            [sys.executable, *command, *files], cwd=root, capture_output=True, text=True
        )
        assert out.returncode == 0, f"{command[1]}:\n{out.stdout}\n{out.stderr}"
    # edited host files: no flake8 message that the original did not have
    for name in changed_py:
        ours = subprocess.run(
            [sys.executable, *FLAKE8, name], cwd=root, capture_output=True, text=True
        ).stdout
        original = subprocess.run(
            [sys.executable, *FLAKE8, str(HOST_PATH / name)], capture_output=True, text=True
        ).stdout
        count = len([line for line in ours.splitlines() if line.strip()])
        assert count == len([line for line in original.splitlines() if line.strip()]), ours
    # the pre-commit-hooks the host runs on every file: yaml, trailing whitespace, final newline
    for name in _new_files(root, ""):
        text = (root / name).read_text()
        assert text.endswith("\n") and not text.endswith("\n\n"), name
        assert not [line for line in text.splitlines() if line != line.rstrip()], name
        if name.endswith(".yaml"):
            yaml.safe_load(text)
    added = [line for line in _git(root, "diff").splitlines() if line.startswith("+")]
    assert not [line for line in added if line != line.rstrip()]


@pytest.mark.slow
def test_host_test_suite_passes_with_both_contributions(clones):
    root, _ = clones["both"]
    tests = (
        ["tests/losses", "tests/methods"]
        if os.environ.get("FROSSL_FULL_HOST_SUITE")
        else (HOST_TESTS)
    )
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        cwd=root,
        env=_env(root),
        capture_output=True,
        text=True,
        timeout=3000,
    )
    summary = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr[-2000:]
    print(f"host suite in the exported clone ({' '.join(tests)}): {summary}")
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
    assert "failed" not in summary and "error" not in summary
    assert int(re.search(r"(\d+) passed", summary).group(1)) >= 20


# ---------------------------------------------------------------- the entry point


def _plugin_entry_point_installed() -> bool:
    return any(
        ep.value == "frossl_plugin.methods.frossl:FroSSL"
        for ep in metadata.entry_points(group="solo.methods")
    )


needs_entry_point = pytest.mark.skipif(
    not _plugin_entry_point_installed(),
    reason="the installed frossl-plugin metadata has no solo.methods entry point; reinstall it "
    "(pip install -e .) so that setup.cfg's entry points are installed",
)

HOOK_INSTALLED = (Path(sysconfig.get_paths()["purelib"]) / "frossl_plugin_hook.pth").is_file()

_REGISTRY_PROBE = """
import warnings
warnings.filterwarnings("error", message=".*(frossl|FroSSL|Method plugin).*")
import solo.methods
# who registered "frossl" during "import solo.methods", before any plugin module is imported
found = solo.methods.METHODS.get("frossl")
print(found.__module__ if found is not None else "missing")
import frossl_plugin
from frossl_plugin.methods.frossl import FroSSL
frossl_plugin.register()  # a no-op when the host has registered FroSSL itself
print(solo.methods.METHODS["frossl"] is FroSSL)
"""


@needs_entry_point
def test_host_with_plugin_api_loads_frossl_from_the_entry_point(clones):
    root, _ = clones["api"]
    env = _env(root, FROSSL_PLUGIN_DISABLE_IMPORT_HOOK="1")
    out = subprocess.run(
        [sys.executable, "-c", _REGISTRY_PROBE],
        cwd=clones["base"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == ["frossl_plugin.methods.frossl", "True"]


_PLUGIN_FIRST_PROBE = """
import sys
import warnings
warnings.filterwarnings("error", message=".*(frossl|FroSSL|Method plugin).*")
from frossl_plugin.methods.frossl import FroSSL  # imports solo.methods while half imported
import solo.methods
if sys.argv[1] == "register":
    import frossl_plugin
    frossl_plugin.register()
print(solo.methods.METHODS["frossl"] is FroSSL)
"""


@needs_entry_point
@pytest.mark.parametrize("route", ["register", "hook"])
def test_plugin_imported_before_the_host_registers_without_warnings(clones, route):
    """The host skips the half-imported plugin; importing a plugin module registers nothing,
    so FroSSL comes from ``frossl_plugin.register()`` or, when installed, the start-up hook."""

    if route == "hook" and not HOOK_INSTALLED:
        pytest.skip("the start-up hook is not installed here (pip install . installs it)")
    root, _ = clones["api"]
    env = _env(root, **({"FROSSL_PLUGIN_DISABLE_IMPORT_HOOK": "1"} if route == "register" else {}))
    out = subprocess.run(
        [sys.executable, "-c", _PLUGIN_FIRST_PROBE, route],
        cwd=clones["base"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1:] == ["True"]


def test_unmodified_host_falls_back_to_the_plugin_registration(tmp_path):
    env = _env(HOST_PATH, FROSSL_PLUGIN_DISABLE_IMPORT_HOOK="1")
    out = subprocess.run(
        [sys.executable, "-c", _REGISTRY_PROBE],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == ["missing", "True"]


# ---------------------------------------------------------------- main_pretrain.py on CPU


def _pretrain(
    main_root: Path, config_root: Path, data: Path, cwd: Path, large_crops: int, **env_extra: str
):
    args = [
        "--config-path",
        str(config_root / "scripts" / "pretrain" / "cifar"),
        "--config-name",
        "frossl.yaml",
        "data.dataset=custom",
        f"data.train_path={data / 'train'}",
        f"data.val_path={data / 'val'}",
        "data.num_workers=0",
        f"augmentations.0.num_crops={large_crops}",
        "method_kwargs.proj_hidden_dim=64",
        "method_kwargs.proj_output_dim=32",
        "optimizer.batch_size=8",
        "max_epochs=1",
        "++limit_train_batches=2",
        "++limit_val_batches=1",
        "knn_eval.enabled=False",
        "checkpoint.enabled=False",
        "auto_resume.enabled=False",
        "wandb.enabled=False",
        "accelerator=cpu",
        'devices="1"',
        "strategy=auto",
        "sync_batchnorm=False",
        "precision=32",
    ]
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, str(main_root / "main_pretrain.py"), *args],
        cwd=cwd,
        env=_env(main_root, **env_extra),
        capture_output=True,
        text=True,
        timeout=900,
    )


def _logged_metrics(cwd: Path) -> str:
    files = sorted(cwd.glob("lightning_logs/version_*/metrics.csv"))
    assert files, f"no metrics.csv under {cwd}"
    return files[-1].read_text().splitlines()[0]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return write_tiny_image_folder(
        tmp_path_factory.mktemp("tiny"), classes=5, train_per_class=4, val_per_class=2, size=32
    )


@pytest.mark.slow
def test_patched_host_trains_frossl_from_the_exported_config(clones, tiny_folder):
    root, _ = clones["both"]
    base = clones["base"]
    for crops in (2, 4):
        out = _pretrain(root, root, tiny_folder, base / f"run_both_{crops}", crops)
        assert out.returncode == 0, out.stderr[-4000:]
        header = _logged_metrics(base / f"run_both_{crops}")
        for name in ("train_frossl_loss", "train_frossl_invariance", "train_frossl_regularization"):
            assert name in header


@pytest.mark.slow
def test_more_than_two_large_crops_need_the_plugin_api(clones, tiny_folder):
    root, _ = clones["frossl"]  # FroSSL, but the host's original check
    out = _pretrain(root, root, tiny_folder, clones["base"] / "run_frossl_2", 2)
    assert out.returncode == 0, out.stderr[-4000:]
    assert "train_frossl_loss" in _logged_metrics(clones["base"] / "run_frossl_2")
    out = _pretrain(root, root, tiny_folder, clones["base"] / "run_frossl_4", 4)
    assert out.returncode != 0
    assert "AssertionError" in out.stderr


@pytest.mark.slow
@needs_entry_point
def test_plugin_api_host_trains_the_entry_point_frossl_with_four_views(clones, tiny_folder):
    # host with the plugin API only: FroSSL comes from the installed package's entry point; the
    # import hook is off and the exported config has no Hydra callback, so nothing else adds it
    api_root, _ = clones["api"]
    config_root, _ = clones["frossl"]
    cwd = clones["base"] / "run_api_4"
    out = _pretrain(
        api_root, config_root, tiny_folder, cwd, 4, FROSSL_PLUGIN_DISABLE_IMPORT_HOOK="1"
    )
    assert out.returncode == 0, out.stderr[-4000:]
    assert "train_frossl_loss" in _logged_metrics(cwd)
