"""An equal tuning budget for every method of a comparison, chosen on a held-out split.

``frossl-plugin compare --tune optimizer.lr=0.1,0.3,1.0 --tune-method frossl:method_kwargs.
invariance_weight=0.5,1 --tune-method vicreg:method_kwargs.sim_loss_weight=15,25 ...`` gives
every method the same number of trial configurations: the shared axes (``--tune``) times the
method's own axis (``--tune-method``). Each trial trains on the training images minus a
selection split carved from them (:func:`frossl_plugin.compare.image_folder.carve_selection`)
and is scored on that selection split, never on the split the comparison reports. Each
method's best trial then runs the final seeds on the full training images, and the report says
which configuration each method got, out of how many trials, chosen on which split.
"""

import itertools
import json
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

SELECTION_FILE = "selection.json"  # in the tuning sweep's folder


def bare_key(key: str) -> str:
    """A tuned key without Hydra's ``+``/``++`` (add) prefix, as a job's overrides record it."""

    return key.lstrip("+")


def parse_axis(text: str, flag: str = "--tune") -> Tuple[str, List[str]]:
    """``"optimizer.lr=0.1,0.3"`` -> ``("optimizer.lr", ["0.1", "0.3"])``. A key that the
    config does not set (a method's default, such as Barlow Twins' ``method_kwargs.lamb``) is
    written ``++KEY``, which Hydra adds or overrides; the prefix is kept.

    Raises:
        ValueError: naming the text and the form expected.
    """

    key, has_value, values = text.partition("=")
    key = key.strip()
    items = [value.strip() for value in values.split(",")]
    prefix = key[: len(key) - len(bare_key(key))]
    if (
        not has_value
        or not bare_key(key)
        or prefix not in ("", "+", "++")
        or key.startswith(("-", "~"))
        or not all(items)
    ):
        raise ValueError(
            f"{flag} {text!r}: expected KEY=V1,V2,... (a config key and its values, ++KEY for "
            "a key the config does not set), e.g. optimizer.lr=0.1,0.3,1.0."
        )
    if len(set(items)) != len(items):
        raise ValueError(f"{flag} {text!r}: the values must be distinct.")
    return key, items


def parse_method_axis(text: str) -> Tuple[str, str, List[str]]:
    """``"frossl:method_kwargs.invariance_weight=0.5,1"`` -> ``(method, key, values)``.

    Raises:
        ValueError: naming the text and the form expected.
    """

    method, has_colon, axis = text.partition(":")
    if not has_colon or not method.strip():
        raise ValueError(
            f"--tune-method {text!r}: expected METHOD:KEY=V1,V2,..., e.g. "
            "frossl:method_kwargs.invariance_weight=0.5,1,2."
        )
    key, values = parse_axis(axis, "--tune-method")
    return method.strip(), key, values


def method_axes(
    methods: Sequence[str], own: Sequence[str]
) -> Dict[str, List[Tuple[str, List[str]]]]:
    """``--tune-method`` axes by method: ``method -> [(key, values)]``, every method listed.

    Raises:
        ValueError: for an axis of a method not compared.
    """

    axes: Dict[str, List[Tuple[str, List[str]]]] = {method: [] for method in methods}
    for text in own:
        method, key, values = parse_method_axis(text)
        if method not in axes:
            raise ValueError(
                f"--tune-method {text!r}: {method!r} is not among --methods {list(methods)}."
            )
        axes[method].append((key, values))
    return axes


def trial_grid(
    methods: Sequence[str], shared: Sequence[str] = (), own: Sequence[str] = ()
) -> Dict[str, List[List[str]]]:
    """Every method's trials: the product of the shared axes and its own, as override lists.

    Args:
        methods: the compared methods (preset names).
        shared: ``--tune`` axes, applied to every method.
        own: ``--tune-method`` axes, each for one method.

    Returns:
        ``method -> [trial overrides]``, every method with the same number of trials.

    Raises:
        ValueError: for an axis of a method not compared, a key tuned twice, or an unequal number
            of trials between methods (the counts are named).
    """

    shared_axes = [parse_axis(text) for text in shared]
    own_axes = method_axes(methods, own)
    grid = {}
    for method in methods:
        axes = shared_axes + own_axes[method]
        keys = [key for key, _ in axes]
        if len({bare_key(key) for key in keys}) != len(keys):
            raise ValueError(f"{method}: a key is tuned twice in {keys}.")
        grid[method] = [
            [f"{key}={value}" for key, value in zip(keys, values)]
            for values in itertools.product(*(values for _, values in axes))
        ]
    counts = {method: len(trials) for method, trials in grid.items()}
    if len(set(counts.values())) > 1:
        raise ValueError(
            f"unequal tuning budgets {counts}: every method must get the same number of trials. "
            "Give each method's --tune-method axis the same number of values (or none)."
        )
    return grid


def _final(rows: Sequence[dict], metric: str) -> float:
    values = [row.get(metric) for row in rows]
    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return finite[-1] if finite else float("nan")


def choose(
    grid: Dict[str, List[List[str]]], scores: Dict[Tuple[str, Tuple[str, ...]], float]
) -> Dict[str, dict]:
    """Each method's best trial by score (the first in grid order on a tie; NaN never wins).

    Args:
        grid: from :func:`trial_grid`.
        scores: ``(method, tuple(trial overrides)) -> score`` of the finished trials.

    Returns:
        ``method -> {"chosen": overrides or None, "score": best score, "trials": [...]}``.
    """

    chosen = {}
    for method, trials in grid.items():
        rows = [
            {"overrides": trial, "score": scores.get((method, tuple(trial)), float("nan"))}
            for trial in trials
        ]
        finite = [row for row in rows if math.isfinite(row["score"])]
        best = max(finite, key=lambda row: row["score"]) if finite else None
        chosen[method] = {
            "chosen": best["overrides"] if best else None,
            "score": best["score"] if best else float("nan"),
            "trials": rows,
        }
    return chosen


