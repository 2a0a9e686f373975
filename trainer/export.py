"""Export: torch modules to self-contained ONNX graphs, checked against torch, written as a model package.

A method's `export` typically calls `export_package(out_dir, manifest_fields,
{"encoder": Graph(...), "decoder_real": Graph(...)})`; the lower-level
`export_onnx` and `write_package` are there when a method needs to do more
between the two steps.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from engine.errors import TrainingError
from engine.package import sha256_file
from engine.runtime import create_session

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
PARITY_TOLERANCE = 1e-4
_REQUIRED_FIELDS = ("name", "method", "editor", "image_size")
_PARITY_BATCH = 3  # differs from any example batch of 1 or 2, so the dynamic batch axis is exercised


@dataclass(frozen=True)
class Graph:
    """One graph of a package: the module to export and how its inputs and outputs are named."""

    module: nn.Module
    example_inputs: tuple[torch.Tensor, ...]  # batch first; only the non-batch shape and dtype matter
    input_names: Sequence[str]
    output_names: Sequence[str]


def export_package(
    out_dir: Path,
    manifest_fields: Mapping[str, Any],
    graphs: Mapping[str, Graph],
    *,
    tolerance: float = PARITY_TOLERANCE,
) -> Path:
    """Export every graph, check each against torch, and write the package to `out_dir`.

    The largest torch/ONNX difference of each graph is recorded in the
    manifest's provenance as "parity_max_abs_diff".
    """
    with tempfile.TemporaryDirectory(prefix="puppetry-export-") as scratch:
        files, parity = {}, {}
        for role, graph in graphs.items():
            files[role] = Path(scratch) / f"{role}.onnx"
            parity[role] = export_onnx(
                graph.module, graph.example_inputs, files[role],
                input_names=graph.input_names, output_names=graph.output_names, tolerance=tolerance,
            )
        provenance = {**manifest_fields.get("provenance", {}), "parity_max_abs_diff": parity}
        return write_package(out_dir, {**manifest_fields, "provenance": provenance}, files)


def export_onnx(
    module: nn.Module,
    example_inputs: tuple[torch.Tensor, ...],
    path: Path,
    *,
    input_names: Sequence[str],
    output_names: Sequence[str],
    tolerance: float = PARITY_TOLERANCE,
) -> float:
    """Write `module` as one self-contained ONNX file with a dynamic batch axis; return the parity error.

    The module is exported and compared in eval mode on CPU (its mode and
    device are restored). The graph is run with ONNX Runtime's CPU provider on
    random inputs of another batch size; a max abs difference above
    `tolerance` raises TrainingError.
    """
    path = Path(path)
    device = next(module.parameters(), torch.empty(0)).device
    was_training = module.training
    module.eval().cpu()
    inputs = tuple(x.detach().cpu() for x in example_inputs)
    try:
        _export(module, inputs, path, list(input_names), list(output_names))
        difference = parity_error(module, inputs, path, list(input_names))
    finally:
        module.train(was_training).to(device)
    log.info("Exported %s: max abs difference to torch %.3g", path.name, difference)
    if not difference <= tolerance:
        raise TrainingError(
            f"Exported graph {path.name} differs from the torch model by {difference:.3g} "
            f"(tolerance {tolerance:g}); the export is not faithful, so it was refused."
        )
    return difference


def _export(module: nn.Module, inputs: tuple[torch.Tensor, ...], path: Path, input_names: list[str],
            output_names: list[str]) -> None:
    """torch.onnx.export through the dynamo exporter, falling back to the TorchScript one if it fails."""
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    try:
        with _quiet_exporter():
            torch.onnx.export(
                module, inputs, str(path), dynamo=True, external_data=False, optimize=True, verbose=False,
                dynamic_shapes=tuple({0: batch} for _ in inputs),
                input_names=input_names, output_names=output_names,
            )
    except Exception as error:  # the dynamo exporter raises many types for ops it cannot trace
        # The dynamo path fails on data-dependent control flow and on ops without a
        # dynamo decomposition; the TorchScript exporter traces such modules fine.
        log.warning("Dynamo ONNX export of %s failed (%s); using the TorchScript exporter", path.name,
                    str(error).splitlines()[0] if str(error) else type(error).__name__)
        with _quiet_exporter():
            torch.onnx.export(
                module, inputs, str(path), dynamo=False, input_names=input_names, output_names=output_names,
                dynamic_axes={name: {0: "batch"} for name in [*input_names, *output_names]},
            )
    onnx.checker.check_model(str(path))


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Keep stdout for the JSON-lines events: the exporter's progress goes to stderr, its noise nowhere."""
    noisy = {
        logging.getLogger("torch.onnx._internal.exporter._registration"): logging.ERROR,  # "torchvision is not installed"
        logging.getLogger("onnx_ir"): logging.WARNING,  # one INFO line per deduplicated initializer
        logging.getLogger("onnxscript"): logging.WARNING,  # constant-folding notes
    }
    levels = {logger: logger.level for logger in noisy}
    for logger, level in noisy.items():
        logger.setLevel(level)
    try:
        with warnings.catch_warnings(), redirect_stdout(sys.stderr):
            warnings.simplefilter("ignore", FutureWarning)  # torch's own pytree deprecations, not ours to fix
            warnings.filterwarnings("ignore", message="# The axis name")  # names shared by dims: harmless
            yield
    finally:
        for logger, level in levels.items():
            logger.setLevel(level)


