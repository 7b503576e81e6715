// test_resume.c: training checkpoints (bitwise round trip, refusals), the store's side of
// resuming (a sweep's claim continues a run, reopening trims the curve), and divergence (the
// step and the tensor named; skip_step counts and stops at its limit). tests/t_resume.sh
// checks resumed training end to end, with SIGKILL and SIGTERM.
#include "test.h"
#include "checkpoint.h"
#include "keys.h"
#include "machine.h"
#include "model.h"
#include "optim.h"
#include "store.h"
#include "train.h"
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static const char *tiny =
    "seed: 3\n"
    "model: {d_model: 16, vocab_size: 64, pattern: \"M-*-\", attention: {heads: 2}, mamba: {d_state: 4}, mlp: {hidden: 24}}\n"
    "data: {task: mqar, seq_len: 32, mqar: {num_kv_pairs: 4, train_examples: 64, valid_examples: 16, test_examples: 16}}\n"
    "train: {batch_size: 4, steps: 6, lr: 3e-3, log_every: 1}\n";

static int load(Config *c, const char *yaml, char **sets, int nsets) {
    ConfError err;
    int rc = config_load_string(c, yaml, "test", sets, nsets, all_key_tables(), &err);
    if (rc) printf("config error: %s\n", err.msg);
    return rc;
}

static const char *path_of(const char *name) {
    static char buf[8][256];
    static int k;
    char *out = buf[k++ % 8];
    snprintf(out, 256, "%s/%s", dir, name);
    return out;
}

static int64_t q_int(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st;
    int64_t v = -999;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) { printf("  SQL error: %s\n", sqlite3_errmsg(db)); return v; }
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static const char *q_text(sqlite3 *db, const char *sql) {
    static char buf[4][2048];
    static int k;
    char *out = buf[k++ % 4];
    sqlite3_stmt *st;
    snprintf(out, 2048, "(none)");
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) { snprintf(out, 2048, "SQL error: %s", sqlite3_errmsg(db)); return out; }
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) snprintf(out, 2048, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return out;
}

// A model of the tiny config with its AdamW, every value set from a generator (moments too).
static int make_model(Config *c, Model *m, AdamW *o, uint64_t seed) {
    ConfError err;
    if (load(c, tiny, NULL, 0) || model_build(m, c, &err)) return -1;
    model_alloc(m, 1, 8, 8);
    model_init(m, seed);
    adamw_init(o, m, 0.9, 0.95, 1e-8, 0.1);
    Rng r;
    rng_seed(&r, seed + 100);
    for (size_t i = 0; i < o->n; i++) { o->m[i] = (real)rng_normal(&r); o->v[i] = (real)rng_uniform(&r); }
    o->t = 17;
    return 0;
}

