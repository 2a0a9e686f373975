"""Training from the GUI: the trainer runs as a child process whose JSON lines drive the run state and the dialog."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtWidgets import QFileDialog

from engine.errors import PuppetryError
from engine.package import list_packages
from gui._qt.main_window import MainWindow
from gui._qt.training_dialog import TrainingDialog
from gui.model.settings import Settings
from gui.model.training_run import JsonLinesParser, RunState, TrainingRequest, TrainingRun, bundled_recipe
from tests.gui.conftest import save_shot

REPO = Path(__file__).resolve().parents[2]
CHILD_MS = 90_000  # a child imports torch (2-3 s on a quiet machine, far longer beside training runs) first
TOY = "tests.gui.packaging_toy_method:PackagingToyMethod"

# A stand-in trainer without torch: the real event protocol and control file, answered at once.
FAKE_TRAINER = textwrap.dedent("""
    import argparse, json, pathlib, sys, time
    parser = argparse.ArgumentParser()
    parser.add_argument("command")
    parser.add_argument("--name")
    parser.add_argument("--runs-dir")
    parser.add_argument("--steps", type=int)
    args, _ = parser.parse_known_args()
    run_dir = pathlib.Path(args.runs_dir) / args.name
    (run_dir / "previews").mkdir(parents=True)
    (run_dir / "config.json").write_text("{}")
    def emit(**event):
        print(json.dumps(event), flush=True)
    emit(event="start", total_steps=args.steps, step=0, run_dir=str(run_dir))
    print("INFO trainer.methods.puppetgan: rendering 6000 digits triplets", file=sys.stderr, flush=True)
    print("WARNING trainer.data.folders: Skipped 2 unreadable file(s) in /photos", file=sys.stderr, flush=True)
    for step in (1, 2, 3):
        emit(event="step", step=step, losses={"reconstruction": 1.0 / step, "adversarial": 0.5 + 0.1 * step},
             steps_per_s=4.0)
    emit(event="preview", step=3, path=str(pathlib.Path(sys.argv[0]).parent / "grid.png"))
    control, paused = run_dir / "control", False
    for _ in range(600):
        word = control.read_text().strip() if control.exists() else ""
        if word == "cancel":
            (run_dir / "checkpoints").mkdir()
            (run_dir / "checkpoints" / "step_00000003.json").write_text("{}")
            emit(event="interrupted", step=3, reason="cancel", checkpoint="checkpoints/step_00000003.json")
            sys.exit(130)
        if (word == "pause") != paused:
            paused = word == "pause"
            emit(event="paused" if paused else "resumed", step=3)
        time.sleep(0.05)
