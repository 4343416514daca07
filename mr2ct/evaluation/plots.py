"""PNG figures: box plots of metrics, montages of synthesized CT (axial and reformatted) and of label maps."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

LABELS = {
    "mi_mr_sct": "MI(MR, sCT) [nats]",
    "mi_ct_sct": "MI(CT, sCT) [nats]",
    "mi_ct_smr": "MI(CT, sMR) [nats]",
    "gc_abs_mr_sct": "GC(MR, sCT), absolute gradients",
    "gc_mr_sct": "GC(MR, sCT), signed (Sobel)",
    "mae_hu": "MAE [HU]",
    "me_hu": "mean error [HU]",
    "psnr_db": "PSNR [dB]",
    "ssim": "SSIM",
    "mae_bone_band_hu": "MAE near bone edges [HU]",
    "bone_dice": "bone Dice (> 250 HU)",
    "mi_mr_ct": "MI(MR, true CT) [nats], reference",
    "gc_mr_ct": "GC(MR, true CT), signed (Sobel), reference",
    "gc_abs_mr_ct": "GC(MR, true CT), absolute gradients, reference",
    "body_dice": "body outline Dice (> -500 HU)",
    "extent_ratio_lr": "body extent left-right, sCT / CT",
    "extent_ratio_ap": "body extent front-back, sCT / CT",
    "mae_through_plane_hu": "MAE of slice-to-slice steps [HU]",
    "mae_in_plane_hu": "MAE of row-to-row steps [HU]",
}


def _save(fig, path):
    tmp = f"{path}.partial.png"
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)


BOXPLOTS_PER_ROW = 7


def metric_boxplots(rows, path, groups=None, keys=None):
    """One box plot per metric; ``groups`` maps a group name to its rows (else one group).

    ``keys``: the metrics to show, in order. Defaults to every metric of
    ``LABELS`` that all rows have.
    """
    groups = groups or {"": rows}
    if keys is None:
        keys = [k for k in LABELS if all(k in r for rs in groups.values() for r in rs)]
    columns = min(len(keys), BOXPLOTS_PER_ROW)
    n_rows = -(-len(keys) // columns)
    fig, axes = plt.subplots(n_rows, columns, figsize=(3.0 * columns + 0.4 * len(groups), 3.4 * n_rows),
                             squeeze=False)
    for ax in axes.ravel()[len(keys):]:
        ax.axis("off")
    for ax, key in zip(axes.ravel(), keys):
        data = [[r[key] for r in rs if np.isfinite(r[key])] for rs in groups.values()]
        ax.boxplot(data, tick_labels=list(groups) if len(groups) > 1 else [""], showmeans=True)
        ax.set_title(LABELS.get(key, key), fontsize=9)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    fig.tight_layout()
    _save(fig, path)


def dice_boxplots(groups, path, keys=None, references=()):
    """Box plots of Dice per structure.

    ``groups`` maps a group name (e.g. a training condition) to its rows. One
    group: one panel with a box per structure. Several (the paper's Fig. 5):
    a panel per structure with a box per group.

    Args:
        groups: ``{name: rows}``; rows hold ``dice_<structure>`` values.
        path: the PNG file.
        keys: the ``dice_*`` columns to show. Defaults to every one the rows
            have, ``dice_mean`` last.
        references: names of ``groups`` that are references, not conditions
            (with several groups): drawn in grey, after a dashed line.
            Defaults to `()`.
    """
    rows = [r for rs in groups.values() for r in rs]
    if keys is None:
        keys = [k for k in dict.fromkeys(k for r in rows for k in r) if k.startswith("dice_") and k != "dice_mean"]
        keys += ["dice_mean"] if any("dice_mean" in r for r in rows) else []
    titles = [k.removeprefix("dice_").replace("_", " ") for k in keys]

    def values(rs, key):
        return [r[key] for r in rs if key in r and np.isfinite(r[key])]

    if len(groups) == 1:
        (rs,) = groups.values()
        fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(keys), 3.6))
        ax.boxplot([values(rs, k) for k in keys], tick_labels=titles, showmeans=True)
        ax.set_ylabel("Dice")
        ax.set_ylim(-0.02, 1.02)
        ax.tick_params(axis="x", labelrotation=60, labelsize=8)
    else:
        fig, axes = plt.subplots(1, len(keys), figsize=(0.7 + (0.55 * len(groups) + 0.6) * len(keys), 3.6),
                                 squeeze=False)
        names = [n for n in groups if n not in references] + [n for n in groups if n in references]
        for ax, key, title in zip(axes[0], keys, titles):
            boxes = ax.boxplot([values(groups[n], key) for n in names], tick_labels=names, showmeans=True,
                               patch_artist=True)
            for name, box in zip(names, boxes["boxes"]):
                box.set_facecolor("0.8" if name in references else "white")
            if any(n in references for n in names) and len(names) > len(references):
                ax.axvline(len(names) - len(references) + 0.5, color="0.5", linestyle="--", linewidth=0.8)
            ax.set_title(f"Dice: {title}", fontsize=9)
            ax.set_ylim(-0.02, 1.02)
            ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    fig.tight_layout()
    _save(fig, path)


# Where the montage's slices sit in the MR slab (fraction of its slices from the first): the middle
# (femoral heads and acetabula on a hip MR) and higher up (the sacrum and the iliac wings).
MONTAGE_SLICES = (0.5, 0.85)


def synthesis_montage(examples, path, slices=MONTAGE_SLICES):
    """Rows of MR | synthesized CT | ground-truth CT | error, one per subject and slice.

    ``slices``: positions in the slab, as fractions of its slice count.
    Defaults to `MONTAGE_SLICES` (the middle and a cranial slice).
    """
    columns = 4 if any(e[3] is not None for e in examples) else 2
    rows = [(subject, mr, sct, ct, min(mr.shape[0] - 1, int(round(f * (mr.shape[0] - 1)))))
            for subject, mr, sct, ct in examples for f in slices]
    fig, axes = plt.subplots(len(rows), columns, figsize=(2.6 * columns, 2.6 * len(rows)), squeeze=False)
    for row, (subject, mr, sct, ct, k) in zip(axes, rows):
        panels = [(mr[k], "MR", "gray", None), (sct[k], "synthesized CT", "gray", (-250, 750))]
        if columns == 4:
            panels += [(ct[k] if ct is not None else np.zeros_like(mr[k]), "ground-truth CT", "gray", (-250, 750)),
                       ((sct[k] - ct[k]) if ct is not None else np.zeros_like(mr[k]), "sCT - CT [HU]", "coolwarm", (-500, 500))]
        for ax, (image, title, cmap, window) in zip(row, panels):
            kwargs = {} if window is None else {"vmin": window[0], "vmax": window[1]}
            shown = ax.imshow(image, cmap=cmap, **kwargs)
            ax.set_title(f"{subject} slice {k}: {title}" if title == "MR" else title, fontsize=8)
            ax.axis("off")
            if cmap == "coolwarm":
                fig.colorbar(shown, ax=ax, fraction=0.046)
    fig.tight_layout()
    _save(fig, path)


def _reformat_planes(ct):
    """``(row, column)``: the coronal row and the sagittal column with the most bone (> 250 HU) of ``ct``,
    the column searched in the half of the columns that holds more bone (one femoral head, not the midline)."""
    bone = np.asarray(ct) > 250
    row = int(np.argmax(bone.sum(axis=(0, 2))))
    columns = bone.sum(axis=(0, 1))
    half = columns.size // 2
    lo, hi = (0, half) if columns[:half].sum() >= columns[half:].sum() else (half, columns.size)
    return row, lo + int(np.argmax(columns[lo:hi]))


def reformat_montage(examples, path):
    """Coronal and sagittal reformats of each subject: MR | synthesized CT | ground-truth CT.

    The planes pass through the true CT's bone (the femoral heads and, in the sagittal plane, one hip), where
    slice-to-slice disagreement of a slice-by-slice synthesis shows as horizontal stripes.

    Args:
        examples: ``(subject, mr, sct, ct, spacing)`` per subject, volumes ``[k, j, i]`` on the MR grid,
            ``spacing`` in ``(i, j, k)`` order (mm), for the aspect ratio.
        path: the PNG file.
    """
    rows = []
    for subject, mr, sct, ct, spacing in examples:
        j, i = _reformat_planes(ct)
        rows.append((subject, f"coronal row {j}", lambda v, j=j: v[:, j, :], spacing[2] / spacing[0]))
        rows[-1] += (mr, sct, ct)
        rows.append((subject, f"sagittal column {i}", lambda v, i=i: v[:, :, i], spacing[2] / spacing[1]))
        rows[-1] += (mr, sct, ct)
    # each panel 3 inches wide; its height follows the plane's extent in mm, plus room for the title
    heights = [3.0 * cut(mr).shape[0] * aspect / cut(mr).shape[1] + 0.35 for _, _, cut, aspect, mr, _, _ in rows]
    fig, axes = plt.subplots(len(rows), 3, figsize=(9.0, sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for row, (subject, plane, cut, aspect, mr, sct, ct) in zip(axes, rows):
        panels = [(mr, f"{subject} {plane}: MR", None), (sct, "synthesized CT", (-250, 750)),
                  (ct, "ground-truth CT", (-250, 750))]
        for ax, (volume, title, window) in zip(row, panels):
            kwargs = {} if window is None else {"vmin": window[0], "vmax": window[1]}
            # slice 0 is the most inferior of an LPS slab: drawn at the bottom
            ax.imshow(cut(volume), cmap="gray", origin="lower", aspect=aspect, interpolation="nearest", **kwargs)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    _save(fig, path)


def segmentation_montage(examples, path, slices=MONTAGE_SLICES):
    """Rows of MR | predicted labels | true labels, one per subject and slice.

    The labels are drawn over the MR in the colours of
    :func:`mr2ct.labels.label_colours`; a legend names the structures shown.

    Args:
        examples: ``(subject, mr, predicted labels, true labels)`` per
            subject, volumes ``[k, j, i]`` on the MR grid.
        path: the PNG file.
        slices: positions in the slab, as fractions of its slice count.
            Defaults to `MONTAGE_SLICES`.
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from mr2ct.labels import LABELS, NUM_CLASSES, label_colours

    colours = label_colours()
    style = {"cmap": ListedColormap(colours), "vmin": 0, "vmax": NUM_CLASSES - 1, "interpolation": "nearest",
             "alpha": 0.6}
    rows = [(subject, mr, predicted, truth, min(mr.shape[0] - 1, int(round(f * (mr.shape[0] - 1)))))
            for subject, mr, predicted, truth in examples for f in slices]
    fig, axes = plt.subplots(len(rows), 3, figsize=(7.8, 2.6 * len(rows)), squeeze=False)
    shown = set()
    for row, (subject, mr, predicted, truth, k) in zip(axes, rows):
        for ax, labels, title in zip(row, (None, predicted, truth),
                                     (f"{subject} slice {k}: MR", "predicted labels", "true labels")):
            ax.imshow(mr[k], cmap="gray")
            if labels is not None:
                ax.imshow(np.ma.masked_equal(labels[k], 0), **style)
                shown.update(int(v) for v in np.unique(labels[k]) if v)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    handles = [Patch(color=colours[v], label=LABELS[v].replace("_", " ")) for v in sorted(shown)]
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=7, frameon=False,
                   bbox_to_anchor=(0.5, -0.02 - 0.012 * ((len(handles) + 3) // 4)))
    fig.tight_layout()
    _save(fig, path)


def condition_montage(subject, mr, ct, labels, conditions, path):
    """The middle slice of one subject: synthesized CT and labels of each condition next to the truth.

    Top row: MR, then the synthesized CT of each condition, then the ground-truth
    CT. Bottom row: the ground-truth labels, then each condition's labels.

    Args:
        subject: the subject's name (a title).
        mr: MR volume ``[k, j, i]``.
        ct: ground-truth CT on the MR grid (HU).
        labels: ground-truth labels on the MR grid.
        conditions: ``{name: (synthesized CT, labels)}`` on the MR grid.
        path: the PNG file.
    """
    from matplotlib.colors import ListedColormap

    from mr2ct.labels import NUM_CLASSES, label_colours

    k = mr.shape[0] // 2
    columns = len(conditions) + 2
    fig, axes = plt.subplots(2, columns, figsize=(2.3 * columns, 4.9), squeeze=False)
    colours = ListedColormap(label_colours())
    window = {"cmap": "gray", "vmin": -250, "vmax": 750}
    label_style = {"cmap": colours, "vmin": 0, "vmax": NUM_CLASSES - 1, "interpolation": "nearest"}

    def show(ax, image, title, **kwargs):
        if image is not None:
            ax.imshow(image, **kwargs)
        ax.set_title(title, fontsize=8)
        ax.axis("off")

    show(axes[0, 0], mr[k], f"{subject}: MR", cmap="gray")
    show(axes[1, 0], mr[k], "labels (truth)", cmap="gray")
    axes[1, 0].imshow(labels[k], **label_style)
    for column, (name, (sct, predicted)) in enumerate(conditions.items(), 1):
        show(axes[0, column], sct[k], f"sCT: {name}", **window)
        show(axes[1, column], mr[k], f"labels: {name}", cmap="gray")
        axes[1, column].imshow(predicted[k], **label_style)
    show(axes[0, -1], ct[k], "CT (truth)", **window)
    show(axes[1, -1], None, "")
    fig.tight_layout()
    _save(fig, path)


def training_curves(runs, path, panels, smooth=5):
    """Training losses over the steps, one panel per loss and one line per run.

    Args:
        runs: ``{name: {tag: (steps, values)}}``, as :func:`mr2ct.evaluation.scalars.read_scalars` gives.
        path: the PNG file.
        panels: ``[(tag, title)]``, the losses to show; a run without a tag has no line in that panel.
        smooth: width of the running mean drawn over the summaries (1: raw). Defaults to `5`.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.2), squeeze=False)
    for ax, (tag, title) in zip(axes[0], panels):
        for index, (name, scalars) in enumerate(runs.items()):
            if tag not in scalars or not len(scalars[tag][0]):
                continue
            steps, values = scalars[tag]
            width = max(1, min(int(smooth), len(values)))
            mean = np.convolve(values, np.ones(width) / width, mode="valid")
            # one colour per run in every panel, also where runs before it have no line
            ax.plot(steps[width - 1:], mean, label=name, linewidth=1.2, color=f"C{index % 10}")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    for ax in axes[0, 1:]:
        for h, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(h)
                labels.append(label)
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.1 if handles else 0, 1, 1))
    _save(fig, path)
