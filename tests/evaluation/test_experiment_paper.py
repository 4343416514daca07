"""The paper's claims against an experiment's t-tests: verdicts and tables."""

import math

import pytest

from mr2ct.evaluation.experiment import CONDITIONS
from mr2ct.evaluation.experiment.paper import CLAIMS, claim_rows, paper_tables, verdict


@pytest.mark.parametrize("difference, p, expected", [
    (0.1, 0.001, "agrees"),
    (-0.1, 0.001, "disagrees"),
    (0.1, 0.2, "not significant"),
    (-0.1, 0.049, "disagrees"),
    (0.1, 0.05, "not significant"),
    (0.0, None, "no test (no differences)"),
    (0.0, math.nan, "no test (no differences)"),
])
def test_verdicts(difference, p, expected):
    assert verdict(difference, p) == expected


def _results(p_of, reference=None):
    tests = []
    for factor, at, a, b in (("training data size", "with GC", "large_gc", "small_gc"),
                             ("training data size", "without GC", "large_no_gc", "small_no_gc"),
                             ("GC loss", "small training set", "small_gc", "small_no_gc"),
                             ("GC loss", "large training set", "large_gc", "large_no_gc")):
        for metric in {c.metric for c in CLAIMS}:
            difference, p = p_of(factor, metric)
            tests.append({"factor": factor, "at": at, "a": a, "b": b, "metric": metric, "mean_a": 0.5 + difference,
                          "mean_b": 0.5, "mean_difference": difference, "p": p})
    summary = {m: {"mean": 0.9, "sd": 0.01, "n": 10} for m in
               ("dice_pelvis", "dice_femur", "dice_gluteus_medius", "dice_gluteus_minimus")}
    results = {"tests": tests, "plan": {"test": 10},
               "conditions": {c.name: {"label": c.label, "summary": summary} for c in CONDITIONS}}
    if reference:
        results["reference"] = {"summary": reference}
    return results


def test_each_claim_is_judged_at_both_levels_of_the_other_factor():
    # more data helps everything; the GC loss lowers MI(MR, sCT) and does nothing to gluteus minimus
    def p_of(factor, metric):
        if factor == "training data size":
            return 0.1, 0.001
        return (-0.05, 0.002) if metric == "mi_mr_sct" else (0.01, 0.4)

    rows = claim_rows(_results(p_of))
    assert len(rows) == 2 * len(CLAIMS)
    by_claim = {}
    for row in rows:
        by_claim.setdefault(row["claim"], []).append((row["at"], row["verdict"]))
    assert by_claim["more training data raises Dice of femur"] == [("with GC", "agrees"), ("without GC", "agrees")]
    assert by_claim["the GC loss raises MI(MR, sCT)"] == [("small training set", "disagrees"),
                                                         ("large training set", "disagrees")]
    assert by_claim["the GC loss raises Dice of gluteus minimus"] == [("small training set", "not significant"),
                                                                     ("large training set", "not significant")]
    lines = paper_tables(_results(p_of))
    assert "| pelvis | 0.808 ± 0.036 | 0.900 ± 0.010 | 0.815 ± 0.046 | not run |" in lines
    with_reference = paper_tables(_results(p_of, reference={"dice_pelvis": {"mean": 0.95, "sd": 0.02, "n": 10},
                                                            "dice_femur": {"mean": 0.96, "sd": 0.01, "n": 10},
                                                            "dice_gluteus_medius": {"mean": 0.9, "sd": 0.0, "n": 10},
                                                            "dice_gluteus_minimus": {"mean": 0.8, "sd": 0.1, "n": 10}}))
    assert "| pelvis | 0.808 ± 0.036 | 0.900 ± 0.010 | 0.815 ± 0.046 | 0.950 ± 0.020 |" in with_reference
    assert ("| the GC loss raises MI(MR, sCT) | p < 0.01 | large training set | large, GC 0.450 against large, "
            "no GC 0.500 | 0.002 | disagrees |") in lines


def test_results_without_a_claims_test_are_refused():
    results = _results(lambda factor, metric: (0.1, 0.01))
    results["tests"] = [t for t in results["tests"] if t["metric"] != "dice_femur"]
    with pytest.raises(ValueError, match="dice_femur"):
        claim_rows(results)
