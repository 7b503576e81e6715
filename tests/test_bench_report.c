// test_bench_report.c: the bench suite's recorder and report on made-up numbers, so that every
// section is exercised whether or not the blocks can generate yet: a row's axes as JSON, looking
// rows up, generation curves and an unbounded max context in the tables and plots, unsupported and
// unmeasured architectures said as such, the time breakdown as shares that add up to 100%.
#include "bench_suite.h"
#include "test.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc(n + 1);
    if (fread(s, 1, n, f) != (size_t)n) n = 0;
    s[n] = 0;
    fclose(f);
    return s;
}

static int file_has(const char *path, const char *needle) {
    char *s = slurp(path);
    int ok = s && strstr(s, needle);
    free(s);
    return ok;
}

static void row(BenchLog *lg, const char *kind, const char *arch, const char *metric, double value, int d, int T, const char *part,
                const char *pass, const char *axis, double x) {
    BenchRow r = {.value = value, .d = d, .T = T, .B = T ? 512 / T : 0, .threads = 1, .x = x};
    snprintf(r.kind, sizeof r.kind, "%s", kind);
    snprintf(r.arch, sizeof r.arch, "%s", arch);
    snprintf(r.metric, sizeof r.metric, "%s", metric);
    snprintf(r.part, sizeof r.part, "%s", part ? part : "");
    snprintf(r.pass, sizeof r.pass, "%s", pass ? pass : "");
    snprintf(r.axis, sizeof r.axis, "%s", axis ? axis : "");
    bench_log_add(lg, &r);
}

