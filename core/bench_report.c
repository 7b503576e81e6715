// bench_report.c: the report of `hlab bench suite` (see bench_suite.c): report.md and report.html
// through report_doc.c, plots through plot.c (gnuplot). Everything in it comes from the rows the
// suite recorded (BenchLog), so the page and the store never disagree.
#include "bench_suite.h"
#include "common.h"
#include "plot.h"
#include "report_doc.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const SuitePlan *p;
    const BenchLog *lg;
    Doc doc;
    Plots plots;
    // table cells: allocated with cell(), freed by cells_free()
    char **cells;
    int ncells, capcells;
} Rep;

__attribute__((format(printf, 2, 3))) static void cell(Rep *R, const char *fmt, ...) {
    if (R->ncells == R->capcells) {
        R->capcells = R->capcells ? 2 * R->capcells : 256;
        R->cells = xrealloc(R->cells, R->capcells * sizeof *R->cells);
    }
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&R->cells[R->ncells++], fmt, ap) < 0) die("out of memory");
    va_end(ap);
}
// A number, or "-" when it was not measured.
static void num(Rep *R, const char *fmt, double v) {
    if (isfinite(v)) cell(R, fmt, v);
    else cell(R, "-");
}
static void cells_free(Rep *R) {
    for (int i = 0; i < R->ncells; i++) free(R->cells[i]);
    R->ncells = 0;
}

static double get(const Rep *R, const char *kind, const char *arch, const char *metric, int d, int T) {
    return bench_log_get(R->lg, kind, arch, metric, d, T, NULL, NULL, NULL, 0);
}

// The names of the profile's parts over every training row, in order of first appearance.
static int part_names(const Rep *R, const char **names, int cap) {
    int n = 0;
    for (int i = 0; i < R->lg->n; i++) {
        const BenchRow *r = &R->lg->rows[i];
        if (strcmp(r->kind, "train") || strcmp(r->metric, "time_ms")) continue;
        int k = 0;
        while (k < n && strcmp(names[k], r->part)) k++;
        if (k == n && n < cap) names[n++] = r->part;
    }
    return n;
}

// ms per step of one part (every pass), NaN when the part did not run there.
static double part_ms(const Rep *R, const char *arch, int d, int T, const char *part) {
    double sum = 0;
    int found = 0;
    for (int i = 0; i < R->lg->n; i++) {
        const BenchRow *r = &R->lg->rows[i];
        if (strcmp(r->kind, "train") || strcmp(r->metric, "time_ms") || strcmp(r->arch, arch) || r->d != d || r->T != T ||
            strcmp(r->part, part)) continue;
        sum += r->value;
        found = 1;
    }
    return found ? sum : NAN;
}

// The (x, value) points of one generation curve, in the order measured. Returns their number.
static int curve(const Rep *R, const char *kind, const char *arch, const char *metric, double *x, double *y, int cap) {
    int n = 0;
    for (int i = 0; i < R->lg->n && n < cap; i++) {
        const BenchRow *r = &R->lg->rows[i];
        if (strcmp(r->kind, kind) || strcmp(r->arch, arch) || strcmp(r->metric, metric)) continue;
        x[n] = r->x;
        y[n++] = r->value;
    }
    return n;
}

static void plot_failed(Rep *R, int rc, const char *name) {
    if (rc) fprintf(stderr, "hlab: bench suite: plot %s: %s\n", name, R->plots.why);
}

static void sgemm_section(Rep *R) {
    const SuitePlan *p = R->p;
    doc_heading(&R->doc, 2, "The yardstick: sgemm");
    doc_para(&R->doc, "cblas_sgemm GFLOP/s (best of 3 timings of about 0.2 s each): one thread, OpenBLAS with %d threads, and our "
             "split of the rows over %d threads (what the engine's projections do). Peak: **%.1f GFLOP/s** on 1 thread, **%.1f** on "
             "%d threads; training's GFLOP/s are divided by the latter.", p->threads, p->threads, p->peak1, p->peakn, p->threads);
    const char *head[] = {"product", "M", "N", "K", "1 thread", "BLAS threads", "split rows"};
    for (int i = 0; i < p->ncells; i++) {
        const SgemmCell *c = &p->cells[i];
        cell(R, "%s", c->what); cell(R, "%d", c->M); cell(R, "%d", c->N); cell(R, "%d", c->K);
        cell(R, "%.1f", c->g1); cell(R, "%.1f", c->gblas); cell(R, "%.1f", c->gsplit);
    }
    doc_table(&R->doc, 7, head, p->ncells, R->cells, NULL, "lrrrrrr");
    cells_free(R);
}

