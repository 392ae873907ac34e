"""Write a TiM3 model folder anew with its networks' weights stored in float16 (or float32).

    python scripts/store_model.py MODEL OUT [--weights-dtype float16]

MODEL: a TiM3 folder or bundled:NAME. OUT must be new or empty. float16 halves the weights' bytes,
which is how a bundled model with a wider stage 2 stays under the 30 MB a bundled folder may take;
loading upcasts every weight to float32 again, so the pipeline computes as before on weights
rounded once to 11 significant bits. Score the written folder, not MODEL: its samples are close to
MODEL's but not identical. ``logs/``, ``metrics.json`` and ``regressor/`` are copied along.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from microforge.errors import MicroforgeError
from microforge.pipelines.registry import resolve_model
from microforge.pipelines.tim3 import WEIGHTS_DTYPES, TiM3Pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a TiM3 model folder or bundled:NAME")
    parser.add_argument("out", type=Path, help="the folder to write (new or empty)")
    parser.add_argument("--weights-dtype", choices=sorted(WEIGHTS_DTYPES), default="float16")
    args = parser.parse_args()
    try:
        pipe = TiM3Pipeline.from_pretrained(resolve_model(args.model))
        pipe.save_pretrained(args.out, weights_dtype=args.weights_dtype)
    except MicroforgeError as exc:
        sys.exit(f"Error: {exc}")
    size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"{args.out}: {args.weights_dtype} weights, {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
