"""The strict-skip plugin that CI uses: a skip fails the run unless it is for CUDA."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
SAMPLE = """
import pytest

def test_runs():
    assert True

@pytest.mark.skipif(True, reason="needs CUDA: no GPU here")
def test_needs_cuda():
    pass
"""


def run_pytest(tmp_path: Path, extra_test: str, strict: bool):
    (tmp_path / "test_sample.py").write_text(SAMPLE + extra_test)
    env = dict(os.environ, PYTHONPATH=str(TESTS_DIR))
    env.pop("FROSSL_PLUGIN_REQUIRE_ALL_TESTS", None)
    if strict:
        env["FROSSL_PLUGIN_REQUIRE_ALL_TESTS"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "strict_skips"]
        + ["-rs", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )


HOST_SKIP = """
def test_needs_host():
    pytest.skip("needs solo-learn: export SOLO_LEARN_PATH")
"""


@pytest.mark.parametrize("strict", [True, False])
def test_a_host_skip_fails_only_in_strict_mode(tmp_path, strict):
    result = run_pytest(tmp_path, HOST_SKIP, strict)
    assert "1 passed, 2 skipped" in result.stdout
    if strict:
        assert result.returncode == 1, result.stdout
        assert "test_sample.py::test_needs_host: " in result.stdout
        assert "needs solo-learn" in result.stdout
        assert "test_sample.py::test_needs_cuda: " not in result.stdout
    else:
        assert result.returncode == 0, result.stdout


def test_a_module_level_importorskip_fails_in_strict_mode(tmp_path):
    (tmp_path / "test_dali_sample.py").write_text(
        "import pytest\npytest.importorskip('no_such_module_xyz', reason='needs DALI')\n"
    )
    result = run_pytest(tmp_path, "", strict=True)
    assert result.returncode == 1, result.stdout
    assert "needs DALI" in result.stdout


def test_cuda_skips_are_allowed_in_strict_mode(tmp_path):
    result = run_pytest(tmp_path, "", strict=True)
    assert result.returncode == 0, result.stdout
    assert "1 passed, 1 skipped" in result.stdout
