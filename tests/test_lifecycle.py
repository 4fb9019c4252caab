"""The run lifecycle (edgebench.results.Lifecycle) on a real run directory: how each ending
(complete, Ctrl-C, SIGTERM, an error) is saved, rendered and finished, and the order of
those steps. The commands' own interrupt tests (test_bench, test_capacity,
test_collector_comparison, test_faults) drive it through real runs."""
from __future__ import annotations

import json
import os
import signal
import time

import pytest

from edgebench.results import Lifecycle, RunDir
from plumbing.process import Terminated
from reports.contract import Manifest, write_manifest


def _run(tmp_path) -> RunDir:
    """A running run's folder, written as RunDir.create writes it (without its git and
    machine look-ups, which start processes)."""
    path = tmp_path / "20260101T000000Z-bench"
    path.mkdir()
    write_manifest(path, Manifest(run_id=path.name, status="running", started_at=time.time()))
    return RunDir(path)


def _status(run: RunDir) -> str:
    return json.loads(run.manifest_path.read_text())["status"]


def _recorder(run: RunDir, events: list):
    """save and render hooks that log what they saw of the manifest when called."""
    return (lambda status: events.append(("save", status, _status(run))),
            lambda: events.append(("render", _status(run))))


def test_complete_run_saves_then_finishes_then_renders_then_moves_latest(tmp_path):
    run, events = _run(tmp_path), []
    save, render = _recorder(run, events)
    with Lifecycle(run, save=save, render=render, latest=True) as life:
        assert _status(run) == "running"
    assert events == [("save", "complete", "running"), ("render", "complete")]
    assert life.status == "complete" and life.exit_code == 0
    assert run.manifest().finished_at is not None
    assert (tmp_path / "latest").resolve() == run.path.resolve()


def test_complete_run_without_latest_leaves_latest_alone(tmp_path):
    run = _run(tmp_path)
    with Lifecycle(run):
        pass
    assert _status(run) == "complete" and not (tmp_path / "latest").exists()


def test_sigterm_is_ctrl_c_inside_and_restored_after(tmp_path, capsys):
    run, events = _run(tmp_path), []
    save, render = _recorder(run, events)
    before = signal.getsignal(signal.SIGTERM)
    with Lifecycle(run, save=save, render=render, latest=True, interrupted="edgebench: interrupted") as life:
        os.kill(os.getpid(), signal.SIGTERM)   # the handler runs before os.kill returns
        pytest.fail("SIGTERM did not end the block")
    assert signal.getsignal(signal.SIGTERM) is before
    assert life.status == "interrupted" and life.exit_code == 130
    assert events == [("save", "interrupted", "running"), ("render", "interrupted")]
    assert not (tmp_path / "latest").exists()       # latest only points at complete runs
    assert capsys.readouterr().out == "\nedgebench: interrupted\n"


def test_reraise_hands_ctrl_c_to_the_caller_after_finishing(tmp_path):
    run = _run(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        with Lifecycle(run, reraise=True):
            raise Terminated()
    assert _status(run) == "interrupted"


def test_an_error_marks_the_run_failed_renders_and_propagates(tmp_path):
    run, events = _run(tmp_path), []
    save, render = _recorder(run, events)
    with pytest.raises(ValueError, match="boom"):
        with Lifecycle(run, save=save, render=render, latest=True):
            raise ValueError("boom")
    assert events == [("save", "failed", "running"), ("render", "failed")]
    assert not (tmp_path / "latest").exists()
