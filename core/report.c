// report.c: `hlab report` (see report.h): gathers the experiment's runs from the store, picks the
// learning rate per variant and point on validation, and writes the summary tables, the claims
// and (report_plots.c) the plots.
//
// Runs are found by identity (hash of resolved config + seed), not by experiment name, so a run
// another experiment already trained with the same config counts, and a commit does not orphan
// results (the provenance section lists the code versions the numbers came from).
#include "report.h"
#include "report_data.h"
#include "common.h"
#include "store.h"
#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

double run_eval(const RunData *r, const char *task, const char *split, const char *metric, const char *slice) {
    if (!slice) slice = "{}";
    for (int i = 0; i < r->nev; i++) {
        const EvalRow *v = &r->ev[i];
        if (!strcmp(v->task, task) && !strcmp(v->split, split) && !strcmp(v->metric, metric) && !strcmp(v->slice, slice))
            return v->value;
    }
    return NAN;
}

const Group *group_of(const Report *R, int variant, int point) {
    for (int i = 0; i < R->ng; i++)
        if (R->g[i].variant == variant && R->g[i].point == point) return &R->g[i];
    return NULL;
}

Stat stat_of(const double *v, int n) {
    Stat s = {NAN, NAN, 0};
    double sum = 0, sq = 0;
    for (int i = 0; i < n; i++) if (isfinite(v[i])) { sum += v[i]; s.n++; }
    if (!s.n) return s;
    s.mean = sum / s.n;
    for (int i = 0; i < n; i++) if (isfinite(v[i])) sq += (v[i] - s.mean) * (v[i] - s.mean);
    s.sd = s.n > 1 ? sqrt(sq / (s.n - 1)) : 0;
    return s;
}

Stat group_stat(const Report *R, const Group *g, const char *task, const char *split, const char *metric) {
    double v[256];
    int n = 0;
    for (int i = 0; i < g->nruns && n < 256; i++) {
        const RunData *r = &R->run[g->runs[i]];
        v[n++] = !strcmp(metric, "tokens_per_second") ? r->tps : !strcmp(metric, "memory_mb") ? r->mem_mb
               : !strcmp(metric, "train_seconds") ? r->train_s : run_eval(r, task, split, metric, NULL);
    }
    return stat_of(v, n);
}

// ---------------------------------------------------------------------------------------------
// gathering

static void load_series(sqlite3 *db, int64_t run, const char *name, Series *s) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT step, value FROM metrics WHERE run_id = ?1 AND name = ?2 ORDER BY step", -1, &st, NULL) != SQLITE_OK) return;
    sqlite3_bind_int64(st, 1, run);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    int cap = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (s->n == cap) {
            cap = cap ? 2 * cap : 64;
            s->step = xrealloc(s->step, cap * sizeof(long));
            s->value = xrealloc(s->value, cap * sizeof(double));
        }
        s->step[s->n] = (long)sqlite3_column_int64(st, 0);
        s->value[s->n++] = sqlite3_column_type(st, 1) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 1);
    }
    sqlite3_finalize(st);
}

static void copy_text(char *dst, size_t cap, const unsigned char *s) { snprintf(dst, cap, "%s", s ? (const char *)s : ""); }

