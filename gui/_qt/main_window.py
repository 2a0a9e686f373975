"""The main window: canvas in the middle, model library, controls and history docks, menus and status bar."""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import shiboken6
from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QWidget,
)

from engine.errors import PuppetryError
from engine.imageio import Photo, load_image, save_image
from engine.package import ModelPackage, import_package, list_packages
from engine.puppets import load as load_puppet
from engine.regions import Box, propose_box
from gui._qt.canvas import Canvas
from gui._qt.controls_panel import IMAGE_SUFFIXES, ControlsPanel
from gui._qt.history_panel import HistoryPanel
from gui._qt.model_library import ModelLibrary
from gui._qt.pipeline import EditPipeline
from gui._qt.training_dialog import TrainingDialog
from gui._qt.workers import JobRunner
from gui.model.active_model import ActiveModel
from gui.model.document import Document, PatchCommand
from gui.model.settings import Settings

log = logging.getLogger(__name__)

OPEN = "open"
SAVE = "save"
IMPORT = "import"
PHOTO_FILTER = "Images (" + " ".join(f"*{s}" for s in IMAGE_SUFFIXES) + ");;All files (*)"
SAVE_FILTER = "PNG (*.png);;JPEG (*.jpg *.jpeg);;TIFF (*.tif *.tiff);;WebP (*.webp)"


def suggested_save_name(source: Path | None) -> str:
    """`name-edited.png` beside the original: a first save never lands on the photo it came from."""
    if source is None:
        return "untitled-edited.png"
    return str(source.with_name(f"{source.stem}-edited.png"))


def proposed_region(pixels: np.ndarray, whole: bool) -> Box:
    """The region a new photo starts with: all of it for scene models, else the content `propose_box` finds."""
    if whole:
        return Box(0, 0, int(pixels.shape[1]), int(pixels.shape[0]))
    return propose_box(pixels)


