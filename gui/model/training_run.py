"""One training run as the GUI sees it: the trainer child process, its JSON-lines events, and the finished model.

The trainer is never imported here (it pulls in torch): it runs as
`python -m trainer.cli train|resume ... --events`, so a crash or an
out-of-memory kill in training ends the child, never the editor. The run
folder keeps its checkpoints whatever happens, so a cancelled, interrupted or
failed run can be resumed. Pause, continue and cancel are words written into
the run folder's `control` file, which the trainer reads between steps.
"""

from __future__ import annotations

import enum
import importlib.util
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs
from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal
from superqt.utils import create_worker

from engine.errors import PackageError, TrainingError
from engine.package import MANIFEST, NAME_PATTERN, ModelPackage, import_package
from engine.resources import bundled_models_dir

log = logging.getLogger(__name__)

CONTROL_FILE = "control"  # trainer/loop.py CONTROL_FILE
EXIT_INTERRUPTED = 130  # trainer/loop.py EXIT_INTERRUPTED: checkpoint saved, `resume` continues
CANCEL_GRACE_MS = 20_000  # a step of a big model can take seconds; after this, SIGTERM (still checkpoints)
KILL_GRACE_MS = 10_000  # after SIGTERM, how long before the child is killed outright
STDERR_LINES = 200


def default_runs_dir() -> Path:
    """Where the GUI's runs live unless the user picks another folder."""
    return Path(platformdirs.user_data_dir("puppetry")) / "runs"


class RunState(enum.Enum):
    """Where a run is; the dialog enables its buttons from this alone."""

    IDLE = "idle"  # nothing started yet
    STARTING = "starting"  # child launched, no "start" event yet (torch import, data preparation)
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"  # cancel asked for; the trainer is saving a checkpoint
    IMPORTING = "importing"  # trained and exported; copying the package into the library
    DONE = "done"
    CANCELLED = "cancelled"  # stopped on request, checkpoint saved: resumable
    INTERRUPTED = "interrupted"  # stopped by a signal from elsewhere, checkpoint saved: resumable
    FAILED = "failed"

    @property
    def is_active(self) -> bool:
        return self in (RunState.STARTING, RunState.RUNNING, RunState.PAUSED, RunState.STOPPING, RunState.IMPORTING)


@dataclass(frozen=True)
class TrainingRequest:
    """A new run: what `puppetry-train train` is told. `settings` are the method's `--set KEY=VALUE` overrides."""

    name: str
    method: str
    steps: int
    runs_dir: Path
    settings: Mapping[str, str] = field(default_factory=dict)
    seed: int = 0
    device: str = "auto"
    preview_every: int = 100
    checkpoint_every: int = 500
    log_every: int = 10
    threads: int | None = None
    lr_decay_steps: int = 0

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name

    def arguments(self) -> list[str]:
        """The `train` subcommand's arguments, with `--events` for this module to read."""
        args = ["train", "--method", self.method, "--name", self.name, "--steps", str(self.steps),
                "--seed", str(self.seed), "--device", self.device, "--runs-dir", str(self.runs_dir),
                "--preview-every", str(self.preview_every), "--checkpoint-every", str(self.checkpoint_every),
                "--log-every", str(self.log_every), "--events"]
        for key, value in self.settings.items():
            args += ["--set", f"{key}={value}"]
        if self.threads:
            args += ["--threads", str(self.threads)]
        if self.lr_decay_steps:
            args += ["--lr-decay-steps", str(self.lr_decay_steps)]
        return args


@dataclass(frozen=True)
class BundledRecipe:
    """How a bundled model was trained, offered for a new run of the same method, puppet and attribute.

    Read from the model's manifest (its provenance keeps the whole method config), so a
    run started from the dialog trains as the bundled model did, not on the paper's defaults.
    """

    model: str
    settings: Mapping[str, str]  # every method setting, as `--set KEY=VALUE` values
    steps: int
    lr_decay_steps: int
    wall_time_s: float


