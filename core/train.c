// train.c: the training loop: data order, AdamW steps, schedules, logging to the run store,
// validation, early stopping, divergence and interruption handling.
#include "train.h"
#include "checkpoint.h"
#include "dist.h"
#include "keys.h"
#include "mixture.h"
#include "machine.h"
#include "ops.h"
#include "optim.h"
#include "resume.h"
#include "store.h"
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// The first SIGINT or SIGTERM asks the loop to stop after the step (and checkpoint); a second
// one ends the process at once, as the default action would (the run stays resumable from its
// last checkpoint, like after SIGKILL).
static volatile sig_atomic_t stop_signal = 0;
static void on_signal(int sig) {
    if (stop_signal) { signal(sig, SIG_DFL); raise(sig); }
    stop_signal = sig;
}

// Fills a batch with example idx[b] of task[b] (state st[b]) for each slot b, in parallel:
// examples are independent and generated from their own seeds, so the batch does not depend on
// threads. Examples are written at stride max_len, then packed to the batch's longest length Tb
// (returned): a batch of short sequences costs what short sequences cost.
static int fill_batch(const Task *const *task, void *const *st, int split, const long *idx, int B, int max_len,
                      int *tok, int *tgt, int *len, Slice *slices) {
    #pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        int *x = tok + (size_t)b * max_len, *y = tgt + (size_t)b * max_len;
        memset(&slices[b], 0, sizeof slices[b]);
        len[b] = task[b]->example(st[b], split, idx[b], x, y, &slices[b]);
        for (int t = len[b]; t < max_len; t++) { x[t] = 0; y[t] = -1; }
    }
    int Tb = 1;
    for (int b = 0; b < B; b++) if (len[b] > Tb) Tb = len[b];
    for (int b = 1; b < B; b++) {   // rows move towards the front, in order: memmove is safe
        memmove(tok + (size_t)b * Tb, tok + (size_t)b * max_len, Tb * sizeof(int));
        memmove(tgt + (size_t)b * Tb, tgt + (size_t)b * max_len, Tb * sizeof(int));
    }
    return Tb;
}

static int same_slice(const Slice *a, const Slice *b) {
    if (a->n != b->n) return 0;
    for (int i = 0; i < a->n; i++) if (strcmp(a->key[i], b->key[i]) || a->val[i] != b->val[i]) return 0;
    return 1;
}

static SliceStats *cell_for(EvalResult *r, const Slice *s) {
    for (int i = 0; i < r->ncells; i++) if (same_slice(&r->cells[i].slice, s)) return &r->cells[i];
    if (r->ncells == r->cap) { r->cap = r->cap ? 2 * r->cap : 16; r->cells = xrealloc(r->cells, r->cap * sizeof(SliceStats)); }
    SliceStats *c = &r->cells[r->ncells++];
    memset(c, 0, sizeof *c);
    c->slice = *s;
    return c;
}

static void add_stats(SliceStats *a, const SliceStats *b) {
    a->labels += b->labels; a->correct += b->correct; a->examples += b->examples;
    a->exact += b->exact; a->adherent += b->adherent; a->loss_sum += b->loss_sum;
}

// The examples evaluate() scores: the whole split, or at most max_per_cell of each slice cell,
// in index order (so a grid keeps every cell however its cells are laid out). Finding the cells
// means generating the examples once more; generation costs little next to a forward pass.
static long *eval_indices(Model *m, const Task *const *task, void *const *st, int split, long max_per_cell,
                          int max_len, int *tok, int *tgt, long *count) {
    long n = task[0]->size(st[0], split), k = 0;
    long *out = xmalloc((size_t)(n > 0 ? n : 1) * sizeof(long));
    if (max_per_cell <= 0) {
        for (long i = 0; i < n; i++) out[i] = i;
        *count = n;
        return out;
    }
    EvalResult seen = {0};
    long idx[m->B];
    int len[m->B];
    Slice slices[m->B];
    for (long start = 0; start < n; start += m->B) {
        int B = (int)(n - start < m->B ? n - start : m->B);
        for (int b = 0; b < B; b++) idx[b] = start + b;
        fill_batch(task, st, split, idx, B, max_len, tok, tgt, len, slices);
        for (int b = 0; b < B; b++) {
            SliceStats *c = cell_for(&seen, &slices[b]);
            if (c->examples < max_per_cell) { c->examples++; out[k++] = idx[b]; }
        }
    }
    eval_free(&seen);
    *count = k;
    return out;
}

