// mamba_keys.h: the model.mamba.* config section. One table serves both Mamba mixers: the
// registry picks the Mamba-1 or the Mamba-2 block for pattern symbol M by model.mamba.version.
#pragma once
#include "config.h"

extern const KeySpec mamba_keys[];
