// store.c: the run store on SQLite. See store.h for the API and the concurrency contract.
//
// Schema, version 4 (PRAGMA application_id = 0x686c6162 'hlab', PRAGMA user_version = 4 and
// meta.schema_version = '4'):
//
//   meta(key TEXT PRIMARY KEY, value TEXT)
//       schema_version: the version of this schema, as text.
//   experiments(id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, created_at TEXT)
//       one row per experiment name, created by the first run that names it.
//   runs(id INTEGER PRIMARY KEY, experiment_id INTEGER REFERENCES experiments(id), variant TEXT,
//        identity TEXT NOT NULL, config TEXT NOT NULL, pattern TEXT, seed INTEGER,
//        status TEXT NOT NULL CHECK(status IN ('running','done','failed','diverged','interrupted')),
//        started_at TEXT, ended_at TEXT, code_version TEXT, host TEXT, cpu TEXT, blas_core TEXT,
//        threads INTEGER, params_total REAL, params_active REAL, error TEXT, checkpoint TEXT,
//        pid INTEGER, heartbeat REAL, ranks INTEGER NOT NULL DEFAULT 1)
//       one row per training run (or per checkpoint imported by `hlab eval CKPT`, variant
//       'imported'); checkpoint = absolute path of its final weights, or of its training checkpoint
//       (train.checkpoint_every; recorded when the run starts), NULL if none;
//       pid = the process training it on `host`, heartbeat = Unix time of its last metrics flush
//       (a sweep uses both to tell a live 'running' row from one whose process died). experiment_id and variant are NULL for a plain `hlab train`.
//       ranks = the number of MPI processes (data-parallel ranks) that trained the run, 1 for an
//       ordinary single-process run (and for every run recorded before version 4); threads = the
//       OpenMP threads of each rank.
//       identity = hash of canonical config + seed (code version not included) (not unique: a failed run may be
//       repeated); config = the canonical resolved YAML. Times are UTC ISO-8601
//       ("2025-01-31T12:00:00Z"); ended_at is NULL while running (or if the process was killed).
//       Indexes: runs_identity(identity), runs_experiment(experiment_id, variant).
//   params(run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, key TEXT NOT NULL,
//          value_num REAL, value_text TEXT, PRIMARY KEY(run_id, key))
//       every resolved config key (dotted path). Ints, floats and bools have value_num (bools 1/0)
//       AND value_text (canonical text); strings and "auto" only value_text.
//   metrics(run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, step INTEGER NOT NULL,
//           tokens REAL, wall REAL, name TEXT NOT NULL, value REAL)
//       training curves: value of `name` after `step` steps, `tokens` tokens seen, `wall` seconds.
//       A NaN value is stored as NULL. Index: metrics_run_name_step(run_id, name, step).
//   evals(run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, task TEXT NOT NULL,
//         split TEXT, slice TEXT NOT NULL DEFAULT '{}', metric TEXT NOT NULL, value REAL,
//         count INTEGER, source TEXT NOT NULL DEFAULT 'train')
//       evaluation results; slice is a JSON object naming the slice ({"context": 4096}), '{}' for
//       the whole split; count = examples behind the value; source = 'train' for the scores at the
//       end of training, 'eval' (or 'eval: OVERRIDES') for `hlab eval`. One row per (run, task,
//       split, slice, metric, source): recording it again replaces it.
//       Index: evals_run(run_id, task, metric).
//   benchmarks(id INTEGER PRIMARY KEY, suite TEXT, kind TEXT NOT NULL, arch TEXT, metric TEXT NOT NULL,
//              value REAL, unit TEXT, axes TEXT NOT NULL DEFAULT '{}', created_at TEXT,
//              code_version TEXT, host TEXT, cpu TEXT, blas_core TEXT, threads INTEGER)
//       one row per number `hlab bench suite` (and `hlab bench generate --db`) measured, not tied
//       to a run. kind = sgemm | train | decode | prefill | max_context | generate; arch = the
//       config's name (NULL for sgemm); axes = JSON object of where it was measured
//       ({"d_model": 128, "seq_len": 256, "batch": 16, "threads": 2}, "part"/"pass" for the time
//       breakdown, "tokens"/"prompt"/"budget_mb" for generation); suite = the invocation that
//       wrote it ("suite <created_at>", NULL for a standalone command). A NaN value is NULL.
//       Index: benchmarks_kind(kind, arch, metric).
//
// Migrations: migrations[v] takes the schema from version v to v + 1 and sets user_version and
// meta.schema_version itself; store_open applies the missing ones in one BEGIN IMMEDIATE
// transaction after re-reading the version inside it, so processes opening a new file at the
// same moment create the schema exactly once.
#include "store.h"
#include "common.h"
#include "json.h"
#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

#define HLAB_APPLICATION_ID 0x686c6162   // 'hlab'
#define BUSY_TIMEOUT_MS 30000
#define RETRY_SECONDS 60.0

