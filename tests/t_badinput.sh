#!/usr/bin/env bash
# Bad input and a hostile environment, end to end.
#
# A table of malformed inputs (YAML syntax, unknown keys, wrong types, out-of-range values,
# pattern mistakes, missing files, checkpoints of another model, truncated and hostile
# safetensors files, databases of another schema, bad command-line values). Each must end in
# exit status 2 with a message naming what is wrong (a distinctive fragment is grepped), and not
# in a crash: hlab runs under AddressSanitizer + UBSan (build/hlab-san, built by `make test`)
# when that binary exists, and any sanitizer report fails the check.
#
# Then the environment: unwritable, special or full output locations give a clear error and
# never replace a good checkpoint, export or report with a partial one; config strings are
# HTML-escaped in reports and never reach a shell or gnuplot as code; SQL takes values only as
# bound parameters.
set -u
GROUP=badinput
source "$(dirname "$0")/lib.sh"
export OMP_NUM_THREADS=1 LC_ALL=C
# the sanitizer build when it is there: a crash that still exits 2 is caught
S="$PWD/build/hlab-san"
if [ -x "$S" ] && ! [ "$H" -nt "$S" ]; then echo "(bad inputs run under build/hlab-san: ASan + UBSan)"; else S=$H; echo "(build/hlab-san missing or stale: bad inputs run under ./hlab)"; fi
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1
nbad=0

# expect2 "what" "message fragment" command...: exit 2, the fragment in the output, no
# sanitizer report and no crash
expect2() {
    local what=$1 frag=$2; shift 2
    nbad=$((nbad+1))
    "$@" > "$tmp/out" 2>&1 < /dev/null; local rc=$?
    if [ $rc != 2 ]; then bad "$what: exit $rc, expected 2: $(head -c 400 "$tmp/out")"
    elif grep -qE 'Sanitizer|runtime error:' "$tmp/out"; then bad "$what: sanitizer report: $(grep -m3 -E 'Sanitizer|runtime error' "$tmp/out")"
    elif ! grep -qF -- "$frag" "$tmp/out"; then bad "$what: message lacks \"$frag\": $(head -c 400 "$tmp/out")"
    else ok "$what"; fi
}

# A config file with this text (printf-style escapes are NOT interpreted: use $'...' for bytes).
cfg() { printf '%s' "$2" > "$tmp/$1"; echo "$tmp/$1"; }

