#!/usr/bin/env bash
# End-to-end tests of ./hlab: determinism (bitwise-identical checkpoints), checkpoint round trip
# through `hlab forward` and `--init`, the run store, `hlab info`, and bad input (exit 2, nothing
# written). Prints one line per check and "N passed, N failed".
set -u
GROUP=cli
source "$(dirname "$0")/lib.sh"

cat > "$tmp/tiny.yaml" <<'Y'
seed: 3
model: {d_model: 16, vocab_size: 64, pattern: "M-*-", attention: {heads: 2, rope: true}, mamba: {d_state: 4}, mlp: {hidden: 24}}
data: {task: mqar, seq_len: 32, mqar: {num_kv_pairs: 4, train_examples: 512, valid_examples: 64, test_examples: 64}}
train: {batch_size: 8, steps: 12, lr: 3e-3, log_every: 4}
Y

# determinism: same config, seed and threads -> bitwise identical weights
for i in 1 2; do
  OMP_NUM_THREADS=2 $H train "$tmp/tiny.yaml" --set train.threads=2 --db "$tmp/runs.db" --out "$tmp/w$i.safetensors" --quiet > "$tmp/out$i" 2>&1
done
check "two identical runs write bitwise identical checkpoints" "cmp -s '$tmp/w1.safetensors' '$tmp/w2.safetensors'"
$H train "$tmp/tiny.yaml" --set seed=4 --db none --out "$tmp/w3.safetensors" --quiet > /dev/null 2>&1
check "another seed gives other weights" "! cmp -s '$tmp/w1.safetensors' '$tmp/w3.safetensors'"
$H train "$tmp/tiny.yaml" --set train.threads=1 --db none --out "$tmp/t1a.safetensors" --quiet > /dev/null 2>&1
$H train "$tmp/tiny.yaml" --set train.threads=1 --db none --out "$tmp/t1b.safetensors" --quiet > /dev/null 2>&1
check "one thread: identical again" "cmp -s '$tmp/t1a.safetensors' '$tmp/t1b.safetensors'"

# the run store recorded both runs, their params as numbers, metrics and evals
n=$(sqlite3 "$tmp/runs.db" "select count(*) from runs where status='done'")
check "run store has 2 finished runs (got $n)" "[ '$n' = 2 ]"
t=$(sqlite3 "$tmp/runs.db" "select typeof(value_num) from params where key='train.lr' limit 1")
check "numeric params stored as numbers (typeof $t)" "[ '$t' = real ]"
m=$(sqlite3 "$tmp/runs.db" "select count(*) from metrics where name='train_loss'")
check "train_loss metrics recorded ($m rows)" "[ '$m' -ge 6 ]"
e=$(sqlite3 "$tmp/runs.db" "select count(*) from evals where split='test' and metric='accuracy'")
check "test accuracy recorded ($e rows)" "[ '$e' = 2 ]"
p=$(sqlite3 "$tmp/runs.db" "select pattern from runs limit 1")
check "canonical pattern stored ($p)" "[ '$p' = 'M-*-' ]"

# forward: loss as JSON, gradients as safetensors with the same tensor names
printf '1 2 3 4 5 6 7 8\n9 10 11 12 13 14 15 16\n' > "$tmp/tok.txt"
$H forward "$tmp/w1.safetensors" --tokens "$tmp/tok.txt" --grads "$tmp/g.safetensors" > "$tmp/fwd.json"
check "forward prints a JSON loss" "grep -q '\"loss\": [0-9]' '$tmp/fwd.json'"
check "forward writes gradients" "[ -s '$tmp/g.safetensors' ]"
$H forward "$tmp/w1.safetensors" --tokens "$tmp/tok.txt" > "$tmp/fwd2.json"
check "forward is repeatable" "cmp -s <(cut -d, -f1 '$tmp/fwd.json') <(cut -d, -f1 '$tmp/fwd2.json')"

# --init from a checkpoint with lr 0 keeps the weights: the forward loss is unchanged
$H train "$tmp/tiny.yaml" --init "$tmp/w1.safetensors" --set train.lr=0 --set train.weight_decay=0 --set train.steps=2 --db none --out "$tmp/w4.safetensors" --quiet > /dev/null 2>&1
$H forward "$tmp/w4.safetensors" --tokens "$tmp/tok.txt" > "$tmp/fwd4.json"
check "--init then lr 0 reproduces the forward loss" "cmp -s <(cut -d, -f1 '$tmp/fwd.json') <(cut -d, -f1 '$tmp/fwd4.json')"