static const char *const migrations[] = {
    // 0 -> 1
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);"
    "CREATE TABLE experiments(id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, created_at TEXT);"
    "CREATE TABLE runs(id INTEGER PRIMARY KEY, experiment_id INTEGER REFERENCES experiments(id), variant TEXT,"
    " identity TEXT NOT NULL, config TEXT NOT NULL, pattern TEXT, seed INTEGER,"
    " status TEXT NOT NULL CHECK(status IN ('running','done','failed','diverged','interrupted')),"
    " started_at TEXT, ended_at TEXT, code_version TEXT, host TEXT, cpu TEXT, blas_core TEXT,"
    " threads INTEGER, params_total REAL, params_active REAL, error TEXT);"
    "CREATE INDEX runs_identity ON runs(identity);"
    "CREATE INDEX runs_experiment ON runs(experiment_id, variant);"
    "CREATE TABLE params(run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, key TEXT NOT NULL,"
    " value_num REAL, value_text TEXT, PRIMARY KEY(run_id, key));"
    "CREATE TABLE metrics(run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, step INTEGER NOT NULL,"
    " tokens REAL, wall REAL, name TEXT NOT NULL, value REAL);"
    "CREATE INDEX metrics_run_name_step ON metrics(run_id, name, step);"
    "CREATE TABLE evals(run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, task TEXT NOT NULL,"
    " split TEXT, slice TEXT NOT NULL DEFAULT '{}', metric TEXT NOT NULL, value REAL, count INTEGER);"
    "CREATE INDEX evals_run ON evals(run_id, task, metric);"
    "INSERT OR REPLACE INTO meta(key, value) VALUES('schema_version', '1');"
    "PRAGMA application_id = 1751933282;"   // 0x686c6162
    "PRAGMA user_version = 1;",
    // 1 -> 2: where a run's final weights are (so `hlab eval RUN` finds them), and which evaluation
    // produced an evals row (re-running the same evaluation replaces its rows)
    "ALTER TABLE runs ADD COLUMN checkpoint TEXT;"
    "ALTER TABLE runs ADD COLUMN pid INTEGER;"
    "ALTER TABLE runs ADD COLUMN heartbeat REAL;"
    "ALTER TABLE evals ADD COLUMN source TEXT NOT NULL DEFAULT 'train';"
    "INSERT OR REPLACE INTO meta(key, value) VALUES('schema_version', '2');"
    "PRAGMA user_version = 2;",
    // 2 -> 3: benchmark numbers (hlab bench suite), which belong to a machine, not to a run
    "CREATE TABLE benchmarks(id INTEGER PRIMARY KEY, suite TEXT, kind TEXT NOT NULL, arch TEXT, metric TEXT NOT NULL,"
    " value REAL, unit TEXT, axes TEXT NOT NULL DEFAULT '{}', created_at TEXT, code_version TEXT, host TEXT, cpu TEXT,"
    " blas_core TEXT, threads INTEGER);"
    "CREATE INDEX benchmarks_kind ON benchmarks(kind, arch, metric);"
    "INSERT OR REPLACE INTO meta(key, value) VALUES('schema_version', '3');"
    "PRAGMA user_version = 3;",
    // 3 -> 4: how many MPI processes (data-parallel ranks) trained a run; earlier runs had one
    "ALTER TABLE runs ADD COLUMN ranks INTEGER NOT NULL DEFAULT 1;"
    "INSERT OR REPLACE INTO meta(key, value) VALUES('schema_version', '4');"
    "PRAGMA user_version = 4;",
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof *migrations))

typedef struct Metric { int64_t run; long step; double tokens, wall, value; char *name; } Metric;

struct Store {
    sqlite3 *db;
    char *path;
    Metric *buf;          // metrics waiting for store_flush
    int nbuf, capbuf;
    char *eval_source;    // evals.source of the next store_eval rows (NULL: 'train')
    char err[1024];
};

const char *store_default_path(void) { return "results/hlab.db"; }
const char *store_errmsg(Store *s) { return s->err; }
sqlite3 *store_sqlite(Store *s) { return s->db; }

