"""The experiment's design: presets, the five conditions, the metrics and comparisons tested, and the plan."""

from __future__ import annotations

import dataclasses
import enum

from mr2ct.config import Config, preset
from mr2ct.data.phantom import subject_name
from mr2ct.errors import ConfigError
from mr2ct.labels import EVALUATED_STRUCTURES, LABELS


# Preset name -> sizes of the experiment. The CycleGAN and U-Net settings are
# the config preset of the same name, with ``overrides`` applied.
EXPERIMENT_PRESETS: dict[str, dict] = {
    # The paper: 20 MR + 20 CT vs 302 MR + 613 CT, tested on 10 subjects.
    # Paper-size phantoms take about 30 s and 27 MB each: 925 subjects are
    # about 8 h and 25 GB before training (4 x 2e5 steps: a GPU job).
    "paper": {"phantom_size": "paper", "mr_pool": 302, "ct_pool": 613, "small_mr": 20, "small_ct": 20, "test": 10},
    # Two CPU cores, about two and a half hours: paper-size phantoms and the `cpu` config preset (160x160
    # slices, 3,000 CycleGAN steps per run) with 2,500 U-Net steps instead of its 1,500: five runs of each, and
    # the MR-supervised U-Net, tested on 10 subjects as in the paper. The small set's 6 labelled CT train every
    # U-Net (the paper's 20); with 4 (and 4 MR) the small set's gluteus minimus stopped at Dice 0.48-0.53 and
    # gluteus medius at 0.54-0.58, with subjects below 0.3 (docs/results/cpu_study.md).
    "cpu": {"phantom_size": "paper", "mr_pool": 16, "ct_pool": 16, "small_mr": 6, "small_ct": 6, "test": 10,
            "overrides": ["segmentation.steps=2500"]},
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
# Metrics compared by paired t-tests: the paper's MI (both directions) and the Dice of its four structures,
# then two the paper could not measure without a registered CT: the MAE in HU and the bone Dice.
TESTED_METRICS = ("mi_ct_smr", "mi_mr_sct") + PAPER_DICE + ("mae_hu", "bone_dice")
# GC of both forms: the absolute one the loss uses by default, and the signed Eq. 4 (Sobel).
SYNTHESIS_METRICS = ("mi_mr_sct", "mi_ct_smr", "gc_abs_mr_sct", "gc_mr_sct", "mae_hu", "me_hu", "psnr_db", "ssim",
                     "mae_bone_band_hu", "bone_dice")
SEGMENTATION_METRICS = PAPER_DICE + ("dice_mean",)
# The test MR against its true CT: what the synthesis is measured against, the same in every condition.
REFERENCE_METRICS = ("mi_mr_ct", "gc_abs_mr_ct", "gc_mr_ct")


class TrainingSet(enum.StrEnum):
    """The two training-set sizes."""

    SMALL = "small"
    LARGE = "large"


@dataclasses.dataclass(frozen=True)
class Condition:
    """One arm of the experiment: a training set, with or without the GC loss, and the GC loss's form.

    ``gc_absolute`` is the form of the GC loss when ``gc`` is on: the
    absolute directional gradients of the authors' code (the default), or
    the signed gradients of the paper's Eq. 4 (``loss.gc_absolute=false``).
    """

    training_set: TrainingSet
    gc: bool
    gc_absolute: bool = True

    def __post_init__(self):
        if not self.gc and not self.gc_absolute:
            raise ConfigError("a condition without the GC loss has no GC form; leave gc_absolute at True")

    @property
    def name(self) -> str:
        if not self.gc:
            return f"{self.training_set.value}_no_gc"
        return f"{self.training_set.value}_gc" + ("" if self.gc_absolute else "_signed")

    @property
    def label(self) -> str:
        if not self.gc:
            return f"{self.training_set.value}, no GC"
        return f"{self.training_set.value}, {'GC' if self.gc_absolute else 'signed GC'}"

    @property
    def gc_form(self) -> str:
        """``"absolute"``, ``"signed"``, or ``"none"`` without the GC loss."""
        return "none" if not self.gc else ("absolute" if self.gc_absolute else "signed")


CONDITIONS = tuple(Condition(s, gc) for s in TrainingSet for gc in (False, True)) + (
    Condition(TrainingSet.LARGE, True, gc_absolute=False),
)
"""small without GC, small with GC, large without GC, large with GC (the authors' absolute form, as the
two before it), and large with the signed GC of Eq. 4."""

_BY_NAME = {c.name: c for c in CONDITIONS}

# (factor, at, condition A, condition B): each test asks whether A differs from B.
COMPARISONS = (
    ("training data size", "with GC", "large_gc", "small_gc"),
    ("training data size", "without GC", "large_no_gc", "small_no_gc"),
    ("GC loss", "small training set", "small_gc", "small_no_gc"),
    ("GC loss", "large training set", "large_gc", "large_no_gc"),
    ("GC form", "large training set", "large_gc", "large_gc_signed"),
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
        """The config of a condition's runs: the plan's, with ``loss.lambda_gc=0`` without GC and
        ``loss.gc_absolute=false`` with the signed GC."""
        if not condition.gc:
            return self.config.override(["loss.lambda_gc=0"])
        return self.config.override([f"loss.gc_absolute={'true' if condition.gc_absolute else 'false'}"])

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
