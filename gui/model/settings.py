"""What the editor remembers between runs, kept with QSettings: recent photos, folders, the last model."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

MAX_RECENT = 10


class Settings:
    """Typed access to a QSettings store (the user's by default, a temporary file in tests)."""

    def __init__(self, store: QSettings | None = None) -> None:
        self.store = store if store is not None else QSettings("Puppetry", "Puppetry")

    def recent_files(self) -> list[Path]:
        value = self.store.value("recent_files", [])
        if isinstance(value, str):  # QSettings returns a one-element list as a plain string on some backends
            value = [value]
        return [Path(v) for v in value or []]

    def add_recent_file(self, path: Path) -> list[Path]:
        path = Path(path).resolve()
        recent = [path, *(p for p in self.recent_files() if p != path)][:MAX_RECENT]
        self.store.setValue("recent_files", [str(p) for p in recent])
        return recent

    def clear_recent_files(self) -> None:
        self.store.setValue("recent_files", [])

    def folder(self, purpose: str) -> str:
        """The last folder used for `purpose` ("open", "save", "guides", "models"), or "" for Qt's default."""
        return str(self.store.value(f"folders/{purpose}", "") or "")

    def set_folder(self, purpose: str, folder: Path) -> None:
        self.store.setValue(f"folders/{purpose}", str(folder))

    def last_model(self) -> str | None:
        value = self.store.value("last_model", None)
        return str(value) if value else None

    def set_last_model(self, name: str) -> None:
        self.store.setValue("last_model", name)

    def window_state(self) -> tuple[QByteArray | None, QByteArray | None]:
        return self.store.value("window/geometry", None), self.store.value("window/state", None)

    def set_window_state(self, geometry: QByteArray, state: QByteArray) -> None:
        self.store.setValue("window/geometry", geometry)
        self.store.setValue("window/state", state)

    def split_view(self) -> bool:
        return str(self.store.value("view/split", "false")).lower() == "true"

    def set_split_view(self, on: bool) -> None:
        self.store.setValue("view/split", on)
