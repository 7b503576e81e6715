// mamba_keys.h: the model.mamba.* config section. One table serves both Mamba mixers: the
// registry picks the Mamba-1 or the Mamba-2 block for pattern symbol M by model.mamba.version.
#pragma once
#include "common.h"
#include "config.h"

extern const KeySpec mamba_keys[];

// dt bias = softplus⁻¹(dt) with dt log-uniform in [dt_min, dt_max] and at least dt_init_floor
// (model.mamba.*), so Δ starts spread over time scales (blocks.md §1.2, §2.1, §9.4). n entries:
// one per channel (Mamba-1) or per head (Mamba-2).
void mamba_dt_bias_init(real *bias, int n, const Config *c, Rng *rng);
