"""How an ensemble's domain record answers fields of its domain and fields beyond it.

Scores with ``predict``'s engine (``--tta none`` by default), and prints for each group how
many fields the record calls out of the domain and the spread of their domain scores:

* ``held-out``: the first ``--n`` image sets of ``--synth``, fields of the ensemble's own
  domain that it was not built on (for the default: a generator v3 test split);
* ``real composites``: real single channels of different Kaggle 2018 fields put together
  (one per real green channel of ``real/kaggle_singles``; see ``bench_real_proxy.py``);
* ``shuffled``: the same ``--n`` held-out fields with their channels in another order (each
  permutation of ``SHUFFLES`` on an equal share of them);
* the complete real fields of the shared data folder, one line each with the reason.

Real images: Human Protein Atlas, www.proteinatlas.org (CC BY-SA 3.0).  Prints figures only.

    python benchmarks/bench_domain.py --synth data/test [--models models/default] [--n 300]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]  # this checkout

from bench_gain_robustness import DATA, FIELD  # noqa: E402  the shared data, the labelled field
from bench_real_proxy import composites  # noqa: E402

from napari_hpa.classes import CHANNELS  # noqa: E402

V18_FIELD = "800_A6_1"  # the HPA v18 JPEG set of the shared data
#: channel orders, as the source channel of each of red, green, blue, yellow
SHUFFLES = {
    "rotated": (1, 2, 3, 0),
    "red-yellow swapped": (3, 1, 2, 0),
    "green-blue swapped": (0, 2, 1, 3),
    "red-blue swapped": (2, 1, 0, 3),
}


def link_sets(sources, out: Path, order=(0, 1, 2, 3), prefix: str = "") -> list[str]:
    """Links in ``out`` that make each source set a set again, its channels taken in ``order``."""
    ids = []
    for source in sources:
        new_id = prefix + source.id
        for colour, src in zip(CHANNELS, order):
            path = source.channel_files[CHANNELS[src]][0].resolve()
            (out / f"{new_id}_{colour}{path.suffix}").symlink_to(path)
        ids.append(new_id)
    return ids


def summary(verdicts) -> str:
    scores = np.array([v.score for v in verdicts])
    out = sum(v.in_domain is False for v in verdicts)
    q = np.percentile(scores, [0, 50, 100])
    return f"{out:>4} of {len(verdicts):<4} out ({100 * out / len(verdicts):5.1f} %); scores {q[0]:.2f} / {q[1]:.2f} / {q[2]:.2f}"


def main(argv=None) -> None:
    from napari_hpa.bundled import default_ensemble_path
    from napari_hpa.engine import Ensemble, ProviderRequest
    from napari_hpa.evaluate import collect
    from napari_hpa.imageset import find_sets

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, default=default_ensemble_path(), help="ensemble (default: the bundled one)")
    ap.add_argument("--synth", type=Path, required=True, help="held-out fields of the ensemble's domain")
    ap.add_argument("--n", type=int, default=300, help="held-out fields to score, and to shuffle (default 300)")
    ap.add_argument("--data", type=Path, default=DATA, help="the shared data folder (holds real/)")
    ap.add_argument("--seed", type=int, default=0, help="which reference channels go with each real green")
    ap.add_argument("--tta", default="none", help="test-time augmentation (default none)")
    args = ap.parse_args(argv)
    ens = Ensemble.load(args.models, ProviderRequest())
    if ens.domain is None:
        raise SystemExit(f"{args.models}: the ensemble has no domain record")
    sources = find_sets(args.synth)[: args.n]
    print(f"{args.models}: domain record of {ens.domain.n_images} fields, views {', '.join(ens.domain.parts)}; "
          f"tta {args.tta}; providers {', '.join(sorted({p for ps in ens.providers.values() for p in ps}))}")

    def verdicts(folder: Path):
        return collect(ens, folder, tta=args.tta, labelled=False).verdicts

    with tempfile.TemporaryDirectory() as tmp:
        groups = {name: Path(tmp) / name for name in ("held", "comp", "shuffled")}
        for folder in groups.values():
            folder.mkdir()
        link_sets(sources, groups["held"])
        n_comp = len(composites(args.data, groups["comp"], args.seed))  # unlabelled: no labels.csv
        kinds = {}
        for k, (name, order) in enumerate(SHUFFLES.items()):
            for i in link_sets(sources[k :: len(SHUFFLES)], groups["shuffled"], order, prefix=f"s{k}-"):
                kinds[i] = name
        print(f"{'held-out fields':<34} {summary(verdicts(groups['held']))}")
        print(f"{f'real composites ({n_comp})':<34} {summary(verdicts(groups['comp']))}")
        col = collect(ens, groups["shuffled"], tta=args.tta, labelled=False)
        by_id = dict(zip(col.ids, col.verdicts))
        print(f"{'shuffled fields':<34} {summary(col.verdicts)}")
        for name in SHUFFLES:
            print(f"{'  ' + name:<34} {summary([v for i, v in by_id.items() if kinds[i] == name])}")
    for field in (FIELD, V18_FIELD):
        with tempfile.TemporaryDirectory() as tmp:
            found = [s for s in find_sets(args.data / "real") if s.id == field]
            if not found:
                print(f"real field {field}: not in {args.data / 'real'}")
                continue
            link_sets(found, Path(tmp))
            v = verdicts(Path(tmp))[0]
            print(f"real field {field[:8]:<23} {v.word} (score {v.score:.2f}){': ' + v.reason if v.reason else ''}")


if __name__ == "__main__":
    main()
