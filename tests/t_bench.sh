#!/usr/bin/env bash
# t_bench.sh: `hlab bench suite --quick` end to end: its table has a row per architecture and
# length with positive numbers, every number is a row of the store's benchmarks table, the report
# and its plots are written; generation is measured or recorded as unsupported (a model whose
# blocks cannot step yet) without stopping the suite; `hlab bench generate --db` records its rows;
# bad options are refused. Checks form, never speed. Prints "N passed, N failed".
set -u
GROUP=bench
source "$(dirname "$0")/lib.sh"
archs="attention mamba1 mamba2 jamba zamba2"

OMP_NUM_THREADS=1 $H bench suite --quick --threads 1 --db "$tmp/b.db" --out "$tmp/r" > "$tmp/out" 2> "$tmp/err"; rc=$?
check "bench suite --quick: exit 0 ($rc)" "[ $rc = 0 ]"
[ $rc = 0 ] || { echo "--- stdout"; tail -20 "$tmp/out"; echo "--- stderr"; cat "$tmp/err"; }
check "header names the machine and the store" "grep -q '^benchmark suite (quick) on .*OpenBLAS core .*recording into $tmp/b.db' '$tmp/out'"
check "sgemm: a product row of 3 positive GFLOP/s and the peak line" \
  "awk '/^square +256 +256 +256/ { ok = \$5 > 0 && \$6 > 0 && \$7 > 0 } END { exit !ok }' '$tmp/out' && grep -qE '^peak: [0-9.]+ GFLOP/s on 1 thread, [0-9.]+ on 1 threads' '$tmp/out'"
for a in $archs; do
  for T in 64 128; do
    # arch d T B params tokens/s step-ms GFLOP/s of-peak model-MB act-MB RSS-MB
    check "training row $a T $T: B x T = 512, every number positive" \
      "awk -v a=$a -v T=$T '\$1 == a && \$2 == 64 && \$3 == T { n++; ok = \$4 * \$3 == 512 && \$5 > 0 && \$6 > 0 && \$7 > 0 && \$8 > 0 && \$9 + 0 > 0 && \$10 > 0 && \$11 > 0 && \$12 > 0 } END { exit !(n == 1 && ok) }' '$tmp/out'"
  done
done
check "a breakdown line under each row names the parts with their shares" \
  "[ \$(grep -cE '^ +embedding [0-9]+% .* head\\+loss [0-9]+% optimizer [0-9]+%\$' '$tmp/out') = 10 ]"

q() { sqlite3 "$tmp/b.db" "$1"; }
check "store: 10 training configs x 10 metrics, all positive" \
  "[ \$(q \"select count(*) from benchmarks where kind = 'train' and metric != 'time_ms' and value > 0\") = 100 ]"
check "store: tokens_per_s of every arch at both lengths, with its axes as JSON" \
  "[ \$(q \"select count(distinct arch || json_extract(axes, '\$.seq_len')) from benchmarks where metric = 'tokens_per_s' and json_extract(axes, '\$.d_model') = 64 and json_extract(axes, '\$.batch') * json_extract(axes, '\$.seq_len') = 512 and threads = 1\") = 10 ]"
check "store: sgemm peaks on 1 thread and on --threads" \
  "[ \$(q \"select count(*) from benchmarks where kind = 'sgemm' and metric = 'peak_gflops' and value > 0\") = 2 ]"
check "store: every row has the suite, the machine and the code version" \
  "[ \$(q \"select count(*) from benchmarks where suite like 'suite %quick' and host != '' and cpu != '' and blas_core != '' and code_version != '' and created_at like '____-__-__T__:__:__Z'\") = \$(q 'select count(*) from benchmarks') ]"
# the breakdown: each architecture's block types, forward and backward, non-negative
want() { case $1 in attention) echo "attention mlp";; mamba1) echo mamba1;; mamba2) echo mamba2;; jamba) echo "mamba1 mlp moe attention";; zamba2) echo "mamba2 shared";; esac; }
for a in $archs; do
  parts=$(q "select group_concat(p, ' ') from (select distinct json_extract(axes, '\$.part') p from benchmarks where arch = '$a' and metric = 'time_ms' and json_extract(axes, '\$.pass') = 'backward' and json_extract(axes, '\$.part') not in ('embedding', 'head+loss') order by p)")
  expect=$(for p in $(want $a); do echo $p; done | sort | tr '\n' ' ' | sed 's/ $//')
  check "store: $a's time breakdown has its block types ($parts)" "[ '$parts' = '$expect' ]"
done
check "store: no negative time" "[ \$(q \"select count(*) from benchmarks where metric = 'time_ms' and value < 0\") = 0 ]"
# generation: measured, or unsupported until the blocks' inference steps land; never missing
for a in $archs; do
  g=$(q "select (select count(*) from benchmarks where arch = '$a' and kind = 'generate' and metric = 'unsupported') || ' ' || (select count(*) from benchmarks where arch = '$a' and kind = 'decode' and metric = 'ms_per_token' and value > 0)")
  check "generation of $a recorded: unsupported, or decode rows (unsupported / decode: $g)" "[ '$g' = '1 0' ] || [ \"\${g%% *}\" = 0 -a \"\${g##* }\" -ge 1 ]"
