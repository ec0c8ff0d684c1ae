"""``napari-hpa info``: versions, execution providers that actually start, the ensemble."""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path

from . import __version__
from .bundled import resolve_models
from .errors import HPAError

PACKAGES = ("napari", "numpy", "onnxruntime", "onnxruntime-gpu", "onnx", "torch", "timm", "PyQt6")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def collect_info(models: Path | None = None, device_id: int = 0) -> dict:
    """Everything ``info`` prints, as a dict (``--json``)."""
    from .engine.ensemble import Ensemble
    from .engine.providers import ProviderRequest, available_providers, short_name

    info: dict = {
        "napari-hpa": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {p: v for p in PACKAGES if (v := _version(p))},
        "providers_compiled_in": available_providers(),
    }
    try:
        path = resolve_models(models)
    except HPAError as exc:
        info["ensemble"] = {"error": str(exc)}
        info["providers_working"] = "not tested (no model to test with)"
        return info
    working = {}
    ensemble = None
    for choice in ("cpu", "cuda", "tensorrt"):
        try:
            ens = Ensemble.load(path, ProviderRequest(choice, device_id))
        except HPAError as exc:
            working[choice] = f"no: {exc}"
            continue
        used = sorted({short_name(p) for ps in ens.providers.values() for p in ps})
        working[choice] = f"yes (session runs on {', '.join(used)})"
        ensemble = ensemble or ens
    info["providers_working"] = working
    if ensemble is not None:
        info["ensemble"] = {
            "path": str(path),
            "name": ensemble.name,
            "tta": ensemble.spec.tta,
            "combine": ensemble.spec.combine,
            "members_combined_by": "per-class logistic stacking" if ensemble.spec.stacking is not None else "weights",
            "trained_on": ensemble.trained_on,
            "domain": None if ensemble.domain is None else {
                "file": str(ensemble.spec.domain),
                "computed_from": ensemble.domain.description,
                "features_from": ensemble.domain.features_from,
            },
            "calibration": None if ensemble.spec.calibration is None else {
                "temperature": ensemble.spec.calibration.temperature,
                "out_of_domain": ensemble.spec.calibration.out_of_domain,
                "words": ensemble.spec.calibration.words,
            },
            "members": [
                {
                    "name": m.name,
                    "file": str(m.spec.path),
                    "weight": m.spec.weight,
                    "arch": m.info.arch,
                    "input_size": m.info.input_size,
                    "attention": list(m.info.attention_shape) if m.info.has_attention else None,
                    "embedding_dim": m.info.embedding_dim,
                    "trained_on": m.info.trained_on,
                }
                for m in ensemble.members
            ],
        }
    return info


def format_info(info: dict) -> str:
    lines = [
        f"napari-hpa {info['napari-hpa']} (Python {info['python']}, {info['platform']})",
        "packages: " + ", ".join(f"{k} {v}" for k, v in info["packages"].items()),
        "onnxruntime providers compiled in: " + ", ".join(info["providers_compiled_in"]),
    ]
    working = info["providers_working"]
    if isinstance(working, dict):
        lines.append("providers that start:")
        lines += [f"  {k}: {v}" for k, v in working.items()]
    else:
        lines.append(f"providers that start: {working}")
    ens = info.get("ensemble", {})
    if "error" in ens:
        lines.append(f"ensemble: {ens['error']}")
    elif ens:
        lines.append(
            f"ensemble {ens['name']!r} ({ens['path']}), TTA {ens['tta']} combined by {ens['combine']}, "
            f"members combined by {ens['members_combined_by']}:"
        )
        lines.append(f"  trained on: {ens['trained_on']}")
        dom = ens["domain"]
        lines.append(
            f"  domain record: {dom['computed_from']} ({dom['file']})" if dom else
            "  domain record: none (every field's domain is unknown; add one with 'napari-hpa models domain')"
        )
        if ens.get("calibration"):
            lines.append(f"  calibration: {ens['calibration']['words']}")
        for m in ens["members"]:
            extras = []
            if m["attention"]:
                extras.append(f"attention {m['attention'][0]}x{m['attention'][1]}")
            if m["embedding_dim"]:
                extras.append(f"embedding {m['embedding_dim']}-d")
            lines.append(
                f"  {m['name']}: {m['arch']} @ {m['input_size']} px, weight {m['weight']}"
                + (f", {', '.join(extras)}" if extras else "")
                + f"; trained on {m['trained_on']}"
            )
    return "\n".join(lines)
