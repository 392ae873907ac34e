"""Collect the runs of benchmarks/fingerprint_kinds.sh into one JSON on stdout: the VAE's
training time and held-out reconstruction quality, and per data set and kind the encoding time
and the cross-validated accuracy of every label and continuous target."""

import json
import sys
from pathlib import Path

from microforge.training.loop import recorded_seconds

runs = Path(sys.argv[1])
vae = json.loads((runs / "vae" / "config.json").read_text())
out = {
    "command": f"bash benchmarks/fingerprint_kinds.sh <data> {runs}",
    "vae": {
        "config": vae["train"],
        "train_minutes": round(recorded_seconds(vae) / 60, 1),
        "reconstruction": json.loads((runs / "vae" / "reconstruction.json").read_text()),
    },
}
for name in ("explore", "explore-all", "explore-baskaran"):
    s = json.loads((runs / name / "summary.json").read_text())
    out[name] = {
        "images": s["images"],
        "dims": s["dims"],
        "encode_seconds": s["encode_seconds"],
        "labels": s["labels"],
        "cv": {
            kind: {
                "classification": {
                    k: {m: v[m] for m in ("accuracy_mean", "accuracy_std", "chance", "confusion", "classes")}
                    for k, v in r["classification"].items()
                },
                "regression": r["regression"],
            }
            for kind, r in s["cv"]["kinds"].items()
        },
    }
print(json.dumps(out, indent=1))
