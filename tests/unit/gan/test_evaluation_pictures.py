"""The evaluation pictures show what they measure: on the plane every mark has a legend entry,
high-quality points lie above the marks of their mode and every one of them is seen again in
the zoomed block, laid out as the modes lie; on the line the true density is drawn where it
is known."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from worker.gan.evaluation import EVAL_SAMPLES
from worker.gan.mode_coverage import QUALITY_STDS
from worker.gan.plots import SIGMA, _mode_cells, line_figure, plane_figure
from worker.gan.toydata import toy_distribution


def _legend_texts(figure) -> list[str]:  # type: ignore[no-untyped-def]
    legends = list(figure.legends) + [a.get_legend() for a in figure.axes if a.get_legend()]
    return [text.get_text() for legend in legends for text in legend.get_texts()]


def test_the_plane_names_every_mark_and_shows_each_high_quality_point_above_its_mode() -> None:
    ring = toy_distribution("toy:ring8")
    real = ring.sample(EVAL_SAMPLES, torch.Generator().manual_seed(4))
    off = torch.tensor([[0.0, 0.0], [0.5, 0.5]])  # off-mode, in the view
    far = torch.full((10, 2), 50.0)  # outside the view: counted, not dropped
    samples = torch.cat([real, off, far]).double()
    counts = torch.cdist(real.double(), ring.modes.double()).argmin(dim=1).bincount(minlength=8)
    metrics = {"modes_covered": 8, "mode_count": 8, "high_quality": 0.98,
               "kl_from_uniform": 0.01, "mode_counts": counts.tolist()}  # fmt: skip
    figure = plane_figure(samples, real, ring, metrics, 500, critic=lambda x: x[:, 0])
    try:
        legend = " | ".join(_legend_texts(figure))
        for mark in ("high quality", "off-mode", "mode centre", f"3{SIGMA} circle", "real data"):
            assert mark in legend, legend
        main, bar, zoom = figure.axes
        assert "discriminator logit" in bar.get_ylabel()
        assert main.get_xlabel() and main.get_ylabel() and zoom.get_xlabel()
        # The high-quality points are drawn above the circles and centre markers.
        (good,) = [c for c in main.collections if c.get_gid() == "high quality"]
        marks = [c for c in main.collections if c is not good] + list(main.lines)
        assert good.get_zorder() > max(m.get_zorder() for m in marks)
        # Each high-quality sample is drawn again in the zoomed block.
        (zoomed,) = [c for c in zoom.collections if c.get_gid() == "high quality"]
        distances = torch.cdist(real.double(), ring.modes.double()).min(dim=1).values
        high_quality = int((distances <= QUALITY_STDS * ring.std).sum())
        assert len(good.get_offsets()) == len(zoomed.get_offsets()) == high_quality > 2400
        title = " ".join(t.get_text() for t in figure.texts)
        assert "10 outside the view" in title and "8/8 modes" in title
    finally:
        plt.close(figure)


def test_zoomed_modes_lie_as_the_modes_do() -> None:
    ring, side = _mode_cells(toy_distribution("toy:ring8").modes.numpy())
    assert side == 3 and len(set(ring)) == 8 and (1, 1) not in ring  # round the centre
    assert ring[0] == (1, 2) and ring[2] == (0, 1)  # angle 0 on the right, 90° on top
    grid, side = _mode_cells(toy_distribution("toy:grid25").modes.numpy())
    assert side == 5 and len(set(grid)) == 25
    assert grid[4] == (0, 0)  # (-4, 4) is top left
    assert grid[20] == (4, 4)  # (4, -4) bottom right


def test_the_line_draws_the_true_density_where_it_is_known() -> None:
    line = toy_distribution("toy:gauss1d")
    samples = line.sample(EVAL_SAMPLES, torch.Generator().manual_seed(5)).double()
    real = line.sample(EVAL_SAMPLES, torch.Generator().manual_seed(6))
    known = line_figure(samples, real, None, {"w1": 0.01}, 100, line)
    unknown = line_figure(samples, real, None, {"w1": 0.01}, 100)
    try:
        assert any(t.startswith("true density N(3, 0.5²)") for t in _legend_texts(known))
        assert not any("histogram of" in t and "data" in t for t in _legend_texts(known))
        (truth,) = [x for x in known.axes[0].lines if x.get_label().startswith("true")]
        peak = float(np.max(truth.get_ydata()))
        assert abs(peak - 1 / (0.5 * np.sqrt(2 * np.pi))) < 0.01
        assert any(t.startswith("data: histogram") for t in _legend_texts(unknown))
        assert known.axes[0].get_ylabel().startswith("density")
    finally:
        plt.close(known)
        plt.close(unknown)
