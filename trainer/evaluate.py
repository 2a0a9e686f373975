"""PuppetGAN's digit metrics: Acc, r_attr, r_rest and V_rest, and the estimators and classifier they need.

The evaluation grid crosses held-out real MNIST TEST digits (inputs) with
puppet renders (references) whose attribute spans the range a model serves;
every cell is one edit Gr(input, reference). Attributes are measured from
pixels with one estimator per attribute, applied identically to inputs,
references and outputs, so the two bracketing baselines land by construction:
identity (output = input) has r_attr ~ 0, r_rest = 1, V_rest = 0; puppet copy
(output = reference) has r_attr = 1, r_rest ~ 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from engine import puppets
from engine.errors import PackageError, TrainingError
from engine.imageio import save_image
from engine.package import ModelPackage, load_package
from engine.puppets.base import Control, Puppet
from engine.puppets.digit_measures import (
    MEASURE_UNITS,
    MEASURES,
    ink_levels,
    measure_rotation,
    measure_size,
    moments,
)
from engine.resources import resource_path
from engine.runtime import create_session
from trainer.data.mnist import mnist_split

log = logging.getLogger(__name__)

# (inputs (N,S,S,3) uint8, references (R,S,S,3) uint8) -> outputs (R, N, S, S, 3) uint8
EditFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]

ATTRIBUTES = ("rotation", "size")
PAPER_ROWS = {
    "rotation": {"Acc": 0.97, "r_attr": 0.40, "r_rest": 0.11, "V_rest": 0.01},
    "size": {"Acc": 0.73, "r_attr": 0.85, "r_rest": 0.02, "V_rest": 0.02},
}


# ---------------------------------------------------------------- undoing a measured attribute

def canonicalise(images: np.ndarray, attribute: str, *, target_size: float = 1.0) -> np.ndarray:
    """Undo the measured attribute of each image: centre its centroid, then turn it upright (rotation) or
    scale it to measure `target_size` (size, in the puppet's units). Returns (N, S, S) float in [0, 1].

    V_rest is measured on these canonical images: what remains is the non-attribute part.
    """
    grey = ink_levels(images)
    size = grey.shape[-1]
    cx, cy, _, _, _ = moments(grey)
    centre = (size - 1) / 2.0
    if attribute == "rotation":
        angles, scales = measure_rotation(images), np.ones(len(grey))
    elif attribute == "size":
        angles, scales = np.zeros(len(grey)), target_size / np.maximum(measure_size(images), 1e-3)
    else:
        raise ValueError(f"unknown attribute {attribute!r}: use one of {ATTRIBUTES}")
    out = np.empty_like(grey)
    for i, image in enumerate(grey):
        # cv2: positive angle turns counter-clockwise; undo the measured counter-clockwise turn
        matrix = cv2.getRotationMatrix2D((float(cx[i]), float(cy[i])), -float(angles[i]), float(scales[i]))
        matrix[:, 2] += (centre - cx[i], centre - cy[i])
        out[i] = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=0.0)
    return out


def scale_to_size(images: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Scale each digit about the image centre so that `measure_size` reads `sizes` (the puppet's size units).

    Gives real digits the puppet's meaning of size, the ink height: MNIST fills a
    20 px box on the longer side, so a wide digit is short for its shape.
    """
    factors = np.asarray(sizes, np.float64) / np.maximum(measure_size(images), 0.25)
    side = images.shape[1]
    centre = (side - 1) / 2.0
    out = np.empty_like(images)
    for i, (image, factor) in enumerate(zip(images, factors)):
        matrix = cv2.getRotationMatrix2D((centre, centre), 0.0, float(factor))
        out[i] = cv2.warpAffine(image, matrix, (side, side), flags=cv2.INTER_LINEAR, borderValue=0.0)
    return out


# ---------------------------------------------------------------- metrics

@dataclass(frozen=True)
class MetricsRow:
    """One row of PuppetGAN's table."""

    name: str
    attribute: str
    Acc: float
    r_attr: float
    r_rest: float
    V_rest: float

    def as_dict(self) -> dict[str, float | str]:
        """The row to the digits `format_table` prints, so a manifest, the editor and the CLI show one number."""
        return {"attribute": self.attribute, "Acc": round(self.Acc, 3), "r_attr": round(self.r_attr, 3),
                "r_rest": round(self.r_rest, 3), "V_rest": round(self.V_rest, 4)}


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x = x - x.mean()
    y = y - y.mean()
    denominator = math.sqrt(float((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / denominator) if denominator > 0 else 0.0


def grid_metrics(name: str, attribute: str, inputs: np.ndarray, labels: np.ndarray, references: np.ndarray,
                 outputs: np.ndarray, classify: Callable[[np.ndarray], np.ndarray]) -> MetricsRow:
    """Acc, r_attr, r_rest and V_rest of a grid of outputs (R references x N inputs).

    - Acc: the classifier reads the input's label in the output, over all cells.
    - r_attr: Pearson correlation, over all cells, of the reference's measured attribute and the output's.
    - r_rest: the same between the input's measured attribute and the output's (0 is ideal).
    - V_rest: per input, the per-pixel std across references of the canonicalised outputs (pixels in [0, 1]),
      averaged over pixels and inputs.
    """
    measure = MEASURES[attribute]
    n_refs, n_inputs = outputs.shape[:2]
    flat = outputs.reshape(n_refs * n_inputs, *outputs.shape[2:])
    out_attr = measure(flat).reshape(n_refs, n_inputs)
    ref_attr = np.repeat(measure(references)[:, None], n_inputs, axis=1)
    in_attr = np.repeat(measure(inputs)[None, :], n_refs, axis=0)
    predicted = classify(flat).reshape(n_refs, n_inputs)
    accuracy = float((predicted == labels[None, :]).mean())
    canonical = canonicalise(flat, attribute).reshape(n_refs, n_inputs, *flat.shape[1:3])
    spread = float(canonical.std(axis=0).mean())
    return MetricsRow(name, attribute, accuracy, _pearson(ref_attr.ravel(), out_attr.ravel()),
                      _pearson(in_attr.ravel(), out_attr.ravel()), spread)


def identity_outputs(inputs: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Baseline: the output is the input, whatever the reference."""
    return np.broadcast_to(inputs[None], (len(references), *inputs.shape)).copy()


def puppet_copy_outputs(inputs: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Baseline: the output is the reference, whatever the input."""
    return np.broadcast_to(references[:, None], (len(references), len(inputs), *references.shape[1:])).copy()


def format_table(rows: Sequence[MetricsRow], attribute: str) -> str:
    """The table as printed by `puppetry-train evaluate`, with the paper's row for comparison."""
    paper_name = "PuppetGAN (paper, reported)"
    width = max(len(paper_name), *(len(row.name) for row in rows))
    lines = [f"{'model':<{width}} {'attr':<9} {'Acc':>6} {'r_attr':>7} {'r_rest':>7} {'V_rest':>7}"]
    for row in rows:
        lines.append(f"{row.name:<{width}} {row.attribute:<9} {row.Acc:6.3f} {row.r_attr:7.3f} "
                     f"{row.r_rest:7.3f} {row.V_rest:7.4f}")
    paper = PAPER_ROWS.get(attribute)
    if paper:
        lines.append(f"{paper_name:<{width}} {attribute:<9} {paper['Acc']:6.3f} {paper['r_attr']:7.3f} "
                     f"{paper['r_rest']:7.3f} {paper['V_rest']:7.4f}")
    return "\n".join(lines)


# ---------------------------------------------------------------- digit classifier

CLASSIFIER_PATH = resource_path("classifiers", "mnist_digits.safetensors")


CLASSIFIER_MEMBERS = 3  # nets averaged: one net's training seed moves a model's measured Acc by up to 0.01


def _classifier_member() -> nn.Module:
    """One CNN (~0.66M parameters) reading 32 x 32 grey digits in [0, 1]: two 3 x 3 convolutions per scale."""
    layers: list[nn.Module] = []
    channels = 1
    for width, convolutions in ((32, 2), (64, 2), (128, 1)):
        for _ in range(convolutions):
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
            channels = width
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(128 * 16, 256), nn.ReLU(), nn.Dropout(0.4),
                         nn.Linear(256, 10))


class ClassifierEnsemble(nn.Module):
    """Members' log-probabilities averaged: a steadier ruler than any one member."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) in [0, 1] -> (B, 10) mean log-probabilities."""
        return torch.stack([member(images).log_softmax(1) for member in self.members]).mean(0)


def augment_digits(grey: np.ndarray, rng: np.random.Generator, max_rotation: float = 60.0,
                   scale_range: tuple[float, float] = (0.6, 1.4), max_shift: float = 2.0) -> np.ndarray:
    """Random rotation, scale and shift of (N, S, S[, C]) digits, so the classifier reads identity, not pose.

    The ranges cover every rotation and size a digit model serves; without them Acc
    would penalise a correctly rotated digit the classifier has never seen turned.
    """
    size = grey.shape[1]
    centre = (size - 1) / 2.0
    out = np.empty_like(grey)
    for i, image in enumerate(grey):
        matrix = cv2.getRotationMatrix2D((centre, centre), float(rng.uniform(-max_rotation, max_rotation)),
                                         float(rng.uniform(*scale_range)))
        matrix[:, 2] += rng.uniform(-max_shift, max_shift, size=2)
        out[i] = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=0.0)
    return out


@dataclass(frozen=True)
class DigitClassifier:
    """A trained digit classifier and its held-out accuracy on the MNIST TEST split (plain and augmented)."""

    net: nn.Module
    test_accuracy: float
    augmented_test_accuracy: float

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) or (N, S, S) uint8 -> (N,) predicted digits.

        Each distinct image is read once: the baselines repeat every input (or reference)
        across a whole row of the grid, and three CNNs per image are not cheap on a CPU.
        """
        distinct, where = np.unique(images.reshape(len(images), -1), axis=0, return_inverse=True)
        grey = torch.from_numpy(ink_levels(distinct.reshape(-1, *images.shape[1:]))).float()[:, None]
        with torch.no_grad():
            predicted = np.concatenate([self.net(chunk).argmax(1).numpy() for chunk in grey.split(512)])
        return predicted[where.reshape(-1)]


def _train_member(grey: np.ndarray, labels: torch.Tensor, epochs: int, seed: int) -> nn.Module:
    """One member fitted on (N, S, S) digits in [0, 1], freshly augmented every epoch."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = _classifier_member()
    optimiser = torch.optim.Adam(net.parameters(), lr=2e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=3e-3, total_steps=epochs * math.ceil(len(grey) / 64))
    for epoch in range(epochs):
        net.train()
        images = torch.from_numpy(augment_digits(grey, rng))[:, None]
        order = torch.from_numpy(rng.permutation(len(images)))
        for batch in order.split(64):
            optimiser.zero_grad()
            F.cross_entropy(net(images[batch]), labels[batch]).backward()
            optimiser.step()
            schedule.step()
        log.info("digit classifier (seed %d) epoch %d/%d", seed, epoch + 1, epochs)
    return net.eval()


def train_classifier(epochs: int = 30, seed: int = 0) -> DigitClassifier:
    """Fit the classifier on the MNIST TRAIN split only (4,000 digits, augmented) and score it on TEST."""
    train = mnist_split("train", grayscale=True)
    test = mnist_split("test", grayscale=True)
    grey = train.images.astype(np.float32) / 255.0
    labels = torch.from_numpy(train.label("digit").copy())
    net = ClassifierEnsemble([_train_member(grey, labels, epochs, seed + i) for i in range(CLASSIFIER_MEMBERS)]).eval()
    classifier = DigitClassifier(net, 0.0, 0.0)
    test_labels = test.label("digit")
    plain = float((classifier(test.images) == test_labels).mean())
    augmented = (augment_digits(test.images.astype(np.float32) / 255.0, np.random.default_rng(seed + 1)) * 255.0)
    turned = float((classifier(augmented.round().astype(np.uint8)) == test_labels).mean())
    return DigitClassifier(net, plain, turned)


def load_classifier(path: Path = CLASSIFIER_PATH) -> DigitClassifier:
    """The cached classifier at `path` (safetensors + JSON accuracy beside it), trained and saved on first use."""
    info_path = path.with_suffix(".json")
    if path.exists() and info_path.exists():
        net = ClassifierEnsemble([_classifier_member() for _ in range(CLASSIFIER_MEMBERS)])
        net.load_state_dict(load_file(str(path)))
        net.eval()
        info = json.loads(info_path.read_text())
        return DigitClassifier(net, info["test_accuracy"], info["augmented_test_accuracy"])
    log.info("training the MNIST digit classifier (train split only); cached at %s", path)
    classifier = train_classifier()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in classifier.net.state_dict().items()}, str(temporary))
    temporary.replace(path)
    info_path.write_text(json.dumps({
        "test_accuracy": classifier.test_accuracy,
        "augmented_test_accuracy": classifier.augmented_test_accuracy,
        "trained_on": f"MNIST train split (trainer.data.mnist.mnist_split('train'), 4,000 digits), augmented: "
                      f"rotation +-60 deg, scale 0.6-1.4, shift +-2 px; {CLASSIFIER_MEMBERS} nets (seeds 0.."
                      f"{CLASSIFIER_MEMBERS - 1}) averaged",
    }, indent=2) + "\n")
    return classifier