# le64 N: N as 8 little-endian bytes. mkst FILE HEADER NBYTES: a safetensors file with that
# JSON header (its exact length as the header length) and NBYTES zero bytes of data.
le64() { local n=$1 i s=""; for i in 0 1 2 3 4 5 6 7; do s+=$(printf '\\x%02x' $(( (n >> (8*i)) & 255 ))); done; printf "$s"; }
mkst() { { le64 ${#2}; printf '%s' "$2"; head -c "$3" /dev/zero; } > "$1"; }

# ---- fixtures: a tiny model and its checkpoint
cat > "$tmp/tiny.yaml" <<'Y'
seed: 3
model: {d_model: 8, vocab_size: 32, pattern: "*-", attention: {heads: 2}, mlp: {hidden: 8}}
data: {task: mqar, seq_len: 16, mqar: {num_kv_pairs: 2, train_examples: 64, valid_examples: 16, test_examples: 16}}
train: {batch_size: 4, steps: 2, log_every: 1}
Y
T="$tmp/tiny.yaml"
$H train "$T" --db none --out "$tmp/w.safetensors" --quiet > /dev/null 2>&1
check "fixture: the tiny model trains and writes a checkpoint" "[ -s '$tmp/w.safetensors' ]"
W="$tmp/w.safetensors"
printf '1 2 3 4\n' > "$tmp/tok.txt"
$H train "$T" --db "$tmp/runs.db" --quiet > /dev/null 2>&1   # a store with one run

# ---- YAML syntax
expect2 "YAML: a tab in the indentation" "indent with spaces, not tabs" $S info "$(cfg tab.yaml $'model:\n\td_model: 8\n')"
expect2 "YAML: an unclosed quote" "YAML syntax error" $S info "$(cfg q.yaml $'model:\n  pattern: "M-\n')"
expect2 "YAML: an unclosed flow mapping (line:col)" "flow.yaml:2:1: YAML syntax error" $S info "$(cfg flow.yaml $'model: {d_model: 8\n')"
expect2 "YAML: a pattern starting with * read as an alias" "quote it" $S info "$(cfg alias.yaml $'model:\n  pattern: *-M-\n')"
expect2 "YAML: two documents" "only one YAML document" $S info "$(cfg two.yaml $'seed: 1\n---\nseed: 2\n')"
expect2 "YAML: the top level is a list" "the top level must be a mapping" $S info "$(cfg list.yaml $'- seed\n- 1\n')"
expect2 "YAML: bytes that are not UTF-8" "must be UTF-8" $S info "$(cfg latin1.yaml $'name: caf\xe9\n')"
printf 'seed: 1\n\0name: x\n' > "$tmp/nul.yaml"
expect2 "YAML: a NUL byte" "contains a NUL byte" $S info "$tmp/nul.yaml"
expect2 "YAML: a key given twice" "duplicate key (first at line 2" $S info "$(cfg dup.yaml $'model:\n  d_model: 8\n  d_model: 16\n')"
expect2 "YAML: an anchor and alias loop" "dupanchor.yaml" $S info "$(cfg dupanchor.yaml $'model: &m\n  attention: *m\n')"
{ printf 'model: '; head -c 300000 /dev/zero | tr '\0' '['; head -c 300000 /dev/zero | tr '\0' ']'; echo; } > "$tmp/deep.yaml"
expect2 "YAML: [ ] nested 300000 deep, refused within 20 s (libyaml is quadratic in the depth)" "more than 2000 '[' and '{'" timeout 20 $S info "$tmp/deep.yaml"
{ printf 'name: deep\nvariants: '; head -c 300000 /dev/zero | tr '\0' '{'; head -c 300000 /dev/zero | tr '\0' '}'; echo; } > "$tmp/deepexp.yaml"
expect2 "experiment: { } nested 300000 deep, refused within 20 s" "more than 2000 '[' and '{'" timeout 20 $S sweep "$tmp/deepexp.yaml" --dry-run
expect2 "YAML: a key that is a mapping" "a key must be a plain name" $S info "$(cfg mapkey.yaml $'? {a: 1}\n: 2\n')"

# ---- unknown keys and wrong structure
expect2 "unknown key: did-you-mean with file:line:col" "bad.yaml:3:3: model.atention: unknown section; did you mean \"model.attention\"?" $S info "$(cfg bad.yaml $'model:\n  d_model: 8\n  atention: {heads: 2}\n')"
expect2 "unknown top-level section" "top.yaml:1:1: trian: unknown section; did you mean \"train\"?" $S info "$(cfg top.yaml $'trian:\n  steps: 3\n')"
expect2 "--set of an unknown key" "unknown key" $S info "$T" --set model.dmodel=8
expect2 "--set without =" "expected KEY=VALUE" $S info "$T" --set model.d_model
expect2 "--set of a section" "is a section, not a key" $S info "$T" --set model.attention=2
expect2 "a list where a value goes" "lists are not supported" $S info "$(cfg seq.yaml $'model:\n  d_model: [8, 16]\n')"
expect2 "a mapping where a value goes" "got a mapping (this key is a value" $S info "$(cfg map.yaml $'model:\n  d_model: {a: 1}\n')"
expect2 "a value where a section goes" "is a section: expected a mapping" $S info "$(cfg sec.yaml $'model: 5\n')"
expect2 "a key with no value" "no value given; expected an integer" $S info "$(cfg empty.yaml $'model:\n  d_model:\n')"

# ---- wrong types and out-of-range values
expect2 "an integer key given text" "expected an integer, got \"abc\"" $S info "$T" --set model.d_model=abc
expect2 "an integer key given a fraction" "expected an integer, got \"1.5\"" $S info "$T" --set model.d_model=1.5
expect2 "an integer key given hex" "expected an integer, got \"0x10\"" $S info "$(cfg hex.yaml $'model:\n  d_model: 0x10\n  pattern: "*-"\n')"
expect2 "a float key given text" "expected a number, got \"fast\"" $S info "$T" --set train.lr=fast
expect2 "a float key given .inf" "expected a number" $S info "$T" --set train.lr=.inf
expect2 "a float key given nan" "expected a number" $S info "$T" --set train.lr=nan
expect2 "a bool key given maybe" "true or false" $S info "$T" --set model.tie_embeddings=maybe
expect2 "a string choice misspelled" "did you mean \"cosine\"" $S info "$T" --set train.schedule=cosin
expect2 "an integer of 20 digits" "at most 18 digits" $S info "$T" --set seed=99999999999999999999
expect2 "d_model 0" "0 is out of range; valid range: 1 to 1048576" $S info "$T" --set model.d_model=0
expect2 "a negative batch size" "-1 is out of range" $S train "$T" --db none --set train.batch_size=-1
expect2 "beta2 of 1" "out of range" $S train "$T" --db none --set train.beta2=1
expect2 "d_model not divisible by the heads" "divisible" $S info "$T" --set model.attention.heads=3
expect2 "phase fractions that do not sum to 1" "phase" $S train "$T" --db none --set phase1.frac=0.5

# ---- pattern mistakes
expect2 "pattern: an unknown symbol" "invalid symbol 'X' at position 3" $S info "$T" --set model.pattern=M-X-
expect2 "pattern: lower case" "symbols are upper case" $S info "$T" --set model.pattern=m-
expect2 "pattern: Megatron grouping" "grouping/MTP syntax is not supported" $S info "$T" --set 'model.pattern=[M-]'
expect2 "pattern: only separators" "has no symbols" $S info "$T" --set 'model.pattern= | '
expect2 "pattern: a control byte" "invalid symbol \\x01" $S info "$T" --set $'model.pattern=M\x01'
expect2 "pattern and layers both" "both model.pattern and model.layers" $S info "$T" --set model.layers=4
expect2 "neither pattern nor layers" "model has no layers" $S info "$(cfg nolayers.yaml $'model:\n  d_model: 8\n')"
expect2 "ratio not spaced evenly" "cannot be spaced evenly" $S info "$T" --set model.pattern= --set model.layers=6 --set model.ratio=2:3
expect2 "ratio not a:m" "expected \"a:m\"" $S info "$T" --set model.pattern= --set model.layers=4 --set model.ratio=1-3
expect2 "ratio 0:0" "has no layers" $S info "$T" --set model.pattern= --set model.layers=4 --set model.ratio=0:0
expect2 "attention offset >= period" "must be less than model.attn_period" $S info "$T" --set model.pattern= --set model.layers=4 --set model.attn_period=2 --set model.attn_offset=2
expect2 "a rule key with an explicit pattern" "is a rule-form key" $S info "$T" --set model.ratio=1:1
expect2 "an S as the last symbol" "is the last symbol" $S info "$T" --set model.pattern=M-S --set model.shared.blocks=1
expect2 "shared blocks without an S" "has no S symbol" $S info "$T" --set model.shared.blocks=1
expect2 "MoE without an FFN" "MoE layers need an FFN" $S info "$T" --set model.pattern= --set model.layers=2 --set model.ffn=none --set model.moe_period=2
expect2 "a pattern of 5000 sublayers" "more than 4096 sublayers" $S info "$T" --set "model.pattern=$(printf 'M%.0s' $(seq 5000))"
expect2 "more layers than allowed" "out of range" $S info "$T" --set model.pattern= --set model.layers=100000

# ---- missing and wrong files
expect2 "missing config file" "cannot read the config file: No such file" $S train "$tmp/nope.yaml" --db none
expect2 "config is a directory" "cannot read the config file" $S train "$tmp" --db none
expect2 "eval of a missing checkpoint" "is neither a checkpoint file nor a run id" $S eval "$tmp/nope.safetensors" --db none
expect2 "generate from a missing checkpoint" "cannot open: No such file" $S generate "$tmp/nope.safetensors" --prompt-tokens 1
expect2 "--init from a missing checkpoint" "cannot open" $S train "$T" --db none --init "$tmp/nope.safetensors"
expect2 "forward with a missing token file" "--tokens: cannot open" $S forward "$W" --tokens "$tmp/nope.txt"
expect2 "a checkpoint that is a directory" "not a regular file" $S generate "$tmp" --prompt-tokens 1
expect2 "a config file as the checkpoint" "absurd" $S generate "$T" --prompt-tokens 1
printf '1 2 x 4\n' > "$tmp/badtok.txt"
expect2 "a token file with text" "expected an integer token id" $S forward "$W" --tokens "$tmp/badtok.txt"
printf '1 2 99 4\n' > "$tmp/bigtok.txt"
expect2 "a token outside the vocabulary" "outside the model's vocabulary" $S forward "$W" --tokens "$tmp/bigtok.txt"

# ---- checkpoints of another model
CFG8='"__metadata__":{"hlab.config":"model: {d_model: 8, vocab_size: 32, pattern: \"*-\", attention: {heads: 2}, mlp: {hidden: 8}}\ndata: {seq_len: 16, mqar: {num_kv_pairs: 2, train_examples: 64, valid_examples: 16, test_examples: 16}}\ntrain: {batch_size: 4}"}'
mkst "$tmp/shape.st" "{$CFG8,\"model.embed_tokens.weight\":{\"dtype\":\"F32\",\"shape\":[32,16],\"data_offsets\":[0,2048]}}" 2048
expect2 "eval: a checkpoint whose tensors have another shape" "has another shape than the model's" $S eval "$tmp/shape.st" --db none
expect2 "generate: a checkpoint whose tensors have another shape" "has another shape than the model's" $S generate "$tmp/shape.st" --prompt-tokens 1
mkst "$tmp/missing.st" "{$CFG8,\"model.embed_tokens.weight\":{\"dtype\":\"F32\",\"shape\":[32,8],\"data_offsets\":[0,1024]}}" 1024
expect2 "generate: a checkpoint that lacks tensors" "is missing (checkpoint of another model?)" $S generate "$tmp/missing.st" --prompt-tokens 1
mkst "$tmp/f16.st" "{$CFG8,\"model.embed_tokens.weight\":{\"dtype\":\"F16\",\"shape\":[32,8],\"data_offsets\":[0,512]}}" 512
expect2 "a checkpoint in F16" "hlab reads F32 and F64" $S generate "$tmp/f16.st" --prompt-tokens 1
cat > "$tmp/other.yaml" <<'Y'
model: {d_model: 8, vocab_size: 32, pattern: "**", attention: {heads: 2}}
data: {task: mqar, seq_len: 16, mqar: {num_kv_pairs: 2, train_examples: 64}}
train: {batch_size: 4, steps: 1}
Y
expect2 "--init with a checkpoint that lacks layers" "is missing (checkpoint of another model?)" $S train "$tmp/other.yaml" --db none --init "$W"
expect2 "--init with a checkpoint that has more layers" "is not part of this model" $S train "$tmp/other.yaml" --set model.pattern='*' --db none --init "$W"
mkst "$tmp/plain.st" '{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}' 4
expect2 "a safetensors file without hlab.config" "not an hlab checkpoint" $S generate "$tmp/plain.st" --prompt-tokens 1
mkst "$tmp/badcfg.st" '{"__metadata__":{"hlab.config":"model: {d_model: -3}"}}' 0
expect2 "a checkpoint whose config is invalid" "badcfg.st:1:9: model.d_model: -3 is out of range" $S generate "$tmp/badcfg.st" --prompt-tokens 1

# ---- truncated and hostile safetensors files
: > "$tmp/zero.st"
expect2 "safetensors: empty file" "truncated: 0 bytes" $S generate "$tmp/zero.st" --prompt-tokens 1
printf 'abc' > "$tmp/three.st"
expect2 "safetensors: 3 bytes" "truncated: 3 bytes" $S eval "$tmp/three.st" --db none
head -c 5000 "$W" > "$tmp/trunc.st"
expect2 "safetensors: a checkpoint cut short" "beyond the data buffer" $S generate "$tmp/trunc.st" --prompt-tokens 1
head -c 100 "$W" > "$tmp/trunc2.st"
expect2 "safetensors: cut inside the header" "exceeds the file" $S forward "$tmp/trunc2.st" --tokens "$tmp/tok.txt"
printf '\xff\xff\xff\xff\xff\xff\xff\xff{}' > "$tmp/huge.st"
expect2 "safetensors: header length 2^64-1" "is absurd" $S generate "$tmp/huge.st" --prompt-tokens 1
printf '\xff\xff\xff\xff\xff\xff\xff\x7f' > "$tmp/sparse.st"; truncate -s 100G "$tmp/sparse.st"
expect2 "safetensors: a 100 GB (sparse) file with an absurd header: refused, not read in" "is absurd" $S generate "$tmp/sparse.st" --prompt-tokens 1
rm -f "$tmp/sparse.st"
{ le64 99999999; printf '{}'; } > "$tmp/huge2.st"
expect2 "safetensors: header length past the end" "exceeds the file" $S generate "$tmp/huge2.st" --prompt-tokens 1
mkst "$tmp/past.st" '{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}' 8
expect2 "safetensors: offsets past the end" "beyond the data buffer (8 bytes" $S generate "$tmp/past.st" --prompt-tokens 1
mkst "$tmp/far.st" '{"a":{"dtype":"F32","shape":[1],"data_offsets":[9223372036854775800,9223372036854775804]}}' 8
expect2 "safetensors: offsets near 2^63" "beyond the data buffer" $S generate "$tmp/far.st" --prompt-tokens 1
mkst "$tmp/over.st" '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}' 12
expect2 "safetensors: overlapping tensors" "overlap in the data buffer" $S generate "$tmp/over.st" --prompt-tokens 1
mkst "$tmp/neg.st" '{"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}' 8
expect2 "safetensors: a negative offset" "non-negative integers" $S generate "$tmp/neg.st" --prompt-tokens 1
mkst "$tmp/str.st" '{"a":{"dtype":"F32","shape":[1],"data_offsets":["0","4"]}}' 8
expect2 "safetensors: offsets that are strings" "non-negative integers" $S generate "$tmp/str.st" --prompt-tokens 1
mkst "$tmp/frac.st" '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4.0]}}' 8
expect2 "safetensors: a fractional offset" "non-negative integers" $S generate "$tmp/frac.st" --prompt-tokens 1
mkst "$tmp/big64.st" '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551620]}}' 8
expect2 "safetensors: an offset beyond 2^64" "non-negative integers" $S generate "$tmp/big64.st" --prompt-tokens 1
mkst "$tmp/rev.st" '{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}}' 8
expect2 "safetensors: end before begin" "end 4 < begin 8" $S generate "$tmp/rev.st" --prompt-tokens 1
mkst "$tmp/dt.st" '{"a":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}}' 8
expect2 "safetensors: an unknown dtype" "unknown dtype 'F8'" $S generate "$tmp/dt.st" --prompt-tokens 1
mkst "$tmp/dtnum.st" '{"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}' 8
expect2 "safetensors: a dtype that is not a string" "dtype is not a string" $S generate "$tmp/dtnum.st" --prompt-tokens 1
mkst "$tmp/size.st" '{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,8]}}' 8
expect2 "safetensors: shape x dtype != byte length" "span 8 bytes but F32 shape needs 16" $S generate "$tmp/size.st" --prompt-tokens 1
mkst "$tmp/ovf.st" '{"a":{"dtype":"F64","shape":[4611686018427387904,4],"data_offsets":[0,8]}}' 8
expect2 "safetensors: a shape whose size overflows" "shape size overflows" $S generate "$tmp/ovf.st" --prompt-tokens 1
mkst "$tmp/dims.st" '{"a":{"dtype":"U8","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,1]}}' 8
expect2 "safetensors: 9 dimensions" "shape has 9 dimensions" $S generate "$tmp/dims.st" --prompt-tokens 1
mkst "$tmp/deep.st" "{\"a\":$(printf '[%.0s' $(seq 100000))" 0
expect2 "safetensors: JSON nested 100000 deep" "nesting deeper than 64" $S generate "$tmp/deep.st" --prompt-tokens 1
mkst "$tmp/arr.st" '[1,2]' 0
expect2 "safetensors: a header that is not an object" "header is not a JSON object" $S generate "$tmp/arr.st" --prompt-tokens 1
mkst "$tmp/comma.st" '{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},}' 8
expect2 "safetensors: a trailing comma in the header" "bad JSON header" $S generate "$tmp/comma.st" --prompt-tokens 1
mkst "$tmp/dupn.st" '{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}' 8
expect2 "safetensors: a tensor name twice" "duplicate tensor name 'a'" $S generate "$tmp/dupn.st" --prompt-tokens 1
mkst "$tmp/nuln.st" '{"a\u0000b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}' 8
expect2 "safetensors: a NUL in a tensor name" "contains a NUL character" $S generate "$tmp/nuln.st" --prompt-tokens 1
mkst "$tmp/emptyn.st" '{"":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}' 8
expect2 "safetensors: an empty tensor name" "a tensor has an empty name" $S generate "$tmp/emptyn.st" --prompt-tokens 1
mkst "$tmp/longn.st" "{\"$(printf 'n%.0s' $(seq 400))\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}" 8
expect2 "safetensors: a 400-byte tensor name" "tensor name too long" $S generate "$tmp/longn.st" --prompt-tokens 1
mkst "$tmp/meta.st" '{"__metadata__":{"hlab.config":5}}' 0
expect2 "safetensors: metadata that is not a string" "is not a string" $S generate "$tmp/meta.st" --prompt-tokens 1
mkst "$tmp/surr.st" '{"__metadata__":{"k":"\ud800"}}' 0
expect2 "safetensors: a lone surrogate in a string" "bad JSON header" $S generate "$tmp/surr.st" --prompt-tokens 1

# ---- run stores that are not ours
sqlite3 "$tmp/other.db" "create table foo(x); insert into foo values (1);"
cp "$tmp/other.db" "$tmp/other.copy"
expect2 "train --db: a SQLite file of another schema" "not an hlab run store" $S train "$T" --db "$tmp/other.db" --quiet
check "the other application's database is untouched" "cmp -s '$tmp/other.db' '$tmp/other.copy'"
expect2 "runs --db: a SQLite file of another schema" "not an hlab run store" $S runs --db "$tmp/other.db"
printf 'just some text, not a database at all......................................................\n' > "$tmp/text.db"
expect2 "train --db: a text file" "not a SQLite database" $S train "$T" --db "$tmp/text.db" --quiet
expect2 "runs --db: a missing store" "no run store at" $S runs --db "$tmp/nope.db"
sqlite3 "$tmp/newer.db" "pragma application_id = 1751933282; pragma user_version = 99; create table meta(key, value);"
expect2 "train --db: a store of a newer schema" "written by a newer hlab (schema version 99" $S train "$T" --db "$tmp/newer.db" --quiet
expect2 "merge: an input of another schema" "not an hlab run store" $S merge "$tmp/other.db" -o "$tmp/merged.db"
expect2 "eval by run id: a store of another schema" "not an hlab run store" $S eval 1 --db "$tmp/other.db"

# ---- bad command-line values
expect2 "--threads -1" "--threads expects an integer in [1, 1024], got \"-1\"" $S bench train "$T" --threads -1
expect2 "--steps abc" "--steps expects an integer in [1, 1048576], got \"abc\"" $S bench train "$T" --steps abc
expect2 "--batch 1e3" "--batch expects an integer" $S bench train "$T" --batch 1e3
expect2 "--jobs 0" "--jobs expects an integer in [1, 256]" $S sweep experiments/quickstart.yaml --jobs 0 --dry-run
expect2 "--shard 4/4" "--shard expects I/N with 0 <= I < N" $S sweep experiments/quickstart.yaml --shard 4/4 --dry-run
expect2 "--context 99999999999999999999" "--context expects an integer" $S info "$T" --context 99999999999999999999
expect2 "--bytes 9" "--bytes expects an integer in [1, 8]" $S info "$T" --bytes 9
expect2 "--limit -1" "--limit expects an integer" $S data export "$T" --limit -1
expect2 "--split nope" "--split must be" $S eval "$W" --db none --split nope
expect2 "generate -n -5" "bad value for an option: \"-5\"" $S generate "$W" --prompt-tokens 1 -n -5
expect2 "generate --threads -1" "bad value for an option: \"-1\"" $S generate "$W" --prompt-tokens 1 --threads -1
expect2 "generate --temperature nan" "bad value for an option: \"nan\"" $S generate "$W" --prompt-tokens 1 --temperature nan
expect2 "generate --prompt-tokens 1,x" "--prompt-tokens must be comma-separated ids in [0, 32)" $S generate "$W" --prompt-tokens 1,x
expect2 "generate --prompt-tokens 40 (beyond the vocabulary)" "ids in [0, 32)" $S generate "$W" --prompt-tokens 40
expect2 "an option without its value" "option --db needs a value" $S train "$T" --db
expect2 "an unknown option" "unknown option \"--bogus\"" $S train "$T" --bogus 1
expect2 "an unknown command" "unknown command \"trian\"" $S trian "$T"
expect2 "--where without an operator" "expected KEY<op>VALUE" $S runs --db "$tmp/runs.db" --where model.d_model
expect2 "--where 45 times" "too many filters (at most 38 --where)" $S runs --db "$tmp/runs.db" $(for i in $(seq 45); do echo --where seed=1; done)
expect2 "merge of 300 stores (silently dropped beyond 256 before)" "more than 256 input stores" $S merge $(for i in $(seq 300); do echo "$tmp/runs.db"; done) -o "$tmp/m300.db"
expect2 "bench with an unknown measurement" "bench needs what to measure" $S bench flops

echo "bad inputs checked: $nbad"

# ==== hostile environment ===================================================================

# An unwritable, special or full output location: a clear error before any training, and a good
# checkpoint already there is never replaced by a partial one.
cp "$W" "$tmp/good.safetensors"; cp "$W" "$tmp/good.copy"
$S train "$T" --db none --out /proc/hlab-no-such-dir/w.safetensors > "$tmp/out" 2>&1; rc=$?
check "--out under /proc: exit 2 before training, names the place ($rc)" \
  "[ $rc = 2 ] && grep -q 'cannot write there: cannot create /proc/hlab-no-such-dir/w.safetensors.tmp' '$tmp/out' && ! grep -q '^run ' '$tmp/out' && ! grep -qE 'Sanitizer|runtime error' '$tmp/out'"
mkdir "$tmp/adir"
$S train "$T" --db none --out "$tmp/adir" --quiet > "$tmp/out" 2>&1; rc=$?
check "--out a directory: exit 2 before training ($rc)" "[ $rc = 2 ] && grep -q 'adir: is a directory; give a file name' '$tmp/out' && [ -d '$tmp/adir' ]"
# a FIFO (as /dev/stdout or a shell's >(...) are) is written directly, never renamed over
mkfifo "$tmp/fifo"
$H train "$T" --db none --out "$tmp/ref.safetensors" --quiet > /dev/null 2>&1
timeout 30 cat "$tmp/fifo" > "$tmp/fifo.out" & reader=$!   # bounded: a regression must fail, not hang
$S train "$T" --db none --out "$tmp/fifo" --quiet > "$tmp/out" 2>&1; rc=$?
wait $reader
check "--out a FIFO: the checkpoint streams through it, the FIFO stays a FIFO ($rc)" \
  "[ $rc = 0 ] && [ -p '$tmp/fifo' ] && cmp -s '$tmp/fifo.out' '$tmp/ref.safetensors'"
# a full device: /dev/full, or (as root, who could replace /dev/full itself if this regressed)
# a copy of it in $tmp
full=/dev/full
[ "$(id -u)" = 0 ] && mknod "$tmp/full" c 1 7 2> /dev/null && full="$tmp/full"
if [ -c "$full" ]; then
    $S train "$T" --db none --out "$full" --quiet > "$tmp/out" 2>&1; rc=$?
    check "--out $full: exit 1, 'No space left on device', the device still a device ($rc)" \
      "[ $rc = 1 ] && grep -q 'No space left on device' '$tmp/out' && [ -c '$full' ]"
fi
# a full disk: a file size limit (SIGXFSZ ignored, so write() fails with EFBIG) smaller than the checkpoint
( trap '' XFSZ; ulimit -f 4; exec $H train "$T" --db none --out "$tmp/good.safetensors" --quiet ) > "$tmp/out" 2>&1; rc=$?
check "--out on a full disk: exit 1 with the write error ($rc)" "[ $rc = 1 ] && grep -q 'cannot write' '$tmp/out' && grep -q 'File too large' '$tmp/out'"
check "... the good checkpoint there is unchanged, no temporary left" "cmp -s '$tmp/good.safetensors' '$tmp/good.copy' && ! ls '$tmp'/good.safetensors.tmp.* > /dev/null 2>&1"
( trap '' XFSZ; ulimit -f 4; exec $H forward "$W" --tokens "$tmp/tok.txt" --grads "$tmp/good.safetensors" ) > "$tmp/out" 2>&1; rc=$?
check "forward --grads on a full disk: fails, the old file unchanged ($rc)" "[ $rc = 1 ] && cmp -s '$tmp/good.safetensors' '$tmp/good.copy'"
if [ "$(id -u)" != 0 ]; then   # root writes anywhere: a read-only directory only stops others
    mkdir "$tmp/ro" && chmod 555 "$tmp/ro"
    $S train "$T" --db none --out "$tmp/ro/w.safetensors" --quiet > "$tmp/out" 2>&1; rc=$?
    check "--out in a read-only directory: exit 2 ($rc)" "[ $rc = 2 ] && grep -q 'Permission denied' '$tmp/out'"
    chmod 755 "$tmp/ro"
fi

# data export and CSV export: the same rules
$S data export "$T" --limit 2 --out "$tmp/adir" > "$tmp/out" 2>&1; rc=$?
check "data export --out a directory: exit 2 ($rc)" "[ $rc = 2 ] && grep -q 'is a directory' '$tmp/out'"
$H data export "$T" --limit 2 --out "$tmp/ex.jsonl" 2> /dev/null; cp "$tmp/ex.jsonl" "$tmp/ex.copy"
timeout 30 cat "$tmp/fifo" > "$tmp/fifo.out" & reader=$!   # bounded: a regression must fail, not hang
$S data export "$T" --limit 2 --out "$tmp/fifo" > "$tmp/out" 2>&1; rc=$?
wait $reader
check "data export --out a FIFO: written through it ($rc)" "[ $rc = 0 ] && [ -p '$tmp/fifo' ] && cmp -s '$tmp/fifo.out' '$tmp/ex.jsonl'"
( trap '' XFSZ; ulimit -f 1; exec $H data export "$T" --limit 64 --out "$tmp/ex.jsonl" ) > "$tmp/out" 2>&1; rc=$?
check "data export on a full disk: fails, the old file unchanged ($rc)" "[ $rc = 1 ] && cmp -s '$tmp/ex.jsonl' '$tmp/ex.copy' && grep -q 'cannot' '$tmp/out'"
$S export runs --db "$tmp/runs.db" --out "$tmp/adir" > "$tmp/out" 2>&1; rc=$?
check "export --out a directory: exit 2 ($rc)" "[ $rc = 2 ] && grep -q 'is a directory' '$tmp/out'"
timeout 30 cat "$tmp/fifo" > "$tmp/fifo.out" & reader=$!   # bounded: a regression must fail, not hang
$S export runs --db "$tmp/runs.db" --out "$tmp/fifo" > "$tmp/out" 2>&1; rc=$?
wait $reader
check "export --out a FIFO: the CSV through it ($rc)" "[ $rc = 0 ] && [ -p '$tmp/fifo' ] && grep -q '^id,experiment' '$tmp/fifo.out'"

# Reports: strings from the experiment and its configs reach the HTML escaped (and the Markdown
# without raw HTML), and never a shell or gnuplot as code: the description, paper, a claim and
# a run name carry markup, quotes, $(...), backticks and a gnuplot system() call.
cat > "$tmp/base.yaml" <<'Y'
seed: 1
model: {d_model: 8, vocab_size: 32, pattern: "*-", attention: {heads: 2}, mlp: {hidden: 8}}
data: {task: mqar, seq_len: 16, mqar: {num_kv_pairs: 2, train_examples: 64, valid_examples: 16, test_examples: 16}}
train: {batch_size: 4, steps: 4, log_every: 2}
Y
cat > "$tmp/exp.yaml" <<Y
name: hostile
description: "<script>alert('d')</script> \$(touch $tmp/pwned1) \`touch $tmp/pwned2\` ' ; system('touch $tmp/pwned3') ; '"
paper: "a <b>paper</b> & co"
base: base.yaml
variants:
  plain: {name: "<img src=x onerror=alert(1)>"}
  odd: {model.pattern: "**", name: "<i>v</i>'\"\$(touch $tmp/pwned4)"}
seeds: [1]
claims:
  - claim: "<svg onload=alert(2)> \`touch $tmp/pwned5\` ' ; system('touch $tmp/pwned6') ; '"
    check: "odd > plain"
Y
$H sweep "$tmp/exp.yaml" --db "$tmp/rep.db" --quiet > "$tmp/out" 2>&1; src=$?
$S report "$tmp/exp.yaml" --db "$tmp/rep.db" --out "$tmp/rep" > "$tmp/out" 2>&1; rc=$?
html="$tmp/rep/report.html"; md="$tmp/rep/report.md"
check "report of an experiment with hostile strings: written (sweep $src, report $rc)" "[ $src = 0 ] && [ $rc = 0 ] && [ -s '$html' ] && ! grep -qE 'Sanitizer|runtime error' '$tmp/out'"
check "... no markup from the experiment in the HTML" "! grep -qE '<script>alert|<svg onload|<b>paper' '$html'"
check "... the strings are there, escaped" "grep -qF '&lt;script&gt;alert' '$html' && grep -qF '&lt;svg onload=alert(2)&gt;' '$html' && grep -qF 'a &lt;b&gt;paper&lt;/b&gt; &amp; co' '$html'"
check "... no raw HTML in the Markdown (\\< shows as <)" "! grep -qE '(^|[^\\\\])<(script|svg|b>)' '$md' && grep -qF '\\<script>' '$md'"
check "... nothing was executed (no shell, no gnuplot system())" "! ls '$tmp'/pwned* > /dev/null 2>&1"
check "... gnuplot is spawned without a shell (no popen or system in core/)" "! grep -nE '\\b(popen|system)\\(' core/*.c"

# --out of a report: a place that is not a report is never replaced
mkdir "$tmp/precious"; echo keep > "$tmp/precious/notes.txt"
$S report "$tmp/exp.yaml" --db "$tmp/rep.db" --out "$tmp/precious" > "$tmp/out" 2>&1; rc=$?
check "report --out a directory that is not a report: exit 2, untouched ($rc)" \
  "[ $rc = 2 ] && grep -q 'is not an hlab report' '$tmp/out' && [ \"\$(cat '$tmp/precious/notes.txt')\" = keep ] && [ \$(ls -A '$tmp/precious' | wc -l) = 1 ]"
$S report "$tmp/exp.yaml" --db "$tmp/rep.db" --out "$tmp/fifo" > "$tmp/out" 2>&1; rc=$?
check "report --out a FIFO: exit 2, the FIFO stays ($rc)" "[ $rc = 2 ] && [ -p '$tmp/fifo' ] && grep -q 'is not a directory' '$tmp/out'"
$S report "$tmp/exp.yaml" --db "$tmp/rep.db" --out /proc/hlab-x/rep > "$tmp/out" 2>&1; rc=$?
check "report --out under /proc: a clear error ($rc)" "[ $rc = 1 ] && grep -q 'cannot create /proc/hlab-x/rep' '$tmp/out' && ! grep -qE 'Sanitizer|runtime error' '$tmp/out'"
# a full disk: the same experiment with a 200 KB description, under a 100 KB file size limit
# (the store's 32 KB shared-memory file still fits)
cp "$html" "$tmp/rep.copy"
{ cat "$tmp/exp.yaml"; printf 'paper: "%s"\n' "$(head -c 200000 /dev/zero | tr '\0' x)"; } | grep -v '^paper: "a' > "$tmp/exp2.yaml"
( trap '' XFSZ; ulimit -f 100; exec $H report "$tmp/exp2.yaml" --db "$tmp/rep.db" --out "$tmp/rep" ) > "$tmp/out" 2>&1; rc=$?
check "report on a full disk: fails, the previous report intact, no staging left ($rc)" \
  "[ $rc = 1 ] && cmp -s '$html' '$tmp/rep.copy' && ! ls -d '$tmp'/rep.tmp-* > /dev/null 2>&1"

# SQL: values only as bound parameters. Statically: no SQL built with printf in core/ (the one
# exception, runs --where, prints a column name and an operator chosen from fixed lists); and
# filters that would inject SQL match nothing and drop nothing.
check "no printf-built SQL (sqlite3_mprintf, %q, a printf into SELECT/INSERT/UPDATE/DELETE with %s)" \
  "! grep -nE 'sqlite3_(v?m|v?sn)printf|%q|%Q|printf\\([^;]*\"[^\"]*(SELECT|INSERT|UPDATE|DELETE)[^\"]*%s' core/*.c | grep -v 'p\\.%s %s ?'"
$S runs --db "$tmp/rep.db" --experiment "x' OR '1'='1" > "$tmp/out" 2>&1; rc=$?
check "runs --experiment with a quote injection: no rows, no error ($rc)" "[ $rc = 0 ] && grep -qx '0 runs' '$tmp/out'"
$S runs --db "$tmp/rep.db" --where "name=x'; DROP TABLE runs; --" > "$tmp/out" 2>&1; rc=$?
n=$(sqlite3 "$tmp/rep.db" "select count(*) from runs")
check "runs --where with DROP TABLE: nothing dropped ($rc, $n runs)" "[ $rc = 0 ] && [ '$n' = 2 ]"
v=$(sqlite3 "$tmp/rep.db" "select value_text from params where key = 'name' order by run_id limit 1")
check "a config string is stored as it was written ($v)" "[ '$v' = '<img src=x onerror=alert(1)>' ]"

# merge reads exactly the file named, whatever its name means in a SQLite URI ('?', '#', '%41')
cp "$tmp/rep.db" "$tmp/e%41 q?x#y.db"; cp "$tmp/runs.db" "$tmp/eA q"
$S merge "$tmp/e%41 q?x#y.db" -o "$tmp/merged.db" > "$tmp/out" 2>&1; rc=$?
n=$(sqlite3 "$tmp/merged.db" "select count(*) from runs" 2> /dev/null)
check "merge of a store named 'e%41 q?x#y.db': its own 2 runs ($rc, $n)" "[ $rc = 0 ] && [ '$n' = 2 ]"

echo "$pass passed, $fail failed"
