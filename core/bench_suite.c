// bench_suite.c: `hlab bench suite`, the benchmark suite of issue 7 in one command:
//
//   sgemm      the yardstick: cblas_sgemm GFLOP/s on 1 thread and on --threads (bench.c's table)
//   train      five architectures (configs/bench/*.yaml: pure attention, pure Mamba-1, pure
//              Mamba-2, Jamba, Zamba2) at d_model 128 and 512 and lengths 256 and 2048, with the
//              batch chosen so that every step sees B x T = 4096 tokens: tokens/s (median step of
//              forward + backward + AdamW after two untimed ones; 3 steps after one untimed when
//              they are long, so that the widest hybrids take minutes, not a quarter of an hour),
//              achieved GFLOP/s and its
//              fraction of the sgemm peak at the same thread count, where the time goes (the
//              model's per-part profile), and memory (weights + gradients + AdamW moments,
//              activations, the process's resident set)
//   generate   the same five at d_model 128 (bench_gen.c): decode latency and state memory
//              against tokens generated, time to first token against prompt length, the longest
//              context in a memory budget. A model whose blocks cannot step yet is recorded as
//              unsupported and the suite goes on.
//
// Every number becomes a row of the run store's benchmarks table (default results/bench.db) as
// soon as its measurement is over (never inside one), and the report (default reports/bench) is
// written from the same rows. --quick shrinks everything (d_model 64, lengths 64 and 128, B x T =
// 512, 2 steps, short generation) so that the tests can run the whole path in seconds.
#include "bench_suite.h"
#include "common.h"
#include "keys.h"
#include "model.h"
#include "ops.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *const suite_archs[SUITE_NARCH] = {"attention", "mamba1", "mamba2", "jamba", "zamba2"};

static const char *const pass_names[NPASS] = {"forward", "backward", "update"};

// ---------------------------------------------------------------------------------------------
// the recorder

int bench_log_open(BenchLog *lg, const char *db, const char *suite, char *err, size_t cap) {
    memset(lg, 0, sizeof *lg);
    machine_info(&lg->mi);
    snprintf(lg->suite, sizeof lg->suite, "%s", suite ? suite : "");
    if (db && !(lg->store = store_open(db, err, cap))) return -1;
    return 0;
}

void bench_log_add(BenchLog *lg, const BenchRow *r) {
    if (lg->n == lg->cap) {
        lg->cap = lg->cap ? 2 * lg->cap : 256;
        lg->rows = xrealloc(lg->rows, lg->cap * sizeof *lg->rows);
    }
    lg->rows[lg->n++] = *r;
}

// JSON text: the names and words here are ours (no quotes or backslashes), numbers are finite.
void bench_row_axes(const BenchRow *r, char *buf, size_t cap) {
    size_t k = 0;
    int first = 1;
#define MEMBER(...) do { k += snprintf(buf + k, k < cap ? cap - k : 0, "%s", first ? "" : ", "); first = 0; \
                         k += snprintf(buf + k, k < cap ? cap - k : 0, __VA_ARGS__); } while (0)
    k += snprintf(buf, cap, "{");
    if (r->d) MEMBER("\"d_model\": %d", r->d);
    if (r->T) MEMBER("\"seq_len\": %d", r->T);
    if (r->B) MEMBER("\"batch\": %d", r->B);
    if (r->threads) MEMBER("\"threads\": %d", r->threads);
    if (r->part[0]) MEMBER("\"part\": \"%s\"", r->part);
    if (r->pass[0]) MEMBER("\"pass\": \"%s\"", r->pass);
    if (r->axis[0] && isfinite(r->x)) MEMBER("\"%s\": %.9g", r->axis, r->x);
    if (r->extra[0]) MEMBER("%s", r->extra);
#undef MEMBER
    if (k < cap) snprintf(buf + k, cap - k, "}");
}

