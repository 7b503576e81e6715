// store.h: the run store, one SQLite file (default results/hlab.db) recording every run: its
// resolved config and parameters, its metrics over time and its evaluations; and the numbers of
// `hlab bench suite`, which belong to the machine rather than to a run. The schema is documented
// at the top of store.c.
//
// Concurrency: many processes on one host may write the same file at once (a sweep launching
// runs in parallel). The file is in WAL mode; every write is one BEGIN IMMEDIATE transaction, so
// writers queue on the lock (busy_timeout 30 s) instead of failing, and a transaction that still
// meets SQLITE_BUSY is rolled back and retried for up to 60 s. Nothing is lost. Never put the
// file on a network file system (WAL needs shared memory on one host).
//
// A Store is one connection: use it from one thread, and never across fork() (open a new one
// in the child).
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "config.h"

typedef struct Store Store;

// "results/hlab.db"
const char *store_default_path(void);

// Opens or creates the store (creating parent directories), sets WAL mode, busy_timeout 30000 ms,
// synchronous NORMAL, foreign keys on, and creates or migrates the schema. Refuses a file that is
// not SQLite, a SQLite database of another application and one written by a newer hlab.
// Returns NULL with the reason in err on failure.
Store *store_open(const char *path, char *err, size_t errcap);
// Flushes buffered metrics (a failure is reported on stderr: those metrics are lost) and closes.
void store_close(Store *s);

typedef struct RunInfo {
    const char *experiment, *variant;  // "" (or NULL) for a plain `hlab train`: stored as NULL
    const char *identity;              // hash of canonical config + seed (required)
    const char *config_yaml;           // the canonical resolved config (required)
    const char *pattern;               // the expanded layer pattern
    long seed;
    const char *code_version, *host, *cpu, *blas_core;
    int threads;                       // OpenMP threads (of each rank)
    double params_total, params_active;
    int ranks;                         // data-parallel MPI ranks that train the run; 0 or 1 both
                                       // mean a single process (the store writes max(1, ranks))
} RunInfo;

// Inserts the run (status 'running', started_at = now, UTC ISO-8601) and one params row per
// resolved config key of cfg (cfg may be NULL). Creates the experiment row on first use.
// Returns the run id, or -1 (see store_errmsg).
int64_t store_run_begin(Store *s, const RunInfo *ri, const Config *cfg);

// What store_run_claim found for an identity.
enum { CLAIM_NEW, CLAIM_RESTART, CLAIM_RESUME, CLAIM_SKIP_DONE, CLAIM_SKIP_DIVERGED, CLAIM_SKIP_RUNNING };
// Claims the run with ri->identity for this process, in one transaction, so that any number of
// sweeps over one store train each run once: returns a new run id (outcome CLAIM_NEW, or
// CLAIM_RESTART when a failed, interrupted or dead 'running' attempt is replaced: its row,
// metrics and evals are deleted, so there is one row per run), the old run's id (CLAIM_RESUME:
// such an attempt that recorded a checkpoint, to be continued from it: the row is marked
// 'running' by this process and keeps everything else), or 0 when it is done, diverged or
// running in a live process (CLAIM_SKIP_*), or -1 on error.
int64_t store_run_claim(Store *s, const RunInfo *ri, const Config *cfg, int *outcome);
// Reopens run `run`, whose identity must be `identity`, to continue it from a checkpoint taken
// after `step` steps, in one transaction: refuses a run that is done or diverged, or 'running' in
// a live process other than this one; otherwise sets status 'running', ended_at and error NULL,
// pid = this process on `host`, and deletes its metrics after `step` and its end-of-training
// evals (source 'train'), so that the continued run writes one consistent curve. Returns 0, or
// -1 (store_errmsg says why).
int store_run_reopen(Store *s, int64_t run, const char *identity, long step, const char *host);
// The status of the latest run with this identity: 1 (status filled), 0 none, -1 error.
int store_run_status(Store *s, const char *identity, char *status, size_t cap);

// Buffers one metric value in memory; store_flush writes all buffered values in one transaction.
// Call store_flush at every log step: what is still buffered when the process dies is lost.
// A NaN value is stored as NULL (SQLite has no NaN); infinities are kept.
int store_metric(Store *s, int64_t run, long step, double tokens, double wall, const char *name, double value);
// Returns 0, or -1 (the values stay buffered and the next flush tries again).
int store_flush(Store *s);

// Records one evaluation result, immediately. slice_json is a JSON object describing the slice
// (e.g. {"context": 4096, "depth": 0.5}); NULL or "" means "{}". count is the number of examples.
int store_eval(Store *s, int64_t run, const char *task, const char *split, const char *slice_json,
               const char *metric, double value, long count);

// One benchmark number (table benchmarks, see store.c): kind and metric are required; value NaN
// is stored as NULL; axes is a JSON object ({"d_model": 128, "seq_len": 256}), NULL or "" = "{}";
// suite, arch and unit NULL or "" are stored as NULL. created_at is set by the store.
typedef struct {
    const char *suite, *kind, *arch, *metric, *unit;
    double value;
    const char *axes;
    const char *code_version, *host, *cpu, *blas_core;
    int threads;
} BenchRecord;
// Records n rows in one transaction (all or none). Returns 0, or -1 (store_errmsg): a row without
// kind or metric, axes that are not a JSON object, or a database error.
int store_benchmarks(Store *s, const BenchRecord *rows, int n);

// The evals.source of the rows store_eval writes from now on: "train" (the default, NULL) for the
// scores at the end of training, "eval" or "eval: OVERRIDES" for `hlab eval`.
void store_set_eval_source(Store *s, const char *source);

// Records where a run's final weights were written (an absolute path). Returns 0 or -1.
int store_run_checkpoint(Store *s, int64_t run, const char *path);
// The checkpoint path of a run into path[cap]: returns 0, 1 when there is no such run, 2 when the
// run wrote no checkpoint, -1 on a database error.
int store_checkpoint_of(Store *s, int64_t run, char *path, size_t cap);
// The latest run whose checkpoint is `path` (absolute), 0 if none, -1 on error.
int64_t store_run_of_checkpoint(Store *s, const char *path);

// Flushes buffered metrics, then sets status (done|failed|diverged|interrupted), ended_at = now
// and error (NULL for none). Returns 0 or -1.
int store_run_end(Store *s, int64_t run, const char *status, const char *error);

// The SQLite connection, for read queries (hlab runs, hlab export). Writes go through the
// functions above.
struct sqlite3 *store_sqlite(Store *s);

// Copies into s every run of the store at src_path that s does not have finished: a run whose
// identity s has as done or diverged is skipped; one s has in another state is replaced. Runs keep
// their experiment names; ids are new. Each source run is one transaction; then the benchmark
// rows s does not have (by suite, time, host, kind, arch, metric and axes), in one more. Fills the counts;
// returns 0, or -1 (store_errmsg). The source file is only read.
int store_merge(Store *s, const char *src_path, long *copied, long *skipped);

// The message of the last failure of s.
const char *store_errmsg(Store *s);
