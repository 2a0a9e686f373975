"""Engine benchmark: slider-move and guide-pick latency, 24 MP commit, ORT vs torch eager, peak RSS, graph FLOPs.

    .venv/bin/python benchmarks/engine.py [--repeats 200]

Models: every bundled PuppetGAN package (resources/models/*) and guide (RIFT)
package, plus random-weight conv encoder/decoder packages (~0.9M parameters,
the PuppetGAN family: 4×4 stride-2 convs down to 4×4, dense codes of 64+64,
transposed convs back) at 32, 64 and 128 px. The graphs are built with
onnx.helper, so this process never imports torch; torch eager runs the same
weights in a separate process (its idle threads would otherwise distort ORT
timings), and peak RSS is measured in a fresh process too.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, shape_inference

if TYPE_CHECKING:
    from engine.imageio import Photo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CODE = 64  # attribute and rest code sizes, as in PuppetGAN (128 split in half)
WIDTHS = {32: 32, 64: 16, 128: 8}  # first conv width per size: ~0.9M parameters each
FLOOR_FLOPS = 100e9
PHOTO_24MP = (4000, 6000)


@dataclass(frozen=True)
class Layers:
    """Weights of a random conv encoder/decoder, regenerated identically from (size, seed) in any process."""

    encoder_convs: list[tuple[np.ndarray, np.ndarray]]  # (out, in, 4, 4), (out,)
    attribute_head: tuple[np.ndarray, np.ndarray]  # (flat, 64), (64,)
    rest_head: tuple[np.ndarray, np.ndarray]
    decoder_dense: tuple[np.ndarray, np.ndarray]  # (128, flat), (flat,)
    decoder_convs: list[tuple[np.ndarray, np.ndarray]]  # (in, out, 4, 4), (out,)
    bottom_channels: int


def random_layers(size: int, seed: int = 0) -> Layers:
    rng = np.random.default_rng(seed)
    width = WIDTHS[size]
    levels = int(np.log2(size // 4))
    channels = [3] + [width * 2**i for i in range(levels)]

    def he(shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        return rng.normal(0, np.sqrt(2.0 / fan_in), shape).astype(np.float32)

    encoder = [(he((c_out, c_in, 4, 4), c_in * 16), np.zeros(c_out, np.float32)) for c_in, c_out in zip(channels, channels[1:])]
    flat = channels[-1] * 16
    heads = [(he((flat, CODE), flat), np.zeros(CODE, np.float32)) for _ in range(2)]
    dense = (he((2 * CODE, flat), 2 * CODE), np.zeros(flat, np.float32))
    up = channels[::-1]
    decoder = [(he((c_in, c_out, 4, 4), c_in * 16), np.zeros(c_out, np.float32)) for c_in, c_out in zip(up, up[1:])]
    return Layers(encoder, heads[0], heads[1], dense, decoder, channels[-1])


def onnx_graphs(size: int, layers: Layers) -> dict[str, onnx.ModelProto]:
    weights: dict[str, np.ndarray] = {}
    nodes = []
    x = "image"
    for i, (w, b) in enumerate(layers.encoder_convs):
        weights[f"enc{i}.w"], weights[f"enc{i}.b"] = w, b
        nodes.append(helper.make_node("Conv", [x, f"enc{i}.w", f"enc{i}.b"], [f"enc{i}"], kernel_shape=[4, 4], strides=[2, 2], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("LeakyRelu", [f"enc{i}"], [f"enc{i}.act"], alpha=0.2))
        x = f"enc{i}.act"
    nodes.append(helper.make_node("Flatten", [x], ["flat"]))
    for name, (w, b) in (("attribute_code", layers.attribute_head), ("rest_code", layers.rest_head)):
        weights[f"{name}.w"], weights[f"{name}.b"] = w, b
        nodes.append(helper.make_node("Gemm", ["flat", f"{name}.w", f"{name}.b"], [name]))
    encoder = _model(nodes, weights, [("image", [None, 3, size, size])], [("attribute_code", [None, CODE]), ("rest_code", [None, CODE])])

    weights = {"dense.w": layers.decoder_dense[0], "dense.b": layers.decoder_dense[1],
               "shape": np.array([-1, layers.bottom_channels, 4, 4], np.int64)}
    nodes = [
        helper.make_node("Concat", ["attribute_code", "rest_code"], ["code"], axis=1),
        helper.make_node("Gemm", ["code", "dense.w", "dense.b"], ["dense"]),
        helper.make_node("Relu", ["dense"], ["dense.act"]),
        helper.make_node("Reshape", ["dense.act", "shape"], ["map"]),
    ]
    x = "map"
    for i, (w, b) in enumerate(layers.decoder_convs):
        weights[f"dec{i}.w"], weights[f"dec{i}.b"] = w, b
        last = i == len(layers.decoder_convs) - 1
        nodes.append(helper.make_node("ConvTranspose", [x, f"dec{i}.w", f"dec{i}.b"], [f"dec{i}"], kernel_shape=[4, 4], strides=[2, 2], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Tanh" if last else "Relu", [f"dec{i}"], ["image" if last else f"dec{i}.act"]))
        x = f"dec{i}.act"
    decoder = _model(nodes, weights, [("attribute_code", [None, CODE]), ("rest_code", [None, CODE])], [("image", [None, 3, size, size])])
    return {"encoder": encoder, "decoder_real": decoder}


def _model(nodes: list, weights: dict[str, np.ndarray], inputs: list, outputs: list) -> onnx.ModelProto:
    def value(name: str, shape: list) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch" if d is None else d for d in shape])

    graph = helper.make_graph(nodes, "g", [value(*i) for i in inputs], [value(*o) for o in outputs],
                              [numpy_helper.from_array(v, k) for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


PUPPETS = {"digits": ("rotation", True, "light_on_dark"), "face": ("mouth_open", False, None)}


def write_random_package(folder: Path, size: int, puppet: str = "digits") -> Path:
    from engine.puppets import load as load_puppet

    folder.mkdir(parents=True, exist_ok=True)
    graphs = onnx_graphs(size, random_layers(size))
    entries = {}
    for role, model in graphs.items():
        data = model.SerializeToString()
        (folder / f"{role}.onnx").write_bytes(data)
        entries[role] = {
            "file": f"{role}.onnx", "sha256": hashlib.sha256(data).hexdigest(),
            "inputs": {i.name: _dims(i) for i in model.graph.input},
            "outputs": {o.name: _dims(o) for o in model.graph.output},
        }
    control_name, grayscale, polarity = PUPPETS[puppet]
    control = load_puppet(puppet).control(control_name)
    manifest = {
        "format_version": 1, "name": folder.name, "title": f"Random weights {size}px", "method": "puppetgan",
        "editor": "puppet", "image_size": size, "channels": 3,
        "normalisation": {"range": [-1.0, 1.0], "grayscale": grayscale, "polarity": polarity},
        "puppet": {"kind": puppet, "controls": [control.to_dict()], "fixed": {}},
        "graphs": entries, "provenance": {"data": "random weights", "steps": 0, "seed": 0}, "metrics": {},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder


def _dims(value: onnx.ValueInfoProto) -> list[int | None]:
    return [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]


def graph_flops(path: Path) -> float:
    """FLOPs (2 × MACs) of Conv, ConvTranspose, Gemm and MatMul at batch 1, from ONNX shape inference."""
    model = onnx.load(str(path))
    del model.graph.value_info[:]  # exporters store symbolic batch dims there; infer them again at batch 1
    for value in [*model.graph.input, *model.graph.output]:
        for dim in value.type.tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                dim.dim_value = 1
    model = shape_inference.infer_shapes(model, data_prop=True)  # Shape→Reshape chains (GroupNorm) need values
    shapes = {v.name: _dims(v) for v in [*model.graph.value_info, *model.graph.input, *model.graph.output]}
    shapes.update({t.name: list(t.dims) for t in model.graph.initializer})
    macs = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            n, c_out, h, w = shapes[node.output[0]]
            c_out_w, c_in_g, kh, kw = shapes[node.input[1]]
            macs += n * c_out * h * w * c_in_g * kh * kw
        elif node.op_type == "ConvTranspose":
            n, c_in, h, w = shapes[node.input[0]]
            _, c_out_g, kh, kw = shapes[node.input[1]]
            macs += n * c_in * h * w * c_out_g * kh * kw
        elif node.op_type in ("Gemm", "MatMul"):
            a, b = shapes[node.input[0]], shapes[node.input[1]]
            transposed = any(attr.name == "transB" and attr.i for attr in node.attribute)
            n_out = b[0] if transposed else b[-1]
            macs += int(np.prod(a)) * n_out
    return 2.0 * macs


def percentiles(samples: list[float]) -> tuple[float, float]:
    return float(np.percentile(samples, 50)), float(np.percentile(samples, 95))


def time_calls(call: Callable[[int], object], repeats: int, warm: int = 5) -> list[float]:
    for i in range(warm):
        call(i)
    samples = []
    for i in range(repeats):
        start = time.perf_counter()
        call(i)
        samples.append((time.perf_counter() - start) * 1e3)
    return samples


def synthetic_photo(height: int, width: int) -> np.ndarray:
    """A paper-grey photo with noise and one dark glyph-like object in the middle third."""
    rng = np.random.default_rng(0)
    photo = np.empty((height, width, 3), np.uint8)
    photo[...] = (205, 200, 190)
    photo += rng.integers(0, 8, (height, 1, 3), dtype=np.uint8)
    photo[height // 3 : 2 * height // 3, width // 2 - width // 20 : width // 2 + width // 20] = 30
    return photo


def synthetic_24mp_photo() -> Photo:
    """`synthetic_photo` at PHOTO_24MP as the 8-bit Photo the editor opens (engine imported late: workers)."""
    from engine.imageio import Photo

    return Photo(pixels=synthetic_photo(*PHOTO_24MP), alpha=None, bit_depth=8, source=None, icc_profile=None,
                 format="PNG")


def slider_benchmark(package_path: Path, repeats: int) -> dict[str, float]:
    """p50/p95 of one slider move on the GUI path (render + apply + paste-back on a ≤2048 px view), with a breakdown."""
    from engine import editors
    from engine.package import load_package
    from engine.regions import Box, paste_back
    from engine.session import EditSession

    package = load_package(package_path)
    editor = editors.load(package, "auto")
    height, width = PHOTO_24MP
    photo = synthetic_24mp_photo()
    box = Box(width // 2 - 1000, height // 2 - 1000, 2000, 2000)
    session = EditSession(photo, editor, box)
    prepare_ms = session.prepare()
    control = editor.section.controls[0]
    values = np.linspace(control.minimum, control.maximum, repeats + 5)  # every move a new value: no cache hits

    apply_ms: list[float] = []
    paste_ms: list[float] = []

    def move(i: int) -> object:
        result = session.preview({control.name: float(values[i % len(values)])})
        apply_ms.append(result.timings.apply_ms)
        paste_ms.append(result.timings.paste_ms)
        return result

    slider = time_calls(move, repeats)
    state = session._state
    render = time_calls(lambda i: editor.puppet.render(editor.puppet_values({control.name: float(values[i % len(values)])}), package.image_size), 50)
    image = np.zeros((1, 3, package.image_size, package.image_size), np.float32)
    encode = time_calls(lambda i: editor.run("encoder", image=image), 50)
    codes = editor.run("encoder", image=image)
    decode = time_calls(lambda i: editor.run("decoder_real", attribute_code=codes["attribute_code"], rest_code=state.rest_code), 50)
    view, view_crop, _ = session._preview_view()
    edited = session.edit({control.name: float(values[0])})
    paste = time_calls(lambda i: paste_back(view, view_crop, edited, feather=session.feather, color_match=session.color_match), 50)
    commit_box = time_calls(lambda i: session.commit({control.name: float(values[i % len(values)])}), 10, warm=1)
    start = time.perf_counter()
    whole = EditSession(photo, editor, Box(0, 0, width, height))  # crops 24 MP to model size
    whole.prepare()
    session_whole_ms = (time.perf_counter() - start) * 1e3
    commit_whole = time_calls(lambda i: whole.commit({control.name: float(values[i % len(values)])}), 10, warm=1)
    p50, p95 = percentiles(slider)
    return {
        "provider": editor.provider.removesuffix("ExecutionProvider"),
        "prepare_ms": prepare_ms,
        "slider_p50": p50, "slider_p95": p95,
        "slider_apply_p50": percentiles(apply_ms)[0], "slider_paste_p50": percentiles(paste_ms)[0],
        "render_p50": percentiles(render)[0], "encode_p50": percentiles(encode)[0],
        "decode_p50": percentiles(decode)[0], "paste_p50": percentiles(paste)[0],
        "commit_box_p50": percentiles(commit_box)[0], "commit_whole_p50": percentiles(commit_whole)[0],
        "session_whole_ms": session_whole_ms,
        "ort_graphs_p50": percentiles([a + b for a, b in zip(encode, decode)])[0],
    }


def torch_worker(size: int, repeats: int, threads: int) -> None:
    """(Separate process.) Time torch eager on the same weights: encoder + decoder at batch 1."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    layers = random_layers(size)
    t = {k: torch.from_numpy(v) for k, v in {
        **{f"enc{i}.w": w for i, (w, _) in enumerate(layers.encoder_convs)},
        **{f"enc{i}.b": b for i, (_, b) in enumerate(layers.encoder_convs)},
        **{f"dec{i}.w": w for i, (w, _) in enumerate(layers.decoder_convs)},
        **{f"dec{i}.b": b for i, (_, b) in enumerate(layers.decoder_convs)},
        "attr.w": layers.attribute_head[0], "attr.b": layers.attribute_head[1],
        "rest.w": layers.rest_head[0], "rest.b": layers.rest_head[1],
        "dense.w": layers.decoder_dense[0], "dense.b": layers.decoder_dense[1],
    }.items()}

    def encode(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for i in range(len(layers.encoder_convs)):
            x = F.leaky_relu(F.conv2d(x, t[f"enc{i}.w"], t[f"enc{i}.b"], stride=2, padding=1), 0.2)
        flat = x.flatten(1)
        return flat @ t["attr.w"] + t["attr.b"], flat @ t["rest.w"] + t["rest.b"]

    def decode(attribute: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
        x = torch.relu(torch.cat([attribute, rest], 1) @ t["dense.w"] + t["dense.b"]).reshape(-1, layers.bottom_channels, 4, 4)
        for i in range(len(layers.decoder_convs)):
            x = F.conv_transpose2d(x, t[f"dec{i}.w"], t[f"dec{i}.b"], stride=2, padding=1)
            x = torch.tanh(x) if i == len(layers.decoder_convs) - 1 else torch.relu(x)
        return x

    image = torch.zeros(1, 3, size, size)
    with torch.inference_mode():
        attribute, rest = encode(image)
        samples = time_calls(lambda i: decode(encode(image)[0], rest), repeats)
    print(json.dumps({"torch_p50": percentiles(samples)[0], "torch_version": torch.__version__}))


def rss_worker(package_path: Path) -> None:
    """(Separate process.) Peak RSS after loading a 24 MP photo, preparing, previewing and committing a whole-image edit."""
    from engine import editors
    from engine.imageio import Photo
    from engine.package import load_package
    from engine.regions import Box
    from engine.session import EditSession

    # ru_maxrss of a fresh child can carry the parent's size from fork; VmRSS is this process only.
    baseline_kb = int(next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmRSS")).split()[1])
    editor = editors.load(load_package(package_path), "auto")
    height, width = PHOTO_24MP
    photo = synthetic_24mp_photo()
    session = EditSession(photo, editor, Box(0, 0, width, height))
    control = editor.section.controls[0]
    session.preview({control.name: control.default})
    session.commit({control.name: control.default})
    deep = Photo(pixels=photo.pixels.astype(np.uint16) * 257, alpha=None, bit_depth=16, source=None, icc_profile=None, format="PNG")
    del photo, session
    EditSession(deep, editor, Box(0, 0, width, height)).commit({control.name: control.default})
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"baseline_mb": baseline_kb / 1024, "peak_mb": peak / 1024}))


