// shared.h: the Zamba/Zamba2 shared attention+MLP block ('S') and its config keys
// model.shared_attn.* (the pattern-level keys model.shared.* are the core's, core/keys.c).
#pragma once
#include "block.h"

extern const KeySpec shared_attn_keys[];
extern const BlockType shared_block;
