"""PuppetGAN (Usman et al., ICCV 2019): carry one attribute of a posed puppet onto a real image.

One shared encoder E maps an image to a 128-d code split into an
`attribute_code` (first half) and a `rest_code` (second half); a real decoder
Dr and a synthetic decoder Ds turn codes back into images. Writing
G(x1, x2) = D(attribute_code(x2), rest_code(x1)), an edit is Gr(photo, puppet).
Training sees unlabelled real images `a` and puppet triplets (b1: attribute at
v, rest random; b2: rest at r, attribute random; b3: attribute v, rest r).
Every loss of the paper is a small named function below.

Six losses are added beyond the paper, each off by default (weight 0); the
shipped digit models use those BENCHMARKS.md lists. `swap_back_loss` makes the
rest code of an edited photo rebuild the photo, which a real decoder that
ignores its attribute code fails; `code_invariance_loss` uses the triplets' own
structure (b1, b3 share the attribute value, b2, b3 the rest) to keep the
puppet's digit and font out of the attribute code, so nothing of the puppet but
its pose reaches the photo; the "edit reads as posed" term (`w_edit_attribute_code`)
re-encodes the edit; for rotation and size only, `pose_equivariance_loss`
asks two edits of one photo to differ by nothing but the pose change, and
`photo_pose_invariance_loss` asks one digit shown at two poses to be edited
alike; and for size only, `edit_ink_height_loss` measures the edit's height
with the evaluation's estimator.
Likewise off by default, the real digits can be turned or resized at random
(`real_max_rotation`, `real_size_range`) so that the real domain holds every
pose the model serves, and both discriminators can judge real and generated
images alike shifted and partly blanked (`discriminator_augment`, DiffAugment),
which keeps a discriminator from memorising a small set of photos.

The real images are the packaged MNIST digits, scored as the run trains, or
the user's own image folder or video (`real`, see trainer.data.real_images),
which nothing can score: no labels, and no estimator for most attributes.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from engine.errors import TrainingError
from engine.puppets.base import Control
from engine.puppets.digit_measures import (
    GLYPH_HEIGHT_AT_UNIT_SIZE,
    INK_ROW_HIGH,
    INK_ROW_LOW,
    MEASURES,
)
from trainer.data.mnist import MNIST_SIZE
from trainer.data.real_images import MNIST, load_real_images
from trainer.data.tensors import to_pixels, to_tensor
from trainer.data.triplets import TripletBatch, TripletSampler, TripletSpec
from trainer.evaluate import (
    FULL_GRID_INPUTS,
    FULL_GRID_REFERENCES,
    EvaluationGrid,
    augment_digits,
    evaluation_grid,
    grid_references,
    preview_grid,
    scale_to_size,
    selection_score,
)
from trainer.export import Graph, export_package
from trainer.methods.base import Method, MethodConfig
from trainer.nets import ConvDecoder, ConvEncoder, Norm, PatchGAN

log = logging.getLogger(__name__)


GEOMETRIC_ATTRIBUTES = ("rotation", "size")  # attributes `pose_warp` can apply to an image


@dataclass(frozen=True)
class PuppetGANConfig(MethodConfig):
    """Everything that defines a PuppetGAN run; defaults are the paper's digit settings unless noted."""

    puppet: str = "digits"
    attribute: str = "rotation"
    attribute_range: tuple[float, float] | None = None  # None: the puppet control's own range
    real: str = MNIST  # "mnist" (packaged), or the path of the user's image folder or video: the photos to edit
    grayscale: bool = True  # one grey channel repeated to RGB (digits); False: colour decoders for colour photos
    # not in the paper: turn / resize each real training digit at random, so the real domain (and its discriminator)
    # holds the poses the model serves: MNIST digits lean -14 +- 27 degrees and fill a 20 px box on the longer side
    real_max_rotation: float = 0.0  # degrees, either way
    real_size_range: tuple[float, float] | None = None  # ink height drawn from this range (puppet size units)
    image_size: int = 32
    code_dim: int = 128  # attribute_code = first half, rest_code = second half
    width: int = 32  # departs: the paper's encoder starts at 64 channels; 32 is what 2 CPU cores train in 30 min
    discriminator_width: int = 32  # departs: paper 64; the discriminator would cost 6x the encoder at 32 x 32
    norm: Norm = "group"  # departs: paper BatchNorm, whose running statistics are shared by both domains
    batch_size: int = 32  # departs: paper 200; on CPU images/s is flat in batch size, so small batches step faster
    lr_generator: float = 2e-4
    lr_discriminator: float = 5e-5
    beta1: float = 0.5
    beta2: float = 0.999
    noise_std: float = 0.2  # epsilon added to intermediate translations (self-defense)
    w_reconstruction: float = 10.0
    w_disentanglement: float = 10.0
    w_cycle: float = 10.0
    w_attribute_cycle_synthetic: float = 5.0  # Gs(b2, Gr(a, b1) + eps) ~ b3
    w_attribute_cycle_real: float = 3.0  # Gr(a, Gs(b1, a) + eps) ~ a
    w_swap_back: float = 0.0  # not in the paper: Gr(Gr(a, b1) + eps, a) ~ a, the rest code of an edit must rebuild a
    w_code_invariance: float = 0.0  # not in the paper: attr(b1) ~ attr(b3) and rest(b2) ~ rest(b3), see below
    w_edit_attribute_code: float = 0.0  # not in the paper: attr(Gr(a, b1) + eps) ~ attr(b1), the edit reads as posed
    w_pose_equivariance: float = 0.0  # not in the paper: Gr(a, b1') ~ Gr(a, b1) turned/resized to b1' (see below)
    w_photo_pose_invariance: float = 0.0  # not in the paper: Gr(a', b1) ~ Gr(a, b1), a' = a at another real pose
    w_edit_ink_height: float = 0.0  # not in the paper, size only: the edit's ink height is b1's size (see below)
    w_adversarial: float = 1.0
    discriminator_augment: bool = False  # not in the paper: discriminators see real and fake shifted and cut out
    steps: int = 2500  # departs: paper ~300 epochs at batch 200; this is ~30 min on 2 CPU cores
    triplet_bank: int = 6000  # triplets rendered once at start (a digit render costs ~10 ms on CPU)
    fixed: tuple[tuple[str, float], ...] = ()  # puppet controls the editor holds fixed (others: puppet defaults)
    eval_inputs: int = 200  # real TEST digits in the quick `evaluate` grid (20 per class); MNIST runs only
    eval_references: int = 9  # puppet references spanning the served range in that grid
    export_grid_inputs: int = FULL_GRID_INPUTS  # TEST digits in the grid whose table the manifest carries

    def __post_init__(self) -> None:
        if self.real_max_rotation < 0:
            raise TrainingError(f"PuppetGAN setting real_max_rotation={self.real_max_rotation}: use degrees >= 0.")
        if self.real_size_range is not None and not 0 < self.real_size_range[0] <= self.real_size_range[1]:
            raise TrainingError(f"PuppetGAN setting real_size_range={list(self.real_size_range)}: "
                                "use [low, high] with 0 < low <= high (ink height in the puppet's size units).")
        if self.w_photo_pose_invariance and not (self.real_max_rotation or self.real_size_range):
            raise TrainingError(f"PuppetGAN setting w_photo_pose_invariance={self.w_photo_pose_invariance} needs "
                                "real digits at random poses: set real_max_rotation or real_size_range.")
        if self.w_edit_ink_height and self.attribute != "size":
            raise TrainingError(f"PuppetGAN setting w_edit_ink_height={self.w_edit_ink_height}: the ink height is "
                                f"the size attribute's reading; this run's attribute is {self.attribute!r}.")
        if self.w_pose_equivariance and self.attribute not in GEOMETRIC_ATTRIBUTES:
            raise TrainingError(f"PuppetGAN setting w_pose_equivariance={self.w_pose_equivariance}: only the "
                                f"geometric attributes {', '.join(GEOMETRIC_ATTRIBUTES)} have a known pose warp.")


