"""The built wheel ships the package, every config, the Hydra plugin and the start-up hook."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

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


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory):
    if not (REPO / "setup.cfg").is_file():
        pytest.skip("not run from a source checkout")
    # Build from a copy of the packaging inputs only: the checkout may hold virtual environments
    # (CI keeps one of several GB inside it), build folders and caches.
    source = tmp_path_factory.mktemp("source")
    for name in PACKAGING_FILES:
        shutil.copy2(REPO / name, source / name)
    for name in PACKAGING_DIRS:
        shutil.copytree(
            REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
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
            "metadata": archive.read(
                next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            ).decode(),
            "entry_points": archive.read(
                next(n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt"))
            ).decode(),
        }


def test_wheel_holds_every_config(wheel_files):
    configs = {
        p.relative_to(REPO / "configs").as_posix() for p in (REPO / "configs").rglob("*.yaml")
    }
    assert configs, "no configs in the checkout"
    for config in configs:
        assert f"frossl_plugin/configs/{config}" in wheel_files["files"]


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


def test_wheel_holds_the_upstream_export_templates(wheel_files):
    templates = {
        f for f in wheel_files["files"] if f.startswith("frossl_plugin/upstream/templates/")
    }
    assert "frossl_plugin/upstream/templates/frossl_pr.md.tmpl" in templates
    assert len(templates) >= 5
