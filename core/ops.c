// ops.c: matrix products through BLAS, RMSNorm. See ops.h.
#include "ops.h"
#include <cblas.h>
#include <omp.h>
#include <string.h>

// OpenBLAS extensions (declared in its cblas.h; repeated so the intent is visible here).
extern void openblas_set_num_threads(int);
extern char *openblas_get_corename(void);
extern char *openblas_get_config(void);

static int n_threads = 1;

void ops_init_threads(int nthreads) {
    if (nthreads <= 0) nthreads = omp_get_max_threads();   // OMP_NUM_THREADS if set, else every core
    n_threads = nthreads;
    omp_set_num_threads(nthreads);
    // Every gemm call is single-threaded: at d_model <= 512 a second BLAS thread does not pay on
    // this class of machine, and our own loops split the work deterministically instead.
    openblas_set_num_threads(1);
}
int ops_threads(void) { return n_threads; }
const char *blas_core_name(void) { return openblas_get_corename(); }
const char *blas_config(void) { return openblas_get_config(); }

void gemm(int transA, int transB, int M, int N, int K, real alpha, const real *A, int lda,
          const real *B, int ldb, real beta, real *C, int ldc) {
    if (M <= 0 || N <= 0) return;
#ifdef HLAB_DOUBLE
    cblas_dgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#else
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

// Splits [0, n) into nearly equal contiguous parts: part i is [*lo, *hi).
static void split_range(int n, int parts, int i, int *lo, int *hi) {
    int base = n / parts, rem = n % parts;
    *lo = i * base + (i < rem ? i : rem);
    *hi = *lo + base + (i < rem ? 1 : 0);
}

// Products too small to be worth waking a second thread run on one.
static int threads_for(double flops) { return flops < 2e5 ? 1 : n_threads; }

void matmul_forward(real *out, const real *inp, const real *W, const real *bias, int N, int C, int OC) {
    // out (N,OC) = inp (N,C) · Wᵀ (C,OC)
    int nt = threads_for(2.0 * N * C * OC);
    #pragma omp parallel num_threads(nt)
    {
        int lo, hi;
        split_range(N, omp_get_num_threads(), omp_get_thread_num(), &lo, &hi);
        if (hi > lo) {
            if (bias) {
                for (int i = lo; i < hi; i++) memcpy(out + (size_t)i * OC, bias, OC * sizeof(real));
            }
            gemm(0, 1, hi - lo, OC, C, 1, inp + (size_t)lo * C, C, W, C, bias ? 1 : 0, out + (size_t)lo * OC, OC);
        }
    }
}

void matmul_backward(real *dinp, real *dW, real *dbias, const real *dout, const real *inp,
                     const real *W, int N, int C, int OC, int accumulate) {
    int nt = threads_for(2.0 * N * C * OC);
    #pragma omp parallel num_threads(nt)
    {
        int nth = omp_get_num_threads(), tid = omp_get_thread_num(), lo, hi;
        // dinp (N,C) = dout (N,OC) · W (OC,C), rows split between threads
        if (dinp) {
            split_range(N, nth, tid, &lo, &hi);
            if (hi > lo) gemm(0, 0, hi - lo, C, OC, 1, dout + (size_t)lo * OC, OC, W, C,
                              accumulate ? 1 : 0, dinp + (size_t)lo * C, C);
        }
        // dW (OC,C) += doutᵀ (OC,N) · inp (N,C), output rows split between threads
        split_range(OC, nth, tid, &lo, &hi);
        if (dW && hi > lo) gemm(1, 0, hi - lo, C, N, 1, dout + lo, OC, inp, C, 1, dW + (size_t)lo * C, C);
        if (dbias)
            for (int o = lo; o < hi; o++) {
                real s = 0;
                for (int i = 0; i < N; i++) s += dout[(size_t)i * OC + o];
                dbias[o] += s;
            }
    }
}

void rmsnorm_forward(real *out, real *rstd, const real *inp, const real *w, int N, int C, real eps) {
    #pragma omp parallel for if (N * C > 16384)
    for (int i = 0; i < N; i++) {
        const real *x = inp + (size_t)i * C;
        real *y = out + (size_t)i * C;
        real ss = 0;
        for (int c = 0; c < C; c++) ss += x[c] * x[c];
        real r = 1 / sqrt(ss / C + eps);
        rstd[i] = r;
        if (w) for (int c = 0; c < C; c++) y[c] = w[c] * x[c] * r;
        else for (int c = 0; c < C; c++) y[c] = x[c] * r;
    }
}

void rmsnorm_backward(real *dinp, real *dw, const real *dout, const real *inp, const real *w,
                      const real *rstd, int N, int C) {
    // dx = r·(w⊙dy) − x·r³·mean(w⊙dy⊙x);  dw = Σ_rows dy ⊙ x r   (blocks.md §7.2)
    #pragma omp parallel for if (N * C > 16384)
    for (int i = 0; i < N; i++) {
        const real *x = inp + (size_t)i * C, *dy = dout + (size_t)i * C;
        real *dx = dinp + (size_t)i * C, r = rstd[i], dot = 0;
        for (int c = 0; c < C; c++) dot += (w ? w[c] : 1) * dy[c] * x[c];
        dot /= C;
        for (int c = 0; c < C; c++) dx[c] += r * (w ? w[c] : 1) * dy[c] - x[c] * r * r * r * dot;
    }
    if (dw) {
        // rows reduce into dw: split over channels so each thread owns its outputs
        #pragma omp parallel for if (N * C > 16384)
        for (int c = 0; c < C; c++) {
            real s = 0;
            for (int i = 0; i < N; i++) s += dout[(size_t)i * C + c] * inp[(size_t)i * C + c] * rstd[i];
            dw[c] += s;
        }
    }
}
