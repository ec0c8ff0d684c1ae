"""The napari-hpa command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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
    assert names == [f"{set_id} {s}" for s in ["microtubules", "protein", "nucleus", "ER", "attention"]]
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
