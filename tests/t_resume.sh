#!/usr/bin/env bash
# End-to-end tests of training checkpoints and resuming: a run SIGKILLed at random moments and
# resumed until done ends bitwise equal to an uninterrupted one (weights, every logged value,
# the final scores) with one consistent curve in a store that passes integrity_check after each
# kill; SIGTERM and SIGINT stop with status 4 after writing a checkpoint, and the run continues
# from it (by run id, and by checkpoint path without a store); a killed sweep continues its run;
# a diverging run names the step and the tensor; skip_step counts and stops at its limit.
set -u
GROUP=resume
source "$(dirname "$0")/lib.sh"
export OMP_NUM_THREADS=1

cat > "$tmp/r.yaml" <<'Y'
seed: 3
model: {d_model: 32, vocab_size: 128, pattern: "M-*-", attention: {heads: 2}, mamba: {d_state: 8}, mlp: {hidden: 64}}
data: {task: mqar, seq_len: 64, mqar: {num_kv_pairs: 8, train_examples: 512, valid_examples: 32, test_examples: 32}}
train: {batch_size: 8, steps: 200, lr: 3e-3, log_every: 7, checkpoint_every: 10}
eval: {every: 50}
Y
# every logged value that training determines (not tokens_per_s, not wall), at full precision
curve() { sqlite3 "$1" "select name, step, tokens, printf('%.17g', value) from metrics where name not in ('tokens_per_s')
                        order by name, step"; }
scores() { sqlite3 "$1" "select task, split, slice, metric, printf('%.17g', value), count from evals where split != 'train' order by 1, 2, 3, 4"; }
final_loss() { sqlite3 "$1" "select printf('%.17g', value) from metrics where name = 'train_loss' order by step desc limit 1"; }
dups() { sqlite3 "$1" "select count(*) from (select 1 from metrics group by run_id, name, step having count(*) > 1)"; }
integrity() { sqlite3 "$1" 'pragma integrity_check'; }
# the tensor bytes of a safetensors file (its header holds the config, which may differ)
weights() { local n; n=$(od -An -t u8 -N8 "$1" | tr -d ' '); tail -c +$((n + 9)) "$1" | md5sum; }
same_weights() { [ -s "$1" ] && [ -s "$2" ] && [ "$(weights "$1")" = "$(weights "$2")" ]; }
rand_sleep() { printf '0.%02d' $((RANDOM % 55 + 5)); }   # 0.05 .. 0.59 s

# the uninterrupted reference, and the same training without checkpoints (writing them must not
# change anything)
$H train "$tmp/r.yaml" --db "$tmp/ref.db" --out "$tmp/ref.st" --quiet > "$tmp/ref.log" 2>&1; rc=$?
check "reference run (exit $rc)" "[ $rc = 0 ]"
check "its checkpoint is next to the store, named after store and run" "[ -f '$tmp/checkpoints/ref-run1.safetensors' ]"
$H train "$tmp/r.yaml" --db "$tmp/plain.db" --out "$tmp/plain.st" --set train.checkpoint_every=0 --quiet > /dev/null 2>&1
check "checkpointing every 10 steps changes nothing (weights byte-equal to a run without)" "same_weights '$tmp/ref.st' '$tmp/plain.st'"
check "without checkpoint_every and without a signal, no training checkpoint" "[ ! -e '$tmp/checkpoints/plain-run1.safetensors' ]"

# SIGKILL at random moments, then --resume, again and again, until the run is done
k="$tmp/kill.db"
$H train "$tmp/r.yaml" --db "$k" --out "$tmp/kill.st" --quiet > "$tmp/kill0.log" 2>&1 &
pid=$!
for i in $(seq 1 500); do [ -e "$tmp/checkpoints/kill-run1.safetensors" ] && break; sleep 0.01; done
kills=0; bad_integrity=0; not_running=0; sleeps=""; attempt=0; rc=1
while :; do
  s=$(rand_sleep); sleeps="$sleeps $s"
  sleep "$s"
  if kill -9 $pid 2>/dev/null; then kills=$((kills+1)); fi
  wait $pid 2>/dev/null; rc=$?
  [ "$(integrity "$k")" = ok ] || bad_integrity=$((bad_integrity+1))
  [ $rc = 0 ] && break
  [ "$(sqlite3 "$k" 'select status from runs')" = running ] || not_running=$((not_running+1))
  attempt=$((attempt+1))
  [ $kills -ge 4 ] || [ $attempt -ge 15 ] && break
  $H train --resume 1 --db "$k" --out "$tmp/kill.st" --quiet > "$tmp/kill$attempt.log" 2>&1 &
  pid=$!
done
check "killed $kills times (after sleeps of$sleeps s)" "[ $kills -ge 3 ]"
check "integrity_check ok after every kill ($bad_integrity bad)" "[ $bad_integrity = 0 ]"
check "a killed run is left 'running', resumable ($not_running otherwise)" "[ $not_running = 0 ]"
if [ $rc != 0 ]; then $H train --resume 1 --db "$k" --out "$tmp/kill.st" --quiet > "$tmp/killend.log" 2>&1; rc=$?; fi
check "resumed to the end (exit $rc)" "[ $rc = 0 ] && [ \"\$(sqlite3 '$k' 'select count(*) || status from runs')\" = 1done ]"
check "weights byte-equal to the uninterrupted run" "cmp -s '$tmp/ref.st' '$tmp/kill.st'"
check "final train_loss string-equal ($(final_loss "$k") vs $(final_loss "$tmp/ref.db"))" "[ \"\$(final_loss '$k')\" = \"\$(final_loss '$tmp/ref.db')\" ] && [ -n \"\$(final_loss '$k')\" ]"
check "every logged value equal, one row per (metric, step) ($(dups "$k") duplicates)" "[ \"\$(curve '$k')\" = \"\$(curve '$tmp/ref.db')\" ] && [ \$(dups '$k') = 0 ]"
check "final validation and test scores equal" "[ \"\$(scores '$k')\" = \"\$(scores '$tmp/ref.db')\" ] && [ -n \"\$(scores '$k')\" ]"
check "no temporary checkpoint left behind" "[ -z \"\$(ls '$tmp/checkpoints' | grep tmp)\" ]"
check "a done run is not resumed again" "! $H train --resume 1 --db '$k' --quiet 2> '$tmp/done.err' && grep -q 'done: nothing to resume' '$tmp/done.err'"

# SIGTERM, without periodic checkpoints: the step finishes, a checkpoint is written, exit 4
t="$tmp/term.db"
$H train "$tmp/r.yaml" --db "$t" --out "$tmp/term.st" --set train.checkpoint_every=0 --quiet > "$tmp/term.log" 2>&1 &
pid=$!
for i in $(seq 1 500); do [ "$(sqlite3 "$t" 'select count(*) from metrics' 2>/dev/null)" -gt 0 ] 2>/dev/null && break; sleep 0.01; done
sleep "$(rand_sleep)"
kill -TERM $pid; wait $pid; rc=$?
err=$(sqlite3 "$t" "select status || ': ' || error from runs")
step=$(echo "$err" | sed -n 's/.*at step \([0-9]*\).*/\1/p')
check "SIGTERM: exit status 4 (EXIT_INTERRUPTED), got $rc" "[ $rc = 4 ]"
check "SIGTERM: run 'interrupted' with the step and the checkpoint ($err)" "echo '$err' | grep -q '^interrupted: interrupted by signal 15 at step [0-9]*; checkpoint .*term-run1.safetensors: continue with hlab train --resume 1'"
check "SIGTERM: nothing logged beyond step $step" "[ -n '$step' ] && [ \$(sqlite3 '$t' 'select max(step) from metrics') -le '$step' ]"
$H train --resume 1 "$tmp/r.yaml" --db "$t" --quiet > /dev/null 2> "$tmp/term.err"; rc=$?
check "resume refuses a config other than the run's own (exit $rc)" "[ $rc = 2 ] && grep -q 'differs from the run' '$tmp/term.err'"
$H train --resume 1 --db "$t" --out "$tmp/term.st" --quiet > "$tmp/term2.log" 2>&1; rc=$?
check "SIGTERM: resumed by run id to the end, weights byte-equal (exit $rc)" "[ $rc = 0 ] && same_weights '$tmp/ref.st' '$tmp/term.st'"
check "SIGTERM: the curve equals the reference's" "[ \"\$(curve '$t')\" = \"\$(curve '$tmp/ref.db')\" ]"

# SIGINT without a store: the checkpoint goes to train.checkpoint_dir; resumed by its path
$H train "$tmp/r.yaml" --db none --set train.checkpoint_dir="$tmp/ck" --out "$tmp/int.st" > "$tmp/int.log" 2>&1 &
pid=$!
for i in $(seq 1 500); do grep -q '^step' "$tmp/int.log" && break; sleep 0.01; done
kill -INT $pid; wait $pid; rc=$?
ck=$(ls "$tmp"/ck/*.safetensors 2>/dev/null | head -1)
check "SIGINT: exit 4 and a checkpoint in train.checkpoint_dir (exit $rc, $ck)" "[ $rc = 4 ] && [ -f '$ck' ]"
$H train --resume "$ck" --out "$tmp/int.st" --quiet > "$tmp/int2.log" 2>&1; rc=$?
check "SIGINT: resumed by checkpoint path to the end, weights byte-equal (exit $rc)" "[ $rc = 0 ] && same_weights '$tmp/ref.st' '$tmp/int.st'"

# a sweep killed in the middle of a run continues it from its checkpoint
cat > "$tmp/exp.yaml" <<'Y'
name: resumable
base: r.yaml
variants:
  only: {}
Y
sw="$tmp/sw.db"
$H sweep "$tmp/exp.yaml" --db "$sw" > "$tmp/sw1.log" 2>&1 &
pid=$!
for i in $(seq 1 500); do [ -e "$tmp/checkpoints/sw-run1.safetensors" ] && break; sleep 0.01; done
sleep "$(rand_sleep)"
kill -9 $pid; wait $pid 2>/dev/null
$H sweep "$tmp/exp.yaml" --db "$sw" > "$tmp/sw2.log" 2>&1; rc=$?
check "sweep: the killed run resumes from its checkpoint (exit $rc)" "[ $rc = 0 ] && grep -q 'resuming from its checkpoint' '$tmp/sw2.log'"
check "sweep: one row, done, the curve and scores of the uninterrupted run" "[ \"\$(sqlite3 '$sw' 'select count(*) || status from runs')\" = 1done ] && [ \"\$(curve '$sw')\" = \"\$(curve '$tmp/ref.db')\" ] && [ \"\$(scores '$sw')\" = \"\$(scores '$tmp/ref.db')\" ]"
# its checkpoint lost (killed before the first was written, or deleted): trained again in its row
sqlite3 "$sw" "update runs set status = 'interrupted'"
rm -f "$tmp/checkpoints/sw-run1.safetensors"
$H sweep "$tmp/exp.yaml" --db "$sw" > "$tmp/sw3.log" 2>&1; rc=$?
check "sweep: without its checkpoint the run starts over in its row (exit $rc)" "[ $rc = 0 ] && grep -q 'cannot resume' '$tmp/sw3.log' && [ \"\$(sqlite3 '$sw' 'select count(*) || status from runs')\" = 1done ] && [ \"\$(curve '$sw')\" = \"\$(curve '$tmp/ref.db')\" ]"

# divergence: eps 0 makes AdamW divide 0 by 0 for the rows of tokens a batch lacks (untied embeddings)
div="--db $tmp/div.db --set train.adam_eps=0 --set model.tie_embeddings=false --set train.steps=30 --set train.log_every=1 --quiet"
$H train "$tmp/r.yaml" $div > /dev/null 2>&1; rc=$?
err=$(sqlite3 "$tmp/div.db" "select status || ': ' || error from runs order by id desc limit 1")
check "divergence: exit 3 (EXIT_DIVERGED), got $rc" "[ $rc = 3 ]"
check "divergence: the step and the tensor are named ($err)" "echo '$err' | grep -q '^diverged: step [0-9]*: non-finite .*non-finite weight in model.embed_tokens.weight; first non-finite gradient: model'"
$H train "$tmp/r.yaml" $div --set train.on_divergence=skip_step --set train.max_skipped_steps=4 > /dev/null 2>&1; rc=$?
err=$(sqlite3 "$tmp/div.db" "select status || ': ' || error from runs order by id desc limit 1")
n=$(sqlite3 "$tmp/div.db" "select max(value) from metrics where name = 'skipped_steps' and run_id = (select max(id) from runs)")
check "skip_step: 4 updates skipped (metric skipped_steps = $n), then diverged (exit $rc)" "[ $rc = 3 ] && [ '$n' = 4.0 ] && echo '$err' | grep -q '4 updates skipped before it'"

echo "$pass passed, $fail failed"
[ $fail = 0 ]