// The counts of each example of a batch the model just ran forward on (labelled rows come in
// position order, so each example's rows are adjacent).
static void score_batch(const Model *m, const Task *task1, void *st1, int split, const long *idx, int B, int Tb,
                        const int *tok, SliceStats *ex) {
    memset(ex, 0, B * sizeof *ex);
    for (int k = 0; k < m->n_labels; k++) {
        int b = m->lab_pos[k] / Tb, pos = m->lab_pos[k] % Tb;
        const real *p = m->logits + (size_t)k * m->V;   // probabilities after forward
        ex[b].labels++;
        ex[b].correct += m->lab_pred[k] == m->lab_tgt[k];
        ex[b].loss_sum += -log(fmax((double)p[m->lab_tgt[k]], 1e-300));
        if (task1->adherent) ex[b].adherent += task1->adherent(st1, split, idx[b], tok + (size_t)b * Tb, pos, m->lab_pred[k]);
    }
    for (int b = 0; b < B; b++) {
        ex[b].examples = 1;
        ex[b].exact = ex[b].labels > 0 && ex[b].correct == ex[b].labels;
    }
}

EvalResult evaluate(Model *m, const Task *task1, void *st1, int split, long max_examples, int max_len,
                    int *tok, int *tgt) {
    EvalResult r = {0};
    const Task *task[m->B];
    void *st[m->B];
    for (int b = 0; b < m->B; b++) { task[b] = task1; st[b] = st1; }
    long n;
    long *sel = eval_indices(m, task, st, split, max_examples, max_len, tok, tgt, &n);
    long idx[m->B];
    int len[m->B];
    Slice slices[m->B];
    SliceStats ex[m->B];
    // Data-parallel ranks run every K-th batch, exchange the per-example counts, and add them up
    // in example order like one process (so every rank holds the same result). The batches are
    // the smallest rank's size, so that all ranks cut the examples the same way.
    int K = dist_size(), EB = K > 1 ? dist_min(m->B) : m->B;
    double *num = K > 1 ? xcalloc((size_t)4 * n + 1, sizeof(double)) : NULL;   // labels, correct, loss, adherent
    for (long start = 0, bi = 0; K > 1 && start < n; start += EB, bi++) {
        if (bi % K != dist_rank()) continue;
        int B = (int)(n - start < EB ? n - start : EB);
        for (int b = 0; b < B; b++) idx[b] = sel[start + b];
        int Tb = fill_batch(task, st, split, idx, B, max_len, tok, tgt, len, slices);
        model_forward(m, tok, tgt, B, Tb);
        score_batch(m, task1, st1, split, idx, B, Tb, tok, ex);
        for (int b = 0; b < B; b++) {
            double *e = num + 4 * (start + b);
            e[0] = ex[b].labels; e[1] = ex[b].correct; e[2] = ex[b].loss_sum; e[3] = ex[b].adherent;
        }
    }
    if (K > 1 && n > 0) dist_sum(num, (int)(4 * n));
    for (long start = 0; start < n; start += EB) {
        int B = (int)(n - start < EB ? n - start : EB);
        for (int b = 0; b < B; b++) idx[b] = sel[start + b];
        int Tb = fill_batch(task, st, split, idx, B, max_len, tok, tgt, len, slices);   // the slices (K > 1)
        if (K == 1) {
            model_forward(m, tok, tgt, B, Tb);
            score_batch(m, task1, st1, split, idx, B, Tb, tok, ex);
        } else {
            for (int b = 0; b < B; b++) {
                const double *e = num + 4 * (start + b);
                ex[b] = (SliceStats){.labels = (long)e[0], .correct = (long)e[1], .loss_sum = e[2], .adherent = (long)e[3], .examples = 1};
                ex[b].exact = ex[b].labels > 0 && ex[b].correct == ex[b].labels;
            }
        }
        for (int b = 0; b < B; b++) {
            add_stats(&r.all, &ex[b]);
            add_stats(cell_for(&r, &slices[b]), &ex[b]);
        }
    }
    free(num);
    free(sel);
    r.has_adherence = task1->adherent != NULL;
    return r;
}

void eval_free(EvalResult *r) { free(r->cells); memset(r, 0, sizeof *r); }

double stats_loss(const SliceStats *s) { return s->labels ? s->loss_sum / s->labels : NAN; }
double stats_accuracy(const SliceStats *s) { return s->labels ? (double)s->correct / s->labels : NAN; }

typedef struct { Store *s; int64_t run; long step; double tokens, wall; } MetricCtx;
static void store_emit(void *p, const char *name, double value) {
    MetricCtx *c = p;
    store_metric(c->s, c->run, c->step, c->tokens, c->wall, name, value);
}

double stats_headline(const Task *t, const SliceStats *s) {
    if (!strcmp(t->metric, "bpb")) return stats_loss(s) / log(2.0);
    if (!strcmp(t->metric, "exact_match")) return s->examples ? (double)s->exact / s->examples : NAN;
    return stats_accuracy(s);
}

