"""Small, anchored text edits of the host's docs index, README and scripts.

Each edit finds a known anchor in the host file and fails with a ValueError naming it when the
anchor is missing (the host changed), instead of writing something a maintainer would not.
"""

import re
from typing import List, Optional


def _index_of(lines: List[str], predicate, start: int = 0, what: str = "") -> int:
    for index in range(start, len(lines)):
        if predicate(lines[index]):
            return index
    raise ValueError(f"found no {what} to anchor the edit on.")


def insert_sorted_line(
    lines: List[str], new_line: str, pattern: str, start: int = 0, stop: Optional[int] = None
) -> None:
    """Inserts ``new_line`` among consecutive lines matching regex ``pattern`` (group 1 is the
    sort key, compared case-insensitively), at its alphabetical place, searching from ``start``."""

    regex = re.compile(pattern)
    key = regex.match(new_line).group(1).lower()
    first = _index_of(lines, regex.match, start, what=f"line matching {pattern!r}")
    index = first
    stop = len(lines) if stop is None else stop
    while index < stop and regex.match(lines[index]):
        current = regex.match(lines[index]).group(1).lower()
        if current == key:
            raise ValueError(f"{new_line.strip()!r} is already there.")
        if current > key:
            break
        index += 1
    lines.insert(index, new_line)


def add_toctree_entry(text: str, section: str, entry: str, after: Optional[str] = None) -> str:
    """Adds ``entry`` (e.g. ``solo/methods/frossl``) to the ``.. toctree::`` whose caption is
    ``section``, alphabetically, after the line ``after`` if given."""

    lines = text.splitlines(keepends=True)
    caption = _index_of(lines, lambda line: line.strip() == f":caption: {section}", what=section)
    start = caption
    if after is not None:
        start = _index_of(lines, lambda line: line.strip() == after, caption, what=after) + 1
    folder = entry.rsplit("/", 1)[0]
    insert_sorted_line(lines, f"   {entry}\n", rf"^   {re.escape(folder)}/(\w+)$", start)
    return "".join(lines)


def append_toctree_entry(text: str, section: str, entry: str) -> str:
    """Adds ``entry`` as the last item of the toctree captioned ``section``."""

    lines = text.splitlines(keepends=True)
    caption = _index_of(lines, lambda line: line.strip() == f":caption: {section}", what=section)
    first = _index_of(lines, lambda line: line.startswith("   ") and "/" in line, caption)
    index = first
    while index < len(lines) and lines[index].startswith("   ") and lines[index].strip():
        index += 1
    lines.insert(index, f"   {entry}\n")
    return "".join(lines)


def add_readme_method(text: str, name: str, url: str) -> str:
    """Adds ``* [name](url)`` to the README's "Methods available" list."""

    lines = text.splitlines(keepends=True)
    heading = _index_of(lines, lambda line: line.strip() == "## Methods available", what="list")
    insert_sorted_line(lines, f"* [{name}]({url})\n", r"^\* \[([^\]]+)\]", heading)
    return "".join(lines)


def add_results_row(text: str, table: str, row: str, method: str, note: str) -> str:
    """Adds a row for ``method`` to the README results table under ``### {table}`` (sorted by
    method name) and ``note`` right below the table."""

    lines = text.splitlines(keepends=True)
    heading = _index_of(lines, lambda line: line.strip() == f"### {table}", what=table)
    pattern = r"^\|\s*([^|:]*?)\s*(?::\w+:\s*)?\|"
    header_sep = _index_of(lines, lambda line: line.startswith("|--"), heading, what="table")
    index = header_sep + 1
    while index < len(lines) and lines[index].startswith("|"):
        current = re.match(pattern, lines[index]).group(1).lower()
        if current == method.lower():
            raise ValueError(f"{table} table already has a {method} row.")
        if current > method.lower():
            break
        index += 1
    lines.insert(index, row)
    end = index
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    lines.insert(end, f"\n{note}\n")
    return "".join(lines)


def add_tutorial_link(text: str, line: str, after_substring: str) -> str:
    """Adds a bullet ``line`` to the README's tutorial list, after the bullet containing
    ``after_substring``."""

    lines = text.splitlines(keepends=True)
    anchor = _index_of(lines, lambda item: after_substring in item, what=after_substring)
    lines.insert(anchor + 1, line)
    return "".join(lines)


def replace_once(text: str, old: str, new: str, where: str) -> str:
    """``text`` with the single occurrence of ``old`` replaced by ``new``."""

    count = text.count(old)
    if count != 1:
        raise ValueError(
            f"expected the code below exactly once in {where}, found it {count} times; the "
            f"exporter knows solo-learn 1.0.6 (commit 9187ea3):\n{old}"
        )
    return text.replace(old, new)