# ---------------------------------------------------------------- the evaluation grid

FULL_GRID_INPUTS = 1000  # every MNIST TEST digit
FULL_GRID_REFERENCES = 9
GRID_SEED = 2019  # the references' random rest controls; fixed so every model meets the same grid
# Controls a puppet gained after the first tables were measured, held at their defaults in the grid, so that
# every table (old packages' included) is measured on the same references.
GRID_HELD_AT_DEFAULT: dict[str, tuple[str, ...]] = {"digits": ("width",)}


def selection_score(row: MetricsRow) -> float:
    """One number to pick checkpoints by: content kept plus attribute followed, minus the old attribute leaking."""
    return row.Acc + row.r_attr - abs(row.r_rest)


@dataclass(frozen=True)
class EvaluationGrid:
    """Held-out real inputs (columns) x puppet references (rows) for one attribute, and the classifier."""

    attribute: str
    inputs: np.ndarray  # (N, S, S, 3) uint8, MNIST TEST digits
    labels: np.ndarray  # (N,) their classes
    references: np.ndarray  # (R, S, S, 3) uint8, puppet renders
    reference_values: np.ndarray  # (R,) the AoI control value of each reference
    classifier: DigitClassifier
    held: tuple[str, ...] = ()  # puppet controls held at their defaults in the references

    def metrics(self, name: str, outputs: np.ndarray) -> MetricsRow:
        """The table row of `outputs` (R, N, S, S, 3), one edit per cell."""
        return grid_metrics(name, self.attribute, self.inputs, self.labels, self.references, outputs, self.classifier)

    def baselines(self) -> list[MetricsRow]:
        """Identity (output = input) and puppet copy (output = reference): the brackets of every table."""
        return [self.metrics("identity (output = input)", identity_outputs(self.inputs, self.references)),
                self.metrics("puppet copy (output = ref)", puppet_copy_outputs(self.inputs, self.references))]

    def notes(self) -> str:
        low, high = self.reference_values.min(), self.reference_values.max()
        held = "".join(f", {name} at its default" for name in self.held)
        return (f"grid: {len(self.inputs)} MNIST TEST digits x {len(self.references)} puppet references, "
                f"{self.attribute} {low:g}..{high:g}, other puppet controls random (seed {GRID_SEED}){held}; "
                f"{self.attribute} measured from pixels ({MEASURES[self.attribute].__name__}: "
                f"{MEASURE_UNITS[self.attribute]}) for inputs, references and outputs alike; Acc by "
                f"{CLASSIFIER_MEMBERS} CNNs (averaged) trained on the MNIST train split (held-out accuracy "
                f"{self.classifier.test_accuracy:.3f}); V_rest = std across references of outputs with the measured "
                f"attribute undone (centred, {self.attribute} normalised), pixels in [0, 1].")


