"""The comparison statistics against independent computations: textbook t quantiles and Welch's
formulas written out here."""

import math
import statistics as stdlib

import pandas as pd
import pytest

from frossl_plugin.compare.statistics import (
    label_statistics,
    label_table,
    mean_std,
    pair_statistics,
    pair_table,
    verdict,
)

# two-sided 95 % Student-t quantiles from a printed table, by degrees of freedom
T_975 = {1: 12.706204736, 2: 4.302652730, 4: 2.776445105, 9: 2.262157163}


@pytest.mark.parametrize(
    "values", [[75.2, 73.5, 76.5], [10.0, 12.0], [1, 2, 3, 4, 5], list(range(10))]
)
def test_label_interval_is_the_student_t_interval(values):
    n = len(values)
    mean, std = stdlib.fmean(values), stdlib.stdev(values)
    half = T_975[n - 1] * std / math.sqrt(n)
    result = label_statistics(values)
    assert result["n"] == n and result["mean"] == pytest.approx(mean)
    assert result["std"] == pytest.approx(std)
    assert result["ci_low"] == pytest.approx(mean - half, rel=1e-8)
    assert result["ci_high"] == pytest.approx(mean + half, rel=1e-8)
    assert (result["min"], result["max"]) == (min(values), max(values))


def test_label_statistics_edge_cases():
    one = label_statistics([42.0])
    assert one["n"] == 1 and one["mean"] == 42.0 and math.isnan(one["std"])
    assert math.isnan(one["ci_low"]) and math.isnan(one["ci_high"])
    same = label_statistics([5.0, 5.0, 5.0])
    assert same["std"] == 0 and same["ci_low"] == same["ci_high"] == 5.0
    assert label_statistics([1.0, float("nan"), 3.0, None])["n"] == 2  # non-finite left out
    assert label_statistics([])["n"] == 0 and math.isnan(label_statistics([])["mean"])


def test_mean_std_of_the_plain_table():
    # squared deviations from the mean 5 sum to 32 over 8 values: sample variance 32 / 7
    mean, std = mean_std([2, 4, 4, 4, 5, 5, 7, 9])
    assert mean == 5 and std == pytest.approx(math.sqrt(32 / 7))
    assert mean_std([3.5]) == (3.5, None)
    assert mean_std([1.0, float("nan"), None, 3.0]) == (2.0, pytest.approx(math.sqrt(2)))
    empty_mean, empty_std = mean_std([])
    assert math.isnan(empty_mean) and empty_std is None


def _welch(a, b):
    va, vb = stdlib.variance(a), stdlib.variance(b)
    na, nb = len(a), len(b)
    se = math.sqrt(va / na + vb / nb)
    df = se**4 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
    return stdlib.fmean(a) - stdlib.fmean(b), se, df


@pytest.mark.parametrize(
    "a, b",
    [
        ([75.2, 73.5, 76.5], [46.5, 73.2, 32.8]),
        ([1, 2, 3, 4], [2, 3, 5, 7]),
        ([60.1, 61.0, 59.5, 62.2, 60.0], [58.0, 57.1, 59.9]),
        ([86.2, 85.0, 84.5], [80.0, 80.0, 80.0]),  # one side without spread
    ],
)
def test_pair_is_welchs_test_and_interval(a, b):
    from scipy import stats

    difference, se, df = _welch(a, b)
    t = difference / se
    result = pair_statistics(a, b)
    assert result["difference"] == pytest.approx(difference)
    assert result["df"] == pytest.approx(df, rel=1e-9)
    # the p-value from the t distribution's survival function at Welch's df
    assert result["p_value"] == pytest.approx(2 * stats.t.sf(abs(t), df), rel=1e-9)
    half = stats.t.ppf(0.975, df) * se
    assert result["ci_low"] == pytest.approx(difference - half, rel=1e-9)
    assert result["ci_high"] == pytest.approx(difference + half, rel=1e-9)
    assert (result["n_a"], result["n_b"]) == (len(a), len(b))


def test_pair_with_one_side_without_spread_warns_nothing():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = pair_statistics([86.2, 85.0, 84.5], [80.0, 80.0, 80.0])
    assert result["df"] == pytest.approx(2.0)  # Welch's df is n_a - 1 when b has no spread


def test_pair_statistics_is_antisymmetric():
    a, b = [75.2, 73.5, 76.5], [46.5, 73.2, 32.8]
    ab, ba = pair_statistics(a, b), pair_statistics(b, a)
    assert ab["difference"] == pytest.approx(-ba["difference"])
    assert ab["p_value"] == pytest.approx(ba["p_value"])
    assert ab["ci_low"] == pytest.approx(-ba["ci_high"])


def test_pair_with_one_seed_or_no_spread_is_not_tested():
    assert math.isnan(pair_statistics([1.0], [2.0, 3.0])["p_value"])
    assert pair_statistics([1.0], [2.0, 3.0])["difference"] == pytest.approx(-1.5)
    assert math.isnan(pair_statistics([1.0, 1.0], [2.0, 2.0])["p_value"])


def test_verdicts_name_the_higher_label_and_the_power():
    strong = pair_statistics([90.0, 91.0, 90.5], [50.0, 51.0, 50.4])
    assert verdict(strong, "a", "b").startswith("a is higher (p = ")
    assert "with 3 seeds the test has little power" in verdict(strong, "a", "b")
    weak = pair_statistics([75.2, 73.5, 76.5], [46.5, 73.2, 32.8])
    assert verdict(weak, "a", "b").startswith("no difference detected (p = ")
    many = pair_statistics([1, 2, 3, 4, 5], [11, 12, 13, 14, 15])
    assert "little power" not in verdict(many, "x", "y")
    assert verdict(pair_statistics([1.0], [2.0]), "a", "b").startswith("not testable")


def test_tables_group_the_jobs_by_label():
    finals = pd.DataFrame(
        {
            "label": ["b", "a", "a", "b", "a", "c"],
            "value": [50.0, 75.2, 73.5, 52.0, 76.5, 10.0],
        }
    )
    labels = label_table(finals)
    assert list(labels.index) == ["a", "b", "c"]
    assert labels.loc["a", "n"] == 3 and labels.loc["a", "mean"] == pytest.approx(75.0666, 1e-4)
    pairs = pair_table(finals)
    assert list(zip(pairs["a"], pairs["b"])) == [("a", "b"), ("a", "c"), ("b", "c")]
    expected = pair_statistics([75.2, 73.5, 76.5], [50.0, 52.0])
    assert pairs.iloc[0]["p_value"] == pytest.approx(expected["p_value"])
    assert math.isnan(pairs.iloc[1]["p_value"])  # c has one seed
