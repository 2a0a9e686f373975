"""The open document: the photo, its working pixels, the region box, the live preview and the undo history."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from engine.imageio import Photo
from engine.regions import Box

log = logging.getLogger(__name__)

HISTORY_BYTES = 512 * 2**20  # history budget; a patch is at most the whole photo, twice (before + after)
MIN_UNDO_STEPS = 10
MAX_UNDO_STEPS = 200


@dataclass(frozen=True)
class Patch:
    """The rectangle one edit changed, with its pixels before and after: all the history keeps of an edit."""

    x: int
    y: int
    before: np.ndarray  # (h, w, 3), photo dtype
    after: np.ndarray  # (h, w, 3), photo dtype

    @property
    def nbytes(self) -> int:
        return self.before.nbytes + self.after.nbytes


@dataclass(frozen=True)
class Preview:
    """An uncommitted result shown over the region: pixels for one rectangle and the control values that made them."""

    x: float  # photo coordinates of the pixels' top-left corner
    y: float
    pixels: np.ndarray  # (h, w, 3), photo dtype
    values: dict[str, Any] = field(default_factory=dict)
    scale: float = 1.0  # pixels per photo pixel: below 1 for previews of very large boxes


class PatchCommand(QUndoCommand):
    """One committed edit; undo and redo write the stored rectangle back, so they are exact and cheap."""

    def __init__(self, document: Document, patch: Patch, text: str, values: dict[str, Any], origin: int) -> None:
        super().__init__(text)
        self.document = document
        self.patch = patch
        self.values = dict(values)
        self.origin = origin  # which edit session made it: that session need not re-read its own writes

    def redo(self) -> None:
        self.document.write_rect(self.patch.x, self.patch.y, self.patch.after, self.origin)

    def undo(self) -> None:
        self.document.write_rect(self.patch.x, self.patch.y, self.patch.before, self.origin)


def undo_limit_for(pixels: np.ndarray) -> int:
    """How many steps fit HISTORY_BYTES if every edit touched the whole photo (edits usually touch far less)."""
    worst_patch = 2 * pixels.nbytes
    return int(np.clip(HISTORY_BYTES // max(worst_patch, 1), MIN_UNDO_STEPS, MAX_UNDO_STEPS))


def changed_rect(before: np.ndarray, after: np.ndarray) -> tuple[int, int, int, int] | None:
    """The bounding (x, y, w, h) of pixels that differ between two same-shaped arrays, or None if none do."""
    differs = np.any(before != after, axis=-1)
    rows = np.flatnonzero(differs.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(differs.any(axis=0))
    y0, y1 = int(rows[0]), int(rows[-1]) + 1
    x0, x1 = int(cols[0]), int(cols[-1]) + 1
    return x0, y0, x1 - x0, y1 - y0


class Document(QObject):
    """State of the open photo; widgets draw it and the edit pipeline changes it only through these methods."""

    photo_changed = Signal()  # a new photo was opened
    pixels_changed = Signal(int, int, int, int, int)  # x, y, w, h of the rectangle written, origin of the write
    box_changed = Signal()
    preview_changed = Signal()
    path_changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.photo: Photo | None = None
        self.pixels: np.ndarray | None = None  # working pixels, (H, W, 3) in the photo's dtype
        self.box: Box | None = None
        self.preview: Preview | None = None
        self.save_path: Path | None = None  # where Save writes; None until the user chose one with Save As
        self.undo_stack = QUndoStack(self)
        self.undo_stack.cleanChanged.connect(self._clean_changed)

    def _clean_changed(self, _clean: bool) -> None:
        self.path_changed.emit()

    @property
    def source(self) -> Path | None:
        return self.photo.source if self.photo is not None else None

    @property
    def is_modified(self) -> bool:
        return not self.undo_stack.isClean()

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the photo, (0, 0) when none is open."""
        if self.pixels is None:
            return 0, 0
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])

    def open(self, photo: Photo) -> None:
        """Start editing `photo`: fresh working pixels and an empty history sized to the photo."""
        self.undo_stack.clear()
        self.photo = photo
        self.pixels = np.array(photo.pixels[:, :, :3], copy=True)
        self.box = None
        self.preview = None
        self.save_path = None
        self.undo_stack.setUndoLimit(undo_limit_for(self.pixels))
        log.info("opened %s (%dx%d, %d-bit)", photo.source, *self.size, photo.bit_depth)
        self.photo_changed.emit()
        self.path_changed.emit()
        self.box_changed.emit()
        self.preview_changed.emit()

    def set_box(self, box: Box | None) -> None:
        if box == self.box:
            return
        self.box = box
        self.set_preview(None)
        self.box_changed.emit()

    def set_preview(self, preview: Preview | None) -> None:
        if preview is None and self.preview is None:
            return
        self.preview = preview
        self.preview_changed.emit()

    def commit(self, x: int, y: int, after: np.ndarray, text: str, values: dict[str, Any], origin: int = 0) -> bool:
        """Write `after` at (x, y) as one undoable step, keeping only the rectangle that really changed.

        Returns False (and records nothing) when the edit changes no pixel.
        """
        assert self.pixels is not None
        height, width = after.shape[:2]
        before = self.pixels[y : y + height, x : x + width]
        rect = changed_rect(before, after)
        self.set_preview(None)
        if rect is None:
            return False
        dx, dy, w, h = rect
        patch = Patch(x + dx, y + dy, before[dy : dy + h, dx : dx + w].copy(), after[dy : dy + h, dx : dx + w].copy())
        self.undo_stack.push(PatchCommand(self, patch, text, values, origin))
        log.info("edit: %s (%d×%d pixels at %d, %d)", text, w, h, patch.x, patch.y)
        return True

    def write_rect(self, x: int, y: int, pixels: np.ndarray, origin: int = 0) -> None:
        """Write a rectangle of working pixels; only history commands call this."""
        assert self.pixels is not None
        height, width = pixels.shape[:2]
        self.pixels[y : y + height, x : x + width] = pixels
        self.set_preview(None)
        self.pixels_changed.emit(x, y, width, height, origin)

    def mark_saved(self, path: Path) -> None:
        self.save_path = path
        self.undo_stack.setClean()
        self.path_changed.emit()

    def history_bytes(self) -> int:
        """Memory the history holds now, for the status bar and the tests that bound it."""
        total = 0
        for index in range(self.undo_stack.count()):
            command = self.undo_stack.command(index)
            if isinstance(command, PatchCommand):
                total += command.patch.nbytes
        return total