# ---------------------------------------------------------------- losses

def reconstruction_loss(reconstruction: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Gr(a, a) ~ a and Gs(bi, bi) ~ bi: L1."""
    return F.l1_loss(reconstruction, image)


def disentanglement_loss(combined: torch.Tensor, b3: torch.Tensor) -> torch.Tensor:
    """Gs(b2, b1) ~ b3: the attribute from b1 and the rest from b2 make the rendered combination."""
    return F.l1_loss(combined, b3)


def cycle_loss(round_trip: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """a -> Gs(a, a) + eps -> Gr ~ a, and bi -> Gr(bi, bi) + eps -> Gs ~ bi: L1."""
    return F.l1_loss(round_trip, image)


def attribute_cycle_loss(round_trip: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Gs(b2, Gr(a, b1) + eps) ~ b3 (the edit carries b1's attribute) and Gr(a, Gs(b1, a) + eps) ~ a."""
    return F.l1_loss(round_trip, target)


def swap_back_loss(rebuilt: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Gr(Gr(a, b1) + eps, a) ~ a: the rest code of an edited photo plus the photo's own attribute rebuild it.

    Not in the paper. A real decoder that ignores its attribute code, or a
    rest code that still carries the photo's old attribute, both fail it.
    """
    return F.l1_loss(rebuilt, image)


def code_invariance_loss(code: torch.Tensor, same_code: torch.Tensor) -> torch.Tensor:
    """Codes that should agree (same AoI value, or same rest) are closer than random pairs, scale-free.

    Not in the paper. attribute_code(b1) ~ attribute_code(b3) (both have AoI = v) keeps the
    puppet's digit and font out of the attribute code; rest_code(b2) ~ rest_code(b3) keeps the
    attribute out of the rest code. Measured as the matched-pair L1 distance over the distance to
    a shuffled partner, so shrinking every code cannot fake it.
    """
    matched = (code - same_code).abs().mean()
    shuffled = (code - same_code.roll(1, dims=0)).abs().mean()
    return matched / (shuffled + 1e-6)


def pose_warp(images: torch.Tensor, attribute: str, pose: torch.Tensor, new_pose: torch.Tensor) -> torch.Tensor:
    """Move each light-on-dark image in [-1, 1] from `pose` to `new_pose` about its ink centroid.

    Rotation poses are degrees counter-clockwise on screen (the digits puppet's
    convention); size poses are ink heights, so the image is scaled by their ratio.
    Differentiable in `images`; the centroid is held constant.
    """
    ink = (images + 1.0) / 2.0
    n, _, size, _ = images.shape
    axis = torch.linspace(-1.0, 1.0, size, device=images.device, dtype=images.dtype)
    weight = ink[:, :1].detach()
    mass = weight.sum(dim=(2, 3)).clamp_min(1e-6)
    centre = torch.cat([(weight.sum(2) * axis).sum(-1) / mass, (weight.sum(3) * axis).sum(-1) / mass], 1)  # (B, 2)
    if attribute == "rotation":
        angle = torch.deg2rad(new_pose - pose).to(images.dtype)
        scale = torch.ones_like(angle)
    elif attribute == "size":
        angle = torch.zeros_like(pose, dtype=images.dtype)
        scale = (new_pose / pose).to(images.dtype)
    else:
        raise TrainingError(f"pose_warp: {attribute!r} is not one of {GEOMETRIC_ATTRIBUTES}.")
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    # affine_grid maps each output point p to the input point c + M (p - c); M undoes the turn and the scaling
    # (y runs down the screen, so a counter-clockwise turn on screen is clockwise in these coordinates)
    matrix = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)  # (B, 2, 2)
    shift = centre - (matrix @ centre[:, :, None])[:, :, 0]
    grid = F.affine_grid(torch.cat([matrix, shift[:, :, None]], 2), [n, images.shape[1], size, size],
                         align_corners=True)
    return F.grid_sample(ink, grid, mode="bilinear", padding_mode="zeros", align_corners=True) * 2.0 - 1.0


def pose_equivariance_loss(edit_at_other_pose: torch.Tensor, edit_moved_there: torch.Tensor) -> torch.Tensor:
    """Gr(a, b1') ~ pose_warp(Gr(a, b1)): two edits of one photo differ only by the change of pose.

    Not in the paper, and only for geometric attributes. The other losses never
    compare two edits of the same photo, so each pose may redraw the digit a
    little differently (V_rest); this ties every pose to one drawing.
    """
    return F.l1_loss(edit_at_other_pose, edit_moved_there)


def photo_pose_invariance_loss(edit_of_reposed_photo: torch.Tensor, edit: torch.Tensor) -> torch.Tensor:
    """Gr(a', b1) ~ Gr(a, b1), where a' is the same real digit turned or resized at random.

    Not in the paper. The photo's own pose must not reach the edit (r_rest); this
    asks it of the output itself, not of the rest code a decoder may still read it from.
    """
    return F.l1_loss(edit_of_reposed_photo, edit)


def ink_height(images: torch.Tensor) -> torch.Tensor:
    """(B, C, S, S) light-on-dark images in [-1, 1] -> (B,) ink heights in the digits puppet's size units.

    `engine.puppets.digit_measures.measure_size` in torch, differentiable almost everywhere: the
    rows holding ink, each weighted by its brightest pixel ramped from INK_ROW_LOW to
    INK_ROW_HIGH, over GLYPH_HEIGHT_AT_UNIT_SIZE x S.
    """
    ink = (images.mean(dim=1) + 1.0) / 2.0  # (B, S, S) in [0, 1]
    row_ink = ((ink.amax(dim=2) - INK_ROW_LOW) / (INK_ROW_HIGH - INK_ROW_LOW)).clamp(0.0, 1.0)  # (B, S)
    return row_ink.sum(dim=1) / (GLYPH_HEIGHT_AT_UNIT_SIZE * images.shape[-1])


def edit_ink_height_loss(edit: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """|ink_height(Gr(a, b1)) - size(b1)|: the edit is as tall as the puppet is posed.

    Not in the paper, and only for size, whose puppet control is defined as the ink
    height. Every other loss reads the edit's size through the encoder, which learned
    size from typed digits of one shape; a wide handwritten digit then came out short
    (size-v10 kept 26% of the photo's own height, r_rest 0.14). This is the
    evaluation's own estimator, so BENCHMARKS checks such a model with another.
    """
    return (ink_height(edit) - size.to(edit.dtype)).abs().mean()


def discriminator_view(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """DiffAugment (Zhao et al., NeurIPS 2020): each light-on-dark image shifted by up to 1/8 of its side and a
    square of half its side blanked, differentiably, so a discriminator cannot memorise 4,000 real digits."""
    n, _, size, _ = images.shape
    ink = (images + 1.0) / 2.0
    shift = (torch.rand(n, 2, generator=generator) * 2.0 - 1.0) * 0.25  # affine_grid units: 2 = the whole side
    matrix = torch.cat([torch.eye(2).expand(n, 2, 2), shift[:, :, None]], 2).to(images.device, images.dtype)
    grid = F.affine_grid(matrix, list(images.shape), align_corners=False)
    ink = F.grid_sample(ink, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    side = size // 2
    corner = torch.randint(0, size - side + 1, (n, 2), generator=generator).to(images.device)
    axis = torch.arange(size, device=images.device)
    rows = (axis[None] >= corner[:, :1]) & (axis[None] < corner[:, :1] + side)
    cols = (axis[None] >= corner[:, 1:]) & (axis[None] < corner[:, 1:] + side)
    keep = ~(rows[:, :, None] & cols[:, None, :])
    return (ink * keep[:, None].to(ink.dtype)) * 2.0 - 1.0


def discriminator_input(config: PuppetGANConfig, generator: torch.Generator) -> Callable[[torch.Tensor], torch.Tensor]:
    """How both discriminators see every image of one step: through `discriminator_view`, or as it is."""
    if config.discriminator_augment:
        return lambda images: discriminator_view(images, generator)
    return lambda images: images


def lsgan_generator_loss(scores: torch.Tensor) -> torch.Tensor:
    """LSGAN: generated images should score 1."""
    return ((scores - 1.0) ** 2).mean()


def lsgan_discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """LSGAN: real images score 1, generated ones 0."""
    return 0.5 * (((real_scores - 1.0) ** 2).mean() + (fake_scores**2).mean())


# ---------------------------------------------------------------- networks

class PuppetGANNets(nn.Module):
    """E, Dr, Ds and the two per-domain discriminators."""

    def __init__(self, config: PuppetGANConfig) -> None:
        super().__init__()
        size, width, norm = config.image_size, config.width, config.norm
        self.encoder = ConvEncoder(3, config.code_dim, width, size, norm=norm)
        # grey: one output channel, repeated to RGB; for digits colour would only carry noise
        channels = 1 if config.grayscale else 3
        self.decoder_real = ConvDecoder(channels, config.code_dim, width, size, norm=norm)
        self.decoder_synthetic = ConvDecoder(channels, config.code_dim, width, size, norm=norm)
        self.discriminator_real = PatchGAN(3, config.discriminator_width, norm=norm)
        self.discriminator_synthetic = PatchGAN(3, config.discriminator_width, norm=norm)
        self.half = config.code_dim // 2

    def encode(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, S, S) -> attribute_code (B, half), rest_code (B, half)."""
        code = self.encoder(image)
        return code[:, : self.half], code[:, self.half:]

    def decode_real(self, code: torch.Tensor) -> torch.Tensor:
        """Dr: (B, 128) code -> (B, 3, S, S) image in [-1, 1]."""
        return self.decoder_real(code).expand(-1, 3, -1, -1)

    def decode_synthetic(self, code: torch.Tensor) -> torch.Tensor:
        """Ds: (B, 128) code -> (B, 3, S, S) image in [-1, 1]."""
        return self.decoder_synthetic(code).expand(-1, 3, -1, -1)


class EncoderGraph(nn.Module):
    """The exported "encoder": image -> (attribute_code, rest_code)."""

    def __init__(self, nets: PuppetGANNets) -> None:
        super().__init__()
        self.nets = nets

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.nets.encode(image)


class DecoderGraph(nn.Module):
    """The exported "decoder_real": (attribute_code, rest_code) -> image."""

    def __init__(self, nets: PuppetGANNets) -> None:
        super().__init__()
        self.nets = nets

    def forward(self, attribute_code: torch.Tensor, rest_code: torch.Tensor) -> torch.Tensor:
        return self.nets.decode_real(torch.cat([attribute_code, rest_code], dim=1))


def edit(nets: PuppetGANNets, photo: torch.Tensor, puppet: torch.Tensor) -> torch.Tensor:
    """Gr(photo, puppet): the rest from the photo, the attribute from the puppet; pixels in [-1, 1]."""
    attribute, _ = nets.encode(puppet)
    _, rest = nets.encode(photo)
    return nets.decode_real(torch.cat([attribute, rest], dim=1))


# ---------------------------------------------------------------- one training step

def generator_losses(nets: PuppetGANNets, config: PuppetGANConfig, batch: dict[str, torch.Tensor],
                     generator: torch.Generator) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """All generator-side losses of one batch, and the generated images the discriminators judge.

    Returns ({name: loss}, {"real": fakes for Dr's domain, "synthetic": fakes for Ds's domain}).
    """
    a, b1, b2, b3 = batch["a"], batch["b1"], batch["b2"], batch["b3"]
    n = a.shape[0]

    def noisy(image: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(image.shape, generator=generator).to(image.device, image.dtype)  # drawn on CPU
        return image + config.noise_std * noise

    reposed = [batch["a_reposed"]] if config.w_photo_pose_invariance else []
    attr, rest = nets.encode(torch.cat([a, b1, b2, b3, *reposed]))  # (4B or 5B, 64) each
    attr_a, attr_b1 = attr[:n], attr[n:2 * n]
    rest_a, rest_b1, rest_b2 = rest[:n], rest[n:2 * n], rest[2 * n:3 * n]
    attr_b, rest_b = attr[n:4 * n], rest[n:4 * n]  # b1, b2, b3 stacked, (3B, 64)
    synthetic = torch.cat([b1, b2, b3])
    cat = torch.cat

    # one Ds call: reconstructions of b1..b3, Gs(b2, b1), a in the synthetic domain Gs(a, a), and b~ = Gs(b1, a)
    synthetic_out = nets.decode_synthetic(cat([
        cat([attr_b, rest_b], 1), cat([attr_b1, rest_b2], 1), cat([attr_a, rest_a], 1), cat([attr_a, rest_b1], 1)]))
    reconstructed_b = synthetic_out[: 3 * n]
    combined = synthetic_out[3 * n: 4 * n]
    a_as_synthetic = synthetic_out[4 * n: 5 * n]
    b1_posed_as_a = synthetic_out[5 * n:]
    # one Dr call: Gr(a, a), b1 in the real domain Gr(b1, b1), and the edit a~ = Gr(a, b1).
    # The synthetic cycle runs on b1 only: b1, b2 and b3 are draws of one distribution, so the
    # expectation is the same at a third of the cost.
    real_in = {"reconstructed_a": cat([attr_a, rest_a], 1), "b1_as_real": cat([attr_b1, rest_b1], 1),
               "edited_a": cat([attr_b1, rest_a], 1)}
    if config.w_pose_equivariance:  # the same photos posed as their neighbours' b1
        real_in["edited_at_other_pose"] = cat([attr_b1.roll(1, 0), rest_a], 1)
    if config.w_photo_pose_invariance:  # the same digits, turned or resized, posed as b1
        real_in["reposed_edited"] = cat([attr_b1, rest[4 * n:]], 1)
    real_out = dict(zip(real_in, nets.decode_real(cat(list(real_in.values()))).split(n)))
    reconstructed_a, b1_as_real, edited_a = real_out["reconstructed_a"], real_out["b1_as_real"], real_out["edited_a"]

    # second pass through E, on noisy translations, for every cycle
    attr2, rest2 = nets.encode(noisy(cat([a_as_synthetic, b1_as_real, edited_a, b1_posed_as_a])))
    attr_sa, rest_sa = attr2[:n], rest2[:n]
    attr_rb, rest_rb = attr2[n:2 * n], rest2[n:2 * n]
    attr_edit, rest_edit = attr2[2 * n:3 * n], rest2[2 * n:3 * n]
    attr_posed = attr2[3 * n:]

    real_parts = [cat([attr_sa, rest_sa], 1), cat([attr_posed, rest_a], 1)]
    if config.w_swap_back:
        real_parts.append(cat([attr_a, rest_edit], 1))
    real_back = nets.decode_real(cat(real_parts))
    synthetic_back = nets.decode_synthetic(cat([cat([attr_rb, rest_rb], 1), cat([attr_edit, rest_b2], 1)]))

    losses = {
        "reconstruction": reconstruction_loss(reconstructed_a, a) + reconstruction_loss(reconstructed_b, synthetic),
        "disentanglement": disentanglement_loss(combined, b3),
        "cycle": cycle_loss(real_back[:n], a) + cycle_loss(synthetic_back[:n], b1),
        "attribute_cycle_synthetic": attribute_cycle_loss(synthetic_back[n:], b3),
        "attribute_cycle_real": attribute_cycle_loss(real_back[n:2 * n], a),
    }
    if config.w_swap_back:
        losses["swap_back"] = swap_back_loss(real_back[2 * n:], a)
    if config.w_code_invariance:
        attr_b3, rest_b3 = attr[3 * n:4 * n], rest[3 * n:4 * n]
        losses["code_invariance"] = code_invariance_loss(attr_b1, attr_b3) + code_invariance_loss(rest_b2, rest_b3)
    if config.w_pose_equivariance:
        pose = batch["pose_b1"]
        losses["pose_equivariance"] = pose_equivariance_loss(
            real_out["edited_at_other_pose"], pose_warp(edited_a, config.attribute, pose, pose.roll(1, 0)))
    if config.w_photo_pose_invariance:
        losses["photo_pose_invariance"] = photo_pose_invariance_loss(real_out["reposed_edited"], edited_a)
    if config.w_edit_ink_height:
        losses["edit_ink_height"] = edit_ink_height_loss(edited_a, batch["pose_b1"])
    if config.w_edit_attribute_code:
        # the edited photo must encode to the puppet's attribute code: a real decoder that
        # lets the photo's own attribute (from its rest code) through fails this at once
        losses["edit_attribute_code"] = code_invariance_loss(attr_edit, attr_b1)
    fakes = {"real": cat([b1_as_real, edited_a]), "synthetic": cat([a_as_synthetic, b1_posed_as_a])}
    view = discriminator_input(config, generator)
    losses["adversarial"] = (lsgan_generator_loss(nets.discriminator_real(view(fakes["real"])))
                             + lsgan_generator_loss(nets.discriminator_synthetic(view(fakes["synthetic"]))))
    return losses, fakes


def weighted_total(losses: dict[str, torch.Tensor], config: PuppetGANConfig) -> torch.Tensor:
    """The generator objective: each named loss times its configured weight."""
    weights = {
        "reconstruction": config.w_reconstruction,
        "disentanglement": config.w_disentanglement,
        "cycle": config.w_cycle,
        "attribute_cycle_synthetic": config.w_attribute_cycle_synthetic,
        "attribute_cycle_real": config.w_attribute_cycle_real,
        "swap_back": config.w_swap_back,
        "code_invariance": config.w_code_invariance,
        "edit_attribute_code": config.w_edit_attribute_code,
        "pose_equivariance": config.w_pose_equivariance,
        "photo_pose_invariance": config.w_photo_pose_invariance,
        "edit_ink_height": config.w_edit_ink_height,
        "adversarial": config.w_adversarial,
    }
    return sum(weights[name] * value for name, value in losses.items())


def discriminator_losses(
    nets: PuppetGANNets, batch: dict[str, torch.Tensor], fakes: dict[str, torch.Tensor],
    view: Callable[[torch.Tensor], torch.Tensor] = lambda images: images,
) -> dict[str, torch.Tensor]:
    """LSGAN losses of both per-domain discriminators on detached fakes, each image seen through `view`."""
    return {
        "discriminator_real": lsgan_discriminator_loss(
            nets.discriminator_real(view(batch["a"])), nets.discriminator_real(view(fakes["real"].detach()))),
        "discriminator_synthetic": lsgan_discriminator_loss(
            nets.discriminator_synthetic(view(batch["b3"])),
            nets.discriminator_synthetic(view(fakes["synthetic"].detach()))),
    }


# ---------------------------------------------------------------- the method

class PuppetGAN(Method):
    """PuppetGAN on a puppet and real photos (MNIST, or the user's); exports "encoder" and "decoder_real"."""

    name = "puppetgan"
    config_class = PuppetGANConfig

    def __init__(self, config: PuppetGANConfig, device: torch.device, seed: int) -> None:
        super().__init__(config, device, seed)
        self.sampler = TripletSampler(self.triplet_spec())
        self.served = self.served_control()
        self.nets = PuppetGANNets(config).to(device)
        generator_parameters = [p for m in (self.nets.encoder, self.nets.decoder_real, self.nets.decoder_synthetic)
                                for p in m.parameters()]
        discriminator_parameters = [p for m in (self.nets.discriminator_real, self.nets.discriminator_synthetic)
                                    for p in m.parameters()]
        betas = (config.beta1, config.beta2)
        self._optimizers = {
            "generator": torch.optim.Adam(generator_parameters, lr=config.lr_generator, betas=betas),
            "discriminator": torch.optim.Adam(discriminator_parameters, lr=config.lr_discriminator, betas=betas),
        }
        self.real_images = load_real_images(config.real, config.image_size)
        self.real = self.in_domain(self.real_images.images)  # (N, S, S, 3) uint8
        self.rng = np.random.default_rng(seed)  # batch indices; carried in state() for exact resume
        log.info("rendering %d %s triplets for attribute %r", config.triplet_bank, config.puppet, config.attribute)
        self.bank: TripletBatch = self.sampler.batch(config.triplet_bank, np.random.default_rng([seed, 1]))
        self._evaluation_grid: EvaluationGrid | None = None
        self._preview_references: np.ndarray | None = None

    # ------------------------------------------------------------ data

    def triplet_spec(self) -> TripletSpec:
        """The triplets this run trains on: AoI over the served range, the editor's fixed controls held fixed."""
        config = self.config
        ranges = {config.attribute: tuple(config.attribute_range)} if config.attribute_range else {}
        return TripletSpec(puppet=config.puppet, attributes=(config.attribute,), size=config.image_size,
                           ranges=ranges, fixed=dict(config.fixed))

    def served_control(self) -> Control:
        """The AoI control as the package serves it: the puppet's control limited to the trained range."""
        control = self.sampler.puppet.control(self.config.attribute)
        low, high = self.config.attribute_range or (control.minimum, control.maximum)
        return dataclasses.replace(control, minimum=float(low), maximum=float(high),
                                   default=float(min(max(control.default, low), high)))

    def draw_batch(self) -> dict[str, torch.Tensor]:
        """B real training digits and B bank triplets, as (B, 3, S, S) tensors in [-1, 1] on the device,
        "pose_b1", b1's attribute value (B,), and with the photo-pose loss "a_reposed", the digits of "a" at
        other random poses."""
        config = self.config
        n = config.batch_size
        triplets = self.bank.take(self.rng.integers(0, len(self.bank), size=n))
        digits = self.real[self.rng.integers(0, len(self.real), size=n)]
        images = {"a": self.real_pose(digits), **{name: self.in_domain(getattr(triplets, name))
                                                   for name in ("b1", "b2", "b3")}}
        if config.w_photo_pose_invariance:
            images["a_reposed"] = self.real_pose(digits)
        batch = {name: to_tensor(pixels, self.device) for name, pixels in images.items()}
        pose = triplets.values1[:, triplets.control_names.index(config.attribute)]
        batch["pose_b1"] = torch.from_numpy(pose).float().to(self.device)  # b1's AoI value
        return batch

    def in_domain(self, images: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 as the nets see them: grey repeated to RGB for a grey model, else unchanged."""
        if not self.config.grayscale:
            return images
        return np.repeat(np.rint(images.mean(axis=-1, keepdims=True)).astype(np.uint8), 3, axis=-1)

    def real_pose(self, digits: np.ndarray) -> np.ndarray:
        """Real digits turned and/or resized at random, as `real_max_rotation` and `real_size_range` ask."""
        config = self.config
        if config.real_max_rotation:
            digits = augment_digits(digits, self.rng, max_rotation=config.real_max_rotation, scale_range=(1.0, 1.0),
                                    max_shift=0.0)
        if config.real_size_range is not None:
            digits = scale_to_size(digits, self.rng.uniform(*config.real_size_range, size=len(digits)))
        return digits

    # ------------------------------------------------------------ Method interface

    def modules(self) -> dict[str, nn.Module]:
        nets = self.nets
        return {"encoder": nets.encoder, "decoder_real": nets.decoder_real, "decoder_synthetic": nets.decoder_synthetic,
                "discriminator_real": nets.discriminator_real, "discriminator_synthetic": nets.discriminator_synthetic}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self._optimizers

    def train_step(self, step: int, generator: torch.Generator) -> dict[str, float]:
        batch = self.draw_batch()
        self.nets.train()
        losses, fakes = generator_losses(self.nets, self.config, batch, generator)
        self._optimizers["generator"].zero_grad(set_to_none=True)
        weighted_total(losses, self.config).backward()
        self._optimizers["generator"].step()
        discriminator = discriminator_losses(self.nets, batch, fakes, discriminator_input(self.config, generator))
        self._optimizers["discriminator"].zero_grad(set_to_none=True)
        sum(discriminator.values()).backward()
        self._optimizers["discriminator"].step()
        return {name: float(value.detach()) for name, value in {**losses, **discriminator}.items()}

    def edit(self, inputs: np.ndarray, references: np.ndarray) -> np.ndarray:
        """Gr(input, reference) for every pair, in eval mode: (N, S, S, 3) x (R, S, S, 3) -> (R, N, S, S, 3) uint8."""
        was_training = self.nets.training
        self.nets.eval()
        with torch.no_grad():
            _, rest = self.nets.encode(to_tensor(self.in_domain(inputs), self.device))  # (N, 64)
            attribute, _ = self.nets.encode(to_tensor(self.in_domain(references), self.device))  # (R, 64)
            outputs = np.stack([
                to_pixels(self.nets.decode_real(torch.cat([attribute[r:r + 1].expand(len(rest), -1), rest], 1)))
                for r in range(len(attribute))])
        self.nets.train(was_training)
        return outputs

    @property
    def unmeasured_because(self) -> str | None:
        """Why the evaluation grid cannot score this run, or None where it can: it needs MNIST photos at the
        classifier's 32 x 32 and an attribute an estimator reads from pixels."""
        config = self.config
        if config.real != MNIST:
            return "trained on the user's own photos, which have no digit labels to score"
        if config.attribute not in MEASURES:
            return f"no estimator reads {config.attribute!r} from pixels"
        if config.image_size != MNIST_SIZE:
            return f"the digit classifier reads {MNIST_SIZE} x {MNIST_SIZE} images, this model {config.image_size}"
        return None

    @property
    def measurable(self) -> bool:
        return self.unmeasured_because is None

    def grid(self) -> EvaluationGrid:
        """The fixed quick-evaluation grid (built once): TEST digits x references over the served range."""
        if self._evaluation_grid is None:
            self._evaluation_grid = evaluation_grid(self.sampler.puppet, self.served, dict(self.config.fixed),
                                                    self.config.eval_inputs, self.config.eval_references)
        return self._evaluation_grid

    def preview(self) -> np.ndarray:
        """Eight real photos (TEST digits, or spread through the user's photos) edited at poses over the range."""
        if self.measurable:
            grid = self.grid()
            inputs, references = grid.inputs[:: max(1, len(grid.inputs) // 8)][:8], grid.references
        else:
            if self._preview_references is None:
                self._preview_references = grid_references(self.sampler.puppet, self.served, dict(self.config.fixed),
                                                           self.config.eval_references, self.config.image_size)[0]
            inputs, references = self.real_images.spread(8), self._preview_references
        return preview_grid(self.in_domain(inputs), self.in_domain(references), self.edit(inputs, references))

    def evaluate(self) -> dict[str, float] | None:
        """The quick grid's metrics; None where nothing measures them (the user's photos, or an attribute
        like a face's smile that no estimator reads from pixels)."""
        if not self.measurable:
            return None
        grid = self.grid()
        row = grid.metrics("puppetgan", self.edit(grid.inputs, grid.references))
        return {"Acc": row.Acc, "r_attr": row.r_attr, "r_rest": row.r_rest, "V_rest": row.V_rest,
                "score": selection_score(row)}

    def measured_metrics(self) -> dict[str, Any]:
        """The manifest's "metrics": the full grid's table, or a note saying why there is none."""
        config = self.config
        if not self.measurable:
            return {"table": [], "notes": f"Not measured: {self.unmeasured_because}. "
                                          "Judge the edits in the training previews."}
        grid = evaluation_grid(self.sampler.puppet, self.served, dict(config.fixed), config.export_grid_inputs,
                               FULL_GRID_REFERENCES, classifier=self.grid().classifier)
        row = grid.metrics("puppetgan", self.edit(grid.inputs, grid.references))
        return {"table": [row.as_dict()], "notes": grid.notes()}

    def export(self, out_dir: Path, provenance: Mapping[str, Any]) -> Path:
        config = self.config
        example = torch.zeros(1, 3, config.image_size, config.image_size)
        half = config.code_dim // 2
        codes = (torch.zeros(1, half), torch.zeros(1, half))
        manifest = {
            "name": f"{config.puppet}-{config.attribute}",
            "title": f"{config.puppet.capitalize()} — {config.attribute}",
            "method": self.name,
            "editor": "puppet",
            "image_size": config.image_size,
            "channels": 3,
            "normalisation": {"range": [-1.0, 1.0], "grayscale": config.grayscale,
                              "polarity": self.real_images.polarity},
            "puppet": {"kind": config.puppet, "controls": [self.served.to_dict()], "fixed": dict(config.fixed)},
            "provenance": {**provenance, "data": (
                f"real: {self.real_images.description}; synthetic: {config.triplet_bank} "
                f"{config.puppet} puppet triplets, {config.attribute} in "
                f"{self.served.minimum:g}..{self.served.maximum:g}"), "config": dataclasses.asdict(config)},
            "metrics": self.measured_metrics(),
        }
        cpu_nets = self.nets
        graphs = {
            "encoder": Graph(EncoderGraph(cpu_nets), (example,), ("image",), ("attribute_code", "rest_code")),
            "decoder_real": Graph(DecoderGraph(cpu_nets), codes, ("attribute_code", "rest_code"),
                                  ("image",)),
        }
        return export_package(out_dir, manifest, graphs)

    def state(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state(self, state: Mapping[str, Any]) -> None:
        if "rng" in state:
            self.rng.bit_generator.state = dict(state["rng"])
