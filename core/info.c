// info.c: see info.h.
#include "info.h"
#include "json.h"
#include <string.h>

static double layer_params(const Model *m, int l, double *active) {
    // parameters the layer declared first (shared tensors count at their first user), plus its norm
    double n = 0, a = 0;
    for (int i = 0; i < m->npinfo; i++)
        if (m->pinfo[i].owner == l) { n += (double)m->pinfo[i].numel; a += (double)m->pinfo[i].numel * m->pinfo[i].active; }
    if (active) *active = a;
    return n;
}

static double head_flops(const Model *m) { return 2.0 * m->C * m->V; }

void model_stats(const Model *m, long ctx, int bpe, ModelStats *s) {
    memset(s, 0, sizeof *s);
    s->params_total = model_param_count(m);
    s->params_active = model_active_count(m);
    double f_ctx = head_flops(m), f_mean = head_flops(m);
    for (int l = 0; l < m->nsub; l++) {
        const Layer *L = &m->layers[l];
        const BlockType *t = L->type;
        double elems = t->cache_elems ? t->cache_elems(L, ctx) : 0;
        if (t->cache == CACHE_KV) s->kv_bytes += elems * bpe;
        if (t->cache == CACHE_SSM) s->ssm_bytes += elems * bpe;
        if (t->flops_per_token) {
            f_ctx += t->flops_per_token(L, ctx);
            // flops are affine in the position, so the mean over 1..ctx is the value at (ctx+1)/2
            f_mean += t->flops_per_token(L, (ctx + 1) / 2);
        }
    }
    s->flops_token_at_ctx = f_ctx;
    s->flops_token_mean = f_mean;
}

static const char *human(double x, char *buf, size_t n) {
    const char *u[] = {"", "K", "M", "G", "T", "P"};
    int i = 0;
    while (x >= 1000 && i < 5) { x /= 1000; i++; }
    snprintf(buf, n, i ? "%.2f%s" : "%.0f%s", x, u[i]);
    return buf;
}

void info_print(const Model *m, long ctx, int bpe, int json) {
    ModelStats s;
    model_stats(m, ctx, bpe, &s);
    if (json) {
        printf("{\"pattern\": \"%s\", \"sublayers\": %d, \"layers\": %d, \"d_model\": %d, \"vocab_size\": %d,\n", m->pattern, m->nsub, m->n_layers, m->C, m->V);
        printf(" \"params_total\": %.0f, \"params_active\": %.0f, \"context\": %ld, \"bytes_per_element\": %d,\n", s.params_total, s.params_active, ctx, bpe);
        printf(" \"kv_cache_bytes\": %.0f, \"ssm_state_bytes\": %.0f, \"flops_per_token_at_context\": %.0f, \"flops_per_token_mean\": %.0f,\n",
               s.kv_bytes, s.ssm_bytes, s.flops_token_at_ctx, s.flops_token_mean);
        printf(" \"layer_table\": [");
        for (int l = 0; l < m->nsub; l++) {
            const Layer *L = &m->layers[l];
            double act, n = layer_params(m, l, &act);
            printf("%s\n  {\"index\": %d, \"layer\": %d, \"symbol\": \"%c\", \"block\": \"%s\", \"params\": %.0f, \"active\": %.0f, \"flops_per_token\": %.0f, \"cache_bytes\": %.0f}",
                   l ? "," : "", l, L->layer_id, L->type->symbol, L->type->name, n, act,
                   L->type->flops_per_token ? L->type->flops_per_token(L, ctx) : 0,
                   L->type->cache_elems ? L->type->cache_elems(L, ctx) * bpe : 0);
        }
        printf("\n ]}\n");
        return;
    }
    char b1[32], b2[32], b3[32];
    printf("pattern   %s\n", m->pattern);
    printf("layers    %d (%d sublayers), d_model %d, vocab %d, embeddings %s\n", m->n_layers, m->nsub, m->C, m->V, m->tied ? "tied" : "untied");
    printf("\n%5s %5s %3s %-10s %14s %14s %14s %12s\n", "index", "layer", "sym", "block", "params", "active", "FLOPs/token", "cache");
    for (int l = 0; l < m->nsub; l++) {
        const Layer *L = &m->layers[l];
        double act, n = layer_params(m, l, &act);
        double f = L->type->flops_per_token ? L->type->flops_per_token(L, ctx) : 0;
        double c = L->type->cache_elems ? L->type->cache_elems(L, ctx) * bpe : 0;
        printf("%5d %5d %3c %-10s %14.0f %14.0f %14s %12s\n", l, L->layer_id, L->type->symbol, L->type->name, n, act,
               human(f, b1, sizeof b1), c ? human(c, b2, sizeof b2) : "-");
    }
    double frame = layer_params(m, -1, NULL);
    printf("%5s %5s %3s %-10s %14.0f\n", "", "", "", "embed/head", frame);
    printf("\nparameters        total %s (%.0f), active %s (%.0f)\n", human(s.params_total, b1, sizeof b1), s.params_total,
           human(s.params_active, b2, sizeof b2), s.params_active);
    printf("context %ld, %d-byte elements, per sequence:\n", ctx, bpe);
    printf("  KV cache        %s bytes (%.4g GiB)\n", human(s.kv_bytes, b1, sizeof b1), s.kv_bytes / 1073741824.0);
    printf("  SSM state       %s bytes (%.4g MiB)\n", human(s.ssm_bytes, b2, sizeof b2), s.ssm_bytes / 1048576.0);
    printf("forward FLOPs/token  %s at position %ld, %s mean over the context\n", human(s.flops_token_at_ctx, b1, sizeof b1), ctx,
           human(s.flops_token_mean, b3, sizeof b3));
}
