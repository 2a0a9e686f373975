"""Model packages: valid ones load from folders and zips; hostile ones are refused with a PackageError that says why."""

from __future__ import annotations

import hashlib
import stat
import sys
import zipfile
from pathlib import Path

import onnx
import pytest

import engine.package
from engine import resources
from engine.errors import PackageError
from engine.package import import_package, list_packages, load_package, scan_packages
from tests.engine.tiny_models import read_manifest, write_manifest, write_package


@pytest.fixture
def package_dir(tmp_path: Path) -> Path:
    return write_package(tmp_path / "tiny-digits")


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def zip_folder(folder: Path, archive: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(archive, "w") as bundle:
        for file in sorted(folder.iterdir()):
            bundle.write(file, prefix + file.name)
    return archive


def refusal(source: Path, cache_dir: Path | None = None) -> str:
    with pytest.raises(PackageError) as caught:
        load_package(source, cache_dir=cache_dir)
    return str(caught.value)


def test_load_package_reads_the_manifest(package_dir: Path) -> None:
    package = load_package(package_dir)
    assert (package.name, package.method, package.editor, package.image_size) == ("tiny-digits", "puppetgan", "puppet", 16)
    assert package.normalisation.grayscale and package.normalisation.polarity == "light_on_dark"
    assert package.puppet is not None and [c.name for c in package.puppet.controls] == ["rotation"]
    assert dict(package.puppet.fixed) == {"digit": 3}
    assert package.graphs["encoder"].inputs["image"] == (None, 3, 16, 16)
    assert package.graph_path("decoder_real") == package_dir / "decoder_real.onnx"
    assert package.metrics["table"][0]["Acc"] == 0.5


@pytest.mark.parametrize("prefix", ["", "tiny-digits/"])
def test_zip_package_is_extracted_into_the_cache(package_dir: Path, tmp_path: Path, cache_dir: Path, prefix: str) -> None:
    archive = zip_folder(package_dir, tmp_path / "tiny.puppetry", prefix)
    package = load_package(archive, cache_dir=cache_dir)
    assert package.name == "tiny-digits"
    assert package.path.is_relative_to(cache_dir)
    assert load_package(archive, cache_dir=cache_dir).path == package.path  # second load reuses the extraction


def test_bad_json_is_refused(package_dir: Path) -> None:
    (package_dir / "manifest.json").write_text("{not json")
    assert "not valid JSON" in refusal(package_dir)


def test_missing_required_field_is_refused(package_dir: Path) -> None:
    manifest = read_manifest(package_dir)
    del manifest["graphs"]
    write_manifest(package_dir, manifest)
    assert "lacks required fields ['graphs']" in refusal(package_dir)


def test_unsupported_format_version_is_refused(package_dir: Path) -> None:
    manifest = read_manifest(package_dir)
    manifest["format_version"] = 2
    write_manifest(package_dir, manifest)
    assert "format_version 2 is not supported" in refusal(package_dir)


def test_missing_graph_file_is_refused(package_dir: Path) -> None:
    (package_dir / "encoder.onnx").unlink()
    message = refusal(package_dir)
    assert "'tiny-digits'" in message and "'encoder.onnx' is missing" in message


def test_changed_graph_is_refused_by_hash(package_dir: Path) -> None:
    with open(package_dir / "decoder_real.onnx", "ab") as handle:
        handle.write(b"\0")
    assert "sha256" in refusal(package_dir)


def test_declared_shape_that_differs_from_the_graph_is_refused(package_dir: Path) -> None:
    manifest = read_manifest(package_dir)
    manifest["graphs"]["encoder"]["outputs"]["rest_code"] = [None, 64]
    write_manifest(package_dir, manifest)
    assert "output 'rest_code' of encoder.onnx has shape [None, 8], the manifest declares [None, 64]" in refusal(package_dir)


def test_image_size_that_differs_from_the_graph_input_is_refused(package_dir: Path) -> None:
    manifest = read_manifest(package_dir)
    manifest["image_size"] = 32
    write_manifest(package_dir, manifest)
    assert "declares 3 channels at 32×32" in refusal(package_dir)


def test_renamed_graph_input_is_refused(package_dir: Path) -> None:
    manifest = read_manifest(package_dir)
    manifest["graphs"]["encoder"]["inputs"] = {"photo": [None, 3, 16, 16]}
    write_manifest(package_dir, manifest)
    assert "has inputs ['image'], the manifest declares ['photo']" in refusal(package_dir)


def test_unknown_editor_is_refused(package_dir: Path) -> None:
    manifest = read_manifest(package_dir)
    manifest["editor"] = "warp-drive"
    write_manifest(package_dir, manifest)
    assert "editor 'warp-drive' is unknown" in refusal(package_dir)


def test_package_missing_a_graph_its_editor_needs_is_refused(package_dir: Path) -> None:
    manifest = read_manifest(package_dir)
    del manifest["graphs"]["decoder_real"]
    write_manifest(package_dir, manifest)
    assert "needs a 'decoder_real' graph" in refusal(package_dir)


@pytest.mark.parametrize("file_name", ["weights.pkl", "model.pt", "model.pth", "state.npy"])
def test_pickle_formats_are_refused_by_name(package_dir: Path, file_name: str) -> None:
    (package_dir / file_name).write_bytes(b"PK\x03\x04 anything")
    assert file_name in refusal(package_dir)


def test_pickle_is_refused_by_its_protocol_byte(package_dir: Path) -> None:
    (package_dir / "notes.bin").write_bytes(b"\x80\x04\x95 a pickle stream")
    assert "notes.bin, which is a pickle" in refusal(package_dir)


def test_graph_with_external_data_is_refused(package_dir: Path) -> None:
    model = onnx.load(str(package_dir / "encoder.onnx"))
    onnx.save_model(model, str(package_dir / "encoder.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="encoder.data", size_threshold=0)
    manifest = read_manifest(package_dir)
    manifest["graphs"]["encoder"]["sha256"] = hashlib.sha256((package_dir / "encoder.onnx").read_bytes()).hexdigest()
    write_manifest(package_dir, manifest)
    assert "keeps weights in external files" in refusal(package_dir)


def test_graph_path_outside_the_package_is_refused(package_dir: Path) -> None:
    manifest = read_manifest(package_dir)
    manifest["graphs"]["encoder"]["file"] = "../encoder.onnx"
    write_manifest(package_dir, manifest)
    assert "points outside the package" in refusal(package_dir)


def test_symlink_inside_a_package_folder_is_refused(package_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("secret")
    (package_dir / "link.txt").symlink_to(tmp_path / "secret.txt")
    assert "symbolic link 'link.txt'" in refusal(package_dir)


@pytest.mark.parametrize("member", ["../evil.onnx", "/etc/evil.onnx", "a/../../evil.onnx", "C:/evil.onnx", "a\\..\\evil"])
def test_zip_with_unsafe_paths_is_refused_before_extraction(
    package_dir: Path, tmp_path: Path, cache_dir: Path, member: str
) -> None:
    archive = zip_folder(package_dir, tmp_path / "evil.puppetry")
    with zipfile.ZipFile(archive, "a") as bundle:
        bundle.writestr(member, b"x")
    assert f"unsafe path '{member}'" in refusal(archive, cache_dir)
    assert not (tmp_path / "evil.onnx").exists()
    assert not cache_dir.exists() or not any(cache_dir.rglob("*.onnx"))


def test_zip_with_a_symlink_is_refused(package_dir: Path, tmp_path: Path, cache_dir: Path) -> None:
    archive = zip_folder(package_dir, tmp_path / "link.puppetry")
    link = zipfile.ZipInfo("passwd")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(archive, "a") as bundle:
        bundle.writestr(link, "/etc/passwd")
    assert "symbolic link 'passwd'" in refusal(archive, cache_dir)


def test_import_copies_a_zip_into_the_library(package_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine.package, "_default_cache_dir", lambda: tmp_path / "cache")
    archive = zip_folder(package_dir, tmp_path / "tiny.puppetry", "tiny-digits/")
    library = tmp_path / "library"
    imported = import_package(archive, library)
    assert imported.path == library / "tiny-digits"
    assert sorted(p.name for p in imported.path.iterdir()) == ["decoder_real.onnx", "encoder.onnx", "manifest.json"]
    with pytest.raises(PackageError, match="already in the library"):
        import_package(archive, library)
    assert import_package(package_dir, library, replace=True).name == "tiny-digits"


def test_list_packages_returns_user_and_bundled_and_reports_broken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundled = tmp_path / "bundled"
    write_package(bundled / "shipped", name="shipped")
    write_package(tmp_path / "library" / "mine", name="mine")
    (tmp_path / "library" / "broken").mkdir()
    (tmp_path / "library" / "broken" / "manifest.json").write_text("[]")
    monkeypatch.setattr(engine.package, "bundled_models_dir", lambda: bundled)
    packages, errors = scan_packages(tmp_path / "library")
    assert [p.name for p in packages] == ["mine", "shipped"]
    assert len(errors) == 1 and "must hold a JSON object" in str(errors[0])
    assert [p.name for p in list_packages(tmp_path / "library")] == ["mine", "shipped"]


def test_resources_come_from_meipass_inside_a_pyinstaller_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert resources.bundled_models_dir() == tmp_path / "resources" / "models"
