"""Methods from other installed packages, registered through the ``solo.methods`` entry points.

A package adds a method to solo-learn without editing it by declaring, in its own metadata,

.. code-block:: toml

    [project.entry-points."solo.methods"]
    my_method = "my_package.my_method:MyMethod"

where ``MyMethod`` subclasses :class:`solo.methods.base.BaseMethod`. The name on the left is the
``method`` of the configs. Entry points are loaded at the end of ``import solo.methods``, so the
plugin's module must import what it needs from the submodules (``solo.methods.base``,
``solo.losses``, ``solo.utils``), never from ``solo.methods`` itself.
"""

import sys
import warnings
from importlib.metadata import entry_points
from typing import Dict, Iterable

from solo.methods.base import BaseMethod

ENTRY_POINT_GROUP = "solo.methods"


def _entry_points(group: str) -> Iterable:
    eps = entry_points()
    if hasattr(eps, "select"):  # python >= 3.10
        return eps.select(group=group)
    return eps.get(group, [])  # python 3.8 and 3.9


def _being_imported(ep) -> bool:
    """Whether the entry point's module is partway through its own import, i.e. it imported
    ``solo.methods`` and is waiting for it: its classes do not exist yet."""

    module = sys.modules.get(ep.value.split(":")[0].strip())
    spec = getattr(module, "__spec__", None)
    return bool(getattr(spec, "_initializing", False))


def load_method_plugins(
    methods: Dict[str, type], group: str = ENTRY_POINT_GROUP
) -> Dict[str, type]:
    """Adds the methods declared by installed packages under the entry-point group ``group``.

    Only the installed packages' metadata is read; nothing is imported unless a package declares
    a method. A plugin never replaces a method that is already registered, and a plugin that
    fails to load or is not a :class:`BaseMethod` subclass is skipped with a warning, so a broken
    plugin cannot break solo-learn. A plugin whose module is itself being imported (it was
    imported before ``solo.methods`` and imported it) is skipped silently: its classes do not
    exist yet, so such a plugin registers itself once its import completes.

    Args:
        methods (Dict[str, type]): the method registry, changed in place.
        group (str): entry-point group to read. Defaults to "solo.methods".

    Returns:
        Dict[str, type]: the methods that were added, by name.
    """

    added = {}
    for ep in _entry_points(group):
        if ep.name in methods:
            current = methods[ep.name]
            warnings.warn(
                f"Method plugin {ep.name!r} ({ep.value}) is not loaded: "
                f"{current.__module__}.{current.__qualname__} already has that name."
            )
            continue
        if _being_imported(ep):
            continue
        try:
            method = ep.load()
        except Exception as err:
            warnings.warn(f"Method plugin {ep.name!r} ({ep.value}) failed to load: {err!r}")
            continue
        if not (isinstance(method, type) and issubclass(method, BaseMethod)):
            warnings.warn(
                f"Method plugin {ep.name!r} ({ep.value}) is not a subclass of BaseMethod; "
                "it is not loaded."
            )
            continue
        methods[ep.name] = added[ep.name] = method
    return added
