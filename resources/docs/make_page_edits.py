"""Make page_edits_rotation.png: every digit of the sample page, edited by the bundled rotation model.

Each row is one handwritten digit of `resources/samples/digits_page.png`, in
the page's reading order as connected components are found; the columns are
the original, then full-resolution commits at rotation −40°, −20° and +20°.
No digit is left out, so the sheet shows the failures beside the successes.

    .venv/bin/python resources/docs/make_page_edits.py
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from engine import editors
from engine.imageio import load_image, save_image
from engine.package import find_package
from engine.regions import Box, propose_box
from engine.session import EditSession

HERE = Path(__file__).resolve().parent
PAGE = HERE.parent / "samples" / "digits_page.png"
ROTATIONS = (-40.0, -20.0, 20.0)
TILE = 128
CONTEXT = 60  # pixels around each digit handed to propose_box
MIN_INK_AREA = 500


def digit_boxes(pixels: np.ndarray) -> list[Box]:
    """One proposed box per ink blob on the page, as the GUI would propose it for that digit alone."""
    ink = (pixels.mean(axis=2) < 120).astype(np.uint8)
    ink = cv2.dilate(ink, np.ones((15, 15), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(ink)
    boxes = []
    for x, y, w, h, area in stats[1:count]:
        if area < MIN_INK_AREA:
            continue
        left, top = max(0, x - CONTEXT), max(0, y - CONTEXT)
        local = propose_box(pixels[top : y + h + CONTEXT, left : x + w + CONTEXT])
        boxes.append(Box(local.x + left, local.y + top, local.w, local.h))
    return boxes


def square_tile(pixels: np.ndarray, box: Box) -> np.ndarray:
    side = max(box.w, box.h)
    cx, cy = box.x + box.w // 2, box.y + box.h // 2
    tile = pixels[max(0, cy - side // 2) : cy + side // 2, max(0, cx - side // 2) : cx + side // 2]
    return cv2.resize(tile, (TILE, TILE), interpolation=cv2.INTER_AREA)


def main() -> None:
    photo = load_image(PAGE)
    editor = editors.load(find_package("digits-rotation"), "cpu")
    rows = []
    for box in digit_boxes(photo.pixels):
        session = EditSession(photo, editor, box)
        session.prepare()
        edits = [session.commit({"rotation": angle}).pixels for angle in ROTATIONS]
        rows.append(np.concatenate([square_tile(p, box) for p in (photo.pixels, *edits)], axis=1))
    half = (len(rows) + 1) // 2
    left, right = rows[:half], rows[half:] + [np.full_like(rows[0], 255)] * (half - len(rows[half:]))
    sheet = np.concatenate([np.concatenate(left, axis=0), np.concatenate(right, axis=0)], axis=1)
    print(save_image(HERE / "page_edits_rotation.png", sheet, quality=90))


if __name__ == "__main__":
    main()
