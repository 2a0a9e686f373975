"""Regions: proposals find the object, crops pad instead of squashing, paste-back touches only the box."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import EditError
from engine.regions import Box, crop, paste_back, propose_box

SIZE = 32


@pytest.fixture
def paper_photo() -> np.ndarray:
    """A 480×640 grey-paper photo with a dark object, mild noise and a colour cast."""
    rng = np.random.default_rng(0)
    photo = np.full((480, 640, 3), (205, 200, 190), np.float32) + rng.normal(0, 3, (480, 640, 3))
    photo[150:330, 260:360] = (40, 40, 50)
    return np.clip(photo, 0, 255).astype(np.uint8)


def outside(pixels: np.ndarray, box: Box) -> np.ndarray:
    mask = np.ones(pixels.shape[:2], bool)
    mask[box.y : box.bottom, box.x : box.right] = False
    return pixels[mask]


def test_propose_box_finds_the_object_with_a_margin(paper_photo: np.ndarray) -> None:
    box = propose_box(paper_photo, margin=0.1)
    assert box.x <= 260 and box.y <= 150 and box.right >= 360 and box.bottom >= 330
    assert box.w < 640 * 0.5 and box.h < 480 * 0.6  # the object, not the page


def test_propose_box_falls_back_to_the_whole_image_without_contrast() -> None:
    flat = np.full((100, 120, 3), 128, np.uint8)
    assert propose_box(flat) == Box(0, 0, 120, 100)


def test_propose_box_works_on_16_bit(paper_photo: np.ndarray) -> None:
    deep = paper_photo.astype(np.uint16) * 257
    assert propose_box(deep) == propose_box(paper_photo)


def test_crop_pads_a_wide_box_to_a_square_instead_of_squashing(paper_photo: np.ndarray) -> None:
    box = Box(0, 200, 640, 80)
    cut = crop(paper_photo, box, SIZE)
    assert cut.region.shape == (SIZE, SIZE, 3) and cut.region.dtype == np.uint8
    assert cut.square == (0.0, 200 - (640 - 80) // 2, 640.0)
    # The square reaches past the photo's top and bottom: padded by replication, so the border rows repeat.
    assert np.array_equal(cut.region[0], cut.region[1])


def test_crop_of_16_bit_matches_the_8_bit_crop(paper_photo: np.ndarray) -> None:
    box = Box(240, 130, 140, 220)
    eight = crop(paper_photo, box, SIZE).region
    sixteen = crop(paper_photo.astype(np.uint16) * 257, box, SIZE).region
    assert np.abs(eight.astype(int) - sixteen).max() <= 1


def test_crop_outside_the_photo_is_an_edit_error(paper_photo: np.ndarray) -> None:
    with pytest.raises(EditError, match="lies outside"):
        crop(paper_photo, Box(700, 0, 10, 10), SIZE)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_paste_back_leaves_outside_pixels_untouched(paper_photo: np.ndarray, dtype: type) -> None:
    pixels = paper_photo.astype(dtype) * (257 if dtype == np.uint16 else 1)
    box = Box(230, 120, 160, 240)
    cut = crop(pixels, box, SIZE)
    edited = 255 - cut.region
    result = paste_back(pixels, cut, edited)
    assert result.dtype == dtype and result.shape == pixels.shape
    assert np.array_equal(outside(result, box), outside(pixels, box))
    assert not np.array_equal(result, pixels)


def test_paste_back_of_an_unchanged_region_changes_little(paper_photo: np.ndarray) -> None:
    box = propose_box(paper_photo)
    cut = crop(paper_photo, box, SIZE)
    result = paste_back(paper_photo, cut, cut.region)
    inside = result[box.y : box.bottom, box.x : box.right].astype(int) - paper_photo[box.y : box.bottom, box.x : box.right]
    # Only the blur of a 32-px round trip remains: most of the box stays near the photo.
    assert np.median(np.abs(inside)) <= 6


def test_colour_match_removes_a_model_colour_shift_at_the_seam(paper_photo: np.ndarray) -> None:
    box = Box(200, 100, 240, 280)
    cut = crop(paper_photo, box, SIZE)
    shifted = np.clip(cut.region.astype(int) + (40, -30, 20), 0, 255).astype(np.uint8)  # a model with a colour cast
    matched = paste_back(paper_photo, cut, shifted, color_match=True)
    raw = paste_back(paper_photo, cut, shifted, color_match=False)
    ring = (slice(box.y + 30, box.y + 40), slice(box.x + 40, box.right - 40))  # just inside the top edge
    error_matched = np.abs(matched[ring].astype(int) - paper_photo[ring]).mean()
    error_raw = np.abs(raw[ring].astype(int) - paper_photo[ring]).mean()
    assert error_matched < 0.3 * error_raw


def test_feathered_edge_starts_at_the_photo_value(paper_photo: np.ndarray) -> None:
    box = Box(200, 100, 240, 280)
    cut = crop(paper_photo, box, SIZE)
    result = paste_back(paper_photo, cut, np.zeros_like(cut.region), color_match=False)
    edge_row = result[box.y, box.x + 20 : box.right - 20].astype(int)
    assert np.abs(edge_row - paper_photo[box.y, box.x + 20 : box.right - 20]).max() <= 3
    assert result[box.y + box.h // 2, box.x + box.w // 2].max() <= 1  # the centre is the edit


def test_box_touching_the_photo_edge_is_not_feathered_there(paper_photo: np.ndarray) -> None:
    box = Box(0, 0, 640, 480)
    cut = crop(paper_photo, box, SIZE)
    result = paste_back(paper_photo, cut, np.zeros_like(cut.region), color_match=False)
    assert result.max() <= 1


def test_paste_back_refuses_an_edit_at_the_wrong_size(paper_photo: np.ndarray) -> None:
    cut = crop(paper_photo, Box(10, 10, 50, 50), SIZE)
    with pytest.raises(EditError, match=r"must be \(32, 32, 3\) uint8"):
        paste_back(paper_photo, cut, np.zeros((16, 16, 3), np.uint8))
