// moe.c: the sparse mixture-of-experts feed-forward, symbol 'E' (Jamba's JambaSparseMoeBlock,
// Mixtral's MixtralSparseMoeBlock; blocks.md §3.4, §3.5, §6.4, §6.5, §7.8). x, out: (B,T,C);
// N = B*T tokens, X experts, k experts per token, F the hidden width of each expert.
//
//   r   = x W_rᵀ                               (N,X)  router logits
//   p   = softmax(r)                           (N,X)  max subtracted, in `real`
//   idx = top-k(p)                             (N,k)  best first; ties go to the lower index
//   w   = p[idx]                               (N,k)  Jamba
//       = p[idx] / Σ_j p[idx_j]                       Mixtral (renormalize): a softmax over the chosen logits
//   out = Σ_j w_j · Expert_{idx_j}(x)          Expert = SwiGLU (swiglu.c) with its own weights
//
// Only the chosen experts run. Forward sorts the N*k (token, choice) pairs by expert into one row
// buffer: expert e owns rows [start[e], start[e] + count[e]), its tokens in token order. Each
// expert gathers its rows of x, runs SwiGLU on them and leaves its outputs y in its rows; then
// every token sums w_j · y over its k rows in choice order (a fixed order, whatever the threads).
// An expert that no token chose is skipped: it costs nothing.
//
// Load-balancing loss (pooled_loss, §6.5), one pool over the tokens of every MoE layer:
//   aux = X · Σ_e f_e P_e,   f_e = #{(layer, t): e ∈ top-k(t)} / T_pool,   P_e = Σ p[·,e] / T_pool
// with T_pool = n_layers·N; the training loss gets aux_loss_coef · aux (balanced router: aux = k).
// Each layer keeps G_e = X f_e / T_pool; backward adds the term's gradient through the softmax,
// dr = coef · p ⊙ (G − <p,G>) (§7.8: the top-k choice and f are constants). A forward that
// pooled_loss did not follow (one layer under test) leaves the term out of backward.
//
// Backward keeps the expert outputs y (N*k, C) from forward instead of recomputing them: the
// router's gradient needs g_j = <dout, y_j> (dL/dw_j), and y costs C reals per row next to the 2F
// that SwiGLU keeps anyway.
//
// Threads: experts run in parallel, one thread each (the matmuls inside see a nested region and
// stay on their thread: nested parallelism is off by default), busiest expert first. Measured on the 2-core machine while other jobs
// shared it (load average 8-9), C = 128, X = 8, k = 2, B*T = 2048, 2 threads: forward 90-120 ms
// and backward 135-170 ms, against 250-690 and 420-840 ms for the experts one after another
// with threaded matmuls, whose 6 fork-joins per expert each wait for a descheduled thread; on
// one thread both are the same work (36-46 and 81-100 ms). Not measured on an idle machine. The
// cost: a router that sends most tokens to one expert leaves the other threads idle. Each expert's
// result does not depend on which thread ran it and every sum over experts has a fixed order:
// same thread count, same bits (the tests find the same bits on 1 and 2 threads too).
//
// Not implemented: router jitter (Mixtral's router_jitter_noise, default 0). It needs to know
// that a forward is for training and a random stream, which the block interface does not give.
#include "moe.h"
#include "mlp.h"
#include "swiglu.h"
#include "model.h"
#include "ops.h"
#include <string.h>

#define KEY(k) "model.moe." k

const KeySpec moe_keys[] = {
    {KEY("experts"), KT_INT, "8", 2, 1024, NULL, 0,
     "experts in each MoE layer (X); at most 21, three tensors each (Mixtral 8, Jamba 16)"},
    {KEY("top_k"), KT_INT, "2", 1, 1024, NULL, 0, "experts each token is routed to (k); at most experts"},
    {KEY("renormalize"), KT_BOOL, "false", 0, -1, NULL, 0,
     "true: the k routing weights are renormalised to sum to 1 (Mixtral); false: they are the "
     "router's softmax probabilities (Jamba)"},
    {KEY("hidden"), KT_INT, "auto", 1, 16777216, NULL, 1,
     "SwiGLU hidden width of each expert (F); auto = the dense MLP's width (model.mlp.hidden)"},
    {KEY("aux_loss_coef"), KT_FLOAT, "0.001", 0, 1000, NULL, 0,
     "weight of the load-balancing loss, pooled over all MoE layers (Jamba and Mixtral 0.001; 0 = off)"},
    {NULL, 0, NULL, 0, 0, NULL, 0, NULL}};

