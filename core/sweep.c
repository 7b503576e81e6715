// sweep.c: `hlab sweep EXP.yaml`: expands an experiment, prints the plan, and trains every run
// the store does not have yet.
//
// A run's identity is the hash of its canonical resolved config and seed (not the code version,
// which every run records: a commit does not orphan the runs a sweep already has). Before
// training, a worker claims the run in the store (store_run_claim, one transaction): a run that
// is done, diverged or being trained by a live process is skipped; a failed, interrupted or dead
// one continues from its training checkpoint when it recorded one (train.checkpoint_every, or a
// signal), and is otherwise trained again in place of the old row. Any number of sweeps (the --jobs workers, other
// terminals, other shards) can therefore work on one store at once and each run is trained once.
// --jobs N starts N worker processes (this program again, each `--worker K`), splitting the cores
// between them: a fresh process per worker keeps OpenMP and SQLite out of fork()'s way.
#include "sweep.h"
#include "experiment.h"
#include "machine.h"
#include "model.h"
#include "store.h"
#include "train.h"
#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

typedef struct { int tty, worker; const char *name; double t0; } Progress;

static void show_progress(void *ctx, long step, long steps, double loss, double seconds) {
    Progress *p = ctx;
    if (!p->tty) return;   // plain logs get one line per run, not per step
    double eta = step > 0 ? seconds * (double)(steps - step) / (double)step : 0;
    printf("\r\033[K  %s: step %ld/%ld  loss %.4f  ETA %.0fs", p->name, step, steps, loss, eta);
    fflush(stdout);
}

static const char *status_of(Store *s, const char *identity, char *buf, size_t cap) {
    if (!s) return "pending";
    int r = store_run_status(s, identity, buf, cap);
    return r == 1 ? buf : r == 0 ? "pending" : "?";
}

// The headline scores of a finished run (first task, whole split, end of training): validation
// and test; bpb when the task reports it (lower is better), else accuracy. Returns 1 if found.
static int run_scores(Store *s, const char *identity, double *valid, double *test, int *lower_better) {
    sqlite3_stmt *st;
    const char *sql =
        "SELECT v.split, v.metric, v.value FROM evals v JOIN runs r ON r.id = v.run_id WHERE r.identity = ?1 AND r.status = 'done'"
        " AND v.source = 'train' AND v.slice = '{}' AND v.split IN ('valid', 'test') AND v.metric IN ('accuracy', 'bpb')"
        " AND v.task = (SELECT task FROM evals w WHERE w.run_id = r.id ORDER BY w.rowid LIMIT 1) ORDER BY v.metric = 'bpb'";
    if (sqlite3_prepare_v2(store_sqlite(s), sql, -1, &st, NULL) != SQLITE_OK) return 0;
    sqlite3_bind_text(st, 1, identity, -1, SQLITE_STATIC);
    int found = 0;
    *lower_better = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {   // bpb rows come last and win
        int is_test = !strcmp((const char *)sqlite3_column_text(st, 0), "test");
        *lower_better = !strcmp((const char *)sqlite3_column_text(st, 1), "bpb");
        if (is_test) *test = sqlite3_column_double(st, 2); else *valid = sqlite3_column_double(st, 2);
        found |= is_test ? 1 : 2;
    }
    sqlite3_finalize(st);
    return found == 3;
}

