#!/usr/bin/env bash
# Fingerprint kinds on the default benchmark and on the real, unlabelled Baskaran Ti-6Al-4V
# subset (issue 21): trains the tiny VAE, explores both data sets with every kind, and writes
# benchmarks/results/fingerprint_kinds.json and the docs' figures. About 45 minutes on 2 cores.
#   bash benchmarks/fingerprint_kinds.sh data/ti-synth runs/fingerprints
set -euo pipefail
DATA=${1:-data/ti-synth}
RUNS=${2:-runs/fingerprints}
SHARED=${MICROFORGE_SHARED_DATA:-../shared/data}
mkdir -p "$RUNS"
[ -f "$RUNS/vae/model.safetensors" ] || microforge fingerprint train --data "$DATA" --config configs/fingerprint-tiny.yaml --out "$RUNS/vae" --resume --quiet
[ -f "$RUNS/explore/summary.json" ] || microforge fingerprint explore --data "$DATA" --out "$RUNS/explore" --model "$RUNS/vae" \
  --kind vae --kind vae-d4 --kind inception --kind descriptors --max-images 1000 --quiet
# every SEM tile (2 500), the VAE's two kinds only: the SVM is short of examples at 1 000
[ -f "$RUNS/explore-all/summary.json" ] || microforge fingerprint explore --data "$DATA" --out "$RUNS/explore-all" --model "$RUNS/vae" \
  --kind vae --kind vae-d4 --max-images 100000 --quiet
# the Baskaran subset: 225 unlabelled 604 px SEM images, halved and cut into 128 px tiles
if [ ! -f "$RUNS/baskaran/manifest.csv" ]; then
  python - "$SHARED/ti64_baskaran_subset/images" "$RUNS/baskaran.csv" <<'PY'
import csv, pathlib, sys
with open(sys.argv[2], "w", newline="") as fh:
    w = csv.writer(fh)
    w.writerow(["file"])
    w.writerows([p.name] for p in sorted(pathlib.Path(sys.argv[1]).glob("*.png")))
PY
  microforge data import --images "$SHARED/ti64_baskaran_subset/images" --table "$RUNS/baskaran.csv" --out "$RUNS/baskaran" \
    --tile-size 128 --scale 0.5 --quiet
fi
[ -f "$RUNS/explore-baskaran/summary.json" ] || microforge fingerprint explore --data "$RUNS/baskaran" --out "$RUNS/explore-baskaran" \
  --model "$RUNS/vae" --kind vae --kind vae-d4 --kind inception --kind descriptors --quiet
python benchmarks/fingerprint_summary.py "$RUNS" > benchmarks/results/fingerprint_kinds.json
cp "$RUNS/explore/cv.png" docs/figures/fingerprint_cv.png
cp "$RUNS/explore/embeddings.png" docs/figures/fingerprint_embeddings.png
cp "$RUNS/explore/paths.png" docs/figures/fingerprint_paths.png
cp "$RUNS/explore-baskaran/embeddings.png" docs/figures/fingerprint_baskaran.png
