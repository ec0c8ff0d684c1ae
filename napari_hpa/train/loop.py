"""The training loop: seeded, a checkpoint per epoch, resumable.

A run folder holds

* ``config.json`` -- the arguments, the architecture and its build options, the data
  description (``trained_on``), the training class frequencies, versions;
* ``log.csv`` -- ``epoch,train_loss,val_loss,val_macro_f1,seconds`` (one row per epoch;
  the validation columns are empty without a validation split);
* ``val_probs.csv`` -- with a validation split, the probabilities of its images after the
  latest epoch (``Id`` + 28 class columns).  With ``--folds K``, running every fold gives
  out-of-fold probabilities for each labelled image, for ``napari-hpa labels import --probs``;
* ``last.pt`` -- the checkpoint written (atomically) after every epoch: model,
  optimizer, scheduler, the number of epochs done, the arguments and the
  architecture.  ``--resume`` continues from it up to ``--epochs``; ``--init`` starts a
  new run from another run's weights (same architecture, head included: fine-tuning).

Validation: ``--folds K --fold i`` holds out fold ``i`` of a multi-label stratified
K-fold split of the labels; ``--val-data DIR`` validates on another folder instead;
with neither, nothing is held out.  Validation F1 is the macro F1 at threshold 0.5
with the top class forced (fitted thresholds come later, at ``ensemble build``).
``--val-every N`` validates after every N-th epoch and after the last (0: the last only);
validation at a large ``--size`` can cost a quarter of an epoch.  Validation leaves the
random state alone, so how often it runs does not change the trained weights.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import TrainingError, file_errors
from ..fileio import atomic_write_bytes
from ..labels import write_probabilities
from .data import DataSpec, HPADataset, check_masks, describe_data, load_data, make_folds
from . import CROP_TARGETS, MAP_WEIGHT, PRECISIONS
from .losses import LOSSES, make_criterion, pos_weights
from .models import build_model, check_arch
from .randomise import profile

CHECKPOINT_VERSION = 1
LOG_HEADER = ["epoch", "train_loss", "val_loss", "val_macro_f1", "seconds"]


@dataclass
class TrainConfig:
    data: str
    arch: str
    out: str
    size: int = 256
    crop: int | None = None  # train on random crop x crop windows of the size input
    crop_targets: str = "image"  # "masks": a window's targets are the labelled classes whose mask reaches into it
    domain_rand: str = "none"  # intensity randomisation of training inputs (train.randomise.PROFILES)
    epochs: int = 10
    labels: str | None = None
    folds: int = 0
    fold: int = 0
    val_data: str | None = None
    val_every: int = 1  # validate after every N-th epoch and after the last (0: the last only)
    loss: str = "combo"
    map_weight: float = MAP_WEIGHT
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    resume: bool = False
    seed: int = 0
    threads: int | None = None
    precision: str = "fp32"  # "bf16": forward passes under CPU bfloat16 autocast (PRECISIONS)
    workers: int = 0
    pretrained: str | None = None
    init: str | None = None  # a run folder or checkpoint of the same architecture to start from
    backbone: str | None = None
    limit_steps: int | None = None  # steps per epoch (for timing runs and tests)
    quiet: bool = False
    cache: bool = True
    extra: dict = field(default_factory=dict)  # further build_model keyword arguments


class EpochSampler(torch.utils.data.Sampler):
    """Yields ``(epoch, j)``: a seeded permutation per epoch (the epoch seeds augmentation too)."""

    def __init__(self, n: int, seed: int, shuffle: bool):
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        order = np.random.default_rng((self.seed, self.epoch)).permutation(self.n) if self.shuffle else range(self.n)
        return iter((self.epoch, int(j)) for j in order)

    def __len__(self) -> int:
        return self.n


class _EpochDataset(torch.utils.data.Dataset):
    def __init__(self, base: HPADataset):
        self.base = base

    def __len__(self):
        return len(self.base)

    def __getitem__(self, key):
        epoch, j = key if isinstance(key, tuple) else (0, key)
        self.base.epoch = epoch
        return self.base[j]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_kwargs(cfg: TrainConfig, spec: DataSpec) -> dict:
    kw = dict(cfg.extra)
    if cfg.backbone:
        if cfg.arch not in ("dual-resnet34", "gapnet", "arcface-resnet"):
            raise TrainingError(f"--backbone applies to dual-resnet34, gapnet and arcface-resnet, not {cfg.arch}")
        kw["backbone"] = cfg.backbone
    if cfg.arch == "arcface-resnet":
        kw["num_ids"] = int(spec.antibody_ids.max()) + 1
    return kw


def _atomic_torch_save(obj, path: Path) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"checkpoint {path}: no such file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds
        raise TrainingError(f"checkpoint {path} cannot be read ({exc})") from None
    if not isinstance(ckpt, dict) or ckpt.get("napari_hpa_checkpoint") != CHECKPOINT_VERSION:
        raise TrainingError(f"checkpoint {path} is not a napari-hpa training checkpoint")
    return ckpt


def model_from_checkpoint(ckpt: dict):
    model = build_model(ckpt["arch"], **ckpt["build_kwargs"])
    model.load_state_dict(ckpt["model"])
    return model


def _val_split(cfg: TrainConfig, spec: DataSpec):
    """(train DataSpec, train indices, val DataSpec or None, val indices)."""
    if cfg.val_data:
        val = load_data(cfg.val_data)
        return np.arange(len(spec)), val, np.arange(len(val))
    if cfg.folds:
        if not 0 <= cfg.fold < cfg.folds:
            raise TrainingError(f"--fold must be in 0..{cfg.folds - 1} (got {cfg.fold})")
        tr, va = make_folds(spec.targets, cfg.folds, cfg.seed)[cfg.fold]
        return tr, spec, va
    return np.arange(len(spec)), None, np.zeros(0, np.int64)


def validate_inputs(cfg: TrainConfig):
    """Every check that needs no training; returns (spec, train_idx, val_spec, val_idx, resume ckpt)."""
    check_arch(cfg.arch)
    if cfg.loss not in LOSSES:
        raise TrainingError(f"unknown loss {cfg.loss!r}; choose one of {', '.join(LOSSES)}")
    if cfg.size < 32:
        raise TrainingError(f"--size must be at least 32 (got {cfg.size})")
    if cfg.crop is not None and not 32 <= cfg.crop <= cfg.size:
        raise TrainingError(f"--crop must be between 32 and --size {cfg.size} (got {cfg.crop})")
    if cfg.crop_targets not in CROP_TARGETS:
        raise TrainingError(f"unknown --crop-targets {cfg.crop_targets!r}; choose one of {', '.join(CROP_TARGETS)}")
    profile(cfg.domain_rand)  # an unknown level: a clear error
    if cfg.precision not in PRECISIONS:
        raise TrainingError(f"unknown --precision {cfg.precision!r}; choose one of {', '.join(PRECISIONS)}")
    if cfg.crop_targets == "masks" and cfg.crop is None:
        raise TrainingError("--crop-targets masks needs --crop (without a crop every window is the whole image)")
    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise TrainingError("--epochs and --batch-size must be positive")
    if cfg.val_every < 0:
        raise TrainingError(f"--val-every must be 0 or more (got {cfg.val_every})")
    if not cfg.map_weight >= 0:
        raise TrainingError(f"--map-weight must be 0 or more (got {cfg.map_weight})")
    out = Path(cfg.out)
    ckpt = None
    if cfg.resume:
        ckpt = load_checkpoint(out / "last.pt")
        if ckpt["arch"] != cfg.arch:
            raise TrainingError(
                f"checkpoint {out / 'last.pt'} is from architecture {ckpt['arch']!r}, not {cfg.arch!r}; "
                "pass the same --arch or start a new run folder"
            )
    elif (out / "last.pt").exists() or (out / "config.json").exists():
        raise TrainingError(f"{out} already holds a training run; pass --resume or choose a new --out folder")
    spec = load_data(cfg.data, cfg.labels)
    tr, val_spec, va = _val_split(cfg, spec)
    if len(tr) < 2:
        raise TrainingError("need at least 2 training images")
    if cfg.crop_targets == "masks":
        check_masks(spec, tr)
    if cfg.pretrained and cfg.pretrained != "timm" and not Path(cfg.pretrained).is_file():
        raise TrainingError(f"--pretrained {cfg.pretrained}: no such file")
    if cfg.init and not ckpt:
        if cfg.pretrained:
            raise TrainingError("--init already gives every weight; leave out --pretrained")
        init_checkpoint(cfg)  # fails early on a missing file or another architecture
    return spec, tr, val_spec, va, ckpt


def init_checkpoint(cfg: TrainConfig) -> dict:
    """The checkpoint named by ``--init`` (a run folder or its ``last.pt``), of ``cfg``'s architecture."""
    path = Path(cfg.init)
    if path.is_dir():
        path = path / "last.pt"
    ckpt = load_checkpoint(path)
    if ckpt["arch"] != cfg.arch:
        raise TrainingError(f"--init {path} is a run of architecture {ckpt['arch']!r}, not {cfg.arch!r}")
    theirs, ours = ckpt["build_kwargs"].get("backbone"), cfg.backbone
    if ours and theirs and ours != theirs:
        raise TrainingError(f"--init {path} has backbone {theirs!r}, not --backbone {ours!r}")
    return ckpt


