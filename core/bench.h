// bench.h: `hlab bench ...` (bench.c): measurements of this machine that performance numbers are
// judged against. Benchmarks print numbers; no test times anything.
#pragma once
#include "model.h"

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

// The sgemm table as numbers: GFLOP/s of each product on 1 thread, with OpenBLAS's own `threads`
// threads, and with our split of the rows over `threads` (quick: one 256 square only). Fills at
// most BENCH_MAX_SGEMM cells and the peaks: *peak1 on 1 thread, *peakn on `threads` (the best of
// the two ways). Returns the number of cells.
#define BENCH_MAX_SGEMM 16
typedef struct { const char *what; int M, N, K; double g1, gblas, gsplit; } SgemmCell;
int bench_sgemm_cells(int quick, int threads, SgemmCell *cells, double *peak1, double *peakn);
// GFLOP/s of a 1024 square split over `threads` threads: bench train's yardstick.
double bench_sgemm_square(int threads);

// Whole training steps of a built model (threads already set with ops_init_threads): allocates
// it for B x T tokens, two untimed steps (one when the first takes over a second), then `steps`
// timed ones (at most BENCH_MAX_STEPS) with the model's profile on; with budget_s > 0 the timing
// stops after 3 steps once the timed steps took more than budget_s seconds (r->steps says how
// many ran). Leaves the model allocated (model_free is the caller's).
#define BENCH_MAX_STEPS 64
typedef struct {
    int B, T, steps;                 // steps: timed steps that ran
    double params;
    double step_s, mean_step_s;      // median and mean wall time of a step
    double tokens_per_s;             // B x T / median step
    double flops_per_token, gflops;  // 3 x forward FLOPs per token (hlab info), and per median step
    double model_mb, act_mb;         // weights + gradients + AdamW moments; activations, scratch, batch
    double rss_mb, peak_rss_mb;      // the process's resident memory after the steps, and its peak so far
    int nparts;
    ProfPart parts[MAX_PROF_PARTS];  // seconds per step of each part (Model.profile)
} TrainMeasure;
void bench_train_measure(Model *m, int B, int T, int steps, double budget_s, TrainMeasure *r);
