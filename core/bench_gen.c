// bench_gen.c: `hlab bench generate CONFIG...`: the inference claims of the seed papers, measured.
//
//   decode     per-token latency and state memory against the number of tokens generated
//              (Falcon Mamba's plot: flat for an SSM, growing with the KV cache for attention).
//              The latency at a mark is the median step time of the window of tokens just
//              before it (a median, so that one preempted step does not move the curve).
//   prefill    time to first token against prompt length (Zamba2's claim): the parallel forward
//              over the prompt, the states taken from it, and the first token's logits; best of 3.
//   max context  the longest context whose state fits in a memory budget next to the weights
//              (Jamba's figure), computed from the blocks' own state sizes; where it is finite and
//              below --measure-limit positions, the generator is allocated at that size, the
//              growth of the process's resident memory is measured, and one step is taken at the
//              last position to show it runs.
//
// Weights are random (speed does not depend on them). Every number is also returned to the
// caller as rows (BenchGenRow) so that the suite can record them.
#include "bench_gen.h"
#include "common.h"
#include "generate.h"
#include "keys.h"
#include "machine.h"
#include "model.h"
#include "ops.h"
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// Resident memory of this process in bytes (/proc/self/statm), 0 where unavailable.
static double rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    long size = 0, res = 0;
    int n = fscanf(f, "%ld %ld", &size, &res);
    fclose(f);
    return n == 2 ? (double)res * sysconf(_SC_PAGESIZE) : 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void emit(BenchGenSink *sink, const Model *m, const char *arch, const char *kind, const char *axis, double x,
                 const char *metric, double value, const char *unit) {
    if (!sink || !sink->row) return;
    BenchGenRow r = {arch, kind, axis, m->C, x, metric, value, unit};
    sink->row(sink->ctx, &r);
}

static int marks_up_to(long n, long *marks) {
    int k = 0;
    for (long t = 256; t <= n; t *= 2) marks[k++] = t;
    if (k == 0 || marks[k - 1] != n) marks[k++] = n;
    return k;
}

// The decode curve: prompt of 16 random tokens, then n steps feeding random tokens.
static void bench_decode(Model *m, const char *arch, long n, BenchGenSink *sink) {
    const int P = 16;
    Generator g;
    char msg[256];
    model_alloc(m, 1, P, 1);
    model_init(m, 1);
    if (gen_init(&g, m, (int)(P + n + 1), msg, sizeof msg) != 0) die("%s", msg);
    Rng rng;
    rng_seed(&rng, 5);
    int prompt[16];
    for (int i = 0; i < P; i++) prompt[i] = (int)rng_below(&rng, m->V);
    gen_prefill(&g, prompt, P);
    long marks[40];
    int nm = marks_up_to(n, marks), mi = 0;
    double *lat = xmalloc((size_t)n * sizeof(double));
    printf("  decode   %8s %12s %12s %12s\n", "tokens", "ms/token", "state MB", "RSS MB");
    for (long i = 0; i < n; i++) {
        int tok = (int)rng_below(&rng, m->V);
        double t0 = now_seconds();
        gen_step(&g, tok);
        lat[i] = now_seconds() - t0;
        if (mi < nm && i + 1 == marks[mi]) {
            long w = marks[mi] / 4 < 256 ? marks[mi] / 4 : 256;
            double *win = xmalloc((size_t)w * sizeof(double));
            memcpy(win, lat + i + 1 - w, (size_t)w * sizeof(double));
            qsort(win, (size_t)w, sizeof(double), cmp_double);
            double med = win[w / 2] * 1e3, st = gen_state_bytes(m, g.pos) / 1048576.0, rss = rss_bytes() / 1048576.0;
            free(win);
            printf("  decode   %8ld %12.4f %12.3f %12.1f\n", marks[mi], med, st, rss);
            emit(sink, m, arch, "decode", "tokens", (double)marks[mi], "ms_per_token", med, "ms");
            emit(sink, m, arch, "decode", "tokens", (double)marks[mi], "state_mb", st, "MB");
            emit(sink, m, arch, "decode", "tokens", (double)marks[mi], "rss_mb", rss, "MB");
            mi++;
        }
    }
    free(lat);
    gen_free(&g);
    model_free(m);
}

// Time to first token against prompt length.
static void bench_prefill(Model *m, const char *arch, const int *lens, int nlens, BenchGenSink *sink) {
    int maxP = 1;
    for (int i = 0; i < nlens; i++) if (lens[i] > maxP) maxP = lens[i];
    Generator g;
    char msg[256];
    model_alloc(m, 1, maxP, 1);
    model_init(m, 1);
    if (gen_init(&g, m, maxP + 1, msg, sizeof msg) != 0) die("%s", msg);
    int *tok = xmalloc((size_t)maxP * sizeof(int));
    Rng rng;
    rng_seed(&rng, 6);
    for (int i = 0; i < maxP; i++) tok[i] = (int)rng_below(&rng, m->V);
    gen_prefill(&g, tok, lens[0]);   // untimed: first use of BLAS buffers
    printf("  prefill  %8s %12s %12s\n", "prompt", "TTFT ms", "tokens/s");
    for (int i = 0; i < nlens; i++) {
        double best = INFINITY;
        for (int r = 0; r < 3; r++) {
            double t0 = now_seconds();
            gen_prefill(&g, tok, lens[i]);
            double t = now_seconds() - t0;
            if (t < best) best = t;
        }
        printf("  prefill  %8d %12.2f %12.0f\n", lens[i], best * 1e3, lens[i] / best);
        emit(sink, m, arch, "prefill", "prompt", lens[i], "ttft_ms", best * 1e3, "ms");
    }
    free(tok);
    gen_free(&g);
    model_free(m);
}

