"""Export: ONNX graphs faithful to torch, packages whose manifest describes their files, the export command."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.errors import TrainingError
from engine.package import sha256_file
from engine.runtime import create_session
from tests.trainer.toy_method import ToyAutoencoder
from trainer import cli, export
from trainer.export import Graph, export_onnx, export_package, write_package
from trainer.loop import RunConfig, train

MANIFEST_FIELDS = {"name": "toy", "title": "Toy", "method": "toy", "editor": "puppet", "image_size": 8, "channels": 3}


class TwoHeads(torch.nn.Module):
    """Two inputs and two outputs, like a PuppetGAN decoder/encoder pair in miniature."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.mix = torch.nn.Linear(4 * 4 * 4 + 5, 6)

    def forward(self, image: torch.Tensor, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = torch.cat([torch.relu(self.conv(image)).flatten(1), code], dim=1)  # (B, 69)
        mixed = self.mix(features)
        return mixed[:, :2], torch.tanh(mixed[:, 2:])


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.nn.Module]]:
    """One exported two-graph package and its torch modules, shared by the tests (exports take seconds)."""
    torch.manual_seed(0)
    modules = {"autoencoder": ToyAutoencoder(), "heads": TwoHeads()}
    graphs = {
        "autoencoder": Graph(modules["autoencoder"], (torch.randn(2, 3, 8, 8),), ["image"], ["reconstruction"]),
        "heads": Graph(modules["heads"], (torch.randn(2, 3, 8, 8), torch.randn(2, 5)), ["image", "code"],
                       ["attribute_code", "rest_code"]),
    }
    fields = {**MANIFEST_FIELDS, "provenance": {"steps": 3, "seed": 0}}
    return export_package(tmp_path_factory.mktemp("export") / "toy-package", fields, graphs), modules


@pytest.fixture
def package(exported: tuple[Path, dict[str, torch.nn.Module]]) -> Path:
    return exported[0]


def test_exported_graph_matches_torch_on_another_batch_size(exported: tuple[Path, dict[str, torch.nn.Module]]):
    package, modules = exported
    inputs = {"image": np.random.default_rng(1).normal(size=(5, 3, 8, 8)).astype(np.float32),
              "code": np.random.default_rng(2).normal(size=(5, 5)).astype(np.float32)}
    onnx_outputs = create_session(package / "heads.onnx", provider="cpu", threads=1).run(inputs)
    module = modules["heads"]
    assert module.training  # the exporter restores the module's mode
    with torch.no_grad():
        torch_outputs = module.eval()(*(torch.from_numpy(v) for v in inputs.values()))
    assert list(onnx_outputs) == ["attribute_code", "rest_code"]
    for onnx_output, torch_output in zip(onnx_outputs.values(), torch_outputs):
        assert onnx_output.shape[0] == 5
        assert np.abs(onnx_output - torch_output.numpy()).max() < 1e-4


def test_export_refuses_a_graph_that_differs_from_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(export, "_export", lambda *args: None)
    monkeypatch.setattr(export, "parity_error", lambda *args: 0.5)
    with pytest.raises(TrainingError, match="differs from the torch model by 0.5"):
        export_onnx(ToyAutoencoder(), (torch.randn(2, 3, 8, 8),), tmp_path / "a.onnx",
                    input_names=["image"], output_names=["reconstruction"])


def test_manifest_hashes_and_signatures_match_the_graph_files(package: Path):
    manifest = json.loads((package / "manifest.json").read_text())
    assert sorted(p.name for p in package.iterdir()) == ["autoencoder.onnx", "heads.onnx", "manifest.json"]
    assert manifest["format_version"] == 1 and manifest["name"] == "toy" and manifest["image_size"] == 8
    for role, entry in manifest["graphs"].items():
        assert entry["file"] == f"{role}.onnx"
        assert entry["sha256"] == sha256_file(package / entry["file"])
    assert manifest["graphs"]["heads"]["inputs"] == {"image": [None, 3, 8, 8], "code": [None, 5]}
    assert manifest["graphs"]["heads"]["outputs"] == {"attribute_code": [None, 2], "rest_code": [None, 4]}
    assert manifest["graphs"]["autoencoder"]["outputs"] == {"reconstruction": [None, 3, 8, 8]}
    parity = manifest["provenance"]["parity_max_abs_diff"]
    assert set(parity) == {"autoencoder", "heads"} and max(parity.values()) < 1e-4
    assert manifest["provenance"]["steps"] == 3


