"""Builders for real broken and awkward image files, written on the fly into a test folder."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def gradient(height: int = 48, width: int = 64) -> np.ndarray:
    """A smooth (H, W, 3) uint8 image: lossy codecs change it only a little."""
    rows = np.linspace(0, 255, height)[:, None]
    columns = np.linspace(0, 255, width)[None, :]
    return np.stack(
        [np.broadcast_to(rows, (height, width)), np.broadcast_to(columns, (height, width)), (rows + columns) / 2],
        axis=2,
    ).astype(np.uint8)


def noise_16_bit(height: int, width: int, channels: int, seed: int = 0) -> np.ndarray:
    """Random uint16 samples that include the extremes, so a lost low byte shows."""
    samples = np.random.default_rng(seed).integers(0, 65536, (height, width, channels), dtype=np.uint16)
    samples.flat[:4] = [0, 1, 256, 65535]
    return samples


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def zero_byte(folder: Path) -> Path:
    path = folder / "empty.png"
    path.write_bytes(b"")
    return path


def truncated_jpeg(folder: Path) -> Path:
    """Cut inside the pixel data: Pillow would fill the rest with grey if truncation were allowed."""
    path = folder / "truncated.jpg"
    Image.fromarray(gradient(256, 256)).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 3 // 4])
    return path


def png_with_bad_crc(folder: Path) -> Path:
    """A PNG whose IHDR checksum is wrong (byte 29 is the first CRC byte)."""
    path = folder / "bad_crc.png"
    Image.fromarray(gradient()).save(path)
    data = bytearray(path.read_bytes())
    data[29] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def png_with_damaged_pixels(folder: Path) -> Path:
    """A PNG whose compressed pixel stream has a flipped byte."""
    path = folder / "damaged.png"
    Image.fromarray(gradient()).save(path)
    data = bytearray(path.read_bytes())
    data[data.find(b"IDAT") + 9] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def truncated_png(folder: Path) -> Path:
    path = folder / "truncated.png"
    Image.fromarray(gradient()).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def truncated_16_bit_png(folder: Path) -> Path:
    path = folder / "truncated16.png"
    _, encoded = cv2.imencode(".png", noise_16_bit(40, 30, 3))
    path.write_bytes(encoded.tobytes()[: encoded.size // 2])
    return path


def text_named_jpg(folder: Path) -> Path:
    path = folder / "notes.jpg"
    path.write_text("This is a shopping list, not a photo.\n")
    return path


def icon_file(folder: Path) -> Path:
    """A real image in a format Pillow knows but Puppetry does not open."""
    path = folder / "icon.ico"
    Image.fromarray(gradient(32, 32)).save(path)
    return path


def float_tiff(folder: Path) -> Path:
    path = folder / "float.tif"
    Image.new("F", (4, 4), 0.5).save(path)
    return path


def directory(folder: Path) -> Path:
    path = folder / "holiday.jpg"
    path.mkdir()
    return path


def missing(folder: Path) -> Path:
    return folder / "never_saved.png"


def png_claiming_size(folder: Path, width: int, height: int) -> Path:
    """A tiny, well-formed PNG whose header claims `width`×`height` RGB pixels."""
    path = folder / f"claims_{width}x{height}.png"
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        PNG_SIGNATURE
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + png_chunk(b"IEND", b"")
    )
    return path


def grey_alpha_16_bit_png(folder: Path, grey: np.ndarray, alpha: np.ndarray) -> Path:
    """A 16-bit grey+alpha PNG (colour type 4), which neither Pillow nor OpenCV can write."""
    height, width = grey.shape
    interleaved = np.stack([grey, alpha], axis=2).astype(">u2")
    rows = b"".join(b"\0" + interleaved[y].tobytes() for y in range(height))
    path = folder / "grey_alpha16.png"
    path.write_bytes(
        PNG_SIGNATURE
        + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 4, 0, 0, 0))
        + png_chunk(b"IDAT", zlib.compress(rows))
        + png_chunk(b"IEND", b"")
    )
    return path
