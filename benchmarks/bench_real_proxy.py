"""How models do on real HPA protein patterns with their real labels: a stand-in for real labelled fields.

The shared data folder holds about 50 real green (protein) channels of Kaggle 2018 training
fields with their fields' labels, and one complete labelled field (``000a6c98-...``, labels
7 1 2 0); Human Protein Atlas, www.proteinatlas.org, CC BY-SA 3.0.  The label of an HPA field
is the localisation of its protein, which the green channel shows, so each real green channel
makes one labelled field here: its own green, with red, blue and yellow drawn (``--seed``) from
the real single channels of *other* fields.  The reference channels are real stains but not
this field's cells, so a model that checks the protein against the nucleus or the microtubules
sees a mismatch a real field would not show: read the figures as a proxy, not as a real score.
The complete field is scored on its own too.

For each model (an ensemble folder or manifest, or one contract ONNX file) it prints, over the
composites: macro F1 over the classes present (the labels from the model's own thresholds and
top-class rule), mean average precision over those classes, the mean probability of a field's
true classes, the labels called wrong and right (top class forced), the wrong labels called
with p > 0.9 and the largest wrong probability, and how many fields the domain record calls
out of the domain; then the complete field's probabilities of its true classes, its top wrong
class and the labels it is given.  ``--seeds`` makes one composite per green and seed (other
reference channels each time).  Prints figures only.

    python benchmarks/bench_real_proxy.py models/default [OTHER ...] [--tta none] [--seeds 0 1 ...]
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]  # this checkout

from bench_gain_robustness import DATA, FIELD, FIELD_LABELS  # noqa: E402  the shared data, the labelled field

from napari_hpa.classes import CLASS_NAMES, CHANNELS  # noqa: E402


def composites(data: Path, out: Path, seed: int, prefix: str = "real") -> list[tuple[str, str]]:
    """One composite per real green single of ``data/real/kaggle_singles`` into ``out`` (links to
    the singles), named ``{prefix}-{k:03d}``; returns their (id, labels)."""
    singles = (data / "real" / "kaggle_singles").resolve()
    with open(singles / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    by_colour = {c: [r for r in rows if r["Channel"] == c] for c in CHANNELS}
    rng = np.random.default_rng(seed)
    labels = []
    for k, green in enumerate(sorted(by_colour["green"], key=lambda r: r["Id"])):
        name = f"{prefix}-{k:03d}"
        for colour in CHANNELS:
            src = green if colour == "green" else by_colour[colour][rng.integers(len(by_colour[colour]))]
            (out / f"{name}_{colour}.png").symlink_to(singles / f"{src['Id']}_{colour}.png")
        labels.append((name, green["Target"]))
    return labels


def write_labels(path: Path, labels: list[tuple[str, str]]) -> None:
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows([("Id", "Target"), *labels])


def write_composites(data: Path, out: Path, seeds) -> list[tuple[str, str]]:
    """:func:`composites` of each of ``seeds`` into ``out`` (named ``real{seed}-{k:03d}``) and their
    labels.csv; returns their (id, labels), seed by seed."""
    rows = [r for s in seeds for r in composites(data, out, s, prefix=f"real{s}")]
    write_labels(out / "labels.csv", rows)
    return rows


def score(probs: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> dict:
    from sklearn.metrics import average_precision_score

    from napari_hpa.metrics import f1_per_class

    present = truth.any(0)
    wrong = np.where(truth, 0.0, probs)
    return {
        "classes": int(present.sum()),
        "f1": float(np.nanmean(f1_per_class(truth[:, present], pred[:, present]))),
        "ap": float(np.mean([average_precision_score(truth[:, c], probs[:, c]) for c in np.flatnonzero(present)])),
        "p_true": float(probs[truth].mean()),
        "wrong": int((pred & ~truth).sum()),
        "right": int((pred & truth).sum()),
        "wrong_09": int(((wrong > 0.9) & pred).sum()),
        "max_wrong": float(wrong.max()),
        "max_wrong_class": CLASS_NAMES[int(np.unravel_index(wrong.argmax(), wrong.shape)[1])],
    }


def main(argv=None) -> None:
    from napari_hpa.engine import Ensemble, ProviderRequest
    from napari_hpa.evaluate import collect
    from napari_hpa.metrics import apply_thresholds

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", type=Path, help="ensemble folders or manifests, or ONNX files")
    ap.add_argument("--data", type=Path, default=DATA, help="the shared data folder (holds real/)")
    ap.add_argument("--seeds", "--seed", type=int, nargs="+", default=[0],
                    help="which reference channels go with each green: one composite per green and seed (default 0)")
    ap.add_argument("--tta", default="none", help="test-time augmentation (default none)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        comp, whole = Path(tmp) / "composites", Path(tmp) / "field"
        comp.mkdir()
        whole.mkdir()
        n = len(write_composites(args.data, comp, args.seeds))
        for colour in CHANNELS:
            (whole / f"{FIELD}_{colour}.png").symlink_to((args.data / "real" / f"{FIELD}_{colour}.png").resolve())
        (whole / "labels.csv").write_text(f"Id,Target\n{FIELD},{FIELD_LABELS}\n")
        print(f"{n} composites (a real green channel with its field's labels, real reference channels of other "
              f"fields, seeds {' '.join(map(str, args.seeds))}) and the field {FIELD[:8]} (labels {FIELD_LABELS}); "
              f"Human Protein Atlas, www.proteinatlas.org")
        print(f"{'model':<34} {'classes':>7} {'F1':>6} {'mAP':>6} {'p true':>6} {'wrong/right':>11} {'>0.9 wrong':>10} "
              f"{'max wrong':>9}  {'out of domain':>13}  complete field: p true | top wrong")
        true = sorted(int(t) for t in FIELD_LABELS.split())
        for models in args.models:
            ens = Ensemble.load(models, ProviderRequest())
            col = collect(ens, comp, tta=args.tta)
            s = score(col.probs, col.y_true, apply_thresholds(col.probs, ens.thresholds, ens.spec.min_one_label))
            out = sum(1 for v in col.verdicts if v.in_domain is False)
            field = collect(ens, whole, tta=args.tta).probs
            called = np.flatnonzero(apply_thresholds(field, ens.thresholds, ens.spec.min_one_label)[0])
            fp = field[0]
            wrong = [c for c in np.argsort(-fp) if c not in true][0]
            print(f"{str(models):<34} {s['classes']:>7} {s['f1']:>6.3f} {s['ap']:>6.3f} {s['p_true']:>6.3f} "
                  f"{str(s['wrong']) + '/' + str(s['right']):>11} "
                  f"{s['wrong_09']:>10} {s['max_wrong']:>9.3f}  {out:>6} of {len(col.ids):<4}  "
                  + " ".join(f"{fp[c]:.2f}" for c in true) + f" | {CLASS_NAMES[wrong]} {fp[wrong]:.2f}")
            print(f"{'':<34} largest wrong probability: {s['max_wrong_class']}; the complete field is labelled "
                  + ", ".join(CLASS_NAMES[c] for c in called))


if __name__ == "__main__":
    main()
