"""Slow tests (minutes): run with `python -m pytest -m slow`."""

import pytest

from microforge.config import SynthConfig
from microforge.data.manifest import read_dataset
from microforge.data.synth.benchmark import build_benchmark


@pytest.mark.slow
def test_default_benchmark_builds(tmp_path):
    ds = build_benchmark(tmp_path / "ti", SynthConfig(), workers=2, progress=False)
    assert len(ds) == 100 * 25 * 2
    assert ds.table["specimen"].nunique() == 100
    assert ds.table.groupby("morphology")["specimen"].nunique().tolist() == [25, 25, 25, 25]
    assert len(read_dataset(tmp_path / "ti")) == 5000
