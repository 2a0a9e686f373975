"""ONNX Runtime sessions: the provider reported is the one that runs, threads and warm-up as configured, and imports stay light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine import runtime
from engine.errors import EditError
from tests.engine.tiny_models import write_package


@pytest.fixture(scope="module")
def encoder_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_package(tmp_path_factory.mktemp("runtime") / "tiny") / "encoder.onnx"


def test_auto_provider_reports_cpu_on_a_machine_without_a_usable_gpu(encoder_path: Path) -> None:
    if runtime.cuda_usable():
        pytest.skip("this machine has a usable GPU")
    session = runtime.create_session(encoder_path, "auto")
    assert session.provider == "CPUExecutionProvider"
    assert runtime.resolved_provider("auto") == "CPUExecutionProvider"


def test_cuda_request_without_a_usable_gpu_is_an_edit_error(encoder_path: Path) -> None:
    if runtime.cuda_usable():
        pytest.skip("this machine has a usable GPU")
    with pytest.raises(EditError, match="CUDA is not usable"):
        runtime.create_session(encoder_path, "cuda")


def test_unknown_provider_is_refused(encoder_path: Path) -> None:
    with pytest.raises(EditError, match="provider 'tpu' is unknown"):
        runtime.create_session(encoder_path, "tpu")


def test_session_runs_named_inputs_and_reports_signature(encoder_path: Path) -> None:
    session = runtime.create_session(encoder_path, "cpu", threads=1)
    assert session.threads == 1
    assert [(i.name, i.shape) for i in session.inputs] == [("image", (None, 3, 16, 16))]
    outputs = session.run({"image": np.zeros((2, 3, 16, 16), np.float32)})
    assert sorted(outputs) == ["attribute_code", "rest_code"]
    assert outputs["rest_code"].shape == (2, 8)
    assert session.warm_up() >= 0.0


def test_default_threads_are_the_physical_cores(encoder_path: Path) -> None:
    assert runtime.create_session(encoder_path, "cpu", warm_up=False).threads == runtime.physical_cores() >= 1


def test_cuda_fallback_probe_writes_nothing_to_stderr() -> None:
    probe = "from engine import runtime; runtime.cuda_usable()"
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert completed.stderr == ""


def test_engine_imports_neither_torch_nor_qt() -> None:
    code = (
        "import sys, engine.package, engine.editors, engine.regions, engine.runtime, engine.session;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'PySide6', 'onnxruntime'}))"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert completed.stdout.strip() == "[]"
