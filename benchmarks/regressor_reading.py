"""How the property regressor reads several models' samples drawn for the same held-out targets.

    python benchmarks/regressor_reading.py DATA [LABEL=]MODEL [[LABEL=]MODEL ...] [--n 128] [--regressor DIR]
        [--out JSON] [--figure PNG]

For ``n`` seeded test-split tiles of DATA, every MODEL samples one micrograph at each tile's
properties (the same seeds for every model), and the regressor (by default the bundled SEM
model's) reads them and the real tiles. Per row: the accuracy table (R², mean signed error
``bias`` and ``bias_sd``, the bias in standard deviations of the targets), the grey level's mean
and standard deviation, and the sharpness (mean absolute horizontal grey-level step, 0..255).
A model whose samples follow the targets but read as shifted shows a large ``bias_sd`` beside a
low R². ``--figure``: a real tile and each model's sample for the first 8 targets.
Writes benchmarks/results/regressor_reading.json unless --out says otherwise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from _record import write_record
from _held_out import (
    add_model_arguments,
    held_out_tiles,
    load_models,
    load_regressor,
    regressor_row,
    samples_at,
    save_figure,
)


FIGURE_TARGETS = 8  # columns of the figure


def _figure(path: Path, rows: dict[str, np.ndarray]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), FIGURE_TARGETS, figsize=(1.6 * FIGURE_TARGETS, 1.7 * len(rows)), squeeze=False)
    for i, (name, images) in enumerate(rows.items()):
        for j in range(FIGURE_TARGETS):
            axes[i, j].imshow(images[j], cmap="gray", vmin=0, vmax=1)
            axes[i, j].set_axis_off()
        axes[i, 0].set_title(name, fontsize=8, loc="left")
    save_figure(fig, path)


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(ap, n_default=128)
    ap.add_argument(
        "--regressor", help="a property regressor folder or bundled:NAME/regressor (default: the bundled SEM model's)"
    )
    ap.add_argument("--figure", type=Path)
    args = ap.parse_args()
    reg = load_regressor(args.regressor or "bundled:ti-sem-tiny/regressor")
    pipes = load_models(args.models)
    first = next(iter(pipes.values()))
    real, raw, _ = held_out_tiles(first, args.data, ("test",), args.n, args.seed)
    images = {"real": real}
    for name, pipe in pipes.items():
        images[name] = samples_at(pipe, raw, args.batch_size, args.seed)
    record = {
        "benchmark": "regressor_reading",
        "command": f"python benchmarks/regressor_reading.py {args.data} {' '.join(args.models)} --n {len(raw)}",
        "regressor": args.regressor or "bundled:ti-sem-tiny/regressor",
        "n": len(raw),
        "rows": {name: regressor_row(reg, ims, raw) for name, ims in images.items()},
    }
    write_record(record, args.out or Path(__file__).parent / "results" / "regressor_reading.json")
    if args.figure:
        _figure(args.figure, images)


if __name__ == "__main__":
    main()
