// causal_conv.c: the depthwise causal convolution with SiLU that Mamba-1 and Mamba-2 put in
// front of their scans (blocks.md §1.3, §2.3; backward §7.3). See causal_conv.h.
#include "causal_conv.h"
#include "ops.h"

// xc[b,t,c] = bias[c] + Σ_k W[c,k] in[b,t-K+1+k,c] (in = 0 before t = 0);  xbc = silu(xc)
void causal_conv_forward(real *xc, real *xbc, const real *in, int ld, const real *W, const real *bias,
                         int B, int T, int Cx, int K) {
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            size_t bt = (size_t)b * T + t;
            real *o = xc + bt * Cx;
            for (int c = 0; c < Cx; c++) o[c] = bias ? bias[c] : 0;
            for (int k = t < K - 1 ? K - 1 - t : 0; k < K; k++) {
                const real *x = in + (bt + k - (K - 1)) * ld;   // row t-(K-1)+k >= 0
                for (int c = 0; c < Cx; c++) o[c] += W[(size_t)c * K + k] * x[c];
            }
            for (int c = 0; c < Cx; c++) xbc[bt * Cx + c] = silur(o[c]);
        }
}

// dxc (B,T,Cx) -> din (rows of stride ld, overwritten), dW += , db +=
void causal_conv_backward(real *din, int ld, real *dW, real *db, const real *dxc, const real *in,
                          const real *W, int B, int T, int Cx, int K) {
    // din[b,s,c] = Σ_k dxc[b,s+K-1-k,c] W[c,k], for the outputs s+K-1-k < T that read in[s]
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int s = 0; s < T; s++) {
            real *o = din + ((size_t)b * T + s) * ld;
            for (int c = 0; c < Cx; c++) o[c] = 0;
            for (int k = 0; k < K; k++) {
                int t = s + K - 1 - k;
                if (t >= T) continue;
                const real *g = dxc + ((size_t)b * T + t) * Cx;
                for (int c = 0; c < Cx; c++) o[c] += g[c] * W[(size_t)c * K + k];
            }
        }
    // dW and db reduce over (b,t): each thread owns a block of channels and walks every row in
    // order (thread-count independent sums)
    enum { CBLK = 16 };
    #pragma omp parallel for schedule(static)
    for (int c0 = 0; c0 < Cx; c0 += CBLK) {
        int c1 = c0 + CBLK < Cx ? c0 + CBLK : Cx;
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                const real *g = dxc + ((size_t)b * T + t) * Cx;
                if (db) for (int c = c0; c < c1; c++) db[c] += g[c];
                for (int k = t < K - 1 ? K - 1 - t : 0; k < K; k++) {
                    const real *x = in + ((size_t)b * T + (t + k - (K - 1))) * ld;
                    for (int c = c0; c < c1; c++) dW[(size_t)c * K + k] += g[c] * x[c];
                }
            }
    }
}

// One position of causal_conv_forward for generation. win (K-1, Cx): the inputs of the K-1
// previous positions, oldest first (zeros before position 0). Same sum order as the forward
// (bias, then k = 0..K-1); a zero row adds exactly nothing, so the result equals the forward's
// even while the window still holds the zeros from before the sequence start.
void causal_conv_step(real *xc, real *xbc, real *win, const real *x, const real *W, const real *bias,
                      int Cx, int K) {
    for (int c = 0; c < Cx; c++) {
        real o = bias ? bias[c] : 0;
        for (int k = 0; k < K - 1; k++) o += W[(size_t)c * K + k] * win[(size_t)k * Cx + c];
        o += W[(size_t)c * K + K - 1] * x[c];
        xc[c] = o;
        xbc[c] = silur(o);
    }
    // slide: drop the oldest row, append x (K-1 rows of Cx: small next to the projections)
    if (K > 1) {
        memmove(win, win + Cx, (size_t)(K - 2) * Cx * sizeof(real));
        memcpy(win + (size_t)(K - 2) * Cx, x, Cx * sizeof(real));
    }
}
