"""The model library dock: bundled and user packages, a model card for the selected one, import."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from engine.package import ModelPackage


def metrics_table_html(table: Sequence[Mapping[str, Any]]) -> str:
    """The manifest's metric rows as an HTML table; columns in first-seen order, numbers as the manifest has them
    (rounded where they were measured: rounding again here would show a figure no tool printed)."""
    columns: list[str] = []
    for row in table:
        columns.extend(key for key in row if key not in columns)
    if not columns:
        return ""

    head = "".join(f"<th align='left'>{html.escape(c)}</th>" for c in columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(row.get(c, '–')))}</td>" for c in columns) + "</tr>" for row in table
    )
    return f"<table width='100%' cellspacing='0' cellpadding='3' border='1'><tr>{head}</tr>{rows}</table>"


def model_card_html(package: ModelPackage, provider: str | None) -> str:
    """What a user needs to choose a model: what it edits, how well it measured, where it came from."""
    esc = html.escape
    parts = [f"<h3>{esc(package.title)}</h3>", f"<p><code>{esc(package.name)}</code> · {esc(package.method)}"
             f" · {esc(package.editor)} editor · {package.image_size}×{package.image_size}</p>"]
    if package.puppet is not None:
        controls = ", ".join(esc(c.label) for c in package.puppet.controls)
        parts.append(f"<p><b>Puppet</b> {esc(package.puppet.kind)}: {controls}</p>")
    if package.guide is not None:
        guide = package.guide
        parts.append(f"<p><b>Guide</b> {esc(guide.source_domain)} → {esc(guide.guide_domain)}")
        if guide.moves:
            parts.append(f"<br>moves: {esc(', '.join(guide.moves))}")
        if guide.stays:
            parts.append(f"<br>stays: {esc(', '.join(guide.stays))}")
        parts.append("</p>")
    metrics = dict(package.metrics)
    table = metrics.get("table") or []
    if table:
        parts.append("<p><b>Measured</b></p>" + metrics_table_html(table))
    if metrics.get("notes"):
        parts.append(f"<p><i>{esc(str(metrics['notes']))}</i></p>")
    provenance = dict(package.provenance)
    if provenance:
        shown = ("data", "steps", "lr_decay_steps", "seed", "trained_at", "wall_time_s")
        rows = "".join(
            f"<tr><td>{esc(key)}</td><td>{esc(str(provenance[key]))}</td></tr>" for key in shown if key in provenance
        )
        parts.append(f"<p><b>Provenance</b></p><table cellpadding='2'>{rows}</table>")
    if provenance.get("command"):
        parts.append(f"<p style='color:gray'>trained with: <code>{esc(str(provenance['command']))}</code></p>")
    parts.append(f"<p><b>Runs on</b> {esc(provider or 'not loaded yet')}</p>")
    parts.append(f"<p style='color:gray'>{esc(str(package.source))}</p>")
    return "".join(parts)


class ModelLibrary(QWidget):
    """Lists packages; says which one is active and on which provider; asks the window to switch or import."""

    model_activated = Signal(object)  # ModelPackage
    import_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QListWidget()
        self.list.setAlternatingRowColors(True)
        self.list.setSpacing(2)
        self.list.setWordWrap(True)  # long titles wrap in the narrow dock instead of hiding behind a scroll bar
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.card = QTextBrowser()
        self.card.setOpenExternalLinks(False)
        self.card.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        font = self.card.font()
        font.setPointSizeF(font.pointSizeF() * 0.9)
        self.card.document().setDefaultFont(font)
        self.use_button = QPushButton("Use model")
        self.import_button = QPushButton("Import…")
        self.import_button.setToolTip("Add a .puppetry model package to your library")
        buttons = QHBoxLayout()
        buttons.addWidget(self.use_button)
        buttons.addWidget(self.import_button)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.list)
        splitter.addWidget(self.card)
        splitter.setStretchFactor(1, 3)
        splitter.setSizes([150, 450])  # a handful of models; the card is the long read
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(splitter)
        layout.addLayout(buttons)
        self._packages: dict[str, ModelPackage] = {}
        self._active: str | None = None
        self._provider: str | None = None
        self.list.currentItemChanged.connect(lambda *_: self._show_card())
        self.list.itemDoubleClicked.connect(lambda *_: self._activate())
        self.use_button.clicked.connect(self._activate)
        self.import_button.clicked.connect(self.import_requested)

    def set_packages(self, packages: Iterable[ModelPackage]) -> None:
        selected = self.selected()
        self.list.clear()
        self._packages = {}
        for package in packages:
            if package.name in self._packages:  # the user library comes first and wins over bundled
                continue
            self._packages[package.name] = package
            item = QListWidgetItem(f"{package.title}\n{package.method} · {package.editor}")
            item.setData(Qt.ItemDataRole.UserRole, package.name)
            item.setToolTip(str(package.source))
            self.list.addItem(item)
        self._mark_active()
        self.select(selected.name if selected else self._active)
        self._show_card()

    def packages(self) -> list[ModelPackage]:
        return list(self._packages.values())

    def select(self, name: str | None) -> None:
        for row in range(self.list.count()):
            if self.list.item(row).data(Qt.ItemDataRole.UserRole) == name:
                self.list.setCurrentRow(row)
                return
        if self.list.count() and self.list.currentRow() < 0:
            self.list.setCurrentRow(0)

    def selected(self) -> ModelPackage | None:
        item = self.list.currentItem()
        return self._packages.get(item.data(Qt.ItemDataRole.UserRole)) if item is not None else None

    def set_active(self, name: str | None, provider: str | None) -> None:
        self._active, self._provider = name, provider
        self._mark_active()
        self._show_card()

    def _mark_active(self) -> None:
        for row in range(self.list.count()):
            item = self.list.item(row)
            font = item.font()
            font.setBold(item.data(Qt.ItemDataRole.UserRole) == self._active)
            item.setFont(font)

    def _show_card(self) -> None:
        package = self.selected()
        if package is None:
            self.card.setHtml("<p>No model packages found. Import a <code>.puppetry</code> file, or train one.</p>")
            self.use_button.setEnabled(False)
            return
        provider = self._provider if package.name == self._active else None
        self.card.setHtml(model_card_html(package, provider))
        self.use_button.setEnabled(package.name != self._active)

    def _activate(self) -> None:
        package = self.selected()
        if package is not None:
            self.model_activated.emit(package)
