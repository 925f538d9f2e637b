"""Registration into the host's METHODS: explicit, idempotent, undoable, through the start-up
hook, never as a side effect of importing a plugin module; and the plugin's import layering."""

import ast
import subprocess
import sys
import sysconfig
import warnings
from pathlib import Path

import pytest
from helpers import HOST_PATH, host_env, requires_host

import frossl_plugin

PACKAGE_ROOT = Path(frossl_plugin.__file__).resolve().parent
PULL_REQUEST_FILES = PACKAGE_ROOT / "upstream" / "files"  # solo-learn's layout, not our modules
HOOK_INSTALLED = (Path(sysconfig.get_paths()["purelib"]) / "frossl_plugin_hook.pth").is_file()
requires_hook = pytest.mark.skipif(
    not HOOK_INSTALLED,
    reason="the start-up hook is installed by `pip install .`, not by editable installs",
)


def python(code, env=None, cwd=None):
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


@pytest.fixture(autouse=True)
def undo_host_changes():
    """Each test leaves the host as it found it: :func:`frossl_plugin.host.uninstall`."""

    yield
    import frossl_plugin.host

    frossl_plugin.host.uninstall()


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
    assert result.stdout.strip() == (
        "['frossl_plugin', 'frossl_plugin._import_hook', 'frossl_plugin.host', "
        "'frossl_plugin.host.import_hook']"
    )


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

    import frossl_plugin.host
    from frossl_plugin.methods.frossl import FroSSL

    class SomeoneElses:
        pass

    solo.methods.METHODS["frossl"] = SomeoneElses
    try:
        with pytest.warns(UserWarning, match="already holds .*SomeoneElses.*replacing"):
            frossl_plugin.register()
        assert solo.methods.METHODS["frossl"] is FroSSL
    finally:
        frossl_plugin.host.uninstall()  # puts SomeoneElses back
        solo.methods.METHODS.pop("frossl", None)


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


@requires_host
def test_uninstall_restores_every_host_object():
    import solo.data.classification_dataloader as host_loader
    import solo.methods
    from omegaconf import OmegaConf
    from solo.methods.base import BaseMethod

    import frossl_plugin.host

    frossl_plugin.host.uninstall()  # whatever the start-up hook installed
    methods, backbones = dict(solo.methods.METHODS), BaseMethod._BACKBONES
    pipeline = host_loader.build_custom_pipeline
    config = OmegaConf.create(
        {
            "backbone": {"name": "timm/resnet10t"},
            "data": {"dataset": "custom", "eval_crop_size": 32},
        }
    )
    frossl_plugin.host.install(config)
    assert "frossl" in solo.methods.METHODS and "timm/resnet10t" in dict(BaseMethod._BACKBONES)
    assert host_loader.build_custom_pipeline is not pipeline
    frossl_plugin.host.uninstall()
    assert solo.methods.METHODS == methods and "frossl" not in methods
    assert BaseMethod._BACKBONES is backbones and host_loader.build_custom_pipeline is pipeline


@requires_host
def test_a_host_registry_of_another_shape_is_refused_naming_the_host_commit(monkeypatch):
    import solo.methods

    from frossl_plugin.host import HostMismatchError

    monkeypatch.setattr(solo.methods, "METHODS", ["not", "a", "dict"])
    with pytest.raises(HostMismatchError, match=r"solo-learn 9187ea3.*solo\.methods\.METHODS"):
        frossl_plugin.register()


def plugin_modules():
    """Every module of the package, by dotted name (``__init__`` as its package)."""

    names = []
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        if PULL_REQUEST_FILES in path.parents:  # solo-learn's files of the upstream PR
            continue
        parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


