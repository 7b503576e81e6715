#!/usr/bin/env bash
# Trains every ablation experiment into one store (results/ablations.db) and writes its report
# under reports/. The sweeps train only what the store lacks, and runs with the same config and
# seed are shared between experiments (jamba-rope reuses jamba-ratio's hybrid and transformer),
# so a second call only rewrites the reports. About 90 minutes on 2 cores from an empty store.
#   bash experiments/ablations.sh [EXPERIMENT...]     (default: all of them)
set -euo pipefail
cd "$(dirname "$0")/.."
make -s all
db=results/ablations.db
exps=("$@")
[ ${#exps[@]} -gt 0 ] || exps=(jamba-ratio jamba-rope jamba-moe jamba-icl zamba-shared mamba-versions niah-lengths context-scaling mqar-width)
for e in "${exps[@]}"; do
    ./hlab sweep "experiments/$e.yaml" --db "$db" --jobs 2 --quiet
    ./hlab report "experiments/$e.yaml" --db "$db"
done
