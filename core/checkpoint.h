// checkpoint.h: model weights in the safetensors format, PyTorch layout, HF-style tensor names,
// with the resolved config in the header metadata ("hlab.config"), so a checkpoint alone is
// enough to rebuild its model.
//
// A training checkpoint (train.checkpoint_every, a signal) is the same file with the AdamW
// moments and the position of the run added, so that training continues exactly where it
// stopped (README, "Checkpoints", lists the extra tensors). Its weights load like any other
// checkpoint's: eval, generate and --init skip the extra tensors.
#pragma once
#include "mixture.h"
#include "model.h"
#include "optim.h"

// Writes every parameter tensor atomically (temporary file, fsync, rename).
int checkpoint_save(const Model *m, const char *path, char *err, size_t errcap);
// The config YAML stored in a checkpoint (caller frees), or NULL with err filled.
char *checkpoint_config(const char *path, char *err, size_t errcap);
// Copies a checkpoint's tensors into an allocated model. Every parameter must be present with
// the same shape; a tensor the model does not have is an error too (a wrong-model checkpoint).
// The training state of a training checkpoint is ignored.
int checkpoint_load(Model *m, const char *path, char *err, size_t errcap);
// Writes the gradients (same names and shapes) so they can be compared with another implementation.
int checkpoint_save_grads(const Model *m, const char *path, char *err, size_t errcap);

// Where a run is, besides its weights and AdamW moments. There is no random-number stream to
// save: a batch is drawn from a generator seeded by (data seed, step) and an epoch's order from
// one seeded by (task seed, epoch), the model draws nothing while training, and there is no
// loss scale (float32 throughout). The schedule's position is the step.
typedef struct {
    long step;                 // optimizer steps completed: the schedule's and the data's position
    long skipped;              // updates dropped by train.on_divergence: skip_step so far
    long finished;             // 1: training is over (all steps, or an early stop); the final
                               // evaluation is what remains
    double tokens, wall;       // tokens trained on and seconds so far (the metrics' x axes)
    // the log interval in progress (checkpoints need not fall on log steps): its sums of the
    // training and auxiliary losses over `loss_n` steps
    double loss_sum, aux_sum;
    long loss_n;
    // the data order: for each phase and each of its tasks, the position in the epoch and the
    // epoch. Redundant with step (replaying the order gives them), kept to check the replay.
    int nphases, ntasks[PHASE_MAX];
    long cursor[PHASE_MAX][MIX_MAX], epoch[PHASE_MAX][MIX_MAX];
    // metadata: which run this is
    char identity[17];         // run identity (config + seed hash)
    long long run;             // run id in the store (0: none)
    char store[4096];          // absolute path of the store ("" without one)
    int threads;               // OpenMP threads per rank (bitwise continuation needs the same)
    int ranks;                 // MPI data-parallel ranks (likewise; metadata hlab.ranks, default 1)
    char version[128];         // code version that wrote it (loaded only)
} TrainState;

// Writes weights, AdamW moments and step count, and the state atomically: the previous file at
// path stays whole until the new one is complete on disk.
int checkpoint_save_training(const Model *m, const AdamW *opt, const TrainState *ts, const char *path, char *err,
                             size_t errcap);
// Loads a training checkpoint into an allocated model and an initialised AdamW of the same model.
// Fails (err filled) on a plain weights file, a missing or mis-shaped tensor, or a foreign tensor.
// On failure the model and optimizer may be partly overwritten.
int checkpoint_load_training(Model *m, AdamW *opt, TrainState *ts, const char *path, char *err, size_t errcap);
// 1 if path is a training checkpoint (readable, with hlab.kind = training-state), else 0.
int checkpoint_is_training(const char *path);