// One line per variant and grid/zip point: the learning rate with the best mean validation score
// over seeds (Zoology and MAD-lab report the best over learning rates), and its test mean and
// standard deviation over seeds. Selection looks at validation only, never at test.
static void print_results(const Experiment *e, const PlannedRun *runs, int n, Store *s,
                          const SweepOptions *o) {
    int printed = 0;
    for (int i = 0; i < n; i++) {
        if (i % o->shard_n != o->shard_i) continue;
        int first = 1;   // first run of its (variant, point) group?
        for (int j = 0; j < i && first; j++)
            if (j % o->shard_n == o->shard_i && runs[j].variant == runs[i].variant && !strcmp(runs[j].point, runs[i].point)) first = 0;
        if (!first) continue;
        int nlr = e->nlr ? e->nlr : 1, best = -1, lower = 0;
        double best_valid = 0, mean_t[64] = {0}, sq_t[64] = {0};
        int cnt[64] = {0};
        for (int l = 0; l < nlr && l < 64; l++) {
            double sv = 0;
            for (int j = i; j < n; j++) {
                if (j % o->shard_n != o->shard_i || runs[j].variant != runs[i].variant || strcmp(runs[j].point, runs[i].point) ||
                    runs[j].lr_index != l) continue;
                double v, t;
                if (!run_scores(s, runs[j].identity, &v, &t, &lower)) continue;
                sv += v; mean_t[l] += t; sq_t[l] += t * t; cnt[l]++;
            }
            if (!cnt[l]) continue;
            sv /= cnt[l];
            if (best < 0 || (lower ? sv < best_valid : sv > best_valid)) { best = l; best_valid = sv; }
        }
        if (best < 0) continue;
        if (!printed++) printf("%-16s %-40s %-8s %-20s %s\n", "variant", "point", "best lr", lower ? "test bpb" : "test accuracy", "seeds");
        double m = mean_t[best] / cnt[best], var = cnt[best] > 1 ? (sq_t[best] - cnt[best] * m * m) / (cnt[best] - 1) : 0;
        char sd[32] = "";
        if (cnt[best] > 1) snprintf(sd, sizeof sd, " +- %.4f", sqrt(var > 0 ? var : 0));
        char res[48];
        snprintf(res, sizeof res, "%.4f%s", m, sd);
        printf("%-16s %-40s %-8s %-20s %d\n", e->var[runs[i].variant].name, runs[i].point[0] ? runs[i].point : "-",
               e->nlr ? e->lrs[best] : "-", res, cnt[best]);
    }
}

// Runs of the shard this worker walks, in plan order; returns 0, or an exit status.
static int work(const Experiment *e, PlannedRun *runs, int n, const SweepOptions *o,
                const char *dbpath, int in_shard_total) {
    char emsg[1024];
    Store *store = store_open(dbpath, emsg, sizeof emsg);
    if (!store) { fprintf(stderr, "hlab: run store: %s\n", emsg); return EXIT_BADINPUT; }
    MachineInfo mi;
    machine_info(&mi);
    char tag[16] = "";
    if (o->worker > 0) snprintf(tag, sizeof tag, "[w%d] ", o->worker);
    int k = 0, rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        if (i % o->shard_n != o->shard_i) continue;
        k++;
        PlannedRun *r = &runs[i];
        const char *variant = e->var[r->variant].name;
        Model m;
        ConfError err;
        if (model_build(&m, &r->cfg, &err) != 0) { fprintf(stderr, "hlab: %s\n", err.msg); rc = EXIT_BADINPUT; break; }
        char *yaml = config_canonical_yaml(&r->cfg);
        RunInfo ri = run_info_for(&r->cfg, &m, &mi, yaml, r->identity, e->name, variant);
        int outcome;
        int64_t run = store_run_claim(store, &ri, &r->cfg, &outcome);
        model_free(&m);
        free(yaml);
        if (run < 0) { fprintf(stderr, "hlab: run store: %s\n", store_errmsg(store)); rc = EXIT_FAIL; break; }
        if (run == 0) {
            if (!o->quiet)
                printf("%s%d/%d %s %s: skipped (%s)\n", tag, k, in_shard_total, variant, r->label,
                       outcome == CLAIM_SKIP_DONE ? "done" : outcome == CLAIM_SKIP_DIVERGED ? "diverged before" : "running elsewhere");
            continue;
        }
        char name[700];
        snprintf(name, sizeof name, "%s%d/%d %s %s", tag, k, in_shard_total, variant, r->label);
        if (!o->quiet) {
            printf("%s: training (run %lld%s)\n", name, (long long)run,
                   outcome == CLAIM_RESTART ? ", again" : outcome == CLAIM_RESUME ? ", resuming from its checkpoint" : "");
            fflush(stdout);
        }
        Progress pg = {isatty(1), o->worker, name, now_seconds()};
        TrainOptions to = {.db = dbpath, .experiment = e->name, .variant = variant, .quiet = 1, .run_id = run,
                           .progress = show_progress, .progress_ctx = &pg};
        // an interrupted or dead run that recorded a checkpoint continues from it; a checkpoint it
        // cannot use (killed before the first was written ...) means starting over in the same row
        char ckpt[4096] = "";
        if (outcome == CLAIM_RESUME) {
            if (store_checkpoint_of(store, run, ckpt, sizeof ckpt) != 0) ckpt[0] = 0;
            to.resume = ckpt;
            to.resume_fallback = 1;
        }
        int trc = train_main(&r->cfg, &to);
        if (pg.tty) printf("\r\033[K");
        if (trc == EXIT_BADINPUT)   // the run never started (a data file missing ...): say so in the store
            store_run_end(store, run, "failed", "did not start: bad input (the sweep's stderr has the message)");
        double secs = now_seconds() - pg.t0;
        printf("%s: %s in %.1f s\n", name, trc == EXIT_OK ? "done" : trc == EXIT_DIVERGED ? "diverged" : trc == EXIT_INTERRUPTED ? "interrupted" : "failed", secs);
        fflush(stdout);
        if (trc == EXIT_INTERRUPTED) rc = EXIT_INTERRUPTED;   // the user asked to stop: no next run
    }
    store_close(store);
    return rc;
}

