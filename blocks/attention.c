// attention.c: causal multi-head self-attention, symbol '*' (blocks.md §3.3, §6.1-6.3, §7.7).
//
//   q = x Wqᵀ (B,T,H,hd)   k = x Wkᵀ, v = x Wvᵀ (B,T,Hkv,hd)
//   q, k = RoPE(q), RoPE(k)                       (optional; Jamba has no positional encoding)
//   per batch row b and query head h, reading kv head g = h / n_rep (GQA, n_rep = H/Hkv):
//     S = scale · q_h k_gᵀ (T,T),  causal mask,  P = softmax(S),  O_h = P v_g (T,hd)
//   out = O Wo_projᵀ (B,T,C)
//
// Memory: like flash attention, forward keeps only the output O and the log-sum-exp of every
// score row (B,H,T); backward recomputes the scores from q and k and rebuilds P = exp(S - lse).
// That trades one extra q·kᵀ product for not storing B·H·T² probabilities.
//
// Threads: one OpenMP item per (batch row, kv head). The n_rep query heads of a kv head run in
// its inner loop, so that k_g, v_g stay in cache, and so that in backward the GQA sums of dK and
// dV over those heads happen inside one thread: no races, no atomics, and a fixed summation
// order, hence bitwise reproducible results for any thread count.
#include "attention.h"
#include "model.h"
#include "ops.h"
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define K_HEADS "model.attention.heads"
#define K_KV_HEADS "model.attention.kv_heads"
#define K_HEAD_DIM "model.attention.head_dim"
#define K_ROPE "model.attention.rope"
#define K_ROPE_THETA "model.attention.rope_theta"
#define K_SCALE "model.attention.scale"

const KeySpec attention_keys[] = {
    {K_HEADS, KT_INT, "4", 1, 65536, NULL, 0, "query heads (H)"},
    {K_KV_HEADS, KT_INT, "auto", 1, 65536, NULL, 1,
     "key/value heads (Hkv, grouped-query attention); must divide heads; auto = heads, 1 = multi-query"},
    {K_HEAD_DIM, KT_INT, "auto", 1, 65536, NULL, 1, "width of one head (hd); auto = d_model/heads"},
    {K_ROPE, KT_BOOL, "false", 0, -1, NULL, 0,
     "rotary position embedding on q and k (Llama rotate-half convention); Jamba uses none"},
    {K_ROPE_THETA, KT_FLOAT, "10000", 1, 1e12, NULL, 0, "RoPE base (theta): 10000 Llama, 1e6 Mixtral"},
    {K_SCALE, KT_FLOAT, "auto", 0, 1e6, NULL, 1, "score scale; auto = head_dim^-0.5 (Zamba uses (head_dim/2)^-0.5)"},
    {NULL, 0, NULL, 0, 0, NULL, 0, NULL}};

typedef struct {
    int C, H, Hkv, hd, n_rep;
    int rope;
    real scale;
    int Wq, Wk, Wv, Wo;        // parameter indices (L->p[], L->g[])
    int q, k, v, att, lse;     // activation indices (see declare_acts)
    int nthreads;              // per-thread scratch was sized for this many threads
    int rope_T;                // RoPE tables cover positions 0..rope_T-1
    real rope_tab[];           // cos (rope_T, hd/2), then sin (rope_T, hd/2)
} Attn;

// ----------------------------------------------------------------------------
// config

static void attn_dims(const Config *c, long *H, long *Hkv, long *hd) {
    *H = cfg_int(c, K_HEADS);
    *Hkv = cfg_is_auto(c, K_KV_HEADS) ? *H : cfg_int(c, K_KV_HEADS);
    *hd = cfg_is_auto(c, K_HEAD_DIM) ? cfg_int(c, "model.d_model") / *H : cfg_int(c, K_HEAD_DIM);
}

