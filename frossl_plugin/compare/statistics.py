"""The statistics of a comparison: per label, a 95 % Student-t interval over seeds; per pair of
labels, the difference of means with its 95 % Welch interval and Welch's t-test.

Everything is computed by scipy.stats (``t.interval``, ``ttest_ind(equal_var=False)`` and its
``confidence_interval``) on tables aggregated with pandas; nothing here reimplements a test.
"""

import math
import statistics
import warnings
from itertools import combinations
from typing import Dict, List, Optional, Sequence, Tuple

CONFIDENCE = 0.95
# below this many seeds per label, Welch's test has little power: say so next to its p-value
FEW_SEEDS = 5
TEST_NAME = "Welch's two-sided t-test (unequal variances), scipy.stats.ttest_ind(equal_var=False)"


def _finite(values: Sequence[float]) -> List[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def mean_std(values: Sequence[float]) -> Tuple[float, Optional[float]]:
    """(mean, sample std) of the finite ``values``: NaN mean without any, None std with fewer than
    two. Needs no scipy, so the report's plain table works without it."""

    values = _finite(values)
    if not values:
        return float("nan"), None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def label_statistics(values: Sequence[float]) -> Dict[str, float]:
    """n, mean, sample std, the 95 % Student-t interval of the mean, and the range, of the finite
    ``values`` (one per seed). With one value, std and the interval are NaN.

    Returns:
        Dict[str, float]: ``n``, ``mean``, ``std``, ``ci_low``, ``ci_high``, ``min``, ``max``.
    """

    import numpy as np
    from scipy import stats

    values = np.asarray(_finite(values), dtype=float)
    n = len(values)
    nan = float("nan")
    if n == 0:
        return dict(n=0, mean=nan, std=nan, ci_low=nan, ci_high=nan, min=nan, max=nan)
    mean, std = mean_std(values)
    std = nan if std is None else std
    if n > 1 and std > 0:
        low, high = stats.t.interval(CONFIDENCE, n - 1, loc=mean, scale=stats.sem(values))
    elif n > 1:  # every seed gave the same value
        low = high = mean
    else:
        low = high = nan
    return dict(
        n=n,
        mean=mean,
        std=std,
        ci_low=float(low),
        ci_high=float(high),
        min=float(values.min()),
        max=float(values.max()),
    )


def pair_statistics(a: Sequence[float], b: Sequence[float]) -> Dict[str, float]:
    """Mean of ``a`` minus mean of ``b``, its 95 % Welch interval, Welch's degrees of freedom and
    the two-sided p-value. NaN where a side has fewer than two finite values or both sides have
    no spread.

    Returns:
        Dict[str, float]: ``difference``, ``ci_low``, ``ci_high``, ``df``, ``p_value``, ``n_a``,
        ``n_b``.
    """

    import numpy as np
    from scipy import stats

    a, b = np.asarray(_finite(a), dtype=float), np.asarray(_finite(b), dtype=float)
    nan = float("nan")
    result = dict(n_a=len(a), n_b=len(b), difference=nan, ci_low=nan, ci_high=nan)
    result.update(df=nan, p_value=nan)
    if len(a) and len(b):
        result["difference"] = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return result
    without_spread = [a.std(ddof=1) == 0, b.std(ddof=1) == 0]
    if all(without_spread):
        return result
    with warnings.catch_warnings():
        if any(without_spread):
            # a valid Welch test (that side's variance term is 0), where scipy still warns
            warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
        test = stats.ttest_ind(a, b, equal_var=False)
    interval = test.confidence_interval(CONFIDENCE)
    result.update(
        ci_low=float(interval.low),
        ci_high=float(interval.high),
        df=float(test.df),
        p_value=float(test.pvalue),
    )
    return result


def verdict(pair: Dict[str, float], name_a: str, name_b: str, alpha: float = 0.05) -> str:
    """A one-line reading of :func:`pair_statistics`, which says when the test has little power."""

    if not math.isfinite(pair["p_value"]):
        return "not testable (fewer than two seeds on a side, or no spread)"
    few = min(pair["n_a"], pair["n_b"]) < FEW_SEEDS
    power = f"; with {min(pair['n_a'], pair['n_b'])} seeds the test has little power" if few else ""
    if pair["p_value"] < alpha:
        better = name_a if pair["difference"] > 0 else name_b
        return f"{better} is higher (p = {pair['p_value']:.3g} < {alpha:g}){power}"
    return f"no difference detected (p = {pair['p_value']:.3g} >= {alpha:g}){power}"


def label_table(finals):
    """One row per label of a pandas DataFrame with columns ``label`` and ``value`` (one row per
    job): :func:`label_statistics` of its values, in label order.

    Returns:
        pandas.DataFrame: indexed by label.
    """

    import pandas as pd

    rows = {
        label: label_statistics(group["value"].tolist())
        for label, group in finals.groupby("label", sort=True)
    }
    return pd.DataFrame.from_dict(rows, orient="index")


def pair_table(finals):
    """One row per pair of labels (in label order) of :func:`pair_statistics`, a minus b.

    Returns:
        pandas.DataFrame: columns ``a``, ``b`` and those of :func:`pair_statistics`.
    """

    import pandas as pd

    groups = {label: group["value"].tolist() for label, group in finals.groupby("label")}
    rows = [
        {"a": a, "b": b, **pair_statistics(groups[a], groups[b])}
        for a, b in combinations(sorted(groups), 2)
    ]
    columns = ["a", "b", "difference", "ci_low", "ci_high", "df", "p_value", "n_a", "n_b"]
    return pd.DataFrame(rows, columns=columns)
