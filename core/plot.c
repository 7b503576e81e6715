// plot.c: the plots of `hlab report` as gnuplot scripts (see plot.h).
//
// Why scripts and csv files instead of drawing ourselves: the user gets publication plots they can
// restyle by editing NAME.gp and rerunning gnuplot, and the data of every plot is a plain table.
// So the scripts read the csv by relative name (never inline data), use no time stamps (a report
// is reproducible byte for byte), and gnuplot is spawned without a shell (names and titles never
// pass through one). Text from the caller goes into single-quoted gnuplot strings, where only a
// quote needs escaping, and the terminals are `noenhanced` so '_' and '^' in variant names print
// as themselves.
#include "plot.h"
#include "common.h"
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

// Okabe-Ito, without its yellow (illegible as a line on white) and with a mid grey instead.
static const char *const palette[] = {"#0072B2", "#E69F00", "#009E73", "#D55E00",
                                      "#CC79A7", "#56B4E9", "#000000", "#7F7F7F"};
enum { NPAL = sizeof palette / sizeof palette[0] };

const char *plot_color(int i) {
    i %= NPAL;
    return palette[i < 0 ? i + NPAL : i];
}

__attribute__((format(printf, 2, 3))) static void set_why(Plots *p, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->why, sizeof p->why, fmt, ap);
    va_end(ap);
}

// Runs argv[0], found on PATH, in dir (NULL: here) with stdin from /dev/null and stdout and stderr
// into the file out (relative to dir). Returns its exit status, 256 + the signal that killed it,
// or -errno when it could not be started (-ENOENT: not on PATH).
static int run(const char *dir, char *const argv[], const char *out) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (dir) posix_spawn_file_actions_addchdir_np(&fa, dir);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    int err = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (err) return -err;
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return -errno;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 256 + WTERMSIG(st);
}

int plot_init(Plots *p, const char *dir) {
    memset(p, 0, sizeof *p);
    if (!dir || !*dir || strlen(dir) >= sizeof p->dir) {
        set_why(p, "plot directory name is empty or too long; tables are written without plots");
        return -1;
    }
    strcpy(p->dir, dir);
    int err = mkdir_p(dir);
    if (err) {
        set_why(p, "cannot create the plot directory %.400s: %s", dir, strerror(err));
        return -1;
    }
    char *argv[] = {"gnuplot", "--version", NULL};
    int rc = run(NULL, argv, "/dev/null");
    p->gnuplot_ok = rc == 0;
    if (rc == -ENOENT)
        set_why(p, "gnuplot not found on PATH: install it (apt-get install gnuplot-nox); tables are written without plots");
    else if (rc < 0)
        set_why(p, "gnuplot could not be started: %s; tables are written without plots", strerror(-rc));
    else if (rc > 0)
        set_why(p, "`gnuplot --version` %s %d; tables are written without plots", rc > 256 ? "was killed by signal" : "exited with status",
                rc > 256 ? rc - 256 : rc);
    return 0;
}

// Plot names become file names in p->dir and words in scripts: keep them to letters, digits, -_.
static int name_ok(Plots *p, const char *name) {
    int ok = name && *name && name[0] != '.' && strlen(name) <= 200;
    for (const char *s = name; ok && *s; s++)
        ok = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.';
    if (!ok) set_why(p, "bad plot name '%.200s': use letters, digits, '-', '_' and '.' (not first)", name ? name : "(null)");
    return ok;
}

// ---------------------------------------------------------------------------------------------
// output files: written under a temporary name and renamed, so a reader never sees half a file

typedef struct { FILE *f; char path[4400], tmp[4410]; } Out;

static int out_open(Plots *p, Out *o, const char *name, const char *ext) {
    snprintf(o->path, sizeof o->path, "%s/%s.%s", p->dir, name, ext);
    snprintf(o->tmp, sizeof o->tmp, "%s.tmp", o->path);
    o->f = fopen(o->tmp, "w");
    if (!o->f) set_why(p, "cannot write %.400s: %s", o->tmp, strerror(errno));
    return o->f ? 0 : -1;
}

