#!/usr/bin/env bash
# End-to-end tests of `hlab sweep`: the plan, skipping what is done, restarting after SIGKILL,
# several sweeps on one store at once, --jobs, shards that partition the plan, and experiment
# files with mistakes (exit 2, located, nothing written).
set -u
cd "$(dirname "$0")/.."
H="$PWD/hlab"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok()   { echo "ok   sweep: $1"; pass=$((pass+1)); }
bad()  { echo "FAIL sweep: $1"; fail=$((fail+1)); }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
export OMP_NUM_THREADS=1

cat > "$tmp/base.yaml" <<'Y'
seed: 3
model: {d_model: 16, vocab_size: 64, pattern: "M-*-", attention: {heads: 2}, mamba: {d_state: 4}, mlp: {hidden: 24}}
data: {task: mqar, seq_len: 32, mqar: {num_kv_pairs: 4, train_examples: 256, valid_examples: 32, test_examples: 32}}
train: {batch_size: 8, steps: 10, lr: 3e-3, log_every: 5}
Y
cat > "$tmp/exp.yaml" <<'Y'
name: tiny
base: base.yaml
set: {train.steps: 6}
variants:
  attention: {model.pattern: "*-*-"}
  hybrid:
grid: {data.mqar.num_kv_pairs: [2, 4]}
seeds: [1, 2]
Y
db="$tmp/s.db"

$H sweep "$tmp/exp.yaml" --db "$db" --dry-run > "$tmp/plan" 2>&1; rc=$?
check "dry run prints 8 planned runs (exit $rc)" "[ $rc = 0 ] && grep -q '^experiment tiny: 8 runs (2 variants x 2 data.mqar.num_kv_pairs x 2 seeds)' '$tmp/plan' && [ \$(grep -c pending '$tmp/plan') = 8 ]"
check "a dry run creates no store" "[ ! -e '$db' ]"
$H sweep "$tmp/exp.yaml" --db "$db" > "$tmp/out1" 2>&1; rc=$?
n=$(sqlite3 "$db" "select count(*) || '|' || count(distinct identity) || '|' || group_concat(distinct status) from runs")
check "the sweep trains all 8 runs, one row each (exit $rc, $n)" "[ $rc = 0 ] && [ '$n' = '8|8|done' ]"
v=$(sqlite3 "$db" "select count(*) from runs r join experiments e on e.id = r.experiment_id where e.name = 'tiny' and r.variant in ('attention', 'hybrid')")
check "runs carry the experiment and variant names ($v)" "[ '$v' = 8 ]"
v=$(sqlite3 "$db" "select count(distinct value_num) from params where key = 'data.mqar.num_kv_pairs'")
check "the grid axis reached the runs' configs ($v values)" "[ '$v' = 2 ]"
$H sweep "$tmp/exp.yaml" --db "$db" > "$tmp/out2" 2>&1; rc=$?
check "the same sweep again trains nothing (exit $rc)" "[ $rc = 0 ] && grep -q '^0 to train, 8 done' '$tmp/out2' && ! grep -q training '$tmp/out2'"

# SIGKILL in the middle of a run: the next sweep trains the killed run and the rest, nothing else
sed 's/train.steps: 6/train.steps: 3000/' "$tmp/exp.yaml" > "$tmp/slow.yaml"
sk="$tmp/kill.db"
$H sweep "$tmp/slow.yaml" --db "$sk" > "$tmp/k1" 2>&1 &
pid=$!
for i in $(seq 1 200); do   # until the second run is being trained
  [ "$(sqlite3 "$sk" "select count(*) from runs" 2>/dev/null)" = 2 ] && break; sleep 0.1
done
sleep 0.3
kill -9 $pid; wait $pid 2>/dev/null
first=$(sqlite3 "$sk" "select started_at || status from runs where id = 1")
v=$(sqlite3 "$sk" "select group_concat(status) from runs order by id")
check "killed during the second run: one done, one left 'running' ($v)" "[ '$v' = 'done,running' ]"
# the same experiment (the identities need the same configs), to the end this time
$H sweep "$tmp/slow.yaml" --db "$sk" > "$tmp/k2" 2>&1; rc=$?
n=$(sqlite3 "$sk" "select count(*) || '|' || count(distinct identity) || '|' || group_concat(distinct status) from runs")
check "the next sweep finishes: 8 rows, all done (exit $rc, $n)" "[ $rc = 0 ] && [ '$n' = '8|8|done' ]"
check "it did not train the finished run again" "[ \"\$(sqlite3 '$sk' \"select started_at || status from runs where identity = (select identity from runs order by started_at limit 1)\")\" = '$first' ] && [ \$(grep -c ': training' '$tmp/k2') = 7 ] && grep -q 'training (run [0-9]*, again)' '$tmp/k2'"
check "integrity_check ok after the kill" "[ \"\$(sqlite3 '$sk' 'pragma integrity_check')\" = ok ]"

