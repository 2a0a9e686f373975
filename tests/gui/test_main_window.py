"""The main window as a user drives it: open, draw a region, pose, undo, pick a guide, save, survive bad files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtWidgets import QFileDialog

from engine.imageio import load_image
from engine.regions import Box
from gui._qt.main_window import MainWindow
from gui.model.settings import Settings
from tests.gui.conftest import save_shot

WAIT_MS = 10_000


def use_model(window: MainWindow, qtbot, name: str) -> None:
    package = next(p for p in window.library.packages() if p.name == name)
    window.activate_model(package)
    qtbot.waitUntil(lambda: window.model.editor is not None and window.model.name == name, timeout=WAIT_MS)


def settle(window: MainWindow, qtbot) -> None:
    """Wait until the photo is open, the region encoded and no engine work is left."""
    qtbot.waitUntil(
        lambda: window.document.pixels is not None and window.is_idle()
        and (window.document.box is None or window.model.editor is None or window.pipeline.session is not None),
        timeout=WAIT_MS,
    )


@pytest.fixture
def editing(window: MainWindow, qtbot, photo_path: Path) -> MainWindow:
    """The window with the tiny puppet model and the test page open, its region encoded."""
    use_model(window, qtbot, "tiny-puppet")
    window.open_photo(photo_path)
    settle(window, qtbot)
    return window


def outside(mask_box: Box, shape: tuple[int, ...]) -> np.ndarray:
    mask = np.ones(shape[:2], bool)
    mask[mask_box.y : mask_box.bottom, mask_box.x : mask_box.right] = False
    return mask


def drag_slider(window: MainWindow, name: str, value: float) -> None:
    """Press, move and release a control's slider the way a mouse drag does."""
    slider = window.controls.control_widget(name)
    slider.setSliderDown(True)
    slider.setValue(value)
    slider.setSliderDown(False)  # emits sliderReleased: the commit


def test_opening_a_photo_shows_it_with_a_proposed_region(editing: MainWindow, photo_path: Path, shots: Path):
    original = np.asarray(Image.open(photo_path).convert("RGB"))
    np.testing.assert_array_equal(editing.canvas_pixels(), original)
    box = editing.document.box
    assert box is not None and 0 < box.w < original.shape[1]  # a box on an ink blob, not the whole page
    assert "page.png" in editing.windowTitle()
    assert editing.settings.recent_files()[0] == photo_path.resolve()
    save_shot(editing, shots, "opened")


def test_drawing_a_region_on_the_canvas_sets_the_box(editing: MainWindow, qtbot):
    canvas = editing.canvas
    assert editing.document.box.x > 150  # the proposed box sits on the right blob, away from this drag
    start = canvas.mapFromScene(QPointF(20, 30))
    end = canvas.mapFromScene(QPointF(120, 140))
    viewport = canvas.viewport()
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(viewport, pos=QPoint((start.x() + end.x()) // 2, (start.y() + end.y()) // 2))
    qtbot.mouseMove(viewport, pos=end)
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=end)
    box = editing.document.box
    assert box is not None
    assert abs(box.x - 20) <= 3 and abs(box.y - 30) <= 3
    assert abs(box.right - 120) <= 3 and abs(box.bottom - 140) <= 3
    settle(editing, qtbot)
    assert editing.pipeline.session is not None and editing.pipeline.session.box == box


def test_moving_the_box_drags_it_without_resizing(editing: MainWindow, qtbot):
    editing.document.set_box(Box(40, 40, 80, 80))
    canvas, viewport = editing.canvas, editing.canvas.viewport()
    start, end = canvas.mapFromScene(QPointF(80, 80)), canvas.mapFromScene(QPointF(110, 100))
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(viewport, pos=end)
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=end)
    box = editing.document.box
    assert (box.w, box.h) == (80, 80)
    assert abs(box.x - 70) <= 3 and abs(box.y - 60) <= 3


