#!/usr/bin/env bash
# fuzz_smoke.sh: the short fuzzing run of `make test` (issue 8): each libFuzzer target (config
# loader, pattern parser, safetensors reader; fuzz/README.md) for FUZZ_SMOKE_SECONDS (default 10)
# on its kept corpus. Not a t_*.sh test: it needs `make fuzz` first, which `make test` does.
cd "$(dirname "$0")/.."
exec fuzz/run.sh "${FUZZ_SMOKE_SECONDS:-10}" build/fuzz/fuzz_*