// One row per metric for the whole split ({}) and for every slice cell when there are several.
static void record_stats(Store *st, int64_t run, const Task *task, const char *split, const char *slice,
                         const SliceStats *s, int adherence) {
    store_eval(st, run, task->name, split, slice, "loss", stats_loss(s), s->labels);
    store_eval(st, run, task->name, split, slice, "accuracy", stats_accuracy(s), s->labels);
    store_eval(st, run, task->name, split, slice, "exact_match", s->examples ? (double)s->exact / s->examples : NAN, s->examples);
    if (adherence) store_eval(st, run, task->name, split, slice, "format_adherence", s->labels ? (double)s->adherent / s->labels : NAN, s->labels);
    if (!strcmp(task->metric, "bpb")) store_eval(st, run, task->name, split, slice, "bpb", stats_loss(s) / log(2.0), s->labels);
}

void record_eval(Store *s, int64_t run, const Task *task, int split, const EvalResult *r) {
    if (!s) return;
    record_stats(s, run, task, split_names[split], "{}", &r->all, r->has_adherence);
    if (r->ncells > 1)
        for (int i = 0; i < r->ncells; i++) {
            char js[256];
            slice_json(&r->cells[i].slice, js, sizeof js);
            record_stats(s, run, task, split_names[split], js, &r->cells[i], r->has_adherence);
        }
}

void run_identity(const char *canonical_yaml, long seed, const char *origin, char out[17]) {
    size_t n = strlen(canonical_yaml) + strlen(origin) + 64;
    char *buf = xmalloc(n);
    snprintf(buf, n, "%s\nseed=%ld\n%s", canonical_yaml, seed, origin);
    hash_hex(buf, strlen(buf), out);
    free(buf);
}

RunInfo run_info_for(const Config *cfg, const Model *m, const MachineInfo *mi, const char *yaml, const char *identity,
                     const char *experiment, const char *variant) {
    RunInfo ri = {.experiment = experiment ? experiment : "", .variant = variant ? variant : "", .identity = identity,
                  .config_yaml = yaml, .pattern = m->pattern, .seed = cfg_int(cfg, "seed"), .code_version = mi->code_version,
                  .host = mi->host, .cpu = mi->cpu, .blas_core = mi->blas_core, .threads = mi->threads,
                  .params_total = model_param_count(m), .params_active = model_active_count(m), .ranks = dist_size()};
    return ri;
}

