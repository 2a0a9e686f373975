"""3D-Shapes-ABC: two domains rendered by the `shapes` puppet, with the RIFT paper's three factor splits.

Each split names two factors specific to domain A, two specific to B, and two
shared (papers.md §2). Domain A varies its own and the shared factors while
B's specific factors are held at one value, and vice versa. Every image comes
with the class index of all six 3dshapes factors, the labels the attribute
classifiers f_k of the manipulation-accuracy metric are trained on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from engine.errors import TrainingError
from engine.puppets import load as load_puppet
from engine.puppets.base import Puppet
from trainer.data.arrays import LabelledImages

Domain = Literal["A", "B"]

SHAPES_ABC_SIZE = 64


@dataclass(frozen=True)
class Factor:
    """One 3dshapes factor: a `shapes` puppet control and the values its class indices stand for."""

    name: str
    values: tuple[float, ...]

    @property
    def classes(self) -> int:
        return len(self.values)


# The 3dshapes grid (Burgess & Kim 2018); class k of a factor renders as values[k].
# The puppet's hue controls are already class indices (index k is 3dshapes hue k/10).
FACTORS: tuple[Factor, ...] = (
    Factor("floor_hue", tuple(float(k) for k in range(10))),
    Factor("wall_hue", tuple(float(k) for k in range(10))),
    Factor("object_hue", tuple(float(k) for k in range(10))),
    Factor("scale", tuple(float(v) for v in np.linspace(0.75, 1.25, 8))),
    Factor("shape", (0.0, 1.0, 2.0, 3.0)),  # cube, cylinder, sphere, capsule
    Factor("orientation", tuple(float(v) for v in np.linspace(-30.0, 30.0, 15))),
)
FACTOR_NAMES: tuple[str, ...] = tuple(factor.name for factor in FACTORS)


@dataclass(frozen=True)
class ShapesSplit:
    """Which factors only A varies, which only B varies, and which both vary."""

    specific_a: tuple[str, str]
    specific_b: tuple[str, str]
    shared: tuple[str, str]


# papers.md §2, table "3D-Shapes-ABC" (RIFT); "size" there is the `scale` factor.
SPLITS: dict[int, ShapesSplit] = {
    1: ShapesSplit(("floor_hue", "wall_hue"), ("scale", "orientation"), ("object_hue", "shape")),
    2: ShapesSplit(("object_hue", "scale"), ("shape", "wall_hue"), ("floor_hue", "orientation")),
    3: ShapesSplit(("floor_hue", "shape"), ("object_hue", "orientation"), ("wall_hue", "scale")),
}

# The one value (class index) a factor is held at in the domain where it does not vary.
# Chosen so held hues are far apart (floor orange, wall cyan, object indigo),
# scale and orientation sit mid-range, and the held shape is the cube.
FIXED_CLASSES: dict[str, int] = {
    "floor_hue": 1,
    "wall_hue": 5,
    "object_hue": 7,
    "scale": 4,
    "shape": 0,
    "orientation": 7,
}


def factor_values(labels: np.ndarray) -> dict[str, float]:
    """The `shapes` puppet control values for one row of six class indices."""
    return {factor.name: factor.values[int(index)] for factor, index in zip(FACTORS, labels)}


class ShapesABC:
    """Domain A and B images of one split, rendered on demand through a caller's Generator."""

    def __init__(
        self,
        split: int,
        *,
        size: int = SHAPES_ABC_SIZE,
        fixed: Mapping[str, int] | None = None,
        puppet: Puppet | None = None,
    ) -> None:
        if split not in SPLITS:
            raise TrainingError(f"3D-Shapes-ABC split {split!r} does not exist; use 1, 2 or 3.")
        self.split = split
        self.factors = SPLITS[split]
        self.size = size
        self.fixed_classes = {**FIXED_CLASSES, **(fixed or {})}
        for factor in FACTORS:
            if not 0 <= self.fixed_classes[factor.name] < factor.classes:
                raise TrainingError(
                    f"Fixed class {self.fixed_classes[factor.name]} for factor {factor.name!r} "
                    f"is outside 0..{factor.classes - 1}."
                )
        self.puppet = puppet if puppet is not None else load_puppet("shapes")

    def varying(self, domain: Domain | None) -> tuple[str, ...]:
        """Factors that vary in `domain` (its specific ones and the shared ones); None: all six."""
        if domain is None:
            return FACTOR_NAMES
        specific = self._specific(domain)
        return tuple(name for name in FACTOR_NAMES if name in specific or name in self.factors.shared)

    def fixed(self, domain: Domain) -> dict[str, int]:
        """The other domain's specific factors with the class index they are held at in `domain`."""
        other = self._specific("B" if domain == "A" else "A")
        return {name: self.fixed_classes[name] for name in other}

    def sample_labels(self, domain: Domain | None, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, 6) int64 class indices for `domain`; varying factors uniform, the rest held fixed.

        `domain=None` varies all six: the labelled renders the attribute classifiers learn from.
        """
        varying = self.varying(domain)
        held = {} if domain is None else self.fixed(domain)
        labels = np.empty((n, len(FACTORS)), dtype=np.int64)
        for column, factor in enumerate(FACTORS):
            if factor.name in varying:
                labels[:, column] = rng.integers(0, factor.classes, size=n)
            else:
                labels[:, column] = held[factor.name]
        return labels

    def render(self, labels: np.ndarray) -> np.ndarray:
        """(N, size, size, 3) uint8 renders of (N, 6) class indices."""
        return np.stack([self.puppet.render(factor_values(row), self.size) for row in labels])

    def sample(self, domain: Domain | None, n: int, rng: np.random.Generator) -> LabelledImages:
        """`n` labelled images of `domain` (or of all factors varying, for `None`)."""
        labels = self.sample_labels(domain, n, rng)
        return LabelledImages(images=self.render(labels), labels=labels, label_names=FACTOR_NAMES)

    def _specific(self, domain: Domain) -> tuple[str, str]:
        if domain == "A":
            return self.factors.specific_a
        if domain == "B":
            return self.factors.specific_b
        raise TrainingError(f"3D-Shapes-ABC domain {domain!r} does not exist; use 'A' or 'B'.")
