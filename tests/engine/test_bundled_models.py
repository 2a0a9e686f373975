"""The packages shipped in resources/models: each loads, carries its measured table, and edits its sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.editors import load as load_editor
from engine.imageio import load_rgb8
from engine.package import load_package
from engine.regions import Box, crop
from engine.resources import bundled_models_dir, resource_path

BUNDLED = sorted(p for p in bundled_models_dir().iterdir() if (p / "manifest.json").is_file())


def test_the_default_models_are_bundled():
    assert {p.name for p in BUNDLED} >= {"digits-rotation", "digits-size", "shapes-split1"}


@pytest.mark.parametrize("folder", BUNDLED, ids=lambda p: p.name)
def test_a_bundled_package_loads_and_carries_its_measured_table(folder: Path):
    package = load_package(folder)
    assert package.metrics["table"], "the manifest must carry the evaluation table it was shipped with"
    assert package.provenance["command"].startswith("puppetry-train train")


def test_the_bundled_guide_model_recolours_the_sample_room_like_each_guide():
    package = load_package(bundled_models_dir() / "shapes-split1")
    assert package.guide.source_domain.endswith("domain B") and package.guide.moves == ("floor_hue", "wall_hue")
    editor = load_editor(package)
    photo = load_rgb8(resource_path("samples", "shapes_source.png"))
    region = crop(photo, Box(0, 0, photo.shape[1], photo.shape[0]), size=package.image_size).region
    prepared = editor.prepare(region)
    guides = [load_rgb8(path) for path in package.guide.samples[:4]]
    edits = [editor.apply(prepared, {"guide": guide}) for guide in guides]
    assert all(edit.shape == region.shape and edit.dtype == np.uint8 for edit in edits)
    # different guide rooms give differently coloured floors (bottom rows of the scene)
    floors = np.array([edit[-4:].reshape(-1, 3).mean(axis=0) for edit in edits])
    assert np.ptp(floors, axis=0).max() > 30
