"""Audit of every command: bad input gives one line, ``Error: ...``, exit 1, never a traceback."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from microforge.cli import cli
from microforge.data.outdir import OWNER_FILE

TARGET = [
    "--prop",
    "YS=1000",
    "--prop",
    "TS=1080",
    "--prop",
    "EF=12",
    "--prop",
    "RH=37",
    "--prop",
    "IT=30",
    "--prop",
    "DCS=1450",
]


@pytest.fixture(scope="module")
def bad(tmp_path_factory, tiny_bench):
    """Folders and files that commands must refuse."""
    root = tmp_path_factory.mktemp("bad")
    empty = root / "empty"  # a dataset folder whose manifest has no rows
    empty.mkdir()
    shutil.copy(tiny_bench.root / "properties.json", empty)
    (empty / "manifest.csv").write_text((tiny_bench.root / "manifest.csv").read_text().splitlines()[0] + "\n")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "tiny.png")  # too small to measure
    (root / "fake.png").write_text("not an image")
    for folder, done in (("full", "run.json"), ("report", "metrics.json")):  # output folders that hold finished results
        (root / folder).mkdir()
        (root / folder / done).write_text("{}")
        (root / folder / OWNER_FILE).write_text(json.dumps({"command": "test", "written": [done]}))
    (root / "notes.txt").write_text("x")
    return root


CASES = [
    # generate
    (["generate", *TARGET, "--prop", "CFS=0.2", "-n", "-2", "--out", "{b}/g"], "'-n': -2 is not in the range"),
    (["generate", *TARGET, "--prop", "CFS=nan", "--out", "{b}/g"], "value must be finite"),
    (["generate", *TARGET, "--prop", "CFS=inf", "--out", "{b}/g"], "value must be finite"),
    (["generate", *TARGET, "--out", "{b}/g"], "missing properties: CFS"),
    (["generate", *TARGET, "--prop", "CFS=0.2", "--lock", "YS", "--out", "{b}/g"], "--lock needs --nearest-feasible"),
    (
        ["generate", *TARGET, "--prop", "CFS=0.2", "--nearest-feasible", "--lock", "XX", "--out", "{b}/g"],
        "--lock XX: the model has no property",
    ),
    (["generate", *TARGET, "--prop", "CFS=0.2", "--prop", "ZZ=1", "--out", "{b}/g"], "unknown property 'ZZ'"),
    (["generate", *TARGET, "--prop", "CFS=0.2", "--out", "{b}/full"], "already holds results; pass --overwrite"),
    (["generate", "--model", "{b}/nomodel", *TARGET, "--prop", "CFS=0.2", "--out", "{b}/g"], "model folder not found"),
    (["generate", *TARGET, "--prop", "CFS=0.2", "--steps", "0", "--out", "{b}/g2"], "'--steps': 0 is not in the range"),
    # evaluate
    (["evaluate", "--data", "{b}/nodata", "--report", "{b}/r"], "dataset folder not found"),
    (["evaluate", "--data", "{b}/empty", "--report", "{b}/r"], "no tiles"),
    (["evaluate", "--data", "{bench}", "--report", "{b}/r", "-n", "-5"], "'-n': -5 is not in the range"),
    (["evaluate", "--data", "{bench}", "--report", "{b}/report"], "already holds results; pass --overwrite"),
    # training
    (["train", "tim3", "--data", "{b}/nodata", "--out", "{b}/t"], "dataset folder not found"),
    (["train", "tim3", "--data", "{b}/empty", "--out", "{b}/t"], "no tiles"),
    (["train", "tim3", "--data", "{bench}", "--out", "{b}/t", "--config", "{b}/none.yaml"], "config file not found"),
    (["train", "regressor", "--data", "{b}/nodata", "--out", "{b}/t"], "dataset folder not found"),
    (["train", "regressor", "--data", "{b}/empty", "--out", "{b}/t"], "no tiles"),
    (["train", "regressor", "--data", "{bench}", "--out", "{b}/t", "--config", "{b}/notes.txt"], "expected a mapping"),
    # characterize and segment
    (["characterize", "{b}/nothing", "--out", "{b}/c"], "no such file or folder"),
    (["characterize", "{b}/tiny.png", "--out", "{b}/c"], "4x4 px is too small"),
    (["characterize", "{b}/fake.png", "--out", "{b}/c"], "fake.png: not a readable image"),
    (["characterize", "{b}/notes.txt", "--out", "{b}/c"], "notes.txt: not a readable image"),
    (["characterize", "{bench}", "--out", "{b}/c2", "--pixel-size", "-1"], "'--pixel-size': '-1' is not in"),
    (["segment", "run", "{b}/nothing", "--out", "{b}/s"], "no such file or folder"),
    (["segment", "run", "{b}/fake.png", "--out", "{b}/s"], "not a readable image"),
    (["segment", "train", "--data", "{b}/empty", "--out", "{b}/s"], "no tiles"),
    (["segment", "evaluate", "--data", "{b}/nodata"], "dataset folder not found"),
    # serve
    (["serve", "--model", "{b}/nomodel"], "model folder not found"),
    (["serve", "--max-samples", "0"], "'--max-samples': 0 is not in the range"),
    # data
    (["data", "info", "{b}/empty"], "no tiles"),
    (["data", "synth", "--out", "{b}/notes.txt"], "is a file, expected a folder"),
    (["train", "ccdm", "--data", "{b}/nodata", "--out", "{b}/t"], "dataset folder not found"),
    (["train", "ccgan", "--data", "{b}/empty", "--out", "{b}/t"], "no tiles"),
]


@pytest.mark.parametrize("args,message", CASES, ids=[" ".join(a[:2]) + f" #{i}" for i, (a, _) in enumerate(CASES)])
def test_every_command_refuses_bad_input_in_one_line(bad, tiny_bench, args, message):
    args = [a.replace("{b}", str(bad)).replace("{bench}", str(tiny_bench.root)) for a in args]
    result = CliRunner().invoke(cli, args)
    assert "Traceback" not in result.output
    assert result.exit_code == 1, result.output
    assert message in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
