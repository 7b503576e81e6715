// info.c: see info.h.
#include "info.h"
#include "json.h"
#include "keys.h"
#include <math.h>
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

// ----------------------------------------------------------------------------
// `hlab info A.yaml B.yaml ... --table`: several configs side by side, with the published
// numbers of their reference.* keys (configs/paper/) next to ours.

// A pattern short enough to read at a glance: the unit it repeats, "(*-)x32" or
// "(M-MEM-ME*-MEM-ME)x4", when there is one of at most 24 symbols; the whole pattern when it is
// that short itself; otherwise how many of each symbol it has, "M:54 S:9" (Zamba2's hybrid
// layers sit at irregular depths, so its pattern has no unit).
static void pattern_short(const char *pat, char *out, size_t cap) {
    size_t n = strlen(pat);
    for (size_t p = 1; p <= n / 2 && p <= 24; p++) {
        if (n % p) continue;
        size_t i = p;
        while (i < n && pat[i] == pat[i - p]) i++;
        if (i == n) { snprintf(out, cap, "(%.*s)x%zu", (int)p, pat, n / p); return; }
    }
    if (n <= 24) { snprintf(out, cap, "%.*s", (int)n, pat); return; }
    size_t len = 0;
    out[0] = 0;
    for (const char *s = "M*-ES"; *s && len < cap; s++) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) k += pat[i] == *s;
        if (k) len += snprintf(out + len, cap - len, "%s%c:%zu", len ? " " : "", *s, k);
    }
}

int info_row(InfoRow *r, const char *path, char **sets, int nsets, long ctx, int bpe) {
    memset(r, 0, sizeof *r);
    r->path = path;
    const char *base = strrchr(path, '/');
    snprintf(r->name, sizeof r->name, "%s", base ? base + 1 : path);
    size_t len = strlen(r->name);
    if (len > 5 && !strcmp(r->name + len - 5, ".yaml")) r->name[len - 5] = 0;
    else if (len > 4 && !strcmp(r->name + len - 4, ".yml")) r->name[len - 4] = 0;

    Config c;
    ConfError err;
    if (config_load(&c, path, sets, nsets, all_key_tables(), &err) != 0) {
        snprintf(r->error, sizeof r->error, "%s", err.msg);
        return -1;
    }
    Model m;
    if (model_build(&m, &c, &err) != 0) {   // a failed build holds nothing to free
        snprintf(r->error, sizeof r->error, "%s", err.msg);
        config_free(&c);
        return -1;
    }
    model_stats(&m, ctx, bpe, &r->s);
    snprintf(r->pattern, sizeof r->pattern, "%s", m.pattern);
    pattern_short(m.pattern, r->short_form, sizeof r->short_form);
    r->sublayers = m.nsub;
    r->layers = m.n_layers;
    r->ref_total = cfg_num(&c, "reference.params_total");
    r->ref_active = cfg_num(&c, "reference.params_active");
    r->ref_kv = cfg_num(&c, "reference.kv_cache_bytes");
    snprintf(r->ref_source, sizeof r->ref_source, "%s", cfg_str(&c, "reference.source"));
    model_free(&m);
    config_free(&c);
    return 0;
}

// What the published numbers say about one row: relative differences and which checks fail.
typedef struct {
    double d_total, d_active;   // (ours - published) / published; 0 when not published
    int kv_comparable;          // a published KV cache exists and the table is at its setting
    int bad_total, bad_active, bad_kv;
} RefCheck;

static RefCheck ref_check(const InfoRow *r, long ctx, int bpe) {
    RefCheck k = {0};
    if (r->ref_total > 0) {
        k.d_total = (r->s.params_total - r->ref_total) / r->ref_total;
        k.bad_total = fabs(k.d_total) > INFO_PARAMS_TOL;
    }
    if (r->ref_active > 0) {
        k.d_active = (r->s.params_active - r->ref_active) / r->ref_active;
        k.bad_active = fabs(k.d_active) > INFO_PARAMS_TOL;
    }
    // A KV cache is a count of elements times their width: there is no rounding to excuse, so
    // anything but equality is a mismatch.
    k.kv_comparable = r->ref_kv > 0 && ctx == INFO_REF_CONTEXT && bpe == INFO_REF_BYTES;
    k.bad_kv = k.kv_comparable && r->s.kv_bytes != r->ref_kv;
    return k;
}

