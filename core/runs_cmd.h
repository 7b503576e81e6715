// runs_cmd.h: `hlab runs`, `hlab export` and `hlab merge` (runs_cmd.c).
#pragma once

typedef struct {
    const char *db;                   // NULL: results/hlab.db
    const char *experiment, *variant, *status;
    char **where; int nwhere;         // "KEY<op>VALUE" filters on the resolved config
} RunsOptions;

int runs_main(const RunsOptions *o);
// what: "runs", "metrics" or "evals"; out NULL writes to stdout.
int export_main(const RunsOptions *o, const char *what, const char *out);
int merge_main(const char *const *inputs, int n, const char *out);
