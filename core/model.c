// model.c: assembles a language model from the canonical pattern and runs it (see model.h).
#include "model.h"
#include "ops.h"
#include "pattern.h"
#include <omp.h>
#include <string.h>
#include <stdlib.h>

// ----------------------------------------------------------------------------
// building: the pattern becomes a list of layers with HF-style tensor names

static const char *norm_name(BlockRole role) {
    // Jamba's names: the mixer's pre-norm is input_layernorm, the FFN's is pre_ff_layernorm.
    return role == ROLE_FFN ? "pre_ff_layernorm.weight" : "input_layernorm.weight";
}

int model_build(Model *m, const Config *cfg, ConfError *err) {
    memset(m, 0, sizeof *m);
    m->cfg = cfg;
    m->aux_weight = 1;
    m->C = (int)cfg_int(cfg, "model.d_model");
    m->V = (int)cfg_int(cfg, "model.vocab_size");
    m->tied = cfg_bool(cfg, "model.tie_embeddings");
    m->eps = (real)cfg_num(cfg, "model.norm_eps");
    if (pattern_resolve(cfg, m->pattern, sizeof m->pattern, err) != 0) return -1;
    m->nsub = (int)strlen(m->pattern);

    // every block type used must exist and accept the config
    for (int i = 0; i < m->nsub; i++) {
        const BlockType *t = block_for_symbol(m->pattern[i], cfg);
        if (!t) {
            const char *key = cfg_is_changed(cfg, "model.pattern") ? "model.pattern" : "model.layers";
            return cfg_error(cfg, key, err, "no layer type is registered for symbol '%c' with this config "
                             "(symbol S needs the shared-block layer; M needs a supported model.mamba.version)",
                             m->pattern[i]);
        }
    }
    for (int r = 0; block_registry[r]; r++) {
        const BlockType *t = block_registry[r];
        int used = 0;
        for (int i = 0; i < m->nsub && !used; i++) used = block_for_symbol(m->pattern[i], cfg) == t;
        if (used && t->validate && t->validate(cfg, err) != 0) return -1;
    }

    // a non-residual block's output enters the next sublayer's norm; a block that normalises
    // its input itself would drop it silently, so that order is refused
    for (int i = 0; i + 1 < m->nsub; i++) {
        const BlockType *a = block_for_symbol(m->pattern[i], cfg), *b = block_for_symbol(m->pattern[i + 1], cfg);
        if (!a->residual && b->own_norm) {
            const char *key = cfg_is_changed(cfg, "model.pattern") ? "model.pattern" : "model.layers";
            return cfg_error(cfg, key, err, "sublayer %d ('%c') feeds the next sublayer's norm, but '%c' at %d normalises its own input: "
                             "put a mixer or MLP between them", i, m->pattern[i], m->pattern[i + 1], i + 1);
        }
    }
    if (m->nsub > 0 && !block_for_symbol(m->pattern[m->nsub - 1], cfg)->residual) {
        const char *key = cfg_is_changed(cfg, "model.pattern") ? "model.pattern" : "model.layers";
        return cfg_error(cfg, key, err, "the last sublayer ('%c') feeds a following sublayer that does not exist", m->pattern[m->nsub - 1]);
    }

    int *layer_of = xcalloc(m->nsub, sizeof(int));
    m->n_layers = pattern_layer_ids(m->pattern, layer_of);
    m->layers = xcalloc(m->nsub, sizeof(Layer));

    long C = m->C, V = m->V;
    Layer frame = {.model = m, .cfg = cfg, .index = -1};
    strcpy(frame.prefix, "model");
    m->p_embed = frame.param[layer_param(&frame, "embed_tokens.weight", 0, 2, V, C, 0, 0)];
    m->pinfo[m->p_embed].owner = -1;

    int invocation[256] = {0};
    for (int i = 0; i < m->nsub; i++) {
        Layer *L = &m->layers[i];
        const BlockType *t = block_for_symbol(m->pattern[i], cfg);
        L->type = t; L->index = i; L->layer_id = layer_of[i]; L->model = m; L->cfg = cfg;
        L->invocation = invocation[(unsigned char)m->pattern[i]]++;
        snprintf(L->prefix, sizeof L->prefix, "model.layers.%d.%s", L->layer_id, t->module);
        L->norm = -1;
        if (!t->own_norm) {
            Layer tmp = {.model = m, .cfg = cfg, .index = i};
            snprintf(tmp.prefix, sizeof tmp.prefix, "model.layers.%d", L->layer_id);
            L->norm = tmp.param[layer_param(&tmp, norm_name(t->role) , 0, 1, C, 0, 0, 0)];
        }
        t->declare(L);
    }
    free(layer_of);

    m->p_norm_f = frame.param[layer_param(&frame, "final_layernorm.weight", 0, 1, C, 0, 0, 0)];
    m->pinfo[m->p_norm_f].owner = -1;
    m->p_head = -1;
    if (!m->tied) {
        Layer head = {.model = m, .cfg = cfg, .index = -1};
        strcpy(head.prefix, "lm_head");
        m->p_head = head.param[layer_param(&head, "weight", 1, 2, V, C, 0, 0)];
        m->pinfo[m->p_head].owner = -1;
    }
    return 0;
}