int bench_log_flush(BenchLog *lg) {
    int n = lg->n - lg->nstored;
    if (!lg->store || n <= 0 || lg->failed) { lg->nstored = lg->n; return lg->failed ? -1 : 0; }
    BenchRecord *rec = xcalloc(n, sizeof *rec);
    char (*axes)[512] = xcalloc(n, sizeof *axes);
    for (int i = 0; i < n; i++) {
        const BenchRow *r = &lg->rows[lg->nstored + i];
        bench_row_axes(r, axes[i], sizeof axes[i]);
        rec[i] = (BenchRecord){lg->suite, r->kind, r->arch, r->metric, r->unit, r->value, axes[i], lg->mi.code_version,
                               lg->mi.host, lg->mi.cpu, lg->mi.blas_core, r->threads};
    }
    int rc = store_benchmarks(lg->store, rec, n);
    if (rc != 0) {   // said once; the numbers still go into the report
        fprintf(stderr, "hlab: bench: %d numbers not recorded: %s\n", n, store_errmsg(lg->store));
        lg->failed = 1;
    }
    lg->nstored = lg->n;
    free(rec);
    free(axes);
    return rc;
}

void bench_log_close(BenchLog *lg) {
    bench_log_flush(lg);
    store_close(lg->store);
    free(lg->rows);
    memset(lg, 0, sizeof *lg);
}

static void gen_row(void *ctx, const BenchGenRow *g) {
    BenchLog *lg = ctx;
    BenchRow r = {0};
    snprintf(r.kind, sizeof r.kind, "%s", g->kind);
    snprintf(r.arch, sizeof r.arch, "%s", g->arch);
    snprintf(r.metric, sizeof r.metric, "%s", g->metric);
    snprintf(r.unit, sizeof r.unit, "%s", g->unit ? g->unit : "");
    snprintf(r.axis, sizeof r.axis, "%s", g->axis ? g->axis : "");
    r.value = g->value;
    r.x = g->x;
    r.d = g->d_model;
    r.threads = ops_threads();
    bench_log_add(lg, &r);
    if (!strcmp(g->kind, "generate") && !strcmp(g->metric, "unsupported"))
        for (int a = 0; a < SUITE_NARCH; a++)
            if (!strcmp(g->arch, suite_archs[a])) lg->gen_unsupported[a] = 1;
}

BenchGenSink bench_log_sink(BenchLog *lg) { return (BenchGenSink){gen_row, lg}; }

double bench_log_get(const BenchLog *lg, const char *kind, const char *arch, const char *metric, int d, int T,
                     const char *part, const char *pass, const char *axis, double x) {
    for (int i = 0; i < lg->n; i++) {
        const BenchRow *r = &lg->rows[i];
        if (strcmp(r->kind, kind) || strcmp(r->metric, metric) || (arch && strcmp(r->arch, arch))) continue;
        if ((d && r->d != d) || (T && r->T != T)) continue;
        if ((part && strcmp(r->part, part)) || (pass && strcmp(r->pass, pass))) continue;
        if (axis && (strcmp(r->axis, axis) || r->x != x)) continue;
        return r->value;
    }
    return NAN;
}

int bench_over_peak(const BenchLog *lg) {
    for (int i = 0; i < lg->n; i++)
        if (!strcmp(lg->rows[i].kind, "train") && !strcmp(lg->rows[i].metric, "pct_of_peak") && lg->rows[i].value > 100) return 1;
    return 0;
}

// A row of a training measurement.
static void train_row(BenchLog *lg, const char *arch, int d, int T, int B, const char *metric, double value, const char *unit) {
    BenchRow r = {.value = value, .d = d, .T = T, .B = B, .threads = ops_threads()};
    snprintf(r.kind, sizeof r.kind, "train");
    snprintf(r.arch, sizeof r.arch, "%s", arch);
    snprintf(r.metric, sizeof r.metric, "%s", metric);
    snprintf(r.unit, sizeof r.unit, "%s", unit);
    bench_log_add(lg, &r);
}

// ---------------------------------------------------------------------------------------------
// the suite

// configs/bench/ARCH.yaml, from the working directory or else next to the hlab binary (so that
// the suite runs from anywhere in a checkout's parent as well as from its root). Returns 0 if found.
static int config_path(const char *arch, char *path, size_t cap) {
    snprintf(path, cap, "configs/bench/%s.yaml", arch);
    if (access(path, R_OK) == 0) return 0;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return -1;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) *slash = 0;
    snprintf(path, cap, "%s/configs/bench/%s.yaml", exe, arch);
    return access(path, R_OK) == 0 ? 0 : -1;
}

