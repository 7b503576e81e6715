// info.h: `hlab info`: what a config describes, computed from declared shapes only (no weights
// are allocated, so a 50B-parameter config answers instantly).
#pragma once
#include "model.h"

typedef struct {
    double params_total, params_active;
    double kv_bytes, ssm_bytes;       // per sequence at the given context
    double flops_token_at_ctx;        // forward FLOPs of the token at position ctx
    double flops_token_mean;          // mean over positions 1..ctx
} ModelStats;
void model_stats(const Model *m, long ctx, int bytes_per_elem, ModelStats *s);
void info_print(const Model *m, long ctx, int bytes_per_elem, int json);
