"""The one training loop: steps, events, previews, checkpoints, resume, pause/cancel, data parallel.

Every method runs through `train` / `resume`; the method only supplies
`train_step`, `preview`, `evaluate` and `export` (trainer/methods/base.py).

What a run tells the outside world, as JSON lines in `runs/<name>/events.jsonl`
(and on stdout with `events_to_stdout`), paths relative to the run folder:
  {"event": "start", "total_steps": N, "step": first_step, "run_dir": "/abs/path"}
  {"event": "step", "step": k, "losses": {...}, "steps_per_s": x}
  {"event": "preview", "step": k, "path": "previews/000500.png"}
  {"event": "eval", "step": k, "metrics": {...}}
  {"event": "checkpoint", "step": k, "path": "checkpoints/step_00001000.json"}
  {"event": "paused", "step": k} / {"event": "resumed", "step": k}
  {"event": "interrupted", "step": k, "reason": "SIGINT"|"SIGTERM"|"cancel", "checkpoint": "..."}
  {"event": "done", "step": N, "package": "package"}
  {"event": "error", "message": "one line"}

Control from outside: write "pause", "run" or "cancel" into `runs/<name>/control`
(read between steps), or send SIGUSR1 to toggle pause. SIGINT/SIGTERM finish the
current step, save a checkpoint and stop; a second SIGINT stops at once.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import logging
import math
import os
import random
import shlex
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from engine.errors import PuppetryError, TrainingError
from engine.imageio import save_image
from trainer import checkpoint as ckpt
from trainer.export import json_default, zip_package
from trainer.methods import Method, config_from_dict, config_to_dict, load

log = logging.getLogger(__name__)

EXIT_INTERRUPTED = 130
CONTROL_FILE = "control"
_PAUSE_POLL_S = 0.2  # how often a paused run re-reads its control file
_STOP_REASONS = ("", "SIGINT", "SIGTERM", "cancel")  # index = stop code agreed across ranks (highest wins)


@dataclass(frozen=True)
class RunConfig:
    """Everything needed to start a run again; stored as runs/<name>/config.json."""

    name: str
    method: str  # a name from trainer.methods.available(), or "package.module:Class"
    method_config: Mapping[str, Any] = field(default_factory=dict)  # overrides of the method's config defaults
    total_steps: int = 1000
    seed: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:1"
    preview_every: int = 500  # 0: never
    checkpoint_every: int = 1000  # 0: only at the end and on interruption
    eval_every: int = 0  # 0: never
    log_every: int = 10  # steps between "step" events
    keep_checkpoints: int = 3  # 0: keep all
    runs_dir: Path = Path("runs")
    threads: int | None = None  # torch CPU threads; None leaves torch's default
    lr_decay_steps: int = 0  # over the run's last N steps every learning rate falls linearly to zero; 0: constant
    command: str = ""  # the command line that started the run, for the package's provenance

    def __post_init__(self) -> None:
        if self.lr_decay_steps < 0:
            raise TrainingError(f"--lr-decay-steps {self.lr_decay_steps}: give a number of steps >= 0.")

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["runs_dir"] = str(self.runs_dir)
        values["method_config"] = dict(self.method_config)
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RunConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TrainingError(f"Unknown run settings {', '.join(unknown)} in config.json.")
        return cls(**{**values, "runs_dir": Path(values.get("runs_dir", "runs"))})


@dataclass(frozen=True)
class RunResult:
    """How a run ended: "done" (package exported) or "interrupted" (checkpoint saved)."""

    status: Literal["done", "interrupted"]
    step: int
    run_dir: Path
    package: Path | None = None
    checkpoint: Path | None = None


def train(config: RunConfig, *, events_to_stdout: bool = False, progress: bool = False) -> RunResult:
    """Start a new run in config.run_dir; refuses a folder that already holds a run."""
    return _Run(config, config.run_dir, events_to_stdout, progress).execute(resume=False)


def resume(
    run_dir: Path, *, total_steps: int | None = None, events_to_stdout: bool = False, progress: bool = False
) -> RunResult:
    """Continue a run from its newest complete checkpoint; `total_steps` extends (or shortens) it."""
    config = read_config(run_dir)
    if total_steps is not None:
        config = dataclasses.replace(config, total_steps=total_steps)
    return _Run(config, Path(run_dir), events_to_stdout, progress).execute(resume=True)


def export_run(run_dir: Path, out_dir: Path | None = None, step: int | None = None,
               settings: Mapping[str, str] | None = None) -> Path:
    """Export a run's newest (or `step`'s) checkpoint as a model package; returns the package path.

    `settings` override the method's export-only settings (`MethodConfig.EXPORT_SETTINGS`); any other
    setting would no longer describe the checkpoint's weights, so it is refused.
    """
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    if settings:
        allowed = load(config.method).config_class.EXPORT_SETTINGS
        refused = sorted(set(settings) - allowed)
        if refused:
            raise TrainingError(
                f"export --set {', '.join(refused)}: only settings that do not change the trained weights can be "
                f"set at export ({', '.join(sorted(allowed)) or 'none for this method'})."
            )
        config = dataclasses.replace(config, method_config={**config.method_config, **settings})
    checkpoint = ckpt.find_checkpoint(run_dir, step)
    _seed_everything(config.seed)
    method = _build_method(config, torch.device("cpu"))
    info = ckpt.load_checkpoint(checkpoint, method.modules(), method.optimizers())
    method.load_state(info["ranks"][0]["method"])
    provenance = _provenance(config, info["step"], info.get("wall_time_s", 0.0), trained_at=info.get("saved_at"))
    if settings:
        provenance["export_settings"] = dict(settings)
    return method.export(Path(out_dir) if out_dir is not None else run_dir / "package", provenance)


def read_config(run_dir: Path) -> RunConfig:
    """The RunConfig stored in run_dir/config.json."""
    path = Path(run_dir) / "config.json"
    try:
        return RunConfig.from_dict(json.loads(path.read_text()))
    except FileNotFoundError as error:
        raise TrainingError(f"{run_dir} is not a training run: it has no config.json.") from error
    except (OSError, ValueError, TypeError) as error:
        raise TrainingError(f"Cannot read {path}: {error}.") from error


def _build_method(config: RunConfig, device: torch.device) -> Method:
    method_class = load(config.method)
    return method_class(config_from_dict(method_class.config_class, config.method_config), device, config.seed)


def _provenance(config: RunConfig, step: int, wall_time_s: float, trained_at: str | None = None) -> dict[str, Any]:
    """What a package records of its run; `trained_at` is when its checkpoint was saved (default: now)."""
    return {
        "steps": step,
        "total_steps": config.total_steps,
        "lr_decay_steps": config.lr_decay_steps,
        "seed": config.seed,
        "command": config.command,
        "trained_at": trained_at or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_time_s": round(wall_time_s, 1),
    }


class _Stop(Exception):
    """Raised inside the loop when a stop was requested; carries why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Run:
    """One process's part of a run. Rank 0 alone writes events, previews, checkpoints and the package."""

    def __init__(self, config: RunConfig, run_dir: Path, events_to_stdout: bool, progress: bool) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.events_to_stdout = events_to_stdout
        self.progress = progress
        self.stop_reason: str | None = None
        self.pause_toggled = False
        self.interrupts = 0

    # ------------------------------------------------------------ lifecycle

    def execute(self, resume: bool) -> RunResult:
        self.events = _EventLog(self.events_to_stdout)
        previous_handlers = self._install_signal_handlers()
        self.world_size = 1
        try:
            self.rank, self.world_size, self.device = _init_distributed(self.config.device)
            self.events.enabled = self.rank == 0
            return self._execute(resume)
        except BaseException as error:
            self.events.emit("error", message=_one_line(error))
            raise
        finally:
            _restore_signal_handlers(previous_handlers)
            self.events.close()
            if self.world_size > 1:
                dist.destroy_process_group()

    def _execute(self, resume: bool) -> RunResult:
        if not resume and (self.run_dir / "config.json").exists():
            raise TrainingError(
                f"A run named {self.config.name!r} already exists in {self.run_dir}; continue it with "
                f"`puppetry-train resume {self.run_dir}` or choose another --name."
            )
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        self.method_class = load(self.config.method)
        if self.config.lr_decay_steps and self.method_class.schedules_learning_rate:
            raise TrainingError(f"Method {self.config.method!r} schedules its own learning rate (see its settings); "
                                "drop --lr-decay-steps.")
        method_config = config_from_dict(self.method_class.config_class, self.config.method_config)
        self.config = dataclasses.replace(self.config, method_config=config_to_dict(method_config))
        _seed_everything(self.config.seed)
        # built before a new run's folder exists: unreadable photos or a bad setting leave no run to trip over
        self.method = self.method_class(method_config, self.device, self.config.seed)
        if self.rank == 0:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            config_text = json.dumps(self.config.to_dict(), indent=1)
            ckpt.write_atomic(self.run_dir / "config.json", lambda tmp: tmp.write_text(config_text))
            (self.run_dir / CONTROL_FILE).unlink(missing_ok=True)
            self.events.open(self.run_dir / "events.jsonl")
        self.generator = torch.Generator().manual_seed(_rank_seed(self.config.seed, self.rank))
        self.step, self.previous_wall_time_s = 0, 0.0
        if resume:
            self._restore()
        self.started = time.perf_counter()
        self.averager = _GradientAverager(self.method.modules(), self.world_size)
        try:
            self.events.emit("start", total_steps=self.config.total_steps, step=self.step,
                             run_dir=str(self.run_dir.resolve()))
            self._steps()
        except _Stop as stop:
            saved = self._checkpoint()
            self.events.emit("interrupted", step=self.step, reason=stop.reason, checkpoint=self._relative(saved))
            return RunResult("interrupted", self.step, self.run_dir, checkpoint=saved)
        finally:
            self.averager.remove()
        saved = self._checkpoint()
        package = None
        if self.rank == 0:
            provenance = _provenance(self.config, self.step, self._wall_time_s())
            package = self.method.export(self.run_dir / "package", provenance)
        self.events.emit("done", step=self.step, package=self._relative(package))
        return RunResult("done", self.step, self.run_dir, package=package, checkpoint=saved)

    def _steps(self) -> None:
        config = self.config
        bar = tqdm(
            total=config.total_steps, initial=self.step, disable=not (self.progress and self.rank == 0),
            file=sys.stderr, dynamic_ncols=True, unit="step",
        )
        window_start, window_steps = time.perf_counter(), 0
        try:
            while self.step < config.total_steps:
                self._poll_controls()
                _set_learning_rates(self.method.optimizers(), lr_factor(self.step, config.total_steps,
                                                                        config.lr_decay_steps))
                losses = self.method.train_step(self.step, self.generator)
                self.step += 1
                _check_finite(losses, self.step)
                window_steps += 1
                bar.update(1)
                if self.step % max(config.log_every, 1) == 0 or self.step == config.total_steps:
                    now = time.perf_counter()
                    rate = window_steps / max(now - window_start, 1e-9)
                    window_start, window_steps = now, 0
                    self.events.emit("step", step=self.step, losses=losses, steps_per_s=round(rate, 3))
                    bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items()}, refresh=False)
                if config.preview_every and self.step % config.preview_every == 0:
                    self._preview()
                if config.eval_every and self.step % config.eval_every == 0:
                    self._evaluate()
                periodic = config.checkpoint_every and self.step % config.checkpoint_every == 0
                if periodic and self.step < config.total_steps:  # the last step's checkpoint is saved after the loop
                    self._checkpoint()
        finally:
            bar.close()

    # ------------------------------------------------------------ pieces

    def _wall_time_s(self) -> float:
        """Wall time of the whole run so far, across resumes."""
        return self.previous_wall_time_s + time.perf_counter() - self.started

    def _preview(self) -> None:
        if self.rank != 0:
            return
        with _rng_sandbox(self.device), self.averager.paused():
            grid = self.method.preview()
        path = self.run_dir / "previews" / f"{self.step:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(path, grid)
        self.events.emit("preview", step=self.step, path=self._relative(path))

    def _evaluate(self) -> None:
        if self.rank != 0:
            return
        with _rng_sandbox(self.device), self.averager.paused():
            metrics = self.method.evaluate()
        if metrics is not None:
            self.events.emit("eval", step=self.step, metrics=metrics)

    def _checkpoint(self) -> Path | None:
        """Save this step (once), prune old ones, emit the event; every rank must call it at the same step."""
        existing = [c for c in ckpt.list_checkpoints(self.run_dir) if c.step == self.step] if self.rank == 0 else []
        ranks = self._gather(self._rank_state())
        if self.world_size > 1:
            _broadcast_state(self.method.modules())  # rank 0's running statistics become everyone's
        if self.rank != 0:
            return None
        if existing:
            return existing[0].json_path
        extra = {"world_size": self.world_size, "wall_time_s": self._wall_time_s(), "ranks": ranks,
                 "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        saved = ckpt.save_checkpoint(self.run_dir, self.step, self.method.modules(), self.method.optimizers(), extra)
        ckpt.prune_checkpoints(self.run_dir, self.config.keep_checkpoints)
        self.events.emit("checkpoint", step=self.step, path=self._relative(saved.json_path))
        return saved.json_path

    def _restore(self) -> None:
        checkpoints = ckpt.list_checkpoints(self.run_dir)
        if not checkpoints:
            log.warning("No complete checkpoint in %s; starting the run from step 0", ckpt.checkpoint_dir(self.run_dir))
            return
        info = ckpt.load_checkpoint(checkpoints[-1], self.method.modules(), self.method.optimizers())
        self.step, self.previous_wall_time_s = int(info["step"]), float(info.get("wall_time_s", 0.0))
        ranks = info["ranks"]
        if len(ranks) != self.world_size:
            log.warning("Checkpoint was saved by %d processes, resuming with %d: data order will differ",
                        len(ranks), self.world_size)
        if self.rank < len(ranks):
            _set_rank_state(ranks[self.rank], self.generator, self.method, self.device)
        log.info("Resumed %s at step %d", self.run_dir, self.step)

    def _rank_state(self) -> dict[str, Any]:
        state = {
            "torch": _encode(torch.get_rng_state()),
            "cuda": _encode(torch.cuda.get_rng_state(self.device)) if self.device.type == "cuda" else None,
            "numpy": _numpy_state_to_json(np.random.get_state()),
            "python": _python_state_to_json(random.getstate()),
            "generator": _encode(self.generator.get_state()),
            "method": self.method.state(),
        }
        try:
            json.dumps(state["method"])
        except TypeError as error:
            raise TrainingError(
                f"{self.method_class.__name__}.state() must return JSON-serialisable values: {error}."
            ) from error
        return state

    def _gather(self, value: Any) -> list[Any]:
        if self.world_size == 1:
            return [value]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, value)
        return gathered

    def _poll_controls(self) -> None:
        """Between steps: honour pause (waiting here), cancel and stop signals, agreed by all ranks."""
        paused = False
        while True:
            command = self._read_control() if self.rank == 0 else ""
            if self.pause_toggled:
                self.pause_toggled = False
                command = "run" if paused else "pause"
            if command == "cancel":
                self.stop_reason = self.stop_reason or "cancel"
            wants_pause = command == "pause" or (paused and command != "run")
            flags = torch.tensor([_STOP_REASONS.index(self.stop_reason or ""), int(wants_pause)], device=self.device)
            if self.world_size > 1:
                dist.all_reduce(flags, op=dist.ReduceOp.MAX)
            if int(flags[0]):
                reason = self.stop_reason or _STOP_REASONS[int(flags[0])]
                log.info("Stopping at step %d (%s): saving a checkpoint", self.step, reason)
                raise _Stop(reason)
            wants_pause = bool(flags[1])
            if wants_pause != paused:
                paused = wants_pause
                self.events.emit("paused" if paused else "resumed", step=self.step)
            if not paused:
                return
            time.sleep(_PAUSE_POLL_S)

    def _read_control(self) -> str:
        """The control file's command: "pause", "run", "cancel", or "" when there is none."""
        path = self.run_dir / CONTROL_FILE
        try:
            command = path.read_text().strip().lower()
        except FileNotFoundError:
            return ""
        if command not in ("", "pause", "run", "cancel"):
            log.warning("Ignoring unknown command %r in %s (use pause, run or cancel)", command, path)
            return ""
        return command

    def _relative(self, path: Path | None) -> str | None:
        if path is None:
            return None
        try:
            return str(Path(path).resolve().relative_to(self.run_dir.resolve()))
        except ValueError:
            return str(path)

    # ------------------------------------------------------------ signals

    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        handlers: dict[int, Callable[[int, Any], None]] = {signal.SIGINT: self._on_stop, signal.SIGTERM: self._on_stop}
        if hasattr(signal, "SIGUSR1"):
            handlers[signal.SIGUSR1] = self._on_pause_toggle
        return {number: signal.signal(number, handler) for number, handler in handlers.items()}

    def _on_stop(self, number: int, frame: Any) -> None:
        name = signal.Signals(number).name
        if number == signal.SIGINT:
            self.interrupts += 1
            if self.interrupts > 1:
                raise KeyboardInterrupt("interrupted twice: stopped without saving a checkpoint")
        self.stop_reason = self.stop_reason or name

    def _on_pause_toggle(self, number: int, frame: Any) -> None:
        self.pause_toggled = True


