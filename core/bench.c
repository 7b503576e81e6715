// bench.c: `hlab bench sgemm` and `hlab bench train`.
//
// `hlab bench sgemm`: the machine's own single-precision matrix-product peak, the
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
#include "info.h"
#include "keys.h"
#include "machine.h"
#include "model.h"
#include "ops.h"
#include "optim.h"
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

// The products of the table: squares, then the products of a training step at d_model 128 and
// 512 (B x T = 16 x 512 rows): qkv (3C), the MLP's up projection (8C/3 x 2 for SwiGLU) and
// Mamba's in_proj (2 x expand 2 = 4C).
static const Shape all_shapes[] = {
    {256, 256, 256, "square"}, {1024, 1024, 1024, "square"}, {2048, 2048, 2048, "square"},
    {8192, 384, 128, "qkv, C 128"}, {8192, 688, 128, "SwiGLU up, C 128"}, {8192, 512, 128, "Mamba in_proj, C 128"},
    {8192, 1536, 512, "qkv, C 512"}, {8192, 2736, 512, "SwiGLU up, C 512"}, {8192, 2048, 512, "Mamba in_proj, C 512"},
};

int bench_sgemm_cells(int quick, int threads, SgemmCell *cells, double *peak1, double *peakn) {
    int n = (int)(sizeof all_shapes / sizeof all_shapes[0]);
    if (quick) n = 1;   // the tests: one small product, to check the table, not the machine
    if (threads < 1) threads = 1;
    size_t maxa = 0, maxb = 0, maxc = 0;
    for (int i = 0; i < n; i++) {
        const Shape *s = &all_shapes[i];
        if ((size_t)s->M * s->K > maxa) maxa = (size_t)s->M * s->K;
        if ((size_t)s->K * s->N > maxb) maxb = (size_t)s->K * s->N;
        if ((size_t)s->M * s->N > maxc) maxc = (size_t)s->M * s->N;
    }
    float *A = alloc_touched(maxa * sizeof(float)), *B = alloc_touched(maxb * sizeof(float)), *C = alloc_touched(maxc * sizeof(float));
    Rng rng;
    rng_seed(&rng, 1);
    for (size_t i = 0; i < maxa; i++) A[i] = (float)(rng_uniform(&rng) - 0.5);
    for (size_t i = 0; i < maxb; i++) B[i] = (float)(rng_uniform(&rng) - 0.5);
    *peak1 = *peakn = 0;
    for (int i = 0; i < n; i++) {
        const Shape *s = &all_shapes[i];
        SgemmCell *c = &cells[i];
        c->what = s->what; c->M = s->M; c->N = s->N; c->K = s->K;
        c->g1 = measure(1, 1, s, A, B, C);
        c->gblas = measure(threads, 1, s, A, B, C);
        c->gsplit = measure(1, threads, s, A, B, C);
        if (c->g1 > *peak1) *peak1 = c->g1;
        if (c->gblas > *peakn) *peakn = c->gblas;
        if (c->gsplit > *peakn) *peakn = c->gsplit;
    }
    free(A); free(B); free(C);
    return n;
}

int bench_sgemm_main(const BenchOptions *o) {
    MachineInfo mi;
    machine_info(&mi);
    int cores = mi.cores > 0 ? mi.cores : 1;
    printf("sgemm GFLOP/s on %s (%d cores), OpenBLAS core %s, code %s\n", mi.cpu, cores, mi.blas_core, mi.code_version);
    if (machine_blas_warning()) fprintf(stderr, "hlab: warning: %s\n", machine_blas_warning());
    fflush(stdout);
    SgemmCell cells[BENCH_MAX_SGEMM];
    double peak1, peak2;
    int n = bench_sgemm_cells(o->quick, cores, cells, &peak1, &peak2);
    printf("%-22s %6s %6s %6s  %10s %14s %12s\n", "product", "M", "N", "K", "1 thread", "BLAS threads", "split rows");
    for (int i = 0; i < n; i++)
        printf("%-22s %6d %6d %6d  %10.1f %14.1f %12.1f\n", cells[i].what, cells[i].M, cells[i].N, cells[i].K, cells[i].g1,
               cells[i].gblas, cells[i].gsplit);
    printf("peak: %.1f GFLOP/s on 1 thread, %.1f on %d threads (best of BLAS threads and split rows)\n", peak1, peak2, cores);
    return 0;
}

double bench_sgemm_square(int threads) {
    // a 1024 square split over the threads: what bench train divides by
    static float A[1024 * 1024], Bm[1024 * 1024], Cm[1024 * 1024];
    Rng init;
    rng_seed(&init, 3);
    for (int i = 0; i < 1024 * 1024; i++) { A[i] = (float)(rng_uniform(&init) - 0.5); Bm[i] = (float)(rng_uniform(&init) - 0.5); }
    Shape sq = {1024, 1024, 1024, "square"};
    return measure(1, threads, &sq, A, Bm, Cm);
}

// ---------------------------------------------------------------------------------------------
// `hlab bench train CONFIG...`: tokens/s of whole training steps (forward, backward, AdamW) on
// random tokens with every position labelled (language modelling), and the GFLOP/s that achieves:
// 3 x the forward FLOPs per token (hlab info's count at the mean position; backward costs about
// twice the forward), divided by the step time. Memory is every buffer the step uses.

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

