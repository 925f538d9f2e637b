"""The checkpoint a linear probe loads, found and checked against the probe's config.

The host's ``main_linear.py`` loads ``pretrained_feature_extractor`` with ``strict=False`` and
checks nothing, so a backbone pretrained for another method, architecture or dataset loads
without a word. The host's Checkpointer writes the pretraining config as ``args.json`` next to
each checkpoint; the probe's ``pretrain_method``, ``backbone.name`` and ``data.dataset`` must
agree with its ``method``, ``backbone.name`` and ``data.dataset``.

- :func:`last_checkpoint` is the ``${frossl_last_checkpoint:DIR}`` resolver of the linear configs:
  the newest checkpoint below ``DIR`` that agrees with the config it is resolved in.
- :func:`check_probe_checkpoint` is what the Hydra callback runs for ``main_linear.py``, before
  the host loads anything.

Imports neither torch nor the host.
"""

import json
import warnings
from pathlib import Path
from typing import Any, List, Optional, Tuple

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

ARGS_FILE = "args.json"
CHECKPOINT_SUFFIXES = (".ckpt", ".pth", ".pt")  # what the host's main_linear.py accepts
# (key in the linear probe's config, key in the pretraining config of args.json)
PROBE_KEYS: Tuple[Tuple[str, str], ...] = (
    ("pretrain_method", "method"),
    ("backbone.name", "backbone.name"),
    ("data.dataset", "data.dataset"),
)
_UNSET = "<not set>"
FIX_HINT = (
    "pass pretrained_feature_extractor=PATH (a checkpoint pretrained with these settings) or "
    "pretrain_dir=<checkpoint.dir of the matching pretraining config>"
)


class ProbeCheckpointError(ValueError):
    """The linear probe's checkpoint is missing or was pretrained with other settings."""


class UncheckedCheckpointWarning(UserWarning):
    """The linear probe's checkpoint has no ``args.json`` beside it, so nothing is checked."""


Mismatch = Tuple[str, Any, str, Any]  # probe key, probe value, args.json key, args.json value


def is_linear_probe(config: DictConfig) -> bool:
    """Whether ``config`` is a linear-probe config (``main_linear.py``): it sets
    ``pretrain_method``."""

    return "pretrain_method" in config


def pretraining_args(checkpoint: Path) -> Optional[DictConfig]:
    """The pretraining config the host wrote beside ``checkpoint`` (``args.json``), or None
    when there is none.

    Raises:
        ProbeCheckpointError: if ``args.json`` is not a JSON object.
    """

    path = Path(checkpoint).parent / ARGS_FILE
    if not path.is_file():
        return None
    try:
        args = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ProbeCheckpointError(
            f"{str(path)!r} (beside checkpoint {str(checkpoint)!r}) cannot be read as JSON "
            f"({err}); expected the pretraining config the host's Checkpointer writes."
        ) from err
    if not isinstance(args, dict):
        raise ProbeCheckpointError(
            f"{str(path)!r} holds a {type(args).__name__}; expected a JSON object (the "
            "pretraining config the host's Checkpointer writes)."
        )
    return OmegaConf.create(args)


def _select(config: DictConfig, key: str) -> Any:
    return OmegaConf.select(config, key, default=_UNSET, throw_on_resolution_failure=False)


def mismatches(probe: DictConfig, args: DictConfig) -> List[Mismatch]:
    """The keys of :data:`PROBE_KEYS` on which the probe's config and the pretraining config
    ``args`` disagree. A key absent from ``args`` is not compared."""

    found = []
    for probe_key, args_key in PROBE_KEYS:
        pretrained = _select(args, args_key)
        if pretrained == _UNSET:
            continue
        probed = _select(probe, probe_key)
        if probed != pretrained:
            found.append((probe_key, probed, args_key, pretrained))
    return found


def describe(found: List[Mismatch]) -> str:
    """``data.dataset: the probe has 'cifar10', args.json has 'cifar100'; ...``"""

    return "; ".join(
        f"{probe_key}: the probe has {probed!r}, args.json has {args_key}={pretrained!r}"
        for probe_key, probed, args_key, pretrained in found
    )