# four sweeps of one experiment into one store at once, and --jobs
c="$tmp/c.db"
for i in 1 2 3 4; do $H sweep "$tmp/exp.yaml" --db "$c" --quiet > "$tmp/c$i" 2>&1 & done
wait
n=$(sqlite3 "$c" "select count(*) || '|' || count(distinct identity) || '|' || group_concat(distinct status) from runs")
check "4 concurrent sweeps: exactly one row per run, all done ($n)" "[ '$n' = '8|8|done' ]"
check "4 concurrent sweeps: integrity_check ok" "[ \"\$(sqlite3 '$c' 'pragma integrity_check')\" = ok ]"
check "no sweep met a lock error" "! grep -qi 'locked\\|busy' '$tmp'/c[1-4]"
j="$tmp/j.db"
$H sweep "$tmp/exp.yaml" --db "$j" --jobs 2 > "$tmp/j" 2>&1; rc=$?
n=$(sqlite3 "$j" "select count(*) || '|' || count(distinct identity) || '|' || group_concat(distinct status) from runs")
check "--jobs 2: two workers, one row per run (exit $rc, $n)" "[ $rc = 0 ] && [ '$n' = '8|8|done' ] && grep -q '^\[w2\]' '$tmp/j'"
v=$(sqlite3 "$j" "select count(*) from runs a join runs b on a.identity = b.identity and a.id < b.id")
check "--jobs 2: no run trained twice ($v duplicates)" "[ '$v' = 0 ]"

# shards partition the plan exactly
for i in 0 1 2; do $H sweep "$tmp/exp.yaml" --db "$tmp/none.db" --shard $i/3 --dry-run | awk '/^ +[0-9]+ /{print $1}' > "$tmp/sh$i"; done
all=$(cat "$tmp"/sh[0-2] | sort -n | tr '\n' ' ')
dup=$(cat "$tmp"/sh[0-2] | sort -n | uniq -d | wc -l)
check "shards 0/3, 1/3, 2/3 cover runs 0..7 once each ($all)" "[ '$all' = '0 1 2 3 4 5 6 7 ' ] && [ $dup = 0 ]"

# mistakes in experiment files: exit 2, a located message, no store written
bad_exp() {   # name, yaml body, expected message part
  printf '%s\n' "$2" > "$tmp/bad.yaml"
  $H sweep "$tmp/bad.yaml" --db "$tmp/bad.db" > /dev/null 2> "$tmp/err"; local rc=$?
  check "$1: exit 2 and \"$3\" ($(head -c 160 "$tmp/err"))" "[ $rc = 2 ] && grep -qF -- '$3' '$tmp/err' && [ ! -e '$tmp/bad.db' ]"
}
bad_exp "unknown top-level key" $'base: base.yaml\nvariant: {}' "bad.yaml:2:1: unknown key \"variant\""
bad_exp "missing base" $'variants: {a: {}}' "base: missing"
bad_exp "base file not found" $'base: nope.yaml' "cannot read"
bad_exp "unknown config key in a variant" $'base: base.yaml\nvariants:\n  a: {model.d_modle: 32}' "bad.yaml:3:7: variant a: model.d_modle: unknown key"
bad_exp "wrong type in the grid" $'base: base.yaml\ngrid: {train.batch_size: [8, many]}' "bad.yaml:2:8: variant base"
bad_exp "zipped axes of unequal length" $'base: base.yaml\nzip: {data.seq_len: [32, 64], data.mqar.num_kv_pairs: [2]}' "give them equal lengths"
bad_exp "a list outside grid/zip" $'base: base.yaml\nset: {seed: [1, 2]}' "lists belong in grid: or zip:"
bad_exp "unknown baseline" $'base: base.yaml\nvariants: {a: {}}\nbaseline: b' "baseline: \"b\" is not one of the variants"
bad_exp "duplicate variant" $'base: base.yaml\nvariants:\n  a: {}\n  a: {}' "a is given twice"
bad_exp "a model that cannot be built" $'base: base.yaml\nvariants:\n  a: {model.pattern: "MQ"}' "variant a"
bad_exp "YAML syntax" $'base: base.yaml\nvariants: {a: [' "YAML syntax"
$H sweep "$tmp/exp.yaml" --shard 3/3 > /dev/null 2>&1; rc=$?
check "--shard 3/3 refused: exit 2 ($rc)" "[ $rc = 2 ]"

echo "$pass passed, $fail failed"
