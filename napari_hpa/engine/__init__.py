"""The ONNX ensemble engine (core: onnxruntime, no torch, no Qt)."""

from .contract import CONTRACT_VERSION, ModelContractError, ModelInfo, check_contract, contract_metadata
from .ensemble import (
    Ensemble,
    EnsembleError,
    EnsembleSpec,
    MemberSpec,
    Prediction,
    apply_thresholds,
    attention_layer_geometry,
    read_manifest,
    write_manifest,
)
from .providers import PROVIDER_CHOICES, ProviderError, ProviderRequest

__all__ = [
    "CONTRACT_VERSION",
    "PROVIDER_CHOICES",
    "Ensemble",
    "EnsembleError",
    "EnsembleSpec",
    "MemberSpec",
    "ModelContractError",
    "ModelInfo",
    "Prediction",
    "ProviderError",
    "ProviderRequest",
    "apply_thresholds",
    "attention_layer_geometry",
    "check_contract",
    "contract_metadata",
    "read_manifest",
    "write_manifest",
]
