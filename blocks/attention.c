// attention.c: causal multi-head self-attention, symbol '*' (blocks.md §3.3, §6.1-6.3, §7.7).
//
//   q = x Wqᵀ (B,T,H,hd)   k = x Wkᵀ, v = x Wvᵀ (B,T,Hkv,hd)
//   q, k = RoPE(q), RoPE(k)                       (optional; Jamba has no positional encoding)
//   per batch row b and query head h, reading kv head g = h / n_rep (GQA, n_rep = H/Hkv):
//     S = scale · q_h k_gᵀ (T,T),  causal mask,  P = softmax(S),  O_h = P v_g (T,hd)
//   out = O Wo_projᵀ (B,T,C)
//
// RoPE and the attention itself (queries in blocks of Bq rows over causal keys only, flash-style
// recompute-from-lse backward, per-thread (Bq,T) scratch) live in attn_core.c, shared with the
// Zamba block (shared.c).
//
// Generation (state_size, state_from_forward, step): the state is a KV cache, k and v of every
// position so far (k after RoPE), and the step attends one new query row to it (attn_cache.c).
#include "attention.h"
#include "attn_cache.h"
#include "attn_core.h"
#include "model.h"
#include "ops.h"
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
    int C, H, Hkv, hd;
    int rope;
    double theta;              // RoPE base: the step computes its angles from it, for any position
    AttnDims dims;             // heads, head width, scale, threads: what attn_core needs
    int Wq, Wk, Wv, Wo;        // parameter indices (L->p[], L->g[])
    int q, k, v, att, lse;     // activation indices (see declare_acts)
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
    p->C = L->model->C; p->H = (int)H; p->Hkv = (int)Hkv; p->hd = (int)hd;
    p->rope = cfg_bool(L->cfg, K_ROPE);
    p->theta = cfg_num(L->cfg, K_ROPE_THETA);
    p->dims.H = p->H; p->dims.Hkv = p->Hkv; p->dims.hd = p->hd;
    p->dims.scale = (real)(cfg_is_auto(L->cfg, K_SCALE) ? 1.0 / sqrt((double)hd) : cfg_num(L->cfg, K_SCALE));
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
    // Scratch. backward: dO, dq (B,T,H*hd), dk, dv (B,T,Hkv*hd), then attn_core's per-thread
    // score blocks (Bq,T). forward uses only the latter.
    p->dims.nthreads = layer_threads();
    layer_scratch(L, 2 * N * QD + 2 * N * KD + attn_core_scratch(&p->dims, T));

    // RoPE cos/sin tables for positions 0..T-1 (blocks.md §6.1), once, not in every forward
    if (p->rope) {
        p = xrealloc(p, sizeof(Attn) + attn_rope_table_len(p->hd, T) * sizeof(real));
        L->priv = p;
        p->rope_T = T;
        attn_rope_table(p->rope_tab, p->hd, T, p->theta);
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
// forward and backward

static void attention_forward(Layer *L, real *out, const real *in, int B, int T) {
    Attn *p = L->priv;
    if (p->rope && T > p->rope_T) die("%s: sequence length %d exceeds the RoPE tables (%d)", L->prefix, T, p->rope_T);
    int C = p->C, H = p->H, Hkv = p->Hkv, hd = p->hd, N = B * T;
    int QD = H * hd, KD = Hkv * hd;   // row strides of q (and O) and of k, v
    real *q = L->a[p->q], *k = L->a[p->k], *v = L->a[p->v], *att = L->a[p->att], *lse = L->a[p->lse];

    // projections: q (B,T,H*hd), k, v (B,T,Hkv*hd)
    matmul_forward(q, in, L->p[p->Wq], NULL, N, C, QD);
    matmul_forward(k, in, L->p[p->Wk], NULL, N, C, KD);
    matmul_forward(v, in, L->p[p->Wv], NULL, N, C, KD);
    if (p->rope) {
        attn_rope_forward(q, p->rope_tab, p->rope_T, B, T, H, hd);
        attn_rope_forward(k, p->rope_tab, p->rope_T, B, T, Hkv, hd);
    }
    // O (B,T,H*hd) = softmax(scale · q kᵀ, causal) v per head; lse kept for backward
    attn_core_forward(att, lse, q, k, v, &p->dims, B, T, layer_scratch_ptr(L));
    // out (B,T,C) = O o_projᵀ
    matmul_forward(out, att, L->p[p->Wo], NULL, N, QD, C);
}

static void attention_backward(Layer *L, real *din, const real *dout, const real *in, int B, int T) {
    Attn *p = L->priv;
    int C = p->C, H = p->H, Hkv = p->Hkv, hd = p->hd, N = B * T;
    int QD = H * hd, KD = Hkv * hd;
    const real *q = L->a[p->q], *k = L->a[p->k], *v = L->a[p->v], *att = L->a[p->att], *lse = L->a[p->lse];
    real *datt = layer_scratch_ptr(L);                // (B,T,H*hd)   dO
    real *dq = datt + (size_t)N * QD;                 // (B,T,H*hd)
    real *dk = dq + (size_t)N * QD;                   // (B,T,Hkv*hd)
    real *dv = dk + (size_t)N * KD;                   // (B,T,Hkv*hd)
    real *core_buf = dv + (size_t)N * KD;             // attn_core's per-thread (Bq,T) score blocks

    // o_proj: dWo += doutᵀ O;  dO (B,T,H*hd) = dout Wo
    matmul_backward(datt, L->g[p->Wo], NULL, dout, att, L->p[p->Wo], N, QD, C, 0);
    // through the softmax attention: dq, dk, dv (GQA sums included)
    attn_core_backward(dq, dk, dv, datt, q, k, v, att, lse, &p->dims, B, T, core_buf);
    // gradients arrived at the rotated q, k: take them back through RoPE
    if (p->rope) {
        attn_rope_backward(dq, p->rope_tab, p->rope_T, B, T, H, hd);
        attn_rope_backward(dk, p->rope_tab, p->rope_T, B, T, Hkv, hd);
    }
    // projections: dW += dᵀ x;  din (B,T,C) = dq Wq + dk Wk + dv Wv
    matmul_backward(din, L->g[p->Wq], NULL, dq, in, L->p[p->Wq], N, C, QD, 0);
    matmul_backward(din, L->g[p->Wk], NULL, dk, in, L->p[p->Wk], N, C, KD, 1);
    matmul_backward(din, L->g[p->Wv], NULL, dv, in, L->p[p->Wv], N, C, KD, 1);
}

// ----------------------------------------------------------------------------
// inference: one sequence, one token per step
//
// State: the KV cache, rows j = 0..max_T-1 of [k_j | v_j] (attn_cache.h), k after RoPE. The
// step's workspace lies past the last filled row, so no offset depends on max_T:
//   at row pos+1:  q (H·hd) | att (H·hd) | scores (H, pos+1)
// state_size leaves room for it even when pos = max_T-1 (no free rows left).

static size_t attention_state_size(const Layer *L, int max_T) {
    const Attn *p = L->priv;
    size_t QD = (size_t)p->H * p->hd;
    return (size_t)max_T * ATTN_KV_ROW(&p->dims) + 2 * QD + attn_cache_scratch(&p->dims, max_T);
}

static void attention_state_from_forward(Layer *L, real *state, int T) {
    // forward ran with B = 1: its k (already rotated) and v are (T, Hkv·hd) each; interleave
    // them into the cache rows
    Attn *p = L->priv;
    size_t KD = (size_t)p->Hkv * p->hd, ld = ATTN_KV_ROW(&p->dims);
    const real *k = L->a[p->k], *v = L->a[p->v];
    for (int t = 0; t < T; t++) {
        memcpy(state + t * ld, k + t * KD, KD * sizeof(real));
        memcpy(state + t * ld + KD, v + t * KD, KD * sizeof(real));
    }
}

static void attention_step(Layer *L, real *out, const real *in, real *state, int pos) {
    Attn *p = L->priv;
    int C = p->C, QD = p->H * p->hd, KD = p->Hkv * p->hd;
    size_t ld = ATTN_KV_ROW(&p->dims);
    real *krow = state + pos * ld, *vrow = krow + KD;   // this position's cache row
    real *q = state + (pos + 1) * ld;                    // (H·hd) workspace past the filled rows
    real *att = q + QD;                                  // (H·hd)
    real *work = att + QD;                               // (H, pos+1) scores
    // q (H·hd), and k, v (Hkv·hd) straight into the cache row
    matmul_forward(q, in, L->p[p->Wq], NULL, 1, C, QD);
    matmul_forward(krow, in, L->p[p->Wk], NULL, 1, C, KD);
    matmul_forward(vrow, in, L->p[p->Wv], NULL, 1, C, KD);
    if (p->rope) {
        attn_rope_row(q, p->H, p->hd, pos, p->theta);
        attn_rope_row(krow, p->Hkv, p->hd, pos, p->theta);
    }
    // att = softmax(scale · q kᵀ) v over positions 0..pos (the row itself included)
    attn_cache_attend(att, q, state, &p->dims, pos + 1, work);
    // out (C) = att o_projᵀ
    matmul_forward(out, att, L->p[p->Wo], NULL, 1, QD, C);
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
    // k and v of every past position (state_size adds the step's workspace, which is not kept)
    return 2.0 * p->Hkv * p->hd * (double)ctx;
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
    .state_size = attention_state_size,
    .state_from_forward = attention_state_from_forward,
    .step = attention_step,
};
