"""Editors: the puppet and guide editors edit model-size regions, cache what they can, and plugins register by entry point."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine import editors
from engine.editors.base import opposite_polarity
from engine.editors.guide import GuideEditor
from engine.editors.puppet import PuppetEditor
from engine.errors import EditError, PackageError
from engine.package import load_package
from tests.engine.tiny_models import read_manifest, write_manifest, write_package

SIZE = 16


@pytest.fixture(scope="module")
def puppet_editor(tmp_path_factory: pytest.TempPathFactory) -> PuppetEditor:
    package = load_package(write_package(tmp_path_factory.mktemp("puppet") / "tiny-digits", size=SIZE))
    editor = editors.load(package, "cpu")
    assert isinstance(editor, PuppetEditor)
    return editor


@pytest.fixture(scope="module")
def guide_editor(tmp_path_factory: pytest.TempPathFactory) -> GuideEditor:
    folder = write_package(tmp_path_factory.mktemp("guide") / "tiny-guide", editor="guide", name="tiny-guide",
                           size=SIZE, polarity=None, grayscale=False)
    editor = editors.load(load_package(folder), "cpu")
    assert isinstance(editor, GuideEditor)
    return editor


@pytest.fixture
def dark_on_light() -> np.ndarray:
    """Dark ink on light paper: a bar in the middle of a bright square."""
    region = np.full((SIZE, SIZE, 3), 220, np.uint8)
    region[4:12, 7:9] = 30
    return region


def test_registry_lists_builtins_and_loads_by_manifest_editor(puppet_editor: PuppetEditor) -> None:
    assert editors.available()[:2] == ["puppet", "guide"]
    assert puppet_editor.provider == "CPUExecutionProvider"
    assert puppet_editor.image_size == SIZE


def test_puppet_edit_depends_on_the_controls(puppet_editor: PuppetEditor, dark_on_light: np.ndarray) -> None:
    state = puppet_editor.prepare(dark_on_light)
    upright = puppet_editor.apply(state, {"rotation": 0.0})
    turned = puppet_editor.apply(state, {"rotation": 25.0})
    assert upright.shape == (SIZE, SIZE, 3) and upright.dtype == np.uint8
    assert not np.array_equal(upright, turned)
    assert np.array_equal(upright, puppet_editor.apply(state, {"rotation": 0.0}))  # deterministic


def test_puppet_values_merge_fixed_defaults_and_user_values(puppet_editor: PuppetEditor) -> None:
    assert puppet_editor.puppet_values({"rotation": 12}) == {"digit": 3.0, "rotation": 12.0}
    assert puppet_editor.puppet_values({}) == {"digit": 3.0, "rotation": 0.0}


@pytest.mark.parametrize(("controls", "message"), [({"rotation": 40.0}, "outside its range"), ({"size": 1.0}, "no control 'size'")])
def test_puppet_edit_refuses_controls_the_model_does_not_serve(
    puppet_editor: PuppetEditor, dark_on_light: np.ndarray, controls: dict, message: str
) -> None:
    state = puppet_editor.prepare(dark_on_light)
    with pytest.raises(EditError, match=message):
        puppet_editor.apply(state, controls)


def test_puppet_edit_caches_the_attribute_code_per_pose(puppet_editor: PuppetEditor, dark_on_light: np.ndarray) -> None:
    state = puppet_editor.prepare(dark_on_light)
    before = len(puppet_editor._attribute_codes)
    for _ in range(3):
        puppet_editor.apply(state, {"rotation": 7.5})
    assert len(puppet_editor._attribute_codes) == before + 1


def test_precomputed_poses_are_served_from_the_cache(puppet_editor: PuppetEditor, dark_on_light: np.ndarray) -> None:
    state = puppet_editor.prepare(dark_on_light)
    steps = [-20.0, -10.0, 10.0, 20.0]
    fresh = [puppet_editor.apply(state, {"rotation": v}) for v in steps]
    puppet_editor._attribute_codes = type(puppet_editor._attribute_codes)(16)
    assert puppet_editor.precompute({}, "rotation", steps) == 4 and len(puppet_editor._attribute_codes) == 4
    cached = [puppet_editor.apply(state, {"rotation": v}) for v in steps]
    assert len(puppet_editor._attribute_codes) == 4
    assert all(np.array_equal(a, b) for a, b in zip(fresh, cached))


def test_opposite_polarity_region_is_inverted_and_inverted_back(puppet_editor: PuppetEditor, dark_on_light: np.ndarray) -> None:
    light_on_dark = 255 - dark_on_light
    assert opposite_polarity(dark_on_light, "light_on_dark")
    assert not opposite_polarity(light_on_dark, "light_on_dark")
    inverted_state = puppet_editor.prepare(dark_on_light)
    plain_state = puppet_editor.prepare(light_on_dark)
    assert inverted_state.inverted and not plain_state.inverted
    np.testing.assert_allclose(inverted_state.rest_code, plain_state.rest_code, atol=1e-5)  # same content to the model
    edited_on_paper = puppet_editor.apply(inverted_state, {"rotation": 5.0})
    edited_on_black = puppet_editor.apply(plain_state, {"rotation": 5.0})
    assert np.abs(edited_on_paper.astype(int) + edited_on_black.astype(int) - 255).max() <= 1


def turned_ink_bar(angle: float, size: int = SIZE) -> np.ndarray:
    """Dark ink on light paper: a long bar turned `angle` degrees counter-clockwise about the centre."""
    bar = np.zeros((size, size), np.float32)
    bar[size // 8 : size - size // 8, size // 2 - 1 : size // 2 + 1] = 1.0
    centre = (size - 1) / 2.0
    turned = cv2.warpAffine(bar, cv2.getRotationMatrix2D((centre, centre), angle, 1.0), (size, size))
    return np.repeat(np.rint(220 - 190 * turned).astype(np.uint8)[..., None], 3, axis=-1)


def test_prepare_reads_the_regions_own_pose_inside_the_served_range(puppet_editor: PuppetEditor) -> None:
    left, right = (puppet_editor.prepare(turned_ink_bar(angle)).measured["rotation"] for angle in (20.0, -15.0))
    assert left == pytest.approx(20.0, abs=4.0) and right == pytest.approx(-15.0, abs=4.0)
    assert puppet_editor.prepare(turned_ink_bar(60.0)).measured == {"rotation": 30.0}  # the model serves -30..30
    state = puppet_editor.prepare(turned_ink_bar(20.0))
    assert puppet_editor.measure(state) == {"rotation": left}
    assert set(puppet_editor.measure(state)) == {"rotation"}  # the fixed digit is not a slider: never read


def test_bare_paper_reads_no_pose(puppet_editor: PuppetEditor) -> None:
    shading = np.linspace(222, 236, SIZE)[None, :, None]  # a lighting gradient across the region
    grain = np.random.default_rng(0).normal(0, 3, (SIZE, SIZE, 3))
    paper = np.clip(np.broadcast_to(shading, (SIZE, SIZE, 3)) + grain, 0, 255).astype(np.uint8)
    assert puppet_editor.prepare(paper).measured == {}
    assert puppet_editor.prepare(np.full((SIZE, SIZE, 3), 230, np.uint8)).measured == {}
    assert puppet_editor.prepare(turned_ink_bar(20.0)).measured  # the same paper with ink on it reads


def test_a_colour_puppet_model_reads_no_pose(tmp_path: Path) -> None:
    folder = write_package(tmp_path / "colour", size=SIZE, polarity=None, grayscale=False)
    editor = editors.load(load_package(folder), "cpu")
    assert editor.measure(editor.prepare(turned_ink_bar(20.0))) == {}


def test_region_at_the_wrong_size_is_an_edit_error(puppet_editor: PuppetEditor) -> None:
    with pytest.raises(EditError, match=r"crop the photo with engine.regions.crop\(..., size=16\)"):
        puppet_editor.prepare(np.zeros((32, 32, 3), np.uint8))


def test_guide_edit_blends_by_strength_and_caches_guide_maps(guide_editor: GuideEditor, dark_on_light: np.ndarray) -> None:
    state = guide_editor.prepare(dark_on_light)
    guide = np.random.default_rng(1).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    unchanged = guide_editor.apply(state, {"guide": guide, "strength": 0.0})
    full = guide_editor.apply(state, {"guide": guide, "strength": 1.0})
    half = guide_editor.apply(state, {"guide": guide, "strength": 0.5})
    assert np.array_equal(unchanged, dark_on_light)
    assert not np.array_equal(full, dark_on_light)
    expected_half = np.rint((dark_on_light.astype(float) + full) / 2)
    assert np.abs(half - expected_half).max() <= 1
    assert len(guide_editor._guide_maps) == 1


def test_guide_edit_needs_a_guide_image(guide_editor: GuideEditor, dark_on_light: np.ndarray) -> None:
    state = guide_editor.prepare(dark_on_light)
    with pytest.raises(EditError, match="needs a guide image"):
        guide_editor.apply(state, {"strength": 1.0})


@pytest.fixture
def plugin_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real installed distribution (dist-info with entry_points.txt) that registers editor 'mirror'."""
    (tmp_path / "mirror_plugin.py").write_text(textwrap.dedent('''
        import numpy as np
        from engine.editors.base import Editor

        class MirrorEditor(Editor):
            """Flips the region: needs only an encoder graph, to show plugins declare their own."""
            name = "mirror"
            graphs = {"encoder": (("image",), ("attribute_code", "rest_code"))}

            def prepare(self, region):
                return region

            def apply(self, state, controls):
                return state[:, ::-1].copy()
    '''))
    dist_info = tmp_path / "mirror_plugin-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: mirror-plugin\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text("[puppetry.editors]\nmirror = mirror_plugin:MirrorEditor\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "mirror"
    sys.modules.pop("mirror_plugin", None)


def test_plugin_editor_is_found_through_its_entry_point(plugin_on_path: str, tmp_path: Path, dark_on_light: np.ndarray) -> None:
    assert plugin_on_path in editors.available()
    folder = write_package(tmp_path / "mirror-model", name="mirror-model", size=SIZE)
    manifest = read_manifest(folder)
    manifest["editor"] = "mirror"
    write_manifest(folder, manifest)
    editor = editors.load(load_package(folder), "cpu")
    assert type(editor).__name__ == "MirrorEditor"
    assert np.array_equal(editor.apply(editor.prepare(dark_on_light), {}), dark_on_light[:, ::-1])


def test_unknown_editor_name_is_a_package_error() -> None:
    with pytest.raises(PackageError, match="no editor named 'nope'"):
        editors.editor_class("nope")