// Up to four divisors of n nearest to `want` (1 only when n has no other), ascending: the
// suggestions in error messages ("use a divisor of 100 such as 2, 4, 5, 10").
static const char *near_divisors(long n, long want, char *buf, size_t size) {
    long pick[4];
    int np = 0;
    for (int round = 0; round < 4; round++) {
        long best = 0;
        for (long d = 1; d <= n; d++) {
            if (n % d || (d == 1 && n > 1)) continue;
            int taken = 0;
            for (int i = 0; i < np; i++) taken |= pick[i] == d;
            if (taken) continue;
            if (!best || labs(d - want) < labs(best - want)) best = d;
        }
        if (!best) break;
        pick[np++] = best;
    }
    if (np == 0) pick[np++] = 1;
    for (int i = 1; i < np; i++)      // insertion sort, 4 elements at most
        for (int j = i; j > 0 && pick[j - 1] > pick[j]; j--) { long t = pick[j]; pick[j] = pick[j - 1]; pick[j - 1] = t; }
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < np && len < size; i++)
        len += snprintf(buf + len, size - len, "%s%ld", i ? ", " : "", pick[i]);
    return buf;
}

static int attention_validate(const Config *c, ConfError *err) {
    long C = cfg_int(c, "model.d_model"), H, Hkv, hd;
    attn_dims(c, &H, &Hkv, &hd);
    char sug[64];
    if (cfg_is_auto(c, K_HEAD_DIM) && C % H)
        return cfg_error(c, K_HEADS, err,
                         "d_model %ld is not divisible by " K_HEADS " %ld: use a divisor of %ld such as %s, "
                         "or set " K_HEAD_DIM " explicitly", C, H, C, near_divisors(C, H, sug, sizeof sug));
    if (H % Hkv)
        return cfg_error(c, K_KV_HEADS, err,
                         K_HEADS " %ld is not divisible by " K_KV_HEADS " %ld: use a divisor of %ld such as %s "
                         "(1 = multi-query, %ld = multi-head)", H, Hkv, H, near_divisors(H, Hkv, sug, sizeof sug), H);
    if (cfg_bool(c, K_ROPE) && hd % 2)
        return cfg_error(c, K_ROPE, err,
                         "RoPE rotates the two halves of each head and needs an even head_dim, but head_dim is %ld%s: "
                         "set " K_HEAD_DIM " to an even value, change d_model or heads, or turn rope off",
                         hd, cfg_is_auto(c, K_HEAD_DIM) ? " (d_model/heads)" : "");
    return 0;
}

// ----------------------------------------------------------------------------
// declaration and init

static void attention_declare(Layer *L) {
    Attn *p = xcalloc(1, sizeof(Attn));
    L->priv = p;
    long H, Hkv, hd;
    attn_dims(L->cfg, &H, &Hkv, &hd);
    p->C = L->model->C; p->H = (int)H; p->Hkv = (int)Hkv; p->hd = (int)hd; p->n_rep = (int)(H / Hkv);
    p->rope = cfg_bool(L->cfg, K_ROPE);
    p->scale = (real)(cfg_is_auto(L->cfg, K_SCALE) ? 1.0 / sqrt((double)hd) : cfg_num(L->cfg, K_SCALE));
    long C = p->C, QD = H * hd, KD = Hkv * hd;
    p->Wq = layer_param(L, "q_proj.weight", 1, 2, QD, C, 0, 0);
    p->Wk = layer_param(L, "k_proj.weight", 1, 2, KD, C, 0, 0);
    p->Wv = layer_param(L, "v_proj.weight", 1, 2, KD, C, 0, 0);
    p->Wo = layer_param(L, "o_proj.weight", 1, 2, C, QD, 0, 0);
}

