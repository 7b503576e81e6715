#!/usr/bin/env bash
# The published models in configs/paper/ against their published numbers: for every config,
# `hlab info` works, the total (and, for MoE, active) parameter count is within 1% of its
# reference.params_total (reference.params_active), and where the Jamba paper's Table 1 gives a
# KV cache (256K tokens, 16-bit) ours equals it exactly. Also `hlab info --table` itself.
# Prints one line per check and "N passed, N failed".
set -u
GROUP=paper
source "$(dirname "$0")/lib.sh"

# A number field of a one-line JSON object ("" when absent).
field() { sed -n "s/.*\"$2\": \([-0-9.e+]*\).*/\1/p" <<< "$1"; }
# |ours - published| <= tol * published
within() { awk -v o="$1" -v p="$2" -v t="$3" 'BEGIN { d = o - p; if (d < 0) d = -d; exit !(d <= t * p) }'; }
pct() { awk -v o="$1" -v p="$2" 'BEGIN { printf "%+.2f%%", 100 * (o - p) / p }'; }

# The Jamba paper's Table 1 (KV cache at 256K tokens, 16-bit): these must state it.
table1="llama-2-7b mistral-7b mixtral-8x7b jamba-v0.1"

configs=(configs/paper/*.yaml)
check "configs/paper has the 7 published models (found ${#configs[@]})" "[ ${#configs[@]} -ge 7 ]"
for f in "${configs[@]}"; do
  n=$(basename "$f" .yaml)
  if ! $H info "$f" > /dev/null 2> "$tmp/err"; then
    bad "$n: hlab info fails: $(head -c 300 "$tmp/err")"
    continue
  fi
  ok "$n: hlab info succeeds"
  row=$($H info "$f" --table --json | grep '"config":')
  tot=$(field "$row" params_total); ptot=$(field "$row" published_params_total)
  if [ -z "$ptot" ]; then
    bad "$n: states no reference.params_total"
  else
    check "$n: $tot parameters, published $ptot ($(pct "$tot" "$ptot"); must be within 1%)" "within $tot $ptot 0.01"
  fi
  act=$(field "$row" params_active); pact=$(field "$row" published_params_active)
  if [ -n "$pact" ]; then
    check "$n: $act active parameters, published $pact ($(pct "$act" "$pact"); must be within 1%)" "within $act $pact 0.01"
  fi
  kv=$(field "$row" kv_cache_bytes); pkv=$(field "$row" published_kv_cache_bytes)
  if [ -n "$pkv" ]; then
    check "$n: KV cache at 256K, 16-bit: $kv bytes, published $pkv (equal)" "within $kv $pkv 0"
  elif [[ " $table1 " == *" $n "* ]]; then
    bad "$n: the Jamba paper gives its KV cache but reference.kv_cache_bytes is not set"
  fi
done

# the comparison table itself
$H info "${configs[@]}" --table > "$tmp/table.txt" 2>&1; rc=$?
check "one table for all paper configs (exit $rc)" "[ $rc = 0 ]"
rows_ok=1
for f in "${configs[@]}"; do
  [ "$(grep -c "^$(basename "$f" .yaml) " "$tmp/table.txt")" = 2 ] || rows_ok=0
done
check "the table has each config in both sections (ours; published vs ours)" \
  "[ $rows_ok = 1 ] && grep -q '^published vs ours' '$tmp/table.txt'"
$H info "${configs[@]}" --json > "$tmp/table.json"; rc=$?
check "several configs imply --table; --json has one object per config (exit $rc)" \
  "[ $rc = 0 ] && [ \$(grep -c '\"config\":' '$tmp/table.json') = ${#configs[@]} ]"
if command -v jq > /dev/null; then
  check "the table's JSON parses (jq)" "jq -e '.configs | length == ${#configs[@]}' '$tmp/table.json' > /dev/null"
fi
check "--table defaults to a 256K context" "grep -q '\"context\": 262144,' '$tmp/table.json'"
$H info configs/paper/llama-2-7b.yaml --table --json --context 4096 > "$tmp/ctx.json"
check "at another context the published KV cache is not compared" "grep -q '\"kv_cache_match\": null' '$tmp/ctx.json'"
$H info configs/paper/llama-2-7b.yaml --table --json --set model.attention.kv_heads=8 > "$tmp/gqa.json"
check "--set applies in the table; a KV cache that differs and params 11% off are flagged" \
  "grep -q '\"kv_cache_match\": false' '$tmp/gqa.json' && grep -q '\"flags\": \[\"params_total\", \"kv_cache_bytes\"\]' '$tmp/gqa.json'"
check "the short form of a repeating pattern" "grep -q '\"pattern_short\": \"(\*-)x32\"' <($H info configs/paper/llama-2-7b.yaml --table --json)"
$H info configs/paper/llama-2-7b.yaml "$tmp/missing.yaml" --table > "$tmp/err.txt" 2>&1; rc=$?
check "a config that does not load: exit 2, an error row, the others still shown (exit $rc)" \
  "[ $rc = 2 ] && grep -q '^missing  *error:' '$tmp/err.txt' && grep -q '^llama-2-7b  *64 ' '$tmp/err.txt'"
$H info configs/paper/llama-2-7b.yaml > "$tmp/single.txt"
check "one config without --table: the per-layer report as before" \
  "head -1 '$tmp/single.txt' | grep -q '^pattern   \*-\*-' && grep -q '^parameters        total' '$tmp/single.txt'"

echo "$pass passed, $fail failed"
