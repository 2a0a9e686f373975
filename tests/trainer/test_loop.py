"""The training loop: learning, exact resume, atomic checkpoints, signals, control file, events, data parallel."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from engine.errors import TrainingError
from tests.trainer.toy_method import ToyConfig, ToyMethod
from trainer import checkpoint as ckpt
from trainer import loop
from trainer.loop import EXIT_INTERRUPTED, RunConfig, resume, train
from trainer.methods import config_from_dict

REPO = Path(__file__).resolve().parents[2]
TOY = "tests.trainer.toy_method:ToyMethod"


@pytest.fixture
def toy_run(tmp_path: Path) -> RunConfig:
    return RunConfig(
        name="toy", method=TOY, total_steps=30, seed=7, device="cpu", preview_every=10, checkpoint_every=10,
        eval_every=15, log_every=1, keep_checkpoints=3, runs_dir=tmp_path / "runs", threads=1,
    )


def read_events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def step_losses(events: list[dict]) -> dict[int, float]:
    return {e["step"]: e["losses"]["reconstruction"] for e in events if e["event"] == "step"}


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def start_cli_run(runs_dir: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "trainer.cli", "train", "--method", TOY, "--name", "toy", "--steps", "100000",
               "--seed", "7", "--device", "cpu", "--threads", "1", "--runs-dir", str(runs_dir), "--log-every", "1",
               "--events", *extra]
    return subprocess.Popen(command, cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_training_lowers_the_toy_loss(toy_run: RunConfig):
    result = train(dataclasses.replace(toy_run, total_steps=60))
    losses = step_losses(read_events(result.run_dir))
    assert result.status == "done" and result.step == 60
    assert np.mean([losses[s] for s in range(56, 61)]) < 0.5 * np.mean([losses[s] for s in range(1, 6)])


def test_resumed_run_repeats_the_uninterrupted_losses(toy_run: RunConfig):
    whole = train(toy_run)
    first_part = train(dataclasses.replace(toy_run, name="split", total_steps=17))
    resumed = resume(first_part.run_dir, total_steps=30)
    expected, actual = step_losses(read_events(whole.run_dir)), step_losses(read_events(resumed.run_dir))
    assert resumed.status == "done" and resumed.step == 30
    for step in range(18, 31):
        assert actual[step] == pytest.approx(expected[step], abs=1e-6), step


def test_resume_extends_a_finished_run_and_rewrites_its_config(toy_run: RunConfig):
    finished = train(dataclasses.replace(toy_run, total_steps=10))
    resume(finished.run_dir, total_steps=12)
    starts = [e for e in read_events(finished.run_dir) if e["event"] == "start"]
    assert [(e["step"], e["total_steps"]) for e in starts] == [(0, 10), (10, 12)]
    assert json.loads((finished.run_dir / "config.json").read_text())["total_steps"] == 12


def test_learning_rates_fall_linearly_over_the_last_steps_and_resume_follows_them(toy_run: RunConfig):
    assert [loop.lr_factor(step, 30, 12) for step in (0, 18, 19, 29)] == pytest.approx([1, 1, 12 / 13, 2 / 13])
    constant = step_losses(read_events(train(toy_run).run_dir))
    decayed = dataclasses.replace(toy_run, name="decayed", lr_decay_steps=12)
    whole = step_losses(read_events(train(decayed).run_dir))
    assert all(whole[step] == constant[step] for step in range(1, 21))  # step 20's loss precedes its slower update
    assert all(whole[step] != constant[step] for step in range(21, 31))
    split = train(dataclasses.replace(decayed, name="split")).run_dir
    for path in ckpt.checkpoint_dir(split).glob("step_00000030.*"):
        path.unlink()
    resumed = resume(split, total_steps=30)
    assert resumed.step == 30
    assert [step_losses(read_events(split))[step] for step in range(21, 31)] == pytest.approx(
        [whole[step] for step in range(21, 31)], abs=1e-6)


def test_a_negative_decay_length_is_refused(toy_run: RunConfig):
    with pytest.raises(TrainingError, match="lr-decay-steps"):
        dataclasses.replace(toy_run, lr_decay_steps=-5)


def test_a_decay_is_refused_for_a_method_that_schedules_its_own_rates(toy_run: RunConfig,
                                                                       monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(ToyMethod, "schedules_learning_rate", True)
    with pytest.raises(TrainingError, match="schedules its own learning rate"):
        train(dataclasses.replace(toy_run, lr_decay_steps=5))
    assert not (toy_run.run_dir / "config.json").exists()


def test_a_method_that_cannot_be_built_leaves_no_run_to_trip_over(toy_run: RunConfig,
                                                                  monkeypatch: pytest.MonkeyPatch):
    def unreadable(*args, **kwargs) -> None:
        raise TrainingError("Image folder /photos has no readable image")

    monkeypatch.setattr(ToyMethod, "__init__", unreadable)
    with pytest.raises(TrainingError, match="no readable image"):
        train(toy_run)
    assert not toy_run.run_dir.exists()  # the same name can be started again once the photos are fixed
    monkeypatch.undo()
    assert train(toy_run).status == "done"


@pytest.mark.parametrize("failing_file", ["safetensors", "json"])
def test_failed_checkpoint_write_keeps_the_previous_checkpoint_resumable(
    toy_run: RunConfig, monkeypatch: pytest.MonkeyPatch, failing_file: str
):
    real_replace = os.replace

    def disk_full_at_step_20(source, target):
        if Path(target).name == f"step_00000020.{failing_file}":
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(source, target)

    monkeypatch.setattr(ckpt.os, "replace", disk_full_at_step_20)
    with pytest.raises(TrainingError, match=re.escape(str(toy_run.run_dir / "checkpoints"))):
        train(toy_run)
    monkeypatch.setattr(ckpt.os, "replace", real_replace)

    folder = toy_run.run_dir / "checkpoints"
    assert [c.step for c in ckpt.list_checkpoints(toy_run.run_dir)] == [10]
    assert sorted(p.name for p in folder.iterdir()) == ["step_00000010.json", "step_00000010.safetensors"]
    assert read_events(toy_run.run_dir)[-1]["event"] == "error"
    resumed = resume(toy_run.run_dir)
    assert resumed.status == "done" and resumed.step == 30
    assert [e["step"] for e in read_events(toy_run.run_dir) if e["event"] == "start"] == [0, 10]


def test_a_torn_tensor_write_leaves_no_partial_file(toy_run: RunConfig, monkeypatch: pytest.MonkeyPatch):
    real_save = ckpt.save_file

    def half_written(tensors, filename):
        real_save(tensors, filename)
        with open(filename, "r+b") as handle:
            handle.truncate(100)
        raise OSError(errno.ENOSPC, "No space left on device")

    checkpoint = train(dataclasses.replace(toy_run, total_steps=10)).checkpoint
    monkeypatch.setattr(ckpt, "save_file", half_written)
    with pytest.raises(TrainingError, match="No space left"):
        resume(toy_run.run_dir, total_steps=20)
    assert [c.step for c in ckpt.list_checkpoints(toy_run.run_dir)] == [10]
    assert not [p for p in checkpoint.parent.iterdir() if p.name.startswith(".")]


def test_only_the_newest_checkpoints_are_kept(toy_run: RunConfig):
    train(dataclasses.replace(toy_run, total_steps=12, checkpoint_every=3, keep_checkpoints=2))
    assert [c.step for c in ckpt.list_checkpoints(toy_run.run_dir)] == [9, 12]
    assert len(list((toy_run.run_dir / "checkpoints").iterdir())) == 4


def test_events_carry_the_contract_fields(toy_run: RunConfig):
    result = train(toy_run)
    events = read_events(result.run_dir)
    by_kind: dict[str, list[dict]] = {}
    for event in events:
        by_kind.setdefault(event["event"], []).append(event)
    run_dir = str(result.run_dir.resolve())
    assert by_kind["start"] == [{"event": "start", "total_steps": 30, "step": 0, "run_dir": run_dir}]
    assert [e["step"] for e in by_kind["step"]] == list(range(1, 31))
    assert all(set(e) == {"event", "step", "losses", "steps_per_s"} and e["steps_per_s"] > 0 for e in by_kind["step"])
    assert [(e["step"], e["path"]) for e in by_kind["preview"]] == [(s, f"previews/{s:06d}.png") for s in (10, 20, 30)]
    assert all((result.run_dir / e["path"]).is_file() for e in by_kind["preview"])
    assert [e["step"] for e in by_kind["eval"]] == [15, 30] and "mse" in by_kind["eval"][0]["metrics"]
    assert [e["path"] for e in by_kind["checkpoint"]] == [f"checkpoints/step_{s:08d}.json" for s in (10, 20, 30)]
    assert by_kind["done"] == [{"event": "done", "step": 30, "package": "package"}]
    assert (result.run_dir / "package" / "manifest.json").is_file()
    assert events[-1]["event"] == "done"


def test_events_go_to_stdout_when_asked(toy_run: RunConfig, capsys: pytest.CaptureFixture):
    train(dataclasses.replace(toy_run, total_steps=3), events_to_stdout=True)
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed == read_events(toy_run.run_dir)


class RandomPreviewToy(ToyMethod):
    """Previews and metrics that draw from every global random stream."""

    def preview(self) -> np.ndarray:
        torch.rand(3), np.random.rand(3), random.random()
        return super().preview()

    def evaluate(self) -> dict[str, float]:
        return {"noise": float(torch.rand(1)) + np.random.rand() + random.random()}


def test_preview_and_evaluate_do_not_change_the_training_losses(toy_run: RunConfig):
    plain = train(dataclasses.replace(toy_run, name="plain", preview_every=0, eval_every=0))
    busy = train(dataclasses.replace(toy_run, name="busy", method=f"{__name__}:RandomPreviewToy",
                                     preview_every=1, eval_every=1))
    assert step_losses(read_events(plain.run_dir)) == step_losses(read_events(busy.run_dir))


class CancellingToy(ToyMethod):
    """Writes to the run's control file the way the GUI would, at chosen steps."""

    commands: dict[int, str] = {}
    run_dir: Path

    def train_step(self, step: int, generator: torch.Generator) -> dict[str, float]:
        if step in self.commands:
            (self.run_dir / loop.CONTROL_FILE).write_text(self.commands[step])
        return super().train_step(step, generator)