static void test_roundtrip(void) {
    test_group("training checkpoint");
    Config c1, c2;
    Model a, b;
    AdamW oa, ob;
    if (make_model(&c1, &a, &oa, 1) || make_model(&c2, &b, &ob, 2)) { CHECK(0, "models"); return; }
    static TrainState ts, back;
    memset(&ts, 0, sizeof ts);
    ts.step = 40; ts.skipped = 2; ts.finished = 0; ts.tokens = 1234.5; ts.wall = 0.1 + 0.2; ts.loss_sum = 1.0 / 3.0;
    ts.aux_sum = 1e-300; ts.loss_n = 3; ts.nphases = 2; ts.ntasks[0] = 1; ts.ntasks[1] = 3;
    ts.cursor[0][0] = 7; ts.epoch[0][0] = 2; ts.cursor[1][2] = 5; ts.epoch[1][1] = 9;
    snprintf(ts.identity, sizeof ts.identity, "0123456789abcdef");
    ts.run = 12; snprintf(ts.store, sizeof ts.store, "/x/y.db"); ts.threads = 3;
    char err[1200];
    const char *p = path_of("state.safetensors");
    CHECK(checkpoint_save_training(&a, &oa, &ts, p, err, sizeof err) == 0, "written (%s)", err);
    int rc = checkpoint_load_training(&b, &ob, &back, p, err, sizeof err);
    CHECK(rc == 0, "read back (%s)", rc ? err : "");
    CHECK(!memcmp(a.params, b.params, a.nparams * sizeof(real)) && !memcmp(oa.m, ob.m, oa.n * sizeof(real)) &&
          !memcmp(oa.v, ob.v, oa.n * sizeof(real)) && ob.t == 17, "weights, both moments and the AdamW step: bitwise");
    CHECK(back.step == 40 && back.skipped == 2 && back.tokens == 1234.5 && back.wall == 0.1 + 0.2 && back.loss_sum == 1.0 / 3.0 &&
          back.aux_sum == 1e-300 && back.loss_n == 3, "step, skips, tokens, wall and the log interval's sums: exact");
    CHECK(back.nphases == 2 && back.ntasks[1] == 3 && back.cursor[0][0] == 7 && back.epoch[0][0] == 2 && back.cursor[1][2] == 5 &&
          back.epoch[1][1] == 9, "the data order's position per phase and task");
    CHECK(!strcmp(back.identity, "0123456789abcdef") && back.run == 12 && !strcmp(back.store, "/x/y.db") && back.threads == 3,
          "identity, run, store and threads in the metadata");
    CHECK(checkpoint_is_training(p), "recognised as a training checkpoint");

    // its weights load like any checkpoint's (eval, generate, --init skip the training state)
    memset(b.params, 0, b.nparams * sizeof(real));
    rc = checkpoint_load(&b, p, err, sizeof err);
    CHECK(rc == 0 && !memcmp(a.params, b.params, a.nparams * sizeof(real)), "checkpoint_load takes its weights (%s)", rc ? err : "");

    // final weights alone cannot be continued from
    const char *w = path_of("weights.safetensors");
    checkpoint_save(&a, w, err, sizeof err);
    rc = checkpoint_load_training(&b, &ob, &back, w, err, sizeof err);
    CHECK(rc != 0 && strstr(err, "not a training checkpoint") && !checkpoint_is_training(w), "a weights-only file is refused: %s", err);

    // another model's training checkpoint is refused by name
    Config c3;
    Model d;
    ConfError cerr;
    char *sets[] = {"model.pattern=M-M-"};
    if (load(&c3, tiny, sets, 1) || model_build(&d, &c3, &cerr)) { CHECK(0, "other model"); return; }
    model_alloc(&d, 1, 8, 8);
    AdamW od;
    adamw_init(&od, &d, 0.9, 0.95, 1e-8, 0.1);
    rc = checkpoint_load_training(&d, &od, &back, p, err, sizeof err);
    CHECK(rc != 0 && strstr(err, "missing"), "another architecture's checkpoint is refused: %s", err);

    // writing again over a good checkpoint goes through a temporary: the old file stays whole if
    // the new one cannot be written (a path whose temporary cannot be created)
    rc = checkpoint_save_training(&a, &oa, &ts, path_of("no-such-dir/x.safetensors"), err, sizeof err);
    CHECK(rc != 0, "an unwritable path fails cleanly (%s)", err);
    adamw_free(&oa); adamw_free(&ob); adamw_free(&od);
    model_free(&a); model_free(&b); model_free(&d);
    config_free(&c1); config_free(&c2); config_free(&c3);
}