static void train_section(Rep *R) {
    const SuitePlan *p = R->p;
    doc_heading(&R->doc, 2, "Training throughput");
    doc_para(&R->doc, "Whole training steps (forward, backward, AdamW) on random tokens, every position labelled, B x T = %d tokens "
             "per step; the median of %d timed steps after 2 untimed ones (of 3 after 1 where a step takes seconds), %d thread(s). GFLOP/s = 3 x the forward FLOPs per token "
             "(`hlab info`'s count at the mean position) x tokens / step time. Memory: model = weights, gradients and AdamW's two "
             "moments; act = activations, scratch and the batch; RSS = the process's resident set after the steps.",
             p->tokens, p->steps, p->threads);
    const char *head[] = {"arch", "d_model", "T", "B", "params", "tokens/s", "step ms", "GFLOP/s", "% of peak", "model MB", "act MB",
                          "RSS MB"};
    int nrows = 0;
    for (int i = 0; i < p->nd; i++)
        for (int j = 0; j < p->nT; j++)
            for (int a = 0; a < SUITE_NARCH; a++) {
                const char *arch = suite_archs[a];
                int d = p->ds[i], T = p->Ts[j];
                cell(R, "%s", arch); cell(R, "%d", d); cell(R, "%d", T); cell(R, "%d", p->tokens / T);
                num(R, "%.3gM", get(R, "train", arch, "params", d, T) / 1e6);
                num(R, "%.0f", get(R, "train", arch, "tokens_per_s", d, T));
                num(R, "%.1f", get(R, "train", arch, "step_ms", d, T));
                num(R, "%.1f", get(R, "train", arch, "gflops", d, T));
                num(R, "%.0f%%", get(R, "train", arch, "pct_of_peak", d, T));
                num(R, "%.1f", get(R, "train", arch, "model_mb", d, T));
                num(R, "%.1f", get(R, "train", arch, "act_mb", d, T));
                num(R, "%.0f", get(R, "train", arch, "rss_mb", d, T));
                nrows++;
            }
    doc_table(&R->doc, 12, head, nrows, R->cells, NULL, "lrrrrrrrrrrr");
    cells_free(R);
    if (bench_over_peak(R->lg))
        doc_para(&R->doc, "**Note**: some configurations exceed 100%% of the sgemm peak, so the peak was measured low (another "
                 "process was using these cores): the fractions of peak are suspect; rerun on an idle machine.");

    // tokens/s: one plot per width (the widths differ by an order of magnitude)
    int color[SUITE_NARCH];
    for (int a = 0; a < SUITE_NARCH; a++) color[a] = a;
    for (int i = 0; i < p->nd; i++) {
        const char *groups[2];
        char gl[2][32], name[64], title[128];
        double mean[2 * SUITE_NARCH];
        for (int j = 0; j < p->nT; j++) {
            snprintf(gl[j], sizeof gl[j], "T %d (B %d)", p->Ts[j], p->tokens / p->Ts[j]);
            groups[j] = gl[j];
            for (int a = 0; a < SUITE_NARCH; a++) mean[j * SUITE_NARCH + a] = get(R, "train", suite_archs[a], "tokens_per_s", p->ds[i], p->Ts[j]);
        }
        snprintf(name, sizeof name, "train_tokens_d%d", p->ds[i]);
        snprintf(title, sizeof title, "Training tokens/s at d_model %d, %d thread(s)", p->ds[i], p->threads);
        BarPlot bp = {.name = name, .title = title, .ylabel = "tokens/s", .ngroups = p->nT, .groups = groups, .nbars = SUITE_NARCH,
                      .bars = (const char **)suite_archs, .color = color, .mean = mean, .ymin = NAN, .ymax = NAN};
        plot_failed(R, plot_bars(&R->plots, &bp), name);
        doc_image(&R->doc, name, title);
    }
    // % of peak: comparable across widths, one plot
    const char *groups[4];
    char gl[4][32];
    double mean[4 * SUITE_NARCH];
    int ng = 0;
    for (int i = 0; i < p->nd; i++)
        for (int j = 0; j < p->nT; j++, ng++) {
            snprintf(gl[ng], sizeof gl[ng], "d %d, T %d", p->ds[i], p->Ts[j]);
            groups[ng] = gl[ng];
            for (int a = 0; a < SUITE_NARCH; a++) mean[ng * SUITE_NARCH + a] = get(R, "train", suite_archs[a], "pct_of_peak", p->ds[i], p->Ts[j]);
        }
    char title[160];
    snprintf(title, sizeof title, "Achieved GFLOP/s as %% of the sgemm peak (%.0f GFLOP/s on %d threads)", p->peakn, p->threads);
    BarPlot pk = {.name = "train_pct_peak", .title = title, .ylabel = "% of sgemm peak", .ngroups = ng, .groups = groups,
                  .nbars = SUITE_NARCH, .bars = (const char **)suite_archs, .color = color, .mean = mean, .ymin = NAN, .ymax = NAN};
    plot_failed(R, plot_bars(&R->plots, &pk), "train_pct_peak");
    doc_image(&R->doc, "train_pct_peak", title);
}

