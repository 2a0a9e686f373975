"""RIFT: guided many-to-many translation through a capacity-restricted guide channel (papers.md §2).

Two ResNet generators take an image plus one guide channel and return an image plus one guide
channel. The guide of an image is what its own generator returns beside the translation when fed an
empty guide, ``s(x) = G(x, zeros)[guide]``: whatever the translation to the other domain must drop.
Translating ``a`` with the guide of ``b`` keeps what the domains share from ``a`` and takes what is
specific to ``b``'s domain from ``b``. Nothing tells the model which attribute is which: the capacity
loss (L1 of the guide plus Gaussian noise on it) leaves the guide room only for what the image cannot
carry through the cycle, and the honesty terms (image noise, guess discriminator) stop the image from
hiding the rest as steganography.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.editors import load as load_editor
from engine.errors import PackageError, TrainingError
from engine.imageio import save_image
from engine.package import ModelPackage, load_package, name_part
from trainer import checkpoint as ckpt
from trainer.attributes import DEFAULT_CLASSIFIER, load_classifier
from trainer.data.real_images import load_real_images, sample_photos
from trainer.data.shapes_abc import SPLITS, ShapesABC
from trainer.data.tensors import to_pixels, to_tensor
from trainer.evaluate_guided import (
    PAPER_RANDOM,
    PAPER_RIFT,
    compare,
    evaluate_translation,
    format_table,
    heldout_pairs,
    sample_labels,
    summarise,
    table_rows,
)
from trainer.export import Graph, export_package
from trainer.loop import read_config
from trainer.methods.base import Method, MethodConfig, config_from_dict
from trainer.nets import Norm, PatchGAN, ResNetGenerator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RIFTConfig(MethodConfig):
    """Everything a RIFT run needs; defaults are the released code's values (papers.md §2)."""

    split: int = 1
    # the user's own domains: an image folder or a video each (both or neither); "" = 3D-Shapes-ABC split `split`
    domain_a: str = ""
    domain_b: str = ""
    image_size: int = 64
    guide_size: int = 64  # side of the single-channel guide map (image size or a divisor of it)
    width: int = 64
    n_downsampling: int = 2
    n_blocks: int = 9
    norm: Norm = "instance"
    input_skip: bool = False  # feed the input to the generator's last conv too (not in the released code)
    disc_width: int = 64
    batch_size: int = 8
    lr: float = 1e-4
    disc_lr_ratio: float = 1.0  # discriminator lr = lr * this (released code: 1)
    beta1: float = 0.5
    beta2: float = 0.999
    steps: int = 100_000  # paper: 200 epochs; 3D-Shapes-ABC renders on demand, so steps, not epochs
    decay_start: float = 0.5  # linear lr decay over the second half (paper: epochs 100 to 200 of 200)
    w_adversarial: float = 1.0
    w_cycle: float = 10.0
    cycle_balance: float = 0.0  # 0 = plain L1; up to 1 = each colour of the original weighs the same (not in the paper)
    cycle_balance_after: int = 0  # plain L1 before this step: the guide learns to carry colour first
    w_identity: float = 1.0
    w_guide_recovery: float = 10.0  # weight not given in papers.md; taken equal to the cycle's
    w_capacity: float = 1.0  # paper range 0.5–2
    guide_noise: float = 0.3  # paper range 0.1–0.5
    image_noise: float = 0.5  # paper range 0.5–1.2 (on [-1, 1] pixels)
    w_honesty: float = 2.0  # paper range 2–4
    eval_pairs: int = 300  # held-out pairs per direction for the in-training eval event
    classifier: str = ""  # factor classifier weights; "" = resources/classifiers/shapes_factors.safetensors
    serve_direction: str = "a2b"  # the translation the exported guide package serves: a2b or b2a

    EXPORT_SETTINGS: ClassVar[frozenset[str]] = frozenset({"serve_direction"})

    def __post_init__(self) -> None:
        if self.serve_direction not in ("a2b", "b2a"):
            raise TrainingError(f"RIFT setting serve_direction={self.serve_direction!r}: use a2b or b2a.")
        if not 0.0 <= self.cycle_balance <= 1.0:
            raise TrainingError(f"RIFT setting cycle_balance={self.cycle_balance}: use a value from 0 to 1.")
        if self.cycle_balance_after < 0:
            raise TrainingError(f"RIFT setting cycle_balance_after={self.cycle_balance_after}: use a step, 0 or more.")
        if bool(self.domain_a) != bool(self.domain_b):
            raise TrainingError(f"RIFT settings domain_a={self.domain_a!r}, domain_b={self.domain_b!r}: give an "
                                "image folder or video for both domains, or neither to train on 3D-Shapes-ABC.")
        if self.split not in (1, 2, 3):
            raise TrainingError(f"RIFT setting split={self.split}: 3D-Shapes-ABC has splits 1, 2 and 3.")
        if self.image_size % self.guide_size:
            raise TrainingError(
                f"RIFT setting guide_size={self.guide_size} must divide image_size={self.image_size}."
            )
        if self.image_size % (2**self.n_downsampling):
            raise TrainingError(
                f"RIFT setting image_size={self.image_size} must be divisible by 2**n_downsampling="
                f"{2**self.n_downsampling}."
            )

    @property
    def on_user_photos(self) -> bool:
        """Trained on the user's two folders or videos: no factor labels, so nothing to score."""
        return bool(self.domain_a)

    @property
    def user_domains(self) -> dict[str, str]:
        """Domain name ("A", "B") -> the user's folder or video for it."""
        return {"A": self.domain_a, "B": self.domain_b}