static int moe_hidden(const Config *c) {
    return cfg_is_auto(c, KEY("hidden")) ? mlp_hidden(c) : (int)cfg_int(c, KEY("hidden"));
}

static int moe_validate(const Config *c, ConfError *err) {
    long X = cfg_int(c, KEY("experts")), k = cfg_int(c, KEY("top_k"));
    if (X > MOE_MAX_EXPERTS)
        return cfg_error(c, KEY("experts"), err, "%ld is more than %d: a layer holds at most %d tensors, "
                         "the router and 3 per expert (Jamba uses 16, Mixtral 8)", X, MOE_MAX_EXPERTS, LAYER_MAX_PARAMS);
    if (k > X)
        return cfg_error(c, KEY("top_k"), err, "%ld is more than model.moe.experts %ld: each token picks "
                         "top_k different experts (Jamba and Mixtral use 2)", k, X);
    return 0;
}

typedef struct {
    int C, F, X, k;
    int renorm;                // Mixtral's renormalised top-k weights
    double coef;               // aux_loss_coef
    // parameter indices (L->p[], L->g[])
    int Wr, Wg[MOE_MAX_EXPERTS], Wu[MOE_MAX_EXPERTS], Wd[MOE_MAX_EXPERTS];
    // activation indices: see moe_declare_acts
    int prob, sel, wsel, row, tok, cnt, gate, up, y, aux;
    int N;                     // tokens of the last forward (0: none yet)
} Moe;

// Integer activations live in `real` storage (same or larger size and alignment).
static size_t ints(size_t n) { return (n * sizeof(int) + sizeof(real) - 1) / sizeof(real); }
static int *iact(const Layer *L, int i) { return (int *)L->a[i]; }

// ----------------------------------------------------------------------------
// declaration and init

static void moe_declare(Layer *L) {
    Moe *P = xcalloc(1, sizeof(Moe));
    L->priv = P;
    const Config *c = L->cfg;
    P->C = L->model->C; P->F = moe_hidden(c);
    P->X = (int)cfg_int(c, KEY("experts")); P->k = (int)cfg_int(c, KEY("top_k"));
    P->renorm = cfg_bool(c, KEY("renormalize"));
    P->coef = cfg_num(c, KEY("aux_loss_coef"));
    if (P->X > MOE_MAX_EXPERTS || P->k > P->X) die("%s: %d experts, top_k %d (validate() was skipped)", L->prefix, P->X, P->k);
    int C = P->C, F = P->F;
    P->Wr = layer_param(L, "router.weight", 1, 2, P->X, C, 0, 0);   // every token uses the router
    double active = (double)P->k / P->X;                             // each expert: k of X tokens
    for (int e = 0; e < P->X; e++) {
        char name[64];
        snprintf(name, sizeof name, "experts.%d.gate_proj.weight", e);
        P->Wg[e] = layer_param(L, name, 1, 2, F, C, 0, 0);
        snprintf(name, sizeof name, "experts.%d.up_proj.weight", e);
        P->Wu[e] = layer_param(L, name, 1, 2, F, C, 0, 0);
        snprintf(name, sizeof name, "experts.%d.down_proj.weight", e);
        P->Wd[e] = layer_param(L, name, 1, 2, C, F, 0, 0);
        layer_param_active(L, P->Wg[e], active);
        layer_param_active(L, P->Wu[e], active);
        layer_param_active(L, P->Wd[e], active);
    }
}

