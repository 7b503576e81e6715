// shared.c: the Zamba/Zamba2 shared transformer block, symbol 'S' (blocks.md §4.2, §4.4, §7.9).
// The j-th S of the pattern (j = L->invocation) runs shared block k = j % model.shared.blocks
// (A, B, A, B ... with two blocks) on the raw residual stream h (B,T,C):
//
//   c   = concat(h, e0)  (B,T,W), W = 2C      (W = C, c = h without model.shared.concat_embedding)
//   cn  = RMSNorm_W(c)                         input_layernorm                          shared
//   q   = cn Wqᵀ [+ cn Aq_jᵀ Bq_jᵀ]  (B,T,H·hd), hd = W/H    k, v likewise (B,T,Hkv·hd)
//   q,k = RoPE(q), RoPE(k)                     model.shared.rope, after the adapters, full hd
//   att = softmax((hd/2)^-0.5 · q kᵀ, causal) v  per head (GQA)   (B,T,H·hd)
//   a   = att Woᵀ                  (B,T,C)     o_proj                                   shared
//   mn  = RMSNorm_C(a)                         pre_ff_layernorm                         shared
//   gu  = mn Wguᵀ [+ mn A_jᵀ B_jᵀ]  (B,T,2F)   fused gate_up_proj; g = gu[:F], u = gu[F:]
//   tp  = (act(g) ⊙ u) Wdᵀ         (B,T,C)     act = exact erf GELU (Zamba2) or SiLU
//   out = tp Wlin_jᵀ               (B,T,C)     model.layers.{i}.linear, per invocation
//
// No residual additions inside. The core adds `out` to the NEXT sublayer's norm input only
// (residual = 0): h = h + Mamba(RMSNorm(h + out)), Zamba's hybrid layer. [..] are the
// per-invocation LoRA adapters (A: in → r, B: r → out, no bias), each trained only by its own
// invocation; the shared weights collect the gradient of every invocation (backward does +=).
//
// Backward of the concat: the h half of d(c) is din, the e0 half is added into Model.de0, which
// the core adds into the embedding gradient (§7.9: d e0 gets a term from every invocation).
//
// Generation: every invocation keeps its own KV cache (its input differs even where the weights
// are shared; the core gives each layer its own state), and the step runs the whole block on
// one row, the concat reading the current token's embedding from e0 row 0.
#include "shared.h"
#include "attn_cache.h"
#include "attn_core.h"
#include "model.h"
#include "ops.h"
#include <omp.h>
#include <stdarg.h>
#include <string.h>

#define KEY(k) "model.shared_attn." k

const KeySpec shared_attn_keys[] = {
    {KEY("heads"), KT_INT, "4", 1, 65536, NULL, 0,
     "query heads of the shared attention (H); head width = input width / H, the input width being "
     "2*d_model with model.shared.concat_embedding, else d_model (Zamba2 num_attention_heads)"},
    {KEY("kv_heads"), KT_INT, "auto", 1, 65536, NULL, 1,
     "key/value heads of the shared attention (GQA); must divide heads; auto = heads (Zamba2 uses MHA)"},
    {KEY("scale"), KT_FLOAT, "auto", 0, 1e6, NULL, 1,
     "score scale of the shared attention; auto = (head_dim/2)^-0.5 as Zamba (the concatenation doubles the head width)"},
    {KEY("rope_theta"), KT_FLOAT, "10000", 1, 1e12, NULL, 0,
     "RoPE base of the shared attention when model.shared.rope is on (Zamba2 rope_theta)"},
    {KEY("mlp_hidden"), KT_INT, "auto", 1, 16777216, NULL, 1,
     "hidden width F of the shared MLP (gate_up_proj is (2F, d_model)); auto = 4*d_model (Zamba2 intermediate_size)"},
    {KEY("adapter_slots"), KT_STRING, "used", 0, -1, "used|all", 0,
     "used: each shared block holds adapters only for the invocations that use it (Hugging Face Zamba2); "
     "all: every block holds a slot for every invocation, as Zyphra's released checkpoints do (the unused "
     "slots are never applied and stay zero; they matter for parameter counts and checkpoint layout)"},
    {KEY("activation"), KT_STRING, "gelu", 0, -1, "gelu|silu", 0,
     "activation of the first half of the shared MLP's gate_up: gelu (exact erf form, Zamba2) or silu (SwiGLU)"},
    {NULL, 0, NULL, 0, 0, NULL, 0, NULL}};

enum { ACT_GELU, ACT_SILU };