def test_moving_a_slider_changes_pixels_inside_the_region_only(editing: MainWindow, qtbot, shots: Path):
    before = editing.canvas_pixels()
    box = editing.document.box
    slider = editing.controls.control_widget("rotation")
    slider.setSliderDown(True)
    slider.setValue(25.0)
    qtbot.waitUntil(lambda: editing.document.preview is not None, timeout=WAIT_MS)
    shown = editing.canvas_pixels()
    assert not np.array_equal(shown, before)
    np.testing.assert_array_equal(shown[outside(box, shown.shape)], before[outside(box, before.shape)])
    assert editing.document.undo_stack.count() == 0  # a drag in progress is only a preview
    assert editing.latency_label.text().startswith("preview ") and "ms" in editing.latency_label.text()
    slider.setSliderDown(False)
    qtbot.waitUntil(lambda: editing.document.undo_stack.count() == 1, timeout=WAIT_MS)
    committed = editing.document.pixels
    assert not np.array_equal(committed, before)
    np.testing.assert_array_equal(committed[outside(box, committed.shape)], before[outside(box, before.shape)])
    assert "rotation 25" in editing.document.undo_stack.text(0)
    save_shot(editing, shots, "puppet_edit")


def test_undo_restores_pixels_exactly_and_redo_reapplies_them(editing: MainWindow, qtbot):
    before = editing.document.pixels.copy()
    drag_slider(editing, "rotation", -30.0)
    qtbot.waitUntil(lambda: editing.document.undo_stack.count() == 1, timeout=WAIT_MS)
    edited = editing.document.pixels.copy()
    editing.undo_action.trigger()
    np.testing.assert_array_equal(editing.document.pixels, before)
    np.testing.assert_array_equal(editing.canvas_pixels(), before)
    start = editing.pipeline.session.measured["rotation"]
    assert editing.controls.values()["rotation"] == pytest.approx(start)  # the history's start: the region's pose
    editing.redo_action.trigger()
    np.testing.assert_array_equal(editing.document.pixels, edited)
    assert editing.controls.values()["rotation"] == -30.0


def turned_bars_page(angles: tuple[float, ...]) -> tuple[np.ndarray, list[Box]]:
    """A light page with one dark bar per angle (counter-clockwise degrees), side by side, and a box around each."""
    page = np.full((160, 160 * len(angles), 3), 232, np.uint8)
    boxes = []
    for i, angle in enumerate(angles):
        bar = np.zeros((160, 160), np.float32)
        bar[40:120, 74:86] = 1.0
        turned = cv2.warpAffine(bar, cv2.getRotationMatrix2D((79.5, 79.5), angle, 1.0), (160, 160))
        page[:, 160 * i : 160 * (i + 1)] = np.rint(232 - 200 * turned)[..., None].astype(np.uint8)
        boxes.append(Box(160 * i + 20, 20, 120, 120))
    return page, boxes


def test_a_new_region_starts_its_sliders_at_its_own_pose(window: MainWindow, qtbot, tmp_path: Path):
    page, (left, right) = turned_bars_page((20.0, -25.0))
    path = tmp_path / "bars.png"
    Image.fromarray(page).save(path)
    use_model(window, qtbot, "tiny-puppet")
    window.open_photo(path)
    settle(window, qtbot)
    for box, angle in ((left, 20.0), (right, -25.0)):
        window.document.set_box(box)
        settle(window, qtbot)
        assert window.controls.values()["rotation"] == pytest.approx(angle, abs=4.0)
        assert "reads rotation" in window.statusBar().currentMessage()
        assert window.document.preview is None and window.document.undo_stack.count() == 0  # reading edits nothing
    window.document.set_box(left)
    window.controls.set_values({"rotation": -40.0})  # moved while the region is still being encoded: the user wins
    settle(window, qtbot)
    assert window.controls.values()["rotation"] == -40.0
    assert window.document.preview is not None and window.document.preview.values["rotation"] == -40.0


def test_history_keeps_only_the_changed_rectangle(editing: MainWindow, qtbot):
    drag_slider(editing, "size", 1.3)
    qtbot.waitUntil(lambda: editing.document.undo_stack.count() == 1, timeout=WAIT_MS)
    box = editing.document.box
    assert 0 < editing.document.history_bytes() <= 2 * box.w * box.h * 3
    assert editing.document.undo_stack.undoLimit() >= 10


