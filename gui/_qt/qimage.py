"""Photo pixels (numpy, 8 or 16 bit RGB) to QImage/QPixmap for display, and back for screenshots."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage, QPixmap


def to_display_rgb8(pixels: np.ndarray) -> np.ndarray:
    """Bring 8- or 16-bit RGB to contiguous 8-bit RGB; the screen shows 8 bits whatever the photo holds."""
    if pixels.dtype == np.uint16:
        pixels = ((pixels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif pixels.dtype != np.uint8:
        raise TypeError(f"display expects uint8 or uint16 pixels, got {pixels.dtype}")
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    return np.ascontiguousarray(pixels[:, :, :3])


def to_qimage(pixels: np.ndarray) -> QImage:
    """An owning QImage copy of (H, W, 3) pixels, so the numpy buffer may be freed afterwards."""
    rgb = to_display_rgb8(pixels)
    height, width = rgb.shape[:2]
    image = QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888)
    return image.copy()


def to_qpixmap(pixels: np.ndarray) -> QPixmap:
    """A pixmap of (H, W, 3) pixels for a QGraphicsPixmapItem or a QLabel."""
    return QPixmap.fromImage(to_qimage(pixels))


def qimage_to_rgb8(image: QImage) -> np.ndarray:
    """(H, W, 3) uint8 pixels of a QImage, e.g. a grabbed widget, for tests and checks."""
    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    height, width = rgb.height(), rgb.width()
    data = np.frombuffer(rgb.constBits(), dtype=np.uint8, count=rgb.sizeInBytes())
    return data.reshape(height, rgb.bytesPerLine())[:, : 3 * width].reshape(height, width, 3).copy()
