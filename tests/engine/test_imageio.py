"""Photo files: every format loads upright and exact, every broken file is one clear ImageError, saves are atomic."""

from __future__ import annotations

import errno
import logging
import os
import re
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageFile, ImageOps

from engine.errors import ImageError
from engine.imageio import DEFAULT_MAX_PIXELS, Photo, load_image, load_rgb8, save_image, save_photo
from tests.engine import bad_images

RUNNING_AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture(scope="module")
def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.fixture
def picture() -> np.ndarray:
    return bad_images.gradient()


def _write_16_bit_with_opencv(path: Path, rgb: np.ndarray) -> Path:
    """Written by OpenCV directly, so loading is not tested against our own writer."""
    samples = rgb[..., 2::-1] if rgb.shape[2] == 3 else np.dstack([rgb[..., 2::-1], rgb[..., 3]])
    ok, encoded = cv2.imencode(path.suffix, np.ascontiguousarray(samples))
    assert ok
    path.write_bytes(encoded.tobytes())
    return path


def _leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name not in keep)


# ---------------------------------------------------------------------------- loading good files


def test_png_loads_exact_rgb_with_its_source_and_format(tmp_path: Path, picture: np.ndarray) -> None:
    path = tmp_path / "photo.png"
    Image.fromarray(picture).save(path)
    photo = load_image(path)
    np.testing.assert_array_equal(photo.pixels, picture)
    assert (photo.alpha, photo.bit_depth, photo.format) == (None, 8, "PNG")
    assert photo.source == path.absolute()
    assert (photo.width, photo.height) == (64, 48)


def test_loaded_pixels_can_be_edited_in_place(tmp_path: Path, picture: np.ndarray) -> None:
    path = tmp_path / "photo.png"
    Image.fromarray(picture).save(path)
    photo = load_image(path)
    photo.pixels[0, 0] = (1, 2, 3)
    assert photo.pixels.flags.c_contiguous and tuple(photo.pixels[0, 0]) == (1, 2, 3)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_colour_keeps_every_sample_value(tmp_path: Path, suffix: str) -> None:
    rgb = bad_images.noise_16_bit(30, 20, 3)
    photo = load_image(_write_16_bit_with_opencv(tmp_path / f"deep{suffix}", rgb))
    assert (photo.pixels.dtype, photo.bit_depth) == (np.uint16, 16)
    np.testing.assert_array_equal(photo.pixels, rgb)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_rgba_hands_back_exact_16_bit_alpha(tmp_path: Path, suffix: str) -> None:
    rgba = bad_images.noise_16_bit(12, 9, 4, seed=3)
    photo = load_image(_write_16_bit_with_opencv(tmp_path / f"deep_alpha{suffix}", rgba))
    np.testing.assert_array_equal(photo.pixels, rgba[..., :3])
    assert photo.alpha is not None and photo.alpha.dtype == np.uint16
    np.testing.assert_array_equal(photo.alpha, rgba[..., 3])


def test_16_bit_grey_png_keeps_values_in_all_three_channels(tmp_path: Path) -> None:
    grey = bad_images.noise_16_bit(10, 7, 1)[..., 0]
    path = tmp_path / "grey16.png"
    Image.fromarray(grey).save(path)
    photo = load_image(path)
    assert photo.bit_depth == 16
    np.testing.assert_array_equal(photo.pixels, np.repeat(grey[..., None], 3, axis=2))


def test_16_bit_grey_with_alpha_png_keeps_both(tmp_path: Path) -> None:
    samples = bad_images.noise_16_bit(6, 5, 2, seed=7)
    photo = load_image(bad_images.grey_alpha_16_bit_png(tmp_path, samples[..., 0], samples[..., 1]))
    np.testing.assert_array_equal(photo.pixels, np.repeat(samples[..., :1], 3, axis=2))
    np.testing.assert_array_equal(photo.alpha, samples[..., 1])


