"""Make the bundled sample photo `digits_page.png`: real handwritten MNIST test digits inked on paper.

Run from the repository root: `.venv/bin/python resources/samples/make_samples.py`.
The digits are the fixed test split of `trainer.data.mnist.mnist_split("test")`
(the same 1,000 digits every metric uses), so the sample never shows the editor
a digit its models trained on. Deterministic: same seed, same bytes.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import cv2
import numpy as np

from trainer.data.mnist import mnist_split

log = logging.getLogger(__name__)

SEED = 7
PAGE_SIZE = (1200, 800)  # width, height
PAPER_RGB = np.array([244.0, 237.0, 222.0])  # a warm off-white
INK_RGB = np.array([28.0, 30.0, 46.0])  # blue-black ink
ROWS = ((150, "20481"), (400, "73965"), (640, "1028"))  # (baseline y, digits written on that line)
SCALE_RANGE = (3.2, 4.0)  # 28 px MNIST glyphs become ~90-112 px on the page


def paper(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A (H, W, 3) float paper: warm tint, a soft uneven wash, fibres and fine grain."""
    wash = cv2.resize(rng.normal(0.0, 1.0, (height // 100 + 2, width // 100 + 2)), (width, height),
                      interpolation=cv2.INTER_CUBIC)
    fibres = cv2.GaussianBlur(rng.normal(0.0, 1.0, (height, width)), (0, 0), sigmaX=6.0, sigmaY=1.2)
    grain = rng.normal(0.0, 1.0, (height, width))
    shade = 3.0 * wash + 6.0 * fibres + 2.0 * grain  # in 8-bit grey levels
    vignette = np.hypot(*np.meshgrid(np.linspace(-1, 1, width), np.linspace(-1, 1, height)))
    shade -= 6.0 * vignette**2
    return PAPER_RGB[None, None, :] + shade[:, :, None]


def ink_digit(page: np.ndarray, glyph: np.ndarray, x: int, y: int, scale: float, rng: np.random.Generator) -> None:
    """Lay one light-on-dark MNIST glyph on the page as dark ink, upscaled and slightly uneven."""
    size = round(glyph.shape[0] * scale)
    coverage = cv2.resize(glyph.astype(np.float32) / 255.0, (size, size), interpolation=cv2.INTER_CUBIC)
    coverage = cv2.GaussianBlur(np.clip(coverage, 0.0, 1.0), (0, 0), sigmaX=0.8)
    pressure = 0.82 + 0.18 * cv2.resize(rng.uniform(0, 1, (4, 4)), (size, size), interpolation=cv2.INTER_CUBIC)
    alpha = np.clip(coverage * pressure, 0.0, 1.0)[:, :, None]
    region = page[y : y + size, x : x + size]
    region[:] = region * (1.0 - alpha) + INK_RGB[None, None, :] * alpha


def make_digits_page(seed: int = SEED) -> np.ndarray:
    """The sample page as (H, W, 3) uint8 RGB."""
    rng = np.random.default_rng(seed)
    width, height = PAGE_SIZE
    page = paper(rng, width, height)
    test = mnist_split("test", grayscale=True)
    digits, labels = test.images, test.labels[:, 0]
    for baseline, text in ROWS:
        x = 110 + int(rng.integers(0, 40))
        for character in text:
            candidates = np.flatnonzero(labels == int(character))
            glyph = digits[rng.choice(candidates)]
            scale = float(rng.uniform(*SCALE_RANGE))
            size = round(glyph.shape[0] * scale)
            y = baseline - size // 2 + int(rng.integers(-12, 13))
            ink_digit(page, glyph, x, y, scale, rng)
            x += size + int(rng.integers(60, 110))
    return np.clip(np.rint(page), 0, 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("digits_page.png"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    page = make_digits_page()
    if not cv2.imwrite(str(args.out), cv2.cvtColor(page, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise SystemExit(f"could not write {args.out}")
    log.info("wrote %s (%dx%d, %d bytes)", args.out, page.shape[1], page.shape[0], args.out.stat().st_size)


if __name__ == "__main__":
    main()