double model_param_count(const Model *m) {
    double n = 0;
    for (int i = 0; i < m->npinfo; i++) n += (double)m->pinfo[i].numel;
    return n;
}
double model_active_count(const Model *m) {
    double n = 0;
    for (int i = 0; i < m->npinfo; i++) n += (double)m->pinfo[i].numel * m->pinfo[i].active;
    return n;
}

// ----------------------------------------------------------------------------
// memory: one block of parameters, one of gradients, one of activations, all touched once here

// When backward is done with sublayer l, a tensor's gradient is final if no sublayer before l uses
// it (a shared block's tensors are final after their first invocation; the embedding, which the
// tied head and e0 readers also use, only at the very end; the final norm and an untied head
// after the head's backward). ready_from[l] = the end of the last tensor that is not final yet,
// so grads[ready_from[l], nparams) is; tensors are laid out in declaration order, which is
// pattern order, so this suffix grows as backward walks down the sublayers.
static void compute_ready_from(Model *m) {
    free(m->ready_from);
    int *first_use = xmalloc((size_t)m->npinfo * sizeof(int));
    for (int p = 0; p < m->npinfo; p++) first_use[p] = m->pinfo[p].owner < 0 ? m->nsub : m->pinfo[p].owner;
    first_use[m->p_embed] = -1;
    for (int l = m->nsub - 1; l >= 0; l--) {
        const Layer *L = &m->layers[l];
        for (int i = 0; i < L->np; i++) if (first_use[L->param[i]] > l) first_use[L->param[i]] = l;
        if (L->norm >= 0 && first_use[L->norm] > l) first_use[L->norm] = l;
    }
    m->ready_from = xmalloc((size_t)(m->nsub + 1) * sizeof(size_t));
    for (int l = 0; l <= m->nsub; l++) {
        size_t from = 0;
        for (int p = 0; p < m->npinfo; p++)
            if (first_use[p] < l && m->pinfo[p].offset + m->pinfo[p].numel > from) from = m->pinfo[p].offset + m->pinfo[p].numel;
        m->ready_from[l] = from;
    }
    free(first_use);
}

