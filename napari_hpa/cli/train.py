"""``napari-hpa train`` and ``napari-hpa export``: argparse only; torch is imported
inside the command functions, so ``napari-hpa --help`` does not load it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import TrainingError
from ..train import CROP_TARGETS, DOMAIN_RAND, FIXED_ARCHS, LOSSES, MAP_WEIGHT, PRECISIONS
from .options import batch_size_option, quiet_option, renamed

ARCH_HELP = f"{', '.join(FIXED_ARCHS)}, or timm:NAME (any timm backbone)"


def _need_torch() -> None:
    try:
        import timm  # noqa: F401
        import torch  # noqa: F401
    except ImportError as exc:
        raise TrainingError(f"training needs the 'train' extra ({exc}); pip install 'napari-hpa[train]'") from None


def cmd_train(args: argparse.Namespace) -> int:
    _need_torch()
    from ..train.loop import TrainConfig, train

    cfg = TrainConfig(
        data=str(args.data), labels=None if args.labels is None else str(args.labels), arch=args.arch,
        size=args.size, crop=args.crop, crop_targets=args.crop_targets,
        domain_rand=args.domain_rand, epochs=args.epochs, out=str(args.out),
        folds=args.folds, fold=args.fold,
        val_data=None if args.val_data is None else str(args.val_data), val_every=args.val_every, loss=args.loss,
        batch_size=args.batch_size, lr=args.lr, resume=args.resume, seed=args.seed, threads=args.threads,
        precision=args.precision,
        workers=args.workers, pretrained=args.pretrained, init=None if args.init is None else str(args.init),
        backbone=args.backbone,
        limit_steps=args.limit_steps, quiet=args.quiet, map_weight=args.map_weight,
    )
    summary = train(cfg, log=lambda m: print(m, file=sys.stderr))
    print(f"trained {summary['epochs_done']} epochs; run folder {summary['out']} "
          f"(last.pt, config.json, log.csv)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    _need_torch()
    from ..train.export import export_run, parse_thresholds

    report = export_run(
        args.run_dir, args.out, int8=args.int8, calib=args.calib,
        thresholds=parse_thresholds(args.threshold), data=args.data,
        log=lambda m: print(m, file=sys.stderr),
    )
    print(report)
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a model on a folder of image sets (needs the 'train' extra)",
        description="Train an architecture on DIR's image sets and labels; writes the --out RUN_DIR: config.json, "
        "log.csv and last.pt (a checkpoint after every epoch; --resume continues from it).",
    )
    renamed(p, "data", "--data", required=True, type=Path, metavar="DIR", help="folder of image sets")
    p.add_argument("--labels", type=Path, metavar="CSV", help="labels CSV (default DIR/labels.csv)")
    p.add_argument("--arch", required=True, help=ARCH_HELP)
    p.add_argument("--size", type=int, default=256, help="input size in pixels (default 256)")
    p.add_argument("--crop", type=int, metavar="C",
                   help="train on random C x C windows of the --size input, at its scale: the detail of "
                   "--size for the cost of C (validation and export use the whole input; default: no crop)")
    p.add_argument("--crop-targets", choices=CROP_TARGETS, default="image",
                   help="with --crop, what a window is trained to predict: the image's labels (image, the "
                   "default), or those of its labelled classes whose ground-truth mask (DIR/masks/ID.npz, "
                   "written by napari-hpa synth) reaches into the window (masks), so that small windows "
                   "do not learn labels they cannot see")
    p.add_argument("--domain-rand", choices=DOMAIN_RAND, default="none",
                   help="randomise training inputs' intensities so that a model meets real fields' spread: "
                   "per-channel and field-wide gain, gamma, background offset, blur and noise. Levels: 'default' "
                   "(ranges fitted to real HPA fields against generator v2 data), 'mild' (gains centred on 1, "
                   "narrower: for generator v3 data, whose intensities already spread like real ones), 'strong' "
                   "(wider, and wider scale jitter), 'none' (no randomisation; used when the option is left "
                   "out). Masks and targets are unchanged; "
                   "validation and export see plain inputs; see docs/training.md")
    p.add_argument("--epochs", type=int, default=10, help="epochs in all (default 10)")
    p.add_argument("--out", type=Path, required=True, metavar="RUN_DIR", help="run folder")
    p.add_argument("--folds", type=int, default=0, metavar="K",
                   help="multi-label stratified K folds; validate on fold --fold (default: no split)")
    p.add_argument("--fold", type=int, default=0, metavar="I", help="the held-out fold (default 0)")
    p.add_argument("--val-data", type=Path, metavar="DIR", help="validate on another folder instead")
    p.add_argument("--val-every", type=int, default=1, metavar="N",
                   help="validate after every N-th epoch and after the last; 0: after the last only "
                   "(default 1). Validation does not change the trained weights")
    p.add_argument("--loss", choices=LOSSES, default="combo",
                   help="classification loss (default combo = focal + symmetric Lovasz + hard-negative BCE)")
    p.add_argument("--map-weight", type=float, default=MAP_WEIGHT, metavar="W",
                   help=f"dual-resnet34: weight of the attention-map BCE (default {MAP_WEIGHT:g}, the 4th place's)")
    batch_size_option(p, "train", help="images per step")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (AdamW, cosine; default 1e-3)")
    p.add_argument("--resume", action="store_true", help="continue RUN_DIR/last.pt up to --epochs")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="forward passes in float32 (default) or under CPU bfloat16 autocast (bf16: about twice "
                   "as fast on CPUs with AMX or AVX512-BF16, slower on others; weights, gradients and losses "
                   "stay float32, and export writes float32 models either way)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    p.add_argument("--backbone", help="backbone of dual-resnet34 / gapnet / arcface-resnet (e.g. resnet18)")
    p.add_argument("--pretrained", metavar="PATH|timm",
                   help="backbone weights: a state-dict file (3-channel ones are adapted: yellow from red) "
                   "or 'timm' for timm's hub weights")
    p.add_argument("--init", type=Path, metavar="RUN",
                   help="start from the weights of another run of the same --arch (its folder or last.pt), "
                   "head included, e.g. to fine-tune a trained model on your own labels; "
                   "the optimizer and schedule start anew (--resume continues the new run)")
    p.add_argument("--limit-steps", type=int, metavar="N", help="at most N steps per epoch (quick runs)")
    quiet_option(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "export",
        help="export a training run to an ONNX model that meets the model contract",
        description="Export RUN_DIR/last.pt to ONNX (opset 17, dynamic batch, contract metadata), check it "
        "with onnxruntime and compare its logits with torch on images of the training data.",
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p.add_argument("--out", type=Path, required=True, help="the .onnx file to write")
    p.add_argument("--int8", action="store_true", help="static int8 quantisation (QDQ, per-channel)")
    p.add_argument("--calib", type=Path, metavar="DIR", help="calibration image sets for --int8")
    renamed(p, "--threshold", "--thresholds", metavar="T",
            help="per-class thresholds to store: one number, 28 comma-separated, or a JSON file")
    p.add_argument("--data", type=Path, metavar="DIR",
                   help="images for the parity check (default: the run's training data)")
    p.set_defaults(func=cmd_export)
