#!/bin/bash
# t_generate.sh: `hlab generate` and `hlab bench generate` end to end. A tiny hybrid (Mamba-1,
# attention with RoPE, MLPs) learns one repeated sentence; greedy generation from its start must
# continue it token by token through the KV cache and the SSM state, far past the training length.
GROUP=generate
source "$(dirname "$0")/lib.sh"

for i in $(seq 300); do printf 'the quick brown fox jumps over the lazy dog. '; done > "$tmp/corpus.txt"
cat > "$tmp/gen.yaml" <<YAML
seed: 1
model:
  d_model: 32
  vocab_size: 256
  pattern: "M-*-"
  attention: {heads: 2, rope: true}
  mamba: {version: 1, d_state: 8}
  mlp: {hidden: 64}
data:
  task: bytes
  seq_len: 64
  bytes: {path: $tmp/corpus.txt, valid_frac: 0.05, test_frac: 0.05}
train: {batch_size: 8, steps: 150, lr: 1e-2, warmup_steps: 10, threads: 1, log_every: 50}
eval: {every: 0}
YAML
$H train "$tmp/gen.yaml" --db none --out "$tmp/g.safetensors" --quiet > /dev/null 2>&1
check "a tiny hybrid trains on the repeated sentence" "[ -s '$tmp/g.safetensors' ]"

# 200 tokens after a 9-byte prompt: positions up to 209, three times the trained length 64
$H generate "$tmp/g.safetensors" --prompt "the quick" -n 200 --threads 1 > "$tmp/out" 2> "$tmp/err"; rc=$?
check "greedy generation continues the sentence past the training length (exit $rc): $(head -c 80 "$tmp/out")" \
  "[ $rc = 0 ] && grep -q '^the quick brown fox jumps over the lazy dog. the quick brown fox jumps over the lazy dog. the quick' '$tmp/out'"
check "generate reports time to first token, tokens/s and state memory on stderr" \
  "grep -qE '^prompt 9 tokens: first token after [0-9.]+ ms; 200 tokens generated in [0-9.]+ s \\([0-9]+ tokens/s\\); state [0-9.]+ MB at 209 positions' '$tmp/err'"

$H generate "$tmp/g.safetensors" --prompt "the quick" -n 60 --temperature 2 --seed 5 --threads 1 > "$tmp/s1" 2>/dev/null
$H generate "$tmp/g.safetensors" --prompt "the quick" -n 60 --temperature 2 --seed 5 --threads 1 > "$tmp/s2" 2>/dev/null
$H generate "$tmp/g.safetensors" --prompt "the quick" -n 60 --temperature 2 --seed 6 --threads 1 > "$tmp/s3" 2>/dev/null
check "sampling with a seed is reproducible, another seed gives another text" \
  "cmp -s '$tmp/s1' '$tmp/s2' && ! cmp -s '$tmp/s1' '$tmp/s3' && ! cmp -s '$tmp/s1' '$tmp/out'"

$H generate "$tmp/g.safetensors" --prompt-tokens 116,104,101,32,113 -n 5 --threads 1 > "$tmp/t" 2>/dev/null; rc=$?
check "--prompt-tokens reads ids (exit $rc)" "[ $rc = 0 ] && grep -q '^the quick' '$tmp/t'"
$H generate "$tmp/g.safetensors" --prompt-tokens 116,300 -n 5 > /dev/null 2> "$tmp/e1"; rc=$?
check "a token outside the vocabulary: exit 2 naming the range" "[ $rc = 2 ] && grep -q 'ids in \\[0, 256)' '$tmp/e1'"
$H generate "$tmp/g.safetensors" -n 5 > /dev/null 2> "$tmp/e2"; rc=$?
check "no prompt: exit 2" "[ $rc = 2 ] && grep -q 'exactly one of --prompt' '$tmp/e2'"
$H generate "$tmp/missing.safetensors" --prompt a > /dev/null 2> "$tmp/e3"; rc=$?
check "a missing checkpoint: exit 2" "[ $rc = 2 ] && grep -q 'missing.safetensors' '$tmp/e3'"
$H generate "$tmp/g.safetensors" --prompt a --temperature hot > /dev/null 2> "$tmp/e4"; rc=$?
check "a bad temperature: exit 2" "[ $rc = 2 ] && grep -q 'hot' '$tmp/e4'"

# bench generate on a pure Mamba and a pure attention model: the SSM state is the same at every
# length, the KV cache grows with it; prefill rows for each prompt length; a max-context line
cat > "$tmp/att.yaml" <<YAML
model: {d_model: 32, vocab_size: 256, pattern: "*-*-", attention: {heads: 2}, mlp: {hidden: 64}}
YAML
cat > "$tmp/ssm.yaml" <<YAML
model: {d_model: 32, vocab_size: 256, pattern: "MM", mamba: {d_state: 8}}
YAML
$H bench generate "$tmp/ssm.yaml" "$tmp/att.yaml" --tokens 1024 --prompts 16,64 --budget-mb 2 > "$tmp/bg" 2>&1; rc=$?
check "bench generate: decode rows at 256, 512, 1024 tokens for both models (exit $rc)" \
  "[ $rc = 0 ] && [ \$(grep -cE '^  decode +(256|512|1024) ' '$tmp/bg') = 6 ]"
check "bench generate: the SSM's state is the same at 256 and 1024 tokens, the KV cache grows 4x" \
  "awk '/^ssm:/ { m = 1 } /^att:/ { m = 2 } /^  decode +256 / { s[m] = \$4 } /^  decode +1024 / { e[m] = \$4 } END { exit !(s[1] == e[1] && s[1] > 0 && e[2] > 3.5 * s[2]) }' '$tmp/bg'"
check "bench generate: time to first token for each prompt length" "[ \$(grep -cE '^  prefill +(16|64) +[0-9.]+ ' '$tmp/bg') = 4 ]"
check "bench generate: max context unbounded for the SSM, a finite measured one for attention" \
  "grep -q 'max context in 2 MB: unbounded' '$tmp/bg' && grep -qE 'max context in 2 MB: [0-9]+ positions' '$tmp/bg' && grep -q 'measured at' '$tmp/bg'"

echo "$pass passed, $fail failed"