typedef struct {
    int C, W, H, Hkv, hd, F, r;   // widths: stream, attention input, heads, head, MLP hidden, LoRA rank
    int concat, rope, lora_qkv, act;
    int blk, inv;                 // shared block k this invocation runs, and the invocation j
    double theta;                 // RoPE base (the step computes its angles for any position)
    AttnDims dims;
    // parameters (L->p[], L->g[]); the adapters are -1 when absent
    int ln1, Wq, Wk, Wv, Wo, ln2, Wgu, Wd;      // shared by every invocation of block k
    int Agu, Bgu, Aqkv[3], Bqkv[3], Wlin;        // this invocation's own
    // activations (see declare_acts)
    int cn, rstd1, q, k, v, att, lse, aqkv[3], a, rstd2, mn, gu, am, tp;
    int rope_T;                   // RoPE tables cover positions 0..rope_T-1
    real rope_tab[];              // cos (rope_T, hd/2), then sin (rope_T, hd/2)
} Shared;

// ----------------------------------------------------------------------------
// config

typedef struct { long C, W, H, Hkv, hd, F; } Dims;

static Dims shared_dims(const Config *c) {
    Dims d;
    d.C = cfg_int(c, "model.d_model");
    d.W = cfg_bool(c, "model.shared.concat_embedding") ? 2 * d.C : d.C;
    d.H = cfg_int(c, KEY("heads"));
    d.Hkv = cfg_is_auto(c, KEY("kv_heads")) ? d.H : cfg_int(c, KEY("kv_heads"));
    d.hd = d.W / d.H;
    d.F = cfg_is_auto(c, KEY("mlp_hidden")) ? 4 * d.C : cfg_int(c, KEY("mlp_hidden"));
    return d;
}

static int shared_validate(const Config *c, ConfError *err) {
    Dims d = shared_dims(c);
    int concat = cfg_bool(c, "model.shared.concat_embedding");
    if (d.W % d.H)
        return cfg_error(c, KEY("heads"), err,
                         "the shared attention's input width %ld (%s) is not divisible by %ld heads; "
                         "use a divisor of %ld", d.W, concat ? "2*d_model, model.shared.concat_embedding is on" : "d_model",
                         d.H, d.W);
    if (d.Hkv > d.H || d.H % d.Hkv)
        return cfg_error(c, KEY("kv_heads"), err,
                         "must divide " KEY("heads") " (%ld), but is %ld: use a divisor of %ld (1 = multi-query, %ld = multi-head)",
                         d.H, d.Hkv, d.H, d.H);
    if (cfg_bool(c, "model.shared.rope") && d.hd % 2)
        return cfg_error(c, "model.shared.rope", err,
                         "RoPE rotates the two halves of each head and needs an even head width, but the shared "
                         "attention's is %ld (input width %ld / %ld heads): change " KEY("heads") " or d_model, or turn rope off",
                         d.hd, d.W, d.H);
    if (cfg_bool(c, "model.shared.lora_qkv") && cfg_int(c, "model.shared.lora_rank") == 0)
        return cfg_error(c, "model.shared.lora_qkv", err,
                         "q/k/v adapters need a rank, but model.shared.lora_rank is 0: set it (Zamba2 uses 128), "
                         "or turn lora_qkv off");
    return 0;
}

// ----------------------------------------------------------------------------
// declaration and init

