"""Folders of the user's photos as training images: found recursively, decoded by engine.imageio, fitted to a size.

Unreadable files are skipped and reported, never silently dropped: the result
lists each one with the reason, and a warning gives the count.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from PIL import Image

from engine.errors import ImageError, TrainingError
from engine.imageio import READ_FORMATS, load_rgb8
from trainer.data.arrays import fit_square

log = logging.getLogger(__name__)

# File suffixes of the formats engine.imageio reads; other files (notes, sidecars, videos) are not
# photos and are passed over without a report.
IMAGE_SUFFIXES = frozenset(
    suffix for suffix, file_format in Image.registered_extensions().items() if file_format in READ_FORMATS
)


@dataclass(frozen=True)
class FolderImages:
    """The readable images of a folder at (N, size, size, 3) uint8, their files, and what was skipped."""

    images: np.ndarray
    paths: tuple[Path, ...]
    skipped: tuple[tuple[Path, str], ...]  # (file, why it could not be read)
    unread: int = 0  # image files past `limit`, never opened

    def __len__(self) -> int:
        return len(self.images)


def find_image_files(root: Path | str) -> list[Path]:
    """Image files under `root`, recursively, in a stable sorted order; hidden files and folders are left out."""
    root = Path(root)
    if not root.is_dir():
        raise TrainingError(f"Image folder {root} does not exist or is not a folder.")
    found = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            found.append(path)
    return found


def load_folder(root: Path | str, size: int, *, limit: int | None = None) -> FolderImages:
    """Every readable image under `root` (the first `limit` in sorted order, if given), fitted to `size`.

    Raises TrainingError when the folder holds no readable image at all, naming
    the folder and the first failures.
    """
    files = find_image_files(root)
    images: list[np.ndarray] = []
    paths: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for path in files:
        if limit is not None and len(images) >= limit:
            break
        try:
            pixels = load_rgb8(path)
        except ImageError as error:
            skipped.append((path, str(error)))
            continue
        images.append(fit_square(pixels, size))
        paths.append(path)
    if skipped:
        log.warning(
            "Skipped %d unreadable file(s) in %s, e.g. %s: %s", len(skipped), root, skipped[0][0], skipped[0][1]
        )
    if not images:
        reasons = "; ".join(f"{path.name}: {reason}" for path, reason in skipped[:3]) or "no image files found"
        raise TrainingError(f"Image folder {root} has no readable image ({reasons}).")
    unread = len(files) - len(images) - len(skipped)
    return FolderImages(np.stack(images), tuple(paths), tuple(skipped), unread)
