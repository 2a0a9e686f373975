"""Label truth: what the puppets' images show matches the control values they were rendered with."""

from __future__ import annotations

import numpy as np
import pytest

from engine.puppets import load
from engine.puppets.base import Puppet

RENDERS = 200
SIZE = 64


@pytest.fixture(scope="module")
def digits() -> Puppet:
    return load("digits")


@pytest.fixture(scope="module")
def random_poses(digits: Puppet) -> list[dict[str, float]]:
    rng = np.random.default_rng(1234)
    return [digits.sample(rng) for _ in range(RENDERS)]


def _central_moments(image: np.ndarray) -> tuple[float, float, float, float]:
    """(mass, mu20, mu02, mu11) of a grey image, pixel coordinates with y down."""
    grey = image[:, :, 0].astype(np.float64)
    ys, xs = np.mgrid[0 : grey.shape[0], 0 : grey.shape[1]]
    mass = grey.sum()
    cx, cy = (grey * xs).sum() / mass, (grey * ys).sum() / mass
    mu20 = (grey * (xs - cx) ** 2).sum() / mass
    mu02 = (grey * (ys - cy) ** 2).sum() / mass
    mu11 = (grey * (xs - cx) * (ys - cy)).sum() / mass
    return mass, mu20, mu02, mu11


def _principal_angle_degrees(image: np.ndarray) -> float:
    """Counter-clockwise-on-screen angle of the ink's principal axis."""
    _, mu20, mu02, mu11 = _central_moments(image)
    return -np.degrees(0.5 * np.arctan2(2 * mu11, mu20 - mu02))  # y points down, so negate for on-screen CCW


def _spread(image: np.ndarray) -> float:
    _, mu20, mu02, _ = _central_moments(image)
    return float(np.sqrt(mu20 + mu02))


def test_digit_rotation_measured_from_moments_follows_rotation_control(digits: Puppet, random_poses) -> None:
    measured, requested = [], []
    for pose in random_poses:
        upright = digits.render({**pose, "rotation": 0.0}, SIZE)
        rotated = digits.render(pose, SIZE)
        change = _principal_angle_degrees(rotated) - _principal_angle_degrees(upright)
        measured.append((change + 90.0) % 180.0 - 90.0)  # an axis has no direction: wrap to [-90, 90)
        requested.append(pose["rotation"])
    correlation = np.corrcoef(measured, requested)[0, 1]
    assert correlation >= 0.99, f"rotation label correlation {correlation:.4f}"
    assert np.median(np.abs(np.subtract(measured, requested))) < 1.0


def test_digit_size_measured_from_moments_follows_size_control(digits: Puppet, random_poses) -> None:
    measured, requested = [], []
    for pose in random_poses:
        unit = digits.render({**pose, "size": 1.0}, SIZE)
        posed = digits.render(pose, SIZE)
        measured.append(_spread(posed) / _spread(unit))
        requested.append(pose["size"])
    correlation = np.corrcoef(measured, requested)[0, 1]
    assert correlation >= 0.99, f"size label correlation {correlation:.4f}"


def test_digit_ink_height_at_unit_size_is_mnist_like(digits: Puppet) -> None:
    """At size 1.0 and no rotation a digit's ink is ~20 px tall in a 32 px image, as in MNIST."""
    heights = []
    for digit in range(10):
        image = digits.render({"digit": digit}, 32)[:, :, 0]
        rows = np.flatnonzero((image > 127).any(axis=1))
        heights.append(rows[-1] - rows[0] + 1)
    assert all(19 <= height <= 21 for height in heights), heights
