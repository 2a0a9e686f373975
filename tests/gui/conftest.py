"""GUI fixtures: tiny random-weight model packages, photos on disk, settings kept out of the user's home."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image
from PySide6.QtCore import QSettings

from gui._qt.main_window import MainWindow
from gui.model.settings import Settings

IMAGE_SIZE = 32
CODE = 64
PIXELS = 3 * IMAGE_SIZE * IMAGE_SIZE


def _weights(rng: np.random.Generator, name: str, rows: int, cols: int, scale: float) -> onnx.TensorProto:
    return numpy_helper.from_array((rng.standard_normal((rows, cols)) * scale).astype(np.float32), name)


def _bias(name: str, size: int) -> onnx.TensorProto:
    return numpy_helper.from_array(np.zeros(size, np.float32), name)


def _save(graph: onnx.GraphProto, path: Path) -> str:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _image_input(name: str = "image") -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", 3, IMAGE_SIZE, IMAGE_SIZE])


def _code(name: str) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", CODE])


def _decoder_tail(
    rng: np.random.Generator, source: str, width: int, prefix: str, output: str = "image"
) -> tuple[list, list]:
    """Gemm(width → 3·32·32) → Tanh → Reshape to (N, 3, 32, 32) named `output`."""
    nodes = [
        helper.make_node("Gemm", [source, f"{prefix}_w", f"{prefix}_b"], ["dense"]),
        helper.make_node("Tanh", ["dense"], ["squashed"]),
        helper.make_node("Reshape", ["squashed", "shape"], [output]),
    ]
    initialisers = [
        _weights(rng, f"{prefix}_w", width, PIXELS, 1.5 / np.sqrt(width)),
        _bias(f"{prefix}_b", PIXELS),
        numpy_helper.from_array(np.array([-1, 3, IMAGE_SIZE, IMAGE_SIZE], np.int64), "shape"),
    ]
    return nodes, initialisers


def encoder_graph(rng: np.random.Generator) -> onnx.GraphProto:
    """image (N,3,32,32) → Flatten → two Gemms → attribute_code (N,64), rest_code (N,64)."""
    nodes = [
        helper.make_node("Flatten", ["image"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "attr_w", "attr_b"], ["attribute_code"]),
        helper.make_node("Gemm", ["flat", "rest_w", "rest_b"], ["rest_code"]),
    ]
    initialisers = [
        _weights(rng, "attr_w", PIXELS, CODE, 1 / np.sqrt(PIXELS)),
        _bias("attr_b", CODE),
        _weights(rng, "rest_w", PIXELS, CODE, 1 / np.sqrt(PIXELS)),
        _bias("rest_b", CODE),
    ]
    return helper.make_graph(nodes, "encoder", [_image_input()], [_code("attribute_code"), _code("rest_code")],
                             initialisers)


def decoder_graph(rng: np.random.Generator) -> onnx.GraphProto:
    """(attribute_code, rest_code) → Concat → Gemm → Tanh → Reshape → image (N,3,32,32)."""
    tail, initialisers = _decoder_tail(rng, "codes", 2 * CODE, "dec")
    nodes = [helper.make_node("Concat", ["attribute_code", "rest_code"], ["codes"], axis=1), *tail]
    return helper.make_graph(nodes, "decoder_real", [_code("attribute_code"), _code("rest_code")],
                             [_image_input()], initialisers)


def guide_encoder_graph(rng: np.random.Generator) -> onnx.GraphProto:
    """image → Flatten → Gemm → guide (N,64)."""
    nodes = [
        helper.make_node("Flatten", ["image"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "guide_w", "guide_b"], ["guide"]),
    ]
    initialisers = [_weights(rng, "guide_w", PIXELS, CODE, 1 / np.sqrt(PIXELS)), _bias("guide_b", CODE)]
    return helper.make_graph(nodes, "guide_encoder", [_image_input()], [_code("guide")], initialisers)


def translator_graph(rng: np.random.Generator) -> onnx.GraphProto:
    """(image, guide) → Concat(flat image, guide) → Gemm → Tanh → Reshape → image."""
    tail, initialisers = _decoder_tail(rng, "joined", PIXELS + CODE, "tr", "translated")
    nodes = [
        helper.make_node("Flatten", ["image"], ["flat"], axis=1),
        helper.make_node("Concat", ["flat", "guide"], ["joined"], axis=1),
        *tail,
    ]
    return helper.make_graph(nodes, "translator", [_image_input(), _code("guide")], [_image_input("translated")],
                             initialisers)


def _graph_entry(file: str, sha: str, inputs: dict, outputs: dict) -> dict:
    return {"file": file, "sha256": sha, "inputs": inputs, "outputs": outputs}


IMAGE_SHAPE = [None, 3, IMAGE_SIZE, IMAGE_SIZE]
CODE_SHAPE = [None, CODE]


def make_tiny_package(folder: Path, *, editor: str = "puppet", name: str | None = None, seed: int = 0) -> Path:
    """Write a random-weight model package (puppet: digits rotation/size; guide: RIFT-shaped) into `folder`."""
    rng = np.random.default_rng(seed)
    name = name or f"tiny-{editor}"
    folder.mkdir(parents=True, exist_ok=True)
    manifest: dict = {
        "format_version": 1,
        "name": name,
        "title": f"Tiny {editor} model",
        "editor": editor,
        "image_size": IMAGE_SIZE,
        "channels": 3,
        "normalisation": {"range": [-1.0, 1.0], "grayscale": True, "polarity": "light_on_dark"},
        "provenance": {"data": "random weights (test fixture)", "steps": 0, "seed": seed},
        "metrics": {"table": [{"attribute": "rotation", "Acc": 0.1, "r_attr": 0.0, "r_rest": 0.0325, "V_rest": 0.0126}],
                    "notes": "random weights: numbers are placeholders of the fixture"},
    }
    if editor == "puppet":
        manifest["method"] = "puppetgan"
        manifest["puppet"] = {
            "kind": "digits",
            "controls": [
                {"name": "rotation", "label": "Rotation", "minimum": -45.0, "maximum": 45.0, "default": 0.0,
                 "kind": "continuous"},
                {"name": "size", "label": "Size", "minimum": 0.6, "maximum": 1.4, "default": 1.0,
                 "kind": "continuous"},
            ],
            "fixed": {"digit": 3},
        }
        manifest["graphs"] = {
            "encoder": _graph_entry("encoder.onnx", _save(encoder_graph(rng), folder / "encoder.onnx"),
                                    {"image": IMAGE_SHAPE}, {"attribute_code": CODE_SHAPE, "rest_code": CODE_SHAPE}),
            "decoder_real": _graph_entry("decoder_real.onnx", _save(decoder_graph(rng), folder / "decoder_real.onnx"),
                                         {"attribute_code": CODE_SHAPE, "rest_code": CODE_SHAPE},
                                         {"image": IMAGE_SHAPE}),
        }
    else:
        manifest["method"] = "rift"
        samples = folder / "samples"
        samples.mkdir(exist_ok=True)
        for index, colour in enumerate(((200, 40, 40), (40, 160, 60), (30, 60, 200))):
            Image.fromarray(np.full((48, 48, 3), colour, np.uint8)).save(samples / f"guide{index}.png")
        manifest["guide"] = {"source_domain": "digits", "guide_domain": "coloured digits", "moves": ["colour"],
                             "stays": ["digit"], "samples": [f"samples/guide{i}.png" for i in range(3)]}
        manifest["graphs"] = {
            "guide_encoder": _graph_entry("guide_encoder.onnx",
                                          _save(guide_encoder_graph(rng), folder / "guide_encoder.onnx"),
                                          {"image": IMAGE_SHAPE}, {"guide": CODE_SHAPE}),
            "translator": _graph_entry("translator.onnx", _save(translator_graph(rng), folder / "translator.onnx"),
                                       {"image": IMAGE_SHAPE, "guide": CODE_SHAPE}, {"translated": IMAGE_SHAPE}),
        }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder


def make_page(width: int = 320, height: int = 200, seed: int = 1) -> np.ndarray:
    """A small paper-like page with two dark blobs of 'ink', (H, W, 3) uint8."""
    rng = np.random.default_rng(seed)
    page = np.clip(rng.normal(235, 4, (height, width, 3)), 0, 255).astype(np.uint8)
    page[60:120, 60:100] = 30
    page[80:150, 200:240] = 40
    return page


@pytest.fixture(scope="session")
def tiny_packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny puppet and one tiny guide package, built once per run (building checks and hashes graphs)."""
    library = tmp_path_factory.mktemp("tiny-packages")
    make_tiny_package(library / "tiny-puppet", editor="puppet")
    make_tiny_package(library / "tiny-guide", editor="guide", seed=1)
    return library


