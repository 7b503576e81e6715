// plot.h: plots for `hlab report`, drawn by gnuplot. Every plot NAME is four files in one
// directory: NAME.csv (its data, one header line), NAME.gp (the gnuplot script; it reads the csv by
// relative name, so `cd DIR && gnuplot NAME.gp` redraws it after an edit), and the images NAME.png
// (pngcairo) and NAME.svg. gnuplot is started without a shell; when it is missing the csv and gp
// are still written. A failed gnuplot run leaves NAME.log (its output) and is counted, not fatal.
#pragma once

typedef struct {
    char dir[4096];          // where the plot files go (created by plot_init if missing, like mkdir -p)
    int gnuplot_ok;          // plot_init: 1 if `gnuplot --version` could be started and exited 0
    char why[512];           // when gnuplot_ok is 0 (or a call returned -1): a one-line reason
    int nfailed;             // plots whose gnuplot run failed (the log file says why)
} Plots;
int plot_init(Plots *p, const char *dir);   // 0, or -1 if dir cannot be created (why filled)

// Lines, one per series, each with an optional shaded band (lo..hi) or error bars.
typedef struct {
    const char *name, *title, *xlabel, *ylabel;
    int logx, logy;             // log axes; points <= 0 on a log axis are not drawn
    int nseries;
    const char **series;        // legend titles (any text: the scripts quote it, enhanced text is off)
    const int *color;           // per series: index into the fixed palette (NULL: series order); so a variant keeps its colour across plots
    const int *npts;            // per series
    const double *const *x, *const *y;            // per series arrays of npts[s] values; NaN y = gap/missing (skip)
    const double *const *lo, *const *hi;          // NULL, or per series arrays (NULL entry = none for that series)
    int errorbars;              // 1: lo..hi drawn as error bars (yerrorlines); 0: as a translucent band under the line
    int xcategorical;           // 1: x values are positions 0..n-1 and xticlabels give their text (logx is then ignored)
    const char **xticlabels;    // when xcategorical: at least 1 + the largest x position entries
    double ymin, ymax;          // NaN: automatic
    const char *key_pos;        // NULL: "top right"; e.g. "bottom right", "outside right"
} LinePlot;
int plot_lines(Plots *p, const LinePlot *lp);   // 0 when the csv and gp were written (images made if gnuplot_ok), -1 on a write error

// A heatmap over two categorical axes, e.g. needle-in-a-haystack: x = context length, y = depth %.
typedef struct {
    const char *name, *title, *xlabel, *ylabel, *cblabel;
    int nx, ny;
    const char **xlabels, **ylabels;
    const double *z;            // ny*nx, z[j*nx + i] is the cell at x i, y j; NaN = missing (drawn grey, labelled "-")
    double zmin, zmax;          // colour range (0..1 for accuracy); NaN (or zmin >= zmax): automatic
    int reverse_y;              // 1: first y at the top (depth 0% on top, like the NIAH originals)
} HeatPlot;
int plot_heatmap(Plots *p, const HeatPlot *hp);

// Grouped bars with error bars: clusters along x, one bar per series inside each cluster. With
// stacked = 1, one bar per cluster instead, the series stacked on each other (sd is ignored, a
// NaN mean is a segment of 0): how a whole divides into parts.
typedef struct {
    const char *name, *title, *ylabel;
    int ngroups; const char **groups;     // cluster labels along x
    int nbars; const char **bars;         // legend titles, one per bar in a cluster
    const int *color;                     // per bar: palette index (NULL: bar order)
    const double *mean, *sd;              // ngroups*nbars, [g*nbars + b]; NaN mean = missing bar; sd NULL or NaN = no error bar
    double ymin, ymax;                    // NaN: automatic (but when all means are > 0, the axis starts at 0 unless ymin is given)
    int stacked;                          // 1: the bars of a cluster stacked into one
} BarPlot;
int plot_bars(Plots *p, const BarPlot *bp);

// The fixed palette, so report tables can show the same colours: "#rrggbb" for any i (cycles
// through 8 colour-blind-safe colours; negative i count from the end).
const char *plot_color(int i);
