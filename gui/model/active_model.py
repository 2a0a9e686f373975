"""The active model: which package edits the photo, its loaded editor and provider, and the control values."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from engine.editors.base import Editor
from engine.package import ModelPackage
from engine.resources import resource_path

log = logging.getLogger(__name__)

GUIDE_SAMPLES_DIR = ("samples", "guides")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


class ActiveModel(QObject):
    """Plain state with signals; the library and controls panel are views of it."""

    changed = Signal()  # a different package (or none) is active; its editor may still be loading
    editor_ready = Signal()  # the editor's sessions are loaded; edits can run
    values_changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.package: ModelPackage | None = None
        self.editor: Editor | None = None
        self.values: dict[str, Any] = {}

    @property
    def name(self) -> str | None:
        return self.package.name if self.package is not None else None

    @property
    def provider(self) -> str | None:
        return self.editor.provider if self.editor is not None else None

    def set_package(self, package: ModelPackage | None) -> None:
        """Make `package` active; its editor is loaded separately (off the GUI thread) and set with set_editor."""
        self.package = package
        self.editor = None
        self.values = {}
        self.changed.emit()

    def set_editor(self, package: ModelPackage, editor: Editor) -> None:
        if self.package is None or package.name != self.package.name:
            return  # the user picked another model while this one was loading
        self.editor = editor
        self.editor_ready.emit()

    def set_values(self, values: dict[str, Any]) -> None:
        self.values = dict(values)
        self.values_changed.emit()

    def guide_samples(self) -> list[Path]:
        """Guides to offer: the package's own samples, else the bundled ones in resources/samples/guides."""
        if self.package is None or self.package.guide is None:
            return []
        if self.package.guide.samples:
            return list(self.package.guide.samples)
        folder = resource_path(*GUIDE_SAMPLES_DIR)
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
