"""The worker lane: newest request of a kind wins, stale results are dropped, errors reach their handler."""

from __future__ import annotations

import threading

import pytest

from gui._qt.workers import JobRunner


@pytest.fixture
def runner(qtbot) -> JobRunner:
    lane = JobRunner()
    yield lane
    lane.wait()


def test_waiting_requests_of_one_key_collapse_to_the_newest(runner: JobRunner, qtbot):
    gate = threading.Event()
    shown: list[int] = []
    runner.submit(gate.wait, lambda _r: None, key="block")
    for value in range(50):
        runner.submit(lambda v=value: v, shown.append, key="preview")
    gate.set()
    qtbot.waitUntil(runner.is_idle, timeout=5000)
    assert shown == [49]
    assert runner.started["preview"] == 1


def test_a_running_request_made_stale_is_dropped(runner: JobRunner, qtbot):
    gate = threading.Event()
    shown: list[str] = []
    runner.submit(lambda: (gate.wait(), "old")[1], shown.append, key="preview")
    qtbot.waitUntil(lambda: not runner.is_idle() and runner.started.get("preview") == 1, timeout=5000)
    runner.submit(lambda: "new", shown.append, key="preview")
    gate.set()
    qtbot.waitUntil(runner.is_idle, timeout=5000)
    assert shown == ["new"]


def test_unkeyed_jobs_all_run_in_order(runner: JobRunner, qtbot):
    done: list[int] = []
    for value in range(5):
        runner.submit(lambda v=value: v, done.append)
    qtbot.waitUntil(runner.is_idle, timeout=5000)
    assert done == [0, 1, 2, 3, 4]


def test_an_error_goes_to_its_handler_and_the_lane_keeps_going(runner: JobRunner, qtbot):
    errors: list[BaseException] = []
    done: list[str] = []

    def fail() -> None:
        raise ValueError("bad pixels")

    runner.submit(fail, done.append, on_error=errors.append)
    runner.submit(lambda: "after", done.append)
    qtbot.waitUntil(runner.is_idle, timeout=5000)
    assert [str(e) for e in errors] == ["bad pixels"]
    assert done == ["after"]


def test_busy_is_reported_while_work_runs(runner: JobRunner, qtbot):
    states: list[bool] = []
    runner.busy_changed.connect(states.append)
    runner.submit(lambda: 1, lambda _r: None)
    qtbot.waitUntil(runner.is_idle, timeout=5000)
    assert states[0] is True and states[-1] is False