static void moe_declare_acts(Layer *L, int B, int T) {
    Moe *P = L->priv;
    size_t N = (size_t)B * T, NK = N * P->k, C = P->C, F = P->F, X = P->X;
    // Every token takes k rows of the expert buffer, so N*k rows hold any routing, even all
    // tokens on one expert.
    P->prob = layer_act(L, N * X);          // router softmax (N,X)
    P->sel = layer_act(L, ints(NK));        // chosen experts (N,k), best first
    P->wsel = layer_act(L, NK);             // their weights w (N,k)
    P->row = layer_act(L, ints(NK));        // buffer row of token t's j-th choice (N,k)
    P->tok = layer_act(L, ints(NK));        // token of each buffer row (N*k)
    P->cnt = layer_act(L, ints(2 * X + 1)); // rows per expert count (X), first rows start (X+1)
    P->gate = layer_act(L, NK * F);         // SwiGLU pre-activations per buffer row (N*k,F)
    P->up = layer_act(L, NK * F);
    P->y = layer_act(L, NK * C);            // expert outputs per buffer row (N*k,C)
    P->aux = layer_act(L, X + 1);           // G (X) from pooled_loss, then a flag: 1 if it ran
                                            // after the last forward (backward adds the aux term)
    // Scratch. forward: gathered x (N*k,C), SwiGLU hidden (N*k,F). backward: gathered x, dy and
    // dx per row (N*k,C) each, two SwiGLU buffers (N*k,F) each, router logit grads (N,X), g (N,k).
    layer_scratch(L, NK * (3 * C + 2 * F) + N * X + NK);
}

static void moe_init(Layer *L, Rng *rng) {
    Moe *P = L->priv;
    double std = cfg_num(L->cfg, "model.init_std");
    init_normal(L->p[P->Wr], layer_param_numel(L, P->Wr), std, rng);
    // experts as the dense MLP: the projection into the residual stream shrinks with the number
    // of sublayers that add into it
    for (int e = 0; e < P->X; e++) {
        init_normal(L->p[P->Wg[e]], layer_param_numel(L, P->Wg[e]), std, rng);
        init_normal(L->p[P->Wu[e]], layer_param_numel(L, P->Wu[e]), std, rng);
        init_normal(L->p[P->Wd[e]], layer_param_numel(L, P->Wd[e]), std / sqrt((double)L->model->nsub), rng);
    }
}

// ----------------------------------------------------------------------------
// forward and backward

// Expert work too small to be worth waking a second thread (tests, tiny models) stays on one,
// with the same threshold as matmul_forward: 2e5 flops.
static int worth_threads(int NK, int C, int F) { return 6.0 * NK * C * F >= 2e5; }

// The experts that got rows, most rows first (ties: lower index), so that a dynamic schedule
// starts the longest jobs first. Returns how many; experts with no rows are left out.
static int expert_order(int *order, const int *count, int X) {
    int n = 0;
    for (int e = 0; e < X; e++) {
        if (count[e] == 0) continue;
        int i = n++;
        while (i > 0 && count[order[i - 1]] < count[e]) { order[i] = order[i - 1]; i--; }
        order[i] = e;
    }
    return n;
}

