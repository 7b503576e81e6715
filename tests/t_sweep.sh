#!/usr/bin/env bash
# End-to-end tests of `hlab sweep`: the plan, skipping what is done, restarting after SIGKILL,
# several sweeps on one store at once, --jobs, shards that partition the plan, and experiment
# files with mistakes (exit 2, located, nothing written).
set -u
GROUP=sweep
source "$(dirname "$0")/lib.sh"
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

# a learning-rate axis: the sweep reports, per variant and grid point, the lr with the best mean
# validation score over seeds and that lr's test mean +- sd
cat > "$tmp/lr.yaml" <<'Y'
name: lrs
base: base.yaml
set: {train.steps: 40}
variants:
  attention: {model.pattern: "*-*-"}
  hybrid:
grid: {data.mqar.num_kv_pairs: [2, 4]}
seeds: [1, 2]
lr: [1e-4, 1e-2]
Y
$H sweep "$tmp/lr.yaml" --db "$tmp/lr.db" --quiet > "$tmp/lr.out" 2>&1; rc=$?
check "lr sweep: 16 runs, a results table of 4 rows (exit $rc)" "[ $rc = 0 ] && [ \$(grep -c '^\(attention\|hybrid\) .*num_kv_pairs' '$tmp/lr.out') = 4 ]"
okbest=1
while read -r var point lr res pm sd seeds; do
  pairs=${point#*=}
  q="select round(avg(v.value), 9) as m from runs r join params a on a.run_id = r.id and a.key = 'data.mqar.num_kv_pairs' and a.value_num = $pairs
     join params l on l.run_id = r.id and l.key = 'train.lr' join evals v on v.run_id = r.id and v.split = 'valid' and v.metric = 'accuracy'
     and v.slice = '{}' where r.variant = '$var'"
  mine=$(sqlite3 "$tmp/lr.db" "$q and l.value_num = $lr")
  best=$(sqlite3 "$tmp/lr.db" "select max(m) from ($q group by l.value_num)")
  [ -n "$mine" ] && [ "$mine" = "$best" ] && [ "$seeds" = 2 ] || { okbest=0; echo "  $var $point: lr $lr has valid $mine, best $best"; }
done < <(grep '^\(attention\|hybrid\) .*num_kv_pairs' "$tmp/lr.out")
check "each reported lr has the best mean validation accuracy of its group, over 2 seeds" "[ $okbest = 1 ]"

# hlab runs: filters on experiment, variant and any config key (numbers compared as numbers)
n=$($H runs --db "$db" --experiment tiny --variant hybrid | tail -1)
check "runs --variant hybrid lists 4 ($n)" "[ '$n' = '4 runs' ]"
n=$($H runs --db "$db" --where 'data.mqar.num_kv_pairs>=4' --where seed=2 | tail -1)
check "runs --where num_kv_pairs>=4 --where seed=2 lists 2 ($n)" "[ '$n' = '2 runs' ]"
$H runs --db "$db" | grep -q 'mqar:accuracy=' ; rc=$?
check "runs shows each run's test score" "[ $rc = 0 ]"
$H runs --db "$db" --where 'model.d_model<abc' > /dev/null 2>&1; rc=$?
check "runs --where with < on a word: exit 2 ($rc)" "[ $rc = 2 ]"
$H runs --db "$tmp/nope.db" > /dev/null 2>&1; rc=$?
check "runs on a missing store: exit 2, nothing created ($rc)" "[ $rc = 2 ] && [ ! -e '$tmp/nope.db' ]"

# hlab export: CSV that SQLite's own importer reads back row for row
$H export metrics --db "$db" --experiment tiny --out "$tmp/m.csv" 2> /dev/null; rc=$?
v=$(sqlite3 :memory: ".import --csv '$tmp/m.csv' m" "select count(*) from m")
check "export metrics: every metric row (exit $rc, $v of $(sqlite3 "$db" 'select count(*) from metrics'))" "[ $rc = 0 ] && [ '$v' = \"\$(sqlite3 '$db' 'select count(*) from metrics')\" ]"
$H export evals --db "$db" --where seed=1 > "$tmp/e.csv"
v=$(sqlite3 :memory: ".import --csv '$tmp/e.csv' e" "select count(*), count(distinct run_id), max(slice) from e")
w=$(sqlite3 "$db" "select count(*), count(distinct v.run_id), max(slice) from evals v join params p on p.run_id = v.run_id and p.key = 'seed' and p.value_num = 1")
check "export evals with a filter: the same rows as the store ($v = $w)" "[ '$v' = '$w' ]"
$H export runs --db "$db" | head -1 | grep -q '^id,experiment,variant,status'; rc=$?
check "export runs has a header" "[ $rc = 0 ]"
$H export nonsense --db "$db" > /dev/null 2>&1; rc=$?
check "export of an unknown table: exit 2 ($rc)" "[ $rc = 2 ]"

# hlab merge: stores from several machines, no run twice
$H merge "$db" "$j" -o "$tmp/m.db" > "$tmp/merge.out"; rc=$?
n=$(sqlite3 "$tmp/m.db" "select count(*) || '|' || count(distinct identity) from runs")
check "merge of two stores with the same 8 runs: 8 rows (exit $rc, $n)" "[ $rc = 0 ] && [ '$n' = '8|8' ] && grep -q '8 runs copied' '$tmp/merge.out' && grep -q '0 runs copied, 8 already' '$tmp/merge.out'"
$H merge "$sk" "$db" -o "$tmp/m.db" > "$tmp/merge2.out" 2>&1; rc=$?
n=$(sqlite3 "$tmp/m.db" "select count(*) || '|' || count(distinct identity) || '|' || (select count(*) from experiments) from runs")
check "merging more (and the same again) adds only new runs: 16 rows, 1 experiment ($n)" "[ $rc = 0 ] && [ '$n' = '16|16|1' ]"
v=$(sqlite3 "$tmp/m.db" "select count(*) from metrics")
w=$(( $(sqlite3 "$db" "select count(*) from metrics") + $(sqlite3 "$sk" "select count(*) from metrics") ))
check "merged metrics are all there ($v = $w)" "[ '$v' = '$w' ] && [ \"\$(sqlite3 '$tmp/m.db' 'pragma integrity_check')\" = ok ]"
$H merge "$tmp/nope.db" -o "$tmp/m2.db" > /dev/null 2>&1; rc=$?
check "merge of a missing store: exit 2 ($rc)" "[ $rc = 2 ]"

# --emit-slurm: a job-array script; a stand-in sbatch runs its array tasks and then the merge
(cd "$tmp" && $H sweep exp.yaml --emit-slurm --shards 3 --db slurm.db > job.sh); rc=$?
check "emit-slurm writes an array of 3 shards (exit $rc)" "[ $rc = 0 ] && grep -q -- '--array=0-2' '$tmp/job.sh' && grep -q 'shard ..SLURM_ARRAY_TASK_ID/3' '$tmp/job.sh'"
mkdir -p "$tmp/bin"
cat > "$tmp/bin/sbatch" <<'S'
#!/usr/bin/env bash
# stand-in for Slurm: runs --wrap for every array index, in order, and prints a job id
arr=""; wrap=""
for a in "$@"; do case "$a" in --array=*) arr=${a#--array=};; --wrap=*) wrap=${a#--wrap=};; esac; done
if [ -n "$arr" ]; then
  for i in $(seq ${arr%-*} ${arr#*-}); do SLURM_ARRAY_TASK_ID=$i SLURM_CPUS_PER_TASK=1 bash -c "$wrap" > /dev/null 2>&1 || exit 1; done
else bash -c "$wrap" > /dev/null 2>&1 || exit 1; fi
echo 4242
S
chmod +x "$tmp/bin/sbatch"
(cd "$tmp" && PATH="$tmp/bin:$PATH" bash job.sh > slurm.out 2>&1); rc=$?
n=$(sqlite3 "$tmp/slurm.db" "select count(*) || '|' || count(distinct identity) || '|' || group_concat(distinct status) from runs" 2>/dev/null)
check "the Slurm script's shards and merge give all 8 runs once ($n, exit $rc)" "[ $rc = 0 ] && [ '$n' = '8|8|done' ]"
v=$(for i in 0 1 2; do sqlite3 "$tmp/results/slurm/tiny-shard$i.db" "select count(*) from runs"; done | tr '\n' ' ')
check "each shard store holds its share (3 3 2) ($v)" "[ '$v' = '3 3 2 ' ]"

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
