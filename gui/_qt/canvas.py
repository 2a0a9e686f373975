"""The photo canvas: zoom, pan, a region box to draw, move and resize, the live preview and before/after."""

from __future__ import annotations

import enum

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPen,
    QPixmap,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsLineItem,
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsView,
    QStyleOptionGraphicsItem,
    QWidget,
)

from gui._qt.qimage import to_qimage, to_qpixmap

MIN_ZOOM = 1 / 64
MAX_ZOOM = 32.0
WHEEL_STEP = 1.25  # zoom factor per wheel notch
HANDLE_PX = 8  # grab distance and drawn size of the box handles, in screen pixels
MIN_BOX = 4  # smallest box side, in photo pixels


class Drag(enum.Enum):
    NONE = enum.auto()
    DRAW = enum.auto()
    MOVE = enum.auto()
    RESIZE = enum.auto()
    PAN = enum.auto()


class RegionBoxItem(QGraphicsRectItem):
    """The region box: a dashed outline with corner handles, drawn at the same width whatever the zoom."""

    def __init__(self) -> None:
        super().__init__()
        self.setZValue(10)
        self.setBrush(Qt.BrushStyle.NoBrush)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        rect = self.rect()
        scale = painter.worldTransform().m11() or 1.0
        dark = QPen(QColor(0, 0, 0, 200), 3)
        dark.setCosmetic(True)
        light = QPen(QColor(255, 214, 10), 1.5, Qt.PenStyle.DashLine)
        light.setCosmetic(True)
        for pen in (dark, light):
            painter.setPen(pen)
            painter.drawRect(rect)
        half = HANDLE_PX / 2 / scale
        painter.setBrush(QBrush(QColor(255, 214, 10)))
        painter.setPen(dark)
        for corner in (rect.topLeft(), rect.topRight(), rect.bottomLeft(), rect.bottomRight()):
            painter.drawRect(QRectF(corner.x() - half, corner.y() - half, 2 * half, 2 * half))

    def zoom_changed(self) -> None:
        """The handles keep their screen size, so the item's scene extent changes with the zoom."""
        self.prepareGeometryChange()

    def boundingRect(self) -> QRectF:
        margin = 2 * HANDLE_PX  # handles stick out of the rectangle by a few screen pixels at any zoom
        scale = self.scene().views()[0].transform().m11() if self.scene() and self.scene().views() else 1.0
        pad = margin / max(scale, 1e-6)
        return self.rect().adjusted(-pad, -pad, pad, pad)


