// bench.h: `hlab bench ...` (bench.c): measurements of this machine that performance numbers are
// judged against. Benchmarks print numbers; no test times anything.
#pragma once

typedef struct {
    int quick;              // sgemm: one small product only (what the tests run: the table's form)
    const char **configs; int nconfigs;   // train: the configs to measure
    char **sets; int nsets;               // train: --set overrides applied to every config
    int batch, seq, steps, threads;       // train: 0 = the config's batch and length, 5 steps, all cores
} BenchOptions;

// `hlab bench sgemm`: cblas_sgemm GFLOP/s on 1 thread, with OpenBLAS's threads, and with our own
// split of the rows, on square products and on a training step's shapes. Returns 0.
int bench_sgemm_main(const BenchOptions *o);
// `hlab bench train CONFIG...`: tokens/s and achieved GFLOP/s (against the sgemm yardstick at
// the same thread count) of whole training steps on random tokens, and the step's memory.
// Returns 0, or 2 when a config could not be loaded.
int bench_train_main(const BenchOptions *o);
