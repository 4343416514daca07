"""Running the experiment: every stage in order, reusing finished work, then ``results.json`` and ``REPORT.md``."""

from __future__ import annotations

import functools
import json
import os
import time

from mr2ct._atomic import atomic_write_json, atomic_write_text
from mr2ct._provenance import source
from mr2ct.config import Config, with_legacy_values
from mr2ct.errors import ConfigError, Mr2ctError
from mr2ct.evaluation.experiment.design import (
    CONDITIONS,
    REFERENCE_METRICS,
    SEGMENTATION_METRICS,
    SYNTHESIS_METRICS,
    Condition,
    ExperimentPlan,
    TrainingSet,
    plan,
)
from mr2ct.evaluation.experiment.report import _subject_list, render_report
from mr2ct.evaluation.experiment.stages import (
    EVALUATED_FILE,
    REFERENCE,
    REFERENCE_LABEL,
    _evaluate_reference,
    _check_behind,
    _evaluate_condition,
    _finished_evaluation,
    _generate_phantoms,
    _prepare,
    _split_subjects,
    _TestSet,
    _train,
    _train_cyclegan,
    _train_reference,
    _train_segmentation,
    _write_figures,
    row_summary,
)
from mr2ct.evaluation.experiment.statistics import compare_conditions, summarize


