"""How much a member's head refitted on real protein patterns helps on real patterns it has not
seen: cross-validation over the real green channels, through the whole ensemble.

The data is what ``napari-hpa models refit-head`` is given for the default (model card): the
synthetic fields of ``--synth`` and the real-protein composites of ``make_real_composites.py``
(each of the 50 real green channels of ``shared/data/real/kaggle_singles`` with its field's
labels and real reference channels of other fields, one composite per seed; Human Protein
Atlas, www.proteinatlas.org, CC BY-SA 3.0).  The features are extracted once.  The greens are
split into ``--folds`` groups; for each, the head is refitted (``headfit.fit_head``) on the
synthetic fields and the composites of the other greens only, put into a copy of the ensemble
in place of ``--member``, and that ensemble (its thresholds and calibration as they are) scores
the held-out greens' composites.  The ensemble as given scores the same composites.  Printed:
macro F1 over the classes present, mean average precision, the mean probability of the true
classes, wrong labels called with p > 0.9 and the largest wrong probability (as
``bench_real_proxy.py``).  The composites' reference channels are not their green's cells: a
proxy for real fields, not a real score.

    python benchmarks/bench_refit_cv.py models/default --member first-resnet10t --synth data/train1k
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]  # this checkout

from bench_real_proxy import DATA, score, write_composites, write_labels  # noqa: E402


def main(argv=None) -> None:
    from napari_hpa.bundled import resolve_models
    from napari_hpa.engine import Ensemble, ProviderRequest
    from napari_hpa.evaluate import collect
    from napari_hpa.headfit import DEFAULT_STRENGTH, extract, fit_head, write_model
    from napari_hpa.metrics import apply_thresholds

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", type=Path, help="ensemble folder or manifest")
    ap.add_argument("--member", required=True, help="the member whose head is refitted")
    ap.add_argument("--synth", type=Path, help="labelled synthetic fields fitted on beside the composites")
    ap.add_argument("--data", type=Path, default=DATA, help="the shared data folder (holds real/)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102, 103, 104, 105],
                    help="one composite per green and seed (default 100-105, the default's)")
    ap.add_argument("--folds", type=int, default=5, help="groups of greens (default 5)")
    ap.add_argument("--C", type=float, default=DEFAULT_STRENGTH, help=f"as refit-head (default {DEFAULT_STRENGTH})")
    ap.add_argument("--real-weight", type=float, default=1.0, help="weight of a composite (default 1)")
    ap.add_argument("--tta", default="d4", help="views fitted on (default d4, as refit-head)")
    ap.add_argument("--classes", help="refit only these class indices, as refit-head --classes (default all)")
    args = ap.parse_args(argv)
    classes = [int(c) for c in args.classes.split(",")] if args.classes else None

    manifest = resolve_models(args.models).resolve()
    ensemble = Ensemble.load(manifest, ProviderRequest())
    spec = next((m for m in ensemble.spec.members if m.name == args.member), None)
    if spec is None:
        raise SystemExit(f"{manifest}: no member {args.member!r}")
    member_path = Path(spec.path).resolve()
    if member_path.parent != manifest.parent:
        raise SystemExit(f"{manifest}: member {args.member!r} lies outside the ensemble's folder")
    with tempfile.TemporaryDirectory() as tmp:
        comp = Path(tmp) / "composites"
        comp.mkdir()
        rows = write_composites(args.data, comp, args.seeds)
        n_green = len(rows) // len(args.seeds)
        folders = ([(args.synth, 1.0)] if args.synth else []) + [(comp, args.real_weight)]
        ex = extract(member_path, folders, tta=args.tta)
        n_synth = ex.n_fields - len(rows)
        green = np.where(ex.field >= n_synth, (ex.field - n_synth) % n_green, -1)  # -1: synthetic
        folds = np.array_split(np.random.default_rng(0).permutation(n_green), args.folds)
        print(f"{len(rows)} composites ({n_green} real greens x {len(args.seeds)} seeds; Human Protein Atlas, "
              f"www.proteinatlas.org) + {n_synth} synthetic fields, views {args.tta}, C {args.C:g}, "
              f"composite weight {args.real_weight:g}, classes {args.classes or 'all'}; {args.folds} folds over the greens")
        probs = {"as given": [], "refitted (held out)": []}
        truth = []
        for k, held in enumerate(folds):
            fitted = fit_head(ex, args.C, np.flatnonzero(~np.isin(green, held)), classes)
            copy = Path(tmp) / f"fold{k}"
            shutil.copytree(manifest.parent, copy)
            target = copy / member_path.relative_to(manifest.parent)  # the member's file in the copy
            target.unlink()
            write_model(member_path, target, fitted, f"fold {k}")
            labels = Path(tmp) / f"held{k}.csv"
            write_labels(labels, [r for i, r in enumerate(rows) if i % n_green in held])
            for name, ens in (("as given", ensemble), ("refitted (held out)", Ensemble.load(copy / manifest.name))):
                col = collect(ens, comp, labels, tta="none")
                probs[name].append(col.probs)
            truth.append(col.y_true)
            print(f"fold {k + 1} of {args.folds} done", file=sys.stderr)
        y = np.concatenate(truth)
        print(f"{'ensemble':<22} {'classes':>7} {'F1':>6} {'mAP':>6} {'p true':>6} {'>0.9 wrong':>10} {'max wrong':>9}")
        for name, p in probs.items():
            p = np.concatenate(p)
            s = score(p, y, apply_thresholds(p, ensemble.thresholds, ensemble.spec.min_one_label))
            print(f"{name:<22} {s['classes']:>7} {s['f1']:>6.3f} {s['ap']:>6.3f} {s['p_true']:>6.3f} "
                  f"{s['wrong_09']:>10} {s['max_wrong']:>9.3f}  ({s['max_wrong_class']})")


if __name__ == "__main__":
    main()