void model_alloc(Model *m, int B, int T, int max_labels) {
    m->B = B; m->T = T; m->max_labels = max_labels;
    size_t C = m->C, BTC = (size_t)B * T * C, BT = (size_t)B * T;
    m->params = alloc_touched(m->nparams * sizeof(real));
    m->grads = alloc_touched(m->nparams * sizeof(real));
    size_t na = 0, ns = 0;
    for (int i = 0; i < m->nsub; i++) {
        Layer *L = &m->layers[i];
        L->na = 0; L->scratch_n = 0;
        L->type->declare_acts(L, B, T);
        for (int a = 0; a < L->na; a++) { L->act_off[a] = na; na += (L->act_n[a] + 15) & ~(size_t)15; }
        if (L->scratch_n > ns) ns = L->scratch_n;
    }
    m->nacts = na; m->acts = alloc_touched((na + 1) * sizeof(real));
    m->nscratch = ns; m->scratch = alloc_touched((ns + 1) * sizeof(real));
    for (int i = 0; i < m->nsub; i++) {
        Layer *L = &m->layers[i];
        for (int a = 0; a < L->na; a++) L->a[a] = m->acts + L->act_off[a];
        for (int p = 0; p < L->np; p++) {
            L->p[p] = m->params + m->pinfo[L->param[p]].offset;
            L->g[p] = m->grads + m->pinfo[L->param[p]].offset;
        }
    }
    m->e0 = alloc_touched(BTC * sizeof(real));
    m->de0 = alloc_touched(BTC * sizeof(real));
    m->res = alloc_touched((m->nsub + 1) * BTC * sizeof(real));
    m->pend = alloc_touched((m->nsub + 1) * BTC * sizeof(real));
    m->xn = alloc_touched((size_t)m->nsub * BTC * sizeof(real));
    m->rstd = alloc_touched((size_t)m->nsub * BT * sizeof(real));
    m->out = alloc_touched(BTC * sizeof(real));
    m->fin = alloc_touched(BTC * sizeof(real));
    m->fin_rstd = alloc_touched(BT * sizeof(real));
    m->lab_pos = alloc_touched(BT * sizeof(int));
    m->lab_tgt = alloc_touched(BT * sizeof(int));
    m->lab_pred = alloc_touched(BT * sizeof(int));
    m->lab_h = alloc_touched((size_t)max_labels * C * sizeof(real));
    m->logits = alloc_touched((size_t)max_labels * m->V * sizeof(real));
    m->dres = alloc_touched(BTC * sizeof(real));
    m->dx = alloc_touched(BTC * sizeof(real));
    m->dpend = alloc_touched(BTC * sizeof(real));
    m->dtmp = alloc_touched(((size_t)max_labels * C > BTC ? (size_t)max_labels * C : BTC) * sizeof(real));
    m->tokens = alloc_touched(BT * sizeof(int));
    compute_ready_from(m);
}

void model_free(Model *m) {
    void *bufs[] = {m->params, m->grads, m->acts, m->scratch, m->e0, m->de0, m->res, m->pend, m->xn,
                    m->rstd, m->out, m->fin, m->fin_rstd, m->lab_pos, m->lab_tgt, m->lab_pred, m->lab_h, m->logits,
                    m->dres, m->dx, m->dpend, m->dtmp, m->tokens, m->ready_from};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    for (int i = 0; i < m->nsub; i++) free(m->layers[i].priv);
    free(m->layers); free(m->pinfo);
    memset(m, 0, sizeof *m);
}

void model_init(Model *m, uint64_t seed) {
    Rng rng;
    rng_seed(&rng, seed);
    double std = cfg_num(m->cfg, "model.init_std");
    ParamInfo *pe = &m->pinfo[m->p_embed];
    init_normal(m->params + pe->offset, pe->numel, std, &rng);
    if (m->p_head >= 0) init_normal(m->params + m->pinfo[m->p_head].offset, m->pinfo[m->p_head].numel, std, &rng);
    init_const(m->params + m->pinfo[m->p_norm_f].offset, m->C, 1.0);
    // Each layer draws from its own stream, so changing one layer's init leaves the others alone.
    for (int i = 0; i < m->nsub; i++) {
        Layer *L = &m->layers[i];
        if (L->norm >= 0) init_const(m->params + m->pinfo[L->norm].offset, m->C, 1.0);
        Rng lr;
        rng_seed(&lr, seed * 1000003ull + 7919ull * (uint64_t)(i + 1));
        L->type->init(L, &lr);
    }
}

// ----------------------------------------------------------------------------
// profile: laps of omp_get_wtime, each charged to the part that just ran

void model_profile_reset(Model *m) {
    m->nprof = 0;
    memset(m->prof, 0, sizeof m->prof);
}

