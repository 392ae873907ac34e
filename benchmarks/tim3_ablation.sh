#!/usr/bin/env bash
# TiM3's levers, one at a time, on one short protocol (docs/tim3.md, "Ablation"):
#   each row of benchmarks/ablation/*.yaml trains stage 1 for 1 500 and stage 2 for 3 000 steps at
#   batch 16 on 2 CPU cores (row a reuses the bundled model's trained autoencoders, whose config it
#   repeats, so that no row pays for autoencoder training), then
#   microforge evaluate -n 200 --n-reference 200 --n-describe 50 with the bundled regressor.
# Extra rows: already trained models given as NAME=FOLDER arguments are evaluated the same way.
#
#   bash benchmarks/tim3_ablation.sh DATA RUNS [NAME=MODEL ...]
#
# Resumable: a finished row is skipped, an interrupted training resumes. Writes
# RUNS/<row>/model and RUNS/<row>/eval/metrics.json; benchmarks/ablation_table.py makes the table.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:?dataset folder (microforge data synth --out DATA)}
RUNS=${2:?folder for the runs}
shift 2
REGRESSOR=src/microforge/checkpoints/ti-sem-tiny/regressor
EVAL=(-n 200 --n-reference 200 --n-describe 50 --regressor "$REGRESSOR" --quiet)
mkdir -p "$RUNS"
for cfg in benchmarks/ablation/*.yaml; do
    row=$(basename "$cfg" .yaml)
    model="$RUNS/$row/model"
    if [ ! -f "$model/config.json" ]; then
        if [ "$row" = a-kl64-eps ] && [ ! -d "$model" ]; then  # the bundled model's autoencoders, trained with this config's sections
            mkdir -p "$model/.done"
            for part in vae_image vae_map; do
                cp -r "src/microforge/checkpoints/ti-sem-tiny/$part" "$model/"
                echo '{"steps": "reused from the bundled ti-sem-tiny", "seconds_this_run": 0.0, "processes": 1}' > "$model/.done/$part.json"
            done
        fi
        start=$SECONDS
        python -m microforge train tim3 --data "$DATA" --config "$cfg" --out "$model" --resume --quiet
        echo "{\"row\": \"$row\", \"train_seconds_this_run\": $((SECONDS - start))}" > "$RUNS/$row/train_time.json"
    fi
    [ -f "$RUNS/$row/eval/metrics.json" ] || python -m microforge evaluate --model "$model" --data "$DATA" --report "$RUNS/$row/eval" "${EVAL[@]}"
done
for extra in "$@"; do
    row=${extra%%=*}; model=${extra#*=}
    [ -f "$RUNS/$row/eval/metrics.json" ] || python -m microforge evaluate --model "$model" --data "$DATA" --report "$RUNS/$row/eval" "${EVAL[@]}"
done
echo "ablation done: $RUNS"
