"""The training loop's time record across a kill and a resume (training/loop.run_steps): each
checkpoint carries the time its steps took, so a resumed run's record counts the whole run."""

from __future__ import annotations

import json
import time

import pytest
import torch

from .conftest import interrupted_at_step
from microforge.training.loop import StepSeconds, run_steps

STEP_SLEEP = 0.05  # seconds each step sleeps: the time record's lower bound


def _run(tmp_path, steps: int = 6) -> StepSeconds:
    net = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)

    def step(gen: torch.Generator) -> dict[str, float]:
        time.sleep(STEP_SLEEP)
        loss = net(torch.randn(4, 2, generator=gen)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss.item()}

    return run_steps(tmp_path, steps, 0, 2, {"net": net}, {"opt": opt}, step, "test", progress=False)


def test_an_uninterrupted_run_records_its_time_as_the_total(tmp_path):
    seconds = _run(tmp_path)
    assert seconds.total == seconds.this_run >= 6 * STEP_SLEEP
    assert seconds.record() == {"seconds_this_run": round(seconds.this_run, 1), "seconds": round(seconds.total, 1)}


def test_a_resumed_run_counts_the_killed_runs_checkpointed_steps(tmp_path, monkeypatch):
    with interrupted_at_step(monkeypatch, 5), pytest.raises(KeyboardInterrupt):  # dies after the step-4 checkpoint
        _run(tmp_path)
    recorded = json.loads((tmp_path / "checkpoints" / "step_0000004" / "step.json").read_text())
    assert recorded["step"] == 4 and recorded["seconds"] >= 4 * STEP_SLEEP
    seconds = _run(tmp_path)  # steps 4 and 5
    assert 2 * STEP_SLEEP <= seconds.this_run < recorded["seconds"]
    assert seconds.total == pytest.approx(recorded["seconds"] + seconds.this_run, abs=1e-3)


def test_a_checkpoint_without_a_time_record_leaves_the_total_unknown(tmp_path, monkeypatch):
    with interrupted_at_step(monkeypatch, 5), pytest.raises(KeyboardInterrupt):
        _run(tmp_path)
    step_json = tmp_path / "checkpoints" / "step_0000004" / "step.json"
    step_json.write_text(json.dumps({"step": 4}))  # as the versions before the time record wrote it
    seconds = _run(tmp_path)
    assert seconds.total is None and seconds.record() == {"seconds_this_run": round(seconds.this_run, 1)}
