// train.h: `hlab train` and the evaluation it runs.
#pragma once
#include "machine.h"
#include "model.h"
#include "store.h"
#include "task.h"
#include <stdint.h>

typedef struct {
    const char *db;          // run store path (NULL: the config's store.db; "" or "none": no store)
    const char *init;        // start from this checkpoint's weights (NULL: random init)
    const char *out;         // write the final weights here (NULL: the config's train.checkpoint)
    const char *experiment;  // sweep bookkeeping ("" for a plain run)
    const char *variant;
    int quiet;
    int64_t run_id;          // > 0: record into this run, already claimed (a sweep); 0: create one
    const char *resume;      // continue from this training checkpoint (NULL: a fresh start)
    double bucket_mb;        // MPI: gradient all-reduce bucket in MB (0: one after backward; < 0: default)
    int resume_fallback;     // a checkpoint that cannot be used means starting over (the sweep),
                             // not an error
    // called at every log step (a sweep's progress display); NULL for none
    void (*progress)(void *ctx, long step, long steps, double loss, double seconds);
    void *progress_ctx;
} TrainOptions;

// The identity of a run: hash of its canonical config and seed, plus origin ("" for a trained
// run; an imported checkpoint's path). A sweep skips a run whose identity is already done, whatever
// code version trained it (each run records its code version; reports list them).
void run_identity(const char *canonical_yaml, long seed, const char *origin, char out[17]);
// What the store records about a run of this config and model on this machine (pointers into
// the arguments: keep them alive while the RunInfo is used).
RunInfo run_info_for(const Config *cfg, const Model *m, const MachineInfo *mi, const char *yaml, const char *identity,
                     const char *experiment, const char *variant);

// Trains the model the config describes and records the run. Returns an exit status.
int train_main(const Config *cfg, const TrainOptions *o);
// Continues a run from its training checkpoint: target is a run id of the store (o->db, else the
// given config's store.db, else the default) or a checkpoint path. The config is the checkpoint's;
// `given` (may be NULL) must equal it. Metrics logged after the checkpoint's step are replaced.
int train_resume(const char *target, const Config *given, const TrainOptions *o);

// Counts over the labelled positions and examples of one slice (or a whole split).
typedef struct {
    Slice slice;
    long labels, correct;     // labelled positions; argmax == target (micro-averaged accuracy)
    long examples, exact;     // examples; examples with every labelled position right
    long adherent;            // labelled positions whose answer has the right form (Task.adherent)
    double loss_sum;          // cross-entropy summed over labelled positions
} SliceStats;
double stats_loss(const SliceStats *s);
double stats_accuracy(const SliceStats *s);
// The task's headline metric (accuracy, exact match or bits per byte) of some counts.
double stats_headline(const Task *t, const SliceStats *s);

typedef struct {
    SliceStats all;           // the whole split
    SliceStats *cells;        // one per distinct slice, in order of first appearance
    int ncells, cap;
    int has_adherence;
} EvalResult;
// Evaluates a model (allocated for B sequences of max_len) on the first max_examples (0: all)
// examples of a split; tok, tgt hold B * max_len.
EvalResult evaluate(Model *m, const Task *task, void *st, int split, long max_examples, int max_len, int *tok, int *tgt);
void eval_free(EvalResult *r);
struct Store;
void record_eval(struct Store *s, int64_t run, const Task *task, int split, const EvalResult *r);
