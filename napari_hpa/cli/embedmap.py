"""``napari-hpa map``: a 2-D map of a folder's embeddings, with each field's neighbours."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_map(args: argparse.Namespace) -> int:
    from ..embedmap import embedding_map, load_embeddings, map_csv
    from ..fileio import atomic_write_text, check_outputs

    check_outputs([("--out", args.out)], inputs=[("the embeddings file", args.embeddings)])
    ids, emb = load_embeddings(args.embeddings)
    m = embedding_map(ids, emb, method=args.method, seed=args.seed, k=args.neighbours)
    atomic_write_text(args.out, map_csv(m))
    print(f"wrote {args.out}: {len(ids)} fields mapped by {m.method.upper()}, "
          f"{m.neighbours.shape[1]} nearest neighbours each")
    return 0


def add_parsers(sub) -> None:
    from ..embedmap import DEFAULT_NEIGHBOURS, METHODS

    p = sub.add_parser(
        "map",
        help="a 2-D map of embeddings (predict --embeddings) with each field's nearest neighbours",
        description="Lay the embeddings of EMBEDDINGS.npz (written by 'predict --embeddings') out in "
        "two dimensions (UMAP on cosine distance when umap-learn is installed, else PCA) and find "
        "each field's nearest neighbours (exact cosine search). Writes Id,x,y,neighbours,similarities.",
    )
    p.add_argument("embeddings", type=Path, metavar="EMBEDDINGS.npz")
    p.add_argument("--out", type=Path, required=True, help="the map CSV to write")
    p.add_argument("--method", choices=METHODS, default="auto",
                   help="auto: UMAP when umap-learn is installed, else PCA (default auto)")
    p.add_argument("--neighbours", type=int, default=DEFAULT_NEIGHBOURS, metavar="K",
                   help=f"nearest neighbours per field (default {DEFAULT_NEIGHBOURS})")
    p.add_argument("--seed", type=int, default=0, help="random seed of the layout (default 0)")
    p.set_defaults(func=cmd_map)
