"""``REPORT.md`` of an experiment, rendered from its results alone (as ``results.json`` holds them)."""

from __future__ import annotations

import numpy as np

from mr2ct.evaluation.experiment.design import (
    CONDITIONS,
    PAPER_DICE,
    REFERENCE_METRICS,
    SEGMENTATION_METRICS,
    SYNTHESIS_METRICS,
)
from mr2ct._provenance import describe
from mr2ct.evaluation.experiment.paper import paper_tables
from mr2ct.evaluation.plots import LABELS as METRIC_LABELS

METRIC_NAMES = {
    **METRIC_LABELS,
    **{column: "Dice " + column[len("dice_"):].replace("_", " ") for column in PAPER_DICE},
    "dice_mean": "Dice, mean of all structures",
}


def _subject_list(subjects, limit=6) -> str:
    if len(subjects) <= limit:
        return f"{len(subjects)}: " + ", ".join(subjects)
    return f"{len(subjects)}: {subjects[0]} .. {subjects[-1]}"


def _fmt(value, digits=3) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _mean_sd(summary, digits=3) -> str:
    if not summary["n"]:
        return "n/a"
    sd = "" if summary["sd"] is None or not np.isfinite(summary["sd"]) else f" ± {summary['sd']:.{digits}f}"
    return f"{summary['mean']:.{digits}f}{sd}"


def _p(value) -> str:
    if value is None or not np.isfinite(value):
        return "n/a"
    return f"{value:.3g}" if value >= 1e-4 else f"{value:.1e}"


def _settings(config: dict) -> str:
    """One sentence of the networks' settings, from a config dict."""
    data, model, loss, train, seg = (config[k] for k in ("data", "model", "loss", "train", "segmentation"))
    return (
        f"Slices {data['image_size']}x{data['image_size']}; generator: {model['generator_filters']} filters, "
        f"residual blocks: {model['generator_blocks']}; lambda_cycle {loss['lambda_cycle']:g}; CycleGAN "
        f"{train['constant_steps']} + {train['decay_steps']} steps (constant, then linear decay), batch "
        f"{data['batch_size']}; U-Net: {seg['filters']} filters, depth {seg['depth']}, {seg['steps']} steps, "
        f"batch {seg['batch_size']}."
    )


def _timing(results: dict) -> str:
    """How long the experiment took: this call, and all calls on the folder when there were several."""
    this = f"{results['seconds']:.0f} s" + (", every step reused" if all(results["reused"].values()) else "")
    calls = results.get("calls", [])
    if len(calls) < 2:
        return f"this call took {this}."
    return (f"{len(calls)} calls of `mr2ct experiment` on this folder took "
            f"{sum(c['seconds'] for c in calls):.0f} s in all (the first {calls[0]['seconds']:.0f} s, finished "
            f"{calls[0]['created']}); this one {this}.")


def _made_with(results: dict) -> str:
    """Which mr2ct made the results: every call's, when the calls on the folder ran different code."""
    if "source" not in results:
        return ""
    made = list(dict.fromkeys(describe(c["source"]) for c in results.get("calls", []) if "source" in c))
    made = made or [describe(results["source"])]
    return " Made with " + (made[0] if len(made) == 1 else "; ".join(made) + " (one per call)") + "."