def trial_seed_scores(
    tune_dir: Path, grid: Dict[str, List[List[str]]], metric: str
) -> Dict[Tuple[str, Tuple[str, ...]], Dict[int, float]]:
    """The final ``metric`` of every finished job of the tuning sweep, by method, trial and
    seed."""

    from frossl_plugin.compare.report import load_sweep, parse_overrides

    sweep = load_sweep(tune_dir)
    scores: Dict[Tuple[str, Tuple[str, ...]], Dict[int, float]] = {}
    for job in sweep.finished:
        for trial in grid.get(job.method, []):
            wanted = parse_overrides(trial)  # as the job's overrides were parsed
            if all(job.overrides.get(key) == value for key, value in wanted.items()):
                scores.setdefault((job.method, tuple(trial)), {})[job.seed] = _final(
                    job.rows, metric
                )
    return scores


def mean_scores(
    by_seed: Dict[Tuple[str, Tuple[str, ...]], Dict[int, float]],
    seeds: Optional[Sequence[int]] = None,
) -> Dict[Tuple[str, Tuple[str, ...]], float]:
    """Each trial's score from :func:`trial_seed_scores`: the mean over its ``seeds`` (every seed
    found when None). A trial with a seed unfinished, or without a finite score on every seed,
    has none: a seed that failed to train still counts, through its low score."""

    scores = {}
    for trial, found in by_seed.items():
        wanted = sorted(found) if seeds is None else list(seeds)
        values = [found.get(seed, float("nan")) for seed in wanted]
        if values and all(math.isfinite(value) for value in values):
            scores[trial] = sum(values) / len(values)
    return scores


def trial_scores(
    tune_dir: Path,
    grid: Dict[str, List[List[str]]],
    metric: str,
    seeds: Optional[Sequence[int]] = None,
) -> Dict[Tuple[str, Tuple[str, ...]], float]:
    """:func:`mean_scores` of the tuning sweep in ``tune_dir``."""

    return mean_scores(trial_seed_scores(tune_dir, grid, metric), seeds)


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN: a trial without a score
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


def write_selection(tune_dir: Path, record: dict) -> Path:
    """Writes ``record`` (non-finite scores as null) to ``tune_dir/selection.json``."""

    path = Path(tune_dir) / SELECTION_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_json_safe(record), indent=1, allow_nan=False) + "\n")
    return path


SELECTION_SETTINGS = ("seeds", "epochs", "metric", "split")  # what makes two selections comparable


def merge_selection(earlier: Optional[dict], record: dict) -> Tuple[dict, List[str]]:
    """``record`` with the methods of an ``earlier`` selection of the same folder that it does
    not tune, when both were tuned alike (same seeds, epochs, metric and split): a comparison run
    as one ``compare`` call per method keeps every method's choice.

    Returns:
        (the merged record, the earlier methods dropped because their tuning differed).
    """

    methods = (earlier or {}).get("methods") or {}
    others = {name: entry for name, entry in methods.items() if name not in record["methods"]}
    if not others:
        return record, []

    def settings(selection: dict) -> tuple:
        return tuple(
            _seeds(selection) if key == "seeds" else selection.get(key)
            for key in SELECTION_SETTINGS
        )

    if settings(earlier) != settings(record):
        return record, sorted(others)
    return {**record, "methods": {**others, **record["methods"]}}, []


def read_selection(sweep_dir: Path) -> Optional[dict]:
    """The selection record of a comparison (``OUT/tune/selection.json``), or None."""

    path = Path(sweep_dir) / "tune" / SELECTION_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def selection_markdown(record: dict) -> List[str]:
    """The report's section on tuning: what each method got, of how many trials, on which split."""

    methods = record.get("methods", {})
    counts = sorted({len(entry["trials"]) for entry in methods.values()})
    seeds = _seeds(record)
    on_seeds = (
        f"seeds {', '.join(map(str, seeds))} each (a trial's score: the mean over them)"
        if len(seeds) > 1
        else f"seed {seeds[0]}"
    )
    lines = [
        "## Tuning",
        "",
        f"- budget: {', '.join(map(str, counts))} trial configuration(s) per method, "
        f"{on_seeds}, {record.get('epochs')} epochs each",
        f"- chosen on: {record.get('split')}",
        f"- score: final {record.get('metric')} on the selection split",
        "",
        "| method | chosen | its selection score | trials (score) |",
        "| --- | --- | --- | --- |",
    ]
    for method, entry in sorted(methods.items()):
        trials = "; ".join(
            f"{' '.join(row['overrides']) or '(defaults)'} ({_fmt(row['score'])}"
            + (f": {', '.join(map(_fmt, row['seed_scores'].values()))})" if len(seeds) > 1 else ")")
            for row in entry["trials"]
        )
        chosen = " ".join(entry["chosen"]) if entry["chosen"] is not None else "none finished"
        lines.append(f"| {method} | {chosen or '(defaults)'} | {_fmt(entry['score'])} | {trials} |")
    return lines + [""]


def _seeds(record: dict) -> List[Optional[int]]:
    """The tuning seeds of a selection record (one written before several seeds has "seed")."""

    return list(record["seeds"]) if record.get("seeds") else [record.get("seed")]


def _fmt(value: float) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) and math.isfinite(value) else "-"
