"""Checked, reversible changes to host (solo-learn) and timm objects.

Every change the plugin makes to an object it does not own goes through :func:`set_attr` or
:func:`set_item`: the caller first checks the object's shape with :func:`expect`, which raises
:class:`HostMismatchError` naming the object and the host commit this was built for, and the
original value is recorded so that :func:`undo_all` restores it.
"""

from typing import Any, Callable, Dict, Hashable, Tuple

HOST_COMMIT = "solo-learn 9187ea3"

_MISSING = object()
# key -> undo; the first change of a key records the original, later changes keep that undo
_UNDO: Dict[Tuple[Any, ...], Callable[[], None]] = {}


class HostMismatchError(RuntimeError):
    """A host or timm object does not have the shape the plugin was built against."""

    def __init__(self, obj: str, expected: str, found: Any):
        super().__init__(
            f"frossl-plugin was built against {HOST_COMMIT} (and timm 1.0), but {obj} differs: "
            f"expected {expected}, found {found!r}. Use that host commit, or update "
            "frossl_plugin/host/ for this one."
        )


def expect(condition: bool, obj: str, expected: str, found: Any) -> None:
    """Raises :class:`HostMismatchError` unless ``condition``."""

    if not condition:
        raise HostMismatchError(obj, expected, found)


def set_attr(owner: Any, name: str, value: Any) -> None:
    """``setattr(owner, name, value)``, undone by :func:`undo_all` (the original is restored;
    an attribute that was not in ``owner.__dict__`` is deleted)."""

    key = ("attr", id(owner), name)
    if key not in _UNDO:
        original = vars(owner).get(name, _MISSING)

        def undo() -> None:
            if original is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, original)

        _UNDO[key] = undo
    setattr(owner, name, value)


def set_item(mapping: Dict[Hashable, Any], name: Hashable, value: Any) -> None:
    """``mapping[name] = value`` in place, undone by :func:`undo_all` (the original value is put
    back, or the key removed)."""

    key = ("item", id(mapping), name)
    if key not in _UNDO:
        original = mapping.get(name, _MISSING)

        def undo() -> None:
            if original is _MISSING:
                mapping.pop(name, None)
            else:
                mapping[name] = original

        _UNDO[key] = undo
    mapping[name] = value


def on_undo(key: Hashable, undo: Callable[[], None]) -> None:
    """Records ``undo`` for a change made another way (e.g. a ``sys.meta_path`` entry)."""

    _UNDO.setdefault(("other", key), undo)


def undo_all() -> None:
    """Undoes every recorded change, newest first."""

    while _UNDO:
        _UNDO.popitem()[1]()


def installed() -> bool:
    """Whether any change is in place."""

    return bool(_UNDO)