static void test_store_side(void) {
    test_group("store resume");
    char err[1024];
    const char *path = path_of("claims.db");
    Store *s = store_open(path, err, sizeof err);
    if (!s) { CHECK(0, "open: %s", err); return; }
    RunInfo ri = {"exp", "v", "feedfacefeedface", "seed: 1\n", "M-*-", 1, "v-test", "this-host", "cpu", "Haswell", 1, 1, 1, 1};
    int outcome;
    int64_t run = store_run_claim(s, &ri, NULL, &outcome);
    CHECK(run > 0 && outcome == CLAIM_NEW, "claimed (run %lld)", (long long)run);
    for (long step = 10; step <= 40; step += 10) store_metric(s, run, step, step * 100.0, step, "train_loss", 1.0 / step);
    store_flush(s);
    store_eval(s, run, "mqar", "test", "{}", "accuracy", 0.5, 10);
    store_set_eval_source(s, "eval");
    store_eval(s, run, "mqar", "test", "{}", "accuracy", 0.6, 10);
    store_set_eval_source(s, NULL);
    store_run_checkpoint(s, run, "/abs/run.safetensors");
    store_run_end(s, run, "interrupted", "interrupted by signal 15 at step 40");
    int64_t again = store_run_claim(s, &ri, NULL, &outcome);
    CHECK(again == run && outcome == CLAIM_RESUME, "an interrupted run with a checkpoint is claimed to resume, same row (%lld)", (long long)again);
    sqlite3 *db;
    sqlite3_open(path, &db);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT status || '|' || pid || '|' || coalesce(error, '-') FROM runs WHERE id = %lld", (long long)run);
    char want[64];
    snprintf(want, sizeof want, "running|%d|-", (int)getpid());
    CHECK(!strcmp(q_text(db, sql), want), "the claim marks it running by this process (%s)", q_text(db, sql));
    CHECK(store_run_claim(s, &ri, NULL, &outcome) == 0 && outcome == CLAIM_SKIP_RUNNING, "and nobody else claims it meanwhile");
    CHECK(store_run_reopen(s, run, "0000000000000000", 20, "this-host") != 0 && strstr(store_errmsg(s), "another run"),
          "reopening with another identity is refused: %s", store_errmsg(s));
    CHECK(store_run_reopen(s, run, ri.identity, 20, "this-host") == 0, "reopened at step 20 (%s)", store_errmsg(s));
    snprintf(sql, sizeof sql, "SELECT group_concat(step) FROM (SELECT step FROM metrics WHERE run_id = %lld ORDER BY step)", (long long)run);
    CHECK(!strcmp(q_text(db, sql), "10,20"), "metrics after the checkpoint's step are gone (%s)", q_text(db, sql));
    snprintf(sql, sizeof sql, "SELECT group_concat(source) FROM evals WHERE run_id = %lld", (long long)run);
    CHECK(!strcmp(q_text(db, sql), "eval"), "end-of-training evals are gone, `hlab eval` rows stay (%s)", q_text(db, sql));
    // another live process training it: refused
    snprintf(sql, sizeof sql, "UPDATE runs SET pid = %d WHERE id = %lld", (int)getppid(), (long long)run);
    sqlite3_exec(db, sql, NULL, NULL, NULL);
    CHECK(store_run_reopen(s, run, ri.identity, 20, "this-host") != 0 && strstr(store_errmsg(s), "being trained"),
          "a run a live process trains is refused: %s", store_errmsg(s));
    store_run_end(s, run, "done", NULL);
    CHECK(store_run_reopen(s, run, ri.identity, 20, "this-host") != 0 && strstr(store_errmsg(s), "done"),
          "a done run is refused: %s", store_errmsg(s));
    CHECK(store_run_reopen(s, 9999, ri.identity, 20, "this-host") != 0, "an unknown run is refused: %s", store_errmsg(s));
    // without a checkpoint an interrupted run is trained again from scratch (a new row)
    ri.identity = "0123012301230123";
    int64_t r2 = store_run_claim(s, &ri, NULL, &outcome);
    store_run_end(s, r2, "interrupted", NULL);
    int64_t r3 = store_run_claim(s, &ri, NULL, &outcome);
    CHECK(r2 > 0 && r3 > 0 && outcome == CLAIM_RESTART && q_int(db, "SELECT count(*) FROM runs WHERE identity = '0123012301230123'") == 1,
          "without a checkpoint: trained again in a new row (%lld, then %lld)", (long long)r2, (long long)r3);
    sqlite3_close(db);
    store_close(s);
}

