"""Photo files: read every common format into RGB arrays, and write them back safely.

Loading identifies the file from its header, refuses oversized images before a
single pixel is decoded, applies the EXIF orientation, keeps 16-bit samples as
uint16, hands alpha back on its own, and converts grey, palette and CMYK photos
to RGB. Every failure a person can meet (missing, empty, truncated, damaged,
unreadable, too large) becomes one `ImageError` naming the file and what to do.

Saving picks the format from the extension, writes a temporary file beside the
target, fsyncs it and renames it over the target, so a crash or a full disk
never leaves half a photo behind, and it never overwrites the photo it was
loaded from unless asked to.

Decisions a caller should know:
- ICC profiles: RGB photos keep their pixels in their own colour space and the
  profile's bytes travel on `Photo.icc_profile` so a save re-embeds them. CMYK
  and 8-bit grey photos with a profile are converted to sRGB through it (and
  then carry an sRGB profile); a profile that cannot be used is logged and the
  plain conversion is used instead. BMP cannot hold a profile.
- 16-bit colour: Pillow holds 16-bit samples only for grey images, so 16-bit
  colour PNG and TIFF are decoded and encoded with OpenCV, and the ICC profile
  is written into the file by this module.
- Saving 16-bit pixels as JPEG, WebP or BMP (8-bit formats) scales them to
  8 bits. Saving transparency as JPEG is refused unless the alpha is fully
  opaque (then it is dropped): flattening would change pixels the user sees.
  BMP is treated the same way, since most readers ignore a BMP's fourth channel.
- WebP is saved lossy at `quality`; PNG and TIFF are lossless.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import struct
import tempfile
import threading
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, ImageFile

from engine.errors import ImageError

try:
    from PIL import ImageCms
except ImportError:  # Pillow built without LittleCMS: profiles are kept, never applied
    ImageCms = None

log = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 300_000_000
"""Images with more pixels are refused before decoding (decompression bombs)."""

READ_FORMATS = ("JPEG", "PNG", "TIFF", "WEBP", "BMP", "GIF")
"""Pillow openers Puppetry uses (JPEG also opens camera MPO files); others (EPS runs Ghostscript) are refused."""

SAVE_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
}

_SIXTEEN_BIT_FORMATS = ("PNG", "TIFF")
_ALPHA_FORMATS = ("PNG", "TIFF", "WEBP")  # Pillow writes BMP alpha, but readers (Pillow too) ignore it
_ICC_FORMATS = ("JPEG", "PNG", "TIFF", "WEBP")
_ORIENTATION_TAG = 0x0112
_TIFF_BITS_PER_SAMPLE = 258
_TIFF_EXTRA_SAMPLES_TAG = 338
_TIFF_ICC_TAG = 34675
_DAMAGED_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)

# warnings.catch_warnings swaps process-wide state; one header read at a time keeps it consistent.
_WARNINGS_LOCK = threading.Lock()


@dataclass
class Photo:
    """A decoded photo: upright RGB pixels, separate alpha, and what a save needs to keep."""

    pixels: np.ndarray  # (H, W, 3) uint8 | uint16, RGB
    alpha: np.ndarray | None  # (H, W), same dtype as pixels
    bit_depth: int  # 8 | 16
    source: Path | None
    icc_profile: bytes | None
    format: str  # Pillow's name for the file's format: "JPEG", "PNG", ...

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


# ---------------------------------------------------------------------------- loading


def load_image(path: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Photo:
    """Read a photo file into an upright RGB `Photo`; every failure is an `ImageError`."""
    path = Path(path)
    if path.is_dir():
        raise ImageError(f"{path} is a folder, not an image file; choose a file inside it.")
    try:
        file = path.open("rb")
    except FileNotFoundError as error:
        raise ImageError(f"{path} does not exist; check the name and the folder.") from error
    except PermissionError as error:
        raise ImageError(f"{path} cannot be read (permission denied); check the file's permissions.") from error
    except OSError as error:
        raise ImageError(f"{path} cannot be read ({error.strerror or error}).") from error
    with file:
        if os.fstat(file.fileno()).st_size == 0:
            raise ImageError(f"{path} is empty (0 bytes); it was probably not saved or copied completely.")
        image = _identify(path, file)
        _check_pixel_count(path, image.size, max_pixels)
        if _has_16_bit_colour(image):
            pixels, alpha, icc_profile = _decode_16_bit_colour(path, file, image)
        else:
            pixels, alpha, icc_profile = _decode_with_pillow(path, image)
        orientation = _read_orientation(path, image)
    pixels, alpha = _apply_orientation(pixels, orientation), _apply_orientation(alpha, orientation)
    return Photo(
        pixels=_owned(pixels),
        alpha=None if alpha is None else _owned(alpha),
        bit_depth=16 if pixels.dtype == np.uint16 else 8,
        source=Path(os.path.abspath(path)),
        icc_profile=icc_profile,
        format=str(image.format),
    )


def load_rgb8(path: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read a photo as (H, W, 3) uint8 RGB for the models: alpha dropped, 16 bits scaled to 8."""
    return to_8_bit(load_image(path, max_pixels=max_pixels).pixels)