class MainWindow(QMainWindow):
    """Owns the state objects and wires views to them; holds no editing logic of its own."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        library_dir: Path | None = None,
        include_bundled: bool = True,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.settings = settings or Settings()
        self.library_dir = library_dir
        self.include_bundled = include_bundled
        self.ask_before_discard = True
        self.training_dialog: TrainingDialog | None = None
        self._region_whole = False  # whether the box was proposed for a guide model (the whole photo)
        self.document = Document(self)
        self.model = ActiveModel(self)
        self.runner = JobRunner(self)
        self.pipeline = EditPipeline(self.document, self.model, self.runner, self)
        self.setWindowTitle("Puppetry")
        self.setAcceptDrops(True)
        self.resize(1360, 860)
        self._build_views()
        self._build_actions()
        self._build_status_bar()
        self._connect()
        self._restore_window()
        self.refresh_library()

    # --- building ---------------------------------------------------------------------------------------------
    def _build_views(self) -> None:
        self.canvas = Canvas()
        self.setCentralWidget(self.canvas)
        self.library = ModelLibrary()
        self.controls = ControlsPanel()
        self.history = HistoryPanel(self.document)
        self.library_dock = self._dock("Models", "models", self.library, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.controls_dock = self._dock("Controls", "controls", self.controls, Qt.DockWidgetArea.RightDockWidgetArea)
        self.history_dock = self._dock("History", "history", self.history, Qt.DockWidgetArea.RightDockWidgetArea)
        self.library_dock.setMinimumWidth(260)
        self.controls_dock.setMinimumWidth(300)
        self.resizeDocks([self.controls_dock, self.history_dock], [520, 240], Qt.Orientation.Vertical)

    def _dock(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{name}")  # saveState needs names
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _action(self, text: str, slot: Any, shortcut: QKeySequence | str | None = None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.setStatusTip(tip)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        std = QKeySequence.StandardKey
        self.open_action = self._action("&Open…", self.choose_photo, std.Open, "Open a photo")
        self.save_action = self._action("&Save", self.save, std.Save,
                                        "Save the edited photo (never over the original unasked)")
        self.save_as_action = self._action("Save &As…", self.save_as, std.SaveAs,
                                           "Save the edited photo to a new file")
        self.import_action = self._action("&Import Model…", self.choose_package, None,
                                          "Add a .puppetry model package")
        self.train_action = self._action("&Train Model…", self.show_training, None,
                                         "Train a new model on a puppet and real images; it lands in the library")
        self.quit_action = self._action("&Quit", self.close, std.Quit)
        self.undo_action = self.document.undo_stack.createUndoAction(self, "&Undo")
        self.undo_action.setShortcut(QKeySequence(std.Undo))
        self.redo_action = self.document.undo_stack.createRedoAction(self, "&Redo")
        redo_keys = QKeySequence.keyBindings(std.Redo)
        if QKeySequence("Ctrl+Shift+Z") not in redo_keys:
            redo_keys.append(QKeySequence("Ctrl+Shift+Z"))
        self.redo_action.setShortcuts(redo_keys)
        self.apply_action = self._action("&Apply to Region", self.apply_controls, "Return",
                                         "Commit the controls' current values to the region")
        self.propose_action = self._action("&Propose Region", self.propose_region, "R",
                                           "Put the region box on the most prominent object")
        self.fit_action = self._action("&Fit", self.canvas.fit, "F", "Fit the photo in the window")
        self.actual_action = self._action("&100%", self.canvas.actual_size, "Ctrl+1",
                                          "One photo pixel per screen pixel")
        self.zoom_in_action = self._action("Zoom &In", lambda: self.canvas.zoom_by(1), std.ZoomIn)
        self.zoom_out_action = self._action("Zoom &Out", lambda: self.canvas.zoom_by(-1), std.ZoomOut)
        self.split_action = self._action("&Split Before/After", self._toggle_split, "Y",
                                         "Original left of the region's centre line, edit right")
        self.split_action.setCheckable(True)
        self.before_action = QAction("Hold \\ to see the original", self)
        self.before_action.setEnabled(False)
        menus = self.menuBar()
        file_menu = menus.addMenu("&File")
        file_menu.addAction(self.open_action)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        file_menu.addAction(self.save_action)
        file_menu.addAction(self.save_as_action)
        file_menu.addSeparator()
        file_menu.addAction(self.import_action)
        file_menu.addAction(self.train_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        edit_menu = menus.addMenu("&Edit")
        for action in (self.undo_action, self.redo_action):
            edit_menu.addAction(action)
            self.addAction(action)
        edit_menu.addSeparator()
        edit_menu.addAction(self.apply_action)
        edit_menu.addAction(self.propose_action)
        view_menu = menus.addMenu("&View")
        for action in (self.fit_action, self.actual_action, self.zoom_in_action, self.zoom_out_action):
            view_menu.addAction(action)
        view_menu.addSeparator()
        view_menu.addAction(self.split_action)
        view_menu.addAction(self.before_action)
        view_menu.addSeparator()
        for dock in (self.library_dock, self.controls_dock, self.history_dock):
            view_menu.addAction(dock.toggleViewAction())
        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("toolbar-main")  # saveState needs names
        toolbar.setMovable(False)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        for action in (self.open_action, self.save_action, None, *self._history_tools(), None,
                       self.fit_action, self.actual_action, self.split_action, None, self.apply_action):
            if action is None:
                toolbar.addSeparator()
            else:
                toolbar.addAction(action)
        view_menu.addAction(toolbar.toggleViewAction())
        self._update_recent_menu()

    def _history_tools(self) -> tuple[QAction, QAction]:
        """Undo/Redo for the toolbar: short fixed labels (the menu's say what they undo), the step as tooltip."""
        stack = self.document.undo_stack
        tools = []
        for label, slot, can_change, text_change in (
            ("Undo", stack.undo, stack.canUndoChanged, stack.undoTextChanged),
            ("Redo", stack.redo, stack.canRedoChanged, stack.redoTextChanged),
        ):
            tool = QAction(label, self)
            tool.triggered.connect(slot)
            tool.setEnabled(False)
            can_change.connect(tool.setEnabled)
            text_change.connect(lambda text, t=tool, name=label: t.setToolTip(f"{name} {text}".strip()))
            tools.append(tool)
        return tools[0], tools[1]

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)  # indeterminate: a busy indicator
        self.busy.setMaximumWidth(90)
        self.busy.setMaximumHeight(14)
        self.busy.setTextVisible(False)
        self.busy.setVisible(False)
        self.latency_label = QLabel("preview – ms")
        self.latency_label.setToolTip("Engine time of the last preview (apply + paste-back) or region encoding")
        self.latency_label.setMinimumWidth(self.latency_label.fontMetrics().horizontalAdvance("preview 99999 ms"))
        self.zoom_label = QLabel("100%")
        self.zoom_label.setMinimumWidth(self.zoom_label.fontMetrics().horizontalAdvance("9999%"))
        self.zoom_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.provider_label = QLabel("no model")
        for widget in (self.busy, self.latency_label, self.zoom_label, self.provider_label):
            bar.addPermanentWidget(widget)

    def _connect(self) -> None:
        doc = self.document
        doc.photo_changed.connect(self._photo_changed)
        doc.pixels_changed.connect(self._pixels_changed)
        doc.box_changed.connect(self._box_changed)
        doc.preview_changed.connect(self._preview_changed)
        doc.path_changed.connect(self._update_title)
        doc.undo_stack.indexChanged.connect(self._history_moved)
        self.canvas.box_edited.connect(lambda x, y, w, h: doc.set_box(Box(x, y, w, h)))
        self.canvas.zoom_changed.connect(lambda z: self.zoom_label.setText(f"{round(100 * z)}%"))
        self.controls.values_changed.connect(self._values_changed)
        self.controls.values_committed.connect(self.pipeline.commit)
        self.library.model_activated.connect(self.activate_model)
        self.library.import_requested.connect(self.choose_package)
        self.model.changed.connect(self._model_changed)
        self.model.editor_ready.connect(self._editor_ready)
        self.runner.busy_changed.connect(lambda busy: self.busy.setVisible(busy))
        self.runner.job_failed.connect(lambda error: self.show_error("Something went wrong", str(error)))
        self.pipeline.preview_timed.connect(self._preview_timed)
        self.pipeline.encode_timed.connect(lambda ms: self.latency_label.setText(f"encode {ms:.0f} ms"))
        self.pipeline.message.connect(lambda text: self.statusBar().showMessage(text, 6000))
        self.pipeline.failed.connect(self.show_error)
        self.pipeline.region_read.connect(self._region_read)

    # --- photos -----------------------------------------------------------------------------------------------
    def choose_photo(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open photo", self.settings.folder(OPEN), PHOTO_FILTER)
        if path:
            self.open_photo(Path(path))

    def open_photo(self, path: Path) -> None:
        """Read the photo and propose a region on a worker; errors become a message, never a crash."""
        if not self._may_discard():
            return
        path = Path(path)
        self.statusBar().showMessage(f"Opening {path.name}…")
        whole = self._edits_whole_scenes()

        def read() -> tuple[Photo, Box]:
            photo = load_image(path)
            return photo, proposed_region(photo.pixels, whole)

        def opened(result: tuple[Photo, Box]) -> None:
            photo, box = result
            self.document.open(photo)
            self.document.set_box(box)
            self._region_whole = whole
            self.settings.add_recent_file(path)
            self.settings.set_folder(OPEN, path.parent)
            self._update_recent_menu()
            self.statusBar().showMessage(
                f"Opened {path.name}: {photo.width}×{photo.height}, {photo.bit_depth}-bit {photo.format} — "
                "drag a box around what to edit, then move a slider", 10000
            )

        def failed(error: BaseException) -> None:
            self.statusBar().clearMessage()
            if isinstance(error, MemoryError):
                self.show_error("Could not open the photo", f"{path} needs more memory than is free.")
            else:
                self.show_error("Could not open the photo", str(error) if isinstance(error, PuppetryError)
                                else f"{path}: {type(error).__name__}: {error}")

        self.runner.submit(read, opened, key=OPEN, on_error=failed)

    def _photo_changed(self) -> None:
        doc = self.document
        assert doc.pixels is not None and doc.photo is not None
        self.canvas.set_photo(doc.pixels, doc.photo.pixels)
        self._update_title()

    def _pixels_changed(self, x: int, y: int, w: int, h: int, _origin: int) -> None:
        if self.document.pixels is not None:
            self.canvas.update_rect(self.document.pixels, x, y, w, h)

    def _box_changed(self) -> None:
        box = self.document.box
        self.canvas.set_box(None if box is None else (box.x, box.y, box.w, box.h))

    def _preview_changed(self) -> None:
        preview = self.document.preview
        if preview is None:
            self.canvas.set_preview(None)
        else:
            self.canvas.set_preview(preview.pixels, preview.x, preview.y, preview.scale)

    def propose_region(self) -> None:
        if self.document.pixels is not None:
            self._region_whole = self._edits_whole_scenes()
            self.document.set_box(proposed_region(self.document.pixels, self._region_whole))

    def _edits_whole_scenes(self) -> bool:
        """Guide models translate a whole scene from one domain to another, so their region is the photo."""
        package = self.model.package
        return package is not None and package.guide is not None

    # --- saving -----------------------------------------------------------------------------------------------
    def save(self) -> None:
        """Ctrl+S: to the file chosen by an earlier Save As; the first save always asks where."""
        if self.document.save_path is None:
            self.save_as()
        else:
            self.save_to(self.document.save_path)

    def save_as(self) -> None:
        if self.document.pixels is None:
            return
        start = self.settings.folder(SAVE)
        suggestion = suggested_save_name(self.document.source)
        if start:
            suggestion = str(Path(start) / Path(suggestion).name)
        path, _ = QFileDialog.getSaveFileName(self, "Save edited photo", suggestion, SAVE_FILTER)
        if path:
            self.save_to(Path(path), confirmed=True)

    def save_to(self, path: Path, *, confirmed: bool = False) -> None:
        """Write the working pixels with the photo's alpha and colour profile, on a worker.

        `confirmed`: the user picked this name in the Save As dialog (which asks before replacing a file),
        so even the original may be overwritten; Ctrl+S to a remembered name is confirmed the same way.
        """
        doc = self.document
        if doc.pixels is None or doc.photo is None:
            return
        photo = doc.photo
        pixels = doc.pixels.copy()  # the user may keep editing while the file is written
        clean_index = doc.undo_stack.index()
        overwrite = confirmed or path == doc.save_path
        self.statusBar().showMessage(f"Saving {path.name}…")

        def write() -> Path:
            return save_image(path, pixels, alpha=photo.alpha, source=photo.source, overwrite_source=overwrite,
                              icc_profile=photo.icc_profile)

        def written(target: Path) -> None:
            if doc.undo_stack.index() == clean_index:
                doc.mark_saved(target)
            else:
                doc.save_path = target
            self.settings.set_folder(SAVE, target.parent)
            self.statusBar().showMessage(f"Saved {target}", 6000)

        def failed(error: BaseException) -> None:
            self.show_error("Could not save", str(error) if isinstance(error, PuppetryError) else f"{path}: {error}")

        self.runner.submit(write, written, on_error=failed)

    # --- models -----------------------------------------------------------------------------------------------
    def refresh_library(self) -> list[ModelPackage]:
        packages = list_packages(self.library_dir, include_bundled=self.include_bundled)
        self.library.set_packages(packages)
        return packages

    def activate_model(self, package: ModelPackage) -> None:
        self.pipeline.load_model(package)

    def choose_package(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Import model package", self.settings.folder(IMPORT), "Model packages (*.puppetry);;All files (*)"
        )
        if path:
            self.import_model(Path(path))

    def import_model(self, path: Path) -> None:
        self.settings.set_folder(IMPORT, path.parent)

        def imported(package: ModelPackage) -> None:
            self.refresh_library()
            self.library.select(package.name)
            self.activate_model(package)

        def failed(error: BaseException) -> None:
            self.show_error("Could not import the model", str(error))

        self.runner.submit(lambda: import_package(path, self.library_dir, replace=True), imported, on_error=failed)

    def show_training(self) -> None:
        """The one training dialog of this window (non-modal; the run goes on while it is hidden)."""
        if self.training_dialog is None:
            self.training_dialog = TrainingDialog(self.library_dir, self)
            self.training_dialog.run.finished.connect(lambda _path: self.refresh_library())
            self.training_dialog.open_model.connect(self._open_trained_model)
        self.training_dialog.show()
        self.training_dialog.raise_()
        self.training_dialog.activateWindow()

    def _open_trained_model(self, name: str) -> None:
        package = next((p for p in self.refresh_library() if p.name == name), None)
        if package is None:
            self.show_error("Could not open the model", f"'{name}' is not in the model library any more.")
            return
        self.library.select(name)
        self.activate_model(package)

    def _model_changed(self) -> None:
        package = self.model.package
        if package is None:
            self.controls.show_message("Open a model from the library.")
            self.provider_label.setText("no model")
            self.library.set_active(None, None)
            return
        try:
            puppet = load_puppet(package.puppet.kind) if package.puppet is not None else None
        except PuppetryError as error:
            self.show_error("Could not load the puppet", str(error))
            puppet = None
        self.controls.show_package(package, puppet, self.model.guide_samples())
        if self._region_whole != self._edits_whole_scenes():
            self.propose_region()  # a box drawn for an object is wrong for a scene model, and the reverse
        self.provider_label.setText("loading…")
        self.library.set_active(package.name, None)
        self.library.select(package.name)
        self.settings.set_last_model(package.name)

    def _editor_ready(self) -> None:
        provider = (self.model.provider or "").replace("ExecutionProvider", "")
        self.provider_label.setText(f"{self.model.name} · {provider}")
        self.library.set_active(self.model.name, self.model.provider)

    # --- editing ----------------------------------------------------------------------------------------------
    def _values_changed(self, values: dict[str, Any]) -> None:
        self.model.set_values(values)
        self.pipeline.preview(values)

    def apply_controls(self) -> None:
        self.pipeline.commit(self.controls.values())

    def _region_read(self, values: dict[str, float]) -> None:
        """A new region's own pose (a digit's slant) becomes the sliders' start, so a first move changes it a little."""
        self.controls.set_values(values, emit=False)
        reading = ", ".join(f"{name} {value:.3g}" for name, value in values.items())
        self.statusBar().showMessage(f"The region reads {reading}: the sliders start there", 6000)

    def _history_moved(self, index: int) -> None:
        """After undo/redo the controls show the values of the edit now on top (or the region's own pose)."""
        command = self.document.undo_stack.command(index - 1) if index > 0 else None
        session = self.pipeline.session
        start = {**self.controls.defaults(), **(session.measured if session is not None else {})}
        values = command.values if isinstance(command, PatchCommand) else start
        if set(values) == set(self.controls.values()):
            self.controls.set_values(values, emit=False)

    def _preview_timed(self, milliseconds: float) -> None:
        self.latency_label.setText(f"preview {milliseconds:.0f} ms")

    def _toggle_split(self, on: bool) -> None:
        self.canvas.set_split(on)
        self.settings.set_split_view(on)

    # --- feedback ---------------------------------------------------------------------------------------------
    def show_error(self, title: str, message: str) -> None:
        """A dialog for what the user must act on; also in the status bar and the log."""
        log.warning("%s: %s", title, message)
        self.statusBar().showMessage(f"{title}: {message}", 10000)
        QMessageBox.warning(self, title, message)

    def _update_title(self) -> None:
        source = self.document.source
        name = source.name if source is not None else "no photo"
        self.setWindowTitle(f"{name}[*] — Puppetry")
        self.setWindowModified(self.document.is_modified)

    def _update_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.settings.recent_files()
        for path in recent:
            action = self.recent_menu.addAction(path.name)
            action.setToolTip(str(path))
            action.triggered.connect(lambda _checked=False, p=path: self.open_photo(p))
        if recent:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear", self._clear_recent)
        self.recent_menu.setEnabled(bool(recent))

    def _clear_recent(self) -> None:
        self.settings.clear_recent_files()
        self._update_recent_menu()

    # --- window -----------------------------------------------------------------------------------------------
    def _restore_window(self) -> None:
        geometry, state = self.settings.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)
        split = self.settings.split_view()
        self.split_action.setChecked(split)
        self.canvas.set_split(split)

    def _may_discard(self) -> bool:
        """Ask before unsaved edits are thrown away (opening another photo, closing)."""
        if not self.document.is_modified or not self.ask_before_discard:
            return True
        answer = QMessageBox.question(
            self, "Unsaved edits", "The photo has unsaved edits. Discard them?",
            QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Discard

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._may_discard():
            event.ignore()
            return
        self.settings.set_window_state(self.saveGeometry(), self.saveState())
        self.settings.store.sync()
        self.runner.wait()
        # the stack clears itself while the window is torn down; views must not hear it
        self.document.undo_stack.blockSignals(True)
        self.document.blockSignals(True)
        event.accept()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        files = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        if not files:
            return
        event.acceptProposedAction()
        if files[0].suffix == ".puppetry":
            self.import_model(files[0])
        else:
            self.open_photo(files[0])

    def keyPressEvent(self, event: Any) -> None:
        if event.key() == Qt.Key.Key_Backslash and not event.isAutoRepeat():
            self.canvas.show_before(True)
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event: Any) -> None:
        if event.key() == Qt.Key.Key_Backslash and not event.isAutoRepeat():
            self.canvas.show_before(False)
            return
        super().keyReleaseEvent(event)

    # --- for the app's --screenshot and the tests -------------------------------------------------------------
    def is_idle(self) -> bool:
        """No engine work running or waiting."""
        return self.runner.is_idle()

    def canvas_pixels(self) -> np.ndarray:
        """What the canvas shows at photo resolution (working pixels with any preview laid over), 8-bit RGB."""
        from gui._qt.qimage import to_display_rgb8

        doc = self.document
        assert doc.pixels is not None
        shown = to_display_rgb8(doc.pixels).copy()
        if doc.preview is not None and doc.preview.scale == 1.0:
            p = doc.preview
            h, w = p.pixels.shape[:2]
            x, y = round(p.x), round(p.y)
            shown[y : y + h, x : x + w] = to_display_rgb8(p.pixels)
        return shown


class ExceptionReporter(QObject):
    """sys.excepthook for the GUI: an unexpected error is logged and shown, and the window lives on."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self._showing = False

    def install(self) -> None:
        self._previous = sys.excepthook
        sys.excepthook = self.hook

    def uninstall(self) -> None:
        sys.excepthook = getattr(self, "_previous", sys.__excepthook__)

    def hook(self, kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
        log.error("unexpected error", exc_info=(kind, error, trace))
        if self._showing or not shiboken6.isValid(self.window):  # no stacked dialogs; none while shutting down
            return
        self._showing = True
        try:
            details = "".join(traceback.format_exception(kind, error, trace))
            box = QMessageBox(QMessageBox.Icon.Critical, "Unexpected error",
                              f"{kind.__name__}: {error}\n\nYour photo is still open; saving may be wise.",
                              QMessageBox.StandardButton.Ok, self.window)
            box.setDetailedText(details)
            QTimer.singleShot(0, box.open)
        finally:
            self._showing = False


def application() -> QApplication:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Puppetry")
    app.setOrganizationName("Puppetry")
    return app  # type: ignore[return-value]
