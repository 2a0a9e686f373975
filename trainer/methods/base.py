"""The method interface: what every training method gives the loop, the CLI and the exporter.

A method owns its networks, its data, its losses and its export; the loop
(`trainer/loop.py`) owns everything else: steps, seeding, checkpoints,
previews, events, pause/cancel and data parallelism. Keeping that split here
means a new method is one file and never re-implements resume or logging.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from engine.errors import TrainingError


@dataclass(frozen=True)
class MethodConfig:
    """Base of every method's frozen config: subclass it and give the paper's values as defaults.

    `EXPORT_SETTINGS` names the fields that only shape the exported package, not the trained
    weights, so `puppetry-train export --set` may change them after training.
    """

    EXPORT_SETTINGS: ClassVar[frozenset[str]] = frozenset()


class Method(ABC):
    """One training method. The loop calls these, in this order, and nothing else.

    Contract with the loop:
    - `__init__` builds networks, optimizers and data. The loop has already
      seeded torch, numpy and `random` from the run seed, so the same seed gives
      the same initial weights on every rank and on resume.
    - `train_step` does one full update (all its backward passes and optimizer
      steps) and returns plain floats. All its randomness comes from
      `generator` (a CPU `torch.Generator` carried in the checkpoint, one
      stream per data-parallel rank) or from a numpy/python generator the
      method keeps in `state()`. Draw on CPU with `generator`, then move to
      `self.device`.
    - Under data parallelism the loop averages each parameter's gradient
      across ranks as soon as backward has accumulated it, so a method needs
      no code for it; it must only run the same backward passes on every rank.
    - `preview` and `evaluate` run on rank 0 only, inside an RNG sandbox (their
      randomness never shifts training), and must leave modules in the mode
      they found them.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[MethodConfig]] = MethodConfig
    schedules_learning_rate: ClassVar[bool] = False  # True: train_step sets the rates, `--lr-decay-steps` is refused

    def __init__(self, config: MethodConfig, device: torch.device, seed: int) -> None:
        self.config = config
        self.device = device
        self.seed = seed

    @abstractmethod
    def modules(self) -> dict[str, nn.Module]:
        """Every module whose state is checkpointed, by a stable name (e.g. "encoder")."""

    @abstractmethod
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Every optimizer whose state is checkpointed, by a stable name (e.g. "generator")."""

    @abstractmethod
    def train_step(self, step: int, generator: torch.Generator) -> dict[str, float]:
        """Draw a batch with `generator`, update the networks once, return the named losses."""

    @abstractmethod
    def preview(self) -> np.ndarray:
        """A (H, W, 3) uint8 grid on fixed inputs, so consecutive previews are comparable."""

    def evaluate(self) -> dict[str, float] | None:
        """Quick metrics for the `eval` event; None when the method has none."""
        return None

    @abstractmethod
    def export(self, out_dir: Path, provenance: Mapping[str, Any]) -> Path:
        """Write the model package to `out_dir` (via trainer.export.export_package) and return its path.

        `provenance` holds the loop's part of the manifest's "provenance"
        (steps, seed, command, trained_at, wall_time_s); the method adds "data".
        """

    def state(self) -> dict[str, Any]:
        """Extra JSON-serialisable state needed for exact resume (e.g. a numpy generator's state)."""
        return {}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore what `state()` returned."""


def config_from_dict(config_class: type[MethodConfig], values: Mapping[str, Any]) -> MethodConfig:
    """Build a method config from a dict (config.json or `--set key=value` strings).

    Strings are parsed as JSON where the field is not a string ("2e-4" → 0.0002,
    "[1, 2]" → (1, 2)), so the same path serves the CLI and a saved run.
    Unknown keys and wrong types raise TrainingError naming the setting.
    """
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    hints = typing.get_type_hints(config_class)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise TrainingError(
            f"Unknown setting {', '.join(unknown)} for {config_class.__name__}; "
            f"valid settings: {', '.join(sorted(fields)) or 'none'}."
        )
    converted = {key: _convert(key, value, hints[key]) for key, value in values.items()}
    return config_class(**converted)


def config_to_dict(config: MethodConfig) -> dict[str, Any]:
    """The JSON-ready form of a config (tuples become lists), as stored in config.json."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def _convert(key: str, value: Any, hint: Any) -> Any:
    """Coerce one value to its field's type, or raise TrainingError naming the setting."""
    if isinstance(value, str) and hint is not str:
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass  # a bare word stays a string, e.g. attribute=rotation for a Literal field
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin is typing.Literal:
        if value in args:
            return value
        raise TrainingError(f"Setting {key}={value!r} must be one of {', '.join(map(repr, args))}.")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(key, value, option)
            except TrainingError as error:
                errors.append(str(error))
        raise TrainingError(errors[0] if errors else f"Setting {key}={value!r} has the wrong type.")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise TrainingError(f"Setting {key}={value!r} must be a list, e.g. {key}=[1,2].")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(key, item, args[0]) for item in value)
        if len(args) != len(value):
            raise TrainingError(f"Setting {key} needs {len(args)} values, got {len(value)}.")
        return tuple(_convert(key, item, arg) for item, arg in zip(value, args))
    if origin in (dict, Mapping):
        if not isinstance(value, dict):
            raise TrainingError(f"Setting {key}={value!r} must be a mapping, e.g. {key}={{\"a\": 1}}.")
        return {_convert(key, k, args[0]): _convert(key, v, args[1]) for k, v in value.items()}
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(hint, type) and isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    raise TrainingError(f"Setting {key}={value!r} must be of type {getattr(hint, '__name__', hint)}.")