def render_report(results: dict) -> str:
    """``REPORT.md`` of an experiment's results (as :func:`run_experiment` returns them or ``results.json`` holds them)."""
    plan_ = results["plan"]
    config = results["config"]
    conditions = results["conditions"]
    names = [c.name for c in CONDITIONS]
    n_test = plan_["test"]
    groups = plan_["groups"]
    lines = [
        "# Training-set size and gradient-consistency loss: the paper's experiment on phantoms",
        "",
        f"Preset `{results['preset']}`, seed {results['seed']}, {results['created']}; "
        + _timing(results) + _made_with(results),
        "",
        "The design of Hiasa et al. 2018, section 3, on the procedural hip phantom: CycleGANs trained on a "
        "small and a large set of unpaired MR and CT volumes, each with and without the gradient-consistency "
        "(GC) loss; a U-Net trained through each CycleGAN's synthesis on labelled CT; all evaluated on "
        "held-out subjects and compared with paired t-tests. The GC loss is the authors' form (absolute "
        "directional gradients, central differences); a fifth condition trains the large set with the signed "
        "GC of the paper's Eq. 4 instead, to show what the form of the loss does.",
        "",
        f"**n = {n_test} test subjects.** Every t-test below pairs the same {n_test} subjects "
        f"(degrees of freedom {max(n_test - 1, 0)}). "
        + ("With so few subjects the p-values carry next to no information; they are computed to show the "
           "analysis, not to draw conclusions." if n_test < 10 else "The paper tested 10 MR volumes."),
        "",
        "## Design",
        "",
        "| group | subjects |",
        "|---|---|",
        f"| MR training pool = large set MR | {_subject_list(groups['train_mr_large'])} |",
        f"| CT training pool (with labels) = large set CT | {_subject_list(groups['train_ct_large'])} |",
        f"| small set MR | {_subject_list(groups['train_mr_small'])} |",
        f"| small set CT; trains every U-Net | {_subject_list(groups['train_ct_small'])} |",
        f"| held-out test subjects (MR, CT, CT on the MR grid, labels on the MR grid) | "
        f"{_subject_list(groups['test'])} |",
        "",
        f"Phantoms: `{plan_['phantom_size']}`. {_settings(config)}",
        "",
        "| condition | MR volumes | CT volumes | lambda_GC | GC form | CycleGAN step | U-Net step |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in names:
        c = conditions[name]
        lines.append(f"| {c['label']} | {c['train_mr_volumes']} | {c['train_ct_volumes']} | {c['lambda_gc']:g} | "
                     f"{c.get('gc_form', 'signed' if c['gc'] else 'none')} | {c['cyclegan_step']} | {c['segmentation_step']} |")

    reference = results.get("reference")
    if reference:
        lines.append(f"| {reference['label']}: a one-channel U-Net trained on the small set's labelled MR, "
                     f"tested on MR alone | {reference['train_mr_volumes']} | 0 | | | | {reference['step']} |")

    def table(metrics, with_reference=False):
        columns = [(conditions[n]["label"], conditions[n]["summary"]) for n in names]
        if with_reference and reference:
            columns.append((reference["label"], reference["summary"]))
        out = ["| metric | " + " | ".join(label for label, _ in columns) + " |",
               "|---|" + "---|" * len(columns)]
        for metric in metrics:
            out.append(f"| {METRIC_NAMES[metric]} | "
                       + " | ".join(_mean_sd(summary[metric], 1 if metric.endswith(("_hu", "_db")) else 3)
                                    for _, summary in columns) + " |")
        return out

    lines += [
        "",
        f"## Image synthesis (Fig. 3): mean ± sd over the {n_test} test subjects",
        "",
        "![Fig. 3 analogue: MI per condition](fig3_mutual_information.png)",
        "",
        *table(SYNTHESIS_METRICS),
        "",
        "For reference, the test MR against its *true* CT (the same in every condition): "
        + "; ".join(f"{METRIC_NAMES[m].split(' [')[0].replace(', reference', '')} "
                    f"{_mean_sd(conditions[names[0]]['summary'][m])}" for m in REFERENCE_METRICS)
        + ". The GC loss asks for GC(MR, sCT) near 1; a GC(MR, true CT) below 1, or negative, means the true "
        "CT's edges differ from the MR's (in T1 MR fat is bright and cortical bone dark, the reverse of CT), "
        "so the loss pulls away from the truth there. The absolute form compares edge strength only, so "
        "reversed edges count as agreeing.",
        "",
        "Against the registered true CT (MAE, SSIM, bone Dice, MAE near bone edges) and both forms of GC(MR, sCT):",
        "",
        "![HU accuracy, bone and GC per condition](synthesis_accuracy.png)",
        "",
        "## Training",
        "",
        "The CycleGAN losses over the steps (running mean of five summaries; TensorBoard has them all). A run "
        "without the GC loss has no GC curve. GC here is of the form each run trained with (absolute or signed "
        "gradients), on whole training slices.",
        "",
        "![CycleGAN losses over the steps, per condition](training_curves.png)",
        "",
        f"## Segmentation through synthesis (Fig. 5): Dice, mean ± sd over the {n_test} test subjects",
        "",
        "![Fig. 5 analogue: Dice per structure and condition](fig5_dice.png)",
        "",
        *table(SEGMENTATION_METRICS, with_reference=True),
        "",
        f"Example (Figs. 4 and 6): middle slice of test subject {groups['test'][0]}.",
        "",
        "![Synthesized CT and labels per condition](fig4_examples.png)",
        "",
        "## Against the paper",
        "",
        *paper_tables(results),
        "",
        "## Paired t-tests",
        "",
        "Two-sided paired t-tests (`scipy.stats.ttest_rel`) over the test subjects, A against B; "
        "n is the number of pairs (pairs with an undefined value are left out); t and p are n/a "
        "with fewer than two pairs or identical differences.",
        "",
        "| factor | at | metric | A | mean ± sd (A) | B | mean ± sd (B) | t | p | n |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for test in results["tests"]:
        a, b = conditions[test["a"]]["label"], conditions[test["b"]]["label"]
        sa = {"mean": test["mean_a"], "sd": test["sd_a"], "n": test["n"]}
        sb = {"mean": test["mean_b"], "sd": test["sd_b"], "n": test["n"]}
        lines.append(f"| {test['factor']} | {test['at']} | {METRIC_NAMES[test['metric']]} | {a} | {_mean_sd(sa)} | "
                     f"{b} | {_mean_sd(sb)} | {_fmt(test['t'], 2)} | {_p(test['p'])} | {test['n']} |")
    lines += [
        "",
        "## How the numbers are computed",
        "",
        "* MI(MR, sCT): the test MR against its synthesized CT (G_CT) on the MR grid; per axial slice inside the "
        "body (MR above a tenth of its robust maximum), 64 bins over each image's range, then the mean over "
        "slices (the paper's Fig. 3a, right).",
        "* MI(CT, sMR): each test subject's real CT against its synthesized MR (G_MR). The CT is prepared as "
        "for training (cropped to the MR-like field of view, resampled to the network's slices) and the MI is "
        "computed on that prepared grid, per slice inside the body (CT above -500 HU), then averaged "
        "(Fig. 3a, left).",
        "* GC, MAE, mean error, PSNR, SSIM and the MAE within 2 voxels of bone edges: synthesized CT against the "
        "phantom's CT rendered on the MR grid (a registered ground truth the paper did not have).",
        "* Dice: the test MR segmented through synthesis (U-Net on synthesized CT and MR) against the phantom's "
        "labels on the MR grid; the paper's four structures, and the mean over every structure present.",
        "",
        "Files: `results.json` (every number), `evaluation/<condition>/metrics.csv` (per subject), "
        "`evaluation/<condition>/sct/` and `labels/` (synthesized CT and labels), `runs/<condition>/` "
        "(TensorBoard logs and checkpoints).",
        "",
    ]
    return "\n".join(lines)