void model_profile_add(Model *m, const char *name, int pass, double seconds) {
    if (!m->profile) return;
    int i = 0;
    while (i < m->nprof && m->prof[i].name != name && strcmp(m->prof[i].name, name)) i++;
    if (i == m->nprof) {
        if (m->nprof == MAX_PROF_PARTS) i = MAX_PROF_PARTS - 1;   // more parts than slots: the last one takes the rest
        else m->prof[m->nprof++].name = name;
    }
    m->prof[i].t[pass] += seconds;
}

// Charges the time since t0 to `name` and returns now, the start of the next part.
static double lap(Model *m, const char *name, int pass, double t0) {
    double now = omp_get_wtime();
    model_profile_add(m, name, pass, now - t0);
    return now;
}

void model_zero_grad(Model *m) {
    double t0 = m->profile ? omp_get_wtime() : 0;
    memset(m->grads, 0, m->nparams * sizeof(real));
    if (m->profile) lap(m, "optimizer", PASS_UPDATE, t0);
}

// ----------------------------------------------------------------------------
// forward and backward

static real *P(Model *m, int pidx) { return m->params + m->pinfo[pidx].offset; }
static real *G(Model *m, int pidx) { return m->grads + m->pinfo[pidx].offset; }

// Block types with a pooled auxiliary loss get all their layers at once (in pattern order).
static double pooled_losses(Model *m, int B, int T) {
    double aux = 0;
    Layer *group[MAX_SUBLAYERS];
    for (int r = 0; block_registry[r]; r++) {
        const BlockType *t = block_registry[r];
        if (!t->pooled_loss) continue;
        int n = 0;
        for (int l = 0; l < m->nsub; l++) if (m->layers[l].type == t) group[n++] = &m->layers[l];
        if (n) aux += t->pooled_loss(group, n, B, T);
    }
    return aux;
}

typedef struct { void (*emit)(void *, const char *, double); void *ctx; const char *prefix; } ReportCtx;
static void prefixed_emit(void *p, const char *name, double value) {
    ReportCtx *r = p;
    char full[256];
    snprintf(full, sizeof full, "%s.%s", r->prefix, name);
    r->emit(r->ctx, full, value);
}

void model_report(const Model *m, void (*emit)(void *ctx, const char *name, double value), void *ctx) {
    for (int l = 0; l < m->nsub; l++) {
        const Layer *L = &m->layers[l];
        if (!L->type->report) continue;
        ReportCtx r = {emit, ctx, L->prefix};
        L->type->report(L, prefixed_emit, &r);
    }
}