# a checkpoint of another model is refused at --init
cat > "$tmp/other.yaml" <<'Y'
model: {d_model: 16, vocab_size: 64, pattern: "**", attention: {heads: 2}}
data: {task: mqar, seq_len: 32, mqar: {num_kv_pairs: 4, train_examples: 64}}
train: {batch_size: 8, steps: 1}
Y
$H train "$tmp/other.yaml" --init "$tmp/w1.safetensors" --db none --quiet > /dev/null 2> "$tmp/err"; rc=$?
check "wrong-model checkpoint: exit 2 (got $rc)" "[ $rc = 2 ] && grep -q 'missing\|not part of this model' '$tmp/err'"

# bad input: exit 2, a message with file:line:col, nothing written
printf 'model:\n  d_model: 16\n  atention: {heads: 2}\n' > "$tmp/bad.yaml"
$H train "$tmp/bad.yaml" --db "$tmp/bad.db" > /dev/null 2> "$tmp/err"; rc=$?
check "unknown key: exit 2 (got $rc)" "[ $rc = 2 ]"
check "unknown key: file:line:col and did-you-mean" "grep -q 'bad.yaml:3:3' '$tmp/err' && grep -q 'model.attention' '$tmp/err'"
check "bad config writes no database" "[ ! -e '$tmp/bad.db' ]"
$H train "$tmp/tiny.yaml" --set model.pattern='M-X-' --db "$tmp/bad.db" > /dev/null 2> "$tmp/err"; rc=$?
check "bad pattern symbol via --set: exit 2" "[ $rc = 2 ] && grep -q \"'X'\" '$tmp/err'"
$H train "$tmp/tiny.yaml" --set model.attention.heads=3 --db "$tmp/bad.db" > /dev/null 2> "$tmp/err"; rc=$?
check "d_model not divisible by heads: exit 2" "[ $rc = 2 ] && grep -q 'divisible' '$tmp/err'"
$H train "$tmp/tiny.yaml" --bogus 1 > /dev/null 2>&1; rc=$?
check "unknown option: exit 2" "[ $rc = 2 ]"
$H info "$tmp/tiny.yaml" --context abc > /dev/null 2>&1; rc=$?
check "bad --context: exit 2" "[ $rc = 2 ]"
$H train "$tmp/missing.yaml" > /dev/null 2>&1; rc=$?
check "missing config file: exit 2" "[ $rc = 2 ]"
$H forward "$tmp/tok.txt" --tokens "$tmp/tok.txt" > /dev/null 2>&1; rc=$?
check "forward on a non-checkpoint: exit 2" "[ $rc = 2 ]"
check "no database was created by bad input" "[ ! -e '$tmp/bad.db' ]"

# info on a 50B-parameter config answers without allocating it
cat > "$tmp/huge.yaml" <<'Y'
model: {d_model: 8192, vocab_size: 65536, layers: 64, ratio: "1:7", moe_period: 0, attention: {heads: 64, kv_heads: 8}, mlp: {hidden: 28672}}
Y
( ulimit -v 1000000; $H info "$tmp/huge.yaml" --json > "$tmp/huge.json" ); rc=$?
check "info on a huge config runs within 1 GB of address space (exit $rc)" "[ $rc = 0 ]"
check "info reports > 50e9 parameters" "grep -q '\"params_total\": [5-9][0-9]\{10\}' '$tmp/huge.json'"

