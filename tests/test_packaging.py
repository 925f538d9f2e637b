"""The built wheel ships the package, every config, the Hydra plugin and the start-up hook."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import HOST_PATH, requires_host

REPO = Path(__file__).resolve().parents[1]
PACKAGING_FILES = (
    "setup.cfg",
    "setup.py",
    "pyproject.toml",
    "MANIFEST.in",
    "README.md",
    "frossl_plugin_hook.pth",
)
PACKAGING_DIRS = ("frossl_plugin", "hydra_plugins", "configs")


def copy_packaging_inputs(destination: Path) -> Path:
    """Copies only what packaging reads: the checkout may hold virtual environments (CI keeps one
    of several GB inside it), build folders and caches."""

    if not (REPO / "setup.cfg").is_file():
        pytest.skip("not run from a source checkout")
    for name in PACKAGING_FILES:
        shutil.copy2(REPO / name, destination / name)
    for name in PACKAGING_DIRS:
        shutil.copytree(
            REPO / name, destination / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    return destination


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory):
    source = copy_packaging_inputs(tmp_path_factory.mktemp("source"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(source),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = out.glob("frossl_plugin-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return {
            "name": wheel.name,
            "files": set(archive.namelist()),
            "configs": {
                name[len("frossl_plugin/configs/") :]: archive.read(name)
                for name in archive.namelist()
                if name.startswith("frossl_plugin/configs/") and name.endswith(".yaml")
            },
            "metadata": archive.read(
                next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            ).decode(),
            "entry_points": archive.read(
                next(n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt"))
            ).decode(),
        }


def test_wheel_holds_every_config_byte_for_byte(wheel_files):
    configs = {
        p.relative_to(REPO / "configs").as_posix(): p.read_bytes()
        for p in (REPO / "configs").rglob("*.yaml")
    }
    assert configs, "no configs in the checkout"
    assert sorted(wheel_files["configs"]) == sorted(configs)
    changed = [name for name, text in configs.items() if wheel_files["configs"][name] != text]
    assert changed == []


def test_wheel_holds_the_hydra_plugin_as_a_namespace_package(wheel_files):
    files = wheel_files["files"]
    assert "hydra_plugins/frossl_plugin/frossl_searchpath.py" in files
    assert "hydra_plugins/frossl_plugin/py.typed" in files
    assert "hydra_plugins/__init__.py" not in files


def test_wheel_holds_the_startup_hook_at_its_root(wheel_files):
    assert "frossl_plugin_hook.pth" in wheel_files["files"]
    assert "frossl_plugin/_import_hook.py" in wheel_files["files"]


def test_wheel_metadata(wheel_files):
    metadata = wheel_files["metadata"]
    assert wheel_files["name"].startswith("frossl_plugin-")
    assert "Name: frossl-plugin" in metadata
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    required = [line.split()[1] for line in requires if "extra ==" not in line]
    names = {r.split(">")[0].split("=")[0].split("<")[0] for r in required}
    assert names == {"torch", "torchvision", "lightning", "hydra-core", "omegaconf", "timm"}
    for extra in ("dali", "test"):
        assert f"Provides-Extra: {extra}" in metadata
    entry_points = wheel_files["entry_points"]
    assert "frossl-plugin = frossl_plugin.cli:main" in entry_points
    assert "[solo.methods]\nfrossl = frossl_plugin.methods.frossl:FroSSL" in entry_points


def test_wheel_holds_the_upstream_export_files(wheel_files):
    shipped = {f for f in wheel_files["files"] if f.startswith("frossl_plugin/upstream/files/")}
    in_checkout = {
        path.relative_to(REPO).as_posix()
        for path in (REPO / "frossl_plugin" / "upstream" / "files").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert "frossl_plugin/upstream/files/frossl_pr.md" in in_checkout
    assert "frossl_plugin/upstream/files/frossl/tests/methods/test_frossl.py" in in_checkout
    assert "frossl_plugin/upstream/files/frossl/scripts/pretrain/cifar/frossl.yaml" in in_checkout
    assert shipped == in_checkout


@pytest.fixture(scope="module")
def editable_env(tmp_path_factory):
    """``pip install -e`` of a copy of the checkout into a fresh venv; returns (python, source).

    The venv reaches this environment's packages (hydra, torch, ...) through a .pth path line that
    sorts last, so its own editable install comes first and no .pth of this environment runs.
    """

    source = copy_packaging_inputs(tmp_path_factory.mktemp("editable_source"))
    venv = tmp_path_factory.mktemp("editable_venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site_packages = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    outer = [p for p in sys.path if p.endswith("site-packages")]
    (Path(site_packages) / "zz_outer_site_packages.pth").write_text("\n".join(outer) + "\n")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps"]
        + ["--no-build-isolation", "--no-index", "-e", str(source)],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    return python, source


def run_in(python: Path, code: str, cwd: Path, **env_overrides) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SOLO_LEARN_PATH")}
    env.update(env_overrides)
    result = subprocess.run(
        [str(python), "-c", code], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_editable_install_has_the_hook_and_the_hydra_search_path(editable_env, tmp_path):
    python, source = editable_env
    out = run_in(
        python,
        "import sys, frossl_plugin\n"
        "from hydra import compose, initialize\n"
        "from hydra.core.plugins import Plugins\n"
        "from hydra.plugins.search_path_plugin import SearchPathPlugin\n"
        "print(frossl_plugin.__file__)\n"
        "print(any(getattr(f, '__name__', '') == 'HostRegistryFinder' for f in sys.meta_path))\n"
        "print([p.__name__ for p in Plugins.instance().discover(SearchPathPlugin)])\n"
        "with initialize(version_base='1.2'):\n"
        "    print(compose(config_name='frossl_demo.yaml').method)\n",
        cwd=tmp_path,
    )
    module_file, hook_installed, plugins, method = out.split("\n")[:4]
    # the package is the checkout's own source (through setuptools' link tree), not a copy
    assert Path(module_file).resolve() == (source / "frossl_plugin" / "__init__.py").resolve()
    assert hook_installed == "True"
    assert plugins == "['FroSSLSearchPathPlugin']"
    assert method == "frossl"


def test_editable_install_follows_edits_of_the_source(editable_env, tmp_path):
    python, source = editable_env
    config = source / "configs" / "frossl_demo.yaml"
    original = config.read_text()
    try:
        config.write_text(original + "\neditable_probe: 17\n")
        out = run_in(
            python,
            "from hydra import compose, initialize\n"
            "with initialize(version_base='1.2'):\n"
            "    print(compose(config_name='frossl_demo.yaml').editable_probe)\n",
            cwd=tmp_path,
        )
    finally:
        config.write_text(original)
    assert out.strip() == "17"


@requires_host
def test_editable_install_registers_frossl_in_the_host(editable_env, tmp_path):
    python, _ = editable_env
    out = run_in(
        python,
        "from solo.methods import METHODS; print(METHODS['frossl'].__module__)",
        cwd=tmp_path,
        PYTHONPATH=str(HOST_PATH),
    )
    assert out.strip() == "frossl_plugin.methods.frossl"