static void sgemm_part(SuitePlan *p, BenchLog *lg) {
    printf("\nsgemm GFLOP/s, 1 thread and %d (OpenBLAS's threads, our split of the rows):\n", p->threads);
    fflush(stdout);
    p->ncells = bench_sgemm_cells(p->quick, p->threads, p->cells, &p->peak1, &p->peakn);
    printf("%-22s %6s %6s %6s  %10s %14s %12s\n", "product", "M", "N", "K", "1 thread", "BLAS threads", "split rows");
    for (int i = 0; i < p->ncells; i++) {
        const SgemmCell *c = &p->cells[i];
        printf("%-22s %6d %6d %6d  %10.1f %14.1f %12.1f\n", c->what, c->M, c->N, c->K, c->g1, c->gblas, c->gsplit);
        const char *mode[3] = {"1 thread", "BLAS threads", "split rows"};
        double g[3] = {c->g1, c->gblas, c->gsplit};
        for (int k = 0; k < 3; k++) {
            BenchRow r = {.value = g[k], .threads = k ? p->threads : 1};
            strcpy(r.kind, "sgemm"); strcpy(r.metric, "gflops"); strcpy(r.unit, "GFLOP/s");
            snprintf(r.extra, sizeof r.extra, "\"product\": \"%s\", \"M\": %d, \"N\": %d, \"K\": %d, \"mode\": \"%s\"", c->what, c->M,
                     c->N, c->K, mode[k]);
            bench_log_add(lg, &r);
        }
    }
    printf("peak: %.1f GFLOP/s on 1 thread, %.1f on %d threads\n", p->peak1, p->peakn, p->threads);
    double peak[2] = {p->peak1, p->peakn};
    for (int k = 0; k < 2; k++) {
        BenchRow r = {.value = peak[k], .threads = k ? p->threads : 1};
        strcpy(r.kind, "sgemm"); strcpy(r.metric, "peak_gflops"); strcpy(r.unit, "GFLOP/s");
        bench_log_add(lg, &r);
    }
    bench_log_flush(lg);
}

// One architecture at one width and length. Returns 0, or -1 when its config did not load.
static int train_one(const SuitePlan *p, BenchLog *lg, const char *arch, int d, int T) {
    char path[4200], set_d[64], set_T[64];
    config_path(arch, path, sizeof path);
    snprintf(set_d, sizeof set_d, "model.d_model=%d", d);
    snprintf(set_T, sizeof set_T, "data.seq_len=%d", T);
    char *sets[2] = {set_d, set_T};
    Config cfg;
    ConfError err;
    Model m;
    if (config_load(&cfg, path, sets, 2, all_key_tables(), &err) != 0) {
        fprintf(stderr, "hlab: bench suite: %s\n", err.msg);
        return -1;
    }
    if (model_build(&m, &cfg, &err) != 0) {
        fprintf(stderr, "hlab: bench suite: %s\n", err.msg);
        config_free(&cfg);
        return -1;
    }
    int B = p->tokens / T > 0 ? p->tokens / T : 1;
    TrainMeasure r;
    bench_train_measure(&m, B, T, p->steps, p->quick ? 0 : 30, &r);
    double pct = p->peakn > 0 ? 100 * r.gflops / p->peakn : NAN;
    printf("%-10s %5d %5d %4d %10.0f %10.0f %9.2f %8.1f %7.0f%% %9.1f %9.1f %9.1f\n", arch, d, T, B, r.params, r.tokens_per_s,
           r.step_s * 1e3, r.gflops, pct, r.model_mb, r.act_mb, r.rss_mb);
    train_row(lg, arch, d, T, B, "tokens_per_s", r.tokens_per_s, "tokens/s");
    train_row(lg, arch, d, T, B, "step_ms", r.step_s * 1e3, "ms");
    train_row(lg, arch, d, T, B, "gflops", r.gflops, "GFLOP/s");
    train_row(lg, arch, d, T, B, "pct_of_peak", pct, "%");
    train_row(lg, arch, d, T, B, "params", r.params, "parameters");
    train_row(lg, arch, d, T, B, "flops_per_token", r.flops_per_token, "FLOP");
    train_row(lg, arch, d, T, B, "model_mb", r.model_mb, "MB");
    train_row(lg, arch, d, T, B, "act_mb", r.act_mb, "MB");
    train_row(lg, arch, d, T, B, "rss_mb", r.rss_mb, "MB");
    train_row(lg, arch, d, T, B, "peak_rss_mb", r.peak_rss_mb, "MB");
    // where the time goes: ms per step of each part and pass, printed as shares of the parts' sum
    double total = 0;
    for (int i = 0; i < r.nparts; i++)
        for (int k = 0; k < NPASS; k++) total += r.parts[i].t[k];
    printf("%10s", "");
    for (int i = 0; i < r.nparts; i++) {
        double part = 0;
        for (int k = 0; k < NPASS; k++) {
            part += r.parts[i].t[k];
            if (r.parts[i].t[k] <= 0) continue;
            BenchRow row = {.value = r.parts[i].t[k] * 1e3, .d = d, .T = T, .B = B, .threads = ops_threads()};
            strcpy(row.kind, "train"); strcpy(row.metric, "time_ms"); strcpy(row.unit, "ms");
            snprintf(row.arch, sizeof row.arch, "%s", arch);
            snprintf(row.part, sizeof row.part, "%s", r.parts[i].name);
            snprintf(row.pass, sizeof row.pass, "%s", pass_names[k]);
            bench_log_add(lg, &row);
        }
        printf(" %s %.0f%%", r.parts[i].name, total > 0 ? 100 * part / total : 0);
    }
    printf("\n");
    fflush(stdout);
    model_free(&m);
    config_free(&cfg);
    bench_log_flush(lg);
    return 0;
}

