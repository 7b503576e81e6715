// registry.c: every layer type hybridlab knows. Adding a layer type is one file in blocks/
// and one line here.
#include "block.h"

extern const BlockType attention_block, mlp_block, mamba1_block;

const BlockType *const block_registry[] = {
    &attention_block,   // '*'  causal multi-head attention, GQA, RoPE on/off
    &mlp_block,         // '-'  SwiGLU MLP
    &mamba1_block,      // 'M'  Mamba-1 mixer (model.mamba.version 1)
    NULL,
};
