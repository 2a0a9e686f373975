"""Edit sessions: one photo, one editor, one box — prepared once, then previewed and committed many times.

This is the API the GUI and the CLI drive:

    session = EditSession(photo, editor, box)      # box=None: propose_box
    session.prepare()                               # encoder, once (worker thread)
    view = session.preview({"rotation": 20.0})      # per slider move: paste-back on a ≤2048 px view
    result = session.commit({"rotation": 20.0})     # full resolution, result.photo keeps alpha/depth

Sessions hold no Qt and are safe to call from one worker thread at a time
per session; results carry their own timings.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from engine import editors
from engine.editors.base import Editor
from engine.package import ModelPackage
from engine.regions import Box, Crop, crop, paste_back, propose_box

if TYPE_CHECKING:
    from engine.imageio import Photo

log = logging.getLogger(__name__)

PREVIEW_SIDE = 2048  # previews paste back onto a view no larger than this; commits use every pixel
DEFAULT_FEATHER = 0.12


@dataclass(frozen=True)
class Timings:
    """Milliseconds spent in each step of one edit."""

    apply_ms: float
    paste_ms: float

    @property
    def total_ms(self) -> float:
        return self.apply_ms + self.paste_ms


@dataclass(frozen=True)
class EditResult:
    """One edit: the pasted pixels (full photo or preview view), the model-size output, and timings.

    `scale` is view size / photo size (1.0 for commits). `photo` is the input
    Photo with its pixels replaced (alpha, depth, ICC, source kept) — None
    for previews.
    """

    pixels: np.ndarray
    model_output: np.ndarray
    box: Box
    scale: float
    timings: Timings
    photo: Photo | None = None


@dataclass(frozen=True)
class EditJob:
    """Everything one batch edit needs, in one value (the CLI builds one per file)."""

    photo: Photo
    package: ModelPackage
    controls: Mapping[str, object] = field(default_factory=dict)
    box: Box | None = None
    provider: str = "auto"
    feather: float = DEFAULT_FEATHER
    color_match: bool | None = None


class EditSession:
    """Edits one box of one photo with one editor; `prepare` runs once, the rest per request.

    color_match None = the editor's default (on for puppets, off for guides,
    whose colours are often the point of the edit).
    """

    def __init__(
        self,
        photo: Photo,
        editor: Editor,
        box: Box | None = None,
        *,
        feather: float = DEFAULT_FEATHER,
        color_match: bool | None = None,
        preview_side: int = PREVIEW_SIDE,
    ) -> None:
        self.photo = photo
        self.editor = editor
        self.box = box if box is not None else propose_box(photo.pixels)
        self.feather = feather
        self.color_match = editor.color_match if color_match is None else color_match
        self.preview_side = preview_side
        self.crop: Crop = crop(photo.pixels, self.box, editor.image_size)
        self.box = self.crop.box  # clamped to the photo
        self.prepare_ms: float | None = None
        self._state: Any = None
        self._view: tuple[np.ndarray, Crop, float] | None = None
        self._lock = threading.Lock()

    def prepare(self) -> float:
        """Encode the region (idempotent); returns the milliseconds it took the first time."""
        with self._lock:
            if self._state is None:
                start = time.perf_counter()
                self._state = self.editor.prepare(self.crop.region)
                self.prepare_ms = (time.perf_counter() - start) * 1e3
                log.debug("prepared %s on %s in %.1f ms", self.box, self.editor.package.name, self.prepare_ms)
        assert self.prepare_ms is not None
        return self.prepare_ms

    def measured(self) -> dict[str, float]:
        """Control values the region reads as it is (e.g. its digit's slant): where a slider should start."""
        self.prepare()
        return self.editor.measure(self._state)

    def edit(self, controls: Mapping[str, object]) -> np.ndarray:
        """Only the model: the edited region at model size, (S, S, 3) uint8."""
        self.prepare()
        return self.editor.apply(self._state, controls)

    def preview(self, controls: Mapping[str, object]) -> EditResult:
        """The edit pasted onto a view of the photo at most `preview_side` pixels on its longer side."""
        pixels, view_crop, scale = self._preview_view()
        return self._edit_and_paste(controls, pixels, view_crop, scale)

    def commit(self, controls: Mapping[str, object]) -> EditResult:
        """The edit pasted at full resolution; `result.photo` is the edited Photo."""
        result = self._edit_and_paste(controls, self.photo.pixels, self.crop, 1.0)
        return dataclasses.replace(result, photo=dataclasses.replace(self.photo, pixels=result.pixels))

    def apply(self, controls: Mapping[str, object]) -> np.ndarray:
        """Full-resolution edited pixels, same shape and dtype as `photo.pixels`."""
        return self.commit(controls).pixels

    def _edit_and_paste(self, controls: Mapping[str, object], pixels: np.ndarray, where: Crop, scale: float) -> EditResult:
        start = time.perf_counter()
        edited = self.edit(controls)
        applied = time.perf_counter()
        pasted = paste_back(pixels, where, edited, feather=self.feather, color_match=self.color_match)
        done = time.perf_counter()
        timings = Timings(apply_ms=(applied - start) * 1e3, paste_ms=(done - applied) * 1e3)
        log.debug("edit at scale %.3f: apply %.1f ms, paste %.1f ms", scale, timings.apply_ms, timings.paste_ms)
        return EditResult(pixels=pasted, model_output=edited, box=where.box, scale=scale, timings=timings)

    def _preview_view(self) -> tuple[np.ndarray, Crop, float]:
        with self._lock:
            if self._view is None:
                height, width = self.photo.pixels.shape[:2]
                scale = min(1.0, self.preview_side / max(height, width))
                if scale == 1.0:
                    self._view = (self.photo.pixels, self.crop, 1.0)
                else:
                    view_crop = self.crop.scaled(scale)
                    view_height, view_width = view_crop.image_shape
                    pixels = cv2.resize(self.photo.pixels, (view_width, view_height), interpolation=cv2.INTER_AREA)
                    self._view = (pixels, view_crop, scale)
            return self._view


def run_job(job: EditJob, editor: Editor | None = None) -> EditResult:
    """Run one EditJob at full resolution; pass `editor` to reuse loaded sessions across jobs."""
    editor = editor or editors.load(job.package, job.provider)
    session = EditSession(job.photo, editor, job.box, feather=job.feather, color_match=job.color_match)
    return session.commit(job.controls)
