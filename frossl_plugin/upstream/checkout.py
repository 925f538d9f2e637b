"""The target of an export: a clean solo-learn checkout, and the few facts read from it."""

import subprocess
from pathlib import Path
from typing import List

# files whose presence identifies a solo-learn checkout
_HOST_MARKERS = ("main_pretrain.py", "solo/methods/__init__.py", "solo/losses/__init__.py")
# a host file that starts with the license header every new host file must carry
LICENSE_SOURCE = "solo/losses/vicreg.py"


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)


def check_clean_checkout(path: str) -> Path:
    """Returns the root of the solo-learn git checkout at ``path`` if it has no local changes.

    Args:
        path (str): folder to export into.

    Raises:
        ValueError: if ``path`` is not a solo-learn checkout (a git work tree holding
            main_pretrain.py and the solo package) or has uncommitted or untracked changes.
    """

    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise ValueError(f"{str(root)!r} is not a folder; expected a solo-learn checkout.")
    missing = [marker for marker in _HOST_MARKERS if not (root / marker).is_file()]
    if missing or "solo-learn" not in _read(root / "setup.py"):
        raise ValueError(
            f"{str(root)!r} is not a solo-learn checkout (missing {missing or ['setup.py']}); "
            "clone it with: git clone https://github.com/vturrisi/solo-learn"
        )
    top = _git(root, "rev-parse", "--show-toplevel")
    if top.returncode != 0 or Path(top.stdout.strip()).resolve() != root:
        raise ValueError(
            f"{str(root)!r} is not the root of a git work tree; export into a git clone of "
            "solo-learn so that the result is a reviewable commit."
        )
    status = _git(root, "status", "--porcelain", "--untracked-files=normal")
    if status.returncode != 0:
        raise ValueError(f"git status failed in {str(root)!r}: {status.stderr.strip()}")
    if status.stdout.strip():
        changed = status.stdout.strip().splitlines()
        shown = "\n  ".join(changed[:10]) + ("\n  ..." if len(changed) > 10 else "")
        raise ValueError(
            f"{str(root)!r} has uncommitted changes; commit or stash them first, so that the "
            f"export is a pull request of its own:\n  {shown}"
        )
    return root


def _read(path: Path) -> str:
    return path.read_text() if path.is_file() else ""


def license_header(root: Path) -> str:
    """The leading comment block of the host's :data:`LICENSE_SOURCE`, ending in a newline.

    Raises:
        ValueError: if that file does not start with a comment block.
    """

    lines: List[str] = []
    for line in (root / LICENSE_SOURCE).read_text().splitlines():
        if line.startswith("#") or (lines and not line.strip()):
            lines.append(line)
            continue
        break
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise ValueError(f"{LICENSE_SOURCE} in {str(root)!r} has no license comment block.")
    return "\n".join(lines) + "\n"


def head_commit(root: Path) -> str:
    """Short hash of the checkout's HEAD."""

    return _git(root, "rev-parse", "--short", "HEAD").stdout.strip()