static void breakdown_section(Rep *R) {
    const SuitePlan *p = R->p;
    const char *parts[MAX_PROF_PARTS * 2];
    int np = part_names(R, parts, MAX_PROF_PARTS * 2);
    doc_heading(&R->doc, 2, "Where the time goes");
    doc_para(&R->doc, "Share of a training step per part (the model's profile, `Model.profile`): each block type with its pre-norm and "
             "residual add, `embedding`, `head+loss` (final norm, LM head, cross-entropy, pooled auxiliary losses) and `optimizer` "
             "(zeroing the gradients and AdamW); forward and backward together. The per-pass numbers are in the store (metric "
             "`time_ms`, axes `part` and `pass`).");
    int ng = p->nd * p->nT * SUITE_NARCH;
    const char **groups = xcalloc(ng, sizeof *groups);
    char (*gl)[48] = xcalloc(ng, sizeof *gl);
    double *share = xcalloc((size_t)ng * (np ? np : 1), sizeof(double));
    const char **head = xcalloc(np + 3, sizeof *head);
    head[0] = "arch"; head[1] = "d_model"; head[2] = "T";
    for (int k = 0; k < np; k++) head[3 + k] = parts[k];
    char *align = xcalloc(np + 4, 1);
    memset(align, 'r', np + 3);
    align[0] = 'l';
    int g = 0;
    for (int i = 0; i < p->nd; i++)
        for (int j = 0; j < p->nT; j++)
            for (int a = 0; a < SUITE_NARCH; a++, g++) {
                const char *arch = suite_archs[a];
                int d = p->ds[i], T = p->Ts[j];
                snprintf(gl[g], sizeof gl[g], "%s %d/%d", arch, d, T);
                groups[g] = gl[g];
                double total = 0;
                for (int k = 0; k < np; k++) {
                    double ms = part_ms(R, arch, d, T, parts[k]);
                    if (isfinite(ms)) total += ms;
                }
                cell(R, "%s", arch); cell(R, "%d", d); cell(R, "%d", T);
                for (int k = 0; k < np; k++) {
                    double ms = part_ms(R, arch, d, T, parts[k]);
                    share[g * np + k] = total > 0 && isfinite(ms) ? 100 * ms / total : NAN;
                    num(R, "%.1f%%", share[g * np + k]);
                }
            }
    doc_table(&R->doc, np + 3, head, ng, R->cells, NULL, align);
    cells_free(R);
    // the plot folds the embedding (a fraction of a percent) into head+loss, so that the parts of
    // today's blocks fit the palette's 8 distinct colours
    int emb = -1, head_k = -1, nb = 0;
    for (int k = 0; k < np; k++) {
        if (!strcmp(parts[k], "embedding")) emb = k;
        if (!strcmp(parts[k], "head+loss")) head_k = k;
    }
    const char **bars = xcalloc(np ? np : 1, sizeof *bars);
    int *src = xcalloc(np ? np : 1, sizeof *src);   // the column of share each bar takes
    for (int k = 0; k < np; k++) {
        if (k == emb && head_k >= 0) continue;
        bars[nb] = k == head_k && emb >= 0 ? "embedding+head+loss" : parts[k];
        src[nb++] = k;
    }
    double *seg = xcalloc((size_t)ng * (nb ? nb : 1), sizeof(double));
    for (int gi = 0; gi < ng; gi++)
        for (int b = 0; b < nb; b++) {
            double v = share[gi * np + src[b]];
            if (src[b] == head_k && emb >= 0 && isfinite(share[gi * np + emb])) v = (isfinite(v) ? v : 0) + share[gi * np + emb];
            seg[gi * nb + b] = v;
        }
    BarPlot bp = {.name = "train_breakdown", .title = "Share of a training step per part (arch d_model/T)", .ylabel = "% of step",
                  .ngroups = ng, .groups = groups, .nbars = nb, .bars = bars, .mean = seg, .ymin = 0, .ymax = 100, .stacked = 1};
    plot_failed(R, plot_bars(&R->plots, &bp), "train_breakdown");
    doc_image(&R->doc, "train_breakdown", "Share of a training step per part, forward and backward together");
    free(groups); free(gl); free(share); free(head); free(align); free(bars); free(src); free(seg);
}

