import pytest

from mr2ct.config import preset
from mr2ct.errors import ConfigError
from mr2ct.training.trainer import CONFIG_FILE, resolve_run_config


def test_a_run_resumes_only_with_its_own_settings(tmp_path):
    config = preset("tiny")
    assert resolve_run_config(tmp_path, config) == config
    assert (tmp_path / CONFIG_FILE).exists()
    assert resolve_run_config(tmp_path, None).to_dict() == config.to_dict()
    with pytest.raises(ConfigError, match=r"config.yaml: this run was started with other settings "
                                          r"\(loss.lambda_gc: 0.3 -> 0.0\)"):
        resolve_run_config(tmp_path, config.override(["loss.lambda_gc=0"]))


def test_sections_a_run_does_not_read_may_change(tmp_path):
    config = preset("tiny")
    resolve_run_config(tmp_path, config)
    changed = config.override(["segmentation.learning_rate=0.01"])
    with pytest.raises(ConfigError, match="segmentation.learning_rate"):
        resolve_run_config(tmp_path, changed)
    kept = resolve_run_config(tmp_path, changed, unused_sections=("segmentation",))
    assert kept.segmentation.learning_rate == config.segmentation.learning_rate  # the saved config stays
    with pytest.raises(ConfigError, match="data.batch_size"):
        resolve_run_config(tmp_path, config.override(["data.batch_size=3", "segmentation.steps=2"]),
                           unused_sections=("segmentation",))


def test_a_new_run_needs_a_config(tmp_path):
    with pytest.raises(ConfigError, match="no config.yaml here and no config given"):
        resolve_run_config(tmp_path / "new", None)


def test_an_old_run_without_gc_absolute_is_not_resumed_with_the_absolute_gc(tmp_path):
    import yaml

    old = preset("tiny").to_dict()
    del old["loss"]["gc_absolute"]
    (tmp_path / CONFIG_FILE).write_text(yaml.safe_dump(old))
    assert resolve_run_config(tmp_path, None).loss.gc_absolute is False  # resumes as it was trained
    with pytest.raises(ConfigError, match=r"loss.gc_absolute: False -> True\); its config.yaml predates "
                                          r"loss.gc_absolute, so it was trained with loss.gc_absolute=False"):
        resolve_run_config(tmp_path, preset("tiny"))
    signed = preset("tiny").override(["loss.gc_absolute=false"])
    assert resolve_run_config(tmp_path, signed).loss.gc_absolute is False
