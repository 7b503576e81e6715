// moe.h: the sparse mixture-of-experts feed-forward ('E', Jamba/Mixtral) and its config keys
// model.moe.*.
#pragma once
#include "block.h"

extern const KeySpec moe_keys[];
extern const BlockType moe_block;

// A layer holds at most LAYER_MAX_PARAMS tensors: the router and three per expert.
#define MOE_MAX_EXPERTS ((LAYER_MAX_PARAMS - 1) / 3)

// The routing of a layer's last forward, read-only, for tests and tools.
typedef struct {
    int N, X, k;             // tokens (B*T), experts, experts per token
    const real *prob;        // (N,X) router softmax
    const int *sel;          // (N,k) chosen experts, best first (ties: lower index)
    const real *weight;      // (N,k) their mixing weights (renormalised if model.moe.renormalize)
    const int *count;        // (X) rows each expert computed: Σ_e count[e] = N*k
} MoeRouting;
MoeRouting moe_routing(const Layer *L);
