"""ONNX Runtime sessions, in one place: provider choice, thread counts, optimisation, warm-up.

`onnxruntime-gpu` lists CUDAExecutionProvider whether or not a GPU and its
libraries are usable, and falls back to CPU when they are not. So the
provider that actually runs is read back from the session, never assumed.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import EditError, PackageError

if TYPE_CHECKING:
    import onnxruntime

log = logging.getLogger(__name__)

PROVIDERS = ("auto", "cpu", "cuda")
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
# ORT log severities: 0 verbose, 1 info, 2 warning, 3 error, 4 fatal. A CUDA
# provider that cannot load logs errors that are expected on CPU-only machines.
_QUIET = 4
_NORMAL = 2
_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64}


@dataclass(frozen=True)
class TensorInfo:
    """A graph input or output as the session sees it; None marks a dynamic dimension."""

    name: str
    shape: tuple[int | None, ...]
    dtype: type


class Session:
    """One ONNX graph ready to run; `.provider` says what actually runs it."""

    def __init__(self, session: onnxruntime.InferenceSession, path: Path, threads: int) -> None:
        self._session = session
        self.path = path
        self.threads = threads
        self.provider: str = session.get_providers()[0]
        self.inputs = tuple(_tensor_info(i) for i in session.get_inputs())
        self.outputs = tuple(_tensor_info(o) for o in session.get_outputs())
        self._output_names = [o.name for o in self.outputs]

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the graph; inputs and outputs by name."""
        values = self._session.run(self._output_names, dict(inputs))
        return dict(zip(self._output_names, values))

    def warm_up(self) -> float:
        """Run once on zeros of the declared shapes (dynamic dims = 1); returns the seconds it took.

        The first run allocates buffers and (on CUDA) picks kernels; doing it
        here keeps that cost off the first slider move.
        """
        zeros = {i.name: np.zeros([d or 1 for d in i.shape], dtype=i.dtype) for i in self.inputs}
        start = time.perf_counter()
        self.run(zeros)
        return time.perf_counter() - start

    def __repr__(self) -> str:
        return f"Session({self.path.name}, provider={self.provider}, threads={self.threads})"


def create_session(
    onnx_path: str | os.PathLike[str],
    provider: str = "auto",
    threads: int | None = None,
    *,
    warm_up: bool = True,
) -> Session:
    """An optimised, warmed-up session for `onnx_path`.

    provider: "auto" (CUDA when usable, else CPU), "cpu", or "cuda" (EditError
    if CUDA is not usable). threads: intra-op threads, default the number of
    physical cores this process may use.
    """
    import onnxruntime

    path = Path(onnx_path)
    if provider not in PROVIDERS:
        raise EditError(f"provider '{provider}' is unknown; use one of {', '.join(PROVIDERS)}")
    if provider == "cuda" and not cuda_usable():
        raise EditError(
            "provider 'cuda' was requested but CUDA is not usable here (no GPU, driver or CUDA libraries); "
            "use --provider cpu or auto"
        )
    wanted = [CUDA, CPU] if provider == "cuda" or (provider == "auto" and cuda_usable()) else [CPU]
    intra = threads if threads is not None else physical_cores()
    options = _session_options(intra)
    try:
        session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=wanted)
    except Exception as error:  # ORT raises its own Fail/InvalidGraph/... types
        raise PackageError(f"ONNX Runtime could not load {path} ({error})") from None
    wrapped = Session(session, path, intra)
    if warm_up:
        seconds = wrapped.warm_up()
        log.debug("warmed up %s in %.1f ms", wrapped, seconds * 1e3)
    return wrapped


@functools.cache
def cuda_usable() -> bool:
    """Whether a CUDA session really runs on the GPU here, probed once per process, quietly.

    The probe builds a one-node graph and asks for CUDA; when the provider
    cannot load, ORT falls back to CPU and the session reports that.
    """
    import onnxruntime

    if CUDA not in onnxruntime.get_available_providers():
        return False
    options = onnxruntime.SessionOptions()
    options.log_severity_level = _QUIET
    onnxruntime.set_default_logger_severity(_QUIET)
    try:
        session = onnxruntime.InferenceSession(_probe_graph(), sess_options=options, providers=[CUDA, CPU])
        usable = session.get_providers()[0] == CUDA
    except Exception as error:  # a broken CUDA install raises instead of falling back
        log.info("CUDA provider listed but not usable: %s", error)
        usable = False
    finally:
        onnxruntime.set_default_logger_severity(_NORMAL)  # ORT's own default
    log.info("CUDA %s for ONNX Runtime", "usable" if usable else "not usable; running on CPU")
    return usable


def resolved_provider(provider: str = "auto") -> str:
    """The ORT provider a session created with `provider` would run on, without creating one."""
    if provider == "cpu":
        return CPU
    return CUDA if cuda_usable() else CPU


@functools.cache
def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (hyper-threads share one core's units)."""
    try:
        allowed = os.sched_getaffinity(0)
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)
    cores = set()
    for cpu in allowed:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            package = (topology / "physical_package_id").read_text().strip()
            core = (topology / "core_id").read_text().strip()
        except OSError:
            return max(1, len(allowed))
        cores.add((package, core))
    return max(1, len(cores))


def _session_options(intra_threads: int) -> onnxruntime.SessionOptions:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = intra_threads
    options.inter_op_num_threads = 1
    # No spin-waiting after a run: idle ORT threads spinning would steal the cores from the
    # paste-back (OpenCV) that follows every slider move; measured 2× slower pastes with it on.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # Quiet while providers load (the CUDA fallback has already been decided by cuda_usable()).
    options.log_severity_level = _QUIET if not cuda_usable() else _NORMAL
    return options


@functools.cache
def _probe_graph() -> bytes:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "cuda_probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def _tensor_info(node: Any) -> TensorInfo:
    shape = tuple(d if isinstance(d, int) else None for d in node.shape)
    return TensorInfo(node.name, shape, _ORT_TYPES.get(node.type, np.float32))