class _EventLog:
    """JSON lines to events.jsonl (appended, flushed per line, once the run folder is ours) and optionally stdout."""

    def __init__(self, to_stdout: bool) -> None:
        self.to_stdout = to_stdout
        self.enabled = True
        self.file: IO[str] | None = None

    def open(self, path: Path) -> None:
        self.file = open(path, "a", encoding="utf-8")

    def emit(self, event: str, **fields: Any) -> None:
        if not self.enabled:
            return
        line = json.dumps({"event": event, **fields}, default=json_default)
        if self.file is not None:
            self.file.write(line + "\n")
            self.file.flush()
        if self.to_stdout:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


class _GradientAverager:
    """Data parallel without wrapping: average each parameter's gradient across ranks once backward has accumulated it.

    The hook fires per parameter after accumulation, so a method's own
    backward/step code runs unchanged. Averaging is linear, so several backward
    passes before one optimizer step still give the all-rank mean.
    """

    def __init__(self, modules: Mapping[str, nn.Module], world_size: int) -> None:
        self.world_size = world_size
        self.enabled = True
        self.handles = []
        if world_size > 1:
            _broadcast_state(modules)
            for module in modules.values():
                for parameter in module.parameters():
                    if parameter.requires_grad:
                        self.handles.append(parameter.register_post_accumulate_grad_hook(self._average))

    def _average(self, parameter: torch.Tensor) -> None:
        if self.enabled and parameter.grad is not None:
            dist.all_reduce(parameter.grad, op=dist.ReduceOp.SUM)
            parameter.grad.div_(self.world_size)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Rank-0-only work (preview, evaluate) must not start collectives the other ranks never join."""
        self.enabled = False
        try:
            yield
        finally:
            self.enabled = True

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


# ---------------------------------------------------------------- helpers


def _init_distributed(device_name: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device); joins the process group when launched by torchrun with WORLD_SIZE > 1."""
    device = _resolve_device(device_name)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return 0, 1, device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), device


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise TrainingError(f"Unknown device {name!r}; use auto, cpu or cuda.") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"Device {name!r} was asked for but this torch build sees no CUDA GPU; use --device cpu.")
    return device


