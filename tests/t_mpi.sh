#!/usr/bin/env bash
# Data-parallel training over MPI (build/hlab-mpi, `make MPI=1`'s binary) under `mpirun -np 2`:
# the loss curve and gradient norms match a single process training the same global batch
# (even, uneven and MoE splits), only rank 0 records the run, the ranks agree to stop on a signal
# that reaches one of them, an MPI run resumes bitwise equal to an uninterrupted one, and bad
# starts (a batch smaller than the ranks, rank 0's store unusable, a command other than train,
# the plain build under mpirun) end every rank with a message instead of hanging.
set -u
GROUP=mpi
source "$(dirname "$0")/lib.sh"
M="$PWD/build/hlab-mpi"
export OMP_NUM_THREADS=1
# root (CI containers): Open MPI refuses to start without both of these
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# --oversubscribe: two ranks even where fewer cores are free; a minute at most per launch, so a
# hang is a failure rather than a stuck CI
mpi() { timeout 120 mpirun --oversubscribe -np "$@"; }
if ! command -v mpirun > /dev/null || [ ! -x "$M" ]; then
  bad "mpirun or build/hlab-mpi missing (make test builds it and installs Open MPI)"; echo "$pass passed, $fail failed"; exit 1
fi

cat > "$tmp/h.yaml" <<'Y'
seed: 3
model: {d_model: 48, vocab_size: 256, pattern: "M-*-M-", attention: {heads: 2, rope: true}, mamba: {d_state: 8}, mlp: {hidden: 96}}
data: {task: bytes, seq_len: 64, bytes: {path: /usr/share/common-licenses, valid_frac: 0.05, test_frac: 0.05}}
train: {batch_size: 8, steps: 30, lr: 3e-3, log_every: 1, threads: 1, checkpoint_every: 10}
eval: {every: 0, max_examples: 16}
Y
# MQAR with a varying number of key-value pairs: ranks hold different label counts, so averaging
# the ranks' mean losses (instead of dividing by the global count) would show
cat > "$tmp/q.yaml" <<'Y'
seed: 5
model: {d_model: 32, vocab_size: 256, pattern: "M-*-", attention: {heads: 2}, mamba: {version: 2, d_state: 8, headdim: 16}, mlp: {hidden: 64}}
data: {mix: "niah:1,mqar:1", seq_len: 64, mqar: {num_kv_pairs: 8, train_examples: 256, valid_examples: 16, test_examples: 16},
       niah: {train_lengths: "64", eval_lengths: "64", depths: "0,50,100", samples: 4}}
train: {batch_size: 5, steps: 20, lr: 3e-3, log_every: 1, threads: 1}
eval: {every: 0}
Y
cat > "$tmp/moe.yaml" <<'Y'
seed: 7
model: {d_model: 32, vocab_size: 128, layers: 4, ratio: "1:3", moe_period: 2, moe_offset: 1, attention: {heads: 2, rope: false},
        moe: {experts: 4, top_k: 2, aux_loss_coef: 0.01}, mamba: {d_state: 8}}
data: {task: mqar, seq_len: 64, mqar: {num_kv_pairs: 4, train_examples: 256, valid_examples: 16, test_examples: 16}}
train: {batch_size: 8, steps: 20, lr: 3e-3, log_every: 1, threads: 1}
eval: {every: 0}
Y

metric() { sqlite3 "$1" "select step, printf('%.17g', value) from metrics where name = '$2' order by step"; }
# the largest relative difference of metric $3 between stores $1 and $2 over steps <= $4, or
# "missing" unless both have every step 1..$4
maxrel() {
  sqlite3 "$1" "attach '$2' as o; select case when count(*) = $4 then printf('%.3g', max(abs(a.value - b.value) / abs(a.value)))
                else 'missing' end from metrics a join o.metrics b on a.step = b.step and a.name = b.name
                where a.name = '$3' and a.step <= $4"
}
lt() { [[ "$1" =~ ^[0-9.e+-]+$ ]] && awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 < b + 0) }'; }

# 1. the same global batch on one process and on two ranks
for c in h q moe; do
  $H train "$tmp/$c.yaml" --db "$tmp/$c-1.db" --quiet > "$tmp/$c-1.log" 2>&1; rc1=$?
  mpi 2 "$M" train "$tmp/$c.yaml" --db "$tmp/$c-2.db" > "$tmp/$c-2.log" 2>&1; rc2=$?
  check "$c: one process and mpirun -np 2 both train (exit $rc1, $rc2)" "[ $rc1 = 0 ] && [ $rc2 = 0 ]"
