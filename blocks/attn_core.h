// attn_core.h: the parts of causal softmax attention that do not depend on where q, k, v come
// from: RoPE (blocks.md §6.1, §7.7) and the attention itself with GQA (§6.2, §6.3, §7.7).
// The attention block ('*', attention.c) and the Zamba shared block ('S', shared.c) both use it.
//
// Layouts, as the projections produce them (row-major, one row per token):
//   q, att (B,T,H,hd)      row stride QD = H·hd
//   k, v   (B,T,Hkv,hd)    row stride KD = Hkv·hd
//   lse    (B,H,T)         log Σ_j exp(S[t,j]) of every score row, kept by forward
// Query head h reads kv head h / n_rep, n_rep = H / Hkv.
#pragma once
#include "common.h"

typedef struct {
    int H, Hkv, hd;      // query heads, key/value heads, head width
    real scale;          // S = scale · q kᵀ
    int nthreads;        // OpenMP threads; per-thread scratch is sized for this many
    int bq;              // query rows per block; 0 until attn_core_scratch fixes it (from attn_core_block_q)
} AttnDims;

// Query rows per block (Bq) for dims whose scratch is sized after this is set. The scratch is
// linear in T (Bq·T per thread), not T². Tests lower it to cover several blocks at small T.
extern int attn_core_block_q;

// ----------------------------------------------------------------------------
// RoPE tables: cos (T, hd/2), then sin (T, hd/2), for positions 0..T-1, angle t·θ^(-2i/hd)
// computed in double. Both halves of a head share an angle (emb = concat(freqs, freqs)).
size_t attn_rope_table_len(int hd, int T);
void attn_rope_table(real *tab, int hd, int T, double theta);
// In place on x (B,T,nh,hd), x contiguous with row stride nh·hd; tab from attn_rope_table with
// tab_T >= T positions. Rotate-half convention (halves, not interleaved pairs).
void attn_rope_forward(real *x, const real *tab, int tab_T, int B, int T, int nh, int hd);
// The transpose of the rotation, in place on the gradient of the rotated values.
void attn_rope_backward(real *dx, const real *tab, int tab_T, int B, int T, int nh, int hd);

// ----------------------------------------------------------------------------
// Causal attention, processed in blocks of Bq query rows that see only their causal keys.
// scratch: attn_core_scratch(d, T) reals, which also fixes d->bq; forward and backward then take
// any T up to that one (and B of any size).
size_t attn_core_scratch(AttnDims *d, int T);
// att (B,T,H·hd) = softmax(scale · q kᵀ + causal mask) v per head; lse (B,H,T) kept for backward.
void attn_core_forward(real *att, real *lse, const real *q, const real *k, const real *v,
                       const AttnDims *d, int B, int T, real *scratch);
// From datt = d(att): dq (B,T,H·hd), dk, dv (B,T,Hkv·hd), all overwritten. q, k, v, att, lse
// as forward saw and left them (the scores are recomputed from q, k and lse).
void attn_core_backward(real *dq, real *dk, real *dv, const real *datt, const real *q,
                        const real *k, const real *v, const real *att, const real *lse,
                        const AttnDims *d, int B, int T, real *scratch);
