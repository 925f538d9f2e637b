import importlib
import sys
import textwrap

import pytest
from solo.methods import MAE, METHODS, WMSE, BaseMethod, SimCLR
from solo.methods.plugins import load_method_plugins

GROUP = "solo.methods.test"


def make_plugin(root, module, entry_points):
    """Writes an installed package (a module and its dist-info) under ``root``."""

    (root / f"{module}.py").write_text(
        textwrap.dedent(
            """
            from solo.methods.base import BaseMethod


            class PluginMethod(BaseMethod):
                pass


            not_a_method = object()
            """
        )
    )
    dist_info = root / f"{module}-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    lines = [f"[{GROUP}]"] + [f"{name} = {value}" for name, value in entry_points.items()]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    importlib.invalidate_caches()


def test_load_method_plugins(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    make_plugin(tmp_path, "solo_test_plugin", {"plugin_method": "solo_test_plugin:PluginMethod"})

    registry = dict(METHODS)
    added = load_method_plugins(registry, group=GROUP)

    plugin = sys.modules["solo_test_plugin"]
    assert added == {"plugin_method": plugin.PluginMethod}
    assert registry["plugin_method"] is plugin.PluginMethod
    assert {k: v for k, v in registry.items() if k != "plugin_method"} == METHODS


def test_method_plugins_cannot_replace_methods(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    make_plugin(tmp_path, "solo_test_clash", {"simclr": "solo_test_clash:PluginMethod"})

    registry = dict(METHODS)
    with pytest.warns(UserWarning, match="already has that name"):
        added = load_method_plugins(registry, group=GROUP)

    assert added == {}
    assert registry["simclr"] is SimCLR


def test_broken_method_plugins_are_skipped(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    make_plugin(
        tmp_path,
        "solo_test_plugin_broken",
        {
            "missing": "solo_test_plugin_does_not_exist:PluginMethod",
            "not_a_method": "solo_test_plugin_broken:not_a_method",
        },
    )

    registry = dict(METHODS)
    with pytest.warns(UserWarning) as record:
        added = load_method_plugins(registry, group=GROUP)

    assert added == {}
    assert registry == METHODS
    messages = " ".join(str(w.message) for w in record)
    assert "failed to load" in messages and "not a subclass of BaseMethod" in messages


def test_method_plugin_that_imports_solo_methods_first(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    make_plugin(tmp_path, "solo_test_cycle", {"cycle": "solo_test_cycle:PluginMethod"})
    # the plugin's module runs the loader while it is still being imported, as happens when it
    # is imported before solo.methods
    (tmp_path / "solo_test_cycle.py").write_text(
        textwrap.dedent(
            f"""
            import warnings

            from solo.methods.base import BaseMethod
            from solo.methods.plugins import load_method_plugins

            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                added = load_method_plugins({{}}, group="{GROUP}")


            class PluginMethod(BaseMethod):
                pass
            """
        )
    )
    importlib.invalidate_caches()

    module = importlib.import_module("solo_test_cycle")

    assert module.added == {} and module.caught == []
    assert load_method_plugins({}, group=GROUP) == {"cycle": module.PluginMethod}


def test_no_method_plugins():
    registry = dict(METHODS)
    assert load_method_plugins(registry, group="solo.methods.nothing.installed") == {}
    assert registry == METHODS


def test_number_of_large_crops():
    assert BaseMethod.supports_any_num_large_crops is False
    assert WMSE.supports_any_num_large_crops is True
    assert MAE.supports_any_num_large_crops is True