double model_forward(Model *m, const int *tokens, const int *targets, int B, int T) {
    if (B > m->B || T > m->T) die("batch %dx%d exceeds the allocated %dx%d", B, T, m->B, m->T);
    double tp = m->profile ? omp_get_wtime() : 0;
    int C = m->C, V = m->V;
    size_t BT = (size_t)B * T, BTC = BT * C;
    memcpy(m->tokens, tokens, BT * sizeof(int));
    m->fwd_B = B; m->fwd_T = T;

    // e0 = embed(tokens): (B,T,C)
    const real *wte = P(m, m->p_embed);
    for (size_t i = 0; i < BT; i++) {
        int tok = tokens[i];
        if (tok < 0 || tok >= V) die("token %d at position %zu is outside the vocabulary [0, %d)", tok, i, V);
        memcpy(m->e0 + i * C, wte + (size_t)tok * C, C * sizeof(real));
    }
    memcpy(m->res, m->e0, BTC * sizeof(real));
    memset(m->pend, 0, BTC * sizeof(real));
    if (m->profile) tp = lap(m, "embedding", PASS_FORWARD, tp);

    for (int l = 0; l < m->nsub; l++) {
        Layer *L = &m->layers[l];
        real *h = m->res + l * BTC, *hn = m->res + (l + 1) * BTC;
        real *pend = m->pend + l * BTC, *pnext = m->pend + (l + 1) * BTC;
        real *x = m->xn + l * BTC;
        const real *in = h;
        if (!L->type->own_norm) {
            // x = RMSNorm(h + pending); the pending addend (Zamba's shared-block output) enters
            // the norm but not the residual stream
            for (size_t i = 0; i < BTC; i++) m->out[i] = h[i] + pend[i];
            rmsnorm_forward(x, m->rstd + l * BT, m->out, P(m, L->norm), B * T, C, m->eps);
            in = x;
        }
        L->type->forward(L, m->out, in, B, T);
        if (L->type->residual) {
            for (size_t i = 0; i < BTC; i++) hn[i] = h[i] + m->out[i];
            memset(pnext, 0, BTC * sizeof(real));
        } else {
            memcpy(hn, h, BTC * sizeof(real));
            memcpy(pnext, m->out, BTC * sizeof(real));
        }
        if (m->profile) tp = lap(m, L->type->name, PASS_FORWARD, tp);
    }
    real *hL = m->res + m->nsub * BTC;
    rmsnorm_forward(m->fin, m->fin_rstd, hL, P(m, m->p_norm_f), B * T, C, m->eps);
    m->aux_loss = pooled_losses(m, B, T);
    if (!targets) { m->n_labels = 0; m->loss = 0; if (m->profile) lap(m, "head+loss", PASS_FORWARD, tp); return 0; }

    // gather the labelled positions: the LM head runs on those rows only
    int n = 0;
    for (size_t i = 0; i < BT; i++)
        if (targets[i] >= 0) {
            if (targets[i] >= V) die("target %d at position %zu is outside the vocabulary [0, %d)", targets[i], i, V);
            if (n == m->max_labels) die("more than %d labelled positions in a batch", m->max_labels);
            m->lab_pos[n] = (int)i; m->lab_tgt[n] = targets[i];
            memcpy(m->lab_h + (size_t)n * C, m->fin + i * C, C * sizeof(real));
            n++;
        }
    m->n_labels = n;
    if (n == 0) { m->loss = 0; m->n_correct = 0; if (m->profile) lap(m, "head+loss", PASS_FORWARD, tp); return 0; }
    // logits (n,V) = lab_h (n,C) · Wᵀ (C,V)
    const real *wout = m->p_head >= 0 ? P(m, m->p_head) : wte;
    matmul_forward(m->logits, m->lab_h, wout, NULL, n, C, V);
    // softmax + cross-entropy, in place: logits become probabilities for backward
    double loss = 0;
    int correct = 0;
    #pragma omp parallel for reduction(+ : loss, correct)
    for (int r = 0; r < n; r++) {
        real *z = m->logits + (size_t)r * V;
        int arg = 0;
        real mx = z[0];
        for (int v = 1; v < V; v++) if (z[v] > mx) { mx = z[v]; arg = v; }
        double sum = 0;
        for (int v = 0; v < V; v++) { z[v] = exp(z[v] - mx); sum += z[v]; }
        real inv = (real)(1.0 / sum);
        for (int v = 0; v < V; v++) z[v] *= inv;
        // fmax would turn a NaN probability into a finite 690.8: keep NaN visible to the divergence check
        double p = z[m->lab_tgt[r]];
        loss += p != p ? p : -log(fmax(p, 1e-300));
        correct += arg == m->lab_tgt[r];
        m->lab_pred[r] = arg;
    }
    m->n_correct = correct;
    m->loss = loss / n;
    if (m->profile) lap(m, "head+loss", PASS_FORWARD, tp);
    return m->loss;
}

