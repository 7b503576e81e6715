// attn_cache.c: single-query causal attention against a KV cache, and RoPE of one row
// (see attn_cache.h).
//
// Why not reuse attn_core_forward with T = 1: its causal mask is relative to the T rows it is
// given, and the new row must see every cached position. Here the query is the last position,
// so nothing is masked: all n cached keys are in its past.
//
// The arithmetic follows attn_core_forward (max-subtracted softmax, probabilities normalised
// before the sum over v) so that a step and the parallel forward agree to rounding.
#include "attn_cache.h"
#include <omp.h>

size_t attn_cache_scratch(const AttnDims *d, int max_T) { return (size_t)d->H * max_T; }

void attn_cache_attend(real *out, const real *q, const real *kv, const AttnDims *d, int n, real *work) {
    int H = d->H, hd = d->hd, n_rep = H / d->Hkv, KD = d->Hkv * hd;
    size_t ld = ATTN_KV_ROW(d);   // row stride of the cache: k_j at j·ld, v_j at j·ld + KD
    real scale = d->scale;
    // Heads are independent (each its own score row), so threads never share a write and the
    // result does not depend on the thread count. Worth it only for long contexts.
    #pragma omp parallel for num_threads(d->nthreads > 0 ? d->nthreads : 1) if ((size_t)H * n * hd > 65536)
    for (int h = 0; h < H; h++) {
        int g = h / n_rep;
        const real *qh = q + (size_t)h * hd;
        const real *kg = kv + (size_t)g * hd, *vg = kv + KD + (size_t)g * hd;   // position j at j·ld
        real *s = work + (size_t)h * n;                                    // (n) scores of head h
        // s_j = scale · q_h·k_{j,g}
        real mx = -INFINITY;
        for (int j = 0; j < n; j++) {
            const real *kj = kg + j * ld;
            real dot = 0;
            for (int i = 0; i < hd; i++) dot += qh[i] * kj[i];
            s[j] = scale * dot;
            if (s[j] > mx) mx = s[j];
        }
        // softmax, max subtracted so exp never overflows
        real sum = 0;
        for (int j = 0; j < n; j++) { s[j] = exp(s[j] - mx); sum += s[j]; }
        real inv = 1 / sum;
        // out_h (hd) = Σ_j p_j v_{j,g}
        real *oh = out + (size_t)h * hd;
        for (int i = 0; i < hd; i++) oh[i] = 0;
        for (int j = 0; j < n; j++) {
            real p = s[j] * inv;
            const real *vj = vg + j * ld;
            for (int i = 0; i < hd; i++) oh[i] += p * vj[i];
        }
    }
}

// Rotate-half RoPE (blocks.md §6.1), per i < hd/2:  x1' = x1 cos - x2 sin,  x2' = x2 cos + x1 sin.
// The angle is computed exactly as attn_rope_table does (t·θ^(-2i/hd) in double, then rounded to
// real), so the rotation is bitwise the forward's; hd/2 pow/cos/sin per row is nothing next to
// the projections.
void attn_rope_row(real *x, int nh, int hd, int pos, double theta) {
    int half = hd / 2;
    for (int i = 0; i < half; i++) {
        double ang = pos * pow(theta, -2.0 * i / hd);
        real c = (real)cos(ang), s = (real)sin(ang);
        for (int h = 0; h < nh; h++) {
            real *x1 = x + (size_t)h * hd, *x2 = x1 + half;
            real a = x1[i], b = x2[i];
            x1[i] = a * c - b * s;
            x2[i] = b * c + a * s;
        }
    }
}