// One line plot of a generation curve, a series per architecture that has points.
static void gen_plot(Rep *R, const char *name, const char *kind, const char *metric, const char *title, const char *xlabel,
                     const char *ylabel, int logy) {
    enum { CAP = 64 };
    double x[SUITE_NARCH][CAP], y[SUITE_NARCH][CAP];
    const double *xs[SUITE_NARCH], *ys[SUITE_NARCH];
    int npts[SUITE_NARCH], color[SUITE_NARCH];
    for (int a = 0; a < SUITE_NARCH; a++) {
        npts[a] = curve(R, kind, suite_archs[a], metric, x[a], y[a], CAP);
        xs[a] = x[a]; ys[a] = y[a]; color[a] = a;
    }
    LinePlot lp = {.name = name, .title = title, .xlabel = xlabel, .ylabel = ylabel, .logx = 1, .logy = logy, .nseries = SUITE_NARCH,
                   .series = (const char **)suite_archs, .color = color, .npts = npts, .x = xs, .y = ys, .ymin = NAN, .ymax = NAN,
                   .key_pos = "top left"};
    plot_failed(R, plot_lines(&R->plots, &lp), name);
    doc_image(&R->doc, name, title);
}

static void generate_section(Rep *R) {
    const SuitePlan *p = R->p;
    doc_heading(&R->doc, 2, "Generation");
    doc_para(&R->doc, "One sequence, 1 thread, d_model %d, random weights. Decode: the median step time of the window before each "
             "mark while generating %d tokens after a 16-token prompt, and the state the model holds there (KV caches grow with "
             "the context, SSM states do not). Prefill: time to first token, best of 3. Max context: the longest context whose "
             "state fits next to the weights in %.0f MB.", p->gen_d, p->gen_tokens, p->gen_budget_mb);
    int nun = 0;
    for (int a = 0; a < SUITE_NARCH; a++) nun += R->lg->gen_unsupported[a];
    if (nun) {
        char list[256] = "";
        for (int a = 0; a < SUITE_NARCH; a++)
            if (R->lg->gen_unsupported[a]) {
                if (*list) strncat(list, ", ", sizeof list - strlen(list) - 1);
                strncat(list, suite_archs[a], sizeof list - strlen(list) - 1);
            }
        doc_para(&R->doc, "**Not measured** for %s: a block of the model has no inference step yet (recorded as kind `generate`, "
                 "metric `unsupported`).", list);
    }
    const char *head[] = {"arch", "status", "ms/token", "at tokens", "state MB", "TTFT ms", "at prompt", "max context"};
    for (int a = 0; a < SUITE_NARCH; a++) {
        const char *arch = suite_archs[a];
        double x[64], y[64], xs[64], st[64], px[64], tt[64], bx[4], mc[4];
        int n = curve(R, "decode", arch, "ms_per_token", x, y, 64), ns = curve(R, "decode", arch, "state_mb", xs, st, 64);
        int np = curve(R, "prefill", arch, "ttft_ms", px, tt, 64), nm = curve(R, "max_context", arch, "positions", bx, mc, 4);
        cell(R, "%s", arch);
        cell(R, "%s", R->lg->gen_unsupported[a] ? "no inference step" : n || np ? "measured" : "failed");
        num(R, "%.3f", n ? y[n - 1] : NAN);
        num(R, "%.0f", n ? x[n - 1] : NAN);
        num(R, "%.3f", ns ? st[ns - 1] : NAN);
        num(R, "%.2f", np ? tt[np - 1] : NAN);
        num(R, "%.0f", np ? px[np - 1] : NAN);
        if (nm && isinf(mc[0])) cell(R, "unbounded");
        else num(R, "%.0f", nm ? mc[0] : NAN);
    }
    doc_table(&R->doc, 8, head, SUITE_NARCH, R->cells, NULL, "llrrrrrr");
    cells_free(R);
    gen_plot(R, "gen_decode_ms", "decode", "ms_per_token", "Decode latency against tokens generated", "tokens generated", "ms/token", 0);
    gen_plot(R, "gen_state_mb", "decode", "state_mb", "State memory against tokens generated", "tokens generated", "state MB", 1);
    gen_plot(R, "gen_ttft", "prefill", "ttft_ms", "Time to first token against prompt length", "prompt tokens", "ms", 1);
}