def grid_references(puppet: Puppet, control: Control, fixed: Mapping[str, float],
                    n_references: int = FULL_GRID_REFERENCES,
                    size: int = 32) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Puppet renders spanning `control`'s min..max evenly, the other controls drawn at random from GRID_SEED.

    Returns (references (R, S, S, 3) uint8, their control values (R,), the controls held at
    their defaults): `fixed` and GRID_HELD_AT_DEFAULT are not drawn.
    """
    rng = np.random.default_rng(GRID_SEED)
    held = {name: puppet.control(name).default for name in GRID_HELD_AT_DEFAULT.get(puppet.name, ())
            if name != control.name and name not in fixed}
    rest = [c.name for c in puppet.controls if c.name != control.name and c.name not in fixed and c.name not in held]
    values = np.linspace(control.minimum, control.maximum, n_references)
    references = np.stack([
        puppet.render({**puppet.sample(rng, rest), **held, **dict(fixed), control.name: float(value)}, size,
                      seed=int(rng.integers(2**31 - 1)))
        for value in values])
    return references, values, tuple(held)


def evaluation_grid(puppet: Puppet, control: Control, fixed: Mapping[str, float], n_inputs: int = FULL_GRID_INPUTS,
                    n_references: int = FULL_GRID_REFERENCES, size: int = 32,
                    classifier: DigitClassifier | None = None) -> EvaluationGrid:
    """The grid for `control` (the served AoI) of `puppet`: the first n_inputs / 10 TEST digits of each class
    x `grid_references`."""
    test = mnist_split("test")
    per_class = max(1, n_inputs // 10)
    digits = test.label("digit")
    chosen = np.concatenate([np.flatnonzero(digits == k)[:per_class] for k in range(10)])
    references, values, held = grid_references(puppet, control, fixed, n_references, size)
    return EvaluationGrid(control.name, np.ascontiguousarray(test.images[chosen]), digits[chosen], references, values,
                          classifier if classifier is not None else load_classifier(), held)


def preview_grid(inputs: np.ndarray, references: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 picture: top row the real inputs, then one row per reference: the reference, its edits."""
    size = inputs.shape[1]
    blank = np.zeros((size, size, 3), np.uint8)
    rows = [np.concatenate([blank, *inputs], axis=1)]
    rows += [np.concatenate([reference, *row], axis=1) for reference, row in zip(references, outputs)]
    picture = np.concatenate(rows, axis=0)
    picture[size - 1, :] = 96  # separate the inputs row
    picture[:, size - 1] = 96  # and the references column
    return picture


