"""onnxruntime execution providers: choose, start, fall back, and report what runs.

``auto`` tries CUDA and falls back to the CPU; ``cuda`` and ``tensorrt`` insist
(a provider that fails to start raises :class:`ProviderError` instead of
running silently on the CPU); ``cpu`` is the CPU alone.  What is reported is
always ``session.get_providers()``: the providers actually in use, never the
ones merely compiled in.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import io
import os
import sys
from dataclasses import dataclass

from ..errors import HPAError

PROVIDER_CHOICES = ("auto", "cuda", "tensorrt", "cpu")
_SHORT = {
    "CPUExecutionProvider": "cpu",
    "CUDAExecutionProvider": "cuda",
    "TensorrtExecutionProvider": "tensorrt",
}


class ProviderError(HPAError):
    """The execution provider asked for could not be started."""


@dataclass(frozen=True)
class ProviderRequest:
    provider: str = "auto"
    device_id: int = 0
    threads: int = 0  # 0: onnxruntime's default (all cores)

    def __post_init__(self):
        if self.provider not in PROVIDER_CHOICES:
            raise ProviderError(
                f"unknown provider {self.provider!r}; choose one of {', '.join(PROVIDER_CHOICES)}"
            )
        if self.threads < 0:
            raise ProviderError(f"threads must be 0 (all cores) or more, not {self.threads}")


def short_name(provider: str) -> str:
    return _SHORT.get(provider, provider)


def available_providers() -> list[str]:
    """Providers compiled into this onnxruntime (not necessarily working)."""
    import onnxruntime as ort

    return list(ort.get_available_providers())


# the NVIDIA driver's user-space library, without which no CUDA provider can start
_DRIVER_LIBRARY = {"linux": "libcuda.so.1", "win32": "nvcuda.dll"}


@functools.cache
def _missing_gpu_driver() -> str | None:
    """Why the NVIDIA driver cannot be used here, or ``None`` when its library loads.

    Checked before anything else of CUDA's is loaded: onnxruntime's own CUDA start
    (``preload_dlls`` and the provider library) holds the GIL for a few hundred ms
    and then fails anyway on a machine without the driver, which would freeze the
    viewer while a worker thread loads an ensemble.  Platforms whose driver library
    is not known here are not checked.
    """
    name = _DRIVER_LIBRARY.get(sys.platform)
    if name is None:
        return None
    try:
        ctypes.CDLL(name)
    except OSError:
        return f"no NVIDIA driver ({name} could not be loaded)"
    return None


@functools.cache
def _preload_gpu_libraries() -> None:
    """Load CUDA/cuDNN from the nvidia-* wheels or torch, when present (onnxruntime >= 1.21)."""
    import onnxruntime as ort

    if hasattr(ort, "preload_dlls"):
        with contextlib.suppress(Exception), _quiet_fd(2):
            ort.preload_dlls()


def _wanted(request: ProviderRequest) -> list:
    opts = {"device_id": request.device_id}
    if request.provider == "cpu":
        return ["CPUExecutionProvider"]
    if request.provider == "tensorrt":
        return [
            ("TensorrtExecutionProvider", opts),
            ("CUDAExecutionProvider", opts),
            "CPUExecutionProvider",
        ]
    return [("CUDAExecutionProvider", opts), "CPUExecutionProvider"]


def create_session(model, request: ProviderRequest = ProviderRequest()):
    """An ``InferenceSession`` for ``model`` (path or bytes) under ``request``.

    Returns ``(session, note)`` where ``note`` says why a GPU provider is not in
    use (``None`` when everything asked for runs).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if request.threads:
        options.intra_op_num_threads = request.threads
    model_arg = os.fspath(model) if isinstance(model, os.PathLike) else model

    wanted = _wanted(request)
    compiled = set(available_providers())
    gpu = [p if isinstance(p, str) else p[0] for p in wanted if p != "CPUExecutionProvider"]
    missing = [p for p in gpu if p not in compiled]
    note = None
    if request.provider in ("cuda", "tensorrt") and missing:
        raise ProviderError(
            f"{short_name(missing[0])} was asked for, but this onnxruntime has no "
            f"{missing[0]} (it has {', '.join(sorted(compiled))}); install onnxruntime-gpu, "
            "or use --provider auto or cpu"
        )
    wanted = [p for p in wanted if (p if isinstance(p, str) else p[0]) in compiled]
    failure = ""
    if gpu and not missing:
        failure = _missing_gpu_driver() or ""
        if failure and request.provider in ("cuda", "tensorrt"):  # insisted on: no model to load
            raise ProviderError(_not_in_use(gpu, failure) + _INSIST)
        if failure:  # do not even try: it would fail, slowly
            wanted = ["CPUExecutionProvider"]
        else:
            _preload_gpu_libraries()
    elif gpu and request.provider == "auto":
        note = f"{', '.join(short_name(p) for p in missing)} not in this onnxruntime build"

    printed = io.StringIO()
    try:
        # onnxruntime reports a provider failure itself: in C++ on stderr, and with
        # print() ("EP Error ... Falling back to CPU") on stdout; keep both for the note
        with _ort_quiet(), _quiet_fd(2), contextlib.redirect_stdout(printed):
            session = ort.InferenceSession(model_arg, sess_options=options, providers=wanted)
        failure = failure or _ep_error(printed.getvalue())
    except Exception as exc:  # a provider that throws while starting
        if wanted == ["CPUExecutionProvider"]:
            raise
        failure = f"{type(exc).__name__}: {exc}".splitlines()[0]
        session = ort.InferenceSession(
            model_arg, sess_options=options, providers=["CPUExecutionProvider"]
        )
    used = session.get_providers()
    not_started = [p for p in gpu if p in compiled and p not in used]
    if not_started:
        msg = _not_in_use(not_started, failure or "it failed to start (no GPU, or CUDA/cuDNN libraries not found)")
        if request.provider in ("cuda", "tensorrt"):
            raise ProviderError(msg + _INSIST)
        note = msg + "; running on the CPU"
    return session, note


_INSIST = "; use --provider auto to fall back to the CPU"


def _not_in_use(providers: list[str], why: str) -> str:
    return f"{', '.join(short_name(p) for p in providers)} provider not in use: {why}"


def _ep_error(text: str) -> str:
    """The gist of onnxruntime's printed 'EP Error' message, if any."""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("EP Error"):
            return line[len("EP Error") :].strip()[:300]
    return ""


@contextlib.contextmanager
def _ort_quiet():
    import onnxruntime as ort

    ort.set_default_logger_severity(4)
    try:
        yield
    finally:
        ort.set_default_logger_severity(2)


@contextlib.contextmanager
def _quiet_fd(fd: int):
    """Silence a C-level file descriptor (onnxruntime's provider bridge logs to stderr)."""
    try:
        saved = os.dup(fd)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
