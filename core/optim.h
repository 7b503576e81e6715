// optim.h: AdamW with decoupled weight decay on weight matrices only, global gradient-norm
// clipping, and the learning-rate schedules.
#pragma once
#include "model.h"

typedef struct {
    real *m, *v;             // first and second moments (nparams each)
    real *decay_mask;        // 1 where weight decay applies (ParamInfo.decay), else 0
    double lr, beta1, beta2, eps, weight_decay;
    long t;                  // steps taken
    size_t n;
} AdamW;

void adamw_init(AdamW *o, const Model *m, double beta1, double beta2, double eps, double weight_decay);
void adamw_free(AdamW *o);
// One update with learning rate lr. grad_scale multiplies every gradient first (clipping).
void adamw_step(AdamW *o, real *params, const real *grads, double lr, double grad_scale);

// Global L2 norm of the gradient (double accumulation, fixed order: thread-count independent
// per chunk, reduced in order). Returns NaN/Inf when any gradient is not finite.
double grad_norm(const real *grads, size_t n);
// Where a model's non-finite values are, as text: a non-finite weight first (the cause, when
// there is one), then the first parameter tensor in declaration order whose gradient is
// non-finite and how many tensors' gradients are (one, or all: different causes).
void nonfinite_where(const Model *m, char *out, size_t cap);

typedef struct {
    int kind;                // 0 constant, 1 cosine, 2 wsd
    double lr, min_lr;
    long warmup, total;
    double decay_frac;       // wsd: fraction of total spent decaying
} Schedule;
int schedule_kind(const char *name);    // "constant" | "cosine" | "wsd" -> 0/1/2, -1 unknown
double schedule_lr(const Schedule *s, long step);   // step in [0, total)
// The schedule the train.* keys of a config describe, over `total` steps.
Schedule schedule_from_config(const Config *c, long total);
