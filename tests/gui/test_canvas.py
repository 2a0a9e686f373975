"""The canvas on its own: zoom by wheel, fit, 100 %, clicks that must not lose the box."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt

from gui._qt.canvas import WHEEL_STEP, Canvas
from gui._qt.qimage import qimage_to_rgb8


@pytest.fixture
def canvas(qtbot) -> Canvas:
    view = Canvas()
    qtbot.addWidget(view)
    view.resize(400, 300)
    view.show()
    pixels = np.zeros((600, 800, 3), np.uint8)
    pixels[:, 400:] = (200, 30, 30)  # right half red: easy to tell what is on screen
    view.set_photo(pixels, pixels)
    view.fit()
    return view


def test_fit_shows_the_whole_photo(canvas: Canvas):
    canvas.set_zoom(3.0)
    canvas.fit()
    visible = canvas.mapToScene(canvas.viewport().rect()).boundingRect()
    assert visible.contains(canvas.sceneRect().adjusted(1, 1, -1, -1))
    assert canvas.zoom() == pytest.approx(0.5, rel=0.05)  # 400x300 view, 800x600 photo (less the frame)


def test_actual_size_maps_one_photo_pixel_to_one_screen_pixel(canvas: Canvas):
    canvas.actual_size()
    assert canvas.zoom() == pytest.approx(1.0)


def test_wheel_zooms_by_a_fixed_step_per_notch(canvas: Canvas, qtbot):
    before = canvas.zoom()
    centre = canvas.viewport().rect().center()
    from PySide6.QtGui import QWheelEvent

    event = QWheelEvent(QPointF(centre), QPointF(canvas.mapToGlobal(centre)), QPoint(0, 0), QPoint(0, 120),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    canvas.wheelEvent(event)
    assert canvas.zoom() == pytest.approx(before * WHEEL_STEP)


def test_a_click_without_a_drag_keeps_the_current_box(canvas: Canvas, qtbot):
    canvas.set_box((100, 100, 200, 150))
    edited: list[tuple[int, int, int, int]] = []
    canvas.box_edited.connect(lambda *box: edited.append(box))
    point = canvas.mapFromScene(QPointF(600, 500))
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert canvas.box_rect() == (100, 100, 200, 150)
    assert edited == []


def test_the_preview_is_drawn_over_the_photo(canvas: Canvas):
    canvas.actual_size()
    canvas.centerOn(100, 100)
    canvas.set_preview(np.full((50, 50, 3), 255, np.uint8), 80, 80)
    shown = qimage_to_rgb8(canvas.viewport().grab().toImage())
    centre = canvas.mapFromScene(QPointF(105, 105))
    assert tuple(shown[centre.y(), centre.x()]) == (255, 255, 255)
    canvas.set_preview(None)
    shown = qimage_to_rgb8(canvas.viewport().grab().toImage())
    assert tuple(shown[centre.y(), centre.x()]) == (0, 0, 0)