class GuidedGenerator(nn.Module):
    """ResNet generator with 3+1 channels in and out: (image, guide) -> (image, guide).

    The guide enters and leaves at ``guide_size``; inside, it is one extra image-sized channel
    (nearest upsampling in, average pooling out), as in the released code when the sizes match.
    """

    def __init__(self, config: RIFTConfig) -> None:
        super().__init__()
        self.scale = config.image_size // config.guide_size
        self.body = ResNetGenerator(
            in_channels=4,
            out_channels=4,
            width=config.width,
            n_downsampling=config.n_downsampling,
            n_blocks=config.n_blocks,
            norm=config.norm,
            input_skip=config.input_skip,
        )

    def forward(self, image: torch.Tensor, guide: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        guide_plane = guide if self.scale == 1 else F.interpolate(guide, scale_factor=self.scale, mode="nearest")
        raw = self.body(torch.cat([image, guide_plane], dim=1))  # (B, 4, H, W)
        image_out = torch.tanh(raw[:, :3])
        guide_out = raw[:, 3:]
        if self.scale > 1:
            guide_out = F.avg_pool2d(guide_out, self.scale)  # (B, 1, g, g)
        return image_out, guide_out

    def empty_guide(self, image: torch.Tensor) -> torch.Tensor:
        """The all-zero guide for a batch of images: what s(x) is computed from."""
        side = image.shape[-1] // self.scale
        return image.new_zeros(image.shape[0], 1, side, side)

    def guide_of(self, image: torch.Tensor) -> torch.Tensor:
        """s(x) = G(x, zeros)[guide]: the part of x that the translation to the other domain drops."""
        return self(image, self.empty_guide(image))[1]


# --- losses: each a small function of tensors ------------------------------------------------------


def lsgan_loss(prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """Least-squares GAN loss: mean squared distance of the patch scores to 1 (real) or 0 (fake)."""
    target = 1.0 if target_is_real else 0.0
    return torch.mean((prediction - target) ** 2)


def colour_balance_weights(image: torch.Tensor, balance: float, levels: int = 4) -> torch.Tensor:
    """Per-pixel weights (B, 1, H, W), mean 1 per image, proportional to (pixels of that colour) ** -balance.

    Colours are the image's RGB quantised to ``levels`` per channel. In a room of flat floor and wall a
    small object is a few dozen pixels, so a plain L1 cycle can afford to lose its hue and shape;
    weighting rare colours up makes the object cost what the walls do (``balance`` 1) or part of it.
    """
    batch, _, height, width = image.shape
    quantised = ((image.detach() + 1) / 2 * levels).long().clamp(0, levels - 1)
    bins = (quantised[:, 0] * levels * levels + quantised[:, 1] * levels + quantised[:, 2]).flatten(1)
    ones = torch.ones_like(bins, dtype=torch.float)
    counts = torch.zeros(batch, levels**3, device=image.device).scatter_add_(1, bins, ones)
    weights = counts.gather(1, bins) ** -balance
    return (weights / weights.mean(dim=1, keepdim=True)).view(batch, 1, height, width)


def cycle_loss(reconstruction: torch.Tensor, original: torch.Tensor, balance: float = 0.0) -> torch.Tensor:
    """L1 between an image and its round trip through both generators, colour-balanced by `balance`."""
    error = torch.abs(reconstruction - original)
    if balance == 0.0:
        return torch.mean(error)
    return torch.mean(colour_balance_weights(original, balance) * error)


def identity_loss(output: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """L1 between an image of the target domain fed with its own guide and the generator's output."""
    return torch.mean(torch.abs(output - original))


def guide_recovery_loss(recovered_guide: torch.Tensor, fed_guide: torch.Tensor) -> torch.Tensor:
    """L1 between the guide fed into one generator and the guide the other reads back from its output.

    This is what makes a translation take the guide's domain-specific attributes: the backward
    generator must find in the translation the same guide that was put in.
    """
    return torch.mean(torch.abs(recovered_guide - fed_guide))


def capacity_loss(guide: torch.Tensor) -> torch.Tensor:
    """L1 norm of the guide map; with fixed noise on it, it bounds what the guide can carry.

    MI <= dim(s) * log2(1 + L / sigma^2) with L = E||s||^2 (papers.md §2).
    """
    return torch.mean(torch.abs(guide))


def add_noise(tensor: torch.Tensor, sigma: float, generator: torch.Generator | None) -> torch.Tensor:
    """Gaussian noise of std ``sigma``; used on guides (capacity) and on generator inputs (honesty)."""
    if sigma == 0.0:
        return tensor
    noise = torch.randn(tensor.shape, generator=generator, device=tensor.device, dtype=tensor.dtype)
    return tensor + sigma * noise


def guess_pairs(
    original: torch.Tensor, reconstruction: torch.Tensor, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(original, reconstruction) stacked on channels in random order, and the order per sample.

    Returns pairs (B, 6, H, W) and ``original_first`` (B,) in {0., 1.}: the guess discriminator's
    target (papers.md §5).
    """
    coin = torch.rand(original.shape[0], generator=generator, device=original.device) < 0.5
    original_first = coin.to(original.dtype)
    mask = original_first.view(-1, 1, 1, 1)
    first = mask * original + (1 - mask) * reconstruction
    second = mask * reconstruction + (1 - mask) * original
    return torch.cat([first, second], dim=1), original_first


def guess_loss(prediction: torch.Tensor, original_first: torch.Tensor, fool: bool) -> torch.Tensor:
    """LSGAN loss of the guess discriminator: score 1 where the original came first, else 0.

    With ``fool`` the targets are flipped: the generators' honesty term, which they can only win by
    making reconstructions that are no easier to tell from the original than the other way round.
    """
    target = original_first.view(-1, 1, 1, 1).expand_as(prediction)
    if fool:
        target = 1.0 - target
    return torch.mean((prediction - target) ** 2)


# --- the model -------------------------------------------------------------------------------------


class RIFTModel(nn.Module):
    """The two guided generators and three discriminators (one per domain, one guess)."""

    def __init__(self, config: RIFTConfig) -> None:
        super().__init__()
        self.config = config
        self.a2b = GuidedGenerator(config)
        self.b2a = GuidedGenerator(config)
        self.disc_a = PatchGAN(3, config.disc_width, norm=config.norm)
        self.disc_b = PatchGAN(3, config.disc_width, norm=config.norm)
        self.disc_guess = PatchGAN(6, config.disc_width, norm=config.norm)  # (original, reconstruction) pairs

    def generators(self) -> list[nn.Module]:
        return [self.a2b, self.b2a]

    def discriminators(self) -> list[nn.Module]:
        return [self.disc_a, self.disc_b, self.disc_guess]

    def generators_for(self, direction: str) -> tuple[GuidedGenerator, GuidedGenerator]:
        """(forward, backward) of a direction: a2b translates with the guide b2a reads from a B image."""
        return (self.a2b, self.b2a) if direction == "a2b" else (self.b2a, self.a2b)

    def translate(self, source: torch.Tensor, guide_image: torch.Tensor, direction: str = "a2b") -> torch.Tensor:
        """F(source, guide): the source translated into the guide's domain with the guide's specifics."""
        forward, backward = self.generators_for(direction)
        return forward(source, backward.guide_of(guide_image))[0]

    def translate_without_guide(self, source: torch.Tensor, direction: str = "a2b") -> torch.Tensor:
        """The same generator with an all-zero guide: the one-to-one (CycleGAN-style) baseline."""
        forward = self.generators_for(direction)[0]
        return forward(source, forward.empty_guide(source))[0]

    def forward_pass(self, a: torch.Tensor, b: torch.Tensor, generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """Every image and guide one training step needs, computed once for both domains."""
        c = self.config
        guide_a = self.a2b.guide_of(a)  # s(a): what A->B drops from a
        guide_b = self.b2a.guide_of(b)  # s(b): what B->A drops from b
        noisy_guide_a = add_noise(guide_a, c.guide_noise, generator)
        noisy_guide_b = add_noise(guide_b, c.guide_noise, generator)
        fake_b, _ = self.a2b(add_noise(a, c.image_noise, generator), noisy_guide_b)
        fake_a, _ = self.b2a(add_noise(b, c.image_noise, generator), noisy_guide_a)
        rec_a, recovered_guide_b = self.b2a(add_noise(fake_b, c.image_noise, generator), noisy_guide_a)
        rec_b, recovered_guide_a = self.a2b(add_noise(fake_a, c.image_noise, generator), noisy_guide_b)
        idt_b, _ = self.a2b(b, guide_b)
        idt_a, _ = self.b2a(a, guide_a)
        return {
            "guide_a": guide_a, "guide_b": guide_b,
            "fake_a": fake_a, "fake_b": fake_b,
            "rec_a": rec_a, "rec_b": rec_b,
            "recovered_guide_a": recovered_guide_a, "recovered_guide_b": recovered_guide_b,
            "idt_a": idt_a, "idt_b": idt_b,
        }

    def generator_losses(
        self, a: torch.Tensor, b: torch.Tensor, out: Mapping[str, torch.Tensor], generator: torch.Generator | None,
        cycle_balance: float = 0.0,
    ) -> dict[str, torch.Tensor]:
        """Named, unweighted generator-side terms; `cycle_balance` as in `colour_balance_weights`."""
        pairs_a, order_a = guess_pairs(a, out["rec_a"], generator)
        pairs_b, order_b = guess_pairs(b, out["rec_b"], generator)
        return {
            "adversarial": lsgan_loss(self.disc_b(out["fake_b"]), True) + lsgan_loss(self.disc_a(out["fake_a"]), True),
            "cycle": cycle_loss(out["rec_a"], a, cycle_balance) + cycle_loss(out["rec_b"], b, cycle_balance),
            "identity": identity_loss(out["idt_a"], a) + identity_loss(out["idt_b"], b),
            "guide_recovery": guide_recovery_loss(out["recovered_guide_b"], out["guide_b"])
            + guide_recovery_loss(out["recovered_guide_a"], out["guide_a"]),
            "capacity": capacity_loss(out["guide_a"]) + capacity_loss(out["guide_b"]),
            "honesty": guess_loss(self.disc_guess(pairs_a), order_a, fool=True)
            + guess_loss(self.disc_guess(pairs_b), order_b, fool=True),
        }

    def weighted_generator_loss(self, terms: Mapping[str, torch.Tensor]) -> torch.Tensor:
        c = self.config
        weights = {
            "adversarial": c.w_adversarial, "cycle": c.w_cycle, "identity": c.w_identity,
            "guide_recovery": c.w_guide_recovery, "capacity": c.w_capacity, "honesty": c.w_honesty,
        }
        return sum(weights[name] * value for name, value in terms.items())

    def discriminator_losses(
        self, a: torch.Tensor, b: torch.Tensor, out: Mapping[str, torch.Tensor], generator: torch.Generator | None
    ) -> dict[str, torch.Tensor]:
        """Named discriminator terms on detached generator outputs (each halved, as in CycleGAN)."""
        fake_a, fake_b = out["fake_a"].detach(), out["fake_b"].detach()
        pairs_a, order_a = guess_pairs(a, out["rec_a"].detach(), generator)
        pairs_b, order_b = guess_pairs(b, out["rec_b"].detach(), generator)
        return {
            "disc_a": 0.5 * (lsgan_loss(self.disc_a(a), True) + lsgan_loss(self.disc_a(fake_a), False)),
            "disc_b": 0.5 * (lsgan_loss(self.disc_b(b), True) + lsgan_loss(self.disc_b(fake_b), False)),
            "disc_guess": 0.5 * (guess_loss(self.disc_guess(pairs_a), order_a, fool=False)
                                 + guess_loss(self.disc_guess(pairs_b), order_b, fool=False)),
        }


def learning_rate(config: RIFTConfig, step: int) -> float:
    """Constant, then linear decay to zero from ``decay_start * steps`` to ``steps``."""
    decay_from = config.decay_start * config.steps
    if step < decay_from:
        return config.lr
    return config.lr * max(0.0, (config.steps - step) / max(1.0, config.steps - decay_from))


class RIFT(Method):
    """RIFT between two domains: 3D-Shapes-ABC renders of one split, drawn fresh every step, or the user's own
    two image folders or videos (`domain_a`, `domain_b`), which nothing can score."""

    name = "rift"
    config_class = RIFTConfig
    schedules_learning_rate = True  # the released code's decay, `decay_start`

    def __init__(self, config: RIFTConfig, device: torch.device, seed: int) -> None:
        super().__init__(config, device, seed)
        self.data = None if config.on_user_photos else ShapesABC(config.split, size=config.image_size)
        self.photos = ({domain: load_real_images(source, config.image_size)
                        for domain, source in config.user_domains.items()} if config.on_user_photos else {})
        self.model = RIFTModel(config).to(device)
        betas = (config.beta1, config.beta2)
        self.opt_generators = torch.optim.Adam(
            [p for g in self.model.generators() for p in g.parameters()], lr=config.lr, betas=betas)
        self.opt_discriminators = torch.optim.Adam(
            [p for d in self.model.discriminators() for p in d.parameters()], lr=config.lr * config.disc_lr_ratio,
            betas=betas)
        preview_rng = np.random.default_rng(seed + 7_919)  # fixed held-out inputs, so previews are comparable
        self.preview_scenes = {
            domain: (self.photos[domain].spread(6) if self.photos
                     else self.data.render(sample_labels(self.data, domain, 6, preview_rng, heldout=True)))
            for domain in ("A", "B")}
        self._eval_pairs: dict | None = None
        self._classifier = None

    def modules(self) -> dict[str, nn.Module]:
        return {"a2b": self.model.a2b, "b2a": self.model.b2a, "disc_a": self.model.disc_a,
                "disc_b": self.model.disc_b, "disc_guess": self.model.disc_guess}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generators": self.opt_generators, "discriminators": self.opt_discriminators}

    def draw_batch(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch per domain (the training combinations, or the user's photos), drawn through the run's generator."""
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))
        n = self.config.batch_size
        if self.photos:
            a, b = (self.photos[domain].images[rng.integers(0, len(self.photos[domain]), n)] for domain in ("A", "B"))
        else:
            a = self.data.render(sample_labels(self.data, "A", n, rng, heldout=False))
            b = self.data.render(sample_labels(self.data, "B", n, rng, heldout=False))
        return to_tensor(a, self.device), to_tensor(b, self.device)  # (B, 3, S, S) each, in [-1, 1]

    def train_step(self, step: int, generator: torch.Generator) -> dict[str, float]:
        lr = learning_rate(self.config, step)
        for optimizer, scale in ((self.opt_generators, 1.0), (self.opt_discriminators, self.config.disc_lr_ratio)):
            for group in optimizer.param_groups:
                group["lr"] = lr * scale
        a, b = self.draw_batch(generator)
        out = self.model.forward_pass(a, b, generator)
        discriminators = self.model.discriminators()
        for d in discriminators:
            d.requires_grad_(False)
        balance = self.config.cycle_balance if step >= self.config.cycle_balance_after else 0.0
        terms = self.model.generator_losses(a, b, out, generator, balance)
        total = self.model.weighted_generator_loss(terms)
        self.opt_generators.zero_grad(set_to_none=True)
        total.backward()
        self.opt_generators.step()
        for d in discriminators:
            d.requires_grad_(True)
        d_terms = self.model.discriminator_losses(a, b, out, generator)
        self.opt_discriminators.zero_grad(set_to_none=True)
        sum(d_terms.values()).backward()
        self.opt_discriminators.step()
        losses = {name: float(value.detach()) for name, value in {**terms, **d_terms}.items()}
        losses["generator_total"] = float(total.detach())
        losses["guide_abs"] = 0.5 * float((out["guide_a"].abs().mean() + out["guide_b"].abs().mean()).detach())
        return losses

    @torch.no_grad()
    def translate(self, sources: np.ndarray, guides: np.ndarray, direction: str = "a2b") -> np.ndarray:
        """F(source, guide) on uint8 images, in eval mode, as the editor runs it."""
        was_training = self.model.training
        self.model.eval()
        outputs = self.model.translate(to_tensor(sources, self.device), to_tensor(guides, self.device), direction)
        self.model.train(was_training)
        return to_pixels(outputs)

    @torch.no_grad()
    def translate_without_guide(self, sources: np.ndarray, guides: np.ndarray, direction: str = "a2b") -> np.ndarray:
        """The guide-free baseline: the same generator fed an all-zero guide; `guides` is ignored."""
        was_training = self.model.training
        self.model.eval()
        outputs = self.model.translate_without_guide(to_tensor(sources, self.device), direction)
        self.model.train(was_training)
        return to_pixels(outputs)

    def grid(self, sources: np.ndarray, guides: np.ndarray, direction: str = "a2b") -> np.ndarray:
        """Sources down the left, guides along the top, F(source, guide) in the cells: (H, W, 3) uint8."""
        size = sources.shape[1]
        blank = np.full((size, size, 3), 255, np.uint8)
        rows = [np.concatenate([blank, *guides], axis=1)]
        for source in sources:
            outputs = self.translate(np.repeat(source[None], len(guides), axis=0), guides, direction)
            rows.append(np.concatenate([source, *outputs], axis=1))
        return np.concatenate(rows, axis=0)

    def grid_both_ways(self, scenes_a: np.ndarray, scenes_b: np.ndarray, sources: int, guides: int) -> np.ndarray:
        """A to B on top, B to A below (the same scenes, their roles swapped), a white band between."""
        a2b = self.grid(scenes_a[:sources], scenes_b[:guides], "a2b")
        b2a = self.grid(scenes_b[:sources], scenes_a[:guides], "b2a")
        band = np.full((self.config.image_size // 2, a2b.shape[1], 3), 255, np.uint8)
        return np.concatenate([a2b, band, b2a], axis=0)

    def preview(self) -> np.ndarray:
        return self.grid_both_ways(self.preview_scenes["A"], self.preview_scenes["B"], sources=4, guides=6)

    def classifier_path(self) -> Path:
        """The factor classifier this run is measured with."""
        return Path(self.config.classifier) if self.config.classifier else DEFAULT_CLASSIFIER

    def evaluate(self) -> dict[str, float] | None:
        """ACC and RD on held-out pairs, when the factor classifier is on disk; else None (logged).
        The user's own photos have no factor labels: None."""
        if self.photos:
            return None
        path = self.classifier_path()
        if self._classifier is None:
            if not path.is_file():
                log.info("No factor classifier at %s: skipping the eval metrics.", path)
                return None
            self._classifier = load_classifier(path)[0].to(self.device)
        if self._eval_pairs is None:
            self._eval_pairs = heldout_pairs(self.data, self.config.eval_pairs, np.random.default_rng(self.seed + 104_729))
        rows, summary = evaluate_translation(self.translate, self._classifier.predict, self._eval_pairs, self.config.split)
        metrics = {f"{r.direction}_{r.attribute}": r.accuracy for r in rows}
        metrics.update(summary)
        return metrics

    def export(self, out_dir: Path, provenance: Mapping[str, Any]) -> Path:
        return export_rift(self, out_dir, provenance)


# --- export ----------------------------------------------------------------------------------------


class GuideEncoderGraph(nn.Module):
    """The exported "guide_encoder": a guide-domain image -> its guide map s(y)."""

    def __init__(self, backward: GuidedGenerator) -> None:
        super().__init__()
        self.backward = backward

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.backward.guide_of(image)  # (B, 1, g, g)


class TranslatorGraph(nn.Module):
    """The exported "translator": (source image, guide map) -> image in the guide's domain."""

    def __init__(self, forward_generator: GuidedGenerator) -> None:
        super().__init__()
        self.forward_generator = forward_generator

    def forward(self, image: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        return self.forward_generator(image, guide)[0]  # (B, 3, S, S) in [-1, 1]


SAMPLE_GUIDES = 12
SAMPLE_SIZE = 64


EVALUATION_SEED = 2024  # the held-out pairs every RIFT table is measured on


def full_evaluation(method: RIFT, classifier_path: Path | None = None, pairs_per_direction: int | None = None,
                    seed: int = EVALUATION_SEED) -> dict[str, tuple[list, dict[str, float]]]:
    """RIFT, its guide-free twin and the three baselines on held-out pairs, read by the factor classifier."""
    classifier, _ = load_classifier(classifier_path or method.classifier_path())
    n = pairs_per_direction or method.config.eval_pairs
    pairs = heldout_pairs(method.data, n, np.random.default_rng(seed))
    translations = {"RIFT (ours)": method.translate, "guide-free (ours)": method.translate_without_guide}
    return compare(translations, classifier.predict, method.data, pairs, seed=seed + 1)


def heldout_scenes(split: int, domain: str, n: int, size: int, seed: int = 0) -> np.ndarray:
    """`n` held-out renders of `domain`, (n, size, size, 3) uint8: a package's sample guides, the sample photos."""
    data = ShapesABC(split, size=size)
    return data.render(sample_labels(data, domain, n, np.random.default_rng(seed + 31_337), heldout=True))


def verdict(results: dict[str, tuple[list, dict[str, float]]]) -> str:
    """One sentence comparing the model's ACC with the random baseline's, for the manifest's notes."""
    ours, chance = results["RIFT (ours)"][1]["ACC"], results["random"][1]["ACC"]
    if ours > chance + 5.0:
        return f"The model beats the random baseline (ACC {ours:.1f} vs {chance:.1f})."
    return f"The model does NOT beat the random baseline (ACC {ours:.1f} vs {chance:.1f}): treat it as a failed run."


def export_rift(method: RIFT, out_dir: Path, provenance: Mapping[str, Any]) -> Path:
    """Write the guide package for `serve_direction`: ONNX graphs (parity-checked), sample guides, measured table."""
    config = method.config
    direction = config.serve_direction
    guide_domain = "B" if direction == "a2b" else "A"
    size = config.image_size
    example_image = torch.zeros(1, 3, size, size)
    example_guide = torch.zeros(1, 1, config.guide_size, config.guide_size)
    translator, guide_encoder = method.model.generators_for(direction)
    graphs = {
        "guide_encoder": Graph(GuideEncoderGraph(guide_encoder), (example_image,), ["image"], ["guide"]),
        "translator": Graph(TranslatorGraph(translator), (example_image, example_guide), ["image", "guide"],
                            ["translated"]),
    }
    described = user_photos_manifest(method) if method.photos else shapes_manifest(method)
    samples = (sample_photos(config.user_domains[guide_domain], SAMPLE_GUIDES, SAMPLE_SIZE) if method.photos
               else heldout_scenes(config.split, guide_domain, SAMPLE_GUIDES, SAMPLE_SIZE, method.seed))
    sample_names = [f"samples/guide_{k:02d}.png" for k in range(len(samples))]
    manifest = {
        "name": described["name"],
        "title": described["title"],
        "method": "rift",
        "editor": "guide",
        "image_size": size,
        "channels": 3,
        "normalisation": {"range": [-1.0, 1.0], "grayscale": False, "polarity": None},
        "guide": {**described["guide"], "samples": sample_names},
        "provenance": {**provenance, "data": described["data"], "config": asdict(config)},
        "metrics": described["metrics"],
    }
    with tempfile.TemporaryDirectory(prefix="puppetry-rift-") as scratch:
        (Path(scratch) / "samples").mkdir()
        for name, image in zip(sample_names, samples):
            save_image(Path(scratch) / name, image)
        package = export_package(out_dir, manifest, graphs)
        shutil.copytree(Path(scratch) / "samples", Path(package) / "samples", dirs_exist_ok=True)
    return package


def shapes_manifest(method: RIFT) -> dict[str, Any]:
    """Name, title, guide section, data and measured table of a 3D-Shapes-ABC package."""
    config = method.config
    direction = config.serve_direction
    split = SPLITS[config.split]
    source_domain, guide_domain = ("A", "B") if direction == "a2b" else ("B", "A")
    metrics: dict[str, Any] = {"notes": "No factor classifier was on disk at export; run `puppetry-train evaluate`."}
    classifier_path = method.classifier_path()
    if classifier_path.is_file():
        results = full_evaluation(method, classifier_path)
        _, report = load_classifier(classifier_path)
        metrics = {
            "data": {"dataset": "3D-Shapes-ABC", "split": config.split, "pairs_per_direction": config.eval_pairs,
                     "seed": EVALUATION_SEED, "direction": direction},
            "table": table_rows(results["RIFT (ours)"][0]),
            "summary": {name: {k: round(v, 1) for k, v in summary.items()} for name, (_, summary) in results.items()},
            "served": {name: {k: round(v, 1) for k, v in summarise([r for r in rows if r.direction == direction]).items()}
                       for name, (rows, _) in results.items()},
            "paper": {"RIFT": PAPER_RIFT},
            "classifier_heldout_accuracy": report.accuracy,
            "notes": (f"ACC (%) over {config.eval_pairs} held-out pairs per direction whose factor labels differ; "
                      f"'summary' over both directions, 'served' over {direction}, the one this package runs. "
                      "Paper RIFT: ACC on 3D shapes, RD averaged over its three data sets. " + verdict(results)),
        }
    return {
        "name": f"shapes-split{config.split}",
        "title": f"3D shapes — guided translation (split {config.split}, {source_domain} to {guide_domain})",
        "guide": {
            "source_domain": f"3D-Shapes-ABC split {config.split} domain {source_domain}",
            "guide_domain": f"3D-Shapes-ABC split {config.split} domain {guide_domain}",
            "moves": list(split.specific_b if direction == "a2b" else split.specific_a),
            "stays": list(split.shared),
        },
        "data": f"3D-Shapes-ABC split {config.split}, `shapes` puppet renders at {config.image_size} px",
        "metrics": metrics,
    }


def user_photos_manifest(method: RIFT) -> dict[str, Any]:
    """Name, title, guide section and data of a package trained on the user's two folders or videos.

    Nothing says which attributes are whose, so `moves` and `stays` stay empty, and without factor labels
    there is no table: the preview grid is the judge.
    """
    config = method.config
    source_domain, guide_domain = ("A", "B") if config.serve_direction == "a2b" else ("B", "A")
    names = {domain: Path(source).expanduser().stem or source for domain, source in config.user_domains.items()}
    return {
        "name": f"{name_part(names[source_domain])}-to-{name_part(names[guide_domain])}",
        "title": f"{names[source_domain]} to {names[guide_domain]} — guided translation",
        "guide": {"source_domain": names[source_domain], "guide_domain": names[guide_domain], "moves": [], "stays": []},
        "data": f"domain A: {method.photos['A'].description}; domain B: {method.photos['B'].description}",
        "metrics": {"table": [], "notes": "Not measured: trained on the user's own photos, which have no factor "
                                          "labels to score. The preview grid (sources x guides) is the judge."},
    }


def load_run(run_dir: Path, step: int | None = None) -> tuple[RIFT, int]:
    """A RIFT method restored from a run's newest (or `step`'s) checkpoint on CPU, and that step."""

    config = read_config(run_dir)
    if config.method != RIFT.name:
        raise TrainingError(f"{run_dir} is a {config.method!r} run, not a RIFT one.")
    checkpoint = ckpt.find_checkpoint(run_dir, step)
    method = RIFT(config_from_dict(RIFTConfig, config.method_config), torch.device("cpu"), config.seed)
    info = ckpt.load_checkpoint(checkpoint, method.modules(), method.optimizers())
    method.load_state(info["ranks"][0]["method"])
    return method, int(info["step"])


def evaluation_report(results: dict[str, tuple[list, dict[str, float]]], classifier_path: Path, heading: str) -> str:
    """The printed table: the given results, the paper's rows, and the classifier's own held-out accuracy."""
    _, report = load_classifier(classifier_path)
    return "\n".join([
        heading + "; ACC in % over pairs whose labels differ (sh = keep from source, sp = take from guide)",
        format_table(results, {"RIFT (paper)": PAPER_RIFT, "random (paper)": PAPER_RANDOM}),
        "factor classifier held-out accuracy: "
        + ", ".join(f"{name} {100 * value:.1f}%" for name, value in report.accuracy.items()),
    ])


def package_evaluation(package: ModelPackage, classifier_path: Path = DEFAULT_CLASSIFIER,
                       seed: int = EVALUATION_SEED) -> tuple[dict[str, tuple[list, dict[str, float]]], int, str]:
    """The exported graphs, run through the editor as a user would, against the baselines (served direction only).

    The pairs are that direction's half of those `full_evaluation` uses, so the torch and ONNX tables compare.
    """
    measured_on = package.metrics.get("data", {})
    if not measured_on and package.metrics.get("table") == []:
        raise TrainingError(f"{package.path}: {package.metrics.get('notes', 'Not measured.')}")
    if "split" not in measured_on or "pairs_per_direction" not in measured_on:
        raise TrainingError(f"{package.path}: its manifest's metrics.data does not say which split it was trained on.")
    data = ShapesABC(int(measured_on["split"]), size=package.image_size)
    n = int(measured_on["pairs_per_direction"])
    direction = measured_on.get("direction", "a2b")
    pairs = {direction: heldout_pairs(data, n, np.random.default_rng(seed))[direction]}
    editor = load_editor(package)

    def translate(sources: np.ndarray, guides: np.ndarray, direction: str) -> np.ndarray:
        return np.stack([editor.apply(editor.prepare(s), {"guide": g}) for s, g in zip(sources, guides)])

    classifier, _ = load_classifier(classifier_path)
    return compare({f"{package.name} (ONNX)": translate}, classifier.predict, data, pairs, seed=seed + 1), n, direction


def save_grid(method: RIFT, path: Path, sources: int = 5, guides: int = 8, seed: int = 0) -> Path:
    """Held-out sources (rows) x held-out guides (columns) -> F(source, guide), both directions, enlarged 3x, as a PNG."""
    rng = np.random.default_rng(seed + 65_537)
    data = method.data
    count = max(sources, guides)
    scenes_a, scenes_b = (data.render(sample_labels(data, domain, count, rng, heldout=True)) for domain in ("A", "B"))
    grid = method.grid_both_ways(scenes_a, scenes_b, sources, guides)
    enlarged = np.repeat(np.repeat(grid, 3, axis=0), 3, axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_image(path, enlarged)


def is_rift_target(target: Path) -> bool:
    """Whether `puppetry-train evaluate TARGET` names a RIFT run or a RIFT model package."""
    target = Path(target)
    if (target / "manifest.json").is_file() or target.suffix == ".puppetry":
        try:
            return load_package(target).method == RIFT.name
        except PackageError:
            return False
    return (target / "config.json").is_file() and read_config(target).method == RIFT.name


def run_evaluate(args: Any) -> int:
    """The RIFT branch of `puppetry-train evaluate TARGET [--checkpoint STEP] [--grid-png PATH] [--json]`.

    A run is measured in torch in both directions; a package through its ONNX graphs and the guide
    editor, in the direction it serves.
    """
    target = Path(args.target)
    if (target / "config.json").is_file() and not (target / "manifest.json").is_file():
        if config_from_dict(RIFTConfig, read_config(target).method_config).on_user_photos:  # before reading them
            raise TrainingError(f"{target}: trained on the user's own photos, which have no factor labels to score; "
                                "its preview grids (previews/) are the judge.")
        method, step = load_run(target, args.checkpoint)
        results = full_evaluation(method)
        classifier_path = method.classifier_path()
        heading = (f"{target.name} @ step {step} (torch, eval mode): 3D-Shapes-ABC split {method.config.split}, "
                   f"{method.config.image_size} px, {method.config.eval_pairs} held-out pairs per direction")
    else:
        method = None
        package = load_package(target)
        results, n, direction = package_evaluation(package)
        classifier_path = DEFAULT_CLASSIFIER
        heading = f"{package.name} (ONNX via the guide editor): {package.image_size} px, {n} held-out pairs, {direction}"
    if args.json:
        print(json.dumps({name: {"rows": table_rows(rows), "summary": summary}
                          for name, (rows, summary) in results.items()}, indent=1))
    else:
        print(evaluation_report(results, classifier_path, heading))
    if args.grid_png and method is not None:
        print(f"grid picture: {save_grid(method, args.grid_png)}")
    return 0
