"""The Editor interface, and the pixel ↔ model-tensor conversions every editor shares.

An editor turns (photo region, controls) into pixels in two steps:
`prepare(region)` does the expensive, cacheable part once per region
(encoding the photo), `apply(state, controls)` is the cheap part that runs on
every slider move. Both take and return uint8 images at the model's size.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np

from engine.errors import EditError, PackageError
from engine.package import ModelPackage, Normalisation
from engine.runtime import Session, create_session

# (input names, output names); None = any single output, whatever its name.
GraphSignature = tuple[tuple[str, ...], tuple[str, ...] | None]
Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")


class Editor(ABC):
    """Applies one kind of model package to photo regions at the model's size.

    Subclasses name themselves (`name`, the manifest's "editor"), declare the
    graphs they need (`graphs`: role → signature) and implement prepare/apply.
    `color_match` is the paste-back default: off for editors whose whole
    point is to change colours.
    """

    name: ClassVar[str]
    graphs: ClassVar[Mapping[str, GraphSignature]]
    color_match: ClassVar[bool] = True
    manifest_section: ClassVar[str | None] = None  # "puppet", "guide": the manifest section this editor reads

    def __init__(self, package: ModelPackage, provider: str = "auto", threads: int | None = None) -> None:
        type(self).check_package(package)
        self.package = package
        self.sessions: dict[str, Session] = {
            role: create_session(package.graph_path(role), provider, threads) for role in self.graphs
        }

    @property
    def provider(self) -> str:
        """The ONNX Runtime provider that runs this editor's graphs (e.g. "CPUExecutionProvider")."""
        return next(iter(self.sessions.values())).provider

    @property
    def image_size(self) -> int:
        """The side of the square images prepare/apply take and return."""
        return self.package.image_size

    @classmethod
    def check_package(cls, package: ModelPackage) -> None:
        """Refuse a package that lacks a graph, tensor or manifest section this editor needs."""
        section = cls.manifest_section
        if section is not None and getattr(package, section) is None:
            raise PackageError(
                f"model package '{package.name}' ({package.source}): editor '{cls.name}' needs a '{section}' section"
            )
        for role, (input_names, output_names) in cls.graphs.items():
            spec = package.graphs.get(role)
            where = f"model package '{package.name}' ({package.source})"
            if spec is None:
                raise PackageError(f"{where}: editor '{cls.name}' needs a '{role}' graph; it has {sorted(package.graphs)}")
            if set(spec.inputs) != set(input_names):
                raise PackageError(
                    f"{where}: graph '{role}' must take inputs {sorted(input_names)}, it takes {sorted(spec.inputs)}"
                )
            if output_names is None and len(spec.outputs) != 1:
                raise PackageError(f"{where}: graph '{role}' must have one output, it has {sorted(spec.outputs)}")
            if output_names is not None and set(spec.outputs) != set(output_names):
                raise PackageError(
                    f"{where}: graph '{role}' must give outputs {sorted(output_names)}, it gives {sorted(spec.outputs)}"
                )

    @abstractmethod
    def prepare(self, region: np.ndarray) -> Any:
        """Encode a (S, S, 3) uint8 photo region once; the returned state feeds every `apply`."""

    @abstractmethod
    def apply(self, state: Any, controls: Mapping[str, object]) -> np.ndarray:
        """The edited region, (S, S, 3) uint8, for these control values."""

    def measure(self, state: Any) -> dict[str, float]:
        """Control values read from the prepared region itself (where the slider starts); none by default."""
        return {}

    def check_region(self, region: np.ndarray) -> None:
        """EditError unless `region` is a (S, S, 3) uint8 image at this model's size."""
        size = self.image_size
        if region.dtype != np.uint8 or region.shape != (size, size, 3):
            raise EditError(
                f"model '{self.package.name}' edits ({size}, {size}, 3) uint8 regions, got "
                f"{region.shape} {region.dtype}; crop the photo with engine.regions.crop(..., size={size})"
            )

    def run(self, role: str, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Run the graph of `role` on named inputs."""
        return self.sessions[role].run(inputs)


def border_and_centre(region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The grey pixels of a square (S, S, 3) region's border ring (S/8 wide) and of its centre (the middle half):
    where background and subject are looked for."""
    grey = region.astype(np.float32).mean(axis=2)
    size = grey.shape[0]
    ring = max(1, size // 8)
    border = np.concatenate([grey[:ring].ravel(), grey[-ring:].ravel(), grey[:, :ring].ravel(), grey[:, -ring:].ravel()])
    return border, grey[size // 4 : size - size // 4, size // 4 : size - size // 4]


def opposite_polarity(region: np.ndarray, polarity: str | None) -> bool:
    """Whether a region shows the opposite of the model's polarity (e.g. dark ink on light paper).

    The border of a region is mostly background: light-on-dark means the
    border is darker than the centre. Ties count as matching.
    """
    if polarity is None:
        return False
    border, centre = border_and_centre(region)
    border_brighter = float(border.mean()) > float(centre.mean())
    return border_brighter if polarity == "light_on_dark" else float(border.mean()) < float(centre.mean())


def to_model_input(pixels: np.ndarray, normalisation: Normalisation, channels: int, invert: bool = False) -> np.ndarray:
    """(S, S, 3) uint8 → (1, C, S, S) float32 in the model's range, grey and inverted if asked."""
    image = pixels.astype(np.float32)
    if invert:
        image = 255.0 - image
    if normalisation.grayscale or channels == 1:
        image = image.mean(axis=2, keepdims=True)
    if image.shape[2] != channels:
        image = np.broadcast_to(image[..., :1], (*image.shape[:2], channels))
    low, high = normalisation.range
    scaled = image * ((high - low) / 255.0) + low
    return np.ascontiguousarray(scaled.transpose(2, 0, 1)[None], dtype=np.float32)


def from_model_output(tensor: np.ndarray, normalisation: Normalisation, invert: bool = False) -> np.ndarray:
    """(1, C, S, S) in the model's range → (S, S, 3) uint8, grey replicated, inverted back if asked."""
    image = tensor[0].transpose(1, 2, 0)
    if normalisation.grayscale or image.shape[2] != 3:
        image = np.repeat(image.mean(axis=2, keepdims=True), 3, axis=2)
    low, high = normalisation.range
    pixels = (image - low) * (255.0 / (high - low))
    if invert:
        pixels = 255.0 - pixels
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


class LRUCache(Generic[Key, Value]):
    """A small thread-safe least-recently-used cache for codes computed on slider moves."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[Key, Value] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_compute(self, key: Key, compute: Callable[[], Value]) -> Value:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = compute()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._items)