""")


def toy_request(runs_dir: Path, name: str = "toy-run", steps: int = 6, **settings: str) -> TrainingRequest:
    return TrainingRequest(name=name, method=TOY, steps=steps, runs_dir=runs_dir, settings=settings, device="cpu",
                           preview_every=3, checkpoint_every=3, log_every=1, threads=1)


@pytest.fixture
def fake_trainer(tmp_path: Path) -> list[str]:
    """The command of the stand-in trainer, with a preview grid beside it."""
    folder = tmp_path / "fake"
    folder.mkdir()
    grid = np.zeros((64, 128, 3), np.uint8)
    grid[:, ::8] = 255
    grid[8:24, 8:24] = (200, 60, 60)
    Image.fromarray(grid).save(folder / "grid.png")
    script = folder / "fake_trainer.py"
    script.write_text(FAKE_TRAINER)
    return [sys.executable, str(script)]


# --- the JSON-lines parser --------------------------------------------------------------------------------------

def test_parser_joins_lines_split_across_chunks():
    parser = JsonLinesParser()
    line = json.dumps({"event": "step", "step": 7, "losses": {"cycle": 0.25}}).encode() + b"\n"
    pieces = [line[:5], line[5:20], line[20:] + b'{"event": "prev', b'iew", "path": "p.png"}\n']
    events = [event for piece in pieces for event in parser.feed(piece)]
    assert events == [{"event": "step", "step": 7, "losses": {"cycle": 0.25}}, {"event": "preview", "path": "p.png"}]
    assert parser.buffer == b""


def test_parser_keeps_garbage_lines_aside_and_reads_on():
    parser = JsonLinesParser()
    events = parser.feed(b'Warning: something noisy\n[1, 2]\n{"no_event": 1}\n'
                         b'{"event": "done", "package": "package"}\n')
    assert events == [{"event": "done", "package": "package"}]
    assert parser.skipped == ["Warning: something noisy", "[1, 2]", '{"no_event": 1}']


def test_parser_splits_a_multibyte_character_across_chunks_and_flushes_an_unfinished_line():
    parser = JsonLinesParser()
    data = json.dumps({"event": "error", "message": "größe ✗"}, ensure_ascii=False).encode()
    assert parser.feed(data[:-6]) == [] and parser.feed(data[-6:]) == []
    assert parser.flush() == [{"event": "error", "message": "größe ✗"}]


def test_a_malformed_event_is_skipped_and_the_next_one_still_counts(qtbot, tmp_path):
    run = TrainingRun(library_dir=tmp_path / "models")
    run.handle_output(b'{"event": "step", "losses": {"cycle": 1}}\n{"event": "step", "step": "x"}\n'
                      b'{"event": "step", "step": 4, "losses": {"cycle": 0.5}, "steps_per_s": 2}\n')
    assert run.current_step == 4 and run.losses == {"cycle": [(4, 0.5)]}


# --- real child processes -----------------------------------------------------------------------------------------

def test_toy_run_reports_steps_and_previews_and_its_model_opens_from_the_library(qtbot, tmp_path, settings,
                                                                                models_dir, shots):
    window = MainWindow(Settings(settings), library_dir=models_dir, include_bundled=False)
    qtbot.addWidget(window)
    window.show_training()
    dialog = window.training_dialog
    assert dialog is not None and dialog.isVisible()
    run = dialog.run
    steps: list[int] = []
    previews: list[str] = []
    run.step.connect(lambda _losses, step, _total, _rate: steps.append(step))
    run.preview.connect(previews.append)
    with qtbot.waitSignal(run.finished, timeout=CHILD_MS) as finished:
        dialog._clear()
        run.start(toy_request(tmp_path / "runs"))
    assert steps == [1, 2, 3, 4, 5, 6]
    assert [Path(p).name for p in previews] == ["000003.png", "000006.png"] and Path(previews[-1]).is_file()
    assert run.state == RunState.DONE and finished.args == [str(models_dir / "toy-run")]
    library = {p.name: p for p in list_packages(models_dir, include_bundled=False)}
    assert library["toy-run"].provenance["steps"] == 6 and library["toy-run"].editor == "puppet"
    assert "toy-run" in {p.name for p in window.library.packages()}  # the window refreshed its library
    save_shot(dialog, shots, "training_done")
    assert dialog.open_button.isEnabled()
    dialog.open_button.click()
    qtbot.waitUntil(lambda: window.model.name == "toy-run", timeout=5_000)
    assert window.library.selected().name == "toy-run"
    window.runner.wait()


def test_pause_continue_and_cancel_keep_a_checkpoint_and_the_run_resumes_to_the_library(qtbot, tmp_path):
    run = TrainingRun(library_dir=tmp_path / "models")
    states: list[RunState] = []
    run.state_changed.connect(states.append)
    run.start(toy_request(tmp_path / "runs", steps=100_000))
    qtbot.waitUntil(lambda: run.current_step >= 2, timeout=CHILD_MS)
    run.pause()
    qtbot.waitUntil(lambda: run.state == RunState.PAUSED, timeout=5_000)
    run.unpause()
    qtbot.waitUntil(lambda: run.state == RunState.RUNNING, timeout=5_000)
    run.cancel()
    qtbot.waitUntil(lambda: not run.state.is_active, timeout=CHILD_MS)
    assert states[-5:] == [RunState.RUNNING, RunState.PAUSED, RunState.RUNNING, RunState.STOPPING,
                           RunState.CANCELLED]
    assert run.checkpoint is not None and run.checkpoint.is_file() and run.can_resume
    stopped_at = run.current_step
    assert run.checkpoint.name == f"step_{stopped_at:08d}.json"
    with qtbot.waitSignal(run.finished, timeout=CHILD_MS):
        run.resume(tmp_path / "runs" / "toy-run", steps=stopped_at + 2)
    assert run.current_step == stopped_at + 2 and run.state == RunState.DONE
    assert [step for step, _ in run.losses["reconstruction"]] == list(range(1, stopped_at + 3))  # earlier steps too
    assert run.package is not None and run.package.provenance["steps"] == stopped_at + 2


def test_a_failing_child_surfaces_its_one_line_error(qtbot, tmp_path):
    run = TrainingRun(library_dir=tmp_path / "models")
    with qtbot.waitSignal(run.failed, timeout=CHILD_MS) as failed:
        run.start(toy_request(tmp_path / "runs", nonsense="1"))
    assert failed.args[0].startswith("Unknown setting nonsense for ToyConfig")
    assert run.state == RunState.FAILED and "\n" not in run.error


def test_a_killed_child_fails_with_its_last_stderr_line_and_the_editor_lives_on(qtbot, tmp_path):
    run = TrainingRun(library_dir=tmp_path / "models")
    run.command = [sys.executable, "-c", "import os, sys; print('CUDA out of memory', file=sys.stderr, flush=True); "
                                         "os.kill(os.getpid(), 9)"]
    with qtbot.waitSignal(run.failed, timeout=CHILD_MS) as failed:
        run.start(toy_request(tmp_path / "runs"))
    assert failed.args[0] == "The trainer stopped unexpectedly (killed or crashed): CUDA out of memory."
    assert run.state == RunState.FAILED and not run.state.is_active


def test_a_trainer_that_cannot_start_fails_with_a_message(qtbot, tmp_path):
    run = TrainingRun(library_dir=tmp_path / "models")
    run.command = [str(tmp_path / "no-such-python")]
    with qtbot.waitSignal(run.failed, timeout=5_000) as failed:
        run.start(toy_request(tmp_path / "runs"))
    assert failed.args[0].startswith("Could not start the trainer")


# --- the dialog ---------------------------------------------------------------------------------------------------

@pytest.fixture
def dialog(qtbot, tmp_path) -> TrainingDialog:
    view = TrainingDialog(library_dir=tmp_path / "models")
    qtbot.addWidget(view)
    view.runs_edit.setText(str(tmp_path / "runs"))
    view.runs_edit.editingFinished.emit()
    view.show()
    return view


def test_the_form_describes_a_puppetgan_run_on_mnist(dialog, tmp_path):
    (tmp_path / "runs" / "digits-rotation").mkdir(parents=True)  # taken: the suggestion moves on
    dialog.runs_edit.editingFinished.emit()
    dialog.attribute_box.setCurrentIndex(dialog.attribute_box.findData("size"))
    dialog.recipe_box.setChecked(False)  # the method's own defaults, not the bundled size model's
    dialog.steps_box.setValue(400)
    request = dialog.request()
    assert request.method == "puppetgan" and request.name == "digits-size" and request.steps == 400
    assert dict(request.settings) == {"puppet": "digits", "attribute": "size", "real": "mnist"}
    assert "--lr-decay-steps" not in request.arguments()
    assert (request.preview_every, request.checkpoint_every, request.log_every) == (16, 40, 4)
    assert dialog.attribute_box.count() == 6  # the digits puppet's continuous controls
    assert "your own image folder or video" in dialog.note.text()
    assert [dialog.real_box.itemData(i) for i in range(dialog.real_box.count())] == ["mnist", ":folder", ":video"]


def test_the_users_own_folder_or_video_becomes_the_real_images_of_a_colour_run(dialog, tmp_path, monkeypatch):
    photos, video = tmp_path / "my photos", tmp_path / "clip.mp4"
    answers = {"folder": str(photos), "video": ""}
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args: answers["folder"])
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *args: (answers["video"], ""))
    dialog.puppet_box.setCurrentIndex(dialog.puppet_box.findData("face"))
    dialog.attribute_box.setCurrentIndex(dialog.attribute_box.findData("smile"))

    def choose(data: str) -> None:
        index = dialog.real_box.findData(data)
        dialog.real_box.setCurrentIndex(index)
        dialog.real_box.activated.emit(index)

    choose(":folder")
    assert dialog.real_box.currentText() == "my photos (folder)" and dialog.real_box.currentData() == str(photos)
    settings = dict(dialog.request().settings)
    assert settings == {"puppet": "face", "attribute": "smile", "real": str(photos), "grayscale": "false"}
    choose(":video")  # cancelled: the folder stays chosen
    assert dialog.real_box.currentData() == str(photos)
    answers["video"] = str(video)
    choose(":video")
    assert dialog.real_box.currentText() == "clip.mp4 (video)" and dialog.request().settings["real"] == str(video)
    choose(":folder")  # the same folder again is selected, not listed twice
    assert dialog.real_box.currentData() == str(photos) and dialog.real_box.count() == 5
    choose("mnist")
    assert "grayscale" not in dialog.request().settings


def test_a_bundled_model_s_settings_are_offered_for_its_puppet_and_attribute(dialog):
    manifest = json.loads((REPO / "resources" / "models" / "digits-rotation" / "manifest.json").read_text())
    provenance = manifest["provenance"]
    assert dialog.attribute_box.currentData() == "rotation" and dialog.form.isRowVisible(dialog.recipe_box)
    assert dialog.recipe_box.isChecked() and "'digits-rotation'" in dialog.recipe_box.text() and "steps" in dialog.recipe_box.toolTip()
    assert dialog.steps_box.value() == provenance.get("total_steps", provenance["steps"])
    arguments = dialog.request().arguments()
    assert f"w_swap_back={provenance['config']['w_swap_back']}" in arguments
    assert "attribute_range=[-45.0, 30.0]" in arguments and "attribute=rotation" in arguments
    dialog.attribute_box.setCurrentIndex(dialog.attribute_box.findData("thickness"))  # nothing bundled for it
    assert not dialog.form.isRowVisible(dialog.recipe_box) and dialog.steps_box.value() == 2500
    assert dict(dialog.request().settings) == {"puppet": "digits", "attribute": "thickness", "real": "mnist"}


def test_a_recipe_is_read_from_a_matching_manifest_and_broken_ones_are_passed_over(tmp_path):
    def package(name: str, manifest: object) -> None:
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))

    package("a-broken", "{not json")
    package("b-no-provenance", {"method": "puppetgan"})
    package("c-size", {"method": "puppetgan", "provenance": {
        "steps": 900, "total_steps": 1000, "lr_decay_steps": 300, "wall_time_s": 120.0,
        "config": {"puppet": "digits", "attribute": "size", "attribute_range": [0.8, 1.2], "w_swap_back": 10.0}}})
    package("d-rift", {"method": "rift", "provenance": {
        "steps": 3500, "total_steps": 7000, "lr_decay_steps": 0, "config": {"split": 1, "steps": 7000}}})
    recipe = bundled_recipe("puppetgan", {"puppet": "digits", "attribute": "size"}, tmp_path)
    assert recipe is not None and (recipe.model, recipe.steps, recipe.lr_decay_steps) == ("c-size", 1000, 300)
    assert dict(recipe.settings) == {"puppet": "digits", "attribute": "size", "attribute_range": "[0.8, 1.2]",
                                     "w_swap_back": "10.0"}
    assert bundled_recipe("puppetgan", {"puppet": "digits", "attribute": "rotation"}, tmp_path) is None
    rift = bundled_recipe("rift", {}, tmp_path)  # no loop decay: the bundled model is the run at its step
    assert rift is not None and (rift.model, rift.steps, dict(rift.settings)) == ("d-rift", 3500,
                                                                                 {"split": "1", "steps": "7000"})
    assert TrainingRequest("r", "puppetgan", 1000, tmp_path, lr_decay_steps=300).arguments()[-2:] == [
        "--lr-decay-steps", "300"]


def test_a_rift_run_chooses_a_split_and_trains_like_the_bundled_guide_model(dialog, tmp_path):
    provenance = json.loads((REPO / "resources" / "models" / "shapes-split1" / "manifest.json").read_text())["provenance"]
    dialog.method_box.setCurrentIndex(dialog.method_box.findData("rift"))
    assert not dialog.form.isRowVisible(dialog.puppet_box) and not dialog.form.isRowVisible(dialog.attribute_box)
    assert dialog.form.isRowVisible(dialog.split_box) and dialog.split_box.count() == 3
    assert "3D-Shapes-ABC" in dialog.real_box.currentText() and "your own" in dialog.note.text()
    assert not dialog.form.isRowVisible(dialog.guide_box)
    dialog.split_box.setCurrentIndex(dialog.split_box.findData(2))
    assert dialog.recipe_box.isChecked() and "'shapes-split1'" in dialog.recipe_box.text()
    request = dialog.request()
    assert request.method == "rift" and request.name == "shapes-split2" and request.steps == provenance["steps"]
    assert request.settings["split"] == "2"  # the form's split, over the bundled model's
    assert request.settings["serve_direction"] == "b2a" and request.settings["cycle_balance_after"] == "1000"
    assert "--lr-decay-steps" not in request.arguments() and "puppet" not in request.settings
    dialog.recipe_box.setChecked(False)
    assert dict(dialog.request().settings) == {"split": "2"} and dialog.steps_box.value() == 100_000
    dialog.method_box.setCurrentIndex(dialog.method_box.findData("puppetgan"))
    assert dialog.form.isRowVisible(dialog.puppet_box) and not dialog.form.isRowVisible(dialog.split_box)
    assert dialog.request().settings["puppet"] == "digits"


def test_a_rift_run_on_the_users_photos_takes_a_folder_to_edit_and_one_of_guides(dialog, tmp_path, monkeypatch):
    photos, guides = tmp_path / "Day Photos", tmp_path / "night.mp4"
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args: str(photos))
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *args: (str(guides), ""))
    dialog.method_box.setCurrentIndex(dialog.method_box.findData("rift"))
    assert dialog.form.labelForField(dialog.real_box).text() == "Photos to edit"

    def choose(box, data: str) -> None:
        index = box.findData(data)
        box.setCurrentIndex(index)
        box.activated.emit(index)

    choose(dialog.real_box, ":folder")
    assert dialog.form.isRowVisible(dialog.guide_box) and not dialog.form.isRowVisible(dialog.split_box)
    with pytest.raises(PuppetryError, match="guide photos"):
        dialog.request()
    choose(dialog.guide_box, ":video")
    request = dialog.request()
    assert request.method == "rift" and request.name == "day-photos-to-night"
    assert (request.settings["domain_a"], request.settings["domain_b"]) == (str(photos), str(guides))
    assert request.settings["serve_direction"] == "a2b"  # the photos are edited, the guides lend their look
    assert request.settings["image_size"] == "32"  # the bundled guide model's recipe still applies
    choose(dialog.real_box, "shapes-abc")
    assert dialog.form.isRowVisible(dialog.split_box) and not dialog.form.isRowVisible(dialog.guide_box)
    assert "domain_a" not in dialog.request().settings and dialog.request().name == "shapes-split1"


def test_a_bad_name_is_refused_in_the_dialog_without_starting(dialog):
    dialog.name_edit.setText("My Model!")
    dialog.start_button.click()
    assert dialog.run.state == RunState.IDLE and "Run name 'My Model!'" in dialog.status.text()


def test_a_bundle_without_the_trainer_says_so_instead_of_starting(dialog, monkeypatch):
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    dialog.start_button.click()
    assert dialog.run.state == RunState.IDLE and dialog.run.process is None
    assert "does not include the trainer" in dialog.status.text()


def test_the_dialog_follows_and_drives_a_run(dialog, qtbot, tmp_path, fake_trainer, shots):
    dialog.run.command = fake_trainer
    dialog.steps_box.setValue(10)
    dialog.start_button.click()
    qtbot.waitUntil(lambda: dialog.run.preview_path is not None, timeout=CHILD_MS)
    assert dialog.run.state == RunState.RUNNING
    assert not dialog.start_button.isEnabled() and not dialog.settings_group.isEnabled()
    assert dialog.pause_button.isEnabled() and dialog.cancel_button.isEnabled()
    assert dialog.progress.value() == 3 and dialog.progress.maximum() == 10
    assert set(dialog.plot.series) == {"reconstruction", "adversarial"} and len(dialog.plot.series["adversarial"]) == 3
    assert "step 3 of 10 · 4 steps/s · about 2 s left" in dialog.status.text()
    assert not dialog.preview.pixmap.isNull() and dialog.preview.pixmap.width() == 128
    save_shot(dialog, shots, "training_running")
    control = tmp_path / "runs" / "digits-rotation" / "control"
    dialog.pause_button.click()
    assert control.read_text().strip() == "pause"
    qtbot.waitUntil(lambda: dialog.pause_button.text() == "Continue", timeout=5_000)
    dialog.pause_button.click()
    qtbot.waitUntil(lambda: dialog.run.state == RunState.RUNNING, timeout=5_000)
    dialog.cancel_button.click()
    qtbot.waitUntil(lambda: dialog.run.state == RunState.CANCELLED, timeout=5_000)
    assert dialog.start_button.isEnabled() and dialog.resume_button.text() == "Resume digits-rotation"
    assert "Cancelled at step 3" in dialog.status.text()
    assert "interrupted" in dialog.log.toPlainText()
    assert "warning: Skipped 2 unreadable file(s) in /photos" in dialog.log.toPlainText()  # the trainer's warnings
    assert "rendering" not in dialog.log.toPlainText()  # its INFO lines are not