// The latest finished (done) run with this identity, with its scores and curves.
static int load_run(Store *store, const char *identity, RunData *r) {
    sqlite3 *db = store_sqlite(store);
    sqlite3_stmt *st;
    const char *sql = "SELECT id, status, code_version, host || ', ' || cpu || ', BLAS ' || blas_core || ', ' || threads || ' thread(s)'"
                      " || CASE WHEN ranks > 1 THEN ' x ' || ranks || ' MPI ranks' ELSE '' END,"
                      " params_total, params_active FROM runs WHERE identity = ?1 AND status = 'done' ORDER BY id DESC LIMIT 1";
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return -1;
    sqlite3_bind_text(st, 1, identity, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        r->id = sqlite3_column_int64(st, 0);
        copy_text(r->status, sizeof r->status, sqlite3_column_text(st, 1));
        copy_text(r->code, sizeof r->code, sqlite3_column_text(st, 2));
        copy_text(r->machine, sizeof r->machine, sqlite3_column_text(st, 3));
        r->params_total = sqlite3_column_double(st, 4);
        r->params_active = sqlite3_column_double(st, 5);
    }
    sqlite3_finalize(st);
    if (!r->id) {   // why not: the latest attempt's status, if any
        int found = store_run_status(store, identity, r->status, sizeof r->status);
        if (found == 0) snprintf(r->status, sizeof r->status, "missing");
        return found < 0 ? -1 : 0;
    }
    r->tps = r->mem_mb = r->train_s = NAN;
    if (sqlite3_prepare_v2(db, "SELECT task, split, slice, metric, value FROM evals WHERE run_id = ?1 AND source = 'train' ORDER BY rowid",
                           -1, &st, NULL) != SQLITE_OK) return -1;
    sqlite3_bind_int64(st, 1, r->id);
    int cap = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (r->nev == cap) { cap = cap ? 2 * cap : 32; r->ev = xrealloc(r->ev, cap * sizeof(EvalRow)); }
        EvalRow *v = &r->ev[r->nev++];
        copy_text(v->task, sizeof v->task, sqlite3_column_text(st, 0));
        copy_text(v->split, sizeof v->split, sqlite3_column_text(st, 1));
        v->slice = xstrdup(sqlite3_column_text(st, 2) ? (const char *)sqlite3_column_text(st, 2) : "{}");
        copy_text(v->metric, sizeof v->metric, sqlite3_column_text(st, 3));
        v->value = sqlite3_column_type(st, 4) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 4);
        if (!strcmp(v->split, "train")) {
            if (!strcmp(v->metric, "tokens_per_second")) r->tps = v->value;
            else if (!strcmp(v->metric, "memory_mb")) r->mem_mb = v->value;
            else if (!strcmp(v->metric, "train_seconds")) r->train_s = v->value;
        }
    }
    sqlite3_finalize(st);
    load_series(db, r->id, "train_loss", &r->loss);
    load_series(db, r->id, "valid_loss", &r->valid_loss);
    load_series(db, r->id, "valid_accuracy", &r->valid_acc);
    return 0;
}

