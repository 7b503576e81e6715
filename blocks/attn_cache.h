// attn_cache.h: one query row against a KV cache, for generation (core/generate.c): the
// single-token counterpart of attn_core's parallel forward. Used by the steps of the attention
// block ('*', attention.c) and the Zamba shared block ('S', shared.c).
//
// Cache layout, one sequence: row j = [k_j (Hkv·hd) | v_j (Hkv·hd)], rows ATTN_KV_ROW(d) apart,
// k after RoPE as the forward keeps it. Rows are filled from the front, so the layout does not
// depend on how many positions the buffer was sized for: the block's step and
// state_from_forward never need that number (they are not told it), and the space past the
// last filled row is free for the step's workspace. Query head h reads kv head h / n_rep.
#pragma once
#include "attn_core.h"

#define ATTN_KV_ROW(d) (2 * (size_t)(d)->Hkv * (d)->hd)   // reals per cache row (k and v)

// Reals of work space attn_cache_attend needs for contexts of up to max_T positions: one score
// row per query head, so that heads can run on different threads.
size_t attn_cache_scratch(const AttnDims *d, int max_T);
// out (H·hd) = per query head h, g = h / n_rep:  softmax_j(scale · q_h·k_{j,g}) v_{j,g} over
// j = 0..n-1 (the query sits at position n-1; the cache rows 0..n-1 are filled).
// q (H·hd); kv: the cache (rows 0..n-1 read); work: attn_cache_scratch(d, n) reals at least.
void attn_cache_attend(real *out, const real *q, const real *kv, const AttnDims *d, int n, real *work);
// RoPE of one row x (nh, hd) at position pos, in place: the same numbers as attn_rope_forward
// with a table from attn_rope_table(.., theta), for any pos (no table, no length limit).
void attn_rope_row(real *x, int nh, int hd, int pos, double theta);