# ---------------------------------------------------------------- evaluating a run or a package

def package_edit_function(package: ModelPackage) -> EditFunction:
    """Edits through a package's own ONNX graphs, normalised as the editor does: what ships is what is measured."""
    encoder = create_session(package.graph_path("encoder"), provider="cpu", threads=1)
    decoder = create_session(package.graph_path("decoder_real"), provider="cpu", threads=1)
    low, high = package.normalisation.range

    def model_input(pixels: np.ndarray) -> np.ndarray:
        image = pixels.astype(np.float32)
        if package.normalisation.grayscale:
            image = np.repeat(image.mean(axis=-1, keepdims=True), 3, axis=-1)
        return np.ascontiguousarray((image * ((high - low) / 255.0) + low).transpose(0, 3, 1, 2))

    def edit(inputs: np.ndarray, references: np.ndarray) -> np.ndarray:
        rest = encoder.run({"image": model_input(inputs)})["rest_code"]  # (N, 64)
        attribute = encoder.run({"image": model_input(references)})["attribute_code"]  # (R, 64)
        rows = []
        for code in attribute:
            (image,) = decoder.run({"attribute_code": np.repeat(code[None], len(rest), axis=0),
                                    "rest_code": rest}).values()
            grey = image.mean(axis=1) if package.normalisation.grayscale else image.transpose(0, 2, 3, 1)
            pixels = np.clip(np.rint((grey - low) * (255.0 / (high - low))), 0, 255).astype(np.uint8)
            rows.append(np.repeat(pixels[..., None], 3, axis=-1) if pixels.ndim == 3 else pixels)
        return np.stack(rows)

    return edit


