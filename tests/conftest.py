"""Fixtures and plugins shared by the tests; plain helpers are in helpers.py."""

from pathlib import Path

import pytest

pytest_plugins = ["strict_skips"]  # FROSSL_PLUGIN_REQUIRE_ALL_TESTS=1: no test may skip (CI)


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    """The real demo dataset (scikit-learn digits) as written by ``frossl-plugin demo-data``."""

    pytest.importorskip("sklearn", reason="demo data needs scikit-learn: pip install .[test]")
    from frossl_plugin.demo_data import write_digits_image_folder

    root = tmp_path_factory.mktemp("frossl_demo")
    write_digits_image_folder(root)
    return root
