// test_store.c: the run store, read back with plain SQL: values and types, schema version,
// reopening, refusing files that are not ours, and several processes writing one file at once.
#include "test.h"
#include "store.h"
#include "common.h"
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];

static char *path_in(const char *name) {
    static char buf[4][512];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

// A resolved Config built by hand (the loader is tested elsewhere): one key of each type, a
// defaulted one and an "auto" one.
static const KeySpec keys[] = {
    {"seed", KT_INT, "1", 0, 4294967295.0, NULL, 0, "random seed"},
    {"train.lr", KT_FLOAT, "1e-3", 0, 10, NULL, 0, "learning rate"},
    {"model.tie_embeddings", KT_BOOL, "true", 0, -1, NULL, 0, "tie"},
    {"model.pattern", KT_STRING, "", 0, -1, NULL, 0, "pattern"},
    {"train.steps", KT_INT, "0", 0, 1e18, NULL, 1, "steps"},
    {"data.task", KT_STRING, "mqar", 0, -1, "mqar|copy", 0, "task"},
    {NULL, 0, NULL, 0, 0, NULL, 0, NULL},
};
static ConfValue values[] = {
    {&keys[0], "42", 42, 0, 1, "t.yaml", 1, 1},
    {&keys[1], "0.00029999999999999997", 0.00029999999999999997, 0, 1, "--set", 0, 0},
    {&keys[2], "false", 0, 0, 1, "t.yaml", 3, 3},
    {&keys[3], "MM*M 'q'", 0, 0, 1, "t.yaml", 4, 3},
    {&keys[4], "auto", 0, 1, 1, "t.yaml", 5, 3},
    {&keys[5], "mqar", 0, 0, 0, NULL, 0, 0},
};
static Config cfg = {"t.yaml", 6, values};

static RunInfo run_info(const char *experiment, const char *variant, long seed) {
    RunInfo ri = {experiment, variant, "0123456789abcdef", "seed: 42\ntrain:\n  lr: 0.0003\n", "MM*M", seed,
                  "v0.1-test", "testhost", "Test CPU @ 3GHz", "Haswell", 4, 123456.0, 100000.0, 0};
    return ri;
}

// ---- plain SQLite readers for the checks ----

static int64_t q_int(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st;
    int64_t v = -999;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) { printf("  SQL error: %s\n", sqlite3_errmsg(db)); return v; }
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static double q_num(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st;
    double v = -999;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) { printf("  SQL error: %s\n", sqlite3_errmsg(db)); return v; }
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    return v;
}

// The text of the first column of the first row ("(null)" for NULL, "(none)" for no row).
static const char *q_text(sqlite3 *db, const char *sql) {
    static char buf[8][512];
    static int k;
    char *out = buf[k++ % 8];
    sqlite3_stmt *st;
    snprintf(out, 512, "(none)");
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) { snprintf(out, 512, "SQL error: %s", sqlite3_errmsg(db)); return out; }
    if (sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        snprintf(out, 512, "%s", t ? (const char *)t : "(null)");
    }
    sqlite3_finalize(st);
    return out;
}