def load_run_method(run_dir: Path, step: int | None = None) -> tuple[Any, int]:
    """A run's method with the weights of its newest (or `step`'s) checkpoint, on CPU; returns (method, step)."""
    # imported here: trainer.methods.puppetgan imports this module, and the loop imports the methods
    from trainer import checkpoint as ckpt
    from trainer.loop import read_config
    from trainer.methods import config_from_dict, load

    config = read_config(run_dir)
    method_class = load(config.method)
    torch.manual_seed(config.seed)
    method = method_class(config_from_dict(method_class.config_class, config.method_config), torch.device("cpu"),
                          config.seed)
    info = ckpt.load_checkpoint(ckpt.find_checkpoint(run_dir, step), method.modules(), method.optimizers())
    return method, int(info["step"])


def evaluate_target(target: Path, checkpoint: int | None = None, n_inputs: int = FULL_GRID_INPUTS,
                    n_references: int = FULL_GRID_REFERENCES) -> tuple[list[MetricsRow], EvaluationGrid, np.ndarray]:
    """Evaluate a model package (its ONNX graphs) or a training run (a checkpoint, in torch) on the full grid.

    Returns the rows (baselines first, then the model), the grid and the model's outputs.
    """
    target = Path(target)
    if (target / "config.json").exists() and not (target / "manifest.json").exists():
        method, step = load_run_method(target, checkpoint)
        _check_measurable(target, method.served.name)
        grid = evaluation_grid(method.sampler.puppet, method.served, dict(method.config.fixed), n_inputs, n_references)
        name = f"{target.name} @ step {step} (torch)"
        outputs = method.edit(grid.inputs, grid.references)
    else:
        try:
            package = load_package(target)
        except PackageError as error:
            raise TrainingError(f"{target} is neither a training run (config.json) nor a model package: {error}") from error
        if package.puppet is None or len(package.puppet.controls) != 1:
            raise TrainingError(f"{target}: evaluate measures puppet packages with one served control.")
        _check_measurable(target, package.puppet.controls[0].name)
        grid = evaluation_grid(puppets.load(package.puppet.kind), package.puppet.controls[0],
                               dict(package.puppet.fixed), n_inputs, n_references, size=package.image_size)
        name = f"{package.name} (ONNX)"
        outputs = package_edit_function(package)(grid.inputs, grid.references)
    return [*grid.baselines(), grid.metrics(name, outputs)], grid, outputs


