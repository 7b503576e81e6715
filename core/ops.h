// ops.h: the shared numerical building blocks: matrix products through BLAS, RMSNorm, activations.
// All products are row-major. Linear weights use the PyTorch layout W (OC, C): y = x Wᵀ + b.
#pragma once
#include "common.h"

// C (M,N) = alpha * op(A) op(B) + beta * C, single-threaded BLAS call (sgemm, or dgemm in the
// gradient-check build). Blocks call it inside their own OpenMP loops.
void gemm(int transA, int transB, int M, int N, int K, real alpha, const real *A, int lda,
          const real *B, int ldb, real beta, real *C, int ldc);

// out (N,OC) = inp (N,C) Wᵀ + bias. Threads split the N rows (one single-threaded gemm each).
void matmul_forward(real *out, const real *inp, const real *W, const real *bias, int N, int C, int OC);
// dW (OC,C) += doutᵀ inp, dbias (OC) += Σ dout (either may be NULL); threads split the OC rows,
// so there is no cross-thread reduction and results do not depend on the thread count.
// dinp (N,C) = dout W, overwritten (accumulate=0) or added to (accumulate=1); NULL to skip.
void matmul_backward(real *dinp, real *dW, real *dbias, const real *dout, const real *inp,
                     const real *W, int N, int C, int OC, int accumulate);

// RMSNorm over the last dimension: out = w ⊙ x · rstd, rstd = (mean(x²)+eps)^-½ (w NULL: no weight).
void rmsnorm_forward(real *out, real *rstd, const real *inp, const real *w, int N, int C, real eps);
// dinp (N,C) += ...; dw (C) += ... (NULL to skip, e.g. weightless norms).
void rmsnorm_backward(real *dinp, real *dw, const real *dout, const real *inp, const real *w,
                      const real *rstd, int N, int C);

static inline real sigmoidr(real x) { return 1 / (1 + exp(-x)); }
static inline real silur(real x) { return x * sigmoidr(x); }
static inline real silu_grad(real x) { real s = sigmoidr(x); return s * (1 + x * (1 - s)); }
// softplus with the threshold 20 that every reference kernel uses (blocks.md §0, §9.3)
static inline real softplusr(real x) { return x > 20 ? x : log1p(exp(x)); }
static inline real softplus_grad(real x) { return x > 20 ? 1 : sigmoidr(x); }

// Threads for OpenMP loops, and the BLAS facts recorded with every run.
void ops_init_threads(int nthreads);   // 0: all cores. BLAS itself is kept single-threaded.
int ops_threads(void);
const char *blas_core_name(void);       // OpenBLAS core in use, e.g. "Haswell", "SkylakeX"
const char *blas_config(void);
