"""Configuration: a tree of dataclasses, presets, YAML in and out, ``key=value`` overrides.

The config stops at the edges: networks and losses take explicit arguments,
and the ``build_*`` factories in :mod:`mr2ct.training` translate a
:class:`Config` into them. A run folder always holds the resolved config as
``config.yaml``, so a run can be repeated or resumed exactly.

Presets (``PRESETS``):

* ``paper``: the settings of Hiasa et al.: 256x256 slices, 64-filter ResNet
  generator with 9 blocks, 70x70 PatchGAN, batch 1, Adam 2e-4 (beta_1 0.5)
  constant for 1e5 steps then linearly to 0 over 1e5 steps, lambda_cycle 3,
  lambda_gc 0.3.
* ``cpu``: 160x160 slices, smaller networks, Adam 4e-4 and 3,000 steps: the whole
  ``mr2ct demo`` on the phantom takes about 20 to 65 minutes on two CPU cores.
* ``tiny``: seconds per run, for the tests.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import os
import typing

import yaml

from mr2ct._atomic import atomic_write_text
from mr2ct.errors import ConfigError


class MixedPrecision(enum.StrEnum):
    """Numeric precision of the networks' computations."""

    OFF = "off"  # float32 everywhere
    AUTO = "auto"  # float16 with loss scaling on GPU, bfloat16 on CPUs with AMX (amx_bf16), else float32
    FLOAT16 = "float16"
    BFLOAT16 = "bfloat16"


class StrategyKind(enum.StrEnum):
    """Which tf.distribute strategy trains the model."""

    AUTO = "auto"  # MirroredStrategy over all GPUs if there are several, else the default
    DEFAULT = "default"
    MIRRORED = "mirrored"
    MULTI_WORKER = "multi_worker"  # MultiWorkerMirroredStrategy, cluster from TF_CONFIG


class GradientOperatorName(enum.StrEnum):
    """Gradient operators of the GC loss (the names of :class:`mr2ct.losses.GradientOperator`)."""

    CENTRAL = "central"
    SOBEL = "sobel"


class WeightInitName(enum.StrEnum):
    """Initial kernels of the CycleGAN's networks (the names of :class:`mr2ct.models.WeightInit`)."""

    GLOROT = "glorot_uniform"
    NORMAL = "normal"


class ConvGradientName(enum.StrEnum):
    """How the generators' stride-1 convolutions compute their gradients (:class:`mr2ct.models.ConvGradient`)."""

    AUTO = "auto"
    TENSORFLOW = "tensorflow"
    FORWARD = "forward"


class NormName(enum.StrEnum):
    """Normalization inside the networks (the names of :class:`mr2ct.models.Norm`)."""

    INSTANCE = "instance"
    BATCH = "batch"
    NONE = "none"


@dataclasses.dataclass
class DataConfig:
    """Slices and batches."""

    image_size: int = 256
    # CycleGAN training on random crop_size x crop_size crops of the image_size slices (0: whole
    # slices, the paper); the generators are fully convolutional and translate whole slices.
    crop_size: int = 0
    batch_size: int = 1  # per replica (runtime.batch_per_replica): N replicas take N times this per step
    shuffle_buffer: int = 2048
    augment: bool = False  # resize-and-random-crop and flips (off in the paper)
    # CycleGAN training slices of both domains scaled about their centre by independent random factors in
    # [1 - j, 1 + j] left-right and front-back (0: off, the paper), so that body size and shape carry no
    # information about the domain and the generators have no reason to change them.
    scale_jitter: float = 0.0
    seed: int = 0

    @property
    def train_size(self) -> int:
        """Side of the CycleGAN's training images: the crop, or the whole slice."""
        return self.crop_size or self.image_size


