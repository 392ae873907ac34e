"""What TiM3's micrograph stage draws from true maps: stage 2 fed the test split's phase maps
instead of stage 1's, beside the real tiles. Separates the two stages' faults: if the
micrographs drawn from true maps look right, the generated maps are the bottleneck.

    python benchmarks/stage2_on_true_maps.py MODEL DATA OUT.png [--n 6] [--seed 0] [--redraw S]

MODEL: a two-stage TiM3 folder or bundled:NAME. Rows of the figure: real tile, its true map (at
the model's resolution, nearest-resized as in training), the micrograph stage 2 draws from it;
with ``--redraw S``, also stage 1's redraw of the true map at strength S (TiM3Pipeline.redraw_maps:
the map with stage 1's speckle and laths) and what stage 2 draws from that.
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from _held_out import stage2_from  # noqa: E402  (benchmarks/, the script's folder, is on sys.path)

from microforge.data.dataset import MicrographDataset  # noqa: E402
from microforge.data.phase_map import to_pseudo_rgb  # noqa: E402
from microforge.pipelines.registry import resolve_model  # noqa: E402
from microforge.pipelines.tim3 import TiM3Pipeline  # noqa: E402
from microforge.seeding import seeded_generator  # noqa: E402


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("out")
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--redraw", type=float, metavar="S", help="add stage 1's redraws at strength S in (0, 1]")
    args = ap.parse_args()
    if args.redraw is not None and not 0.0 < args.redraw <= 1.0:
        raise SystemExit(f"Error: --redraw must lie in (0, 1], got {args.redraw}")
    pipe = TiM3Pipeline.from_pretrained(resolve_model(args.model))
    cfg = pipe.cfg
    ds = MicrographDataset(
        args.data,
        split="test",
        fractions=tuple(cfg.split_fractions),
        seed=cfg.train.seed,
        modality=cfg.modality,
        augment=False,
    )
    items = [ds[int(i)] for i in np.linspace(0, len(ds) - 1, args.n).astype(int)]
    maps = pipe.model_maps(torch.stack([it["mask"] for it in items]))
    raw = np.stack([it["props_raw"].numpy() for it in items])

    def stage2(maps: torch.Tensor) -> np.ndarray:  # one batch, so the same noise for every row of maps
        return stage2_from(pipe, raw, maps, len(raw), args.seed)

    rows = [("real tile", [it["image"][0] for it in items], True), ("true map", maps, False)]
    rows.append(("stage 2 from it", stage2(maps), True))
    if args.redraw is not None:
        y = torch.tensor(pipe.condition_properties.normalise(raw), dtype=torch.float32)
        gen = seeded_generator(args.seed, 1)
        redrawn = pipe.redraw_maps(y, maps, args.redraw, cfg.sampling_steps, cfg.guidance_scale, cfg.sampler, gen)
        rows += [(f"redrawn at {args.redraw:g}", redrawn, False), ("stage 2 from it", stage2(redrawn), True)]
    fig, axes = plt.subplots(len(rows), args.n, figsize=(2.2 * args.n, 2.27 * len(rows)), squeeze=False)
    for i, (label, panels, grey) in enumerate(rows):
        axes[i, 0].set_ylabel(label)
        for j in range(args.n):
            panel = panels[j]
            if grey:
                axes[i, j].imshow(np.asarray(panel), cmap="gray", vmin=0, vmax=1)
            else:
                axes[i, j].imshow(to_pseudo_rgb((panel.argmax(0) if panel.dim() == 3 else panel).numpy()))
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
    fig.tight_layout()
    fig.savefig(args.out, dpi=80)


if __name__ == "__main__":
    main()