def parity_error(module: nn.Module, example_inputs: tuple[torch.Tensor, ...], path: Path,
                 input_names: Sequence[str]) -> float:
    """Max abs difference between torch and ONNX Runtime (CPU) on seeded random inputs."""
    generator = torch.Generator().manual_seed(0)
    inputs = tuple(torch.randn((_PARITY_BATCH, *x.shape[1:]), generator=generator).to(x.dtype) for x in example_inputs)
    with torch.no_grad():
        expected = module(*inputs)
    expected = [expected] if isinstance(expected, torch.Tensor) else list(expected)
    session = create_session(path, provider="cpu", threads=1, warm_up=False)
    actual = session.run({name: x.numpy() for name, x in zip(input_names, inputs)})
    return max(float(np.max(np.abs(a - e.numpy()))) for a, e in zip(actual.values(), expected))


def write_package(out_dir: Path, manifest_fields: Mapping[str, Any], graphs: Mapping[str, Path]) -> Path:
    """Write a model package folder: `<role>.onnx` copies of `graphs` and manifest.json.

    Each graph's sha256 and input/output names and shapes are read from the
    files themselves (None = dynamic). The folder is built beside `out_dir`
    and renamed into place, so readers see the old package or the new one.
    """
    missing = [key for key in _REQUIRED_FIELDS if key not in manifest_fields]
    if missing:
        raise TrainingError(f"Cannot write the package {out_dir}: its manifest lacks {', '.join(missing)}.")
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    building.chmod(_folder_mode())  # mkdtemp makes it private (0700); a package is meant to be shared
    try:
        entries = {}
        for role, source in graphs.items():
            target = building / f"{role}.onnx"
            shutil.copyfile(source, target)
            entries[role] = {"file": target.name, "sha256": sha256_file(target), **graph_signature(target)}
        manifest = {"format_version": FORMAT_VERSION, **manifest_fields, "graphs": entries}
        (building / "manifest.json").write_text(json.dumps(manifest, indent=2, default=json_default) + "\n")
        _replace_folder(building, out_dir)
    except OSError as error:
        shutil.rmtree(building, ignore_errors=True)
        raise TrainingError(f"Cannot write the package {out_dir}: {error.strerror or error}.") from error
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    log.info("Wrote model package %s", out_dir)
    return out_dir


def graph_signature(path: Path) -> dict[str, dict[str, list[int | None]]]:
    """{"inputs": {name: shape}, "outputs": {name: shape}} read from an ONNX file; None marks a dynamic axis."""
    model = onnx.load(str(path), load_external_data=False)
    initialisers = {tensor.name for tensor in model.graph.initializer}

    def shape(value_info: Any) -> list[int | None]:
        return [d.dim_value if d.HasField("dim_value") else None for d in value_info.type.tensor_type.shape.dim]

    return {
        "inputs": {v.name: shape(v) for v in model.graph.input if v.name not in initialisers},
        "outputs": {v.name: shape(v) for v in model.graph.output},
    }


def zip_package(package_dir: Path, archive: Path) -> Path:
    """Bundle a package folder as a `.puppetry` zip (files at the zip root), written atomically."""
    package_dir, archive = Path(package_dir), Path(archive)
    tmp = archive.with_name(f".{archive.name}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
            for path in sorted(p for p in package_dir.rglob("*") if p.is_file()):
                bundle.write(path, path.relative_to(package_dir).as_posix())
        os.replace(tmp, archive)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise TrainingError(f"Cannot write {archive}: {error.strerror or error}.") from error
    return archive


def _replace_folder(new: Path, target: Path) -> None:
    """Put `new` at `target`; an existing `target` is moved aside first and removed after."""
    if not target.exists():
        os.replace(new, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
    os.replace(target, old / target.name)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


def _folder_mode() -> int:
    """The mode a plain `mkdir` would give under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o777 & ~umask


def json_default(value: Any) -> Any:
    """Numbers from numpy or torch in metrics become plain JSON numbers; paths become strings."""
    if isinstance(value, (np.generic, torch.Tensor)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