@dataclasses.dataclass
class PrepareConfig:
    """Preprocessing of volumes into slices (section 2.1 of the paper)."""

    n4: bool = True
    n4_shrink_factor: int = 4
    n4_iterations: list[int] = dataclasses.field(default_factory=lambda: [50, 50, 30])  # per level
    crop_ct: bool = True
    frame_mr: bool = True  # MR cropped in plane to fov_mm centred on the body, like the CT
    fov_mm: float = 320.0
    slab_mm: float = 76.0
    # where the CT slab's centre comes from: "bone" (the slice with the most bone: the hips), "body" (the
    # middle of the slices holding body) or "image" (the middle slice)
    slab_center: str = "bone"
    ct_hu_min: float = -1024.0  # the CT window mapped to [-1, 1]
    ct_hu_max: float = 2048.0
    mr_lower_percentile: float = 0.5  # each MR volume's percentiles mapped to -1 and 1
    mr_upper_percentile: float = 99.5


@dataclasses.dataclass
class ModelConfig:
    """Generators and discriminators."""

    generator_filters: int = 64
    generator_blocks: int = 9
    discriminator_filters: int = 64
    discriminator_layers: int = 3
    norm: str = "instance"
    # Initial kernels of generators and discriminators: "normal", N(0, 0.02) as in the reference
    # PyTorch CycleGAN the paper's code builds on, or "glorot_uniform" (Keras' default; the demo's
    # synthesized CT was worse with it: MAE 145 against 124 HU, bone Dice 0.51 against 0.62).
    init: str = "normal"
    # The generators' stride-1 convolution gradients: "auto" times TensorFlow's and mr2ct's forms per shape at
    # the first step and keeps the faster (docs/speed.md); "tensorflow" or "forward" fix one form, so that the
    # arithmetic does not depend on timing, e.g. when comparing runs made in different processes.
    conv_gradient: str = "auto"


@dataclasses.dataclass
class LossConfig:
    """Weights of the objective (paper Eq. 6) and the discriminators' image pool."""

    lambda_cycle: float = 3.0
    lambda_gc: float = 0.3  # 0 turns the gradient-consistency loss off
    lambda_identity: float = 0.0
    # The GC of the paper's first author's public code: absolute central-difference gradients.
    # gc_absolute=false is the signed Eq. 4 (see mr2ct.losses.gradient_correlation).
    gc_operator: str = "central"
    gc_absolute: bool = True
    # Body-outline loss (not in the paper; 0: off): the filled body masks of each image and its translation
    # are compared, so the generators keep the body's shape (mr2ct.losses.body_outline_loss).
    lambda_outline: float = 0.0
    pool_size: int = 50


@dataclasses.dataclass
class TrainConfig:
    """Optimisation, checkpoints and summaries."""

    learning_rate: float = 2e-4
    beta_1: float = 0.5
    constant_steps: int = 100_000
    decay_steps: int = 100_000
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    summary_every: int = 100
    image_summary_every: int = 1000
    steps_per_execution: int = 1
    # Coarse-to-fine: the first coarse_steps steps train on slices (or crops) at half resolution, 2x2 means,
    # the rest at full resolution (0: off, the paper). The networks are fully convolutional; the discriminators'
    # history pools hold full-size images, so the coarse steps show the discriminators current images only.
    coarse_steps: int = 0
    # With `mr2ct train --val-mr`: the held-out slices validated at every checkpoint, and the signal that picks
    # the checkpoint kept as best_checkpoint/ ("gc", "mi" or "cycle"; mr2ct.training.validation). The MR cycle
    # error ranked the checkpoints of both demo runs measured as their MAE against the true CT did; GC of MR and
    # synthesized CT went the other way in one of them (benchmarks/validation_signal.py, docs/results/demo.md).
    validation_slices: int = 32
    validation_signal: str = "cycle"

    @property
    def total_steps(self) -> int:
        return self.constant_steps + self.decay_steps


