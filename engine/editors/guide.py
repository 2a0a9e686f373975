"""The RIFT editor: carry a guide image's domain-specific look onto the photo region.

`prepare` keeps the region's model tensor; `apply` encodes the guide into
its small guide map (cached per guide, since a user flips between a few),
translates the region with it, and blends by strength in pixel space.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np

from engine.errors import EditError
from engine.editors.base import (
    Editor,
    GraphSignature,
    LRUCache,
    from_model_output,
    opposite_polarity,
    to_model_input,
)
from engine.package import ModelPackage

GUIDE_MAP_CACHE = 32


@dataclass(frozen=True)
class GuideState:
    """A prepared region: the original pixels (for the strength blend), its model tensor and polarity."""

    region: np.ndarray  # (S, S, 3) uint8
    image: np.ndarray  # (1, C, S, S) float32
    inverted: bool


class GuideEditor(Editor):
    """RIFT: controls are {"guide": (H, W, 3) uint8 image, "strength": 0..1 (default 1)}."""

    name: ClassVar[str] = "guide"
    manifest_section: ClassVar[str | None] = "guide"
    graphs: ClassVar[Mapping[str, GraphSignature]] = {
        "guide_encoder": (("image",), None),
        "translator": (("image", "guide"), None),
    }
    color_match: ClassVar[bool] = False  # the guide's colours are often the edit itself

    def __init__(self, package: ModelPackage, provider: str = "auto", threads: int | None = None) -> None:
        super().__init__(package, provider, threads)
        self._guide_maps: LRUCache[bytes, np.ndarray] = LRUCache(GUIDE_MAP_CACHE)

    def prepare(self, region: np.ndarray) -> GuideState:
        self.check_region(region)
        inverted = opposite_polarity(region, self.package.normalisation.polarity)
        image = to_model_input(region, self.package.normalisation, self.package.channels, invert=inverted)
        return GuideState(region=region.copy(), image=image, inverted=inverted)

    def apply(self, state: GuideState, controls: Mapping[str, object]) -> np.ndarray:
        unknown = set(controls) - {"guide", "strength"}
        if unknown:
            raise EditError(f"model '{self.package.name}' takes controls 'guide' and 'strength', not {sorted(unknown)}")
        guide = controls.get("guide")
        if not isinstance(guide, np.ndarray) or guide.dtype != np.uint8 or guide.ndim != 3 or guide.shape[2] != 3:
            raise EditError(f"model '{self.package.name}' needs a guide image: an (H, W, 3) uint8 array")
        strength = float(controls.get("strength", 1.0))  # type: ignore[arg-type]
        if not 0.0 <= strength <= 1.0:
            raise EditError(f"strength must be between 0 and 1, got {strength:g}")
        guide_map = self.guide_map(guide)
        translated = self.run("translator", image=state.image, guide=guide_map)
        (image,) = translated.values()
        edited = from_model_output(image, self.package.normalisation, invert=state.inverted)
        if strength == 1.0:
            return edited
        blend = state.region.astype(np.float32) * (1.0 - strength) + edited.astype(np.float32) * strength
        return np.clip(np.rint(blend), 0, 255).astype(np.uint8)

    def guide_map(self, guide: np.ndarray) -> np.ndarray:
        """The guide encoder's map for a guide image, resized to model size; cached per image content."""
        key = hashlib.blake2b(guide.tobytes(), digest_size=16, person=str(guide.shape).encode()[:16]).digest()
        return self._guide_maps.get_or_compute(key, lambda: self._encode_guide(guide))

    def _encode_guide(self, guide: np.ndarray) -> np.ndarray:
        size = self.image_size
        height, width = guide.shape[:2]
        side = min(height, width)  # centre square: a guide is cropped, never squashed
        guide = guide[(height - side) // 2 : (height - side) // 2 + side, (width - side) // 2 : (width - side) // 2 + side]
        if side != size:
            interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
            guide = cv2.resize(guide, (size, size), interpolation=interpolation)
        image = to_model_input(guide, self.package.normalisation, self.package.channels)
        (guide_map,) = self.run("guide_encoder", image=image).values()
        return guide_map