def _check_measurable(target: Path, attribute: str) -> None:
    """Refuse, naming the attribute, a model whose attribute no estimator reads from pixels."""
    if attribute not in MEASURES:
        raise TrainingError(f"{target}: evaluate measures {' and '.join(MEASURES)} on MNIST digits; no estimator "
                            f"reads {attribute!r} from pixels. Judge this model by its training previews.")


def write_manifest_metrics(package_dir: Path, row: MetricsRow, notes: str) -> Path:
    """Replace the "metrics" of the package folder's manifest.json with `row` and `notes`, atomically.

    Everything else in the manifest (graph hashes, provenance) is kept as parsed and
    written as the exporter writes it, so the package still loads; the file is written beside the manifest and
    renamed over it, so a crash leaves the old manifest, never half a new one.
    """
    manifest_path = Path(package_dir) / "manifest.json"
    if not manifest_path.is_file():
        raise TrainingError(f"--write-manifest needs a package folder holding manifest.json; {package_dir} has none "
                            "(unzip a .puppetry archive first).")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["metrics"] = {"table": [row.as_dict()], "notes": notes}
    temporary = manifest_path.with_name(f".{manifest_path.name}.tmp")
    try:
        temporary.write_text(json.dumps(manifest, indent=2) + "\n")
        os.replace(temporary, manifest_path)
    finally:
        temporary.unlink(missing_ok=True)
    return manifest_path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """`puppetry-train evaluate RUN_DIR_OR_PACKAGE`: print PuppetGAN's table for a run or a package."""
    parser = subparsers.add_parser("evaluate", help="measure Acc, r_attr, r_rest, V_rest of a run or a package")
    parser.add_argument("target", type=Path, metavar="RUN_DIR_OR_PACKAGE")
    parser.add_argument("--checkpoint", type=int, metavar="STEP", help="for a run: checkpoint step (default newest)")
    parser.add_argument("--inputs", type=int, default=FULL_GRID_INPUTS, help="MNIST TEST digits in the grid")
    parser.add_argument("--references", type=int, default=FULL_GRID_REFERENCES, help="puppet references in the grid")
    parser.add_argument("--grid-png", type=Path, help="also save a picture of 10 inputs x every reference here")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    parser.add_argument("--write-manifest", action="store_true",
                        help="for a package folder: store the model's measured row in its manifest.json \"metrics\"")
    parser.set_defaults(run=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    target = Path(args.target)
    if args.write_manifest and not (target / "manifest.json").is_file():
        raise TrainingError(f"--write-manifest needs a package folder holding manifest.json; {target} has none.")
    rows, grid, outputs = evaluate_target(target, args.checkpoint, args.inputs, args.references)
    if args.json:
        print(json.dumps([{"model": row.name, **row.as_dict()} for row in rows], indent=1))
    else:
        print(format_table(rows, grid.attribute))
        print(f"({grid.notes()})")
    if args.write_manifest:
        notes = f"{grid.notes()} Written by `puppetry-train evaluate --write-manifest` from the package's ONNX graphs."
        print(f"metrics written to {write_manifest_metrics(target, rows[-1], notes)}")
    if args.grid_png:
        columns = np.concatenate([np.flatnonzero(grid.labels == k)[:1] for k in range(10)])
        picture = preview_grid(grid.inputs[columns], grid.references, outputs[:, columns])
        picture = cv2.resize(picture, None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST)
        save_image(args.grid_png, picture)
        print(f"grid picture: {args.grid_png}")
    return 0
