"""Make the bundled 3D-shapes samples for the shipped guide model: one photo and twelve guides.

Run from the repository root: `.venv/bin/python resources/samples/make_shapes_samples.py`.
It reads which domain the package at `resources/models/shapes-split1` takes its photos from
and which its guides, so the samples always fit the direction the model serves. The scenes
are held-out factor combinations the model never trained on. Deterministic: same seed, same bytes.
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

from engine.imageio import save_image
from engine.package import load_package
from trainer.methods.rift import heldout_scenes

log = logging.getLogger(__name__)

SAMPLES = Path(__file__).resolve().parent
SIZE = 64
GUIDES = 12
SEED = 11


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", type=Path, default=SAMPLES.parent / "models" / "shapes-split1")
    args = parser.parse_args()
    package = load_package(args.package)
    measured_on = package.metrics["data"]
    split = int(measured_on["split"])
    source, guide = ("A", "B") if measured_on["direction"] == "a2b" else ("B", "A")
    photo = heldout_scenes(split, source, 1, SIZE, SEED)[0]
    log.info("photo: %s", save_image(SAMPLES / "shapes_source.png", photo))
    folder = SAMPLES / "guides"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for k, image in enumerate(heldout_scenes(split, guide, GUIDES, SIZE, SEED + 1)):
        save_image(folder / f"shapes_split{split}_guide_{k:02d}.png", image)
    log.info("%d guides of domain %s in %s", GUIDES, guide, folder)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
