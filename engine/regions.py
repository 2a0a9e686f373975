"""Photo regions: propose the box to edit, cut it to model size, paste the edit back at full resolution.

The model sees a square: the box's longer side, centred on the box, padded
by edge replication where it leaves the photo (padded, never squashed). The
paste-back maps the model's square back to photo pixels exactly, blends the
box with a feathered mask, corrects the model's low-frequency colour shift
so no seam shows, and leaves every pixel outside the box bit-identical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from engine.errors import EditError

PROPOSAL_SIDE = 512  # proposals run on a downscaled copy: objects, not texture
MIN_OBJECT_FRACTION = 5e-4  # smaller components are noise
MIN_CONTRAST = 24  # grey levels between Otsu's two classes; below it there is no object to find
BAND_ROWS = 256  # paste-back blends in row bands to bound memory on large photos


@dataclass(frozen=True)
class Box:
    """A rectangle of photo pixels: top-left corner (x, y), width and height."""

    x: int
    y: int
    w: int
    h: int

    def __post_init__(self) -> None:
        if self.w <= 0 or self.h <= 0:
            raise EditError(f"region {self.w}×{self.h} at ({self.x}, {self.y}) is empty; give a positive width and height")

    @property
    def right(self) -> int:
        return self.x + self.w

    @property
    def bottom(self) -> int:
        return self.y + self.h

    @classmethod
    def whole(cls, pixels: np.ndarray) -> Box:
        """The box covering the whole image."""
        return cls(0, 0, pixels.shape[1], pixels.shape[0])

    @classmethod
    def parse(cls, text: str) -> Box:
        """A box from "x,y,w,h" (the CLI's --region)."""
        try:
            x, y, w, h = (int(part) for part in text.split(","))
        except ValueError:
            raise EditError(f"region '{text}' must be four integers x,y,w,h") from None
        return cls(x, y, w, h)

    def clamped(self, width: int, height: int) -> Box:
        """This box cut to a width×height image; EditError when it lies outside."""
        x0, y0 = max(0, self.x), max(0, self.y)
        x1, y1 = min(width, self.right), min(height, self.bottom)
        if x1 <= x0 or y1 <= y0:
            raise EditError(f"region {self} lies outside the {width}×{height} photo")
        return Box(x0, y0, x1 - x0, y1 - y0)

    def scaled(self, factor: float, width: int, height: int) -> Box:
        """This box in an image scaled by `factor` (width×height), grown to whole pixels."""
        x0, y0 = math.floor(self.x * factor), math.floor(self.y * factor)
        x1, y1 = math.ceil(self.right * factor), math.ceil(self.bottom * factor)
        return Box(x0, y0, max(1, x1 - x0), max(1, y1 - y0)).clamped(width, height)


@dataclass(frozen=True)
class Crop:
    """A box cut to model size, with what paste_back needs to put an edit back.

    `square` is (x0, y0, side) in photo pixels: the model image covers that
    square exactly; it may reach past the photo's edges (that part is padding).
    """

    box: Box
    square: tuple[float, float, float]
    size: int
    region: np.ndarray  # (size, size, 3) uint8, the model's input
    image_shape: tuple[int, int]  # (height, width) of the photo it was cut from

    def scaled(self, factor: float) -> Crop:
        """The same crop on a copy of the photo scaled by `factor` (for previews on a downscaled view)."""
        height, width = (max(1, round(n * factor)) for n in self.image_shape)
        x0, y0, side = self.square
        return Crop(
            box=self.box.scaled(factor, width, height),
            square=(x0 * factor, y0 * factor, side * factor),
            size=self.size,
            region=self.region,
            image_shape=(height, width),
        )


def propose_box(pixels: np.ndarray, margin: float = 0.3) -> Box:
    """The largest high-contrast object against the background, with a margin; the whole image if none.

    Otsu's threshold splits the grey image in two; the class that owns most
    of the image border is the background. The largest connected component
    of the other class (after a small dilation that joins broken strokes) is
    the object; `margin` is a fraction of its longer side added all round
    (0.3 frames an object like MNIST frames a digit: 20 px in a 32 px square).
    """
    height, width = pixels.shape[:2]
    scale = min(1.0, PROPOSAL_SIDE / max(height, width))
    grey = _grey8(pixels)
    if scale < 1.0:
        grey = cv2.resize(grey, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
    grey = cv2.GaussianBlur(grey, (3, 3), 0)
    _, binary = cv2.threshold(grey, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if binary.all() or not binary.any():
        return Box.whole(pixels)
    if abs(float(grey[binary == 1].mean()) - float(grey[binary == 0].mean())) < MIN_CONTRAST:
        return Box.whole(pixels)
    border = np.concatenate([binary[0], binary[-1], binary[:, 0], binary[:, -1]])
    foreground = (binary != (1 if border.mean() > 0.5 else 0)).astype(np.uint8)
    joint = max(3, round(0.01 * max(grey.shape)) | 1)
    foreground = cv2.dilate(foreground, np.ones((joint, joint), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(foreground, connectivity=8)
    if count < 2:
        return Box.whole(pixels)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h, area = (int(v) for v in stats[largest])
    if area < MIN_OBJECT_FRACTION * grey.size:
        return Box.whole(pixels)
    pad = margin * max(w, h)
    x0, y0 = math.floor((x - pad) / scale), math.floor((y - pad) / scale)
    x1, y1 = math.ceil((x + w + pad) / scale), math.ceil((y + h + pad) / scale)
    return Box(x0, y0, x1 - x0, y1 - y0).clamped(width, height)


def crop(pixels: np.ndarray, box: Box, size: int) -> Crop:
    """The square around `box`, edge-padded where it leaves the photo, resized to size×size uint8.

    Works for uint8 and uint16 RGB; 16-bit pixels are resized first and
    quantised last, so the model input is as precise as 8 bits allow.
    """
    _check_pixels(pixels)
    height, width = pixels.shape[:2]
    box = box.clamped(width, height)
    side = max(box.w, box.h)
    x0, y0 = box.x - (side - box.w) // 2, box.y - (side - box.h) // 2
    inside = pixels[max(0, y0) : min(height, y0 + side), max(0, x0) : min(width, x0 + side)]
    pads = (max(0, -y0), max(0, y0 + side - height), max(0, -x0), max(0, x0 + side - width))
    square = cv2.copyMakeBorder(inside, *pads, cv2.BORDER_REPLICATE) if any(pads) else np.ascontiguousarray(inside)
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    region = cv2.resize(square, (size, size), interpolation=interpolation)
    if region.dtype == np.uint16:
        region = np.rint(region / 257.0).astype(np.uint8)
    return Crop(box=box, square=(float(x0), float(y0), float(side)), size=size, region=region, image_shape=(height, width))


def paste_back(
    pixels: np.ndarray,
    crop: Crop,
    edited: np.ndarray,
    feather: float = 0.12,
    color_match: bool = True,
) -> np.ndarray:
    """A copy of `pixels` with the model-size `edited` image pasted into `crop.box` at full resolution.

    feather: width of the blend ramp as a fraction of the box's shorter side
    (sides that touch the photo's edge are not feathered: there is no seam).
    color_match: remove the model's low-frequency colour shift, measured
    where the edit should agree with the photo (outside and along the edge
    of the box) and interpolated smoothly inside, like a cheap Poisson blend.
    Pixels outside the box are bit-identical; dtype (uint8/uint16) is kept.
    """
    _check_pixels(pixels)
    if pixels.shape[:2] != crop.image_shape:
        raise EditError(f"crop was cut from a {crop.image_shape} photo, not {pixels.shape[:2]}")
    if edited.shape != (crop.size, crop.size, 3) or edited.dtype != np.uint8:
        raise EditError(f"edited image must be ({crop.size}, {crop.size}, 3) uint8, got {edited.shape} {edited.dtype}")
    box = crop.box
    feather_px = max(1.0, feather * min(box.w, box.h))
    model_mask = _mask_in_model_space(crop, feather_px)
    model_image = edited.astype(np.float32)
    if color_match:
        model_image += _colour_correction(crop.region.astype(np.float32) - model_image, 1.0 - model_mask)
    peak = float(np.iinfo(pixels.dtype).max)
    model_image = np.clip(np.rint(model_image * (peak / 255.0)), 0, peak).astype(pixels.dtype)
    upsampled = _upsample_to_box(model_image, crop)
    mask_y, mask_x = _box_ramps(crop, feather_px)
    result = pixels.copy()
    target = result[box.y : box.bottom, box.x : box.right]
    rows, columns = np.flatnonzero(mask_y >= 1.0), np.flatnonzero(mask_x >= 1.0)
    if rows.size == 0 or columns.size == 0:
        _blend_rows(target, upsampled, mask_y, mask_x)
        return result
    top, bottom, left, right = rows[0], rows[-1] + 1, columns[0], columns[-1] + 1
    target[top:bottom, left:right] = upsampled[top:bottom, left:right]  # the mask is 1 here: a plain copy
    _blend_rows(target[:top], upsampled[:top], mask_y[:top], mask_x)
    _blend_rows(target[bottom:], upsampled[bottom:], mask_y[bottom:], mask_x)
    _blend_rows(target[top:bottom, :left], upsampled[top:bottom, :left], mask_y[top:bottom], mask_x[:left])
    _blend_rows(target[top:bottom, right:], upsampled[top:bottom, right:], mask_y[top:bottom], mask_x[right:])
    return result


def _check_pixels(pixels: np.ndarray) -> None:
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype not in (np.uint8, np.uint16):
        raise EditError(f"regions work on (H, W, 3) uint8 or uint16 RGB pixels, got {pixels.shape} {pixels.dtype}")


def _grey8(pixels: np.ndarray) -> np.ndarray:
    eight = (pixels >> 8).astype(np.uint8) if pixels.dtype == np.uint16 else pixels
    if eight.ndim == 2:
        return np.ascontiguousarray(eight)
    return cv2.cvtColor(np.ascontiguousarray(eight[..., :3]), cv2.COLOR_RGB2GRAY)


def _ramp(position: np.ndarray, start: float, stop: float, feather_px: float, open_start: bool, open_stop: bool) -> np.ndarray:
    """1 inside [start, stop), easing to 0 over `feather_px` at each edge that is not open; 0 outside."""
    inside_start = np.full_like(position, np.inf) if open_start else position - start + 0.5
    inside_stop = np.full_like(position, np.inf) if open_stop else stop - position - 0.5
    distance = np.minimum(inside_start, inside_stop)
    t = np.clip(distance / feather_px, 0.0, 1.0)
    ramp = t * t * (3.0 - 2.0 * t)  # smoothstep: no visible kink where the ramp starts or ends
    outside = (position < start - 0.5) | (position > stop - 0.5)
    return np.where(outside, 0.0, ramp).astype(np.float32)


def _edges_open(crop: Crop) -> tuple[bool, bool, bool, bool]:
    """Which box sides (left, right, top, bottom) touch the photo edge, where no seam needs hiding."""
    height, width = crop.image_shape
    box = crop.box
    return box.x == 0, box.right == width, box.y == 0, box.bottom == height


def _box_ramps(crop: Crop, feather_px: float) -> tuple[np.ndarray, np.ndarray]:
    """The separable blend mask over the box, as (rows, columns) ramps in photo pixels."""
    box = crop.box
    left, right, top, bottom = _edges_open(crop)
    xs = np.arange(box.x, box.right, dtype=np.float32)
    ys = np.arange(box.y, box.bottom, dtype=np.float32)
    return (
        _ramp(ys, box.y, box.bottom, feather_px, top, bottom),
        _ramp(xs, box.x, box.right, feather_px, left, right),
    )


def _mask_in_model_space(crop: Crop, feather_px: float) -> np.ndarray:
    """The blend mask sampled at the model's pixel centres, (size, size, 1)."""
    x0, y0, side = crop.square
    centres = (np.arange(crop.size, dtype=np.float32) + 0.5) * (side / crop.size) - 0.5
    box = crop.box
    left, right, top, bottom = _edges_open(crop)
    mask_x = _ramp(centres + x0, box.x, box.right, feather_px, left, right)
    mask_y = _ramp(centres + y0, box.y, box.bottom, feather_px, top, bottom)
    return np.outer(mask_y, mask_x)[..., None]


def _colour_correction(difference: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """A smooth field that equals `difference` where `weight` is high and interpolates it elsewhere.

    Normalised convolution: blur(difference·weight) / blur(weight), leaning
    on the weighted mean where no weight is near. (size, size, 3) float32.
    """
    total = float(weight.sum())
    if total < 1.0:  # the box fills the square and touches every edge: nothing to match against
        return np.zeros_like(difference)
    size = difference.shape[0]
    sigma = size / 4.0
    mean = (difference * weight).sum(axis=(0, 1)) / total
    blurred_weight = cv2.GaussianBlur(weight[..., 0], (0, 0), sigma)[..., None]
    blurred_difference = cv2.GaussianBlur(difference * weight, (0, 0), sigma)
    floor = 0.05
    return (blurred_difference + floor * mean) / (blurred_weight + floor)


def _upsample_to_box(model_image: np.ndarray, crop: Crop) -> np.ndarray:
    """Resample the model-size image (bicubic) onto the box's photo pixels.

    cv2.resize of the whole square, then a slice: on full-resolution crops the
    square's corner is a whole pixel, so the mapping is exact; on scaled
    (preview) crops it is within half a view pixel. cv2.resize is an order
    of magnitude faster than warpAffine for the same output here.
    """
    x0, y0, side = crop.square
    box = crop.box
    side_px = max(1, round(side))
    square = cv2.resize(model_image, (side_px, side_px), interpolation=cv2.INTER_CUBIC)
    top, left = round(box.y - y0), round(box.x - x0)
    patch = square[max(0, top) : top + box.h, max(0, left) : left + box.w]
    if patch.shape[:2] == (box.h, box.w):
        return patch
    pad_top, pad_left = max(0, -top), max(0, -left)  # a scaled box may poke a pixel past the rounded square
    pads = ((pad_top, box.h - patch.shape[0] - pad_top), (pad_left, box.w - patch.shape[1] - pad_left), (0, 0))
    return np.pad(patch, pads, mode="edge")


def _blend_rows(target: np.ndarray, edit: np.ndarray, mask_y: np.ndarray, mask_x: np.ndarray) -> None:
    """target ← edit·w + target·(1−w) with w = mask_y ⊗ mask_x, in bands of rows to bound memory."""
    if target.size == 0:
        return
    for start in range(0, target.shape[0], BAND_ROWS):
        band = slice(start, start + BAND_ROWS)
        target[band] = _blend(edit[band], target[band], np.outer(mask_y[band], mask_x))


def _blend(edit: np.ndarray, original: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """edit·w + original·(1−w), per pixel, in the photo's dtype."""
    if edit.dtype == np.uint8:
        return cv2.blendLinear(np.ascontiguousarray(edit), np.ascontiguousarray(original), weights, 1.0 - weights)
    blended = original.astype(np.float32)
    blended += (edit.astype(np.float32) - blended) * weights[..., None]
    return np.clip(np.rint(blended), 0, np.iinfo(edit.dtype).max).astype(edit.dtype)
