// attn_core.c: RoPE and causal softmax attention with GQA, forward and backward (see attn_core.h).
//
// Memory: like flash attention, forward keeps only the output O and the log-sum-exp of every
// score row (B,H,T); backward recomputes the scores from q and k and rebuilds P = exp(S - lse).
// That trades one extra q·kᵀ product for not storing B·H·T² probabilities.
//
// Blocks: queries are taken Bq rows at a time. Rows t0..t0+m-1 can only see keys 0..t0+m-1, so
// one block's scores are an (m, t0+m) matrix: every product runs over causal keys only (half
// the work of full (T,T) products), only the diagonal block wastes its upper triangle, and the
// scratch is Bq·T per thread instead of T². Each product is one single-threaded gemm
// (OpenBLAS threads do not pay at these sizes; ours split the work instead).
//
// Threads, and why results are reproducible:
//   forward   one item per (batch row, kv head, query block), scheduled dynamically, costliest
//             (latest) blocks first. An item writes only its own rows of O and lse and computes
//             them the same way whichever thread runs it: results do not depend on threads.
//   backward  dK, dV of a kv head sum over every query block and the n_rep query heads that read
//             it, so one item per (batch row, kv head) runs all of them in a fixed order and owns
//             that slice of dk, dv (and dq): no races, no atomics. When there are fewer such
//             items than threads (B = 1, few kv heads) each item's query blocks are split into
//             `parts` of about equal causal cost; part 0 accumulates into dk, dv, the others into
//             partial buffers that are then added in part order. `parts` depends only on
//             B·Hkv and the thread count, so results are bitwise reproducible for a given
//             thread count (and independent of it whenever B·Hkv >= threads).
#include "attn_core.h"
#include "ops.h"
#include <omp.h>
#include <stdint.h>
#include <string.h>

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

int attn_core_block_q = 64;

// rows per query block for this call: what the scratch was sized for, at most T
static int block_rows(const AttnDims *d, int T) {
    int bq = d->bq > 0 ? d->bq : attn_core_block_q;
    return bq < T ? bq : T;
}

// How many parts backward splits each (batch row, kv head) item into: 1 when there are at least
// as many items as threads, else enough parts that every thread has one.
static int backward_parts(const AttnDims *d, int items, int nqb) {
    int nth = d->nthreads, s = items >= nth ? 1 : (nth + items - 1) / items;
    return s < nqb ? s : nqb;
}

// Scratch, per thread: P and dS (Bq, T) (forward uses the first as S). Then the partial dK, dV
// (T, hd) of backward's parts 1.. : fewer than nthreads of them (parts only when items < threads).
size_t attn_core_scratch(AttnDims *d, int T) {
    if (d->bq <= 0) d->bq = attn_core_block_q;
    size_t bq = (size_t)block_rows(d, T);
    return (size_t)d->nthreads * 2 * bq * T + (size_t)(d->nthreads - 1) * 2 * T * d->hd;
}

// The first query block of part p of s (part p runs blocks [boundary(p), boundary(p+1))):
// block i costs about i+1 (its keys), so boundary(p) is the k whose running cost k(k+1)/2 is
// nearest to p/s of the total. boundary(0) = 0, boundary(s) = nqb.
static int part_boundary(int nqb, int s, int p) {
    double target = (double)p / s * nqb * (nqb + 1) / 2;
    int best = 0;
    for (int k = 1; k <= nqb; k++)
        if (fabs(k * (k + 1) / 2.0 - target) < fabs(best * (best + 1) / 2.0 - target)) best = k;
    return best;
}

// exp(x) for the shifted scores x = S - max or S - lse (<= 0 up to rounding), to about an ulp,
// written so that gcc vectorises the loops that call it: glibc's exp does not vectorise without
// -ffast-math, and at head widths 32..64 one scalar exp per score costs more than the products
// around it. x = n ln2 + r with n = round(x / ln2) (the 1.5·2^mant trick leaves n in the low
// bits of t), ln2 split in two so that n·ln2 is exact (Cody-Waite), then exp(r) by polynomial
// (|r| <= ln2/2) and 2^n built in the exponent bits. Below `lo` the result is 0 (float: exp(-87)
// ~ 1e-38, nothing next to a softmax denominator >= 1). The result depends on x alone, not on
// whether it ran in the vector body or the scalar tail (-std=c11 implies -ffp-contract=off: gcc
// does not fuse a·b+c differently in the two).
#ifdef HLAB_DOUBLE
typedef uint64_t rbits;   // unsigned: the shift below is defined for every input (x < exp_lo included)
#define EXP_MANT 52
#define EXP_BIAS 1023
static const real exp_magic = 6755399441055744.0, exp_lo = -708.0;   // 1.5·2^52
static const real ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
#else
typedef uint32_t rbits;
#define EXP_MANT 23
#define EXP_BIAS 127
static const real exp_magic = 12582912.0f, exp_lo = -87.0f;           // 1.5·2^23
static const real ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
#endif

