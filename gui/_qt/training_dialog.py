"""The training dialog: choose what to train, start, pause, continue and cancel it, and watch it learn.

A view of `gui.model.training_run.TrainingRun`; the run (and its child
process) lives on when the dialog is closed, and reopening shows it again.
The methods offered are described here, not imported: the GUI never loads the
trainer (torch). What each method can train on is what `trainer/methods/`
supports today, and the dialog says so rather than offering more.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPainterPath, QPaintEvent, QPen, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from engine import puppets
from engine.errors import PuppetryError
from engine.package import name_part, user_library_dir
from gui.model.training_run import (
    BundledRecipe,
    RunState,
    TrainingRequest,
    TrainingRun,
    bundled_recipe,
    check_run_name,
    default_runs_dir,
)

SERIES_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                  "#bcbd22", "#17becf", "#393b79", "#ad494a")


@dataclass(frozen=True)
class MethodChoice:
    """A training method as the dialog offers it; `real_data` holds (setting value, label) pairs."""

    key: str  # --method
    label: str
    default_steps: int
    real_data: tuple[tuple[str, str], ...]
    note: str
    user_photos: bool = False  # also trains on an image folder or a video the user picks
    splits: tuple[tuple[int, str, str], ...] = ()  # (split, label, tooltip): chosen instead of puppet and attribute


METHODS = (
    MethodChoice(
        key="puppetgan",
        label="PuppetGAN",
        default_steps=2500,  # PuppetGANConfig.steps
        real_data=(("mnist", "MNIST digits (packaged, 4,000 training digits)"),),
        note="Carries one posed puppet attribute onto real photos: the packaged MNIST digits, or your own image "
             "folder or video (a colour model; pick the puppet that looks like them). Runs on MNIST are scored as "
             "they train; on your own photos, judge the previews.",
        user_photos=True,
    ),
    MethodChoice(
        key="rift",
        label="RIFT (guided translation)",
        default_steps=100_000,  # RIFTConfig.steps
        real_data=(("shapes-abc", "3D-Shapes-ABC (rendered as it trains)"),),
        note="Carries a guide image's domain-specific look onto a photo and keeps what the two domains share. "
             "It trains on 3D-Shapes-ABC, two domains of rendered rooms scored as it trains, or on your own: "
             "a folder or video of the photos to edit and one of the guides whose look they take (a colour "
             "model; judge the previews).",
        user_photos=True,
        splits=(  # papers.md §2, the three 3D-Shapes-ABC splits
            (1, "1: floor, wall hue ↔ scale, orientation",
             "Domain A varies floor and wall hue, domain B scale and orientation; object hue and shape are shared"),
            (2, "2: object hue, scale ↔ shape, wall hue",
             "Domain A varies object hue and scale, domain B shape and wall hue; floor hue and orientation are shared"),
            (3, "3: floor hue, shape ↔ object hue, orientation",
             "Domain A varies floor hue and shape, domain B object hue and orientation; wall hue and scale are shared"),
        ),
    ),
)


# The "Real images" entries that ask for the user's own photos: (item data, label, what the file dialog picks)
CHOOSE_FOLDER, CHOOSE_VIDEO = ":folder", ":video"
USER_PHOTO_CHOICES = ((CHOOSE_FOLDER, "Image folder…"), (CHOOSE_VIDEO, "Video file…"))
VIDEO_FILTER = "Videos (*.mp4 *.avi *.mov *.mkv *.webm *.m4v *.mpg *.mpeg);;All files (*)"


def suggest_run_name(base: str, runs_dir: Path, library_dir: Path) -> str:
    """`base`, or `base-2`, `base-3`, ...: the first name used by neither a run nor a library model."""
    candidate, number = base, 1
    while (runs_dir / candidate).exists() or (library_dir / candidate).exists():
        number += 1
        candidate = f"{base}-{number}"
    return candidate


def format_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class LossPlot(QWidget):
    """One polyline per loss over the steps, optionally on a log scale; a legend with the newest values."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.series: dict[str, list[tuple[int, float]]] = {}
        self.log_y = True
        self.setMinimumSize(320, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_series(self, series: Mapping[str, Sequence[tuple[int, float]]]) -> None:
        self.series = {name: list(points) for name, points in series.items()}
        self.update()

    def set_log_y(self, on: bool) -> None:
        self.log_y = on
        self.update()

    def _y(self, value: float) -> float | None:
        if self.log_y:
            return math.log10(value) if value > 0 else None
        return value

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), self.palette().base())
        metrics = painter.fontMetrics()
        names = sorted(self.series)
        left = metrics.horizontalAdvance("0.000") + 10
        legend = self._legend_layout(names, left, self.width() - 8)
        legend_height = (max((top for _, _, top in legend), default=-1) + 1) * (metrics.height() + 2)
        plot = QRectF(left, 8, self.width() - left - 12, self.height() - legend_height - metrics.height() - 22)
        painter.setPen(QPen(self.palette().mid().color()))
        painter.drawRect(plot)
        points = [(s, y) for n in names for s, v in self.series[n] if (y := self._y(v)) is not None]
        if not points or plot.width() < 20 or plot.height() < 20:
            painter.setPen(self.palette().placeholderText().color())
            painter.drawText(plot, Qt.AlignmentFlag.AlignCenter, "losses appear here once training steps")
            return
        x_low, x_high = min(p[0] for p in points), max(p[0] for p in points)
        y_low, y_high = min(p[1] for p in points), max(p[1] for p in points)
        x_span, y_span = max(x_high - x_low, 1), max(y_high - y_low, 1e-9)

        def to_screen(step: float, y: float) -> QPointF:
            return QPointF(plot.left() + (step - x_low) / x_span * plot.width(),
                           plot.bottom() - (y - y_low) / y_span * plot.height())

        self._axis_labels(painter, plot, (x_low, x_high), (y_low, y_high))
        painter.setClipRect(plot.adjusted(-2, -2, 2, 2))
        for index, name in enumerate(names):
            path = QPainterPath()
            for step, value in self.series[name]:
                y = self._y(value)
                if y is None:
                    continue
                if path.elementCount():
                    path.lineTo(to_screen(step, y))
                else:
                    path.moveTo(to_screen(step, y))
            painter.setPen(QPen(QColor(SERIES_COLOURS[index % len(SERIES_COLOURS)]), 1.5))
            painter.drawPath(path)
        painter.setClipping(False)
        self._legend(painter, legend, plot.bottom() + metrics.height() + 10)

    def _legend_text(self, name: str) -> str:
        points = self.series[name]
        return f"{name} {points[-1][1]:.3g}" if points else name

    def _legend_layout(self, names: Sequence[str], left: float, right: float) -> list[tuple[str, float, int]]:
        """(name, x, row) of each legend entry, flowing in rows under the plot."""
        metrics = self.fontMetrics()
        entries, x, row = [], left, 0
        for name in names:
            width = 14 + metrics.horizontalAdvance(self._legend_text(name)) + 14
            if x + width > right and x > left:
                x, row = left, row + 1
            entries.append((name, x, row))
            x += width
        return entries

    def _axis_labels(self, painter: QPainter, plot: QRectF, x_range: tuple[int, int],
                     y_range: tuple[float, float]) -> None:
        painter.setPen(self.palette().text().color())
        metrics = painter.fontMetrics()
        for fraction in (0.0, 0.25, 0.5, 0.75, 1.0):
            y = y_range[0] + fraction * (y_range[1] - y_range[0])
            text = f"{10 ** y:.2g}" if self.log_y else f"{y:.3g}"
            y_screen = plot.bottom() - fraction * plot.height()
            painter.drawText(QRectF(0, y_screen - metrics.height() / 2, plot.left() - 4, metrics.height()),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, text)
        below = QRectF(plot.left(), plot.bottom() + 2, plot.width(), metrics.height())
        painter.drawText(below, Qt.AlignmentFlag.AlignLeft, f"step {x_range[0]:,}")
        painter.drawText(below, Qt.AlignmentFlag.AlignRight, f"step {x_range[1]:,}")

    def _legend(self, painter: QPainter, entries: Sequence[tuple[str, float, int]], top: float) -> None:
        metrics = painter.fontMetrics()
        names = sorted(self.series)
        for name, x, row in entries:
            y = top + row * (metrics.height() + 2)
            colour = QColor(SERIES_COLOURS[names.index(name) % len(SERIES_COLOURS)])
            painter.fillRect(QRectF(x, y + metrics.height() / 2 - 2, 10, 4), colour)
            painter.setPen(self.palette().text().color())
            painter.drawText(QPointF(x + 14, y + metrics.ascent()), self._legend_text(name))


