"""Host modules generated from the plugin's own source: imports rewritten, nothing else changed.

The plugin's ``frossl_plugin/losses/frossl.py`` and ``frossl_plugin/methods/frossl.py`` already
follow the host's layout (``solo/losses/<method>.py`` with ``<method>_loss_func``,
``solo/methods/<method>.py`` with a ``BaseMethod`` subclass), so the upstream files are the same
text with ``frossl_plugin.*`` imports pointed at ``solo.*`` and the import section regrouped the
way the host's isort layout has it (standard library, then third party including ``solo``).
"""

import ast
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import frossl_plugin

# plugin module -> host module, for every plugin module that is exported
MODULE_MAP: Dict[str, str] = {
    "frossl_plugin.losses.frossl": "solo.losses.frossl",
    "frossl_plugin.methods.frossl": "solo.methods.frossl",
}


def plugin_source_path(module: str) -> Path:
    """Path of a plugin module's source, found without importing it (methods import the host)."""

    package_root = Path(frossl_plugin.__file__).resolve().parent
    relative = module.split(".")[1:]
    return package_root.joinpath(*relative).with_suffix(".py")


def host_relative_path(host_module: str) -> str:
    """``solo.losses.frossl`` -> ``solo/losses/frossl.py``."""

    return host_module.replace(".", "/") + ".py"


def _rewrite_module_name(name: str) -> str:
    if name in MODULE_MAP:
        return MODULE_MAP[name]
    if name == "frossl_plugin" or name.startswith("frossl_plugin."):
        raise ValueError(
            f"the plugin source imports {name!r}, which has no solo-learn counterpart; only "
            f"{sorted(MODULE_MAP)} are exported."
        )
    return name


def _is_stdlib(name: str) -> bool:
    return name.split(".")[0] in sys.stdlib_module_names


def _sort_key(node: ast.stmt) -> Tuple[int, str]:
    # isort's default within a section: plain ``import x`` lines first, then ``from x import``
    if isinstance(node, ast.Import):
        return 0, node.names[0].name.lower()
    return 1, node.module.lower()


def _render(node: ast.stmt, source: str) -> str:
    text = ast.get_source_segment(source, node)
    if isinstance(node, ast.ImportFrom):
        if node.level:
            raise ValueError("relative imports cannot be exported; use absolute imports.")
        new_name = _rewrite_module_name(node.module)
        if new_name != node.module:
            text = text.replace(f"from {node.module} import", f"from {new_name} import", 1)
            node.module = new_name
    else:
        for alias in node.names:
            new_name = _rewrite_module_name(alias.name)
            if new_name != alias.name:
                text = text.replace(alias.name, new_name, 1)
                alias.name = new_name
    return text


def to_host_source(module: str, license_header: str) -> str:
    """Text of the host module generated from plugin ``module``.

    Args:
        module (str): plugin module name, a key of :data:`MODULE_MAP`.
        license_header (str): the host's license comment block, put first.

    Raises:
        ValueError: if the module imports plugin code without a host counterpart, or its
            top-level import section holds comments or code that regrouping would lose.

    Returns:
        str: the host module's source.
    """

    source = plugin_source_path(module).read_text()
    tree = ast.parse(source)
    body = list(tree.body)
    has_docstring = ast.get_docstring(tree, clean=False) is not None
    start = 1 if has_docstring else 0
    imports: List[ast.stmt] = []
    for node in body[start:]:
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            break
        imports.append(node)
    if not imports:
        raise ValueError(f"{module} has no import section to rewrite.")

    lines = source.splitlines(keepends=True)
    first, last = imports[0].lineno - 1, imports[-1].end_lineno
    covered = set()
    for node in imports:
        covered.update(range(node.lineno - 1, node.end_lineno))
    stray = [lines[i] for i in range(first, last) if i not in covered and lines[i].strip()]
    if stray:
        raise ValueError(f"{module}: the import section holds non-import lines {stray}.")

    rendered = [(node, _render(node, source)) for node in imports]
    sections = [
        sorted((r for r in rendered if _is_stdlib(_name(r[0]))), key=lambda r: _sort_key(r[0])),
        sorted((r for r in rendered if not _is_stdlib(_name(r[0]))), key=lambda r: _sort_key(r[0])),
    ]
    import_text = "\n\n".join("\n".join(text for _, text in sec) for sec in sections if sec)
    new_source = "".join(lines[:first]) + import_text + "\n" + "".join(lines[last:])
    return f"{license_header}\n{new_source}"


def _name(node: ast.stmt) -> str:
    return node.names[0].name if isinstance(node, ast.Import) else node.module