@pytest.fixture
def models_dir(tmp_path: Path, tiny_packages: Path) -> Path:
    """A user model library of this test's own (a copy: tests may import into it)."""
    library = tmp_path / "models"
    shutil.copytree(tiny_packages, library)
    return library


@pytest.fixture
def photo_path(tmp_path: Path) -> Path:
    path = tmp_path / "page.png"
    Image.fromarray(make_page()).save(path)
    return path


@pytest.fixture
def broken_photo(tmp_path: Path) -> Path:
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 8)
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[QSettings]:
    """Settings in a file under the test's tmp dir, never the user's."""
    store = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    yield store
    store.sync()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where tests write screenshots of the states they reach."""
    folder = tmp_path / "screenshots"
    folder.mkdir()
    return folder


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """User data, cache and config folders (platformdirs, package cache) under the test's tmp dir."""
    for variable in ("XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME"):
        folder = tmp_path / variable.lower()
        folder.mkdir()
        monkeypatch.setenv(variable, str(folder))


@pytest.fixture(autouse=True)
def messages(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every message box the GUI would show, as (title, text); no modal dialog ever blocks a test."""
    from PySide6.QtWidgets import QMessageBox

    shown: list[tuple[str, str]] = []

    def record(_parent: object, title: str, text: str, *_args: object, **_kwargs: object) -> QMessageBox.StandardButton:
        shown.append((title, text))
        return QMessageBox.StandardButton.Ok

    for name in ("warning", "critical", "information"):
        monkeypatch.setattr(QMessageBox, name, staticmethod(record))
    monkeypatch.setattr(QMessageBox, "question",
                        staticmethod(lambda *_a, **_k: QMessageBox.StandardButton.Discard))
    return shown


def save_shot(widget: object, folder: Path, name: str) -> Path:
    """Write a screenshot of `widget` to `folder` (and to $PUPPETRY_GUI_SHOTS when set, for a person to look at)."""
    import os

    path = folder / f"{name}.png"
    image = widget.grab()  # type: ignore[attr-defined]
    assert image.save(str(path)), f"could not write {path}"
    extra = os.environ.get("PUPPETRY_GUI_SHOTS")
    if extra:
        image.save(str(Path(extra) / f"gui_{name}.png"))
    return path


@pytest.fixture
def window(qtbot, settings, models_dir) -> Iterator[MainWindow]:
    """The main window on the tiny test models only (no bundled ones), shown at a fixed size."""
    main = MainWindow(Settings(settings), library_dir=models_dir, include_bundled=False)
    main.ask_before_discard = False
    qtbot.addWidget(main)
    main.resize(1280, 800)
    main.show()
    yield main
    main.runner.wait()
