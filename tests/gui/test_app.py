"""`puppetry --screenshot` as the README uses it: start on a model and a photo, apply --set, write a PNG."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gui.app import build_parser, parse_setting, pick_model
from tests.gui.conftest import make_tiny_package

REPO = Path(__file__).resolve().parents[2]


def test_set_arguments_parse_to_control_values():
    args = build_parser().parse_args(["--set", "rotation=30", "--set", "size=1.2", "--model", "x"])
    assert args.settings == [("rotation", 30.0), ("size", 1.2)]
    assert parse_setting(" digit = 3") == ("digit", 3.0)


def test_screenshot_command_applies_settings_and_writes_the_window(tmp_path: Path, photo_path: Path):
    data = tmp_path / "data"
    make_tiny_package(data / "puppetry" / "models" / "tiny-puppet")
    shot = tmp_path / "shot.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_DATA_HOME": str(data),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-m", "gui.app", str(photo_path), "--model", "tiny-puppet", "--set", "rotation=30",
         "--screenshot", str(shot)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    image = np.asarray(Image.open(shot))
    assert image.shape[:2] == (860, 1360)
    assert image.std() > 10  # a real window, not a blank grab
    assert "edit: rotation 30" in done.stderr  # the --set value was committed before the picture was taken


def test_an_unknown_model_name_is_an_error(tmp_path: Path):
    from engine.errors import PuppetryError
    from engine.package import load_package

    package = load_package(make_tiny_package(tmp_path / "tiny-puppet"))
    assert pick_model([package], None) is package
    with pytest.raises(PuppetryError, match="'nope'.*tiny-puppet"):
        pick_model([package], "nope")


def test_set_names_a_control_the_model_does_not_have(tmp_path: Path):
    from engine.errors import PuppetryError
    from engine.package import load_package
    from gui.app import check_settings

    package = load_package(make_tiny_package(tmp_path / "tiny-puppet"))
    check_settings(package, [("rotation", 10.0)])
    with pytest.raises(PuppetryError, match="tilt.*rotation"):
        check_settings(package, [("tilt", 1.0)])


def test_guide_needs_a_guide_model_and_an_image_that_is_there(tmp_path: Path):
    from engine.errors import PuppetryError
    from engine.package import load_package
    from engine.resources import bundled_models_dir
    from gui.app import check_guide

    puppet = load_package(make_tiny_package(tmp_path / "tiny-puppet"))
    guide_model = load_package(bundled_models_dir() / "shapes-split1")
    image = guide_model.guide.samples[0]
    check_guide(guide_model, image)
    check_guide(puppet, None)
    with pytest.raises(PuppetryError, match="needs a guide model"):
        check_guide(puppet, image)
    with pytest.raises(PuppetryError, match="no image file"):
        check_guide(guide_model, tmp_path / "missing.png")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(PuppetryError, match="not an image Puppetry can read"):
        check_guide(guide_model, text)


def test_screenshot_command_applies_a_guide_to_the_whole_scene(tmp_path: Path):
    shot = tmp_path / "shot.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    guide = REPO / "resources" / "models" / "shapes-split1" / "samples" / "guide_00.png"
    done = subprocess.run(
        [sys.executable, "-m", "gui.app", str(REPO / "resources" / "samples" / "shapes_source.png"),
         "--model", "shapes-split1", "--guide", str(guide), "--screenshot", str(shot)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "edit: guide guide_00.png at 100% (64×64 pixels at 0, 0)" in done.stderr  # the whole photo, guided
    assert np.asarray(Image.open(shot)).std() > 10
