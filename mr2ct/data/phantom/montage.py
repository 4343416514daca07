"""A PNG montage of phantom subjects: mid slices of MR, CT and their labels."""

from __future__ import annotations

import os
import tempfile

import numpy as np

from mr2ct.data.phantom.subjects import PhantomSubject
from mr2ct.data.volume import Volume
from mr2ct.labels import LABELS, NUM_CLASSES, label_colours


def _world_to_index(volume: Volume, point) -> np.ndarray:
    """Continuous (k, j, i) index of a world point."""
    ijk = np.linalg.solve(volume.direction @ np.diag(volume.spacing), np.asarray(point) - volume.origin)
    return ijk[::-1]


def _montage_slices(subject: PhantomSubject) -> dict:
    """The few 2D images the montage shows for one subject."""
    k_mid = subject.mr.shape[0] // 2
    centre_world = np.asarray(subject.mr.origin) + subject.mr.direction @ (
        np.array([0, 0, k_mid]) * np.asarray(subject.mr.spacing))
    k_ct = int(round(_world_to_index(subject.ct, centre_world)[0]))
    k_ct = min(max(k_ct, 0), subject.ct.shape[0] - 1)
    head = np.asarray(subject.parameters.body_position)
    j_ct = int(round(_world_to_index(subject.ct, head)[1]))
    j_ct = min(max(j_ct, 0), subject.ct.shape[1] - 1)
    k_hi = min(subject.mr.shape[0] - 1, k_mid + max(1, subject.mr.shape[0] // 4))
    return {
        "id": subject.subject_id,
        "mr": subject.mr.array[k_mid],
        "mr_upper": subject.mr.array[k_hi],
        "ct_on_mr": subject.ct_on_mr_grid.array[k_mid],
        "labels": subject.labels_mr.array[k_mid],
        "ct": subject.ct.array[k_ct],
        "ct_labels": subject.labels_ct.array[k_ct],
        "ct_coronal": subject.ct.array[:, j_ct, :],
        "mr_spacing": subject.mr.spacing,
        "ct_spacing": subject.ct.spacing,
    }


def write_montage(slices: list, path: str | os.PathLike) -> str:
    """Write a PNG of mid slices (MR, CT on the MR grid, labels, CT, CT coronal) per subject.

    Args:
        slices: per subject, the dictionary made by the data set writer.
        path: the PNG file.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import pyplot as plt
    from matplotlib.patches import Patch

    path = os.fspath(path)
    colours = label_colours()
    columns = ["MR (mid slice)", "MR (upper slice)", "CT on MR grid", "labels on MR", "CT (same level)",
               "labels on CT", "CT coronal"]
    rows = len(slices)
    fig, axes = plt.subplots(rows, len(columns), figsize=(2.6 * len(columns), 2.7 * rows + 1.2), squeeze=False)
    for r, s in enumerate(slices):
        mr_aspect = s["mr_spacing"][1] / s["mr_spacing"][0]
        ct_aspect = s["ct_spacing"][1] / s["ct_spacing"][0]
        vmax = float(np.percentile(s["mr"], 99.5)) or 1.0
        panels = [
            (s["mr"], dict(cmap="gray", vmin=0, vmax=vmax, aspect=mr_aspect)),
            (s["mr_upper"], dict(cmap="gray", vmin=0, vmax=vmax, aspect=mr_aspect)),
            (s["ct_on_mr"], dict(cmap="gray", vmin=-250, vmax=750, aspect=mr_aspect)),
            (s["mr"], dict(cmap="gray", vmin=0, vmax=vmax, aspect=mr_aspect)),
            (s["ct"], dict(cmap="gray", vmin=-250, vmax=750, aspect=ct_aspect)),
            (s["ct"], dict(cmap="gray", vmin=-250, vmax=750, aspect=ct_aspect)),
            (s["ct_coronal"][::-1], dict(cmap="gray", vmin=-250, vmax=750,
                                         aspect=s["ct_spacing"][2] / s["ct_spacing"][0])),
        ]
        for c, (image, kwargs) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(image, interpolation="nearest", **kwargs)
            if c == 3:
                ax.imshow(colours[s["labels"]], interpolation="nearest", alpha=0.55, aspect=mr_aspect)
            if c == 5:
                ax.imshow(colours[s["ct_labels"]], interpolation="nearest", alpha=0.55, aspect=ct_aspect)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c], fontsize=9)
        axes[r, 0].set_ylabel(s["id"], fontsize=9)
    handles = [Patch(color=colours[v], label=f"{v} {LABELS[v]}") for v in range(1, NUM_CLASSES)]
    fig.legend(handles=handles, loc="lower center", ncol=6, fontsize=7, frameon=False)
    fig.text(0.01, 0.005, "axial: anterior up, patient's left on the right; CT window [-250, 750] HU",
             fontsize=7)
    fig.tight_layout(rect=(0, 0.09, 1, 1))
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".png", dir=folder)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