static void attention_declare_acts(Layer *L, int B, int T) {
    Attn *p = L->priv;
    size_t N = (size_t)B * T, QD = (size_t)p->H * p->hd, KD = (size_t)p->Hkv * p->hd;
    p->q = layer_act(L, N * QD);              // (B,T,H,hd)   q after RoPE
    p->k = layer_act(L, N * KD);              // (B,T,Hkv,hd) k after RoPE
    p->v = layer_act(L, N * KD);              // (B,T,Hkv,hd)
    p->att = layer_act(L, N * QD);            // (B,T,H,hd)   attention output O, input of o_proj
    p->lse = layer_act(L, N * p->H);          // (B,H,T)      log Σ_j exp(S[t,j]) of every score row
    // Scratch. backward: dO, dq (B,T,H*hd), dk, dv (B,T,Hkv*hd), then per thread the score
    // matrix and its gradient (T,T) each. forward uses only the per-thread score matrices.
    p->nthreads = layer_threads();
    layer_scratch(L, 2 * N * QD + 2 * N * KD + (size_t)p->nthreads * 2 * T * T);

    // RoPE cos/sin tables for positions 0..T-1 (blocks.md §6.1), once, not in every forward:
    // inv_freq[i] = θ^(-2i/hd), angle = t·inv_freq[i] computed in double, both halves of a head
    // share the angle (emb = concat(freqs, freqs)), so (T, hd/2) of each suffices.
    if (p->rope) {
        int half = p->hd / 2;
        p = xrealloc(p, sizeof(Attn) + 2 * (size_t)T * half * sizeof(real));
        L->priv = p;
        p->rope_T = T;
        real *cs = p->rope_tab, *sn = p->rope_tab + (size_t)T * half;
        double theta = cfg_num(L->cfg, K_ROPE_THETA);
        for (int t = 0; t < T; t++)
            for (int i = 0; i < half; i++) {
                double ang = t * pow(theta, -2.0 * i / p->hd);
                cs[(size_t)t * half + i] = (real)cos(ang);
                sn[(size_t)t * half + i] = (real)sin(ang);
            }
    }
}

static void attention_init(Layer *L, Rng *rng) {
    Attn *p = L->priv;
    double std = cfg_num(L->cfg, "model.init_std");
    init_normal(L->p[p->Wq], layer_param_numel(L, p->Wq), std, rng);
    init_normal(L->p[p->Wk], layer_param_numel(L, p->Wk), std, rng);
    init_normal(L->p[p->Wv], layer_param_numel(L, p->Wv), std, rng);
    // GPT-2 style: the projection into the residual stream shrinks with the number of sublayers
    // that add into it, so the stream's variance at init does not grow with depth
    init_normal(L->p[p->Wo], layer_param_numel(L, p->Wo), std / sqrt((double)L->model->nsub), rng);
}

// ----------------------------------------------------------------------------
// RoPE, in place on x (B,T,nh,hd): rotate_half(x) = concat(-x2, x1) with x1, x2 the two halves
// of a head (not interleaved pairs), x' = x ⊙ cos + rotate_half(x) ⊙ sin, i.e. per i < hd/2:
//   x1' = x1 cos - x2 sin,   x2' = x2 cos + x1 sin