def bundled_recipe(method: str, match: Mapping[str, str], models_dir: Path | None = None) -> BundledRecipe | None:
    """The recipe of the first bundled `method` model whose config has the values in `match` (e.g. its puppet)."""
    for manifest_path in sorted(Path(models_dir or bundled_models_dir()).glob(f"*/{MANIFEST}")):
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            provenance = manifest["provenance"]
            config = provenance["config"]
            matches = manifest["method"] == method and all(config[key] == value for key, value in match.items())
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a trained package of this kind; the model library reports broken ones
        if matches:
            settings = {key: value if isinstance(value, str) else json.dumps(value) for key, value in config.items()}
            decay = int(provenance.get("lr_decay_steps", 0))
            # The loop's total matters only through its decay: without one, the model is the run at `steps`
            # (a method that schedules its own rate reads it from its config, which the settings carry).
            steps = int(provenance.get("total_steps", provenance["steps"])) if decay else int(provenance["steps"])
            return BundledRecipe(manifest_path.parent.name, settings, steps, decay,
                                 float(provenance.get("wall_time_s", 0.0)))
    return None


def check_run_name(name: str) -> str:
    """A run name doubles as the library name of its model, so it follows the package naming rule."""
    if not NAME_PATTERN.match(name):
        raise TrainingError(
            f"Run name {name!r}: use lower-case letters, digits, '.', '_' or '-' (at most 64), "
            "starting with a letter or digit, e.g. digits-rotation-2."
        )
    return name


class JsonLinesParser:
    """Splits a byte stream into JSON objects, one per line, however the stream is chunked.

    A line split across reads waits in the buffer for its end. Lines that are
    not a JSON object (a stray print, a library's warning) are kept in
    `skipped` and logged, never fatal: the trainer's own events are what count.
    """

    def __init__(self) -> None:
        self.buffer = b""
        self.skipped: list[str] = []

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """The complete events in `data` plus what was buffered; an unfinished last line stays buffered."""
        *lines, self.buffer = (self.buffer + data).split(b"\n")
        return self._parse(lines)

    def flush(self) -> list[dict[str, Any]]:
        """At the end of the stream: the last line even without its newline."""
        lines, self.buffer = [self.buffer], b""
        return self._parse(lines)

    def _parse(self, lines: Sequence[bytes]) -> list[dict[str, Any]]:
        events = []
        for raw in lines:
            text = raw.decode("utf-8", errors="replace").strip()
            if not text:
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                value = None
            if isinstance(value, dict) and isinstance(value.get("event"), str):
                events.append(value)
            else:
                self.skipped.append(text)
                log.info("trainer output (not an event): %s", text)
        return events


def trainer_command() -> list[str]:
    """The program and leading arguments that start the trainer CLI, or TrainingError saying why it cannot run."""
    if getattr(sys, "frozen", False):
        raise TrainingError(
            "This Puppetry build does not include the trainer (it needs torch). Install Puppetry from source "
            "with its training dependencies and train with `puppetry-train train ...`; then import the package."
        )
    for module in ("trainer", "torch"):
        if importlib.util.find_spec(module) is None:  # finds without importing: the GUI never loads torch
            raise TrainingError(
                f"Training needs the Python module '{module}', which {sys.executable} cannot find; "
                "install Puppetry with its training dependencies (torch)."
            )
    return [sys.executable, "-m", "trainer.cli"]


def _child_environment() -> QProcessEnvironment:
    """The editor's environment, with the folder holding `trainer` on PYTHONPATH (a source checkout)."""
    environment = QProcessEnvironment.systemEnvironment()
    spec = importlib.util.find_spec("trainer")
    if spec is not None and spec.submodule_search_locations:
        root = str(Path(next(iter(spec.submodule_search_locations))).parent)
        paths = [root, *filter(None, environment.value("PYTHONPATH", "").split(os.pathsep))]
        environment.insert("PYTHONPATH", os.pathsep.join(dict.fromkeys(paths)))
    environment.insert("PYTHONUNBUFFERED", "1")
    return environment