done
# float32 sums in another order: 1e-9..1e-7 relative at step 1, about 1e-8 after 30 Adam steps here
l1=$(maxrel "$tmp/h-1.db" "$tmp/h-2.db" train_loss 1); g1=$(maxrel "$tmp/h-1.db" "$tmp/h-2.db" grad_norm 1)
lN=$(maxrel "$tmp/h-1.db" "$tmp/h-2.db" train_loss 30); gN=$(maxrel "$tmp/h-1.db" "$tmp/h-2.db" grad_norm 30)
check "bytes LM, 4+4 rows: step-1 loss and gradient norm equal within 1e-6 (rel. diff $l1, $g1)" "lt '$l1' 1e-6 && lt '$g1' 1e-6"
check "bytes LM: the loss curve over 30 steps within 1e-4 (largest rel. diff $lN; gradient norm $gN)" "lt '$lN' 1e-4 && lt '$gN' 1e-3"
l1=$(maxrel "$tmp/q-1.db" "$tmp/q-2.db" train_loss 1); g1=$(maxrel "$tmp/q-1.db" "$tmp/q-2.db" grad_norm 1)
lN=$(maxrel "$tmp/q-1.db" "$tmp/q-2.db" train_loss 20)
check "MQAR mixture, uneven 2+3 rows and label counts: step-1 loss and gradient norm within 1e-6 ($l1, $g1)" "lt '$l1' 1e-6 && lt '$g1' 1e-6"
check "MQAR mixture: the loss curve over 20 steps within 1e-4 ($lN)" "lt '$lN' 1e-4"
# MoE: the forward loss is the same; the load-balancing term is each rank's own (averaged), so the
# gradient differs by a little of that term, not by the cross-entropy's
l1=$(maxrel "$tmp/moe-1.db" "$tmp/moe-2.db" train_loss 1); g1=$(maxrel "$tmp/moe-1.db" "$tmp/moe-2.db" grad_norm 1)
lN=$(maxrel "$tmp/moe-1.db" "$tmp/moe-2.db" train_loss 20)
check "MoE (Jamba-style 1:3): step-1 loss within 1e-6 ($l1), gradient norm within 1e-2 ($g1)" "lt '$l1' 1e-6 && lt '$g1' 1e-2"
check "MoE: the loss curve over 20 steps within 1e-2 ($lN)" "lt '$lN' 1e-2"
check "a wrong gradient would show: two seeds differ by far more than these tolerances" \
  "$H train '$tmp/h.yaml' --db '$tmp/h-seed.db' --set seed=4 --quiet > /dev/null 2>&1 && ! lt \"\$(maxrel '$tmp/h-1.db' '$tmp/h-seed.db' grad_norm 1)\" 1e-3"

