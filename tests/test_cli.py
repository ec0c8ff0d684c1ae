"""The napari-hpa command line."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import pytest

from napari_hpa.cli import main
from napari_hpa.labels import read_labels


def test_synth_writes_a_dataset(tmp_path, capsys):
    out = tmp_path / "synth"
    rc = main(["synth", str(out), "--n", "4", "--seed", "3", "--size", "128",
               "--noise-rate", "0.5", "--fields-per-antibody", "2", "--quiet"])
    assert rc == 0
    table = read_labels(out / "labels.csv")
    assert len(table) == 4
    for image_id in table.ids:
        for ch in ("red", "green", "blue", "yellow"):
            assert iio.imread(out / f"{image_id}_{ch}.png").shape == (128, 128)
        assert (out / "masks" / f"{image_id}.npz").is_file()
    assert (out / "labels_noisy.csv").is_file() and (out / "noise.csv").is_file()
    assert "wrote 4 synthetic image sets" in capsys.readouterr().out


def test_synth_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "synth"
    assert main(["synth", str(out), "--n", "1", "--size", "128", "--quiet"]) == 0
    before = (out / "labels.csv").read_bytes()
    assert main(["synth", str(out), "--n", "2", "--size", "128", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "napari-hpa synth: error:" in err and "labels.csv" in err
    assert (out / "labels.csv").read_bytes() == before


@pytest.mark.parametrize(
    "args, fragment",
    [(["--n", "0"], "n"), (["--n", "2", "--noise-rate", "1.5"], "noise"),
     (["--n", "2", "--size", "16"], "size")],
)
def test_synth_bad_arguments(tmp_path, capsys, args, fragment):
    assert main(["synth", str(tmp_path / "o"), *args, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and fragment in err


@pytest.mark.gui
def test_demo_screenshot_and_json(tmp_path):
    """The README's main job, headless: napari-hpa demo --screenshot PATH --json."""
    from onnx_toys import make_toy

    toy = make_toy(tmp_path / "toy.onnx", size=64, grid=4)
    shot = tmp_path / "demo.png"
    env = dict(os.environ)
    assert env.get("DISPLAY"), "pytest-xvfb should provide a display"
    proc = subprocess.run(
        [sys.executable, "-m", "napari_hpa.cli", "demo", "--models", str(toy.path),
         "--screenshot", str(shot), "--json"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    names = [layer["name"] for layer in report["layers"]]
    set_id = names[0].split(" ")[0]
    assert names == [f"{set_id} {s}" for s in
                     ["microtubules", "protein", "nucleus", "ER", "attention", "attention contours"]]
    assert report["layers"][5]["kind"] == "shapes"
    assert all(layer["shape"] == [512, 512] for layer in report["layers"][:4])
    att = report["layers"][4]
    assert att["shape"] == [28, 4, 4]
    assert att["scale"] == [1.0, 128.0, 128.0] and att["translate"] == [0.0, 63.5, 63.5]
    top = report["classification"]["top"]
    assert len(top) == 5 and top[0]["probability"] >= top[1]["probability"]
    assert report["classification"]["attention_shown_for"] == top[0]["class"]
    # a toy model records no domain: unknown, never claimed
    assert report["classification"]["domain"] == {"in_domain": None, "score": None, "reason": ""}
    image = iio.imread(shot)
    assert image.ndim == 3 and image.shape[0] > 400 and image.shape[1] > 600
    assert image[..., :3].std() > 10  # something was drawn


def test_demo_without_a_display_says_what_to_do(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    proc = subprocess.run([sys.executable, "-m", "napari_hpa.cli", "demo"], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "xvfb-run -a napari-hpa" in proc.stderr


# --------------------------------------------------------------------------- conventions

# (new spelling, the previous release's): inputs positional, outputs --out, --threshold for values
SPELLINGS = [
    (["synth", "--out", "d", "--n", "2"], ["synth", "d", "--n", "2"]),
    (["evaluate", "d", "-q"], ["evaluate", "--data", "d", "-q"]),
    (["train", "d", "--arch", "gapnet", "--out", "r"], ["train", "--data", "d", "--arch", "gapnet", "--out", "r"]),
    (["export", "r", "--out", "m.onnx", "--threshold", "0.4"], ["export", "r", "--out", "m.onnx", "--thresholds", "0.4"]),
    (["models", "domain", "d", "--models", "m"], ["models", "domain", "--models", "m", "--images", "d"]),
    (["labels", "import", "l.csv", "--images", "d", "--out", "s.hpa"],
     ["labels", "import", "--images", "d", "--labels", "l.csv", "--session", "s.hpa"]),
]
# per command, the new spellings that --help shows and the old ones it no longer shows
HELP = {
    ("synth",): (["--out DIR"], ["OUT"]),
    ("evaluate",): ([" DIR\n"], ["--data"]),
    ("train",): ([" DIR\n", "--out RUN_DIR"], ["--data DIR"]),
    ("export",): (["--threshold T"], ["--thresholds"]),
    ("models", "domain"): ([" DIR\n"], ["--images"]),
    ("labels", "import"): ([" CSV\n", "--out SESSION"], ["--labels", "--session"]),
    ("ensemble", "build"): (["DIR MEMBER.onnx"], ["--val"]),
}


def _parsed(argv):
    from napari_hpa.cli import build_parser

    return {k: v for k, v in vars(build_parser().parse_args(argv)).items() if k != "func"}


@pytest.mark.parametrize("new, old", SPELLINGS, ids=[" ".join(n[:2]) for n, _ in SPELLINGS])
def test_new_and_old_spellings_mean_the_same(new, old):
    assert _parsed(new) == _parsed(old)


def test_ensemble_build_takes_the_folder_first_or_the_old_val():
    from napari_hpa.cli.ensemble import _folder_and_members

    new = _parsed(["ensemble", "build", "val", "a.onnx", "b.onnx", "--out", "e.json"])
    old = _parsed(["ensemble", "build", "a.onnx", "b.onnx", "--val", "val", "--out", "e.json"])
    one = _parsed(["ensemble", "build", "a.onnx", "--val", "val", "--out", "e.json"])
    expected = (Path("val"), [Path("a.onnx"), Path("b.onnx")])
    for args in (new, old):
        assert _folder_and_members(argparse.Namespace(**args)) == expected
    assert _folder_and_members(argparse.Namespace(**one)) == (Path("val"), [Path("a.onnx")])


@pytest.mark.parametrize("command", sorted(HELP), ids=" ".join)
def test_old_spellings_are_hidden_from_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    shown, hidden = HELP[command]
    for new in shown:
        assert new in text, (command, new)
    for old in hidden:
        assert old not in text, (command, old)


def test_help_shows_the_conventions_and_required_inputs_as_required(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "what it writes is --out" in " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit):
        main(["synth", "--help"])
    text = capsys.readouterr().out
    assert " --out DIR --n N" in text and "[--out" not in text and "positional arguments" not in text
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    usage = capsys.readouterr().out.split("\n\n")[0]
    assert usage.rstrip().endswith(" DIR") and "[DIR]" not in usage


@pytest.mark.parametrize("argv", [
    ["synth", "--n", "2"],  # no output folder
    ["synth", "a", "--out", "b", "--n", "2"],  # two
    ["evaluate", "d", "--data", "e"],
    ["labels", "import", "--out", "s.hpa"],
])
def test_a_missing_or_twice_given_input_is_a_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and "error:" in capsys.readouterr().err


def test_default_batch_sizes_stay_per_command():
    assert _parsed(["predict", "x", "--out", "s.csv"])["batch_size"] == 8
    assert _parsed(["index", "x", "--labels", "l.csv", "--out", "i.npz"])["batch_size"] == 8
    assert _parsed(["models", "domain", "x"])["batch_size"] == 8
    assert _parsed(["evaluate", "x"])["batch_size"] == 16
    assert _parsed(["ensemble", "build", "x", "m.onnx", "--out", "e.json"])["batch_size"] == 16
    assert _parsed(["train", "x", "--arch", "gapnet", "--out", "r"])["batch_size"] == 16


def test_synth_with_out_writes_what_the_old_spelling_wrote(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path / "new"), "--n", "2", "--size", "128", "--quiet"]) == 0
    assert main(["synth", str(tmp_path / "old"), "--n", "2", "--size", "128", "--quiet"]) == 0
    new = sorted(p.relative_to(tmp_path / "new") for p in (tmp_path / "new").rglob("*"))
    assert new == sorted(p.relative_to(tmp_path / "old") for p in (tmp_path / "old").rglob("*"))
    for name in new:
        if name.suffix in (".csv", ".png"):
            assert (tmp_path / "new" / name).read_bytes() == (tmp_path / "old" / name).read_bytes()


def test_labels_import_with_a_positional_csv_and_out(tmp_path, capsys):
    (tmp_path / "labels.csv").write_text("Id,Target\na,0\nb,1 2\n")
    session = tmp_path / "s.hpa"
    assert main(["labels", "import", str(tmp_path / "labels.csv"), "--out", str(session)]) == 0
    assert session.is_file() and "imported 2 images" in capsys.readouterr().out


def test_the_parser_loads_neither_the_engine_nor_gui_nor_torch():
    code = (
        "import sys\n"
        "from napari_hpa.cli import build_parser\n"
        "build_parser()\n"
        "heavy = ['napari_hpa.engine.ensemble', 'napari_hpa.engine.manifest', 'onnxruntime', 'pydantic',\n"
        "         'torch', 'napari', 'qtpy']\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("module", ["napari_hpa", "napari_hpa.cli"])
def test_python_dash_m_runs_the_command_line(module):
    proc = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True, text=True,
                          check=False, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("napari-hpa ")


# --------------------------------------------------------------------------- errors


def test_a_bug_keeps_its_traceback_instead_of_exit_status_2(tmp_path, monkeypatch):
    import napari_hpa.evaluate

    def broken(*args, **kwargs):
        raise ValueError("a bug, not bad input")

    monkeypatch.setattr(napari_hpa.evaluate, "evaluate", broken)
    with pytest.raises(ValueError, match="a bug"):
        main(["evaluate", str(tmp_path), "-q"])


def test_an_output_that_cannot_be_written_is_one_line_naming_it(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["synth", "--out", str(blocker / "sub"), "--n", "1", "--size", "128", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("napari-hpa synth: error:") and str(blocker) in err[0]


def test_os_errors_at_io_boundaries_become_file_errors_with_path_and_reason(tmp_path):
    import numpy as np

    from napari_hpa.errors import FileError, HPAError, WriteError, file_errors
    from napari_hpa.similar import ReferenceIndex

    blocker = tmp_path / "file"
    blocker.write_text("")
    index = ReferenceIndex(ids=["a"], embeddings=np.zeros((1, 4), np.float32), targets=[(0,)], paths=["a"])
    with pytest.raises(WriteError) as info:
        index.save(blocker / "index.npz")
    assert isinstance(info.value, HPAError) and isinstance(info.value, OSError)
    assert str(info.value).startswith(f"{blocker / 'index.npz'}: cannot write to it (")
    with pytest.raises(FileError, match=r"missing\.txt: cannot be read \(No such file"), \
            file_errors(tmp_path / "missing.txt", writing=False):
        (tmp_path / "missing.txt").read_text()


def test_core_errors_keep_the_message_and_make_it_bad_input():
    from napari_hpa.cli.options import core_errors
    from napari_hpa.errors import FileError, HPAError, SessionError

    with pytest.raises(SessionError) as info, core_errors(SessionError):
        raise ValueError("thresholds must lie strictly between 0 and 1")
    assert str(info.value) == "thresholds must lie strictly between 0 and 1"
    with pytest.raises(FileError) as info, core_errors():
        raise FileExistsError(17, "File exists", "/x/labels.csv")
    assert str(info.value) == str(FileExistsError(17, "File exists", "/x/labels.csv"))
    original = HPAError("already typed")
    with pytest.raises(HPAError) as info, core_errors(SessionError):
        raise original
    assert info.value is original


def test_helpers_that_raised_value_errors_raise_typed_ones_that_still_are():
    from napari_hpa.errors import (
        FileError,
        HPAError,
        InvalidValueError,
        LabelsCSVError,
        SessionError,
    )
    from napari_hpa.labels import parse_target
    from napari_hpa.review.ordering import as_thresholds

    for call in (lambda: parse_target("0 x"), lambda: parse_target("28"), lambda: as_thresholds(1.5),
                 lambda: as_thresholds([0.5, 0.5])):
        with pytest.raises(InvalidValueError) as info:
            call()
        assert isinstance(info.value, ValueError) and isinstance(info.value, HPAError)
    # the (problem, path) errors share FileError, messages as before
    assert issubclass(LabelsCSVError, FileError) and issubclass(SessionError, FileError)
    assert str(LabelsCSVError("bad", path="a.csv", line=3)) == "a.csv, line 3: bad"
    assert str(SessionError("damaged", path="s.hpa")) == "s.hpa: damaged" and str(SessionError("x")) == "x"
