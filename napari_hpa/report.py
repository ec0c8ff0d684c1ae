"""Evaluation reports with plots (core: numpy; matplotlib's Agg canvas in :mod:`.report_plots`).

:func:`report_numbers` turns an :class:`~napari_hpa.evaluate.Evaluation` into what the
plots show (the F1 figures are :mod:`.metrics`' and :func:`~napari_hpa.evaluate.report_from`'s,
not computed again); :func:`html_report` writes one self-contained HTML page (every plot an
inlined base64 PNG, no script, no external file) and :func:`overview_png` one sheet of the
main plots; :func:`write_report` writes both, atomically, as ``report.html`` and ``report.png``.

The pure parts, tested on hand-computed examples:

* :func:`reliability` -- the reliability diagram over all (image, class) pairs: equal-width
  probability bins, each bin's mean predicted probability, observed frequency and count,
  and the expected calibration error (the count-weighted mean gap).
* :func:`cooccurrence_confusion` -- ``[C, C]``: row ``i`` over the images where class ``i``
  is true; off the diagonal, the share of them where class ``j`` is predicted although it is
  not true (which classes ``i`` gets mistaken for); on it, the share where ``i`` is predicted
  (its recall).  Rows of classes without a true image are NaN.
* :func:`pr_curve` -- precision against recall over every threshold, the average precision
  and the point at the chosen threshold.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .classes import CLASS_NAMES, NUM_CLASSES
from .metrics import apply_thresholds, f1_per_class

#: The files :func:`write_report` writes into its folder.
REPORT_FILES = ("report.html", "report.png")
RELIABILITY_BINS = 10


# --------------------------------------------------------------------------- pure figures


@dataclass
class Reliability:
    edges: np.ndarray  # [B + 1] bin edges on [0, 1]
    confidence: np.ndarray  # [B] mean predicted probability of the bin's pairs (nan when empty)
    frequency: np.ndarray  # [B] share of the bin's pairs whose class is true (nan when empty)
    counts: np.ndarray  # [B] pairs in the bin
    ece: float  # sum over bins of counts / total * |frequency - confidence|


def reliability(probs, y_true, n_bins: int = RELIABILITY_BINS) -> Reliability:
    """Bin every (image, class) probability into ``n_bins`` equal bins of [0, 1] (the last
    one closed) and compare each bin's mean probability with how often its class is true."""
    p = np.asarray(probs, dtype=np.float64).ravel()
    t = np.asarray(y_true).astype(bool).ravel()
    if p.shape != t.shape:
        raise ValueError(f"probabilities {np.shape(probs)} and truth {np.shape(y_true)} differ in shape")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip((p * n_bins).astype(np.int64), 0, n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins)
    sum_p = np.bincount(idx, weights=p, minlength=n_bins)
    sum_t = np.bincount(idx, weights=t.astype(np.float64), minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.where(counts > 0, sum_p / counts, np.nan)
        freq = np.where(counts > 0, sum_t / counts, np.nan)
    total = counts.sum()
    ece = float(np.nansum(counts / max(total, 1) * np.abs(freq - conf))) if total else float("nan")
    return Reliability(edges, conf, freq, counts, ece)


def cooccurrence_confusion(y_true, y_pred) -> np.ndarray:
    """``M[i, j]`` = share of the images with class ``i`` true where ``j`` is predicted and
    not true (``i != j``); ``M[i, i]`` = share of them where ``i`` is predicted (recall)."""
    t = np.asarray(y_true).astype(bool)
    p = np.asarray(y_pred).astype(bool)
    if t.shape != p.shape:
        raise ValueError(f"truth {t.shape} and prediction {p.shape} differ in shape")
    wrong = (p & ~t).astype(np.float64)
    counts = t.T.astype(np.float64) @ wrong  # [C, C]: images with i true and j predicted wrongly
    np.fill_diagonal(counts, (t & p).sum(0))
    n = t.sum(0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n[:, None] > 0, counts / np.maximum(n[:, None], 1), np.nan)


@dataclass
class PRCurve:
    recall: np.ndarray
    precision: np.ndarray
    average_precision: float
    threshold: float
    point: tuple[float, float]  # (recall, precision) of probability >= threshold


def pr_curve(p, t, threshold: float) -> PRCurve | None:
    """Precision-recall of one class's probabilities ``p`` against truth ``t``; None when
    the class has no true image."""
    p = np.asarray(p, dtype=np.float64)
    t = np.asarray(t).astype(bool)
    n_pos = int(t.sum())
    if n_pos == 0:
        return None
    order = np.argsort(-p, kind="stable")
    ps, ts = p[order], t[order]
    tp, fp = np.cumsum(ts), np.cumsum(~ts)
    last = np.r_[np.flatnonzero(np.diff(ps) != 0), len(ps) - 1]  # the end of each run of ties
    recall = np.r_[0.0, tp[last] / n_pos]
    precision = np.r_[1.0, tp[last] / (tp[last] + fp[last])]
    ap = float(np.sum(np.diff(recall) * precision[1:]))
    pred = p >= threshold
    hit = int((pred & t).sum())
    point = (hit / n_pos, hit / int(pred.sum()) if pred.any() else 1.0)
    return PRCurve(recall, precision, ap, float(threshold), point)


# --------------------------------------------------------------------------- what the plots show


@dataclass
class ReportNumbers:
    names: list[str]  # "0 Nucleoplasm", ...
    n_images: int
    positives: np.ndarray  # [28] images where each class is true
    f1: dict[str, np.ndarray]  # "ensemble" and each member -> [28] (nan: undefined)
    macro: dict[str, float]
    pr: list[PRCurve | None]
    reliability: Reliability
    confusion: np.ndarray  # [28, 28]
    pointing: np.ndarray | None  # [28, 2] hits, pairs
    pointing_game: float | None
    pointing_note: str | None

    @property
    def absent(self) -> np.ndarray:
        return self.positives == 0


def report_numbers(ev) -> ReportNumbers:
    """The plots' numbers for an :class:`~napari_hpa.evaluate.Evaluation`: the ensemble's
    F1 is the report's; each member's at the ensemble's thresholds, as ``evaluate`` scores it."""
    col, rep = ev.collected, ev.report
    y = np.asarray(col.y_true).astype(bool)
    f1 = {"ensemble": np.asarray(rep.per_class_f1, dtype=np.float64)}
    macro = {"ensemble": rep.macro_f1}
    for name, p in col.member_probs.items():
        f1[name] = f1_per_class(y, apply_thresholds(p, ev.thresholds, ev.min_one_label))
        macro[name] = rep.member_macro_f1[name]
    pred = apply_thresholds(col.probs, ev.thresholds, ev.min_one_label)
    return ReportNumbers(
        names=[f"{i} {n}" for i, n in enumerate(CLASS_NAMES)],
        n_images=len(y),
        positives=y.sum(0),
        f1=f1,
        macro=macro,
        pr=[pr_curve(col.probs[:, c], y[:, c], float(ev.thresholds[c])) for c in range(NUM_CLASSES)],
        reliability=reliability(col.probs, y),
        confusion=cooccurrence_confusion(y, pred),
        pointing=col.pointing_per_class,
        pointing_game=rep.pointing_game,
        pointing_note=col.pointing_note,
    )


# --------------------------------------------------------------------------- HTML and PNG


def palette_png(rgb: np.ndarray) -> bytes:
    """An ``(H, W, 3|4)`` uint8 image as a 256-colour PNG (a third of the size, for docs)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb[..., :3])).quantize(256, dither=Image.Dither.NONE).save(
        buf, format="PNG", optimize=True)
    return buf.getvalue()


def _fmt(v, digits: int = 4) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1500px; margin: 1em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 2px 8px; text-align: left; font-size: 14px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.absent td { color: #999; }
figure { margin: 0 0 2em; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 14px; color: #444; max-width: 1100px; }
p.missing { background: #fff4e0; border-left: 4px solid #e0a030; padding: 0.5em 1em; }
"""


def _figure(img: bytes, alt: str, caption: str) -> str:
    src = "data:image/png;base64," + base64.b64encode(img).decode("ascii")
    return (f'<figure><img src="{src}" alt="{html.escape(alt)}">'
            f"<figcaption>{caption}</figcaption></figure>")


def _header_rows(ev, nums: ReportNumbers, date: str, version: str) -> list[tuple[str, str]]:
    rep = ev.report
    rows = [
        ("data folder", ev.data),
        ("images", f"{rep.n_images:,}"),
        ("ensemble", f"{ev.name} ({ev.models})"),
        ("members", ", ".join(ev.members)),
        ("test-time augmentation", ev.tta),
        ("providers used", ", ".join(rep.providers) or "n/a"),
        ("ensemble macro F1", _fmt(rep.macro_f1)),
    ]
    rows += [(f"member {name}: macro F1", _fmt(f)) for name, f in rep.member_macro_f1.items()]
    if rep.pointing_game is not None:
        rows.append(("attention pointing game", f"{_fmt(rep.pointing_game)} ({rep.pointing_pairs:,} image-class pairs)"))
    if rep.retrieval_top1 is not None:
        rows.append(("top-1 same-antibody retrieval", f"{_fmt(rep.retrieval_top1)} ({rep.retrieval_n:,} images)"))
    rows += [("expected calibration error", _fmt(nums.reliability.ece)), ("date", date),
             ("napari-hpa", version)]
    return rows


def _class_table(ev, nums: ReportNumbers) -> str:
    series = list(nums.f1)
    head = ["class", "true images", "threshold", "average precision"] + [f"F1 {s}" for s in series]
    if nums.pointing is not None:
        head.append("pointing (hits / pairs)")
    out = ["<table class='classes'><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for c, name in enumerate(nums.names):
        pr = nums.pr[c]
        cells = [html.escape(name) + (" (absent from the data)" if nums.absent[c] else ""),
                 f"{int(nums.positives[c]):,}", f"{float(ev.thresholds[c]):.2f}",
                 _fmt(pr.average_precision if pr else None, 3)]
        cells += [_fmt(float(nums.f1[s][c]), 3) for s in series]
        if nums.pointing is not None:
            h, n = (int(v) for v in nums.pointing[c])
            cells.append(f"{h} / {n}" if n else "no pairs")
        tds = "".join(f"<td>{v}</td>" if i == 0 else f"<td class='num'>{v}</td>" for i, v in enumerate(cells))
        out.append(f"<tr{' class=absent' if nums.absent[c] else ''}>{tds}</tr>")
    return "\n".join(out + ["</table>"])


def html_report(ev, *, date: str | None = None) -> str:
    """The self-contained HTML page of an :class:`~napari_hpa.evaluate.Evaluation`."""
    from . import __version__
    from . import report_plots as rp

    nums = report_numbers(ev)
    date = date or _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    esc = html.escape
    absent = [n for n, a in zip(nums.names, nums.absent) if a]
    absent_text = (f" Classes with no true image in the data ({esc(', '.join(absent))}) are greyed and "
                   "marked 'absent'." if absent else "")
    member_note = (" Each member is scored with the ensemble's thresholds and rule, as <code>evaluate</code>"
                   " does (the manifest keeps no thresholds of the members' own)." if len(nums.f1) > 1 else "")
    rel = nums.reliability
    parts = [
        "<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
        f"<title>napari-hpa evaluation: {esc(ev.name)} on {esc(Path(ev.data).name)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Evaluation of {esc(ev.name)} on {esc(Path(ev.data).name)}</h1>",
        "<table class='header'>" + "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>"
                                           for k, v in _header_rows(ev, nums, date, __version__)) + "</table>",
        "<section id='f1'><h2>Per-class F1</h2>",
        _figure(rp.png(rp.f1_figure(nums)), "per-class F1 bars",
                f"F1 of each class with the ensemble's thresholds and its rule (the top class is always "
                f"predicted); macro F1 (mean over the classes where F1 is defined) in the legend. "
                f"A class neither true nor predicted has no F1 and no bar.{member_note}{absent_text}"),
        "</section>", "<section id='pr'><h2>Precision-recall curves</h2>",
        _figure(rp.png(rp.pr_figure(nums)), "precision-recall curves per class",
                "Precision against recall of the ensemble's probability for each class, over every "
                "threshold; the dot is the ensemble's threshold t (probability &ge; t, before the top "
                "class is forced on); AP: average precision. The grey line is the share of images "
                f"where the class is true (a classifier that guesses).{absent_text}"),
        "</section>", "<section id='calibration'><h2>Calibration</h2>",
        _figure(rp.png(rp.reliability_figure(rel)), "reliability diagram",
                f"Reliability over all {int(rel.counts.sum()):,} (image, class) pairs in "
                f"{len(rel.counts)} equal probability bins: each bin's observed frequency of the class "
                f"being true against its mean predicted probability (on the diagonal: calibrated); "
                f"below, how many pairs fall in each bin (log scale). Expected calibration error "
                f"(count-weighted mean gap): <b>{_fmt(rel.ece)}</b>."),
        "</section>", "<section id='confusion'><h2>Confusion of co-occurring classes</h2>",
        _figure(rp.png(rp.confusion_figure(nums)), "co-occurrence confusion matrix",
                "Row i: the images where class i is true. Cell (i, j): the share of them where class j "
                "is predicted although it is not true, i.e. what class i is mistaken for (or wrongly "
                "accompanied by); the diagonal is left blank (it would be class i's recall, which the "
                f"table below gives with F1). Shares of 10% or more are written in the cells.{absent_text}"),
        "</section>", "<section id='pointing'><h2>Attention pointing game</h2>",
    ]
    if nums.pointing is not None:
        parts.append(_figure(
            rp.png(rp.pointing_figure(nums)), "pointing game per class",
            "For each (image, true class) pair with a ground-truth mask: a hit when the maximum of the "
            "class's attention map lies in the mask dilated by one map cell. Bars: hits / pairs per "
            f"class; overall {_fmt(nums.pointing_game)} over {int(nums.pointing[:, 1].sum()):,} pairs."))
    else:
        parts.append(f"<p class='missing'>No pointing game: {esc(nums.pointing_note or 'no pairs')}.</p>")
    parts += ["</section>", "<section id='classes'><h2>Per class</h2>", _class_table(ev, nums),
              "</section>", "</body></html>"]
    return "\n".join(parts) + "\n"


def overview_png(ev, *, palette: bool = True) -> bytes:
    """One sheet of the main plots (F1, confusion, calibration, pointing) as PNG."""
    from . import report_plots as rp

    fig = rp.overview_figure(report_numbers(ev), title=f"{ev.name} on {Path(ev.data).name}: "
                             f"{ev.report.n_images:,} images, TTA {ev.tta}")
    if not palette:
        return rp.png(fig)
    return palette_png(rp.rgba(fig))


def report_paths(outdir: str | Path) -> list[Path]:
    return [Path(outdir) / name for name in REPORT_FILES]


def write_report(ev, outdir: str | Path) -> list[Path]:
    """Write ``report.html`` and ``report.png`` into ``outdir`` (made when absent), as one."""
    from .errors import file_errors
    from .fileio import atomic_write_group

    outdir = Path(outdir)
    with file_errors(outdir, writing=True):
        outdir.mkdir(parents=True, exist_ok=True)
    html_path, png_path = report_paths(outdir)
    return atomic_write_group({html_path: html_report(ev).encode("utf-8"), png_path: overview_png(ev)})