class Canvas(QGraphicsView):
    """Shows the document's pixels; reports region-box edits and zoom; knows nothing about models."""

    box_edited = Signal(int, int, int, int)  # x, y, w, h in photo pixels, on mouse release
    zoom_changed = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setBackgroundBrush(QColor(48, 48, 52))
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setDragMode(QGraphicsView.DragMode.NoDrag)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.setAcceptDrops(False)  # the main window takes dropped files
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        self._photo = QGraphicsPixmapItem()
        self._preview = QGraphicsPixmapItem()
        self._preview.setZValue(1)
        self._before = QGraphicsPixmapItem()
        self._before.setZValue(2)
        self._before.setVisible(False)
        self._split_line = QGraphicsLineItem()
        self._split_line.setZValue(3)
        split_pen = QPen(QColor(255, 255, 255), 1.5)
        split_pen.setCosmetic(True)
        self._split_line.setPen(split_pen)
        self._split_line.setVisible(False)
        self._box = RegionBoxItem()
        self._box.setVisible(False)
        for item in (self._photo, self._preview, self._before, self._split_line, self._box):
            item.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable, False)
            self.scene().addItem(item)
        self._original_pixels: np.ndarray | None = None  # made a pixmap only when first compared
        self._original: QPixmap | None = None
        self._holding_before = False
        self._split = False
        self._space_down = False
        self._drag = Drag.NONE
        self._drag_origin = QPointF()
        self._drag_rect = QRectF()
        self._box_before_drag: tuple[int, int, int, int] | None = None
        self._resize_edges: tuple[bool, bool, bool, bool] = (False, False, False, False)  # left, top, right, bottom
        self._pan_origin = QPointF()

    # --- content -------------------------------------------------------------------------------------------
    def set_photo(self, pixels: np.ndarray, original: np.ndarray) -> None:
        """Show new working pixels and keep the original for before/after; resets the view to fit."""
        self._photo.setPixmap(to_qpixmap(pixels))
        self._original_pixels = original
        self._original = None
        self._preview.setPixmap(QPixmap())
        self.scene().setSceneRect(QRectF(0, 0, pixels.shape[1], pixels.shape[0]))
        self._update_before()
        self.fit()

    def update_rect(self, pixels: np.ndarray, x: int, y: int, w: int, h: int) -> None:
        """Repaint one rectangle of the working pixels without rebuilding the whole pixmap."""
        pixmap = self._photo.pixmap()
        if pixmap.isNull():
            return
        painter = QPainter(pixmap)
        painter.drawImage(x, y, to_qimage(pixels[y : y + h, x : x + w]))
        painter.end()
        self._photo.setPixmap(pixmap)

    def set_preview(self, pixels: np.ndarray | None, x: float = 0, y: float = 0, scale: float = 1.0) -> None:
        """Lay an uncommitted result over the photo at (x, y), drawn 1/scale times larger, or remove it."""
        if pixels is None:
            self._preview.setPixmap(QPixmap())
            self._preview.setVisible(False)
            return
        self._preview.setPixmap(to_qpixmap(pixels))
        self._preview.setScale(1.0 / scale)
        self._preview.setPos(x, y)
        self._preview.setVisible(True)

    def set_box(self, rect: tuple[int, int, int, int] | None) -> None:
        if rect is None:
            self._box.setVisible(False)
        else:
            self._box.setRect(QRectF(*rect))
            self._box.setVisible(True)
        self._update_before()

    def box_rect(self) -> tuple[int, int, int, int] | None:
        if not self._box.isVisible():
            return None
        rect = self._box.rect()
        return round(rect.x()), round(rect.y()), round(rect.width()), round(rect.height())

    # --- before / after ------------------------------------------------------------------------------------
    def show_before(self, on: bool) -> None:
        """While on, the original photo covers the edits (the held-key comparison)."""
        if on == self._holding_before:
            return
        self._holding_before = on
        self._update_before()

    def set_split(self, on: bool) -> None:
        """Split view: the original on the left of the region box's centre line, the edit on the right."""
        self._split = on
        self._update_before()

    def is_split(self) -> bool:
        return self._split

    def showing_original(self) -> bool:
        """Whether any of the original photo is drawn over the edits now (held key or split view)."""
        return self._before.isVisible()

    def _update_before(self) -> None:
        if self._original is None and self._original_pixels is not None and (self._holding_before or self._split):
            self._original = to_qpixmap(self._original_pixels)
        if self._original is None:
            self._before.setVisible(False)
            self._split_line.setVisible(False)
            return
        if self._holding_before:
            self._before.setPixmap(self._original)
            self._before.setOffset(0, 0)
            self._before.setVisible(True)
            self._split_line.setVisible(False)
            return
        if self._split:
            rect = self._box.rect() if self._box.isVisible() else QRectF(self._original.rect())
            split_x = max(1, round(rect.center().x()))
            self._before.setPixmap(self._original.copy(0, 0, split_x, self._original.height()))
            self._before.setOffset(0, 0)
            self._before.setVisible(True)
            self._split_line.setLine(split_x, 0, split_x, self._original.height())
            self._split_line.setVisible(True)
            return
        self._before.setVisible(False)
        self._split_line.setVisible(False)

    # --- zoom ----------------------------------------------------------------------------------------------
    def zoom(self) -> float:
        return self.transform().m11()

    def set_zoom(self, factor: float) -> None:
        ratio = float(np.clip(factor, MIN_ZOOM, MAX_ZOOM)) / self.zoom()
        self.scale(ratio, ratio)  # scale(), unlike setTransform(), keeps the point under the mouse in place
        self._zoomed()

    def zoom_by(self, steps: float) -> None:
        self.set_zoom(self.zoom() * WHEEL_STEP**steps)

    def fit(self) -> None:
        """Fit the whole photo in the view (F)."""
        rect = self.scene().sceneRect()
        if rect.isEmpty():
            return
        self.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
        self._zoomed()

    def _zoomed(self) -> None:
        self._box.zoom_changed()
        self.zoom_changed.emit(self.zoom())

    def actual_size(self) -> None:
        """One photo pixel per screen pixel (Ctrl+1)."""
        self.set_zoom(1.0)

    def wheelEvent(self, event: QWheelEvent) -> None:
        delta = event.angleDelta().y()
        if delta:
            self.zoom_by(delta / 120)
        event.accept()

    # --- mouse: draw, move, resize the box; pan -----------------------------------------------------------
    def _photo_rect(self) -> QRectF:
        return self.scene().sceneRect()

    def _hit(self, view_pos: QPointF) -> tuple[Drag, tuple[bool, bool, bool, bool]]:
        """What a press at view_pos would do: resize (which edges), move, or draw a new box."""
        if not self._box.isVisible():
            return Drag.DRAW, (False, False, False, False)
        rect = self.mapFromScene(self._box.rect()).boundingRect()
        x, y = view_pos.x(), view_pos.y()
        grab = HANDLE_PX
        near_left = abs(x - rect.left()) <= grab
        near_right = abs(x - rect.right()) <= grab
        near_top = abs(y - rect.top()) <= grab
        near_bottom = abs(y - rect.bottom()) <= grab
        inside_x = rect.left() - grab <= x <= rect.right() + grab
        inside_y = rect.top() - grab <= y <= rect.bottom() + grab
        edges = (near_left and inside_y, near_top and inside_x, near_right and inside_y, near_bottom and inside_x)
        if any(edges):
            return Drag.RESIZE, edges
        if rect.contains(view_pos.toPoint()):
            return Drag.MOVE, (False, False, False, False)
        return Drag.DRAW, (False, False, False, False)

    def _cursor_for(self, drag: Drag, edges: tuple[bool, bool, bool, bool]) -> Qt.CursorShape:
        if drag == Drag.MOVE:
            return Qt.CursorShape.SizeAllCursor
        if drag == Drag.RESIZE:
            left, top, right, bottom = edges
            if (left and top) or (right and bottom):
                return Qt.CursorShape.SizeFDiagCursor
            if (right and top) or (left and bottom):
                return Qt.CursorShape.SizeBDiagCursor
            return Qt.CursorShape.SizeHorCursor if (left or right) else Qt.CursorShape.SizeVerCursor
        return Qt.CursorShape.CrossCursor

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if self._photo.pixmap().isNull():
            return super().mousePressEvent(event)
        pan = event.button() == Qt.MouseButton.MiddleButton or (
            event.button() == Qt.MouseButton.LeftButton and self._space_down
        )
        if pan:
            self._drag = Drag.PAN
            self._pan_origin = event.position()
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            event.accept()
            return
        if event.button() != Qt.MouseButton.LeftButton:
            return super().mousePressEvent(event)
        self._drag, self._resize_edges = self._hit(event.position())
        self._drag_origin = self.mapToScene(event.position().toPoint())
        self._drag_rect = QRectF(self._box.rect())
        self._box_before_drag = self.box_rect()
        if self._drag == Drag.DRAW:
            self._drag_rect = QRectF(self._clamped_point(self._drag_origin), self._clamped_point(self._drag_origin))
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._drag == Drag.PAN:
            delta = event.position() - self._pan_origin
            self._pan_origin = event.position()
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - round(delta.x()))
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - round(delta.y()))
            return
        if self._drag == Drag.NONE:
            if self._space_down:
                self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            else:
                self.viewport().setCursor(self._cursor_for(*self._hit(event.position())))
            return super().mouseMoveEvent(event)
        point = self.mapToScene(event.position().toPoint())
        rect = self._dragged_rect(point, self._drag)
        self._box.setRect(rect)
        self._box.setVisible(True)
        self._update_before()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        drag, self._drag = self._drag, Drag.NONE
        if drag == Drag.PAN:
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor if self._space_down else Qt.CursorShape.CrossCursor)
            return
        if drag == Drag.NONE:
            return super().mouseReleaseEvent(event)
        rect = self._dragged_rect(self.mapToScene(event.position().toPoint()), drag)
        if rect.width() < MIN_BOX or rect.height() < MIN_BOX:
            if drag == Drag.DRAW:  # a click, not a drag: keep the box there was
                self.set_box(self._box_before_drag)
                return
            rect = self._drag_rect
        self._box.setRect(rect)
        self._box.setVisible(True)
        x, y, w, h = self.box_rect() or (0, 0, 0, 0)
        self.box_edited.emit(x, y, w, h)

    def _clamped_point(self, point: QPointF) -> QPointF:
        bounds = self._photo_rect()
        return QPointF(
            float(np.clip(round(point.x()), 0, bounds.width())), float(np.clip(round(point.y()), 0, bounds.height()))
        )

    def _dragged_rect(self, point: QPointF, drag: Drag) -> QRectF:
        """The box a drag from the press point to `point` makes, snapped to whole pixels inside the photo."""
        bounds = self._photo_rect()
        if drag == Drag.DRAW:
            return QRectF(self._clamped_point(self._drag_origin), self._clamped_point(point)).normalized()
        delta = point - self._drag_origin
        rect = QRectF(self._drag_rect)
        if drag == Drag.MOVE:
            dx = float(np.clip(round(delta.x()), -rect.left(), bounds.width() - rect.right()))
            dy = float(np.clip(round(delta.y()), -rect.top(), bounds.height() - rect.bottom()))
            return rect.translated(dx, dy)
        left, top, right, bottom = self._resize_edges
        if left:
            rect.setLeft(min(rect.left() + round(delta.x()), rect.right() - MIN_BOX))
        if right:
            rect.setRight(max(rect.right() + round(delta.x()), rect.left() + MIN_BOX))
        if top:
            rect.setTop(min(rect.top() + round(delta.y()), rect.bottom() - MIN_BOX))
        if bottom:
            rect.setBottom(max(rect.bottom() + round(delta.y()), rect.top() + MIN_BOX))
        return rect.intersected(bounds)

    # --- keys: Space pans, backslash holds the original -------------------------------------------------------
    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = True
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            return
        if event.key() == Qt.Key.Key_Backslash and not event.isAutoRepeat():
            self.show_before(True)
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = False
            self.viewport().setCursor(Qt.CursorShape.CrossCursor)
            return
        if event.key() == Qt.Key.Key_Backslash and not event.isAutoRepeat():
            self.show_before(False)
            return
        super().keyReleaseEvent(event)