def test_rapid_slider_moves_are_coalesced_and_the_last_value_wins(editing: MainWindow, qtbot):
    slider = editing.controls.control_widget("rotation")
    started = editing.runner.started.get("preview", 0)
    slider.setSliderDown(True)
    values = np.linspace(-40, 40, 60)
    for value in values:
        slider.setValue(float(value))
    qtbot.waitUntil(lambda: editing.is_idle() and editing.document.preview is not None, timeout=WAIT_MS)
    ran = editing.runner.started.get("preview", 0) - started
    assert 1 <= ran <= 3  # 60 moves, at most the first, one in flight and the newest computed
    assert editing.document.preview.values["rotation"] == pytest.approx(values[-1])
    slider.setSliderDown(False)
    qtbot.waitUntil(lambda: editing.document.undo_stack.count() == 1, timeout=WAIT_MS)
    assert editing.document.undo_stack.count() == 1


def test_holding_backslash_shows_the_original(editing: MainWindow, qtbot, shots: Path):
    drag_slider(editing, "rotation", 20.0)
    qtbot.waitUntil(lambda: editing.document.undo_stack.count() == 1, timeout=WAIT_MS)
    canvas = editing.canvas
    qtbot.keyPress(canvas, Qt.Key.Key_Backslash)
    assert canvas.showing_original()
    save_shot(editing, shots, "holding_original")
    qtbot.keyRelease(canvas, Qt.Key.Key_Backslash)
    assert not canvas.showing_original()
    editing.split_action.trigger()
    assert canvas.is_split() and canvas.showing_original()
    assert editing.settings.split_view()
    save_shot(editing, shots, "split_view")


def test_a_guide_model_applies_the_picked_guide(editing: MainWindow, qtbot, models_dir: Path, shots: Path):
    use_model(editing, qtbot, "tiny-guide")
    box = Box(10, 20, 100, 90)  # the user may still limit a guide model to a drawn region
    editing.document.set_box(box)
    settle(editing, qtbot)
    guides = editing.controls.guide_paths()
    assert [p.name for p in guides] == ["guide0.png", "guide1.png", "guide2.png"]
    before = editing.document.pixels.copy()
    editing.controls.select_guide(guides[1])
    qtbot.waitUntil(lambda: editing.document.undo_stack.count() == 1, timeout=WAIT_MS)
    after = editing.document.pixels
    assert not np.array_equal(after, before)
    np.testing.assert_array_equal(after[outside(box, after.shape)], before[outside(box, before.shape)])
    assert "guide guide1.png at 100%" == editing.document.undo_stack.text(0)
    save_shot(editing, shots, "guide_edit")


def test_switching_between_object_and_scene_models_proposes_a_fitting_region(editing: MainWindow, qtbot):
    height, width = editing.document.pixels.shape[:2]
    object_box = editing.document.box
    assert object_box.w < width
    use_model(editing, qtbot, "tiny-guide")
    assert editing.document.box == Box(0, 0, width, height)  # a guide model translates the whole scene
    use_model(editing, qtbot, "tiny-puppet")
    assert editing.document.box == object_box  # back on the object a puppet edits


def test_an_unreadable_guide_is_reported_and_leaves_the_picker_as_it_was(editing: MainWindow, qtbot, tmp_path: Path):
    use_model(editing, qtbot, "tiny-guide")
    settle(editing, qtbot)
    before = editing.controls.guide_paths()
    broken = tmp_path / "broken.png"
    broken.write_text("not an image")
    assert editing.controls.select_guide(broken)  # the reader's reason, instead of looping on the file
    assert editing.controls.guide_paths() == before
    assert editing.document.undo_stack.count() == 0


def test_save_goes_to_a_new_file_and_reads_back(editing: MainWindow, qtbot, photo_path: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch):
    original_bytes = photo_path.read_bytes()
    drag_slider(editing, "rotation", 15.0)
    qtbot.waitUntil(lambda: editing.document.undo_stack.count() == 1, timeout=WAIT_MS)
    suggested: list[str] = []
    target = tmp_path / "out.png"

    def save_dialog(_parent, _caption, name, _filter):
        suggested.append(name)
        return str(target), "PNG (*.png)"

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(save_dialog))
    assert editing.document.is_modified
    editing.save_action.trigger()  # the first Ctrl+S asks where, suggesting name-edited.png
    qtbot.waitUntil(lambda: target.exists() and not editing.document.is_modified, timeout=WAIT_MS)
    assert Path(suggested[0]).name == "page-edited.png"
    np.testing.assert_array_equal(load_image(target).pixels, editing.document.pixels)
    assert photo_path.read_bytes() == original_bytes
    drag_slider(editing, "rotation", -15.0)
    qtbot.waitUntil(lambda: editing.document.undo_stack.count() == 2, timeout=WAIT_MS)
    editing.save_action.trigger()  # later saves go to the chosen file without asking again
    qtbot.waitUntil(lambda: not editing.document.is_modified, timeout=WAIT_MS)
    assert len(suggested) == 1
    np.testing.assert_array_equal(load_image(target).pixels, editing.document.pixels)