static inline real exp_shifted(real x) {
    real xc = x < exp_lo ? exp_lo : x;
    real t = xc * (real)1.44269504088896340736 + exp_magic;   // log2(e)
    real n = t - exp_magic;
    real r = (xc - n * ln2_hi) - n * ln2_lo;
#ifdef HLAB_DOUBLE
    // Taylor to r^13: the first term left out is below 5e-18 at |r| <= ln2/2
    real p = 1.0 / 6227020800;
    static const double c[] = {1.0 / 479001600, 1.0 / 39916800, 1.0 / 3628800, 1.0 / 362880, 1.0 / 40320,
                               1.0 / 5040, 1.0 / 720, 1.0 / 120, 1.0 / 24, 1.0 / 6, 0.5, 1, 1};
    for (int i = 0; i < 13; i++) p = p * r + c[i];
#else
    // Cephes expf's minimax polynomial
    real p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1;
#endif
    rbits tb, mb;
    memcpy(&tb, &t, sizeof tb);
    memcpy(&mb, &exp_magic, sizeof mb);
    rbits eb = (tb - mb + EXP_BIAS) << EXP_MANT;   // n + bias in the exponent field: 2^n
    real two_n;
    memcpy(&two_n, &eb, sizeof two_n);
    return x < exp_lo ? 0 : p * two_n;
}