static int shared_param(Layer *L, int decay, int ndim, long d0, long d1, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
// A tensor by absolute name (these names do not follow the layer's prefix). Shared weights are
// found again by every later invocation of the same block; per-invocation names are unique.
static int shared_param(Layer *L, int decay, int ndim, long d0, long d1, const char *fmt, ...) {
    char name[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return layer_param_shared(L, name, decay, ndim, d0, d1, 0, 0);
}

static void shared_declare(Layer *L) {
    const Config *c = L->cfg;
    Dims d = shared_dims(c);
    Shared *p = xcalloc(1, sizeof(Shared));
    L->priv = p;
    p->C = (int)d.C; p->W = (int)d.W; p->H = (int)d.H; p->Hkv = (int)d.Hkv; p->hd = (int)d.hd; p->F = (int)d.F;
    p->r = (int)cfg_int(c, "model.shared.lora_rank");
    p->concat = cfg_bool(c, "model.shared.concat_embedding");
    p->rope = cfg_bool(c, "model.shared.rope");
    p->lora_qkv = cfg_bool(c, "model.shared.lora_qkv");
    p->theta = cfg_num(c, KEY("rope_theta"));
    p->act = strcmp(cfg_str(c, KEY("activation")), "silu") == 0 ? ACT_SILU : ACT_GELU;
    p->inv = L->invocation;
    long nblocks = cfg_int(c, "model.shared.blocks");   // > 0 whenever the pattern has an S (pattern.c)
    p->blk = nblocks > 0 ? (int)(L->invocation % nblocks) : 0;
    p->dims.H = p->H; p->dims.Hkv = p->Hkv; p->dims.hd = p->hd;
    p->dims.scale = (real)(cfg_is_auto(c, KEY("scale")) ? 1.0 / sqrt(p->hd / 2.0) : cfg_num(c, KEY("scale")));

    long C = d.C, W = d.W, QD = d.H * d.hd, KD = d.Hkv * d.hd, F = d.F, r = p->r;
    int k = p->blk, j = p->inv;
    // shared tensors (HF Zamba2 names), declared by the first invocation of block k
    p->ln1 = shared_param(L, 0, 1, W, 0, "model.blocks.%d.input_layernorm.weight", k);
    p->Wq = shared_param(L, 1, 2, QD, W, "model.blocks.%d.self_attn.q_proj.weight", k);
    p->Wk = shared_param(L, 1, 2, KD, W, "model.blocks.%d.self_attn.k_proj.weight", k);
    p->Wv = shared_param(L, 1, 2, KD, W, "model.blocks.%d.self_attn.v_proj.weight", k);
    p->Wo = shared_param(L, 1, 2, C, QD, "model.blocks.%d.self_attn.o_proj.weight", k);
    p->ln2 = shared_param(L, 0, 1, C, 0, "model.blocks.%d.pre_ff_layernorm.weight", k);
    p->Wgu = shared_param(L, 1, 2, 2 * F, C, "model.blocks.%d.feed_forward.gate_up_proj.weight", k);
    p->Wd = shared_param(L, 1, 2, C, F, "model.blocks.%d.feed_forward.down_proj.weight", k);
    // this invocation's own tensors: adapters live in block k's adapter list at slot j (HF keeps
    // a slot for every hybrid layer in every block; only j % blocks == k is a real adapter)
    p->Agu = p->Bgu = -1;
    for (int i = 0; i < 3; i++) p->Aqkv[i] = p->Bqkv[i] = -1;
    if (r > 0) {
        p->Agu = shared_param(L, 1, 2, r, C, "model.blocks.%d.feed_forward.gate_up_proj_adapter_list.%d.0.weight", k, j);
        p->Bgu = shared_param(L, 1, 2, 2 * F, r, "model.blocks.%d.feed_forward.gate_up_proj_adapter_list.%d.1.weight", k, j);
    }
    if (p->lora_qkv) {
        const char qkv[3] = {'q', 'k', 'v'};
        long out[3] = {QD, KD, KD};
        for (int i = 0; i < 3; i++) {
            p->Aqkv[i] = shared_param(L, 1, 2, r, W, "model.blocks.%d.self_attn.linear_%c_adapter_list.%d.0.weight", k, qkv[i], j);
            p->Bqkv[i] = shared_param(L, 1, 2, out[i], r, "model.blocks.%d.self_attn.linear_%c_adapter_list.%d.1.weight", k, qkv[i], j);
        }
    }
    // Zyphra's layout: slot j also exists in every other block, unused (zero, no gradient)
    if (r > 0 && !strcmp(cfg_str(c, KEY("adapter_slots")), "all"))
        for (int k2 = 0; k2 < nblocks; k2++) {
            if (k2 == k) continue;
            shared_param(L, 1, 2, r, C, "model.blocks.%d.feed_forward.gate_up_proj_adapter_list.%d.0.weight", k2, j);
            shared_param(L, 1, 2, 2 * F, r, "model.blocks.%d.feed_forward.gate_up_proj_adapter_list.%d.1.weight", k2, j);
            if (p->lora_qkv) {
                const char qkv[3] = {'q', 'k', 'v'};
                long out[3] = {QD, KD, KD};
                for (int i = 0; i < 3; i++) {
                    shared_param(L, 1, 2, r, W, "model.blocks.%d.self_attn.linear_%c_adapter_list.%d.0.weight", k2, qkv[i], j);
                    shared_param(L, 1, 2, out[i], r, "model.blocks.%d.self_attn.linear_%c_adapter_list.%d.1.weight", k2, qkv[i], j);
                }
            }
        }
    p->Wlin = shared_param(L, 1, 2, C, C, "model.layers.%d.linear.weight", L->layer_id);
}

static void shared_declare_acts(Layer *L, int B, int T) {
    Shared *p = L->priv;
    size_t N = (size_t)B * T, C = p->C, W = p->W, QD = (size_t)p->H * p->hd, KD = (size_t)p->Hkv * p->hd;
    size_t F = p->F, r = p->r;
    p->cn = layer_act(L, N * W);               // (B,T,W)      normalised input (c itself is rebuilt in backward)
    p->rstd1 = layer_act(L, N);                // (B,T)
    p->q = layer_act(L, N * QD);               // (B,T,H,hd)   q after the adapter and RoPE
    p->k = layer_act(L, N * KD);               // (B,T,Hkv,hd)
    p->v = layer_act(L, N * KD);               // (B,T,Hkv,hd)
    p->att = layer_act(L, N * QD);             // (B,T,H,hd)   attention output, input of o_proj
    p->lse = layer_act(L, N * p->H);           // (B,H,T)      log-sum-exp of every score row
    for (int i = 0; i < 3; i++) p->aqkv[i] = p->lora_qkv ? layer_act(L, N * r) : -1;   // (B,T,r) A_j cn
    p->a = layer_act(L, N * C);                // (B,T,C)      o_proj output
    p->rstd2 = layer_act(L, N);                // (B,T)
    p->mn = layer_act(L, N * C);               // (B,T,C)      normalised MLP input
    p->gu = layer_act(L, N * 2 * F);           // (B,T,2F)     gate_up pre-activation [g | u]
    p->am = r > 0 ? layer_act(L, N * r) : -1;  // (B,T,r)      A_j mn
    p->tp = layer_act(L, N * C);               // (B,T,C)      MLP output, input of the linear

    // Scratch. forward: c (N,W), then the attention's per-thread scores, then act(g)⊙u (N,F),
    // each starting at the base since their lives do not overlap. backward: da (N,C) lives
    // across both phases; the MLP phase [dtp (N,C) | hmid, dh (N,F) | dgu (N,2F) | dmn (N,C) |
    // dr (N,r)] and the attention phase [datt, dq (N,QD) | dk, dv (N,KD) | dcn (N,W) | dr (N,r) |
    // c, dc (N,W) with concat | per-thread scores] reuse the same space after it.
    p->dims.nthreads = layer_threads();
    size_t core = attn_core_scratch(&p->dims, T);
    size_t fwd = N * W > core ? N * W : core;
    if (N * F > fwd) fwd = N * F;
    size_t mlp = N * (2 * C + 4 * F + r);
    size_t att = N * (2 * QD + 2 * KD + W + r + (p->concat ? 2 * W : 0)) + core;
    size_t bwd = N * C + (mlp > att ? mlp : att);
    layer_scratch(L, fwd > bwd ? fwd : bwd);

    if (p->rope) {
        p = xrealloc(p, sizeof(Shared) + attn_rope_table_len(p->hd, T) * sizeof(real));
        L->priv = p;
        p->rope_T = T;
        attn_rope_table(p->rope_tab, p->hd, T, p->theta);
    }
}

static void shared_init(Layer *L, Rng *rng) {
    Shared *p = L->priv;
    double std = cfg_num(L->cfg, "model.init_std");
    // Shared tensors are initialised once, by the invocation that declared them (their owner);
    // later invocations of the same block leave them alone and draw nothing for them.
    if (L->model->pinfo[L->param[p->ln1]].owner == L->index) {
        init_const(L->p[p->ln1], layer_param_numel(L, p->ln1), 1.0);
        init_const(L->p[p->ln2], layer_param_numel(L, p->ln2), 1.0);
        int proj[] = {p->Wq, p->Wk, p->Wv, p->Wo, p->Wgu, p->Wd};
        for (int i = 0; i < 6; i++) init_normal(L->p[proj[i]], layer_param_numel(L, proj[i]), std, rng);
    }
    // Adapters as standard LoRA: A ~ N(0, std), B = 0, so every adapter starts as a zero update
    // (the invocation starts as the plain shared block) and A gets gradient once B has moved.
    if (p->r > 0) {
        init_normal(L->p[p->Agu], layer_param_numel(L, p->Agu), std, rng);
        init_const(L->p[p->Bgu], layer_param_numel(L, p->Bgu), 0.0);
    }
    if (p->lora_qkv)
        for (int i = 0; i < 3; i++) {
            init_normal(L->p[p->Aqkv[i]], layer_param_numel(L, p->Aqkv[i]), std, rng);
            init_const(L->p[p->Bqkv[i]], layer_param_numel(L, p->Bqkv[i]), 0.0);
        }
    // The per-invocation linear feeds the next sublayer's norm input; GPT-2 style it shrinks
    // with the number of sublayers, like the other projections that write into the stream.
    init_normal(L->p[p->Wlin], layer_param_numel(L, p->Wlin), std / sqrt((double)L->model->nsub), rng);
}

// ----------------------------------------------------------------------------
// helpers

static const real INV_SQRT2 = (real)0.70710678118654752440, INV_SQRT_2PI = (real)0.39894228040143267794;
static inline real gelur(real x) { return (real)0.5 * x * (1 + erf(x * INV_SQRT2)); }   // exact, not tanh
static inline real gelu_grad(real x) { return (real)0.5 * (1 + erf(x * INV_SQRT2)) + x * INV_SQRT_2PI * exp(-(real)0.5 * x * x); }
static inline real act_f(int act, real x) { return act == ACT_GELU ? gelur(x) : silur(x); }
static inline real act_grad(int act, real x) { return act == ACT_GELU ? gelu_grad(x) : silu_grad(x); }

// out (N,OC) += inp (N,K) Wᵀ: a LoRA update added onto the base projection's output. Threads
// split the rows (one single-threaded gemm each), as matmul_forward does.
static void matmul_add(real *out, const real *inp, const real *W, int N, int K, int OC) {
    #pragma omp parallel if (2.0 * N * K * OC >= 2e5)
    {
        int nth = omp_get_num_threads(), tid = omp_get_thread_num();
        int lo = (int)((long)N * tid / nth), hi = (int)((long)N * (tid + 1) / nth);
        if (hi > lo) gemm(0, 1, hi - lo, OC, K, 1, inp + (size_t)lo * K, K, W, K, 1, out + (size_t)lo * OC, OC);
    }
}

// h (N,F) = act(g) ⊙ u, with g, u the two halves of every gu row (N,2F): the FIRST half is
// activated (Zamba2MLP; mamba_ssm's GatedMLP activates the second, blocks.md §10).
static void gated(real *h, const real *gu, int N, int F, int act) {
    #pragma omp parallel for if ((size_t)N * F > 16384)
    for (int n = 0; n < N; n++) {
        const real *g = gu + (size_t)n * 2 * F, *u = g + F;
        real *hn = h + (size_t)n * F;
        for (int f = 0; f < F; f++) hn[f] = act_f(act, g[f]) * u[f];
    }
}

// c (N,2C) = concat(h, e0) row by row: the current residual first, then the embeddings
static void concat_rows(real *c, const real *h, const real *e0, int N, int C) {
    for (int n = 0; n < N; n++) {
        memcpy(c + (size_t)n * 2 * C, h + (size_t)n * C, C * sizeof(real));
        memcpy(c + (size_t)n * 2 * C + C, e0 + (size_t)n * C, C * sizeof(real));
    }
}

// ----------------------------------------------------------------------------
// forward and backward

static void shared_forward(Layer *L, real *out, const real *in, int B, int T) {
    Shared *p = L->priv;
    if (p->rope && T > p->rope_T) die("%s: sequence length %d exceeds the RoPE tables (%d)", L->prefix, T, p->rope_T);
    int C = p->C, W = p->W, F = p->F, r = p->r, N = B * T;
    int QD = p->H * p->hd, XD[3] = {QD, p->Hkv * p->hd, p->Hkv * p->hd};   // widths of q, k, v
    real *cn = L->a[p->cn], *att = L->a[p->att], *a = L->a[p->a], *mn = L->a[p->mn], *gu = L->a[p->gu];
    real *qkv[3] = {L->a[p->q], L->a[p->k], L->a[p->v]};
    int Wqkv[3] = {p->Wq, p->Wk, p->Wv};
    real *scratch = layer_scratch_ptr(L);

    // cn (B,T,W) = RMSNorm_W(concat(h, e0)), or RMSNorm_C(h)
    const real *c = in;
    if (p->concat) { concat_rows(scratch, in, L->model->e0, N, C); c = scratch; }
    rmsnorm_forward(cn, L->a[p->rstd1], c, L->p[p->ln1], N, W, L->model->eps);
    // q, k, v (B,T,XD) = cn Wᵀ (+ (cn A_jᵀ) B_jᵀ, the invocation's adapter)
    for (int i = 0; i < 3; i++) {
        matmul_forward(qkv[i], cn, L->p[Wqkv[i]], NULL, N, W, XD[i]);
        if (p->lora_qkv) {
            real *ar = L->a[p->aqkv[i]];   // (B,T,r)
            matmul_forward(ar, cn, L->p[p->Aqkv[i]], NULL, N, W, r);
            matmul_add(qkv[i], ar, L->p[p->Bqkv[i]], N, r, XD[i]);
        }
    }
    // RoPE after the adapters, over the full head width (§4.4)
    if (p->rope) {
        attn_rope_forward(qkv[0], p->rope_tab, p->rope_T, B, T, p->H, p->hd);
        attn_rope_forward(qkv[1], p->rope_tab, p->rope_T, B, T, p->Hkv, p->hd);
    }
    // att (B,T,H·hd) = softmax(scale · q kᵀ, causal) v, scale = (hd/2)^-0.5
    attn_core_forward(att, L->a[p->lse], qkv[0], qkv[1], qkv[2], &p->dims, B, T, scratch);
    // a (B,T,C) = att Woᵀ;  mn = RMSNorm_C(a)   (no residual: the block's input is not added)
    matmul_forward(a, att, L->p[p->Wo], NULL, N, QD, C);
    rmsnorm_forward(mn, L->a[p->rstd2], a, L->p[p->ln2], N, C, L->model->eps);
    // gu (B,T,2F) = mn Wguᵀ (+ (mn A_jᵀ) B_jᵀ)
    matmul_forward(gu, mn, L->p[p->Wgu], NULL, N, C, 2 * F);
    if (r > 0) {
        matmul_forward(L->a[p->am], mn, L->p[p->Agu], NULL, N, C, r);
        matmul_add(gu, L->a[p->am], L->p[p->Bgu], N, r, 2 * F);
    }
    // tp (B,T,C) = (act(g) ⊙ u) Wdᵀ
    real *hmid = scratch;   // (B,T,F)
    gated(hmid, gu, N, F, p->act);
    matmul_forward(L->a[p->tp], hmid, L->p[p->Wd], NULL, N, F, C);
    // out (B,T,C) = tp Wlin_jᵀ
    matmul_forward(out, L->a[p->tp], L->p[p->Wlin], NULL, N, C, C);
}

static void shared_backward(Layer *L, real *din, const real *dout, const real *in, int B, int T) {
    Shared *p = L->priv;
    int C = p->C, W = p->W, F = p->F, r = p->r, N = B * T;
    int QD = p->H * p->hd, XD[3] = {QD, p->Hkv * p->hd, p->Hkv * p->hd};
    const real *cn = L->a[p->cn], *att = L->a[p->att], *a = L->a[p->a], *mn = L->a[p->mn], *gu = L->a[p->gu];
    const real *qkv[3] = {L->a[p->q], L->a[p->k], L->a[p->v]};
    int Wqkv[3] = {p->Wq, p->Wk, p->Wv};
    size_t n = N;

    real *da = layer_scratch_ptr(L);              // (B,T,C), from the MLP phase to the attention phase
    // MLP phase
    real *dtp = da + n * C;                       // (B,T,C)
    real *hmid = dtp + n * C;                     // (B,T,F)
    real *dh = hmid + n * F;                      // (B,T,F)
    real *dgu = dh + n * F;                       // (B,T,2F)
    real *dmn = dgu + n * 2 * F;                  // (B,T,C)
    real *dr = dmn + n * C;                       // (B,T,r)

    // linear: dWlin += doutᵀ tp;  dtp = dout Wlin
    matmul_backward(dtp, L->g[p->Wlin], NULL, dout, L->a[p->tp], L->p[p->Wlin], N, C, C, 0);
    // down_proj: h = act(g) ⊙ u was not kept (it costs as much as gu): recompute it.
    // dWd += dtpᵀ h;  dh (B,T,F) = dtp Wd
    gated(hmid, gu, N, F, p->act);
    matmul_backward(dh, L->g[p->Wd], NULL, dtp, hmid, L->p[p->Wd], N, F, C, 0);
    // h = act(g) ⊙ u:  dg = dh ⊙ u ⊙ act'(g),  du = dh ⊙ act(g), back into the [g | u] layout
    #pragma omp parallel for if (n * F > 16384)
    for (int i = 0; i < N; i++) {
        const real *g = gu + (size_t)i * 2 * F, *u = g + F, *dhi = dh + (size_t)i * F;
        real *dg = dgu + (size_t)i * 2 * F, *du = dg + F;
        for (int f = 0; f < F; f++) {
            dg[f] = dhi[f] * u[f] * act_grad(p->act, g[f]);
            du[f] = dhi[f] * act_f(p->act, g[f]);
        }
    }
    // gate_up: dWgu += dguᵀ mn;  dmn = dgu Wgu
    matmul_backward(dmn, L->g[p->Wgu], NULL, dgu, mn, L->p[p->Wgu], N, C, 2 * F, 0);
    if (r > 0) {
        // adapter gu += (mn Aᵀ) Bᵀ:  dB += dguᵀ am;  dr = dgu B;  dA += drᵀ mn;  dmn += dr A
        matmul_backward(dr, L->g[p->Bgu], NULL, dgu, L->a[p->am], L->p[p->Bgu], N, r, 2 * F, 0);
        matmul_backward(dmn, L->g[p->Agu], NULL, dr, mn, L->p[p->Agu], N, C, r, 1);
    }
    // pre_ff_layernorm: da = RMSNorm'(dmn)
    memset(da, 0, n * C * sizeof(real));
    rmsnorm_backward(da, L->g[p->ln2], dmn, a, L->p[p->ln2], L->a[p->rstd2], N, C);

    // attention phase (reuses the MLP phase's space)
    real *datt = da + n * C;                      // (B,T,H·hd)
    real *dqkv[3];
    dqkv[0] = datt + n * QD;                      // (B,T,H·hd)
    dqkv[1] = dqkv[0] + n * XD[0];                // (B,T,Hkv·hd)
    dqkv[2] = dqkv[1] + n * XD[1];                // (B,T,Hkv·hd)
    real *dcn = dqkv[2] + n * XD[2];              // (B,T,W)
    dr = dcn + n * W;                             // (B,T,r)
    real *c = dr + n * r;                         // (B,T,W) concat only
    real *dc = c + (p->concat ? n * W : 0);       // (B,T,W) concat only
    real *core_buf = dc + (p->concat ? n * W : 0);

    // o_proj: dWo += daᵀ att;  datt = da Wo
    matmul_backward(datt, L->g[p->Wo], NULL, da, att, L->p[p->Wo], N, QD, C, 0);
    // through the softmax attention: dq, dk, dv (GQA sums included), then back through RoPE
    attn_core_backward(dqkv[0], dqkv[1], dqkv[2], datt, qkv[0], qkv[1], qkv[2], att, L->a[p->lse],
                       &p->dims, B, T, core_buf);
    if (p->rope) {
        attn_rope_backward(dqkv[0], p->rope_tab, p->rope_T, B, T, p->H, p->hd);
        attn_rope_backward(dqkv[1], p->rope_tab, p->rope_T, B, T, p->Hkv, p->hd);
    }
    // q/k/v projections: dW += dᵀ cn;  dcn (B,T,W) = Σ d W (+ the adapters: dB += dᵀ ar,
    // dr = d B, dA += drᵀ cn, dcn += dr A)
    for (int i = 0; i < 3; i++) {
        matmul_backward(dcn, L->g[Wqkv[i]], NULL, dqkv[i], cn, L->p[Wqkv[i]], N, W, XD[i], i > 0);
        if (p->lora_qkv) {
            matmul_backward(dr, L->g[p->Bqkv[i]], NULL, dqkv[i], L->a[p->aqkv[i]], L->p[p->Bqkv[i]], N, r, XD[i], 0);
            matmul_backward(dcn, L->g[p->Aqkv[i]], NULL, dr, cn, L->p[p->Aqkv[i]], N, W, r, 1);
        }
    }
    // input_layernorm, then the concat split: the h half is din, the e0 half joins Model.de0
    if (p->concat) {
        real *e0 = L->model->e0, *de0 = L->model->de0;
        concat_rows(c, in, e0, N, C);
        memset(dc, 0, n * W * sizeof(real));
        rmsnorm_backward(dc, L->g[p->ln1], dcn, c, L->p[p->ln1], L->a[p->rstd1], N, W);
        for (int i = 0; i < N; i++) {
            const real *dci = dc + (size_t)i * W;
            real *de = de0 + (size_t)i * C;
            memcpy(din + (size_t)i * C, dci, C * sizeof(real));
            for (int j = 0; j < C; j++) de[j] += dci[C + j];
        }
    } else {
        memset(din, 0, n * C * sizeof(real));
        rmsnorm_backward(din, L->g[p->ln1], dcn, in, L->p[p->ln1], L->a[p->rstd1], N, C);
    }
}

// ----------------------------------------------------------------------------
// inference: one sequence, one token per step
//
// State: this invocation's KV cache, rows j = 0..max_T-1 of [k_j | v_j] (attn_cache.h), k after
// the adapter and RoPE. The step's workspace lies past the last filled row (so no offset depends
// on max_T), one row of every intermediate of forward:
//   c, cn (W) | q (H·hd) | ar (r) | att (H·hd) | a, mn (C) | gu (2F) | am (r) | hmid (F) | tp (C)
//   | scores (H, pos+1)
// state_size leaves room for it even when pos = max_T-1 (no free rows left).

static size_t shared_step_work(const Shared *p) {
    size_t QD = (size_t)p->H * p->hd;
    return 2 * (size_t)p->W + 2 * QD + 2 * (size_t)p->r + 3 * (size_t)p->C + 3 * (size_t)p->F;
}

static size_t shared_state_size(const Layer *L, int max_T) {
    const Shared *p = L->priv;
    return (size_t)max_T * ATTN_KV_ROW(&p->dims) + shared_step_work(p) + attn_cache_scratch(&p->dims, max_T);
}

static void shared_state_from_forward(Layer *L, real *state, int T) {
    // forward ran with B = 1: its k (adapter and RoPE applied) and v are (T, Hkv·hd) each
    Shared *p = L->priv;
    size_t KD = (size_t)p->Hkv * p->hd, ld = ATTN_KV_ROW(&p->dims);
    const real *k = L->a[p->k], *v = L->a[p->v];
    for (int t = 0; t < T; t++) {
        memcpy(state + t * ld, k + t * KD, KD * sizeof(real));
        memcpy(state + t * ld + KD, v + t * KD, KD * sizeof(real));
    }
}

static void shared_step(Layer *L, real *out, const real *in, real *state, int pos) {
    Shared *p = L->priv;
    int C = p->C, W = p->W, F = p->F, r = p->r, QD = p->H * p->hd, KD = p->Hkv * p->hd;
    int XD[3] = {QD, KD, KD};
    size_t ld = ATTN_KV_ROW(&p->dims);
    real *krow = state + pos * ld;                      // this position's cache row [k | v]
    real *c = state + (pos + 1) * ld;                   // (W) workspace past the filled rows
    real *cn = c + W, *q = cn + W, *ar = q + QD, *att = ar + r;
    real *a = att + QD, *mn = a + C, *gu = mn + C, *am = gu + 2 * F, *hmid = am + r, *tp = hmid + F;
    real *work = tp + C;                                // (H, pos+1) scores
    real *qkv[3] = {q, krow, krow + KD};                // k, v straight into the cache row
    int Wqkv[3] = {p->Wq, p->Wk, p->Wv};
    real rstd;

    // cn (W) = RMSNorm_W(concat(h, e0)), e0 row 0 = the current token's embedding; or RMSNorm_C(h)
    const real *x = in;
    if (p->concat) { concat_rows(c, in, L->model->e0, 1, C); x = c; }
    rmsnorm_forward(cn, &rstd, x, L->p[p->ln1], 1, W, L->model->eps);
    // q, k, v = cn Wᵀ (+ (cn A_jᵀ) B_jᵀ)
    for (int i = 0; i < 3; i++) {
        matmul_forward(qkv[i], cn, L->p[Wqkv[i]], NULL, 1, W, XD[i]);
        if (p->lora_qkv) {
            matmul_forward(ar, cn, L->p[p->Aqkv[i]], NULL, 1, W, r);
            matmul_add(qkv[i], ar, L->p[p->Bqkv[i]], 1, r, XD[i]);
        }
    }
    if (p->rope) {
        attn_rope_row(q, p->H, p->hd, pos, p->theta);
        attn_rope_row(krow, p->Hkv, p->hd, pos, p->theta);
    }
    // att = softmax(scale · q kᵀ) v over positions 0..pos
    attn_cache_attend(att, q, state, &p->dims, pos + 1, work);
    // a = att Woᵀ;  mn = RMSNorm_C(a);  gu = mn Wguᵀ (+ adapter);  tp = (act(g) ⊙ u) Wdᵀ
    matmul_forward(a, att, L->p[p->Wo], NULL, 1, QD, C);
    rmsnorm_forward(mn, &rstd, a, L->p[p->ln2], 1, C, L->model->eps);
    matmul_forward(gu, mn, L->p[p->Wgu], NULL, 1, C, 2 * F);
    if (r > 0) {
        matmul_forward(am, mn, L->p[p->Agu], NULL, 1, C, r);
        matmul_add(gu, am, L->p[p->Bgu], 1, r, 2 * F);
    }
    gated(hmid, gu, 1, F, p->act);
    matmul_forward(tp, hmid, L->p[p->Wd], NULL, 1, F, C);
    // out (C) = tp Wlin_jᵀ
    matmul_forward(out, tp, L->p[p->Wlin], NULL, 1, C, C);
}

// ----------------------------------------------------------------------------
// accounting

static double shared_flops_per_token(const Layer *L, long ctx) {
    const Shared *p = L->priv;
    double C = p->C, W = p->W, QD = (double)p->H * p->hd, KD = (double)p->Hkv * p->hd, F = p->F, r = p->r;
    double f = 2 * (W * QD + 2 * W * KD + QD * C)        // q, k, v, o projections
             + 4 * QD * (double)ctx                       // scores and the P·v sum over ctx positions
             + 2 * (C * 2 * F + F * C)                    // gate_up, down
             + 2 * C * C;                                 // the invocation's linear
    if (r > 0) f += 2 * (C * r + r * 2 * F);              // MLP adapter
    if (p->lora_qkv) f += 2 * (3 * W * r + r * (QD + 2 * KD));
    return f;
}

static double shared_cache_elems(const Layer *L, long ctx) {
    // every invocation keeps its own k and v (its input differs), though the weights are shared
    const Shared *p = L->priv;
    return 2.0 * p->Hkv * p->hd * (double)ctx;
}

const BlockType shared_block = {
    .name = "shared",
    .symbol = 'S',
    .role = ROLE_SHARED,
    .module = "shared",
    .own_norm = 1,
    .residual = 0,
    .cache = CACHE_KV,
    .keys = shared_attn_keys,
    .validate = shared_validate,
    .declare = shared_declare,
    .declare_acts = shared_declare_acts,
    .init = shared_init,
    .forward = shared_forward,
    .backward = shared_backward,
    .flops_per_token = shared_flops_per_token,
    .cache_elems = shared_cache_elems,
    .state_size = shared_state_size,
    .state_from_forward = shared_state_from_forward,
    .step = shared_step,
};
