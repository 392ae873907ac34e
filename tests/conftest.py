"""Shared fixtures: a tiny synthetic benchmark and the real titanium data beside the repo."""

from __future__ import annotations

import contextlib
import io
import os
import runpy
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import yaml
from contextlib import contextmanager

from microforge.data.synth.config import SynthConfig
from microforge.training.regressor_trainer import RegressorTrainConfig
from microforge.data.synth.benchmark import build_benchmark

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MICROFORGE_SHARED_DATA", REPO.parent / "shared" / "data"))
TI_AB = SHARED_DATA / "ti_ab_heat_treatment"
MICRO = Path(__file__).parent / "data" / "tim3-micro.yaml"

# 4 specimens (one per morphology), 256 px fields, 64 px tiles: 16 tiles per modality each.
# a regressor that trains in a second on the tiny benchmark (checkpoints every 3 of 6 steps)
TINY_REGRESSOR = RegressorTrainConfig(
    resolution=32, width=8, steps=6, batch_size=8, split_fractions=(0.5, 0.25, 0.25), checkpoint_every=3
)
TINY = SynthConfig(n_specimens=4, field_px=256, tile_size=64)


@pytest.fixture(scope="session")
def tiny_bench(tmp_path_factory: pytest.TempPathFactory):
    """The tiny benchmark, built once per session (read-only for tests)."""
    return build_benchmark(tmp_path_factory.mktemp("bench") / "ti", TINY, workers=1, progress=False)


@pytest.fixture(scope="session")
def micro_model(tiny_bench, tmp_path_factory) -> Path:
    """A micro TiM3 (tests/data/tim3-micro.yaml, 32 px) trained on the tiny benchmark."""
    from microforge.models.tim3 import load_tim3_config
    from microforge.training.tim3_trainer import train_tim3

    out = tmp_path_factory.mktemp("tim3") / "model"
    train_tim3(tiny_bench.root, out, load_tim3_config(MICRO), progress=False)
    return out


@pytest.fixture(scope="session")
def ti_ab() -> Path:
    """The real alpha/beta Ti set of ../shared/data (see its SOURCE.txt)."""
    if not (TI_AB / "labels.csv").is_file():
        pytest.skip(f"real data not found at {TI_AB}; set MICROFORGE_SHARED_DATA")
    return TI_AB


@contextmanager
def interrupted_at_step(monkeypatch: pytest.MonkeyPatch, step: int, key_length: int = 1):
    """Inside the block, a trainer built on ``training.loop.run_steps`` dies (KeyboardInterrupt,
    as from Ctrl+C) when it reaches ``step``, leaving its checkpoints as a killed run would.
    ``key_length``: how many numbers the trainer's seed key has (TiM3's phases: 2, seed and phase)."""
    from microforge.training import loop

    real = loop.seeded_generator

    def dying(*key: int):
        if len(key) > key_length and key[key_length] == step:  # shorter keys: another phase, which runs on
            raise KeyboardInterrupt
        return real(*key)

    monkeypatch.setattr(loop, "seeded_generator", dying)
    try:
        yield
    finally:
        monkeypatch.setattr(loop, "seeded_generator", real)


def assert_micro_samples_reproduce(pipe, tmp_path: Path) -> None:
    """A 32 px TiM3 pipeline samples two maps and images of the right shapes and classes, the same
    again for the same seed, and the same from a copy saved with ``save_pretrained``."""
    import numpy as np

    from microforge.pipelines.tim3 import TiM3Pipeline

    targets = np.array([[1000, 1080, 12, 37, 30, 1450, 0.2]] * 2)
    a = pipe(targets, steps=3, seed=1)
    assert a.maps.shape == a.images.shape == (2, 32, 32) and set(np.unique(a.maps)) <= {0, 1, 2}
    assert np.array_equal(a.images, pipe(targets, steps=3, seed=1).images)
    again = TiM3Pipeline.from_pretrained(pipe.save_pretrained(tmp_path / "copy"))(targets, steps=3, seed=1)
    assert np.array_equal(a.images, again.images) and np.array_equal(a.maps, again.maps)


def micro_with_train(**train) -> dict:
    """The micro TiM3 config (``MICRO``) as a dict, with ``train`` fields replaced."""
    from microforge.models.tim3 import load_tim3_config

    d = load_tim3_config(MICRO).to_dict()
    d["train"] = {**d["train"], **train}
    return d


SEED_SCRIPT = REPO / "scripts" / "seed_run_from_model.py"


def run_seed_script(model: Path, config: Path, run: Path, *extra: str) -> subprocess.CompletedProcess:
    """``scripts/seed_run_from_model.py MODEL CONFIG RUN [EXTRA...]``, its output captured, as a
    process would end: exit code 0, or the code of ``SystemExit`` (a message given to it goes to
    stderr with code 1, as Python does). It runs in this process (``runpy``), where a subprocess spent
    seconds importing torch and diffusers for each of the suite's many seeded runs;
    ``tests/test_scripts.py`` runs it as a process too."""
    argv = [str(SEED_SCRIPT), str(model), str(config), str(run), *extra]
    out, err, code = io.StringIO(), io.StringIO(), 0
    with mock.patch.object(sys, "argv", argv), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_path(str(SEED_SCRIPT), run_name="__main__")
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if isinstance(exc.code, str):
                print(exc.code, file=err)
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def seeded_run(model: Path, d: dict, tmp_path: Path, name: str, *extra: str) -> tuple[Path, Path, str]:
    """Write config ``d`` as ``name``.yaml, seed ``tmp_path/name`` from ``model`` (``extra``: more
    arguments for the script); it must succeed. Returns (config, run, stdout)."""
    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml.safe_dump(d))
    run = tmp_path / name
    done = run_seed_script(model, config, run, *extra)
    assert done.returncode == 0, done.stderr
    return config, run, done.stdout
