"""Where the bundled default ensemble lives, and how ``--models`` is resolved."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import HPAError

#: ``napari_hpa/models`` links to the repository's ``models/`` folder (a copy in a wheel).
MODELS_DIR = Path(__file__).resolve().parent / "models"
ENV_VAR = "NAPARI_HPA_MODELS"


def default_ensemble_path() -> Path:
    """``$NAPARI_HPA_MODELS`` if set, else the bundled ``models/default/ensemble.json``."""
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else MODELS_DIR / "default" / "ensemble.json"


def resolve_models(models: str | Path | None) -> Path:
    """The ensemble to load: ``models`` as given, or the default; an error if it is absent."""
    path = Path(models) if models is not None else default_ensemble_path()
    if path.is_dir() and (path / "ensemble.json").is_file():
        path = path / "ensemble.json"
    if not path.exists():
        if models is None:
            raise HPAError(
                f"no default ensemble at {path}; pass --models with an ensemble.json "
                f"or .onnx file (or set {ENV_VAR})"
            )
        raise HPAError(f"{path}: no such model or ensemble file")
    return path
