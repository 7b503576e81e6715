// mixture.h: what the training loop draws its examples from, and what it evaluates.
//
// Training data is a weighted mixture of tasks (data.mix, or data.task alone) and runs in up to
// PHASE_MAX phases (phase1 .. phase4), each a fraction of the steps with its own overrides of the
// data settings (another mixture, shorter sequences first: a curriculum) and, if it sets any
// learning-rate key, its own schedule over its own steps (an annealing phase). Evaluation always
// uses the base config's settings, for every task any phase trains on: phases change what the
// model sees, never what it is scored on.
#pragma once
#include "optim.h"
#include "task.h"

#define MIX_MAX 8
#define PHASE_MAX 4

typedef struct {
    int n;
    const Task *task[MIX_MAX];
    void *st[MIX_MAX];
    int owned[MIX_MAX];        // this mixture opened st[i] (and closes it)
    double cum[MIX_MAX];       // cumulative normalised weights
    long size[MIX_MAX];        // training examples of each task
    long *perm[MIX_MAX];       // each task's order for its current epoch
    long cursor[MIX_MAX], epoch[MIX_MAX];
    uint64_t seed[MIX_MAX];    // each task's data-order seed
} Mixture;

typedef struct {
    Config cfg;                // the base config with this phase's overrides
    int derived;               // cfg is a derived copy (else it aliases the base config)
    Mixture mix;
    long first, steps;         // its global step range [first, first + steps)
    int own_schedule;          // the phase set a learning-rate key: sched runs over its own steps
    Schedule sched;
} Phase;

typedef struct {
    int nphases;               // 1 when no phase is configured
    Phase phase[PHASE_MAX];
    Mixture eval;              // every task trained on, opened with the base config
    long steps;                // total optimizer steps
    int max_len, max_labels;   // over every example any phase or evaluation can produce
    uint64_t data_seed;
} DataPlan;

// The tasks of the config's mixture (data.mix, or data.task alone), opened for evaluation only.
int mixture_open_eval(Mixture *m, const Config *c, ConfError *err);
void mixture_close(Mixture *m);
// Raises *max_len and *max_labels to the longest example and the most labels any task of m has.
void mixture_extent(const Mixture *m, int *max_len, int *max_labels);

// Opens every phase's tasks and the evaluation tasks, validates the phase keys and works out the
// step ranges (train.steps, or train.epochs over the base mixture's training sets, batch B).
// Returns 0, or -1 with err naming the key at fault.
int plan_open(DataPlan *p, const Config *cfg, int B, uint64_t data_seed, ConfError *err);
void plan_close(DataPlan *p);
// The phase that owns a step.
const Phase *plan_phase(const DataPlan *p, long step);
// The examples of training step `step`: for each of the B slots, its task, task state and
// training-example index. Deterministic in (data seed, step).
void plan_batch(DataPlan *p, long step, int B, const Task **task, void **st, long *idx);
// The learning rate at a step (the global schedule, or the phase's own).
double plan_lr(const DataPlan *p, const Schedule *global, long step);
