"""Where the host's checkout is: the one place that finds solo-learn's scripts."""

import importlib.util
import os
from pathlib import Path
from typing import Optional

UPSTREAM = "https://github.com/vturrisi/solo-learn"


def find_host(path: Optional[str] = None) -> Path:
    """The solo-learn checkout to run: ``path``, else ``$SOLO_LEARN_PATH``, else the folder above
    an importable ``solo`` package.

    Raises:
        ValueError: if none holds ``main_pretrain.py`` next to ``solo/``.
    """

    candidates = []
    if path:
        candidates.append(("--host", Path(path).expanduser()))
    elif os.environ.get("SOLO_LEARN_PATH"):
        candidates.append(("SOLO_LEARN_PATH", Path(os.environ["SOLO_LEARN_PATH"]).expanduser()))
    else:
        spec = importlib.util.find_spec("solo")
        if spec is not None and spec.origin:
            candidates.append(("importable solo", Path(spec.origin).resolve().parent.parent))
    for origin, root in candidates:
        root = root.resolve()
        if (root / "main_pretrain.py").is_file() and (root / "solo").is_dir():
            return root
        raise ValueError(
            f"{origin} points at {str(root)!r}, which is not a solo-learn checkout "
            "(no main_pretrain.py next to solo/)."
        )
    raise ValueError(
        "solo-learn not found: pass --host PATH, or export SOLO_LEARN_PATH=<solo-learn checkout> "
        f"(git clone {UPSTREAM})."
    )
