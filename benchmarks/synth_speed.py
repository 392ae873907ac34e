"""Benchmark: how long `microforge data synth` takes, per specimen and for the default benchmark.

    python benchmarks/synth_speed.py [--specimens 100] [--workers 2] [--out benchmarks/results/synth_speed.json]

Builds the benchmark (default config unless --specimens is given) in a temporary folder and
writes a JSON record: wall time, specimens/s, tiles/s, and the machine it ran on.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from _record import write_record  # benchmarks/_record.py (the script's folder is on sys.path)

from microforge.config import config_to_dict
from microforge.data.synth.config import SynthConfig
from microforge.data.synth.benchmark import build_benchmark


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--specimens", type=int, default=SynthConfig().n_specimens)
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "synth_speed.json")
    args = ap.parse_args()
    config = replace(SynthConfig(), n_specimens=args.specimens)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        ds = build_benchmark(Path(tmp) / "ti", config, workers=args.workers, progress=False)
        seconds = time.perf_counter() - start
    record = {
        "benchmark": "synth_speed",
        "config": config_to_dict(config),
        "workers": args.workers,
        "seconds": round(seconds, 2),
        "specimens_per_s": round(config.n_specimens / seconds, 3),
        "tiles_per_s": round(len(ds) / seconds, 1),
        "tiles": len(ds),
    }
    write_record(record, args.out)


if __name__ == "__main__":
    main()
