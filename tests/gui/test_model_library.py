"""The model library: cards from manifests, switching models, importing a .puppetry file, dropping files."""

from __future__ import annotations

import zipfile
from pathlib import Path

from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDropEvent

from gui._qt.main_window import MainWindow
from tests.gui.conftest import make_tiny_package, save_shot

WAIT_MS = 10_000


def zip_package(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w") as bundle:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                bundle.write(file, file.relative_to(folder).as_posix())
    return target


def test_the_library_lists_packages_with_a_model_card(window: MainWindow, qtbot, shots: Path):
    names = [p.name for p in window.library.packages()]
    assert sorted(names) == ["tiny-guide", "tiny-puppet"]
    window.library.select("tiny-puppet")
    card = window.library.card.toPlainText()
    assert "Tiny puppet model" in card and "puppetgan" in card
    assert "r_attr" in card and "0.1" in card  # the manifest's metric table
    assert "0.0325" in card and "0.0126" in card and "0.033" not in card  # as stored, not rounded a second time
    assert "not loaded yet" in card
    window.library.use_button.click()
    qtbot.waitUntil(lambda: window.model.editor is not None, timeout=WAIT_MS)
    assert "CPUExecutionProvider" in window.library.card.toPlainText()
    assert "tiny-puppet" in window.provider_label.text()
    assert window.controls.values() == {"rotation": 0.0, "size": 1.0}
    save_shot(window, shots, "library")


def test_importing_a_puppetry_file_adds_and_activates_it(window: MainWindow, qtbot, tmp_path: Path):
    folder = make_tiny_package(tmp_path / "build" / "tiny-imported", name="tiny-imported", seed=5)
    archive = zip_package(folder, tmp_path / "tiny-imported.puppetry")
    window.import_model(archive)
    qtbot.waitUntil(lambda: window.model.name == "tiny-imported" and window.model.editor is not None,
                    timeout=WAIT_MS)
    assert "tiny-imported" in [p.name for p in window.library.packages()]


def test_a_broken_package_is_reported_and_the_old_model_stays(window: MainWindow, qtbot, tmp_path: Path,
                                                              messages: list[tuple[str, str]]):
    bad = tmp_path / "bad.puppetry"
    bad.write_bytes(b"PK\x03\x04 not a zip at all")
    window.import_model(bad)
    qtbot.waitUntil(lambda: bool(messages), timeout=WAIT_MS)
    assert messages[0][0] == "Could not import the model"
    assert window.isVisible()


def test_dropping_a_photo_opens_it(window: MainWindow, qtbot, photo_path: Path):
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(photo_path))])
    event = QDropEvent(QPoint(10, 10), Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    qtbot.waitUntil(lambda: window.document.pixels is not None, timeout=WAIT_MS)
    assert window.document.source == photo_path.resolve()
