// bench.c: `hlab bench sgemm`: the machine's own single-precision matrix-product peak, the
// yardstick every training-throughput number is divided by (issue 7). It measures cblas_sgemm on
// square products and on the shapes a training step issues (rows = batch x time, columns = a
// projection's width), three ways:
//   1 thread       OpenBLAS on one core
//   BLAS threads   OpenBLAS with as many threads as cores (its own split)
//   split rows     our OpenMP split of the rows, one single-threaded call per core (what the
//                  engine does in its projections)
// Each cell is the best of 3 timings of enough repetitions to last about 0.2 s, after one
// untimed call (first touch, BLAS buffers).
#include "bench.h"
#include "common.h"
#include "machine.h"
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern void openblas_set_num_threads(int);

typedef struct { int M, N, K; const char *what; } Shape;

// C (M,N) = A (M,K) . B (K,N), rows of A and C split into `parts` contiguous blocks.
static void product(int parts, const Shape *s, const float *A, const float *B, float *C) {
    if (parts <= 1) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->M, s->N, s->K, 1.0f, A, s->K, B, s->N, 0.0f, C, s->N);
        return;
    }
#pragma omp parallel for num_threads(parts) schedule(static)
    for (int p = 0; p < parts; p++) {
        int lo = (int)((long)s->M * p / parts), hi = (int)((long)s->M * (p + 1) / parts);
        if (hi > lo)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, hi - lo, s->N, s->K, 1.0f, A + (size_t)lo * s->K, s->K, B, s->N,
                        0.0f, C + (size_t)lo * s->N, s->N);
    }
}

// GFLOP/s of the best of 3 timed batches.
static double measure(int blas_threads, int split, const Shape *s, const float *A, const float *B, float *C) {
    openblas_set_num_threads(blas_threads);
    product(split, s, A, B, C);   // untimed: first touch of C, BLAS's own buffers
    double flops = 2.0 * s->M * s->N * s->K, t0 = now_seconds();
    product(split, s, A, B, C);
    double once = now_seconds() - t0;
    int reps = once > 0 ? (int)(0.2 / once) : 1000;
    if (reps < 1) reps = 1;
    double best = INFINITY;
    for (int trial = 0; trial < 3; trial++) {
        t0 = now_seconds();
        for (int r = 0; r < reps; r++) product(split, s, A, B, C);
        double t = (now_seconds() - t0) / reps;
        if (t < best) best = t;
    }
    openblas_set_num_threads(1);
    return flops / best / 1e9;
}

int bench_sgemm_main(const BenchOptions *o) {
    MachineInfo mi;
    machine_info(&mi);
    int cores = mi.cores > 0 ? mi.cores : 1;
    // squares, then the products of a training step at d_model 128 and 512 (B x T = 16 x 512 rows):
    // qkv (3C), the MLP's up projection (8C/3 x 2 for SwiGLU) and Mamba's in_proj (2 x expand 2 = 4C)
    Shape all[] = {
        {256, 256, 256, "square"}, {1024, 1024, 1024, "square"}, {2048, 2048, 2048, "square"},
        {8192, 384, 128, "qkv, C 128"}, {8192, 688, 128, "SwiGLU up, C 128"}, {8192, 512, 128, "Mamba in_proj, C 128"},
        {8192, 1536, 512, "qkv, C 512"}, {8192, 2736, 512, "SwiGLU up, C 512"}, {8192, 2048, 512, "Mamba in_proj, C 512"},
    };
    int n = (int)(sizeof all / sizeof all[0]);
    if (o->quick) n = 1;   // the tests: one small product, to check the table, not the machine
    size_t maxa = 0, maxb = 0, maxc = 0;
    for (int i = 0; i < n; i++) {
        if ((size_t)all[i].M * all[i].K > maxa) maxa = (size_t)all[i].M * all[i].K;
        if ((size_t)all[i].K * all[i].N > maxb) maxb = (size_t)all[i].K * all[i].N;
        if ((size_t)all[i].M * all[i].N > maxc) maxc = (size_t)all[i].M * all[i].N;
    }
    float *A = alloc_touched(maxa * sizeof(float)), *B = alloc_touched(maxb * sizeof(float)), *C = alloc_touched(maxc * sizeof(float));
    Rng rng;
    rng_seed(&rng, 1);
    for (size_t i = 0; i < maxa; i++) A[i] = (float)(rng_uniform(&rng) - 0.5);
    for (size_t i = 0; i < maxb; i++) B[i] = (float)(rng_uniform(&rng) - 0.5);

    printf("sgemm GFLOP/s on %s (%d cores), OpenBLAS core %s, code %s\n", mi.cpu, cores, mi.blas_core, mi.code_version);
    printf("%-22s %6s %6s %6s  %10s %14s %12s\n", "product", "M", "N", "K", "1 thread", "BLAS threads", "split rows");
    double peak1 = 0, peak2 = 0;
    for (int i = 0; i < n; i++) {
        const Shape *s = &all[i];
        double g1 = measure(1, 1, s, A, B, C), gb = measure(cores, 1, s, A, B, C), gs = measure(1, cores, s, A, B, C);
        if (g1 > peak1) peak1 = g1;
        if (gb > peak2) peak2 = gb;
        if (gs > peak2) peak2 = gs;
        printf("%-22s %6d %6d %6d  %10.1f %14.1f %12.1f\n", s->what, s->M, s->N, s->K, g1, gb, gs);
    }
    printf("peak: %.1f GFLOP/s on 1 thread, %.1f on %d threads (best of BLAS threads and split rows)\n", peak1, peak2, cores);
    free(A); free(B); free(C);
    return 0;
}
