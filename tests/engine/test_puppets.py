"""Puppets: registry, control validation, determinism, and that each control moves the right pixels."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import engine.puppets as puppets
from engine.errors import EditError
from engine.puppets.base import Control, Puppet

PUPPET_NAMES = ("digits", "face", "shapes")


@pytest.fixture(scope="module", params=PUPPET_NAMES)
def puppet(request) -> Puppet:
    return puppets.load(request.param)


@pytest.fixture(scope="module")
def digits() -> Puppet:
    return puppets.load("digits")


# --- registry -------------------------------------------------------------------------------------------------


def test_available_lists_the_built_in_puppets() -> None:
    assert set(PUPPET_NAMES) <= set(puppets.available())


def test_load_of_unknown_puppet_names_the_known_ones() -> None:
    with pytest.raises(EditError, match=r"Unknown puppet 'nope'.*digits.*face.*shapes"):
        puppets.load("nope")


def test_load_returns_a_puppet_with_the_requested_name(puppet: Puppet) -> None:
    assert isinstance(puppet, Puppet)
    assert puppet.name in PUPPET_NAMES
    assert len({control.name for control in puppet.controls}) == len(puppet.controls)


def test_plugin_entry_point_puppet_is_loaded_by_name(monkeypatch) -> None:
    class EntryPointStub:
        name = "plugged"
        value = "plugin_module:PluggedPuppet"

        def load(self):
            return DigitsLike

    class DigitsLike(type(puppets.load("digits"))):
        name = "plugged"

    monkeypatch.setattr(puppets, "entry_points", lambda group: [EntryPointStub()] if group == "puppetry.puppets" else [])
    assert "plugged" in puppets.available()
    assert puppets.load("plugged").name == "plugged"


# --- controls and validation ------------------------------------------------------------------------------------


def test_control_round_trips_through_its_manifest_dict() -> None:
    control = Control("font", "Font", 0, 2, 1, "categorical", ("a", "b", "c"))
    assert Control.from_dict(control.to_dict()) == control


def test_categorical_control_range_must_match_its_choices() -> None:
    with pytest.raises(EditError, match="categorical range"):
        Control("font", "Font", 0, 5, 0, "categorical", ("a", "b"))


def test_defaults_lie_in_range_and_render(puppet: Puppet) -> None:
    image = puppet.render({}, 32)
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    for control in puppet.controls:
        assert control.minimum <= control.default <= control.maximum


@pytest.mark.parametrize("edge", ["below", "above"])
def test_out_of_range_value_raises_edit_error_naming_the_control(puppet: Puppet, edge: str) -> None:
    control = next(c for c in puppet.controls if c.kind == "continuous")
    span = control.maximum - control.minimum
    value = control.minimum - 0.1 * span if edge == "below" else control.maximum + 0.1 * span
    with pytest.raises(EditError, match=control.name):
        puppet.render({control.name: value}, 32)


def test_non_integer_choice_and_unknown_control_raise_edit_error(puppet: Puppet) -> None:
    categorical = next(c for c in puppet.controls if c.kind == "categorical")
    with pytest.raises(EditError, match="choice index"):
        puppet.render({categorical.name: 0.5}, 32)
    with pytest.raises(EditError, match="no control 'wobble'"):
        puppet.render({"wobble": 1.0}, 32)
    with pytest.raises(EditError, match="size"):
        puppet.render({}, 3)


def test_sample_stays_in_range_and_covers_only_named_controls(puppet: Puppet) -> None:
    rng = np.random.default_rng(0)
    everything = puppet.sample(rng)
    assert set(everything) == {c.name for c in puppet.controls}
    for name, value in everything.items():
        assert puppet.control(name).validate(value) == pytest.approx(value)
    first = puppet.controls[0].name
    assert set(puppet.sample(rng, [first])) == {first}


def test_render_is_deterministic_for_equal_values_and_seed(puppet: Puppet) -> None:
    values = puppet.sample(np.random.default_rng(7))
    first = puppet.render(values, 48, seed=3)
    again = puppet.render(dict(values), 48, seed=3)
    np.testing.assert_array_equal(first, again)


def test_every_control_changes_the_image(puppet: Puppet) -> None:
    base = puppet.defaults()
    reference = puppet.render(base, 64).astype(int)
    for control in puppet.controls:
        other = control.maximum if control.default != control.maximum else control.minimum
        changed = puppet.render({**base, control.name: other}, 64).astype(int)
        moved = np.count_nonzero(np.abs(changed - reference).max(axis=2) > 10)
        assert moved >= 10, f"{puppet.name}.{control.name} barely changes the image ({moved} pixels)"


# --- digits -------------------------------------------------------------------------------------------------------


def test_digits_are_white_on_black_and_grey_levels_are_anti_aliased(digits: Puppet) -> None:
    image = digits.render({"digit": 8}, 32)
    assert image[0, 0].tolist() == [0, 0, 0]
    assert image.max() == 255
    assert np.count_nonzero((image[:, :, 0] > 20) & (image[:, :, 0] < 235)) > 20
    assert np.array_equal(image[:, :, 0], image[:, :, 1]) and np.array_equal(image[:, :, 0], image[:, :, 2])


def test_digit_thickness_adds_ink_monotonically(digits: Puppet) -> None:
    ink = [digits.render({"digit": 4, "thickness": t}, 32).sum() for t in (-1.0, 0.0, 1.0)]
    assert ink[0] < ink[1] < ink[2]


def test_digit_fonts_are_distinct_faces(digits: Puppet) -> None:
    renders = [digits.render({"digit": 2, "font": face}, 32) for face in range(len(digits.control("font").choices))]
    assert len(renders) >= 4
    for i in range(len(renders)):
        for j in range(i + 1, len(renders)):
            assert not np.array_equal(renders[i], renders[j])


def test_digit_shift_moves_the_ink_centre_by_the_requested_fraction(digits: Puppet) -> None:
    def centre_x(image: np.ndarray) -> float:
        grey = image[:, :, 0].astype(float)
        return float((grey.sum(axis=0) * np.arange(grey.shape[1])).sum() / grey.sum())

    still = centre_x(digits.render({"digit": 1}, 64))
    moved = centre_x(digits.render({"digit": 1, "shift_x": 0.05}, 64))
    assert moved - still == pytest.approx(3.2, abs=0.15)


def test_digit_width_stretches_the_ink_across_and_keeps_its_height(digits: Puppet) -> None:
    def ink_extent(image: np.ndarray) -> tuple[int, int]:
        rows, cols = np.nonzero(image[:, :, 0] > 127)
        return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)

    height, width = ink_extent(digits.render({"digit": 0}, 64))
    wide_height, wide_width = ink_extent(digits.render({"digit": 0, "width": 1.5}, 64))
    assert abs(wide_height - height) <= 1
    assert wide_width / width == pytest.approx(1.5, abs=0.1)


@pytest.mark.parametrize("digit", [0, 8])
def test_digits_read_back_the_rotation_and_size_they_were_rendered_at(digits: Puppet, digit: int) -> None:
    """Symmetric glyphs: their principal axis is the vertical, so a reading is the control itself (a "1"'s
    flag tilts its axis by 6 degrees, which shifts every reading of it alike)."""
    for rotation in (-40.0, -10.0, 25.0):
        assert digits.measure(digits.render({"digit": digit, "rotation": rotation}, 64))["rotation"] == \
            pytest.approx(rotation, abs=1.0)
    for size in (0.8, 1.2):
        assert digits.measure(digits.render({"digit": digit, "size": size}, 64))["size"] == pytest.approx(size, abs=0.03)


def test_digits_read_no_pose_from_blank_paper_and_no_rotation_from_a_disc(digits: Puppet) -> None:
    assert digits.measure(np.zeros((32, 32, 3), np.uint8)) == {}
    disc = np.zeros((32, 32, 3), np.uint8)
    cv2.circle(disc, (16, 16), 8, (255, 255, 255), thickness=-1)
    assert set(digits.measure(disc)) == {"size"}


@pytest.mark.parametrize("name", ["face", "shapes"])
def test_puppets_without_estimators_read_nothing_from_an_image(name: str) -> None:
    puppet = puppets.load(name)
    assert puppet.measure(puppet.render(puppet.defaults(), 64)) == {}


def test_missing_fonts_raise_edit_error_saying_what_to_install(monkeypatch) -> None:
    from engine.puppets import digits as digits_module

    monkeypatch.setattr(digits_module, "font_directories", lambda: [])
    digits_module.font_path.cache_clear()
    try:
        with pytest.raises(EditError, match="fonts-dejavu-core"):
            digits_module.font_path("DejaVuSans.ttf")
    finally:
        digits_module.font_path.cache_clear()


# --- shapes ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shapes() -> Puppet:
    return puppets.load("shapes")


def _changed(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    return np.abs(first.astype(int) - second.astype(int)).max(axis=2) > 0


@pytest.mark.parametrize(
    ("factor", "surfaces"),
    [("floor_hue", ("FLOOR",)), ("wall_hue", ("LEFT_WALL", "RIGHT_WALL")), ("object_hue", ("OBJECT",))],
)
def test_shapes_hue_changes_exactly_its_own_surface(shapes: Puppet, factor: str, surfaces: tuple[str, ...]) -> None:
    from engine.puppets import shapes as shapes_module

    base = {"floor_hue": 1, "wall_hue": 4, "object_hue": 7, "shape": 1}
    segment = shapes.segment(base, 64)
    own = np.isin(segment, [getattr(shapes_module, name) for name in surfaces])
    other = (segment != shapes_module.MIXED) & ~own
    changed = _changed(shapes.render(base, 64), shapes.render({**base, factor: 2}, 64))
    assert changed[own].all()
    assert not changed[other].any()


@pytest.mark.parametrize(("factor", "value"), [("scale", 1.25), ("shape", 3), ("orientation", 25.0)])
def test_shapes_object_factors_leave_the_walls_untouched(shapes: Puppet, factor: str, value: float) -> None:
    from engine.puppets.shapes import LEFT_WALL, RIGHT_WALL

    base = {"scale": 0.9, "shape": 0, "orientation": 0.0}
    posed = {**base, factor: value}
    walls = np.isin(shapes.segment(base, 64), [LEFT_WALL, RIGHT_WALL]) & np.isin(
        shapes.segment(posed, 64), [LEFT_WALL, RIGHT_WALL]
    )
    changed = _changed(shapes.render(base, 64), shapes.render(posed, 64))
    assert changed.sum() > 20
    assert not changed[walls].any()


def test_shapes_scale_grows_the_object(shapes: Puppet) -> None:
    from engine.puppets.shapes import OBJECT

    areas = [np.count_nonzero(shapes.segment({"scale": scale, "shape": 2}, 64) == OBJECT) for scale in (0.75, 1.0, 1.25)]
    assert areas[0] < areas[1] < areas[2]
    assert areas[2] / areas[0] == pytest.approx((1.25 / 0.75) ** 2, rel=0.2)


def test_shapes_orientation_is_visible_on_every_shape(shapes: Puppet) -> None:
    for shape in range(len(shapes.control("shape").choices)):
        turned = _changed(shapes.render({"shape": shape}, 64), shapes.render({"shape": shape, "orientation": 20.0}, 64))
        assert turned.sum() > 10, shapes.control("shape").choices[shape]


# --- face -----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def face() -> Puppet:
    return puppets.load("face")


def test_face_mouth_open_changes_mostly_the_mouth_and_jaw(face: Puppet) -> None:
    from engine.puppets.face import MOUTH

    closed, opened = {"mouth_open": 0.0}, {"mouth_open": 1.0}
    mouth = (face.segment(closed, 64) == MOUTH) | (face.segment(opened, 64) == MOUTH)
    rows, cols = np.flatnonzero(mouth.any(axis=1)), np.flatnonzero(mouth.any(axis=0))
    region = np.zeros_like(mouth)
    region[rows[0] - 2 : rows[-1] + 12, cols[0] - 8 : cols[-1] + 9] = True  # the mouth plus the chin below it
    difference = np.abs(face.render(closed, 64).astype(int) - face.render(opened, 64).astype(int)).sum(axis=2)
    assert difference.sum() > 0
    assert difference[region].sum() / difference.sum() > 0.8
    assert not difference[: rows[0] - 8].any()  # eyes, brows, hair and everything above stay put


def test_face_skin_tone_changes_skin_and_not_hair_background_or_shirt(face: Puppet) -> None:
    from engine.puppets.face import BACKGROUND, CLOTH, HAIR, SKIN

    segment = face.segment({}, 64)
    changed = _changed(face.render({"skin_tone": 0.1}, 64), face.render({"skin_tone": 0.9}, 64))
    assert changed[segment == SKIN].mean() > 0.99
    assert not changed[np.isin(segment, [HAIR, BACKGROUND, CLOTH])].any()


def test_face_features_turn_with_the_head(face: Puppet) -> None:
    """Positive yaw moves the eyes and mouth towards the viewer's right."""
    from engine.puppets.face import EYE, MOUTH

    def centre_x(values: dict[str, float], part: int) -> float:
        return float(np.flatnonzero((face.segment(values, 64) == part).any(axis=0)).mean())

    for part in (EYE, MOUTH):
        assert centre_x({"yaw": 30.0}, part) > centre_x({}, part) + 3
        assert centre_x({"yaw": -30.0}, part) < centre_x({}, part) - 3


def test_face_turned_away_hides_the_far_eye(face: Puppet) -> None:
    from engine.puppets.face import EYE

    frontal = np.count_nonzero(face.segment({}, 64) == EYE)
    turned = np.count_nonzero(face.segment({"yaw": 45.0}, 64) == EYE)
    assert turned < 0.8 * frontal
