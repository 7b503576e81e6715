// resume.c: where training checkpoints go, and `hlab train --resume` (see resume.h).
#include "resume.h"
#include "checkpoint.h"
#include "dist.h"
#include "keys.h"
#include "store.h"
#include "train.h"
#include <glob.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// The absolute form of path, which need not exist yet. Returns 0, or -1 when it does not fit.
int resume_absolute_path(const char *path, char *out, size_t cap) {
    char cwd[4096];
    int n = path[0] == '/' || !getcwd(cwd, sizeof cwd) ? snprintf(out, cap, "%s", path) : snprintf(out, cap, "%s/%s", cwd, path);
    return n >= 0 && (size_t)n < cap ? 0 : -1;
}

// Where a run's training checkpoint goes: in train.checkpoint_dir, or checkpoints/ next to the
// store, named after the store file and the run id (a row of a store has one file, whatever
// else shares the directory), or without a store after the run identity. "" when there is
// neither a directory nor a store. The path follows from the run alone, so a process killed
// between writing the file and recording it in the store loses nothing. Returns 0, or -1 when
// the path does not fit.
int resume_checkpoint_path(const Config *cfg, const char *dbpath, int64_t run, const char *identity, char *out, size_t cap) {
    const char *dir = cfg_str(cfg, "train.checkpoint_dir");
    out[0] = 0;
    if (!dir[0] && !dbpath) return 0;
    int n;
    if (dbpath) {
        const char *slash = strrchr(dbpath, '/'), *base = slash ? slash + 1 : dbpath, *dot = strrchr(base, '.');
        int dlen = (int)(base - dbpath), blen = dot && dot > base ? (int)(dot - base) : (int)strlen(base);
        n = dir[0] ? snprintf(out, cap, "%s/%.*s-run%lld.safetensors", dir, blen, base, (long long)run)
                   : snprintf(out, cap, "%.*scheckpoints/%.*s-run%lld.safetensors", dlen, dbpath, blen, base, (long long)run);
    } else {
        n = snprintf(out, cap, "%s/%s.safetensors", dir, identity);
    }
    if (n >= 0 && (size_t)n < cap) return 0;
    out[0] = 0;
    return -1;
}
// The data plan's position (each phase's cursor and epoch of every task) into ts.
void resume_plan_position(const DataPlan *p, TrainState *ts) {
    ts->nphases = p->nphases;
    for (int k = 0; k < p->nphases; k++) {
        const Mixture *mx = &p->phase[k].mix;
        ts->ntasks[k] = mx->n;
        for (int i = 0; i < mx->n; i++) { ts->cursor[k][i] = mx->cursor[i]; ts->epoch[k][i] = mx->epoch[i]; }
    }
}

// Brings a freshly opened data plan to where it is after `steps` steps by drawing those steps'
// batches again (indices only: no example is generated), which is by construction the order an
// uninterrupted run saw. The position reached must be the one the checkpoint recorded.
int resume_replay_plan(DataPlan *p, long steps, int B, const TrainState *ts, char *err, size_t cap) {
    const Task *task[B];
    void *st[B];
    long idx[B];
    for (long s = 0; s < steps; s++) plan_batch(p, s, B, task, st, idx);
    static TrainState now;   // large (paths): not on the stack
    memset(&now, 0, sizeof now);
    resume_plan_position(p, &now);
    int same = now.nphases == ts->nphases;
    for (int k = 0; same && k < now.nphases; k++) {
        same = now.ntasks[k] == ts->ntasks[k];
        for (int i = 0; same && i < now.ntasks[k]; i++)
            same = now.cursor[k][i] == ts->cursor[k][i] && now.epoch[k][i] == ts->epoch[k][i];
    }
    if (!same) snprintf(err, cap, "the data order replayed to step %ld is not the one the checkpoint recorded (another code version?)", steps);
    return same ? 0 : -1;
}
// A training checkpoint whose writer was killed leaves PATH.tmp.PID behind (PATH itself is whole).
void resume_remove_temporaries(const char *path) {
    size_t n = strlen(path) + 8;
    char *pat = xmalloc(n);
    snprintf(pat, n, "%s.tmp.*", path);
    glob_t g;
    if (glob(pat, 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++) unlink(g.gl_pathv[i]);
        globfree(&g);
    }
    free(pat);
}
// Continues from the training checkpoint at path with the config it holds, which a config
// given on the command line must equal.
static int train_resume_config(const char *path, const Config *given, const TrainOptions *o) {
    char emsg[1200];
    char *yaml = checkpoint_config(path, emsg, sizeof emsg);
    if (!yaml) { fprintf(stderr, "hlab: --resume: %s\n", emsg); return EXIT_BADINPUT; }
    if (!checkpoint_is_training(path)) {
        fprintf(stderr, "hlab: --resume: %s holds final weights only, not a training checkpoint\n", path);
        free(yaml);
        return EXIT_BADINPUT;
    }
    Config c;
    ConfError err;
    if (config_load_string(&c, yaml, path, NULL, 0, all_key_tables(), &err) != 0) {
        fprintf(stderr, "hlab: --resume: the checkpoint's config: %s\n", err.msg);
        free(yaml);
        return EXIT_BADINPUT;
    }
    free(yaml);
    int rc = EXIT_BADINPUT;
    char *mine = config_canonical_yaml(&c), *theirs = given ? config_canonical_yaml(given) : NULL;
    if (theirs && strcmp(mine, theirs)) {
        // the first line that differs says which key
        const char *a = mine, *b = theirs;
        while (*a && *a == *b) a++, b++;
        while (a > mine && a[-1] != '\n') a--, b--;
        fprintf(stderr, "hlab: --resume: the config differs from the run's own (run: %.*s; given: %.*s); resume without a "
                "config, or train the changed config as a new run\n", (int)strcspn(a, "\n"), a, (int)strcspn(b, "\n"), b);
    } else {
        rc = train_main(&c, o);
    }
    free(mine); free(theirs);
    config_free(&c);
    return rc;
}

