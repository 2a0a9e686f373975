"""Tone mapping for greyscale models: ink on paper in, the region's own colours out."""

from __future__ import annotations

import numpy as np
import pytest

from engine.editors.tone import ToneMap

PAPER = np.array([240, 230, 205], np.float32)
INK = np.array([35, 45, 95], np.float32)  # blue-black


@pytest.fixture
def ink_on_paper() -> np.ndarray:
    """A cream page with a blue-black stroke, the stroke's edge anti-aliased."""
    amount = np.zeros((32, 32), np.float32)
    amount[8:24, 14:18] = 1.0
    amount[8:24, 13] = amount[8:24, 18] = 0.5
    return np.rint(PAPER + amount[..., None] * (INK - PAPER)).astype(np.uint8)


def test_dark_ink_on_light_paper_maps_to_full_range_light_on_dark_amount(ink_on_paper: np.ndarray) -> None:
    tone = ToneMap.fit(ink_on_paper, "light_on_dark")
    amount = tone.to_amount(ink_on_paper)
    assert tone.inverted
    assert amount[0, 0] == pytest.approx(0.0, abs=0.01)
    assert amount[16, 15] == pytest.approx(1.0, abs=0.01)
    assert amount[16, 13] == pytest.approx(0.5, abs=0.02)


def test_low_contrast_pencil_is_stretched_to_the_models_range() -> None:
    region = np.full((32, 32, 3), 200, np.uint8)
    region[10:22, 15:17] = 150
    amount = ToneMap.fit(region, "light_on_dark").to_amount(region)
    assert amount.min() == pytest.approx(0.0) and amount.max() == pytest.approx(1.0)


def test_model_output_is_coloured_with_the_regions_paper_and_ink(ink_on_paper: np.ndarray) -> None:
    tone = ToneMap.fit(ink_on_paper, "light_on_dark")
    np.testing.assert_allclose(tone.paper, PAPER, atol=1.5)
    np.testing.assert_allclose(tone.ink, INK, atol=1.5)
    coloured = tone.to_colour(np.array([[0.0, 1.0, 0.5]], np.float32))
    np.testing.assert_allclose(coloured[0, 0], PAPER, atol=2)
    np.testing.assert_allclose(coloured[0, 1], INK, atol=2)
    np.testing.assert_allclose(coloured[0, 2], (PAPER + INK) / 2, atol=2)


def test_round_trip_reproduces_the_region(ink_on_paper: np.ndarray) -> None:
    tone = ToneMap.fit(ink_on_paper, "light_on_dark")
    back = tone.to_colour(tone.to_amount(ink_on_paper))
    assert np.abs(back.astype(int) - ink_on_paper.astype(int)).max() <= 2


def test_flat_region_is_not_stretched_into_noise() -> None:
    region = np.full((16, 16, 3), 128, np.uint8)
    region[5, 5] = 131
    amount = ToneMap.fit(region, "light_on_dark").to_amount(region)
    assert amount.max() < 0.5
