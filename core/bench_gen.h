// bench_gen.h: `hlab bench generate` (bench_gen.c): decode latency and state memory against
// tokens generated, time to first token against prompt length, max context in a memory budget.
#pragma once

typedef struct {
    const char **configs; int nconfigs;
    char **sets; int nsets;
    long tokens;              // decode: tokens generated (marks at 256, 512, ... and the last)
    const int *prompt_lens; int nprompt_lens;   // prefill: prompt lengths
    double budget_mb;         // max context: memory for weights + state
    long measure_limit;       // max context: allocate and step only up to this many positions
    int threads;              // 0: 1 (one sequence's step is too small to split)
} BenchGenOptions;

// One measurement: `metric` = value (unit) of architecture `arch` (width d_model) at axis = x.
// A model that cannot generate yet gives one row of kind "generate", metric "unsupported", value
// NaN, axis NULL. max_context "positions" is +inf when the state does not grow with the context.
typedef struct {
    const char *arch, *kind, *axis;   // kind: decode | prefill | max_context | generate
    int d_model;
    double x;
    const char *metric;
    double value;
    const char *unit;
} BenchGenRow;
typedef struct { void (*row)(void *ctx, const BenchGenRow *r); void *ctx; } BenchGenSink;

// Measures every config, prints as it goes, hands each number to sink (may be NULL).
// Returns 0, or 2 when a config could not be loaded or has a block without inference.
int bench_generate_run(const BenchGenOptions *o, BenchGenSink *sink);
