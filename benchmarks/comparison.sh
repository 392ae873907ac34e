#!/usr/bin/env bash
# The comparison of all models on the synthetic benchmark (docs/baselines.md), on CPU.
# Trains each baseline for a short, stated number of steps from its tiny config, then scores them
# beside the bundled TiM3 model with one `microforge evaluate` (same targets, same reference).
# Usage: benchmarks/comparison.sh [RUNS_DIR]   (data/ti-synth must exist: microforge data synth --out data/ti-synth)
# Writes RUNS_DIR/<kind>/ (models), RUNS_DIR/train_seconds.json and RUNS_DIR/report/ (index.html, metrics.json).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-runs/comparison}
mkdir -p "$runs"
times="$runs/train_seconds.json"
[ -f "$times" ] || echo "{}" > "$times"

record_time() {  # KIND STEPS START_EPOCH_SECONDS -> one entry of $times
  python - "$times" "$1" "$2" $(( $(date +%s) - $3 )) <<'PY'
import json, sys
path, kind, steps, seconds = sys.argv[1:]
d = json.load(open(path)); d[kind] = {"steps": int(steps), "seconds": int(seconds)}; json.dump(d, open(path, "w"), indent=1)
PY
}

# short CPU budgets: the tiny configs ask for 3000 steps, which 2 CPU cores cannot give every model
steps_ccgan=1200 steps_acwgan_gp=300 steps_ccdm=450 steps_ddpm=450 steps_fingerprint=400

if [ ! -f "$runs/fingerprint/model.safetensors" ]; then
  start=$(date +%s)
  sed "s/^steps: .*/steps: $steps_fingerprint/" configs/fingerprint-tiny.yaml > "$runs/fingerprint.yaml"
  python -m microforge fingerprint train --data data/ti-synth --config "$runs/fingerprint.yaml" --out "$runs/fingerprint" --quiet
  record_time fingerprint "$steps_fingerprint" "$start"
fi
for kind in ccgan acwgan-gp ccdm ddpm; do
  var="steps_${kind//-/_}"; steps=${!var}
  [ -f "$runs/$kind/config.json" ] && continue
  sed "s/^  steps: .*/  steps: $steps/" "configs/$kind-tiny.yaml" > "$runs/$kind.yaml"
  start=$(date +%s)
  resume=""; [ -d "$runs/$kind" ] && resume="--resume"
  python -m microforge train "$kind" --data data/ti-synth --config "$runs/$kind.yaml" --out "$runs/$kind" --quiet $resume
  record_time "$kind" "$steps" "$start"
done
python -m microforge evaluate --model bundled:ti-sem-tiny --data data/ti-synth --report "$runs/report" \
  -n 100 --n-sweep 100 --n-reference 300 --n-describe 100 --fingerprint "$runs/fingerprint" \
  --ablation CcGAN="$runs/ccgan" --ablation ACWGAN-GP="$runs/acwgan-gp" \
  --ablation CCDM="$runs/ccdm" --ablation DDPM="$runs/ddpm" --quiet
python benchmarks/comparison_table.py "$runs"