def test_cancel_in_the_control_file_stops_after_the_step_with_a_checkpoint(toy_run: RunConfig,
                                                                          monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(CancellingToy, "commands", {5: "cancel"})
    monkeypatch.setattr(CancellingToy, "run_dir", toy_run.run_dir, raising=False)
    result = train(dataclasses.replace(toy_run, method=f"{__name__}:CancellingToy"))
    assert (result.status, result.step) == ("interrupted", 6)
    assert read_events(result.run_dir)[-1] == {"event": "interrupted", "step": 6, "reason": "cancel",
                                               "checkpoint": "checkpoints/step_00000006.json"}
    assert ckpt.list_checkpoints(result.run_dir)[-1].step == 6


def test_pause_waits_until_the_control_file_says_run(toy_run: RunConfig, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(CancellingToy, "commands", {3: "pause"})
    monkeypatch.setattr(CancellingToy, "run_dir", toy_run.run_dir, raising=False)
    waits = []

    def gui_presses_resume_on_the_third_wait(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 3:
            (toy_run.run_dir / loop.CONTROL_FILE).write_text("run")

    monkeypatch.setattr(loop.time, "sleep", gui_presses_resume_on_the_third_wait)
    result = train(dataclasses.replace(toy_run, method=f"{__name__}:CancellingToy", total_steps=8))
    controls = [(e["event"], e["step"]) for e in read_events(result.run_dir) if e["event"] in ("paused", "resumed")]
    assert result.status == "done" and controls == [("paused", 4), ("resumed", 4)] and len(waits) == 3


class ExplodingToy(ToyMethod):
    def train_step(self, step: int, generator: torch.Generator) -> dict[str, float]:
        losses = super().train_step(step, generator)
        return {"reconstruction": float("nan")} if step == 4 else losses


def test_a_nan_loss_ends_the_run_with_an_error_event(toy_run: RunConfig):
    with pytest.raises(TrainingError, match="reconstruction became nan at step 5"):
        train(dataclasses.replace(toy_run, method=f"{__name__}:ExplodingToy"))
    last = read_events(toy_run.run_dir)[-1]
    assert last["event"] == "error" and "nan at step 5" in last["message"] and "\n" not in last["message"]


def test_a_second_run_with_the_same_name_is_refused(toy_run: RunConfig):
    train(dataclasses.replace(toy_run, total_steps=2))
    with pytest.raises(TrainingError, match="already exists"):
        train(toy_run)


def test_method_settings_from_the_command_line_are_typed_and_checked():
    assert config_from_dict(ToyConfig, {"lr": "2e-4", "batch_size": "4", "export_onnx": "true"}) == ToyConfig(
        lr=2e-4, batch_size=4, export_onnx=True)
    with pytest.raises(TrainingError, match="Unknown setting bogus"):
        config_from_dict(ToyConfig, {"bogus": "1"})
    with pytest.raises(TrainingError, match="batch_size"):
        config_from_dict(ToyConfig, {"batch_size": "many"})


@pytest.mark.timeout(60)
def test_sigterm_finishes_the_step_saves_a_checkpoint_and_exits_130(tmp_path: Path):
    process = start_cli_run(tmp_path, "--checkpoint-every", "1000")
    for line in process.stdout:
        event = json.loads(line)
        if event["event"] == "step" and event["step"] == 5:
            process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    assert process.returncode == EXIT_INTERRUPTED
    last = read_events(tmp_path / "toy")[-1]
    assert last["event"] == "interrupted" and last["reason"] == "SIGTERM"
    assert ckpt.list_checkpoints(tmp_path / "toy")[-1].step == last["step"] >= 5


@pytest.mark.timeout(60)
def test_a_killed_run_resumes_from_its_last_complete_checkpoint(tmp_path: Path):
    process = start_cli_run(tmp_path, "--checkpoint-every", "20")
    killed_losses = {}
    for line in process.stdout:
        event = json.loads(line)
        if event["event"] == "step":
            killed_losses[event["step"]] = event["losses"]["reconstruction"]
            if event["step"] == 45:
                process.send_signal(signal.SIGKILL)
                break
    process.communicate(timeout=60)
    last_checkpoint = ckpt.list_checkpoints(tmp_path / "toy")[-1].step
    assert last_checkpoint >= 40

    result = resume(tmp_path / "toy", total_steps=last_checkpoint + 5)
    events = read_events(tmp_path / "toy")
    assert [e["step"] for e in events if e["event"] == "start"] == [0, last_checkpoint]
    resumed_losses = step_losses(events[[e["event"] for e in events].index("start", 1):])
    assert result.status == "done"
    for step in range(last_checkpoint + 1, min(last_checkpoint + 5, max(killed_losses)) + 1):
        assert resumed_losses[step] == pytest.approx(killed_losses[step], abs=1e-6), step


def _data_parallel_worker(rank: int, world_size: int, port: int, config: RunConfig, out: Path) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    train(config)
    torch.save(RecordingToy.last_state, out / f"rank{rank}.pt")


class RecordingToy(ToyMethod):
    """Keeps its final weights where the test process can read them after the run."""

    last_state: dict[str, torch.Tensor] = {}

    def train_step(self, step: int, generator: torch.Generator) -> dict[str, float]:
        losses = super().train_step(step, generator)
        RecordingToy.last_state = {k: v.clone() for k, v in self.net.state_dict().items()}
        return losses


@pytest.mark.timeout(60)
def test_data_parallel_ranks_see_different_data_and_keep_equal_weights(toy_run: RunConfig, tmp_path: Path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = dataclasses.replace(toy_run, method=f"{__name__}:RecordingToy", total_steps=6, checkpoint_every=3,
                                 preview_every=3, eval_every=3)
    mp.start_processes(_data_parallel_worker, args=(2, port, config, tmp_path), nprocs=2, start_method="spawn")

    rank0, rank1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    events = read_events(config.run_dir)
    assert [e["event"] for e in events].count("start") == 1 and events[-1]["event"] == "done"
    saved = json.loads(ckpt.list_checkpoints(config.run_dir)[-1].json_path.read_text())
    assert saved["world_size"] == 2 and saved["ranks"][0]["generator"] != saved["ranks"][1]["generator"]