// Appends to the text in buf[cap], cut at cap.
static void append(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void append(char *buf, size_t cap, const char *fmt, ...) {
    size_t n = strlen(buf);
    va_list ap;
    va_start(ap, fmt);
    if (n < cap) vsnprintf(buf + n, cap - n, fmt, ap);
    va_end(ap);
}

// Writes the training checkpoint of the state after ts->step steps.
static int save_training(const Model *m, const AdamW *opt, const DataPlan *plan, TrainState *ts, double t0, const char *path,
                         char *err, size_t cap) {
    ts->wall = now_seconds() - t0;
    resume_plan_position(plan, ts);
    return checkpoint_save_training(m, opt, ts, path, err, cap);
}

int train_main(const Config *cfg, const TrainOptions *o) {
    ConfError err;
    Model m;
    if (model_build(&m, cfg, &err) != 0) {
        fprintf(stderr, "hlab: %s\n", err.msg);
        return EXIT_BADINPUT;
    }
    // the data: a mixture of tasks in phases, and the tasks it is evaluated on
    int B = (int)cfg_int(cfg, "train.batch_size");
    uint64_t seed = (uint64_t)cfg_int(cfg, "seed");
    uint64_t dseed = (uint64_t)cfg_int(cfg, "data.seed") ^ (seed * 0x9E3779B97F4A7C15ull);
    DataPlan plan;
    if (plan_open(&plan, cfg, B, dseed, &err) != 0) {
        fprintf(stderr, "hlab: %s\n", err.msg);
        model_free(&m);
        return EXIT_BADINPUT;
    }
    const Mixture *ev = &plan.eval;
    // data parallelism: every rank draws the whole global batch's indices and fills its rows
    // [lo, hi); one process has lo = 0, hi = B
    int K = dist_size(), leader = dist_rank() == 0, lo, hi;
    int quiet = o->quiet || !leader;
    if (B < K) {
        if (leader) fprintf(stderr, "hlab: train.batch_size %d is smaller than the %d MPI ranks: every rank needs at least one sequence\n", B, K);
        plan_close(&plan);
        model_free(&m);
        return EXIT_BADINPUT;
    }
    dist_rows(B, &lo, &hi);
    int Bl = hi - lo;

    ops_init_threads((int)cfg_int(cfg, "train.threads"));
    // T is the longest example of any task, phase or split (tasks may evaluate beyond training)
    int T = plan.max_len;
    long steps = plan.steps;

    size_t mem0 = alloc_touched_bytes();
    model_alloc(&m, Bl, T, Bl * plan.max_labels);   // this rank's part of the batch
    model_init(&m, seed);
    char emsg[1200];
    if (o->init && checkpoint_load(&m, o->init, emsg, sizeof emsg) != 0) {
        fprintf(stderr, "hlab: --init: %s\n", emsg);
        return EXIT_BADINPUT;
    }
    AdamW opt;
    adamw_init(&opt, &m, cfg_num(cfg, "train.beta1"), cfg_num(cfg, "train.beta2"), cfg_num(cfg, "train.adam_eps"),
               cfg_num(cfg, "train.weight_decay"));
    Schedule sched = schedule_from_config(cfg, steps);
    double clip = cfg_num(cfg, "train.grad_clip");
    long log_every = cfg_int(cfg, "train.log_every"), eval_every = cfg_int(cfg, "eval.every");
    long eval_max = cfg_int(cfg, "eval.max_examples");
    double early = cfg_num(cfg, "eval.early_stop");
    long ckpt_every = cfg_int(cfg, "train.checkpoint_every"), max_skips = cfg_int(cfg, "train.max_skipped_steps");
    int skip_policy = !strcmp(cfg_str(cfg, "train.on_divergence"), "skip_step");

    MachineInfo mi;
    machine_info(&mi);
    char *yaml = config_canonical_yaml(cfg);
    char identity[17];
    run_identity(yaml, cfg_int(cfg, "seed"), "", identity);

    // a resumed run starts from its checkpoint: weights, AdamW moments, and the data order
    // replayed to its step. The sweep's fallback: a checkpoint it cannot use means starting over.
    static TrainState ts;   // large (paths): not on the stack
    memset(&ts, 0, sizeof ts);
    int resumed = 0;
    if (o->resume) {
        char why[1400] = "no checkpoint recorded";
        int bad = 1;
        if (!o->resume[0] || checkpoint_load_training(&m, &opt, &ts, o->resume, why, sizeof why) != 0) bad = 1;
        else if (strcmp(ts.identity, identity))
            snprintf(why, sizeof why, "%s is a checkpoint of another run (identity %s; this config's is %s)", o->resume, ts.identity, identity);
        else if (ts.step < 0 || ts.step > steps) snprintf(why, sizeof why, "%s: step %ld is not in 0..%ld", o->resume, ts.step, steps);
        else bad = resume_replay_plan(&plan, ts.step, B, &ts, why, sizeof why) != 0;
        if (bad && !o->resume_fallback) {
            fprintf(stderr, "hlab: --resume: %s\n", why);
            free(yaml); adamw_free(&opt); plan_close(&plan); model_free(&m);
            return EXIT_BADINPUT;
        }
        if (bad) {   // back to a fresh start: weights, moments and data order as a new run has them
            fprintf(stderr, "hlab: warning: cannot resume (%s): training from the start\n", why);
            model_init(&m, seed);
            memset(opt.m, 0, opt.n * sizeof(real));
            memset(opt.v, 0, opt.n * sizeof(real));
            opt.t = 0;
            plan_close(&plan);
            plan_open(&plan, cfg, B, dseed, &err);   // it opened before: it opens again
            memset(&ts, 0, sizeof ts);
        } else {
            resumed = 1;
            if (leader && ((ts.threads && ts.threads != mi.threads) || ts.ranks != K))
                fprintf(stderr, "hlab: warning: the checkpoint was written by %d rank%s x %d threads, this is %d x %d: the "
                        "continuation is not bitwise what an uninterrupted run would give\n", ts.ranks, ts.ranks == 1 ? "" : "s",
                        ts.threads, K, mi.threads);
            if (leader && strcmp(ts.version, mi.code_version))
                fprintf(stderr, "hlab: warning: the checkpoint was written by code version %s, this is %s\n", ts.version, mi.code_version);
        }
    }

    // the run store
    const char *dbpath = o->db ? o->db : resumed && ts.store[0] ? ts.store : resumed ? "none" : cfg_str(cfg, "store.db");
    int use_store = dbpath[0] && strcmp(dbpath, "none");
    if (ckpt_every > 0 && !use_store && !cfg_str(cfg, "train.checkpoint_dir")[0]) {
        fprintf(stderr, "hlab: train.checkpoint_every needs a run store or train.checkpoint_dir to put the checkpoints in\n");
        free(yaml); adamw_free(&opt); plan_close(&plan); model_free(&m);
        return EXIT_BADINPUT;
    }
    use_store = use_store && leader;   // only rank 0 records the run and writes checkpoints
    Store *store = NULL;
    int64_t run = -1;
    if (use_store) {
        store = store_open(dbpath, emsg, sizeof emsg);
        if (!store) { fprintf(stderr, "hlab: run store: %s\n", emsg); return EXIT_BADINPUT; }
        if (o->resume) {
            // the run's row again: metrics after the checkpoint's step (the killed attempt got
            // further) and end-of-training evals go, so the store holds one curve
            run = o->run_id > 0 ? o->run_id : ts.run;
            if (run <= 0) {
                fprintf(stderr, "hlab: --resume: %s names no run of a store (trained without one? then --db none)\n", o->resume);
                store_close(store);
                return EXIT_BADINPUT;
            }
            if (store_run_reopen(store, run, identity, ts.step, mi.host) != 0) {
                fprintf(stderr, "hlab: --resume: %s\n", store_errmsg(store));
                store_close(store);
                return EXIT_BADINPUT;
            }
        } else {
            RunInfo ri = run_info_for(cfg, &m, &mi, yaml, identity, o->experiment, o->variant);
            run = o->run_id > 0 ? o->run_id : store_run_begin(store, &ri, cfg);   // a sweep claimed it already
        }
        if (run < 0) { fprintf(stderr, "hlab: run store: %s\n", store_errmsg(store)); return EXIT_FAIL; }
    }
    char ckpt[4096] = "", ckpt_abs[4096] = "";
    if (leader && (resume_checkpoint_path(cfg, store ? dbpath : NULL, run, identity, ckpt, sizeof ckpt) != 0 ||
                   (ckpt[0] && resume_absolute_path(ckpt, ckpt_abs, sizeof ckpt_abs) != 0))) {
        fprintf(stderr, "hlab: warning: the training checkpoint's path is too long: no training checkpoints\n");
        ckpt[0] = 0;
    }
    if (ckpt[0]) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", ckpt);
        *strrchr(dir, '/') = 0;
        int e = mkdir_p(dir);
        if (e) {
            fprintf(stderr, "hlab: %scannot create the checkpoint directory %s: %s\n", ckpt_every > 0 ? "" : "warning: ", dir, strerror(e));
            if (ckpt_every > 0) {
                if (store) { store_run_end(store, run, "failed", "cannot create the checkpoint directory"); store_close(store); }
                return EXIT_FAIL;
            }
            ckpt[0] = 0;
        }
    }
    if (ckpt[0]) {
        resume_remove_temporaries(ckpt);
        // the path belongs to this run: a file there on a fresh start is another, older run's
        // (a store deleted and made again reuses run ids) and must not be resumed into this one
        if (!resumed) unlink(ckpt);
        // recorded before the first checkpoint exists: a sweep then resumes the run from it (or
        // starts over when there is none yet) instead of deleting the row and the file's claim
        if (store && ckpt_every > 0 && store_run_checkpoint(store, run, ckpt_abs) != 0)
            fprintf(stderr, "hlab: warning: checkpoint path not recorded: %s\n", store_errmsg(store));
    }
    snprintf(ts.identity, sizeof ts.identity, "%s", identity);
    ts.run = run > 0 ? run : 0;
    if (!store || resume_absolute_path(dbpath, ts.store, sizeof ts.store) != 0) ts.store[0] = 0;
    ts.threads = mi.threads;
    ts.ranks = K;

    if (!quiet) {
        printf("run %lld: pattern %s, %.0f parameters, %ld steps of %d sequences (up to %d tokens), %d threads, BLAS core %s\n",
               (long long)run, m.pattern, model_param_count(&m), steps, B, T, mi.threads, mi.blas_core);
        if (machine_blas_warning()) fprintf(stderr, "hlab: warning: %s\n", machine_blas_warning());
        if (resumed) printf("resuming at step %ld from %s\n", ts.step, o->resume);
    }

    // SIGINT/SIGTERM: finish the step, checkpoint, stop. SA_RESTART keeps a checkpoint or store
    // write that the signal lands in from failing with EINTR. A second signal stops at once.
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int *tok = alloc_touched((size_t)Bl * T * sizeof(int)), *tgt = alloc_touched((size_t)Bl * T * sizeof(int));
    double train_mb = (double)(alloc_touched_bytes() - mem0) / (1024.0 * 1024.0);   // every buffer the step uses
    long idx[B];
    int len[B];
    Slice slices[B];
    const Task *btask[B];
    void *bst[B];

    const char *status = "done";
    char errbuf[6000] = "";
    long step;
    int exit_code = EXIT_OK;
    // Every rank got here, or none trains: a rank that failed to set up (a file it cannot read,
    // rank 0's store) has printed why, and all stop with its status.
    int start = dist_start(EXIT_OK);
    if (start != EXIT_OK) {
        if (store) { store_run_end(store, run, "failed", "another MPI rank failed to start (its error output says why)"); store_close(store); }
        free(yaml); free(tok); free(tgt); adamw_free(&opt); plan_close(&plan); model_free(&m);
        return start;
    }
    // collective, so only once every rank is known to be here
    double bucket_mb = K == 1 ? 0 : o->bucket_mb >= 0 ? o->bucket_mb : dist_default_bucket_mb();
    if (K > 1 && !quiet) {
        if (bucket_mb > 0)
            printf("data parallel: %d MPI ranks (%s) x %d threads, %d sequences each, gradients summed during backward in "
                   "buckets of %.3g MB\n", K, dist_library(), mi.threads, Bl, bucket_mb);
        else
            printf("data parallel: %d MPI ranks (%s) x %d threads, %d sequences each, gradients summed after backward\n", K,
                   dist_library(), mi.threads, Bl);
    }
    GradSync *gsync = gradsync_attach(&m, (size_t)(bucket_mb * 1048576.0 / sizeof(real)));
    if (K > 1) m.aux_weight = 1.0 / K;   // the mean of the ranks' load-balancing losses
    double t0 = now_seconds() - ts.wall, tlog = now_seconds(), interval_tokens = 0;
    for (step = ts.step; step < steps && !ts.finished; step++) {
        if (!quiet && plan.nphases > 1 && plan_phase(&plan, step)->first == step)
            printf("phase %d: steps %ld..%ld\n", (int)(plan_phase(&plan, step) - plan.phase) + 1, step + 1,
                   step + plan_phase(&plan, step)->steps);
        plan_batch(&plan, step, B, btask, bst, idx);
        int Tb = fill_batch(btask + lo, bst + lo, SPLIT_TRAIN, idx + lo, Bl, T, tok, tgt, len, slices);
        double batch_tokens = 0;
        for (int b = 0; b < Bl; b++) batch_tokens += len[b];
        if (K > 1) {
            // the cross-entropy is a mean over the whole batch's labels: each rank divides by
            // their total, so the sum of the ranks' gradients is the one-process gradient
            double labels = 0;
            for (size_t i = 0; i < (size_t)Bl * Tb; i++) labels += tgt[i] >= 0;
            dist_sum(&labels, 1);
            m.loss_denom = labels;
        }
        model_zero_grad(&m);
        double loss = model_forward(&m, tok, tgt, Bl, Tb), aux = m.aux_loss;
        model_backward(&m);
        gradsync_wait(gsync);   // grads = the sum over ranks, the same on every rank
        int stop_now = stop_signal != 0;
        if (K > 1) {
            // the whole batch's loss, tokens and the stop decision, agreed by all ranks so that
            // they leave the loop at the same step
            double g[4] = {m.n_labels ? loss * m.n_labels : 0, aux, batch_tokens, stop_now};
            dist_sum(g, 4);
            loss = m.loss_denom > 0 ? g[0] / m.loss_denom : 0;
            aux = g[1] / K;
            batch_tokens = g[2];
            stop_now = g[3] > 0;
        }
        double gn = grad_norm(m.grads, m.nparams);
        double lr = plan_lr(&plan, &sched, step);
        int skipped = 0;
        if (!isfinite(loss) || !isfinite(aux) || !isfinite(gn)) {
            // which tensor went first says where to look (a block's backward, an lr too high ...)
            char where[600], why[1000];
            nonfinite_where(&m, where, sizeof where);
            snprintf(why, sizeof why, "step %ld: non-finite %s (loss %g, gradient norm %g); %s", step + 1,
                     isfinite(loss) && isfinite(aux) ? "gradient" : "loss", loss, gn, where);
            if (skip_policy && ts.skipped < max_skips) {
                ts.skipped++;
                skipped = 1;
                if (!quiet) printf("%s: update skipped (%ld of at most %ld)\n", why, ts.skipped, max_skips);
            } else {
                if (skip_policy) snprintf(errbuf, sizeof errbuf, "%s; %ld updates skipped before it (train.max_skipped_steps)", why, ts.skipped);
                else snprintf(errbuf, sizeof errbuf, "%s", why);
                status = "diverged"; exit_code = EXIT_DIVERGED;
                break;
            }
        }
        if (!skipped) {   // a skipped step changes nothing but the count: no update, no loss, no tokens
            adamw_step(&opt, m.params, m.grads, lr, clip > 0 && gn > clip ? clip / gn : 1.0);
            ts.tokens += batch_tokens;
            interval_tokens += batch_tokens;
            ts.loss_sum += loss; ts.aux_sum += aux; ts.loss_n++;
        }

        int last = step == steps - 1;
        if ((step + 1) % log_every == 0 || last) {
            // the ranks must hold the same weights: MPI_Allreduce is not required to give every
            // rank bitwise the same sum, so this is checked rather than assumed
            if (!dist_identical(m.params, m.nparams)) {
                snprintf(errbuf, sizeof errbuf, "step %ld: the MPI ranks' weights differ (the gradient all-reduce gave the ranks "
                         "different sums); try --bucket-mb 0", step + 1);
                status = "failed"; exit_code = EXIT_FAIL;
                break;
            }
            double now = now_seconds(), wall = now - t0;
            double tps = interval_tokens / (now - tlog);
            double mean_loss = ts.loss_n ? ts.loss_sum / ts.loss_n : NAN;
            if (store) {
                store_metric(store, run, step + 1, ts.tokens, wall, "train_loss", mean_loss);
                store_metric(store, run, step + 1, ts.tokens, wall, "lr", lr);
                store_metric(store, run, step + 1, ts.tokens, wall, "grad_norm", gn);
                store_metric(store, run, step + 1, ts.tokens, wall, "tokens_per_s", tps);
                if (ts.aux_sum != 0) store_metric(store, run, step + 1, ts.tokens, wall, "aux_loss", ts.aux_sum / ts.loss_n);
                if (skip_policy) store_metric(store, run, step + 1, ts.tokens, wall, "skipped_steps", ts.skipped);
                MetricCtx mc = {store, run, step + 1, ts.tokens, wall};
                model_report(&m, store_emit, &mc);   // per-layer numbers such as expert load
                store_flush(store);
            }
            if (o->progress) o->progress(o->progress_ctx, step + 1, steps, mean_loss, wall);
            if (!quiet)
                printf("step %6ld/%ld  loss %.4f  lr %.2e  gnorm %.3f  %.0f tok/s  %.1fs\n", step + 1, steps, mean_loss, lr, gn, tps, wall);
            fflush(stdout);
            ts.loss_sum = 0; ts.aux_sum = 0; ts.loss_n = 0; interval_tokens = 0; tlog = now_seconds();
        }
        int do_eval = (eval_every > 0 && (step + 1) % eval_every == 0) || (early > 0 && last);
        if (do_eval) {
            // every task on its validation split; early stopping needs each of them to get there
            double wall = now_seconds() - t0, worst = INFINITY, lab = 0, cor = 0, lsum = 0;
            int evaluated = 0;
            for (int i = 0; i < ev->n; i++) {
                if (ev->task[i]->size(ev->st[i], SPLIT_VALID) == 0) continue;
                EvalResult r = evaluate(&m, ev->task[i], ev->st[i], SPLIT_VALID, eval_max, T, tok, tgt);
                double acc = stats_accuracy(&r.all);
                if (!(acc >= worst)) worst = acc;
                lab += r.all.labels; cor += r.all.correct; lsum += r.all.loss_sum;
                evaluated++;
                if (store && ev->n > 1) {
                    char name[96];
                    snprintf(name, sizeof name, "valid_accuracy.%s", ev->task[i]->name);
                    store_metric(store, run, step + 1, ts.tokens, wall, name, acc);
                }
                if (!quiet) printf("eval  step %ld  %s valid loss %.4f  %s %.4f\n", step + 1, ev->task[i]->name,
                                      stats_loss(&r.all), ev->task[i]->metric, stats_headline(ev->task[i], &r.all));
                eval_free(&r);
            }
            if (evaluated) {
                // micro-averaged over the labelled positions of every task
                if (store) {
                    store_metric(store, run, step + 1, ts.tokens, wall, "valid_loss", lab ? lsum / lab : NAN);
                    store_metric(store, run, step + 1, ts.tokens, wall, "valid_accuracy", lab ? cor / lab : NAN);
                    store_flush(store);
                }
                tlog = now_seconds();
                interval_tokens = 0;
                // rank 0 decides: ranks of different batch sizes may round a near-tie differently
                int stop_early = early > 0 && worst >= early;
                if (K > 1) dist_bcast(&stop_early, sizeof stop_early);
                if (stop_early) {
                    if (!quiet) printf("early stop: validation accuracy %.4f >= %.4f%s\n", worst, early, ev->n > 1 ? " on every task" : "");
                    ts.finished = 1;   // a resumed run must not train past this point
                    step++;
                    break;
                }
            }
        }
        if (stop_now) {
            if (stop_signal) snprintf(errbuf, sizeof errbuf, "interrupted by signal %d at step %ld", (int)stop_signal, step + 1);
            else snprintf(errbuf, sizeof errbuf, "interrupted by a signal to another MPI rank at step %ld", step + 1);
            status = "interrupted"; exit_code = EXIT_INTERRUPTED;
            step++;
            break;
        }
        // every checkpoint_every steps; the last step's state is written after the loop
        if (ckpt[0] && ckpt_every > 0 && (step + 1) % ckpt_every == 0 && step + 1 < steps) {
            ts.step = step + 1;
            if (store) store_flush(store);   // the metrics up to this step are in the store first
            if (save_training(&m, &opt, &plan, &ts, t0, ckpt, emsg, sizeof emsg) != 0)
                fprintf(stderr, "hlab: warning: training checkpoint at step %ld not written (the previous one stays): %s\n", step + 1, emsg);
        }
    }
    double train_time = now_seconds() - t0;
    if (K > 1 && !quiet)
        printf("gradient all-reduce: %ld buckets, %.2f s waited for after backward (%.1f%% of training)\n", gradsync_buckets(gsync),
               gradsync_wait_seconds(gsync), 100 * gradsync_wait_seconds(gsync) / train_time);
    gradsync_free(gsync);

    // The state where training stopped: stopped by a signal (to resume from), or at the end of a
    // run that checkpoints (so a kill during the final evaluation resumes there, and the file
    // holds the final weights). Never after divergence: the last good checkpoint stays.
    if (ckpt[0] && (exit_code == EXIT_INTERRUPTED || (exit_code == EXIT_OK && ckpt_every > 0))) {
        ts.step = step;
        if (exit_code == EXIT_OK) ts.finished = 1;
        if (store) store_flush(store);
        if (save_training(&m, &opt, &plan, &ts, t0, ckpt, emsg, sizeof emsg) != 0) {
            if (exit_code == EXIT_INTERRUPTED)
                append(errbuf, sizeof errbuf, "; no checkpoint written: %s", emsg);
            else fprintf(stderr, "hlab: warning: final training checkpoint not written: %s\n", emsg);
        } else {
            if (store && ckpt_every == 0 && store_run_checkpoint(store, run, ckpt_abs) != 0)
                fprintf(stderr, "hlab: warning: checkpoint path not recorded: %s\n", store_errmsg(store));
            char target[32];
            snprintf(target, sizeof target, "%lld", (long long)run);
            if (exit_code == EXIT_INTERRUPTED)
                append(errbuf, sizeof errbuf, "; checkpoint %s: continue with hlab train --resume %s", ckpt_abs, store ? target : ckpt_abs);
        }
    }

    if (exit_code == EXIT_OK) {
        // final scores of every task: validation and the held-out test split (never used for decisions)
        for (int i = 0; i < ev->n; i++)
            for (int split = SPLIT_VALID; split <= SPLIT_TEST; split++) {
                const Task *task = ev->task[i];
                if (task->size(ev->st[i], split) == 0) continue;
                EvalResult r = evaluate(&m, task, ev->st[i], split, eval_max, T, tok, tgt);
                record_eval(store, run, task, split, &r);
                if (!quiet) {
                    printf("final %-5s %s%sloss %.4f  %s %.4f  (%ld examples)\n", split_names[split], ev->n > 1 ? task->name : "",
                           ev->n > 1 ? "  " : "", stats_loss(&r.all), task->metric, stats_headline(task, &r.all), r.all.examples);
                    if (r.ncells > 1)
                        for (int c = 0; c < r.ncells; c++) {
                            char js[256];
                            slice_json(&r.cells[c].slice, js, sizeof js);
                            printf("      %-40s %s %.4f  (%ld examples)\n", js, task->metric, stats_headline(task, &r.cells[c]), r.cells[c].examples);
                        }
                }
                eval_free(&r);
            }
        if (store) {
            // wall time includes the periodic validation; memory is every buffer allocated at start-up
            store_eval(store, run, ev->task[0]->name, "train", "{}", "train_seconds", train_time, step);
            store_eval(store, run, ev->task[0]->name, "train", "{}", "tokens_per_second", ts.tokens / train_time, step);
            store_eval(store, run, ev->task[0]->name, "train", "{}", "memory_mb", train_mb, step);
        }
        const char *out = o->out ? o->out : cfg_str(cfg, "train.checkpoint");
        if (out && out[0] && leader) {
            if (checkpoint_save(&m, out, emsg, sizeof emsg) != 0) {
                snprintf(errbuf, sizeof errbuf, "checkpoint: %s", emsg);
                status = "failed"; exit_code = EXIT_FAIL;
            } else {
                // where the weights are, so `hlab eval RUN` finds them
                char *abs = realpath(out, NULL);
                if (store && abs && store_run_checkpoint(store, run, abs) != 0)
                    fprintf(stderr, "hlab: warning: checkpoint path not recorded: %s\n", store_errmsg(store));
                free(abs);
                if (!quiet) printf("checkpoint written to %s\n", out);
            }
        }
    }
    if (exit_code != EXIT_OK) fprintf(stderr, "hlab: run %s: %s\n", status, errbuf);
    if (!quiet) printf("trained %ld steps in %.1f s (%.0f tokens/s)\n", step, train_time, ts.tokens / train_time);
    if (store) {
        store_run_end(store, run, status, errbuf[0] ? errbuf : NULL);
        store_close(store);
    }
    free(yaml); free(tok); free(tgt);
    adamw_free(&opt);
    plan_close(&plan);
    model_free(&m);
    return exit_code;
}
