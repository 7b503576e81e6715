// test_plot.c: the gnuplot plots of core/plot.c: each kind written as csv + gp and drawn to png
// and svg; bad names refused; no gnuplot on PATH still writes the data and scripts; a plot with
// nothing to draw is an empty frame, not a gnuplot failure. Needs gnuplot (a project dependency).
// Set HLAB_KEEP_PLOTS=1 to keep the temporary directory for a look at the images.
#include "plot.h"
#include "test.h"
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[400];

static const char *path(const char *name, const char *ext) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s.%s", dir, name, ext);
    return buf[k];
}

// The whole file, NUL-terminated (NULL if missing); *n its size.
static char *slurp(const char *p, long *n) {
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc(len + 1);
    if (fread(s, 1, len, f) != (size_t)len) len = 0;
    s[len] = 0;
    fclose(f);
    if (n) *n = len;
    return s;
}

static int exists(const char *p) { return access(p, F_OK) == 0; }

static int contains(const char *p, const char *needle) {
    char *s = slurp(p, NULL);
    int ok = s && strstr(s, needle);
    free(s);
    return ok;
}

static int png_ok(const char *p) {
    long n = 0;
    char *s = slurp(p, &n);
    int ok = s && n > 1000 && !memcmp(s, "\x89PNG\r\n\x1a\n", 8);
    free(s);
    return ok;
}

static int svg_ok(const char *p) {
    long n = 0;
    char *s = slurp(p, &n);
    int ok = s && strstr(s, "<svg");
    while (ok && n > 0 && strchr(" \t\r\n", s[n - 1])) n--;
    ok = ok && n >= 6 && !memcmp(s + n - 6, "</svg>", 6);
    free(s);
    return ok;
}

// the four files of a drawn plot, and the csv holding a value that was put in
static void check_drawn(const char *name, const char *value) {
    CHECK(exists(path(name, "csv")) && exists(path(name, "gp")), "%s: csv and gp written", name);
    CHECK(contains(path(name, "csv"), value), "%s: the csv has the value %s", name, value);
    char rerun[300];
    snprintf(rerun, sizeof rerun, "`gnuplot %s.gp`", name);
    CHECK(contains(path(name, "gp"), "set datafile separator comma") && contains(path(name, "gp"), rerun),
          "%s: the gp sets the comma separator and says how to rerun it", name);
    CHECK(png_ok(path(name, "png")), "%s: png has the PNG signature and > 1000 bytes", name);
    CHECK(svg_ok(path(name, "svg")), "%s: svg has <svg and ends with </svg>", name);
    CHECK(!exists(path(name, "log")), "%s: no log left", name);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw) { return remove(p); }