def _probe_settings(probe: DictConfig) -> str:
    return ", ".join(f"{key}={_select(probe, key)!r}" for key, _ in PROBE_KEYS)


def last_checkpoint(directory: str, _root_: Optional[DictConfig] = None) -> str:
    """Newest ``*.ckpt`` below ``directory`` (by modification time). Resolved in a config
    (``_root_``, passed by OmegaConf), only checkpoints whose ``args.json`` agrees with that
    config on :data:`PROBE_KEYS` are candidates; one without ``args.json`` stays a candidate.

    Raises:
        ProbeCheckpointError: if there is no (agreeing) checkpoint below ``directory``.
    """

    folder = str(Path(directory).resolve())
    checkpoints = sorted(Path(directory).rglob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    if not checkpoints:
        raise ProbeCheckpointError(
            f"No *.ckpt found below {folder!r}; pretrain first (with the pretraining config "
            f"that writes there), or {FIX_HINT}."
        )
    if _root_ is None or not is_linear_probe(_root_):
        return str(checkpoints[-1])
    rejected = []
    for checkpoint in reversed(checkpoints):
        args = pretraining_args(checkpoint)
        found = [] if args is None else mismatches(_root_, args)
        if not found:
            return str(checkpoint)
        rejected.append((checkpoint, found))
    newest, found = rejected[0]
    raise ProbeCheckpointError(
        f"None of the {len(checkpoints)} checkpoint(s) below {folder!r} was pretrained for this "
        f"probe ({_probe_settings(_root_)}); the newest, {str(newest.resolve())!r}: "
        f"{describe(found)}. Pretrain with the matching config, or {FIX_HINT}."
    )


def _resolve_checkpoint_path(config: DictConfig) -> Any:
    try:
        return config.pretrained_feature_extractor
    except InterpolationResolutionError as err:
        # OmegaConf wraps what the resolver raised, several lines long: raise that instead
        cause = err.__context__
        while cause is not None and not isinstance(cause, ProbeCheckpointError):
            cause = cause.__context__
        if cause is None:
            raise
        raise cause from None


def check_probe_checkpoint(config: DictConfig) -> Optional[str]:
    """Resolves a linear probe's ``pretrained_feature_extractor`` (the resolver must be
    registered) and checks the ``args.json`` beside it against the probe's config; warns
    (:class:`UncheckedCheckpointWarning`) when there is none, as for a checkpoint of one's own.

    Returns:
        Optional[str]: the checkpoint checked; None for a config that is not a linear probe or
        sets no checkpoint (the host reports that).

    Raises:
        ProbeCheckpointError: if no checkpoint is found, the path does not exist, or its
            ``args.json`` disagrees with the probe on method, backbone or dataset.
    """

    # keys(), not ``in``: that would resolve the interpolation once more
    if not is_linear_probe(config) or "pretrained_feature_extractor" not in config.keys():
        return None
    if OmegaConf.is_missing(config, "pretrained_feature_extractor"):
        return None
    checkpoint = _resolve_checkpoint_path(config)
    if checkpoint is None:
        return None
    path = Path(str(checkpoint))
    if not path.is_file():
        raise ProbeCheckpointError(
            f"pretrained_feature_extractor={str(checkpoint)!r} is not a file; expected a "
            f"checkpoint ({', '.join(CHECKPOINT_SUFFIXES)}) written by pretraining."
        )
    args = pretraining_args(path)
    if args is None:
        warnings.warn(
            f"frossl-plugin: {str(checkpoint)!r} has no {ARGS_FILE} beside it, so its method, "
            f"backbone and dataset cannot be checked against this probe "
            f"({_probe_settings(config)}).",
            UncheckedCheckpointWarning,
            stacklevel=2,
        )
        return str(checkpoint)
    found = mismatches(config, args)
    if found:
        raise ProbeCheckpointError(
            f"checkpoint {str(checkpoint)!r} was pretrained with other settings than this probe "
            f"has ({describe(found)}); the host would load it without a warning. Set the probe "
            f"to the checkpoint's settings, or {FIX_HINT}."
        )
    return str(checkpoint)