// A run whose weights hold a NaN (a checkpoint given to --init): diverged at step 1, naming it.
static void test_divergence(void) {
    test_group("divergence");
    Config c;
    Model m;
    ConfError cerr;
    if (load(&c, tiny, NULL, 0) || model_build(&m, &c, &cerr)) { CHECK(0, "model"); return; }
    model_alloc(&m, 1, 8, 8);
    model_init(&m, 3);
    const char *bad = "model.layers.1.self_attn.k_proj.weight";
    int i = model_find_param(&m, bad);
    CHECK(i >= 0, "the model has %s", bad);
    if (i < 0) return;
    m.params[m.pinfo[i].offset + 5] = NAN;
    char err[1200];
    const char *nan_ckpt = path_of("nan.safetensors");
    CHECK(checkpoint_save(&m, nan_ckpt, err, sizeof err) == 0, "a checkpoint with a NaN weight (%s)", err);
    model_free(&m);

    const char *db = path_of("div.db");
    TrainOptions o = {.db = db, .init = nan_ckpt, .quiet = 1, .experiment = "", .variant = ""};
    int rc = train_main(&c, &o);
    CHECK(rc == EXIT_DIVERGED, "exit status %d is EXIT_DIVERGED", rc);
    sqlite3 *s;
    sqlite3_open(db, &s);
    const char *e = q_text(s, "SELECT status || ': ' || error FROM runs ORDER BY id DESC LIMIT 1");
    CHECK(!strncmp(e, "diverged: step 1: non-finite ", 29) && strstr(e, "non-finite weight in model.layers.1.self_attn.k_proj.weight") &&
          strstr(e, "first non-finite gradient: "), "the step and the tensor are named: %s", e);

    // skip_step drops each non-finite update and counts it; past the limit the run is diverged
    char *sets[] = {"train.on_divergence=skip_step", "train.max_skipped_steps=3"};
    Config cs;
    if (load(&cs, tiny, sets, 2)) return;
    rc = train_main(&cs, &o);
    e = q_text(s, "SELECT status || ': ' || error FROM runs ORDER BY id DESC LIMIT 1");
    CHECK(rc == EXIT_DIVERGED && !strncmp(e, "diverged: step 4: ", 18) && strstr(e, "3 updates skipped before it"),
          "skip_step: 3 skipped, the 4th ends it (exit %d): %s", rc, e);
    int64_t skips = q_int(s, "SELECT max(value) FROM metrics WHERE name = 'skipped_steps' AND run_id = (SELECT max(id) FROM runs)");
    CHECK(skips == 3, "the skips are counted in the metric skipped_steps (%lld)", (long long)skips);
    config_free(&cs);

    char *sets2[] = {"train.on_divergence=skip_step", "train.max_skipped_steps=100"};
    if (load(&cs, tiny, sets2, 2)) return;
    o.out = path_of("skipped.safetensors");
    rc = train_main(&cs, &o);
    e = q_text(s, "SELECT status FROM runs ORDER BY id DESC LIMIT 1");
    skips = q_int(s, "SELECT value FROM metrics WHERE name = 'skipped_steps' AND run_id = (SELECT max(id) FROM runs) ORDER BY step DESC");
    CHECK(rc == EXIT_OK && !strcmp(e, "done") && skips == 6, "under the limit the run ends done, every step skipped (%s, %lld skips)", e,
          (long long)skips);
    Model a, b;
    model_build(&a, &cs, &cerr); model_build(&b, &cs, &cerr);
    model_alloc(&a, 1, 8, 8); model_alloc(&b, 1, 8, 8);
    int same = checkpoint_load(&a, nan_ckpt, err, sizeof err) == 0 && checkpoint_load(&b, o.out, err, sizeof err) == 0;
    for (size_t k = 0; same && k < a.nparams; k++) same = !memcmp(&a.params[k], &b.params[k], sizeof(real));
    CHECK(same, "a skipped update leaves the weights untouched");
    model_free(&a); model_free(&b);
    sqlite3_close(s);
    config_free(&cs);
    config_free(&c);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/hlab_resume_XXXXXX");
    if (!mkdtemp(dir)) die("mkdtemp failed");
    test_roundtrip();
    test_store_side();
    test_divergence();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_summary();
}