// Starts `jobs` workers (this program, `sweep ... --worker K`) with the cores split between
// them, and waits for all. Returns the worst exit status.
static int spawn_workers(const SweepOptions *o, const char *dbpath, int jobs) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = (int)(cores / jobs > 0 ? cores / jobs : 1);
    char thr[16], shard[48], wk[16];
    snprintf(thr, sizeof thr, "%d", threads);
    setenv("OMP_NUM_THREADS", thr, 1);
    snprintf(shard, sizeof shard, "%d/%d", o->shard_i, o->shard_n);
    pid_t pids[256];
    int started = 0, worst = 0;
    for (int w = 1; w <= jobs; w++) {
        snprintf(wk, sizeof wk, "%d", w);
        char *argv[] = {"hlab", "sweep", (char *)o->exp, "--db", (char *)dbpath, "--shard", shard, "--worker", wk,
                        o->quiet ? "--quiet" : NULL, NULL};
        if (posix_spawn(&pids[started], "/proc/self/exe", NULL, NULL, argv, environ) != 0) {
            fprintf(stderr, "hlab: cannot start worker %d: %s\n", w, strerror(errno));
            worst = EXIT_FAIL;
            break;
        }
        started++;
    }
    for (int i = 0; i < started; i++) {
        int st;
        while (waitpid(pids[i], &st, 0) < 0 && errno == EINTR) {}
        int code = WIFEXITED(st) ? WEXITSTATUS(st) : EXIT_FAIL;
        if (code > worst) worst = code;
    }
    return worst;
}

// A Slurm job-array script: array task i runs shard i/N into its own store file (no shared file
// system locking needed), then a job that depends on the whole array merges them.
static void emit_slurm(const Experiment *e, const SweepOptions *o, int nruns) {
    int shards = o->slurm_shards > 0 ? o->slurm_shards : nruns;
    if (shards > nruns) shards = nruns;
    char cwd[4096] = ".", exe[4096] = "./hlab";
    if (!getcwd(cwd, sizeof cwd)) snprintf(cwd, sizeof cwd, ".");
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k > 0) exe[k] = 0;
    const char *out = o->db ? o->db : "results/hlab.db";
    printf("#!/bin/bash\n"
           "# hlab sweep %s as a Slurm job array: %d shards of %d runs, each into its own store, then one merge.\n"
           "# Submit with:  bash THIS_FILE   (it calls sbatch twice; add --partition, --time ... to the sbatch lines)\n"
           "set -euo pipefail\n"
           "cd '%s'\n"
           "mkdir -p results/slurm\n"
           "HLAB='%s'\n"
           "jid=$(sbatch --parsable --job-name=hlab-%s --array=0-%d --cpus-per-task=2 \\\n"
           "      --output=results/slurm/%s-%%A_%%a.out \\\n"
           "      --wrap=\"OMP_NUM_THREADS=\\$SLURM_CPUS_PER_TASK $HLAB sweep '%s' --shard \\$SLURM_ARRAY_TASK_ID/%d --db results/slurm/%s-shard\\$SLURM_ARRAY_TASK_ID.db\")\n"
           "sbatch --job-name=hlab-%s-merge --dependency=afterany:$jid --output=results/slurm/%s-merge-%%j.out \\\n"
           "      --wrap=\"$HLAB merge results/slurm/%s-shard*.db -o '%s'\"\n"
           "echo \"submitted array $jid and its merge into %s\"\n",
           o->exp, shards, nruns, cwd, exe, e->name, shards - 1, e->name, o->exp, shards, e->name, e->name, e->name, e->name,
           out, out);
}

