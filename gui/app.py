"""Application entry point: parse the command line, build the main window, run Qt."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PySide6.QtWidgets import QApplication, QLabel, QMainWindow


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="puppetry", description="Puppetry photo editor")
    parser.add_argument("photo", nargs="?", type=Path, help="photo to open")
    parser.add_argument(
        "--screenshot", type=Path, metavar="PATH",
        help="render the main window to PATH (PNG) and exit",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Puppetry")
    app.setOrganizationName("Puppetry")
    window = QMainWindow()
    window.setWindowTitle("Puppetry")
    window.setCentralWidget(QLabel("Puppetry"))
    window.resize(1280, 800)
    window.show()
    if args.screenshot is not None:
        app.processEvents()
        if not window.grab().save(str(args.screenshot)):
            print(f"puppetry: could not write screenshot {args.screenshot}", file=sys.stderr)
            return 1
        window.close()
        return 0
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
