"""What TiM3's micrograph stage draws from true maps: stage 2 fed the test split's phase maps
instead of stage 1's, beside the real tiles. Separates the two stages' faults: if the
micrographs drawn from true maps look right, the generated maps are the bottleneck.

    python benchmarks/stage2_on_true_maps.py MODEL DATA OUT.png [--n 6] [--seed 0]

MODEL: a two-stage TiM3 folder or bundled:NAME. Rows of the figure: real tile, its true map (at
the model's resolution, nearest-resized as in training), the micrograph stage 2 draws from it.
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

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
    args = ap.parse_args()
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
    y = torch.tensor(
        pipe.condition_properties.normalise(np.stack([it["props_raw"].numpy() for it in items])), dtype=torch.float32
    )
    drawn = pipe.draw_micrographs(
        y, maps, cfg.sampling_steps, cfg.guidance_scale, cfg.sampler, seeded_generator(args.seed, 0)
    ).cpu()
    fig, axes = plt.subplots(3, args.n, figsize=(2.2 * args.n, 6.8), squeeze=False)
    for j, it in enumerate(items):
        axes[0, j].imshow(it["image"][0], cmap="gray", vmin=0, vmax=1)
        axes[1, j].imshow(to_pseudo_rgb((maps[j].argmax(0) if maps.dim() == 4 else maps[j]).numpy()))
        axes[2, j].imshow(drawn[j].numpy(), cmap="gray", vmin=0, vmax=1)
        for ax in axes[:, j]:
            ax.set_xticks([])
            ax.set_yticks([])
    for ax, label in zip(axes[:, 0], ("real tile", "true map", "stage 2 from it")):
        ax.set_ylabel(label)
    fig.tight_layout()
    fig.savefig(args.out, dpi=80)


if __name__ == "__main__":
    main()