def load_init(model, ckpt: dict) -> tuple[int, list[str]]:
    """Copy ``ckpt``'s weights into ``model`` where names and shapes agree.

    Returns (tensors loaded, names kept fresh): a head whose size depends on the data, such as
    the ArcFace head over another data set's antibodies, starts fresh.
    """
    own = model.state_dict()
    state = {k: v for k, v in ckpt["model"].items() if k in own and v.shape == own[k].shape}
    fresh = sorted(k for k in own if k not in state)
    if not state:
        raise TrainingError("--init: none of the checkpoint's tensors fit the model")
    model.load_state_dict(state, strict=False)
    return len(state), fresh


def _lr_lambda(total_steps: int, warmup: int):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        p = (step - warmup) / max(1, total_steps - warmup)
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, p)))

    return f


def _loader(ds: HPADataset, cfg: TrainConfig, shuffle: bool, seed: int):
    sampler = EpochSampler(len(ds), seed, shuffle)
    loader = torch.utils.data.DataLoader(
        _EpochDataset(ds),
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.workers,
        persistent_workers=cfg.workers > 0,
        drop_last=shuffle and len(ds) > cfg.batch_size,
    )
    return loader, sampler


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def _forward(model, image: torch.Tensor, precision: str) -> dict:
    """The model's outputs, in float32 whatever ``precision`` the forward pass ran in.

    ``bf16`` runs convolutions and matrix products under CPU bfloat16 autocast (weights,
    gradients, optimiser state and losses stay float32): about twice as fast where the CPU has
    AMX or AVX512-BF16, slower where it has neither.
    """
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        out = model(_channels_last(image))
    return {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in out.items()}


