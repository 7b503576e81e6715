// swiglu.h: the SwiGLU feed-forward maths (Jamba/Llama/Mixtral), on N contiguous token rows.
//
//   out = down_proj( silu(gate_proj x) ⊙ up_proj x )          blocks.md §3.2, §6.4
//
// The dense MLP block runs it on all B*T tokens; a MoE block can run it per expert on the rows
// it gathered for that expert. Weights use the PyTorch layout: Wg, Wu (F,C), Wd (C,F).
#pragma once
#include "common.h"

// x (N,C) -> out (N,C). Keeps gate_pre, up_pre (N,F) for backward; hbuf (N,F) is scratch
// (the gated hidden state, not needed after the call).
void swiglu_forward(real *out, real *gate_pre, real *up_pre, real *hbuf, const real *x,
                    const real *Wg, const real *Wu, const real *Wd, int N, int C, int F);

// dout (N,C) -> dx (N,C), overwritten. dWg, dWu, dWd accumulate (+=). buf_a, buf_b: (N,F) scratch
// each. gate_pre, up_pre are what swiglu_forward kept for the same x.
void swiglu_backward(real *dx, real *dWg, real *dWu, real *dWd, real *buf_a, real *buf_b,
                     const real *dout, const real *x, const real *gate_pre, const real *up_pre,
                     const real *Wg, const real *Wu, const real *Wd, int N, int C, int F);
