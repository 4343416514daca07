import pytest

from mr2ct.config import PRESETS, Config, preset
from mr2ct.errors import ConfigError


def test_defaults_are_the_paper():
    c = preset("paper")
    assert c == Config()
    assert (c.data.image_size, c.data.batch_size) == (256, 1)
    assert (c.model.generator_filters, c.model.generator_blocks) == (64, 9)
    assert (c.loss.lambda_cycle, c.loss.lambda_gc, c.loss.lambda_identity) == (3.0, 0.3, 0.0)
    assert (c.train.learning_rate, c.train.beta_1) == (2e-4, 0.5)
    assert (c.train.constant_steps, c.train.decay_steps, c.train.total_steps) == (100_000, 100_000, 200_000)
    assert c.loss.pool_size == 50


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_uses_the_authors_gc(name):
    """Absolute central-difference gradients, as in the paper's first author's public code."""
    c = preset(name)
    assert (c.loss.gc_absolute, c.loss.gc_operator) == (True, "central")
    assert preset(name).override(["loss.gc_absolute=false"]).loss.gc_absolute is False


def test_a_run_config_without_gc_absolute_means_the_signed_gc_it_was_trained_with(tmp_path):
    old = preset("tiny").to_dict()
    del old["loss"]["gc_absolute"]
    old["loss"]["gc_operator"] = "sobel"
    path = tmp_path / "config.yaml"
    import yaml

    path.write_text(yaml.safe_dump(old))
    assert Config.from_yaml(path, run=True).loss.gc_absolute is False  # a run folder's record
    assert Config.from_yaml(path).loss.gc_absolute is True  # a user's partial config: the defaults


def test_a_run_config_without_init_means_the_glorot_kernels_it_was_trained_with(tmp_path):
    import yaml

    old = preset("tiny").to_dict()
    assert old["model"]["init"] == "normal"
    del old["model"]["init"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(old))
    assert Config.from_yaml(path, run=True).model.init == "glorot_uniform"
    assert Config.from_yaml(path).model.init == "normal"


def test_predated_settings_name_what_a_run_config_lacks_and_a_whole_missing_section():
    from mr2ct.config import RUN_LEGACY_VALUES, predated_settings, with_legacy_values

    today = preset("tiny").to_dict()
    assert predated_settings(today) == {}
    old = preset("tiny").to_dict()
    del old["model"]["init"]
    del old["prepare"]
    assert predated_settings(old) == {"prepare.frame_mr": False, "model.init": "glorot_uniform"}
    restored = with_legacy_values(old)
    assert restored["model"]["init"] == "glorot_uniform" and restored["prepare"] == {"frame_mr": False}
    assert "prepare" not in old and "init" not in old["model"]  # the input is left as it was
    assert set(RUN_LEGACY_VALUES) == {"loss", "prepare", "model", "data", "runtime", "segmentation", "train"}
    del old["data"]["scale_jitter"]
    assert predated_settings(old)["data.scale_jitter"] == 0.0  # runs before it trained on unscaled slices
    del old["runtime"]["batch_per_replica"]
    assert predated_settings(old)["runtime.batch_per_replica"] is False  # their batch was the global batch
    del old["segmentation"]["dice_classes"]
    assert predated_settings(old)["segmentation.dice_classes"] == "all"  # their soft Dice took every structure
    del old["train"]["coarse_steps"]
    assert predated_settings(old)["train.coarse_steps"] == 0  # every step of theirs was at full resolution


def test_dice_classes_is_checked_and_a_run_before_it_resumes_with_the_soft_dice_it_had(tmp_path):
    import yaml

    assert all(preset(name).segmentation.dice_classes == "present" for name in ("paper", "cpu", "tiny"))
    with pytest.raises(ConfigError, match="dice_classes must be 'present' or 'all'"):
        preset("tiny").override(["segmentation.dice_classes=absent"])
    old = preset("tiny").to_dict()
    del old["segmentation"]["dice_classes"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(old))
    assert Config.from_yaml(path, run=True).segmentation.dice_classes == "all"
    assert Config.from_yaml(path).segmentation.dice_classes == "present"


def test_a_run_written_before_batch_per_replica_resumes_with_a_global_batch(tmp_path):
    import yaml

    old = preset("tiny").to_dict()
    del old["runtime"]["batch_per_replica"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(old))
    assert Config.from_yaml(path, run=True).runtime.batch_per_replica is False
    assert Config.from_yaml(path).runtime.batch_per_replica is True
    assert all(preset(name).runtime.batch_per_replica for name in ("paper", "cpu", "tiny"))


@pytest.mark.parametrize("value", ["-0.1", "0.5", "2"])
def test_scale_jitter_outside_its_range_is_refused(value):
    with pytest.raises(ConfigError, match=r"data.scale_jitter must be in \[0, 0.5\)"):
        preset("tiny").override([f"data.scale_jitter={value}"])
    assert preset("tiny").override(["data.scale_jitter=0.1"]).data.scale_jitter == 0.1


def test_unknown_gc_operator_is_refused():
    with pytest.raises(ConfigError, match="loss.gc_operator"):
        preset("tiny").override(["loss.gc_operator=laplace"])


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_yaml(name, tmp_path):
    c = preset(name)
    c.to_yaml(tmp_path / "c.yaml")
    assert Config.from_yaml(tmp_path / "c.yaml") == c


@pytest.mark.parametrize(
    "assignment, section, key, value",
    [
        ("loss.lambda_gc=0", "loss", "lambda_gc", 0.0),
        ("train.constant_steps=1e3", "train", "constant_steps", 1000),
        ("runtime.mixed_precision=off", "runtime", "mixed_precision", "off"),
        ("runtime.xla=true", "runtime", "xla", True),
        ("data.image_size=128", "data", "image_size", 128),
        ("loss.lambda_outline=1", "loss", "lambda_outline", 1.0),
    ],
)
def test_overrides(assignment, section, key, value):
    c = preset("tiny").override([assignment])
    assert getattr(getattr(c, section), key) == value
    assert preset("tiny") != c or getattr(getattr(preset("tiny"), section), key) == value


@pytest.mark.parametrize(
    "assignment, match",
    [
        ("loss.lambda_gcc=1", "unknown config key 'loss.lambda_gcc'"),
        ("lambda_gc=1", "section.key=value"),
        ("loss.lambda_gc", "section.key=value"),
        ("data.image_size=abc", "data.image_size must be int"),
        ("data.image_size=100", "multiple of 16"),
        ("runtime.strategy=tpu", "runtime.strategy must be one of"),
        ("model.conv_gradient=fast", "model.conv_gradient must be one of"),
        ("loss.lambda_gc=-1", "non-negative"),
        ("loss.lambda_outline=-0.5", "non-negative"),
    ],
)
def test_bad_overrides(assignment, match):
    with pytest.raises(ConfigError, match=match):
        preset("tiny").override([assignment])


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        Config.from_yaml(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("data: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        Config.from_yaml(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("huge")


def test_sections_a_run_never_used_take_todays_defaults(tmp_path):
    import yaml

    old = preset("tiny").to_dict()
    del old["segmentation"]["dice_classes"]
    del old["model"]["init"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(old))
    config = Config.from_yaml(path, run=True, unused_sections=("segmentation",))
    assert config.segmentation.dice_classes == "present" and config.model.init == "glorot_uniform"