# final scores: the ranks evaluate every other batch and add the counts up like one process
ev() { sqlite3 "$1" "attach '$2' as o; select count(*), max(abs(a.value - b.value) / max(abs(a.value), 1e-9)), sum(a.count != b.count)
                      from evals a join o.evals b using (task, split, slice, metric) where a.split != 'train'"; }
e=$(ev "$tmp/h-1.db" "$tmp/h-2.db"); eq=$(ev "$tmp/q-1.db" "$tmp/q-2.db")
check "final valid/test scores split over the ranks: same example counts, values within 1e-5 (rows|max rel|count diffs: $e; mixture $eq)" \
  "echo '$e' | awk -F'|' '{ exit !(\$1 >= 6 && \$2 < 1e-5 && \$3 == 0) }' && echo '$eq' | awk -F'|' '{ exit !(\$1 >= 12 && \$2 < 1e-5 && \$3 == 0) }'"

# 2. only rank 0 records: one run, ranks 2, the same rows as the one-process run, one checkpoint
check "one run row, ranks = 2, threads = 1, done" "[ \"\$(sqlite3 '$tmp/h-2.db' 'select count(*), max(ranks), max(threads), max(status) from runs')\" = '1|2|1|done' ]"
check "the same metric and eval rows as one process" \
  "[ \"\$(sqlite3 '$tmp/h-2.db' 'select name, step from metrics order by 1, 2; select task, split, metric from evals order by 1, 2, 3')\" = \"\$(sqlite3 '$tmp/h-1.db' 'select name, step from metrics order by 1, 2; select task, split, metric from evals order by 1, 2, 3')\" ]"
check "one training checkpoint, rank 0's, with hlab.ranks = 2" \
  "[ \"\$(ls '$tmp/checkpoints' | grep -c h-2)\" = 1 ] && grep -a -q '\"hlab.ranks\":\"2\"' '$tmp/checkpoints/h-2-run1.safetensors'"
check "rank 0 prints the split and the all-reduce's cost" "grep -q 'data parallel: 2 MPI ranks' '$tmp/h-2.log' && grep -q 'gradient all-reduce:' '$tmp/h-2.log'"
check "two MPI runs are bitwise equal (the determinism contract, per rank count)" \
  "mpi 2 '$M' train '$tmp/h.yaml' --db '$tmp/h-2b.db' --quiet > /dev/null 2>&1 && [ \"\$(metric '$tmp/h-2.db' train_loss)\" = \"\$(metric '$tmp/h-2b.db' train_loss)\" ]"
# all ranks on one node: by default one all-reduce after backward; small buckets overlap it
check "default on one node: one all-reduce per step (30 for 30 steps)" "grep -q 'summed after backward' '$tmp/h-2.log' && grep -q 'all-reduce: 30 buckets' '$tmp/h-2.log'"
mpi 2 "$M" train "$tmp/h.yaml" --db "$tmp/h-2c.db" --bucket-mb 0.02 > "$tmp/h-2c.log" 2>&1
nb=$(sed -n 's/^gradient all-reduce: \([0-9]*\) buckets.*/\1/p' "$tmp/h-2c.log")
check "--bucket-mb 0.02: $nb buckets in 30 steps, sent during backward" "[ '$nb' -gt 90 ] 2>/dev/null && grep -q 'during backward in buckets of 0.02 MB' '$tmp/h-2c.log'"
check "overlapped buckets give bitwise the same curve as one all-reduce after backward" \
  "[ \"\$(metric '$tmp/h-2.db' grad_norm)\" = \"\$(metric '$tmp/h-2c.db' grad_norm)\" ] && [ -n \"\$(metric '$tmp/h-2c.db' grad_norm)\" ]"

check "early stopping under MPI: every rank stops at the first validation (step 5), rank 0 records it" \
  "mpi 2 '$M' train '$tmp/h.yaml' --db '$tmp/early.db' --set eval.every=5 --set eval.early_stop=0.001 --quiet > /dev/null 2>&1 &&
   [ \"\$(sqlite3 '$tmp/early.db' \"select status, (select max(step) from metrics) from runs\")\" = 'done|5' ]"

# 3. a signal to one rank: both stop at the same step, rank 0 checkpoints, the run resumes under
# MPI and ends bitwise equal to the uninterrupted MPI run
# the same model, trained long enough to be stopped midway
sed 's/steps: 30,/steps: 400,/; s/checkpoint_every: 10/checkpoint_every: 50/' "$tmp/h.yaml" > "$tmp/long.yaml"
mpi 2 "$M" train "$tmp/long.yaml" --db "$tmp/ref.db" --quiet > /dev/null 2>&1
mpi 2 "$M" train "$tmp/long.yaml" --db "$tmp/sig.db" --quiet > "$tmp/sig.log" 2>&1 &
mp=$!
for i in $(seq 1 1000); do [ -e "$tmp/checkpoints/sig-run1.safetensors" ] && break; sleep 0.02; done
# rank 1 (of mpirun's children, the one whose environment says so)
r1=""; for p in $(pgrep -f "hlab-mpi train $tmp/long.yaml --db $tmp/sig.db"); do
  tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1' && r1=$p
done
[ -n "$r1" ] && kill -TERM "$r1"
wait $mp; rc=$?
st=$(sqlite3 "$tmp/sig.db" "select status || '|' || error from runs")
check "SIGTERM to rank 1 only: the run is 'interrupted' and mpirun fails (exit $rc; $st)" \
  "[ -n '$r1' ] && [ $rc != 0 ] && echo '$st' | grep -q '^interrupted|interrupted by a signal to another MPI rank'"
step=$(echo "$st" | sed -n 's/.*at step \([0-9]*\).*/\1/p')
check "the ranks agreed on the step ($step): the checkpoint and the last metric are at it" \
  "[ -n '$step' ] && [ \"\$(sqlite3 '$tmp/sig.db' \"select max(step) from metrics where name = 'train_loss'\")\" = '$step' ]"
# the same interrupted state continued by one process: the same global batches, so the same run
# within tolerance (a copy of the store and checkpoint, before the MPI resume overwrites them)
cp "$tmp/sig.db" "$tmp/one.db"; cp "$tmp/checkpoints/sig-run1.safetensors" "$tmp/sig-ckpt.st"
$H train --resume "$tmp/sig-ckpt.st" --db "$tmp/one.db" > "$tmp/one.log" 2>&1; rc=$?
lN=$(maxrel "$tmp/ref.db" "$tmp/one.db" train_loss 400)
check "one process resumes the MPI checkpoint (exit $rc), warns, and stays within 1e-2 of the MPI run to step 400 ($lN)" \
  "[ $rc = 0 ] && grep -q 'written by 2 ranks' '$tmp/one.log' && lt '$lN' 1e-2"
mpi 2 "$M" train --resume 1 --db "$tmp/sig.db" > "$tmp/resume.log" 2>&1; rc=$?
check "mpirun -np 2 hlab train --resume 1 finishes it (exit $rc)" "[ $rc = 0 ] && [ \"\$(sqlite3 '$tmp/sig.db' 'select status from runs')\" = done ]"
check "the resumed curve is bitwise the uninterrupted MPI run's (400 steps of loss and gradient norm)" \
  "[ \"\$(metric '$tmp/sig.db' train_loss; metric '$tmp/sig.db' grad_norm)\" = \"\$(metric '$tmp/ref.db' train_loss; metric '$tmp/ref.db' grad_norm)\" ] && [ \$(metric '$tmp/sig.db' train_loss | wc -l) = 400 ]"

# 4. bad starts end every rank, with the reason, within the timeout
mpi 2 "$M" train "$tmp/h.yaml" --db none --set train.batch_size=1 > "$tmp/b1.log" 2>&1; rc=$?
check "a batch smaller than the ranks: exit 2 ($rc) and says so" "[ $rc = 2 ] && grep -q 'smaller than the 2 MPI ranks' '$tmp/b1.log'"
mkdir -p "$tmp/adir"
mpi 2 "$M" train "$tmp/h.yaml" --db "$tmp/adir" > "$tmp/b2.log" 2>&1; rc=$?
check "rank 0 cannot open its store: every rank stops (exit $rc, not 124 = hung)" "[ $rc != 0 ] && [ $rc != 124 ] && grep -q 'run store' '$tmp/b2.log'"
mpi 2 "$M" runs --db "$tmp/h-2.db" > "$tmp/b3.log" 2>&1; rc=$?
check "commands other than train refuse several ranks (exit $rc)" "[ $rc = 2 ] && grep -q 'only .hlab train. runs on several MPI ranks' '$tmp/b3.log'"
mpi 2 "$H" train "$tmp/h.yaml" --db "$tmp/plain2.db" > "$tmp/b4.log" 2>&1; rc=$?
check "the plain build under mpirun -np 2 refuses to train twice (exit $rc)" \
  "[ $rc = 2 ] && grep -q 'built without MPI' '$tmp/b4.log' && [ ! -s '$tmp/plain2.db' ]"
check "mpirun -np 1 with the MPI build is an ordinary run, bitwise the plain build's" \
  "mpi 1 '$M' train '$tmp/h.yaml' --db '$tmp/h-1b.db' --quiet > /dev/null 2>&1 && [ \"\$(metric '$tmp/h-1.db' grad_norm)\" = \"\$(metric '$tmp/h-1b.db' grad_norm)\" ]"
check "the MPI build without a launcher is an ordinary run too" \
  "'$M' train '$tmp/h.yaml' --db '$tmp/h-1c.db' --quiet > /dev/null 2>&1 && [ \"\$(metric '$tmp/h-1.db' train_loss)\" = \"\$(metric '$tmp/h-1c.db' train_loss)\" ]"
# the all-reduce benchmark: a row per size from 16 KB to 64 MB, positive times
mpi 2 "$M" bench allreduce > "$tmp/ar.log" 2>&1; rc=$?
check "mpirun -np 2 hlab bench allreduce: 7 sizes, positive times and bandwidths (exit $rc)" \
  "[ $rc = 0 ] && [ \$(awk '\$1 ~ /^[0-9]+$/ && \$2 > 0 && \$3 > 0 && \$4 > 0 && \$5 > 0' '$tmp/ar.log' | wc -l) = 7 ]"
check "bench allreduce on one process or without MPI: exit 2 with the reason" \
  "! '$M' bench allreduce 2> '$tmp/ar1.err' && grep -q 'nothing to all-reduce' '$tmp/ar1.err' && ! $H bench allreduce 2> '$tmp/ar2.err' && grep -q 'built without MPI' '$tmp/ar2.err'"
echo "$pass passed, $fail failed"
[ $fail = 0 ]
