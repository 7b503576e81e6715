// resume.h: training checkpoints on disk (where they go, what the data order was) and
// `hlab train --resume` (train_resume, declared in train.h). The training loop itself is in
// train.c; the file format in checkpoint.c.
#pragma once
#include "checkpoint.h"
#include "config.h"
#include "mixture.h"
#include <stddef.h>
#include <stdint.h>

// The absolute form of path, which need not exist yet. Returns 0, or -1 when it does not fit.
int resume_absolute_path(const char *path, char *out, size_t cap);
// Where run `run`'s training checkpoint goes: train.checkpoint_dir, or checkpoints/ next to the
// store at dbpath (NULL: no store); "" when there is neither. Returns 0, or -1 when it does not fit.
int resume_checkpoint_path(const Config *cfg, const char *dbpath, int64_t run, const char *identity, char *out, size_t cap);
// Removes PATH.tmp.* that a killed checkpoint writer left behind.
void resume_remove_temporaries(const char *path);
// The data plan's position (each phase's cursor and epoch of every task) into ts.
void resume_plan_position(const DataPlan *p, TrainState *ts);
// Replays a fresh plan's order to `steps` steps; it must reach the position ts recorded. Returns
// 0, or -1 with err.
int resume_replay_plan(DataPlan *p, long steps, int B, const TrainState *ts, char *err, size_t cap);
