// experiment.h: experiment files (experiments/*.yaml): a base config, named variants, grid and
// zipped axes, seeds and a learning-rate axis, expanded into the list of runs a sweep trains.
//
//   name: ratio-ablation            # default: the file name without .yaml
//   base: ../configs/x.yaml         # relative to the experiment file
//   set: {train.steps: 2000}        # overrides for every run (dotted keys or nested maps)
//   variants:                       # named sets of overrides, in order (default: one, "base")
//     attention: {model.pattern: "**"}
//     hybrid: {}
//   grid: {data.mqar.num_kv_pairs: [16, 32]}      # Cartesian product of the axes
//   zip: {data.seq_len: [128, 256], data.mqar.num_kv_pairs: [8, 16]}   # advance together
//   seeds: [1, 2, 3]                # default: the base config's seed
//   lr: [1e-3, 3e-3]                # learning-rate axis; reports keep the best lr per variant
//   baseline: attention             # the variant others are compared with (default: the first)
//   description: "..."              # what the experiment asks (shown at the top of its report)
//   paper: "Jamba (arXiv 2403.19887), Table 4"    # where the claims come from
//   claims:                         # the paper's claims, checked by `hlab report` against the runs
//     - claim: "1:3 and 1:7 perform about the same"
//       check: "hybrid-1to3 ~ hybrid-1to7; hybrid-1to7 > attention"   # A > B: A better; A ~ B: tied
//       task: bytes                 # optional: the task whose headline metric is compared
//       metric: bpb                 # optional: another test metric (format_adherence, exact_match),
//                                   # or tokens_per_second, memory_mb, train_seconds
//       at: "data.seq_len=1024"     # optional: only the grid points whose label contains this
//
// Runs are expanded variant-major: variant x grid x zip x lr x seed, and each run's config is
// the base file with, in order, set, the variant, the grid point, the zip point, train.lr, seed.
#pragma once
#include "config.h"

typedef struct { char *key, *value; int line, col; } Override;

typedef struct {
    char *key;
    char **values; int nvalues;
    int line, col;
} Axis;

typedef struct {
    char *name;
    Override *ov; int nov;
    int line, col;
} Variant;

// One comparison of a claim: variant a is better than (op '>'), tied with ('~'), or better than or
// tied with ('g', written ">=") variant b.
typedef struct { int a, b; char op; } Comparison;

typedef struct {
    char *text, *check, *task, *metric;   // task, metric: NULL for the headline of every task
    char *at;                             // NULL, or only the points whose label contains it
    Comparison *cmp; int ncmp;
    int line, col;
} Claim;

typedef struct {
    char *path;                 // the experiment file
    char *name, *base, *baseline;
    Override *set; int nset;
    Variant *var; int nvar;
    Axis *grid; int ngrid;
    Axis *zip; int nzip;
    char **seeds; int nseeds;   // as text (empty: the base config's seed)
    char **lrs; int nlr;        // as text (empty: the base config's train.lr)
    char *description, *paper; // NULL when not given
    Claim *claims; int nclaims;
} Experiment;

typedef struct {
    int variant;                // index into Experiment.var
    char label[512];            // the run's point: "data.mqar.num_kv_pairs=16 lr=1e-3 seed=2"
    char point[512];            // the grid and zip part of the label (what lr and seeds are pooled over)
    int lr_index;               // into Experiment.lrs (0 without an lr axis)
    char **sets; int nsets;     // every override, "key=value", in order of application
    int *line, *col;            // where each override was written in the experiment file
    Config cfg;                 // the resolved config
    char identity[17];          // run_identity of cfg and its seed: how the store knows the run
} PlannedRun;

// Reads and checks an experiment file. Returns 0, or -1 with err as "FILE:LINE:COL: what".
int experiment_load(Experiment *e, const char *path, ConfError *err);
void experiment_free(Experiment *e);
// Expands every run and resolves its config (the base file + overrides); every config is
// checked (keys, types, ranges) before anything runs. Returns the number of runs, or -1 with an
// error located in the experiment file.
int experiment_expand(const Experiment *e, PlannedRun **runs, ConfError *err);
void experiment_free_runs(PlannedRun *runs, int n);
// experiment_load + experiment_expand, the error printed on stderr ("hlab: FILE:LINE:COL: ...").
// Returns the number of runs, or -1 (nothing to free).
int experiment_open(Experiment *e, const char *path, PlannedRun **runs);