static sqlite3 *db_open(const char *path) {
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK) die("cannot open %s", path);
    return db;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) die("cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

static void test_basic(void) {
    test_group("basic");
    char err[1024] = "";
    const char *path = path_in("new/sub/hlab.db");
    Store *s = store_open(path, err, sizeof err);
    CHECK(s != NULL, "store_open creates the file and its parent directories (%s)", err);
    if (!s) return;
    RunInfo ri = run_info("exp1", "v1", 42);
    int64_t run = store_run_begin(s, &ri, &cfg);
    CHECK(run == 1, "first run id is 1 (%s)", store_errmsg(s));
    for (int step = 1; step <= 3; step++) {
        CHECK(store_metric(s, run, step * 10, step * 2048.0, step * 0.5, "loss", 5.0 / step) == 0 &&
              store_metric(s, run, step * 10, step * 2048.0, step * 0.5, "lr", 1e-3 * step) == 0, "buffer step %d", step * 10);
        if (step == 2) CHECK(store_flush(s) == 0, "flush (%s)", store_errmsg(s));
    }
    store_metric(s, run, 40, 0, 2.0, "loss", NAN);
    store_metric(s, run, 40, 0, 2.0, "grad_norm", INFINITY);
    CHECK(store_eval(s, run, "mqar", "test", NULL, "accuracy", 0.875, 1000) == 0, "eval without slice (%s)", store_errmsg(s));
    CHECK(store_eval(s, run, "niah", "test", "{\"context\": 4096, \"depth\": 0.5}", "accuracy", 0.5, 20) == 0, "eval with slice");
    CHECK(store_run_end(s, run, "done", NULL) == 0, "run end flushes and sets status (%s)", store_errmsg(s));

    RunInfo plain = run_info("", "", 7);
    int64_t run2 = store_run_begin(s, &plain, NULL);
    RunInfo again = run_info("exp1", "v2", 43);
    int64_t run3 = store_run_begin(s, &again, &cfg);
    CHECK(run2 == 2 && run3 == 3, "further runs get ids 2, 3");
    CHECK(store_run_end(s, run2, "failed", "out of memory: \"x\"; DROP TABLE runs; --") == 0, "failed run with an error text");

    // misuse is refused with a message, nothing written
    CHECK(store_run_end(s, run3, "finished", NULL) == -1 && strstr(store_errmsg(s), "not one of"), "bad status: %s", store_errmsg(s));
    CHECK(store_run_end(s, 999, "done", NULL) == -1 && strstr(store_errmsg(s), "no run 999"), "unknown run: %s", store_errmsg(s));
    CHECK(store_eval(s, run3, "t", "test", "{\"a\":", "m", 1, 1) == -1 && strstr(store_errmsg(s), "not valid JSON"), "bad slice: %s", store_errmsg(s));
    CHECK(store_eval(s, run3, "t", "test", "[1]", "m", 1, 1) == -1 && strstr(store_errmsg(s), "JSON object"), "slice not an object: %s", store_errmsg(s));
    CHECK(store_metric(s, 0, 1, 0, 0, "loss", 1) == -1, "metric without a run refused");
    RunInfo noid = run_info("exp1", "v1", 1);
    noid.identity = "";
    CHECK(store_run_begin(s, &noid, &cfg) == -1 && strstr(store_errmsg(s), "identity"), "run without identity: %s", store_errmsg(s));
    store_close(s);

    sqlite3 *db = db_open(path);
    CHECK(q_int(db, "PRAGMA user_version") == 4 && strcmp(q_text(db, "SELECT value FROM meta WHERE key='schema_version'"), "4") == 0,
          "schema version 4 in user_version and meta");
    CHECK(q_int(db, "PRAGMA application_id") == 0x686c6162, "application_id 'hlab'");
    CHECK(strcmp(q_text(db, "PRAGMA journal_mode"), "wal") == 0, "WAL mode");
    CHECK(q_int(db, "SELECT count(*) FROM runs") == 3 && q_int(db, "SELECT count(*) FROM experiments") == 1,
          "3 runs, 1 experiment (created once, reused)");

    const char *r1 = "SELECT %s FROM runs WHERE id = 1";
    char sql[512];
#define R1(col) (snprintf(sql, sizeof sql, r1, col), q_text(db, sql))
    CHECK(strcmp(R1("status"), "done") == 0 && strcmp(R1("variant"), "v1") == 0 && strcmp(R1("identity"), "0123456789abcdef") == 0,
          "run 1: status, variant, identity");
    CHECK(strcmp(R1("(SELECT name FROM experiments e WHERE e.id = experiment_id)"), "exp1") == 0, "run 1 belongs to exp1");
    CHECK(strcmp(R1("config"), "seed: 42\ntrain:\n  lr: 0.0003\n") == 0 && strcmp(R1("pattern"), "MM*M") == 0, "config and pattern text");
    CHECK(strcmp(R1("typeof(seed) || seed || typeof(threads) || threads"), "integer42integer4") == 0, "seed and threads are integers");
    CHECK(strcmp(R1("typeof(ranks) || ranks"), "integer1") == 0, "ranks left 0 in RunInfo: 1 (a single process)");
    CHECK(strcmp(R1("typeof(params_total) || ':' || params_total || ':' || params_active"), "real:123456.0:100000.0") == 0,
          "params_total/active are reals");
    CHECK(strcmp(R1("code_version || '|' || host || '|' || cpu || '|' || blas_core"), "v0.1-test|testhost|Test CPU @ 3GHz|Haswell") == 0,
          "code version, host, cpu, blas core");
    const char *started = R1("started_at"), *ended = R1("ended_at");
    CHECK(strlen(started) == 20 && started[4] == '-' && started[10] == 'T' && started[19] == 'Z', "started_at UTC ISO-8601: %s", started);
    CHECK(strlen(ended) == 20 && strcmp(ended, started) >= 0, "ended_at set: %s", ended);
    CHECK(strcmp(R1("coalesce(error, 'none')"), "none") == 0, "no error for a done run");
    CHECK(strcmp(q_text(db, "SELECT coalesce(experiment_id, 'null') || coalesce(variant, 'null') || status FROM runs WHERE id = 2"),
                 "nullnullfailed") == 0, "plain run: experiment and variant NULL, status failed");
    CHECK(strcmp(q_text(db, "SELECT error FROM runs WHERE id = 2"), "out of memory: \"x\"; DROP TABLE runs; --") == 0,
          "error text stored verbatim (bound, not formatted into SQL)");
    CHECK(strcmp(q_text(db, "SELECT status || coalesce(ended_at, '-') FROM runs WHERE id = 3"), "running-") == 0,
          "unfinished run: running, no ended_at");

    CHECK(q_int(db, "SELECT count(*) FROM params WHERE run_id = 1") == 6 && q_int(db, "SELECT count(*) FROM params WHERE run_id = 2") == 0,
          "one params row per config key (none without a Config)");
    CHECK(strcmp(q_text(db, "SELECT typeof(value_num) || ':' || value_num || ':' || value_text FROM params WHERE run_id = 1 AND key = 'seed'"),
                 "real:42.0:42") == 0, "int param: numeric 42 and text '42'");
    CHECK(q_num(db, "SELECT value_num FROM params WHERE run_id = 1 AND key = 'train.lr'") == 0.00029999999999999997 &&
          strcmp(q_text(db, "SELECT typeof(value_num) FROM params WHERE run_id = 1 AND key = 'train.lr'"), "real") == 0,
          "float param exact, type real");
    CHECK(strcmp(q_text(db, "SELECT typeof(value_num) || ':' || value_num || ':' || value_text FROM params WHERE run_id = 1 AND key = 'model.tie_embeddings'"),
                 "real:0.0:false") == 0, "bool param: 0 and 'false'");
    CHECK(strcmp(q_text(db, "SELECT typeof(value_num) || ':' || value_text FROM params WHERE run_id = 1 AND key = 'model.pattern'"),
                 "null:MM*M 'q'") == 0, "string param: text only");
    CHECK(strcmp(q_text(db, "SELECT typeof(value_num) || ':' || value_text FROM params WHERE run_id = 1 AND key = 'train.steps'"),
                 "null:auto") == 0, "auto param: text 'auto' only");
    CHECK(q_int(db, "SELECT count(*) FROM params WHERE typeof(value_num) IN ('real', 'integer')") == 6,
          "numeric params are numbers (6 over runs 1 and 3)");

    CHECK(q_int(db, "SELECT count(*) FROM metrics") == 8, "8 metric rows");
    CHECK(strcmp(q_text(db, "SELECT group_concat(step || '=' || value, ',') FROM (SELECT step, value FROM metrics "
                            "WHERE run_id = 1 AND name = 'loss' AND value IS NOT NULL ORDER BY step)"), "10=5.0,20=2.5,30=1.66666666666667") == 0,
          "loss curve read back in step order");
    CHECK(q_num(db, "SELECT tokens FROM metrics WHERE name = 'lr' AND step = 30") == 6144 &&
          q_num(db, "SELECT wall FROM metrics WHERE name = 'lr' AND step = 30") == 1.5 &&
          q_num(db, "SELECT value FROM metrics WHERE name = 'lr' AND step = 30") == 3e-3, "tokens, wall, value exact");
    CHECK(strcmp(q_text(db, "SELECT typeof(value) FROM metrics WHERE name = 'loss' AND step = 40"), "null") == 0, "NaN stored as NULL");
    CHECK(isinf(q_num(db, "SELECT value FROM metrics WHERE name = 'grad_norm'")), "infinity kept");
    CHECK(strcmp(q_text(db, "SELECT typeof(step) FROM metrics LIMIT 1"), "integer") == 0, "step is an integer");

    CHECK(strcmp(q_text(db, "SELECT task || '|' || split || '|' || slice || '|' || metric || '|' || value || '|' || count "
                            "FROM evals WHERE task = 'mqar'"), "mqar|test|{}|accuracy|0.875|1000") == 0, "eval row, slice '{}'");
    CHECK(strcmp(q_text(db, "SELECT json_extract(slice, '$.context') FROM evals WHERE task = 'niah'"), "4096") == 0,
          "slice stored as JSON SQLite can query");
    CHECK(strcmp(q_text(db, "PRAGMA integrity_check"), "ok") == 0 && q_int(db, "SELECT count(*) FROM pragma_foreign_key_check") == 0,
          "integrity and foreign keys ok");
    sqlite3_close(db);
}

static void test_reopen(void) {
    test_group("reopen");
    char err[1024] = "";
    const char *path = path_in("new/sub/hlab.db");
    // A row the schema does not create: migrating again would fail on the existing tables,
    // and must in any case leave this row alone.
    sqlite3 *db = db_open(path);
    sqlite3_exec(db, "INSERT INTO meta VALUES('sentinel', 'kept')", NULL, NULL, NULL);
    sqlite3_close(db);
    Store *s = store_open(path, err, sizeof err);
    CHECK(s != NULL, "reopen an existing store (%s)", err);
    if (!s) return;
    RunInfo ri = run_info("exp2", "a", 1);
    int64_t run = store_run_begin(s, &ri, &cfg);
    CHECK(run == 4, "ids continue: %lld", (long long)run);
    store_metric(s, run, 1, 1, 1, "loss", 1);
    store_close(s);   // flushes
    db = db_open(path);
    CHECK(q_int(db, "PRAGMA user_version") == 4 && strcmp(q_text(db, "SELECT value FROM meta WHERE key = 'sentinel'"), "kept") == 0 &&
          q_int(db, "SELECT count(*) FROM meta") == 2, "no migration on reopen");
    CHECK(q_int(db, "SELECT count(*) FROM runs") == 4 && q_int(db, "SELECT count(*) FROM metrics WHERE run_id = 4") == 1,
          "old data kept, store_close flushed the buffered metric");
    sqlite3_close(db);

    // a flush that cannot succeed (metric of a run that does not exist) keeps the values and says why
    s = store_open(path, err, sizeof err);
    store_metric(s, 12345, 1, 1, 1, "loss", 1);
    CHECK(store_flush(s) == -1 && strstr(store_errmsg(s), "FOREIGN KEY"), "metric of an unknown run: %s", store_errmsg(s));
    printf("  (a warning about 1 metric value not recorded is expected next)\n");
    fflush(stdout);
    store_close(s);
}

static void test_refuse(void) {
    test_group("refuse");
    char err[1024];
    // another application's database: refused and left exactly as it was
    const char *other = path_in("other.db");
    sqlite3 *db = db_open(other);
    sqlite3_exec(db, "CREATE TABLE runs(x); INSERT INTO runs VALUES(1);", NULL, NULL, NULL);
    sqlite3_close(db);
    CHECK(store_open(other, err, sizeof err) == NULL && strstr(err, "not an hlab run store"), "another SQLite database: %s", err);
    db = db_open(other);
    CHECK(strcmp(q_text(db, "PRAGMA journal_mode"), "delete") == 0 && q_int(db, "SELECT count(*) FROM sqlite_master") == 1,
          "and it was not touched (still rollback journal, no new tables)");
    sqlite3_close(db);

    // another application's id on an empty database
    const char *tagged = path_in("tagged.db");
    db = db_open(tagged);
    sqlite3_exec(db, "PRAGMA application_id = 1234", NULL, NULL, NULL);
    sqlite3_close(db);
    CHECK(store_open(tagged, err, sizeof err) == NULL && strstr(err, "not an hlab run store") && strstr(err, "0x000004d2"),
          "a database with another application_id: %s", err);

    const char *garbage = path_in("garbage.db");
    char text[5000];
    memset(text, 'x', sizeof text - 1);
    text[sizeof text - 1] = 0;
    write_file(garbage, text);
    CHECK(store_open(garbage, err, sizeof err) == NULL && strstr(err, "not a SQLite database"), "a garbage file: %s", err);
    struct stat sb;
    CHECK(stat(garbage, &sb) == 0 && sb.st_size == 4999, "garbage file unchanged");

    // a newer schema, by user_version and by meta alone
    const char *newer = path_in("newer.db");
    Store *s = store_open(newer, err, sizeof err);
    store_close(s);
    db = db_open(newer);
    sqlite3_exec(db, "PRAGMA user_version = 5; UPDATE meta SET value = '5' WHERE key = 'schema_version';", NULL, NULL, NULL);
    sqlite3_close(db);
    CHECK(store_open(newer, err, sizeof err) == NULL && strstr(err, "written by a newer hlab") && strstr(err, "schema version 5"),
          "a future schema version: %s", err);
    db = db_open(newer);
    sqlite3_exec(db, "PRAGMA user_version = 4; UPDATE meta SET value = '6' WHERE key = 'schema_version';", NULL, NULL, NULL);
    sqlite3_close(db);
    CHECK(store_open(newer, err, sizeof err) == NULL && strstr(err, "schema version 6"), "a future meta.schema_version: %s", err);

    write_file(path_in("afile"), "x");
    CHECK(store_open(path_in("afile/sub/hlab.db"), err, sizeof err) == NULL && strstr(err, "afile"),
          "a parent that is a file: %s", err);
    CHECK(strcmp(store_default_path(), "results/hlab.db") == 0, "default path results/hlab.db");
}

// A version-1 file (before runs.checkpoint and evals.source) is migrated forward, data kept;
// checkpoints are recorded and found; recording an evaluation again replaces its rows.
static void test_v2(void) {
    test_group("schema v2");
    char err[1024] = "";
    const char *path = path_in("v1.db");
    Store *s = store_open(path, err, sizeof err);
    RunInfo ri = run_info("", "", 1);
    int64_t run = store_run_begin(s, &ri, &cfg);
    store_eval(s, run, "mqar", "test", "{}", "accuracy", 0.5, 10);
    store_close(s);
    sqlite3 *db = db_open(path);   // turn it back into a version-1 file
    sqlite3_exec(db, "DROP TABLE benchmarks; ALTER TABLE runs DROP COLUMN ranks;"
                     "ALTER TABLE runs DROP COLUMN checkpoint; ALTER TABLE runs DROP COLUMN pid; ALTER TABLE runs DROP COLUMN heartbeat;"
                     "ALTER TABLE evals DROP COLUMN source;"
                     "PRAGMA user_version = 1; UPDATE meta SET value = '1' WHERE key = 'schema_version';", NULL, NULL, NULL);
    CHECK(q_int(db, "SELECT count(*) FROM pragma_table_info('runs') WHERE name = 'checkpoint'") == 0, "a version-1 file made");
    sqlite3_close(db);
    s = store_open(path, err, sizeof err);
    CHECK(s != NULL, "version 1 opens (%s)", err);
    if (!s) return;
    db = db_open(path);
    CHECK(q_int(db, "PRAGMA user_version") == 4 && q_int(db, "SELECT count(*) FROM pragma_table_info('runs') WHERE name = 'checkpoint'") == 1 &&
          strcmp(q_text(db, "SELECT source FROM evals"), "train") == 0 && q_int(db, "SELECT count(*) FROM benchmarks") == 0 &&
          q_int(db, "SELECT ranks FROM runs") == 1,
          "migrated to 4: runs.checkpoint, evals.source 'train' for old rows, an empty benchmarks table, runs.ranks 1");
    sqlite3_close(db);
    char ck[512] = "";
    CHECK(store_checkpoint_of(s, run, ck, sizeof ck) == 2, "a run without a checkpoint says so");
    CHECK(store_checkpoint_of(s, 999, ck, sizeof ck) == 1, "an unknown run says so");
    CHECK(store_run_checkpoint(s, run, "/abs/w.safetensors") == 0 && store_checkpoint_of(s, run, ck, sizeof ck) == 0 &&
          strcmp(ck, "/abs/w.safetensors") == 0, "checkpoint recorded and read back (%s)", ck);
    CHECK(store_run_of_checkpoint(s, "/abs/w.safetensors") == run && store_run_of_checkpoint(s, "/other") == 0,
          "the run of a checkpoint path");
    store_eval(s, run, "mqar", "test", "{}", "accuracy", 0.6, 10);   // the training result again: replaced
    store_set_eval_source(s, "eval");
    store_eval(s, run, "mqar", "test", "{}", "accuracy", 0.7, 20);
    store_eval(s, run, "mqar", "test", "{}", "accuracy", 0.8, 30);   // the same evaluation again: replaced
    // claiming a run for a sweep: one row per identity whatever happened to earlier attempts
    RunInfo ci = run_info("exp3", "v", 9);
    ci.identity = "claim-me";
    ci.host = "this-host";
    int outcome = -1;
    int64_t c1 = store_run_claim(s, &ci, &cfg, &outcome);
    CHECK(c1 > 0 && outcome == CLAIM_NEW, "a new identity is claimed (run %lld)", (long long)c1);
    CHECK(store_run_claim(s, &ci, &cfg, &outcome) == 0 && outcome == CLAIM_SKIP_RUNNING, "while its process lives it is skipped");
    store_run_end(s, c1, "failed", "disk full");
    int64_t c2 = store_run_claim(s, &ci, &cfg, &outcome);
    CHECK(c2 > 0 && outcome == CLAIM_RESTART, "a failed run is claimed again (run %lld)", (long long)c2);
    store_run_end(s, c2, "done", NULL);
    CHECK(store_run_claim(s, &ci, &cfg, &outcome) == 0 && outcome == CLAIM_SKIP_DONE, "a done run is skipped");
    ci.identity = "diverges";
    int64_t c3 = store_run_claim(s, &ci, &cfg, &outcome);
    store_run_end(s, c3, "diverged", "step 3: non-finite loss");
    CHECK(store_run_claim(s, &ci, &cfg, &outcome) == 0 && outcome == CLAIM_SKIP_DIVERGED, "a diverged run is skipped (deterministic)");
    ci.identity = "killed";
    int64_t c4 = store_run_claim(s, &ci, &cfg, &outcome);
    store_flush(s);
    db = db_open(path);
    char sql[128];
    snprintf(sql, sizeof sql, "UPDATE runs SET pid = 2147483646 WHERE id = %lld", (long long)c4);   // a process that is gone
    sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_close(db);
    int64_t c5 = store_run_claim(s, &ci, &cfg, &outcome);
    CHECK(c5 > 0 && outcome == CLAIM_RESTART, "a 'running' row whose process died is claimed again");
    store_close(s);
    db = db_open(path);
    CHECK(q_int(db, "SELECT count(*) FROM runs WHERE identity IN ('claim-me', 'diverges', 'killed')") == 3 &&
          q_int(db, "SELECT count(*) FROM params p JOIN runs r ON r.id = p.run_id WHERE r.identity = 'claim-me'") == cfg.n,
          "one row per identity; the replaced attempts' params are gone");
    CHECK(q_int(db, "SELECT count(*) FROM evals") == 2 && q_int(db, "SELECT count FROM evals WHERE source = 'eval'") == 30 &&
          q_int(db, "SELECT count FROM evals WHERE source = 'train'") == 10 &&
          strcmp(q_text(db, "SELECT value FROM evals WHERE source = 'train'"), "0.6") == 0,
          "one row per (run, task, split, slice, metric, source); the latest value kept");
    sqlite3_close(db);
}

// A version-2 file gains the benchmarks table; rows go in whole (NaN as NULL, axes as JSON SQLite
// can query), bad rows are refused without writing any, and merging copies them once.
static void test_v3(void) {
    test_group("schema v3");
    char err[1024] = "";
    const char *path = path_in("v2.db");
    Store *s = store_open(path, err, sizeof err);
    RunInfo ri = run_info("exp", "v", 1);
    store_run_begin(s, &ri, &cfg);
    store_close(s);
    sqlite3 *db = db_open(path);   // turn it back into a version-2 file
    sqlite3_exec(db, "DROP TABLE benchmarks; ALTER TABLE runs DROP COLUMN ranks;"
                     "PRAGMA user_version = 2; UPDATE meta SET value = '2' WHERE key = 'schema_version';", NULL, NULL, NULL);
    CHECK(q_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'benchmarks'") == 0, "a version-2 file made");
    sqlite3_close(db);
    s = store_open(path, err, sizeof err);
    CHECK(s != NULL, "version 2 opens (%s)", err);
    if (!s) return;
    db = db_open(path);
    CHECK(q_int(db, "PRAGMA user_version") == 4 && q_int(db, "SELECT count(*) FROM benchmarks") == 0 &&
          q_int(db, "SELECT count(*) FROM runs") == 1, "migrated to 4: benchmarks table, the run kept");
    CHECK(q_int(db, "SELECT count(*) FROM pragma_table_info('benchmarks') WHERE name IN ('id', 'suite', 'kind', 'arch', 'metric',"
                    " 'value', 'unit', 'axes', 'created_at', 'code_version', 'host', 'cpu', 'blas_core', 'threads')") == 14,
          "benchmarks has its 14 columns");
    sqlite3_close(db);

    BenchRecord rows[3] = {
        {"suite 1", "train", "mamba2", "tokens_per_s", "tokens/s", 12345.5, "{\"d_model\": 128, \"seq_len\": 256}",
         "v0.1-test", "testhost", "Test CPU", "Haswell", 2},
        {NULL, "sgemm", "", "peak_gflops", "GFLOP/s", 99.5, NULL, "v0.1-test", "testhost", "Test CPU", "Haswell", 1},
        {"suite 1", "decode", "attention", "ms_per_token", "ms", NAN, "{\"tokens\": 4096}", "v0.1-test", "testhost", "Test CPU",
         "Haswell", 1},
    };
    CHECK(store_benchmarks(s, rows, 3) == 0, "3 rows recorded (%s)", store_errmsg(s));
    BenchRecord bad[2] = {rows[0], rows[0]};
    bad[1].axes = "{\"d_model\":";
    CHECK(store_benchmarks(s, bad, 2) == -1 && strstr(store_errmsg(s), "not valid JSON"), "bad axes refused: %s", store_errmsg(s));
    bad[1].axes = "[1, 2]";
    CHECK(store_benchmarks(s, bad, 2) == -1 && strstr(store_errmsg(s), "JSON object"), "axes not an object: %s", store_errmsg(s));
    bad[1] = rows[0];
    bad[1].metric = "";
    CHECK(store_benchmarks(s, bad, 2) == -1 && strstr(store_errmsg(s), "kind and a metric"), "row without a metric: %s", store_errmsg(s));
    store_close(s);
    db = db_open(path);
    CHECK(q_int(db, "SELECT count(*) FROM benchmarks") == 3, "a refused batch wrote nothing (3 rows)");
    CHECK(strcmp(q_text(db, "SELECT suite || '|' || kind || '|' || arch || '|' || metric || '|' || unit || '|' || value || '|' || threads"
                            " FROM benchmarks WHERE kind = 'train'"), "suite 1|train|mamba2|tokens_per_s|tokens/s|12345.5|2") == 0,
          "train row read back");
    CHECK(strcmp(q_text(db, "SELECT json_extract(axes, '$.seq_len') FROM benchmarks WHERE kind = 'train'"), "256") == 0,
          "axes stored as JSON SQLite can query");
    CHECK(strcmp(q_text(db, "SELECT axes || '|' || quote(suite) || '|' || quote(arch) FROM benchmarks WHERE kind = 'sgemm'"),
                 "{}|NULL|NULL") == 0, "missing axes are '{}', empty suite and arch NULL");
    CHECK(strcmp(q_text(db, "SELECT quote(value) FROM benchmarks WHERE kind = 'decode'"), "NULL") == 0, "a NaN value is NULL");
    const char *at = q_text(db, "SELECT created_at FROM benchmarks WHERE kind = 'train'");
    CHECK(strlen(at) == 20 && at[10] == 'T' && at[19] == 'Z', "created_at UTC ISO-8601: %s", at);
    CHECK(strcmp(q_text(db, "SELECT code_version || '|' || host || '|' || cpu || '|' || blas_core FROM benchmarks WHERE kind = 'sgemm'"),
                 "v0.1-test|testhost|Test CPU|Haswell") == 0, "machine columns");
    sqlite3_close(db);

    // merging: the rows are copied once, however often the same store is merged
    const char *into = path_in("v3-merged.db");
    s = store_open(into, err, sizeof err);
    long copied = 0, skipped = 0;
    int rc1 = store_merge(s, path, &copied, &skipped), rc2 = store_merge(s, path, &copied, &skipped);
    store_close(s);
    db = db_open(into);
    CHECK(rc1 == 0 && rc2 == 0 && q_int(db, "SELECT count(*) FROM benchmarks") == 3 && q_int(db, "SELECT count(*) FROM runs") == 1,
          "merged twice: 3 benchmark rows and 1 run, nothing duplicated");
    sqlite3_close(db);
}

// A version-3 file gains runs.ranks (1 for its runs); a run records how many data-parallel ranks
// trained it (at least 1), through store_run_begin, store_run_claim and store_merge.
static void test_v4(void) {
    test_group("schema v4");
    char err[1024] = "";
    const char *path = path_in("v3.db");
    Store *s = store_open(path, err, sizeof err);
    RunInfo ri = run_info("exp", "old", 1);
    ri.identity = "old";
    ri.ranks = 8;   // dropped with the column below: the migrated row must say 1
    store_run_begin(s, &ri, &cfg);
    store_close(s);
    sqlite3 *db = db_open(path);   // turn it back into a version-3 file
    sqlite3_exec(db, "ALTER TABLE runs DROP COLUMN ranks; PRAGMA user_version = 3; UPDATE meta SET value = '3' WHERE key = 'schema_version';",
                 NULL, NULL, NULL);
    CHECK(q_int(db, "SELECT count(*) FROM pragma_table_info('runs') WHERE name = 'ranks'") == 0 && q_int(db, "PRAGMA user_version") == 3,
          "a version-3 file made");
    sqlite3_close(db);
    s = store_open(path, err, sizeof err);
    CHECK(s != NULL, "version 3 opens (%s)", err);
    if (!s) return;
    db = db_open(path);
    CHECK(q_int(db, "PRAGMA user_version") == 4 && strcmp(q_text(db, "SELECT value FROM meta WHERE key = 'schema_version'"), "4") == 0,
          "migrated to 4 in user_version and meta");
    CHECK(strcmp(q_text(db, "SELECT type || ' notnull ' || \"notnull\" || ' default ' || dflt_value FROM pragma_table_info('runs')"
                            " WHERE name = 'ranks'"), "INTEGER notnull 1 default 1") == 0, "runs.ranks INTEGER NOT NULL DEFAULT 1");
    CHECK(strcmp(q_text(db, "SELECT typeof(ranks) || ranks FROM runs WHERE variant = 'old'"), "integer1") == 0 &&
          q_int(db, "SELECT count(*) FROM runs") == 1, "the old run kept, ranks 1");
    sqlite3_close(db);

    // store_run_begin writes max(1, ranks)
    static const struct { const char *variant; int ranks, want; } cases[] = {{"r2", 2, 2}, {"r0", 0, 1}, {"r1", 1, 1}, {"rneg", -3, 1}};
    for (int i = 0; i < 4; i++) {
        RunInfo r = run_info("exp", cases[i].variant, 2);
        r.identity = cases[i].variant;   // distinct identities: store_merge keeps one run per identity
        r.ranks = cases[i].ranks;
        CHECK(store_run_begin(s, &r, &cfg) > 0, "run with ranks %d recorded (%s)", cases[i].ranks, store_errmsg(s));
    }
    // store_run_claim: a new run and a restarted one carry ranks
    RunInfo ci = run_info("exp", "claimed", 3);
    ci.identity = "claim-ranks";
    ci.host = "this-host";
    ci.ranks = 4;
    int outcome = -1;
    int64_t c1 = store_run_claim(s, &ci, &cfg, &outcome);
    CHECK(c1 > 0 && outcome == CLAIM_NEW, "claimed with 4 ranks (%s)", store_errmsg(s));
    store_run_end(s, c1, "failed", "x");
    ci.ranks = 3;
    int64_t c2 = store_run_claim(s, &ci, &cfg, &outcome);
    CHECK(c2 > 0 && outcome == CLAIM_RESTART, "restarted with 3 ranks (%s)", store_errmsg(s));
    store_run_end(s, c2, "done", NULL);
    store_close(s);
    db = db_open(path);
    const char *want = "old:1,r2:2,r0:1,r1:1,rneg:1,claimed:3";
    const char *got = q_text(db, "SELECT group_concat(variant || ':' || ranks, ',') FROM (SELECT variant, ranks FROM runs ORDER BY id)");
    CHECK(strcmp(got, want) == 0, "ranks stored: %s", got);
    CHECK(q_int(db, "SELECT count(*) FROM runs WHERE typeof(ranks) != 'integer'") == 0, "every ranks value is an integer");
    sqlite3_close(db);

    // merging carries ranks
    const char *into = path_in("v4-merged.db");
    s = store_open(into, err, sizeof err);
    long copied = 0, skipped = 0;
    int rc = store_merge(s, path, &copied, &skipped);
    store_close(s);
    db = db_open(into);
    got = q_text(db, "SELECT group_concat(variant || ':' || ranks, ',') FROM (SELECT variant, ranks FROM runs ORDER BY id)");
    CHECK(rc == 0 && copied == 6 && strcmp(got, want) == 0, "merge copies ranks: %s", got);
    sqlite3_close(db);
}

enum { NCHILD = 4, NRUNS = 50, NMETRICS = 20 };

// One writer process: opens the (possibly not yet created) store and records NRUNS runs.
static int child_work(const char *path, int id) {
    char err[1024];
    Store *s = store_open(path, err, sizeof err);
    if (!s) { fprintf(stderr, "child %d: %s\n", id, err); return 1; }
    char variant[32];
    snprintf(variant, sizeof variant, "child%d", id);
    for (int r = 0; r < NRUNS; r++) {
        RunInfo ri = run_info("concurrent", variant, r);
        int64_t run = store_run_begin(s, &ri, &cfg);
        if (run < 0) { fprintf(stderr, "child %d: %s\n", id, store_errmsg(s)); return 1; }
        for (int m = 0; m < NMETRICS; m++) {
            store_metric(s, run, m, m * 1024.0, m * 0.01, "loss", id * 1000 + r + m * 1e-3);
            if (m % 5 == 4 && store_flush(s) != 0) { fprintf(stderr, "child %d: %s\n", id, store_errmsg(s)); return 1; }
        }
        if (store_run_end(s, run, "done", NULL) != 0) { fprintf(stderr, "child %d: %s\n", id, store_errmsg(s)); return 1; }
    }
    store_close(s);
    return 0;
}

static void test_concurrent(void) {
    test_group("concurrent");
    const char *path = path_in("conc/hlab.db");
    int gate[2];
    if (pipe(gate) != 0) die("pipe");
    fflush(stdout);
    pid_t pids[NCHILD];
    for (int i = 0; i < NCHILD; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            char c;
            close(gate[1]);
            if (read(gate[0], &c, 1) < 0) _exit(3);   // returns 0 when the parent opens the gate
            _exit(child_work(path, i));
        }
    }
    double t0 = now_seconds();
    close(gate[0]);
    close(gate[1]);   // all children start at once, on a file nobody has created yet
    int all_ok = 1;
    for (int i = 0; i < NCHILD; i++) {
        int status;
        waitpid(pids[i], &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) all_ok = 0;
    }
    CHECK(all_ok, "%d processes wrote %d runs of %d metrics each at once (%.2f s)", NCHILD, NRUNS, NMETRICS, now_seconds() - t0);
    sqlite3 *db = db_open(path);
    CHECK(q_int(db, "SELECT count(*) FROM runs") == NCHILD * NRUNS, "exactly %d runs", NCHILD * NRUNS);
    CHECK(q_int(db, "SELECT count(*) FROM metrics") == NCHILD * NRUNS * NMETRICS, "exactly %d metrics", NCHILD * NRUNS * NMETRICS);
    CHECK(q_int(db, "SELECT count(*) FROM params") == NCHILD * NRUNS * cfg.n, "exactly %d params", NCHILD * NRUNS * cfg.n);
    CHECK(q_int(db, "SELECT count(*) FROM (SELECT run_id FROM metrics GROUP BY run_id HAVING count(*) = 20)") == NCHILD * NRUNS,
          "every run has its 20 metrics");
    CHECK(q_int(db, "SELECT count(*) FROM runs WHERE status = 'done' AND ended_at IS NOT NULL") == NCHILD * NRUNS, "every run done");
    CHECK(q_int(db, "SELECT count(*) FROM (SELECT variant FROM runs GROUP BY variant HAVING count(*) = 50)") == NCHILD &&
          q_int(db, "SELECT count(*) FROM experiments") == 1, "50 runs per process, one shared experiment row");
    CHECK(q_int(db, "PRAGMA user_version") == 4 && strcmp(q_text(db, "SELECT group_concat(value) FROM meta"), "4") == 0,
          "schema created exactly once");
    CHECK(strcmp(q_text(db, "PRAGMA integrity_check"), "ok") == 0, "integrity_check ok");
    sqlite3_close(db);
}

// Another process holding the write lock for a second: our write waits for it instead of
// failing with "database is locked".
static void test_wait_for_lock(void) {
    test_group("lock");
    char err[1024];
    const char *path = path_in("conc/hlab.db");
    Store *s = store_open(path, err, sizeof err);
    CHECK(s != NULL, "open (%s)", err);
    if (!s) return;
    int ready[2];
    if (pipe(ready) != 0) die("pipe");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        sqlite3 *db = db_open(path);
        int rc = sqlite3_exec(db, "BEGIN IMMEDIATE; INSERT INTO meta VALUES('holder', 'x');", NULL, NULL, NULL);
        if (write(ready[1], "x", 1) != 1) _exit(3);
        usleep(1000000);
        rc |= sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
        sqlite3_close(db);
        _exit(rc == SQLITE_OK ? 0 : 1);
    }
    char c;
    if (read(ready[0], &c, 1) != 1) die("read");
    double t0 = now_seconds();
    RunInfo ri = run_info("concurrent", "late", 1);
    int64_t run = store_run_begin(s, &ri, &cfg);
    double waited = now_seconds() - t0;
    int status;
    waitpid(pid, &status, 0);
    close(ready[0]); close(ready[1]);
    CHECK(run > 0 && waited > 0.5, "write waited %.2f s for the other writer, then succeeded (%s)", waited, run > 0 ? "" : store_errmsg(s));
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the other writer committed too");
    store_close(s);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/hlab_store_XXXXXX");
    if (!mkdtemp(dir)) die("mkdtemp failed");
    test_basic();
    test_reopen();
    test_refuse();
    test_v2();
    test_v3();
    test_v4();
    test_concurrent();
    test_wait_for_lock();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_summary();
}
