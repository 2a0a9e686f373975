"""In-memory image sets: the one array form every loader returns, and fitting a picture to a square."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class LabelledImages:
    """Images with one row of integer labels each, as every dataset hands them to training.

    `images` is (N, H, W, 3) uint8 RGB (or (N, H, W) uint8 grey where asked for);
    `labels` is (N, K) int64 with one column per name in `label_names`
    (MNIST: K = 1, "digit"; 3D-Shapes-ABC: K = 6 factor class indices).
    """

    images: np.ndarray
    labels: np.ndarray
    label_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.images)

    def label(self, name: str) -> np.ndarray:
        """The (N,) column of one label, e.g. `label("digit")`."""
        return self.labels[:, self.label_names.index(name)]

    def take(self, indices: np.ndarray) -> LabelledImages:
        """The subset at `indices` (a batch, a class, a split), as a new set."""
        return LabelledImages(self.images[indices], self.labels[indices], self.label_names)


def sample_batch(data: LabelledImages, n: int, rng: np.random.Generator) -> LabelledImages:
    """`n` images drawn with replacement through `rng`, so a resumed run draws the same batches."""
    return data.take(rng.integers(0, len(data), size=n))


def fit_square(pixels: np.ndarray, size: int) -> np.ndarray:
    """Scale the shorter side to `size` and cut the centre square: no stretching, no borders.

    Area interpolation when shrinking (no aliasing on photos), bicubic when enlarging.
    """
    height, width = pixels.shape[:2]
    scale = size / min(height, width)
    new_width = max(size, round(width * scale))
    new_height = max(size, round(height * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    resized = cv2.resize(pixels, (new_width, new_height), interpolation=interpolation)
    top = (new_height - size) // 2
    left = (new_width - size) // 2
    return np.ascontiguousarray(resized[top:top + size, left:left + size])
