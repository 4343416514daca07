"""PNG figures: box plots of metrics and montages of synthesized CT."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

LABELS = {
    "mi_mr_sct": "MI(MR, sCT) [nats]",
    "mi_ct_sct": "MI(CT, sCT) [nats]",
    "gc_mr_sct": "GC(MR, sCT)",
    "mae_hu": "MAE [HU]",
    "me_hu": "mean error [HU]",
    "psnr_db": "PSNR [dB]",
    "ssim": "SSIM",
    "mae_bone_band_hu": "MAE near bone edges [HU]",
}


def _save(fig, path):
    tmp = f"{path}.partial.png"
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)


def metric_boxplots(rows, path, groups=None):
    """One box plot per metric; ``groups`` maps a group name to its rows (else one group)."""
    groups = groups or {"": rows}
    keys = [k for k in LABELS if all(k in r for rs in groups.values() for r in rs)]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.0 * len(keys), 3.4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        data = [[r[key] for r in rs if np.isfinite(r[key])] for rs in groups.values()]
        ax.boxplot(data, tick_labels=list(groups) if len(groups) > 1 else [""], showmeans=True)
        ax.set_title(LABELS[key], fontsize=9)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    fig.tight_layout()
    _save(fig, path)


def synthesis_montage(examples, path):
    """Rows of MR | synthesized CT | ground-truth CT | error at the middle slice."""
    columns = 4 if any(e[3] is not None for e in examples) else 2
    fig, axes = plt.subplots(len(examples), columns, figsize=(2.6 * columns, 2.6 * len(examples)), squeeze=False)
    for row, (subject, mr, sct, ct) in zip(axes, examples):
        k = mr.shape[0] // 2
        panels = [(mr[k], "MR", "gray", None), (sct[k], "synthesized CT", "gray", (-250, 750))]
        if columns == 4:
            panels += [(ct[k] if ct is not None else np.zeros_like(mr[k]), "ground-truth CT", "gray", (-250, 750)),
                       ((sct[k] - ct[k]) if ct is not None else np.zeros_like(mr[k]), "sCT - CT [HU]", "coolwarm", (-500, 500))]
        for ax, (image, title, cmap, window) in zip(row, panels):
            kwargs = {} if window is None else {"vmin": window[0], "vmax": window[1]}
            shown = ax.imshow(image, cmap=cmap, **kwargs)
            ax.set_title(f"{subject}: {title}" if title == "MR" else title, fontsize=8)
            ax.axis("off")
            if cmap == "coolwarm":
                fig.colorbar(shown, ax=ax, fraction=0.046)
    fig.tight_layout()
    _save(fig, path)
