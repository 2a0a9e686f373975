"""Shared network blocks: conv encoder, conv decoder and PatchGAN discriminator.

Every block takes its width, image size and normalisation as arguments so one
method can try BatchNorm as published or a per-image norm (GroupNorm) whose
behaviour is the same in training and in the one-image-at-a-time editor.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

Norm = Literal["batch", "group", "instance", "none"]


def norm_layer(kind: Norm, channels: int) -> nn.Module:
    """One normalisation layer by name; GroupNorm uses up to 8 groups of >= 4 channels."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(max(1, min(8, channels // 4)), channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown normalisation {kind!r}: use batch, group, instance or none")


def _levels(image_size: int, bottom: int) -> int:
    """Number of stride-2 stages that bring `image_size` down to `bottom`."""
    levels = round(math.log2(image_size / bottom))
    if bottom * 2**levels != image_size or levels < 1:
        raise ValueError(f"image size {image_size} is not {bottom} times a power of two")
    return levels


class ConvEncoder(nn.Module):
    """Image -> code: [conv 4x4 stride 2, norm (not on the first), LeakyReLU] x n, then dense.

    Channels double per stage from `width` up to `8 * width`; the spatial map is
    brought down to `bottom` x `bottom` before the dense layer.
    """

    def __init__(self, in_channels: int = 3, code_dim: int = 128, width: int = 32,
                 image_size: int = 32, bottom: int = 2, norm: Norm = "group") -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for level in range(_levels(image_size, bottom)):
            out = width * 2 ** min(level, 3)
            layers.append(nn.Conv2d(channels, out, 4, stride=2, padding=1))
            if level > 0:
                layers.append(norm_layer(norm, out))
            layers.append(nn.LeakyReLU(0.2))
            channels = out
        self.features = nn.Sequential(*layers)
        self.dense = nn.Linear(channels * bottom * bottom, code_dim)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.dense(self.features(image).flatten(1))  # (B, code_dim)


class ConvDecoder(nn.Module):
    """Code -> image: dense to a `bottom` x `bottom` map, [conv-transpose 4x4 stride 2, norm, ReLU] x n, tanh."""

    def __init__(self, out_channels: int = 3, code_dim: int = 128, width: int = 32,
                 image_size: int = 32, bottom: int = 2, norm: Norm = "group") -> None:
        super().__init__()
        levels = _levels(image_size, bottom)
        self.bottom = bottom
        self.top_channels = width * 2 ** min(levels - 1, 3)
        self.dense = nn.Linear(code_dim, self.top_channels * bottom * bottom)
        layers: list[nn.Module] = [norm_layer(norm, self.top_channels), nn.ReLU()]
        channels = self.top_channels
        for level in reversed(range(levels - 1)):
            out = width * 2 ** min(level, 3)
            layers += [nn.ConvTranspose2d(channels, out, 4, stride=2, padding=1), norm_layer(norm, out), nn.ReLU()]
            channels = out
        layers += [nn.ConvTranspose2d(channels, out_channels, 4, stride=2, padding=1), nn.Tanh()]
        self.features = nn.Sequential(*layers)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        spatial = self.dense(code).view(-1, self.top_channels, self.bottom, self.bottom)
        return self.features(spatial)  # (B, out_channels, image_size, image_size)


class PatchGAN(nn.Module):
    """PatchGAN discriminator: width, 2w, 4w at stride 2, 8w at stride 1, then a 1-channel score map."""

    def __init__(self, in_channels: int = 3, width: int = 64, norm: Norm = "group") -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, width * 2, 4, stride=2, padding=1), norm_layer(norm, width * 2), nn.LeakyReLU(0.2),
            nn.Conv2d(width * 2, width * 4, 4, stride=2, padding=1), norm_layer(norm, width * 4), nn.LeakyReLU(0.2),
            nn.Conv2d(width * 4, width * 8, 4, stride=1, padding=1), norm_layer(norm, width * 8), nn.LeakyReLU(0.2),
            nn.Conv2d(width * 8, 1, 4, stride=1, padding=1),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.features(image)  # (B, 1, h, w) LSGAN scores


class ResidualBlock(nn.Module):
    """x + [reflect-pad, conv 3x3, norm, ReLU, reflect-pad, conv 3x3, norm](x), as in CycleGAN."""

    def __init__(self, channels: int, norm: Norm = "instance") -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), norm_layer(norm, channels), nn.ReLU(),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), norm_layer(norm, channels),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features + self.body(features)


class ResNetGenerator(nn.Module):
    """CycleGAN's ResNet generator without its output activation (callers pick tanh or linear per channel).

    7x7 conv `width`, `n_downsampling` stride-2 convs doubling channels, `n_blocks`
    residual blocks, as many transposed convs back up, 7x7 conv to `out_channels`.
    Published sizes: width 64, 2 downsamplings, 9 blocks (6 below 256 px).
    With ``input_skip`` the input is also fed to the last conv (pix2pix U-Net's outermost skip), so
    the copy a translation mostly is can be learned in a few hundred steps instead of being squeezed
    through the bottleneck; without it, small CPU-sized models collapse before they learn the copy.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, width: int = 64,
                 n_downsampling: int = 2, n_blocks: int = 9, norm: Norm = "instance",
                 input_skip: bool = False) -> None:
        super().__init__()
        self.input_skip = input_skip
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, width, 7),
                                   norm_layer(norm, width), nn.ReLU()]
        channels = width
        for _ in range(n_downsampling):
            layers += [nn.Conv2d(channels, channels * 2, 3, stride=2, padding=1), norm_layer(norm, channels * 2), nn.ReLU()]
            channels *= 2
        layers += [ResidualBlock(channels, norm) for _ in range(n_blocks)]
        for _ in range(n_downsampling):
            layers += [nn.ConvTranspose2d(channels, channels // 2, 3, stride=2, padding=1, output_padding=1),
                       norm_layer(norm, channels // 2), nn.ReLU()]
            channels //= 2
        self.features = nn.Sequential(*layers)
        head_in = channels + (in_channels if input_skip else 0)
        self.head = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(head_in, out_channels, 7))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        features = self.features(image)
        if self.input_skip:
            features = torch.cat([features, image], dim=1)
        return self.head(features)  # (B, out_channels, H, W), no activation