def guide_benchmark(package_path: Path, repeats: int) -> dict[str, float]:
    """p50/p95 of picking a guide on the GUI path (the whole 24 MP photo is a guide model's region).

    A new guide every pick (random 64 px images, so the guide-map cache never hits), then the
    package's own sample guides flipped through with the cache warm, then full-resolution commits.
    """
    from engine import editors
    from engine.imageio import load_rgb8
    from engine.package import load_package
    from engine.regions import Box
    from engine.session import EditSession

    package = load_package(package_path)
    editor = editors.load(package, "auto")
    height, width = PHOTO_24MP
    photo = synthetic_24mp_photo()
    session = EditSession(photo, editor, Box(0, 0, width, height))
    session.prepare()
    rng = np.random.default_rng(0)
    fresh = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(repeats + 5)]
    samples = [load_rgb8(path) for path in package.guide.samples]
    apply_ms: list[float] = []

    def pick(i: int) -> object:
        result = session.preview({"guide": fresh[i]})
        apply_ms.append(result.timings.apply_ms)
        return result

    new_guide = time_calls(pick, repeats)
    for guide in samples:
        session.preview({"guide": guide})
    cached = time_calls(lambda i: session.preview({"guide": samples[i % len(samples)]}), repeats)
    commit = time_calls(lambda i: session.commit({"guide": samples[i % len(samples)]}), 10, warm=1)
    return {
        "provider": editor.provider.removesuffix("ExecutionProvider"),
        "new_p50": percentiles(new_guide)[0], "new_p95": percentiles(new_guide)[1],
        "new_apply_p50": percentiles(apply_ms)[0],
        "cached_p50": percentiles(cached)[0], "cached_p95": percentiles(cached)[1],
        "commit_whole_p50": percentiles(commit)[0],
    }


