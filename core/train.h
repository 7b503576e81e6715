// train.h: `hlab train` and the evaluation it runs.
#pragma once
#include "model.h"
#include "task.h"

typedef struct {
    const char *db;          // run store path (NULL: the config's store.db; "" or "none": no store)
    const char *init;        // start from this checkpoint's weights (NULL: random init)
    const char *out;         // write the final weights here (NULL: the config's train.checkpoint)
    const char *experiment;  // sweep bookkeeping ("" for a plain run)
    const char *variant;
    int quiet;
} TrainOptions;

// Trains the model the config describes and records the run. Returns an exit status.
int train_main(const Config *cfg, const TrainOptions *o);

typedef struct { double loss, accuracy; long labels, correct, examples; } EvalResult;
// Evaluates a model (allocated for batches of B x T) on one split of a task.
EvalResult evaluate(Model *m, const Task *task, void *st, int split, long max_examples, int *tok, int *tgt);