// Σ row[0..n) in a fixed order whatever the alignment and the vector width: 8 running sums
// (lane j % 8), then a fixed tree. Vectorises without letting the compiler reassociate.
static inline real sum_row(const real *row, int n) {
    real acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int j = 0;
    for (; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++) acc[l] += row[j + l];
    for (int l = 0; j < n; j++, l++) acc[l] += row[j];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// Softmax of one causal score row in place: row[0..n) -> P, row[n..len) = 0 (future keys);
// returns log Σ_j exp(row[j]). The max is subtracted first so exp never overflows (max is
// exact in any order, so a vectorised reduction is safe).
static real softmax_row(real *row, int n, int len) {
    real mx = row[0];
    #pragma omp simd reduction(max:mx)
    for (int j = 1; j < n; j++) mx = row[j] > mx ? row[j] : mx;
    for (int j = 0; j < n; j++) row[j] = exp_shifted(row[j] - mx);
    real sum = sum_row(row, n), inv = 1 / sum;
    for (int j = 0; j < n; j++) row[j] *= inv;
    for (int j = n; j < len; j++) row[j] = 0;
    return mx + log(sum);
}

void attn_core_forward(real *att, real *lse, const real *q, const real *k, const real *v,
                       const AttnDims *d, int B, int T, real *scratch) {
    int H = d->H, Hkv = d->Hkv, hd = d->hd, n_rep = H / Hkv;
    int QD = H * hd, KD = Hkv * hd;   // row strides of q (and O) and of k, v
    int bq = block_rows(d, T), nqb = (T + bq - 1) / bq, nbg = B * Hkv;
    real scale = d->scale;
    #pragma omp parallel for num_threads(d->nthreads) schedule(dynamic, 1)
    for (int it = 0; it < nqb * nbg; it++) {
        int qb = nqb - 1 - it / nbg, bg = it % nbg, b = bg / Hkv, g = bg % Hkv;
        // query rows t0..t0+m-1 see keys 0..end-1
        int t0 = qb * bq, m = T - t0 < bq ? T - t0 : bq, end = t0 + m;
        real *S = scratch + (size_t)omp_get_thread_num() * 2 * bq * T;   // (m, end), this thread's
        const real *kg = k + (size_t)b * T * KD + g * hd;                  // (T,hd), row stride KD
        const real *vg = v + (size_t)b * T * KD + g * hd;
        for (int r = 0; r < n_rep; r++) {
            int h = g * n_rep + r;
            const real *qh = q + ((size_t)b * T + t0) * QD + h * hd;       // (m,hd), row stride QD
            real *oh = att + ((size_t)b * T + t0) * QD + h * hd;
            real *lh = lse + ((size_t)b * H + h) * T + t0;                 // (m)
            // S (m,end) = scale · q_blk k_gᵀ, then the causal softmax of each row: row i sees keys
            // 0..t0+i (the upper triangle of the diagonal block is computed and then zeroed)
            gemm(0, 1, m, end, hd, scale, qh, QD, kg, KD, 0, S, end);
            for (int i = 0; i < m; i++) lh[i] = softmax_row(S + (size_t)i * end, t0 + i + 1, end);
            // O_blk (m,hd) = P v_g[0:end]
            gemm(0, 0, m, hd, end, 1, S, end, vg, KD, 0, oh, QD);
        }
    }
}

void attn_core_backward(real *dq, real *dk, real *dv, const real *datt, const real *q,
                        const real *k, const real *v, const real *att, const real *lse,
                        const AttnDims *d, int B, int T, real *scratch) {
    int H = d->H, Hkv = d->Hkv, hd = d->hd, n_rep = H / Hkv;
    int QD = H * hd, KD = Hkv * hd;
    int bq = block_rows(d, T), nqb = (T + bq - 1) / bq, items = B * Hkv;
    int parts = backward_parts(d, items, nqb);
    real scale = d->scale;
    real *partials = scratch + (size_t)d->nthreads * 2 * bq * T;   // items·(parts-1) × dK, dV (T,hd)
    #pragma omp parallel for num_threads(d->nthreads) schedule(dynamic, 1)
    for (int u = 0; u < items * parts; u++) {
        int bg = u / parts, part = u % parts, b = bg / Hkv, g = bg % Hkv;
        int qlo = part_boundary(nqb, parts, part), qhi = part_boundary(nqb, parts, part + 1);
        real *P = scratch + (size_t)omp_get_thread_num() * 2 * bq * T;   // (m,end)
        real *dS = P + (size_t)bq * T;                                     // (m,end)
        const real *kg = k + (size_t)b * T * KD + g * hd, *vg = v + (size_t)b * T * KD + g * hd;
        // where this part's dK, dV sums go: part 0 straight into dk, dv (all T rows zeroed, the
        // other parts are added later), the others into their own (T,hd) buffers
        real *dkg, *dvg;
        int ld;
        if (part == 0) {
            dkg = dk + (size_t)b * T * KD + g * hd; dvg = dv + (size_t)b * T * KD + g * hd; ld = KD;
            for (int t = 0; t < T; t++) {
                memset(dkg + (size_t)t * KD, 0, hd * sizeof(real));
                memset(dvg + (size_t)t * KD, 0, hd * sizeof(real));
            }
        } else {
            dkg = partials + ((size_t)bg * (parts - 1) + part - 1) * 2 * T * hd; dvg = dkg + (size_t)T * hd; ld = hd;
            memset(dkg, 0, 2 * (size_t)T * hd * sizeof(real));
        }
        for (int qb = qlo; qb < qhi; qb++) {
            int t0 = qb * bq, m = T - t0 < bq ? T - t0 : bq, end = t0 + m;
            for (int r = 0; r < n_rep; r++) {
                int h = g * n_rep + r;
                size_t row0 = ((size_t)b * T + t0) * QD + h * hd;
                const real *qh = q + row0, *oh = att + row0, *doh = datt + row0;   // (m,hd), stride QD
                real *dqh = dq + row0;
                const real *lh = lse + ((size_t)b * H + h) * T + t0;
                // recompute P (m,end) = exp(scale · q_blk k_gᵀ - lse), zero for future keys
                gemm(0, 1, m, end, hd, scale, qh, QD, kg, KD, 0, P, end);
                for (int i = 0; i < m; i++) {
                    real *row = P + (size_t)i * end, l = lh[i];
                    int n = t0 + i + 1;
                    for (int j = 0; j < n; j++) row[j] = exp_shifted(row[j] - l);
                    for (int j = n; j < end; j++) row[j] = 0;
                }
                // dV_g[0:end] += Pᵀ dO_blk: summed over query blocks and the n_rep heads (GQA)
                gemm(1, 0, end, hd, m, 1, P, end, doh, QD, 1, dvg, ld);
                // dP (m,end) = dO_blk v_g[0:end]ᵀ
                gemm(0, 1, m, end, hd, 1, doh, QD, vg, KD, 0, dS, end);
                // softmax backward: dS = P ⊙ (dP - D), D_t = Σ_j P[t,j] dP[t,j] = dO_t · O_t
                // (the second form costs hd instead of end per row). Future keys have P = 0.
                for (int i = 0; i < m; i++) {
                    const real *dO_t = doh + (size_t)i * QD, *O_t = oh + (size_t)i * QD;
                    real D = 0;
                    for (int c = 0; c < hd; c++) D += dO_t[c] * O_t[c];
                    real *prow = P + (size_t)i * end, *drow = dS + (size_t)i * end;
                    for (int j = 0; j < end; j++) drow[j] = prow[j] * (drow[j] - D);
                }
                // S = scale · q kᵀ:  dQ_blk (m,hd) = scale · dS k_g[0:end];  dK_g[0:end] += scale · dSᵀ q_blk
                gemm(0, 0, m, hd, end, scale, dS, end, kg, KD, 0, dqh, QD);
                gemm(1, 0, end, hd, m, scale, dS, end, qh, QD, 1, dkg, ld);
            }
        }
    }
    if (parts == 1) return;
    // add the parts 1.. into dk, dv, in part order (every element sums the same way every time)
    #pragma omp parallel for num_threads(d->nthreads) schedule(static)
    for (int bt = 0; bt < items * T; bt++) {
        int bg = bt / T, t = bt % T, b = bg / Hkv, g = bg % Hkv;
        real *dkt = dk + ((size_t)b * T + t) * KD + g * hd, *dvt = dv + ((size_t)b * T + t) * KD + g * hd;
        for (int part = 1; part < parts; part++) {
            const real *pk = partials + ((size_t)bg * (parts - 1) + part - 1) * 2 * T * hd + (size_t)t * hd;
            const real *pv = pk + (size_t)T * hd;
            for (int c = 0; c < hd; c++) { dkt[c] += pk[c]; dvt[c] += pv[c]; }
        }
    }
}
