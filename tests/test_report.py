"""``evaluate --report``: the HTML report's plots, the numbers behind them, and the command."""

from __future__ import annotations

import base64
import io
import math
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from napari_hpa.cli import main
from napari_hpa.evaluate import build_ensemble, evaluate, run_evaluation
from napari_hpa.report import (
    cooccurrence_confusion,
    html_report,
    overview_png,
    pr_curve,
    reliability,
    report_numbers,
)
from napari_hpa.synth import generate_dataset
from onnx_toys import make_toy

SECTIONS = ("f1", "pr", "calibration", "confusion", "pointing", "classes")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    generate_dataset(folder, 14, seed=7, size=64)
    return folder


@pytest.fixture(scope="module")
def no_masks(data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("nomasks") / "data"
    shutil.copytree(data, folder, ignore=shutil.ignore_patterns("masks"))
    return folder


@pytest.fixture(scope="module")
def manifest(data, tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    members = [make_toy(d / "a.onnx", size=16, seed=1).path,
               make_toy(d / "b.onnx", size=32, seed=2, emb_dim=None, attention=False).path]
    path, _ = build_ensemble(members, data, d / "ens" / "ensemble.json", batch_size=8)
    return path


@pytest.fixture(scope="module")
def ev(manifest, data):
    return run_evaluation(manifest, data, batch_size=8)


@pytest.fixture(scope="module")
def page(ev):
    return html_report(ev)


def _images(text: str) -> list[Image.Image]:
    out = []
    for b64 in re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text):
        raw = base64.b64decode(b64, validate=True)
        assert raw[:8] == b"\x89PNG\r\n\x1a\n"
        im = Image.open(io.BytesIO(raw))
        im.load()
        out.append(im)
    return out


# --------------------------------------------------------------------------- the page


def test_the_page_holds_every_plot_as_an_inlined_png(page):
    text = page
    for section in SECTIONS:
        assert f"<section id='{section}'>" in text, section
    images = _images(text)
    assert len(images) == 5  # F1, PR, reliability, confusion, pointing
    for im in images:
        assert im.format == "PNG" and im.width >= 500 and im.height >= 400, im.size
    # self-contained: no script, no link to another file
    assert "<script" not in text and "<link" not in text
    assert not re.search(r'src="(?!data:)', text)


def test_the_figures_numbers_are_evaluates(ev, page, manifest, data):
    from napari_hpa import report_plots

    reference = evaluate(manifest, data, batch_size=8)  # computed again, independently
    nums = report_numbers(ev)
    assert nums.macro["ensemble"] == pytest.approx(reference.macro_f1)
    np.testing.assert_allclose(nums.f1["ensemble"], reference.per_class_f1, equal_nan=True)
    assert set(nums.f1) == {"ensemble", *reference.member_macro_f1}
    for name, macro in reference.member_macro_f1.items():
        # each member's bars average to the macro F1 that evaluate prints for it
        assert float(np.nanmean(nums.f1[name])) == pytest.approx(macro)
    legend = [t.get_text() for t in report_plots.f1_figure(nums).axes[0].get_legend().get_texts()]
    assert f"ensemble: macro F1 {reference.macro_f1:.3f}" in legend
    for name, macro in reference.member_macro_f1.items():
        assert f"{name}: macro F1 {macro:.3f}" in legend
    text = page
    assert f"<th>ensemble macro F1</th><td>{reference.macro_f1:.4f}</td>" in text
    assert f"<th>images</th><td>{reference.n_images}</td>" in text
    hits, pairs = nums.pointing.sum(0)
    assert reference.pointing_game == pytest.approx(hits / pairs) and pairs == reference.pointing_pairs


def test_classes_absent_from_the_data_are_marked(ev, page):
    nums = report_numbers(ev)
    absent = np.flatnonzero(nums.positives == 0)
    assert len(absent), "the fixture should lack some class"
    text = page
    for c in absent:
        assert f"{nums.names[c]} (absent from the data)" in text
        assert nums.pr[c] is None
    present = np.flatnonzero(nums.positives > 0)
    assert all(nums.pr[c] is not None for c in present)


def test_without_masks_the_pointing_section_says_why(manifest, no_masks):
    ev = run_evaluation(manifest, no_masks, batch_size=8)
    assert ev.report.pointing_game is None
    text = html_report(ev)
    section = text.split("<section id='pointing'>")[1].split("</section>")[0]
    assert "<img" not in section
    assert "No pointing game" in section and "masks does not exist" in section
    assert len(_images(text)) == 4
    Image.open(io.BytesIO(overview_png(ev))).load()


def test_without_attention_the_pointing_section_says_why(manifest, data, tmp_path):
    ev = run_evaluation(manifest.parent.parent / "b.onnx", data, batch_size=8)
    assert "no member of the ensemble gives attention maps" in html_report(ev)


def test_the_overview_is_one_palette_png(ev):
    im = Image.open(io.BytesIO(overview_png(ev)))
    assert im.format == "PNG" and im.mode == "P" and im.width >= 1500 and im.height >= 900


# --------------------------------------------------------------------------- pure functions


def test_reliability_on_a_hand_computed_example():
    probs = np.array([[0.05, 0.95], [0.15, 0.55], [0.55, 0.95]])
    truth = np.array([[0, 1], [1, 0], [1, 1]])
    r = reliability(probs, truth, n_bins=4)
    np.testing.assert_allclose(r.edges, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_array_equal(r.counts, [2, 0, 2, 2])
    np.testing.assert_allclose(r.confidence, [0.1, np.nan, 0.55, 0.95], equal_nan=True)
    np.testing.assert_allclose(r.frequency, [0.5, np.nan, 0.5, 1.0], equal_nan=True)
    assert r.ece == pytest.approx((2 * 0.4 + 2 * 0.05 + 2 * 0.05) / 6)
    edge = reliability(np.array([[0.0, 0.25, 1.0]]), np.array([[0, 1, 1]]), n_bins=4)
    np.testing.assert_array_equal(edge.counts, [1, 1, 0, 1])  # 1.0 falls in the last bin


def test_cooccurrence_confusion_on_a_hand_computed_example():
    t = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0]], bool)
    p = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]], bool)
    m = cooccurrence_confusion(t, p)
    expected = np.array([
        [2 / 3, 1 / 3, 1 / 3, 0],  # class 0 true in images 0-2: found in 0, 1; 1 wrongly in 0; 2 in 2
        [0, 1, 0, 0],  # class 1 true in image 1 only; 0 is predicted there but is true
        [0, 0, 1, 1],  # class 2 true in image 3, where 3 is predicted wrongly
        [np.nan] * 4,  # class 3 is never true
    ])
    np.testing.assert_allclose(m, expected, equal_nan=True)


