// mlp.h: the dense SwiGLU MLP block ('-') and its config keys model.mlp.*.
#pragma once
#include "block.h"

extern const KeySpec mlp_keys[];
extern const BlockType mlp_block;

// model.mlp.hidden resolved: "auto" = 8*d_model/3 rounded up to a multiple of 8 (Llama's rule).
int mlp_hidden(const Config *c);