static int seterr(Store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int seterr(Store *s, const char *fmt, ...) {
    va_list ap; va_start(ap, fmt);
    vsnprintf(s->err, sizeof s->err, fmt, ap);
    va_end(ap);
    return -1;
}

static int is_busy(int rc) { rc &= 0xff; return rc == SQLITE_BUSY || rc == SQLITE_LOCKED; }

// Sleeps a little longer each time (5 ms doubling to 250 ms) with some jitter, so that writers
// that collided do not collide again in lock step.
static void backoff(int *ms) {
    long jitter = (long)(now_seconds() * 1e6) % (*ms + 1);
    struct timespec ts = {0, (*ms + jitter) * 1000000L};
    nanosleep(&ts, NULL);
    if (*ms < 250) *ms *= 2;
}

static void utc_now(char out[32]) {
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

// ---- statement helpers: each sets s->err on failure and returns the SQLite result code ----

static int prepare(Store *s, sqlite3_stmt **st, const char *sql) {
    int rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
    if (rc != SQLITE_OK) seterr(s, "%s: %s", s->path, sqlite3_errmsg(s->db));
    return rc;
}

// Steps a statement that returns no rows, then resets it for the next bindings.
static int step_done(Store *s, sqlite3_stmt *st) {
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW) rc = SQLITE_OK;
    else seterr(s, "%s: %s", s->path, sqlite3_errmsg(s->db));
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

// Text, with NULL for a NULL pointer (and, when empty_is_null, for "").
static void bind_text(sqlite3_stmt *st, int i, const char *v, int empty_is_null) {
    if (!v || (empty_is_null && !*v)) sqlite3_bind_null(st, i);
    else sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
}

// The first row of a query as ncol integers (zeros if it returns no row). Outside a transaction
// a busy read is retried.
static int query_ints(Store *s, const char *sql, const char *arg, int64_t *out, int ncol) {
    double t0 = now_seconds();
    int ms = 5, rc;
    for (;;) {
        sqlite3_stmt *st = NULL;
        for (int i = 0; i < ncol; i++) out[i] = 0;
        rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
        if (rc == SQLITE_OK) {
            if (arg) sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
            rc = sqlite3_step(st);
            for (int i = 0; rc == SQLITE_ROW && i < ncol; i++) out[i] = sqlite3_column_int64(st, i);
            if (rc == SQLITE_ROW || rc == SQLITE_DONE) rc = SQLITE_OK;
        }
        sqlite3_finalize(st);
        if (!is_busy(rc) || sqlite3_get_autocommit(s->db) == 0 || now_seconds() - t0 > RETRY_SECONDS) break;
        backoff(&ms);
    }
    if (rc != SQLITE_OK) seterr(s, "%s: %s", s->path, sqlite3_errmsg(s->db));
    return rc;
}
static int query_int(Store *s, const char *sql, const char *arg, int64_t *out) { return query_ints(s, sql, arg, out, 1); }

// Runs body(s, arg) inside BEGIN IMMEDIATE ... COMMIT. BEGIN IMMEDIATE takes the write lock up
// front, so a concurrent writer waits in busy_timeout at BEGIN rather than failing half way; if
// SQLITE_BUSY still comes back anywhere, the transaction is rolled back and run again from the
// start (body must only depend on its arguments), for up to RETRY_SECONDS.
static int with_tx(Store *s, int (*body)(Store *, void *), void *arg) {
    double t0 = now_seconds();
    int ms = 5;
    for (;;) {
        int rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (rc != SQLITE_OK) seterr(s, "%s: cannot start a transaction: %s", s->path, sqlite3_errmsg(s->db));
        else {
            rc = body(s, arg);
            if (rc == SQLITE_OK) {
                rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
                if (rc != SQLITE_OK) seterr(s, "%s: commit failed: %s", s->path, sqlite3_errmsg(s->db));
            }
            if (rc != SQLITE_OK && !sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        }
        if (rc == SQLITE_OK) return 0;
        if (!is_busy(rc)) return -1;
        if (now_seconds() - t0 > RETRY_SECONDS)
            return seterr(s, "%s: still locked by another process after %.0f s: %s", s->path, RETRY_SECONDS, sqlite3_errstr(rc));
        backoff(&ms);
    }
}

// ---- opening ----

static int make_parents(const char *path, char *err, size_t errcap) {
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path) return 0;
    char *dir = xstrdup(path);
    dir[slash - path] = 0;
    int e = mkdir_p(dir);
    if (e) snprintf(err, errcap, "%s: cannot create directory %s: %s", path, dir, strerror(e));
    free(dir);
    return e ? -1 : 0;
}

typedef struct { int64_t app, version, objects; } FileKind;

// What the file is: its application id, schema version (the larger of user_version and
// meta.schema_version, in case one was edited by hand) and number of schema objects. The first
// three come from one statement, hence one snapshot: read one by one, they could straddle
// another process creating the schema and look like a foreign database.
static int read_kind(Store *s, FileKind *k) {
    int64_t v[4];
    int rc = query_ints(s, "SELECT (SELECT * FROM pragma_application_id), (SELECT * FROM pragma_user_version),"
                           " (SELECT count(*) FROM sqlite_master), (SELECT count(*) FROM sqlite_master"
                           " WHERE type = 'table' AND name = ?1)", "meta", v, 4);
    if (rc == SQLITE_NOTADB) return seterr(s, "%s: not a SQLite database (is it the right file?)", s->path);
    if (rc != SQLITE_OK) return -1;
    k->app = v[0]; k->version = v[1]; k->objects = v[2];
    // A later snapshot than the one above can only be further along: still our schema.
    int64_t meta_version = 0;
    if (k->app == HLAB_APPLICATION_ID && v[3] &&
        query_int(s, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?1", "schema_version", &meta_version) != SQLITE_OK) return -1;
    if (meta_version > k->version) k->version = meta_version;
    return 0;
}

// Refuses files that are not ours: another application's database must not be touched, and a
// newer schema may mean things this build would misread.
static int check_kind(Store *s, const FileKind *k) {
    if (k->app != HLAB_APPLICATION_ID && (k->app != 0 || k->objects > 0))
        return seterr(s, "%s: not an hlab run store (a SQLite database with application_id 0x%08llx and %lld schema objects); "
                      "choose another file", s->path, (unsigned long long)(uint32_t)k->app, (long long)k->objects);
    if (k->version > SCHEMA_VERSION)
        return seterr(s, "%s: written by a newer hlab (schema version %lld; this build knows up to %d): update hlab",
                      s->path, (long long)k->version, SCHEMA_VERSION);
    return 0;
}

static int migrate_body(Store *s, void *unused) {
    FileKind k;   // again, inside the write lock: another process may have migrated meanwhile
    if (read_kind(s, &k) != 0 || check_kind(s, &k) != 0) return SQLITE_ERROR;
    for (int v = (int)k.version; v < SCHEMA_VERSION; v++) {
        int64_t now;
        int rc = sqlite3_exec(s->db, migrations[v], NULL, NULL, NULL);
        if (rc != SQLITE_OK) { seterr(s, "%s: migrating the schema to version %d: %s", s->path, v + 1, sqlite3_errmsg(s->db)); return rc; }
        if ((rc = query_int(s, "PRAGMA user_version", NULL, &now)) != SQLITE_OK) return rc;
        if (now != v + 1) die("store: migration %d sets user_version %lld", v + 1, (long long)now);
    }
    return SQLITE_OK;
}

// journal_mode=WAL changes the file, so it is retried like a write; it needs no transaction.
static int exec_retry(Store *s, const char *sql) {
    double t0 = now_seconds();
    int ms = 5, rc;
    while (is_busy(rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL)) && now_seconds() - t0 < RETRY_SECONDS) backoff(&ms);
    if (rc != SQLITE_OK) seterr(s, "%s: %s: %s", s->path, sql, sqlite3_errmsg(s->db));
    return rc;
}

Store *store_open(const char *path, char *err, size_t errcap) {
    if (!path || !*path) { snprintf(err, errcap, "empty run store path"); return NULL; }
    if (make_parents(path, err, errcap) != 0) return NULL;
    Store *s = xcalloc(1, sizeof *s);
    s->path = xstrdup(path);
    int rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        seterr(s, "%s: cannot open: %s", path, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    FileKind k;
    if (read_kind(s, &k) != 0 || check_kind(s, &k) != 0) goto fail;
    // Only now that the file is known to be ours (or empty) may it be changed.
    if (exec_retry(s, "PRAGMA journal_mode = WAL") != SQLITE_OK || exec_retry(s, "PRAGMA synchronous = NORMAL") != SQLITE_OK ||
        exec_retry(s, "PRAGMA foreign_keys = ON") != SQLITE_OK)
        goto fail;
    if (k.version < SCHEMA_VERSION && with_tx(s, migrate_body, NULL) != 0) goto fail;
    return s;
fail:
    snprintf(err, errcap, "%s", s->err);
    sqlite3_close(s->db);
    free(s->path);
    free(s);
    return NULL;
}

void store_close(Store *s) {
    if (!s) return;
    if (s->nbuf && store_flush(s) != 0)
        fprintf(stderr, "hlab: warning: %d metric values not recorded: %s\n", s->nbuf, s->err);
    for (int i = 0; i < s->nbuf; i++) free(s->buf[i].name);
    free(s->buf);
    free(s->eval_source);
    sqlite3_close(s->db);
    free(s->path);
    free(s);
}

// ---- writing ----

typedef struct { const RunInfo *ri; const Config *cfg; int64_t id; } BeginArgs;

static int insert_params(Store *s, int64_t run, const Config *cfg) {
    sqlite3_stmt *st;
    int rc = prepare(s, &st, "INSERT INTO params(run_id, key, value_num, value_text) VALUES(?1, ?2, ?3, ?4)");
    for (int i = 0; rc == SQLITE_OK && i < cfg->n; i++) {
        const ConfValue *v = &cfg->v[i];
        sqlite3_bind_int64(st, 1, run);
        bind_text(st, 2, v->spec->path, 0);
        if (v->spec->type != KT_STRING && !v->is_auto) sqlite3_bind_double(st, 3, v->num);
        bind_text(st, 4, v->text ? v->text : "", 0);
        rc = step_done(s, st);
    }
    sqlite3_finalize(st);
    return rc;
}

static int begin_body(Store *s, void *p) {
    BeginArgs *a = p;
    const RunInfo *ri = a->ri;
    sqlite3_stmt *st = NULL;
    char now[32];
    utc_now(now);
    int64_t exp_id = 0;
    int rc = SQLITE_OK;
    if (ri->experiment && *ri->experiment) {
        if ((rc = prepare(s, &st, "INSERT OR IGNORE INTO experiments(name, created_at) VALUES(?1, ?2)")) != SQLITE_OK) return rc;
        bind_text(st, 1, ri->experiment, 0);
        bind_text(st, 2, now, 0);
        rc = step_done(s, st);
        sqlite3_finalize(st);
        if (rc == SQLITE_OK) rc = query_int(s, "SELECT id FROM experiments WHERE name = ?1", ri->experiment, &exp_id);
        if (rc != SQLITE_OK) return rc;
    }
    rc = prepare(s, &st,
                 "INSERT INTO runs(experiment_id, variant, identity, config, pattern, seed, status, started_at,"
                 " code_version, host, cpu, blas_core, threads, params_total, params_active, pid, heartbeat, ranks)"
                 " VALUES(?1, ?2, ?3, ?4, ?5, ?6, 'running', ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)");
    if (rc != SQLITE_OK) return rc;
    if (exp_id) sqlite3_bind_int64(st, 1, exp_id); else sqlite3_bind_null(st, 1);
    bind_text(st, 2, ri->variant, 1);
    bind_text(st, 3, ri->identity, 0);
    bind_text(st, 4, ri->config_yaml, 0);
    bind_text(st, 5, ri->pattern, 0);
    sqlite3_bind_int64(st, 6, ri->seed);
    bind_text(st, 7, now, 0);
    bind_text(st, 8, ri->code_version, 0);
    bind_text(st, 9, ri->host, 0);
    bind_text(st, 10, ri->cpu, 0);
    bind_text(st, 11, ri->blas_core, 0);
    sqlite3_bind_int(st, 12, ri->threads);
    sqlite3_bind_double(st, 13, ri->params_total);
    sqlite3_bind_double(st, 14, ri->params_active);
    sqlite3_bind_int64(st, 15, (int64_t)getpid());
    sqlite3_bind_double(st, 16, (double)time(NULL));
    sqlite3_bind_int(st, 17, ri->ranks > 1 ? ri->ranks : 1);
    rc = step_done(s, st);
    sqlite3_finalize(st);
    if (rc != SQLITE_OK) return rc;
    a->id = sqlite3_last_insert_rowid(s->db);
    return a->cfg ? insert_params(s, a->id, a->cfg) : SQLITE_OK;
}

// A 'running' row is live while its process is: on this host, while its pid exists and it
// flushed within STALE_HOURS (a reused pid is not mistaken for it forever); on another host,
// while it flushed within STALE_REMOTE_S.
#define STALE_HOURS 6.0
#define STALE_REMOTE_S 900.0

typedef struct { BeginArgs b; const char *host; int outcome; } ClaimArgs;

// Is the process of a 'running' row (its host, pid, heartbeat columns) alive, seen from `me`?
static int row_alive(const char *host, const char *me, int64_t pid, double heartbeat) {
    double age = (double)time(NULL) - heartbeat;
    int same_host = host && me && !strcmp(host, me);
    return same_host ? pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM) && age < STALE_HOURS * 3600
                     : age < STALE_REMOTE_S;
}

// The row becomes this process's 'running' run again (a resumed run).
static int mark_running(Store *s, int64_t run, const char *host) {
    sqlite3_stmt *st;
    int rc = prepare(s, &st, "UPDATE runs SET status = 'running', ended_at = NULL, error = NULL, host = ?1, pid = ?2,"
                             " heartbeat = ?3 WHERE id = ?4");
    if (rc != SQLITE_OK) return rc;
    bind_text(st, 1, host, 1);
    sqlite3_bind_int64(st, 2, (int64_t)getpid());
    sqlite3_bind_double(st, 3, (double)time(NULL));
    sqlite3_bind_int64(st, 4, run);
    rc = step_done(s, st);
    sqlite3_finalize(st);
    return rc;
}

static int claim_body(Store *s, void *p) {
    ClaimArgs *a = p;
    sqlite3_stmt *st;
    int rc = prepare(s, &st, "SELECT id, status, host, pid, heartbeat, checkpoint FROM runs WHERE identity = ?1 ORDER BY id DESC LIMIT 1");
    if (rc != SQLITE_OK) return rc;
    bind_text(st, 1, a->b.ri->identity, 0);
    int64_t old = 0;
    a->outcome = CLAIM_NEW;
    if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        old = sqlite3_column_int64(st, 0);
        const char *status = (const char *)sqlite3_column_text(st, 1), *host = (const char *)sqlite3_column_text(st, 2);
        if (!strcmp(status, "done")) a->outcome = CLAIM_SKIP_DONE;
        else if (!strcmp(status, "diverged")) a->outcome = CLAIM_SKIP_DIVERGED;   // deterministic: again would diverge again
        else if (!strcmp(status, "running") && row_alive(host, a->host, sqlite3_column_int64(st, 3), sqlite3_column_double(st, 4)))
            a->outcome = CLAIM_SKIP_RUNNING;
        else   // failed, interrupted or dead: continue from its checkpoint if it has one, else run again
            a->outcome = sqlite3_column_type(st, 5) != SQLITE_NULL ? CLAIM_RESUME : CLAIM_RESTART;
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) rc = SQLITE_OK;
    else seterr(s, "%s: %s", s->path, sqlite3_errmsg(s->db));
    sqlite3_finalize(st);
    if (rc != SQLITE_OK || a->outcome >= CLAIM_SKIP_DONE) { a->b.id = old; return rc; }
    if (a->outcome == CLAIM_RESUME) { a->b.id = old; return mark_running(s, old, a->host); }
    if (old) {   // one row per run: the failed attempt (and its metrics, by cascade) makes way
        if ((rc = prepare(s, &st, "DELETE FROM runs WHERE id = ?1")) != SQLITE_OK) return rc;
        sqlite3_bind_int64(st, 1, old);
        rc = step_done(s, st);
        sqlite3_finalize(st);
        if (rc != SQLITE_OK) return rc;
    }
    return begin_body(s, &a->b);
}

typedef struct { int64_t run; const char *identity, *host; long step; } ReopenArgs;

static int reopen_body(Store *s, void *p) {
    const ReopenArgs *a = p;
    sqlite3_stmt *st;
    int rc = prepare(s, &st, "SELECT identity, status, host, pid, heartbeat FROM runs WHERE id = ?1");
    if (rc != SQLITE_OK) return rc;
    sqlite3_bind_int64(st, 1, a->run);
    if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
        if (rc == SQLITE_DONE) seterr(s, "%s has no run %lld", s->path, (long long)a->run);
        else seterr(s, "%s: %s", s->path, sqlite3_errmsg(s->db));
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? SQLITE_NOTFOUND : rc;
    }
    const char *identity = (const char *)sqlite3_column_text(st, 0), *status = (const char *)sqlite3_column_text(st, 1);
    int64_t pid = sqlite3_column_int64(st, 3);
    rc = SQLITE_OK;
    if (strcmp(identity, a->identity))
        rc = seterr(s, "run %lld of %s is another run (identity %s, the checkpoint's is %s)", (long long)a->run, s->path,
                    identity, a->identity);
    else if (!strcmp(status, "done") || !strcmp(status, "diverged"))
        rc = seterr(s, "run %lld is %s: nothing to resume%s", (long long)a->run, status,
                    !strcmp(status, "diverged") ? " (it would diverge again; see train.on_divergence)" : "");
    else if (!strcmp(status, "running") && pid != (int64_t)getpid() &&
             row_alive((const char *)sqlite3_column_text(st, 2), a->host, pid, sqlite3_column_double(st, 4)))
        rc = seterr(s, "run %lld is being trained by process %lld", (long long)a->run, (long long)pid);
    sqlite3_finalize(st);
    if (rc != SQLITE_OK) return SQLITE_CONSTRAINT;
    static const char *const drop[] = {"DELETE FROM metrics WHERE run_id = ?1 AND step > ?2",
                                       "DELETE FROM evals WHERE run_id = ?1 AND source = 'train'", NULL};
    for (int i = 0; drop[i]; i++) {
        if ((rc = prepare(s, &st, drop[i])) != SQLITE_OK) return rc;
        sqlite3_bind_int64(st, 1, a->run);
        if (i == 0) sqlite3_bind_int64(st, 2, a->step);
        rc = step_done(s, st);
        sqlite3_finalize(st);
        if (rc != SQLITE_OK) return rc;
    }
    return mark_running(s, a->run, a->host);
}

int store_run_reopen(Store *s, int64_t run, const char *identity, long step, const char *host) {
    ReopenArgs a = {run, identity, host, step};
    return with_tx(s, reopen_body, &a);
}

int64_t store_run_claim(Store *s, const RunInfo *ri, const Config *cfg, int *outcome) {
    if (!ri->identity || !*ri->identity) return seterr(s, "store_run_claim: the run identity is required");
    ClaimArgs a = {{ri, cfg, -1}, ri->host, CLAIM_NEW};
    if (with_tx(s, claim_body, &a) != 0) return -1;
    *outcome = a.outcome;
    return a.outcome >= CLAIM_SKIP_DONE ? 0 : a.b.id;
}

int store_run_status(Store *s, const char *identity, char *status, size_t cap) {
    sqlite3_stmt *st;
    if (prepare(s, &st, "SELECT status FROM runs WHERE identity = ?1 ORDER BY id DESC LIMIT 1") != SQLITE_OK) return -1;
    bind_text(st, 1, identity, 0);
    int rc = sqlite3_step(st), found = 0;
    if (rc == SQLITE_ROW) { snprintf(status, cap, "%s", (const char *)sqlite3_column_text(st, 0)); found = 1; }
    else if (rc != SQLITE_DONE) { seterr(s, "%s: %s", s->path, sqlite3_errmsg(s->db)); found = -1; }
    sqlite3_finalize(st);
    return found;
}

int64_t store_run_begin(Store *s, const RunInfo *ri, const Config *cfg) {
    if (!ri->identity || !*ri->identity) return seterr(s, "store_run_begin: the run identity is required");
    if (!ri->config_yaml) return seterr(s, "store_run_begin: the config text is required");
    BeginArgs a = {ri, cfg, -1};
    return with_tx(s, begin_body, &a) == 0 ? a.id : -1;
}

int store_metric(Store *s, int64_t run, long step, double tokens, double wall, const char *name, double value) {
    if (run <= 0 || !name || !*name) return seterr(s, "store_metric: needs a run id and a metric name");
    if (s->nbuf == s->capbuf) {
        s->capbuf = s->capbuf ? 2 * s->capbuf : 64;
        s->buf = xrealloc(s->buf, s->capbuf * sizeof *s->buf);
    }
    s->buf[s->nbuf++] = (Metric){run, step, tokens, wall, value, xstrdup(name)};
    return 0;
}

static int flush_body(Store *s, void *unused) {
    sqlite3_stmt *st;
    int rc = prepare(s, &st, "UPDATE runs SET heartbeat = ?1 WHERE id = ?2");   // the run is alive
    for (int i = 0; rc == SQLITE_OK && i < s->nbuf; i++) {
        if (i > 0 && s->buf[i].run == s->buf[i - 1].run) continue;
        sqlite3_bind_double(st, 1, (double)time(NULL));
        sqlite3_bind_int64(st, 2, s->buf[i].run);
        rc = step_done(s, st);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK) return rc;
    rc = prepare(s, &st, "INSERT INTO metrics(run_id, step, tokens, wall, name, value) VALUES(?1, ?2, ?3, ?4, ?5, ?6)");
    for (int i = 0; rc == SQLITE_OK && i < s->nbuf; i++) {
        const Metric *m = &s->buf[i];
        sqlite3_bind_int64(st, 1, m->run);
        sqlite3_bind_int64(st, 2, m->step);
        sqlite3_bind_double(st, 3, m->tokens);
        sqlite3_bind_double(st, 4, m->wall);
        bind_text(st, 5, m->name, 0);
        sqlite3_bind_double(st, 6, m->value);   // SQLite binds NaN as NULL
        rc = step_done(s, st);
    }
    sqlite3_finalize(st);
    return rc;
}

int store_flush(Store *s) {
    if (s->nbuf == 0) return 0;
    if (with_tx(s, flush_body, NULL) != 0) return -1;
    // only once committed: a failed flush keeps the values for the next attempt
    for (int i = 0; i < s->nbuf; i++) free(s->buf[i].name);
    s->nbuf = 0;
    return 0;
}

typedef struct { int64_t run; const char *task, *split, *slice, *metric; double value; long count; const char *source; } EvalArgs;

static int eval_body(Store *s, void *p) {
    const EvalArgs *a = p;
    sqlite3_stmt *st;
    int rc = prepare(s, &st, "DELETE FROM evals WHERE run_id = ?1 AND task = ?2 AND split IS ?3 AND slice = ?4 AND metric = ?5 AND source = ?6");
    if (rc != SQLITE_OK) return rc;
    sqlite3_bind_int64(st, 1, a->run);
    bind_text(st, 2, a->task, 0);
    bind_text(st, 3, a->split, 0);
    bind_text(st, 4, a->slice, 0);
    bind_text(st, 5, a->metric, 0);
    bind_text(st, 6, a->source, 0);
    rc = step_done(s, st);
    sqlite3_finalize(st);
    if (rc != SQLITE_OK) return rc;
    rc = prepare(s, &st, "INSERT INTO evals(run_id, task, split, slice, metric, value, count, source) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
    if (rc != SQLITE_OK) return rc;
    bind_text(st, 8, a->source, 0);
    sqlite3_bind_int64(st, 1, a->run);
    bind_text(st, 2, a->task, 0);
    bind_text(st, 3, a->split, 0);
    bind_text(st, 4, a->slice, 0);
    bind_text(st, 5, a->metric, 0);
    sqlite3_bind_double(st, 6, a->value);
    sqlite3_bind_int64(st, 7, a->count);
    rc = step_done(s, st);
    sqlite3_finalize(st);
    return rc;
}

// 0 if text is a JSON object; else the store's error says what (e.g. "store_eval: slice") is wrong
static int check_json_object(Store *s, const char *what, const char *text) {
    Json j;
    char jerr[256];
    if (json_parse(&j, text, strlen(text), jerr, sizeof jerr) != 0) return seterr(s, "%s: not valid JSON (%s): %s", what, jerr, text);
    int is_object = j.type == JSON_OBJECT;
    json_free(&j);
    return is_object ? 0 : seterr(s, "%s: not a JSON object: %s", what, text);
}

int store_eval(Store *s, int64_t run, const char *task, const char *split, const char *slice_json,
               const char *metric, double value, long count) {
    if (!task || !*task || !metric || !*metric) return seterr(s, "store_eval: needs a task and a metric name");
    if (!slice_json || !*slice_json) slice_json = "{}";
    if (check_json_object(s, "store_eval: slice", slice_json) != 0) return -1;
    EvalArgs a = {run, task, split, slice_json, metric, value, count, s->eval_source ? s->eval_source : "train"};
    return with_tx(s, eval_body, &a);
}

typedef struct { const BenchRecord *r; int n; } BenchArgs;

static int bench_body(Store *s, void *p) {
    const BenchArgs *a = p;
    char now[32];
    utc_now(now);
    sqlite3_stmt *st;
    int rc = prepare(s, &st, "INSERT INTO benchmarks(suite, kind, arch, metric, value, unit, axes, created_at, code_version, host, cpu,"
                             " blas_core, threads) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)");
    for (int i = 0; rc == SQLITE_OK && i < a->n; i++) {
        const BenchRecord *r = &a->r[i];
        bind_text(st, 1, r->suite, 1);
        bind_text(st, 2, r->kind, 0);
        bind_text(st, 3, r->arch, 1);
        bind_text(st, 4, r->metric, 0);
        sqlite3_bind_double(st, 5, r->value);   // SQLite binds NaN as NULL
        bind_text(st, 6, r->unit, 1);
        bind_text(st, 7, r->axes && *r->axes ? r->axes : "{}", 0);
        bind_text(st, 8, now, 0);
        bind_text(st, 9, r->code_version, 0);
        bind_text(st, 10, r->host, 0);
        bind_text(st, 11, r->cpu, 0);
        bind_text(st, 12, r->blas_core, 0);
        sqlite3_bind_int(st, 13, r->threads);
        rc = step_done(s, st);
    }
    sqlite3_finalize(st);
    return rc;
}

int store_benchmarks(Store *s, const BenchRecord *rows, int n) {
    // checked before the transaction, so that a bad row writes none of them
    for (int i = 0; i < n; i++) {
        const BenchRecord *r = &rows[i];
        if (!r->kind || !*r->kind || !r->metric || !*r->metric) return seterr(s, "store_benchmarks: row %d needs a kind and a metric", i);
        if (check_json_object(s, "store_benchmarks: axes", r->axes && *r->axes ? r->axes : "{}") != 0) return -1;
    }
    if (n <= 0) return 0;
    BenchArgs a = {rows, n};
    return with_tx(s, bench_body, &a);
}

typedef struct { int64_t run; const char *status, *error; } EndArgs;

static int end_body(Store *s, void *p) {
    const EndArgs *a = p;
    sqlite3_stmt *st;
    char now[32];
    utc_now(now);
    int rc = prepare(s, &st, "UPDATE runs SET status = ?1, ended_at = ?2, error = ?3 WHERE id = ?4");
    if (rc != SQLITE_OK) return rc;
    bind_text(st, 1, a->status, 0);
    bind_text(st, 2, now, 0);
    bind_text(st, 3, a->error, 0);
    sqlite3_bind_int64(st, 4, a->run);
    rc = step_done(s, st);
    sqlite3_finalize(st);
    if (rc == SQLITE_OK && sqlite3_changes(s->db) != 1) {
        seterr(s, "store_run_end: no run %lld in %s", (long long)a->run, s->path);
        return SQLITE_NOTFOUND;
    }
    return rc;
}

void store_set_eval_source(Store *s, const char *source) {
    free(s->eval_source);
    s->eval_source = source ? xstrdup(source) : NULL;
}

typedef struct { int64_t run; const char *path; } CkptArgs;
static int ckpt_body(Store *s, void *p) {
    const CkptArgs *a = p;
    sqlite3_stmt *st;
    int rc = prepare(s, &st, "UPDATE runs SET checkpoint = ?1 WHERE id = ?2");
    if (rc != SQLITE_OK) return rc;
    bind_text(st, 1, a->path, 0);
    sqlite3_bind_int64(st, 2, a->run);
    rc = step_done(s, st);
    sqlite3_finalize(st);
    return rc;
}

int store_run_checkpoint(Store *s, int64_t run, const char *path) {
    CkptArgs a = {run, path};
    return with_tx(s, ckpt_body, &a);
}

int store_checkpoint_of(Store *s, int64_t run, char *path, size_t cap) {
    sqlite3_stmt *st;
    if (prepare(s, &st, "SELECT checkpoint FROM runs WHERE id = ?1") != SQLITE_OK) return -1;
    sqlite3_bind_int64(st, 1, run);
    int rc = sqlite3_step(st), found = 1;
    if (rc == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        if (t) { snprintf(path, cap, "%s", (const char *)t); found = 0; }
        else found = 2;
    } else if (rc != SQLITE_DONE) {
        seterr(s, "%s: %s", s->path, sqlite3_errmsg(s->db));
        found = -1;
    }
    sqlite3_finalize(st);
    return found;
}

int64_t store_run_of_checkpoint(Store *s, const char *path) {
    int64_t id = 0;
    if (query_int(s, "SELECT max(id) FROM runs WHERE checkpoint = ?1", path, &id) != SQLITE_OK) return -1;
    return id;
}

int store_run_end(Store *s, int64_t run, const char *status, const char *error) {
    static const char *const ok[] = {"done", "failed", "diverged", "interrupted"};
    int valid = 0;
    for (int i = 0; i < 4; i++) valid |= status && strcmp(status, ok[i]) == 0;
    if (!valid) return seterr(s, "store_run_end: status '%s' is not one of done|failed|diverged|interrupted", status ? status : "(null)");
    if (store_flush(s) != 0) return -1;
    EndArgs a = {run, status, error};
    return with_tx(s, end_body, &a);
}

// ---- merging stores written on different machines ----

typedef struct { int64_t src_run; int copied; } MergeArgs;

// Copies one run of the attached database `src` (schema checked by store_merge).
static int merge_body(Store *s, void *p) {
    MergeArgs *a = p;
    a->copied = 0;
    sqlite3_stmt *st;
    int rc = prepare(s, &st, "SELECT m.id, m.status FROM runs m JOIN src.runs r ON r.identity = m.identity WHERE r.id = ?1 "
                             "ORDER BY m.id DESC LIMIT 1");
    if (rc != SQLITE_OK) return rc;
    sqlite3_bind_int64(st, 1, a->src_run);
    int64_t have = 0;
    int finished = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        have = sqlite3_column_int64(st, 0);
        const char *status = (const char *)sqlite3_column_text(st, 1);
        finished = !strcmp(status, "done") || !strcmp(status, "diverged");
    }
    sqlite3_finalize(st);
    if (finished) return SQLITE_OK;   // already here: never duplicated
    static const char *const steps[] = {
        "DELETE FROM runs WHERE id = ?2",   // an unfinished attempt makes way for the copy
        "INSERT OR IGNORE INTO experiments(name, created_at) SELECT e.name, e.created_at FROM src.experiments e "
        " JOIN src.runs r ON r.experiment_id = e.id WHERE r.id = ?1",
        "INSERT INTO runs(experiment_id, variant, identity, config, pattern, seed, status, started_at, ended_at, code_version,"
        " host, cpu, blas_core, threads, params_total, params_active, error, checkpoint, pid, heartbeat, ranks)"
        " SELECT (SELECT m.id FROM experiments m JOIN src.experiments e ON e.name = m.name WHERE e.id = r.experiment_id),"
        " variant, identity, config, pattern, seed, status, started_at, ended_at, code_version, host, cpu, blas_core, threads,"
        " params_total, params_active, error, checkpoint, pid, heartbeat, ranks FROM src.runs r WHERE r.id = ?1",
        NULL};
    int64_t new_id = 0;
    for (int i = 0; steps[i]; i++) {
        if (i == 0 && !have) continue;
        if ((rc = prepare(s, &st, steps[i])) != SQLITE_OK) return rc;
        if (sqlite3_bind_parameter_count(st) >= 1) sqlite3_bind_int64(st, 1, a->src_run);
        if (sqlite3_bind_parameter_count(st) >= 2) sqlite3_bind_int64(st, 2, have);
        rc = step_done(s, st);
        sqlite3_finalize(st);
        if (rc != SQLITE_OK) return rc;
        if (i == 2) new_id = sqlite3_last_insert_rowid(s->db);
    }
    static const char *const rows[] = {
        "INSERT INTO params(run_id, key, value_num, value_text) SELECT ?2, key, value_num, value_text FROM src.params WHERE run_id = ?1",
        "INSERT INTO metrics(run_id, step, tokens, wall, name, value) SELECT ?2, step, tokens, wall, name, value"
        " FROM src.metrics WHERE run_id = ?1",
        "INSERT INTO evals(run_id, task, split, slice, metric, value, count, source) SELECT ?2, task, split, slice, metric,"
        " value, count, source FROM src.evals WHERE run_id = ?1",
        NULL};
    for (int i = 0; rows[i]; i++) {
        if ((rc = prepare(s, &st, rows[i])) != SQLITE_OK) return rc;
        sqlite3_bind_int64(st, 1, a->src_run);
        sqlite3_bind_int64(st, 2, new_id);
        rc = step_done(s, st);
        sqlite3_finalize(st);
        if (rc != SQLITE_OK) return rc;
    }
    a->copied = 1;
    return SQLITE_OK;
}

// Benchmark rows of src that s does not have (same suite, time, host, kind, arch, metric and
// axes): merging twice copies nothing twice.
static int merge_bench_body(Store *s, void *unused) {
    int rc = sqlite3_exec(s->db, "INSERT INTO benchmarks(suite, kind, arch, metric, value, unit, axes, created_at, code_version, host, cpu,"
                         " blas_core, threads) SELECT suite, kind, arch, metric, value, unit, axes, created_at, code_version, host,"
                         " cpu, blas_core, threads FROM src.benchmarks b WHERE NOT EXISTS (SELECT 1 FROM benchmarks m WHERE"
                         " m.suite IS b.suite AND m.created_at IS b.created_at AND m.host IS b.host AND m.kind = b.kind AND"
                         " m.arch IS b.arch AND m.metric = b.metric AND m.axes = b.axes) ORDER BY b.id", NULL, NULL, NULL);
    if (rc != SQLITE_OK) seterr(s, "%s: copying benchmarks: %s", s->path, sqlite3_errmsg(s->db));
    return rc;
}

static int store_merge_uri(Store *s, const char *src_path, const char *uri, long *copied, long *skipped);

// The read-only SQLite URI of a file name. '?', '#' and '%' (and bytes that are not printable
// ASCII) are percent-encoded: in a URI "a?b.db" would open "a", and "e%41.db" would open "eA.db".
static char *readonly_uri(const char *path) {
    size_t cap = 3 * strlen(path) + 32, n = 0;
    char *uri = xmalloc(cap);
    n += snprintf(uri, cap, "file:");
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        if (*p == '?' || *p == '#' || *p == '%' || *p <= ' ' || *p >= 0x7f) n += snprintf(uri + n, cap - n, "%%%02X", *p);
        else uri[n++] = (char)*p;
    }
    snprintf(uri + n, cap - n, "?mode=ro");
    return uri;
}

