"""Application entry point: parse the command line, build the main window, run Qt."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QImageReader

from engine.errors import PuppetryError
from engine.package import ModelPackage
from engine.resources import resource_path
from gui._qt.main_window import ExceptionReporter, MainWindow, application

log = logging.getLogger(__name__)

DEFAULT_MODEL = "digits-rotation"
SAMPLE_PHOTO = ("samples", "digits_page.png")
SCREENSHOT_TIMEOUT_MS = 120_000
SCREENSHOT_SIZE = (1360, 860)


def parse_setting(text: str) -> tuple[str, float]:
    """`CONTROL=VALUE` from the command line, e.g. `rotation=30`."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--set needs CONTROL=VALUE, got {text!r}")
    try:
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--set {name}: {value!r} is not a number") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="puppetry", description="Puppetry photo editor")
    parser.add_argument("photo", nargs="?", type=Path, help="photo to open (default: the bundled sample page)")
    parser.add_argument(
        "--screenshot", type=Path, metavar="PATH",
        help="render the main window to PATH (PNG) once the first edit is ready, and exit",
    )
    parser.add_argument("--model", metavar="NAME", help=f"model package to start with (default: {DEFAULT_MODEL})")
    parser.add_argument(
        "--set", dest="settings", action="append", type=parse_setting, default=[], metavar="CONTROL=VALUE",
        help="set a control and apply it to the proposed region (repeatable), e.g. --set rotation=30",
    )
    parser.add_argument(
        "--guide", type=Path, metavar="IMAGE",
        help="guide models: pick IMAGE as the guide and apply it to the proposed region",
    )
    return parser


def check_settings(package: ModelPackage | None, settings: list[tuple[str, float]]) -> None:
    """--set names must be controls the model serves; PuppetryError names the ones it has."""
    if not settings:
        return
    if package is None or package.puppet is None:
        raise PuppetryError("--set needs a puppet model (one with sliders); pick one with --model")
    known = {control.name for control in package.puppet.controls}
    unknown = sorted({name for name, _ in settings} - known)
    if unknown:
        raise PuppetryError(
            f"--set {', '.join(unknown)}: model '{package.name}' has controls {', '.join(sorted(known))}"
        )


def check_guide(package: ModelPackage | None, guide: Path | None) -> None:
    """--guide needs a guide model and an image file that is there; PuppetryError says which is missing."""
    if guide is None:
        return
    if package is None or package.guide is None:
        raise PuppetryError("--guide needs a guide model (one with a guide picker); pick one with --model")
    if not guide.is_file():
        raise PuppetryError(f"--guide {guide}: there is no image file there")
    reader = QImageReader(str(guide))
    if not reader.canRead():
        raise PuppetryError(f"--guide {guide}: not an image Puppetry can read ({reader.errorString()})")


def pick_model(packages: list[ModelPackage], wanted: str | None) -> ModelPackage | None:
    """The model named `wanted`, else the bundled default, else the first one there is."""
    by_name = {package.name: package for package in packages}
    if wanted is not None:
        if wanted not in by_name:
            raise PuppetryError(f"no model package named '{wanted}' (known: {', '.join(sorted(by_name)) or 'none'})")
        return by_name[wanted]
    return by_name.get(DEFAULT_MODEL) or (packages[0] if packages else None)


class Startup:
    """Brings the window to its first useful state (model + photo + region), applies --set / --guide, screenshots."""

    def __init__(self, window: MainWindow, args: argparse.Namespace) -> None:
        self.window = window
        self.args = args
        self.exit_code = 0
        self._applied = not args.settings and args.guide is None

    def start(self, package: ModelPackage | None, photo: Path | None) -> None:
        if package is not None:
            self.window.activate_model(package)
        if photo is not None:
            self.window.open_photo(photo)
        if self.args.settings or self.args.guide is not None:
            self.window.pipeline.session_ready.connect(self._apply_settings)
        if self.args.screenshot is not None:
            self._poll = QTimer(self.window)
            self._poll.setInterval(50)
            self._poll.timeout.connect(self._maybe_screenshot)
            self._poll.start()
            QTimer.singleShot(SCREENSHOT_TIMEOUT_MS, self._timed_out)

    def _apply_settings(self) -> None:
        if self._applied:
            return
        self._applied = True
        if self.args.settings:
            self.window.controls.set_values(dict(self.args.settings), commit=True)
        if self.args.guide is not None:
            problem = self.window.controls.select_guide(self.args.guide.resolve())
            if problem is not None:
                print(f"puppetry: --guide {self.args.guide} cannot be read: {problem}", file=sys.stderr)
                self.exit_code = 2

    def ready(self) -> bool:
        """The first preview state: photo open, region encoded, every --set and --guide applied, no work left."""
        window = self.window
        has_model = window.model.package is not None
        if window.document.pixels is None or not window.is_idle():
            return False
        if has_model and window.model.editor is None:
            return False
        if has_model and window.document.box is not None and window.pipeline.session is None:
            return False
        return self._applied

    def _maybe_screenshot(self) -> None:
        if not self.ready():
            return
        self._poll.stop()
        QTimer.singleShot(100, self._screenshot)  # one more round of paints for the docks

    def _screenshot(self) -> None:
        path = self.args.screenshot
        if not self.window.grab().save(str(path)):
            print(f"puppetry: could not write screenshot {path}", file=sys.stderr)
            self.exit_code = 1
        self.window.ask_before_discard = False
        self.window.close()
        application().exit(self.exit_code)

    def _timed_out(self) -> None:
        print("puppetry: the window was not ready for a screenshot in time; writing it anyway", file=sys.stderr)
        self.exit_code = 1
        self._screenshot()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    app = application()
    window = MainWindow()
    reporter = ExceptionReporter(window)
    reporter.install()
    if args.screenshot is not None:
        window.resize(*SCREENSHOT_SIZE)  # the same picture whatever size the window had last time
    window.show()
    try:
        package = pick_model(window.library.packages(), args.model)
        check_settings(package, args.settings)
        check_guide(package, args.guide)
    except PuppetryError as error:
        print(f"puppetry: {error}", file=sys.stderr)
        return 2
    photo = args.photo
    if photo is None:
        sample = resource_path(*SAMPLE_PHOTO)
        photo = sample if sample.is_file() else None
    startup = Startup(window, args)
    startup.start(package, photo)
    code = app.exec()
    reporter.uninstall()
    return startup.exit_code or code


if __name__ == "__main__":
    sys.exit(main())