void model_backward(Model *m) {
    int B = m->fwd_B, T = m->fwd_T, C = m->C, V = m->V, n = m->n_labels;
    size_t BT = (size_t)B * T, BTC = BT * C;
    if (n == 0 && m->aux_loss == 0) {
        // nothing to differentiate: the gradients stay zero, and are final in the usual order
        // (data-parallel ranks must hand over the same buckets whatever their batch part holds)
        if (m->grad_ready) {
            for (int l = m->nsub; l >= 0; l--) m->grad_ready(m->grad_ready_ctx, m->ready_from[l]);
            m->grad_ready(m->grad_ready_ctx, 0);
        }
        return;
    }
    double tp = m->profile ? omp_get_wtime() : 0;

    // dlogits = (p - onehot(target)) / n, in place over the probabilities; n is the global batch's
    // label count under data parallelism, so the ranks' gradients sum to the whole batch's
    real *dlog = m->logits;
    real invn = (real)(1.0 / (m->loss_denom > 0 ? m->loss_denom : n));
    #pragma omp parallel for
    for (int r = 0; r < n; r++) {
        real *z = dlog + (size_t)r * V;
        z[m->lab_tgt[r]] -= 1;
        for (int v = 0; v < V; v++) z[v] *= invn;
    }
    // LM head: dlab (n,C) = dlog (n,V) · W (V,C);  dW += dlogᵀ · lab_h
    const real *wout = m->p_head >= 0 ? P(m, m->p_head) : P(m, m->p_embed);
    real *dwout = m->p_head >= 0 ? G(m, m->p_head) : G(m, m->p_embed);
    real *dlab = m->dtmp;
    matmul_backward(dlab, dwout, NULL, dlog, m->lab_h, wout, n, C, V, 0);
    // scatter to (B,T,C); unlabelled positions get no gradient from the head
    real *dfin = m->dx;
    memset(dfin, 0, BTC * sizeof(real));
    for (int r = 0; r < n; r++) memcpy(dfin + (size_t)m->lab_pos[r] * C, dlab + (size_t)r * C, C * sizeof(real));
    // final norm: dres = d(residual stream after the last sublayer)
    memset(m->dres, 0, BTC * sizeof(real));
    rmsnorm_backward(m->dres, G(m, m->p_norm_f), dfin, m->res + m->nsub * BTC, P(m, m->p_norm_f), m->fin_rstd, B * T, C);
    if (m->profile) tp = lap(m, "head+loss", PASS_BACKWARD, tp);
    if (m->grad_ready) m->grad_ready(m->grad_ready_ctx, m->ready_from[m->nsub]);

    // Walk the sublayers backwards. dres is d(h), dpend is d(pending addend entering the norm
    // of the sublayer after the current one).
    memset(m->de0, 0, BTC * sizeof(real));
    memset(m->dpend, 0, BTC * sizeof(real));
    for (int l = m->nsub - 1; l >= 0; l--) {
        Layer *L = &m->layers[l];
        const real *dout = L->type->residual ? m->dres : m->dpend;
        const real *in = L->type->own_norm ? m->res + l * BTC : m->xn + l * BTC;
        L->type->backward(L, m->dx, dout, in, B, T);
        if (L->type->own_norm) {
            for (size_t i = 0; i < BTC; i++) m->dres[i] += m->dx[i];
            memset(m->dpend, 0, BTC * sizeof(real));
        } else {
            // the norm's input was h + pending: both receive the same gradient
            real *ds = m->dtmp;
            memset(ds, 0, BTC * sizeof(real));
            for (size_t i = 0; i < BTC; i++) m->out[i] = m->res[l * BTC + i] + m->pend[l * BTC + i];
            rmsnorm_backward(ds, G(m, L->norm), m->dx, m->out, P(m, L->norm), m->rstd + l * BT, B * T, C);
            for (size_t i = 0; i < BTC; i++) m->dres[i] += ds[i];
            memcpy(m->dpend, ds, BTC * sizeof(real));
        }
        if (m->profile) tp = lap(m, L->type->name, PASS_BACKWARD, tp);
        if (m->grad_ready) m->grad_ready(m->grad_ready_ctx, m->ready_from[l]);
    }
    // embedding: d(e0) = d(h_0) + what blocks that read e0 directly added (Zamba's concat);
    // rows scatter-add in position order, so the result does not depend on threads
    real *dwte = G(m, m->p_embed);
    for (size_t i = 0; i < BT; i++) {
        real *row = dwte + (size_t)m->tokens[i] * C;
        const real *a = m->dres + i * C, *b = m->de0 + i * C;
        for (int c = 0; c < C; c++) row[c] += a[c] + b[c];
    }
    if (m->profile) lap(m, "embedding", PASS_BACKWARD, tp);
    if (m->grad_ready) m->grad_ready(m->grad_ready_ctx, 0);
}