def test_cmyk_jpeg_becomes_sensible_rgb(tmp_path: Path) -> None:
    inks = {"cyan": (255, 0, 0, 0), "magenta": (0, 255, 0, 0), "black": (0, 0, 0, 255), "paper": (0, 0, 0, 0)}
    expected = {"cyan": (0, 255, 255), "magenta": (255, 0, 255), "black": (0, 0, 0), "paper": (255, 255, 255)}
    image = Image.new("CMYK", (64, 16))
    for index, ink in enumerate(inks.values()):
        image.paste(ink, (16 * index, 0, 16 * index + 16, 16))
    path = tmp_path / "print.jpg"
    image.save(path, quality=100)
    photo = load_image(path)
    assert photo.pixels.shape == (16, 64, 3)
    for index, name in enumerate(inks):
        np.testing.assert_allclose(photo.pixels[8, 16 * index + 8], expected[name], atol=6, err_msg=name)


def test_cmyk_jpeg_with_unusable_icc_profile_is_converted_without_it_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken_profile = b"\0" * 16 + b"CMYK" + b"\0" * 108
    path = tmp_path / "print.jpg"
    Image.new("CMYK", (8, 8), (255, 0, 0, 0)).save(path, quality=100, icc_profile=broken_profile)
    with caplog.at_level(logging.WARNING, logger="engine.imageio"):
        photo = load_image(path)
    np.testing.assert_allclose(photo.pixels[4, 4], (0, 255, 255), atol=6)
    assert photo.icc_profile is None
    assert "print.jpg" in caplog.text and "ICC profile cannot be used" in caplog.text


def test_rgba_png_hands_alpha_back_separately_and_exact(tmp_path: Path, picture: np.ndarray) -> None:
    alpha = np.tile(np.arange(64, dtype=np.uint8) * 4, (48, 1))
    path = tmp_path / "cutout.png"
    Image.fromarray(np.dstack([picture, alpha])).save(path)
    photo = load_image(path)
    np.testing.assert_array_equal(photo.pixels, picture)
    assert photo.alpha is not None
    np.testing.assert_array_equal(photo.alpha, alpha)