static int out_close(Plots *p, Out *o) {
    errno = 0;
    int bad = ferror(o->f);
    bad |= fclose(o->f) != 0;
    if (!bad && rename(o->tmp, o->path) == 0) return 0;
    set_why(p, "cannot write %.400s: %s", o->path, strerror(errno ? errno : EIO));
    unlink(o->tmp);
    return -1;
}

// A gnuplot string literal: in single quotes everything is literal but the quote itself (doubled).
// Tic labels are also printf formats to gnuplot, so there '%' is doubled too ("50%" would fail).
static void gp_text(FILE *f, const char *s, int tic) {
    fputc('\'', f);
    for (; s && *s; s++) {
        if (*s == '\'' || (tic && *s == '%')) fputc(*s, f);
        fputc((unsigned char)*s < ' ' ? ' ' : *s, f);
    }
    fputc('\'', f);
}
static void gp_str(FILE *f, const char *s) { gp_text(f, s, 0); }

// Text in a '#' comment line (of the csv or the script): one line.
static void comment_text(FILE *f, const char *s) {
    for (; s && *s; s++) fputc((unsigned char)*s < ' ' ? ' ' : *s, f);
}

// A csv text field, quoted when it has to be. Text fields always come after the numeric columns
// gnuplot reads, so how gnuplot splits them cannot shift a column.
static void csv_str(FILE *f, const char *s) {
    if (!s) s = "";
    int q = strpbrk(s, ",\"") || *s == ' ' || (*s && s[strlen(s) - 1] == ' ');
    if (q) fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc((unsigned char)*s < ' ' ? ' ' : *s, f);
    }
    if (q) fputc('"', f);
}

// Numbers: 9 significant digits; anything not finite is "NaN", which gnuplot reads as undefined.
static void csv_num(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, ",%.9g", v);
    else fputs(",NaN", f);
}

// The top of every script: what it is, how to redraw it, the common style.
static void gp_begin(FILE *f, const char *name, const char *what, const char *title, const char *columns) {
    fprintf(f, "# %s.gp: %s", name, what);
    if (title && *title) { fputs(": ", f); comment_text(f, title); }
    fprintf(f, "\n# Redraw after editing: run `gnuplot %s.gp` in this directory; it writes %s.png and %s.svg.\n"
               "# Data: %s.csv (%s).\n\n",
            name, name, name, name, columns);
    fputs("set encoding utf8\nset datafile separator comma\n", f);
    // the png terminal first, so that text sizes below are measured in it; the svg is a replot
    fputs("set terminal pngcairo size 900,560 font 'sans,11' noenhanced\n", f);
    if (title && *title) { fputs("set title ", f); gp_str(f, title); fputc('\n', f); }
}

static void gp_label(FILE *f, const char *axis, const char *text) {
    if (!text || !*text) return;
    fprintf(f, "set %slabel ", axis);
    gp_str(f, text);
    fputc('\n', f);
}

// Explicit tic labels at positions 0..n-1 (categorical axes). x labels are turned by 45 degrees
// when they would not fit side by side (~7 px per character), and labels are thinned out when
// even so they would overlap (~20 px apart turned, ~16 px on y).
static void gp_tics(FILE *f, const char *axis, const char *const *labels, int n, double px) {
    int maxlen = 0;
    for (int i = 0; i < n; i++) {
        int len = labels && labels[i] ? (int)strlen(labels[i]) : 0;
        if (len > maxlen) maxlen = len;
    }
    int x = axis[0] == 'x', rotate = x && maxlen * 7.0 > px / n;
    int step = rotate ? (int)ceil(n * 20.0 / px) : x ? 1 : (int)ceil(n * 16.0 / px);
    if (step < 1) step = 1;
    // a turned first label hangs left of the plot: make room for it (margins are in characters)
    int first = labels && labels[0] ? (int)strlen(labels[0]) : 0;
    if (rotate && first * 0.75 > 10) fprintf(f, "set lmargin %d\n", (int)(first * 0.75) + 2);
    fprintf(f, "set %stics scale 0%s (", axis, rotate ? " rotate by 45 right" : "");
    for (int i = 0; i < n; i += step) {
        if (i) fputs(", \\\n    ", f);
        if (labels && labels[i]) gp_text(f, labels[i], 1);
        else fprintf(f, "'%d'", i);
        fprintf(f, " %d", i);
    }
    fputs(")\n", f);
}

