// report_data.h: what `hlab report` gathers from the store before writing anything (report.c),
// shared with the plot sections (report_plots.c). Internal to the report.
#pragma once
#include "experiment.h"
#include "plot.h"
#include "report_doc.h"
#include <stdint.h>

typedef struct { char task[48], split[8], metric[32]; char *slice; double value; } EvalRow;
typedef struct { long *step; double *value; int n; } Series;

typedef struct {
    int64_t id;                      // 0: not finished in the store
    char status[16], code[64], machine[400];
    double params_total, params_active, tps, mem_mb, train_s;
    EvalRow *ev; int nev;            // the scores at the end of training (evals.source = 'train')
    Series loss, valid_loss, valid_acc;
} RunData;

typedef struct {
    int variant, point;              // point: index into Report.points
    int best_lr;                     // lr index chosen on mean validation score (0 without an lr axis)
    int *runs; int nruns;            // finished runs of the group at best_lr (plan indices)
    int nplanned;                    // planned runs at best_lr
} Group;

typedef struct {
    char name[48], metric[16];       // the headline: bpb (lower is better) or accuracy
    int lower, has_adherence;
} TaskInfo;

typedef struct { double mean, sd; int n; } Stat;

typedef struct {
    const Experiment *e;
    const PlannedRun *plan; int nplan;
    RunData *run;                    // per planned run
    char **points; int npoints;      // distinct grid/zip points in plan order ("" when none)
    Group *g; int ng;
    TaskInfo *task; int ntask;
    const char *db;
    Plots plots;
    Doc doc;
    int nplots;
    char **verdict;                  // per claim, for the terminal ("agrees", "inconclusive" ...)
} Report;

// The value of a run's end-of-training evaluation (NaN when absent); slice NULL means "{}".
double run_eval(const RunData *r, const char *task, const char *split, const char *metric, const char *slice);
// mean, sd (n-1) and n of the finite values of v[0..n)
Stat stat_of(const double *v, int n);
// mean, sd (n-1) and n over the group's finished runs of get(run) (NaN values skipped).
Stat group_stat(const Report *R, const Group *g, const char *task, const char *split, const char *metric);
// The group of (variant, point), or NULL.
const Group *group_of(const Report *R, int variant, int point);
// Writes the plots of the report and their places in the document (report_plots.c).
void report_task_plots(Report *R, const TaskInfo *t);
void report_curves(Report *R);
void report_axis_plots(Report *R);
