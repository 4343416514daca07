import json
import shutil

import numpy as np
import pytest

from seg_fixtures import cyclegan_run, prepared_folders, segmentation_run

from mr2ct.config import preset
from mr2ct.errors import ConfigError, InputError, Mr2ctError
from mr2ct.training.segmentation import CYCLEGAN_FILE, load_segmentation_run, train_segmentation
from mr2ct.training.synthesized_cache import CACHE_DIR, CACHE_FILE


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    gan_dir, gan_model = cyclegan_run(tmp_path_factory)
    labelled, unlabelled = prepared_folders(tmp_path_factory)
    return gan_dir, gan_model, labelled, unlabelled


def assert_same_values(variables_a, variables_b):
    for a, b in zip(variables_a, variables_b, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_trains_checkpoints_and_resumes(folders, tmp_path_factory, tmp_path):
    gan_dir, gan_model, labelled, _ = folders
    # The shared run stopped at step 2 (train_segmentation(..., max_steps=2)); resume a copy.
    run_dir = tmp_path / "seg"
    shutil.copytree(segmentation_run(tmp_path_factory, steps=2), run_dir)
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "checkpoints", "config.yaml", CYCLEGAN_FILE, "logs", "preprocessing.json", "status.json", CACHE_DIR]
    cache_record = run_dir / CACHE_DIR / CACHE_FILE
    made = cache_record.stat().st_mtime_ns
    link = json.loads((run_dir / CYCLEGAN_FILE).read_text())
    assert link["run"] == str(gan_dir) and link["step"] == 7
    assert link["config"] == preset("tiny").to_dict()  # a new run without config: the CycleGAN's
    assert json.loads((run_dir / "status.json").read_text())["step"] == 2
    at_2 = load_segmentation_run(run_dir)
    assert at_2.step == 2

    result = train_segmentation(None, labelled, run_dir, max_steps=4, progress=False)
    assert (result.resumed_from, result.step, result.finished) == (2, 4, False)
    at_4 = load_segmentation_run(run_dir)
    assert at_4.step == 4
    changed = [not np.array_equal(a.numpy(), b.numpy())
               for a, b in zip(at_2.model.unet.trainable_variables, at_4.model.unet.trainable_variables)]
    assert all(changed)
    assert cache_record.stat().st_mtime_ns == made  # the resume reused the cache
    # The generators are frozen copies of the CycleGAN run's.
    assert_same_values(at_4.model.generator_mr_to_ct.weights, gan_model.generator_mr_to_ct.weights)
    assert_same_values(at_4.model.generator_ct_to_mr.weights, gan_model.generator_ct_to_mr.weights)


def tiny(**overrides):
    return preset("tiny").override([f"{k}={v}" for k, v in overrides.items()])


# what is wrong, call arguments (names of the folders fixture or tmp paths), error, words in its message
REFUSALS = [
    ("no labels", dict(data="unlabelled"), InputError, "no labelled CT"),
    ("config size", dict(config=tiny(**{"data.image_size": 64})), ConfigError, "CycleGAN works on 32x32"),
    ("missing run", dict(gan="missing"), InputError, "CycleGAN run folder not found"),
    ("no run given", dict(gan=None), InputError, "give the CycleGAN run folder"),
    ("not a run", dict(gan="labelled"), InputError, "no config.yaml"),
    ("no data", dict(data="missing"), InputError, "manifest.json: missing"),
]


@pytest.mark.parametrize("name, args, error, words", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refuses_unusable_inputs_before_writing(folders, tmp_path, name, args, error, words):
    gan_dir, _, labelled, unlabelled = folders
    paths = {"labelled": labelled, "unlabelled": unlabelled, "missing": tmp_path / "missing", None: None}
    run_dir = tmp_path / "seg"
    with pytest.raises(error, match=words):
        train_segmentation(paths[args["gan"]] if "gan" in args else gan_dir,
                           paths[args.get("data", "labelled")], run_dir, config=args.get("config"), progress=False)
    assert not run_dir.exists()


def test_refuses_data_of_another_size(folders, tmp_path):
    gan_dir, _, labelled, _ = folders
    data = tmp_path / "data"
    shutil.copytree(labelled, data)
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["image_size"] = 64
    (data / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="prepared at 64x64"):
        train_segmentation(gan_dir, data, tmp_path / "seg", progress=False)


def test_refuses_another_cyclegan_run_or_a_cyclegan_folder_on_resume(folders, tmp_path_factory, tmp_path):
    gan_dir, _, labelled, _ = folders
    seg_dir = segmentation_run(tmp_path_factory, steps=2)
    other = tmp_path / "other_gan"
    shutil.copytree(gan_dir, other)
    with pytest.raises(Mr2ctError, match="started behind the CycleGAN run"):
        train_segmentation(other, labelled, seg_dir, progress=False)
    with pytest.raises(InputError, match="not a segmentation run"):
        train_segmentation(seg_dir, labelled, other, progress=False)
    with pytest.raises(InputError, match="not a segmentation run folder"):
        load_segmentation_run(gan_dir)


def test_refuses_a_segmentation_run_given_as_the_cyclegan_run(folders, tmp_path_factory, tmp_path):
    _, _, labelled, _ = folders
    seg_dir = segmentation_run(tmp_path_factory, steps=2)
    run_dir = tmp_path / "seg"
    with pytest.raises(InputError, match=f"{seg_dir}: this is a segmentation run; give the CycleGAN run"):
        train_segmentation(seg_dir, labelled, run_dir, progress=False)
    assert not run_dir.exists()


def test_a_new_run_behind_an_older_cyclegan_run_takes_todays_segmentation_defaults(folders, tmp_path):
    """A CycleGAN run written before ``segmentation.dice_classes`` never used that section: a new segmentation
    run that takes its config gets today's soft Dice, while the CycleGAN's own predated keys keep their
    legacy values."""
    import yaml

    from mr2ct.training.segmentation import read_cyclegan_run

    gan_dir, _, _, _ = folders
    old = tmp_path / "old_gan"
    shutil.copytree(gan_dir, old)
    values = yaml.safe_load((old / "config.yaml").read_text())
    del values["segmentation"]["dice_classes"]
    del values["runtime"]["batch_per_replica"]
    (old / "config.yaml").write_text(yaml.safe_dump(values))
    config = read_cyclegan_run(old).config
    assert config.segmentation.dice_classes == "present"
    assert config.runtime.batch_per_replica is False