// Parameter counts in decimal units, as papers write them.
static const char *fmt_count(double x, int published, char *b, size_t n) {
    const char *u = "";
    double d = 1;
    if (x >= 1e9) { u = "B"; d = 1e9; }
    else if (x >= 1e6) { u = "M"; d = 1e6; }
    else if (x >= 1e3) { u = "K"; d = 1e3; }
    // a published figure keeps the digits it was published with; ours shows four decimals' worth
    snprintf(b, n, published ? "%.6g%s" : (d > 1 ? "%.3f%s" : "%.0f%s"), x / d, u);
    return b;
}

// Cache sizes in binary units: the Jamba paper's "128GB" for Llama-2 is 128 GiB exactly.
static const char *fmt_bytes(double x, char *b, size_t n) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int i = 0;
    while (x >= 1024 && i < 5) { x /= 1024; i++; }
    snprintf(b, n, i ? "%.4g %s" : "%.0f %s", x, u[i]);
    return b;
}

static void table_json(const InfoRow *rows, int n, long ctx, int bpe) {
    printf("{\"context\": %ld, \"bytes_per_element\": %d, \"reference_context\": %ld, \"reference_bytes_per_element\": %d, "
           "\"params_tolerance\": %g,\n \"configs\": [", ctx, bpe, INFO_REF_CONTEXT, INFO_REF_BYTES, INFO_PARAMS_TOL);
    for (int i = 0; i < n; i++) {
        const InfoRow *r = &rows[i];
        printf("%s\n  {\"config\": \"", i ? "," : "");
        json_escape(stdout, r->path);
        printf("\", \"name\": \"");
        json_escape(stdout, r->name);
        printf("\"");
        if (r->error[0]) {
            printf(", \"error\": \"");
            json_escape(stdout, r->error);
            printf("\"}");
            continue;
        }
        RefCheck k = ref_check(r, ctx, bpe);
        printf(", \"pattern\": \"%s\", \"pattern_short\": \"%s\", \"sublayers\": %d, \"layers\": %d, "
               "\"params_total\": %.0f, \"params_active\": %.0f, \"kv_cache_bytes\": %.0f, \"ssm_state_bytes\": %.0f, "
               "\"flops_per_token_at_context\": %.0f, \"flops_per_token_mean\": %.0f",
               r->pattern, r->short_form, r->sublayers, r->layers, r->s.params_total, r->s.params_active,
               r->s.kv_bytes, r->s.ssm_bytes, r->s.flops_token_at_ctx, r->s.flops_token_mean);
        if (r->ref_total > 0) printf(", \"published_params_total\": %.17g, \"params_total_rel_diff\": %.6g", r->ref_total, k.d_total);
        if (r->ref_active > 0) printf(", \"published_params_active\": %.17g, \"params_active_rel_diff\": %.6g", r->ref_active, k.d_active);
        if (r->ref_kv > 0)
            printf(", \"published_kv_cache_bytes\": %.17g, \"kv_cache_match\": %s", r->ref_kv,
                   !k.kv_comparable ? "null" : k.bad_kv ? "false" : "true");
        if (r->ref_source[0]) {
            printf(", \"reference_source\": \"");
            json_escape(stdout, r->ref_source);
            printf("\"");
        }
        printf(", \"flags\": [%s%s%s%s%s], \"flagged\": %s}",
               k.bad_total ? "\"params_total\"" : "", k.bad_total && (k.bad_active || k.bad_kv) ? ", " : "",
               k.bad_active ? "\"params_active\"" : "", k.bad_active && k.bad_kv ? ", " : "",
               k.bad_kv ? "\"kv_cache_bytes\"" : "", k.bad_total || k.bad_active || k.bad_kv ? "true" : "false");
    }
    printf("\n ]}\n");
}