int main(void) {
    test_group("init");
    char root[64] = "/tmp/hlab_plot_XXXXXX";
    if (!mkdtemp(root)) { perror("mkdtemp"); return 1; }
    snprintf(dir, sizeof dir, "%s/a/plots", root);   // plot_init creates missing parents
    Plots P;
    CHECK(plot_init(&P, dir) == 0, "plot_init creates %s", dir);
    CHECK(P.gnuplot_ok == 1, "gnuplot found (why: %s)", P.why);

    // training curves: 3 series of 5 points with a band, names that need quoting
    test_group("lines+bands");
    const char *names[3] = {"mamba2_attn^1", "it's \"quoted\", really", "back\\slash"};
    double x[5] = {100, 200, 300, 400, 500};
    double y[3][5] = {{2.9, 2.5, 2.34567, 2.2, 2.1}, {3.0, 2.7, NAN, 2.4, 2.3}, {2.8, 2.3, 2.0, 1.9, 1.85}};
    double lo[3][5], hi[3][5];
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < 5; i++) { lo[s][i] = y[s][i] - 0.05 * (s + 1); hi[s][i] = y[s][i] + 0.05 * (s + 1); }
    const double *xs[3] = {x, x, x}, *ys[3] = {y[0], y[1], y[2]}, *los[3] = {lo[0], lo[1], lo[2]}, *his[3] = {hi[0], hi[1], hi[2]};
    int np[3] = {5, 5, 5}, color[3] = {2, 0, 5};
    LinePlot lp = {.name = "loss", .title = "Training loss (mean ± sd over 3 seeds)", .xlabel = "step", .ylabel = "loss (nats/token)",
                   .nseries = 3, .series = names, .color = color, .npts = np, .x = xs, .y = ys, .lo = los, .hi = his,
                   .ymin = NAN, .ymax = NAN};
    CHECK(plot_lines(&P, &lp) == 0, "plot_lines returns 0");
    check_drawn("loss", "2.34567");
    CHECK(contains(path("loss", "gp"), "filledcurves") && contains(path("loss", "gp"), "'it''s \"quoted\", really'"),
          "bands drawn with filledcurves; a title with quotes is quoted for gnuplot");
    CHECK(contains(path("loss", "csv"), "# series 2: back\\slash"), "the csv names each series block");
    CHECK(contains(path("loss", "gp"), plot_color(2)), "series 0 drawn in palette colour 2 (%s)", plot_color(2));

    // accuracy by context length: error bars on a categorical axis
    test_group("lines+errorbars");
    const char *len[5] = {"1k", "2k", "4k", "8k", "16k"};
    double cx[5] = {0, 1, 2, 3, 4};
    double acc[3][5] = {{1, 0.987654, 0.95, 0.81, 0.52}, {1, 1, 0.99, 0.97, 0.93}, {0.9, 0.7, 0.4, 0.2, 0.1}};
    double alo[3][5], ahi[3][5];
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < 5; i++) { alo[s][i] = acc[s][i] - 0.03; ahi[s][i] = fmin(1, acc[s][i] + 0.03); }
    const double *cxs[3] = {cx, cx, cx}, *as[3] = {acc[0], acc[1], acc[2]}, *alos[3] = {alo[0], alo[1], NULL},
                 *ahis[3] = {ahi[0], ahi[1], NULL};
    const char *vnames[3] = {"transformer", "hybrid 1:7", "mamba2"};
    LinePlot ep = {.name = "acc-by-length", .title = "passkey: test accuracy by context length", .xlabel = "context length",
                   .ylabel = "accuracy", .nseries = 3, .series = vnames, .npts = np, .x = cxs, .y = as, .lo = alos, .hi = ahis,
                   .errorbars = 1, .xcategorical = 1, .xticlabels = len, .ymin = 0, .ymax = 1.02, .key_pos = "bottom left"};
    CHECK(plot_lines(&P, &ep) == 0, "plot_lines returns 0");
    check_drawn("acc-by-length", "0.987654");
    CHECK(contains(path("acc-by-length", "gp"), "yerrorlines") && contains(path("acc-by-length", "gp"), "'16k' 4"),
          "error bars drawn with yerrorlines; categorical tics labelled");

    // needle in a haystack: 4 depths x 5 lengths, one cell missing
    test_group("heatmap");
    const char *depth[4] = {"0%", "33%", "67%", "100%"};
    double z[4 * 5] = {1, 1, 0.97, 0.9, 0.6, 1, 0.98, 0.4321, 0.7, 0.35, 1, 1, NAN, 0.8, 0.42, 1, 1, 1, 0.95, 0.88};
    HeatPlot hp = {.name = "niah", .title = "NIAH: hybrid 1:7, accuracy by length and depth", .xlabel = "context length",
                   .ylabel = "needle depth", .cblabel = "accuracy", .nx = 5, .ny = 4, .xlabels = len, .ylabels = depth, .z = z,
                   .zmin = 0, .zmax = 1, .reverse_y = 1};
    CHECK(plot_heatmap(&P, &hp) == 0, "plot_heatmap returns 0");
    check_drawn("niah", "0.4321");
    CHECK(contains(path("niah", "csv"), "2,2,NaN"), "the missing cell is NaN in the csv");
    CHECK(contains(path("niah", "gp"), "with image pixels") && contains(path("niah", "gp"), "'#0CD79F'"),
          "drawn `with image pixels` in the NIAH palette");

    // grouped bars: 2 clusters x 3 bars, one bar missing, one sd missing
    test_group("bars");
    const char *groups[2] = {"mqar", "passkey"};
    double mean[6] = {0.91, 0.7531, 0.62, 0.85, NAN, 0.4}, sd[6] = {0.02, 0.04, NAN, 0.03, NAN, 0.05};
    BarPlot bp = {.name = "bars_test", .title = "test accuracy (mean ± sd over seeds)", .ylabel = "accuracy", .ngroups = 2,
                  .groups = groups, .nbars = 3, .bars = vnames, .mean = mean, .sd = sd, .ymin = NAN, .ymax = NAN};
    CHECK(plot_bars(&P, &bp) == 0, "plot_bars returns 0");
    check_drawn("bars_test", "0.7531");
    CHECK(contains(path("bars_test", "gp"), "set yrange [0:*]"), "all means > 0: the axis starts at 0");
    // the same numbers stacked: one bar per cluster, the missing segment 0 high
    BarPlot sp = bp;
    sp.name = "stacked_test";
    sp.stacked = 1;
    CHECK(plot_bars(&P, &sp) == 0, "plot_bars stacked returns 0");
    check_drawn("stacked_test", "0.7531");
    CHECK(contains(path("stacked_test", "gp"), "rowstacked") && !contains(path("stacked_test", "gp"), "errorbars") &&
          contains(path("stacked_test", "gp"), "(valid(4) ? column(4) : 0)"), "drawn rowstacked, no error bars, a NaN segment as 0");

    // nothing to draw: an empty frame saying so, not a gnuplot failure
    test_group("no data");
    double nan5[5] = {NAN, NAN, NAN, NAN, NAN};
    const double *nys[3] = {nan5, nan5, nan5};
    LinePlot np0 = lp;
    np0.name = "empty";
    np0.y = nys;
    np0.lo = np0.hi = NULL;
    int failed = P.nfailed;
    CHECK(plot_lines(&P, &np0) == 0, "plot_lines with all y NaN returns 0");
    CHECK(P.nfailed == failed, "and gnuplot did not fail (nfailed %d)", P.nfailed);
    check_drawn("empty", "NaN");
    CHECK(contains(path("empty", "gp"), "no data"), "the empty frame says 'no data'");
    double nanz[4] = {NAN, NAN, NAN, NAN};
    HeatPlot hz = {.name = "empty-heat", .nx = 2, .ny = 2, .xlabels = len, .ylabels = depth, .z = nanz, .zmin = 0, .zmax = 1};
    CHECK(plot_heatmap(&P, &hz) == 0 && P.nfailed == failed, "an all-missing heatmap is drawn too (nfailed %d)", P.nfailed);
    CHECK(png_ok(path("empty-heat", "png")), "its png exists");

    // edge cases gnuplot would warn about (a warning keeps the log): one point, a 1-row heatmap
    test_group("edge cases");
    double one_x = 1000, one_y = 0.5;
    const double *oxs[1] = {&one_x}, *oys[1] = {&one_y};
    int one = 1;
    LinePlot lone = {.name = "one-point", .nseries = 1, .series = names, .npts = &one, .x = oxs, .y = oys, .logx = 1,
                     .ymin = NAN, .ymax = NAN};
    CHECK(plot_lines(&P, &lone) == 0 && png_ok(path("one-point", "png")) && !exists(path("one-point", "log")),
          "a single point is drawn without warnings");
    HeatPlot hrow = hp;
    hrow.name = "heat-row";
    hrow.ny = 1;
    hrow.zmin = hrow.zmax = NAN;
    CHECK(plot_heatmap(&P, &hrow) == 0 && png_ok(path("heat-row", "png")) && !exists(path("heat-row", "log")),
          "a one-row heatmap with automatic colour range is drawn without warnings");
    CHECK(P.nfailed == failed, "nothing failed so far (nfailed %d)", P.nfailed);

    // gnuplot failing (a stand-in on PATH): counted, its log kept, the call still returns 0
    test_group("gnuplot failure");
    char fake[300], script[400], saved[8192];
    snprintf(saved, sizeof saved, "%s", getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
    const char *fakes[2] = {"echo \"fake gnuplot cannot draw $1\" >&2; exit 3", "exit 0"};
    for (int k = 0; k < 2; k++) {
        snprintf(fake, sizeof fake, "%s/fakebin%d", root, k);
        mkdir(fake, 0755);
        snprintf(script, sizeof script, "%s/gnuplot", fake);
        FILE *f = fopen(script, "w");
        fprintf(f, "#!/bin/sh\n[ \"$1\" = --version ] && exit 0\n%s\n", fakes[k]);
        fclose(f);
        chmod(script, 0755);
        setenv("PATH", fake, 1);
        Plots F;
        plot_init(&F, dir);
        CHECK(F.gnuplot_ok, "plot_init accepts the stand-in");
        LinePlot b = lp;
        b.name = "failing";
        CHECK(plot_lines(&F, &b) == 0 && F.nfailed == 1, "plot_lines returns 0 and counts the failure (nfailed %d)", F.nfailed);
        CHECK(contains(path("failing", "log"), k ? "hlab: gnuplot exited 0 but failing.png or failing.svg is missing"
                                                 : "fake gnuplot cannot draw failing.gp"),
              "the log is kept and says why");
        if (k == 0) CHECK(contains(path("failing", "log"), "hlab: gnuplot exited with status 3"), "with the exit status");
        setenv("PATH", saved, 1);
    }

    // reproducible: the same plot twice gives the same bytes
    test_group("reproducible");
    char *svg1 = slurp(path("loss", "svg"), NULL), *png1 = NULL;
    long n1 = 0, n2 = 0;
    png1 = slurp(path("loss", "png"), &n1);
    plot_lines(&P, &lp);
    char *svg2 = slurp(path("loss", "svg"), NULL), *png2 = slurp(path("loss", "png"), &n2);
    CHECK(svg1 && svg2 && !strcmp(svg1, svg2), "the svg is byte-identical when redrawn");
    CHECK(png1 && png2 && n1 == n2 && !memcmp(png1, png2, n1), "the png is byte-identical when redrawn");
    free(svg1); free(svg2); free(png1); free(png2);

    test_group("names");
    const char *badnames[] = {"../evil", "a b", "", ".hidden", "x/y", "semi;colon", NULL};
    for (int i = 0; i < 7; i++) {
        LinePlot b = lp;
        b.name = badnames[i];
        P.why[0] = 0;
        CHECK(plot_lines(&P, &b) == -1 && P.why[0], "name '%s' refused (%s)", badnames[i] ? badnames[i] : "(null)", P.why);
    }
    CHECK(!exists(path("semi;colon", "csv")), "and nothing written for it");

    // no gnuplot on PATH: the data and the script still, no images
    test_group("no gnuplot");
    char empty[300];
    snprintf(empty, sizeof empty, "%s/emptybin", root);
    mkdir(empty, 0755);
    setenv("PATH", empty, 1);
    Plots Q;
    snprintf(dir, sizeof dir, "%s/nognuplot", root);
    CHECK(plot_init(&Q, dir) == 0, "plot_init returns 0");
    CHECK(Q.gnuplot_ok == 0 && strstr(Q.why, "gnuplot"), "gnuplot_ok 0, why: %s", Q.why);
    CHECK(plot_lines(&Q, &lp) == 0, "plot_lines returns 0");
    CHECK(exists(path("loss", "csv")) && exists(path("loss", "gp")) && !exists(path("loss", "png")) && !exists(path("loss", "svg")),
          "csv and gp written, no png or svg");
    CHECK(Q.nfailed == 0, "not counted as a failure");
    setenv("PATH", saved, 1);

    test_group("palette");
    CHECK(strlen(plot_color(0)) == 7 && plot_color(0)[0] == '#' && !strcmp(plot_color(8), plot_color(0)) &&
          !strcmp(plot_color(-1), plot_color(7)), "colours are #rrggbb and cycle through 8");

    if (getenv("HLAB_KEEP_PLOTS")) printf("plots kept in %s\n", root);
    else nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return test_summary();
}