def _broadcast_state(modules: Mapping[str, nn.Module]) -> None:
    """Give every rank rank 0's parameters and buffers."""
    with torch.no_grad():
        for module in modules.values():
            for tensor in [*module.parameters(), *module.buffers()]:
                dist.broadcast(tensor.data, src=0)


def lr_factor(step: int, total_steps: int, decay_steps: int) -> float:
    """CycleGAN's schedule: the configured rate, then a linear fall to zero over the last `decay_steps` steps.

    A pure function of the step, so a resumed run follows it exactly; extending a run
    with `resume --steps` moves the decay window to the new end.
    """
    if decay_steps <= 0:
        return 1.0
    return 1.0 - max(0, step - (total_steps - decay_steps)) / (decay_steps + 1)


def _set_learning_rates(optimizers: Mapping[str, torch.optim.Optimizer], factor: float) -> None:
    """Scale each parameter group's configured rate, kept as "initial_lr" (torch's own name) in its checkpoint."""
    for optimizer in optimizers.values():
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
            group["lr"] = group["initial_lr"] * factor


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rank_seed(seed: int, rank: int) -> int:
    """The data seed of one rank: independent streams per rank, rank 0 reproducible from the run seed alone."""
    return int(np.random.SeedSequence([seed, rank]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _set_rank_state(state: Mapping[str, Any], generator: torch.Generator, method: Method, device: torch.device) -> None:
    torch.set_rng_state(_decode(state["torch"]))
    if device.type == "cuda" and state.get("cuda"):
        torch.cuda.set_rng_state(_decode(state["cuda"]), device)
    np.random.set_state(_numpy_state_from_json(state["numpy"]))
    random.setstate(_python_state_from_json(state["python"]))
    generator.set_state(_decode(state["generator"]))
    method.load_state(state["method"])


@contextmanager
def _rng_sandbox(device: torch.device) -> Iterator[None]:
    """Run preview/evaluate without moving any random stream training depends on."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def _check_finite(losses: Mapping[str, float], step: int) -> None:
    for name, value in losses.items():
        if not math.isfinite(value):
            raise TrainingError(
                f"Loss {name} became {value} at step {step}; lower the learning rate (--set ...) "
                "or resume from an earlier checkpoint."
            )


def _encode(state: torch.Tensor) -> str:
    return base64.b64encode(state.cpu().numpy().tobytes()).decode("ascii")


def _decode(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)


def _numpy_state_to_json(state: tuple) -> list:
    kind, keys, position, has_gauss, cached = state
    return [kind, keys.tolist(), int(position), int(has_gauss), float(cached)]


def _numpy_state_from_json(values: list) -> tuple:
    kind, keys, position, has_gauss, cached = values
    return kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached


def _python_state_to_json(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _python_state_from_json(values: list) -> tuple:
    version, internal, gauss = values
    return version, tuple(internal), gauss


def _one_line(error: BaseException) -> str:
    """The message a person sees: a PuppetryError's own text, else the exception type and its first line."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if isinstance(error, PuppetryError):
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _restore_signal_handlers(previous: Mapping[int, Any]) -> None:
    for number, handler in previous.items():
        signal.signal(number, handler)


# ---------------------------------------------------------------- command line


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `train`, `resume` and `export` on the puppetry-train command line."""
    train_parser = subparsers.add_parser("train", help="start a training run", description=(
        "Start a training run in RUNS_DIR/NAME. Exit codes: 0 done, 1 error, 130 interrupted (checkpoint saved; "
        "continue with `resume`)."))
    train_parser.add_argument("--method", default="puppetgan", help="training method (default puppetgan)")
    train_parser.add_argument("--name", required=True, help="run name: the folder under --runs-dir")
    train_parser.add_argument("--steps", type=int, help="total steps (default: the method config's `steps`)")
    train_parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    train_parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    train_parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                              help="override a method setting, e.g. --set lr_generator=1e-4 (repeatable)")
    train_parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where runs live (default runs/)")
    train_parser.add_argument("--preview-every", type=int, default=500, help="steps between preview grids (0: never)")
    train_parser.add_argument("--checkpoint-every", type=int, default=1000, help="steps between checkpoints")
    train_parser.add_argument("--eval-every", type=int, default=0, help="steps between quick evaluations (0: never)")
    train_parser.add_argument("--log-every", type=int, default=10, help="steps between step events")
    train_parser.add_argument("--keep-checkpoints", type=int, default=3, help="how many checkpoints to keep")
    train_parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    train_parser.add_argument("--lr-decay-steps", type=int, default=0, metavar="N",
                              help="let every learning rate fall linearly to zero over the last N steps (default 0: "
                                   "constant)")
    _add_events_flag(train_parser)
    train_parser.set_defaults(run=_run_train)

    resume_parser = subparsers.add_parser("resume", help="continue a run from its newest checkpoint")
    resume_parser.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    resume_parser.add_argument("--steps", type=int, help="new total number of steps (to extend a finished run)")
    _add_events_flag(resume_parser)
    resume_parser.set_defaults(run=_run_resume)

    export_parser = subparsers.add_parser("export", help="export a run's checkpoint as a model package")
    export_parser.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    export_parser.add_argument("-o", "--output", type=Path,
                               help="package folder, or a .puppetry file for a zip (default RUN_DIR/package)")
    export_parser.add_argument("--checkpoint", type=int, metavar="STEP", help="checkpoint step (default: newest)")
    export_parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                               help="an export-only method setting, e.g. --set serve_direction=b2a (repeatable)")
    export_parser.set_defaults(run=_run_export)


def _add_events_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", action="store_true",
                        help="print the JSON-lines events on stdout (no progress bar), for the GUI")


def _run_train(args: argparse.Namespace) -> int:
    method_class = load(args.method)
    overrides = dict(_parse_override(text) for text in args.overrides)
    steps = args.steps
    if steps is None:
        defaults = config_from_dict(method_class.config_class, overrides)
        steps = getattr(defaults, "steps", None)
        if not isinstance(steps, int):
            raise TrainingError(f"Method {args.method!r} has no default step count; give --steps N.")
    config = RunConfig(
        name=args.name, method=args.method, method_config=overrides, total_steps=steps, seed=args.seed,
        device=args.device, preview_every=args.preview_every, checkpoint_every=args.checkpoint_every,
        eval_every=args.eval_every, log_every=args.log_every, keep_checkpoints=args.keep_checkpoints,
        runs_dir=args.runs_dir, threads=args.threads, lr_decay_steps=args.lr_decay_steps,
        command=shlex.join(["puppetry-train", *sys.argv[1:]]),
    )
    return _exit_code(train(config, events_to_stdout=args.events, progress=_show_progress(args)))


def _run_resume(args: argparse.Namespace) -> int:
    result = resume(args.run_dir, total_steps=args.steps, events_to_stdout=args.events, progress=_show_progress(args))
    return _exit_code(result)


def _run_export(args: argparse.Namespace) -> int:
    settings = dict(_parse_override(text) for text in args.overrides)
    output = args.output
    archive = output if output is not None and output.suffix == ".puppetry" else None
    if archive is not None:
        with tempfile.TemporaryDirectory(prefix="puppetry-export-") as scratch:
            package = export_run(args.run_dir, Path(scratch) / archive.stem, args.checkpoint, settings)
            print(zip_package(package, archive))
    else:
        print(export_run(args.run_dir, output, args.checkpoint, settings))
    return 0


def _parse_override(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise TrainingError(f"--set {text!r} must look like KEY=VALUE, e.g. --set batch_size=64.")
    return key.strip(), value.strip()


def _show_progress(args: argparse.Namespace) -> bool:
    return not args.events and sys.stderr.isatty()


def _exit_code(result: RunResult) -> int:
    return 0 if result.status == "done" else EXIT_INTERRUPTED
