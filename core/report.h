// report.h: `hlab report EXP.yaml [--db PATH] [--out DIR]` (report.c): the page a sweep ends
// with. It finds every run of the experiment in the store (by identity: config + seed), and
// writes DIR/report.md and DIR/report.html with the same content: a summary table per task
// (mean +- sd over seeds, best in bold, difference to the baseline, parameters, throughput,
// memory), the paper's claims next to what was measured, and gnuplot plots (loss and validation
// curves with a band over seeds, needle-in-a-haystack heatmaps, scores against each swept axis
// and against evaluation slices, grouped bars), each kept with its CSV data and script in
// DIR/plots/. DIR/runs.csv lists every run used. Default DIR: reports/EXPERIMENT_NAME.
#pragma once

typedef struct {
    const char *exp;   // the experiment file
    const char *db;    // the run store (NULL: the base config's store.db)
    const char *out;   // output directory (NULL: reports/NAME)
    int quiet;
} ReportOptions;

// Returns 0, 1 when the store has no finished run of the experiment, 2 for bad input.
int report_main(const ReportOptions *o);
