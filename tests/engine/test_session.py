"""Edit sessions: prepare once, preview on a small view, commit at full resolution keeping alpha and bit depth."""

from __future__ import annotations

import numpy as np
import pytest

from engine import editors
from engine.editors.base import Editor
from engine.imageio import Photo
from engine.package import load_package
from engine.regions import Box
from engine.session import EditJob, EditSession, run_job
from tests.engine.tiny_models import write_package


@pytest.fixture(scope="module")
def editor(tmp_path_factory: pytest.TempPathFactory) -> Editor:
    return editors.load(load_package(write_package(tmp_path_factory.mktemp("session") / "tiny-digits")), "cpu")


def make_photo(dtype: type, alpha: bool, height: int = 300, width: int = 400) -> Photo:
    peak = np.iinfo(dtype).max
    pixels = np.full((height, width, 3), int(peak * 0.85), dtype)
    pixels[100:200, 170:230] = int(peak * 0.1)
    alpha_plane = np.linspace(0, peak, height * width).reshape(height, width).astype(dtype) if alpha else None
    return Photo(pixels=pixels, alpha=alpha_plane, bit_depth=16 if dtype == np.uint16 else 8,
                 source=None, icc_profile=None, format="PNG")


@pytest.mark.parametrize(("dtype", "alpha"), [(np.uint8, True), (np.uint16, True), (np.uint16, False)])
def test_commit_keeps_alpha_and_bit_depth_and_changes_only_the_box(editor: Editor, dtype: type, alpha: bool) -> None:
    photo = make_photo(dtype, alpha)
    box = Box(150, 80, 100, 140)
    result = EditSession(photo, editor, box).commit({"rotation": 20.0})
    assert result.photo is not None
    assert result.photo.pixels.dtype == dtype and result.photo.bit_depth == photo.bit_depth
    assert result.photo.alpha is photo.alpha
    changed = np.argwhere((result.pixels != photo.pixels).any(axis=2))
    assert changed.size > 0
    assert changed[:, 0].min() >= box.y and changed[:, 0].max() < box.bottom
    assert changed[:, 1].min() >= box.x and changed[:, 1].max() < box.right


def test_prepare_runs_once_and_preview_uses_a_downscaled_view(editor: Editor) -> None:
    photo = make_photo(np.uint8, False, height=600, width=800)
    session = EditSession(photo, editor, preview_side=200)
    session.prepare()
    state = session._state
    preview = session.preview({"rotation": -10.0})
    assert session._state is state
    assert preview.pixels.shape == (150, 200, 3) and preview.scale == 0.25
    assert preview.timings.total_ms > 0
    committed = session.commit({"rotation": -10.0})
    assert committed.pixels.shape == photo.pixels.shape
    assert np.array_equal(preview.model_output, committed.model_output)
    assert np.array_equal(session.apply({"rotation": -10.0}), committed.pixels)


def test_session_without_a_box_edits_the_proposed_object(editor: Editor) -> None:
    photo = make_photo(np.uint8, False)
    session = EditSession(photo, editor)
    assert session.box.x <= 170 and session.box.right >= 230 and session.box.w < 400


def test_run_job_reuses_a_loaded_editor(editor: Editor) -> None:
    photo = make_photo(np.uint8, False)
    result = run_job(EditJob(photo=photo, package=editor.package, controls={"rotation": 3.0}, box=Box(150, 80, 100, 140)), editor)
    assert result.pixels.shape == photo.pixels.shape and result.box == Box(150, 80, 100, 140)