def evaluate_split(model, loader, criterion, same_ids: bool = True,
                   precision: str = "fp32") -> tuple[float, float, np.ndarray]:
    """(val loss, macro F1 at 0.5 with the top class forced, probabilities).

    ``same_ids``: the validation images' antibody ids index the training ArcFace head
    (a held-out fold); for another folder they do not, and the ArcFace term is left out.
    """
    from ..metrics import macro_f1, apply_thresholds

    model.eval()
    losses, probs, targets = [], [], []
    with torch.no_grad():
        for batch in loader:
            out = _forward(model, batch["image"], precision)
            if not same_ids:
                batch = {k: v for k, v in batch.items() if k != "antibody"}
            loss, _ = criterion(out, batch)
            losses.append(float(loss) * len(batch["image"]))
            probs.append(torch.sigmoid(out["logits"]).numpy())
            targets.append(batch["target"].numpy())
    p, t = np.concatenate(probs), np.concatenate(targets)
    f1 = macro_f1(t, apply_thresholds(p, np.full(p.shape[1], 0.5), True))
    return sum(losses) / len(p), f1, p


def train(cfg: TrainConfig, log=print) -> dict:
    """Run (or resume) training; returns a summary dict."""
    spec, tr_idx, val_spec, va_idx, ckpt = validate_inputs(cfg)
    out = Path(cfg.out)
    with file_errors(out, writing=True):
        out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    seed_everything(cfg.seed)
    if cfg.init and not ckpt:
        init = init_checkpoint(cfg)
        kw = {**init["build_kwargs"], **build_kwargs(cfg, spec)}
    else:
        init = None
        kw = ckpt["build_kwargs"] if ckpt else build_kwargs(cfg, spec)
    model = build_model(cfg.arch, pretrained=None if ckpt else cfg.pretrained, **kw)
    if ckpt:
        model.load_state_dict(ckpt["model"])
    elif init:
        n, fresh = load_init(model, init)
        log(f"--init {cfg.init}: {n} tensors loaded" + (f"; starting fresh: {', '.join(fresh)}" if fresh else ""))
    model = model.to(memory_format=torch.channels_last)  # ~10 % faster convolutions on CPU
    pw = pos_weights(torch.from_numpy(spec.targets[tr_idx]))
    criterion = make_criterion(cfg.arch, cfg.loss, pw, model, cfg.map_weight)
    train_ds = HPADataset(spec, tr_idx, cfg.size, augment=True, seed=cfg.seed, cache=cfg.cache, crop=cfg.crop,
                          crop_targets=cfg.crop_targets, domain_rand=cfg.domain_rand)
    train_loader, train_sampler = _loader(train_ds, cfg, True, cfg.seed)
    val_loader = None
    if val_spec is not None and len(va_idx):
        val_loader, _ = _loader(HPADataset(val_spec, va_idx, cfg.size, cache=cfg.cache), cfg, False, cfg.seed)
    steps_per_epoch = len(train_loader)
    if cfg.limit_steps:
        steps_per_epoch = min(steps_per_epoch, cfg.limit_steps)
    total_steps = steps_per_epoch * cfg.epochs
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(total_steps, max(1, min(100, total_steps // 20))))
    start = 0
    if ckpt:
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        start = int(ckpt["epoch"])
        torch.set_rng_state(ckpt["torch_rng"])
        if start >= cfg.epochs:
            log(f"{out}: already trained {start} epochs (--epochs {cfg.epochs}); nothing to do")
    trained_on = describe_data(cfg.data, len(spec))
    config = {
        "napari_hpa_run": 1,
        "args": {**{k: v for k, v in asdict(cfg).items() if k not in ("resume", "quiet")},
                 "data": str(Path(cfg.data).resolve())},
        "arch": cfg.arch,
        "build_kwargs": kw,
        "input_size": cfg.size,
        "trained_on": trained_on,
        "data": str(Path(cfg.data).resolve()),
        "n_train": int(len(tr_idx)),
        "n_val": int(len(va_idx)),
        "train_class_frequencies": [round(float(f), 6) for f in spec.targets[tr_idx].mean(0)],
        "versions": {"torch": torch.__version__, "timm": __import__("timm").__version__},
    }
    log_path = out / "log.csv"
    with file_errors(out, writing=True):
        (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        if not log_path.exists():
            log_path.write_text(",".join(LOG_HEADER) + "\n")

    from tqdm import tqdm

    t_run = time.perf_counter()
    history = []
    for epoch in range(start, cfg.epochs):
        model.train()
        train_sampler.set_epoch(epoch)
        t0 = time.perf_counter()
        seen, loss_sum = 0, 0.0
        bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step",
                   file=sys.stderr, disable=cfg.quiet, dynamic_ncols=True)
        for step, batch in enumerate(train_loader):
            if step >= steps_per_epoch:
                break
            out_t = _forward(model, batch["image"], cfg.precision)
            loss, parts = criterion(out_t, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            n = len(batch["image"])
            seen += n
            loss_sum += float(loss.detach()) * n
            dt = time.perf_counter() - t0
            left = (cfg.epochs - epoch) * steps_per_epoch - (step + 1)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", img_s=f"{seen / dt:.1f}",
                            eta_run=f"{left * dt / (step + 1) / 60:.1f}min")
            bar.update(1)
        bar.close()
        train_loss = loss_sum / max(seen, 1)
        val_loss = val_f1 = None
        last = epoch + 1 == cfg.epochs
        if val_loader is not None and (last or (cfg.val_every and (epoch + 1) % cfg.val_every == 0)):
            # the loader draws a base seed from torch's generator: keep it off the training's stream
            with torch.random.fork_rng(devices=[]):
                val_loss, val_f1, val_probs = evaluate_split(model, val_loader, criterion, val_spec is spec,
                                                                 cfg.precision)
            write_probabilities(out / "val_probs.csv", [val_spec.ids[i] for i in va_idx], val_probs)
        seconds = time.perf_counter() - t0
        _atomic_torch_save(
            {
                "napari_hpa_checkpoint": CHECKPOINT_VERSION,
                "arch": cfg.arch,
                "build_kwargs": kw,
                "input_size": cfg.size,
                "trained_on": trained_on,
                "args": config["args"],
                "epoch": epoch + 1,
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "torch_rng": torch.get_rng_state(),
            },
            out / "last.pt",
        )
        row = [epoch + 1, f"{train_loss:.6f}", "" if val_loss is None else f"{val_loss:.6f}",
               "" if val_f1 is None else f"{val_f1:.4f}", f"{seconds:.1f}"]
        with file_errors(log_path, writing=True), open(log_path, "a", newline="") as fh:
            csv.writer(fh).writerow(row)
        history.append(dict(zip(LOG_HEADER, row)))
        log(f"epoch {epoch + 1}/{cfg.epochs}: train loss {train_loss:.4f}"
            + ("" if val_loss is None else f", val loss {val_loss:.4f}, val macro F1 {val_f1:.4f}")
            + f" ({seconds:.0f} s)")
    return {"out": str(out), "epochs_done": max(start, cfg.epochs), "history": history,
            "seconds": time.perf_counter() - t_run}
