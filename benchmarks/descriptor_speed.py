"""Benchmark: descriptors per second on 256 x 256 images, in total and per descriptor.

    python benchmarks/descriptor_speed.py [--images 8] [--out benchmarks/results/descriptor_speed.json]

Uses synthetic SEM specimens (one per morphology, cycled) with their true phase maps, plus the
classical segmentation, and times each step of `describe` separately.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _record import write_record  # benchmarks/_record.py (the script's folder is on sys.path)


from microforge.characterize.descriptors import describe
from microforge.characterize.lamellae import lamella_stats
from microforge.characterize.segmentation import segment_classical
from microforge.characterize.statistics import area_fraction_above, chord_lengths, lineal_path, two_point_correlation
from microforge.characterize.topology import persistence_diagram, persistence_image
from microforge.data.synth.config import SynthConfig
from microforge.data.synth.benchmark import make_specimen
from microforge.data.synth.params import MORPHOLOGIES


def timed(fn, items) -> float:
    start = time.perf_counter()
    for item in items:
        fn(*item)
    return (time.perf_counter() - start) / len(items)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "descriptor_speed.json")
    args = ap.parse_args()
    config = SynthConfig(field_px=256)
    specimens = [make_specimen(config, i, MORPHOLOGIES[i % 4]) for i in range(args.images)]
    pairs = [(sp.images["SEM"], sp.structure.phase_map) for sp in specimens]
    per = {
        "describe_all": timed(lambda g, m: describe(g, m, 0.25), pairs),
        "segment_classical": timed(lambda g, m: segment_classical(g), pairs),
        "s2_three_phases": timed(lambda g, m: [two_point_correlation(m == c, 64) for c in range(3)], pairs),
        "lineal_path_three_phases": timed(lambda g, m: [lineal_path(m == c, 64) for c in range(3)], pairs),
        "chords_three_phases": timed(lambda g, m: [chord_lengths(m == c) for c in range(3)], pairs),
        "lamellae": timed(lambda g, m: lamella_stats(m == 2), pairs),
        "grey_thresholds": timed(lambda g, m: area_fraction_above(g), pairs),
        "persistence_h1_and_image": timed(lambda g, m: persistence_image(persistence_diagram(g)), pairs),
    }
    record = {
        "benchmark": "descriptor_speed",
        "image_px": [256, 256],
        "images": args.images,
        "seconds_per_image": {k: round(v, 4) for k, v in per.items()},
        "images_per_second": {k: round(1.0 / v, 2) for k, v in per.items()},
    }
    write_record(record, args.out)


if __name__ == "__main__":
    main()
