"""The two upstream contributions, written into a clean solo-learn checkout.

- :func:`export_frossl`: FroSSL as a solo-learn method. The loss and method modules are generated
  from the plugin's own source; configs, tests and docs are the plain files under
  ``files/frossl/`` (in the host's layout); host files get one-line insertions at anchor lines.
- :func:`export_plugin_api`: entry-point method plugins for the host (``files/plugin_api/``), and
  the relaxed "exactly 2 large crops" check for methods that set
  ``supports_any_num_large_crops``.

Neither commits: each leaves the changes in the work tree and writes the commit message and the
pull-request description into the checkout's git directory (or ``message_dir``), outside the
work tree, so ``git status`` shows exactly the contribution. New ``.py`` files get the license
header of the checkout's own ``solo/losses/vicreg.py``.
"""

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import frossl_plugin
from frossl_plugin.host.patches import HOST_COMMIT
from frossl_plugin.upstream.checkout import check_clean_checkout, head_commit, license_header

FILES = Path(__file__).resolve().parent / "files"
# plugin module -> host module, for every plugin module that is exported
MODULE_MAP: Dict[str, str] = {
    "frossl_plugin.losses.frossl": "solo.losses.frossl",
    "frossl_plugin.methods.frossl": "solo.methods.frossl",
}

# (host file, anchor: a whole line expected exactly once, "before" / "after" / "replace", lines)
Edit = Tuple[str, str, str, Sequence[str]]
_RESULTS_NOTE = (
    "**FroSSL**: [paper](https://arxiv.org/abs/2310.02903). No run of "
    "`scripts/pretrain/cifar/frossl.yaml` has been measured in solo-learn yet, so its cells are "
    "empty; they are for its online linear accuracy (the protocol of this table) once measured."
)
FROSSL_EDITS: Tuple[Edit, ...] = (
    ("solo/losses/__init__.py", "from solo.losses.mae import mae_loss_func", "before",
     ["from solo.losses.frossl import frossl_loss_func"]),
    ("solo/losses/__init__.py", '    "mae_loss_func",', "before", ['    "frossl_loss_func",']),
    ("solo/methods/__init__.py", "from solo.methods.linear import LinearModel", "before",
     ["from solo.methods.frossl import FroSSL"]),
    ("solo/methods/__init__.py", '    "mae": MAE,', "before", ['    "frossl": FroSSL,']),
    ("solo/methods/__init__.py", '    "MAE",', "before", ['    "FroSSL",']),
    ("docs/source/index.rst", "   solo/methods/mae", "before", ["   solo/methods/frossl"]),
    ("docs/source/index.rst", "   solo/losses/mae", "before", ["   solo/losses/frossl"]),
    ("README.md", "* [MAE](https://arxiv.org/abs/2111.06377)", "before",
     ["* [FroSSL](https://arxiv.org/abs/2310.02903)"]),
    ("README.md", "| DINO         | ResNet18 |  1000  |  :x: |      89.52     |     99.71      |",
     "after", ["| FroSSL       | ResNet18 |  1000  |  :x: |       -        |       -        |"]),
    ("README.md", "| W-MSE        | ResNet18 |  1000  |  :x: |      88.67     |     99.68      |",
     "after", ["", _RESULTS_NOTE]),
)  # fmt: skip
_TUTORIAL = "https://github.com/vturrisi/solo-learn/blob/main/docs/source/tutorials/"
PLUGIN_API_EDITS: Tuple[Edit, ...] = (
    ("solo/methods/__init__.py", "from solo.methods.ressl import ReSSL", "before",
     ["from solo.methods.plugins import load_method_plugins"]),
    ("solo/methods/__init__.py", "]", "after",
     ["", '# methods of other installed packages (entry-point group "solo.methods")',
      "load_method_plugins(METHODS)"]),
    ("solo/methods/base.py", "    ]", "after",  # the end of BaseMethod._SCHEDULERS
     ["    # main_pretrain.py requires exactly 2 large crops unless the method sets this to True",
      "    supports_any_num_large_crops: bool = False"]),
    ("solo/methods/wmse.py", "class WMSE(BaseMethod):", "after",
     ["    supports_any_num_large_crops: bool = True", ""]),
    ("solo/methods/mae.py", "class MAE(BaseMethod):", "after",
     ["    supports_any_num_large_crops: bool = True", ""]),
    ("main_pretrain.py", '        assert cfg.method in ["wmse", "mae"]', "replace",
     ["        assert METHODS[cfg.method].supports_any_num_large_crops, (",
      '            f"{cfg.method} needs exactly 2 large crops, but the augmentations give "',
      '            f"{cfg.data.num_large_crops}."',
      "        )"]),
    ("docs/source/index.rst", "   tutorials/add_new_method_momentum", "after",
     ["   tutorials/method_plugins"]),
    ("README.md", f"* [Adding a new momentum method]({_TUTORIAL}add_new_method_momentum.rst)",
     "after", [f"* [Adding a method from another package]({_TUTORIAL}method_plugins.rst)"]),
)  # fmt: skip


