#!/usr/bin/env bash
# End-to-end tests of `hlab report`: a tiny experiment (two variants x two widths x two seeds on a
# needle-in-a-haystack grid) is swept into a fresh store, then reported. The report must have the
# expected tables and claims, every plot as a real PNG and a well-formed SVG with its CSV and
# script, a self-contained HTML file that headless Chromium opens with every image decoded (a
# screenshot is kept in build/report-screenshot.png), tables without gnuplot, and clear errors
# that leave an earlier report intact.
set -u
GROUP=report
source "$(dirname "$0")/lib.sh"
export OMP_NUM_THREADS=1

cat > "$tmp/base.yaml" <<'Y'
seed: 1
model: {d_model: 16, vocab_size: 64, pattern: "M-*-", attention: {heads: 2}, mamba: {d_state: 4}, mlp: {hidden: 24}}
data:
  task: niah
  niah: {key_vocab: 8, value_vocab: 8, train_lengths: "32", eval_lengths: "32,64", depths: "0,50,100", samples: 4, train_examples: 512}
train: {batch_size: 8, steps: 12, lr: 3e-3, log_every: 3}
eval: {every: 6}
Y
cat > "$tmp/exp.yaml" <<'Y'
name: fixture
description: "A tiny fixture: two variants on a needle-in-a-haystack grid."
paper: "the fixture paper, Table 1"
base: base.yaml
variants:
  attention: {model.pattern: "*-*-"}
  hybrid:
grid: {model.d_model: [8, 16]}
seeds: [1, 2]
claims:
  - claim: "The hybrid finds the needle better"
    check: "hybrid > attention"
  - claim: "Exact match is the same"
    check: "hybrid ~ attention"
    task: niah
    metric: exact_match
  - claim: "Wider is measured alone"
    check: "hybrid >= attention"
    at: "model.d_model=16"
Y
db="$tmp/f.db"; out="$tmp/rep"

$H report "$tmp/exp.yaml" --db "$db" --out "$out" > "$tmp/o0" 2>&1; rc=$?
check "no store yet: exit 2, says to sweep first, creates nothing (exit $rc)" "[ $rc = 2 ] && grep -q 'hlab sweep' '$tmp/o0' && [ ! -e '$db' ] && [ ! -e '$out' ]"

$H sweep "$tmp/exp.yaml" --db "$db" --quiet --jobs 2 > /dev/null 2>&1
$H report "$tmp/exp.yaml" --db "$db" --out "$out" > "$tmp/o1" 2>&1; rc=$?
check "report of 8 runs: exit 0, says where ($rc)" "[ $rc = 0 ] && grep -q \"report: $out/report.md and $out/report.html (8 of 8 runs, [0-9]* plots)\" '$tmp/o1'"
md="$out/report.md"
check "the terminal gets each claim's verdict" "grep -qE '^  (agrees|disagrees|mixed|inconclusive) +The hybrid finds the needle better$' '$tmp/o1' && grep -qE '^  [a-z]+ +Exact match is the same$' '$tmp/o1'"
check "the title, description and paper" "head -1 '$md' | grep -qx '# fixture' && grep -q 'A tiny fixture' '$md' && grep -q 'Reproduces: the fixture paper, Table 1.' '$md'"
check "a summary table for the niah task with every variant at both points" \
  "grep -q '^## Task \`niah\`: test accuracy (higher is better)' '$md' && grep -q '^| variant | point | test accuracy | Δ vs attention | valid accuracy | format adherence | params (active) | tokens/s | memory MB | train s |' '$md' && [ \$(grep -cE '^\| (attention|hybrid) \| model.d_model=(8|16) \|' '$md') = 4 ]"
check "mean +- sd over 2 seeds in each row, and the baseline marked" \
  "[ \$(grep -cE '^\| (attention|hybrid) \| model.d_model=[0-9]+ \| (\*\*)?[0-9.]+ ± [0-9.]+ \(2\)' '$md') = 4 ] && [ \$(grep -cE '^\| attention \|.*\| baseline \|' '$md') = 2 ]"