// The training checkpoint run `target` of store dbpath recorded, into path. Returns 0 or an exit
// status (the reason printed).
static int run_checkpoint(const char *target, const char *dbpath, char *path, size_t cap) {
    char emsg[1200];
    int64_t run = atoll(target);
    Store *s = store_open(dbpath, emsg, sizeof emsg);
    if (!s) { fprintf(stderr, "hlab: run store: %s\n", emsg); return EXIT_BADINPUT; }
    sqlite3_stmt *st;
    int found = 0;
    char status[32] = "";
    path[0] = 0;
    if (sqlite3_prepare_v2(store_sqlite(s), "SELECT status, checkpoint FROM runs WHERE id = ?1", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, run);
        if (sqlite3_step(st) == SQLITE_ROW) {
            found = 1;
            snprintf(status, sizeof status, "%s", (const char *)sqlite3_column_text(st, 0));
            if (sqlite3_column_text(st, 1)) snprintf(path, cap, "%s", (const char *)sqlite3_column_text(st, 1));
        }
        sqlite3_finalize(st);
    }
    store_close(s);
    const char *why = !found ? "no such run" : !strcmp(status, "done") ? "it is done: nothing to resume"
                    : !strcmp(status, "diverged") ? "it diverged (and would again: see train.on_divergence)"
                    : !path[0] ? "it recorded no training checkpoint (train.checkpoint_every was 0 and no signal stopped it): train it again"
                    : NULL;
    if (why) { fprintf(stderr, "hlab: --resume: run %s of %s: %s\n", target, dbpath, why); return EXIT_BADINPUT; }
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "hlab: --resume: run %s: no checkpoint at %s yet (killed before its first one?): train it again\n", target, path);
        return EXIT_BADINPUT;
    }
    return 0;
}

// `hlab train --resume RUN|CHECKPOINT [CONFIG]`: finds the checkpoint (a run id: the one its row
// records), takes the config from it and continues the run.
int train_resume(const char *target, const Config *given, const TrainOptions *o) {
    char path[4096];
    int is_id = target[0] && strspn(target, "0123456789") == strlen(target) && access(target, F_OK) != 0;
    if (is_id) {
        const char *dbpath = o->db ? o->db : given ? cfg_str(given, "store.db") : store_default_path();
        if (!dbpath[0] || !strcmp(dbpath, "none")) {
            fprintf(stderr, "hlab: --resume %s: a run id needs the run store (--db PATH)\n", target);
            return EXIT_BADINPUT;
        }
        // under MPI only rank 0 reads the store (it may be on rank 0's disk alone) and tells the
        // others; the checkpoint itself must be readable by every rank
        int rc = dist_rank() == 0 ? run_checkpoint(target, dbpath, path, sizeof path) : 0;
        dist_bcast(&rc, sizeof rc);
        dist_bcast(path, sizeof path);
        if (rc) return rc;
        int64_t run = atoll(target);
        if (!o->db) {   // the run's store, for train_main
            static char db[4096];
            snprintf(db, sizeof db, "%s", dbpath);
            dbpath = db;
        }
        TrainOptions r = *o;
        r.db = dbpath;
        r.run_id = run;
        r.resume = path;
        return train_resume_config(path, given, &r);
    }
    snprintf(path, sizeof path, "%s", target);
    TrainOptions r = *o;
    r.resume = path;
    return train_resume_config(path, given, &r);
}