int sweep_main(const SweepOptions *o) {
    Experiment e;
    PlannedRun *runs;
    int n = experiment_open(&e, o->exp, &runs);
    if (n < 0) return EXIT_BADINPUT;
    int rc = 0;
    if (o->emit_slurm) { emit_slurm(&e, o, n); goto out; }
    const char *dbpath = o->db ? o->db : cfg_str(&runs[0].cfg, "store.db");
    int in_shard = 0;
    for (int i = 0; i < n; i++) in_shard += i % o->shard_n == o->shard_i;
    if (o->worker == 0) {
        // the plan, with what the store already has (a dry run never creates the store)
        struct stat sb;
        char emsg[1024];
        Store *s = stat(dbpath, &sb) == 0 ? store_open(dbpath, emsg, sizeof emsg) : NULL;
        int todo = 0;
        printf("experiment %s: %d runs (%d variants", e.name, n, e.nvar);
        for (int a = 0; a < e.ngrid; a++) printf(" x %d %s", e.grid[a].nvalues, e.grid[a].key);
        if (e.nzip) printf(" x %d zipped", e.zip[0].nvalues);
        if (e.nlr) printf(" x %d lr", e.nlr);
        if (e.nseeds) printf(" x %d seeds", e.nseeds);
        printf(")");
        if (o->shard_n > 1) printf(", shard %d/%d: %d runs", o->shard_i, o->shard_n, in_shard);
        printf(", store %s\n", dbpath);
        for (int i = 0; i < n; i++) {
            if (i % o->shard_n != o->shard_i) continue;
            char buf[32];
            const char *st = status_of(s, runs[i].identity, buf, sizeof buf);
            todo += strcmp(st, "done") && strcmp(st, "diverged");
            printf("  %4d  %-16s %-48s %s  %s\n", i, e.var[runs[i].variant].name, runs[i].label[0] ? runs[i].label : "-", runs[i].identity, st);
        }
        printf("%d to train, %d done\n", todo, in_shard - todo);
        if (s && todo < in_shard && (o->dry_run || todo == 0)) print_results(&e, runs, n, s, o);
        fflush(stdout);
        store_close(s);
        if (o->dry_run || todo == 0) goto out;
        rc = o->jobs > 1 ? spawn_workers(o, dbpath, o->jobs) : work(&e, runs, n, o, dbpath, in_shard);
        // the outcome, from the store: what every run of the shard ended as
        s = store_open(dbpath, emsg, sizeof emsg);
        int done = 0, running = 0, other = 0;
        for (int i = 0; s && i < n; i++) {
            if (i % o->shard_n != o->shard_i) continue;
            char buf[32];
            const char *st = status_of(s, runs[i].identity, buf, sizeof buf);
            if (!strcmp(st, "done") || !strcmp(st, "diverged")) done++;
            else if (!strcmp(st, "running")) running++;
            else other++;
        }
        if (s) print_results(&e, runs, n, s, o);
        store_close(s);
        printf("sweep %s: %d of %d runs finished (done or diverged), %d running in other processes, %d failed or "
               "interrupted%s\n", e.name, done, in_shard, running, other, other ? ": run the sweep again to retry them" : "");
        if (rc == 0 && other) rc = EXIT_FAIL;
    } else {
        rc = work(&e, runs, n, o, dbpath, in_shard);
    }
out:
    experiment_free_runs(runs, n);
    experiment_free(&e);
    return rc;
}
