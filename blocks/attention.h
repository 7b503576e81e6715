// attention.h: causal multi-head attention ('*') with GQA and optional RoPE, and its config keys
// model.attention.*.
#pragma once
#include "block.h"

extern const KeySpec attention_keys[];
extern const BlockType attention_block;
