"""Guided-translation metrics (RIFT, papers.md §2): manipulation accuracy per attribute and direction, ACC, RD.

For a held-out pair (source x of one domain, guide y of the other) the output
F(x, y) should keep the shared factors of x and take the factors specific to
y's domain from y. For each such factor k, over the pairs whose labels differ
(y_k(x) != y_k(y): otherwise copying either image is right and the pair says
nothing), ACC_k is the fraction of outputs the classifier f_k reads as the
target class. The labels are the renderer's ground truth; with classifiers near
100% held-out accuracy this equals the paper's f_k(x) != f_k(y) condition.
Baselines bracket the metric by construction: copying the source scores 100%
on shared and 0% on specific factors, copying the guide the reverse.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from trainer.data.shapes_abc import FACTOR_NAMES, SPLITS, ShapesABC

log = logging.getLogger(__name__)

Direction = Literal["a2b", "b2a"]
DIRECTIONS: tuple[Direction, ...] = ("a2b", "b2a")

# (sources (N,S,S,3) uint8, guides (N,S,S,3) uint8, direction) -> outputs (N,S,S,3) uint8
GuidedTranslation = Callable[[np.ndarray, np.ndarray, Direction], np.ndarray]
# (N,S,S,3) uint8 -> (N, 6) int64 factor classes
FactorReader = Callable[[np.ndarray], np.ndarray]

# papers.md §2: RIFT's reported ACC on 3D shapes (%), and its RD over the three data sets.
PAPER_RIFT = {"ACC": 88.0, "RD": 6.0}
PAPER_RANDOM = {"ACC": 12.0, "RD": 9.0}


@dataclass(frozen=True)
class GuidedPairs:
    """Held-out (source, guide) pairs of one direction, with the renderer's factor labels."""

    direction: Direction
    sources: np.ndarray  # (N, S, S, 3) uint8
    source_labels: np.ndarray  # (N, 6) int64
    guides: np.ndarray
    guide_labels: np.ndarray


@dataclass(frozen=True)
class AttributeRow:
    """Manipulation accuracy of one factor in one direction."""

    direction: Direction
    attribute: str
    role: Literal["shared", "specific"]  # keep from the source, or take from the guide
    accuracy: float  # in [0, 1]
    pairs: int  # pairs whose labels differ on this factor


HELDOUT_ONE_IN = 10  # one factor combination in ten never appears in training
_COMBINATION_HASH = np.array([1, 11, 101, 1009, 10007, 100003], dtype=np.int64)


def is_heldout(labels: np.ndarray) -> np.ndarray:
    """(N, 6) factor classes -> (N,) bool: the combinations reserved for evaluation.

    3D-Shapes-ABC is a finite grid (4000 to 4800 combinations per domain), so a
    run that draws renders at random sees nearly all of them; a fixed tenth of
    the combinations, chosen by a hash of the six classes, is kept out of training.
    """
    return (labels @ _COMBINATION_HASH) % HELDOUT_ONE_IN == 0


