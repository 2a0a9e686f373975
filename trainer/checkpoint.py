"""Checkpoints on disk: safetensors for tensors, a JSON beside it for the rest, written atomically.

A checkpoint is a pair in `runs/<name>/checkpoints/`:
`step_00001000.safetensors` (every module state dict as `module.<name>.<key>`,
every optimizer tensor as `optimizer.<name>.<path>`) and `step_00001000.json`
(the step, the non-tensor optimizer state, the RNG states of every rank, the
method's own state, and the size of the tensor file). The tensor file is
written first and the JSON last, each through temp + fsync + rename, so a
crash or full disk at any moment leaves the previous pair the newest
complete one. Nothing here unpickles.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from engine.errors import TrainingError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_TENSOR = "__tensor__"  # marks a tensor moved out of the JSON into the safetensors file
_ITEMS = "__items__"  # marks a dict whose keys are not all strings (optimizer state is keyed by int)


@dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint pair on disk."""

    step: int
    json_path: Path
    tensors_path: Path


def checkpoint_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def list_checkpoints(run_dir: Path) -> list[Checkpoint]:
    """The complete checkpoints of a run, oldest first; incomplete or unreadable pairs are skipped and logged."""
    found = []
    for json_path in sorted(checkpoint_dir(run_dir).glob("step_*.json")):
        try:
            info = json.loads(json_path.read_text())
            tensors_path = json_path.with_name(info["tensors"])
            complete = tensors_path.is_file() and tensors_path.stat().st_size == info["tensors_bytes"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.warning("Skipping unreadable checkpoint %s: %s", json_path, error)
            continue
        if not complete:
            log.warning("Skipping incomplete checkpoint %s: %s is missing or truncated", json_path, tensors_path.name)
            continue
        found.append(Checkpoint(int(info["step"]), json_path, tensors_path))
    return sorted(found, key=lambda c: c.step)


def find_checkpoint(run_dir: Path, step: int | None = None) -> Checkpoint:
    """The newest complete checkpoint, or the one at `step`; TrainingError when there is none."""
    checkpoints = list_checkpoints(run_dir)
    if step is None and checkpoints:
        return checkpoints[-1]
    for checkpoint in checkpoints:
        if checkpoint.step == step:
            return checkpoint
    steps = ", ".join(str(c.step) for c in checkpoints) or "none"
    wanted = f"at step {step}" if step is not None else "yet"
    raise TrainingError(f"No complete checkpoint {wanted} in {checkpoint_dir(run_dir)} (available steps: {steps}).")


def save_checkpoint(
    run_dir: Path,
    step: int,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    extra: Mapping[str, Any],
) -> Checkpoint:
    """Write one checkpoint pair atomically; on any OSError remove the partial pair and raise TrainingError."""
    folder = checkpoint_dir(run_dir)
    tensors: dict[str, torch.Tensor] = {}
    for name, module in modules.items():
        for key, value in module.state_dict().items():
            tensors[f"module.{name}.{key}"] = _to_cpu(value)
    optimizer_states = {
        name: _split_tensors(optimizer.state_dict(), f"optimizer.{name}", tensors)
        for name, optimizer in optimizers.items()
    }
    stem = f"step_{step:08d}"
    tensors_path, json_path = folder / f"{stem}.safetensors", folder / f"{stem}.json"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(tensors_path, lambda tmp: save_file(tensors, str(tmp)))
        info = {
            "format_version": FORMAT_VERSION,
            "step": step,
            "tensors": tensors_path.name,
            "tensors_bytes": tensors_path.stat().st_size,
            "optimizers": optimizer_states,
            **extra,
        }
        text = json.dumps(info, indent=1)
        write_atomic(json_path, lambda tmp: tmp.write_text(text))
    except OSError as error:
        if not json_path.exists():
            tensors_path.unlink(missing_ok=True)
        raise TrainingError(
            f"Could not write a checkpoint to {folder}: {error.strerror or error}. "
            f"Free space there, then continue with `puppetry-train resume {run_dir}`; "
            "the previous checkpoint is intact."
        ) from error
    return Checkpoint(step, json_path, tensors_path)


def load_checkpoint(
    checkpoint: Checkpoint,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
) -> dict[str, Any]:
    """Load module and optimizer state in place; return the JSON part (step, rng, method state...)."""
    try:
        info = json.loads(checkpoint.json_path.read_text())
        tensors = load_file(str(checkpoint.tensors_path), device="cpu")
    except (OSError, ValueError) as error:
        raise TrainingError(f"Cannot read checkpoint {checkpoint.json_path}: {error}.") from error
    for name, module in modules.items():
        prefix = f"module.{name}."
        state = {key[len(prefix):]: value for key, value in tensors.items() if key.startswith(prefix)}
        try:
            module.load_state_dict(state)
        except RuntimeError as error:
            raise TrainingError(
                f"Checkpoint {checkpoint.json_path} does not fit module {name!r} "
                f"(was the method config changed?): {str(error).splitlines()[0]}"
            ) from error
    for name, optimizer in optimizers.items():
        if name not in info["optimizers"]:
            raise TrainingError(f"Checkpoint {checkpoint.json_path} has no state for optimizer {name!r}.")
        optimizer.load_state_dict(_join_tensors(info["optimizers"][name], tensors))
    return info


def prune_checkpoints(run_dir: Path, keep: int) -> list[Checkpoint]:
    """Delete all but the newest `keep` complete checkpoints (JSON first, so no JSON outlives its tensors)."""
    removed = list_checkpoints(run_dir)[:-keep] if keep > 0 else []
    for checkpoint in removed:
        checkpoint.json_path.unlink(missing_ok=True)
        checkpoint.tensors_path.unlink(missing_ok=True)
    return removed


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Write through a hidden temp file in the same folder, fsync it, rename it over `path`, fsync the folder."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable; some platforms cannot open folders, where the rename is as durable as it gets."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # Windows and some network file systems refuse fsync on a folder handle
    finally:
        os.close(fd)


def _to_cpu(tensor: torch.Tensor) -> torch.Tensor:
    """A private contiguous CPU copy: safetensors refuses tensors that share storage (tied weights)."""
    return tensor.detach().to("cpu", copy=True).contiguous()


def _split_tensors(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Turn a nested state (dicts, lists, tensors, numbers) into JSON, moving tensors into `tensors`."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = _to_cpu(obj)
        return {_TENSOR: prefix}
    if isinstance(obj, Mapping):
        if all(isinstance(key, str) for key in obj):
            return {key: _split_tensors(value, f"{prefix}.{key}", tensors) for key, value in obj.items()}
        return {_ITEMS: [[key, _split_tensors(value, f"{prefix}.{key}", tensors)] for key, value in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_split_tensors(value, f"{prefix}.{i}", tensors) for i, value in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TrainingError(f"Cannot checkpoint {prefix}: values of type {type(obj).__name__} are not supported.")


def _join_tensors(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """The inverse of _split_tensors."""
    if isinstance(obj, dict):
        if set(obj) == {_TENSOR}:
            return tensors[obj[_TENSOR]]
        if set(obj) == {_ITEMS}:
            return {key: _join_tensors(value, tensors) for key, value in obj[_ITEMS]}
        return {key: _join_tensors(value, tensors) for key, value in obj.items()}
    if isinstance(obj, list):
        return [_join_tensors(value, tensors) for value in obj]
    return obj
