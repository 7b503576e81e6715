// eval_cmd.h: `hlab eval`, scoring a trained model on any task and grid (see eval_cmd.c).
#pragma once

typedef struct {
    const char *target;      // a checkpoint file, or a run id of the store
    const char *db;          // run store (NULL: the run id's default store, or the checkpoint config's store.db)
    const char *task;        // evaluate this task instead of the trained mixture (NULL: as trained)
    char **sets; int nsets;  // data.* and eval.* overrides (the grid)
    const char *split;       // "test" (default), "valid" or "all"
    int quiet;
} EvalOptions;

// Returns an exit status (2 for bad input, with the reason on stderr).
int eval_main(const EvalOptions *o);
