"""docs/tim3.md's "Where the bundled models stand" table states what the bundled models' own records
(metrics.json, config.json) hold, so that it cannot drift from them when a model is replaced."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from microforge.training.loop import recorded_seconds

REPO = Path(__file__).resolve().parents[1]
CHECKPOINTS = REPO / "src" / "microforge" / "checkpoints"
MODELS = ("ti-sem-tiny", "ti-om-tiny")  # the table's columns, in order


def standing_rows() -> dict[str, list[str]]:
    """The table's rows: measure -> the cells of the two models' columns, bold marks removed."""
    text = (REPO / "docs" / "tim3.md").read_text()
    section = text.split("## Where the bundled models stand", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip().replace("**", "") for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and not set(cells[0]) <= {"-"} and cells[0] != "measure":
            rows[cells[0]] = cells[2:]
    return rows


def first_numbers(cell: str, n: int = 1) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", cell)[:n]]


@pytest.mark.parametrize("column, name", list(enumerate(MODELS)))
def test_the_standing_table_states_each_models_committed_metrics(column, name):
    rows = standing_rows()
    metrics = json.loads((CHECKPOINTS / name / "metrics.json").read_text())
    table1, s2 = metrics["table1"], metrics["discrepancy_pct"]["s2"]
    assert first_numbers(rows["FID ↓"][column]) == [round(table1["fid"], 1)]
    assert first_numbers(rows["KID ↓"][column]) == [round(table1["kid"], 3)]
    assert first_numbers(rows["mAcc ↑"][column]) == [round(table1["mAcc"], 3)]
    met = sum(p["r2"] >= 0.5 for p in metrics["per_property"].values())
    assert first_numbers(rows["properties with regressor R² ≥ 0.5 on the samples"][column]) == [met]
    phases = ("primary_alpha", "beta", "secondary_alpha")
    cell = rows["S2 discrepancy %, primary α / β / secondary α"][column]
    assert first_numbers(cell, 3) == [round(s2[p], 1) for p in phases]


def test_the_standing_table_states_the_sem_models_recorded_training_minutes():
    training = json.loads((CHECKPOINTS / "ti-sem-tiny" / "config.json").read_text())["training"]
    minutes = sum(recorded_seconds(phase) for phase in training.values()) / 60
    cell = standing_rows()["training on 2 CPU cores, as recorded"][0]
    assert first_numbers(cell) == [round(minutes)]