void bench_train_measure(Model *m, int B, int T, int steps, double budget_s, TrainMeasure *r) {
    memset(r, 0, sizeof *r);
    if (steps < 1) steps = 1;
    if (steps > BENCH_MAX_STEPS) steps = BENCH_MAX_STEPS;
    r->B = B; r->T = T; r->steps = steps;
    size_t mem0 = alloc_touched_bytes();
    model_alloc(m, B, T, B * T);
    size_t mem1 = alloc_touched_bytes();
    model_init(m, 1);
    AdamW opt;
    adamw_init(&opt, m, 0.9, 0.95, 1e-8, 0.1);
    size_t mem2 = alloc_touched_bytes();
    int *tok = alloc_touched((size_t)B * T * sizeof(int)), *tgt = alloc_touched((size_t)B * T * sizeof(int));
    size_t mem3 = alloc_touched_bytes();
    // the model: weights, gradients, AdamW's moments; activations: everything else the step uses
    double wg = 2.0 * m->nparams * sizeof(real);
    r->model_mb = (wg + (double)(mem2 - mem1)) / 1048576.0;
    r->act_mb = ((double)(mem1 - mem0) - wg + (double)(mem3 - mem2)) / 1048576.0;
    Rng rng;
    rng_seed(&rng, 7);
    for (long i = 0; i < (long)B * T; i++) tok[i] = (int)(rng_uniform(&rng) * m->V);
    for (long i = 0; i < (long)B * T; i++) tgt[i] = (i + 1) % T ? tok[i + 1] : tok[i];
    double t[BENCH_MAX_STEPS], timed = 0;
    int s = -2;
    for (; s < steps; s++) {   // two untimed steps first (first touch of BLAS buffers, caches)
        if (s == 0) { m->profile = 1; model_profile_reset(m); }
        // a long step: one untimed step warms up enough, and 3 timed ones give a median
        if (s == -1 && t[0] > 1.0) continue;
        if (budget_s > 0 && s >= 3 && timed > budget_s) break;
        double t0 = now_seconds();
        model_zero_grad(m);
        model_forward(m, tok, tgt, B, T);
        model_backward(m);
        double t1 = now_seconds();
        adamw_step(&opt, m->params, m->grads, 1e-4, 1.0);
        double t2 = now_seconds();
        model_profile_add(m, "optimizer", PASS_UPDATE, t2 - t1);
        if (s >= 0) timed += t[s] = t2 - t0;
        else if (s == -2) t[0] = t2 - t0;
    }
    steps = r->steps = s;
    m->profile = 0;
    r->rss_mb = machine_rss_mb(0);
    r->peak_rss_mb = machine_rss_mb(1);
    double sum = 0;
    for (int s = 0; s < steps; s++) sum += t[s];
    r->mean_step_s = sum / steps;
    qsort(t, (size_t)steps, sizeof(double), cmp_double);
    r->step_s = steps % 2 ? t[steps / 2] : 0.5 * (t[steps / 2 - 1] + t[steps / 2]);
    r->tokens_per_s = B * T / r->step_s;
    ModelStats st;
    model_stats(m, T, 4, &st);
    r->flops_per_token = 3.0 * st.flops_token_mean;
    r->gflops = r->flops_per_token * B * T / r->step_s / 1e9;
    r->params = model_param_count(m);
    // seconds per step, in the order of the data's path: embedding, the blocks (in order of first
    // appearance), head+loss, optimizer
    for (int stage = 0; stage < 4; stage++)
        for (int i = 0; i < m->nprof; i++) {
            const char *n = m->prof[i].name;
            int where = !strcmp(n, "embedding") ? 0 : !strcmp(n, "head+loss") ? 2 : !strcmp(n, "optimizer") ? 3 : 1;
            if (where != stage) continue;
            ProfPart *q = &r->parts[r->nparts++];
            *q = m->prof[i];
            for (int p = 0; p < NPASS; p++) q->t[p] /= steps;
        }
    free(tok); free(tgt);
    adamw_free(&opt);
}

int bench_train_main(const BenchOptions *o) {
    MachineInfo mi;
    machine_info(&mi);
    ops_init_threads(o->threads);
    double peak = bench_sgemm_square(ops_threads());
    printf("training steps on %s, OpenBLAS core %s, %d thread(s), code %s; sgemm 1024^3 on %d thread(s): %.1f GFLOP/s\n", mi.cpu,
           mi.blas_core, ops_threads(), mi.code_version, ops_threads(), peak);
    printf("%-28s %-18s %9s %5s %6s %10s %9s %8s %10s\n", "config", "pattern", "params", "B", "T", "tokens/s", "GFLOP/s", "of peak",
           "memory MB");
    int rc = 0;
    for (int c = 0; c < o->nconfigs; c++) {
        Config cfg;
        ConfError err;
        Model m;
        if (config_load(&cfg, o->configs[c], o->sets, o->nsets, all_key_tables(), &err) != 0 || model_build(&m, &cfg, &err) != 0) {
            fprintf(stderr, "hlab: %s\n", err.msg);
            rc = EXIT_BADINPUT;
            continue;
        }
        int B = o->batch > 0 ? o->batch : (int)cfg_int(&cfg, "train.batch_size");
        int T = o->seq > 0 ? o->seq : (int)cfg_int(&cfg, "data.seq_len");
        TrainMeasure r;
        bench_train_measure(&m, B, T, o->steps > 0 ? o->steps : 5, 0, &r);
        const char *name = strrchr(o->configs[c], '/') ? strrchr(o->configs[c], '/') + 1 : o->configs[c];
        printf("%-28.28s %-18.18s %9.0f %5d %6d %10.0f %9.1f %7.0f%% %10.1f\n", name, m.pattern, r.params, B, T, r.tokens_per_s,
               r.gflops, 100 * r.gflops / peak, r.model_mb + r.act_mb);
        fflush(stdout);
        model_free(&m);
        config_free(&cfg);
    }
    return rc;
}
