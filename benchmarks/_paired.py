"""What the benchmarks share: a registered true CT sent through exactly the slices a synthesized CT is made on."""

from __future__ import annotations


def true_ct_slices(ct_on_mr_grid, mr_record, config):
    """The true CT (on the MR's grid, in HU) on the MR's network slices, in [-1, 1].

    Same path as the MR: the MR's framing crop (``mr_record`` from
    ``preprocess_mr``), resampling to ``config.image_size``, then the CT window.
    """
    from mr2ct.data.framing import crop_box
    from mr2ct.data.intensity import CTIntensity
    from mr2ct.data.preprocess import resample_slices

    truth = ct_on_mr_grid
    framing = mr_record["framing"]
    if framing is not None:
        truth = crop_box(truth, framing["crop_start_ijk"], framing["crop_size_ijk"], -1000.0)
    small, _ = resample_slices(truth, config.image_size, order=1)
    return CTIntensity(config.ct_hu_min, config.ct_hu_max).forward(small.array)
