"""The edit pipeline: region session → live previews → committed, undoable edits; every engine call on a worker.

The data path of one slider move (DESIGN.md): the region is cut and encoded
once per box (`prepare`, cached in a RegionSession); each move runs only
`editor.apply` and the paste-back, on a copy of the pixels around the box, so
a 40-megapixel photo costs no more per move than a small one. Results come
back as the box's pixels; stale ones are dropped.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PySide6.QtCore import QObject, Signal

from engine import editors
from engine.editors.base import Editor
from engine.errors import EditError, PuppetryError
from engine.imageio import Photo, load_rgb8
from engine.package import ModelPackage
from engine.regions import Box
from engine.session import EditResult, EditSession
from gui._qt.workers import JobRunner
from gui.model.active_model import ActiveModel
from gui.model.document import Document, Preview

log = logging.getLogger(__name__)

PREVIEW = "preview"
SESSION = "session"
MODEL = "model"
GUIDE_CACHE = 16
GUIDE_MAX_SIDE = 1024  # guides are cut to the model's size anyway; a 40 MP guide need not sit in the cache
MARGIN_PX = 2  # the copied area reaches past the model's square, so the box never touches its edge by accident


@dataclass(frozen=True)
class Rendered:
    """Edited pixels for the box: at `scale` of the photo (previews of huge boxes) or 1.0 (commits)."""

    x: float  # where the pixels go, in photo coordinates
    y: float
    pixels: np.ndarray  # photo dtype
    scale: float
    milliseconds: float  # engine time: apply + paste-back


@dataclass(frozen=True)
class RegionSession:
    """One box, cut and encoded: an engine EditSession on a copy of the photo around the box.

    Copying only the model's square around the box (not the photo) keeps each
    move's paste-back as small as the box, whatever the photo's size.
    """

    generation: int
    origin: tuple[int, int]  # (x, y) of the copied area in the photo
    session: EditSession

    @property
    def measured(self) -> dict[str, float]:
        """What the region reads as it is (a digit's slant): where its sliders start."""
        return self.session.measured()

    @property
    def box(self) -> Box:
        """The box in photo coordinates."""
        local = self.session.box
        return Box(local.x + self.origin[0], local.y + self.origin[1], local.w, local.h)

    def preview(self, controls: Mapping[str, object]) -> Rendered:
        """The box edited for a live preview (on a view of at most PREVIEW_SIDE pixels)."""
        return self._cut(self.session.preview(controls))

    def commit(self, controls: Mapping[str, object]) -> Rendered:
        """The box edited at full resolution."""
        return self._cut(self.session.commit(controls))

    def _cut(self, result: EditResult) -> Rendered:
        box = result.box  # in the result's own (view) coordinates
        pixels = result.pixels[box.y : box.bottom, box.x : box.right]
        x = self.origin[0] + box.x / result.scale
        y = self.origin[1] + box.y / result.scale
        return Rendered(x, y, np.ascontiguousarray(pixels), result.scale, result.timings.total_ms)


def session_area(box: Box, width: int, height: int) -> Box:
    """The part of the photo a session copies: the model's square around `box`, inside the photo, plus a margin.

    regions.crop pads where the square leaves the photo; copying the whole
    square (∩ photo) keeps that padding identical on the copy.
    """
    side = max(box.w, box.h)
    x0, y0 = box.x - (side - box.w) // 2, box.y - (side - box.h) // 2
    return Box(x0 - MARGIN_PX, y0 - MARGIN_PX, side + 2 * MARGIN_PX, side + 2 * MARGIN_PX).clamped(width, height)


def copy_area(photo: Photo, pixels: np.ndarray, box: Box) -> tuple[tuple[int, int], Photo, Box]:
    """(origin, the area as a Photo, box relative to it): what a session needs, copied on the GUI thread."""
    height, width = pixels.shape[:2]
    box = box.clamped(width, height)
    area = session_area(box, width, height)
    copied = np.array(pixels[area.y : area.bottom, area.x : area.right], copy=True)
    part = Photo(pixels=copied, alpha=None, bit_depth=photo.bit_depth, source=None, icc_profile=None,
                 format=photo.format)
    return (area.x, area.y), part, Box(box.x - area.x, box.y - area.y, box.w, box.h)


def open_session(generation: int, editor: Editor, origin: tuple[int, int], part: Photo, box: Box) -> RegionSession:
    """Cut and encode `box` of the copied area (runs on a worker: encoding is the expensive step)."""
    session = EditSession(part, editor, box)
    session.prepare()
    return RegionSession(generation, origin, session)


def shrink_guide(pixels: np.ndarray) -> np.ndarray:
    """A guide no larger than GUIDE_MAX_SIDE on its longer side (area-averaged, aspect kept)."""
    height, width = pixels.shape[:2]
    factor = GUIDE_MAX_SIDE / max(height, width)
    if factor >= 1.0:
        return pixels
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)