# the table's numbers are the store's: the hybrid's test accuracy at width 8, mean of both seeds
want=$(sqlite3 "$db" "select printf('%.4f', avg(e.value)) from evals e join runs r on r.id = e.run_id join params p on p.run_id = r.id and p.key = 'model.d_model'
  where r.variant = 'hybrid' and p.value_num = 8 and e.task = 'niah' and e.split = 'test' and e.metric = 'accuracy' and e.slice = '{}' and e.source = 'train'")
check "the table's mean is the store's ($want)" "grep -E '^\| hybrid \| model.d_model=8 \|' '$md' | grep -qE '\| (\*\*)?$want ±'"
bolds=$(grep -cE '^\| (attention|hybrid) \| model.d_model=[0-9]+ \| \*\*' "$md")
check "one best (bold) per point ($bolds)" "[ $bolds -ge 2 ]"
check "the claims table with a verdict per claim" \
  "grep -q '^| claim | check | measured | verdict |' '$md' && grep -E '^\| The hybrid finds the needle better \|' '$md' | grep -qE '\*\*(agrees|disagrees|mixed)\*\*|inconclusive' && grep -E '^\| Exact match is the same \|' '$md' | grep -q 'hybrid [0-9.]* vs attention'"
check "a claim restricted to one point compares there only" \
  "grep -E '^\| Wider is measured alone \|' '$md' | grep -q 'at model.d_model=16)' && ! grep -E '^\| Wider is measured alone \|' '$md' | grep -q 'd_model=8'"
check "provenance: store, code version, machine, the commands" \
  "grep -q 'Store \`$db\`: 8 of 8 planned runs' '$md' && grep -q '^- Code version' '$md' && grep -q '^- Machine' '$md' && grep -q '^./hlab sweep $tmp/exp.yaml --db $db' '$md'"
check "runs.csv: a row per run, task and metric" "[ \$(grep -c '^hybrid,\"model.d_model=8\",,1,' '$out/runs.csv') -ge 4 ] && head -1 '$out/runs.csv' | grep -q '^variant,point,lr,seed,run_id'"

# every plot the report shows exists, with its data and script; PNG and SVG are real images
plots=$(grep -o 'plots/[A-Za-z0-9_-]*\.svg' "$md" | sort -u | sed 's|plots/||; s|\.svg||')
np=$(echo "$plots" | wc -w)
check "the expected plots: bars, heatmaps per variant and point, by-context lines, axis plots, curves ($np)" \
  "for p in bars-niah heatmap-attention-p1 heatmap-hybrid-p2 niah-by-context-p1 niah-model_d_model throughput-model_d_model memory-model_d_model loss-p1 valid-p2; do echo '$plots' | grep -qx \$p || exit 1; done"
badimg=""
for p in $plots; do
  f="$out/plots/$p"
  [ "$(head -c 8 "$f.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] && [ $(stat -c %s "$f.png") -gt 2000 ] || badimg="$badimg $p.png"
  xmllint --noout "$f.svg" 2>/dev/null && grep -q '<svg' "$f.svg" || badimg="$badimg $p.svg"
  [ -s "$f.csv" ] && grep -q "$p.csv" "$f.gp" && grep -q "$p.png" "$f.gp" || badimg="$badimg $p.csv/gp"
  [ ! -e "$f.log" ] || badimg="$badimg $p.log"
done
check "every plot: PNG signature, well-formed SVG (xmllint), CSV and script, no gnuplot log ($np plots;$badimg)" "[ -z '$badimg' ] && [ $np -ge 14 ]"
check "the heatmap's data are the context x depth cells" "grep -q '^64,' '$out/plots/heatmap-hybrid-p1.csv' || grep -q ',64,' '$out/plots/heatmap-hybrid-p1.csv'"
( cd "$out/plots" && gnuplot bars-niah.gp ) > "$tmp/regp" 2>&1
check "a kept script redraws its plot from its directory" "[ ! -s '$tmp/regp' ] && [ -s '$out/plots/bars-niah.png' ]"

# the HTML: self-contained (plots inlined), and it renders in headless Chromium
html="$out/report.html"
nimg=$(grep -o 'data:image/svg+xml;base64,' "$html" | wc -l)
check "report.html inlines every plot ($nimg of $np) and links nothing outside" \
  "[ $nimg = $np ] && ! grep -qE '(src|href)=\"(plots/|http)' '$html'"
check "report.html has the same tables" "grep -q '<th>Δ vs attention</th>' '$html' && grep -q '<td>The hybrid finds the needle better</td>' '$html'"
CHROME=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -n "$CHROME" ]; then
  shot="$PWD/build/report-screenshot.png"; rm -f "$shot"; mkdir -p build
  flags="--headless --no-sandbox --disable-gpu --disable-dev-shm-usage --hide-scrollbars --user-data-dir=$tmp/chrome"
  timeout 120 "$CHROME" $flags --virtual-time-budget=5000 --dump-dom "file://$html" > "$tmp/dom" 2> "$tmp/chrome.err"
  state=$(grep -o 'data-images="[^"]*"' "$tmp/dom" | head -1)
  check "Chromium loads report.html and decodes every plot ($state)" "[ '$state' = 'data-images=\"ok $np\"' ]"
  check "no console or page errors" "! grep -qiE 'Uncaught|SyntaxError|Failed to load|ERR_FILE' '$tmp/chrome.err' '$tmp/dom'"
  timeout 120 "$CHROME" $flags --window-size=1100,2400 --screenshot="$shot" "file://$html" > /dev/null 2>&1
  check "a screenshot of the page (build/report-screenshot.png)" "[ \"\$(head -c 8 '$shot' | od -An -tx1 | tr -d ' \n')\" = 89504e470d0a1a0a ] && [ \$(stat -c %s '$shot') -gt 20000 ]"