// The longest context whose state fits next to the weights in `budget` bytes.
static void bench_max_context(Model *m, const char *arch, double budget, long measure_limit, BenchGenSink *sink) {
    double weights = (double)m->nparams * sizeof(real);
    const long cap = INT_MAX;   // state_size takes an int: beyond 2^31 positions counts as unbounded
    long ctx;
    if (weights + gen_state_bytes(m, 1) > budget) ctx = 0;
    else if (weights + gen_state_bytes(m, cap) <= budget) ctx = cap;   // the state does not grow: no limit
    else {
        long lo = 1, hi = cap;   // fits at lo, not at hi
        while (hi - lo > 1) {
            long mid = lo + (hi - lo) / 2;
            if (weights + gen_state_bytes(m, mid) <= budget) lo = mid; else hi = mid;
        }
        ctx = lo;
    }
    if (ctx == cap) printf("  max context in %.0f MB: unbounded (state %.3f MB at any length, weights %.1f MB)\n", budget / 1048576.0,
                           gen_state_bytes(m, 1) / 1048576.0, weights / 1048576.0);
    else printf("  max context in %.0f MB: %ld positions (weights %.1f MB + state %.1f MB)\n", budget / 1048576.0, ctx,
                weights / 1048576.0, gen_state_bytes(m, ctx) / 1048576.0);
    emit(sink, m, arch, "max_context", "budget_mb", budget / 1048576.0, "positions", ctx == cap ? INFINITY : (double)ctx, "positions");
    // measured: allocate at that size (or at measure_limit for an unbounded state) and step once at the end
    long at = ctx == cap ? measure_limit : ctx;
    if (at < 2 || at > measure_limit) return;
    model_alloc(m, 1, 1, 1);
    model_init(m, 1);
    double r0 = rss_bytes();
    Generator g;
    char msg[256];
    if (gen_init(&g, m, (int)at, msg, sizeof msg) != 0) die("%s", msg);
    double grown = rss_bytes() - r0;
    int tok = 1;
    gen_prefill(&g, &tok, 1);
    g.pos = (int)at - 1;   // the cached positions are zeros: the step still reads all of them
    double t0 = now_seconds();
    gen_step(&g, 1);
    double t = now_seconds() - t0;
    printf("  measured at %ld positions: state allocation grew RSS by %.1f MB (computed %.1f MB); one step %.3f ms\n", at,
           grown / 1048576.0, gen_state_bytes(m, at) / 1048576.0, t * 1e3);
    emit(sink, m, arch, "max_context", "positions", (double)at, "measured_state_mb", grown / 1048576.0, "MB");
    emit(sink, m, arch, "max_context", "positions", (double)at, "step_ms", t * 1e3, "ms");
    gen_free(&g);
    model_free(m);
}

int bench_generate_run(const BenchGenOptions *o, BenchGenSink *sink) {
    MachineInfo mi;
    machine_info(&mi);
    ops_init_threads(o->threads > 0 ? o->threads : 1);
    printf("generation on %s, OpenBLAS core %s, %d thread(s), code %s\n", mi.cpu, mi.blas_core, ops_threads(), mi.code_version);
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
        const char *base = strrchr(o->configs[c], '/') ? strrchr(o->configs[c], '/') + 1 : o->configs[c];
        char arch[128];
        snprintf(arch, sizeof arch, "%.*s", (int)(strcspn(base, ".")), base);
        printf("%s: %s, %.0f parameters\n", arch, m.pattern, model_param_count(&m));
        fflush(stdout);
        int ok = 1;
        for (int l = 0; l < m.nsub; l++)
            if (m.layers[l].type->cache != CACHE_NONE && !m.layers[l].type->step) ok = 0;
        if (!ok) {
            fprintf(stderr, "hlab: %s: a block of this model has no inference step\n", o->configs[c]);
            emit(sink, &m, arch, "generate", NULL, NAN, "unsupported", NAN, NULL);
            rc = EXIT_BADINPUT;
        } else {
            bench_decode(&m, arch, o->tokens, sink);
            // model_free cleared the model: build it again for each measurement
            model_build(&m, &cfg, &err);
            bench_prefill(&m, arch, o->prompt_lens, o->nprompt_lens, sink);
            model_build(&m, &cfg, &err);
            bench_max_context(&m, arch, o->budget_mb * 1048576.0, o->measure_limit, sink);
        }
        if (m.layers) model_free(&m);
        config_free(&cfg);
        fflush(stdout);
    }
    return rc;
}