def describe(values: Mapping[str, Any]) -> str:
    """A history row for an edit: "rotation 20.5, size 1.1" or "guide red.png at 80%"."""
    if "guide" in values:
        guide = values.get("guide")
        name = Path(guide).name if guide is not None else "none"
        return f"guide {name} at {round(100 * float(values.get('strength', 1.0)))}%"
    return ", ".join(f"{name} {value:g}" for name, value in values.items()) or "edit"


class EditPipeline(QObject):
    """Connects the document and the active model to the engine through one JobRunner."""

    preview_timed = Signal(float)  # milliseconds of the last preview's engine work
    encode_timed = Signal(float)  # milliseconds the region's encoding (prepare) took
    message = Signal(str)  # a status line for the user
    failed = Signal(str, str)  # title, message: an error the user must see
    session_ready = Signal()
    region_read = Signal(dict)  # control values a newly encoded region reads, unless the user already moved one

    def __init__(self, document: Document, model: ActiveModel, runner: JobRunner, parent: QObject | None = None):
        super().__init__(parent)
        self.document = document
        self.model = model
        self.runner = runner
        self.session: RegionSession | None = None
        self._generation = 0
        self._guides: OrderedDict[Path, np.ndarray] = OrderedDict()
        self._pending_commit: dict[str, Any] | None = None
        self._wanted_preview: dict[str, Any] | None = None
        document.box_changed.connect(self.rebuild)
        document.photo_changed.connect(self.rebuild)
        document.pixels_changed.connect(self._pixels_written)
        model.editor_ready.connect(self.rebuild)
        model.changed.connect(self.rebuild)

    # --- model -----------------------------------------------------------------------------------------------
    def load_model(self, package: ModelPackage) -> None:
        """Make `package` active and load its editor (ONNX sessions, warm-up) on the worker."""
        self.model.set_package(package)
        self.message.emit(f"Loading model {package.title}…")

        def loaded(editor: Editor) -> None:
            self.model.set_editor(package, editor)
            self.message.emit(f"Model {package.title} ready on {editor.provider}")

        def failed(error: BaseException) -> None:
            self.model.set_package(None)
            self.failed.emit("Could not load the model", f"{package.title}: {error}")

        self.runner.submit(lambda: editors.load(package), loaded, key=MODEL, on_error=failed)

    # --- sessions --------------------------------------------------------------------------------------------
    def rebuild(self) -> None:
        """The box, photo or model changed: drop the old session and encode the region again."""
        self._generation += 1
        self.session = None
        self._pending_commit = None
        self._wanted_preview = None
        self.runner.cancel(PREVIEW)
        editor, pixels, box = self.model.editor, self.document.pixels, self.document.box
        photo = self.document.photo
        if editor is None or pixels is None or box is None or photo is None:
            self.runner.cancel(SESSION)
            return
        generation = self._generation
        try:
            origin, part, local = copy_area(photo, pixels, box)
        except EditError as error:
            self.message.emit(str(error))
            return

        def opened(session: RegionSession) -> None:
            if session.generation != self._generation:
                return
            self.session = session
            self.encode_timed.emit(session.session.prepare_ms or 0.0)
            wanted, self._wanted_preview = self._wanted_preview, None
            pending, self._pending_commit = self._pending_commit, None
            measured = session.measured
            if wanted is None and pending is None and measured:
                self.region_read.emit(measured)  # before session_ready, so --set wins over it
            self.session_ready.emit()
            if pending is not None:
                self.commit(pending)
            elif wanted is not None:
                self.preview(wanted)

        self.runner.submit(
            lambda: open_session(generation, editor, origin, part, local), opened, key=SESSION,
            on_error=self._edit_failed,
        )

    def _pixels_written(self, x: int, y: int, w: int, h: int, origin: int) -> None:
        """Undo/redo of another session's edit under this box: the cached encoding is out of date."""
        session = self.session
        if session is None or origin == session.generation:
            return
        area_x, area_y = session.origin
        area_h, area_w = session.session.photo.pixels.shape[:2]
        if x < area_x + area_w and area_x < x + w and y < area_y + area_h and area_y < y + h:
            self.rebuild()

    # --- previews and commits --------------------------------------------------------------------------------
    def preview(self, values: Mapping[str, Any]) -> None:
        """Show `values` over the region; while one runs, later calls replace each other (newest wins)."""
        session = self.session
        values = dict(values)
        if session is None:
            self._wanted_preview = values  # shown as soon as the region is encoded
            return
        self.runner.submit(
            lambda: session.preview(self._controls(values)), lambda result: self._show(session, values, result),
            key=PREVIEW, on_error=self._edit_failed,
        )

    def commit(self, values: Mapping[str, Any]) -> None:
        """Write `values`' edit into the photo as one undoable step (reusing the preview when it is full-size)."""
        values = dict(values)
        preview = self.document.preview
        session = self.session
        if session is None:
            self._pending_commit = values  # the region is still being encoded: commit once it is
            return
        if preview is not None and preview.values == values and preview.scale == 1.0:
            self._write(session, values, preview.pixels)
            return
        self.runner.cancel(PREVIEW)

        def committed(result: Rendered) -> None:
            self.preview_timed.emit(result.milliseconds)
            self._write(session, values, result.pixels)

        self.runner.submit(lambda: session.commit(self._controls(values)), committed, on_error=self._edit_failed)

    def _controls(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Control values as the editor takes them (worker side): a guide path becomes its pixels (cached)."""
        if "guide" not in values:
            return dict(values)
        path = values.get("guide")
        if path is None:
            raise EditError("pick a guide image first")
        path = Path(path)
        if path not in self._guides:
            self._guides[path] = shrink_guide(load_rgb8(path))
            while len(self._guides) > GUIDE_CACHE:
                self._guides.popitem(last=False)
        return {**values, "guide": self._guides[path]}

    def _show(self, session: RegionSession, values: dict[str, Any], result: Rendered) -> None:
        if session.generation != self._generation:
            return
        self.document.set_preview(Preview(result.x, result.y, result.pixels, values, result.scale))
        self.preview_timed.emit(result.milliseconds)

    def _write(self, session: RegionSession, values: dict[str, Any], pixels: np.ndarray) -> None:
        """Commit full-resolution box pixels as one undoable step."""
        if session.generation != self._generation or self.document.pixels is None:
            return
        box = session.box
        if not self.document.commit(box.x, box.y, pixels, describe(values), values, origin=session.generation):
            self.message.emit("The edit changed no pixels")

    def _edit_failed(self, error: BaseException) -> None:
        if isinstance(error, MemoryError):
            self.failed.emit("Out of memory", "The edit needs more memory than is free; try a smaller region.")
        elif isinstance(error, PuppetryError):
            self.message.emit(str(error))
        else:
            self.failed.emit("The edit failed", f"{type(error).__name__}: {error}")