def run_worker(args: list[str]) -> dict:
    completed = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--torch-worker", type=int, metavar="SIZE", help=argparse.SUPPRESS)
    parser.add_argument("--rss-worker", type=Path, metavar="PACKAGE", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_worker:
        torch_worker(args.torch_worker, args.repeats, args.threads)
        return
    if args.rss_worker:
        rss_worker(args.rss_worker)
        return

    from engine.runtime import physical_cores

    threads = physical_cores()
    print(f"# engine benchmark  {time.strftime('%Y-%m-%d %H:%M')}  {platform.processor() or platform.machine()}  "
          f"{os.cpu_count()} CPUs ({threads} physical cores used)  python {platform.python_version()}  "
          f"onnxruntime {__import__('onnxruntime').__version__}  load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="puppetry-bench-") as folder:
        run_benchmarks(Path(folder), args.repeats, threads)


def run_benchmarks(work: Path, repeats: int, threads: int) -> None:
    """Benchmark every model, print the lines and the Markdown table that BENCHMARKS.md records."""
    from engine.package import list_packages

    models = [(p.name, p.path, None) for p in list_packages(work / "no-user-library") if p.editor == "puppet"]
    models += [(f"random-{size}", write_random_package(work / f"random-{size}", size), size) for size in WIDTHS]
    models.append(("random-128-face", write_random_package(work / "random-128-face", 128, "face"), None))
    rows = []
    for name, path, random_size in models:
        flops = sum(graph_flops(path / f) for f in ("encoder.onnx", "decoder_real.onnx") if (path / f).exists())
        params = sum(int(np.prod(t.dims)) for f in ("encoder.onnx", "decoder_real.onnx") for t in onnx.load(str(path / f)).graph.initializer)
        result = slider_benchmark(path, repeats)
        if random_size is not None:
            result.update(run_worker(["--torch-worker", str(random_size), "--repeats", str(repeats), "--threads", str(threads)]))
        rows.append((name, params, flops, result))
        print(f"{name}: params {params / 1e6:.2f}M, {flops / 1e6:.1f} MFLOP/move (floor {flops / FLOOR_FLOPS * 1e3:.3f} ms at 100 GFLOP/s)")
        print("  " + json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}))
    guides = [(p.name, guide_benchmark(p.path, repeats)) for p in list_packages(work / "no-user-library")
              if p.editor == "guide"]
    for name, result in guides:
        print(f"{name} (guide): " + json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}))
    rss = run_worker(["--rss-worker", str(work / "random-128")])
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print(f"peak RSS, 24 MP 8-bit + 16-bit whole-image commits (random-128): {rss['peak_mb']:.0f} MB "
          f"(process after imports: {rss['baseline_mb']:.0f} MB)")
    print()
    print("| model | params | MFLOP/move | floor @100 GFLOP/s | slider p50 / p95 | of which apply / paste | render | encode | decode | ORT graphs | torch eager | 24 MP commit: 2000² box / whole |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, params, flops, r in rows:
        torch_text = f"{r['torch_p50']:.2f} ms ({r['torch_p50'] / r['ort_graphs_p50']:.1f}×)" if "torch_p50" in r else "—"
        print(f"| {name} | {params / 1e6:.2f}M | {flops / 1e6:.1f} | {flops / FLOOR_FLOPS * 1e3:.3f} ms | "
              f"{r['slider_p50']:.2f} / {r['slider_p95']:.2f} ms | {r['slider_apply_p50']:.2f} / {r['slider_paste_p50']:.2f} | "
              f"{r['render_p50']:.2f} | {r['encode_p50']:.2f} | {r['decode_p50']:.2f} | {r['ort_graphs_p50']:.2f} | "
              f"{torch_text} | {r['commit_box_p50']:.0f} / {r['commit_whole_p50']:.0f} ms |")
    print()
    print("| guide model | new guide p50 / p95 | of which apply | cached guide p50 / p95 | 24 MP commit |")
    print("|---|---|---|---|---|")
    for name, r in guides:
        print(f"| {name} | {r['new_p50']:.2f} / {r['new_p95']:.2f} ms | {r['new_apply_p50']:.2f} | "
              f"{r['cached_p50']:.2f} / {r['cached_p95']:.2f} ms | {r['commit_whole_p50']:.0f} ms |")


if __name__ == "__main__":
    main()
