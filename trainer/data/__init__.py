"""Training data: puppet triplets, 3D-Shapes-ABC domain pairs, real MNIST, image folders and video frames.

Every loader returns numpy arrays (uint8 RGB, N x H x W x 3) with labels, and
takes its randomness from a caller's `np.random.Generator`, so a resumed run
draws the same data. Torch tensors (in [-1, 1], NCHW) come from
`trainer.data.tensors`, kept out of this namespace so that previewing data
never imports torch.
"""

from trainer.data.arrays import LabelledImages, fit_square, sample_batch
from trainer.data.folders import FolderImages, find_image_files, load_folder
from trainer.data.mnist import MNIST_SPLIT_SEED, mnist_split
from trainer.data.real_images import RealImages, load_real_images
from trainer.data.shapes_abc import FACTOR_NAMES, FACTORS, FIXED_CLASSES, SPLITS, ShapesABC, factor_values
from trainer.data.triplets import Triplet, TripletBatch, TripletSampler, TripletSpec
from trainer.data.video import VideoFrames, load_video

__all__ = [
    "FACTORS",
    "FACTOR_NAMES",
    "FIXED_CLASSES",
    "MNIST_SPLIT_SEED",
    "SPLITS",
    "FolderImages",
    "LabelledImages",
    "RealImages",
    "ShapesABC",
    "Triplet",
    "TripletBatch",
    "TripletSampler",
    "TripletSpec",
    "VideoFrames",
    "factor_values",
    "find_image_files",
    "fit_square",
    "load_folder",
    "load_real_images",
    "load_video",
    "mnist_split",
    "sample_batch",
]
