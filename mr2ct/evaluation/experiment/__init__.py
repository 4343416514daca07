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
4. five CycleGAN runs, :data:`CONDITIONS`: {small, large} x {GC (the preset's
   ``loss.lambda_gc``, the authors' absolute form), no GC (``loss.lambda_gc=0``)},
   and the large set with the signed GC of Eq. 4 (``loss.gc_absolute=false``).
5. five segmentation runs (:func:`~mr2ct.training.segmentation.train_segmentation`),
   one behind each CycleGAN's frozen generators.
6. each condition evaluated on the test subjects (the metrics of
   :mod:`mr2ct.evaluation.evaluate`): MI(MR, sCT) and GC(MR, sCT); MAE, ME,
   PSNR, SSIM and the bone-band MAE against the CT on the MR grid; MI(CT, sMR)
   between each test subject's real CT and its synthesized MR, on the CT's
   prepared grid; Dice of every structure against the labels on the MR grid.
   Each test MR is preprocessed (N4, resampling) once for all conditions.
7. paired t-tests (``scipy.stats.ttest_rel``, two-sided, over the test
   subjects) of training-set size (large vs small, with and without GC) and of
   the GC loss (on vs off, at each size) and of its form (absolute vs signed, on
   the large set) on MI, on the Dice of pelvis, femur, gluteus medius and
   gluteus minimus, and on the MAE and bone Dice against the true CT;
   ``REPORT.md``, ``results.json`` and the figures.

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
    synthesis_accuracy.png          MAE, SSIM, bone Dice, bone-edge MAE and both GC forms per condition
    REPORT.md, results.json

Every finished step is reused when the experiment is run again: the phantom,
prepared slices, runs whose ``status.json`` says finished, and evaluations
whose ``evaluated.json`` names the same checkpoints. An interrupted run
resumes from its latest checkpoint.

Modules: ``design`` (presets, conditions, metrics, comparisons, the plan),
``statistics`` (summaries, paired t-tests, the comparisons of conditions),
``stages`` (each step's work and its reuse), ``running`` (:func:`run_experiment`)
and ``report`` (:func:`render_report`); the names are re-exported here.

Reference:
    Hiasa et al., "Cross-modality image synthesis from unpaired data using
    CycleGAN: effects of gradient consistency loss and training data size",
    SASHIMI 2018 (section 3, Figs. 3 and 5).
"""

from mr2ct.evaluation.experiment.design import (
    COMPARISONS,
    CONDITIONS,
    EXPERIMENT_PRESETS,
    PAPER_DICE,
    REFERENCE_METRICS,
    SEGMENTATION_METRICS,
    SYNTHESIS_METRICS,
    TESTED_METRICS,
    Condition,
    ExperimentPlan,
    TrainingSet,
    plan,
)
from mr2ct.evaluation.experiment.report import METRIC_NAMES, render_report
from mr2ct.evaluation.experiment.running import run_experiment
from mr2ct.evaluation.experiment.stages import EVALUATED_FILE
from mr2ct.evaluation.experiment.statistics import compare_conditions, paired_t_test, summarize

__all__ = [
    "COMPARISONS",
    "CONDITIONS",
    "Condition",
    "EVALUATED_FILE",
    "EXPERIMENT_PRESETS",
    "ExperimentPlan",
    "METRIC_NAMES",
    "PAPER_DICE",
    "REFERENCE_METRICS",
    "SEGMENTATION_METRICS",
    "SYNTHESIS_METRICS",
    "TESTED_METRICS",
    "TrainingSet",
    "compare_conditions",
    "paired_t_test",
    "plan",
    "render_report",
    "run_experiment",
    "summarize",
]
