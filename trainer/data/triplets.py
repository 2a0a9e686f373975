"""PuppetGAN triplets: puppet renders that demonstrate one attribute apart from everything else.

For attribute(s) of interest (AoI) and a puppet, one triplet is
  b1: AoI = v, every other control random,
  b2: every other control = r, AoI random,
  b3: AoI = v and every other control = r,
so `Gs(b2, b1) ~ b3` teaches the encoder where the AoI lives (papers.md §1).
The render seed (any per-render jitter a puppet adds) belongs to the "rest":
b2 and b3 share it, so b3 is exactly b2 re-rendered with b1's AoI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from engine.errors import TrainingError
from engine.puppets import load as load_puppet
from engine.puppets.base import Control, Puppet

_SEED_LIMIT = 2**31 - 1


@dataclass(frozen=True)
class TripletSpec:
    """What a triplet demonstrates; stored in a run's config.json, so plain values only.

    `ranges` limits any control (AoI or rest) to a sub-range of the puppet's own,
    e.g. {"rotation": (-30, 30)} to follow real MNIST's slant range; categorical
    bounds are inclusive choice indices. `fixed` holds controls at one value in
    all three images (e.g. {"font": 0}); they are neither AoI nor rest.
    """

    puppet: str
    attributes: tuple[str, ...]
    size: int = 32
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    fixed: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Triplet:
    """One (b1, b2, b3) with the control values and render seed each image was made from."""

    images: tuple[np.ndarray, np.ndarray, np.ndarray]   # each (size, size, 3) uint8
    values: tuple[dict[str, float], dict[str, float], dict[str, float]]
    seeds: tuple[int, int, int]


@dataclass(frozen=True)
class TripletBatch:
    """N triplets stacked: `b1`, `b2`, `b3` are (N, size, size, 3) uint8.

    `values1..3` are (N, C) float64 with one column per name in `control_names`
    (every control of the puppet, in the puppet's order); `seeds` is (N, 3).
    """

    b1: np.ndarray
    b2: np.ndarray
    b3: np.ndarray
    values1: np.ndarray
    values2: np.ndarray
    values3: np.ndarray
    seeds: np.ndarray
    control_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.b1)

    def column(self, values: np.ndarray, name: str) -> np.ndarray:
        """The (N,) column of control `name` from one of `values1..3`."""
        return values[:, self.control_names.index(name)]

    def take(self, indices: np.ndarray) -> TripletBatch:
        """The triplets at `indices`: draw training batches from a pre-rendered bank when a puppet renders slowly."""
        return TripletBatch(
            b1=self.b1[indices], b2=self.b2[indices], b3=self.b3[indices],
            values1=self.values1[indices], values2=self.values2[indices], values3=self.values3[indices],
            seeds=self.seeds[indices], control_names=self.control_names,
        )


class TripletSampler:
    """Draws PuppetGAN triplets for a `TripletSpec`; all randomness comes from the caller's Generator."""

    def __init__(self, spec: TripletSpec, puppet: Puppet | None = None) -> None:
        self.spec = spec
        self.puppet = puppet if puppet is not None else load_puppet(spec.puppet)
        names = [control.name for control in self.puppet.controls]
        self.control_names: tuple[str, ...] = tuple(names)
        _check_names(spec, names)
        self.attributes: tuple[str, ...] = tuple(spec.attributes)
        self.rest: tuple[str, ...] = tuple(
            name for name in names if name not in spec.attributes and name not in spec.fixed
        )
        for name, bounds in spec.ranges.items():
            _check_range(self.puppet.control(name), bounds)
        for name, value in spec.fixed.items():
            _check_range(self.puppet.control(name), (value, value))

    def sample(self, rng: np.random.Generator) -> Triplet:
        """One triplet; draws, in order: v, b1's rest, r, b2's AoI, then the two render seeds."""
        attribute_v = self._draw(self.attributes, rng)
        rest_1 = self._draw(self.rest, rng)
        rest_r = self._draw(self.rest, rng)
        attribute_2 = self._draw(self.attributes, rng)
        seed_1, seed_r = (int(seed) for seed in rng.integers(0, _SEED_LIMIT, size=2))
        fixed = dict(self.spec.fixed)
        values_1 = {**fixed, **rest_1, **attribute_v}
        values_2 = {**fixed, **rest_r, **attribute_2}
        values_3 = {**fixed, **rest_r, **attribute_v}
        images = (
            self.render(values_1, seed_1),
            self.render(values_2, seed_r),
            self.render(values_3, seed_r),
        )
        return Triplet(images=images, values=(values_1, values_2, values_3), seeds=(seed_1, seed_r, seed_r))

    def batch(self, n: int, rng: np.random.Generator) -> TripletBatch:
        """`n` triplets stacked for training; the same rng state gives the same batch."""
        triplets = [self.sample(rng) for _ in range(n)]
        return TripletBatch(
            b1=np.stack([t.images[0] for t in triplets]),
            b2=np.stack([t.images[1] for t in triplets]),
            b3=np.stack([t.images[2] for t in triplets]),
            values1=self._value_table([t.values[0] for t in triplets]),
            values2=self._value_table([t.values[1] for t in triplets]),
            values3=self._value_table([t.values[2] for t in triplets]),
            seeds=np.array([t.seeds for t in triplets], dtype=np.int64),
            control_names=self.control_names,
        )

    def render(self, values: Mapping[str, float], seed: int) -> np.ndarray:
        """The puppet at `values` and the spec's size: (size, size, 3) uint8."""
        return self.puppet.render(values, self.spec.size, seed=seed)

    def _draw(self, names: tuple[str, ...], rng: np.random.Generator) -> dict[str, float]:
        """Random values for `names`: inside the spec's sub-range where one is set, else the puppet's prior."""
        limited = [name for name in names if name in self.spec.ranges]
        free = [name for name in names if name not in self.spec.ranges]
        values = dict(self.puppet.sample(rng, free)) if free else {}
        for name in limited:
            low, high = self.spec.ranges[name]
            if self.puppet.control(name).kind == "categorical":
                values[name] = float(rng.integers(int(low), int(high) + 1))
            else:
                values[name] = float(rng.uniform(low, high))
        return values

    def _value_table(self, rows: list[dict[str, float]]) -> np.ndarray:
        """Rows of control values as (N, C) in `control_names` order; unset controls take their defaults."""
        defaults = self.puppet.defaults()
        return np.array(
            [[row.get(name, defaults[name]) for name in self.control_names] for row in rows], dtype=np.float64
        )


def _check_names(spec: TripletSpec, names: list[str]) -> None:
    """Every named control must exist on the puppet, and the AoI can be neither empty nor fixed."""
    if not spec.attributes:
        raise TrainingError(f"No attribute of interest given for puppet {spec.puppet!r}; pick one of {names}.")
    for name in (*spec.attributes, *spec.ranges, *spec.fixed):
        if name not in names:
            raise TrainingError(f"Puppet {spec.puppet!r} has no control {name!r}; its controls are {names}.")
    clash = set(spec.attributes) & set(spec.fixed)
    if clash:
        raise TrainingError(f"Control(s) {sorted(clash)} are both attribute of interest and fixed; choose one.")


def _check_range(control: Control, bounds: tuple[float, float]) -> None:
    """A sub-range must be ordered and lie inside the control's own range."""
    low, high = bounds
    if not control.minimum <= low <= high <= control.maximum:
        raise TrainingError(
            f"Range {low}..{high} for {control.name!r} must lie inside "
            f"{control.minimum}..{control.maximum} with minimum <= maximum."
        )