def test_opening_a_broken_file_shows_a_message_and_the_window_lives(
    editing: MainWindow, qtbot, broken_photo: Path, messages: list[tuple[str, str]]
):
    pixels = editing.document.pixels.copy()
    editing.open_photo(broken_photo)
    qtbot.waitUntil(lambda: bool(messages), timeout=WAIT_MS)
    title, text = messages[0]
    assert title == "Could not open the photo" and "broken.png" in text
    assert editing.isVisible()
    np.testing.assert_array_equal(editing.document.pixels, pixels)  # the open photo stays


def test_a_bad_control_value_is_reported_not_raised(editing: MainWindow, qtbot):
    editing.pipeline.preview({"rotation": 400.0})
    qtbot.waitUntil(lambda: editing.is_idle(), timeout=WAIT_MS)
    assert "outside" in editing.statusBar().currentMessage()
    assert editing.document.preview is None


def test_recent_files_and_window_state_survive_a_restart(editing: MainWindow, qtbot, settings, models_dir, photo_path):
    editing.split_action.trigger()
    editing.close()
    again = MainWindow(Settings(settings), library_dir=models_dir, include_bundled=False)
    qtbot.addWidget(again)
    assert again.settings.recent_files() == [photo_path.resolve()]
    assert [a.text() for a in again.recent_menu.actions()][0] == "page.png"
    assert again.split_action.isChecked()
    assert again.settings.last_model() == "tiny-puppet"


def test_an_unexpected_error_is_shown_and_the_window_lives(editing: MainWindow, qtbot):
    from PySide6.QtWidgets import QMessageBox

    from gui._qt.main_window import ExceptionReporter

    reporter = ExceptionReporter(editing)
    try:
        raise RuntimeError("a bug in a slot")
    except RuntimeError as error:
        reporter.hook(RuntimeError, error, error.__traceback__)
    qtbot.waitUntil(lambda: any(box.isVisible() for box in editing.findChildren(QMessageBox)), timeout=WAIT_MS)
    box = next(b for b in editing.findChildren(QMessageBox) if b.isVisible())
    assert "a bug in a slot" in box.text() and "Traceback" in box.detailedText()
    box.close()
    assert editing.isVisible()


def test_redo_answers_ctrl_shift_z_and_undo_ctrl_z(editing: MainWindow):
    from PySide6.QtGui import QKeySequence

    assert QKeySequence("Ctrl+Shift+Z") in editing.redo_action.shortcuts()
    assert QKeySequence("Ctrl+Z") in editing.undo_action.shortcuts()
    assert editing.save_as_action.shortcut() == QKeySequence("Ctrl+Shift+S")


def test_a_16_bit_photo_is_edited_and_saved_in_16_bits(window: MainWindow, qtbot, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch):
    import cv2

    from tests.gui.conftest import make_page

    source = tmp_path / "deep.png"
    deep = make_page().astype(np.uint16) * 257
    assert cv2.imwrite(str(source), cv2.cvtColor(deep, cv2.COLOR_RGB2BGR))
    use_model(window, qtbot, "tiny-puppet")
    window.open_photo(source)
    settle(window, qtbot)
    assert window.document.pixels.dtype == np.uint16
    drag_slider(window, "rotation", 10.0)
    qtbot.waitUntil(lambda: window.document.undo_stack.count() == 1, timeout=WAIT_MS)
    target = tmp_path / "deep-edited.png"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *_a: (str(target), "")))
    window.save_as_action.trigger()
    qtbot.waitUntil(target.exists, timeout=WAIT_MS)
    saved = load_image(target)
    assert saved.bit_depth == 16
    np.testing.assert_array_equal(saved.pixels, window.document.pixels)
    assert not np.array_equal(saved.pixels, deep)
