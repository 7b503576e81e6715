#!/usr/bin/env bash
# Data-parallel scaling on this machine: training tokens/s of the benchmark architectures
# (configs/bench/) at d_model 128 and 512, T 256, a global batch of 16 sequences (4096 tokens a
# step), trained four ways:
#   1p x 1t   one process, 1 OpenMP thread            (the baseline)
#   1p x 2t   one process, 2 threads                   (what hlab does without MPI)
#   2r x 1t   mpirun -np 2, 1 thread each, --bucket-mb 4: buckets all-reduced during backward
#   2r nb     the same with --bucket-mb 0: one all-reduce after backward (no overlap)
# The four run in turn, ROUNDS times (default 2), and each keeps its best tokens/s: this machine's
# speed drifts by tens of percent over minutes, so one pass per mode would compare the drift.
# Prints a Markdown table (tokens/s, speed-up over 1p x 1t, share of the step spent waiting for
# the all-reduce) and records every run in results/mpi_scaling.db (runs.ranks / threads / blas_core).
# Half an hour on this machine, which should be otherwise idle.
#   usage: [ROUNDS=N] experiments/mpi_scaling.sh [ARCH...]   (default: attention mamba1 mamba2 jamba zamba2)
set -eu
cd "$(dirname "$0")/.."
make -s hlab build/hlab-mpi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
db=results/mpi_scaling.db
archs=${*:-attention mamba1 mamba2 jamba zamba2}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# one training run; prints "tokens/s wait%"
run() {   # run MODE ARCH D STEPS
  local mode=$1 arch=$2 d=$3 steps=$4
  local sets=(--set model.d_model=$d --set data.seq_len=256 --set train.batch_size=16 --set train.steps=$steps
              --set train.log_every=$steps --set eval.every=0 --set eval.max_examples=4 --set train.warmup_steps=0)
  case $mode in
    1x1) OMP_NUM_THREADS=1 ./hlab train configs/bench/$arch.yaml "${sets[@]}" --set train.threads=1 --db $db > "$log" 2>&1 ;;
    1x2) ./hlab train configs/bench/$arch.yaml "${sets[@]}" --set train.threads=2 --db $db > "$log" 2>&1 ;;
    2x1) mpirun -np 2 build/hlab-mpi train configs/bench/$arch.yaml "${sets[@]}" --set train.threads=1 --bucket-mb 4 --db $db > "$log" 2>&1 ;;
    2nb) mpirun -np 2 build/hlab-mpi train configs/bench/$arch.yaml "${sets[@]}" --set train.threads=1 --bucket-mb 0 --db $db > "$log" 2>&1 ;;
  esac
  local tps wait
  tps=$(sed -n 's/^trained .*(\([0-9]*\) tokens\/s)$/\1/p' "$log")
  wait=$(sed -n 's/^gradient all-reduce: .*(\([0-9.]*\)% of training)$/\1/p' "$log")
  echo "${tps:-failed} ${wait:--}"
}

./hlab version | sed -n 2,4p
build/hlab-mpi version | sed -n 4p
echo
echo "| arch | d_model | params | 1p x 1t tok/s | 1p x 2t | 2r x 1t, 4 MB buckets | 2r x 1t, one all-reduce | 2r: waiting for the all-reduce (4 MB / one) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
best() { [ "$1" = failed ] && echo "$2" || { [ "$2" = failed ] || [ "$1" -ge "$2" ] && echo "$1" || echo "$2"; }; }
for arch in $archs; do
  for d in 128 512; do
    steps=$([ $d = 128 ] && echo 20 || echo 5)
    a=failed; b=failed; c=failed; e=failed; w=-; we=-
    for r in $(seq 1 "${ROUNDS:-2}"); do
      read -r x _ <<< "$(run 1x1 $arch $d $steps)"; a=$(best "$a" "$x")
      read -r x _ <<< "$(run 1x2 $arch $d $steps)"; b=$(best "$b" "$x")
      read -r x y <<< "$(run 2x1 $arch $d $steps)"; [ "$(best "$c" "$x")" = "$x" ] && w=$y; c=$(best "$c" "$x")
      read -r x y <<< "$(run 2nb $arch $d $steps)"; [ "$(best "$e" "$x")" = "$x" ] && we=$y; e=$(best "$e" "$x")
    done
    params=$(./hlab info configs/bench/$arch.yaml --set model.d_model=$d --json 2>/dev/null | sed -n 's/.*"params_total": *\([0-9.e+]*\).*/\1/p' | head -1)
    printf "| %s | %d | %s | %s | %s (%.2fx) | %s (%.2fx) | %s (%.2fx) | %s%% / %s%% |\n" $arch $d "${params:-?}" "$a" \
      "$b" "$(echo "$b / $a" | bc -l)" "$c" "$(echo "$c / $a" | bc -l)" "$e" "$(echo "$e / $a" | bc -l)" "$w" "$we"
  done
done
