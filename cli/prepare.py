"""``mr2ct prepare``: volumes to TFRecord slices, as in the paper's section 2.1."""

from __future__ import annotations

import warnings

import click

from .main import friendly_errors


@click.command()
@click.option("--mr", "mr_dir", type=click.Path(file_okay=False), default=None,
              help="Folder of MR volumes (NIfTI, NRRD, MHA, or DICOM series folders).")
@click.option("--ct", "ct_dir", type=click.Path(file_okay=False), default=None,
              help="Folder of CT volumes in HU.")
@click.option("--labels", "labels_dir", type=click.Path(file_okay=False), default=None,
              help="Label volumes of the CT subjects (same file names).")
@click.option("--mr-labels", "mr_labels_dir", type=click.Path(file_okay=False), default=None,
              help="Label volumes of the MR subjects (for evaluation).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder; a rerun skips finished volumes.")
@click.option("--preset", type=click.Choice(["paper", "cpu", "tiny"]), default="paper", show_default=True,
              help="Slice size and preprocessing of this training preset.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="YAML config file (instead of a preset); its data and prepare sections are used.")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override one setting, e.g. --set prepare.fov_mm=360 or --set prepare.slab_center=body. "
                   "Repeatable.")
@click.option("--image-size", type=click.IntRange(min=16), default=None,
              help="Slice size (overrides the preset; the same as --set data.image_size=N).")
@click.option("--no-n4", is_flag=True, help="Skip N4 bias-field correction of MR.")
@click.option("--no-crop", is_flag=True, help="Do not crop CT to an MR-like field of view.")
@click.option("--skip-bad", is_flag=True, help="Skip unreadable or invalid volumes (listed in the manifest).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Volumes preprocessed in parallel (default: CPU cores).")
@friendly_errors
def prepare(mr_dir, ct_dir, labels_dir, mr_labels_dir, out_dir, preset, config_file, overrides, image_size, no_n4,
            no_crop, skip_bad, workers):
    """Preprocess MR and CT volumes into training slices.

    MR: N4 bias correction, framing on the body, resampling to SxS slices,
    percentile scaling. CT: crop to an MR-like field of view and slab,
    resampling, HU window to [-1, 1]. Every setting is in the config's
    prepare section (fov_mm, slab_mm, slab_center, n4, n4_shrink_factor,
    n4_iterations, crop_ct, frame_mr, ct_hu_min, ct_hu_max,
    mr_lower_percentile, mr_upper_percentile) and data.image_size; the
    manifest records what was used. Writes OUT/records/{mr,ct}/*.tfrecord and
    OUT/manifest.json.
    """
    from mr2ct.config import Config
    from mr2ct.config import preset as load_preset
    from mr2ct.data.prepare import prepare_dataset
    from mr2ct.training.builders import build_preprocess_config

    config = Config.from_yaml(config_file) if config_file else load_preset(preset)
    config = config.override(list(overrides))
    if image_size is not None:
        config = config.override([f"data.image_size={image_size}"])
    if no_n4:
        config.prepare.n4 = False
    if no_crop:
        config.prepare.crop_ct = False
    bar = None

    def progress(done, total, subject):
        nonlocal bar
        if bar is None:
            bar = click.progressbar(length=total, label="preparing volumes", show_pos=True, show_eta=True)
            bar.__enter__()
            bar.update(done)
        elif subject is not None:
            bar.update(1)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            manifest = prepare_dataset(
                out_dir, mr_dir=mr_dir, ct_dir=ct_dir, labels_dir=labels_dir, mr_labels_dir=mr_labels_dir,
                config=build_preprocess_config(config), skip_bad=skip_bad, workers=workers, progress=progress,
            )
        finally:
            if bar is not None:
                bar.__exit__(None, None, None)
    for warning in caught:
        click.echo(f"warning: {warning.message}", err=True)
    counts = manifest["counts"]
    click.echo(
        f"prepared {counts['mr_volumes']} MR volumes ({counts['mr']} slices) and "
        f"{counts['ct_volumes']} CT volumes ({counts['ct']} slices, {counts['ct_labelled']} labelled) "
        f"at {manifest['image_size']}x{manifest['image_size']} in {out_dir}"
        + (f"; skipped {len(manifest['skipped'])}" if manifest["skipped"] else "")
    )