def test_exif_orientation_6_turns_a_jpeg_upright(tmp_path: Path) -> None:
    stored = np.zeros((16, 32, 3), np.uint8)
    stored[:, :16] = (255, 0, 0)  # stored left half red, right half blue
    stored[:, 16:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # display = stored turned 90° clockwise
    path = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(path, quality=95, exif=exif.tobytes())
    photo = load_image(path)
    assert photo.pixels.shape == (32, 16, 3)
    np.testing.assert_allclose(photo.pixels[8, 8], (255, 0, 0), atol=8)  # red on top
    np.testing.assert_allclose(photo.pixels[24, 8], (0, 0, 255), atol=8)  # blue below


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillows_transpose(tmp_path: Path, orientation: int) -> None:
    stored = np.random.default_rng(orientation).integers(0, 256, (5, 7, 4), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "turned.png"
    Image.fromarray(stored).save(path, exif=exif.tobytes())
    with Image.open(path) as image:
        upright = np.asarray(ImageOps.exif_transpose(image))
    photo = load_image(path)
    np.testing.assert_array_equal(photo.pixels, upright[..., :3])
    np.testing.assert_array_equal(photo.alpha, upright[..., 3])


@pytest.mark.parametrize("size", [(1, 1), (1, 20000), (20000, 1)])
def test_extreme_aspect_ratios_load(tmp_path: Path, size: tuple[int, int]) -> None:
    width, height = size
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    path = tmp_path / f"strip_{width}x{height}.png"
    Image.fromarray(pixels).save(path)
    np.testing.assert_array_equal(load_image(path).pixels, pixels)


def test_non_ascii_path_loads_and_saves(tmp_path: Path, picture: np.ndarray) -> None:
    folder = tmp_path / "отпуск 休暇"
    folder.mkdir()
    saved = save_image(folder / "фото_写真.png", picture)
    np.testing.assert_array_equal(load_image(saved).pixels, picture)
    assert saved.name == "фото_写真.png"


def test_gif_loads_its_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 6), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    path = tmp_path / "animation.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    photo = load_image(path)
    assert photo.format == "GIF" and photo.pixels.shape == (6, 8, 3)
    assert np.all(photo.pixels == (255, 0, 0))


@pytest.mark.parametrize(
    ("suffix", "options"),
    [(".webp", {"lossless": True}), (".bmp", {}), (".tif", {}), (".tif", {"compression": "tiff_lzw"})],
)
def test_lossless_8_bit_formats_load_exact(tmp_path: Path, picture: np.ndarray, suffix: str, options: dict) -> None:
    path = tmp_path / f"photo{suffix}"
    Image.fromarray(picture).save(path, **options)
    photo = load_image(path)
    np.testing.assert_array_equal(photo.pixels, picture)
    assert photo.bit_depth == 8


def test_webp_with_alpha_hands_alpha_back(tmp_path: Path, picture: np.ndarray) -> None:
    alpha = np.full(picture.shape[:2], 255, np.uint8)
    alpha[:, :20] = 0
    path = tmp_path / "sticker.webp"
    Image.fromarray(np.dstack([picture, alpha])).save(path, lossless=True, exact=True)
    photo = load_image(path)
    np.testing.assert_array_equal(photo.alpha, alpha)
    np.testing.assert_array_equal(photo.pixels, picture)


def test_palette_png_loads_as_its_rgb_colours(tmp_path: Path, picture: np.ndarray) -> None:
    palette_image = Image.fromarray(picture).quantize(16)
    path = tmp_path / "indexed.png"
    palette_image.save(path)
    photo = load_image(path)
    np.testing.assert_array_equal(photo.pixels, np.asarray(palette_image.convert("RGB")))
    assert photo.alpha is None


def test_palette_png_with_transparent_entry_gets_alpha(tmp_path: Path) -> None:
    indices = np.array([[0, 1], [1, 0]], np.uint8)
    image = Image.fromarray(indices, mode="P")
    image.putpalette([10, 20, 30, 200, 100, 50])
    path = tmp_path / "indexed_alpha.png"
    image.save(path, transparency=0)
    photo = load_image(path)
    np.testing.assert_array_equal(photo.alpha, [[0, 255], [255, 0]])
    np.testing.assert_array_equal(photo.pixels[0, 1], (200, 100, 50))


def test_grey_png_repeats_into_three_equal_channels(tmp_path: Path, picture: np.ndarray) -> None:
    grey = picture[..., 1]
    path = tmp_path / "grey.png"
    Image.fromarray(grey).save(path)
    np.testing.assert_array_equal(load_image(path).pixels, np.repeat(grey[..., None], 3, axis=2))


def test_embedded_rgb_icc_profile_travels_on_the_photo(
    tmp_path: Path, picture: np.ndarray, srgb_profile: bytes
) -> None:
    path = tmp_path / "tagged.jpg"
    Image.fromarray(picture).save(path, icc_profile=srgb_profile)
    assert load_image(path).icc_profile == srgb_profile


def test_file_content_decides_the_format_not_the_extension(tmp_path: Path, picture: np.ndarray) -> None:
    path = tmp_path / "actually_png.jpg"
    Image.fromarray(picture).save(path, format="PNG")
    photo = load_image(path)
    assert photo.format == "PNG"
    np.testing.assert_array_equal(photo.pixels, picture)


def test_load_rgb8_scales_16_bit_and_drops_alpha(tmp_path: Path) -> None:
    rgba = np.zeros((2, 2, 4), np.uint16)
    rgba[..., :3] = [[[0, 257, 65535], [128, 129, 385]], [[65535, 65535, 65535], [0, 0, 0]]]
    rgba[..., 3] = 1000
    pixels = load_rgb8(_write_16_bit_with_opencv(tmp_path / "deep.png", rgba))
    assert pixels.dtype == np.uint8 and pixels.shape == (2, 2, 3)
    np.testing.assert_array_equal(pixels[0], [[0, 1, 255], [0, 1, 1]])


# ---------------------------------------------------------------------------- the pixel limit


def test_default_pixel_limit_is_300_megapixels() -> None:
    assert DEFAULT_MAX_PIXELS == 300_000_000


def test_pixel_limit_is_configurable(tmp_path: Path, picture: np.ndarray) -> None:
    path = tmp_path / "small.png"
    Image.fromarray(picture[:10, :10]).save(path)
    assert load_image(path, max_pixels=100).pixels.shape == (10, 10, 3)
    with pytest.raises(ImageError, match=r"is 10×10 = 100 pixels, above the 99 pixels limit"):
        load_image(path, max_pixels=99)


def test_header_claiming_100k_by_100k_is_refused_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_decoding(*_: object, **__: object) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    monkeypatch.setattr(cv2, "imdecode", no_decoding)
    path = bad_images.png_claiming_size(tmp_path, 100_000, 100_000)
    expected = f"{path} is 100000×100000 = 10000 MP, above the 300 MP limit; raise it with the max_pixels setting"
    with pytest.raises(ImageError, match=re.escape(expected)):
        load_image(path)


def test_limit_above_pillows_own_cap_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pillow's process-wide bomb check must not override the caller's limit."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)
    path = tmp_path / "photo.png"
    Image.fromarray(bad_images.gradient(8, 8)).save(path)
    assert load_image(path, max_pixels=64).pixels.shape == (8, 8, 3)


# ---------------------------------------------------------------------------- broken inputs

BAD_INPUTS = {
    "zero-byte file": (bad_images.zero_byte, r"is empty \(0 bytes\)"),
    "truncated JPEG": (bad_images.truncated_jpeg, r"is truncated or damaged and cannot be decoded"),
    "PNG with wrong CRC": (bad_images.png_with_bad_crc, r"is truncated or damaged: its header cannot be read"),
    "PNG with damaged pixels": (bad_images.png_with_damaged_pixels, r"is truncated or damaged and cannot be decoded"),
    "truncated PNG": (bad_images.truncated_png, r"is truncated or damaged and cannot be decoded"),
    "truncated 16-bit PNG": (bad_images.truncated_16_bit_png, r"is truncated or damaged and cannot be decoded"),
    "text file named .jpg": (bad_images.text_named_jpg, r"is not an image Puppetry can read \(unrecognised format\)"),
    "format Puppetry does not open": (bad_images.icon_file, r"is not an image Puppetry can read"),
    "32-bit float TIFF": (bad_images.float_tiff, r"uses the F colour mode, which Puppetry cannot edit"),
    "directory given as file": (bad_images.directory, r"is a folder, not an image file"),
    "missing file": (bad_images.missing, r"does not exist; check the name and the folder"),
}


@pytest.mark.parametrize("kind", BAD_INPUTS)
def test_bad_input_becomes_one_image_error_naming_the_file(tmp_path: Path, kind: str) -> None:
    build, reason = BAD_INPUTS[kind]
    path = build(tmp_path)
    with pytest.raises(ImageError, match=reason) as caught:
        load_image(path)
    assert str(caught.value).startswith(str(path))


@pytest.mark.parametrize(
    "kind", ["truncated JPEG", "PNG with wrong CRC", "PNG with damaged pixels", "truncated PNG", "missing file"]
)
def test_bad_input_error_chains_the_codec_error(tmp_path: Path, kind: str) -> None:
    build, _ = BAD_INPUTS[kind]
    with pytest.raises(ImageError) as caught:
        load_image(build(tmp_path))
    assert isinstance(caught.value.__cause__, (OSError, SyntaxError))


def test_truncated_jpeg_is_not_left_as_a_global_pillow_setting(tmp_path: Path) -> None:
    with pytest.raises(ImageError):
        load_image(bad_images.truncated_jpeg(tmp_path))
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_unreadable_file_reports_permission(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulated: tests run as root, where chmod 000 does not stop reads."""
    path = tmp_path / "private.png"
    Image.fromarray(bad_images.gradient(4, 4)).save(path)
    real_open = Path.open

    def refuse(self: Path, *args: object, **kwargs: object):
        if self == path:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(ImageError, match=r"private\.png cannot be read \(permission denied\)") as caught:
        load_image(path)
    assert isinstance(caught.value.__cause__, PermissionError)


@pytest.mark.skipif(RUNNING_AS_ROOT, reason="root reads files whatever their mode; covered by the simulated test")
def test_chmod_000_file_reports_permission(tmp_path: Path) -> None:
    path = tmp_path / "private.png"
    Image.fromarray(bad_images.gradient(4, 4)).save(path)
    path.chmod(0)
    with pytest.raises(ImageError, match=r"cannot be read \(permission denied\)"):
        load_image(path)


# ---------------------------------------------------------------------------- saving


@pytest.mark.parametrize(
    ("name", "largest_error"),
    [("a.png", 0), ("a.tif", 0), ("a.tiff", 0), ("a.bmp", 0), ("a.jpg", 8), ("a.JPEG", 8), ("a.webp", 12)],
)
def test_save_round_trips_each_format(tmp_path: Path, picture: np.ndarray, name: str, largest_error: int) -> None:
    saved = save_image(tmp_path / name, picture)
    photo = load_image(saved)
    assert saved == tmp_path / name
    assert photo.pixels.shape == picture.shape
    difference = np.abs(photo.pixels.astype(int) - picture.astype(int))
    assert difference.max() <= largest_error
    if largest_error:
        assert difference.mean() < 2


@pytest.mark.parametrize("name", ["deep.png", "deep.tif"])
def test_16_bit_round_trips_exactly_with_alpha_and_icc(tmp_path: Path, name: str, srgb_profile: bytes) -> None:
    rgba = bad_images.noise_16_bit(9, 13, 4, seed=5)
    save_image(tmp_path / name, rgba[..., :3], alpha=rgba[..., 3], icc_profile=srgb_profile)
    photo = load_image(tmp_path / name)
    assert photo.bit_depth == 16
    np.testing.assert_array_equal(photo.pixels, rgba[..., :3])
    np.testing.assert_array_equal(photo.alpha, rgba[..., 3])
    assert photo.icc_profile == srgb_profile


def test_16_bit_tiff_marks_its_fourth_channel_as_alpha(tmp_path: Path) -> None:
    rgba = bad_images.noise_16_bit(4, 4, 4)
    save_image(tmp_path / "deep.tif", rgba[..., :3], alpha=rgba[..., 3])
    with Image.open(tmp_path / "deep.tif") as image:
        assert image.tag_v2[338] == (2,)  # ExtraSamples: unassociated alpha


def test_16_bit_saved_as_jpeg_is_scaled_to_8_bits(tmp_path: Path, picture: np.ndarray) -> None:
    deep = picture.astype(np.uint16) * 257
    photo = load_image(save_image(tmp_path / "shared.jpg", deep))
    assert photo.bit_depth == 8
    assert np.abs(photo.pixels.astype(int) - picture.astype(int)).mean() < 2


@pytest.mark.parametrize("name", ["cutout.png", "cutout.tif", "cutout.webp"])
def test_alpha_is_kept_where_the_format_holds_it(tmp_path: Path, picture: np.ndarray, name: str) -> None:
    alpha = np.tile(np.arange(64, dtype=np.uint8) * 4, (48, 1))
    photo = load_image(save_image(tmp_path / name, picture, alpha=alpha))
    np.testing.assert_array_equal(photo.alpha, alpha)


@pytest.mark.parametrize("name", ["flat.jpg", "flat.bmp"])
def test_translucent_alpha_is_refused_by_formats_without_it(tmp_path: Path, picture: np.ndarray, name: str) -> None:
    alpha = np.full(picture.shape[:2], 255, np.uint8)
    alpha[0, 0] = 254
    with pytest.raises(ImageError, match=r"cannot store transparency; save as PNG, TIFF or WebP"):
        save_image(tmp_path / name, picture, alpha=alpha)
    assert os.listdir(tmp_path) == []


def test_fully_opaque_alpha_is_dropped_for_jpeg(tmp_path: Path, picture: np.ndarray) -> None:
    alpha = np.full(picture.shape[:2], 255, np.uint8)
    photo = load_image(save_image(tmp_path / "flat.jpg", picture, alpha=alpha))
    assert photo.alpha is None


@pytest.mark.parametrize("name", ["tagged.png", "tagged.jpg", "tagged.tif", "tagged.webp"])
def test_icc_profile_is_re_embedded(tmp_path: Path, picture: np.ndarray, srgb_profile: bytes, name: str) -> None:
    save_image(tmp_path / name, picture, icc_profile=srgb_profile)
    with Image.open(tmp_path / name) as image:
        assert image.info.get("icc_profile") == srgb_profile


def test_save_photo_keeps_alpha_and_profile(tmp_path: Path, picture: np.ndarray, srgb_profile: bytes) -> None:
    alpha = np.full(picture.shape[:2], 7, np.uint8)
    photo = Photo(picture, alpha, 8, tmp_path / "original.png", srgb_profile, "PNG")
    copy = load_image(save_photo(tmp_path / "copy.png", photo))
    np.testing.assert_array_equal(copy.alpha, alpha)
    assert copy.icc_profile == srgb_profile


def test_lower_jpeg_quality_writes_a_smaller_file(tmp_path: Path) -> None:
    texture = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    rough = save_image(tmp_path / "rough.jpg", texture, quality=20)
    fine = save_image(tmp_path / "fine.jpg", texture, quality=95)
    assert rough.stat().st_size < fine.stat().st_size / 2


@pytest.mark.parametrize("quality", [0, 101])
def test_quality_outside_1_to_100_is_refused(tmp_path: Path, picture: np.ndarray, quality: int) -> None:
    with pytest.raises(ImageError, match="quality must be between 1 and 100"):
        save_image(tmp_path / "a.jpg", picture, quality=quality)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("photo.gif", r"'\.gif' is not a format Puppetry writes; end the name with one of \.jpg"),
        ("photo", r"'\(no extension\)' is not a format Puppetry writes"),
        ("no_such_folder/photo.png", r"the folder .*no_such_folder does not exist; create it or choose another"),
    ],
)
def test_unusable_targets_are_refused_with_a_reason(
    tmp_path: Path, picture: np.ndarray, name: str, reason: str
) -> None:
    with pytest.raises(ImageError, match=reason):
        save_image(tmp_path / name, picture)


def test_target_that_is_a_folder_is_refused(tmp_path: Path, picture: np.ndarray) -> None:
    (tmp_path / "album.png").mkdir()
    with pytest.raises(ImageError, match="a folder already has that name"):
        save_image(tmp_path / "album.png", picture)


@pytest.mark.parametrize(
    ("pixels", "alpha"),
    [
        (np.zeros((4, 4), np.uint8), None),
        (np.zeros((4, 4, 3), np.float32), None),
        (np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.uint16)),
        (np.zeros((0, 4, 3), np.uint8), None),
    ],
)
def test_malformed_arrays_are_refused(tmp_path: Path, pixels: np.ndarray, alpha: np.ndarray | None) -> None:
    with pytest.raises(ImageError, match=r"Cannot save .*bad\.png"):
        save_image(tmp_path / "bad.png", pixels, alpha=alpha)


def test_read_only_folder_is_reported(tmp_path: Path, picture: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulated: as root a read-only folder is still writable."""

    def refuse(*_: object, **__: object):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(ImageError, match=r"no permission to write in .*; choose another folder"):
        save_image(tmp_path / "a.png", picture)


@pytest.mark.skipif(RUNNING_AS_ROOT, reason="root writes into read-only folders; covered by the simulated test")
def test_chmod_read_only_folder_is_reported(tmp_path: Path, picture: np.ndarray) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    with pytest.raises(ImageError, match="no permission to write"):
        save_image(folder / "a.png", picture)


def _fail_fsync_disk_full(_: int) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def _fail_encoder(*_: object, **__: object) -> None:
    raise OSError("encoder error -2")


def _opencv_encoder_gives_up(*_: object, **__: object) -> tuple[bool, None]:
    return False, None


def _fail_replace(*_: object) -> None:
    raise OSError(errno.EIO, "Input/output error")


def _interrupt(_: int) -> None:
    raise KeyboardInterrupt


FAILING_WRITES = {
    # kind: (bit depth, patched owner, patched name, replacement, expected error, message pattern)
    "disk full at fsync": (8, os, "fsync", _fail_fsync_disk_full, ImageError, r"the disk is full; free some space"),
    "16-bit disk full": (16, os, "fsync", _fail_fsync_disk_full, ImageError, r"the disk is full; free some space"),
    "encoder fails": (8, Image.Image, "save", _fail_encoder, ImageError, r"encoder error -2"),
    "16-bit encoder fails": (16, cv2, "imencode", _opencv_encoder_gives_up, ImageError, r"16-bit PNG: the encoder failed"),
    "rename fails": (8, os, "replace", _fail_replace, ImageError, r"Input/output error"),
    "interrupted": (8, os, "fsync", _interrupt, KeyboardInterrupt, None),
}


@pytest.mark.parametrize("kind", FAILING_WRITES)
def test_failed_save_leaves_old_file_intact_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, picture: np.ndarray, kind: str
) -> None:
    bits, owner, name, failure, error_type, reason = FAILING_WRITES[kind]
    target = tmp_path / "edited.png"
    save_image(target, bad_images.gradient(8, 8))
    before = target.read_bytes()
    monkeypatch.setattr(owner, name, failure)
    pixels = picture if bits == 8 else picture.astype(np.uint16) * 257
    with pytest.raises(error_type, match=reason) as caught:
        save_image(target, pixels)
    assert target.read_bytes() == before
    assert _leftovers(tmp_path, keep={"edited.png"}) == []
    if error_type is ImageError:
        assert str(caught.value).startswith(f"Cannot save {target}")


def test_disk_full_message_says_the_old_file_is_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, picture: np.ndarray
) -> None:
    target = save_image(tmp_path / "edited.jpg", picture)
    monkeypatch.setattr(os, "fsync", _fail_fsync_disk_full)
    with pytest.raises(ImageError, match=r"disk is full.*The existing file was left unchanged\.") as caught:
        save_image(target, picture)
    assert caught.value.__cause__.errno == errno.ENOSPC