@dataclass
class ExportResult:
    """What an export wrote.

    Attributes:
        root (Path): the checkout.
        added (List[str]): new files, relative to ``root``.
        modified (List[str]): changed host files, relative to ``root``.
        commit_message (Path): file holding the commit message.
        pr_description (Path): file holding the pull-request description.
    """

    root: Path
    added: List[str] = field(default_factory=list)
    modified: List[str] = field(default_factory=list)
    commit_message: Optional[Path] = None
    pr_description: Optional[Path] = None


def plugin_source_path(module: str) -> Path:
    """Path of a plugin module's source, found without importing it (methods import the host)."""

    package_root = Path(frossl_plugin.__file__).resolve().parent
    return package_root.joinpath(*module.split(".")[1:]).with_suffix(".py")


def host_relative_path(host_module: str) -> str:
    """``solo.losses.frossl`` -> ``solo/losses/frossl.py``."""

    return host_module.replace(".", "/") + ".py"


def _import_key(line: str) -> Tuple[int, str]:
    # isort's order within a section: ``import x`` lines first, then ``from x import``
    return (0 if line.startswith("import ") else 1), line.split()[1].lower()


def host_source(module: str) -> str:
    """The host module generated from plugin ``module`` (a key of :data:`MODULE_MAP`): imports
    of exported plugin modules point at ``solo.*``, and the top import section is regrouped the
    way the host's isort has it (standard library, then everything else, ``solo`` included).

    Raises:
        ValueError: if the source still mentions ``frossl_plugin`` after the rewrite, or its
            import section holds anything but one-line imports.
    """

    text = plugin_source_path(module).read_text()
    for plugin_module, host_module in MODULE_MAP.items():
        text = text.replace(f"from {plugin_module} import ", f"from {host_module} import ")
    if "frossl_plugin" in text:
        raise ValueError(f"{module} uses plugin code that is not exported (frossl_plugin).")
    lines = text.splitlines(keepends=True)
    is_import = [line.startswith(("import ", "from ")) for line in lines]
    first = is_import.index(True)
    last = len(lines) - is_import[::-1].index(True)
    section = [line for line in lines[first:last] if line.strip()]
    if not all(line.startswith(("import ", "from ")) for line in section) or any(
        line.rstrip().endswith(("(", "\\")) for line in section
    ):
        raise ValueError(f"{module}: the import section must hold one-line imports only.")
    stdlib = [line for line in section if line.split()[1].split(".")[0] in sys.stdlib_module_names]
    other = [line for line in section if line not in stdlib]
    groups = ["".join(sorted(group, key=_import_key)) for group in (stdlib, other) if group]
    return "".join(lines[:first]) + "\n".join(groups) + "".join(lines[last:])


def _apply(relative: str, text: str, anchor: str, where: str, new: Sequence[str]) -> str:
    lines = text.splitlines()
    count = lines.count(anchor)
    if count != 1:
        raise ValueError(
            f"{relative}: expected the line {anchor!r} exactly once, found it {count} times; the "
            f"exporter knows {HOST_COMMIT}."
        )
    index = lines.index(anchor)
    start, stop = {"before": (index, index), "after": (index + 1, index + 1)}.get(
        where, (index, index + 1)
    )
    return "\n".join(lines[:start] + list(new) + lines[stop:]) + "\n"


def pull_request_files(folder: Path) -> List[Path]:
    """The plain files of a pull request under ``folder``, without Python's bytecode caches
    (an install compiles the stored test modules)."""

    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    )