class PreviewView(QWidget):
    """The newest preview grid, scaled to fit without smoothing (grids are small and made of pixels)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.pixmap = QPixmap()
        self.caption = "the newest preview grid appears here"
        self.setMinimumSize(200, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def show_file(self, path: str, caption: str) -> None:
        self.pixmap = QPixmap(path)
        self.caption = caption if not self.pixmap.isNull() else f"could not read {path}"
        self.update()

    def clear(self) -> None:
        self.pixmap = QPixmap()
        self.caption = "the newest preview grid appears here"
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), self.palette().base())
        caption_height = painter.fontMetrics().height() + 4
        area = QRectF(self.rect()).adjusted(4, 4, -4, -caption_height)
        if not self.pixmap.isNull() and area.width() > 0 and area.height() > 0:
            scale = min(area.width() / self.pixmap.width(), area.height() / self.pixmap.height())
            if scale >= 1:
                scale = math.floor(scale)  # whole pixels: crisp, evenly sized
            size = self.pixmap.size() * scale
            target = QRectF(area.center().x() - size.width() / 2, area.center().y() - size.height() / 2,
                            size.width(), size.height())
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, scale < 1)
            painter.drawPixmap(target, self.pixmap, QRectF(self.pixmap.rect()))
        painter.setPen(self.palette().placeholderText().color() if self.pixmap.isNull() else
                       self.palette().text().color())
        painter.drawText(QRectF(0, self.height() - caption_height, self.width(), caption_height),
                         Qt.AlignmentFlag.AlignCenter, self.caption)


class TrainingDialog(QDialog):
    """Non-modal: pick a method and its data (puppet and attribute, or split), start, and watch; the run outlives
    the window."""

    open_model = Signal(str)  # the library name of the trained model, to open in the editor

    def __init__(self, library_dir: Path | None = None, parent: QWidget | None = None,
                 run: TrainingRun | None = None, bundled_models_dir: Path | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Train a model")
        self.setModal(False)
        self.library_dir = library_dir
        self.bundled_models_dir = bundled_models_dir  # None: the app's own resources/models
        self.recipe: BundledRecipe | None = None
        self.run = run or TrainingRun(library_dir, self)
        self._name_edited = False
        self._chosen_index: dict[QComboBox, int] = {}  # per photo box, the entry to return to on a cancel
        self._logged_bucket = -1
        self._build()
        self._connect()
        self._method_changed()
        self._state_changed(self.run.state)
        self.resize(1080, 680)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.run.shutdown)  # a last checkpoint before the editor goes

    # --- building ---------------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.method_box = QComboBox()
        for method in METHODS:
            self.method_box.addItem(method.label, method.key)
        self.puppet_box = QComboBox()
        for name in puppets.available():
            self.puppet_box.addItem(name, name)
        self.attribute_box = QComboBox()
        self.split_box = QComboBox()
        self.real_box = QComboBox()
        self.guide_box = QComboBox()  # RIFT on the user's photos: the guide domain
        for value, label in USER_PHOTO_CHOICES:
            self.guide_box.addItem(label, value)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: palette(placeholder-text);")
        self.recipe_box = QCheckBox()
        self.recipe_box.setChecked(True)
        self.steps_box = QSpinBox()
        self.steps_box.setRange(1, 10_000_000)
        self.steps_box.setSingleStep(100)
        self.steps_box.setGroupSeparatorShown(True)
        self.name_edit = QLineEdit()
        self.name_edit.setToolTip("The run's folder name and the name of the model in your library")
        self.runs_edit = QLineEdit(str(default_runs_dir()))
        self.runs_button = QPushButton("Browse…")
        runs_row = QHBoxLayout()
        runs_row.addWidget(self.runs_edit, 1)
        runs_row.addWidget(self.runs_button)
        self.form = form = QFormLayout()
        form.addRow("Method", self.method_box)
        form.addRow("Puppet", self.puppet_box)
        form.addRow("Attribute", self.attribute_box)
        form.addRow("Split", self.split_box)
        form.addRow("Real images", self.real_box)
        form.addRow("Guide photos", self.guide_box)
        form.addRow("", self.note)
        form.addRow("Settings", self.recipe_box)
        form.addRow("Steps", self.steps_box)
        form.addRow("Name", self.name_edit)
        form.addRow("Runs folder", runs_row)
        self.settings_group = QGroupBox("What to train")
        self.settings_group.setLayout(form)

        self.start_button = QPushButton("Start")
        self.start_button.setDefault(True)
        self.pause_button = QPushButton("Pause")
        self.cancel_button = QPushButton("Cancel run")
        self.cancel_button.setToolTip("Stop after the current step; a checkpoint is kept so the run can be resumed")
        self.resume_button = QPushButton("Resume a run…")
        self.open_button = QPushButton("Open in editor")
        self.close_button = QPushButton("Close")
        self.close_button.setToolTip("Hide this window; training goes on")
        buttons = QVBoxLayout()
        for row in ((self.start_button, self.pause_button, self.cancel_button),
                    (self.resume_button, self.open_button, self.close_button)):
            line = QHBoxLayout()
            for button in row:
                line.addWidget(button)
            buttons.addLayout(line)

        self.status = QLabel("Choose what to train and press Start.")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m steps")
        left = QVBoxLayout()
        left.addWidget(self.settings_group)
        left.addLayout(buttons)
        left.addWidget(self.progress)
        left.addWidget(self.status)
        left.addStretch(1)
        left_widget = QWidget()
        left_widget.setLayout(left)
        left_widget.setMinimumWidth(360)
        left_widget.setMaximumWidth(440)

        self.plot = LossPlot()
        self.log_scale = QCheckBox("Log scale")
        self.log_scale.setChecked(True)
        plot_box = QVBoxLayout()
        plot_box.setContentsMargins(0, 0, 0, 0)
        plot_box.addWidget(self.plot, 1)
        plot_box.addWidget(self.log_scale)
        plot_widget = QWidget()
        plot_widget.setLayout(plot_box)
        self.preview = PreviewView()
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(2000)
        self.log.setFont(QFont("monospace", self.log.font().pointSize() - 1))
        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(plot_widget)
        top.addWidget(self.preview)
        top.setSizes([420, 260])
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(top)
        right.addWidget(self.log)
        right.setSizes([460, 180])
        layout = QHBoxLayout(self)
        layout.addWidget(left_widget)
        layout.addWidget(right, 1)

    def _connect(self) -> None:
        self.method_box.currentIndexChanged.connect(self._method_changed)
        self.puppet_box.currentIndexChanged.connect(self._puppet_changed)
        self.attribute_box.currentIndexChanged.connect(self._data_changed)
        self.split_box.currentIndexChanged.connect(self._data_changed)
        self.real_box.activated.connect(lambda index: self._photos_chosen(self.real_box, index))
        self.guide_box.activated.connect(lambda index: self._photos_chosen(self.guide_box, index))
        self.recipe_box.toggled.connect(self._recipe_toggled)
        self.runs_edit.editingFinished.connect(self._suggest_name)
        self.name_edit.textEdited.connect(lambda _text: setattr(self, "_name_edited", True))
        self.runs_button.clicked.connect(self._choose_runs_dir)
        self.log_scale.toggled.connect(self.plot.set_log_y)
        self.start_button.clicked.connect(self.start)
        self.pause_button.clicked.connect(self._toggle_pause)
        self.cancel_button.clicked.connect(self.run.cancel)
        self.resume_button.clicked.connect(self._resume)
        self.open_button.clicked.connect(self._open_model)
        self.close_button.clicked.connect(self.hide)
        self.run.state_changed.connect(self._state_changed)
        self.run.started.connect(self._started)
        self.run.step.connect(self._stepped)
        self.run.preview.connect(self._previewed)
        self.run.event_received.connect(self._log_event)
        self.run.failed.connect(lambda message: self._log(f"failed: {message}"))
        self.run.warned.connect(lambda message: self._log(f"warning: {message}"))

    # --- the form ---------------------------------------------------------------------------------------------
    def method(self) -> MethodChoice:
        return METHODS[max(self.method_box.currentIndex(), 0)]

    def _method_changed(self) -> None:
        method = self.method()
        self.real_box.clear()
        for value, label in method.real_data:
            self.real_box.addItem(label, value)
        if method.user_photos:
            for value, label in USER_PHOTO_CHOICES:
                self.real_box.addItem(label, value)
        self._chosen_index[self.real_box] = 0
        self.note.setText(method.note)
        self.split_box.blockSignals(True)
        self.split_box.clear()
        for split, label, tooltip in method.splits:
            self.split_box.addItem(label, split)
            self.split_box.setItemData(self.split_box.count() - 1, tooltip, Qt.ItemDataRole.ToolTipRole)
        self.split_box.blockSignals(False)
        for box in (self.puppet_box, self.attribute_box):
            self.form.setRowVisible(box, not method.splits)
        self.form.labelForField(self.real_box).setText("Photos to edit" if method.splits else "Real images")
        self._show_data_rows()
        index = self.puppet_box.findData("digits")
        if index >= 0:
            self.puppet_box.setCurrentIndex(index)
        self._puppet_changed()

    def _puppet_changed(self) -> None:
        """Attributes are the puppet's continuous controls: PuppetGAN poses one continuous attribute."""
        self.attribute_box.blockSignals(True)
        self.attribute_box.clear()
        name = self.puppet_box.currentData()
        if name:
            try:
                puppet = puppets.load(name)
            except PuppetryError as error:
                self._show_status(str(error), error=True)
            else:
                for control in puppet.controls:
                    if control.kind == "continuous":
                        self.attribute_box.addItem(f"{control.name} ({control.minimum:g} … {control.maximum:g})",
                                                   control.name)
                        self.attribute_box.setItemData(self.attribute_box.count() - 1, control.label,
                                                       Qt.ItemDataRole.ToolTipRole)
        index = self.attribute_box.findData("rotation")
        self.attribute_box.setCurrentIndex(max(index, 0))
        self.attribute_box.blockSignals(False)
        self._data_changed()

    def _photos_chosen(self, box: QComboBox, index: int) -> None:
        """"Image folder…" and "Video file…" ask for the source; the choice joins the list, a cancel changes nothing."""
        choice = box.itemData(index)
        if choice in (CHOOSE_FOLDER, CHOOSE_VIDEO):
            start, what = str(Path.home()), "guides" if box is self.guide_box else "your photos"
            if choice == CHOOSE_FOLDER:
                path = QFileDialog.getExistingDirectory(self, f"Folder of {what}", start)
            else:
                path = QFileDialog.getOpenFileName(self, f"Video of {what}", start, VIDEO_FILTER)[0]
            index = box.findData(path) if path else self._chosen_index.get(box, 0)
            if index < 0:
                index = box.count() - len(USER_PHOTO_CHOICES)
                kind = "folder" if choice == CHOOSE_FOLDER else "video"
                box.insertItem(index, f"{Path(path).name} ({kind})", path)
                box.setItemData(index, path, Qt.ItemDataRole.ToolTipRole)
            box.setCurrentIndex(index)
        self._chosen_index[box] = index
        self._show_data_rows()

    def _users_photos(self, box: QComboBox) -> str | None:
        """The folder or video chosen in `box`, or None where it holds packaged data or nothing yet."""
        data = box.currentData()
        known = dict(self.method().real_data)
        return None if data is None or data in known or data in (CHOOSE_FOLDER, CHOOSE_VIDEO) else str(data)

    def _show_data_rows(self) -> None:
        """RIFT on the user's photos needs guide photos instead of a 3D-Shapes-ABC split."""
        splits = bool(self.method().splits)
        own = splits and self._users_photos(self.real_box) is not None
        self.form.setRowVisible(self.split_box, splits and not own)
        self.form.setRowVisible(self.guide_box, own)
        self._suggest_name()

    def _data_changed(self) -> None:
        """Offer the settings of a bundled model of this method trained on this puppet and attribute, if any.

        A split-based method offers its bundled model's settings for every split: the split is the data, not
        a setting to copy.
        """
        match = {} if self.method().splits else {"puppet": str(self.puppet_box.currentData()),
                                                   "attribute": str(self.attribute_box.currentData())}
        self.recipe = bundled_recipe(self.method().key, match, self.bundled_models_dir)
        self.form.setRowVisible(self.recipe_box, self.recipe is not None)
        if self.recipe is not None:
            minutes = f", {self.recipe.wall_time_s / 60:.0f} min where it was trained" if self.recipe.wall_time_s else ""
            self.recipe_box.setText(f"Like the bundled {self.recipe.model!r}")
            self.recipe_box.setToolTip(
                f"Train with every setting the bundled model {self.recipe.model!r} was trained with (its manifest "
                f"keeps them): {self.recipe.steps:,} steps{minutes}. Untick for the method's defaults (the paper's).")
        self._recipe_toggled()
        self._suggest_name()

    def _recipe_toggled(self) -> None:
        recipe = self.active_recipe()
        self.steps_box.setValue(recipe.steps if recipe else self.method().default_steps)

    def active_recipe(self) -> BundledRecipe | None:
        """The bundled model's recipe when there is one and the user keeps it ticked."""
        return self.recipe if self.recipe is not None and self.recipe_box.isChecked() else None

    def _suggest_name(self) -> None:
        if self._name_edited:
            return
        photos, guides = self._users_photos(self.real_box), self._users_photos(self.guide_box)
        if self.method().splits and photos is not None:
            base = f"{name_part(Path(photos).stem)}-to-{name_part(Path(guides).stem) if guides else 'guides'}"
        elif self.method().splits:
            base = f"shapes-split{self.split_box.currentData()}"
        else:
            base = f"{self.puppet_box.currentData() or 'model'}-{self.attribute_box.currentData() or 'run'}"
        self.name_edit.setText(suggest_run_name(base, self.runs_dir(), self._library()))

    def _library(self) -> Path:
        return self.library_dir if self.library_dir is not None else user_library_dir()

    def runs_dir(self) -> Path:
        return Path(self.runs_edit.text().strip() or default_runs_dir()).expanduser()

    def _choose_runs_dir(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for training runs", str(self.runs_dir()))
        if folder:
            self.runs_edit.setText(folder)
            self._suggest_name()

    def request(self) -> TrainingRequest:
        """The run the form describes; PuppetryError names the field to fix."""
        name = check_run_name(self.name_edit.text().strip())
        if (self._library() / name).exists():
            raise PuppetryError(f"A model named {name!r} is already in your library; choose another name.")
        steps = self.steps_box.value()
        photos, guides = self._users_photos(self.real_box), self._users_photos(self.guide_box)
        if self.method().splits and photos is not None:
            if guides is None:
                raise PuppetryError("Choose the guide photos: an image folder or a video whose look your photos "
                                    "should take.")
            settings = {"domain_a": photos, "domain_b": guides, "serve_direction": "a2b"}
        elif self.method().splits:
            settings = {"split": str(self.split_box.currentData())}
        else:
            real = str(self.real_box.currentData())
            settings = {"puppet": str(self.puppet_box.currentData()),
                        "attribute": str(self.attribute_box.currentData()), "real": real}
            if real not in dict(self.method().real_data):  # the user's own photos: a colour model
                settings["grayscale"] = "false"
        recipe = self.active_recipe()
        return TrainingRequest(
            name=name, method=self.method().key, steps=steps, runs_dir=self.runs_dir(),
            settings={**recipe.settings, **settings} if recipe else settings,
            preview_every=max(steps // 25, 1), checkpoint_every=max(steps // 10, 1),
            log_every=min(10, max(steps // 100, 1)),
            lr_decay_steps=min(recipe.lr_decay_steps, steps) if recipe else 0,
        )

    # --- actions ----------------------------------------------------------------------------------------------
    def start(self) -> None:
        try:
            request = self.request()
            self._clear()
            self.run.start(request)
        except PuppetryError as error:
            self._show_status(str(error), error=True)
            return
        self._log(f"started {request.method} run {request.name!r} in {request.run_dir}")

    def _resume(self) -> None:
        run_dir = self.run.run_dir if self.run.can_resume else None
        if run_dir is None:
            folder = QFileDialog.getExistingDirectory(self, "Resume a training run", str(self.runs_dir()))
            if not folder:
                return
            run_dir = Path(folder)
        try:
            self._clear()
            self.run.resume(run_dir)
        except PuppetryError as error:
            self._show_status(str(error), error=True)
            return
        self._log(f"resuming {run_dir}")

    def _toggle_pause(self) -> None:
        try:
            if self.run.state == RunState.PAUSED:
                self.run.unpause()
            else:
                self.run.pause()
        except PuppetryError as error:
            self._show_status(str(error), error=True)

    def _open_model(self) -> None:
        if self.run.package is not None:
            self.open_model.emit(self.run.package.name)

    # --- following the run ------------------------------------------------------------------------------------
    def _clear(self) -> None:
        self._logged_bucket = -1
        self.plot.set_series({})
        self.preview.clear()
        self.progress.setValue(0)

    def _started(self) -> None:
        self.progress.setRange(0, max(self.run.total_steps, 1))
        self.progress.setValue(self.run.current_step)
        self.plot.set_series(self.run.losses)  # a resumed run brings its earlier losses
        if self.run.preview_path is not None:
            self._previewed(str(self.run.preview_path))
        self._show_status(self._progress_text())

    def _stepped(self, _losses: dict, step: int, total: int, _rate: float) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(step)
        self.plot.set_series(self.run.losses)
        if self.run.state == RunState.RUNNING:
            self._show_status(self._progress_text())

    def _previewed(self, path: str) -> None:
        self.preview.show_file(path, f"preview at step {self.run.preview_step:,}")

    def _progress_text(self) -> str:
        run = self.run
        parts = [f"Training {run.name!r}: step {run.current_step:,} of {run.total_steps:,}"]
        if run.steps_per_s > 0:
            parts.append(f"{run.steps_per_s:.3g} steps/s")
        if run.eta_s is not None:
            parts.append(f"about {format_duration(run.eta_s)} left")
        return " · ".join(parts)

    def _state_changed(self, state: RunState) -> None:
        run = self.run
        idle = not state.is_active
        self.settings_group.setEnabled(idle)
        self.start_button.setEnabled(idle)
        self.pause_button.setEnabled(state in (RunState.RUNNING, RunState.PAUSED))
        self.pause_button.setText("Continue" if state == RunState.PAUSED else "Pause")
        self.cancel_button.setEnabled(state in (RunState.STARTING, RunState.RUNNING, RunState.PAUSED))
        self.resume_button.setEnabled(idle)
        self.resume_button.setText(f"Resume {run.name}" if run.can_resume and state != RunState.DONE
                                   else "Resume a run…")
        self.open_button.setEnabled(state == RunState.DONE and run.package is not None)
        messages = {
            RunState.STARTING: "Starting the trainer (loading torch, preparing data)…",
            RunState.PAUSED: f"Paused at step {run.current_step:,}. Continue when you like.",
            RunState.STOPPING: "Stopping after this step and saving a checkpoint…",
            RunState.IMPORTING: "Trained. Adding the model to your library…",
            RunState.DONE: f"Done: {run.package.title if run.package else run.name} is in your model library.",
            RunState.CANCELLED: f"Cancelled at step {run.current_step:,}; its checkpoint is kept, so it can be "
                                "resumed.",
            RunState.INTERRUPTED: f"Interrupted at step {run.current_step:,}; its checkpoint is kept, so it can be "
                                  "resumed.",
        }
        if state == RunState.RUNNING:
            self._show_status(self._progress_text())
        elif state == RunState.FAILED:
            resumable = " Its newest checkpoint is kept: Resume continues from it." if run.can_resume else ""
            self._show_status(f"Failed: {run.error}{resumable}", error=True)
        elif state in messages:
            self._show_status(messages[state])

    def _show_status(self, text: str, *, error: bool = False) -> None:
        self.status.setStyleSheet("color: #c0392b;" if error else "")
        self.status.setText(text)

    def _log_event(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "step":
            total = max(self.run.total_steps, 1)
            step = int(event.get("step", 0))
            bucket = step * 20 // total  # a line per 5 % keeps the log readable; the plot has every step
            if bucket <= self._logged_bucket and step != total:
                return
            self._logged_bucket = bucket
            losses = ", ".join(f"{k} {float(v):.3g}" for k, v in dict(event.get("losses") or {}).items())
            self._log(f"step {step:,}/{total:,}  {losses}")
        else:
            details = ", ".join(f"{k}={v}" for k, v in event.items() if k != "event")
            self._log(f"{kind}  {details}")

    def _log(self, text: str) -> None:
        self.log.appendPlainText(text)
