"""The puppet interface: controls a user poses, and a deterministic renderer for them.

A puppet is a procedural renderer with named controls. The trainer renders it
to make labelled synthetic data; the editor renders it on every slider move;
the GUI builds its sliders from `controls`. Validation lives here, once, so
every puppet rejects a bad value the same way.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from engine.errors import EditError

MIN_RENDER_SIZE = 8
MAX_RENDER_SIZE = 1024


@dataclass(frozen=True)
class Control:
    """One slider or choice of a puppet.

    Categorical values are integer indices into `choices`; continuous values
    are floats in [minimum, maximum] in the unit the label names.
    """

    name: str
    label: str
    minimum: float
    maximum: float
    default: float
    kind: Literal["continuous", "categorical"]
    choices: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("continuous", "categorical"):
            raise EditError(f"Control {self.name!r}: kind must be 'continuous' or 'categorical', not {self.kind!r}.")
        if self.kind == "categorical":
            if not self.choices:
                raise EditError(f"Control {self.name!r}: a categorical control needs choices.")
            if (self.minimum, self.maximum) != (0, len(self.choices) - 1):
                raise EditError(
                    f"Control {self.name!r}: a categorical range must be 0..{len(self.choices) - 1} "
                    f"(one index per choice), not {self.minimum}..{self.maximum}."
                )
        if not self.minimum <= self.default <= self.maximum:
            raise EditError(f"Control {self.name!r}: default {self.default} lies outside {self.minimum}..{self.maximum}.")

    def validate(self, value: Any) -> float:
        """Return `value` as a float this control accepts, or raise EditError saying why not."""
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise EditError(f"Control {self.name!r}: {value!r} is not a number.") from None
        if math.isnan(number) or not self.minimum <= number <= self.maximum:
            raise EditError(
                f"Control {self.name!r}: {value!r} is outside its range {self.minimum:g}..{self.maximum:g}."
            )
        if self.kind == "categorical":
            index = round(number)
            if abs(number - index) > 1e-6:
                raise EditError(
                    f"Control {self.name!r}: {value!r} is not a choice index; use an integer 0..{len(self.choices) - 1} "
                    f"({', '.join(self.choices)})."
                )
            return float(index)
        return number

    def to_dict(self) -> dict[str, Any]:
        """The JSON form used in package manifests."""
        return {
            "name": self.name,
            "label": self.label,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "default": self.default,
            "kind": self.kind,
            "choices": list(self.choices),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Control:
        """Inverse of `to_dict`; raises EditError naming the missing key."""
        try:
            return cls(
                name=str(data["name"]),
                label=str(data.get("label", data["name"])),
                minimum=float(data["minimum"]),
                maximum=float(data["maximum"]),
                default=float(data["default"]),
                kind=data["kind"],
                choices=tuple(str(choice) for choice in data.get("choices", ())),
            )
        except KeyError as missing:
            raise EditError(f"Control description lacks {missing}; it needs name, minimum, maximum, default, kind.") from None


class Puppet(ABC):
    """A procedural renderer posed by named controls; deterministic for equal values and seed."""

    name: ClassVar[str]
    label: ClassVar[str]
    controls: ClassVar[tuple[Control, ...]]

    def control(self, name: str) -> Control:
        """The control called `name`; EditError lists the real names if there is none."""
        for control in self.controls:
            if control.name == name:
                return control
        raise EditError(
            f"Puppet {self.name!r} has no control {name!r}; its controls are "
            f"{', '.join(c.name for c in self.controls)}."
        )

    def defaults(self) -> dict[str, float]:
        """Every control at its default value."""
        return {control.name: control.default for control in self.controls}

    def sample(self, rng: np.random.Generator, names: Iterable[str] | None = None) -> dict[str, float]:
        """Uniformly random values for the named controls (all controls if `names` is None)."""
        chosen = self.controls if names is None else tuple(self.control(name) for name in names)
        values: dict[str, float] = {}
        for control in chosen:
            if control.kind == "categorical":
                values[control.name] = float(rng.integers(len(control.choices)))
            else:
                values[control.name] = float(rng.uniform(control.minimum, control.maximum))
        return values

    def resolve(self, values: Mapping[str, float]) -> dict[str, float]:
        """Defaults overlaid with `values`, each validated; unknown names are errors, not silently ignored."""
        resolved = self.defaults()
        for name, value in values.items():
            resolved[name] = self.control(name).validate(value)
        return resolved

    def render(self, values: Mapping[str, float], size: int, seed: int = 0) -> np.ndarray:
        """Draw the puppet posed by `values` as a (size, size, 3) uint8 RGB image.

        Missing values take their defaults; out-of-range values raise EditError.
        """
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
            raise EditError(f"Puppet {self.name!r}: size must be an integer number of pixels, not {size!r}.")
        if not MIN_RENDER_SIZE <= size <= MAX_RENDER_SIZE:
            raise EditError(
                f"Puppet {self.name!r}: size {size} is outside {MIN_RENDER_SIZE}..{MAX_RENDER_SIZE} pixels."
            )
        image = self.draw(self.resolve(values), int(size), int(seed))
        return np.ascontiguousarray(image, dtype=np.uint8)

    def measure(self, image: np.ndarray) -> dict[str, float]:
        """The controls this puppet can read back from an image posed like its renders ((S, S, 3) uint8).

        Where a photo's own pose is readable the editor starts its sliders there,
        so the first move changes the photo a little, not from the puppet's default.
        Nothing by default: most controls (a face's expression, a scene's colours)
        have no estimator.
        """
        return {}

    @abstractmethod
    def draw(self, values: Mapping[str, float], size: int, seed: int) -> np.ndarray:
        """Render already-validated, complete `values`; subclasses implement only this."""