// A range around a single value: gnuplot warns about an empty range (and the warning keeps a log).
static void gp_pad(FILE *f, const char *axis, double v, int log) {
    double d = v != 0 ? fabs(v) * 0.5 : 1;
    if (log) fprintf(f, "set %srange [%.9g:%.9g]\n", axis, v / 2, v * 2);
    else fprintf(f, "set %srange [%.9g:%.9g]\n", axis, v - d, v + d);
}

static void widen(double r[2], double v) {
    if (v < r[0]) r[0] = v;
    if (v > r[1]) r[1] = v;
}

static void gp_range(FILE *f, const char *axis, double lo, double hi) {
    if (!isfinite(lo) && !isfinite(hi)) return;
    fprintf(f, "set %srange [", axis);
    if (isfinite(lo)) fprintf(f, "%.9g", lo); else fputc('*', f);
    fputc(':', f);
    if (isfinite(hi)) fprintf(f, "%.9g", hi); else fputc('*', f);
    fputs("]\n", f);
}

// When nothing can be drawn gnuplot would fail ("all points undefined"): an empty frame that
// says so instead, so the report still has its figure.
static void gp_nodata(FILE *f, const char *name) {
    fprintf(f, "\n# no finite values to draw: an empty frame\nunset logscale\nset xrange [0:1]\nset yrange [0:1]\n"
               "set label 1 'no data' at graph 0.5, graph 0.5 center\nset output '%s.png'\nplot NaN notitle\n", name);
}

static void gp_end(FILE *f, const char *name) {
    fprintf(f, "\nset terminal svg size 900,560 dynamic noenhanced font 'sans,11'\nset output '%s.svg'\nreplot\nunset output\n", name);
}

static int nonempty(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && st.st_size > 0;
}

// Runs gnuplot on NAME.gp in p->dir (when there is one). Failures are counted, not returned: the
// report goes on, and NAME.log keeps gnuplot's words plus ours.
static void draw(Plots *p, const char *name) {
    char png[4400], svg[4400], logpath[4400], gp[256], log[256];
    snprintf(png, sizeof png, "%s/%s.png", p->dir, name);
    snprintf(svg, sizeof svg, "%s/%s.svg", p->dir, name);
    snprintf(logpath, sizeof logpath, "%s/%s.log", p->dir, name);
    snprintf(gp, sizeof gp, "%s.gp", name);   // gnuplot runs in p->dir: relative names
    snprintf(log, sizeof log, "%s.log", name);
    unlink(png);   // a stale image from an earlier report must not pass for this one
    unlink(svg);
    unlink(logpath);
    if (!p->gnuplot_ok) return;
    char *argv[] = {"gnuplot", gp, NULL};
    int rc = run(p->dir, argv, log);
    int ok = rc == 0 && nonempty(png) && nonempty(svg);
    if (!ok) {
        p->nfailed++;
        FILE *f = fopen(logpath, "a");
        if (f) {
            if (rc < 0) fprintf(f, "hlab: could not start gnuplot: %s\n", strerror(-rc));
            else if (rc > 256) fprintf(f, "hlab: gnuplot was killed by signal %d\n", rc - 256);
            else if (rc > 0) fprintf(f, "hlab: gnuplot exited with status %d\n", rc);
            else fprintf(f, "hlab: gnuplot exited 0 but %s.png or %s.svg is missing or empty\n", name, name);
            fclose(f);
        }
    } else if (!nonempty(logpath)) unlink(logpath);   // warnings, when there are any, stay
}

// key_pos goes into the script as gnuplot words: allow only those (letters, digits, spaces, , .).
static const char *key_words(const char *k) {
    if (!k || !*k) return "top right";
    for (const char *s = k; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || strchr(" ,.-", *s)))
            return "top right";
    return k;
}