int info_table_print(const InfoRow *rows, int n, long ctx, int bpe, int json) {
    int flagged = 0, with_ref = 0;
    for (int i = 0; i < n; i++) {
        if (rows[i].error[0]) continue;
        RefCheck k = ref_check(&rows[i], ctx, bpe);
        flagged += k.bad_total || k.bad_active || k.bad_kv;
        with_ref += rows[i].ref_total > 0 || rows[i].ref_active > 0 || rows[i].ref_kv > 0;
    }
    if (json) { table_json(rows, n, ctx, bpe); return flagged; }

    int w = 6;
    for (int i = 0; i < n; i++) if ((int)strlen(rows[i].name) > w) w = (int)strlen(rows[i].name);
    int wp = 7;
    for (int i = 0; i < n; i++) if (!rows[i].error[0] && (int)strlen(rows[i].short_form) > wp) wp = (int)strlen(rows[i].short_form);
    char b1[64], b2[64], b3[64], b4[64], b5[64], b6[64];
    printf("context %ld tokens, %d-byte cache elements, per sequence; forward FLOPs per token at position %ld and "
           "the mean over the context\n\n", ctx, bpe, ctx);
    printf("%-*s %9s  %-*s %6s %10s %10s %11s %11s %11s %11s\n", w, "config", "sublayers", wp, "pattern", "layers",
           "params", "active", "KV cache", "SSM state", "FLOPs@ctx", "FLOPs mean");
    for (int i = 0; i < n; i++) {
        const InfoRow *r = &rows[i];
        if (r->error[0]) { printf("%-*s error: %s\n", w, r->name, r->error); continue; }
        printf("%-*s %9d  %-*s %6d %10s %10s %11s %11s %11s %11s\n", w, r->name, r->sublayers, wp, r->short_form, r->layers,
               fmt_count(r->s.params_total, 0, b1, sizeof b1), fmt_count(r->s.params_active, 0, b2, sizeof b2),
               fmt_bytes(r->s.kv_bytes, b3, sizeof b3), fmt_bytes(r->s.ssm_bytes, b4, sizeof b4),
               human(r->s.flops_token_at_ctx, b5, sizeof b5), human(r->s.flops_token_mean, b6, sizeof b6));
    }
    if (!with_ref) return flagged;

    printf("\npublished vs ours: diff = (ours - published) / published; ! = parameters more than %g%% off, or a KV "
           "cache that is not equal", 100 * INFO_PARAMS_TOL);
    if (ctx != INFO_REF_CONTEXT || bpe != INFO_REF_BYTES)
        printf("\n(published KV caches are at %ld tokens, %d-byte elements: run with --context %ld --bytes %d to compare them)",
               INFO_REF_CONTEXT, INFO_REF_BYTES, INFO_REF_CONTEXT, INFO_REF_BYTES);
    printf("\n\n%-*s %10s %10s %8s  %10s %10s %8s  %10s %10s %5s  %s\n", w, "config", "params pub", "ours", "diff",
           "active pub", "ours", "diff", "KV pub", "ours", "", "source");
    for (int i = 0; i < n; i++) {
        const InfoRow *r = &rows[i];
        if (r->error[0]) continue;
        RefCheck k = ref_check(r, ctx, bpe);
        char d1[32] = "-", d2[32] = "-", p1[64] = "-", p2[64] = "-", p3[64] = "-", kv[8] = "-";
        if (r->ref_total > 0) {
            fmt_count(r->ref_total, 1, p1, sizeof p1);
            snprintf(d1, sizeof d1, "%+.2f%%%s", 100 * k.d_total, k.bad_total ? "!" : "");
        }
        if (r->ref_active > 0) {
            fmt_count(r->ref_active, 1, p2, sizeof p2);
            snprintf(d2, sizeof d2, "%+.2f%%%s", 100 * k.d_active, k.bad_active ? "!" : "");
        }
        if (r->ref_kv > 0) {
            fmt_bytes(r->ref_kv, p3, sizeof p3);
            snprintf(kv, sizeof kv, "%s", !k.kv_comparable ? "n/a" : k.bad_kv ? "!=" : "=");
        }
        printf("%-*s %10s %10s %8s  %10s %10s %8s  %10s %10s %5s  %s\n", w, r->name,
               p1, fmt_count(r->s.params_total, 0, b1, sizeof b1), d1,
               p2, fmt_count(r->s.params_active, 0, b2, sizeof b2), d2,
               p3, fmt_bytes(r->s.kv_bytes, b3, sizeof b3), kv, r->ref_source[0] ? r->ref_source : "");
    }
    if (flagged) printf("\n%d of %d configs flagged against their published numbers\n", flagged, with_ref);
    return flagged;
}