def to_8_bit(samples: np.ndarray) -> np.ndarray:
    """Scale uint16 samples to uint8 with rounding (65535 → 255); uint8 passes through."""
    if samples.dtype == np.uint8:
        return samples
    return ((samples.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _owned(samples: np.ndarray) -> np.ndarray:
    """A writable, contiguous array, so callers can edit a photo in place."""
    if samples.flags.c_contiguous and samples.flags.writeable:
        return samples
    return np.array(samples, order="C")


def _identify(path: Path, file: BinaryIO) -> ImageFile.ImageFile:
    """Read only the header, the way `Image.open` does, but without Pillow's own size check.

    Pillow's check reads a process-wide limit (about 179 MP hard cap), which would refuse
    photos the caller's `max_pixels` allows; `_check_pixel_count` applies that one instead.
    """
    Image.init()
    prefix = file.read(16)
    damage: Exception | None = None
    with _WARNINGS_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name in READ_FORMATS:
            if name not in Image.OPEN:  # a Pillow built without this codec
                continue
            factory, accept = Image.OPEN[name]
            accepted = accept(prefix) if accept is not None else True
            if isinstance(accepted, str) or not accepted:
                continue
            file.seek(0)
            try:
                image = factory(file, os.fsdecode(path))
            except Image.DecompressionBombError as error:
                raise ImageError(f"{path} is too large to decode safely ({error}).") from error
            except (SyntaxError, OSError, ValueError) as error:
                damage = error
                continue
            _log_warnings(path, caught)
            return image
    if damage is not None:
        raise ImageError(
            f"{path} is truncated or damaged: its header cannot be read ({damage}); "
            "try re-exporting or re-downloading it."
        ) from damage
    readable = ", ".join(sorted({"JPEG", "PNG", "TIFF", "WebP", "BMP", "GIF"}))
    raise ImageError(
        f"{path} is not an image Puppetry can read (unrecognised format); Puppetry reads {readable}."
    )


def _check_pixel_count(path: Path, size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageError(
            f"{path} is {width}×{height} = {_describe_pixels(width * height)}, above the "
            f"{_describe_pixels(max_pixels)} limit; raise it with the max_pixels setting if you trust this file."
        )


def _describe_pixels(count: int) -> str:
    if count >= 1_000_000:
        return f"{count / 1_000_000:.1f}".removesuffix(".0") + " MP"
    return f"{count} pixels"


def _has_16_bit_colour(image: ImageFile.ImageFile) -> bool:
    """True for 16-bit samples Pillow would cut to 8 bits (colour or grey+alpha PNG/TIFF)."""
    if image.mode.startswith("I;16"):
        return False
    if image.format == "PNG":
        return image.png is not None and image.png.im_rawmode.endswith(";16B")
    if image.format == "TIFF":
        bits = image.tag_v2.get(_TIFF_BITS_PER_SAMPLE, (8,))
        return 16 in (bits if isinstance(bits, tuple) else (bits,))
    return False


def _decode_with_pillow(
    path: Path, image: ImageFile.ImageFile
) -> tuple[np.ndarray, np.ndarray | None, bytes | None]:
    try:
        image.load()
    except MemoryError as error:
        raise ImageError(f"{path} ({image.width}×{image.height}) is too large for the memory available.") from error
    except _DAMAGED_ERRORS as error:
        raise _damaged(path, error) from error
    icc_profile = image.info.get("icc_profile") or None
    image, icc_profile = _to_rgb_modes(path, image, icc_profile)
    if image.mode in ("RGBA", "LA"):
        samples = np.asarray(image)
        colour, alpha = samples[..., :-1], samples[..., -1]
    else:
        colour, alpha = _samples_of(path, image), None
    if colour.ndim == 3 and colour.shape[2] == 1:
        colour = colour[..., 0]
    if colour.ndim == 2:
        colour = np.repeat(colour[..., None], 3, axis=2)
    return colour, alpha, _rgb_profile_only(path, icc_profile)


def _to_rgb_modes(
    path: Path, image: Image.Image, icc_profile: bytes | None
) -> tuple[Image.Image, bytes | None]:
    """Bring any Pillow mode to L, LA, RGB, RGBA or a 16-bit grey mode, applying ICC where it must."""
    mode = image.mode
    if mode in ("P", "PA", "L", "RGB") and ("transparency" in image.info or mode == "PA"):
        return image.convert("RGBA"), icc_profile
    if mode in ("P", "YCbCr", "RGBX", "HSV"):
        return image.convert("RGB"), icc_profile
    if mode == "1":
        return image.convert("L"), icc_profile
    if mode in ("La", "RGBa"):
        return image.convert(mode.upper()), icc_profile
    if mode in ("CMYK", "L") and icc_profile is not None and _icc_colour_space(icc_profile) != b"RGB ":
        return _convert_to_srgb(path, image, icc_profile)
    if mode == "CMYK":
        return image.convert("RGB"), None
    if mode in ("L", "LA", "RGB", "RGBA", "I", "I;16", "I;16L", "I;16B", "I;16N"):
        return image, icc_profile
    raise ImageError(f"{path} uses the {mode} colour mode, which Puppetry cannot edit; save it as 8- or 16-bit RGB.")


def _samples_of(path: Path, image: Image.Image) -> np.ndarray:
    samples = np.asarray(image)
    if image.mode.startswith("I;16"):
        return samples.astype(np.uint16)
    if image.mode == "I":
        if samples.size and (samples.min() < 0 or samples.max() > 65535):
            raise ImageError(f"{path} holds 32-bit integer samples; save it as 16-bit to edit it.")
        return samples.astype(np.uint16)
    return samples


def _convert_to_srgb(path: Path, image: Image.Image, icc_profile: bytes) -> tuple[Image.Image, bytes | None]:
    """Convert CMYK or grey through its embedded profile to sRGB; fall back to Pillow's plain maths."""
    if ImageCms is not None:
        try:
            source_profile = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
            srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
            converted = ImageCms.profileToProfile(
                image, source_profile, srgb, renderingIntent=ImageCms.Intent.PERCEPTUAL, outputMode="RGB"
            )
            return converted, srgb.tobytes()
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as error:
            log.warning("%s: its ICC profile cannot be used (%s); colours converted without it.", path, error)
    return image.convert("RGB"), None


def _icc_colour_space(icc_profile: bytes) -> bytes:
    """The data colour space signature in the ICC header: b'RGB ', b'CMYK', b'GRAY', ..."""
    return icc_profile[16:20]


def _decode_16_bit_colour(
    path: Path, file: BinaryIO, image: ImageFile.ImageFile
) -> tuple[np.ndarray, np.ndarray | None, bytes | None]:
    """Decode 16-bit colour PNG/TIFF with OpenCV, which keeps all 16 bits per sample."""
    file.seek(0)
    data = np.frombuffer(file.read(), dtype=np.uint8)
    try:
        samples = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error as error:
        raise _damaged(path, error) from error
    if samples is None:
        raise _damaged(path, ValueError(f"the {image.format} decoder gave up"))
    icc_profile = _rgb_profile_only(path, image.info.get("icc_profile") or None)
    if samples.ndim == 2:
        return np.repeat(samples[..., None], 3, axis=2), None, icc_profile
    colour = samples[..., 2::-1]  # BGR(A) -> RGB
    alpha = samples[..., 3] if samples.shape[2] == 4 else None
    return colour, alpha, icc_profile


def _rgb_profile_only(path: Path, icc_profile: bytes | None) -> bytes | None:
    """A grey or CMYK profile cannot describe the RGB pixels handed back, so it is not kept."""
    if icc_profile is not None and _icc_colour_space(icc_profile) != b"RGB ":
        log.info("%s: its %s ICC profile was not applied and is dropped.", path, _icc_colour_space(icc_profile))
        return None
    return icc_profile


def _damaged(path: Path, error: BaseException) -> ImageError:
    reason = str(error) or type(error).__name__
    return ImageError(
        f"{path} is truncated or damaged and cannot be decoded ({reason}); try re-exporting or re-downloading it."
    )


def _read_orientation(path: Path, image: ImageFile.ImageFile) -> int:
    """The EXIF orientation (1–8), 1 when absent or unreadable; bad EXIF is logged, not fatal."""
    if image.format == "PNG" and "exif" not in image.info and image.tile:
        return 1  # only an eXIf chunk after the pixels is left, and reading it would decode them again
    with _WARNINGS_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = image.getexif().get(_ORIENTATION_TAG, 1)
        except _DAMAGED_ERRORS as error:
            log.warning("%s: its EXIF data is unreadable (%s); orientation ignored.", path, error)
            value = 1
        _log_warnings(path, caught)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _apply_orientation(samples: np.ndarray | None, orientation: int) -> np.ndarray | None:
    """Turn stored samples upright, as EXIF orientation says (same result as ImageOps.exif_transpose)."""
    if samples is None or orientation == 1:
        return samples
    transforms: dict[int, Callable[[np.ndarray], np.ndarray]] = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, k=-1),
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
        8: lambda a: np.rot90(a, k=1),
    }
    return transforms[orientation](samples)


def _log_warnings(path: Path, caught: list[warnings.WarningMessage]) -> None:
    for warning in caught:
        log.warning("%s: %s", path, warning.message)


# ---------------------------------------------------------------------------- saving


def save_image(
    path: str | os.PathLike[str],
    pixels: np.ndarray,
    *,
    alpha: np.ndarray | None = None,
    quality: int = 95,
    source: str | os.PathLike[str] | None = None,
    overwrite_source: bool = False,
    icc_profile: bytes | None = None,
) -> Path:
    """Write (H, W, 3) RGB pixels atomically in the format the extension names; returns the path.

    `quality` (1–100) applies to JPEG and WebP. `source` is the photo these pixels came
    from: it is never overwritten unless `overwrite_source` is True.
    """
    target = Path(path)
    file_format = _format_for(target)
    if not 1 <= quality <= 100:
        raise ImageError(f"Cannot save {target}: quality must be between 1 and 100, not {quality}.")
    pixels, alpha = _checked_samples(target, pixels, alpha)
    _refuse_source(target, source, overwrite_source)
    _check_folder(target)
    if icc_profile is not None and _icc_colour_space(icc_profile) != b"RGB ":
        raise ImageError(f"Cannot save {target}: its ICC profile does not describe RGB pixels.")
    if icc_profile is not None and file_format not in _ICC_FORMATS:
        log.info("%s: %s cannot hold an ICC profile; saved without it.", target, file_format)
        icc_profile = None
    alpha = _alpha_for_format(target, file_format, alpha)
    if pixels.dtype == np.uint16 and file_format not in _SIXTEEN_BIT_FORMATS:
        log.info("%s: %s holds 8 bits per sample; 16-bit pixels scaled to 8 bits.", target, file_format)
        pixels, alpha = to_8_bit(pixels), None if alpha is None else to_8_bit(alpha)
    if pixels.dtype == np.uint16:
        data = _encode_16_bit(target, file_format, pixels, alpha, icc_profile)
        _write_atomically(target, file_format, lambda file: file.write(data))
    else:
        image = _pillow_image(pixels, alpha)
        options = _save_options(file_format, quality, icc_profile)
        _write_atomically(target, file_format, lambda file: image.save(file, format=file_format, **options))
    return target


def save_photo(
    path: str | os.PathLike[str], photo: Photo, *, quality: int = 95, overwrite_source: bool = False
) -> Path:
    """Save a `Photo` with its alpha and ICC profile, protecting the file it was loaded from."""
    return save_image(
        path,
        photo.pixels,
        alpha=photo.alpha,
        quality=quality,
        source=photo.source,
        overwrite_source=overwrite_source,
        icc_profile=photo.icc_profile,
    )


def _format_for(target: Path) -> str:
    file_format = SAVE_FORMATS.get(target.suffix.lower())
    if file_format is None:
        known = ", ".join(SAVE_FORMATS)
        raise ImageError(
            f"Cannot save {target}: '{target.suffix or '(no extension)'}' is not a format Puppetry writes; "
            f"end the name with one of {known}."
        )
    return file_format


def _checked_samples(
    target: Path, pixels: np.ndarray, alpha: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    pixels = np.asarray(pixels)
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype not in (np.uint8, np.uint16):
        raise ImageError(
            f"Cannot save {target}: pixels must be (H, W, 3) uint8 or uint16, not {pixels.shape} {pixels.dtype}."
        )
    if pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise ImageError(f"Cannot save {target}: the image has no pixels ({pixels.shape}).")
    if alpha is not None:
        alpha = np.asarray(alpha)
        if alpha.shape != pixels.shape[:2] or alpha.dtype != pixels.dtype:
            raise ImageError(
                f"Cannot save {target}: alpha must be {pixels.shape[:2]} {pixels.dtype} like the pixels, "
                f"not {alpha.shape} {alpha.dtype}."
            )
    return pixels, alpha


def _refuse_source(target: Path, source: str | os.PathLike[str] | None, overwrite_source: bool) -> None:
    if source is None or overwrite_source:
        return
    source = Path(source)
    same = target.resolve() == source.resolve()
    if not same and target.exists() and source.exists():
        same = os.path.samefile(target, source)
    if same:
        raise ImageError(
            f"Not saving over the original photo {source}; choose another name, "
            "or confirm overwriting the original (overwrite_source=True)."
        )


def _check_folder(target: Path) -> None:
    folder = target.parent
    if not folder.is_dir():
        raise ImageError(f"Cannot save {target}: the folder {folder} does not exist; create it or choose another.")
    if target.is_dir():
        raise ImageError(f"Cannot save {target}: a folder already has that name; choose another name.")


def _alpha_for_format(target: Path, file_format: str, alpha: np.ndarray | None) -> np.ndarray | None:
    if alpha is None or file_format in _ALPHA_FORMATS:
        return alpha
    if np.all(alpha == np.iinfo(alpha.dtype).max):
        return None  # fully opaque: nothing is lost
    raise ImageError(
        f"Cannot save {target}: {file_format} cannot store transparency; "
        "save as PNG, TIFF or WebP, or flatten the image first."
    )


def _pillow_image(pixels: np.ndarray, alpha: np.ndarray | None) -> Image.Image:
    if alpha is None:
        return Image.fromarray(np.ascontiguousarray(pixels), mode="RGB")
    return Image.fromarray(np.ascontiguousarray(np.dstack([pixels, alpha])), mode="RGBA")


def _save_options(file_format: str, quality: int, icc_profile: bytes | None) -> dict[str, object]:
    options: dict[str, object] = {}
    if icc_profile is not None:
        options["icc_profile"] = icc_profile
    if file_format == "JPEG":
        options["quality"] = quality
        options["subsampling"] = 0 if quality >= 90 else 2  # full-resolution colour for high-quality saves
    elif file_format == "WEBP":
        options.update(quality=quality, exact=True)  # exact: keep colour under transparent pixels
    elif file_format == "TIFF":
        options["compression"] = "tiff_deflate"
    return options


def _encode_16_bit(
    target: Path, file_format: str, pixels: np.ndarray, alpha: np.ndarray | None, icc_profile: bytes | None
) -> bytes:
    samples = pixels[..., ::-1] if alpha is None else np.dstack([pixels[..., ::-1], alpha])  # RGB -> BGR(A)
    try:
        ok, encoded = cv2.imencode(".png" if file_format == "PNG" else ".tif", np.ascontiguousarray(samples))
    except cv2.error as error:
        raise ImageError(f"Cannot save {target} as 16-bit {file_format}: the encoder failed ({error}).") from error
    if not ok:
        raise ImageError(f"Cannot save {target} as 16-bit {file_format}: the encoder failed.")
    data = encoded.tobytes()
    if file_format == "PNG":
        return data if icc_profile is None else _png_with_icc(data, icc_profile)
    return _tiff_with_tags(data, icc_profile=icc_profile, has_alpha=alpha is not None)


def _png_with_icc(png: bytes, icc_profile: bytes) -> bytes:
    """Insert an iCCP chunk right after IHDR (signature 8 bytes + IHDR chunk 25 bytes)."""
    body = b"ICC profile\0\0" + zlib.compress(icc_profile)
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(">I", zlib.crc32(b"iCCP" + body))
    return png[:33] + chunk + png[33:]


def _tiff_with_tags(tiff: bytes, *, icc_profile: bytes | None, has_alpha: bool) -> bytes:
    """Add what OpenCV's TIFF writer leaves out: the ICC profile and "4th channel is alpha".

    Appends the profile and a copy of the first IFD with the extra tags; the pixel
    strips stay where they are, so only the header's IFD offset changes.
    """
    order = "<" if tiff[:2] == b"II" else ">"
    if struct.unpack(order + "H", tiff[2:4])[0] != 42:
        log.warning("OpenCV wrote a BigTIFF; saved without the ICC profile and alpha marking.")
        return tiff
    (first_ifd,) = struct.unpack(order + "I", tiff[4:8])
    (count,) = struct.unpack(order + "H", tiff[first_ifd : first_ifd + 2])
    entries = {
        struct.unpack(order + "H", entry[:2])[0]: entry
        for entry in (tiff[first_ifd + 2 + 12 * i : first_ifd + 14 + 12 * i] for i in range(count))
    }
    (next_ifd,) = struct.unpack(order + "I", tiff[first_ifd + 2 + 12 * count : first_ifd + 6 + 12 * count])
    out = bytearray(tiff)
    out += b"\0" * (len(out) % 2)
    if has_alpha:
        entries[_TIFF_EXTRA_SAMPLES_TAG] = struct.pack(order + "HHIHH", _TIFF_EXTRA_SAMPLES_TAG, 3, 1, 2, 0)
    if icc_profile is not None:
        entries[_TIFF_ICC_TAG] = struct.pack(order + "HHII", _TIFF_ICC_TAG, 7, len(icc_profile), len(out))
        out += icc_profile + b"\0" * (len(icc_profile) % 2)
    new_ifd = len(out)
    out += struct.pack(order + "H", len(entries)) + b"".join(entries[tag] for tag in sorted(entries))
    out += struct.pack(order + "I", next_ifd)
    out[4:8] = struct.pack(order + "I", new_ifd)
    return bytes(out)


def _write_atomically(target: Path, file_format: str, write: Callable[[BinaryIO], object]) -> None:
    """Write into a temporary file beside the target, fsync, then rename over the target.

    On any failure the temporary file is removed and an existing target is untouched.
    """
    folder = target.parent
    mode = _file_mode(target)
    try:
        handle, temporary_name = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".part")
    except OSError as error:
        raise _write_error(target, error) from error
    temporary = Path(temporary_name)
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise _write_error(target, error) from error
        if isinstance(error, (ValueError, KeyError, TypeError)):
            raise ImageError(f"Cannot save {target} as {file_format}: the encoder failed ({error}).") from error
        raise
    _sync_folder(folder)


def _write_error(target: Path, error: OSError) -> ImageError:
    unchanged = " The existing file was left unchanged." if target.exists() else ""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        reason = "the disk is full; free some space or save to another drive"
    elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason = f"there is no permission to write in {target.parent}; choose another folder"
    else:
        reason = error.strerror or str(error) or type(error).__name__
    return ImageError(f"Cannot save {target}: {reason}.{unchanged}")


def _file_mode(target: Path) -> int:
    """Keep an existing file's permissions; new files get the usual ones (0o666 minus umask)."""
    with contextlib.suppress(OSError):
        return target.stat().st_mode & 0o7777
    return 0o666 & ~_umask()


@cache
def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX only); a failure here loses nothing already written."""
    if os.name != "posix":
        return
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError as error:
        log.debug("could not open %s to sync it: %s", folder, error)
        return
    try:
        os.fsync(handle)
    except OSError as error:
        log.debug("could not sync %s: %s", folder, error)
    finally:
        os.close(handle)