def test_pr_curve_on_a_hand_computed_example():
    pr = pr_curve([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0], threshold=0.75)
    np.testing.assert_allclose(pr.recall, [0, 0.5, 0.5, 1, 1])
    np.testing.assert_allclose(pr.precision, [1, 1, 0.5, 2 / 3, 0.5])
    assert pr.average_precision == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert pr.point == pytest.approx((0.5, 0.5))
    tied = pr_curve([0.5, 0.5, 0.1], [1, 0, 0], threshold=0.6)
    np.testing.assert_allclose(tied.precision, [1, 0.5, 1 / 3])
    assert tied.point == (0.0, 1.0)  # nothing predicted
    assert pr_curve([0.3, 0.2], [0, 0], 0.5) is None


# --------------------------------------------------------------------------- the command


def test_the_command_writes_the_report_and_refuses_to_overwrite_it(manifest, data, tmp_path, capsys,
                                                                    monkeypatch):
    import napari_hpa.evaluate

    out = tmp_path / "rep"
    args = ["evaluate", str(data), "--models", str(manifest), "--report", str(out), "-q", "--batch-size", "8"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    html, png = out / "report.html", out / "report.png"
    assert str(html) in printed and str(png) in printed
    assert len(_images(html.read_text())) == 5
    before = (html.read_bytes(), png.read_bytes())

    def not_run(*a, **k):
        raise AssertionError("the evaluation ran before the output was checked")

    monkeypatch.setattr(napari_hpa.evaluate, "run_evaluation", not_run)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "already holds a report" in err and str(out) in err and "--overwrite" in err
    assert (html.read_bytes(), png.read_bytes()) == before
    assert main(["evaluate", str(data), "--models", str(manifest), "--report", str(data), "-q"]) == 2
    assert "is the data folder" in capsys.readouterr().err
    monkeypatch.undo()
    assert main(args + ["--overwrite"]) == 0
    assert not math.isnan(float(re.search(r"ensemble macro F1</th><td>([0-9.]+)<", html.read_text())[1]))


def test_the_report_does_not_change_the_printed_evaluation(manifest, data, tmp_path, capsys):
    base = ["evaluate", str(data), "--models", str(manifest), "-q", "--batch-size", "8", "--json"]
    assert main(base) == 0
    plain = capsys.readouterr().out
    assert main(base + ["--report", str(tmp_path / "r")]) == 0
    captured = capsys.readouterr()
    assert captured.out == plain and "wrote the report" in captured.err