int store_merge(Store *s, const char *src_path, long *copied, long *skipped) {
    *copied = *skipped = 0;
    char *uri = readonly_uri(src_path);
    int rc = store_merge_uri(s, src_path, uri, copied, skipped);
    free(uri);
    return rc;
}

static int store_merge_uri(Store *s, const char *src_path, const char *uri, long *copied, long *skipped) {
    // the source must be an hlab store of this schema version (open it once with hlab to migrate)
    sqlite3 *src = NULL;
    if (sqlite3_open_v2(uri, &src, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL) != SQLITE_OK) {
        seterr(s, "%s: cannot open: %s", src_path, src ? sqlite3_errmsg(src) : "out of memory");
        sqlite3_close(src);
        return -1;
    }
    sqlite3_stmt *st = NULL;
    int64_t app = 0, ver = 0;
    if (sqlite3_prepare_v2(src, "SELECT (SELECT * FROM pragma_application_id), (SELECT * FROM pragma_user_version)", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) { app = sqlite3_column_int64(st, 0); ver = sqlite3_column_int64(st, 1); }
    sqlite3_finalize(st);
    sqlite3_close(src);
    if (app != HLAB_APPLICATION_ID) return seterr(s, "%s: not an hlab run store", src_path);
    if (ver != SCHEMA_VERSION)
        return seterr(s, "%s: schema version %lld, this hlab writes %d: open it once with this hlab (hlab runs --db %s) to migrate it",
                      src_path, (long long)ver, SCHEMA_VERSION, src_path);
    sqlite3_stmt *at;
    if (prepare(s, &at, "ATTACH DATABASE ?1 AS src") != SQLITE_OK) return -1;
    sqlite3_bind_text(at, 1, uri, -1, SQLITE_STATIC);
    int rc = step_done(s, at);
    sqlite3_finalize(at);
    if (rc != SQLITE_OK) return -1;
    int64_t *ids = NULL;
    long n = 0;
    if (prepare(s, &st, "SELECT id FROM src.runs ORDER BY id") == SQLITE_OK) {
        while (sqlite3_step(st) == SQLITE_ROW) {
            ids = xrealloc(ids, (n + 1) * sizeof *ids);
            ids[n++] = sqlite3_column_int64(st, 0);
        }
        sqlite3_finalize(st);
    } else rc = -1;
    for (long i = 0; rc == 0 && i < n; i++) {
        MergeArgs a = {ids[i], 0};
        if (with_tx(s, merge_body, &a) != 0) { rc = -1; break; }
        if (a.copied) (*copied)++; else (*skipped)++;
    }
    free(ids);
    if (rc == 0 && with_tx(s, merge_bench_body, NULL) != 0) rc = -1;
    sqlite3_exec(s->db, "DETACH DATABASE src", NULL, NULL, NULL);
    return rc;
}