static void moe_forward(Layer *L, real *out, const real *in, int B, int T) {
    Moe *P = L->priv;
    int N = B * T, C = P->C, F = P->F, X = P->X, k = P->k, NK = N * k;
    real *prob = L->a[P->prob], *w = L->a[P->wsel], *gate = L->a[P->gate], *up = L->a[P->up], *y = L->a[P->y];
    int *sel = iact(L, P->sel), *row = iact(L, P->row), *tok = iact(L, P->tok);
    int *count = iact(L, P->cnt), *start = count + X;
    P->N = N;
    L->a[P->aux][X] = 0;   // no aux-loss gradient unless pooled_loss runs after this forward

    // router: prob (N,X) = x W_rᵀ, then per token a softmax and the top-k choice
    matmul_forward(prob, in, L->p[P->Wr], NULL, N, C, X);
    #pragma omp parallel for if ((size_t)N * X > 16384)
    for (int t = 0; t < N; t++) {
        real *pt = prob + (size_t)t * X;
        real mx = pt[0], sum = 0;
        for (int e = 1; e < X; e++) if (pt[e] > mx) mx = pt[e];
        for (int e = 0; e < X; e++) { pt[e] = exp(pt[e] - mx); sum += pt[e]; }
        for (int e = 0; e < X; e++) pt[e] /= sum;
        // top-k by repeated arg-max: strict > keeps the lower index on ties
        int *st = sel + (size_t)t * k;
        real *wt = w + (size_t)t * k, wsum = 0;
        for (int j = 0; j < k; j++) {
            int best = -1;
            for (int e = 0; e < X; e++) {
                int taken = 0;
                for (int i = 0; i < j; i++) taken |= st[i] == e;
                if (!taken && (best < 0 || pt[e] > pt[best])) best = e;
            }
            st[j] = best; wt[j] = pt[best]; wsum += pt[best];
        }
        if (P->renorm) for (int j = 0; j < k; j++) wt[j] /= wsum;
    }

    // sort the (token, choice) pairs by expert; a counting sort keeps token order per expert
    memset(count, 0, X * sizeof(int));
    for (int i = 0; i < NK; i++) count[sel[i]]++;
    start[0] = 0;
    for (int e = 0; e < X; e++) start[e + 1] = start[e] + count[e];
    int next[X];
    memcpy(next, start, X * sizeof(int));
    for (int i = 0; i < NK; i++) { int r = next[sel[i]]++; row[i] = r; tok[r] = i / k; }

    // gather: xg (N*k,C), the rows of x in buffer order
    real *xg = layer_scratch_ptr(L), *h = xg + (size_t)NK * C;
    #pragma omp parallel for if ((size_t)NK * C > 16384)
    for (int r = 0; r < NK; r++) memcpy(xg + (size_t)r * C, in + (size_t)tok[r] * C, C * sizeof(real));
    // each expert on its rows: y, gate, up (count_e rows), h (count_e,F) scratch
    int order[X];
    int busy = expert_order(order, count, X);
    #pragma omp parallel for schedule(dynamic, 1) if (worth_threads(NK, C, F))
    for (int i = 0; i < busy; i++) {
        int e = order[i];
        size_t r0 = start[e];
        swiglu_forward(y + r0 * C, gate + r0 * F, up + r0 * F, h + r0 * F, xg + r0 * C,
                       L->p[P->Wg[e]], L->p[P->Wu[e]], L->p[P->Wd[e]], count[e], C, F);
    }
    // combine: out[t] = Σ_j w[t,j] y[row[t,j]], in choice order
    #pragma omp parallel for if ((size_t)N * C > 16384)
    for (int t = 0; t < N; t++) {
        real *o = out + (size_t)t * C;
        const real *wt = w + (size_t)t * k;
        const int *rt = row + (size_t)t * k;
        for (int c = 0; c < C; c++) o[c] = 0;
        for (int j = 0; j < k; j++) {
            const real *yr = y + (size_t)rt[j] * C;
            for (int c = 0; c < C; c++) o[c] += wt[j] * yr[c];
        }
    }
}

