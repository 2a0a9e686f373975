"""`puppetry-train preview-data`: labelled PNG grids of what a model would be trained on.

Looking at the data before training catches most mistakes (a wrong attribute
range, a fixed factor that varies, a folder full of thumbnails). Each source
has a builder that returns a `Grid` of labelled tiles; `draw_grid` turns any
Grid into one picture, upscaling tiles with nearest-neighbour so 32-pixel
digits stay crisp, and writing labels under tiles, beside rows and above
columns.
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from engine.imageio import save_image
from engine.puppets import load as load_puppet
from engine.puppets.base import Control, Puppet
from trainer.data.folders import load_folder
from trainer.data.mnist import mnist_split
from trainer.data.shapes_abc import FACTORS, ShapesABC
from trainer.data.triplets import TripletSampler, TripletSpec
from trainer.data.video import load_video

log = logging.getLogger(__name__)

BACKGROUND = (32, 32, 32)
TEXT = (235, 235, 235)
MUTED = (160, 160, 160)
GAP = 4            # pixels between tiles
MARGIN = 8         # pixels around the whole grid
FONT_PX = 12
LINE_PX = 15       # height of one text line
DEFAULT_TILE_PX = 96

# Short names for the six 3dshapes factors in tile labels: the legend sits in the grid's title.
FACTOR_ABBREVIATIONS = {
    "floor_hue": "fl", "wall_hue": "wa", "object_hue": "ob", "scale": "sc", "shape": "sh", "orientation": "or",
}


@dataclass(frozen=True)
class Tile:
    """One image in a grid and the text written under it (lines split on newlines)."""

    image: np.ndarray  # (h, w, 3) or (h, w) uint8
    label: str = ""


@dataclass(frozen=True)
class Grid:
    """Rows of labelled tiles (all the same size) with optional row, column and title text."""

    rows: tuple[tuple[Tile, ...], ...]
    title: str = ""
    row_labels: tuple[str, ...] = ()
    column_labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Layout:
    """Where everything of a drawn grid goes: canvas size, tile boxes (x, y, w, h), text anchors."""

    width: int
    height: int
    tile_boxes: dict[tuple[int, int], tuple[int, int, int, int]]
    scale: int
    title_lines: tuple[str, ...]
    column_label_lines: tuple[tuple[str, ...], ...]  # each column label wrapped to the tile width
    column_label_height: int


@cache
def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled font: no font files to find on the user's system."""
    return ImageFont.load_default(FONT_PX)


def _text_width(text: str) -> int:
    return math.ceil(_font().getlength(text))


def _wrap(text: str, width: int) -> tuple[str, ...]:
    """Lines of `text` no wider than `width` pixels, breaking at spaces; newlines force a break."""
    lines: list[str] = []
    for paragraph in text.splitlines():
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if line and _text_width(candidate) > width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return tuple(lines)


def layout(grid: Grid, tile_px: int = DEFAULT_TILE_PX) -> Layout:
    """Place a grid: tiles upscaled by the smallest integer factor that makes them at least `tile_px` wide."""
    tile_height, tile_width = grid.rows[0][0].image.shape[:2]
    scale = max(1, math.ceil(tile_px / tile_width))
    cell_width, cell_height = tile_width * scale, tile_height * scale
    columns = max(len(row) for row in grid.rows)
    label_lines = max((len(tile.label.splitlines()) for row in grid.rows for tile in row), default=0)
    row_label_width = max((_text_width(text) for text in grid.row_labels), default=0)
    row_label_width = row_label_width + GAP if row_label_width else 0
    column_label_lines = tuple(_wrap(text, cell_width) for text in grid.column_labels)
    column_label_height = max((len(lines) * LINE_PX + GAP for lines in column_label_lines), default=0)
    grid_width = row_label_width + columns * cell_width + (columns - 1) * GAP
    title_lines = _wrap(grid.title, max(grid_width, 320)) if grid.title else ()
    width = 2 * MARGIN + max(grid_width, max((_text_width(line) for line in title_lines), default=0))
    top = MARGIN + len(title_lines) * LINE_PX + (GAP if title_lines else 0) + column_label_height
    row_height = cell_height + label_lines * LINE_PX + GAP
    boxes = {
        (r, c): (MARGIN + row_label_width + c * (cell_width + GAP), top + r * row_height, cell_width, cell_height)
        for r, row in enumerate(grid.rows)
        for c in range(len(row))
    }
    height = top + len(grid.rows) * row_height - GAP + MARGIN
    return Layout(width, height, boxes, scale, title_lines, column_label_lines, column_label_height)


