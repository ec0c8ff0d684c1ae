"""What single ONNX models say about a real labelled field, and how much that moves when one channel's gain changes.

For each model (napari-hpa contract ONNX, e.g. from ``napari-hpa export``) and the real field
(default: the Kaggle 2018 field ``000a6c98-...`` of the shared data folder, labels 7 1 2 0;
Human Protein Atlas, www.proteinatlas.org), read as the predictors read it (``read_set``,
``to_model_input`` at the model's input size), it prints the probability of each true class,
the largest probability of a wrong class (and which), and then, for each ``--gains`` factor of
``--channel``, the mean and largest absolute change of the 28 probabilities and whether the top
class changed.  With ``--sets DIR`` it also prints the same changes averaged over the first
``--n`` image sets of DIR (e.g. a held-out synthetic folder): mean |dp| and the fraction of sets
whose top class changed.  Prints figures only.

    python benchmarks/bench_gain_robustness.py A.onnx B.onnx [--channel green --gains 0.3 3] [--sets DIR --n 50]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]  # this checkout

from napari_hpa.classes import CLASS_NAMES, CHANNELS  # noqa: E402
from napari_hpa.imageset import find_sets, read_set, source_for_path, to_model_input  # noqa: E402

DATA = Path(os.environ.get("HPA_REAL_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
FIELD = "000a6c98-bb9b-11e8-b2b9-ac1f6b6435d0"
FIELD_LABELS = "7 1 2 0"  # its labels in the Kaggle 2018 train.csv


def probabilities(session, x: np.ndarray) -> np.ndarray:
    logits = session.run(["logits"], {"image": x[None].astype(np.float32)})[0][0]
    return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))


def main(argv=None):
    import onnxruntime as ort

    from napari_hpa.engine.contract import check_contract

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", type=Path, help="ONNX models")
    ap.add_argument("--field", type=Path, default=DATA / "real" / f"{FIELD}_green.png",
                    help="a channel file of the real field (default: the shared Kaggle field)")
    ap.add_argument("--labels", default=FIELD_LABELS, help="its true classes (default '7 1 2 0')")
    ap.add_argument("--channel", default="green", choices=CHANNELS, help="the channel whose gain changes")
    ap.add_argument("--gains", type=float, nargs="+", default=[0.3, 3.0], help="gain factors (default 0.3 3)")
    ap.add_argument("--sets", type=Path, help="also average the changes over the image sets of this folder")
    ap.add_argument("--n", type=int, default=50, help="sets of --sets to use (default 50)")
    args = ap.parse_args(argv)
    true = sorted(int(t) for t in args.labels.split())
    data = read_set(source_for_path(args.field)[0]).data
    ci = CHANNELS.index(args.channel)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    print(f"field {args.field.name} (Human Protein Atlas, www.proteinatlas.org), true classes "
          + ", ".join(f"{c} {CLASS_NAMES[c]}" for c in true))
    for path in args.models:
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        size = check_contract(sess, path).input_size
        x = to_model_input(data, size)
        p = probabilities(sess, x)
        wrong = [c for c in range(len(p)) if c not in true]
        w = max(wrong, key=lambda c: p[c])
        print(f"\n{path.name}: true " + ", ".join(f"{c}:{p[c]:.3f}" for c in true)
              + f" (mean {np.mean(p[true]):.3f}); top wrong {w} {CLASS_NAMES[w]} {p[w]:.3f}; "
              f"top class {int(p.argmax())}")
        for g in args.gains:
            y = x.copy()
            y[ci] = np.clip(y[ci] * g, 0.0, 1.0)
            q = probabilities(sess, y)
            d = np.abs(q - p)
            print(f"  {args.channel} x{g:g}: mean |dp| {d.mean():.3f}, max |dp| {d.max():.3f} (class {int(d.argmax())}); "
                  f"true mean {np.mean(q[true]):.3f}; top wrong {max(q[wrong]):.3f}; "
                  f"top class {int(q.argmax())}{'' if q.argmax() == p.argmax() else ' (changed)'}")

        if args.sets:
            xs = [to_model_input(read_set(src).data, size) for src in find_sets(args.sets)[: args.n]]
            ps = [probabilities(sess, x) for x in xs]
            for g in args.gains:
                ds, flips = [], 0
                for x, p in zip(xs, ps):
                    y = x.copy()
                    y[ci] = np.clip(y[ci] * g, 0.0, 1.0)
                    q = probabilities(sess, y)
                    ds.append(np.abs(q - p).mean())
                    flips += int(q.argmax() != p.argmax())
                print(f"  {len(xs)} sets of {args.sets.name}, {args.channel} x{g:g}: mean |dp| {np.mean(ds):.3f}, "
                      f"top class changed in {flips / len(xs):.0%}")


if __name__ == "__main__":
    main()
