"""The evaluation report's figures (core: matplotlib's object API and Agg canvas only).

Never ``pyplot``: figures are ``matplotlib.figure.Figure`` drawn on a
``FigureCanvasAgg``, so no GUI backend is chosen and nothing is kept between calls.
Every ``draw_*`` function draws on axes it is given, so that :func:`overview_figure`
reuses them on one sheet.
"""

from __future__ import annotations

import io
import math
import textwrap

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100
ENSEMBLE_COLOUR = "#1f4e9c"
MEMBER_COLOURS = ("#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f")
ABSENT_COLOUR = "#9a9a9a"


def new_figure(w: float, h: float, layout: str | None = "constrained") -> Figure:
    fig = Figure(figsize=(w, h), dpi=DPI, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def png(fig: Figure, dpi: int = DPI) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white", bbox_inches="tight", pad_inches=0.15)
    return buf.getvalue()


def rgba(fig: Figure) -> np.ndarray:
    fig.set_facecolor("white")
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba()).copy()


def _grey_absent_ticks(labels, absent) -> None:
    for label, a in zip(labels, absent):
        if a:
            label.set_color(ABSENT_COLOUR)
            label.set_fontstyle("italic")


# --------------------------------------------------------------------------- per-class F1


def draw_f1(ax, nums, fontsize: float = 9) -> None:
    series = list(nums.f1)
    n, k = len(nums.names), len(series)
    height = 0.84 / k
    y = np.arange(n)
    for s, name in enumerate(series):
        f = np.nan_to_num(nums.f1[name], nan=0.0)
        colour = ENSEMBLE_COLOUR if s == 0 else MEMBER_COLOURS[(s - 1) % len(MEMBER_COLOURS)]
        label = f"{name}: macro F1 {nums.macro[name]:.3f}"
        pos = y - 0.42 + height * (s + 0.5)
        ax.barh(pos, f, height=height, color=colour, label=label, edgecolor="none", zorder=3 if s == 0 else 2)
        for c in np.flatnonzero((nums.f1[name] == 0) & ~nums.absent):  # a true class never found
            ax.text(0.004, pos[c], "0", va="center", ha="left", color=colour, fontsize=fontsize - 2.5,
                    fontweight="bold")
    if np.isfinite(nums.macro["ensemble"]):
        ax.axvline(nums.macro["ensemble"], color=ENSEMBLE_COLOUR, ls="--", lw=1, zorder=4)
    for c in np.flatnonzero(nums.absent):
        ax.text(0.01, c, "absent from the data", va="center", ha="left", color=ABSENT_COLOUR,
                fontsize=fontsize - 1, fontstyle="italic")
    ax.set_yticks(y, nums.names, fontsize=fontsize)
    _grey_absent_ticks(ax.get_yticklabels(), nums.absent)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1", fontsize=fontsize)
    ax.tick_params(axis="x", labelsize=fontsize)
    ax.xaxis.grid(True, color="#e4e4e4", zorder=0)
    ax.set_axisbelow(True)
    ax.set_title("Per-class F1 (ensemble thresholds)", fontsize=fontsize + 2)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.045),
              ncol=2, fontsize=fontsize - 1, frameon=False, title="dashed: the ensemble's macro F1",
              title_fontsize=fontsize - 1)


def f1_figure(nums) -> Figure:
    k = len(nums.f1)
    fig = new_figure(9.5, max(7.0, 28 * (0.12 + 0.07 * k)))
    draw_f1(fig.add_subplot(), nums)
    return fig


# --------------------------------------------------------------------------- precision-recall


