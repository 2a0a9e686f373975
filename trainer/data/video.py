"""Video files as training images: frames sampled with OpenCV and fitted to a square size."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engine.errors import TrainingError
from trainer.data.arrays import fit_square

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoFrames:
    """Sampled frames as (N, size, size, 3) uint8 RGB, each with its 0-based index in the video."""

    images: np.ndarray
    frame_indices: np.ndarray  # (N,) int64
    source: Path
    fps: float

    def __len__(self) -> int:
        return len(self.images)


def load_video(path: Path | str, size: int, *, every: int | None = None, count: int | None = None) -> VideoFrames:
    """Frames of the video at `path`: every `every`-th frame, or `count` evenly spaced, or (neither) all.

    Raises TrainingError naming the file when it is missing, cannot be opened, or
    no frame decodes. A stream that ends before the length its header claims
    keeps the frames it gave and logs a warning.
    """
    path = Path(path)
    if every is not None and count is not None:
        raise TrainingError(f"Video {path}: give either every-n-th frame or a frame count, not both.")
    if (every is not None and every < 1) or (count is not None and count < 1):
        raise TrainingError(f"Video {path}: every ({every}) and count ({count}) must be at least 1.")
    if not path.is_file():
        raise TrainingError(f"Video {path} does not exist or is not a file.")
    if count is not None:
        total = _frame_count(path)
        wanted = np.unique(np.linspace(0, total - 1, min(count, total)).round().astype(np.int64))
    else:
        wanted = None
    images, indices, fps = _read_frames(path, size, every or 1, wanted)
    if not images:
        raise TrainingError(f"Video {path}: no frame could be decoded; the file is damaged or its codec unsupported.")
    if wanted is not None and len(images) < len(wanted):
        log.warning("Video %s ended early: %d of %d requested frames decoded.", path, len(images), len(wanted))
    return VideoFrames(np.stack(images), np.array(indices, dtype=np.int64), path, fps)


def _open(path: Path) -> cv2.VideoCapture:
    """An opened capture, or TrainingError naming the file."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise TrainingError(
            f"Video {path} cannot be opened: OpenCV found no readable video stream "
            "(damaged file, or a format/codec this build cannot decode)."
        )
    return capture


def _frame_count(path: Path) -> int:
    """The number of frames, counted by grabbing when the header does not say (or says nonsense)."""
    capture = _open(path)
    try:
        reported = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if reported > 0:
            return reported
        counted = 0
        while capture.grab():
            counted += 1
    finally:
        capture.release()
    if counted == 0:
        raise TrainingError(f"Video {path}: no frame could be decoded; the file is damaged or its codec unsupported.")
    return counted


def _read_frames(
    path: Path, size: int, every: int, wanted: np.ndarray | None
) -> tuple[list[np.ndarray], list[int], float]:
    """One sequential pass: grab every frame (cheap) and decode only the ones kept."""
    capture = _open(path)
    images: list[np.ndarray] = []
    indices: list[int] = []
    keep = set(wanted.tolist()) if wanted is not None else None
    last = int(wanted[-1]) if wanted is not None else None
    try:
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        index = 0
        while capture.grab():
            chosen = index in keep if keep is not None else index % every == 0
            if chosen:
                ok, frame = capture.retrieve()
                if not ok or frame is None:
                    log.warning("Video %s: frame %d did not decode; skipped.", path, index)
                else:
                    images.append(fit_square(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), size))
                    indices.append(index)
            if last is not None and index >= last:
                break
            index += 1
    finally:
        capture.release()
    return images, indices, fps