// ---------------------------------------------------------------------------------------------
// lines

int plot_lines(Plots *p, const LinePlot *lp) {
    if (!name_ok(p, lp->name)) return -1;
    int ns = lp->nseries > 0 ? lp->nseries : 0;
    if (ns && (!lp->npts || !lp->x || !lp->y)) {
        set_why(p, "plot %s: npts, x and y are required", lp->name);
        return -1;
    }
    int cat = lp->xcategorical, logx = lp->logx && !cat, logy = lp->logy;
    // what each series can draw: points with finite x and y (positive on a log axis), and a band
    // or error bars when it has lo and hi
    int *npt = xcalloc(ns + 1, sizeof(int)), *nband = xcalloc(ns + 1, sizeof(int)), nlab = 0, ndraw = 0;
    double xr[2] = {INFINITY, -INFINITY}, yr[2] = {INFINITY, -INFINITY};   // what is drawn
    for (int s = 0; s < ns; s++) {
        const double *lo = lp->lo ? lp->lo[s] : NULL, *hi = lp->hi ? lp->hi[s] : NULL;
        for (int i = 0; i < lp->npts[s]; i++) {
            double x = lp->x[s][i], y = lp->y[s][i];
            if (!isfinite(x) || (logx && x <= 0)) continue;
            if (cat && x >= 0 && x < 100000 && (int)x + 1 > nlab) nlab = (int)x + 1;
            if (isfinite(y) && (!logy || y > 0)) { npt[s]++; widen(xr, x); widen(yr, y); }
            if (lo && hi && isfinite(lo[i]) && isfinite(hi[i]) && (!logy || lo[i] > 0)) { nband[s]++; widen(yr, lo[i]); widen(yr, hi[i]); }
        }
        ndraw += npt[s] > 0;
    }
    int withlab = cat && lp->xticlabels;
    Out o;
    int rc = out_open(p, &o, lp->name, "csv");
    if (rc) goto done;
    // one block per series, separated by two blank lines, so that `index s` selects series s
    fprintf(o.f, "series,x,y,lo,hi%s\n", withlab ? ",xlabel" : "");
    for (int s = 0; s < ns; s++) {
        const double *lo = lp->lo ? lp->lo[s] : NULL, *hi = lp->hi ? lp->hi[s] : NULL;
        if (s) fputs("\n\n", o.f);
        fprintf(o.f, "# series %d: ", s);
        comment_text(o.f, lp->series ? lp->series[s] : "");
        fputc('\n', o.f);
        if (lp->npts[s] <= 0) fprintf(o.f, "%d,NaN,NaN,NaN,NaN%s\n", s, withlab ? "," : "");   // an empty block would renumber the next ones
        for (int i = 0; i < lp->npts[s]; i++) {
            double x = lp->x[s][i];
            fprintf(o.f, "%d", s);
            csv_num(o.f, x);
            csv_num(o.f, lp->y[s][i]);
            csv_num(o.f, lo ? lo[i] : NAN);
            csv_num(o.f, hi ? hi[i] : NAN);
            if (withlab) {
                fputc(',', o.f);
                if (isfinite(x) && x >= 0 && x < nlab) csv_str(o.f, lp->xticlabels[(int)x]);
            }
            fputc('\n', o.f);
        }
    }
    if ((rc = out_close(p, &o))) goto done;

    if ((rc = out_open(p, &o, lp->name, "gp"))) goto done;
    FILE *f = o.f;
    gp_begin(f, lp->name, lp->errorbars ? "lines with error bars" : "lines with bands", lp->title,
             "columns series,x,y,lo,hi; one block per series, `index s` selects series s");
    gp_label(f, "x", lp->xlabel);
    gp_label(f, "y", lp->ylabel);
    fprintf(f, "set key %s\nset border 3\nset tics nomirror\nset grid back lt 1 lc rgb '#E6E6E6'\n", key_words(lp->key_pos));
    if (cat && nlab) {
        fprintf(f, "set xrange [-0.5:%d.5]\n", nlab - 1);
        gp_tics(f, "x", lp->xticlabels, nlab, 780);
    } else if (ndraw && xr[0] < xr[1]) {
        // a little room left and right so end points and error bars are not cut by the border
        fputs("set autoscale xfix\nset offsets graph 0.03, graph 0.03, 0, 0\n", f);
    } else if (ndraw) gp_pad(f, "x", xr[0], logx);
    if (logx) {
        // few distinct x values (lengths, widths): a tic at each, else a log axis may label one
        double xs[16];
        int nx = 0;
        for (int s = 0; s < ns && nx <= 12; s++)
            for (int i = 0; i < lp->npts[s] && nx <= 12; i++) {
                double x = lp->x[s][i];
                int seen = !isfinite(x) || x <= 0;
                for (int k = 0; k < nx && !seen; k++) seen = xs[k] == x;
                if (!seen) xs[nx++] = x;
            }
        fputs("set logscale x\n", f);
        if (nx <= 12) {
            fputs("set xtics (", f);
            for (int k = 0; k < nx; k++) fprintf(f, "%s%.9g", k ? ", " : "", xs[k]);
            fputs(")\n", f);
        }
    }
    if (logy) fputs("set logscale y\n", f);
    if (ndraw && yr[0] == yr[1] && !isfinite(lp->ymin) && !isfinite(lp->ymax)) gp_pad(f, "y", yr[0], logy);
    else gp_range(f, "y", lp->ymin, lp->ymax);
    if (!ndraw) gp_nodata(f, lp->name);
    else {
        for (int s = 0; s < ns; s++)
            if (!npt[s]) {
                fprintf(f, "# series %d (", s);
                comment_text(f, lp->series ? lp->series[s] : "");
                fputs(") has no points to draw\n", f);
            }
        fprintf(f, "set output '%s.png'\n", lp->name);
        fputs("plot \\\n", f);
        int nclause = 0;
        // bands first, so that no band covers another series' line
        for (int pass = 0; pass < 2; pass++)
            for (int s = 0; s < ns; s++) {
                const char *c = plot_color(lp->color ? lp->color[s] : s);
                if (!npt[s] || (pass == 0 && (lp->errorbars || !nband[s]))) continue;
                fprintf(f, "%s    '%s.csv' index %d ", nclause++ ? ", \\\n" : "", lp->name, s);
                if (pass == 0) fprintf(f, "using 2:4:5 with filledcurves fs transparent solid 0.2 noborder lc rgb '%s' notitle", c);
                else {
                    if (lp->errorbars && nband[s])   // a point without lo/hi keeps its line and marker
                        fprintf(f, "using 2:3:(valid(4) ? $4 : $3):(valid(5) ? $5 : $3) with yerrorlines");
                    else fputs("using 2:3 with linespoints", f);
                    fprintf(f, " lc rgb '%s' lw 2 pt 7 ps 0.6 title ", c);
                    gp_str(f, lp->series && lp->series[s] ? lp->series[s] : "");
                }
            }
        fputc('\n', f);
    }
    gp_end(f, lp->name);
    if ((rc = out_close(p, &o))) goto done;
    draw(p, lp->name);
done:
    free(npt);
    free(nband);
    return rc;
}

