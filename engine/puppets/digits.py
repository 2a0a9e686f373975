"""The `digits` puppet: a typed digit, white on black like MNIST, with exact rotation and size.

Each glyph is rasterised once at high resolution and turned into a signed
distance field (cached). A render is then one affine warp of that field
(rotation about the glyph's bounding-box centre, scale, shift) onto a canvas
supersampled 2–4×, a threshold that also sets the stroke thickness, and an
area-average down to the requested size. One warp means the rotation and size
in the image are exactly the control values, which is what makes the
synthetic labels trustworthy.

Conventions: `rotation` is in degrees, positive = counter-clockwise as
displayed; `size` 1.0 makes the glyph's ink 0.625 of the image height (20 px
of 32, as in MNIST's 20-px box); `width` stretches the glyph across before it
turns, keeping its height, because MNIST fills its box on the longer side and
so holds digits wider than any typed one; `shift_x` is positive to the right and
`shift_y` positive downwards, both as fractions of the image side.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from engine.errors import EditError
from engine.puppets.base import Control, Puppet
from engine.puppets.digit_measures import (
    GLYPH_HEIGHT_AT_UNIT_SIZE,
    INK_ROW_HIGH,
    MEASURES,
    MIN_ELONGATION,
    elongation,
)

DEBIAN_FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")

# (choice shown to the user, TrueType file): all six ship in Debian's fonts-dejavu-core and in matplotlib.
FONT_FACES: tuple[tuple[str, str], ...] = (
    ("Sans", "DejaVuSans.ttf"),
    ("Sans Bold", "DejaVuSans-Bold.ttf"),
    ("Serif", "DejaVuSerif.ttf"),
    ("Serif Bold", "DejaVuSerif-Bold.ttf"),
    ("Mono", "DejaVuSansMono.ttf"),
    ("Mono Bold", "DejaVuSansMono-Bold.ttf"),
)

THICKNESS_PER_UNIT = 0.03  # stroke offset per side, as a fraction of glyph height, at thickness ±1
HIGH_RES_FONT_PX = 320  # rasterising size; DejaVu digits come out ~230 px tall
FIELD_PADDING_PX = 16  # room around the glyph so the distance field can be dilated
SUPERSAMPLE_MAX_CANVAS = 256  # the warp canvas is size × k, k in 2..4, at most this many px where possible
OUTSIDE_DISTANCE = 1e4  # field value beyond the high-res raster: far outside the glyph


@dataclass(frozen=True)
class GlyphField:
    """A glyph's signed distance field (high-res px, negative inside) with its ink box centre and height."""

    distance: np.ndarray  # (H, W) float32
    centre: tuple[float, float]  # (x, y) of the ink bounding box centre
    height: float  # ink bounding box height, px


def font_directories() -> list[Path]:
    """Where to look for the DejaVu faces: Debian's font dir, then matplotlib's bundled fonts if installed.

    matplotlib is located without importing it, so the engine never pays for
    (or needs) matplotlib at run time.
    """
    directories = [DEBIAN_FONT_DIR]
    spec = importlib.util.find_spec("matplotlib")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            directories.append(Path(location) / "mpl-data" / "fonts" / "ttf")
    return directories


@functools.lru_cache(maxsize=None)
def font_path(file_name: str) -> Path:
    """The first existing copy of `file_name`; EditError says how to install one when there is none."""
    searched = font_directories()
    for directory in searched:
        candidate = directory / file_name
        if candidate.is_file():
            return candidate
    raise EditError(
        f"Font {file_name} not found in {', '.join(map(str, searched))}; "
        "install Debian's fonts-dejavu-core or matplotlib to render typed digits."
    )


