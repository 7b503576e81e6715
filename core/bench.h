// bench.h: `hlab bench ...` (bench.c): measurements of this machine that performance numbers are
// judged against. Benchmarks print numbers; no test times anything.
#pragma once

typedef struct {
    int quick;   // one small product only (what the tests run: the table's form, not the machine)
} BenchOptions;

// `hlab bench sgemm`: cblas_sgemm GFLOP/s on 1 thread, with OpenBLAS's threads, and with our own
// split of the rows, on square products and on a training step's shapes. Returns 0.
int bench_sgemm_main(const BenchOptions *o);