# data export: JSON Lines a Python user can load, identical on every run, written atomically
$H data export "$tmp/tiny.yaml" --split test --limit 5 --out "$tmp/ex.jsonl" 2> /dev/null
$H data export "$tmp/tiny.yaml" --split test --limit 5 > "$tmp/ex2.jsonl"
check "data export writes 5 lines" "[ \"\$(wc -l < '$tmp/ex.jsonl')\" = 5 ]"
check "data export is repeatable (file and stdout agree)" "cmp -s '$tmp/ex.jsonl' '$tmp/ex2.jsonl'"
line=$(head -1 "$tmp/ex.jsonl")
v=$(sqlite3 :memory: "select json_valid('$line'), json_array_length('$line', '\$.tokens'), (select count(*) from json_each('$line', '\$.targets') where value >= 0), json_extract('$line', '\$.slice.num_kv_pairs')")
check "exported line is valid JSON with 32 tokens, 4 labels, slice num_kv_pairs 4 ($v)" "[ '$v' = '1|32|4|4' ]"
$H data export "$tmp/tiny.yaml" --split nope > /dev/null 2>&1; rc=$?
check "data export with a bad split: exit 2" "[ $rc = 2 ]"
$H data export "$tmp/tiny.yaml" --out "$tmp/nodir/x.jsonl" > /dev/null 2>&1; rc=$?
check "data export to an unwritable place fails and leaves nothing ($rc)" "[ $rc != 0 ] && [ ! -e '$tmp/nodir' ]"

# a mixture of tasks in phases: a curriculum phase, then an annealing phase with its own lr
cat > "$tmp/mix.yaml" <<Y
seed: 3
model: {d_model: 16, vocab_size: 256, pattern: "M-*-", attention: {heads: 2}, mamba: {d_state: 4}, mlp: {hidden: 24}}
data: {mix: "niah:1,mqar:1", seq_len: 32, mqar: {num_kv_pairs: 4, train_examples: 512, valid_examples: 32, test_examples: 32},
       niah: {train_lengths: "64", eval_lengths: "64,128", depths: "0,50,100", samples: 4}}
train: {batch_size: 8, steps: 30, lr: 3e-3, log_every: 10, checkpoint: "$tmp/mix.safetensors"}
phase1: {frac: 0.5, set: "data.mix=mqar:1; data.mqar.train_mix=16:2:256"}
phase2: {frac: 0.5, set: "train.lr=1e-3; train.schedule=cosine"}
Y
$H train "$tmp/mix.yaml" --db "$tmp/mix.db" > "$tmp/mix.out" 2>&1; rc=$?
check "mixture with phases trains (exit $rc)" "[ $rc = 0 ] && grep -q '^phase 2: steps 16..30' '$tmp/mix.out'"
v=$(sqlite3 "$tmp/mix.db" "select count(distinct task) from evals where source = 'train' and split = 'test'")
check "both tasks of the mixture scored on test ($v)" "[ '$v' = 2 ]"
v=$(sqlite3 "$tmp/mix.db" "select checkpoint = '$tmp/mix.safetensors' from runs where id = 1")
check "the run records its checkpoint path ($v)" "[ '$v' = 1 ]"
$H train "$tmp/mix.yaml" --set phase2.set=model.d_model=8 --db "$tmp/badmix.db" > "$tmp/err" 2>&1; rc=$?
check "a phase changing the model: exit 2, nothing written ($rc)" "[ $rc = 2 ] && grep -q 'model.d_model cannot change between phases' '$tmp/err' && [ ! -e '$tmp/badmix.db' ]"