// ---------------------------------------------------------------------------------------------
// heatmap

int plot_heatmap(Plots *p, const HeatPlot *hp) {
    if (!name_ok(p, hp->name)) return -1;
    int nx = hp->nx > 0 ? hp->nx : 0, ny = hp->ny > 0 ? hp->ny : 0, nfinite = 0;
    double zr[2] = {INFINITY, -INFINITY};
    if (nx > 0 && ny > 0 && !hp->z) {
        set_why(p, "plot %s: z is required", hp->name);
        return -1;
    }
    for (int k = 0; k < nx * ny; k++)
        if (isfinite(hp->z[k])) { nfinite++; widen(zr, hp->z[k]); }
    // long format, one row per cell (a gnuplot `matrix` would warn about every missing cell);
    // the labels come last so the numeric columns stay where the script expects them
    Out o;
    if (out_open(p, &o, hp->name, "csv")) return -1;
    fputs("x,y,value,", o.f);
    csv_str(o.f, hp->xlabel && *hp->xlabel ? hp->xlabel : "xlabel");
    fputc(',', o.f);
    csv_str(o.f, hp->ylabel && *hp->ylabel ? hp->ylabel : "ylabel");
    fputc('\n', o.f);
    for (int j = 0; j < ny; j++)
        for (int i = 0; i < nx; i++) {
            fprintf(o.f, "%d,%d", i, j);
            csv_num(o.f, hp->z[j * nx + i]);
            fputc(',', o.f);
            csv_str(o.f, hp->xlabels ? hp->xlabels[i] : NULL);
            fputc(',', o.f);
            csv_str(o.f, hp->ylabels ? hp->ylabels[j] : NULL);
            fputc('\n', o.f);
        }
    if (out_close(p, &o)) return -1;

    if (out_open(p, &o, hp->name, "gp")) return -1;
    FILE *f = o.f;
    gp_begin(f, hp->name, "heatmap", hp->title, "columns x,y,value and the labels of x and y; one row per cell");
    gp_label(f, "x", hp->xlabel);
    gp_label(f, "y", hp->ylabel);
    gp_label(f, "cb", hp->cblabel);
    if (!nfinite) gp_nodata(f, hp->name);
    else {
        fputs("set palette defined (0 '#F0496E', 0.5 '#EBB839', 1 '#0CD79F')\n", f);
        int autoz = !(isfinite(hp->zmin) && isfinite(hp->zmax) && hp->zmin < hp->zmax);
        if (!autoz) fprintf(f, "set cbrange [%.9g:%.9g]\n", hp->zmin, hp->zmax);
        else if (zr[0] == zr[1]) gp_pad(f, "cb", zr[0], 0);
        fprintf(f, "set xrange [-0.5:%d.5]\n", nx - 1);
        if (hp->reverse_y) fprintf(f, "set yrange [%d.5:-0.5]\n", ny - 1);
        else fprintf(f, "set yrange [-0.5:%d.5]\n", ny - 1);
        gp_tics(f, "x", hp->xlabels, nx, 700);
        gp_tics(f, "y", hp->ylabels, ny, 420);
        fputs("set tics out nomirror\n", f);
        fputs("# missing cells are not drawn by `with image`: this grey shows through them\n"
              "set object 1 rectangle from graph 0, graph 0 to graph 1, graph 1 behind fillcolor rgb '#D9D9D9' fillstyle solid noborder\n", f);
        // each cell's value as text, as large as the cell allows (~700x420 px of plot area)
        double w = 700.0 / nx, h = 420.0 / ny, pt = fmin(10, fmin(w / 3.2, h / 1.6));
        // two decimals suit accuracies; other scales get 3 significant digits
        double big = autoz ? fmax(fabs(zr[0]), fabs(zr[1])) : fmax(fabs(hp->zmin), fabs(hp->zmax));
        int wide = big > 10 || big < 0.1;
        fprintf(f, "set output '%s.png'\nplot '%s.csv' ", hp->name, hp->name);
        // `with image` needs a grid of at least 2 x 2; a single row or column is drawn as boxes
        if (nx >= 2 && ny >= 2) fputs("using 1:2:3 with image pixels notitle", f);
        else fputs("using 1:2:(0.5):(0.5):3 with boxxyerror fc palette fs solid 1 noborder notitle", f);
        if (pt >= 6)
            fprintf(f, ", \\\n    '%s.csv' using 1:2:(valid(3) ? sprintf('%s', $3) : '-') with labels font ',%d' tc rgb 'black' notitle",
                    hp->name, wide ? "%.3g" : "%.2f", (int)pt);
        fputc('\n', f);
        if (pt < 6) fputs("# (cells too small for their values as text)\n", f);
    }
    gp_end(f, hp->name);
    if (out_close(p, &o)) return -1;
    draw(p, hp->name);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// grouped bars

int plot_bars(Plots *p, const BarPlot *bp) {
    if (!name_ok(p, bp->name)) return -1;
    int ng = bp->ngroups > 0 ? bp->ngroups : 0, nb = bp->nbars > 0 ? bp->nbars : 0, nfinite = 0, allpos = 1;
    if (ng > 0 && nb > 0 && !bp->mean) {
        set_why(p, "plot %s: mean is required", bp->name);
        return -1;
    }
    for (int k = 0; k < ng * nb; k++)
        if (isfinite(bp->mean[k])) { nfinite++; allpos &= bp->mean[k] > 0; }
    // one row per cluster: mean and sd of each bar, then the cluster's label
    Out o;
    if (out_open(p, &o, bp->name, "csv")) return -1;
    fputs("group", o.f);
    for (int b = 0; b < nb; b++) {
        char col[400];
        const char *t = bp->bars && bp->bars[b] ? bp->bars[b] : "";
        snprintf(col, sizeof col, "%s mean", t);
        fputc(',', o.f); csv_str(o.f, col);
        snprintf(col, sizeof col, "%s sd", t);
        fputc(',', o.f); csv_str(o.f, col);
    }
    fputs(",label\n", o.f);
    for (int g = 0; g < ng; g++) {
        fprintf(o.f, "%d", g);
        for (int b = 0; b < nb; b++) {
            csv_num(o.f, bp->mean[g * nb + b]);
            csv_num(o.f, bp->sd ? bp->sd[g * nb + b] : NAN);
        }
        fputc(',', o.f);
        csv_str(o.f, bp->groups ? bp->groups[g] : NULL);
        fputc('\n', o.f);
    }
    if (out_close(p, &o)) return -1;

    if (out_open(p, &o, bp->name, "gp")) return -1;
    FILE *f = o.f;
    gp_begin(f, bp->name, bp->stacked ? "stacked bars" : "grouped bars", bp->title,
             "one row per cluster: group, then mean and sd of each bar (columns 2,3 for the first), label");
    gp_label(f, "y", bp->ylabel);
    double ymin = bp->ymin;
    if (!isfinite(ymin) && nfinite && allpos) ymin = 0;
    if (!nfinite) gp_nodata(f, bp->name);
    else {
        fputs(bp->stacked ? "set style data histograms\nset style histogram rowstacked\nset boxwidth 0.7\n"
                          : "set style data histograms\nset style histogram errorbars gap 1 lw 1\n", f);
        fputs("set style fill solid 0.8 border -1\n"
              "set key outside bottom center horizontal\nset border 3\nset ytics nomirror\nset grid ytics back lt 1 lc rgb '#E6E6E6'\n", f);
        fprintf(f, "set xrange [-0.5:%d.5]\n", ng - 1);
        gp_tics(f, "x", bp->groups, ng, 780);
        gp_range(f, "y", ymin, bp->ymax);
        fputs("# a missing sd draws an error bar of length 0 (hidden by the bar's top)\nsd(c) = valid(c) ? column(c) : 0\n", f);
        // `skip 1`: in a histogram the header line would otherwise take the first cluster's place
        fprintf(f, "set output '%s.png'\nplot \\\n", bp->name);
        for (int b = 0; b < nb; b++) {
            if (bp->stacked)   // a missing segment is 0 high, so the ones above it keep their place
                fprintf(f, "%s    '%s.csv' skip 1 using (valid(%d) ? column(%d) : 0) lc rgb '%s' title ", b ? ", \\\n" : "", bp->name,
                        2 + 2 * b, 2 + 2 * b, plot_color(bp->color ? bp->color[b] : b));
            else
                fprintf(f, "%s    '%s.csv' skip 1 using %d:(sd(%d)) lc rgb '%s' title ", b ? ", \\\n" : "", bp->name, 2 + 2 * b,
                        3 + 2 * b, plot_color(bp->color ? bp->color[b] : b));
            gp_str(f, bp->bars && bp->bars[b] ? bp->bars[b] : "");
        }
        fputc('\n', f);
    }
    gp_end(f, bp->name);
    if (out_close(p, &o)) return -1;
    draw(p, bp->name);
    return 0;
}