else
  bad "Chromium is not installed (make test installs it: apt-get install chromium)"
fi

# without gnuplot: the tables and the plots' data and scripts, no images, a clear message
mkdir -p "$tmp/nognuplot"
for t in sqlite3; do ln -s "$(command -v $t)" "$tmp/nognuplot/$t"; done
PATH="$tmp/nognuplot" $H report "$tmp/exp.yaml" --db "$db" --out "$tmp/rep2" > "$tmp/o2" 2>&1; rc=$?
check "without gnuplot: exit 0, says so and how to install it (exit $rc)" "[ $rc = 0 ] && grep -q 'gnuplot' '$tmp/o2' && grep -q 'apt-get install gnuplot' '$tmp/o2'"
check "without gnuplot: tables written, scripts and data kept, no images" \
  "grep -q '^## Task \`niah\`' '$tmp/rep2/report.md' && [ -s '$tmp/rep2/plots/bars-niah.gp' ] && [ -s '$tmp/rep2/plots/bars-niah.csv' ] && ! ls '$tmp/rep2/plots/'*.png > /dev/null 2>&1 && grep -q 'not drawn: gnuplot was not available' '$tmp/rep2/report.md'"

# failures never replace a good report
before=$(md5sum "$md" | cut -d' ' -f1)
sed 's/check: "hybrid > attention"/check: "hybrid > transformer"/' "$tmp/exp.yaml" > "$tmp/badclaim.yaml"
$H report "$tmp/badclaim.yaml" --db "$db" --out "$out" > "$tmp/o3" 2>&1; rc=$?
check "a claim naming no variant: exit 2 at file:line:col, lists the variants (exit $rc)" \
  "[ $rc = 2 ] && grep -q 'badclaim.yaml:12:12: claims: check: transformer is not a variant' '$tmp/o3' && grep -q 'variants: attention, hybrid' '$tmp/o3'"
sed 's/check: "hybrid > attention"/check: "hybrid >> attention"/' "$tmp/exp.yaml" > "$tmp/badop.yaml"
$H report "$tmp/badop.yaml" --db "$db" --out "$out" > "$tmp/o4" 2>&1; rc=$?
check "an unreadable check: exit 2, says what to write" "[ $rc = 2 ] && grep -q 'write \"A > B\"' '$tmp/o4'"
sed 's/seeds: \[1, 2\]/seeds: [7, 8]/' "$tmp/exp.yaml" > "$tmp/unrun.yaml"
$H report "$tmp/unrun.yaml" --db "$db" --out "$out" > "$tmp/o5" 2>&1; rc=$?
check "an experiment the store has no runs of: exit 1, says to sweep" "[ $rc = 1 ] && grep -q 'none of the 8 runs of experiment fixture finished' '$tmp/o5'"
check "the good report is still there, unchanged, with no staging directories left" \
  "[ \"\$(md5sum '$md' | cut -d' ' -f1)\" = '$before' ] && ! ls -d '$out'.tmp-* '$out'.old-* > /dev/null 2>&1"
$H report "$tmp/exp.yaml" --db "$db" --out "$out" > /dev/null 2>&1
check "reporting again replaces it with identical files (no time stamps)" "[ \"\$(md5sum '$md' | cut -d' ' -f1)\" = '$before' ]"

# a run that is missing or failed is listed, and the table says the variant is incomplete
sqlite3 "$db" "update runs set status = 'failed' where id = (select max(id) from runs where variant = 'hybrid')"
$H report "$tmp/exp.yaml" --db "$db" --out "$tmp/rep3" > "$tmp/o6" 2>&1; rc=$?
check "a failed run: 7 of 8 used, listed as not in the report, its row marked incomplete (exit $rc)" \
  "[ $rc = 0 ] && grep -q '(7 of 8 runs' '$tmp/o6' && grep -q '^- Not in the report: hybrid .*(failed)' '$tmp/rep3/report.md' && grep -qE '^\| hybrid \(incomplete\) \|.*\(1\)' '$tmp/rep3/report.md'"

echo "$pass passed, $fail failed"
[ $fail = 0 ]