def pr_figure(nums, cols: int = 7) -> Figure:
    n = len(nums.names)
    rows = math.ceil(n / cols)
    fig = new_figure(2.25 * cols, 2.35 * rows, layout=None)  # 28 panels: a fixed layout draws faster
    axes = fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False,
                        gridspec_kw=dict(left=0.05, right=0.99, bottom=0.06, top=0.91, hspace=0.42, wspace=0.1))
    for c, ax in enumerate(axes.flat):
        if c >= n:
            ax.set_visible(False)
            continue
        ax.set_title("\n".join(textwrap.wrap(nums.names[c], 22)) if len(nums.names[c]) > 22
                     else nums.names[c], fontsize=8.5,
                     color=ABSENT_COLOUR if nums.absent[c] else "black")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.05)
        ax.grid(True, color="#ececec")
        ax.tick_params(labelsize=7.5)
        pr = nums.pr[c]
        if pr is None:
            ax.text(0.5, 0.5, "absent from\nthe data", ha="center", va="center", fontsize=9,
                    color=ABSENT_COLOUR, fontstyle="italic", transform=ax.transAxes)
            ax.set_facecolor("#f6f6f6")
            continue
        ax.axhline(nums.positives[c] / nums.n_images, color="#bbbbbb", lw=0.8)
        ax.step(pr.recall, pr.precision, where="post", color=ENSEMBLE_COLOUR, lw=1.3)
        ax.plot(*pr.point, "o", color="#d62728", ms=5, zorder=5)
        ax.text(0.04, 0.3, f"AP {pr.average_precision:.2f}\nt {pr.threshold:.2f}", fontsize=7.5,
                transform=ax.transAxes, va="bottom",
                bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none", alpha=0.85))
    for ax in axes[-1]:
        ax.set_xlabel("recall", fontsize=8.5)
    for ax in axes[:, 0]:
        ax.set_ylabel("precision", fontsize=8.5)
    fig.suptitle("Precision-recall per class (dot: the ensemble's threshold t)", fontsize=12)
    return fig


# --------------------------------------------------------------------------- calibration


def draw_reliability(ax, ax_counts, rel, fontsize: float = 9) -> None:
    width = np.diff(rel.edges)
    centres = rel.edges[:-1] + width / 2
    ok = rel.counts > 0
    ax.plot([0, 1], [0, 1], "--", color="#888888", lw=1, label="calibrated")
    ax.bar(rel.edges[:-1][ok], rel.frequency[ok], width=width[ok], align="edge", color="#9fb8e0",
           edgecolor=ENSEMBLE_COLOUR, lw=0.8, label="observed frequency")
    ax.plot(rel.confidence[ok], rel.frequency[ok], "o-", color=ENSEMBLE_COLOUR, ms=4,
            label="at the bin's mean probability")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.04)
    ax.set_ylabel("observed frequency", fontsize=fontsize)
    ax.tick_params(labelsize=fontsize, labelbottom=False)
    ax.set_title(f"Reliability over all (image, class) pairs: ECE {rel.ece:.4f}", fontsize=fontsize + 2)
    ax.legend(loc="upper left", fontsize=fontsize - 1)
    ax_counts.bar(centres, np.maximum(rel.counts, 0), width=width * 0.9, color="#888888")
    ax_counts.set_yscale("log")
    ax_counts.set_ylim(0.8, max(10, rel.counts.max()) * 3)
    for x, n in zip(centres, rel.counts):
        ax_counts.text(x, max(n, 1) * 1.15, f"{n:,}", ha="center", va="bottom", fontsize=fontsize - 2)
    ax_counts.set_xlim(0, 1)
    ax_counts.set_xlabel("predicted probability", fontsize=fontsize)
    ax_counts.set_ylabel("pairs", fontsize=fontsize)
    ax_counts.tick_params(labelsize=fontsize)


def reliability_figure(rel) -> Figure:
    fig = new_figure(7.0, 7.0)
    ax, axc = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    draw_reliability(ax, axc, rel)
    return fig


# --------------------------------------------------------------------------- co-occurrence confusion


def draw_confusion(ax, nums, fontsize: float = 8, names_on_x: bool = False, aspect="equal"):
    m = nums.confusion.copy()
    n = len(m)
    np.fill_diagonal(m, np.nan)
    vmax = max(0.05, float(np.nanmax(m)) if np.isfinite(m).any() else 0.05)
    cmap = _cmap()
    im = ax.imshow(np.ma.masked_invalid(m), cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest",
                   aspect=aspect)
    for i in range(n):  # absent rows and the diagonal: grey / white
        if nums.absent[i]:
            ax.add_patch(_rect((-0.5, i - 0.5), n, 1, "#ececec"))
        ax.add_patch(_rect((i - 0.5, i - 0.5), 1, 1, "white", hatch="////"))
    for i, j in zip(*np.nonzero(np.nan_to_num(m) >= 0.1)):
        ax.text(j, i, f"{m[i, j] * 100:.0f}", ha="center", va="center", fontsize=fontsize - 2.5,
                color="white" if m[i, j] > 0.6 * vmax else "black")
    ax.set_yticks(range(n), nums.names, fontsize=fontsize)
    _grey_absent_ticks(ax.get_yticklabels(), nums.absent)
    if names_on_x:
        ax.set_xticks(range(n), nums.names, fontsize=fontsize, rotation=90)
    else:
        ax.set_xticks(range(n), [str(j) for j in range(n)], fontsize=fontsize - 1)
    ax.set_xlabel("predicted class j (not true)", fontsize=fontsize + 1)
    ax.set_ylabel("true class i", fontsize=fontsize + 1)
    ax.set_title("Confusion of co-occurring classes: P(j predicted, not true | i true)",
                 fontsize=fontsize + 2)
    return im