def run_experiment(out_dir="experiment", preset="cpu", seed=0, echo=print, progress=True) -> dict:
    """Run (or resume) the paper's experiment on phantoms into ``out_dir``.

    Args:
        out_dir: the experiment folder (created; a rerun reuses finished steps).
            Defaults to `"experiment"`.
        preset: ``"paper"``, ``"cpu"`` or ``"tiny"`` (:data:`EXPERIMENT_PRESETS`).
            Defaults to `"cpu"`.
        seed: seed of the phantoms and the training runs. Defaults to `0`.
        echo: callable printing progress lines. Defaults to `print`.
        progress: show the training loops' progress lines. Defaults to `True`.

    Returns:
        The results (also in ``results.json``): plan, per-condition metrics
        per subject and summaries, the t-tests, what was reused, file paths
        and the seconds this call took.

    Raises:
        Mr2ctError: ``out_dir`` holds an experiment of another preset or seed.
    """
    p = plan(preset, seed)
    out = os.fspath(out_dir)
    t0 = time.perf_counter()

    def stage(number, title):
        echo(f"\n== {number}/7 {title}  [{time.perf_counter() - t0:.0f} s]")

    described = _claim_folder(out, p)
    groups = p.groups()
    reused = {}
    phantom_dir, split = os.path.join(out, "phantom"), os.path.join(out, "split")

    stage(1, f"phantom: {p.subjects} {p.phantom_size} subjects -> {phantom_dir}")
    reused["phantom"] = _generate_phantoms(phantom_dir, p, echo if progress else None)
    echo("already generated" if reused["phantom"] else f"generated {p.subjects} subjects")

    stage(2, f"split -> {split}")
    _split_subjects(phantom_dir, split, groups)
    for key, title in (("train_mr_large", "MR pool (large set)"), ("train_ct_large", "CT pool with labels (large set)"),
                       ("train_mr_small", "small set MR"), ("train_ct_small", "small set CT (also trains the U-Nets)"),
                       ("test", "held-out test subjects")):
        echo(f"{title}: {_subject_list(groups[key])}")

    size = p.config.data.image_size
    stage(3, f"prepare: {size}x{size} slices -> {os.path.join(out, 'prepared')}")
    prepared, counts = _prepare(os.path.join(out, "prepared"), split, p, echo)

    run_dirs = {c.name: {"cyclegan": os.path.join(out, "runs", c.name, "cyclegan"),
                         "segmentation": os.path.join(out, "runs", c.name, "segmentation")} for c in CONDITIONS}
    steps = {}
    from mr2ct.training.image_segmentation import UNUSED_SECTIONS as REFERENCE_UNUSED_SECTIONS
    from mr2ct.training.trainer import CYCLEGAN_UNUSED_SECTIONS

    for i, condition in enumerate(CONDITIONS, 1):
        config = p.condition_config(condition)
        n_mr, n_ct = p.training_volumes(condition.training_set)
        stage(4, f"CycleGAN {i}/{len(CONDITIONS)} ({condition.label}, lambda_gc={config.loss.lambda_gc:g}, "
                 f"GC form {condition.gc_form}): {n_mr} MR + {n_ct} CT "
                 f"volumes, {config.train.total_steps} steps -> {run_dirs[condition.name]['cyclegan']}")
        key = f"cyclegan/{condition.name}"
        steps[key], reused[key] = _train(run_dirs[condition.name]["cyclegan"], config, echo, functools.partial(
            _train_cyclegan, prepared[condition.training_set], run_dirs[condition.name]["cyclegan"], config, progress),
            unused_sections=CYCLEGAN_UNUSED_SECTIONS)
    for i, condition in enumerate(CONDITIONS, 1):
        config = p.condition_config(condition)
        dirs = run_dirs[condition.name]
        stage(5, f"segmentation {i}/{len(CONDITIONS)} behind the CycleGAN ({condition.label}): {p.small_ct} labelled CT "
                 f"volume(s), {config.segmentation.steps} steps -> {dirs['segmentation']}")
        key = f"segmentation/{condition.name}"
        steps[key], reused[key] = _train(dirs["segmentation"], config, echo, functools.partial(
            _train_segmentation, dirs["cyclegan"], prepared[TrainingSet.SMALL], dirs["segmentation"], config, progress))
        _check_behind(dirs["segmentation"], steps[f"cyclegan/{condition.name}"])
    reference_dir = os.path.join(out, "runs", REFERENCE)
    stage(5, f"the {REFERENCE_LABEL} U-Net: {p.small_mr} labelled MR volume(s) of the small set, "
             f"{p.config.segmentation.steps} steps -> {reference_dir}")
    key = f"segmentation/{REFERENCE}"
    steps[key], reused[key] = _train(reference_dir, p.config, echo, functools.partial(
        _train_reference, prepared[REFERENCE], reference_dir, p.config, progress),
        unused_sections=REFERENCE_UNUSED_SECTIONS)

    rows = {}
    test = None
    for i, condition in enumerate(CONDITIONS, 1):
        eval_dir = os.path.join(out, "evaluation", condition.name)
        stage(6, f"evaluate {i}/{len(CONDITIONS)} ({condition.label}) on {len(groups['test'])} test subjects -> {eval_dir}")
        stamp = {"cyclegan_step": steps[f"cyclegan/{condition.name}"],
                 "segmentation_step": steps[f"segmentation/{condition.name}"], "subjects": groups["test"]}
        rows[condition.name] = _finished_evaluation(eval_dir, stamp)
        reused[f"evaluation/{condition.name}"] = rows[condition.name] is not None
        if rows[condition.name] is not None:
            echo("already evaluated")
            for row in rows[condition.name]:
                echo(row_summary(row))
        else:
            test = test or _TestSet(split, groups["test"])
            rows[condition.name] = _evaluate_condition(run_dirs[condition.name]["cyclegan"],
                                                       run_dirs[condition.name]["segmentation"], test, eval_dir, echo)
            atomic_write_json(os.path.join(eval_dir, EVALUATED_FILE), stamp)

    eval_dir = os.path.join(out, "evaluation", REFERENCE)
    stage(6, f"evaluate the {REFERENCE_LABEL} U-Net on {len(groups['test'])} test MR -> {eval_dir}")
    stamp = {"segmentation_step": steps[f"segmentation/{REFERENCE}"], "subjects": groups["test"]}
    reference_rows = _finished_evaluation(eval_dir, stamp)
    reused[f"evaluation/{REFERENCE}"] = reference_rows is not None
    if reference_rows is not None:
        echo("already evaluated")
    else:
        test = test or _TestSet(split, groups["test"])
        reference_rows = _evaluate_reference(reference_dir, test, eval_dir, echo)
        atomic_write_json(os.path.join(eval_dir, EVALUATED_FILE), stamp)

    stage(7, f"paired t-tests, figures, report -> {os.path.join(out, 'REPORT.md')}")
    files = _write_figures(out, rows, groups["test"][0], reference_rows)
    results = {
        "preset": p.preset,
        "seed": p.seed,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "plan": {k: v for k, v in described.items() if k != "config"},
        "config": described["config"],
        "slices": counts,
        "conditions": {c.name: _condition_results(p, c, run_dirs[c.name], steps, rows[c.name], out) for c in CONDITIONS},
        "reference": {
            "label": REFERENCE_LABEL,
            "train_mr_volumes": p.small_mr,
            "run": os.path.relpath(reference_dir, out),
            "step": steps[f"segmentation/{REFERENCE}"],
            "summary": {m: summarize([r.get(m, float("nan")) for r in reference_rows]) for m in SEGMENTATION_METRICS},
            "subjects": reference_rows,
        },
        "tests": compare_conditions(rows),
        "reused": reused,
        # Paths relative to ``out_dir``, so the folder (or its report and results) can be moved.
        "files": {"report": "REPORT.md", "results": "results.json",
                  **{k: os.path.relpath(v, out) for k, v in files.items()}},
        "seconds": round(time.perf_counter() - t0, 1),
        "source": source(),
    }
    # Every call on this folder, so that a rerun that reuses everything still reports what the work took.
    results["calls"] = _previous_calls(out, results["plan"]) + [
        {"created": results["created"], "seconds": results["seconds"], "all_reused": all(reused.values()),
         "source": results["source"]}]
    atomic_write_text(os.path.join(out, "REPORT.md"), render_report(results))
    atomic_write_json(os.path.join(out, "results.json"), results)
    echo(f"wrote {os.path.join(out, 'REPORT.md')} and results.json ({results['seconds']:.0f} s)")
    return results