def draw_grid(grid: Grid, tile_px: int = DEFAULT_TILE_PX) -> np.ndarray:
    """The grid as one (H, W, 3) uint8 picture."""
    if not grid.rows or not any(grid.rows):
        raise ValueError("a preview grid needs at least one tile")
    placed = layout(grid, tile_px)
    canvas = np.empty((placed.height, placed.width, 3), dtype=np.uint8)
    canvas[:] = BACKGROUND
    for (r, c), (x, y, w, h) in placed.tile_boxes.items():
        canvas[y:y + h, x:x + w] = _upscale(grid.rows[r][c].image, placed.scale)
    picture = Image.fromarray(canvas)
    _draw_text(ImageDraw.Draw(picture), grid, placed)
    return np.asarray(picture)


def _upscale(image: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour enlargement: every source pixel becomes a scale x scale block."""
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


def _draw_text(draw: ImageDraw.ImageDraw, grid: Grid, placed: Layout) -> None:
    font = _font()
    for index, line in enumerate(placed.title_lines):
        draw.text((MARGIN, MARGIN + index * LINE_PX), line, fill=TEXT, font=font)
    for c, lines in enumerate(placed.column_label_lines):
        x, y, _, _ = placed.tile_boxes[(0, c)]
        for index, line in enumerate(lines):
            draw.text((x, y - placed.column_label_height + index * LINE_PX), line, fill=TEXT, font=font)
    for r, text in enumerate(grid.row_labels):
        _, y, _, h = placed.tile_boxes[(r, 0)]
        draw.text((MARGIN, y + h // 2 - LINE_PX // 2), text, fill=TEXT, font=font)
    for (r, c), (x, y, w, h) in placed.tile_boxes.items():
        for index, line in enumerate(grid.rows[r][c].label.splitlines()):
            draw.text((x, y + h + index * LINE_PX + 1), _fit(line, w), fill=MUTED, font=font)


def _fit(text: str, width: int) -> str:
    """`text` shortened with an ellipsis until it fits `width` pixels."""
    if _text_width(text) <= width:
        return text
    while text and _text_width(text + "…") > width:
        text = text[:-1]
    return text + "…"


def _chunk(tiles: Sequence[Tile], columns: int) -> tuple[tuple[Tile, ...], ...]:
    return tuple(tuple(tiles[start:start + columns]) for start in range(0, len(tiles), columns))


def _format_value(control: Control, value: float) -> str:
    if control.kind == "categorical":
        return control.choices[int(round(value))]
    return f"{value:.3g}"


def sweep_values(control: Control, steps: int) -> list[float]:
    """Values a sweep shows: every choice of a categorical control, else `steps` evenly over the range."""
    if control.kind == "categorical":
        return [float(index) for index in range(len(control.choices))]
    return [float(value) for value in np.linspace(control.minimum, control.maximum, steps)]


def puppet_sweep_grid(puppet: Puppet, size: int, steps: int = 8) -> Grid:
    """One row per control, swept across its range while every other control stays at its default."""
    rows = []
    for control in puppet.controls:
        values = sweep_values(control, steps)
        rows.append(tuple(
            Tile(puppet.render({control.name: value}, size), _format_value(control, value)) for value in values
        ))
    return Grid(
        rows=tuple(rows),
        title=f"Puppet '{puppet.name}' at {size} px: each row sweeps one control; the others stay at their defaults.",
        row_labels=tuple(control.name for control in puppet.controls),
    )


def triplet_grid(sampler: TripletSampler, count: int, rng: np.random.Generator) -> Grid:
    """`count` triplets, one per row; each tile names its attribute-of-interest value(s)."""
    puppet = sampler.puppet
    rows = []
    for _ in range(count):
        triplet = sampler.sample(rng)
        rows.append(tuple(
            Tile(image, "\n".join(f"{name} {_format_value(puppet.control(name), values[name])}"
                                  for name in sampler.attributes))
            for image, values in zip(triplet.images, triplet.values)
        ))
    ranges = ", ".join(f"{name} in {low:g}..{high:g}" for name, (low, high) in sampler.spec.ranges.items())
    fixed = ", ".join(f"{name} = {value:g}" for name, value in sampler.spec.fixed.items())
    details = "; ".join(part for part in (ranges, fixed) if part)
    aoi = " + ".join(sampler.attributes)
    return Grid(
        rows=tuple(rows),
        title=f"PuppetGAN triplets of '{puppet.name}', attribute of interest: {aoi}"
              + (f" ({details})" if details else "")
              + ". b3 must show b1's attribute on b2's everything-else.",
        column_labels=("b1: AoI = v\nrest random", "b2: AoI random\nrest = r", "b3: AoI = v\nrest = r"),
    )


def shapes_abc_grid(data: ShapesABC, count: int, rng: np.random.Generator, columns: int = 8) -> Grid:
    """`count` images of domain A, then of domain B, each tile labelled with its six factor class indices."""
    tiles_by_domain = {}
    for domain in ("A", "B"):
        sample = data.sample(domain, count, rng)
        tiles_by_domain[domain] = [
            Tile(image, _factor_label(labels)) for image, labels in zip(sample.images, sample.labels)
        ]
    rows_a, rows_b = _chunk(tiles_by_domain["A"], columns), _chunk(tiles_by_domain["B"], columns)
    legend = ", ".join(f"{short} = {name}" for name, short in FACTOR_ABBREVIATIONS.items())
    split = data.factors

    def held(domain: str) -> str:
        return ", ".join(f"{name} = {index}" for name, index in data.fixed(domain).items())

    return Grid(
        rows=rows_a + rows_b,
        title=(
            f"3D-Shapes-ABC split {data.split}. A varies {' & '.join(split.specific_a)}; "
            f"B varies {' & '.join(split.specific_b)}; both vary {' & '.join(split.shared)}. "
            f"Held in A: {held('A')}. Held in B: {held('B')}.\nTile labels are class indices: {legend}."
        ),
        row_labels=tuple(["A"] * len(rows_a) + ["B"] * len(rows_b)),
    )


def _factor_label(labels: np.ndarray) -> str:
    parts = [f"{FACTOR_ABBREVIATIONS[factor.name]}{int(index)}" for factor, index in zip(FACTORS, labels)]
    return " ".join(parts[:3]) + "\n" + " ".join(parts[3:])


def mnist_grid(split: str, count: int, rng: np.random.Generator, columns: int = 10) -> Grid:
    """`count` random digits of the fixed MNIST split, each labelled with its class and index."""
    data = mnist_split(split)
    chosen = np.sort(rng.choice(len(data), size=min(count, len(data)), replace=False))
    tiles = [Tile(data.images[i], f"#{i}: {int(data.labels[i, 0])}") for i in chosen]
    return Grid(
        rows=_chunk(tiles, columns),
        title=f"Real MNIST, {split} split ({len(data)} digits, 32 x 32 padded): tile label = index: class.",
    )


def folder_grid(root: Path, size: int, count: int, columns: int = 8) -> Grid:
    """The first `count` readable images of a folder, labelled with their file names; skips named in the title."""
    folder = load_folder(root, size, limit=count)
    tiles = [Tile(image, str(path.relative_to(root))) for image, path in zip(folder.images, folder.paths)]
    title = f"Image folder {root}: first {len(folder)} readable images at {size} px."
    if folder.skipped:
        names = ", ".join(str(path.relative_to(root)) for path, _ in folder.skipped[:5])
        more = "…" if len(folder.skipped) > 5 else ""
        title += f" Skipped {len(folder.skipped)} unreadable: {names}{more}"
    return Grid(rows=_chunk(tiles, columns), title=title)


def video_grid(path: Path, size: int, count: int, columns: int = 8) -> Grid:
    """`count` evenly spaced frames of a video, labelled with their frame numbers."""
    frames = load_video(path, size, count=count)
    tiles = [Tile(image, f"frame {index}") for image, index in zip(frames.images, frames.frame_indices)]
    return Grid(
        rows=_chunk(tiles, columns),
        title=f"Video {path.name}: {len(frames)} evenly spaced frames at {size} px ({frames.fps:g} fps).",
    )


def _parse_ranges(items: Sequence[Sequence[str]] | None) -> dict[str, tuple[float, float]]:
    return {name: (float(low), float(high)) for name, low, high in items or ()}


def _parse_fixed(items: Sequence[Sequence[str]] | None) -> dict[str, float]:
    return {name: float(value) for name, value in items or ()}


def build_grid(args: argparse.Namespace) -> Grid:
    """The Grid the parsed preview-data arguments ask for."""
    rng = np.random.default_rng(args.seed)
    if args.puppet:
        return puppet_sweep_grid(load_puppet(args.puppet), args.size or 64, args.steps)
    if args.triplets:
        spec = TripletSpec(
            puppet=args.triplets,
            attributes=tuple(args.attribute or ()),
            size=args.size or 32,
            ranges=_parse_ranges(args.range),
            fixed=_parse_fixed(args.fixed),
        )
        return triplet_grid(TripletSampler(spec), args.count or 8, rng)
    if args.shapes_abc:
        return shapes_abc_grid(ShapesABC(args.shapes_abc, size=args.size or 64), args.count or 16, rng)
    if args.mnist:
        return mnist_grid(args.split, args.count or 40, rng)
    if args.folder:
        return folder_grid(args.folder, args.size or 64, args.count or 32)
    return video_grid(args.video, args.size or 64, args.count or 16)


def run(args: argparse.Namespace) -> int:
    """Build, draw and save the grid; the saved path is logged."""
    picture = draw_grid(build_grid(args), args.tile_px)
    saved = save_image(args.output, picture)
    log.info("Wrote %s (%d x %d px)", saved, picture.shape[1], picture.shape[0])
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `preview-data` on the puppetry-train command line."""
    parser = subparsers.add_parser(
        "preview-data",
        help="write a labelled PNG grid of training data",
        description="Write a labelled PNG grid of one data source, to check it before training.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--puppet", metavar="NAME", help="sweep each control of a puppet")
    source.add_argument("--triplets", metavar="PUPPET", help="PuppetGAN triplets of a puppet (with --attribute)")
    source.add_argument("--shapes-abc", type=int, choices=(1, 2, 3), metavar="SPLIT",
                        help="3D-Shapes-ABC domains A and B of split 1, 2 or 3")
    source.add_argument("--mnist", action="store_true", help="real MNIST digits (see --split)")
    source.add_argument("--folder", type=Path, metavar="DIR", help="images found recursively in a folder")
    source.add_argument("--video", type=Path, metavar="FILE", help="evenly spaced frames of a video")
    parser.add_argument("-o", "--output", type=Path, required=True, help="PNG file to write")
    parser.add_argument("--attribute", action="append", metavar="CONTROL",
                        help="attribute of interest for --triplets (repeat for several)")
    parser.add_argument("--range", nargs=3, action="append", metavar=("CONTROL", "MIN", "MAX"),
                        help="limit a control to a sub-range for --triplets (repeatable)")
    parser.add_argument("--fixed", nargs=2, action="append", metavar=("CONTROL", "VALUE"),
                        help="hold a control at one value in all triplet images (repeatable)")
    parser.add_argument("--split", choices=("train", "test"), default="train", help="MNIST split (default train)")
    parser.add_argument("--size", type=int, help="image size in pixels (default: 32 triplets, 64 otherwise)")
    parser.add_argument("--count", type=int, help="how many samples to show")
    parser.add_argument("--steps", type=int, default=8, help="values per continuous control in a puppet sweep")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same grid)")
    parser.add_argument("--tile-px", type=int, default=DEFAULT_TILE_PX,
                        help="tiles are enlarged (nearest neighbour) to at least this width")
    parser.set_defaults(run=run)
