"""Draw the docs' figures of the synthetic benchmark next to real titanium micrographs.

    python scripts/make_data_figures.py                  # writes docs/figures/*.png
    python scripts/make_data_figures.py --with-ti-ab     # also shows the ti_ab set (local use only)

Real images come from ../shared/data (see each SOURCE.txt). The committed figure holds crops of
the MIT-licensed images only (Baskaran et al. SEM, ronan498 optical); the ti_ab_heat_treatment
images have no stated licence, so they are drawn only with --with-ti-ab, for local viewing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from microforge.data.synth.config import SynthConfig
from microforge.data.contact_sheet import image_grid
from microforge.data.images import read_grey
from microforge.data.phase_map import to_pseudo_rgb
from microforge.data.synth.benchmark import make_specimen
from microforge.data.synth.params import MORPHOLOGIES
from microforge.io import to_uint8

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
CROP = 256


def centre_crop(img: np.ndarray, size: int = CROP, scale: int = 1) -> np.ndarray:
    """Centre crop of ``size * scale`` px, subsampled by ``scale`` to ``size`` px."""
    h, w = img.shape[:2]
    s = size * scale
    y, x = (h - s) // 2, (w - s) // 2
    return img[y : y + s : scale, x : x + s : scale]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "figures")
    ap.add_argument(
        "--with-ti-ab", action="store_true", help="add the unlicensed ti_ab images (do not commit the result)"
    )
    args = ap.parse_args()
    config = SynthConfig(field_px=512)
    images, titles = [], []
    for i, morphology in enumerate(MORPHOLOGIES):
        sp = make_specimen(config, i, morphology)
        images += [
            to_pseudo_rgb(centre_crop(sp.structure.phase_map)),
            to_uint8(centre_crop(sp.images["OM"])),
            to_uint8(centre_crop(sp.images["SEM"])),
        ]
        titles += [f"{morphology}: phase map", f"{morphology}: OM-like", f"{morphology}: SEM-like"]
    args.out.mkdir(parents=True, exist_ok=True)
    image_grid(images, titles, 3, args.out / "synth_morphologies.png", cell_inches=2.4)

    real, real_titles = [], []
    base = SHARED / "ti64_baskaran_subset"
    for name, label in (
        ("image_1062.png", "real SEM, Baskaran 1062 (lamellar/acicular)"),
        ("image_1124.png", "real SEM, Baskaran 1124 (basketweave-like)"),
        ("image_1211.png", "real SEM, Baskaran 1211 (bimodal-like)"),
    ):
        real.append(centre_crop(read_grey(base / "images" / name), 300))
        real_titles.append(label)
    for name, label in (
        ("Sample_F_Mag40.jpg", "real OM, ronan498 F (equiaxed)"),
        ("Sample_J_Mag40.jpg", "real OM, ronan498 J (basketweave)"),
    ):
        real.append(centre_crop(read_grey(base / "optical_ronan498" / name), 300, scale=2))
        real_titles.append(label)
    if args.with_ti_ab:
        for cond in ("850C1hAC", "975C5hAC"):
            real.append(
                centre_crop(
                    read_grey(SHARED / "ti_ab_heat_treatment" / "micrographs" / f"{cond}_800x.jpg"), 300, scale=2
                )
            )
            real_titles.append(f"real SEM, ti_ab {cond}")
    synth = []
    for i, morphology in enumerate(MORPHOLOGIES):
        sp = make_specimen(config, i, morphology)
        synth += [to_uint8(centre_crop(sp.images["SEM"], 300)), to_uint8(centre_crop(sp.images["OM"], 300))]
    synth_titles = [f"synthetic {m} {mod}" for m in MORPHOLOGIES for mod in ("SEM", "OM")]
    name = "synth_vs_real_local.png" if args.with_ti_ab else "synth_vs_real.png"
    ncols = 4
    pad = (-len(real)) % ncols
    image_grid(
        real + [None] * pad + synth, real_titles + [""] * pad + synth_titles, ncols, args.out / name, cell_inches=2.6
    )
    print(f"wrote {args.out / 'synth_morphologies.png'} and {args.out / name}")


if __name__ == "__main__":
    main()