def _previous_calls(out, plan_record) -> list[dict]:
    """The calls recorded in ``out/results.json`` of the same plan (none if missing or unreadable)."""
    try:
        with open(os.path.join(out, "results.json")) as f:
            previous = json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return []
    if previous.get("plan") != plan_record:
        return []
    if "calls" in previous:
        return list(previous["calls"])
    # results.json of an earlier version: its one call
    return [{"created": previous["created"], "seconds": previous["seconds"],
             "all_reused": all(previous.get("reused", {}).values())}]


def _claim_folder(out, p: ExperimentPlan) -> dict:
    """Write the plan into ``out/experiment.json``, or check it is the plan already there."""
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "experiment.json")
    described = p.to_dict()
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        if isinstance(saved.get("config"), dict):
            # settings added since the folder was made count as what its runs were made with
            try:
                saved["config"] = Config.from_dict(with_legacy_values(saved["config"])).to_dict()
            except ConfigError as exc:
                raise Mr2ctError(f"{path}: holds a config that is not valid today ({exc})") from None
        if saved != described:
            keys = sorted(k for k in set(saved) | set(described) if saved.get(k) != described.get(k))
            raise Mr2ctError(f"{out}: holds an experiment with other settings (differs in {', '.join(keys)}); "
                             "use another folder")
    else:
        atomic_write_json(path, described)
    return described


def _condition_results(p: ExperimentPlan, c: Condition, dirs, steps, rows, out) -> dict:
    n_mr, n_ct = p.training_volumes(c.training_set)
    return {
        "label": c.label,
        "training_set": c.training_set.value,
        "gc": c.gc,
        "gc_form": c.gc_form,
        "lambda_gc": p.condition_config(c).loss.lambda_gc,
        "train_mr_volumes": n_mr,
        "train_ct_volumes": n_ct,
        "cyclegan_run": os.path.relpath(dirs["cyclegan"], out),
        "cyclegan_step": steps[f"cyclegan/{c.name}"],
        "segmentation_run": os.path.relpath(dirs["segmentation"], out),
        "segmentation_step": steps[f"segmentation/{c.name}"],
        "summary": {m: summarize([r.get(m, float("nan")) for r in rows])
                    for m in SYNTHESIS_METRICS + SEGMENTATION_METRICS + REFERENCE_METRICS},
        "subjects": rows,
    }