def _export(
    path: str,
    marker: str,
    files: str,
    edits: Tuple[Edit, ...],
    modules: Dict[str, str],
    prefix: str,
    message_dir: Optional[str],
) -> ExportResult:
    root = check_clean_checkout(path)
    if (root / marker).exists():
        raise ValueError(f"{str(root)!r} already has {marker}.")
    header = license_header(root)
    new: Dict[str, str] = {host_relative_path(host): host_source(m) for m, host in modules.items()}
    for source in pull_request_files(FILES / files):
        relative = source.relative_to(FILES / files).as_posix()
        new[relative] = source.read_text()
        parts = relative.split("/")
        wandb = f"{'/'.join(parts[:3])}/wandb/private.yaml"
        if parts[0] == "scripts" and len(parts) == 4 and not (root / wandb).is_file():
            # a config in a new dataset folder: the host's wandb group, copied from a sibling
            siblings = sorted(root.glob(f"scripts/{parts[1]}/*/wandb/private.yaml"))
            if not siblings:
                raise ValueError(f"no scripts/{parts[1]}/*/wandb/private.yaml to copy.")
            new[wandb] = siblings[0].read_text()
    changed: Dict[str, str] = {}
    for relative, anchor, where, lines in edits:  # all checked before anything is written
        text = changed.get(relative) or (root / relative).read_text()
        changed[relative] = _apply(relative, text, anchor, where, lines)
    for relative in new:
        if (root / relative).exists():
            raise ValueError(f"{relative} already exists in {str(root)!r}.")

    result = ExportResult(root=root, added=list(new), modified=list(changed))
    for relative, text in new.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(f"{header}\n{text}" if relative.endswith(".py") else text)
    for relative, text in changed.items():
        (root / relative).write_text(text)
    git_dir = subprocess.run(
        ["git", "rev-parse", "--absolute-git-dir"], cwd=root, capture_output=True, text=True
    ).stdout.strip()
    folder = Path(message_dir) if message_dir else Path(git_dir)
    folder.mkdir(parents=True, exist_ok=True)
    result.commit_message = folder / f"{prefix}_COMMIT_MSG"
    result.pr_description = folder / f"{prefix}_PR.md"
    result.commit_message.write_text((FILES / f"{files}_commit_msg.txt").read_text())
    pr = (FILES / f"{files}_pr.md").read_text().replace("$base_commit", head_commit(root))
    result.pr_description.write_text(pr)
    return result


def export_frossl(path: str, message_dir: Optional[str] = None) -> ExportResult:
    """Writes the FroSSL contribution into the clean solo-learn checkout at ``path``.

    Args:
        path (str): a solo-learn git checkout without local changes.
        message_dir (Optional[str]): where to write ``FROSSL_COMMIT_MSG`` and ``FROSSL_PR.md``.
            Defaults to the checkout's git directory.

    Raises:
        ValueError: if ``path`` is not a clean solo-learn checkout, already has FroSSL, or a host
            file lacks an anchor line of :data:`FROSSL_EDITS` (nothing is written then).

    Returns:
        ExportResult: the files added and modified, and where the messages are.
    """

    return _export(
        path, "solo/methods/frossl.py", "frossl", FROSSL_EDITS, MODULE_MAP, "FROSSL", message_dir
    )


def export_plugin_api(path: str, message_dir: Optional[str] = None) -> ExportResult:
    """Writes the method-plugin contribution into the clean solo-learn checkout at ``path``.

    Args:
        path (str): a solo-learn git checkout without local changes.
        message_dir (Optional[str]): where to write ``METHOD_PLUGINS_COMMIT_MSG`` and
            ``METHOD_PLUGINS_PR.md``. Defaults to the checkout's git directory.

    Raises:
        ValueError: if ``path`` is not a clean solo-learn checkout, already loads method
            plugins, or a host file lacks an anchor line of :data:`PLUGIN_API_EDITS`.

    Returns:
        ExportResult: the files added and modified, and where the messages are.
    """

    return _export(
        path,
        "solo/methods/plugins.py",
        "plugin_api",
        PLUGIN_API_EDITS,
        {},
        "METHOD_PLUGINS",
        message_dir,
    )