@functools.lru_cache(maxsize=None)
def glyph_field(face: int, digit: int) -> GlyphField:
    """Rasterise `digit` in font `face` at high resolution and return its signed distance field (cached)."""
    font = ImageFont.truetype(str(font_path(FONT_FACES[face][1])), HIGH_RES_FONT_PX)
    text = str(digit)
    left, top, right, bottom = font.getbbox(text)
    width = right - left + 2 * FIELD_PADDING_PX
    height = bottom - top + 2 * FIELD_PADDING_PX
    raster = Image.new("L", (width, height), 0)
    ImageDraw.Draw(raster).text((FIELD_PADDING_PX - left, FIELD_PADDING_PX - top), text, fill=255, font=font)
    ink = np.asarray(raster) >= 128
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    centre = ((cols[0] + cols[-1]) / 2.0, (rows[0] + rows[-1]) / 2.0)
    ink_u8 = ink.astype(np.uint8)
    outside = cv2.distanceTransform(1 - ink_u8, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    inside = cv2.distanceTransform(ink_u8, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    # Pixel centres sit half a pixel from the edge between ink and background.
    distance = np.where(ink, 0.5 - inside, outside - 0.5).astype(np.float32)
    distance.setflags(write=False)  # shared by every render through the cache
    return GlyphField(distance=distance, centre=centre, height=float(rows[-1] - rows[0] + 1))


def _supersampling(size: int) -> int:
    return int(np.clip(SUPERSAMPLE_MAX_CANVAS // size, 2, 4))


def render_digit(
    digit: int,
    face: int,
    *,
    rotation: float,
    scale: float,
    width: float,
    thickness: float,
    shift_x: float,
    shift_y: float,
    size: int,
) -> np.ndarray:
    """Grey coverage (size, size) float32 in [0, 1] of one posed glyph; see the module docstring for units."""
    field = glyph_field(face, digit)
    k = _supersampling(size)
    canvas = size * k
    glyph_height = scale * GLYPH_HEIGHT_AT_UNIT_SIZE * canvas
    zoom = glyph_height / field.height
    turn = cv2.getRotationMatrix2D(field.centre, rotation, zoom)  # positive angle = counter-clockwise on screen
    linear = turn[:, :2] @ np.diag([width, 1.0])  # stretch across, then turn and scale
    middle = (canvas - 1) / 2.0
    matrix = np.hstack([linear, (middle - linear @ np.asarray(field.centre))[:, None]])
    matrix[:, 2] += (shift_x * canvas, shift_y * canvas)
    distance = cv2.warpAffine(
        field.distance,
        matrix,
        (canvas, canvas),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=OUTSIDE_DISTANCE,
    )
    offset = thickness * THICKNESS_PER_UNIT * glyph_height
    # Distance in canvas px, shifted by the stroke offset; a one-canvas-pixel ramp anti-aliases the edge.
    coverage = np.clip(0.5 - (distance * zoom - offset), 0.0, 1.0)
    return cv2.resize(coverage, (size, size), interpolation=cv2.INTER_AREA)


class DigitsPuppet(Puppet):
    """Typed digits 0–9 in six DejaVu faces: the synthetic side of PuppetGAN's MNIST experiments."""

    name = "digits"
    label = "Typed digits"
    controls = (
        Control("digit", "Digit", 0, 9, 0, "categorical", tuple(str(d) for d in range(10))),
        Control("rotation", "Rotation (degrees, counter-clockwise)", -45.0, 45.0, 0.0, "continuous"),
        Control("size", "Size (1 = MNIST's 20 px of 32)", 0.6, 1.4, 1.0, "continuous"),
        Control("width", "Width (1 = the font's own)", 0.8, 1.8, 1.0, "continuous"),
        Control("thickness", "Stroke thickness (−1 thin … 1 thick)", -1.0, 1.0, 0.0, "continuous"),
        Control("font", "Font", 0, len(FONT_FACES) - 1, 0, "categorical", tuple(name for name, _ in FONT_FACES)),
        Control("shift_x", "Shift right (fraction of image)", -0.06, 0.06, 0.0, "continuous"),
        Control("shift_y", "Shift down (fraction of image)", -0.06, 0.06, 0.0, "continuous"),
    )

    def draw(self, values: Mapping[str, float], size: int, seed: int) -> np.ndarray:
        """White glyph on black; `seed` is unused because a typed digit has no random detail."""
        coverage = render_digit(
            int(values["digit"]),
            int(values["font"]),
            rotation=values["rotation"],
            scale=values["size"],
            width=values["width"],
            thickness=values["thickness"],
            shift_x=values["shift_x"],
            shift_y=values["shift_y"],
            size=size,
        )
        grey = np.rint(coverage * 255.0).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)

    def measure(self, image: np.ndarray) -> dict[str, float]:
        """Rotation and size of a light-on-dark digit, by the evaluation's own estimators (`digit_measures`).

        Blank paper reads nothing, and a blob with no long axis (a disc, paper
        noise) no rotation: a reading there would move the slider at random.
        """
        images = np.asarray(image)[None]
        if images.max() < INK_ROW_HIGH * 255:
            return {}
        readings = {name: float(measure(images)[0]) for name, measure in MEASURES.items()}
        if elongation(images)[0] < MIN_ELONGATION:
            del readings["rotation"]
        return readings
