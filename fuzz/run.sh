#!/usr/bin/env bash
# fuzz/run.sh SECONDS TARGET...: runs each libFuzzer target (build/fuzz/fuzz_NAME) for SECONDS
# on one core, on its corpus build/fuzz/corpus/NAME (kept between runs, so fuzzing resumes where
# it stopped) seeded from fuzz/seeds/NAME and, for the config loader, every YAML under configs/.
# A finding is written to build/fuzz/findings/ and fails the target. Prints one line per
# target with its executions and "N passed, N failed" (the tests' convention).
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
secs=${1:?usage: fuzz/run.sh SECONDS TARGET...}; shift
pass=0; fail=0
for t in "$@"; do
    name=$(basename "$t"); short=${name#fuzz_}
    corpus=build/fuzz/corpus/$short; findings=build/fuzz/findings; log=build/fuzz/$short.log
    mkdir -p "$corpus" "$findings"
    seeds=()
    [ -d "fuzz/seeds/$short" ] && seeds+=("fuzz/seeds/$short")
    if [ "$short" = config ]; then   # every shipped config and experiment file
        mkdir -p build/fuzz/seeds-config
        find configs experiments -name '*.yaml' -exec cp {} build/fuzz/seeds-config/ \; 2> /dev/null
        seeds+=(build/fuzz/seeds-config)
    fi
    dict=(); [ -f "fuzz/$short.dict" ] && dict=(-dict="fuzz/$short.dict")
    [ "$short" = config ] && dict=(-dict=fuzz/yaml.dict)
    # detect_leaks: a loader that leaks on bad input would leak in every long-running sweep worker
    ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
        "$t" "$corpus" "${seeds[@]}" "${dict[@]}" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -max_len=8192 -print_final_stats=1 -artifact_prefix="$findings/$short-" > "$log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    if [ $rc = 0 ]; then
        echo "ok   fuzz: $name: ${execs:-?} executions in ${secs} s, ${cov:-cov ?}, corpus $(ls "$corpus" | wc -l) inputs, no finding"
        pass=$((pass+1))
    else
        echo "FAIL fuzz: $name: exit $rc after ${execs:-?} executions; see $log and $findings/"
        grep -E 'ERROR|contract broken|runtime error|SUMMARY' "$log" | head -5
        fail=$((fail+1))
    fi
done
echo "$pass passed, $fail failed"
