"""The paper's experiment on phantoms: training-set size and the GC loss, for synthesis and segmentation.

Hiasa et al. (section 3) train the CycleGAN on a small and on a large set of
unpaired volumes, each with and without the gradient-consistency loss, score
synthesis by mutual information (Fig. 3) and segmentation through synthesis by
the Dice of four structures (Fig. 5), and compare the conditions with paired
t-tests. :func:`run_experiment` runs that design on the procedural phantom:

1. phantom: every subject generated once (:func:`~mr2ct.data.phantom.write_phantom_dataset`).
2. split: the subjects are divided into an MR training pool, a CT training
   pool (with labels) and held-out test subjects, so training is unpaired and
   testing is on unseen anatomy. The *large* training set is each whole pool,
   the *small* set the first subjects of each pool; the labelled CT of the
   small set trains every segmentation network (the paper's 20 labelled CT),
   so the segmentation data do not differ between conditions. Folders of
   symbolic links in ``split/``.
3. prepare: the large set (MR, and CT with labels) once; the small set reuses
   those slices.
4. four CycleGAN runs, :data:`CONDITIONS`: {small, large} x {GC (the preset's
   ``loss.lambda_gc``), no GC (``loss.lambda_gc=0``)}.
5. four segmentation runs (:func:`~mr2ct.training.segmentation.train_segmentation`),
   one behind each CycleGAN's frozen generators.
6. each condition evaluated on the test subjects (the metrics of
   :mod:`mr2ct.evaluation.evaluate`): MI(MR, sCT) and GC(MR, sCT); MAE, ME,
   PSNR, SSIM and the bone-band MAE against the CT on the MR grid; MI(CT, sMR)
   between each test subject's real CT and its synthesized MR, on the CT's
   prepared grid; Dice of every structure against the labels on the MR grid.
   Each test MR is preprocessed (N4, resampling) once for all conditions.
7. paired t-tests (``scipy.stats.ttest_rel``, two-sided, over the test
   subjects) of training-set size (large vs small, with and without GC) and of
   the GC loss (on vs off, at each size) on MI and on the Dice of pelvis, femur,
   gluteus medius and gluteus minimus; ``REPORT.md``, ``results.json`` and the
   figures.

The sizes of each preset are in :data:`EXPERIMENT_PRESETS`; the networks and
steps are the config preset of the same name (:data:`mr2ct.config.PRESETS`).

Layout of ``out_dir``::

    experiment.json                 the plan (preset, seed, sizes, config); a rerun must match it
    phantom/                        the generated subjects
    split/<group>/                  symbolic links to the phantom volumes of each group
    prepared/large/, prepared/small/
    runs/<condition>/cyclegan/      CycleGAN run folders
    runs/<condition>/segmentation/  segmentation run folders
    evaluation/<condition>/         metrics.csv/json, sct/, labels/, evaluated.json
    fig3_mutual_information.png     MI box plots per condition (Fig. 3a)
    fig4_examples.png               one test subject: synthesized CT and labels per condition
    fig5_dice.png                   Dice box plots per structure and condition (Fig. 5)
    REPORT.md, results.json

Every finished step is reused when the experiment is run again: the phantom,
prepared slices, runs whose ``status.json`` says finished, and evaluations
whose ``evaluated.json`` names the same checkpoints. An interrupted run
resumes from its latest checkpoint.

Reference:
    Hiasa et al., "Cross-modality image synthesis from unpaired data using
    CycleGAN: effects of gradient consistency loss and training data size",
    SASHIMI 2018 (section 3, Figs. 3 and 5).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import os
import shutil
import time
import warnings

import numpy as np

from mr2ct._atomic import atomic_write_json, atomic_write_text
from mr2ct.config import Config, preset
from mr2ct.data.folders import link_subjects
from mr2ct.data.phantom import subject_name
from mr2ct.errors import ConfigError, Mr2ctError
from mr2ct.evaluation.plots import LABELS as METRIC_LABELS
from mr2ct.labels import EVALUATED_STRUCTURES, LABELS

# Preset name -> sizes of the experiment. The CycleGAN and U-Net settings are
# the config preset of the same name, with ``overrides`` applied.
EXPERIMENT_PRESETS: dict[str, dict] = {
    # The paper: 20 MR + 20 CT vs 302 MR + 613 CT, tested on 10 subjects.
    # Paper-size phantoms take about 30 s and 27 MB each: 925 subjects are
    # about 8 h and 25 GB before training (4 x 2e5 steps: a GPU job).
    "paper": {"phantom_size": "paper", "mr_pool": 302, "ct_pool": 613, "small_mr": 20, "small_ct": 20, "test": 10},
    # Two CPU cores, about 75 minutes: paper-size phantoms on 96x96 slices (the cpu config preset),
    # with 2,000 CycleGAN and 1,000 U-Net steps per run, tested on 10 subjects as in the paper.
    # Measured on two idle cores (2026-12-01): phantoms 2.6 min, slices 2 min, CycleGANs 0.33-0.34 s
    # a step (46 min), U-Nets 0.26-0.27 s a step (18 min), evaluation 4 min; 72.5 min in all.
    # Busy cores take up to three times as long a step.
    "cpu": {
        "phantom_size": "paper", "mr_pool": 12, "ct_pool": 12, "small_mr": 3, "small_ct": 3, "test": 10,
        "overrides": ["train.constant_steps=1000", "train.decay_steps=1000", "segmentation.steps=1000"],
    },
    # A couple of minutes, for the tests: small phantoms, the tiny config (8 CycleGAN and 6 U-Net
    # steps), one checkpoint and one summary per run.
    "tiny": {
        "phantom_size": "small", "mr_pool": 2, "ct_pool": 2, "small_mr": 1, "small_ct": 1, "test": 2,
        "overrides": ["train.checkpoint_every=8", "train.summary_every=8", "train.image_summary_every=8",
                      "segmentation.checkpoint_every=6"],
    },
}

# The paper's four structures (pelvis, femur, gluteus medius, gluteus minimus) as Dice columns.
PAPER_DICE = tuple(f"dice_{LABELS[label]}" for label in EVALUATED_STRUCTURES)
# Metrics compared by paired t-tests: the paper's MI (both directions) and the Dice of its four structures.
TESTED_METRICS = ("mi_ct_smr", "mi_mr_sct") + PAPER_DICE
SYNTHESIS_METRICS = ("mi_mr_sct", "mi_ct_smr", "gc_mr_sct", "mae_hu", "me_hu", "psnr_db", "ssim", "mae_bone_band_hu")
SEGMENTATION_METRICS = PAPER_DICE + ("dice_mean",)
# The test MR against its true CT: what the synthesis is measured against, the same in every condition.
REFERENCE_METRICS = ("mi_mr_ct", "gc_mr_ct")
METRIC_NAMES = {
    **METRIC_LABELS,
    **{column: "Dice " + column[len("dice_"):].replace("_", " ") for column in PAPER_DICE},
    "dice_mean": "Dice, mean of all structures",
}


class TrainingSet(enum.StrEnum):
    """The two training-set sizes."""

    SMALL = "small"
    LARGE = "large"


@dataclasses.dataclass(frozen=True)
class Condition:
    """One arm of the experiment: a training set, with or without the GC loss."""

    training_set: TrainingSet
    gc: bool

    @property
    def name(self) -> str:
        return f"{self.training_set.value}_{'gc' if self.gc else 'no_gc'}"

    @property
    def label(self) -> str:
        return f"{self.training_set.value}, {'GC' if self.gc else 'no GC'}"


CONDITIONS = tuple(Condition(s, gc) for s in TrainingSet for gc in (False, True))
"""small without GC, small with GC, large without GC, large with GC."""

_BY_NAME = {c.name: c for c in CONDITIONS}
EVALUATED_FILE = "evaluated.json"  # the checkpoints and subjects an evaluation folder holds metrics of

# (factor, at, condition A, condition B): each test asks whether A differs from B.
COMPARISONS = (
    ("training data size", "with GC", "large_gc", "small_gc"),
    ("training data size", "without GC", "large_no_gc", "small_no_gc"),
    ("GC loss", "small training set", "small_gc", "small_no_gc"),
    ("GC loss", "large training set", "large_gc", "large_no_gc"),
)


@dataclasses.dataclass
class ExperimentPlan:
    """Sizes, subjects and settings of one experiment.

    Args:
        preset: the preset name.
        phantom_size: ``"small"`` or ``"paper"`` phantoms.
        mr_pool: MR training subjects (the large set's MR).
        ct_pool: CT training subjects with labels (the large set's CT).
        small_mr: MR subjects of the small set (the first of the pool).
        small_ct: CT subjects of the small set; they also train the U-Nets.
        test: held-out test subjects.
        config: the CycleGAN and U-Net settings (with GC).
        seed: seed of the phantoms and of training. Defaults to `0`.
    """

    preset: str
    phantom_size: str
    mr_pool: int
    ct_pool: int
    small_mr: int
    small_ct: int
    test: int
    config: Config
    seed: int = 0

    def __post_init__(self):
        for name in ("mr_pool", "ct_pool", "small_mr", "small_ct", "test"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1. Received: {name}={getattr(self, name)}")
        if self.small_mr > self.mr_pool or self.small_ct > self.ct_pool:
            raise ConfigError(f"the small set must fit in the pools. Received: small_mr={self.small_mr}, "
                              f"mr_pool={self.mr_pool}, small_ct={self.small_ct}, ct_pool={self.ct_pool}")

    @property
    def subjects(self) -> int:
        return self.mr_pool + self.ct_pool + self.test

    def groups(self) -> dict[str, list[str]]:
        """Subject names of each group: MR and CT of both training sets, and the test subjects."""
        names = [subject_name(i) for i in range(self.subjects)]
        mr, ct = names[: self.mr_pool], names[self.mr_pool : self.mr_pool + self.ct_pool]
        return {
            "train_mr_large": mr,
            "train_ct_large": ct,
            "train_mr_small": mr[: self.small_mr],
            "train_ct_small": ct[: self.small_ct],
            "test": names[self.mr_pool + self.ct_pool :],
        }

    def training_volumes(self, training_set: TrainingSet) -> tuple[int, int]:
        """``(MR volumes, CT volumes)`` of a training set."""
        if training_set == TrainingSet.SMALL:
            return self.small_mr, self.small_ct
        return self.mr_pool, self.ct_pool

    def condition_config(self, condition: Condition) -> Config:
        """The config of a condition's runs: the plan's, with ``loss.lambda_gc=0`` without GC."""
        return self.config if condition.gc else self.config.override(["loss.lambda_gc=0"])

    def to_dict(self) -> dict:
        return {
            "preset": self.preset, "seed": self.seed, "phantom_size": self.phantom_size,
            "mr_pool": self.mr_pool, "ct_pool": self.ct_pool, "small_mr": self.small_mr,
            "small_ct": self.small_ct, "test": self.test, "config": self.config.to_dict(),
            "groups": self.groups(),
        }


def plan(preset_name: str = "cpu", seed: int = 0) -> ExperimentPlan:
    """The :class:`ExperimentPlan` of a preset (``paper``, ``cpu`` or ``tiny``)."""
    if preset_name not in EXPERIMENT_PRESETS:
        raise ConfigError(f"unknown experiment preset {preset_name!r}; choose one of {sorted(EXPERIMENT_PRESETS)}")
    sizes = dict(EXPERIMENT_PRESETS[preset_name])
    overrides = list(sizes.pop("overrides", []))
    config = preset(preset_name).override(overrides + [f"runtime.seed={int(seed)}", f"data.seed={int(seed)}"])
    return ExperimentPlan(preset=preset_name, config=config, seed=int(seed), **sizes)


# --------------------------------------------------------------------------- statistics


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


# --------------------------------------------------------------------------- steps


def _seed_prepared(src, dst, groups):
    """Put the small set's shards and records, prepared in ``src``, into ``dst`` (hard links, else copies).

    ``prepare_dataset`` on ``dst`` then finds them finished (same sources, same
    settings) and only writes the manifest.
    """
    for modality, subjects in (("mr", groups["train_mr_small"]), ("ct", groups["train_ct_small"])):
        for subject in subjects:
            for folder, suffix in (("records", ".tfrecord"), ("volumes", ".json")):
                source = os.path.join(src, folder, modality, subject + suffix)
                target = os.path.join(dst, folder, modality, subject + suffix)
                if os.path.exists(target) or not os.path.exists(source):
                    continue
                os.makedirs(os.path.dirname(target), exist_ok=True)
                try:
                    os.link(source, target)
                except OSError:
                    shutil.copyfile(source, target)


def _finished_step(run_dir, config: Config, unused_sections=()) -> int | None:
    """The final step of a finished run folder made with ``config``, else None (ConfigError if other settings)."""
    from mr2ct.training.trainer import CONFIG_FILE, resolve_run_config

    if not os.path.exists(os.path.join(run_dir, CONFIG_FILE)):
        return None
    resolve_run_config(run_dir, config, unused_sections)  # refuses a run folder made with other settings
    try:
        with open(os.path.join(run_dir, "status.json")) as f:
            status = json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if status.get("state") == "finished" and status.get("step", -1) >= status.get("total_steps", 0):
        return int(status["step"])
    return None


class _TestSet:
    """The held-out subjects' volumes, and their preprocessed MR and CT, shared by every condition."""

    def __init__(self, split_dir, subjects):
        from mr2ct.data.io import read_volume

        self.subjects = list(subjects)

        def read(folder):
            return {s: read_volume(os.path.join(split_dir, f"test_{folder}", f"{s}.nii.gz")) for s in self.subjects}

        self.mr = read("mr")
        self.ct_on_mr_grid = read("ct_on_mr_grid")
        self.labels = {s: np.rint(v.array).astype(np.int64) for s, v in read("labels_mr").items()}
        self.ct = read("ct")
        self.structures = sorted({int(v) for a in self.labels.values() for v in np.unique(a) if v != 0})
        self._mr_slices = {}
        self._ct_hu = {}

    def prepared_mr(self, subject, config):
        """``preprocess_mr`` of a test MR (computed once per preprocessing config)."""
        from mr2ct.data.preprocess import preprocess_mr

        key = (subject, json.dumps(config.to_dict(), sort_keys=True))
        if key not in self._mr_slices:
            self._mr_slices[key] = preprocess_mr(self.mr[subject], config)
        return self._mr_slices[key]

    def ct_hu(self, subject, mr_synthesizer):
        """A test CT's prepared slices in HU (computed once per preprocessing config)."""
        key = (subject, json.dumps(mr_synthesizer.preprocessing, sort_keys=True))
        if key not in self._ct_hu:
            self._ct_hu[key] = mr_synthesizer.prepare_ct(self.ct[subject])
        return self._ct_hu[key]


def _evaluate_condition(gan_dir, seg_dir, test: _TestSet, eval_dir) -> list[dict]:
    """Metrics of one condition on every test subject; sCT and labels written into ``eval_dir``."""
    from mr2ct.data.io import write_volume
    from mr2ct.evaluation.evaluate import dice_scores, evaluate_synthetic_mr, evaluate_volume, write_tables
    from mr2ct.export.exporter import load_run_generators
    from mr2ct.serving.mr_synthesizer import MRSynthesizer
    from mr2ct.serving.predict import Synthesizer
    from mr2ct.serving.segment import VolumeSegmenter
    from mr2ct.training.trainer import PREPROCESSING_FILE

    with open(os.path.join(gan_dir, PREPROCESSING_FILE)) as f:
        preprocessing = json.load(f)
    generator_mr_to_ct, generator_ct_to_mr, _, _ = load_run_generators(gan_dir)
    synthesizer = Synthesizer.from_generator(generator_mr_to_ct, preprocessing)
    mr_synthesizer = MRSynthesizer.from_generator(generator_ct_to_mr, preprocessing)
    segmenter = VolumeSegmenter.from_run(seg_dir)
    rows = []
    for subject in test.subjects:
        mr = test.mr[subject]
        prepared = test.prepared_mr(subject, synthesizer.preprocess_config)
        sct = synthesizer.volume(mr, prepared=prepared)
        labels = segmenter.volume(mr, prepared=test.prepared_mr(subject, segmenter.preprocess_config))
        ct_hu = test.ct_hu(subject, mr_synthesizer)
        rows.append({
            "subject": subject,
            **evaluate_volume(mr.array, sct.array, test.ct_on_mr_grid[subject].array),
            **evaluate_synthetic_mr(ct_hu, mr_synthesizer.slices(ct_hu)),
            **dice_scores(labels.array, test.labels[subject], test.structures),
        })
        hu = np.clip(np.round(sct.array), -32768, 32767).astype(np.int16)
        write_volume(sct.with_array(hu), os.path.join(eval_dir, "sct", f"{subject}.nii.gz"))
        write_volume(labels, os.path.join(eval_dir, "labels", f"{subject}.nii.gz"), dtype="uint8")
    write_tables(rows, eval_dir)
    return rows


# --------------------------------------------------------------------------- the experiment


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
    from mr2ct.training.trainer import CYCLEGAN_UNUSED_SECTIONS

    for i, condition in enumerate(CONDITIONS, 1):
        config = p.condition_config(condition)
        n_mr, n_ct = p.training_volumes(condition.training_set)
        stage(4, f"CycleGAN {i}/4 ({condition.label}, lambda_gc={config.loss.lambda_gc:g}): {n_mr} MR + {n_ct} CT "
                 f"volumes, {config.train.total_steps} steps -> {run_dirs[condition.name]['cyclegan']}")
        key = f"cyclegan/{condition.name}"
        steps[key], reused[key] = _train(run_dirs[condition.name]["cyclegan"], config, echo, functools.partial(
            _train_cyclegan, prepared[condition.training_set], run_dirs[condition.name]["cyclegan"], config, progress),
            unused_sections=CYCLEGAN_UNUSED_SECTIONS)
    for i, condition in enumerate(CONDITIONS, 1):
        config = p.condition_config(condition)
        dirs = run_dirs[condition.name]
        stage(5, f"segmentation {i}/4 behind the CycleGAN ({condition.label}): {p.small_ct} labelled CT "
                 f"volume(s), {config.segmentation.steps} steps -> {dirs['segmentation']}")
        key = f"segmentation/{condition.name}"
        steps[key], reused[key] = _train(dirs["segmentation"], config, echo, functools.partial(
            _train_segmentation, dirs["cyclegan"], prepared[TrainingSet.SMALL], dirs["segmentation"], config, progress))
        _check_behind(dirs["segmentation"], steps[f"cyclegan/{condition.name}"])

    rows = {}
    test = None
    for i, condition in enumerate(CONDITIONS, 1):
        eval_dir = os.path.join(out, "evaluation", condition.name)
        stage(6, f"evaluate {i}/4 ({condition.label}) on {len(groups['test'])} test subjects -> {eval_dir}")
        stamp = {"cyclegan_step": steps[f"cyclegan/{condition.name}"],
                 "segmentation_step": steps[f"segmentation/{condition.name}"], "subjects": groups["test"]}
        rows[condition.name] = _finished_evaluation(eval_dir, stamp)
        reused[f"evaluation/{condition.name}"] = rows[condition.name] is not None
        if rows[condition.name] is not None:
            echo("already evaluated")
        else:
            test = test or _TestSet(split, groups["test"])
            rows[condition.name] = _evaluate_condition(run_dirs[condition.name]["cyclegan"],
                                                       run_dirs[condition.name]["segmentation"], test, eval_dir)
            atomic_write_json(os.path.join(eval_dir, EVALUATED_FILE), stamp)
        for row in rows[condition.name]:
            echo(f"{row['subject']}: MI(MR, sCT) {row['mi_mr_sct']:.3f}  MI(CT, sMR) {row['mi_ct_smr']:.3f}  "
                 f"MAE {row['mae_hu']:.0f} HU  Dice pelvis {row.get('dice_pelvis', float('nan')):.3f}  "
                 f"femur {row.get('dice_femur', float('nan')):.3f}  mean {row['dice_mean']:.3f}")

    stage(7, f"paired t-tests, figures, report -> {os.path.join(out, 'REPORT.md')}")
    files = _write_figures(out, rows, groups["test"][0])
    results = {
        "preset": p.preset,
        "seed": p.seed,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "plan": {k: v for k, v in described.items() if k != "config"},
        "config": described["config"],
        "slices": counts,
        "conditions": {c.name: _condition_results(p, c, run_dirs[c.name], steps, rows[c.name], out) for c in CONDITIONS},
        "tests": compare_conditions(rows),
        "reused": reused,
        # Paths relative to ``out_dir``, so the folder (or its report and results) can be moved.
        "files": {"report": "REPORT.md", "results": "results.json",
                  **{k: os.path.relpath(v, out) for k, v in files.items()}},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    # Every call on this folder, so that a rerun that reuses everything still reports what the work took.
    results["calls"] = _previous_calls(out, results["plan"]) + [
        {"created": results["created"], "seconds": results["seconds"], "all_reused": all(reused.values())}]
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


def _train_cyclegan(data_dir, run_dir, config, progress):
    from mr2ct.training.trainer import train_cyclegan

    return train_cyclegan(data_dir, run_dir, config=config, progress=progress)


def _train_segmentation(cyclegan_dir, data_dir, run_dir, config, progress):
    from mr2ct.training.segmentation import train_segmentation

    return train_segmentation(cyclegan_dir, data_dir, run_dir, config=config, progress=progress)


def _claim_folder(out, p: ExperimentPlan) -> dict:
    """Write the plan into ``out/experiment.json``, or check it is the plan already there."""
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "experiment.json")
    described = p.to_dict()
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        if saved != described:
            keys = sorted(k for k in set(saved) | set(described) if saved.get(k) != described.get(k))
            raise Mr2ctError(f"{out}: holds an experiment with other settings (differs in {', '.join(keys)}); "
                             "use another folder")
    else:
        atomic_write_json(path, described)
    return described


def _generate_phantoms(phantom_dir, p: ExperimentPlan, echo) -> bool:
    """Generate every subject unless ``phantom.json`` already lists them; returns whether reused."""
    from mr2ct.data.phantom import write_phantom_dataset

    path = os.path.join(phantom_dir, "phantom.json")
    if os.path.exists(path):
        with open(path) as f:
            manifest = json.load(f)
        if (manifest.get("subjects") == [subject_name(i) for i in range(p.subjects)]
                and manifest.get("seed") == p.seed and manifest.get("size") == p.phantom_size):
            return True
    write_phantom_dataset(phantom_dir, p.subjects, seed=p.seed, size=p.phantom_size,
                          progress=(lambda s: echo(f"  {s}")) if echo else None,
                          workers=None if p.phantom_size == "paper" else 1)
    return False


def _split_subjects(phantom_dir, split, groups):
    """Folders of links: each training set's MR and CT, the CT labels, the test subjects' volumes."""
    for modality in ("mr", "ct"):
        for size in TrainingSet:
            link_subjects(os.path.join(phantom_dir, modality), os.path.join(split, f"train_{modality}_{size}"),
                           groups[f"train_{modality}_{size}"])
    link_subjects(os.path.join(phantom_dir, "labels_ct"), os.path.join(split, "train_ct_labels"),
                   groups["train_ct_large"])
    for folder in ("mr", "ct", "ct_on_mr_grid", "labels_mr"):
        link_subjects(os.path.join(phantom_dir, folder), os.path.join(split, f"test_{folder}"), groups["test"])


def _prepare(prepared_dir, split, p: ExperimentPlan, echo):
    """Prepare the large set, then the small set from its slices; returns the folders and the slice counts."""
    from mr2ct.data.prepare import prepare_dataset
    from mr2ct.training.builders import build_preprocess_config

    prepared = {s: os.path.join(prepared_dir, s.value) for s in TrainingSet}
    counts = {}
    for size in (TrainingSet.LARGE, TrainingSet.SMALL):
        if size == TrainingSet.SMALL:
            _seed_prepared(prepared[TrainingSet.LARGE], prepared[size], p.groups())
        manifest = prepare_dataset(
            prepared[size], mr_dir=os.path.join(split, f"train_mr_{size}"),
            ct_dir=os.path.join(split, f"train_ct_{size}"), labels_dir=os.path.join(split, "train_ct_labels"),
            config=build_preprocess_config(p.config),
        )
        counts[size.value] = manifest["counts"]
        echo(f"{size} set: {manifest['counts']['mr']} MR and {manifest['counts']['ct']} CT slices "
             f"({manifest['counts']['ct_labelled']} labelled)")
    return prepared, counts


def _train(run_dir, config, echo, train, unused_sections=()) -> tuple[int, bool]:
    """``(final step, reused)``: a finished run folder is reused, anything else trained (or resumed) by ``train()``."""
    step = _finished_step(run_dir, config, unused_sections)
    if step is not None:
        echo(f"already trained (step {step})")
        return step, True
    result = train()
    if result.interrupted:
        raise KeyboardInterrupt
    return result.step, False


def _check_behind(seg_dir, cyclegan_step):
    """Refuse a segmentation run trained behind another checkpoint of its CycleGAN."""
    from mr2ct.training.segmentation import CYCLEGAN_FILE

    with open(os.path.join(seg_dir, CYCLEGAN_FILE)) as f:
        behind = json.load(f)["step"]
    if behind != cyclegan_step:
        raise Mr2ctError(f"{seg_dir}: trained behind step {behind} of the CycleGAN, which is at step "
                         f"{cyclegan_step} now; delete this segmentation run to train it again")


def _finished_evaluation(eval_dir, stamp) -> list[dict] | None:
    """The rows of an evaluation made of the same checkpoints and subjects, else None."""
    path = os.path.join(eval_dir, EVALUATED_FILE)
    metrics = os.path.join(eval_dir, "metrics.json")
    if not (os.path.exists(path) and os.path.exists(metrics)):
        return None
    with open(path) as f:
        if json.load(f) != stamp:
            return None
    with open(metrics) as f:
        rows = json.load(f)["volumes"]
    # Non-finite values (the Dice of a structure absent from both volumes) are stored as null.
    return [{k: float("nan") if v is None else v for k, v in row.items()} for row in rows]


def _condition_results(p: ExperimentPlan, c: Condition, dirs, steps, rows, out) -> dict:
    n_mr, n_ct = p.training_volumes(c.training_set)
    return {
        "label": c.label,
        "training_set": c.training_set.value,
        "gc": c.gc,
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


def _subject_list(subjects, limit=6) -> str:
    if len(subjects) <= limit:
        return f"{len(subjects)}: " + ", ".join(subjects)
    return f"{len(subjects)}: {subjects[0]} .. {subjects[-1]}"


def _write_figures(out, rows, example_subject) -> dict:
    from mr2ct.data.io import read_volume
    from mr2ct.evaluation import plots

    by_label = {c.label: rows[c.name] for c in CONDITIONS}
    files = {
        "fig3": os.path.join(out, "fig3_mutual_information.png"),
        "fig4": os.path.join(out, "fig4_examples.png"),
        "fig5": os.path.join(out, "fig5_dice.png"),
    }
    plots.metric_boxplots(None, files["fig3"], groups=by_label, keys=["mi_ct_smr", "mi_mr_sct"])
    plots.dice_boxplots(by_label, files["fig5"], keys=[m for m in SEGMENTATION_METRICS if m != "dice_mean"])
    split = os.path.join(out, "split")

    def load(folder):
        return read_volume(os.path.join(folder, f"{example_subject}.nii.gz")).array

    plots.condition_montage(
        example_subject,
        mr=load(os.path.join(split, "test_mr")),
        ct=load(os.path.join(split, "test_ct_on_mr_grid")),
        labels=load(os.path.join(split, "test_labels_mr")),
        conditions={c.label: (load(os.path.join(out, "evaluation", c.name, "sct")),
                              load(os.path.join(out, "evaluation", c.name, "labels"))) for c in CONDITIONS},
        path=files["fig4"],
    )
    return files


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
        + _timing(results),
        "",
        "The design of Hiasa et al. 2018, section 3, on the procedural hip phantom: CycleGANs trained on a "
        "small and a large set of unpaired MR and CT volumes, each with and without the gradient-consistency "
        "(GC) loss; a U-Net trained through each CycleGAN's synthesis on labelled CT; all four evaluated on "
        "held-out subjects and compared with paired t-tests.",
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
        "| condition | MR volumes | CT volumes | lambda_GC | CycleGAN step | U-Net step |",
        "|---|---|---|---|---|---|",
    ]
    for name in names:
        c = conditions[name]
        lines.append(f"| {c['label']} | {c['train_mr_volumes']} | {c['train_ct_volumes']} | {c['lambda_gc']:g} | "
                     f"{c['cyclegan_step']} | {c['segmentation_step']} |")

    def table(metrics):
        out = ["| metric | " + " | ".join(conditions[n]["label"] for n in names) + " |",
               "|---|" + "---|" * len(names)]
        for metric in metrics:
            out.append(f"| {METRIC_NAMES[metric]} | "
                       + " | ".join(_mean_sd(conditions[n]["summary"][metric],
                                             1 if metric.endswith(("_hu", "_db")) else 3) for n in names) + " |")
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
        "so the loss pulls away from the truth there.",
        "",
        f"## Segmentation through synthesis (Fig. 5): Dice, mean ± sd over the {n_test} test subjects",
        "",
        "![Fig. 5 analogue: Dice per structure and condition](fig5_dice.png)",
        "",
        *table(SEGMENTATION_METRICS),
        "",
        f"Example (Figs. 4 and 6): middle slice of test subject {groups['test'][0]}.",
        "",
        "![Synthesized CT and labels per condition](fig4_examples.png)",
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