def sample_labels(data: ShapesABC, domain: str, n: int, rng: np.random.Generator, heldout: bool) -> np.ndarray:
    """`n` label rows of `domain`, all from the held-out combinations or all from the training ones."""
    rows: list[np.ndarray] = []
    while sum(len(r) for r in rows) < n:
        labels = data.sample_labels(domain, 2 * n if heldout else n + n // 4 + 1, rng)
        rows.append(labels[is_heldout(labels) == heldout])
    return np.concatenate(rows)[:n]


def heldout_pairs(data: ShapesABC, n: int, rng: np.random.Generator) -> dict[Direction, GuidedPairs]:
    """`n` random pairs per direction from held-out combinations: A sources with B guides, and the reverse."""
    a = sample_labels(data, "A", 2 * n, rng, heldout=True)
    b = sample_labels(data, "B", 2 * n, rng, heldout=True)
    a_images, b_images = data.render(a), data.render(b)
    return {
        "a2b": GuidedPairs("a2b", a_images[:n], a[:n], b_images[:n], b[:n]),
        "b2a": GuidedPairs("b2a", b_images[n:], b[n:], a_images[n:], a[n:]),
    }


def scored_factors(split: int, direction: Direction) -> dict[str, Literal["shared", "specific"]]:
    """The factors a direction is scored on: the shared ones, and those specific to the guide's domain."""
    factors = SPLITS[split]
    specific = factors.specific_b if direction == "a2b" else factors.specific_a
    return {**{name: "shared" for name in factors.shared}, **{name: "specific" for name in specific}}


def manipulation_accuracy(
    predicted: np.ndarray, pairs: GuidedPairs, split: int
) -> list[AttributeRow]:
    """ACC_k = p(f_k(F(x, y)) = target_k | x_k != y_k), target = source's class (shared) or guide's (specific)."""
    rows = []
    for name, role in scored_factors(split, pairs.direction).items():
        k = FACTOR_NAMES.index(name)
        differ = pairs.source_labels[:, k] != pairs.guide_labels[:, k]
        target = pairs.source_labels[:, k] if role == "shared" else pairs.guide_labels[:, k]
        hits = predicted[differ, k] == target[differ]
        rows.append(AttributeRow(pairs.direction, name, role, float(hits.mean()) if differ.any() else float("nan"),
                                 int(differ.sum())))
    return rows


def summarise(rows: Sequence[AttributeRow]) -> dict[str, float]:
    """ACC (mean over scored factors and directions, %), ACC_shared, ACC_specific and RD.

    RD = 100 * sum_d |ACC_shared,d - ACC_specific,d| / sum_d (ACC_shared,d + ACC_specific,d) over the
    directions d: 0 when keeping and changing succeed equally often.
    """
    def mean(selected: list[AttributeRow]) -> float:
        return float(np.mean([row.accuracy for row in selected]))

    gaps, totals = [], []
    for direction in sorted({row.direction for row in rows}):
        shared = mean([r for r in rows if r.direction == direction and r.role == "shared"])
        specific = mean([r for r in rows if r.direction == direction and r.role == "specific"])
        gaps.append(abs(shared - specific))
        totals.append(shared + specific)
    return {
        "ACC": 100 * mean(list(rows)),
        "ACC_shared": 100 * mean([r for r in rows if r.role == "shared"]),
        "ACC_specific": 100 * mean([r for r in rows if r.role == "specific"]),
        "RD": 100 * sum(gaps) / sum(totals) if sum(totals) > 0 else float("nan"),
    }


def evaluate_translation(
    translate: GuidedTranslation, read_factors: FactorReader, pairs: dict[Direction, GuidedPairs], split: int
) -> tuple[list[AttributeRow], dict[str, float]]:
    """Rows per factor and direction, and their summary, for one translation function."""
    rows: list[AttributeRow] = []
    for direction, direction_pairs in pairs.items():
        outputs = translate(direction_pairs.sources, direction_pairs.guides, direction)
        rows += manipulation_accuracy(read_factors(outputs), direction_pairs, split)
    return rows, summarise(rows)


def copy_source(sources: np.ndarray, guides: np.ndarray, direction: Direction) -> np.ndarray:
    """Baseline: the output is the source unchanged (keeps everything, takes nothing)."""
    return sources


def copy_guide(sources: np.ndarray, guides: np.ndarray, direction: Direction) -> np.ndarray:
    """Baseline: the output is the guide (takes everything, keeps nothing)."""
    return guides


def random_target(data: ShapesABC, rng: np.random.Generator) -> GuidedTranslation:
    """Baseline: the output is a random held-out render of the guide's domain, unrelated to either input."""

    def translate(sources: np.ndarray, guides: np.ndarray, direction: Direction) -> np.ndarray:
        return data.render(sample_labels(data, "B" if direction == "a2b" else "A", len(sources), rng, heldout=True))

    return translate


def compare(
    translations: dict[str, GuidedTranslation],
    read_factors: FactorReader,
    data: ShapesABC,
    pairs: dict[Direction, GuidedPairs],
    seed: int = 0,
) -> dict[str, tuple[list[AttributeRow], dict[str, float]]]:
    """The given translations and the three baselines (random, copy-source, copy-guide) on the same pairs."""
    candidates: dict[str, GuidedTranslation] = {
        **translations,
        "random": random_target(data, np.random.default_rng(seed)),
        "copy-source": copy_source,
        "copy-guide": copy_guide,
    }
    return {name: evaluate_translation(fn, read_factors, pairs, data.split) for name, fn in candidates.items()}


SHORT_NAMES = {"floor_hue": "floor", "wall_hue": "wall", "object_hue": "object", "scale": "scale",
               "shape": "shape", "orientation": "orient"}


def format_table(results: dict[str, tuple[list[AttributeRow], dict[str, float]]],
                 reference_rows: dict[str, dict[str, float]] | None = None) -> str:
    """A plain-text table: one line per model, ACC per factor and direction (%), then ACC and RD."""
    first_rows = next(iter(results.values()))[0]
    columns = [f"{row.direction} {SHORT_NAMES[row.attribute]}:{row.role[:2]}" for row in first_rows]
    header = f"{'model':<20}" + "".join(f"{c:>16}" for c in columns) + f"{'ACC':>7}{'RD':>7}"
    lines = [header]
    for name, (rows, summary) in results.items():
        cells = "".join(f"{100 * row.accuracy:>16.1f}" for row in rows)
        lines.append(f"{name:<20}{cells}{summary['ACC']:>7.1f}{summary['RD']:>7.1f}")
    for name, summary in (reference_rows or {}).items():
        note = "(paper: ACC on 3D shapes, RD over its three data sets)"
        lines.append(f"{name:<20}{note:>{16 * len(columns)}}{summary['ACC']:>7.1f}{summary['RD']:>7.1f}")
    return "\n".join(lines)


def table_rows(rows: Sequence[AttributeRow]) -> list[dict[str, object]]:
    """Rows as manifest-ready dicts (accuracy in %)."""
    return [{"direction": r.direction, "attribute": r.attribute, "role": r.role,
             "ACC": round(100 * r.accuracy, 1), "pairs": r.pairs} for r in rows]