static void moe_backward(Layer *L, real *din, const real *dout, const real *in, int B, int T) {
    Moe *P = L->priv;
    int N = B * T, C = P->C, F = P->F, X = P->X, k = P->k, NK = N * k;
    const real *prob = L->a[P->prob], *w = L->a[P->wsel], *gate = L->a[P->gate], *up = L->a[P->up], *y = L->a[P->y];
    const int *sel = iact(L, P->sel), *row = iact(L, P->row);
    const int *count = iact(L, P->cnt), *start = count + X;
    const real *G = L->a[P->aux];
    int has_aux = G[X] != 0;
    real coef = (real)P->coef;
    real *xg = layer_scratch_ptr(L);                 // (N*k,C)
    real *dy = xg + (size_t)NK * C;                  // (N*k,C)
    real *dxg = dy + (size_t)NK * C;                 // (N*k,C)
    real *buf_a = dxg + (size_t)NK * C;              // (N*k,F)
    real *buf_b = buf_a + (size_t)NK * F;            // (N*k,F)
    real *dr = buf_b + (size_t)NK * F;               // (N,X)
    real *g = dr + (size_t)N * X;                    // (N,k)

    // per choice (t,j) with buffer row r: g = <dout_t, y_r> = dL/dw_j;  dy_r = w_j dout_t;
    // and x_t gathered again into row r (cheaper than keeping it)
    #pragma omp parallel for if ((size_t)NK * C > 16384)
    for (int t = 0; t < N; t++) {
        const real *d = dout + (size_t)t * C;
        for (int j = 0; j < k; j++) {
            size_t i = (size_t)t * k + j, r = row[i];
            const real *yr = y + r * C;
            real *dyr = dy + r * C, s = 0;
            for (int c = 0; c < C; c++) { s += d[c] * yr[c]; dyr[c] = w[i] * d[c]; }
            g[i] = s;
            memcpy(xg + r * C, in + (size_t)t * C, C * sizeof(real));
        }
    }
    // each expert on its rows: dxg (count_e,C) overwritten, its weight gradients accumulate
    int order[X];
    int busy = expert_order(order, count, X);
    #pragma omp parallel for schedule(dynamic, 1) if (worth_threads(NK, C, F))
    for (int i = 0; i < busy; i++) {
        int e = order[i];
        size_t r0 = start[e];
        swiglu_backward(dxg + r0 * C, L->g[P->Wg[e]], L->g[P->Wu[e]], L->g[P->Wd[e]], buf_a + r0 * F,
                        buf_b + r0 * F, dy + r0 * C, xg + r0 * C, gate + r0 * F, up + r0 * F,
                        L->p[P->Wg[e]], L->p[P->Wu[e]], L->p[P->Wd[e]], count[e], C, F);
    }
    // router logits dr (N,X)
    #pragma omp parallel for if ((size_t)N * X > 16384)
    for (int t = 0; t < N; t++) {
        const real *pt = prob + (size_t)t * X, *wt = w + (size_t)t * k, *gt = g + (size_t)t * k;
        const int *st = sel + (size_t)t * k;
        real *d = dr + (size_t)t * X;
        // dL/dp: the aux term's coef·G_e on every expert; Jamba (w = p[idx]) adds g_j at idx_j
        for (int e = 0; e < X; e++) d[e] = has_aux ? coef * G[e] : 0;
        if (!P->renorm) for (int j = 0; j < k; j++) d[st[j]] += gt[j];
        // through the softmax: dr = p ⊙ (dp − <p, dp>)
        real dot = 0;
        for (int e = 0; e < X; e++) dot += pt[e] * d[e];
        for (int e = 0; e < X; e++) d[e] = pt[e] * (d[e] - dot);
        // Mixtral: w is a softmax over the chosen logits, dr_{idx_j} += w_j (g_j − Σ_j' w_j' g_j')
        if (P->renorm) {
            real wg = 0;
            for (int j = 0; j < k; j++) wg += wt[j] * gt[j];
            for (int j = 0; j < k; j++) d[st[j]] += wt[j] * (gt[j] - wg);
        }
    }
    // router: din (N,C) = dr W_r (overwritten), dW_r += drᵀ x
    matmul_backward(din, L->g[P->Wr], NULL, dr, in, L->p[P->Wr], N, C, X, 0);
    // plus what the experts say about x, in choice order
    #pragma omp parallel for if ((size_t)NK * C > 16384)
    for (int t = 0; t < N; t++) {
        real *dx = din + (size_t)t * C;
        for (int j = 0; j < k; j++) {
            const real *dxr = dxg + (size_t)row[(size_t)t * k + j] * C;
            for (int c = 0; c < C; c++) dx[c] += dxr[c];
        }
    }
}

// ----------------------------------------------------------------------------
// load-balancing loss over every MoE layer of the model (§6.5), and per-layer load

