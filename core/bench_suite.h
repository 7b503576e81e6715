// bench_suite.h: `hlab bench suite` (bench_suite.c, report in bench_report.c): this machine's
// sgemm peak, training throughput and time breakdown of five architectures at two widths and two
// lengths, and their generation speed; every number recorded in the run store's benchmarks table
// and written up as a report.
#pragma once
#include "bench.h"
#include "bench_gen.h"
#include "machine.h"
#include "store.h"

typedef struct {
    const char *db;       // NULL: results/bench.db; "none": record nothing
    const char *out;      // NULL: reports/bench
    int quick;            // d_model 64, lengths 64 and 128, B x T = 512, 2 steps, short generation: for the tests
    int threads;          // 0: 2 (1 on a one-core machine)
} SuiteOptions;

// Runs the suite. Returns 0; 1 when something could not be measured, recorded or written (it
// says what and goes on with the rest); 2 when the store cannot be opened.
int bench_suite_main(const SuiteOptions *o);

// ---------------------------------------------------------------------------------------------
// The recorder: every number the suite measures, kept in memory for the report and written to
// the store (table benchmarks) by bench_log_flush, between measurements.

typedef struct {
    char kind[16], arch[32], metric[32], unit[16];
    double value;
    int d, T, B, threads;          // axes; 0: not an axis of this row
    char part[32], pass[12];       // the time breakdown: which part, which pass
    char axis[16];                 // generation: tokens | prompt | budget_mb | positions ("" none)
    double x;                      //   and where on it
    char extra[160];               // further axes as JSON members, e.g. "\"M\": 256, \"mode\": \"split rows\""
} BenchRow;

typedef struct {
    Store *store;                  // NULL: memory only
    char suite[64];                // benchmarks.suite of every row ("" = NULL)
    MachineInfo mi;
    BenchRow *rows;
    int n, cap, nstored;           // rows[0, nstored) are in the store
    int failed;                    // a write to the store failed (said on stderr)
    int gen_unsupported[8];        // per architecture of the suite: its generation gave "unsupported"
} BenchLog;

// Opens the store at db (NULL: none). Returns 0, or -1 with err filled.
int bench_log_open(BenchLog *lg, const char *db, const char *suite, char *err, size_t cap);
void bench_log_add(BenchLog *lg, const BenchRow *r);
// Writes the rows not yet stored, in one transaction. Returns 0, or -1 (said on stderr).
int bench_log_flush(BenchLog *lg);
void bench_log_close(BenchLog *lg);   // flushes, closes the store, frees the rows
// The sink bench_generate_run hands its rows to: they become rows of lg (kind decode, prefill,
// max_context, or generate/unsupported).
BenchGenSink bench_log_sink(BenchLog *lg);
// The axes of a row as a JSON object.
void bench_row_axes(const BenchRow *r, char *buf, size_t cap);
// The value of the first row matching kind, arch, metric and, where given (non-zero, non-NULL),
// d, T, part, pass, axis x (x is compared when axis is non-NULL); NaN when there is none.
double bench_log_get(const BenchLog *lg, const char *kind, const char *arch, const char *metric, int d, int T,
                     const char *part, const char *pass, const char *axis, double x);

// 1 when a training row claims more than 100% of the sgemm peak: the peak was measured while
// something else used the cores, and every fraction of it is suspect.
int bench_over_peak(const BenchLog *lg);

// The suite's architectures, in the order of its tables: configs/bench/NAME.yaml.
#define SUITE_NARCH 5
extern const char *const suite_archs[SUITE_NARCH];

// How the suite ran, for the report (bench_report.c); the numbers themselves are the log's rows.
typedef struct {
    const char *db, *out;          // the store ("none": not recorded) and the report directory
    char started[32];              // UTC ISO-8601
    int quick, threads, steps, tokens;   // tokens: B x T of every training step
    int nd, nT, ds[2], Ts[2];      // training widths and lengths
    int gen_d, gen_tokens;         // generation: width, tokens generated
    double gen_budget_mb;
    int ncells;                    // the sgemm table
    SgemmCell cells[BENCH_MAX_SGEMM];
    double peak1, peakn;           // sgemm peak on 1 thread and on `threads`
} SuitePlan;

// Writes out/report.md, out/report.html and out/plots/. Returns 0, or -1 with err filled.
int bench_report_write(const SuitePlan *p, const BenchLog *lg, char *err, size_t cap);
