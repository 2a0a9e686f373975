"""The controls dock, built from the active package's manifest: puppet sliders or a guide picker."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QIcon, QImageReader, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleSlider

from engine.errors import PuppetryError
from engine.package import ModelPackage
from engine.puppets import Control, Puppet
from gui._qt.qimage import to_qpixmap

log = logging.getLogger(__name__)

PUPPET_PREVIEW_PX = 160  # on screen
PUPPET_RENDER_PX = 96  # rendered; a digit at 96 px takes about a millisecond
GUIDE_THUMB_PX = 64
KEYBOARD_COMMIT_MS = 400  # a value typed or stepped with keys commits after this pause
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
STRENGTH = "strength"
GUIDE = "guide"


def button_row(*buttons: tuple[str, str, Callable[[], None]]) -> QHBoxLayout:
    """A row of push buttons, each (text, tooltip, slot)."""
    row = QHBoxLayout()
    for text, tip, slot in buttons:
        button = QPushButton(text)
        button.setToolTip(tip)
        button.clicked.connect(slot)
        row.addWidget(button)
    return row


class ControlsPanel(QWidget):
    """Emits `values_changed` on every move (live preview) and `values_committed` once per finished gesture."""

    values_changed = Signal(dict)
    values_committed = Signal(dict)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(6, 6, 6, 6)
        self._body: QWidget | None = None
        self._controls: dict[str, Control] = {}
        self._widgets: dict[str, QLabeledDoubleSlider | QComboBox] = {}
        self._puppet: Puppet | None = None
        self._fixed: dict[str, float] = {}
        self._guide_list: QListWidget | None = None
        self._strength: QLabeledDoubleSlider | None = None
        self.puppet_preview: QLabel | None = None
        self._rng = np.random.default_rng()
        self._commit_timer = QTimer(self)
        self._commit_timer.setSingleShot(True)
        self._commit_timer.setInterval(KEYBOARD_COMMIT_MS)
        self._commit_timer.timeout.connect(self._commit)
        self.show_message("Open a model from the library.")

    # --- building ---------------------------------------------------------------------------------------------
    def _replace_body(self, body: QWidget) -> None:
        if self._body is not None:
            self._layout.removeWidget(self._body)
            self._body.hide()  # deleteLater waits for the event loop; the old panel must vanish now
            self._body.deleteLater()
        self._body = body
        self._layout.addWidget(body)
        self._widgets = {}
        self._controls = {}
        self._puppet = None
        self._guide_list = None
        self._strength = None
        self.puppet_preview = None

    def show_message(self, text: str) -> None:
        body = QLabel(text)
        body.setWordWrap(True)
        body.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self._replace_body(body)

    def show_package(self, package: ModelPackage, puppet: Puppet | None, guide_samples: Sequence[Path] = ()) -> None:
        """Rebuild the panel for `package`: one widget per control, or the guide picker."""
        if package.puppet is not None and puppet is not None:
            self._build_puppet(package, puppet)
        elif package.guide is not None:
            self._build_guide(package, guide_samples)
        else:
            self.show_message(f"{package.title}: this model has no controls to show.")

    def _build_puppet(self, package: ModelPackage, puppet: Puppet) -> None:
        assert package.puppet is not None
        body = QWidget()
        self._replace_body(body)
        self._puppet = puppet
        self._fixed = {k: float(v) for k, v in package.puppet.fixed.items()}
        layout = QVBoxLayout(body)
        layout.setContentsMargins(0, 0, 0, 0)
        title = QLabel(f"<b>{package.title}</b><br><span style='color:gray'>pose the {puppet.label.lower()}"
                       " puppet; the photo follows</span>")
        title.setWordWrap(True)
        layout.addWidget(title)
        self.puppet_preview = QLabel()
        self.puppet_preview.setFixedSize(PUPPET_PREVIEW_PX, PUPPET_PREVIEW_PX)
        self.puppet_preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.puppet_preview.setStyleSheet("background: black; border: 1px solid palette(mid);")
        self.puppet_preview.setToolTip("The puppet posed by these controls")
        preview_row = QHBoxLayout()
        preview_row.addStretch(1)
        preview_row.addWidget(self.puppet_preview)
        preview_row.addStretch(1)
        layout.addLayout(preview_row)
        form = QFormLayout()
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapAllRows)  # labels like "Rotation (degrees, …)" are long
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for control in package.puppet.controls:
            self._controls[control.name] = control
            widget = self._control_widget(control)
            self._widgets[control.name] = widget
            form.addRow(control.label, widget)
        layout.addLayout(form)
        layout.addLayout(button_row(("Reset", "Every control back to its default", self.reset),
                                    ("Randomise", "A random pose within the model's ranges", self.randomise)))
        layout.addStretch(1)
        self._render_puppet()

    def _control_widget(self, control: Control) -> QLabeledDoubleSlider | QComboBox:
        if control.kind == "categorical":
            combo = QComboBox()
            combo.addItems(list(control.choices))
            combo.setCurrentIndex(round(control.default))
            combo.currentIndexChanged.connect(lambda _i: self._moved(commit=True, immediately=True))
            return combo
        return self._slider(control.minimum, control.maximum, control.default)

    def _slider(self, minimum: float, maximum: float, value: float) -> QLabeledDoubleSlider:
        """A labelled slider that previews while dragged and commits one step on release (or on a click)."""
        slider = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        slider.setRange(minimum, maximum)
        slider.setDecimals(2)
        slider.setSingleStep((maximum - minimum) / 100)
        slider.setValue(value)
        slider.valueChanged.connect(lambda _v: self._moved(commit=not slider.isSliderDown()))
        slider.sliderReleased.connect(self._commit)
        return slider

    def _build_guide(self, package: ModelPackage, samples: Sequence[Path]) -> None:
        body = QWidget()
        self._replace_body(body)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(0, 0, 0, 0)
        assert package.guide is not None
        title = QLabel(f"<b>{package.title}</b><br><span style='color:gray'>pick a {package.guide.guide_domain}"
                       " guide; its look is carried onto the region</span>")
        title.setWordWrap(True)
        layout.addWidget(title)
        group = QGroupBox("Guide")
        group_layout = QVBoxLayout(group)
        self._guide_list = QListWidget()
        self._guide_list.setViewMode(QListView.ViewMode.IconMode)
        self._guide_list.setIconSize(QSize(GUIDE_THUMB_PX, GUIDE_THUMB_PX))
        self._guide_list.setResizeMode(QListView.ResizeMode.Adjust)
        self._guide_list.setMovement(QListView.Movement.Static)
        self._guide_list.setMinimumHeight(3 * GUIDE_THUMB_PX)
        self._guide_list.currentItemChanged.connect(lambda *_: self._moved(commit=True, immediately=True))
        group_layout.addWidget(self._guide_list)
        group_layout.addLayout(button_row(("Folder…", "Show the images of a folder as guides", self._choose_folder),
                                          ("Image…", "Use any image file as the guide", self._choose_image)))
        layout.addWidget(group)
        form = QFormLayout()
        self._strength = self._slider(0.0, 1.0, 1.0)
        form.addRow("Strength", self._strength)
        layout.addLayout(form)
        layout.addStretch(1)
        self.add_guides(samples)

    # --- guides -----------------------------------------------------------------------------------------------
    def add_guides(self, paths: Iterable[Path]) -> dict[Path, str]:
        """Add guide thumbnails (read small, straight from disk); returns the unreadable ones and why (also logged)."""
        skipped: dict[Path, str] = {}
        if self._guide_list is None:
            return skipped
        known = {self._guide_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self._guide_list.count())}
        self._guide_list.blockSignals(True)
        for path in paths:
            if str(path) in known:
                continue
            reader = QImageReader(str(path))
            reader.setAutoTransform(True)
            size = reader.size()
            if size.isValid():
                reader.setScaledSize(size.scaled(GUIDE_THUMB_PX, GUIDE_THUMB_PX, Qt.AspectRatioMode.KeepAspectRatio))
            image = reader.read()
            if image.isNull():
                log.warning("skipped guide %s: %s", path, reader.errorString())
                skipped[Path(path)] = reader.errorString()
                continue
            item = QListWidgetItem(QIcon(QPixmap.fromImage(image)), Path(path).stem)
            item.setData(Qt.ItemDataRole.UserRole, str(path))
            item.setToolTip(str(path))
            self._guide_list.addItem(item)
        self._guide_list.blockSignals(False)
        return skipped

    def guide_paths(self) -> list[Path]:
        if self._guide_list is None:
            return []
        return [Path(self._guide_list.item(i).data(Qt.ItemDataRole.UserRole)) for i in range(self._guide_list.count())]

    def select_guide(self, path: Path) -> str | None:
        """Pick the guide at `path` (added first if new); emits changed and committed like a click.

        Returns why the file cannot be used as a guide, or None once it is picked.
        """
        if self._guide_list is None:
            return None
        skipped = self.add_guides([Path(path)])
        if skipped:
            return skipped[Path(path)]
        for row in range(self._guide_list.count()):
            if Path(self._guide_list.item(row).data(Qt.ItemDataRole.UserRole)) == Path(path):
                self._guide_list.setCurrentRow(row)
        return None

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Guides from folder")
        if folder:
            paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            self.add_guides(paths)

    def _choose_image(self) -> None:
        patterns = " ".join(f"*{s}" for s in IMAGE_SUFFIXES)
        path, _ = QFileDialog.getOpenFileName(self, "Guide image", "", f"Images ({patterns})")
        if path:
            problem = self.select_guide(Path(path))
            if problem is not None:
                QMessageBox.warning(self, "Could not use the guide", f"{path} cannot be read as an image: {problem}.")

    # --- values -----------------------------------------------------------------------------------------------
    def values(self) -> dict[str, Any]:
        """The controls' current values: puppet control floats, or {"guide": Path | None, "strength": float}."""
        if self._guide_list is not None and self._strength is not None:
            item = self._guide_list.currentItem()
            guide = Path(item.data(Qt.ItemDataRole.UserRole)) if item is not None else None
            return {GUIDE: guide, STRENGTH: float(self._strength.value())}
        values: dict[str, Any] = {}
        for name, widget in self._widgets.items():
            values[name] = float(widget.currentIndex()) if isinstance(widget, QComboBox) else float(widget.value())
        return values

    def puppet_values(self) -> dict[str, float]:
        """What the puppet renders: the manifest's fixed values under the controls' values."""
        return {**self._fixed, **self.values()} if self._puppet is not None else {}

    def set_values(self, values: Mapping[str, Any], *, commit: bool = False, emit: bool = True) -> None:
        """Move the widgets to `values` (unknown names are ignored); one `values_changed` unless `emit` is False,
        and a commit if asked."""
        for name, value in values.items():
            widget = self._widgets.get(name)
            if isinstance(widget, QComboBox):
                widget.blockSignals(True)
                widget.setCurrentIndex(round(float(value)))
                widget.blockSignals(False)
            elif widget is not None:
                widget.blockSignals(True)
                widget.setValue(float(value))
                widget.blockSignals(False)
        if STRENGTH in values and self._strength is not None:
            self._strength.blockSignals(True)
            self._strength.setValue(float(values[STRENGTH]))
            self._strength.blockSignals(False)
        if values.get(GUIDE) is not None and self._guide_list is not None:
            self._guide_list.blockSignals(True)
            self.select_guide(Path(values[GUIDE]))
            self._guide_list.blockSignals(False)
        if emit:
            self._moved(commit=commit, immediately=True)
        else:
            self._render_puppet()

    def control_widget(self, name: str) -> QLabeledDoubleSlider | QComboBox:
        return self._widgets[name]

    def strength_slider(self) -> QLabeledDoubleSlider | None:
        return self._strength

    def defaults(self) -> dict[str, Any]:
        if self._puppet is not None:
            return {name: control.default for name, control in self._controls.items()}
        return {STRENGTH: 1.0} if self._strength is not None else {}

    def reset(self) -> None:
        self.set_values(self.defaults(), commit=True)

    def randomise(self) -> None:
        if self._puppet is None:
            return
        values = {}
        for name, control in self._controls.items():
            if control.kind == "categorical":
                values[name] = float(self._rng.integers(len(control.choices)))
            else:
                values[name] = float(self._rng.uniform(control.minimum, control.maximum))
        self.set_values(values, commit=True)

    def _moved(self, *, commit: bool, immediately: bool = False) -> None:
        self._render_puppet()
        self.values_changed.emit(self.values())
        if commit and immediately:
            self._commit()
        elif commit:
            self._commit_timer.start()  # keys and typed numbers: commit once the user pauses

    def _commit(self) -> None:
        self._commit_timer.stop()
        self.values_committed.emit(self.values())

    def _render_puppet(self) -> None:
        if self._puppet is None or self.puppet_preview is None:
            return
        try:
            image = self._puppet.render(self.puppet_values(), PUPPET_RENDER_PX)
        except PuppetryError as error:
            self.puppet_preview.setText(str(error))
            return
        pixmap = to_qpixmap(image).scaled(
            PUPPET_PREVIEW_PX, PUPPET_PREVIEW_PX, Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
        self.puppet_preview.setPixmap(pixmap)
