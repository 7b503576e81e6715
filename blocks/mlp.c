// mlp.c: the dense SwiGLU MLP, symbol '-' (Jamba's JambaMLP, Llama's MLP; blocks.md §3.2):
//
//   out = down_proj( silu(gate_proj x) ⊙ up_proj x )       x, out: (B,T,C), hidden F
//
// The maths lives in swiglu.c so that MoE experts share it.
#include "mlp.h"
#include "swiglu.h"
#include "model.h"

const KeySpec mlp_keys[] = {
    {"model.mlp.hidden", KT_INT, "auto", 1, 16777216, NULL, 1,
     "SwiGLU hidden width (F); auto = 8*d_model/3 rounded up to a multiple of 8"},
    {NULL, 0, NULL, 0, 0, NULL, 0, NULL}};

int mlp_hidden(const Config *c) {
    if (!cfg_is_auto(c, "model.mlp.hidden")) return (int)cfg_int(c, "model.mlp.hidden");
    // Llama: int(2 * 4C / 3), then up to a multiple of 8 (keeps the same parameter count as a
    // 4C GELU MLP, with matrix widths that vectorise well)
    int f = 8 * (int)cfg_int(c, "model.d_model") / 3;
    return 8 * ((f + 7) / 8);
}

typedef struct {
    int C, F;
    int Wg, Wu, Wd;   // parameter indices (L->p[], L->g[])
    int gate, up;     // activation indices: pre-activations (B,T,F), kept for backward
} Mlp;

static void mlp_declare(Layer *L) {
    Mlp *p = xcalloc(1, sizeof(Mlp));
    L->priv = p;
    p->C = L->model->C;
    p->F = mlp_hidden(L->cfg);
    p->Wg = layer_param(L, "gate_proj.weight", 1, 2, p->F, p->C, 0, 0);
    p->Wu = layer_param(L, "up_proj.weight", 1, 2, p->F, p->C, 0, 0);
    p->Wd = layer_param(L, "down_proj.weight", 1, 2, p->C, p->F, 0, 0);
}

static void mlp_declare_acts(Layer *L, int B, int T) {
    Mlp *p = L->priv;
    size_t NF = (size_t)B * T * p->F;
    p->gate = layer_act(L, NF);
    p->up = layer_act(L, NF);
    // forward: the gated hidden state (N,F); backward: two (N,F) buffers
    layer_scratch(L, 2 * NF);
}

static void mlp_init(Layer *L, Rng *rng) {
    Mlp *p = L->priv;
    double std = cfg_num(L->cfg, "model.init_std");
    init_normal(L->p[p->Wg], layer_param_numel(L, p->Wg), std, rng);
    init_normal(L->p[p->Wu], layer_param_numel(L, p->Wu), std, rng);
    // GPT-2 style: the projection into the residual stream shrinks with the number of sublayers
    // that add into it, so the stream's variance at init does not grow with depth
    init_normal(L->p[p->Wd], layer_param_numel(L, p->Wd), std / sqrt((double)L->model->nsub), rng);
}

static void mlp_forward(Layer *L, real *out, const real *in, int B, int T) {
    Mlp *p = L->priv;
    real *h = layer_scratch_ptr(L);   // (B,T,F)
    swiglu_forward(out, L->a[p->gate], L->a[p->up], h, in, L->p[p->Wg], L->p[p->Wu], L->p[p->Wd],
                   B * T, p->C, p->F);
}

static void mlp_backward(Layer *L, real *din, const real *dout, const real *in, int B, int T) {
    Mlp *p = L->priv;
    size_t NF = (size_t)B * T * p->F;
    real *buf_a = layer_scratch_ptr(L), *buf_b = buf_a + NF;   // (B,T,F) each
    swiglu_backward(din, L->g[p->Wg], L->g[p->Wu], L->g[p->Wd], buf_a, buf_b, dout, in,
                    L->a[p->gate], L->a[p->up], L->p[p->Wg], L->p[p->Wu], L->p[p->Wd],
                    B * T, p->C, p->F);
}

static double mlp_flops_per_token(const Layer *L, long ctx) {
    const Mlp *p = L->priv;
    return 2.0 * 3.0 * p->C * p->F;   // three (C x F) matmuls
}

static double mlp_cache_elems(const Layer *L, long ctx) { return 0; }

const BlockType mlp_block = {
    .name = "mlp",
    .symbol = '-',
    .role = ROLE_FFN,
    .module = "feed_forward",
    .own_norm = 0,
    .residual = 1,
    .cache = CACHE_NONE,
    .keys = mlp_keys,
    .validate = NULL,
    .declare = mlp_declare,
    .declare_acts = mlp_declare_acts,
    .init = mlp_init,
    .forward = mlp_forward,
    .backward = mlp_backward,
    .flops_per_token = mlp_flops_per_token,
    .cache_elems = mlp_cache_elems,
};