@dataclasses.dataclass
class SegmentationConfig:
    """The two-channel U-Net trained through synthesis (section 3.2)."""

    filters: int = 64
    depth: int = 4
    learning_rate: float = 1e-4
    steps: int = 100_000
    batch_size: int = 4
    checkpoint_every: int = 1000
    # Loss: cross-entropy + dice_weight * (1 - mean soft Dice over the structures present in each image); the
    # paper names no loss. dice_classes="all" took every one of the 22 structures, absent ones too, and so pushed
    # each structure's probability towards zero on every slice without it: on the demo (seed 0, 1,500 steps,
    # behind one CycleGAN) it left five thigh muscles at Dice 0 (mean of 22: 0.668); cross-entropy alone left
    # two (0.735), "present" two (0.764), with pelvis/femur/gluteus medius/minimus 0.875/0.922/0.894/0.814.
    # Seed 1: mean of 22 0.731 present, 0.676 cross-entropy alone, 0.655 all; on the four structures the losses
    # trade places (benchmarks/segmentation_references.py, docs/results/demo.md#segmentation).
    dice_weight: float = 1.0
    dice_classes: str = "present"
    # U-Net training on random crop_size x crop_size windows of the slices, the same window of CT, synthesized MR
    # and labels (0: whole slices). The U-Net is fully convolutional and segments whole slices.
    crop_size: int = 0
    # Probability of blanking a training image's CT channel (SynthesisSegmenter's ct_dropout): at test time the
    # CT channel is the synthesized one, so the U-Net should not rest on the real CT's detail alone.
    ct_dropout: float = 0.0


@dataclasses.dataclass
class RuntimeConfig:
    """Where and how the computation runs."""

    strategy: str = "auto"
    mixed_precision: str = "off"
    xla: bool = False
    seed: int = 0
    # data.batch_size and segmentation.batch_size are each replica's batch: on N replicas (GPUs, or workers) a
    # step takes N times as many images, at the same learning rate, so a preset starts on any number of devices.
    # False: they are the global batch, split over the replicas (it must then be a multiple of their number).
    batch_per_replica: bool = True


