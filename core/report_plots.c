// report_plots.c: the plots of `hlab report` (report.h): curves over training with a band over
// seeds, grouped bars, scores against evaluation slices (NIAH heatmaps, accuracy by context
// length or shot count) and against the experiment's numeric axes, throughput and memory.
// Each plot is drawn by plot.c (gnuplot) and placed in the document with a caption.
#include "report_data.h"
#include "common.h"
#include "json.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXS 64   // series per plot

// A plot name from parts: letters, digits, '-' and '_' only.
static void plot_name(char *out, size_t cap, const char *a, const char *b, int point, int npoints) {
    snprintf(out, cap, "%s%s%s", a, b ? "-" : "", b ? b : "");
    for (char *p = out; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_')) *p = '_';
    if (npoints > 1 && point >= 0) snprintf(out + strlen(out), cap - strlen(out), "-p%d", point + 1);
}

static void place(Report *R, const char *name, const char *caption) {
    R->nplots++;
    doc_image(&R->doc, name, caption);
}

// ---------------------------------------------------------------------------------------------
// a series over steps, averaged over the group's seeds: mean with mean +- sd as the band

typedef struct { int n; double *x, *y, *lo, *hi; } Curve;

static const Series *series_of(const RunData *r, int which) {
    return which == 0 ? &r->loss : which == 1 ? &r->valid_loss : &r->valid_acc;
}

static Curve group_curve(const Report *R, const Group *g, int which, double scale) {
    Curve c = {0};
    // the steps: those of the first run that has the series (runs of a group log at the same steps)
    const Series *ref = NULL;
    for (int i = 0; i < g->nruns && !ref; i++) if (series_of(&R->run[g->runs[i]], which)->n) ref = series_of(&R->run[g->runs[i]], which);
    if (!ref) return c;
    c.x = xmalloc(ref->n * sizeof(double)); c.y = xmalloc(ref->n * sizeof(double));
    c.lo = xmalloc(ref->n * sizeof(double)); c.hi = xmalloc(ref->n * sizeof(double));
    for (int k = 0; k < ref->n; k++) {
        double v[256];
        int n = 0;
        for (int i = 0; i < g->nruns && n < 256; i++) {
            const Series *s = series_of(&R->run[g->runs[i]], which);
            for (int j = 0; j < s->n; j++)
                if (s->step[j] == ref->step[k]) { v[n++] = s->value[j] * scale; break; }
        }
        Stat st = stat_of(v, n);   // NaN values (a diverged evaluation) are skipped
        if (!st.n) continue;
        c.x[c.n] = (double)ref->step[k]; c.y[c.n] = st.mean; c.lo[c.n] = st.mean - st.sd; c.hi[c.n] = st.mean + st.sd;
        c.n++;
    }
    return c;
}
static void curve_free(Curve *c) { free(c->x); free(c->y); free(c->lo); free(c->hi); memset(c, 0, sizeof *c); }

// The headline task of a group: the first task its runs have a validation score for.
static const TaskInfo *group_task(const Report *R, const Group *g) {
    for (int t = 0; t < R->ntask; t++)
        for (int i = 0; i < g->nruns; i++)
            if (isfinite(run_eval(&R->run[g->runs[i]], R->task[t].name, "valid", R->task[t].metric, NULL))) return &R->task[t];
    return NULL;
}

void report_curves(Report *R) {
    doc_heading(&R->doc, 2, "Training curves");
    doc_para(&R->doc, "Mean over seeds, with a band of ± one standard deviation. The training loss is the mean over each "
                      "logging interval; validation uses the validation split at each evaluation.");
    for (int p = 0; p < R->npoints && p < 12; p++) {
        for (int which = 0; which < 2; which++) {
            const char *names[MAXS];
            int color[MAXS], np[MAXS], ns = 0, lower = 1;
            Curve cv[MAXS];
            const double *xs[MAXS], *ys[MAXS], *lo[MAXS], *hi[MAXS];
            const TaskInfo *task = NULL;
            for (int gi = 0; gi < R->ng && ns < MAXS; gi++) {
                const Group *g = &R->g[gi];
                if (g->point != p || !g->nruns) continue;
                const TaskInfo *t = group_task(R, g);
                if (!task) task = t;
                lower = which == 0 || (t && t->lower);
                // validation: bits per byte from the loss for bpb tasks, else accuracy
                int series = which == 0 ? 0 : lower ? 1 : 2;
                cv[ns] = group_curve(R, g, series, which == 1 && lower && t && !strcmp(t->metric, "bpb") ? 1 / log(2.0) : 1);
                if (!cv[ns].n) { curve_free(&cv[ns]); continue; }
                names[ns] = R->e->var[g->variant].name; color[ns] = g->variant; np[ns] = cv[ns].n;
                xs[ns] = cv[ns].x; ys[ns] = cv[ns].y; lo[ns] = cv[ns].lo; hi[ns] = cv[ns].hi;
                ns++;
            }
            if (!ns) continue;
            char name[200], title[600], ylabel[80];
            plot_name(name, sizeof name, which ? "valid" : "loss", NULL, p, R->npoints);
            int bpb = which == 1 && task && !strcmp(task->metric, "bpb");
            snprintf(ylabel, sizeof ylabel, "%s", which == 0 ? "training loss (nats/token)" : bpb ? "validation bits per byte"
                                                : lower ? "validation loss" : "validation accuracy");
            snprintf(title, sizeof title, "%s%s%s", which ? "Validation" : "Training loss", R->npoints > 1 ? ": " : "",
                     R->npoints > 1 ? R->points[p] : "");
            LinePlot lp = {.name = name, .title = title, .xlabel = "step", .ylabel = ylabel, .nseries = ns, .series = names,
                           .color = color, .npts = np, .x = xs, .y = ys, .lo = lo, .hi = hi, .ymin = NAN, .ymax = NAN,
                           .key_pos = which == 1 && !lower ? "bottom right" : "top right"};
            plot_lines(&R->plots, &lp);
            place(R, name, title);
            for (int s = 0; s < ns; s++) curve_free(&cv[s]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// bars and evaluation slices of one task

// Slices of a task: the distinct slice objects of the test split, with their numeric members.
typedef struct { char *text; double v[2]; } SliceCell;
typedef struct { char key[2][32]; int nkeys; SliceCell *cell; int ncells; } Slices;

static void collect_slices(const Report *R, const TaskInfo *t, Slices *S) {
    memset(S, 0, sizeof *S);
    for (int i = 0; i < R->nplan; i++)
        for (int k = 0; k < R->run[i].nev; k++) {
            const EvalRow *v = &R->run[i].ev[k];
            if (strcmp(v->task, t->name) || strcmp(v->split, "test") || strcmp(v->metric, t->metric) || !strcmp(v->slice, "{}")) continue;
            int seen = 0;
            for (int c = 0; c < S->ncells && !seen; c++) seen = !strcmp(S->cell[c].text, v->slice);
            if (seen) continue;
            Json j;
            char err[200];
            if (json_parse(&j, v->slice, strlen(v->slice), err, sizeof err) != 0) continue;
            if (j.type == JSON_OBJECT && j.len >= 1 && j.len <= 2) {
                int ok = 1;
                SliceCell cell = {xstrdup(v->slice), {NAN, NAN}};
                for (size_t m = 0; m < j.len && ok; m++) {
                    if (j.items[m].type != JSON_NUMBER) { ok = 0; break; }
                    if (!S->ncells && m == 0) S->nkeys = (int)j.len;
                    if (S->ncells == 0) snprintf(S->key[m], sizeof S->key[m], "%s", j.keys[m].str);
                    ok = (int)j.len == S->nkeys && !strcmp(S->key[m], j.keys[m].str);
                    cell.v[m] = j.items[m].num;
                }
                if (ok) {
                    S->cell = xrealloc(S->cell, (S->ncells + 1) * sizeof(SliceCell));
                    S->cell[S->ncells++] = cell;
                } else free(cell.text);
            }
            json_free(&j);
        }
}

static int cmp_dbl(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

// The distinct values of member m over the cells, sorted.
static int distinct(const Slices *S, int m, double *out) {
    int n = 0;
    for (int c = 0; c < S->ncells; c++) {
        int seen = 0;
        for (int k = 0; k < n; k++) seen |= out[k] == S->cell[c].v[m];
        if (!seen) out[n++] = S->cell[c].v[m];
    }
    qsort(out, n, sizeof(double), cmp_dbl);
    return n;
}

// Mean over a group's seeds of a slice cell's score (each seed first averaged over cells matching
// v0, and v1 when it is finite).
static Stat slice_stat(const Report *R, const Group *g, const TaskInfo *t, const Slices *S, double v0, double v1) {
    double vals[256];
    int n = 0;
    for (int i = 0; i < g->nruns && n < 256; i++) {
        double sum = 0;
        int k = 0;
        for (int c = 0; c < S->ncells; c++) {
            if (S->cell[c].v[0] != v0 || (isfinite(v1) && S->cell[c].v[1] != v1)) continue;
            double x = run_eval(&R->run[g->runs[i]], t->name, "test", t->metric, S->cell[c].text);
            if (isfinite(x)) { sum += x; k++; }
        }
        if (k) vals[n++] = sum / k;
    }
    return stat_of(vals, n);
}

static void fmt_num(char *out, size_t cap, double v) { snprintf(out, cap, "%g", v); }

// An axis title for a slice member, with its unit where the tasks define one.
static const char *slice_axis(const char *key) {
    return !strcmp(key, "context") ? "context length (tokens)" : !strcmp(key, "depth") ? "needle depth (% of the context)"
         : !strcmp(key, "shots") ? "shots in the prompt" : key;
}

// One line per variant of the score against the first slice member (averaged over the second).
static void slice_lines(Report *R, const TaskInfo *t, const Slices *S, int p) {
    double xv[256];
    int nx = distinct(S, 0, xv);
    if (nx < 2) return;
    const char *names[MAXS];
    int color[MAXS], np[MAXS], ns = 0;
    double X[MAXS][64], Y[MAXS][64], LO[MAXS][64], HI[MAXS][64];
    const double *xs[MAXS], *ys[MAXS], *lo[MAXS], *hi[MAXS];
    for (int gi = 0; gi < R->ng && ns < MAXS; gi++) {
        const Group *g = &R->g[gi];
        if (g->point != p || !g->nruns) continue;
        int k = 0;
        for (int x = 0; x < nx && x < 64; x++) {
            Stat s = slice_stat(R, g, t, S, xv[x], NAN);
            if (!s.n) continue;
            X[ns][k] = xv[x]; Y[ns][k] = s.mean; LO[ns][k] = s.mean - s.sd; HI[ns][k] = s.mean + s.sd; k++;
        }
        if (!k) continue;
        names[ns] = R->e->var[g->variant].name; color[ns] = g->variant; np[ns] = k;
        xs[ns] = X[ns]; ys[ns] = Y[ns]; lo[ns] = LO[ns]; hi[ns] = HI[ns];
        ns++;
    }
    if (!ns) return;
    char name[200], title[600], ylabel[80], by[80];
    snprintf(by, sizeof by, "by-%s", S->key[0]);
    plot_name(name, sizeof name, t->name, by, p, R->npoints);
    snprintf(title, sizeof title, "%s: test %s by %s%s%s%s", t->name, t->metric, S->key[0], S->nkeys > 1 ? " (mean over " : "",
             S->nkeys > 1 ? S->key[1] : "", S->nkeys > 1 ? ")" : "");
    if (R->npoints > 1) snprintf(title + strlen(title), sizeof title - strlen(title), ", %s", R->points[p]);
    snprintf(ylabel, sizeof ylabel, "test %s", t->metric);
    LinePlot lp = {.name = name, .title = title, .xlabel = slice_axis(S->key[0]), .ylabel = ylabel, .nseries = ns, .series = names,
                   .color = color, .npts = np, .x = xs, .y = ys, .lo = lo, .hi = hi, .errorbars = 1,
                   .logx = xv[0] > 0 && xv[nx - 1] / xv[0] >= 8, .ymin = t->lower ? NAN : 0, .ymax = t->lower ? NAN : 1.02,
                   .key_pos = "bottom left"};
    plot_lines(&R->plots, &lp);
    place(R, name, title);
}

// Needle-in-a-haystack style: one heatmap per variant over (first member x second member).
static void slice_heatmaps(Report *R, const TaskInfo *t, const Slices *S, int p) {
    double xv[64], yv[64];
    int nx = distinct(S, 0, xv), ny = distinct(S, 1, yv);
    if (nx > 64 || ny > 64) return;
    char xl[64][32], yl[64][32];
    const char *xlab[64], *ylab[64];
    for (int i = 0; i < nx; i++) { fmt_num(xl[i], sizeof xl[i], xv[i]); xlab[i] = xl[i]; }
    for (int j = 0; j < ny; j++) { fmt_num(yl[j], sizeof yl[j], yv[j]); ylab[j] = yl[j]; }
    for (int gi = 0; gi < R->ng; gi++) {
        const Group *g = &R->g[gi];
        if (g->point != p || !g->nruns) continue;
        double z[64 * 64];
        for (int j = 0; j < ny; j++)
            for (int i = 0; i < nx; i++) z[j * nx + i] = slice_stat(R, g, t, S, xv[i], yv[j]).mean;
        char name[200], title[600];
        plot_name(name, sizeof name, "heatmap", R->e->var[g->variant].name, p, R->npoints);
        snprintf(title, sizeof title, "%s, %s: test %s by %s and %s (mean of %d seed%s)", t->name, R->e->var[g->variant].name,
                 t->metric, S->key[0], S->key[1], g->nruns, g->nruns > 1 ? "s" : "");
        if (R->npoints > 1) snprintf(title + strlen(title), sizeof title - strlen(title), ", %s", R->points[p]);
        HeatPlot hp = {.name = name, .title = title, .xlabel = slice_axis(S->key[0]), .ylabel = slice_axis(S->key[1]), .cblabel = t->metric, .nx = nx,
                       .ny = ny, .xlabels = xlab, .ylabels = ylab, .z = z, .zmin = 0, .zmax = 1, .reverse_y = 1};
        plot_heatmap(&R->plots, &hp);
        place(R, name, title);
    }
}

void report_task_plots(Report *R, const TaskInfo *t) {
    const Experiment *e = R->e;
    // grouped bars: clusters are the points that have this task, bars the variants
    int ng = 0, gp[256];
    for (int p = 0; p < R->npoints && ng < 256; p++) {
        int has = 0;
        for (int v = 0; v < e->nvar; v++) {
            const Group *g = group_of(R, v, p);
            has |= g && group_stat(R, g, t->name, "test", t->metric).n > 0;
        }
        if (has) gp[ng++] = p;
    }
    if (ng && e->nvar > 1 && e->nvar <= MAXS) {
        double *mean = xmalloc((size_t)ng * e->nvar * sizeof(double)), *sd = xmalloc((size_t)ng * e->nvar * sizeof(double));
        const char *groups[256], *bars[MAXS];
        int color[MAXS];
        for (int k = 0; k < ng; k++) {
            groups[k] = R->points[gp[k]][0] ? R->points[gp[k]] : t->name;
            for (int v = 0; v < e->nvar; v++) {
                const Group *g = group_of(R, v, gp[k]);
                Stat s = g ? group_stat(R, g, t->name, "test", t->metric) : (Stat){NAN, NAN, 0};
                mean[k * e->nvar + v] = s.n ? s.mean : NAN;
                sd[k * e->nvar + v] = s.n > 1 ? s.sd : NAN;
            }
        }
        for (int v = 0; v < e->nvar; v++) { bars[v] = e->var[v].name; color[v] = v; }
        char name[200], title[300], ylabel[80];
        plot_name(name, sizeof name, "bars", t->name, -1, 1);
        snprintf(title, sizeof title, "%s: test %s (mean ± sd over seeds; %s is better)", t->name, t->metric, t->lower ? "lower" : "higher");
        snprintf(ylabel, sizeof ylabel, "test %s", t->metric);
        // accuracy from 0 to 1; bits per byte zoomed to the range of the bars (differences of a few
        // hundredths are the result, and invisible on an axis from 0)
        double lo = INFINITY, hi = -INFINITY;
        for (int k = 0; k < ng * e->nvar; k++)
            if (isfinite(mean[k])) {
                double s = isfinite(sd[k]) ? sd[k] : 0;
                if (mean[k] - s < lo) lo = mean[k] - s;
                if (mean[k] + s > hi) hi = mean[k] + s;
            }
        double ymin = t->lower && isfinite(lo) ? floor(10 * (lo - 0.5 * (hi - lo + 0.01))) / 10 : 0;
        if (ymin < 0) ymin = 0;
        BarPlot bp = {.name = name, .title = title, .ylabel = ylabel, .ngroups = ng, .groups = groups, .nbars = e->nvar, .bars = bars,
                      .color = color, .mean = mean, .sd = sd, .ymin = ymin, .ymax = t->lower ? NAN : 1.05};
        plot_bars(&R->plots, &bp);
        place(R, name, title);
        free(mean); free(sd);
    }
    // evaluation slices: heatmaps over two members (NIAH: context x depth), lines over the first
    Slices S;
    collect_slices(R, t, &S);
    if (S.ncells > 1)
        for (int p = 0; p < R->npoints && p < 12; p++) {
            slice_lines(R, t, &S, p);
            if (S.nkeys == 2) slice_heatmaps(R, t, &S, p);
        }
    for (int c = 0; c < S.ncells; c++) free(S.cell[c].text);
    free(S.cell);
}

// ---------------------------------------------------------------------------------------------
// numeric axes of the experiment: score, throughput and memory against each

// The point label without the axis' "key=value" (and, for the zipped axes, every zipped key's,
// as they advance together): what the other axes are at this point.
static void rest_of_point(const Experiment *e, const char *point, const Axis *ax, char *out, size_t cap) {
    out[0] = 0;
    int zipped = ax >= e->zip && ax < e->zip + e->nzip;
    char *copy = xstrdup(point), *save = NULL;
    for (char *tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        int drop = 0;
        for (int z = 0; z < (zipped ? e->nzip : 1) && !drop; z++) {
            const char *key = zipped ? e->zip[z].key : ax->key;
            size_t kl = strlen(key);
            drop = !strncmp(tok, key, kl) && tok[kl] == '=';
        }
        if (!drop) snprintf(out + strlen(out), cap - strlen(out), "%s%s", out[0] ? " " : "", tok);
    }
    free(copy);
}

static void axis_plot(Report *R, const Axis *ax, const TaskInfo *t, const char *metric, const char *ylabel, const char *stem) {
    const char *names[MAXS];
    char labels[MAXS][300];
    int color[MAXS], np[MAXS], ns = 0;
    double X[MAXS][64], Y[MAXS][64], LO[MAXS][64], HI[MAXS][64];
    const double *xs[MAXS], *ys[MAXS], *lo[MAXS], *hi[MAXS];
    for (int gi = 0; gi < R->ng; gi++) {
        const Group *g = &R->g[gi];
        if (!g->nruns) continue;
        const PlannedRun *pr = &R->plan[g->runs[0]];
        double x = strtod(cfg_get(&pr->cfg, ax->key)->text, NULL);
        Stat s = group_stat(R, g, t ? t->name : NULL, "test", metric);
        if (!s.n) continue;
        char rest[300], label[300];
        rest_of_point(R->e, R->points[g->point], ax, rest, sizeof rest);
        snprintf(label, sizeof label, "%s%s%s", R->e->var[g->variant].name, rest[0] ? " " : "", rest);
        int k = 0;
        while (k < ns && strcmp(labels[k], label)) k++;
        if (k == ns) {
            if (ns == MAXS) continue;
            snprintf(labels[ns], sizeof labels[ns], "%s", label);
            // a variant keeps its colour when it has one line
            names[ns] = labels[ns]; color[ns] = rest[0] ? ns : g->variant; np[ns] = 0;
            xs[ns] = X[ns]; ys[ns] = Y[ns]; lo[ns] = LO[ns]; hi[ns] = HI[ns];
            ns++;
        }
        if (np[k] == 64) continue;
        int j = np[k]++;
        while (j > 0 && X[k][j - 1] > x) { X[k][j] = X[k][j - 1]; Y[k][j] = Y[k][j - 1]; LO[k][j] = LO[k][j - 1]; HI[k][j] = HI[k][j - 1]; j--; }
        X[k][j] = x; Y[k][j] = s.mean; LO[k][j] = s.mean - s.sd; HI[k][j] = s.mean + s.sd;
    }
    if (!ns) return;
    char name[200], title[600];
    plot_name(name, sizeof name, stem, ax->key, -1, 1);
    snprintf(title, sizeof title, "%s against %s (mean ± sd over seeds)", ylabel, ax->key);
    if (ax >= R->e->zip && ax < R->e->zip + R->e->nzip && R->e->nzip > 1)
        snprintf(title + strlen(title), sizeof title - strlen(title), "; zipped with %d other axis", R->e->nzip - 1);
    double lo_x = INFINITY, hi_x = -INFINITY;
    for (int s = 0; s < ns; s++) for (int k = 0; k < np[s]; k++) { if (X[s][k] < lo_x) lo_x = X[s][k]; if (X[s][k] > hi_x) hi_x = X[s][k]; }
    int acc = t && !t->lower && !strcmp(metric, t->metric);
    LinePlot lp = {.name = name, .title = title, .xlabel = ax->key, .ylabel = ylabel, .nseries = ns, .series = names, .color = color,
                   .npts = np, .x = xs, .y = ys, .lo = lo, .hi = hi, .errorbars = 1, .logx = lo_x > 0 && hi_x / lo_x >= 8,
                   .ymin = acc ? 0 : NAN, .ymax = acc ? 1.02 : NAN, .key_pos = "outside right"};
    plot_lines(&R->plots, &lp);
    place(R, name, title);
}

void report_axis_plots(Report *R) {
    const Experiment *e = R->e;
    int started = 0;
    for (int a = 0; a < e->ngrid + (e->nzip ? 1 : 0); a++) {
        const Axis *ax = a < e->ngrid ? &e->grid[a] : &e->zip[0];
        int numeric = ax->nvalues >= 2;
        for (int k = 0; k < ax->nvalues && numeric; k++) {
            char *end;
            strtod(ax->values[k], &end);
            numeric = end != ax->values[k] && !*end;
        }
        if (!numeric) continue;
        if (!started++) {
            doc_heading(&R->doc, 2, "Against the swept axes");
            doc_para(&R->doc, "Each line is a variant (with the other axes' values, if any); error bars are ± one standard deviation over seeds.");
        }
        for (int t = 0; t < R->ntask; t++) {
            char yl[96];
            snprintf(yl, sizeof yl, "%s test %s", R->task[t].name, R->task[t].metric);
            axis_plot(R, ax, &R->task[t], R->task[t].metric, yl, R->task[t].name);
        }
        axis_plot(R, ax, NULL, "tokens_per_second", "training tokens/s", "throughput");
        axis_plot(R, ax, NULL, "memory_mb", "training memory (MB)", "memory");
    }
}
