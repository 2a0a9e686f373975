"""A digit's rotation and size read back from its pixels, in the `digits` puppet's units.

One estimator per attribute, shared by the evaluation (which scores every
input, reference and output of its grid with it) and the editor (which starts
a slider at the value the photo's own digit reads), so the slider and the
metrics mean the same thing by "rotation" and "size".
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

GLYPH_HEIGHT_AT_UNIT_SIZE = 20 / 32  # ink height / image side at size 1.0 (MNIST's 20-px box in 32 px)

# Ink rows count fully from this brightest-pixel value up and not at all below INK_ROW_LOW (pixels in [0, 1]).
INK_ROW_LOW, INK_ROW_HIGH = 0.25, 0.75

MIN_ELONGATION = 1.1  # major / minor second moment below which a glyph has no principal axis (see `elongation`)


def ink_levels(images: np.ndarray) -> np.ndarray:
    """(N, S, S, 3) or (N, S, S) uint8 -> (N, S, S) float in [0, 1], light glyph on dark."""
    images = np.asarray(images)
    if images.ndim == 4:
        images = images.mean(axis=-1)
    return images.astype(np.float64) / 255.0


def moments(grey: np.ndarray) -> tuple[np.ndarray, ...]:
    """Intensity-weighted centroid (cx, cy) and central second moments (xx, yy, xy), y pointing up."""
    _, height, width = grey.shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    ys = -ys  # y up, so a counter-clockwise turn on screen is a positive angle
    mass = grey.sum(axis=(1, 2)) + 1e-8
    cx = (grey * xs).sum(axis=(1, 2)) / mass
    cy = (grey * ys).sum(axis=(1, 2)) / mass
    dx = xs[None] - cx[:, None, None]
    dy = ys[None] - cy[:, None, None]
    xx = (grey * dx * dx).sum(axis=(1, 2)) / mass
    yy = (grey * dy * dy).sum(axis=(1, 2)) / mass
    xy = (grey * dx * dy).sum(axis=(1, 2)) / mass
    return cx, -cy, xx, yy, xy


def measure_rotation(images: np.ndarray) -> np.ndarray:
    """Rotation in degrees: the angle of the glyph's principal axis from the vertical, counter-clockwise positive.

    The principal axis is the major eigenvector of the intensity-weighted second
    moments (pixels in [0, 1], light on dark); an upright glyph reads ~0, a glyph
    turned 20 degrees counter-clockwise reads ~+20. Result in (-90, 90].
    """
    _, _, xx, yy, xy = moments(ink_levels(images))
    axis_from_x = 0.5 * np.degrees(np.arctan2(2.0 * xy, xx - yy))  # (-90, 90]
    rotation = axis_from_x - 90.0
    return np.where(rotation <= -90.0, rotation + 180.0, rotation)


def elongation(images: np.ndarray) -> np.ndarray:
    """Major over minor second moment of each glyph: 1 for a disc or for noise, whose principal axis means nothing.

    MNIST test digits read 1.08 or more (1st percentile of the 0s; 1s read ~40),
    stretched paper noise 1.01-1.04, so below MIN_ELONGATION a rotation reading is noise's.
    """
    _, _, xx, yy, xy = moments(ink_levels(images))
    trace, spread = xx + yy, np.sqrt((xx - yy) ** 2 + 4.0 * xy**2)
    return (trace + spread) / np.maximum(trace - spread, 1e-9)


def measure_size(images: np.ndarray) -> np.ndarray:
    """Size in the digits puppet's `size` units: the ink's height in rows / (GLYPH_HEIGHT_AT_UNIT_SIZE x image side).

    The ink height is the number of image rows holding ink, each row weighted by
    its brightest pixel (0 below INK_ROW_LOW, 1 above INK_ROW_HIGH, linear
    between): the height of the ink's bounding box, to sub-pixel precision, and a
    stray speck adds only the rows it covers instead of stretching the box to it. A
    puppet render at `size` s reads ~s when upright (1.0 = 20 px ink of 32).
    Turning a glyph changes its height (a tall glyph at 45 degrees reads ~10%
    taller), which the size grid's randomly turned references carry as noise:
    their readings still correlate 0.96 with their size controls.

    Why not the RMS radius (sqrt of the second moments' trace), used before: it
    measures shape as much as size (a "1" has a small radius at any height), so
    an oracle that sets every real digit's ink height to the reference's size
    scored only r_attr 0.72 / r_rest 0.53 with it; with the ink height it scores
    r_attr 0.93 / r_rest 0.01 on the full size grid (tests/trainer/test_evaluate.py checks it).
    """
    grey = ink_levels(images)
    row_ink = np.clip((grey.max(axis=2) - INK_ROW_LOW) / (INK_ROW_HIGH - INK_ROW_LOW), 0.0, 1.0)
    return row_ink.sum(axis=1) / (GLYPH_HEIGHT_AT_UNIT_SIZE * grey.shape[1])


MEASURES: dict[str, Callable[[np.ndarray], np.ndarray]] = {"rotation": measure_rotation, "size": measure_size}
MEASURE_UNITS = {"rotation": "principal-axis angle, degrees", "size": "ink height / 20 px, the puppet's size units"}
