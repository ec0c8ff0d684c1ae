"""The ONNX ensemble engine (core: onnxruntime, no torch, no Qt).

The names below are imported from their submodules on first use, so that a light
submodule (``engine.tta``, ``engine.providers``) can be imported alone, e.g. by the
command line's parser, without loading the manifest schema and the ensemble.
"""

from importlib import import_module

_SUBMODULE = {
    "CONTRACT_VERSION": "contract",
    "ModelContractError": "contract",
    "ModelInfo": "contract",
    "check_contract": "contract",
    "contract_metadata": "contract",
    "Ensemble": "ensemble",
    "EnsembleError": "ensemble",
    "EnsembleSpec": "ensemble",
    "MemberSpec": "ensemble",
    "Prediction": "ensemble",
    "apply_thresholds": "ensemble",
    "attention_layer_geometry": "ensemble",
    "read_manifest": "ensemble",
    "write_manifest": "ensemble",
    "PROVIDER_CHOICES": "providers",
    "ProviderError": "providers",
    "ProviderRequest": "providers",
}

__all__ = sorted(_SUBMODULE)  # noqa: PLE0605 (the names above)


def __getattr__(name: str):
    if name not in _SUBMODULE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_SUBMODULE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SUBMODULE))
