"""PuppetGAN metrics: the estimators read known rotations and sizes, and the baselines bracket the table."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine import puppets
from trainer.evaluate import (
    canonicalise,
    evaluation_grid,
    format_table,
    load_classifier,
    measure_rotation,
    measure_size,
    preview_grid,
)


def turned_bar(angle: float, scale: float = 1.0) -> np.ndarray:
    """A 32 x 32 white upright bar turned `angle` degrees counter-clockwise and scaled, as (32, 32, 3) uint8."""
    image = np.zeros((32, 32), np.uint8)
    cv2.rectangle(image, (14, 6), (17, 25), 255, thickness=-1)
    matrix = cv2.getRotationMatrix2D((15.5, 15.5), angle, scale)
    turned = cv2.warpAffine(image, matrix, (32, 32), flags=cv2.INTER_LINEAR)
    return np.repeat(turned[..., None], 3, axis=-1)


@pytest.fixture(scope="module")
def rotation_grid():
    puppet = puppets.load("digits")
    control = puppet.control("rotation")
    return evaluation_grid(puppet, control, {}, n_inputs=100, n_references=5)


@pytest.mark.parametrize("angle", [-40.0, -15.0, 0.0, 20.0, 40.0])
def test_measure_rotation_reads_a_counter_clockwise_turn_as_positive_degrees(angle: float) -> None:
    assert measure_rotation(turned_bar(angle)[None])[0] == pytest.approx(angle, abs=1.5)


def test_measure_size_grows_in_proportion_to_the_glyph() -> None:
    small, large = measure_size(np.stack([turned_bar(0.0, 0.8), turned_bar(0.0, 1.2)]))
    assert large / small == pytest.approx(1.5, rel=0.05)


def test_measure_size_ignores_rotation() -> None:
    sizes = measure_size(np.stack([turned_bar(a) for a in (-30.0, 0.0, 30.0)]))
    assert np.ptp(sizes) < 0.05 * sizes.mean()


def test_canonicalise_undoes_rotation() -> None:
    bars = np.stack([turned_bar(a) for a in (-30.0, 0.0, 30.0)])
    raw_spread = (bars.mean(-1) / 255.0).std(axis=0).mean()
    assert canonicalise(bars, "rotation").std(axis=0).mean() < 0.3 * raw_spread


def test_the_classifier_reads_held_out_mnist() -> None:
    assert load_classifier().test_accuracy >= 0.96


def test_identity_baseline_keeps_content_and_ignores_the_reference(rotation_grid) -> None:
    identity, _ = rotation_grid.baselines()
    assert identity.Acc >= 0.95
    assert abs(identity.r_attr) < 0.05
    assert identity.r_rest == pytest.approx(1.0)
    assert identity.V_rest == pytest.approx(0.0, abs=1e-9)


def test_puppet_copy_baseline_follows_the_reference_and_forgets_the_input(rotation_grid) -> None:
    _, copy = rotation_grid.baselines()
    assert copy.r_attr == pytest.approx(1.0)
    assert abs(copy.r_rest) < 0.05
    assert copy.Acc < 0.3
    assert copy.V_rest > 0.02


def test_references_span_the_served_range(rotation_grid) -> None:
    measured = measure_rotation(rotation_grid.references)
    assert np.corrcoef(measured, rotation_grid.reference_values)[0, 1] > 0.9


def test_table_prints_the_paper_row_beside_the_measured_ones(rotation_grid) -> None:
    table = format_table(rotation_grid.baselines(), "rotation")
    assert "identity" in table and "puppet copy" in table
    assert "0.970   0.400   0.110" in table


def test_preview_grid_puts_inputs_on_top_and_references_on_the_left() -> None:
    inputs = np.full((3, 32, 32, 3), 10, np.uint8)
    references = np.full((2, 32, 32, 3), 200, np.uint8)
    outputs = np.full((2, 3, 32, 32, 3), 90, np.uint8)
    picture = preview_grid(inputs, references, outputs)
    assert picture.shape == (3 * 32, 4 * 32, 3)
    assert picture[5, 40, 0] == 10 and picture[40, 5, 0] == 200 and picture[40, 40, 0] == 90