def test_graphs_are_self_contained_single_files(package: Path):
    import onnx
    from onnx.external_data_helper import uses_external_data

    for path in package.glob("*.onnx"):
        assert not any(uses_external_data(t) for t in onnx.load(str(path), load_external_data=False).graph.initializer)


def test_writing_a_package_again_replaces_it_whole(package: Path, tmp_path: Path):
    target = tmp_path / "pkg"
    write_package(target, {**MANIFEST_FIELDS, "title": "first"}, {"autoencoder": package / "autoencoder.onnx"})
    write_package(target, {**MANIFEST_FIELDS, "title": "second"}, {"heads": package / "heads.onnx"})
    assert json.loads((target / "manifest.json").read_text())["title"] == "second"
    assert sorted(p.name for p in target.iterdir()) == ["heads.onnx", "manifest.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["pkg"]  # no temp or old folders left beside it


def test_a_manifest_without_required_fields_is_refused(package: Path, tmp_path: Path):
    with pytest.raises(TrainingError, match="lacks editor, image_size"):
        write_package(tmp_path / "pkg", {"name": "toy", "method": "toy"}, {"heads": package / "heads.onnx"})
    assert not list(tmp_path.iterdir())


def test_export_command_writes_a_puppetry_zip_of_a_run(tmp_path: Path, capsys: pytest.CaptureFixture):
    run = RunConfig(name="toy", method="tests.trainer.toy_method:ToyMethod", total_steps=4, seed=1, device="cpu",
                    preview_every=0, checkpoint_every=2, runs_dir=tmp_path / "runs", threads=1,
                    method_config={"export_onnx": True})
    result = train(run)
    archive = tmp_path / "toy.puppetry"
    checkpoint_json = result.run_dir / "checkpoints" / "step_00000002.json"
    checkpoint_json.write_text(json.dumps({**json.loads(checkpoint_json.read_text()),
                                           "saved_at": "2026-01-02T03:04:05+00:00"}))

    code = cli.main(["export", str(result.run_dir), "-o", str(archive), "--checkpoint", "2"])

    assert code == 0 and capsys.readouterr().out.strip() == str(archive)
    with zipfile.ZipFile(archive) as bundle:
        assert sorted(bundle.namelist()) == ["autoencoder.onnx", "manifest.json"]
        manifest = json.loads(bundle.read("manifest.json"))
    assert manifest["provenance"]["steps"] == 2 and manifest["provenance"]["seed"] == 1
    assert manifest["provenance"]["data"] == "random"
    assert manifest["provenance"]["trained_at"] == "2026-01-02T03:04:05+00:00"  # when step 2 was saved, not now
    assert json.loads((result.run_dir / "package" / "manifest.json").read_text())["provenance"]["steps"] == 4


def test_export_command_refuses_a_setting_that_would_change_the_trained_weights(tmp_path: Path,
                                                                               capsys: pytest.CaptureFixture):
    run = RunConfig(name="toy", method="tests.trainer.toy_method:ToyMethod", total_steps=2, device="cpu",
                    preview_every=0, runs_dir=tmp_path / "runs", threads=1)
    result = train(run)

    code = cli.main(["export", str(result.run_dir), "--set", "width=8", "-o", str(tmp_path / "pkg")])

    error = capsys.readouterr().err.strip()
    assert code == 1 and "only settings that do not change the trained weights" in error
    assert not (tmp_path / "pkg").exists()


def test_export_command_reports_a_missing_checkpoint_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture):
    run = RunConfig(name="toy", method="tests.trainer.toy_method:ToyMethod", total_steps=2, device="cpu",
                    preview_every=0, runs_dir=tmp_path / "runs", threads=1)
    result = train(run)

    code = cli.main(["export", str(result.run_dir), "--checkpoint", "7"])

    error = capsys.readouterr().err.strip()
    assert code == 1 and "No complete checkpoint at step 7" in error and "\n" not in error
