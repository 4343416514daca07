"""Figures of the evaluation: the Dice box plots' reference groups."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mr2ct.evaluation import plots  # noqa: E402


def _rows(mean, n=6):
    rng = np.random.default_rng(int(mean * 100))
    return [{"dice_pelvis": mean + rng.normal(0, 0.02), "dice_femur": mean + rng.normal(0, 0.02)} for _ in range(n)]


def test_references_come_last_in_grey_after_a_dashed_line(tmp_path, monkeypatch):
    saved = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: saved.append(fig))
    groups = {"reference": _rows(0.9), "small": _rows(0.6), "large": _rows(0.8)}
    plots.dice_boxplots(groups, tmp_path / "fig5.png", references=("reference",))
    (fig,) = saved
    for ax in fig.axes:
        assert [t.get_text() for t in ax.get_xticklabels()] == ["small", "large", "reference"]
        faces = [patch.get_facecolor()[:3] for patch in ax.patches]
        assert faces[:2] == [(1.0, 1.0, 1.0)] * 2 and faces[2] == pytest.approx((0.8, 0.8, 0.8))
        dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
        assert len(dashed) == 1 and dashed[0].get_xdata()[0] == pytest.approx(2.5)
    plt.close(fig)
    saved.clear()
    plots.dice_boxplots({"small": _rows(0.6), "large": _rows(0.8)}, tmp_path / "plain.png")
    assert not [line for line in saved[0].axes[0].lines if line.get_linestyle() == "--"]
    plt.close(saved[0])
