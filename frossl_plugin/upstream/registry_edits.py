"""Line edits that register a new loss and method in the host's ``__init__`` files.

The host keeps its imports, ``METHODS`` entries and ``__all__`` entries in (mostly) alphabetical
order; each edit inserts one line before the first existing entry that sorts after it, so the
diff is one added line per place, where a maintainer would put it by hand.
"""

import ast
import re
from typing import Callable, List, Optional


def _insert_before_first_greater(
    lines: List[str],
    new_line: str,
    key: str,
    entry_key: Callable[[str], Optional[str]],
    start: int = 0,
    end: Optional[int] = None,
) -> None:
    """Inserts ``new_line`` before the first line in ``lines[start:end]`` whose entry key sorts
    after ``key`` (case-insensitively), or after the last entry if none does."""

    end = len(lines) if end is None else end
    last_entry = None
    for index in range(start, end):
        current = entry_key(lines[index])
        if current is None:
            continue
        if current.lower() == key.lower():
            raise ValueError(f"{key!r} is already registered: {lines[index].strip()!r}")
        if current.lower() > key.lower():
            lines.insert(index, new_line)
            return
        last_entry = index
    if last_entry is None:
        raise ValueError(f"found no entry to place {new_line.strip()!r} next to.")
    lines.insert(last_entry + 1, new_line)


def _block(lines: List[str], opener: str) -> range:
    """Line range inside the top-level ``opener`` (``METHODS = {``, ``__all__ = [``)."""

    for index, line in enumerate(lines):
        if line.startswith(opener):
            for stop in range(index + 1, len(lines)):
                if lines[stop].startswith(("}", "]")):
                    return range(index + 1, stop)
    raise ValueError(f"found no {opener!r} block.")


def _import_key(package: str) -> Callable[[str], Optional[str]]:
    pattern = re.compile(rf"^from {re.escape(package)}\.(\w+) import ")

    def key(line: str) -> Optional[str]:
        match = pattern.match(line)
        return match.group(1) if match else None

    return key


def _quoted_key(line: str) -> Optional[str]:
    match = re.match(r'^\s+"(\w+)"', line)
    return match.group(1) if match else None


def _check(source: str, names: List[str]) -> str:
    tree = ast.parse(source)
    exported = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            exported = {elt.value for elt in node.value.elts}
    missing = [name for name in names if name not in exported]
    if missing:
        raise ValueError(f"edit left {missing} out of __all__.")
    return source


def register_loss(source: str, module: str, name: str) -> str:
    """Adds ``from solo.losses.<module> import <name>`` and ``name`` to ``__all__``.

    Args:
        source (str): text of the host's ``solo/losses/__init__.py``.
        module (str): loss module name, e.g. ``"frossl"``.
        name (str): exported function, e.g. ``"frossl_loss_func"``.

    Returns:
        str: the edited text.
    """

    lines = source.splitlines(keepends=True)
    _insert_before_first_greater(
        lines, f"from solo.losses.{module} import {name}\n", module, _import_key("solo.losses")
    )
    block = _block(lines, "__all__ = [")
    _insert_before_first_greater(
        lines, f'    "{name}",\n', name, _quoted_key, block.start, block.stop
    )
    return _check("".join(lines), [name])


def register_method(source: str, module: str, key: str, class_name: str) -> str:
    """Adds the import, the ``METHODS[key]`` entry and ``__all__`` entry of a method.

    Args:
        source (str): text of the host's ``solo/methods/__init__.py``.
        module (str): method module name, e.g. ``"frossl"``.
        key (str): name in ``METHODS`` (the config's ``method``), e.g. ``"frossl"``.
        class_name (str): the method class, e.g. ``"FroSSL"``.

    Returns:
        str: the edited text.
    """

    lines = source.splitlines(keepends=True)
    _insert_before_first_greater(
        lines,
        f"from solo.methods.{module} import {class_name}\n",
        module,
        _import_key("solo.methods"),
    )
    block = _block(lines, "METHODS = {")
    # the dict starts with the base classes; methods follow a "# methods" comment
    start = next(
        (i + 1 for i in block if lines[i].strip() == "# methods"),
        block.start,
    )
    _insert_before_first_greater(
        lines, f'    "{key}": {class_name},\n', key, _quoted_key, start, block.stop
    )
    block = _block(lines, "__all__ = [")
    _insert_before_first_greater(
        lines, f'    "{class_name}",\n', class_name, _quoted_key, block.start, block.stop
    )
    return _check("".join(lines), [class_name])
