"""Start TiM3 run folders with the bundled models' trained autoencoders, when a config's
autoencoder sections are exactly theirs, so that a short budget goes to the diffusion stages
(benchmarks/gpu_run.sh; the ablation's row a does the same for one folder).

    python benchmarks/seed_run_autoencoders.py CONFIG SEM_RUN OM_RUN

SEM_RUN gets ti-sem-tiny's micrograph and map autoencoders, OM_RUN ti-om-tiny's micrograph
autoencoder and the shared map autoencoder, each with a ``.done`` marker that says where it came
from; ``microforge train tim3 --resume`` then skips those phases. Other configs: nothing is done.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import yaml

from microforge.models.tim3 import tim3_config_from_dict

CHECKPOINTS = Path(__file__).resolve().parents[1] / "src" / "microforge" / "checkpoints"


def main() -> None:
    config, sem, om = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    plan = tim3_config_from_dict(yaml.safe_load(config.read_text()), str(config))
    bundled = {
        name: tim3_config_from_dict(json.loads((CHECKPOINTS / name / "config.json").read_text())["config"], saved=True)
        for name in ("ti-sem-tiny", "ti-om-tiny")
    }
    for out, image_from in ((sem, "ti-sem-tiny"), (om, "ti-om-tiny")):
        for part, source in (("vae_image", image_from), ("vae_map", "ti-sem-tiny")):
            if getattr(plan, part).kind != "kl" or getattr(plan, part) != getattr(bundled[source], part):
                print(f"{out.name}: {part} differs from the bundled {source}'s; it will be trained")
                continue
            (out / ".done").mkdir(parents=True, exist_ok=True)
            shutil.copytree(CHECKPOINTS / source / part, out / part, dirs_exist_ok=True)
            marker = {"steps": f"reused from the bundled {source}", "seconds_this_run": 0.0, "processes": 1}
            (out / ".done" / f"{part}.json").write_text(json.dumps(marker))
            print(f"{out.name}: {part} reused from the bundled {source}")


if __name__ == "__main__":
    main()
