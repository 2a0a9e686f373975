"""Attribute classifiers f_k for the six 3dshapes factors: one small CNN with a head per factor.

RIFT's manipulation accuracy (papers.md §2) reads each factor of a translated
image with a classifier trained on labelled renders of the `shapes` puppet, all
six factors varying. The metric is only as good as these classifiers, so their
held-out accuracy is measured on renders they never saw and stored in the
weights file's metadata, where the evaluation prints it beside every table.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from engine.errors import TrainingError
from engine.resources import resource_path
from trainer.data.arrays import LabelledImages
from trainer.data.shapes_abc import FACTORS, ShapesABC
from trainer.data.tensors import to_tensor

log = logging.getLogger(__name__)

DEFAULT_CLASSIFIER = resource_path("classifiers", "shapes_factors.safetensors")


class FactorClassifier(nn.Module):
    """Shared conv trunk (stride-2 stages down to 4 x 4) and one linear head per 3dshapes factor."""

    def __init__(self, image_size: int = 32, width: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1), nn.ReLU()]
        channels, side = width, image_size
        while side > 4:
            out = min(channels * 2, width * 4)
            layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1), nn.GroupNorm(8, out), nn.ReLU()]
            channels, side = out, side // 2
        self.trunk = nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels * 16, 256), nn.ReLU())
        self.heads = nn.ModuleList(nn.Linear(256, factor.classes) for factor in FACTORS)
        self.image_size = image_size
        self.width = width

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        features = self.trunk(images)  # (B, 256)
        return [head(features) for head in self.heads]  # one (B, classes_k) per factor

    @torch.no_grad()
    def predict(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """(N, S, S, 3) uint8 -> (N, 6) int64 class indices, in eval mode, restoring the mode after."""
        if images.shape[1] != self.image_size:
            raise TrainingError(
                f"The factor classifier reads {self.image_size} px images, got {images.shape[1]} px; "
                f"train one at that size with `python -m trainer.attributes --size {images.shape[1]}`."
            )
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        rows = []
        for start in range(0, len(images), batch_size):
            logits = self(to_tensor(images[start:start + batch_size], device))
            rows.append(torch.stack([head.argmax(dim=1) for head in logits], dim=1).cpu().numpy())
        self.train(was_training)
        return np.concatenate(rows).astype(np.int64)


@dataclass(frozen=True)
class ClassifierReport:
    """Held-out accuracy per factor, and what it was measured on."""

    accuracy: dict[str, float]
    heldout_images: int
    train_images: int
    epochs: int
    wall_time_s: float


def factor_accuracy(predicted: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Fraction of images whose predicted class equals the label, per factor."""
    return {factor.name: float(np.mean(predicted[:, k] == labels[:, k])) for k, factor in enumerate(FACTORS)}


def labelled_renders(n: int, size: int, rng: np.random.Generator) -> LabelledImages:
    """`n` renders with all six factors uniformly random: the classifiers' training and test data."""
    return ShapesABC(1, size=size).sample(None, n, rng)


def train_classifier(
    train: LabelledImages,
    heldout: LabelledImages,
    *,
    width: int = 32,
    epochs: int = 6,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
) -> tuple[FactorClassifier, ClassifierReport]:
    """Fit the multi-head classifier with summed cross-entropy; report held-out accuracy per factor."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = FactorClassifier(train.images.shape[1], width)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = len(train) // batch_size
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=epochs * steps_per_epoch)
    images = to_tensor(train.images)
    labels = torch.from_numpy(train.labels)
    started = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(len(train), generator=generator)
        for step in range(steps_per_epoch):
            batch = order[step * batch_size:(step + 1) * batch_size]
            logits = model(images[batch])
            loss = sum(F.cross_entropy(head, labels[batch, k]) for k, head in enumerate(logits))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        accuracy = factor_accuracy(model.predict(heldout.images), heldout.labels)
        log.info("classifier epoch %d: loss %.3f, held-out %s", epoch + 1, loss.item(), _format(accuracy))
    report = ClassifierReport(accuracy, len(heldout), len(train), epochs, time.perf_counter() - started)
    return model, report


def save_classifier(model: FactorClassifier, report: ClassifierReport, path: Path) -> Path:
    """Weights as safetensors, with sizes and the held-out report in the metadata (no pickles)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "image_size": str(model.image_size),
        "width": str(model.width),
        "factors": json.dumps([factor.name for factor in FACTORS]),
        "report": json.dumps(report.__dict__),
    }
    tmp = path.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp), metadata=metadata)
    tmp.replace(path)
    return path


def load_classifier(path: Path = DEFAULT_CLASSIFIER) -> tuple[FactorClassifier, ClassifierReport]:
    """The classifier saved by `save_classifier`, in eval mode, and its held-out report."""
    if not path.is_file():
        raise TrainingError(
            f"No factor classifier at {path}; train one with `python -m trainer.attributes --out {path}`."
        )
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
    model = FactorClassifier(int(metadata["image_size"]), int(metadata["width"]))
    model.load_state_dict(load_file(str(path)))
    model.eval()
    return model, ClassifierReport(**json.loads(metadata["report"]))


def _format(accuracy: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.3f}" for name, value in accuracy.items())


def main(argv: list[str] | None = None) -> int:
    """`python -m trainer.attributes`: render labelled shapes, fit f_k, save them, print held-out accuracy."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32, help="image size the classifiers read (default 32)")
    parser.add_argument("--train", type=int, default=20000, help="training renders (default 20000)")
    parser.add_argument("--heldout", type=int, default=3000, help="held-out renders (default 3000)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_CLASSIFIER)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    train = labelled_renders(args.train, args.size, np.random.default_rng(args.seed))
    heldout = labelled_renders(args.heldout, args.size, np.random.default_rng(args.seed + 10_000))
    log.info("rendered %d + %d images in %.0f s", len(train), len(heldout), time.perf_counter() - started)
    model, report = train_classifier(train, heldout, width=args.width, epochs=args.epochs, seed=args.seed)
    save_classifier(model, report, args.out)
    print(f"saved {args.out} ({report.wall_time_s:.0f} s training)")
    print(f"held-out accuracy on {report.heldout_images} renders: {_format(report.accuracy)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