def import_run_package(package_dir: Path, name: str, library_dir: Path | None) -> ModelPackage:
    """Copy a run's exported package into the library under the run's name (replacing one of that name).

    A method names its package after what it edits ("digits-rotation"), which
    would clash with the bundled model and with every other run of the same
    setting; the run name is the user's own, so the library entry takes it.
    Only the manifest's name and title change; graph hashes cover the graphs.
    """
    manifest = json.loads((package_dir / MANIFEST).read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="puppetry-import-") as scratch:
        staged = Path(scratch) / name
        shutil.copytree(package_dir, staged)
        title = str(manifest.get("title", manifest.get("name", name)))
        manifest.update(name=name, title=f"{title} ({name})")
        (staged / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        return import_package(staged, library_dir, replace=True)


class TrainingRun(QObject):
    """State of one trainer child process; the training dialog is a view of it and can be rebuilt from it."""

    started = Signal()  # the trainer reported "start": the run folder exists, steps begin
    step = Signal(dict, int, int, float)  # losses, step, total steps, steps per second
    preview = Signal(str)  # absolute path of the newest preview grid PNG
    event_received = Signal(dict)  # every event, for the log (not `event`: that is QObject.event)
    finished = Signal(str)  # the library copy of the trained package (its folder)
    failed = Signal(str)  # one line a person can act on
    warned = Signal(str)  # a trainer WARNING, e.g. photos it skipped, without its "WARNING logger:" prefix
    state_changed = Signal(object)  # RunState

    def __init__(self, library_dir: Path | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.library_dir = library_dir
        self.command: list[str] | None = None  # None: trainer_command() when a run starts
        self.state = RunState.IDLE
        self.process: QProcess | None = None
        self._reset(None, "")
        self._cancel_timer = QTimer(self, singleShot=True, interval=CANCEL_GRACE_MS)
        self._cancel_timer.timeout.connect(self._terminate)
        self._kill_timer = QTimer(self, singleShot=True, interval=KILL_GRACE_MS)
        self._kill_timer.timeout.connect(self._kill)
        self._import_worker: Any = None

    def _reset(self, run_dir: Path | None, name: str) -> None:
        self.run_dir = run_dir
        self.name = name
        self.total_steps = 0
        self.current_step = 0
        self.steps_per_s = 0.0
        self.losses: dict[str, list[tuple[int, float]]] = {}  # loss name -> (step, value), for the plot
        self.metrics: dict[str, float] = {}
        self.preview_path: Path | None = None
        self.preview_step = 0
        self.checkpoint: Path | None = None
        self.exported: Path | None = None  # the package the trainer wrote into the run folder
        self.package: ModelPackage | None = None  # its copy in the library
        self.error = ""
        self.stderr_lines: deque[str] = deque(maxlen=STDERR_LINES)
        self.parser = JsonLinesParser()
        self._stderr_buffer = b""
        self._cancel_requested = False

    # --- what the dialog shows --------------------------------------------------------------------------------
    @property
    def eta_s(self) -> float | None:
        """Seconds to the last step at the newest speed; None before a speed is known."""
        if self.steps_per_s <= 0 or not self.total_steps:
            return None
        return max(self.total_steps - self.current_step, 0) / self.steps_per_s

    @property
    def can_resume(self) -> bool:
        """A stopped run whose folder holds a checkpoint to continue from."""
        return (not self.state.is_active and self.run_dir is not None
                and any((self.run_dir / "checkpoints").glob("*.json")))

    # --- starting ---------------------------------------------------------------------------------------------
    def start(self, request: TrainingRequest) -> None:
        """Launch a new run; refuses a name whose folder already holds a run (resume that instead)."""
        check_run_name(request.name)
        if (request.run_dir / "config.json").exists():
            raise TrainingError(
                f"A run named {request.name!r} already exists in {request.runs_dir}; resume it or choose another name."
            )
        self._launch(request.arguments(), Path(request.run_dir), request.name)

    def resume(self, run_dir: Path, steps: int | None = None) -> None:
        """Continue a run folder from its newest checkpoint; `steps` sets a new total."""
        run_dir = Path(run_dir)
        if not (run_dir / "config.json").is_file():
            raise TrainingError(f"{run_dir} is not a training run: it has no config.json.")
        args = ["resume", str(run_dir), "--events"]
        if steps is not None:
            args += ["--steps", str(steps)]
        self._launch(args, run_dir, run_dir.name)
        self._read_history(run_dir / "events.jsonl")

    def _read_history(self, path: Path) -> None:
        """The losses and newest preview of the run's earlier sessions, so a resumed run's plot starts at step 1."""
        try:
            data = path.read_bytes()
        except OSError as error:
            log.warning("no earlier history for the plot: %s", error)
            return
        history = JsonLinesParser()
        for event in [*history.feed(data), *history.flush()]:
            if event["event"] in ("step", "preview"):
                self._handle_safely({**event, "history": True})

    def _launch(self, arguments: list[str], run_dir: Path, name: str) -> None:
        if self.state.is_active:
            raise TrainingError(f"Run {self.name!r} is still going; cancel it before starting another.")
        program, *leading = self.command if self.command is not None else trainer_command()
        if self.process is not None:
            self.process.deleteLater()  # the previous run's, finished
        self._reset(run_dir, name)
        process = QProcess(self)
        process.setProcessEnvironment(_child_environment())
        process.readyReadStandardOutput.connect(self._read_stdout)
        process.readyReadStandardError.connect(self._read_stderr)
        process.finished.connect(self._process_finished)
        process.errorOccurred.connect(self._process_error)
        self.process = process
        self._set_state(RunState.STARTING)
        log.info("starting trainer: %s %s", program, " ".join([*leading, *arguments]))
        process.start(program, [*leading, *arguments])

    # --- controlling ------------------------------------------------------------------------------------------
    def pause(self) -> None:
        if self.state == RunState.RUNNING:
            self._write_control("pause")

    def unpause(self) -> None:
        if self.state == RunState.PAUSED:
            self._write_control("run")

    def cancel(self) -> None:
        """Stop after the current step with a checkpoint saved; the run stays resumable."""
        if not self.state.is_active or self.state == RunState.IMPORTING or self._cancel_requested:
            return
        self._cancel_requested = True
        if self.state == RunState.STARTING:
            self._terminate()  # the trainer clears its control file while starting; SIGTERM is heard throughout
        else:
            self._write_control("cancel")
            self._cancel_timer.start()
        self._set_state(RunState.STOPPING)

    def shutdown(self, timeout_ms: int = KILL_GRACE_MS) -> None:
        """The editor is closing: ask the trainer to checkpoint and stop, and wait for it a little."""
        if self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning:
            self._cancel_requested = True
            self.process.terminate()
            if not self.process.waitForFinished(timeout_ms):
                self.process.kill()
                self.process.waitForFinished(1000)

    def _write_control(self, word: str) -> None:
        assert self.run_dir is not None
        path = self.run_dir / CONTROL_FILE
        try:
            path.write_text(word + "\n")
        except OSError as error:
            raise TrainingError(f"Cannot write {path} (to {word} the run): {error}.") from error

    def _terminate(self) -> None:
        if self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning:
            self.process.terminate()  # SIGTERM: the trainer finishes its step and checkpoints
            self._kill_timer.start()

    def _kill(self) -> None:
        if self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning:
            log.warning("the trainer did not stop after SIGTERM; killing it (the newest checkpoint stays)")
            self.process.kill()

    # --- reading the child ------------------------------------------------------------------------------------
    def _read_stdout(self) -> None:
        assert self.process is not None
        self.handle_output(bytes(self.process.readAllStandardOutput().data()))

    def handle_output(self, data: bytes) -> None:
        """Feed a chunk of the trainer's stdout (also how tests drive the state without a child)."""
        for event in self.parser.feed(data):
            self._handle_safely(event)

    def _handle_safely(self, event: Mapping[str, Any]) -> None:
        """A malformed event (a field missing or of the wrong type) is logged and skipped, never fatal."""
        try:
            self.handle_event(event)
        except (KeyError, TypeError, ValueError) as error:
            log.warning("skipped a malformed trainer event %s (%s: %s)", event, type(error).__name__, error)

    def _read_stderr(self) -> None:
        assert self.process is not None
        data = self._stderr_buffer + bytes(self.process.readAllStandardError().data())
        *lines, self._stderr_buffer = data.split(b"\n")
        for raw in lines:
            self._stderr_line(raw)

    def _stderr_line(self, raw: bytes) -> None:
        text = raw.decode("utf-8", errors="replace").rstrip()
        if text:
            self.stderr_lines.append(text)
            log.debug("trainer: %s", text)
            level, _, message = text.partition(" ")
            if level == "WARNING":
                self.warned.emit(message.partition(": ")[2] or message)

    def handle_event(self, event: Mapping[str, Any]) -> None:
        """Update the state from one trainer event and tell the views."""
        kind = event["event"]
        if kind == "start":
            self.total_steps = int(event.get("total_steps", 0))
            self.current_step = int(event.get("step", 0))
            self._forget_after(self.current_step)
            if event.get("run_dir"):
                self.run_dir = Path(event["run_dir"])
            if not self._cancel_requested:
                self._set_state(RunState.RUNNING)
            self.started.emit()
        elif kind == "step":
            self._step_event(event)
        elif kind == "preview" and event.get("path"):
            self.preview_path = self._in_run(event["path"])
            self.preview_step = int(event.get("step", self.current_step))
            if not event.get("history"):
                self.preview.emit(str(self.preview_path))
        elif kind == "checkpoint" and event.get("path"):
            self.checkpoint = self._in_run(event["path"])
        elif kind == "eval":
            self.metrics = {k: float(v) for k, v in dict(event.get("metrics") or {}).items()}
        elif kind == "paused" and self.state == RunState.RUNNING:
            self._set_state(RunState.PAUSED)
        elif kind == "resumed" and self.state == RunState.PAUSED:
            self._set_state(RunState.RUNNING)
        elif kind == "interrupted" and event.get("checkpoint"):
            self.checkpoint = self._in_run(event["checkpoint"])
        elif kind == "done" and event.get("package"):
            self.exported = self._in_run(event["package"])
        elif kind == "error":
            self.error = str(event.get("message", ""))
        if not event.get("history"):
            self.event_received.emit(dict(event))

    def _forget_after(self, step: int) -> None:
        """A resumed run restarts at its checkpoint; history read past it (steps the checkpoint lost) is redone."""
        self.losses = {name: [p for p in points if p[0] <= step] for name, points in self.losses.items()}

    def _step_event(self, event: Mapping[str, Any]) -> None:
        self.current_step = int(event["step"])
        self.steps_per_s = float(event.get("steps_per_s") or 0.0)
        losses = {name: float(value) for name, value in dict(event.get("losses") or {}).items()}
        for name, value in losses.items():
            self.losses.setdefault(name, []).append((self.current_step, value))
        if not event.get("history"):
            self.step.emit(losses, self.current_step, self.total_steps, self.steps_per_s)

    def _in_run(self, path: str) -> Path:
        """Event paths are relative to the run folder."""
        candidate = Path(path)
        return candidate if candidate.is_absolute() or self.run_dir is None else self.run_dir / candidate

    # --- endings ----------------------------------------------------------------------------------------------
    def _process_finished(self, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        self._cancel_timer.stop()
        self._kill_timer.stop()
        self._read_stdout()
        self._read_stderr()
        for event in self.parser.flush():
            self._handle_safely(event)
        if self._stderr_buffer:
            self._stderr_line(self._stderr_buffer)
            self._stderr_buffer = b""
        crashed = exit_status == QProcess.ExitStatus.CrashExit
        if not crashed and exit_code == 0 and self.exported is not None:
            self._import()
        elif (not crashed and exit_code == EXIT_INTERRUPTED) or (self._cancel_requested and not self.error):
            self._set_state(RunState.CANCELLED if self._cancel_requested else RunState.INTERRUPTED)
        elif crashed:
            self._fail(f"The trainer stopped unexpectedly (killed or crashed){self._last_words()}.")
        else:
            self._fail(self.error or self._last_stderr() or f"The trainer ended with exit code {exit_code}.")

    def _process_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            assert self.process is not None
            self._fail(f"Could not start the trainer ({self.process.program()}): {self.process.errorString()}.")

    def _last_stderr(self) -> str:
        """The trainer's own one-line error ("puppetry-train train: error: ..."), else its last line."""
        for line in reversed(self.stderr_lines):
            if ": error: " in line:
                return line.split(": error: ", 1)[1]
        return self.stderr_lines[-1] if self.stderr_lines else ""

    def _last_words(self) -> str:
        last = self._last_stderr()
        return f": {last}" if last else ""

    def _import(self) -> None:
        """Copy the exported package into the library on a worker thread (it validates every graph)."""
        assert self.exported is not None
        self._set_state(RunState.IMPORTING)
        exported, name, library = self.exported, self.name, self.library_dir
        self._import_worker = create_worker(lambda: import_run_package(exported, name, library),
                                            _connect={"returned": self._imported, "errored": self._import_failed},
                                            _start_thread=True)

    def _imported(self, package: ModelPackage) -> None:
        self.package = package
        self._set_state(RunState.DONE)
        self.finished.emit(str(package.path))

    def _import_failed(self, error: BaseException) -> None:
        detail = str(error) if isinstance(error, (PackageError, TrainingError)) else f"{type(error).__name__}: {error}"
        self._fail(f"Training finished but its package {self.exported} could not be added to the library: {detail}")

    def _fail(self, message: str) -> None:
        self.error = re.sub(r"\s+", " ", message).strip()
        self._set_state(RunState.FAILED)
        self.failed.emit(self.error)

    def _set_state(self, state: RunState) -> None:
        if state != self.state:
            self.state = state
            self.state_changed.emit(state)
