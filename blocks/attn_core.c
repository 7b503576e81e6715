// attn_core.c: RoPE and causal softmax attention with GQA, forward and backward (see attn_core.h).
//
// Memory: like flash attention, forward keeps only the output O and the log-sum-exp of every
// score row (B,H,T); backward recomputes the scores from q and k and rebuilds P = exp(S - lse).
// That trades one extra q·kᵀ product for not storing B·H·T² probabilities.
//
// Threads: one OpenMP item per (batch row, kv head). The n_rep query heads of a kv head run in
// its inner loop, so that k_g, v_g stay in cache, and so that in backward the GQA sums of dK and
// dV over those heads happen inside one thread: no races, no atomics, and a fixed summation
// order, hence bitwise reproducible results for any thread count.
#include "attn_core.h"
#include "ops.h"
#include <omp.h>

// ----------------------------------------------------------------------------
// RoPE (blocks.md §6.1), in place on x (B,T,nh,hd): rotate_half(x) = concat(-x2, x1) with x1, x2
// the two halves of a head (not interleaved pairs), x' = x ⊙ cos + rotate_half(x) ⊙ sin, i.e.
// per i < hd/2:   x1' = x1 cos - x2 sin,   x2' = x2 cos + x1 sin

size_t attn_rope_table_len(int hd, int T) { return 2 * (size_t)T * (hd / 2); }

void attn_rope_table(real *tab, int hd, int T, double theta) {
    // inv_freq[i] = θ^(-2i/hd), angle = t·inv_freq[i] in double; once per allocation, not in
    // every forward
    int half = hd / 2;
    real *cs = tab, *sn = tab + (size_t)T * half;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            double ang = t * pow(theta, -2.0 * i / hd);
            cs[(size_t)t * half + i] = (real)cos(ang);
            sn[(size_t)t * half + i] = (real)sin(ang);
        }
}

void attn_rope_forward(real *x, const real *tab, int tab_T, int B, int T, int nh, int hd) {
    int half = hd / 2;
    const real *cs = tab, *sn = tab + (size_t)tab_T * half;
    #pragma omp parallel for if ((size_t)B * T * nh * hd > 16384)
    for (int bt = 0; bt < B * T; bt++) {
        const real *c = cs + (size_t)(bt % T) * half, *s = sn + (size_t)(bt % T) * half;
        for (int h = 0; h < nh; h++) {
            real *x1 = x + ((size_t)bt * nh + h) * hd, *x2 = x1 + half;
            for (int i = 0; i < half; i++) {
                real a = x1[i], b = x2[i];
                x1[i] = a * c[i] - b * s[i];
                x2[i] = b * c[i] + a * s[i];
            }
        }
    }
}

// The transpose of the rotation above (blocks.md §7.7): dx = dx' ⊙ cos + rotate_halfᵀ(dx' ⊙ sin),
// rotate_halfᵀ(v) = concat(v2, -v1):   dx1 = dx1' cos + dx2' sin,   dx2 = dx2' cos - dx1' sin
void attn_rope_backward(real *dx, const real *tab, int tab_T, int B, int T, int nh, int hd) {
    int half = hd / 2;
    const real *cs = tab, *sn = tab + (size_t)tab_T * half;
    #pragma omp parallel for if ((size_t)B * T * nh * hd > 16384)
    for (int bt = 0; bt < B * T; bt++) {
        const real *c = cs + (size_t)(bt % T) * half, *s = sn + (size_t)(bt % T) * half;
        for (int h = 0; h < nh; h++) {
            real *d1 = dx + ((size_t)bt * nh + h) * hd, *d2 = d1 + half;
            for (int i = 0; i < half; i++) {
                real a = d1[i], b = d2[i];
                d1[i] = a * c[i] + b * s[i];
                d2[i] = b * c[i] - a * s[i];
            }
        }
    }
}

// ----------------------------------------------------------------------------
// causal attention

// Per thread: the score matrix and its gradient, (T,T) each (forward uses only the first).
size_t attn_core_scratch(const AttnDims *d, int T) { return (size_t)d->nthreads * 2 * T * T; }

