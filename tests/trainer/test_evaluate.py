"""PuppetGAN metrics: the estimators read known rotations and sizes, and the baselines bracket the table."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine import puppets
from engine.errors import TrainingError
from engine.package import load_package
from engine.puppets.digit_measures import measure_rotation, measure_size
from engine.resources import resource_path
from trainer.cli import main as train_main
from trainer.data.mnist import mnist_split
from trainer.evaluate import (
    MetricsRow,
    canonicalise,
    evaluation_grid,
    format_table,
    load_classifier,
    preview_grid,
    scale_to_size,
    write_manifest_metrics,
)


def turned_bar(angle: float, scale: float = 1.0) -> np.ndarray:
    """A 32 x 32 white upright bar turned `angle` degrees counter-clockwise and scaled, as (32, 32, 3) uint8."""
    image = np.zeros((32, 32), np.uint8)
    cv2.rectangle(image, (14, 6), (17, 25), 255, thickness=-1)
    matrix = cv2.getRotationMatrix2D((15.5, 15.5), angle, scale)
    turned = cv2.warpAffine(image, matrix, (32, 32), flags=cv2.INTER_LINEAR)
    return np.repeat(turned[..., None], 3, axis=-1)


def scaled_to_height(image: np.ndarray, height_px: float) -> np.ndarray:
    """`image` (S, S, 3) uint8 scaled about its ink box's centre so the ink (>= 128) is `height_px` rows tall."""
    grey = image.mean(axis=-1).astype(np.float32)
    rows, cols = np.nonzero(grey >= 128)
    centre = ((cols.min() + cols.max()) / 2.0, (rows.min() + rows.max()) / 2.0)
    matrix = cv2.getRotationMatrix2D(centre, 0.0, height_px / (rows.max() - rows.min() + 1))
    middle = (grey.shape[0] - 1) / 2.0
    matrix[:, 2] += (middle - centre[0], middle - centre[1])
    scaled = cv2.warpAffine(grey, matrix, grey.shape[::-1], flags=cv2.INTER_LINEAR)
    return np.repeat(np.rint(scaled).astype(np.uint8)[..., None], 3, axis=-1)


@pytest.fixture(scope="module")
def size_grid():
    puppet = puppets.load("digits")
    control = dataclasses.replace(puppet.control("size"), minimum=0.8, maximum=1.2)  # what digits-size serves
    return evaluation_grid(puppet, control, {}, n_inputs=100, n_references=5)


@pytest.fixture(scope="module")
def rotation_grid():
    puppet = puppets.load("digits")
    control = puppet.control("rotation")
    return evaluation_grid(puppet, control, {}, n_inputs=100, n_references=5)


@pytest.mark.parametrize("angle", [-40.0, -15.0, 0.0, 20.0, 40.0])
def test_measure_rotation_reads_a_counter_clockwise_turn_as_positive_degrees(angle: float) -> None:
    assert measure_rotation(turned_bar(angle)[None])[0] == pytest.approx(angle, abs=1.5)


def test_measure_size_grows_in_proportion_to_the_glyph() -> None:
    small, large = measure_size(np.stack([turned_bar(0.0, 0.8), turned_bar(0.0, 1.2)]))
    assert large / small == pytest.approx(1.5, rel=0.05)


@pytest.mark.parametrize("size", [0.6, 0.8, 1.0, 1.2, 1.4])
def test_measure_size_reads_the_puppets_size_control(size: float) -> None:
    puppet = puppets.load("digits")
    renders = np.stack([puppet.render({"digit": digit, "font": font, "size": size}, 32)
                        for digit in range(10) for font in (0, 3, 4)])
    assert measure_size(renders) == pytest.approx(np.full(len(renders), size), abs=0.06)


def test_measure_size_ignores_the_glyphs_shape() -> None:
    puppet = puppets.load("digits")
    one, zero = measure_size(np.stack([puppet.render({"digit": d, "size": 1.1}, 32) for d in (1, 0)]))
    assert one == pytest.approx(zero, rel=0.03)


def test_scale_to_size_gives_real_digits_the_asked_ink_height() -> None:
    digits = mnist_split("train").images[:100]
    sizes = np.random.default_rng(0).uniform(0.8, 1.2, len(digits))
    measured = measure_size(scale_to_size(digits, sizes))
    assert np.median(np.abs(measured - sizes)) < 0.02
    assert np.corrcoef(measured, sizes)[0, 1] > 0.98


def test_an_oracle_that_sets_each_digits_size_scores_near_the_top(size_grid) -> None:
    """Rescaling each real digit's ink to 20 px x the reference's size must read as following the reference."""
    outputs = np.stack([np.stack([scaled_to_height(image, 20.0 * value) for image in size_grid.inputs])
                        for value in size_grid.reference_values])
    oracle = size_grid.metrics("oracle", outputs)
    assert oracle.r_attr >= 0.9
    assert abs(oracle.r_rest) < 0.1
    assert oracle.Acc >= 0.9


def test_size_baselines_bracket_the_table(size_grid) -> None:
    identity, copy = size_grid.baselines()
    assert identity.r_rest == pytest.approx(1.0) and abs(identity.r_attr) < 0.05
    assert copy.r_attr == pytest.approx(1.0) and abs(copy.r_rest) < 0.1


def test_canonicalise_undoes_rotation() -> None:
    bars = np.stack([turned_bar(a) for a in (-30.0, 0.0, 30.0)])
    raw_spread = (bars.mean(-1) / 255.0).std(axis=0).mean()
    assert canonicalise(bars, "rotation").std(axis=0).mean() < 0.3 * raw_spread


