"""The trainer's toy method, exporting a real (random-weight) puppet package, for the training dialog's tests.

tests/trainer/toy_method.py exports a manifest without graphs, which the
library rightly refuses; this subclass writes the GUI fixtures' tiny ONNX
puppet package instead (built with onnx.helper: no torch export, so fast), so
a real child run can end with a model in the library.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.gui.conftest import make_tiny_package
from tests.trainer.toy_method import ToyMethod


class PackagingToyMethod(ToyMethod):
    name = "packaging-toy"

    def export(self, out_dir: Path, provenance: Mapping[str, Any]) -> Path:
        make_tiny_package(out_dir, name="toy-puppet", seed=self.seed)
        manifest_path = out_dir / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        manifest["provenance"] = {**provenance, "data": "random toy images"}
        manifest_path.write_text(json.dumps(manifest, indent=2))
        return out_dir
