"""Where Puppetry's bundled resources live, from a source checkout or inside a PyInstaller bundle."""

from __future__ import annotations

import sys
from pathlib import Path

_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def resources_dir() -> Path:
    """The `resources/` folder: next to the sources, or under `sys._MEIPASS` when frozen.

    PyInstaller unpacks data files into a temporary folder it names in
    `sys._MEIPASS`; the source tree does not exist there.
    """
    bundle_root = getattr(sys, "_MEIPASS", None)
    root = Path(bundle_root) if bundle_root else _SOURCE_ROOT
    return root / "resources"


def resource_path(*parts: str) -> Path:
    """A path under `resources/` (it may not exist: callers decide whether that is an error)."""
    return resources_dir().joinpath(*parts)


def bundled_models_dir() -> Path:
    """The folder of model packages shipped with Puppetry."""
    return resource_path("models")
