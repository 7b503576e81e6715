// ops.h: the shared numerical building blocks: matrix products through BLAS, RMSNorm, activations.
// All products are row-major. Linear weights use the PyTorch layout W (OC, C): y = x Wᵀ + b.
#pragma once
#include "common.h"
#include <string.h>

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

// exp that the compiler can vectorize inside `omp simd` loops (libm's expf is a scalar call, a
// third of Mamba-1's time). Float build: 2^k · p(r) with k = round(x/ln2), r = x - k ln2 split
// in two parts, p the degree-7 Taylor polynomial; relative error below 2e-7 (tests/test_ops.c
// checks it against libm over [-87, 88]). Inputs are clamped to [-87.3, 88]: below, the result
// is 1.2e-38 instead of a denormal or 0 (no caller can tell); above, e^88 instead of inf.
// The gradient-check build uses libm's exp.
#ifdef HLAB_DOUBLE
static inline real exp_vec(real x) { return exp(x); }
#else
// always_inline: callers compiled with other optimize options (the Mamba-1 scan) still inline it
__attribute__((always_inline)) static inline float exp_vec(float x) {
    x = x < -87.3f ? -87.3f : x > 88.0f ? 88.0f : x;   // keeps 2^k a normal float
    // k = round(x / ln2) by adding and subtracting 1.5·2^23 (floorf does not vectorize without -ffast-math)
    float k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - k * 0.693359375f;          // ln2 split: 0.693359375 is exact in float
    r = r - k * -2.12194440e-4f;
    float p = 1.f / 5040;
    p = p * r + 1.f / 720; p = p * r + 1.f / 120; p = p * r + 1.f / 24;
    p = p * r + 1.f / 6;   p = p * r + 0.5f;      p = p * r + 1.f;      p = p * r + 1.f;
    int bits = ((int)k + 127) << 23;     // 2^k built in the exponent field
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}
#endif

// Threads for OpenMP loops, and the BLAS facts recorded with every run.
void ops_init_threads(int nthreads);   // 0: all cores. BLAS itself is kept single-threaded.
int ops_threads(void);
const char *blas_core_name(void);       // OpenBLAS core in use, e.g. "Haswell", "SkylakeX"
const char *blas_config(void);
