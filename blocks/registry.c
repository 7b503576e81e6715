// registry.c: every layer type hybridlab knows. Adding a layer type is one file in blocks/
// and one line here.
#include "block.h"

extern const BlockType attention_block, mlp_block, mamba1_block, moe_block;
extern const BlockType mamba2_block;
extern const BlockType shared_block;

const BlockType *const block_registry[] = {
    &attention_block,   // '*'  causal multi-head attention, GQA, RoPE on/off
    &mlp_block,         // '-'  SwiGLU MLP
    &mamba1_block,      // 'M'  Mamba-1 mixer (model.mamba.version 1)
    &mamba2_block,      // 'M'  Mamba-2 mixer, SSD (model.mamba.version 2)
    &moe_block,         // 'E'  sparse mixture of SwiGLU experts (Jamba, Mixtral)
    &shared_block,      // 'S'  Zamba/Zamba2 shared attention+MLP block (ABAB, per-invocation LoRA)
    NULL,
};
