"""Tiny model packages for engine tests, built with onnx.helper (no torch): random linear graphs.

Puppet graphs: encoder = Flatten → two Gemms (attribute_code, rest_code);
decoder_real = Concat → Gemm → Tanh → Reshape. Guide graphs: guide_encoder =
Flatten → Gemm → Reshape to a small map; translator = image + Gemm(guide) → Tanh.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CODE = 8
GUIDE_SIDE = 4
OPSET = 17


def _model(nodes: list, name: str, inputs: list, outputs: list, weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    initialisers = [numpy_helper.from_array(value.astype(np.float32) if value.dtype.kind == "f" else value, key)
                    for key, value in weights.items()]
    graph = helper.make_graph(nodes, name, inputs, outputs, initialisers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _tensor(name: str, shape: list) -> Any:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def puppet_graphs(size: int, channels: int = 3, seed: int = 0) -> dict[str, onnx.ModelProto]:
    rng = np.random.default_rng(seed)
    pixels = channels * size * size
    encoder = _model(
        [
            helper.make_node("Flatten", ["image"], ["flat"]),
            helper.make_node("Gemm", ["flat", "w_attribute", "b_attribute"], ["attribute_code"]),
            helper.make_node("Gemm", ["flat", "w_rest", "b_rest"], ["rest_code"]),
        ],
        "encoder",
        [_tensor("image", ["batch", channels, size, size])],
        [_tensor("attribute_code", ["batch", CODE]), _tensor("rest_code", ["batch", CODE])],
        {
            "w_attribute": rng.normal(0, 1 / np.sqrt(pixels), (pixels, CODE)),
            "b_attribute": np.zeros(CODE),
            "w_rest": rng.normal(0, 1 / np.sqrt(pixels), (pixels, CODE)),
            "b_rest": np.zeros(CODE),
        },
    )
    decoder = _model(
        [
            helper.make_node("Concat", ["attribute_code", "rest_code"], ["code"], axis=1),
            helper.make_node("Gemm", ["code", "w_image", "b_image"], ["flat"]),
            helper.make_node("Tanh", ["flat"], ["squashed"]),
            helper.make_node("Reshape", ["squashed", "shape"], ["image"]),
        ],
        "decoder_real",
        [_tensor("attribute_code", ["batch", CODE]), _tensor("rest_code", ["batch", CODE])],
        [_tensor("image", ["batch", channels, size, size])],
        {
            "w_image": rng.normal(0, 1.0, (2 * CODE, pixels)),
            "b_image": rng.normal(0, 0.5, pixels),
            "shape": np.array([-1, channels, size, size], dtype=np.int64),
        },
    )
    return {"encoder": encoder, "decoder_real": decoder}


def guide_graphs(size: int, seed: int = 0) -> dict[str, onnx.ModelProto]:
    rng = np.random.default_rng(seed)
    pixels = 3 * size * size
    guide_encoder = _model(
        [
            helper.make_node("Flatten", ["image"], ["flat"]),
            helper.make_node("Gemm", ["flat", "w_guide", "b_guide"], ["guide_flat"]),
            helper.make_node("Reshape", ["guide_flat", "shape"], ["guide"]),
        ],
        "guide_encoder",
        [_tensor("image", ["batch", 3, size, size])],
        [_tensor("guide", ["batch", 1, GUIDE_SIDE, GUIDE_SIDE])],
        {
            "w_guide": rng.normal(0, 1 / np.sqrt(pixels), (pixels, GUIDE_SIDE * GUIDE_SIDE)),
            "b_guide": np.zeros(GUIDE_SIDE * GUIDE_SIDE),
            "shape": np.array([-1, 1, GUIDE_SIDE, GUIDE_SIDE], dtype=np.int64),
        },
    )
    translator = _model(
        [
            helper.make_node("Flatten", ["guide"], ["guide_flat"]),
            helper.make_node("Gemm", ["guide_flat", "w_look", "b_look"], ["look_flat"]),
            helper.make_node("Reshape", ["look_flat", "shape"], ["look"]),
            helper.make_node("Add", ["image", "look"], ["sum"]),
            helper.make_node("Tanh", ["sum"], ["translated"]),
        ],
        "translator",
        [_tensor("image", ["batch", 3, size, size]), _tensor("guide", ["batch", 1, GUIDE_SIDE, GUIDE_SIDE])],
        [_tensor("translated", ["batch", 3, size, size])],
        {
            "w_look": rng.normal(0, 1.0, (GUIDE_SIDE * GUIDE_SIDE, pixels)),
            "b_look": np.zeros(pixels),
            "shape": np.array([-1, 3, size, size], dtype=np.int64),
        },
    )
    return {"guide_encoder": guide_encoder, "translator": translator}


def _signature(model: onnx.ModelProto) -> tuple[dict, dict]:
    def shape(value: Any) -> list:
        return [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]

    return ({v.name: shape(v) for v in model.graph.input}, {v.name: shape(v) for v in model.graph.output})


def write_package(
    folder: Path,
    *,
    editor: str = "puppet",
    size: int = 16,
    name: str = "tiny-digits",
    polarity: str | None = "light_on_dark",
    grayscale: bool = True,
) -> Path:
    """Write a valid package folder (manifest + graphs) and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    graphs = puppet_graphs(size) if editor == "puppet" else guide_graphs(size)
    entries = {}
    for role, model in graphs.items():
        data = model.SerializeToString()
        (folder / f"{role}.onnx").write_bytes(data)
        inputs, outputs = _signature(model)
        entries[role] = {"file": f"{role}.onnx", "sha256": hashlib.sha256(data).hexdigest(),
                         "inputs": inputs, "outputs": outputs}
    manifest: dict[str, Any] = {
        "format_version": 1,
        "name": name,
        "title": "Tiny test model",
        "method": "puppetgan" if editor == "puppet" else "rift",
        "editor": editor,
        "image_size": size,
        "channels": 3,
        "normalisation": {"range": [-1.0, 1.0], "grayscale": grayscale, "polarity": polarity},
        "graphs": entries,
        "provenance": {"data": "random weights", "steps": 0, "seed": 0},
        "metrics": {"table": [{"attribute": "rotation", "Acc": 0.5}]},
    }
    if editor == "puppet":
        manifest["puppet"] = {
            "kind": "digits",
            "controls": [{"name": "rotation", "label": "Rotation", "minimum": -30.0, "maximum": 30.0,
                          "default": 0.0, "kind": "continuous", "choices": []}],
            "fixed": {"digit": 3},
        }
    else:
        manifest["guide"] = {"source_domain": "a", "guide_domain": "b", "moves": ["floor_hue"],
                             "stays": ["shape"], "samples": []}
    write_manifest(folder, manifest)
    return folder


def read_manifest(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "manifest.json").read_text())


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