@dataclasses.dataclass
class Config:
    """The whole configuration of a run."""

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    prepare: PrepareConfig = dataclasses.field(default_factory=PrepareConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    segmentation: SegmentationConfig = dataclasses.field(default_factory=SegmentationConfig)
    runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)

    def validate(self) -> "Config":
        """Raise :class:`ConfigError` for values that cannot work together."""
        checks = [
            (self.data.image_size >= 16 and self.data.image_size % 16 == 0,
             f"data.image_size must be a multiple of 16, at least 16. Received: {self.data.image_size}"),
            (0.0 <= self.data.scale_jitter < 0.5,
             f"data.scale_jitter must be in [0, 0.5). Received: {self.data.scale_jitter}"),
            (self.prepare.slab_center in ("bone", "body", "image"),
             f"prepare.slab_center must be one of ['bone', 'body', 'image']. Received: {self.prepare.slab_center!r}"),
            (self.prepare.ct_hu_min < self.prepare.ct_hu_max,
             f"prepare.ct_hu_min must be below prepare.ct_hu_max. Received: {self.prepare.ct_hu_min}, "
             f"{self.prepare.ct_hu_max}"),
            (0 <= self.prepare.mr_lower_percentile < self.prepare.mr_upper_percentile <= 100,
             "prepare.mr_lower_percentile and mr_upper_percentile must satisfy 0 <= lower < upper <= 100. "
             f"Received: {self.prepare.mr_lower_percentile}, {self.prepare.mr_upper_percentile}"),
            (self.prepare.fov_mm > 0 and self.prepare.slab_mm > 0,
             f"prepare.fov_mm and prepare.slab_mm must be positive. Received: {self.prepare.fov_mm}, "
             f"{self.prepare.slab_mm}"),
            (len(self.prepare.n4_iterations) >= 1 and all(n >= 1 for n in self.prepare.n4_iterations),
             f"prepare.n4_iterations must be a non-empty list of positive counts. Received: "
             f"{self.prepare.n4_iterations}"),
            (self.data.crop_size == 0 or (self.data.crop_size >= 16 and self.data.crop_size % 16 == 0
                                          and self.data.crop_size <= self.data.image_size),
             "data.crop_size must be 0 (whole slices) or a multiple of 16 from 16 to data.image_size. "
             f"Received: {self.data.crop_size} (image_size {self.data.image_size})"),
            (self.data.batch_size >= 1, f"data.batch_size must be >= 1. Received: {self.data.batch_size}"),
            (self.loss.lambda_cycle >= 0 and self.loss.lambda_gc >= 0 and self.loss.lambda_identity >= 0
             and self.loss.lambda_outline >= 0,
             "loss weights must be non-negative"),
            (self.loss.pool_size >= 0, f"loss.pool_size must be >= 0. Received: {self.loss.pool_size}"),
            (self.train.constant_steps >= 0 and self.train.decay_steps >= 0 and self.train.total_steps > 0,
             "train.constant_steps + train.decay_steps must be positive"),
            (0 <= self.train.coarse_steps < self.train.total_steps,
             "train.coarse_steps must be at least 0 and below train.constant_steps + train.decay_steps. "
             f"Received: {self.train.coarse_steps} (total {self.train.total_steps})"),
            (self.train.coarse_steps == 0 or self.data.train_size % 32 == 0,
             "train.coarse_steps trains at half the slice (or crop) size, which must then be a multiple of 16: "
             f"data.crop_size or data.image_size must be a multiple of 32. Received: {self.data.train_size}"),
            (self.train.checkpoint_every >= 1, "train.checkpoint_every must be >= 1"),
            (self.train.learning_rate > 0, "train.learning_rate must be positive"),
            (self.train.validation_slices >= 1,
             f"train.validation_slices must be >= 1. Received: {self.train.validation_slices}"),
            (self.train.validation_signal in ("gc", "mi", "cycle"),
             "train.validation_signal must be one of ['cycle', 'gc', 'mi']. "
             f"Received: {self.train.validation_signal!r}"),
            (self.segmentation.crop_size == 0 or (self.segmentation.crop_size % 2**self.segmentation.depth == 0
                                                  and 0 < self.segmentation.crop_size <= self.data.image_size),
             "segmentation.crop_size must be 0 (whole slices) or a multiple of 2**segmentation.depth up to "
             f"data.image_size. Received: {self.segmentation.crop_size} (depth {self.segmentation.depth}, "
             f"image_size {self.data.image_size})"),
            (0 <= self.segmentation.ct_dropout < 1,
             f"segmentation.ct_dropout must be in [0, 1). Received: {self.segmentation.ct_dropout}"),
            (self.segmentation.dice_weight >= 0,
             f"segmentation.dice_weight must be non-negative. Received: {self.segmentation.dice_weight}"),
            (self.segmentation.dice_classes in ("present", "all"),
             "segmentation.dice_classes must be 'present' or 'all'. "
             f"Received: {self.segmentation.dice_classes!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        for value, kind, key in [
            (self.runtime.strategy, StrategyKind, "runtime.strategy"),
            (self.runtime.mixed_precision, MixedPrecision, "runtime.mixed_precision"),
            (self.loss.gc_operator, GradientOperatorName, "loss.gc_operator"),
            (self.model.init, WeightInitName, "model.init"),
            (self.model.norm, NormName, "model.norm"),
            (self.model.conv_gradient, ConvGradientName, "model.conv_gradient"),
        ]:
            if value not in {k.value for k in kind}:
                raise ConfigError(f"{key} must be one of {[k.value for k in kind]}. Received: {value!r}")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "Config":
        config = cls()
        _merge(config, values, "")
        return config.validate()

    def to_yaml(self, path: str | os.PathLike | None = None) -> str:
        """The config as YAML text; also written atomically to ``path`` if given."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            atomic_write_text(path, text)
        return text

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, run: bool = False, unused_sections=()) -> "Config":
        """The config in a YAML file.

        Args:
            path: the file.
            run: the file is the ``config.yaml`` a run folder holds. A key it
                lacks because it predates the setting takes the value the run
                was trained with (:data:`RUN_LEGACY_VALUES`), not today's
                default, so an old run is never resumed or exported with
                settings it was not trained with. Defaults to `False` (a
                user's config file: missing keys take the defaults).
            unused_sections: with ``run``, sections the run never used (a
                CycleGAN run's ``segmentation``): the keys they lack take
                today's defaults, as in a user's config file. Defaults to
                `()`.
        """
        try:
            with open(path) as f:
                values = yaml.safe_load(f) or {}
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from None
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: expected a mapping of sections")
        return cls.from_dict(with_legacy_values(values, skip=unused_sections) if run else values)

    def override(self, assignments: typing.Iterable[str]) -> "Config":
        """A copy with ``section.key=value`` assignments applied (values parsed as YAML)."""
        config = copy.deepcopy(self)
        for item in assignments:
            key, sep, raw = item.partition("=")
            if not sep or "." not in key:
                raise ConfigError(f"expected section.key=value. Received: {item!r}")
            nested: dict = {}
            node = nested
            parts = key.strip().split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = yaml.safe_load(raw)
            _merge(config, nested, "")
        return config.validate()


# Settings added after run folders were first written, with the value that reproduces what a run
# written before them was trained with: before loss.gc_absolute existed, the GC loss was signed;
# before prepare.frame_mr, MR slices kept the scanner's field of view.
# Before model.init, kernels started Glorot-uniform; before data.scale_jitter, slices were not scaled;
# before runtime.batch_per_replica, the batch sizes were global batches; before loss.lambda_outline, no
# body-outline loss; before train.coarse_steps, every step at full resolution.
RUN_LEGACY_VALUES: dict[str, dict] = {
    "train": {"coarse_steps": 0},
    "loss": {"gc_absolute": False, "lambda_outline": 0.0},
    "prepare": {"frame_mr": False},
    "model": {"init": "glorot_uniform"},
    "data": {"scale_jitter": 0.0},
    "runtime": {"batch_per_replica": False},
    "segmentation": {"dice_classes": "all"},
}


def predated_settings(values: dict) -> dict[str, object]:
    """``{"section.key": legacy value}`` for each key of :data:`RUN_LEGACY_VALUES` a run's config dict lacks."""
    return {f"{section}.{key}": value for section, keys in RUN_LEGACY_VALUES.items()
            for key, value in keys.items()
            if not isinstance(values.get(section), dict) or key not in values[section]}


def with_legacy_values(values: dict, skip=()) -> dict:
    """A copy of a config dict a run wrote, with every key it predates set to :data:`RUN_LEGACY_VALUES`,
    except in the sections ``skip`` names."""
    values = copy.deepcopy(values)
    for dotted, value in predated_settings(values).items():
        section, key = dotted.split(".")
        if section in skip:
            continue
        if not isinstance(values.get(section), dict):
            values[section] = {}
        values[section][key] = value
    return values


# name -> overrides of the defaults (which are the paper's settings).
PRESETS: dict[str, dict] = {
    "paper": {},
    "cpu": {
        # 160x160 slices (2 mm pixels): at 96x96 (3.3 mm) even a perfect translation, sent through the
        # slices and back onto the MR grid, scores bone Dice 0.84 and bone-edge MAE 249 HU against the
        # truth; at 160x160, 0.91 and 148 HU (benchmarks/synthesis_ceiling.py). Batch 1, as in the paper.
        # data.scale_jitter stays off: one run with 0.1 kept the body's width (demo seed 0: left-right extent ratio
        # 1.010 against 1.040 without), a second (the full demo, same settings) widened it more (1.07-1.10),
        # with tissue smeared to the slice edge; both filled beyond the slice with edge values, which is now air. With
        # the air fill it kept the width on seed 0 but grew tissue into the air on seed 1; with loss.lambda_outline=1
        # the shape held on both seeds but MAE rose by 10-50 HU, so both stay off (docs/results/demo.md, "Body
        # shape and slice agreement").
        "data": {"image_size": 160, "batch_size": 1},
        "prepare": {"n4_shrink_factor": 2},
        "model": {"generator_filters": 24, "generator_blocks": 6, "discriminator_filters": 24},
        # Twice the paper's rate: at 3,000 steps it raised the demo's SSIM and lowered its bone-edge MAE in all
        # three runs made (phantom seeds 0, 0 and 1), with MAE and bone Dice equal or better (docs/results/demo.md).
        "train": {
            "learning_rate": 4e-4,
            "constant_steps": 1500,
            "decay_steps": 1500,
            "checkpoint_every": 500,
            "summary_every": 25,
            "image_summary_every": 500,
        },
        # The U-Net learns on random 96x96 windows, with the CT channel of half its training images blanked: on the
        # demo (seed 0, 1,500 steps) held-out Dice pelvis/femur/gluteus medius/minimus 0.90/0.92/0.89/0.80 with it,
        # 0.78/0.79/0.87/0.72 without (the U-Net then leans on the real CT's detail, which the synthesized CT lacks).
        # The paper's U-Net rate (1e-4) suits its long schedule; in a thousand steps it leaves the U-Net
        # far from trained (cpu experiment: cross-entropy 0.87 after 1,000 steps, 0.06 at 1e-3).
        "segmentation": {"filters": 16, "depth": 3, "steps": 1500, "batch_size": 8, "checkpoint_every": 250,
                         "learning_rate": 1e-3, "crop_size": 96, "ct_dropout": 0.5},
        # 0.5-0.9 s per step on two CPU cores, depending on the machine (docs/speed.md). XLA made this
        # step slower on CPU (0.87 against 0.72 s in benchmarks/train_step.py --size 160 --filters 24
        # --blocks 6), so it is off here; with ValidConv2D one measurement gave XLA 0.72 against 0.79 s,
        # within the variation of that machine, not enough to change it.
        # bfloat16 on CPUs with AMX (a third of the float32 step at the paper size there; the demo's quality held:
        # MAE 97.8 against 93.5 HU, bone Dice 0.66 against 0.61), float32 elsewhere.
        "runtime": {"xla": False, "mixed_precision": "auto"},
    },
    "tiny": {
        "data": {"image_size": 32, "batch_size": 2, "shuffle_buffer": 64},
        "prepare": {"n4_shrink_factor": 1},
        "model": {"generator_filters": 4, "generator_blocks": 1, "discriminator_filters": 4},
        "loss": {"pool_size": 4},
        "train": {
            "constant_steps": 4,
            "decay_steps": 4,
            "checkpoint_every": 4,
            "summary_every": 2,
            "image_summary_every": 4,
        },
        "segmentation": {"filters": 4, "depth": 2, "steps": 6, "batch_size": 4, "checkpoint_every": 3},
    },
}


def preset(name: str) -> Config:
    """The :class:`Config` of a named preset (``paper``, ``cpu`` or ``tiny``)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return Config.from_dict(PRESETS[name])


def _merge(target, values: dict, prefix: str) -> None:
    """Assign ``values`` into the dataclass ``target``, checking names and types."""
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix or 'config'} must be a mapping. Received: {values!r}")
    fields = {f.name: f for f in dataclasses.fields(target)}
    hints = typing.get_type_hints(type(target))
    for name, value in values.items():
        key = f"{prefix}{name}"
        if name not in fields:
            raise ConfigError(f"unknown config key {key!r}; known: {sorted(fields)}")
        current = getattr(target, name)
        if dataclasses.is_dataclass(current):
            _merge(current, value, f"{key}.")
            continue
        setattr(target, name, _coerce(value, hints[name], key))


def _coerce(value, hint, key):
    if isinstance(value, str) and hint in (int, float):
        try:  # YAML 1.1 reads "1e5" as a string
            value = float(value)
        except ValueError:
            pass
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        if isinstance(value, list):
            return [_coerce(v, item, key) for v in value]
    elif hint is str:
        if isinstance(value, bool):  # YAML 1.1 reads off/on as booleans
            return "on" if value else "off"
        if isinstance(value, str):
            return value
    raise ConfigError(f"{key} must be {hint.__name__}. Received: {value!r}")
