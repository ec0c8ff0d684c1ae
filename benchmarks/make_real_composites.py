"""Write a labelled folder of real-protein composites, for ``napari-hpa models refit-head``.

Each of the 50 real green channels of ``shared/data/real/kaggle_singles`` (Kaggle 2018 training
fields; Human Protein Atlas, www.proteinatlas.org, CC BY-SA 3.0), with its field's labels, makes
one composite per seed: its own green, with red, blue and yellow drawn from the real single
channels of other fields (the composites of ``bench_real_proxy.py``).  The files are links to
the singles, so nothing is copied; keep the folder outside the repository.

    python benchmarks/make_real_composites.py --out data/real --seeds 100 101 102 103 104 105
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]  # this checkout

from bench_real_proxy import DATA, write_composites  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="new folder to write")
    ap.add_argument("--data", type=Path, default=DATA, help="the shared data folder (holds real/)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="one composite per green and seed")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=False)
    labels = write_composites(args.data, args.out, args.seeds)
    print(f"wrote {len(labels)} composites and labels.csv to {args.out} (Human Protein Atlas, www.proteinatlas.org)")


if __name__ == "__main__":
    main()