void attn_core_forward(real *att, real *lse, const real *q, const real *k, const real *v,
                       const AttnDims *d, int B, int T, real *scratch) {
    int H = d->H, Hkv = d->Hkv, hd = d->hd, n_rep = H / Hkv;
    int QD = H * hd, KD = Hkv * hd;   // row strides of q (and O) and of k, v
    real scale = d->scale;
    #pragma omp parallel for num_threads(d->nthreads) schedule(static)
    for (int bg = 0; bg < B * Hkv; bg++) {
        int b = bg / Hkv, g = bg % Hkv;
        real *S = scratch + (size_t)omp_get_thread_num() * T * T;     // (T,T), this thread's
        const real *kg = k + (size_t)b * T * KD + g * hd;              // (T,hd), row stride KD
        const real *vg = v + (size_t)b * T * KD + g * hd;
        for (int r = 0; r < n_rep; r++) {
            int h = g * n_rep + r;
            const real *qh = q + (size_t)b * T * QD + h * hd;          // (T,hd), row stride QD
            real *oh = att + (size_t)b * T * QD + h * hd;
            real *lh = lse + ((size_t)b * H + h) * T;                  // (T)
            // S (T,T) = scale · q_h k_gᵀ. The upper triangle is computed too and then masked:
            // one full gemm beats T small ones at these sizes.
            gemm(0, 1, T, T, hd, scale, qh, QD, kg, KD, 0, S, T);
            // causal softmax per row, max subtracted so exp never overflows
            for (int t = 0; t < T; t++) {
                real *row = S + (size_t)t * T;
                real mx = row[0];
                for (int j = 1; j <= t; j++) if (row[j] > mx) mx = row[j];
                real sum = 0;
                for (int j = 0; j <= t; j++) { row[j] = exp(row[j] - mx); sum += row[j]; }
                real inv = 1 / sum;
                for (int j = 0; j <= t; j++) row[j] *= inv;
                for (int j = t + 1; j < T; j++) row[j] = 0;   // future keys get no weight
                lh[t] = mx + log(sum);                         // lets backward rebuild P = exp(S - lse)
            }
            // O_h (T,hd) = P v_g
            gemm(0, 0, T, hd, T, 1, S, T, vg, KD, 0, oh, QD);
        }
    }
}

void attn_core_backward(real *dq, real *dk, real *dv, const real *datt, const real *q,
                        const real *k, const real *v, const real *att, const real *lse,
                        const AttnDims *d, int B, int T, real *scratch) {
    int H = d->H, Hkv = d->Hkv, hd = d->hd, n_rep = H / Hkv;
    int QD = H * hd, KD = Hkv * hd;
    real scale = d->scale;
    #pragma omp parallel for num_threads(d->nthreads) schedule(static)
    for (int bg = 0; bg < B * Hkv; bg++) {
        int b = bg / Hkv, g = bg % Hkv;
        real *P = scratch + (size_t)omp_get_thread_num() * 2 * T * T;      // (T,T)
        real *dS = P + (size_t)T * T;                                        // (T,T)
        const real *kg = k + (size_t)b * T * KD + g * hd, *vg = v + (size_t)b * T * KD + g * hd;
        real *dkg = dk + (size_t)b * T * KD + g * hd, *dvg = dv + (size_t)b * T * KD + g * hd;
        for (int r = 0; r < n_rep; r++) {
            int h = g * n_rep + r;
            const real *qh = q + (size_t)b * T * QD + h * hd, *oh = att + (size_t)b * T * QD + h * hd;
            const real *doh = datt + (size_t)b * T * QD + h * hd;
            real *dqh = dq + (size_t)b * T * QD + h * hd;
            const real *lh = lse + ((size_t)b * H + h) * T;
            // recompute P (T,T) = exp(scale · q_h k_gᵀ - lse), zero above the diagonal
            gemm(0, 1, T, T, hd, scale, qh, QD, kg, KD, 0, P, T);
            for (int t = 0; t < T; t++) {
                real *row = P + (size_t)t * T;
                for (int j = 0; j <= t; j++) row[j] = exp(row[j] - lh[t]);
                for (int j = t + 1; j < T; j++) row[j] = 0;
            }
            // dV_g (T,hd) += Pᵀ dO_h. The first query head of the group overwrites, the others
            // add: this is the GQA sum over the n_rep heads that read v_g.
            real beta = r == 0 ? 0 : 1;
            gemm(1, 0, T, hd, T, 1, P, T, doh, QD, beta, dvg, KD);
            // dP (T,T) = dO_h v_gᵀ
            gemm(0, 1, T, T, hd, 1, doh, QD, vg, KD, 0, dS, T);
            // softmax backward: dS = P ⊙ (dP - D), D_t = Σ_j P[t,j] dP[t,j] = dO_t · O_t
            // (the second form costs hd instead of T per row). Masked entries have P = 0.
            for (int t = 0; t < T; t++) {
                const real *dO_t = doh + (size_t)t * QD, *O_t = oh + (size_t)t * QD;
                real D = 0;
                for (int i = 0; i < hd; i++) D += dO_t[i] * O_t[i];
                real *prow = P + (size_t)t * T, *drow = dS + (size_t)t * T;
                for (int j = 0; j < T; j++) drow[j] = prow[j] * (drow[j] - D);
            }
            // S = scale · q kᵀ:  dQ_h (T,hd) = scale · dS k_g;  dK_g += scale · dSᵀ q_h  (GQA sum)
            gemm(0, 0, T, hd, T, scale, dS, T, kg, KD, 0, dqh, QD);
            gemm(1, 0, T, hd, T, scale, dS, T, qh, QD, beta, dkg, KD);
        }
    }
}
