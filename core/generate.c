// generate.c: prefill and step for one sequence (see generate.h).
#include "generate.h"
#include "ops.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static real *param(const Model *m, int pidx) { return m->params + m->pinfo[pidx].offset; }
static int stateful(const Layer *L) { return L->type->cache != CACHE_NONE; }

int gen_init(Generator *g, Model *m, int max_T, char *msg, size_t cap) {
    memset(g, 0, sizeof *g);
    if (m->B < 1 || !m->params) die("gen_init: the model must be allocated first");
    for (int l = 0; l < m->nsub; l++) {
        const Layer *L = &m->layers[l];
        if (stateful(L) && !(L->type->state_size && L->type->state_from_forward && L->type->step)) {
            snprintf(msg, cap, "layer %s (%s) has no inference step: generation is not implemented for this block type",
                     L->prefix, L->type->name);
            return -1;
        }
    }
    g->m = m; g->max_T = max_T;
    g->state = xcalloc(m->nsub, sizeof(real *));
    size_t total = 0, off[MAX_SUBLAYERS];
    for (int l = 0; l < m->nsub; l++) {
        const Layer *L = &m->layers[l];
        off[l] = total;
        if (stateful(L)) total += (L->type->state_size(L, max_T) + 15) & ~(size_t)15;   // 64-byte aligned starts
    }
    g->state_reals = total;
    g->state_mem = alloc_touched((total + 1) * sizeof(real));
    for (int l = 0; l < m->nsub; l++) g->state[l] = stateful(&m->layers[l]) ? g->state_mem + off[l] : NULL;
    size_t C = m->C;
    real *rows = alloc_touched(6 * C * sizeof(real));
    g->h = rows; g->pend = rows + C; g->x = rows + 2 * C; g->y = rows + 3 * C; g->tmp = rows + 4 * C; g->fin = rows + 5 * C;
    g->logits = alloc_touched((size_t)m->V * sizeof(real));
    return 0;
}

void gen_free(Generator *g) {
    if (!g->m) return;
    free(g->state); free(g->state_mem); free(g->h); free(g->logits);
    memset(g, 0, sizeof *g);
}

// logits (V) = lm_head(fin row), fin already normalised
static void head(Generator *g, const real *fin) {
    Model *m = g->m;
    const real *w = param(m, m->p_head >= 0 ? m->p_head : m->p_embed);
    matmul_forward(g->logits, fin, w, NULL, 1, m->C, m->V);
}

void gen_prefill(Generator *g, const int *tokens, int T) {
    Model *m = g->m;
    if (T < 1 || T > m->T || T >= g->max_T) die("prefill of %d tokens: need 1 <= T <= %d and T < %d", T, m->T, g->max_T);
    model_forward(m, tokens, NULL, 1, T);
    for (int l = 0; l < m->nsub; l++)
        if (g->state[l]) m->layers[l].type->state_from_forward(&m->layers[l], g->state[l], T);
    head(g, m->fin + (size_t)(T - 1) * m->C);
    g->pos = T;
}

void gen_step(Generator *g, int token) {
    Model *m = g->m;
    int C = m->C;
    if (g->pos >= g->max_T) die("generation reached the %d positions its states were allocated for", g->max_T);
    if (token < 0 || token >= m->V) die("token %d is outside the vocabulary [0, %d)", token, m->V);
    // e0 row 0 is the current token's embedding: Zamba's shared block concatenates it
    memcpy(m->e0, param(m, m->p_embed) + (size_t)token * C, C * sizeof(real));
    memcpy(g->h, m->e0, C * sizeof(real));
    memset(g->pend, 0, C * sizeof(real));
    for (int l = 0; l < m->nsub; l++) {
        Layer *L = &m->layers[l];
        const real *in = g->h;
        if (!L->type->own_norm) {
            real rstd;
            for (int c = 0; c < C; c++) g->tmp[c] = g->h[c] + g->pend[c];
            rmsnorm_forward(g->x, &rstd, g->tmp, param(m, L->norm), 1, C, m->eps);
            in = g->x;
        }
        if (g->state[l]) L->type->step(L, g->y, in, g->state[l], g->pos);
        else L->type->forward(L, g->y, in, 1, 1);
        if (L->type->residual) {
            for (int c = 0; c < C; c++) g->h[c] += g->y[c];
            memset(g->pend, 0, C * sizeof(real));
        } else memcpy(g->pend, g->y, C * sizeof(real));
    }
    real rstd;
    rmsnorm_forward(g->fin, &rstd, g->h, param(m, m->p_norm_f), 1, C, m->eps);
    head(g, g->fin);
    g->pos++;
}

double gen_state_bytes(const Model *m, long ctx) {
    double n = 0;
    for (int l = 0; l < m->nsub; l++) {
        const Layer *L = &m->layers[l];
        if (stateful(L) && L->type->state_size) n += (double)L->type->state_size(L, ctx > INT_MAX ? INT_MAX : (int)ctx);
    }
    return n * sizeof(real);
}

int gen_pick(const real *logits, int V, double temperature, int top_k, Rng *rng) {
    int arg = 0;
    for (int v = 1; v < V; v++) if (logits[v] > logits[arg]) arg = v;
    if (temperature <= 0) return arg;
    // threshold: the top_k-th largest logit (ties at the threshold all stay in)
    double thr = -INFINITY;
    if (top_k > 0 && top_k < V) {
        // k passes of "largest below the previous", O(kV): k is small in practice
        double prev = INFINITY;
        for (int k = 0; k < top_k; k++) {
            double best = -INFINITY;
            for (int v = 0; v < V; v++) if (logits[v] < prev && logits[v] > best) best = logits[v];
            if (best == -INFINITY) break;
            thr = prev = best;
        }
    }
    double mx = logits[arg], sum = 0;
    for (int v = 0; v < V; v++) if (logits[v] >= thr) sum += exp((logits[v] - mx) / temperature);
    double r = rng_uniform(rng) * sum, acc = 0;
    int last = arg;
    for (int v = 0; v < V; v++) {
        if (logits[v] < thr) continue;
        acc += exp((logits[v] - mx) / temperature);
        if (r < acc) return v;
        last = v;
    }
    return last;   // r fell past the sum's last rounding: the last eligible token
}
