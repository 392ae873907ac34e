"""Benchmark: peak memory of generation and evaluation does not grow with the sample count.

    python benchmarks/memory_peak.py [--counts 32 256 1024] [--data data/ti-synth]

Each run is a fresh process (``microforge generate`` with the bundled model, and
``microforge evaluate`` when ``--data`` is given); its peak resident set size is read from
``getrusage(RUSAGE_CHILDREN)``. Streaming means the peak stays flat as N grows. Writes
benchmarks/results/memory_peak.json.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _record import write_record  # benchmarks/_record.py (the script's folder is on sys.path)

REPO = Path(__file__).resolve().parents[1]
TARGET = ["YS=1009", "TS=1084", "EF=15.7", "RH=36.4", "IT=28.5", "DCS=1494", "CFS=0.216"]


def peak_of(args: list[str]) -> tuple[float, float]:
    """Run ``python -m microforge ARGS`` alone in a child; return (peak RSS in MiB, seconds)."""
    code = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code, sys.executable, "-m", "microforge", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.strip().splitlines()[-1]) / 1024.0, time.perf_counter() - t0  # ru_maxrss is in KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", type=int, nargs="+", default=[32, 256, 1024])
    ap.add_argument("--data", type=Path, help="dataset for the evaluate runs (skipped without it)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "memory_peak.json")
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in a.counts:
            mib, sec = peak_of(
                ["generate", *sum((["--prop", p] for p in TARGET), []), "-n", str(n), "--out", f"{tmp}/g{n}", "--quiet"]
            )
            rows.append({"command": "generate", "samples": n, "peak_rss_mib": round(mib, 1), "seconds": round(sec, 1)})
            print(rows[-1], flush=True)
        if a.data:
            for n in a.counts:
                mib, sec = peak_of(
                    [
                        "evaluate",
                        "--data",
                        str(a.data),
                        "--report",
                        f"{tmp}/e{n}",
                        "-n",
                        str(n),
                        "--n-reference",
                        "64",
                        "--n-describe",
                        "16",
                        "--quiet",
                    ]
                )
                rows.append(
                    {"command": "evaluate", "samples": n, "peak_rss_mib": round(mib, 1), "seconds": round(sec, 1)}
                )
                print(rows[-1], flush=True)
    write_record({"benchmark": "memory_peak", "model": "bundled:ti-sem-tiny", "runs": rows}, a.out)


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
