"""Safer resuming for runs through the plugin's configs: the host's ``auto_resume``, checked.

The host's ``solo.utils.auto_resumer.AutoResumer.find_checkpoint`` resumes from the newest
checkpoint under ``checkpoint.dir/<method>`` whose ``args.json`` agrees on a short list of keys
(``AutoResumer.SHOULD_MATCH``: name, backbone, method, dataset, max_epochs, the optimizer's name,
batch size, lr and weight decay, wandb project and entity, pretrained feature extractor). Two
runs that differ only in their seed, ``method_kwargs`` or augmentations therefore resume each
other's checkpoints, and it takes the first ``*.ckpt`` file a folder lists, which may be one cut
off while it was being written.

:func:`install_checked_auto_resume` replaces that method, for runs whose config declares the
plugin's Hydra callback, with :func:`find_checkpoint`, which keeps the host's rule and adds:

- every setting that changes the training must agree (the whole config but the keys in
  :data:`NOT_COMPARED`); a checkpoint that agrees on the host's keys but not on these is skipped
  with one line naming the differences, and the run starts afresh in a new folder;
- a checkpoint file that is not a complete checkpoint is skipped with one line, and the next
  newest is used. Nothing is deleted.
"""

import json
import os
import sys
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from omegaconf import DictConfig, OmegaConf

from frossl_plugin.host.patches import expect, set_attr

# settings that may differ between a run and its resumed continuation: where and how it saves and
# logs, how fast it loads data, and how to resume
NOT_COMPARED = (
    "auto_resume",
    "resume_from_checkpoint",
    "wandb_run_id",
    "wandb",
    "checkpoint",
    "auto_umap",
    "data.num_workers",
    "performance",
    "epoch_stats",
    "spectrum_monitor",
    "random_state",
    "debug_augmentations",
)


def _say(message: str) -> None:
    print(f"frossl-plugin: {message}", file=sys.stderr, flush=True)


def is_complete_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a whole ``torch.save`` file: a zip archive whose central directory,
    written last, is present and lists a pickled object. A file cut off while it was being
    written has no central directory."""

    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("data.pkl") for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def _flatten(value: Any, prefix: str = "") -> Dict[str, Any]:
    if isinstance(value, dict):
        flat = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat or {prefix[:-1]: {}}
    return {prefix[:-1]: value}


def _compared(flat: Dict[str, Any]) -> Dict[str, Any]:
    return {
        key: value
        for key, value in flat.items()
        if not any(key == skip or key.startswith(skip + ".") for skip in NOT_COMPARED)
    }


def config_differences(saved: Dict[str, Any], current: Dict[str, Any]) -> List[str]:
    """``key: checkpoint <saved>, this run <current>`` for every compared setting that differs
    (see :data:`NOT_COMPARED`), in key order."""

    saved, current = _compared(_flatten(saved)), _compared(_flatten(current))
    missing = object()
    return [
        f"{key}: checkpoint {saved.get(key, '(unset)')!r}, this run {current.get(key, '(unset)')!r}"
        for key in sorted(set(saved) | set(current))
        if saved.get(key, missing) != current.get(key, missing)
    ]


def _candidates(checkpoint_dir: Path, max_age_s: float) -> List[Tuple[float, Path, Path]]:
    """(modification time, checkpoint, args.json) of every ``*.ckpt`` under ``checkpoint_dir``
    younger than ``max_age_s``, newest first."""

    now = datetime.now().timestamp()
    found = []
    for folder, _, files in os.walk(checkpoint_dir):
        for name in files:
            path = Path(folder) / name
            if name.endswith(".ckpt") and (Path(folder) / "args.json").is_file():
                modified = path.stat().st_mtime
                if now - modified < max_age_s:
                    found.append((modified, path, Path(folder) / "args.json"))
    return sorted(found, key=lambda item: item[0], reverse=True)


def find_checkpoint(self, cfg: DictConfig) -> Tuple[Optional[str], Optional[str]]:
    """The newest complete checkpoint of the same run as ``cfg``, and its wandb run id.

    Same run: the host's ``SHOULD_MATCH`` keys agree, and so does every other setting but those
    in :data:`NOT_COMPARED`. Replaces ``AutoResumer.find_checkpoint`` (see the module docstring).

    Returns:
        Tuple[Optional[str], Optional[str]]: the checkpoint path and wandb run id, or
        ``(None, None)`` when there is nothing to resume.
    """

    from solo.utils.misc import omegaconf_select

    current = OmegaConf.to_container(cfg)
    told = set()
    max_age_s = self.max_hours.total_seconds()
    for _, checkpoint, args_file in _candidates(Path(self.checkpoint_dir), max_age_s):
        try:
            saved = json.loads(args_file.read_text())
        except (OSError, ValueError):
            continue
        saved_cfg = OmegaConf.create(saved)
        if not all(
            omegaconf_select(saved_cfg, key, None) == omegaconf_select(cfg, key, None)
            for key in type(self).SHOULD_MATCH
        ):
            continue  # another run, as the host sees it
        differences = config_differences(saved, current)
        if differences:
            if args_file not in told:
                told.add(args_file)
                shown = "; ".join(differences[:5]) + ("; ..." if len(differences) > 5 else "")
                _say(f"not resuming from {args_file.parent}: a different run ({shown}).")
            continue
        if not is_complete_checkpoint(checkpoint):
            _say(
                f"not resuming from {checkpoint}: it is not a complete checkpoint (cut off "
                "while it was written?); trying the previous one. The file is left in place."
            )
            continue
        return str(checkpoint), saved.get("wandb_run_id")
    return None, None


def install_checked_auto_resume() -> None:
    """Puts :func:`find_checkpoint` in place of ``AutoResumer.find_checkpoint``; undone by
    :func:`frossl_plugin.host.uninstall`.

    Raises:
        HostMismatchError: if the host's ``AutoResumer`` does not have the expected shape.
    """

    from solo.utils.auto_resumer import AutoResumer

    expect(
        callable(getattr(AutoResumer, "find_checkpoint", None))
        and isinstance(getattr(AutoResumer, "SHOULD_MATCH", None), list),
        "solo.utils.auto_resumer.AutoResumer",
        "a class with find_checkpoint and a SHOULD_MATCH list",
        AutoResumer,
    )
    set_attr(AutoResumer, "find_checkpoint", find_checkpoint)


def check_resume_from_checkpoint(config: DictConfig) -> None:
    """Refuses a ``resume_from_checkpoint`` that is not a complete checkpoint file.

    Raises:
        ValueError: naming the file and what is wrong with it.
    """

    path = OmegaConf.select(config, "resume_from_checkpoint", default=None)
    if path is None:
        return
    path = Path(str(path)).expanduser()
    if not path.is_file():
        raise ValueError(f"resume_from_checkpoint={str(path)!r} is not a file.")
    if not is_complete_checkpoint(path):
        raise ValueError(
            f"resume_from_checkpoint={str(path)!r} is not a complete checkpoint (cut off while "
            "it was written?). Pass an earlier checkpoint of the run, or use auto_resume, which "
            "skips such files. Nothing was deleted."
        )