static void add_task(Report *R, const char *name) {
    for (int i = 0; i < R->ntask; i++) if (!strcmp(R->task[i].name, name)) return;
    R->task = xrealloc(R->task, (R->ntask + 1) * sizeof(TaskInfo));
    TaskInfo *t = &R->task[R->ntask++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    snprintf(t->metric, sizeof t->metric, "accuracy");
    for (int i = 0; i < R->nplan; i++)
        for (int k = 0; k < R->run[i].nev; k++) {
            const EvalRow *v = &R->run[i].ev[k];
            if (strcmp(v->task, name)) continue;
            if (!strcmp(v->metric, "bpb")) { snprintf(t->metric, sizeof t->metric, "bpb"); t->lower = 1; }
            if (!strcmp(v->metric, "format_adherence")) t->has_adherence = 1;
        }
}

// Groups (variant, point) and their learning rate: the one with the best mean validation score
// of the group's first task (selection never looks at test), as Zoology and MAD-lab report.
static void build_groups(Report *R) {
    for (int i = 0; i < R->nplan; i++) {
        int p = 0;
        while (p < R->npoints && strcmp(R->points[p], R->plan[i].point)) p++;
        if (p == R->npoints) {
            R->points = xrealloc(R->points, (R->npoints + 1) * sizeof(char *));
            R->points[R->npoints++] = xstrdup(R->plan[i].point);
        }
        if (!group_of(R, R->plan[i].variant, p)) {
            R->g = xrealloc(R->g, (R->ng + 1) * sizeof(Group));
            R->g[R->ng++] = (Group){.variant = R->plan[i].variant, .point = p};
        }
        for (int k = 0; k < R->run[i].nev; k++)
            if (strcmp(R->run[i].ev[k].split, "train")) add_task(R, R->run[i].ev[k].task);
    }
    int nlr = R->e->nlr ? R->e->nlr : 1;
    for (int gi = 0; gi < R->ng; gi++) {
        Group *g = &R->g[gi];
        double best = NAN;
        for (int l = 0; l < nlr; l++) {
            Group trial = {g->variant, g->point, l, xmalloc(R->nplan * sizeof(int)), 0, 0};
            for (int i = 0; i < R->nplan; i++) {
                if (R->plan[i].variant != g->variant || strcmp(R->plan[i].point, R->points[g->point]) || R->plan[i].lr_index != l) continue;
                trial.nplanned++;
                if (R->run[i].id) trial.runs[trial.nruns++] = i;
            }
            // the group's first task with a validation score decides
            double score = NAN;
            int lower = 0;
            for (int t = 0; t < R->ntask && !isfinite(score); t++) {
                score = group_stat(R, &trial, R->task[t].name, "valid", R->task[t].metric).mean;
                lower = R->task[t].lower;
            }
            int better = isfinite(score) && (!isfinite(best) || (lower ? score < best : score > best));
            if (better || (l == 0 && !isfinite(best))) {
                free(g->runs);
                *g = trial;
                if (better) best = score;
            } else free(trial.runs);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// tables

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...) {
    char *s = NULL;
    va_list ap; va_start(ap, f);
    if (vasprintf(&s, f, ap) < 0) die("out of memory");
    va_end(ap);
    return s;
}
static char *fmt_stat(Stat s) {
    if (!s.n) return xstrdup("-");
    return s.n > 1 ? fmt("%.4f ± %.4f (%d)", s.mean, s.sd, s.n) : fmt("%.4f (1)", s.mean);
}
static char *fmt_count(double v) {
    if (!isfinite(v)) return xstrdup("-");
    return v >= 1e6 ? fmt("%.2fM", v / 1e6) : v >= 1e3 ? fmt("%.1fK", v / 1e3) : fmt("%.0f", v);
}

static const char *point_label(const Report *R, int p) { return R->points[p][0] ? R->points[p] : "-"; }

// One row per (variant, point) with the task's runs: the summary table of a task.
static void task_table(Report *R, const TaskInfo *t) {
    const Experiment *e = R->e;
    int has_points = R->npoints > 1, has_lr = e->nlr > 1;
    const char *head[12];
    char testh[64], validh[64], deltah[96];
    snprintf(testh, sizeof testh, "test %s", t->metric);
    snprintf(validh, sizeof validh, "valid %s", t->metric);
    snprintf(deltah, sizeof deltah, "Δ vs %s", e->baseline);
    int nc = 0;
    head[nc++] = "variant";
    if (has_points) head[nc++] = "point";
    if (has_lr) head[nc++] = "lr";
    head[nc++] = testh; head[nc++] = deltah; head[nc++] = validh;
    if (t->has_adherence) head[nc++] = "format adherence";
    head[nc++] = "params (active)"; head[nc++] = "tokens/s"; head[nc++] = "memory MB"; head[nc++] = "train s";
    char align[12] = "";
    for (int c = 0; c < nc; c++) align[c] = c == 0 || (has_points && c == 1) ? 'l' : 'r';
    char **cells = xcalloc((size_t)R->ng * nc, sizeof(char *));
    unsigned char *bold = xcalloc((size_t)R->ng * nc, 1);
    int nr = 0, base = 0;
    for (int v = 0; v < e->nvar; v++) if (!strcmp(e->var[v].name, e->baseline)) base = v;
    for (int gi = 0; gi < R->ng; gi++) {
        const Group *g = &R->g[gi];
        Stat s = group_stat(R, g, t->name, "test", t->metric);
        if (!s.n) continue;
        // best of its point (bold)
        int best = 1;
        for (int hj = 0; hj < R->ng; hj++) {
            const Group *h = &R->g[hj];
            if (h->point != g->point || h == g) continue;
            Stat o = group_stat(R, h, t->name, "test", t->metric);
            if (o.n && (t->lower ? o.mean < s.mean : o.mean > s.mean)) best = 0;
        }
        const Group *bg = group_of(R, base, g->point);
        Stat b = bg ? group_stat(R, bg, t->name, "test", t->metric) : (Stat){NAN, NAN, 0};
        char **row = cells + (size_t)nr * nc;
        int c = 0;
        row[c++] = fmt("%s%s", e->var[g->variant].name, g->nruns < g->nplanned ? " (incomplete)" : "");
        if (has_points) row[c++] = xstrdup(point_label(R, g->point));
        if (has_lr) row[c++] = xstrdup(e->lrs[g->best_lr]);
        bold[nr * nc + c] = best;
        row[c++] = fmt_stat(s);
        row[c++] = g->variant == base ? xstrdup("baseline") : b.n ? fmt("%+.4f (%+.1f%%)", s.mean - b.mean, 100 * (s.mean - b.mean) / fabs(b.mean)) : xstrdup("-");
        row[c++] = fmt_stat(group_stat(R, g, t->name, "valid", t->metric));
        if (t->has_adherence) row[c++] = fmt_stat(group_stat(R, g, t->name, "test", "format_adherence"));
        const RunData *r0 = &R->run[g->runs[0]];
        char *pt = fmt_count(r0->params_total), *pa = fmt_count(r0->params_active);
        row[c++] = r0->params_active < r0->params_total ? fmt("%s (%s)", pt, pa) : xstrdup(pt);
        free(pt); free(pa);
        Stat tps = group_stat(R, g, NULL, NULL, "tokens_per_second");
        Stat mem = group_stat(R, g, NULL, NULL, "memory_mb");
        Stat sec = group_stat(R, g, NULL, NULL, "train_seconds");
        row[c++] = tps.n ? fmt("%.0f", tps.mean) : xstrdup("-");
        row[c++] = mem.n ? fmt("%.1f", mem.mean) : xstrdup("-");
        row[c++] = sec.n ? fmt("%.0f", sec.mean) : xstrdup("-");
        nr++;
    }
    doc_table(&R->doc, nc, head, nr, cells, bold, align);
    for (int i = 0; i < R->ng * nc; i++) free(cells[i]);
    free(cells); free(bold);
}

// ---------------------------------------------------------------------------------------------
// claims

// Compares variant a with b on one task and point. Returns 1 agree, 0 inconclusive, -1 disagree,
// 2 no data; appends what was measured to buf.
static int compare(const Report *R, const Comparison *c, const TaskInfo *t, const char *metric, int lower, int point,
                   char *buf, size_t cap) {
    const Group *ga = group_of(R, c->a, point), *gb = group_of(R, c->b, point);
    if (!ga || !gb) return 2;
    Stat a = group_stat(R, ga, t->name, "test", metric), b = group_stat(R, gb, t->name, "test", metric);
    if (!a.n || !b.n) return 2;
    double d = lower ? b.mean - a.mean : a.mean - b.mean;   // > 0: a is better
    double se2 = 2 * sqrt(a.sd * a.sd / a.n + b.sd * b.sd / b.n), tol = 0.01 * fabs(b.mean);
    int res;
    if (c->op == '>') res = d > se2 && d > 0 ? 1 : d < -se2 ? -1 : 0;
    else if (c->op == '~') res = fabs(d) <= (se2 > tol ? se2 : tol) ? 1 : -1;
    else res = d >= -(se2 > tol ? se2 : tol) ? 1 : -1;   // '>=': not worse beyond noise
    size_t k = strlen(buf);
    snprintf(buf + k, cap - k, "%s%s %.4f vs %s %.4f (%s %.4f, 2 SE %.4f%s%s)", k ? "; " : "", R->e->var[c->a].name, a.mean,
             R->e->var[c->b].name, b.mean, d >= 0 ? "better by" : "worse by", fabs(d), se2, R->npoints > 1 ? ", at " : "",
             R->npoints > 1 ? point_label(R, point) : "");
    return res;
}

// Which test metrics are better when lower (a claim may name any metric a run recorded).
static int metric_lower_better(const char *m) {
    return !strcmp(m, "loss") || !strcmp(m, "bpb") || !strcmp(m, "memory_mb") || !strcmp(m, "train_seconds");
}

static void claims_section(Report *R) {
    const Experiment *e = R->e;
    if (!e->nclaims) return;
    doc_heading(&R->doc, 2, "The paper's claims against this run");
    doc_para(&R->doc, "Each check compares test means over seeds. `A > B` agrees when A is better by more than two standard "
                      "errors of the difference (2 SE = 2 sqrt(sd_A^2/n_A + sd_B^2/n_B)), disagrees when it is worse by more, "
                      "and is inconclusive otherwise; `A ~ B` agrees when the difference is within 2 SE or 1%%; `A >= B` "
                      "when A is not worse beyond that. With 2-3 seeds these are rough tests, not significance tests.");
    const char *head[] = {"claim", "check", "measured", "verdict"};
    R->verdict = xcalloc(e->nclaims, sizeof(char *));
    char **cells = xcalloc((size_t)e->nclaims * 4, sizeof(char *));
    for (int i = 0; i < e->nclaims; i++) {
        const Claim *cl = &e->claims[i];
        char measured[4096] = "";
        int agree = 0, disagree = 0, none = 0, total = 0;
        for (int t = 0; t < R->ntask; t++) {
            const TaskInfo *ti = &R->task[t];
            if (cl->task && strcmp(cl->task, ti->name)) continue;
            const char *metric = cl->metric ? cl->metric : ti->metric;
            int lower = cl->metric ? metric_lower_better(cl->metric) : ti->lower;
            for (int p = 0; p < R->npoints; p++) {
                if (cl->at && !strstr(R->points[p], cl->at)) continue;
                // only the points where some variant has this task (a grid over tasks has others)
                int present = 0;
                for (int gi = 0; gi < R->ng && !present; gi++)
                    present = R->g[gi].point == p && group_stat(R, &R->g[gi], ti->name, "test", metric).n > 0;
                if (!present) continue;
                for (int k = 0; k < cl->ncmp; k++) {
                    int r = compare(R, &cl->cmp[k], ti, metric, lower, p, measured, sizeof measured);
                    if (r == 2) { none++; continue; }
                    total++;
                    agree += r == 1; disagree += r == -1;
                }
            }
        }
        cells[i * 4] = xstrdup(cl->text);
        cells[i * 4 + 1] = fmt("`%s`%s%s%s%s%s%s", cl->check, cl->metric ? " by " : "", cl->metric ? cl->metric : "",
                               cl->task ? " on " : "", cl->task ? cl->task : "", cl->at ? " at " : "", cl->at ? cl->at : "");
        cells[i * 4 + 2] = xstrdup(total ? measured : "no runs to compare");
        const char *verdict = !total ? "not measured" : disagree ? (agree ? "**mixed**" : "**disagrees**")
                            : agree == total ? "**agrees**" : "inconclusive";
        cells[i * 4 + 3] = none && total ? fmt("%s (%d of %d comparisons had runs)", verdict, total, total + none) : xstrdup(verdict);
        R->verdict[i] = xstrdup(verdict + (verdict[0] == '*' ? 2 : 0));
        char *star = strchr(R->verdict[i], '*');
        if (star) *star = 0;
    }
    doc_table(&R->doc, 4, head, e->nclaims, cells, NULL, "llll");
    for (int i = 0; i < e->nclaims * 4; i++) free(cells[i]);
    free(cells);
}

// ---------------------------------------------------------------------------------------------
// provenance

static void provenance(Report *R, const ReportOptions *o) {
    doc_heading(&R->doc, 2, "Provenance");
    // distinct code versions and machines of the runs used, with counts
    char *vals[2][64];
    int cnt[2][64], nv[2] = {0, 0}, used = 0;
    double total_s = 0;
    for (int i = 0; i < R->nplan; i++) {
        const RunData *r = &R->run[i];
        if (!r->id) continue;
        used++;
        if (isfinite(r->train_s)) total_s += r->train_s;
        const char *key[2] = {r->code[0] ? r->code : "unknown", r->machine};
        for (int k = 0; k < 2; k++) {
            int j = 0;
            while (j < nv[k] && strcmp(vals[k][j], key[k])) j++;
            if (j == nv[k] && j < 64) { vals[k][nv[k]] = (char *)key[k]; cnt[k][nv[k]++] = 0; }
            if (j < 64) cnt[k][j]++;
        }
    }
    doc_bullet(&R->doc, "Store `%s`: %d of %d planned runs finished and used; training took %.1f minutes in all.", R->db, used,
               R->nplan, total_s / 60);
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < nv[k]; j++)
            doc_bullet(&R->doc, "%s `%s`: %d run%s.", k ? "Machine" : "Code version", vals[k][j], cnt[k][j], cnt[k][j] > 1 ? "s" : "");
    int missing = 0;
    for (int i = 0; i < R->nplan; i++)
        if (!R->run[i].id) {
            if (missing++ < 20)
                doc_bullet(&R->doc, "Not in the report: %s %s (%s).", R->e->var[R->plan[i].variant].name,
                           R->plan[i].label[0] ? R->plan[i].label : "", R->run[i].status);
        }
    if (missing > 20) doc_bullet(&R->doc, "... and %d more runs not finished.", missing - 20);
    doc_para(&R->doc, "Reproduce (the sweep trains only what the store lacks; `--jobs 2` uses both cores of this machine):");
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "./hlab sweep %s --db %s --jobs 2\n./hlab report %s --db %s%s%s\n", o->exp, R->db, o->exp, R->db,
             o->out ? " --out " : "", o->out ? o->out : "");
    doc_code(&R->doc, cmd);
    doc_para(&R->doc, "Every run's scores are in `runs.csv`; each plot's data and gnuplot script are in `plots/`. "
                      "Tokens/s is training throughput including the periodic validation; memory is every buffer the "
                      "training step uses (parameters, gradients, AdamW moments, activations), allocated once at start-up.");
}

// Returns 0, or -1 when the file could not be written completely (a full disk): the report
// then fails rather than being committed with half a table.
static int write_runs_csv(Report *R) {
    char path[4400];
    snprintf(path, sizeof path, "%s/runs.csv", R->doc.dir);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f, "variant,point,lr,seed,run_id,status,task,split,metric,value,params_total,params_active,tokens_per_second,memory_mb,train_seconds,code_version\n");
    for (int i = 0; i < R->nplan; i++) {
        const RunData *r = &R->run[i];
        const PlannedRun *p = &R->plan[i];
        const char *lr = R->e->nlr ? R->e->lrs[p->lr_index] : "", *seed = cfg_get(&p->cfg, "seed")->text;
        for (int k = 0; k < r->nev || (k == 0 && !r->nev); k++) {
            const EvalRow *v = r->nev ? &r->ev[k] : NULL;
            if (v && (strcmp(v->slice, "{}") || !strcmp(v->split, "train"))) continue;
            fprintf(f, "%s,\"%s\",%s,%s,%lld,%s,%s,%s,%s,%.9g,%.0f,%.0f,%.1f,%.2f,%.2f,%s\n", R->e->var[p->variant].name, p->point,
                    lr, seed, (long long)r->id, r->status, v ? v->task : "", v ? v->split : "", v ? v->metric : "",
                    v ? v->value : NAN, r->params_total, r->params_active, r->tps, r->mem_mb, r->train_s, r->code);
        }
    }
    int bad = ferror(f);
    bad |= fclose(f) != 0;
    return bad ? -1 : 0;
}