static int train_part(const SuitePlan *p, BenchLog *lg) {
    ops_init_threads(p->threads);
    printf("\ntraining steps (forward, backward, AdamW), B x T = %d tokens, median of %d after 2 untimed (3 after 1 when steps are long),"
           " %d thread(s);\n"
           "%% of the %.1f GFLOP/s sgemm peak on %d threads; memory: model = weights + gradients + AdamW, act = the rest\n",
           p->tokens, p->steps, ops_threads(), p->peakn, p->threads);
    printf("%-10s %5s %5s %4s %10s %10s %9s %8s %8s %9s %9s %9s\n", "arch", "d", "T", "B", "params", "tokens/s", "step ms", "GFLOP/s",
           "of peak", "model MB", "act MB", "RSS MB");
    int rc = 0;
    for (int i = 0; i < p->nd; i++)
        for (int j = 0; j < p->nT; j++)
            for (int a = 0; a < SUITE_NARCH; a++)
                if (train_one(p, lg, suite_archs[a], p->ds[i], p->Ts[j]) != 0) rc = 1;
    if (bench_over_peak(lg))
        printf("note: above 100%% of the peak: the sgemm peak was measured low (another process busy on these cores?); "
               "rerun on an idle machine\n");
    return rc;
}

static int generate_part(const SuitePlan *p, BenchLog *lg) {
    const char *paths[SUITE_NARCH];
    static char buf[SUITE_NARCH][4200];
    for (int a = 0; a < SUITE_NARCH; a++) {
        config_path(suite_archs[a], buf[a], sizeof buf[a]);
        paths[a] = buf[a];
    }
    char set_d[64];
    snprintf(set_d, sizeof set_d, "model.d_model=%d", p->gen_d);
    char *sets[1] = {set_d};
    static const int prompts_full[] = {128, 256, 512, 1024, 2048}, prompts_quick[] = {16, 32, 64};
    BenchGenOptions g = {.configs = paths, .nconfigs = SUITE_NARCH, .sets = sets, .nsets = 1, .tokens = p->gen_tokens,
                         .prompt_lens = p->quick ? prompts_quick : prompts_full, .nprompt_lens = p->quick ? 3 : 5,
                         .budget_mb = p->gen_budget_mb, .measure_limit = p->quick ? 4096 : 1L << 22, .threads = 1};
    printf("\ngeneration at d_model %d, one sequence, 1 thread: decode up to %d tokens, prefill, max context in %.0f MB\n", p->gen_d,
           p->gen_tokens, p->gen_budget_mb);
    fflush(stdout);
    BenchGenSink sink = bench_log_sink(lg);
    int grc = bench_generate_run(&g, &sink);
    bench_log_flush(lg);
    int nun = 0;
    for (int a = 0; a < SUITE_NARCH; a++) nun += lg->gen_unsupported[a];
    if (nun) {
        printf("generation not measured for");
        for (int a = 0, k = 0; a < SUITE_NARCH; a++)
            if (lg->gen_unsupported[a]) printf("%s %s", k++ ? "," : "", suite_archs[a]);
        printf(": a block has no inference step (recorded as kind 'generate', metric 'unsupported')\n");
    }
    // every block of the suite's five architectures has an inference step: any failure, a
    // missing step included, is the suite's failure (still recorded and reported above)
    return grc != 0 ? 1 : 0;
}

