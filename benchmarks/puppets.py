"""Puppet render speed on one core: ms per render and renders per second at 32, 64 and 128 px.

    .venv/bin/python benchmarks/puppets.py [--renders 100] [--repeats 5]

Each puppet renders `renders` random poses (fixed seed) per repeat after one
warm-up pass (which fills the per-size ray and glyph caches, as a slider
session would); the table shows the median repeat and the best one, so a
busy shared machine shows as a gap between the two.
"""

from __future__ import annotations

import os

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = "1"  # before numpy loads its BLAS

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import puppets  # noqa: E402  (after the thread settings on purpose)

SIZES = (32, 64, 128)


def time_renders(puppet: puppets.Puppet, size: int, poses: list[dict[str, float]], repeats: int) -> list[float]:
    """Milliseconds per render, one figure per repeat."""
    for index, pose in enumerate(poses):
        puppet.render(pose, size, seed=index)
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        for index, pose in enumerate(poses):
            puppet.render(pose, size, seed=index)
        timings.append((time.perf_counter() - start) * 1e3 / len(poses))
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=100, help="random poses per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, one thread; "
          f"numpy {np.__version__}, OpenCV {cv2.__version__}; {args.renders} renders × {args.repeats} repeats; "
          f"load average at start {load}")
    print("| puppet | size | ms/render (median) | ms/render (best) | renders/s (median) |")
    print("|---|---:|---:|---:|---:|")
    for name in puppets.available():
        puppet = puppets.load(name)
        rng = np.random.default_rng(0)
        poses = [puppet.sample(rng) for _ in range(args.renders)]
        for size in SIZES:
            timings = time_renders(puppet, size, poses, args.repeats)
            median = statistics.median(timings)
            print(f"| {name} | {size} | {median:.2f} | {min(timings):.2f} | {1e3 / median:.0f} |", flush=True)


if __name__ == "__main__":
    main()