static double moe_pooled_loss(Layer **layers, int n, int B, int T) {
    const Moe *P0 = layers[0]->priv;
    int X = P0->X, N = B * T;
    double tpool = (double)n * N, cnt[X], psum[X];
    for (int e = 0; e < X; e++) cnt[e] = psum[e] = 0;
    // one pool: every layer's tokens count once; sums in a fixed order (layer, token)
    for (int l = 0; l < n; l++) {
        const Layer *L = layers[l];
        const Moe *P = L->priv;
        if (P->X != X || P->N != N) die("%s: MoE layers disagree on experts or tokens", L->prefix);
        const int *count = iact(L, P->cnt);
        const real *prob = L->a[P->prob];
        for (int e = 0; e < X; e++) cnt[e] += count[e];
        for (int t = 0; t < N; t++)
            for (int e = 0; e < X; e++) psum[e] += prob[(size_t)t * X + e];
    }
    double aux = 0;
    for (int e = 0; e < X; e++) aux += (cnt[e] / tpool) * (psum[e] / tpool);
    aux *= X;
    // backward needs dcoef·aux/dP_e = coef · X f_e (per token: / T_pool): G_e = X f_e / T_pool,
    // times the model's aux_weight (1/K when K data-parallel ranks each pool their own batch part)
    double wt = layers[0]->model->aux_weight;
    for (int l = 0; l < n; l++) {
        const Moe *P = layers[l]->priv;
        real *G = layers[l]->a[P->aux];
        for (int e = 0; e < X; e++) G[e] = (real)(wt * X * cnt[e] / tpool / tpool);
        G[X] = P->coef != 0;
    }
    return P0->coef * aux;
}

// expert_load.<e>: the fraction of this layer's tokens that have e among their top-k (f_e of
// §6.5 for this layer alone), so the loads sum to k and a balanced router gives k/X each.
// aux_balance: X Σ_e f_e P_e for this layer alone (k when balanced), without the coefficient.
static void moe_report(const Layer *L, void (*emit)(void *ctx, const char *name, double value), void *ctx) {
    const Moe *P = L->priv;
    if (P->N == 0) return;
    const int *count = iact(L, P->cnt);
    const real *prob = L->a[P->prob];
    double aux = 0;
    for (int e = 0; e < P->X; e++) {
        double f = (double)count[e] / P->N, pe = 0;
        for (int t = 0; t < P->N; t++) pe += prob[(size_t)t * P->X + e];
        aux += f * pe / P->N;
        char name[32];
        snprintf(name, sizeof name, "expert_load.%d", e);
        emit(ctx, name, f);
    }
    emit(ctx, "aux_balance", P->X * aux);
}

MoeRouting moe_routing(const Layer *L) {
    const Moe *P = L->priv;
    return (MoeRouting){.N = P->N, .X = P->X, .k = P->k, .prob = L->a[P->prob], .sel = iact(L, P->sel),
                        .weight = L->a[P->wsel], .count = iact(L, P->cnt)};
}

// ----------------------------------------------------------------------------
// accounting

static double moe_flops_per_token(const Layer *L, long ctx) {
    const Moe *P = L->priv;
    return 2.0 * P->C * P->X + P->k * 2.0 * 3.0 * P->C * P->F;   // router + k SwiGLU experts
}

static double moe_cache_elems(const Layer *L, long ctx) { return 0; }

const BlockType moe_block = {
    .name = "moe",
    .symbol = 'E',
    .role = ROLE_FFN,
    .module = "feed_forward",
    .own_norm = 0,
    .residual = 1,
    .cache = CACHE_NONE,
    .keys = moe_keys,
    .validate = moe_validate,
    .declare = moe_declare,
    .declare_acts = moe_declare_acts,
    .init = moe_init,
    .forward = moe_forward,
    .backward = moe_backward,
    .flops_per_token = moe_flops_per_token,
    .cache_elems = moe_cache_elems,
    .pooled_loss = moe_pooled_loss,
    .report = moe_report,
};
