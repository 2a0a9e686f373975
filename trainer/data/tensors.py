"""Torch adapters for the numpy datasets: pixels to model tensors in [-1, 1] NCHW, and back.

The one normalisation every package declares: model input = pixels / 127.5 - 1.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from trainer.data.arrays import LabelledImages
from trainer.data.triplets import TripletBatch


def to_tensor(images: np.ndarray, device: torch.device | str | None = None) -> torch.Tensor:
    """uint8 RGB (N, H, W, 3) or (H, W, 3), grey (N, H, W) or (H, W) -> float32 (N, C, H, W) in [-1, 1].

    A 3-D array ending in 3 is taken as one RGB image, any other 3-D array as a grey batch.
    """
    if images.dtype != np.uint8:
        raise TypeError(f"to_tensor expects uint8 pixels, got {images.dtype}")
    if images.ndim == 2:
        images = images[None, ..., None]    # one grey image -> (1, H, W, 1)
    elif images.ndim == 3 and images.shape[-1] == 3:
        images = images[None]               # one RGB image -> (1, H, W, 3)
    elif images.ndim == 3:
        images = images[..., None]          # grey batch -> (N, H, W, 1)
    pixels = torch.from_numpy(np.require(images, requirements=("C", "W"))).to(device)  # copies read-only caches
    return pixels.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def to_pixels(tensor: torch.Tensor) -> np.ndarray:
    """float (N, C, H, W) in [-1, 1] -> uint8 (N, H, W, C), clipped and rounded; for previews and parity checks."""
    pixels = tensor.detach().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).cpu().numpy()


def triplet_tensors(batch: TripletBatch, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
    """A triplet batch as model tensors: "b1", "b2", "b3" (N, 3, H, W) and "values1..3" (N, C) float32."""
    tensors = {name: to_tensor(getattr(batch, name), device) for name in ("b1", "b2", "b3")}
    for name in ("values1", "values2", "values3"):
        tensors[name] = torch.as_tensor(getattr(batch, name), dtype=torch.float32, device=device)
    return tensors


class ImageDataset(Dataset):
    """Map-style Dataset over image arrays: item i = ((C, H, W) float in [-1, 1], (K,) int64 labels).

    Unlabelled sets (folders, video frames) give an empty (0,) label. Shuffle it
    with a seeded `torch.Generator` on the DataLoader so a resumed run sees the same order.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray | None = None) -> None:
        if labels is not None and len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} label rows")
        self.images = images
        self.labels = labels

    @classmethod
    def from_labelled(cls, data: LabelledImages) -> ImageDataset:
        return cls(data.images, data.labels)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = to_tensor(self.images[index])[0]
        if self.labels is None:
            return image, torch.zeros(0, dtype=torch.int64)
        return image, torch.tensor(self.labels[index], dtype=torch.int64).reshape(-1)