static void rope_forward(real *x, const Attn *p, int B, int T, int nh) {
    int hd = p->hd, half = hd / 2;
    const real *cs = p->rope_tab, *sn = p->rope_tab + (size_t)p->rope_T * half;
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
static void rope_backward(real *dx, const Attn *p, int B, int T, int nh) {
    int hd = p->hd, half = hd / 2;
    const real *cs = p->rope_tab, *sn = p->rope_tab + (size_t)p->rope_T * half;
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
// forward and backward

static void attention_forward(Layer *L, real *out, const real *in, int B, int T) {
    Attn *p = L->priv;
    if (p->rope && T > p->rope_T) die("%s: sequence length %d exceeds the RoPE tables (%d)", L->prefix, T, p->rope_T);
    int C = p->C, H = p->H, Hkv = p->Hkv, hd = p->hd, n_rep = p->n_rep, N = B * T;
    int QD = H * hd, KD = Hkv * hd;   // row strides of q (and O) and of k, v
    real *q = L->a[p->q], *k = L->a[p->k], *v = L->a[p->v], *att = L->a[p->att], *lse = L->a[p->lse];
    real scale = p->scale;

    // projections: q (B,T,H*hd), k, v (B,T,Hkv*hd)
    matmul_forward(q, in, L->p[p->Wq], NULL, N, C, QD);
    matmul_forward(k, in, L->p[p->Wk], NULL, N, C, KD);
    matmul_forward(v, in, L->p[p->Wv], NULL, N, C, KD);
    if (p->rope) {
        rope_forward(q, p, B, T, H);
        rope_forward(k, p, B, T, Hkv);
    }

    real *scratch = layer_scratch_ptr(L);
    #pragma omp parallel for num_threads(p->nthreads) schedule(static)
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

    // out (B,T,C) = O o_projᵀ
    matmul_forward(out, att, L->p[p->Wo], NULL, N, QD, C);
}

static void attention_backward(Layer *L, real *din, const real *dout, const real *in, int B, int T) {
    Attn *p = L->priv;
    int C = p->C, H = p->H, Hkv = p->Hkv, hd = p->hd, n_rep = p->n_rep, N = B * T;
    int QD = H * hd, KD = Hkv * hd;
    const real *q = L->a[p->q], *k = L->a[p->k], *v = L->a[p->v], *att = L->a[p->att], *lse = L->a[p->lse];
    real scale = p->scale;
    real *datt = layer_scratch_ptr(L);                // (B,T,H*hd)   dO
    real *dq = datt + (size_t)N * QD;                 // (B,T,H*hd)
    real *dk = dq + (size_t)N * QD;                   // (B,T,Hkv*hd)
    real *dv = dk + (size_t)N * KD;                   // (B,T,Hkv*hd)
    real *thread_buf = dv + (size_t)N * KD;           // nthreads × 2 × (T,T)

    // o_proj: dWo += doutᵀ O;  dO (B,T,H*hd) = dout Wo
    matmul_backward(datt, L->g[p->Wo], NULL, dout, att, L->p[p->Wo], N, QD, C, 0);

    #pragma omp parallel for num_threads(p->nthreads) schedule(static)
    for (int bg = 0; bg < B * Hkv; bg++) {
        int b = bg / Hkv, g = bg % Hkv;
        real *P = thread_buf + (size_t)omp_get_thread_num() * 2 * T * T;   // (T,T)
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

    // gradients arrived at the rotated q, k: take them back through RoPE
    if (p->rope) {
        rope_backward(dq, p, B, T, H);
        rope_backward(dk, p, B, T, Hkv);
    }
    // projections: dW += dᵀ x;  din (B,T,C) = dq Wq + dk Wk + dv Wv
    matmul_backward(din, L->g[p->Wq], NULL, dq, in, L->p[p->Wq], N, C, QD, 0);
    matmul_backward(din, L->g[p->Wk], NULL, dk, in, L->p[p->Wk], N, C, KD, 1);
    matmul_backward(din, L->g[p->Wv], NULL, dv, in, L->p[p->Wv], N, C, KD, 1);
}

// ----------------------------------------------------------------------------
// accounting

static double attention_flops_per_token(const Layer *L, long ctx) {
    const Attn *p = L->priv;
    double C = p->C, QD = (double)p->H * p->hd, KD = (double)p->Hkv * p->hd;
    // q, k, v, o projections, then scores q·k and the P·v sum over ctx positions, for every head
    return 2 * (C * QD + 2 * C * KD + QD * C) + 4 * QD * (double)ctx;
}

static double attention_cache_elems(const Layer *L, long ctx) {
    const Attn *p = L->priv;
    return 2.0 * p->Hkv * p->hd * (double)ctx;   // k and v of every past position
}

const BlockType attention_block = {
    .name = "attention",
    .symbol = '*',
    .role = ROLE_MIXER,
    .module = "self_attn",
    .own_norm = 0,
    .residual = 1,
    .cache = CACHE_KV,
    .keys = attention_keys,
    .validate = attention_validate,
    .declare = attention_declare,
    .declare_acts = attention_declare_acts,
    .init = attention_init,
    .forward = attention_forward,
    .backward = attention_backward,
    .flops_per_token = attention_flops_per_token,
    .cache_elems = attention_cache_elems,
};