int bench_suite_main(const SuiteOptions *o) {
    SuitePlan p = {0};
    MachineInfo mi;
    machine_info(&mi);
    p.db = o->db ? o->db : "results/bench.db";
    p.out = o->out ? o->out : "reports/bench";
    p.quick = o->quick;
    p.threads = o->threads > 0 ? o->threads : mi.cores >= 2 ? 2 : 1;
    p.tokens = 4096;
    if (o->quick) {
        p.tokens = 512;
        p.nd = 1; p.ds[0] = 64;
        p.nT = 2; p.Ts[0] = 64; p.Ts[1] = 128;
        p.steps = 2;
        p.gen_d = 64; p.gen_tokens = 512; p.gen_budget_mb = 64;
    } else {
        p.nd = 2; p.ds[0] = 128; p.ds[1] = 512;
        p.nT = 2; p.Ts[0] = 256; p.Ts[1] = 2048;
        p.steps = 5;
        p.gen_d = 128; p.gen_tokens = 4096; p.gen_budget_mb = 256;
    }
    char path[4200];
    for (int a = 0; a < SUITE_NARCH; a++)
        if (config_path(suite_archs[a], path, sizeof path) != 0) {
            fprintf(stderr, "hlab: bench suite: configs/bench/%s.yaml not found here nor next to the hlab binary: run it from the "
                    "repository's root\n", suite_archs[a]);
            return EXIT_BADINPUT;
        }
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(p.started, sizeof p.started, "%Y-%m-%dT%H:%M:%SZ", &tm);
    char suite[64], err[1024];
    snprintf(suite, sizeof suite, "suite %s%s", p.started, o->quick ? " quick" : "");
    BenchLog lg;
    if (bench_log_open(&lg, strcmp(p.db, "none") ? p.db : NULL, suite, err, sizeof err) != 0) {
        fprintf(stderr, "hlab: bench suite: %s\n", err);
        return EXIT_BADINPUT;
    }
    printf("benchmark suite%s on %s (%d cores), OpenBLAS core %s, code %s, %d thread(s); recording into %s as '%s'\n",
           o->quick ? " (quick)" : "", mi.cpu, mi.cores, mi.blas_core, mi.code_version, p.threads,
           strcmp(p.db, "none") ? p.db : "no store", suite);
    if (machine_blas_warning()) fprintf(stderr, "hlab: warning: %s\n", machine_blas_warning());
    int rc = 0;
    sgemm_part(&p, &lg);
    rc |= train_part(&p, &lg);
    rc |= generate_part(&p, &lg);
    bench_log_flush(&lg);
    if (lg.failed) rc = 1;
    if (bench_report_write(&p, &lg, err, sizeof err) != 0) {
        fprintf(stderr, "hlab: bench suite: report: %s\n", err);
        rc = 1;
    } else
        printf("\nreport: %s/report.md and %s/report.html; %d numbers%s%s\n", p.out, p.out, lg.n,
               strcmp(p.db, "none") ? " recorded in " : " (not recorded)", strcmp(p.db, "none") ? p.db : "");
    bench_log_close(&lg);
    return rc;
}
