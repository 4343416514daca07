"""Statistics of per-subject metric rows: summaries, paired t-tests, and the comparisons between conditions."""

from __future__ import annotations

import warnings

import numpy as np

from mr2ct.evaluation.experiment.design import COMPARISONS, TESTED_METRICS


def summarize(values) -> dict:
    """``{"mean", "sd", "n"}`` of the finite values (sample standard deviation; NaN where undefined)."""
    x = np.asarray([v for v in values if np.isfinite(v)], np.float64)
    return {
        "mean": float(x.mean()) if x.size else float("nan"),
        "sd": float(x.std(ddof=1)) if x.size > 1 else float("nan"),
        "n": int(x.size),
    }


def paired_t_test(rows_a, rows_b, metric: str) -> dict:
    """Paired t-test of ``metric`` between two conditions over the subjects both have.

    Pairs where either value is not finite are left out. ``t`` and ``p``
    (two-sided, ``scipy.stats.ttest_rel``) are NaN with fewer than two pairs
    or when every difference is the same.

    Returns:
        ``{"t", "p", "n", "mean_a", "sd_a", "mean_b", "sd_b", "mean_difference"}``.
    """
    from scipy import stats

    b_by_subject = {r["subject"]: r.get(metric, float("nan")) for r in rows_b}
    pairs = [(r.get(metric, float("nan")), b_by_subject[r["subject"]]) for r in rows_a if r["subject"] in b_by_subject]
    pairs = np.asarray([p for p in pairs if np.isfinite(p[0]) and np.isfinite(p[1])], np.float64).reshape(-1, 2)
    a, b = pairs[:, 0], pairs[:, 1]
    t = p = float("nan")
    if len(pairs) >= 2 and np.ptp(a - b) > 0:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            result = stats.ttest_rel(a, b)
        t, p = float(result.statistic), float(result.pvalue)
    sa, sb = summarize(a), summarize(b)
    return {
        "t": t, "p": p, "n": int(len(pairs)),
        "mean_a": sa["mean"], "sd_a": sa["sd"], "mean_b": sb["mean"], "sd_b": sb["sd"],
        "mean_difference": float(np.mean(a - b)) if len(pairs) else float("nan"),
    }


def compare_conditions(rows: dict[str, list[dict]], metrics=TESTED_METRICS) -> list[dict]:
    """Every test of :data:`COMPARISONS` on every metric: a list of result dicts."""
    tests = []
    for factor, at, a, b in COMPARISONS:
        for metric in metrics:
            tests.append({"factor": factor, "at": at, "a": a, "b": b, "metric": metric,
                          **paired_t_test(rows[a], rows[b], metric)})
    return tests
