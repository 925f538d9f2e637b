"""The two upstream contributions, written into a clean solo-learn checkout.

- :func:`export_frossl`: FroSSL as a solo-learn method (loss, method, registrations, configs,
  tests, docs, README), its Python modules generated from the plugin's own source.
- :func:`export_plugin_api`: entry-point method plugins for the host, and the relaxed "exactly 2
  large crops" check for methods that set ``supports_any_num_large_crops``.

Neither commits: each leaves the changes in the work tree and writes the commit message and the
pull-request description into the checkout's git directory (or ``message_dir``), outside the
work tree, so ``git status`` shows exactly the contribution.
"""

import subprocess
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template
from typing import List, Optional

from frossl_plugin.upstream import host_edits, registry_edits
from frossl_plugin.upstream.checkout import check_clean_checkout, head_commit, license_header
from frossl_plugin.upstream.configs import CONFIG_TARGETS, export_configs
from frossl_plugin.upstream.sources import MODULE_MAP, host_relative_path, to_host_source

PAPER_URL = "https://arxiv.org/abs/2310.02903"

RESULTS_NOTE = (
    "**FroSSL**: [paper](https://arxiv.org/abs/2310.02903). No run of "
    "`scripts/pretrain/cifar/frossl.yaml` has been measured in solo-learn yet, so its cells are "
    "empty; they are for its online linear accuracy (the protocol of this table) once measured."
)


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


def _template(name: str) -> str:
    return resources.files("frossl_plugin.upstream").joinpath("templates", name).read_text()


def _git_dir(root: Path) -> Path:
    out = subprocess.run(
        ["git", "rev-parse", "--absolute-git-dir"], cwd=root, capture_output=True, text=True
    )
    return Path(out.stdout.strip())


class _Writer:
    """Writes files into the checkout and records them."""

    def __init__(self, root: Path, header: str):
        self.root = root
        self.header = header
        self.result = ExportResult(root=root)

    def new(self, relative: str, text: str, licensed: bool = False) -> None:
        path = self.root / relative
        if path.exists():
            raise ValueError(f"{relative} already exists in {str(self.root)!r}.")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{self.header}\n{text}" if licensed else text)
        self.result.added.append(relative)

    def edit(self, relative: str, change) -> None:
        path = self.root / relative
        path.write_text(change(path.read_text()))
        self.result.modified.append(relative)

    def messages(self, prefix: str, commit: str, pr: str, message_dir: Optional[str]) -> None:
        folder = Path(message_dir) if message_dir else _git_dir(self.root)
        folder.mkdir(parents=True, exist_ok=True)
        self.result.commit_message = folder / f"{prefix}_COMMIT_MSG"
        self.result.pr_description = folder / f"{prefix}_PR.md"
        self.result.commit_message.write_text(commit)
        self.result.pr_description.write_text(pr)


def export_frossl(path: str, message_dir: Optional[str] = None) -> ExportResult:
    """Writes the FroSSL contribution into the clean solo-learn checkout at ``path``.

    Args:
        path (str): a solo-learn git checkout without local changes.
        message_dir (Optional[str]): where to write ``FROSSL_COMMIT_MSG`` and ``FROSSL_PR.md``.
            Defaults to the checkout's git directory.

    Raises:
        ValueError: if ``path`` is not a clean solo-learn checkout, already has FroSSL, or a host
            file the export edits does not look as expected.

    Returns:
        ExportResult: the files added and modified, and where the messages are.
    """

    root = check_clean_checkout(path)
    if (root / "solo" / "methods" / "frossl.py").exists():
        raise ValueError(f"{str(root)!r} already has solo/methods/frossl.py.")
    writer = _Writer(root, license_header(root))

    for plugin_module, host_module in MODULE_MAP.items():
        writer.new(host_relative_path(host_module), to_host_source(plugin_module, writer.header))
    writer.edit(
        "solo/losses/__init__.py",
        lambda text: registry_edits.register_loss(text, "frossl", "frossl_loss_func"),
    )
    writer.edit(
        "solo/methods/__init__.py",
        lambda text: registry_edits.register_method(text, "frossl", "frossl", "FroSSL"),
    )

    configs = export_configs(root)
    writer.result.added.extend(configs)

    writer.new("tests/losses/test_frossl.py", _template("test_frossl_loss.py.tmpl"), True)
    writer.new("tests/methods/test_frossl.py", _template("test_frossl_method.py.tmpl"), True)

    writer.new("docs/source/solo/methods/frossl.rst", _template("docs_method.rst.tmpl"))
    writer.new("docs/source/solo/losses/frossl.rst", _template("docs_loss.rst.tmpl"))

    def index(text: str) -> str:
        text = host_edits.add_toctree_entry(
            text, "Methods", "solo/methods/frossl", after="solo/methods/linear"
        )
        return host_edits.add_toctree_entry(text, "Losses", "solo/losses/frossl")

    writer.edit("docs/source/index.rst", index)

    row = "| FroSSL       | ResNet18 |  1000  |  :x: |       -        |       -        |\n"

    def readme(text: str) -> str:
        text = host_edits.add_readme_method(text, "FroSSL", PAPER_URL)
        return host_edits.add_results_row(text, "CIFAR-10", row, "FroSSL", RESULTS_NOTE)

    writer.edit("README.md", readme)

    pretrain = sorted({t.host_path for t in CONFIG_TARGETS if t.stage == "pretrain"})
    linear = sorted({t.host_path for t in CONFIG_TARGETS if t.stage == "linear"})
    config_list = (
        ", ".join(f"`{p}`" for p in pretrain) + "; linear: " + ", ".join(f"`{p}`" for p in linear)
    )
    pr = Template(_template("frossl_pr.md.tmpl")).substitute(
        config_list=config_list, base_commit=head_commit(root)
    )
    writer.messages("FROSSL", _template("frossl_commit_msg.tmpl"), pr, message_dir)
    return writer.result


