"""puppetry-edit: edits a photo only inside the region, batches folders with skip-and-report, lists models, fails in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import engine.package
from engine.cli import main
from engine.imageio import load_image, save_image
from tests.engine.tiny_models import write_package


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_package(tmp_path_factory.mktemp("cli") / "tiny-digits")


@pytest.fixture
def sample_photo(tmp_path: Path) -> Path:
    pixels = np.full((120, 160, 3), 215, np.uint8)
    pixels[40:80, 70:90] = 25
    alpha = np.full((120, 160), 200, np.uint8)
    return save_image(tmp_path / "sample.png", pixels, alpha=alpha)


def test_edit_writes_an_output_that_differs_only_inside_the_region(
    model_dir: Path, sample_photo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "edited.png"
    code = main([str(sample_photo), "-o", str(output), "--model", str(model_dir),
                 "--set", "rotation=20", "--region", "50,20,60,80", "--provider", "cpu"])
    assert code == 0
    before, after = load_image(sample_photo), load_image(output)
    changed = np.argwhere((before.pixels != after.pixels).any(axis=2))
    assert changed.size > 0
    assert (changed[:, 0].min(), changed[:, 1].min()) >= (20, 50)
    assert changed[:, 0].max() < 100 and changed[:, 1].max() < 110
    assert after.alpha is not None and np.array_equal(after.alpha, before.alpha)
    assert "CPU" in capsys.readouterr().err


def test_edit_refuses_to_overwrite_the_input(model_dir: Path, sample_photo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    original = sample_photo.read_bytes()
    assert main([str(sample_photo), "-o", str(sample_photo), "--model", str(model_dir)]) == 1
    assert sample_photo.read_bytes() == original
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--overwrite" in error


def test_bad_control_exits_1_with_one_line(model_dir: Path, sample_photo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main([str(sample_photo), "-o", str(tmp_path / "x.png"), "--model", str(model_dir), "--set", "rotation=90"])
    error = capsys.readouterr().err
    assert code == 1 and error.startswith("puppetry-edit: ") and error.count("\n") == 1
    assert "outside its range" in error


def test_folder_batch_edits_photos_and_reports_unreadable_files(
    model_dir: Path, sample_photo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    sample_photo.rename(inbox / "one.png")
    (inbox / "broken.jpg").write_bytes(b"not a jpeg")
    (inbox / "notes.txt").write_text("ignored")
    outbox = tmp_path / "outbox"
    assert main([str(inbox), "-o", str(outbox), "--model", str(model_dir), "--set", "rotation=-10"]) == 0
    assert sorted(p.name for p in outbox.iterdir()) == ["one.png"]
    error = capsys.readouterr().err
    assert "edited 1 of 2 photos" in error and "skipped 1 unreadable files" in error and "broken.jpg" in error


def test_models_lists_packages_with_method_editor_provider_and_metrics(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(engine.package, "user_library_dir", lambda: model_dir.parent)
    monkeypatch.setattr(engine.package, "bundled_models_dir", lambda: tmp_path / "none")
    assert main(["models"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("tiny-digits") and "puppetgan" in line and "editor=puppet" in line
    assert "provider=CPU" in line and "rotation: Acc 0.50" in line


def test_unknown_model_name_exits_1(sample_photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(engine.package, "user_library_dir", lambda: tmp_path / "empty")
    assert main([str(sample_photo), "-o", str(tmp_path / "x.png"), "--model", "nope"]) == 1
    assert "no model package named 'nope'" in capsys.readouterr().err