@requires_host
@pytest.mark.parametrize(
    "module", [m for m in plugin_modules() if m != "frossl_plugin._import_hook"]
)
def test_importing_a_module_registers_nothing(tmp_path, module):
    """Only register() / frossl_plugin.host.install() (or the start-up hook, switched off here)
    put FroSSL into the host's registry."""

    env = dict(host_env(), FROSSL_PLUGIN_DISABLE_IMPORT_HOOK="1")
    code = (
        f"import importlib, sys; importlib.import_module({module!r}); "
        "host = sys.modules.get('solo.methods'); "
        "print('frossl' in host.METHODS if host else 'host not imported')"
    )
    result = python(code, env=env, cwd=tmp_path)
    if result.returncode != 0 and "No module named" in result.stderr:
        pytest.skip(f"{module} needs an optional dependency: {result.stderr.splitlines()[-1]}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() in ("False", "host not imported"), (module, result.stdout)


def _imported_names(path: Path, module_level_only: bool):
    """Names a source file imports: everywhere, or only at module level (not inside functions or
    classes)."""

    tree = ast.parse(path.read_text())
    names = []
    for node in tree.body if module_level_only else ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def _imports_any(names, forbidden):
    return sorted({n for n in names for f in forbidden if n == f or n.startswith(f + ".")})


# layer -> packages it must not import
FORBIDDEN = {
    "losses": [
        "frossl_plugin.host",
        "frossl_plugin.compare",
        "frossl_plugin.hydra_callback",
        "frossl_plugin.methods",
        "frossl_plugin.callbacks",
    ],
    "methods": [
        "frossl_plugin.host",
        "frossl_plugin.compare",
        "frossl_plugin.hydra_callback",
        "frossl_plugin.callbacks",
    ],
    "host": ["frossl_plugin.compare", "frossl_plugin.callbacks", "frossl_plugin.hydra_callback"],
}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_lower_layers_never_import_the_package_root(layer):
    """``from frossl_plugin import ...`` runs back up the layering: the root package sits above
    every layer (it re-exports from them)."""

    offenders = [
        str(path.relative_to(PACKAGE_ROOT))
        for path in sorted((PACKAGE_ROOT / layer).rglob("*.py"))
        if PULL_REQUEST_FILES not in path.parents
        and "frossl_plugin" in _imported_names(path, module_level_only=False)
    ]
    assert offenders == []


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_import_layering(layer):
    """The plugin is layered, lowest first: losses (pure torch; exported upstream), methods (the
    host's public BaseMethod), host (every contact with solo-learn's or timm's internals, one
    entry point: install/uninstall), then the users of host: hydra_callback, compare,
    callbacks, cli. A module imports only from its own layer and those below it, at module level
    or in a function, so nothing imports a package that imports it back (no cycles), and the
    exported loss and method modules depend on nothing but the host's public API."""

    offenders = {}
    for path in sorted((PACKAGE_ROOT / layer).rglob("*.py")):
        if PULL_REQUEST_FILES in path.parents:
            continue
        bad = _imports_any(_imported_names(path, module_level_only=False), FORBIDDEN[layer])
        if bad:
            offenders[str(path.relative_to(PACKAGE_ROOT))] = bad
    assert not offenders


def test_no_module_level_import_cycle_between_packages():
    """No module imports, at module level, a subpackage of frossl_plugin that imports its own
    subpackage back at module level."""

    def package_of(name):
        parts = name.split(".")
        return ".".join(parts[:2]) if len(parts) > 1 and parts[0] == "frossl_plugin" else None

    edges = {}
    for module in plugin_modules():
        path = PACKAGE_ROOT.parent.joinpath(*module.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        source = package_of(module)
        for name in _imported_names(path, module_level_only=True):
            target = package_of(name)
            if source and target and target != source and target in _subpackages():
                edges.setdefault(source, set()).add(target)
    cycles = [(a, b) for a in edges for b in edges[a] if a in edges.get(b, ())]
    assert not cycles, edges


def _subpackages():
    return {
        f"frossl_plugin.{p.name}" for p in PACKAGE_ROOT.iterdir() if (p / "__init__.py").is_file()
    }
