"""Registration into the host's METHODS: explicit, idempotent, and through the start-up hook."""

import subprocess
import sys
import sysconfig
import warnings
from pathlib import Path

import pytest
from conftest import HOST_PATH, host_env, requires_host

import frossl_plugin

HOOK_INSTALLED = (Path(sysconfig.get_paths()["purelib"]) / "frossl_plugin_hook.pth").is_file()
requires_hook = pytest.mark.skipif(
    not HOOK_INSTALLED,
    reason="the start-up hook is installed by `pip install .`, not by editable installs",
)


def python(code, env=None, cwd=None):
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def test_importing_the_package_is_light():
    result = python(
        "import sys, frossl_plugin, frossl_plugin._import_hook;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'torch', 'hydra', 'omegaconf', 'solo', 'numpy', 'lightning', 'timm'}))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@requires_hook
def test_startup_hook_imports_nothing_heavy():
    result = python(
        "import sys; print(sorted(m for m in sys.modules if 'frossl' in m or "
        "m.split('.')[0] in {'torch', 'hydra', 'solo', 'numpy'}))"
    )
    assert result.stdout.strip() == "['frossl_plugin', 'frossl_plugin._import_hook']"


def test_register_without_host_says_how_to_get_it(tmp_path):
    code = "import frossl_plugin; frossl_plugin.register()"
    env = {k: v for k, v in host_env().items() if k != "PYTHONPATH"} if HOST_PATH else None
    probe = python("import solo", env=env, cwd=tmp_path)
    if probe.returncode == 0:
        pytest.skip("solo is installed in this environment, so it cannot be absent")
    result = python(code, env=env, cwd=tmp_path)
    assert result.returncode != 0
    assert "ImportError" in result.stderr and "SOLO_LEARN_PATH" in result.stderr


@requires_host
def test_register_is_idempotent_and_mutates_the_host_dict_in_place():
    import solo.methods

    from frossl_plugin.methods.frossl import FroSSL

    registry = solo.methods.METHODS
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frossl_plugin.register()
        frossl_plugin.register()
    assert solo.methods.METHODS is registry and registry["frossl"] is FroSSL


@requires_host
def test_register_warns_and_replaces_another_class():
    import solo.methods

    from frossl_plugin.methods.frossl import FroSSL

    class SomeoneElses:
        pass

    solo.methods.METHODS["frossl"] = SomeoneElses
    try:
        with pytest.warns(UserWarning, match="already holds .*SomeoneElses.*replacing"):
            frossl_plugin.register()
        assert solo.methods.METHODS["frossl"] is FroSSL
    finally:
        solo.methods.METHODS["frossl"] = FroSSL


@requires_host
@requires_hook
@pytest.mark.parametrize(
    "code",
    [
        "import solo.methods.base; from solo.methods import METHODS; "
        "print(METHODS['frossl'].__module__)",
        "from solo.args.knn import parse_args_knn; from solo.methods import METHODS; "
        "print(METHODS['frossl'].__module__)",
    ],
)
def test_startup_hook_registers_on_any_import_of_the_host(tmp_path, code):
    result = python(code, env=host_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "frossl_plugin.methods.frossl"
    assert "could not register" not in result.stderr


@requires_host
@requires_hook
def test_startup_hook_can_be_switched_off(tmp_path):
    env = dict(host_env(), FROSSL_PLUGIN_DISABLE_IMPORT_HOOK="1")
    result = python("from solo.methods import METHODS; print('frossl' in METHODS)", env, tmp_path)
    assert result.stdout.strip() == "False"
