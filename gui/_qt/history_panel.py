"""The history dock: every committed edit as a row of a QUndoView; clicking a row goes back to it."""

from __future__ import annotations

from PySide6.QtGui import QUndoStack
from PySide6.QtWidgets import QLabel, QUndoView, QVBoxLayout, QWidget

from gui.model.document import Document


class HistoryPanel(QWidget):
    """A QUndoView on the document's stack, with what the history holds in memory and its step limit."""

    def __init__(self, document: Document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.view = QUndoView(document.undo_stack)
        self.view.setEmptyLabel("Opened photo")
        self.memory = QLabel()
        self.memory.setStyleSheet("color: palette(mid);")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.view)
        layout.addWidget(self.memory)
        document.undo_stack.indexChanged.connect(self._update_memory)
        document.photo_changed.connect(self._update_memory)
        self._update_memory()

    @property
    def stack(self) -> QUndoStack:
        return self.document.undo_stack

    def _update_memory(self, *_: object) -> None:
        steps = self.stack.count()
        megabytes = self.document.history_bytes() / 2**20
        limit = self.stack.undoLimit() or "∞"
        self.memory.setText(f"{steps} step{'s' if steps != 1 else ''} · {megabytes:.1f} MB · keeps {limit}")