_CROP_CHECK_OLD = """    if cfg.data.num_large_crops != 2:
        assert cfg.method in ["wmse", "mae"]
"""
_CROP_CHECK_NEW = """    if cfg.data.num_large_crops != 2:
        assert METHODS[cfg.method].supports_any_num_large_crops, (
            f"{cfg.method} needs exactly 2 large crops, but the augmentations give "
            f"{cfg.data.num_large_crops}."
        )
"""
_BASE_ANCHOR = """    _SCHEDULERS = [
        "reduce",
        "warmup_cosine",
        "step",
        "exponential",
        "none",
    ]
"""
_BASE_FLAG = (
    "    # main_pretrain.py requires exactly 2 large crops unless the method sets this to True\n"
    "    supports_any_num_large_crops: bool = False\n"
)
_METHODS_CALL = """

# methods of other installed packages (entry-point group "solo.methods")
load_method_plugins(METHODS)
"""


def _declare_any_num_large_crops(class_name: str):
    def change(text: str) -> str:
        anchor = f"class {class_name}(BaseMethod):\n"
        return host_edits.replace_once(
            text,
            anchor,
            f"{anchor}    supports_any_num_large_crops: bool = True\n\n",
            f"the {class_name} module",
        )

    return change


def export_plugin_api(path: str, message_dir: Optional[str] = None) -> ExportResult:
    """Writes the method-plugin contribution into the clean solo-learn checkout at ``path``.

    Args:
        path (str): a solo-learn git checkout without local changes.
        message_dir (Optional[str]): where to write ``METHOD_PLUGINS_COMMIT_MSG`` and
            ``METHOD_PLUGINS_PR.md``. Defaults to the checkout's git directory.

    Raises:
        ValueError: if ``path`` is not a clean solo-learn checkout, already loads method
            plugins, or a host file the export edits does not look as expected.

    Returns:
        ExportResult: the files added and modified, and where the messages are.
    """

    root = check_clean_checkout(path)
    if (root / "solo" / "methods" / "plugins.py").exists():
        raise ValueError(f"{str(root)!r} already has solo/methods/plugins.py.")
    writer = _Writer(root, license_header(root))

    writer.new("solo/methods/plugins.py", _template("plugins.py.tmpl"), True)

    def methods_init(text: str) -> str:
        lines = text.splitlines(keepends=True)
        host_edits.insert_sorted_line(
            lines,
            "from solo.methods.plugins import load_method_plugins\n",
            r"^from solo\.methods\.(\w+) import ",
        )
        return "".join(lines).rstrip("\n") + _METHODS_CALL

    writer.edit("solo/methods/__init__.py", methods_init)
    writer.edit(
        "solo/methods/base.py",
        lambda text: host_edits.replace_once(
            text, _BASE_ANCHOR, f"{_BASE_ANCHOR}{_BASE_FLAG}", "solo/methods/base.py"
        ),
    )
    writer.edit("solo/methods/wmse.py", _declare_any_num_large_crops("WMSE"))
    writer.edit("solo/methods/mae.py", _declare_any_num_large_crops("MAE"))
    writer.edit(
        "main_pretrain.py",
        lambda text: host_edits.replace_once(
            text, _CROP_CHECK_OLD, _CROP_CHECK_NEW, "main_pretrain.py"
        ),
    )

    writer.new("tests/methods/test_plugins.py", _template("test_plugins.py.tmpl"), True)
    writer.new(
        "docs/source/tutorials/method_plugins.rst", _template("docs_method_plugins.rst.tmpl")
    )
    writer.edit(
        "docs/source/index.rst",
        lambda text: host_edits.append_toctree_entry(text, "Tutorials", "tutorials/method_plugins"),
    )
    link = (
        "* [Adding a method from another package](https://github.com/vturrisi/solo-learn/blob/"
        "main/docs/source/tutorials/method_plugins.rst)\n"
    )
    writer.edit(
        "README.md",
        lambda text: host_edits.add_tutorial_link(text, link, "[Adding a new momentum method]"),
    )

    pr = Template(_template("plugin_api_pr.md.tmpl")).substitute(base_commit=head_commit(root))
    writer.messages("METHOD_PLUGINS", _template("plugin_api_commit_msg.tmpl"), pr, message_dir)
    return writer.result
