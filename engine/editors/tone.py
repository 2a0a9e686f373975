"""Tone mapping between a photo region and a greyscale model's domain, and back to the region's colours.

A greyscale model trained on MNIST sees full-range light-on-dark glyphs; a
photo shows blue-black ink on cream paper at whatever exposure. Going in, the
region's "ink amount" (inverted if the polarity is opposite) is stretched so
its background and ink span the model's range. Coming out, the model's ink
amount is coloured with the region's own paper and ink colours, fitted per
channel as `colour = paper + ink_amount * (ink - paper)`, so the edit keeps
the ink's hue and the paper's tint instead of turning black on grey.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.editors.base import opposite_polarity

LOW_PERCENTILE = 2.0  # background level: robust to a few dark specks
HIGH_PERCENTILE = 98.0  # ink level: robust to a few saturated pixels
MIN_SPAN = 8.0  # grey levels; a flat region is not stretched into noise
MIN_INK_CONTRAST = 32.0  # grey levels between background and ink below which a region is bare paper


@dataclass(frozen=True)
class ToneMap:
    """How one region's grey levels map to the model's ink amount in [0, 1], and back to RGB."""

    inverted: bool
    low: float
    high: float
    paper: np.ndarray  # (3,) float32: colour at ink amount 0
    ink: np.ndarray  # (3,) float32: colour at ink amount 1

    @classmethod
    def fit(cls, region: np.ndarray, polarity: str | None) -> ToneMap:
        """Fit the map to a (S, S, 3) uint8 region; `polarity` is the model's ("light_on_dark" or None)."""
        inverted = opposite_polarity(region, polarity)
        amount = _ink_level(region, inverted)
        if polarity is None:
            low, high = 0.0, 255.0
        else:
            low, high = (float(v) for v in np.percentile(amount, (LOW_PERCENTILE, HIGH_PERCENTILE)))
            high = max(high, low + MIN_SPAN)
        stretched = np.clip((amount - low) / (high - low), 0.0, 1.0).ravel()
        design = np.stack([np.ones_like(stretched), stretched], axis=1)  # (P, 2)
        coefficients, *_ = np.linalg.lstsq(design, region.reshape(-1, 3).astype(np.float32), rcond=None)
        paper, slope = coefficients.astype(np.float32)
        return cls(inverted=inverted, low=low, high=high, paper=paper, ink=paper + slope)

    @property
    def inked(self) -> bool:
        """Whether the region holds ink at all: paper grain and shading span only a few grey levels."""
        return self.high - self.low >= MIN_INK_CONTRAST

    def to_amount(self, region: np.ndarray) -> np.ndarray:
        """(S, S, 3) uint8 → (S, S) float32 ink amount in [0, 1], the model's polarity."""
        amount = _ink_level(region, self.inverted)
        return np.clip((amount - self.low) / (self.high - self.low), 0.0, 1.0).astype(np.float32)

    def to_colour(self, amount: np.ndarray) -> np.ndarray:
        """(S, S) ink amount in [0, 1] → (S, S, 3) uint8 in the region's own paper and ink colours."""
        colour = self.paper + np.clip(amount, 0.0, 1.0)[..., None] * (self.ink - self.paper)
        return np.clip(np.rint(colour), 0, 255).astype(np.uint8)


def _ink_level(region: np.ndarray, inverted: bool) -> np.ndarray:
    grey = region.astype(np.float32).mean(axis=2)
    return 255.0 - grey if inverted else grey
