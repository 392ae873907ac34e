"""Benchmark: how long `microforge data synth` takes, per specimen and for the default benchmark.

    python benchmarks/synth_speed.py [--specimens 100] [--workers 2] [--out benchmarks/results/synth_speed.json]

Builds the benchmark (default config unless --specimens is given) in a temporary folder and
writes a JSON record: wall time, specimens/s, tiles/s, and the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from microforge.config import SynthConfig, config_to_dict
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
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