def test_the_classifier_reads_held_out_digits_turned_rigidly_to_every_pose_above_the_acc_target() -> None:
    """The rotation model's Acc >= 0.97 must be reachable: a perfect edit (each TEST digit turned rigidly to the
    reference's measured angle) reads as its own digit at least that often."""
    puppet = puppets.load("digits")
    control = dataclasses.replace(puppet.control("rotation"), minimum=-45.0, maximum=30.0)  # what ships
    grid = evaluation_grid(puppet, control, {})  # the table's own grid: every TEST digit x 9 references
    assert (grid.classifier(grid.inputs) == grid.labels).mean() >= 0.975
    centre = (grid.inputs.shape[1] - 1) / 2
    turns = measure_rotation(grid.references)[:, None] - measure_rotation(grid.inputs)[None]  # (R, N) degrees
    outputs = np.stack([np.stack([cv2.warpAffine(image, cv2.getRotationMatrix2D((centre, centre), turn, 1.0),
                                                 image.shape[1::-1]) for image, turn in zip(grid.inputs, row)])
                        for row in turns])
    assert grid.metrics("rigid turn", outputs).Acc >= 0.97


def test_the_classifier_reads_repeated_images_in_any_order_as_it_reads_each_alone() -> None:
    test = mnist_split("test")
    classify, images, labels = load_classifier(), test.images[::20], test.label("digit")[::20]  # every class
    alone = np.array([classify(image[None])[0] for image in images])
    assert (alone == labels).mean() >= 0.9
    order = np.random.default_rng(0).integers(0, len(images), 200)  # repeats, shuffled
    assert np.array_equal(classify(images[order]), alone[order])


def test_identity_baseline_keeps_content_and_ignores_the_reference(rotation_grid) -> None:
    identity, _ = rotation_grid.baselines()
    assert identity.Acc >= 0.95
    assert abs(identity.r_attr) < 0.05
    assert identity.r_rest == pytest.approx(1.0)
    assert identity.V_rest == pytest.approx(0.0, abs=1e-9)


def test_puppet_copy_baseline_follows_the_reference_and_forgets_the_input(rotation_grid) -> None:
    _, copy = rotation_grid.baselines()
    assert copy.r_attr == pytest.approx(1.0)
    assert abs(copy.r_rest) < 0.05
    assert copy.Acc < 0.3
    assert copy.V_rest > 0.02


def test_references_span_the_served_range(rotation_grid) -> None:
    measured = measure_rotation(rotation_grid.references)
    assert np.corrcoef(measured, rotation_grid.reference_values)[0, 1] > 0.9


def test_table_prints_the_paper_row_beside_the_measured_ones(rotation_grid) -> None:
    table = format_table(rotation_grid.baselines(), "rotation")
    assert "identity" in table and "puppet copy" in table
    assert "0.970   0.400   0.110" in table


def test_preview_grid_puts_inputs_on_top_and_references_on_the_left() -> None:
    inputs = np.full((3, 32, 32, 3), 10, np.uint8)
    references = np.full((2, 32, 32, 3), 200, np.uint8)
    outputs = np.full((2, 3, 32, 32, 3), 90, np.uint8)
    picture = preview_grid(inputs, references, outputs)
    assert picture.shape == (3 * 32, 4 * 32, 3)
    assert picture[5, 40, 0] == 10 and picture[40, 5, 0] == 200 and picture[40, 40, 0] == 90


@pytest.fixture
def size_package(tmp_path: Path) -> Path:
    copy = tmp_path / "digits-size"
    shutil.copytree(resource_path("models", "digits-size"), copy)
    return copy


def test_write_manifest_stores_the_printed_row_and_keeps_the_graphs(size_package: Path, capsys) -> None:
    before = json.loads((size_package / "manifest.json").read_text())
    code = train_main(["evaluate", str(size_package), "--inputs", "20", "--references", "3", "--json",
                       "--write-manifest"])
    printed = json.loads(capsys.readouterr().out.split("metrics written to")[0])
    after = json.loads((size_package / "manifest.json").read_text())
    assert code == 0
    assert after["metrics"]["table"] == [{k: v for k, v in printed[-1].items() if k != "model"}]
    assert "20 MNIST TEST digits x 3 puppet references" in after["metrics"]["notes"]
    assert {k: v for k, v in after.items() if k != "metrics"} == {k: v for k, v in before.items() if k != "metrics"}
    assert load_package(size_package).metrics["table"][0]["r_attr"] == printed[-1]["r_attr"]
    assert sorted(p.name for p in size_package.iterdir()) == ["decoder_real.onnx", "encoder.onnx", "manifest.json"]


def test_write_manifest_refuses_a_folder_without_a_manifest(tmp_path: Path) -> None:
    row = MetricsRow("model", "size", 0.8, 0.7, 0.1, 0.02)
    with pytest.raises(TrainingError, match="manifest.json"):
        write_manifest_metrics(tmp_path, row, "notes")


def test_the_manifest_row_holds_the_figures_the_table_prints() -> None:
    row = MetricsRow("model", "rotation", Acc=0.88456, r_attr=0.96411, r_rest=0.0324934, V_rest=0.0126266)
    printed = format_table([row], "rotation").splitlines()[1].split()[-4:]
    stored = row.as_dict()
    assert [float(figure) for figure in printed] == [stored[key] for key in ("Acc", "r_attr", "r_rest", "V_rest")]
