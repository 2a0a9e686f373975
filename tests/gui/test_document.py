"""The document and its history, without widgets: compact patches, exact undo, a step limit sized to the photo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.imageio import Photo
from gui.model.document import MAX_UNDO_STEPS, MIN_UNDO_STEPS, Document, changed_rect, undo_limit_for


def photo_of(pixels: np.ndarray) -> Photo:
    return Photo(pixels=pixels, alpha=None, bit_depth=8, source=Path("/photos/page.png"), icc_profile=None,
                 format="PNG")


@pytest.fixture
def document(qtbot) -> Document:
    doc = Document()
    doc.open(photo_of(np.full((300, 400, 3), 200, np.uint8)))
    return doc


def test_changed_rect_is_the_bounding_box_of_differing_pixels():
    before = np.zeros((50, 60, 3), np.uint8)
    after = before.copy()
    after[10, 20] = 1
    after[30, 45, 2] = 9
    assert changed_rect(before, after) == (20, 10, 26, 21)
    assert changed_rect(before, before.copy()) is None


def test_a_commit_keeps_only_the_pixels_that_changed(document: Document):
    edit = document.pixels[100:200, 100:200].copy()
    edit[40:50, 60:70] = 0
    assert document.commit(100, 100, edit, "darken", {"rotation": 5.0})
    assert document.history_bytes() == 2 * 10 * 10 * 3
    assert document.undo_stack.text(0) == "darken"


def test_undo_and_redo_write_the_patch_back_exactly(document: Document):
    original = document.pixels.copy()
    edit = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    document.commit(10, 20, edit, "noise", {})
    edited = document.pixels.copy()
    document.undo_stack.undo()
    np.testing.assert_array_equal(document.pixels, original)
    document.undo_stack.redo()
    np.testing.assert_array_equal(document.pixels, edited)


def test_an_edit_that_changes_nothing_is_not_recorded(document: Document):
    assert not document.commit(0, 0, document.pixels[:10, :10].copy(), "nothing", {})
    assert document.undo_stack.count() == 0
    assert not document.is_modified


def test_the_step_limit_shrinks_for_large_photos_but_never_below_the_minimum():
    small = np.zeros((100, 100, 3), np.uint8)
    large = np.zeros((6000, 8000, 3), np.uint8)  # 48 MP: a whole-photo patch pair is 288 MB
    assert undo_limit_for(small) == MAX_UNDO_STEPS
    assert undo_limit_for(large) == MIN_UNDO_STEPS


def test_opening_a_photo_starts_an_empty_history(document: Document):
    document.commit(0, 0, np.zeros((5, 5, 3), np.uint8), "black", {})
    document.open(photo_of(np.zeros((10, 10, 3), np.uint8)))
    assert document.undo_stack.count() == 0
    assert document.box is None and document.preview is None