def _percent():
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(xmax=1)


def _cmap():
    from matplotlib import colormaps

    return colormaps["Reds"].with_extremes(bad="white")


def _rect(xy, w, h, colour, hatch=None):
    from matplotlib.patches import Rectangle

    return Rectangle(xy, w, h, facecolor=colour, edgecolor="#cccccc" if hatch else "none", hatch=hatch,
                     lw=0, zorder=2)


def confusion_figure(nums) -> Figure:
    fig = new_figure(11.0, 10.0)
    ax = fig.add_subplot()
    im = draw_confusion(ax, nums, fontsize=9, names_on_x=True)
    cb = fig.colorbar(im, ax=ax, shrink=0.6, format=_percent())
    cb.ax.tick_params(labelsize=9)
    return fig


# --------------------------------------------------------------------------- pointing game


def draw_pointing(ax, nums, fontsize: float = 9, compact: bool = False) -> None:
    hits, pairs = nums.pointing[:, 0], nums.pointing[:, 1]
    n = len(nums.names)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(pairs > 0, hits / np.maximum(pairs, 1), 0.0)
    pos = np.arange(n)
    colours = [ENSEMBLE_COLOUR if p else ABSENT_COLOUR for p in pairs]
    title = f"Attention pointing game: {nums.pointing_game:.3f} over {int(pairs.sum()):,} pairs"
    if compact:
        ax.bar(pos, share, color=colours, width=0.8)
        ax.set_xticks(pos, [str(c) if c % 2 == 0 else f"\n{c}" for c in pos], fontsize=fontsize - 1)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("hits / pairs", fontsize=fontsize)
        ax.set_xlabel("class", fontsize=fontsize)
        for c in np.flatnonzero(pairs == 0):
            ax.text(c, 0.02, "none", rotation=90, ha="center", va="bottom", fontsize=fontsize - 2,
                    color=ABSENT_COLOUR)
        ax.yaxis.grid(True, color="#e4e4e4")
    else:
        ax.barh(pos, share, color=colours, height=0.7)
        for c in range(n):
            text = f"{int(hits[c])} / {int(pairs[c])}" if pairs[c] else "no pairs"
            ax.text(share[c] + 0.01, c, text, va="center", fontsize=fontsize - 1.5,
                    color="black" if pairs[c] else ABSENT_COLOUR)
        ax.set_yticks(pos, nums.names, fontsize=fontsize)
        _grey_absent_ticks(ax.get_yticklabels(), pairs == 0)
        ax.set_ylim(n - 0.5, -0.5)
        ax.set_xlim(0, 1.15)
        ax.set_xlabel("hits / pairs", fontsize=fontsize)
        ax.xaxis.grid(True, color="#e4e4e4")
    ax.set_axisbelow(True)
    ax.tick_params(labelsize=fontsize)
    ax.set_title(title, fontsize=fontsize + 2)


def pointing_figure(nums) -> Figure:
    fig = new_figure(8.5, 8.0)
    draw_pointing(fig.add_subplot(), nums)
    return fig


# --------------------------------------------------------------------------- the overview sheet


def overview_figure(nums, title: str) -> Figure:
    fig = new_figure(20.0, 11.0)
    left, mid, right = fig.subfigures(1, 3, width_ratios=[1.15, 1.2, 1.0])
    draw_f1(left.add_subplot(), nums, fontsize=9)
    im = draw_confusion(ax := mid.add_subplot(), nums, fontsize=8.5, aspect="auto")
    mid.colorbar(im, ax=ax, shrink=0.5, location="bottom", format=_percent())
    ax_rel, ax_cnt, ax_pt = right.subplots(3, 1, height_ratios=[2.2, 0.8, 2.0])
    draw_reliability(ax_rel, ax_cnt, nums.reliability, fontsize=9)
    if nums.pointing is not None:
        draw_pointing(ax_pt, nums, fontsize=9, compact=True)
    else:
        ax_pt.axis("off")
        ax_pt.text(0.5, 0.5, "\n".join(textwrap.wrap(f"No pointing game: {nums.pointing_note}", 50)),
                   ha="center", va="center", fontsize=10, color="#a05a00", transform=ax_pt.transAxes)
    fig.suptitle(title, fontsize=14)
    return fig
