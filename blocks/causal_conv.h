// causal_conv.h: depthwise causal convolution of width K with bias, then SiLU, over Cx channels
// (Mamba-1's x, Mamba-2's x|B|C). Input rows may be wider than Cx (stride ld), so the blocks can
// convolve a slice of their in_proj output in place.
#pragma once
#include "common.h"

// in (B,T,rows of stride ld, first Cx used) -> xc (B,T,Cx) pre-activation, xbc = silu(xc).
//   xc[b,t,c] = bias[c] + Σ_k W[c,k] in[b,t-(K-1)+k,c]   (in before t = 0 is zero); bias may be NULL
void causal_conv_forward(real *xc, real *xbc, const real *in, int ld, const real *W, const real *bias,
                         int B, int T, int Cx, int K);
// dxc (B,T,Cx), the gradient of the pre-activation -> din (rows of stride ld, first Cx
// overwritten); dW (Cx,K) and db (Cx, may be NULL) accumulate. Sums over (b,t) run in a fixed
// order per channel block, so results do not depend on the thread count.
void causal_conv_backward(real *din, int ld, real *dW, real *db, const real *dxc, const real *in,
                          const real *W, int B, int T, int Cx, int K);
// Generation, one position: x (Cx) -> xc, xbc (Cx) as the forward computes them at that position;
// win (K-1, Cx) holds the previous K-1 inputs, oldest first (zero before the sequence start), and
// slides by one row (x appended).
void causal_conv_step(real *xc, real *xbc, real *win, const real *x, const real *W, const real *bias,
                      int Cx, int K);