// ---------------------------------------------------------------------------------------------

static void free_report(Report *R) {
    for (int i = 0; i < R->nplan; i++) {
        RunData *r = &R->run[i];
        for (int k = 0; k < r->nev; k++) free(r->ev[k].slice);
        free(r->ev);
        free(r->loss.step); free(r->loss.value);
        free(r->valid_loss.step); free(r->valid_loss.value);
        free(r->valid_acc.step); free(r->valid_acc.value);
    }
    free(R->run);
    for (int i = 0; i < R->npoints; i++) free(R->points[i]);
    free(R->points);
    for (int i = 0; i < R->ng; i++) free(R->g[i].runs);
    free(R->g);
    free(R->task);
    for (int i = 0; R->verdict && i < R->e->nclaims; i++) free(R->verdict[i]);
    free(R->verdict);
}

int report_main(const ReportOptions *o) {
    Experiment e;
    PlannedRun *plan;
    int n = experiment_open(&e, o->exp, &plan);
    if (n < 0) return EXIT_BADINPUT;
    Report R = {.e = &e, .plan = plan, .nplan = n, .run = xcalloc(n, sizeof(RunData))};
    R.db = o->db ? o->db : cfg_str(&plan[0].cfg, "store.db");
    char outdir[4096], msg[1024];
    if (o->out) snprintf(outdir, sizeof outdir, "%s", o->out);
    else snprintf(outdir, sizeof outdir, "reports/%s", e.name);
    int rc = EXIT_OK;
    struct stat sb;
    Store *store = NULL;
    if (stat(R.db, &sb) != 0) {   // a report never creates a store
        fprintf(stderr, "hlab: report: no run store at %s; train the experiment first: ./hlab sweep %s%s%s\n", R.db, o->exp,
                o->db ? " --db " : "", o->db ? o->db : "");
        rc = EXIT_BADINPUT;
        goto out;
    }
    store = store_open(R.db, msg, sizeof msg);
    if (!store) { fprintf(stderr, "hlab: run store: %s\n", msg); rc = EXIT_BADINPUT; goto out; }
    int found = 0;
    for (int i = 0; i < n; i++) {
        if (load_run(store, plan[i].identity, &R.run[i]) != 0) {
            fprintf(stderr, "hlab: run store: %s\n", sqlite3_errmsg(store_sqlite(store)));
            rc = EXIT_FAIL;
            goto out;
        }
        found += R.run[i].id != 0;
    }
    if (!found) {
        fprintf(stderr, "hlab: report: the store %s has none of the %d runs of experiment %s finished; run ./hlab sweep %s%s%s\n",
                R.db, n, e.name, o->exp, o->db ? " --db " : "", o->db ? o->db : "");
        rc = EXIT_FAIL;
        goto out;
    }
    build_groups(&R);

    int dr = doc_open(&R.doc, outdir, e.name, msg, sizeof msg);
    if (dr != 0) { fprintf(stderr, "hlab: report: %s\n", msg); rc = dr == -2 ? EXIT_BADINPUT : EXIT_FAIL; goto out; }
    char plotdir[4400];
    snprintf(plotdir, sizeof plotdir, "%s/plots", R.doc.dir);
    plot_init(&R.plots, plotdir);
    if (!R.plots.gnuplot_ok) fprintf(stderr, "hlab: report: %s\n", R.plots.why);
    if (e.description) doc_para(&R.doc, "%s", e.description);
    if (e.paper) doc_para(&R.doc, "Reproduces: %s.", e.paper);
    char pts[64] = "";
    if (R.npoints > 1) snprintf(pts, sizeof pts, " at %d points", R.npoints);
    doc_para(&R.doc, "%d variants%s, %d seed%s each; best in **bold** (per point); mean ± sd over seeds (n); Δ against `%s`. "
             "%d of %d runs finished.", e.nvar, pts, e.nseeds ? e.nseeds : 1, e.nseeds > 1 ? "s" : "", e.baseline, found, n);
    claims_section(&R);
    for (int t = 0; t < R.ntask; t++) {
        char h[160];
        snprintf(h, sizeof h, "Task `%s`: test %s (%s is better)", R.task[t].name, R.task[t].metric, R.task[t].lower ? "lower" : "higher");
        doc_heading(&R.doc, 2, h);
        task_table(&R, &R.task[t]);
        report_task_plots(&R, &R.task[t]);
    }
    report_axis_plots(&R);
    report_curves(&R);
    provenance(&R, o);
    if (write_runs_csv(&R) != 0) {
        fprintf(stderr, "hlab: report: cannot write %s/runs.csv: %s\n", R.doc.dir, strerror(errno));
        doc_abort(&R.doc);
        rc = EXIT_FAIL;
        goto out;
    }
    if (doc_commit(&R.doc, msg, sizeof msg) != 0) { fprintf(stderr, "hlab: report: %s\n", msg); rc = EXIT_FAIL; goto out; }
    if (!o->quiet)
        printf("report: %s/report.md and %s/report.html (%d of %d runs, %d plots%s)\n", outdir, outdir, found, n, R.nplots,
               R.plots.gnuplot_ok ? "" : " written as data and scripts only: no gnuplot");
    for (int i = 0; !o->quiet && R.verdict && i < e.nclaims; i++)
        printf("  %-13s %s\n", R.verdict[i], e.claims[i].text);
    if (R.plots.nfailed) fprintf(stderr, "hlab: report: %d plot(s) failed in gnuplot; see the .log files in %s/plots\n", R.plots.nfailed, outdir);
out:
    store_close(store);
    free_report(&R);
    experiment_free_runs(plan, n);
    experiment_free(&e);
    return rc;
}