# hlab eval: another task and a longer grid, by run id, recorded cell by cell
$H eval 1 --db "$tmp/mix.db" --task niah --set data.niah.eval_lengths=128,256 --set eval.max_examples=2 > "$tmp/ev.out" 2>&1; rc=$?
check "eval by run id on a longer grid (exit $rc)" "[ $rc = 0 ] && grep -q '\"context\": 256, \"depth\": 100' '$tmp/ev.out'"
v=$(sqlite3 "$tmp/mix.db" "select count(*), sum(count) from evals where run_id = 1 and source like 'eval:%' and metric = 'exact_match' and slice != '{}'")
check "six cells recorded, at most 2 examples each (eval.max_examples is per cell) ($v)" "[ '$v' = '6|12' ]"
$H eval 1 --db "$tmp/mix.db" --task niah --set data.niah.eval_lengths=128,256 --set eval.max_examples=2 > /dev/null 2>&1
v=$(sqlite3 "$tmp/mix.db" "select count(*) from evals where run_id = 1 and source like 'eval:%'")
check "the same evaluation again replaces its rows ($v rows)" "[ '$v' -gt 0 ] && [ '$v' = \"\$(sqlite3 '$tmp/mix.db' \"select count(*) from (select distinct task, split, slice, metric, source from evals where run_id = 1 and source like 'eval:%')\")\" ]"
cp "$tmp/mix.safetensors" "$tmp/copy.safetensors"
$H eval "$tmp/copy.safetensors" --db "$tmp/mix.db" --quiet; rc=$?
v=$(sqlite3 "$tmp/mix.db" "select variant, status from runs where checkpoint = '$tmp/copy.safetensors'")
check "eval of an unknown checkpoint records an imported run (exit $rc, $v)" "[ $rc = 0 ] && [ '$v' = 'imported|done' ]"
$H eval 1 --db "$tmp/mix.db" --set model.d_model=8 > /dev/null 2> "$tmp/err"; rc=$?
check "eval refuses to change the model: exit 2 ($rc)" "[ $rc = 2 ] && grep -q 'only data.\* and eval.\* keys' '$tmp/err'"
$H eval 99 --db "$tmp/mix.db" > /dev/null 2> "$tmp/err"; rc=$?
check "eval of an unknown run: exit 2 ($rc)" "[ $rc = 2 ] && grep -q 'no such run' '$tmp/err'"
$H train "$tmp/tiny.yaml" --db "$tmp/nock.db" --quiet > /dev/null 2>&1
$H eval 1 --db "$tmp/nock.db" > /dev/null 2> "$tmp/err"; rc=$?
check "eval of a run without a checkpoint: exit 2 ($rc)" "[ $rc = 2 ] && grep -q 'wrote no checkpoint' '$tmp/err'"
$H eval 1 --db "$tmp/mix.db" --task zebra > /dev/null 2> "$tmp/err"; rc=$?
check "eval of an unknown task: exit 2 ($rc)" "[ $rc = 2 ] && grep -q 'unknown task' '$tmp/err'"

# the key reference in docs/ is generated from the key tables and must not drift
check "docs/config-keys.md matches ./hlab keys --markdown" "diff -q <(tail -n +7 docs/config-keys.md) <($H keys --markdown) > /dev/null"

# the sgemm yardstick: its table's form (the numbers are the machine's; no test times anything)
$H bench sgemm --quick > "$tmp/bench" 2>&1; rc=$?
check "bench sgemm --quick: header with CPU and BLAS core, one product row of 3 positive GFLOP/s, the peak line (exit $rc)" \
  "[ $rc = 0 ] && grep -q '^sgemm GFLOP/s on .*OpenBLAS core ' '$tmp/bench' && awk '/^square +256 +256 +256/ { ok = \$5 > 0 && \$6 > 0 && \$7 > 0 } END { exit !ok }' '$tmp/bench' && grep -qE '^peak: [0-9.]+ GFLOP/s on 1 thread, [0-9.]+ on [0-9]+ threads' '$tmp/bench'"
$H bench flops > "$tmp/bench2" 2>&1; rc=$?
check "bench with an unknown measurement: exit 2, says what exists" "[ $rc = 2 ] && grep -q 'bench needs what to measure: sgemm, train, generate, suite or allreduce' '$tmp/bench2'"
$H bench train configs/transformer-tiny.yaml configs/mamba2-tiny.yaml --batch 2 --seq 16 --steps 1 --threads 1 > "$tmp/bench3" 2>&1; rc=$?
check "bench train: a row per config with its pattern, B, T and positive tokens/s, GFLOP/s and memory (exit $rc)" \
  "[ $rc = 0 ] && grep -q '^training steps on .*1 thread(s)' '$tmp/bench3' && awk '/^transformer-tiny.yaml +\\*-\\*-\\*-\\*- / && \$4 == 2 && \$5 == 16 && \$6 > 0 && \$7 > 0 && \$9 > 0 { a = 1 } /^mamba2-tiny.yaml +MMMM / && \$6 > 0 { b = 1 } END { exit !(a && b) }' '$tmp/bench3'"
$H bench train configs/nope.yaml > "$tmp/bench4" 2>&1; rc=$?
check "bench train with a missing config: exit 2" "[ $rc = 2 ] && grep -q 'nope.yaml' '$tmp/bench4'"

echo "$pass passed, $fail failed"