int bench_report_write(const SuitePlan *p, const BenchLog *lg, char *err, size_t cap) {
    Rep R = {.p = p, .lg = lg};
    if (doc_open(&R.doc, p->out, p->quick ? "Benchmark suite (quick)" : "Benchmark suite", err, cap) != 0) return -1;
    char plotdir[4400];
    snprintf(plotdir, sizeof plotdir, "%s/plots", R.doc.dir);
    plot_init(&R.plots, plotdir);
    if (!R.plots.gnuplot_ok) fprintf(stderr, "hlab: bench suite: %s\n", R.plots.why);
    const MachineInfo *mi = &lg->mi;
    doc_para(&R.doc, "`hlab bench suite%s` on %s (%d cores), OpenBLAS core %s, code %s, host %s, %d thread(s), started %s.%s",
             p->quick ? " --quick" : "", mi->cpu, mi->cores, mi->blas_core, mi->code_version, mi->host, p->threads, p->started,
             p->quick ? " **Quick mode**: tiny sizes that check the suite's form, not this machine's speed." : "");
    sgemm_section(&R);
    train_section(&R);
    breakdown_section(&R);
    generate_section(&R);
    doc_heading(&R.doc, 2, "The numbers");
    if (strcmp(p->db, "none")) {
        doc_para(&R.doc, "Every number above is a row of the table `benchmarks` in `%s`, suite `%s`, for example:", p->db, lg->suite);
        char q[1024];
        snprintf(q, sizeof q, "sqlite3 %s \"select arch, json_extract(axes, '$.d_model') d, json_extract(axes, '$.seq_len') T, value\n"
                              "    from benchmarks where suite = '%s' and metric = 'tokens_per_s'\"\n", p->db, lg->suite);
        doc_code(&R.doc, q);
    } else doc_para(&R.doc, "The numbers were not recorded in a store (`--db none`).");
    doc_para(&R.doc, "Each plot's data is its `plots/NAME.csv`; `gnuplot NAME.gp` in `plots/` redraws it.");
    if (doc_commit(&R.doc, err, cap) != 0) { free(R.cells); return -1; }
    if (R.plots.nfailed) fprintf(stderr, "hlab: bench suite: %d plot(s) failed in gnuplot; see the .log files in %s/plots\n",
                                 R.plots.nfailed, p->out);
    free(R.cells);
    return 0;
}