done
if grep -q 'no inference step' "$tmp/err"; then
  check "an architecture without inference steps is said on stdout, and the suite went on to the report" \
    "grep -q '^generation not measured for .*no inference step yet' '$tmp/out' && grep -q '^report: ' '$tmp/out'"
fi

# the report
check "report.md and report.html written" "[ -s '$tmp/r/report.md' ] && [ -s '$tmp/r/report.html' ]"
for p in train_tokens_d64 train_pct_peak train_breakdown gen_decode_ms gen_state_mb gen_ttft; do
  check "plot $p: csv and an SVG that parses" "[ -s '$tmp/r/plots/$p.csv' ] && tail -c 20 '$tmp/r/plots/$p.svg' | grep -q '</svg>' && xmllint --noout '$tmp/r/plots/$p.svg'"
done
check "the report's tables name every architecture" \
  "for a in $archs; do grep -q \"^| \$a | 64 | 128 | 4 |\" '$tmp/r/report.md' || exit 1; done"
check "the report embeds its SVGs in the HTML and links them in the markdown" \
  "[ \$(grep -o 'data:image/svg+xml;base64' '$tmp/r/report.html' | wc -l) = 6 ] && grep -q '(plots/train_breakdown.svg)' '$tmp/r/report.md'"
check "the report says how to query the store" "grep -q \"from benchmarks where suite = 'suite \" '$tmp/r/report.md'"

# bench generate --db: a stateless model (MLPs only) and a Mamba-1 model both generate; their
# rows land in the store without a suite (the 'unsupported' row of a block without inference
# step is covered by test_bench_report: every block type has one today)
cat > "$tmp/mlp.yaml" <<'Y'
model: {d_model: 16, vocab_size: 64, pattern: "--"}
data: {task: bytes, seq_len: 16}
Y
$H bench generate "$tmp/mlp.yaml" configs/bench/mamba1.yaml --tokens 256 --prompts 4,8 --budget-mb 64 --db "$tmp/g.db" > "$tmp/gout" 2> "$tmp/gerr"; rc=$?
check "bench generate --db: exit 0, says where the numbers went (exit $rc)" \
  "[ $rc = 0 ] && grep -q '^[0-9]* numbers recorded in ' '$tmp/gout'"
check "bench generate --db: decode, prefill and max-context rows of the MLP model, no suite" \
  "[ \$(sqlite3 '$tmp/g.db' \"select count(*) from benchmarks where arch = 'mlp' and suite is null and json_extract(axes, '\$.d_model') = 16 and ((kind = 'decode' and metric = 'ms_per_token' and json_extract(axes, '\$.tokens') = 256) or (kind = 'prefill' and metric = 'ttft_ms' and value > 0) or (kind = 'max_context' and metric = 'positions'))\") = 4 ]"
check "bench generate --db: the Mamba-1 model's state is recorded, the same at every mark" \
  "[ \$(sqlite3 '$tmp/g.db' \"select count(distinct value) from benchmarks where arch = 'mamba1' and kind = 'decode' and metric = 'state_mb' and value > 0\") = 1 ]"

# bad input: exit 2, a clear message, nothing written
$H bench suite --quick --bogus --db "$tmp/bad.db" --out "$tmp/bad" > /dev/null 2> "$tmp/e1"; rc=$?
check "bench suite with an unknown option: exit 2, names it ($rc)" "[ $rc = 2 ] && grep -q 'unknown option \"--bogus\" for this command' '$tmp/e1' && [ ! -e '$tmp/bad.db' ] && [ ! -e '$tmp/bad' ]"
$H bench suite --threads 0 --db "$tmp/bad.db" > /dev/null 2> "$tmp/e2"; rc=$?
check "bench suite --threads 0: exit 2 ($rc)" "[ $rc = 2 ] && grep -q -- '--threads expects an integer' '$tmp/e2'"
$H bench suite extra --quick > /dev/null 2> "$tmp/e3"; rc=$?
check "bench suite with an argument: exit 2 ($rc)" "[ $rc = 2 ] && grep -q 'unexpected argument \"extra\"' '$tmp/e3'"
echo "not a database, just text that is long enough to be read as a header by SQLite" > "$tmp/text.db"
$H bench suite --quick --db "$tmp/text.db" --out "$tmp/bad" > /dev/null 2> "$tmp/e4"; rc=$?
check "bench suite into a file that is not a store: exit 2 before measuring ($rc)" "[ $rc = 2 ] && grep -q 'not a SQLite database' '$tmp/e4' && [ ! -e '$tmp/bad' ]"

echo "$pass passed, $fail failed"
