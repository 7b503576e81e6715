// swiglu.c: SwiGLU forward and backward (see swiglu.h). No BlockType here: the dense MLP
// (blocks/mlp.c) and MoE experts call these on their token rows.
#include "swiglu.h"
#include "ops.h"

void swiglu_forward(real *out, real *gate_pre, real *up_pre, real *hbuf, const real *x,
                    const real *Wg, const real *Wu, const real *Wd, int N, int C, int F) {
    // gate_pre (N,F) = x Wgᵀ;  up_pre (N,F) = x Wuᵀ
    matmul_forward(gate_pre, x, Wg, NULL, N, C, F);
    matmul_forward(up_pre, x, Wu, NULL, N, C, F);
    // h (N,F) = silu(gate_pre) ⊙ up_pre
    size_t n = (size_t)N * F;
    #pragma omp parallel for if (n > 16384)
    for (size_t i = 0; i < n; i++) hbuf[i] = silur(gate_pre[i]) * up_pre[i];
    // out (N,C) = h Wdᵀ
    matmul_forward(out, hbuf, Wd, NULL, N, F, C);
}

void swiglu_backward(real *dx, real *dWg, real *dWu, real *dWd, real *buf_a, real *buf_b,
                     const real *dout, const real *x, const real *gate_pre, const real *up_pre,
                     const real *Wg, const real *Wu, const real *Wd, int N, int C, int F) {
    size_t n = (size_t)N * F;
    // h was not kept (it costs as much memory as gate_pre): recompute it into buf_a
    real *h = buf_a;
    #pragma omp parallel for if (n > 16384)
    for (size_t i = 0; i < n; i++) h[i] = silur(gate_pre[i]) * up_pre[i];
    // down_proj: dWd (C,F) += doutᵀ h;  dh (N,F) = dout Wd   (into buf_b)
    real *dh = buf_b;
    matmul_backward(dh, dWd, NULL, dout, h, Wd, N, F, C, 0);
    // h = silu(g) ⊙ u:  du = dh ⊙ silu(g)  (overwrites h, no longer needed),
    //                   dg = dh ⊙ u ⊙ silu'(g)  (in place over dh, read before written)
    real *dup = buf_a, *dgate = buf_b;
    #pragma omp parallel for if (n > 16384)
    for (size_t i = 0; i < n; i++) {
        real g = gate_pre[i], d = dh[i];
        dup[i] = d * silur(g);
        dgate[i] = d * up_pre[i] * silu_grad(g);
    }
    // gate_proj and up_proj: dW += dᵀ x;  dx = dgate Wg + dup Wu
    matmul_backward(dx, dWg, NULL, dgate, x, Wg, N, C, F, 0);
    matmul_backward(dx, dWu, NULL, dup, x, Wu, N, C, F, 1);
}