int main(void) {
    test_group("axes");
    BenchRow r = {.d = 128, .T = 256, .B = 16, .threads = 2};
    strcpy(r.part, "mamba1"); strcpy(r.pass, "backward");
    char js[512];
    bench_row_axes(&r, js, sizeof js);
    CHECK(!strcmp(js, "{\"d_model\": 128, \"seq_len\": 256, \"batch\": 16, \"threads\": 2, \"part\": \"mamba1\", \"pass\": \"backward\"}"),
          "training axes: %s", js);
    BenchRow g = {.d = 64, .threads = 1, .x = 4096};
    strcpy(g.axis, "tokens");
    bench_row_axes(&g, js, sizeof js);
    CHECK(!strcmp(js, "{\"d_model\": 64, \"threads\": 1, \"tokens\": 4096}"), "generation axes: %s", js);
    BenchRow e = {0};
    strcpy(e.extra, "\"M\": 256, \"mode\": \"split rows\"");
    bench_row_axes(&e, js, sizeof js);
    CHECK(!strcmp(js, "{\"M\": 256, \"mode\": \"split rows\"}"), "extra members only: %s", js);
    BenchRow z = {0};
    bench_row_axes(&z, js, sizeof js);
    CHECK(!strcmp(js, "{}"), "no axes: %s", js);

    test_group("log");
    BenchLog lg;
    char err[1024];
    CHECK(bench_log_open(&lg, NULL, "suite test", err, sizeof err) == 0 && lg.store == NULL, "a log without a store");
    // training: attention at both lengths, mamba1 at one; the others were not measured
    for (int T = 64; T <= 128; T *= 2) {
        row(&lg, "train", "attention", "tokens_per_s", 1000.0 * T, 64, T, NULL, NULL, NULL, 0);
        row(&lg, "train", "attention", "pct_of_peak", 12.5, 64, T, NULL, NULL, NULL, 0);
        row(&lg, "train", "attention", "time_ms", 30, 64, T, "attention", "forward", NULL, 0);
        row(&lg, "train", "attention", "time_ms", 50, 64, T, "attention", "backward", NULL, 0);
        row(&lg, "train", "attention", "time_ms", 15, 64, T, "mlp", "forward", NULL, 0);
        row(&lg, "train", "attention", "time_ms", 5, 64, T, "optimizer", "update", NULL, 0);
    }
    row(&lg, "train", "mamba1", "tokens_per_s", 777, 64, 64, NULL, NULL, NULL, 0);
    row(&lg, "train", "mamba1", "time_ms", 10, 64, 64, "mamba1", "forward", NULL, 0);
    // jamba: only its breakdown (the plot folds the embedding into head+loss)
    row(&lg, "train", "jamba", "time_ms", 3, 64, 64, "head+loss", "forward", NULL, 0);
    row(&lg, "train", "jamba", "time_ms", 1, 64, 64, "embedding", "forward", NULL, 0);
    row(&lg, "train", "jamba", "time_ms", 6, 64, 64, "moe", "backward", NULL, 0);
    // generation: attention's latency and state grow, mamba1's do not; mamba2 cannot step
    for (int t = 256; t <= 1024; t *= 2) {
        row(&lg, "decode", "attention", "ms_per_token", 0.1 * t / 256, 64, 0, NULL, NULL, "tokens", t);
        row(&lg, "decode", "attention", "state_mb", 0.5 * t / 256, 64, 0, NULL, NULL, "tokens", t);
        row(&lg, "decode", "mamba1", "ms_per_token", 0.0625, 64, 0, NULL, NULL, "tokens", t);
        row(&lg, "decode", "mamba1", "state_mb", 0.0375, 64, 0, NULL, NULL, "tokens", t);
    }
    row(&lg, "prefill", "attention", "ttft_ms", 1.5, 64, 0, NULL, NULL, "prompt", 16);
    row(&lg, "prefill", "attention", "ttft_ms", 2.75, 64, 0, NULL, NULL, "prompt", 32);
    row(&lg, "prefill", "mamba1", "ttft_ms", 0.875, 64, 0, NULL, NULL, "prompt", 32);
    row(&lg, "max_context", "attention", "positions", 123456, 64, 0, NULL, NULL, "budget_mb", 64);
    row(&lg, "max_context", "mamba1", "positions", INFINITY, 64, 0, NULL, NULL, "budget_mb", 64);
    BenchGenSink sink = bench_log_sink(&lg);
    BenchGenRow un = {"mamba2", "generate", NULL, 64, NAN, "unsupported", NAN, NULL};
    sink.row(sink.ctx, &un);
    CHECK(lg.gen_unsupported[2] == 1 && lg.gen_unsupported[0] == 0, "the sink marks mamba2 (and only it) unsupported");
    CHECK(!strcmp(lg.rows[lg.n - 1].kind, "generate") && lg.rows[lg.n - 1].d == 64 && isnan(lg.rows[lg.n - 1].value),
          "the sink's row: kind generate, d_model 64, no value");
    CHECK(bench_log_get(&lg, "train", "attention", "tokens_per_s", 64, 128, NULL, NULL, NULL, 0) == 128000, "get by arch, d, T");
    CHECK(bench_log_get(&lg, "train", "attention", "time_ms", 64, 64, "mlp", "forward", NULL, 0) == 15, "get by part and pass");
    CHECK(bench_log_get(&lg, "decode", "attention", "state_mb", 0, 0, NULL, NULL, "tokens", 512) == 1.0, "get by generation axis");
    CHECK(isnan(bench_log_get(&lg, "train", "jamba", "tokens_per_s", 64, 64, NULL, NULL, NULL, 0)), "missing: NaN");

    test_group("report");
    char dir[] = "/tmp/hlab_bench_report_XXXXXX";
    if (!mkdtemp(dir)) die("mkdtemp");
    char out[256], md[300], csv[300];
    snprintf(out, sizeof out, "%s/r", dir);
    SuitePlan p = {.db = "none", .out = out, .started = "2025-01-31T12:00:00Z", .quick = 1, .threads = 1, .steps = 2, .tokens = 512,
                   .nd = 1, .ds = {64}, .nT = 2, .Ts = {64, 128}, .gen_d = 64, .gen_tokens = 1024, .gen_budget_mb = 64,
                   .ncells = 1, .cells = {{"square", 256, 256, 256, 50.5, 60.5, 70.5}}, .peak1 = 50.5, .peakn = 70.5};
    CHECK(bench_report_write(&p, &lg, err, sizeof err) == 0, "report written (%s)", err);
    snprintf(md, sizeof md, "%s/report.md", out);
    CHECK(file_has(md, "| square | 256 | 256 | 256 | 50.5 | 60.5 | 70.5 |"), "the sgemm table");
    CHECK(file_has(md, "| attention | 64 | 128 | 4 | - | 128000 |") && file_has(md, "| jamba | 64 | 64 | 8 | - | - |"),
          "training table: measured numbers, '-' where nothing was measured");
    CHECK(file_has(md, "| arch | d_model | T | attention | mlp | optimizer | mamba1 | head+loss | embedding | moe |") &&
          file_has(md, "| attention | 64 | 64 | 80.0% | 15.0% | 5.0% | - | - | - | - |") &&
          file_has(md, "| mamba1 | 64 | 64 | - | - | - | 100.0% | - | - | - |") &&
          file_has(md, "| jamba | 64 | 64 | - | - | - | - | 30.0% | 10.0% | 60.0% |"),
          "breakdown table: a column per part; attention 80%%, mlp 15%%, optimizer 5%% (forward and backward together)");
    CHECK(file_has(md, "| mamba1 | measured | 0.062 | 1024 | 0.037 | 0.88 | 32 | unbounded |"),
          "generation: mamba1's last decode mark, TTFT at the longest prompt, unbounded context");
    CHECK(file_has(md, "| attention | measured | 0.400 | 1024 | 2.000 | 2.75 | 32 | 123456 |"), "generation: attention's row");
    CHECK(file_has(md, "| mamba2 | no inference step |") && file_has(md, "**Not measured** for mamba2:"),
          "mamba2: no inference step, said above the table");
    CHECK(file_has(md, "| jamba | failed |"), "an architecture with no generation rows at all: failed");
    CHECK(file_has(md, "not recorded in a store (`--db none`)"), "no store: said so");
    CHECK(!file_has(md, "exceed 100% of the sgemm peak"), "12.5%% of peak: no warning about the peak");
    snprintf(csv, sizeof csv, "%s/plots/gen_decode_ms.csv", out);
    CHECK(file_has(csv, "# series 0: attention") && file_has(csv, "0,1024,0.4,") && file_has(csv, "1,512,0.0625,"),
          "decode plot data: a series per architecture with its points");
    snprintf(csv, sizeof csv, "%s/plots/train_breakdown.csv", out);
    char *b = slurp(csv);
    // the attention 64/64 row: attention, mlp, optimizer, mamba1 shares (mean, sd) then the label
    CHECK(b && strstr(b, "\n0,80,NaN,15,NaN,5,NaN,NaN,NaN,NaN,NaN,NaN,NaN,attention 64/64\n"),
          "breakdown plot, attention at T 64: 80 + 15 + 5 = 100");
    CHECK(b && strstr(b, "embedding+head+loss mean") && !strstr(b, ",embedding mean") &&
          strstr(b, "\n3,NaN,NaN,NaN,NaN,NaN,NaN,NaN,NaN,40,NaN,60,NaN,jamba 64/64\n"),
          "breakdown plot: the embedding folded into head+loss (jamba: 30 + 10 = 40, moe 60)");
    free(b);
    for (int i = 0; i < 6; i++) {
        const char *names[] = {"train_tokens_d64", "train_pct_peak", "train_breakdown", "gen_decode_ms", "gen_state_mb", "gen_ttft"};
        char svg[300];
        snprintf(svg, sizeof svg, "%s/plots/%s.svg", out, names[i]);
        CHECK(file_has(svg, "</svg>"), "plot %s drawn", names[i]);
    }
    // a fraction of peak above 100%: the peak was measured low, and the report says so
    row(&lg, "train", "mamba1", "pct_of_peak", 116, 64, 64, NULL, NULL, NULL, 0);
    CHECK(bench_over_peak(&lg) && bench_report_write(&p, &lg, err, sizeof err) == 0 && file_has(md, "exceed 100% of the sgemm peak"),
          "116%% of peak: the report warns that the peak was measured low");
    bench_log_close(&lg);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_summary();
}
