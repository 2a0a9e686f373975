"""`puppetry-edit`: apply a model package to photos from the command line, one file or a folder.

    puppetry-edit INPUT -o OUTPUT --model NAME [--set CONTROL=VALUE ...] [--guide IMAGE]
                  [--region x,y,w,h] [--provider auto|cpu|cuda] [--overwrite]
    puppetry-edit models [--provider auto|cpu|cuda]

INPUT a folder: every photo in it is edited into the OUTPUT folder under
the same name; unreadable files are skipped and reported. INPUT is never
overwritten unless --overwrite. Errors end the run with exit status 1 and
one line on stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from engine import editors
from engine.editors.base import Editor
from engine.errors import EditError, ImageError, PuppetryError
from engine.imageio import SAVE_FORMATS, load_image, load_rgb8, save_photo
from engine.package import ModelPackage, find_package, scan_packages
from engine.regions import Box
from engine.runtime import PROVIDERS, resolved_provider
from engine.session import EditJob, EditResult, run_job

PROG = "puppetry-edit"
PHOTO_SUFFIXES = frozenset(SAVE_FORMATS) | {".gif"}


def build_edit_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Edit photos with a Puppetry model package. `puppetry-edit models` lists the models.",
    )
    parser.add_argument("input", type=Path, help="a photo, or a folder of photos")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output photo (or folder, for a folder INPUT)")
    parser.add_argument("--model", required=True, help="package name (see `puppetry-edit models`) or package path")
    parser.add_argument(
        "--set", dest="controls", action="append", default=[], metavar="CONTROL=VALUE",
        help="a control value, e.g. rotation=20 or font=serif (repeatable); guide models take strength=0..1",
    )
    parser.add_argument("--guide", type=Path, help="guide image (guide models)")
    parser.add_argument("--region", type=Box.parse, help="box to edit, x,y,w,h in pixels (default: the main object)")
    parser.add_argument("--provider", choices=PROVIDERS, default="auto", help="where models run (default: auto)")
    parser.add_argument("--feather", type=float, default=0.12, help="blend ramp, fraction of the box's shorter side")
    parser.add_argument("--no-color-match", action="store_true", help="paste the model's colours unchanged")
    parser.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality (default 95)")
    parser.add_argument("--overwrite", action="store_true", help="allow writing over INPUT")
    parser.add_argument("-v", "--verbose", action="store_true", help="log timings and provider choices")
    return parser


def build_models_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"{PROG} models", description="List installed and bundled model packages.")
    parser.add_argument("--provider", choices=PROVIDERS, default="auto", help="provider to report (default: auto)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        if args_list[:1] == ["models"]:
            return list_models(build_models_parser().parse_args(args_list[1:]))
        args = build_edit_parser().parse_args(args_list)
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        return edit(args)
    except PuppetryError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 1


def list_models(args: argparse.Namespace) -> int:
    """Print one line per package: name, method, editor, size, provider that would run it, metrics."""
    packages, errors = scan_packages()
    provider = resolved_provider(args.provider).removesuffix("ExecutionProvider")
    if not packages:
        print("no model packages installed")
    for package in packages:
        print(
            f"{package.name:28} {package.method:10} editor={package.editor:7} {package.image_size}px "
            f"provider={provider:5} {summarise_metrics(package.metrics)}  [{package.source}]"
        )
    for error in errors:
        print(f"broken: {error}", file=sys.stderr)
    return 0


def summarise_metrics(metrics: Mapping[str, object]) -> str:
    """The manifest's metrics table in one line: "rotation: Acc 0.97 r_attr 0.40; ..."."""
    rows = metrics.get("table", [])
    if not isinstance(rows, list) or not rows:
        return "no metrics"
    parts = []
    for row in rows:
        if not isinstance(row, dict):
            continue
        values = " ".join(f"{k} {v:.2f}" for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
        parts.append(f"{row.get('attribute', '?')}: {values}")
    return "; ".join(parts)


def edit(args: argparse.Namespace) -> int:
    package = find_package(args.model)
    editor = editors.load(package, args.provider)
    controls = parse_controls(package, args.controls)
    if args.guide is not None:
        controls["guide"] = load_rgb8(args.guide)
    if args.input.is_dir():
        return edit_folder(args, package, editor, controls)
    _refuse_overwrite(args.input, args.output, args.overwrite)
    result = _edit_one(args, package, editor, controls, args.input, args.output)
    print(
        f"{args.input} → {args.output}: box {_box_text(result.box)}, {editor.provider.removesuffix('ExecutionProvider')}, "
        f"apply {result.timings.apply_ms:.1f} ms, paste {result.timings.paste_ms:.1f} ms",
        file=sys.stderr,
    )
    return 0


def edit_folder(args: argparse.Namespace, package: ModelPackage, editor: Editor, controls: dict[str, object]) -> int:
    """Edit every photo of a folder into the output folder; unreadable files are skipped and reported."""
    from tqdm import tqdm

    if args.output.exists() and not args.output.is_dir():
        raise ImageError(f"output {args.output} must be a folder when the input {args.input} is a folder")
    if args.output.resolve() == args.input.resolve() and not args.overwrite:
        raise ImageError(f"output folder {args.output} is the input folder; pass --overwrite to replace the photos")
    args.output.mkdir(parents=True, exist_ok=True)
    photos = sorted(p for p in args.input.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)
    skipped: list[str] = []
    for path in tqdm(photos, desc="editing", unit="photo", disable=None):
        try:
            _edit_one(args, package, editor, controls, path, args.output / path.name)
        except ImageError as error:
            skipped.append(str(error))
    print(f"edited {len(photos) - len(skipped)} of {len(photos)} photos into {args.output}", file=sys.stderr)
    if skipped:
        print(f"skipped {len(skipped)} unreadable files:", file=sys.stderr)
        for reason in skipped:
            print(f"  {reason}", file=sys.stderr)
    return 0


def parse_controls(package: ModelPackage, assignments: Sequence[str]) -> dict[str, object]:
    """CONTROL=VALUE strings as control values; a categorical control also takes a choice's name."""
    by_name = {c.name: c for c in package.puppet.controls} if package.puppet else {}
    controls: dict[str, object] = {}
    for assignment in assignments:
        name, separator, text = assignment.partition("=")
        if not separator or not name:
            raise EditError(f"--set {assignment!r} must look like CONTROL=VALUE")
        control = by_name.get(name)
        if control is not None and control.kind == "categorical" and text in control.choices:
            controls[name] = float(control.choices.index(text))
            continue
        try:
            controls[name] = float(text)
        except ValueError:
            raise EditError(f"--set {assignment!r}: {text!r} is not a number") from None
    return controls


def _edit_one(
    args: argparse.Namespace, package: ModelPackage, editor: Editor, controls: Mapping[str, object], source: Path, target: Path
) -> EditResult:
    photo = load_image(source)
    job = EditJob(
        photo=photo, package=package, controls=controls, box=args.region, provider=args.provider,
        feather=args.feather, color_match=False if args.no_color_match else None,
    )
    result = run_job(job, editor)
    assert result.photo is not None
    save_photo(target, result.photo, quality=args.quality, overwrite_source=args.overwrite)
    return result


def _refuse_overwrite(source: Path, target: Path, overwrite: bool) -> None:
    if target.exists() and target.resolve() == source.resolve() and not overwrite:
        raise ImageError(f"output {target} is the input photo; pass --overwrite to replace it")


def _box_text(box: Box) -> str:
    return f"{box.x},{box.y},{box.w},{box.h}"
