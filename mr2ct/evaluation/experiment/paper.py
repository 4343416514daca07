"""The paper's numbers and claims (Hiasa et al. 2018, section 3), side by side with an experiment's results.

Every claim of the paper is a paired t-test between two of its conditions;
the experiment runs the same test (:data:`~mr2ct.evaluation.experiment.design.COMPARISONS`),
at each level of the other factor. A claim *agrees* where our difference has
the paper's direction at p < :data:`ALPHA`, *disagrees* where it has the
opposite direction at p < :data:`ALPHA`, and is *not significant* otherwise.
"""

from __future__ import annotations

import dataclasses
import math

from mr2ct.evaluation.experiment.design import CONDITIONS, PAPER_DICE

# The significance level of our verdicts (the paper reports p < 0.01 and p < 0.05).
ALPHA = 0.05

# Dice, mean ± sd over the paper's 10 test patients: segmentation through synthesis trained on the large set
# with the GC loss, and the U-Net trained on labelled MR (5-fold, 8 MR volumes each) of the discussion.
PAPER_DICE_LARGE_GC = {"dice_pelvis": (0.808, 0.036), "dice_femur": (0.883, 0.029),
                       "dice_gluteus_medius": (0.804, 0.040), "dice_gluteus_minimus": (0.669, 0.054)}
PAPER_DICE_MR_SUPERVISED = {"dice_pelvis": (0.815, 0.046), "dice_femur": (0.921, 0.023),
                            "dice_gluteus_medius": (0.825, 0.029), "dice_gluteus_minimus": (0.752, 0.045)}
assert set(PAPER_DICE_LARGE_GC) == set(PAPER_DICE_MR_SUPERVISED) == set(PAPER_DICE)


@dataclasses.dataclass(frozen=True)
class Claim:
    """One finding of the paper: ``factor`` (a factor of COMPARISONS) raises ``metric``, at p < ``paper_p``."""

    text: str
    factor: str
    metric: str
    paper_p: float


CLAIMS = (
    Claim("more training data raises MI(CT, sMR)", "training data size", "mi_ct_smr", 0.01),
    Claim("more training data raises MI(MR, sCT)", "training data size", "mi_mr_sct", 0.01),
    Claim("the GC loss raises MI(MR, sCT)", "GC loss", "mi_mr_sct", 0.01),
    Claim("more training data raises Dice of pelvis", "training data size", "dice_pelvis", 0.01),
    Claim("more training data raises Dice of femur", "training data size", "dice_femur", 0.01),
    Claim("more training data raises Dice of gluteus medius", "training data size", "dice_gluteus_medius", 0.01),
    Claim("more training data raises Dice of gluteus minimus", "training data size", "dice_gluteus_minimus", 0.05),
    Claim("the GC loss raises Dice of gluteus minimus", "GC loss", "dice_gluteus_minimus", 0.01),
)


def verdict(mean_difference, p, alpha: float = ALPHA) -> str:
    """``"agrees"``, ``"disagrees"`` or ``"not significant"`` for a claim that A exceeds B.

    Without a p (every pair of values equal, e.g. a Dice of 0 in both conditions): ``"no test (no differences)"``.
    """
    if p is None or mean_difference is None or not math.isfinite(p):
        return "no test (no differences)"
    if p >= alpha:
        return "not significant"
    return "agrees" if mean_difference > 0 else "disagrees"


def claim_rows(results: dict) -> list[dict]:
    """Each claim at each level it is tested at: the paper's p bound, our means, t-test and verdict."""
    labels = {c.name: c.label for c in CONDITIONS}
    rows = []
    for claim in CLAIMS:
        tests = [t for t in results["tests"] if t["factor"] == claim.factor and t["metric"] == claim.metric]
        if not tests:
            raise ValueError(f"results hold no t-test of {claim.factor} on {claim.metric}")
        for test in tests:
            rows.append({"claim": claim.text, "paper_p": claim.paper_p, "at": test["at"],
                         "a": labels[test["a"]], "b": labels[test["b"]], "mean_a": test["mean_a"],
                         "mean_b": test["mean_b"], "p": test["p"],
                         "verdict": verdict(test["mean_difference"], test["p"])})
    return rows


def _p(value) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.3g}" if value >= 1e-4 else f"{value:.1e}"


def _mean(value, digits=3) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _mean_sd(summary) -> str:
    if not summary or not summary.get("n"):
        return "n/a"
    sd = summary.get("sd")
    return f"{summary['mean']:.3f}" + ("" if sd is None or not math.isfinite(sd) else f" ± {sd:.3f}")


def paper_tables(results: dict) -> list[str]:
    """Markdown lines: Dice beside the paper's, then each claim with our t-test and verdict."""
    from mr2ct.evaluation.experiment.report import METRIC_NAMES

    large_gc = results["conditions"]["large_gc"]["summary"]
    reference = results.get("reference", {}).get("summary")
    n = results["plan"]["test"]
    lines = [
        f"Dice, mean ± sd (paper: 10 patients; ours: {n} test subjects):",
        "",
        "| structure | paper, large set, GC | ours, large set, GC | paper, MR-supervised | ours, MR-supervised |",
        "|---|---|---|---|---|",
    ]
    for metric in PAPER_DICE:
        paper, mr = PAPER_DICE_LARGE_GC[metric], PAPER_DICE_MR_SUPERVISED[metric]
        ours_mr = _mean_sd(reference[metric]) if reference else "not run"
        lines.append(f"| {METRIC_NAMES[metric].removeprefix('Dice ')} | {paper[0]:.3f} ± {paper[1]:.3f} | "
                     f"{_mean_sd(large_gc[metric])} | {mr[0]:.3f} ± {mr[1]:.3f} | {ours_mr} |")
    lines += [
        "",
        f"The paper's claims (paired t-tests) against ours, at p < {ALPHA:g}:",
        "",
        "| the paper's claim | paper | at | ours: A against B | p | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for row in claim_rows(results):
        lines.append(f"| {row['claim']} | p < {row['paper_p']:g} | {row['at']} | {row['a']} {_mean(row['mean_a'])} "
                     f"against {row['b']} {_mean(row['mean_b'])} | {_p(row['p'])} | {row['verdict']} |")
    return lines