@pytest.mark.parametrize("spelling", ["same", "dotted", "symlink"])
def test_save_refuses_to_overwrite_its_source(tmp_path: Path, picture: np.ndarray, spelling: str) -> None:
    source = save_image(tmp_path / "original.png", picture)
    before = source.read_bytes()
    target = {
        "same": source,
        "dotted": tmp_path / "." / ".." / tmp_path.name / "original.png",
        "symlink": tmp_path / "link.png",
    }[spelling]
    if spelling == "symlink":
        target.symlink_to(source)
    with pytest.raises(ImageError, match=r"Not saving over the original photo .*original\.png; choose another name"):
        save_image(target, picture[::-1], source=source)
    assert source.read_bytes() == before


def test_save_overwrites_source_when_asked(tmp_path: Path, picture: np.ndarray) -> None:
    source = save_image(tmp_path / "original.png", picture)
    save_image(source, picture[::-1], source=source, overwrite_source=True)
    np.testing.assert_array_equal(load_image(source).pixels, picture[::-1])


def test_save_photo_protects_the_file_it_came_from(tmp_path: Path, picture: np.ndarray) -> None:
    photo = load_image(save_image(tmp_path / "original.png", picture))
    with pytest.raises(ImageError, match="Not saving over the original photo"):
        save_photo(tmp_path / "original.png", photo)
    assert save_photo(tmp_path / "copy.png", photo) == tmp_path / "copy.png"


def test_new_file_gets_the_permissions_a_plain_write_would(tmp_path: Path, picture: np.ndarray) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    saved = save_image(tmp_path / "new.png", picture)
    assert saved.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


def test_overwrite_keeps_the_existing_permissions(tmp_path: Path, picture: np.ndarray) -> None:
    target = save_image(tmp_path / "shared.png", picture)
    target.chmod(0o640)
    save_image(target, picture[::-1])
    assert target.stat().st_mode & 0o777 == 0o640
