// dtest_step_attention.c: the inference step of the KV-cache blocks (attention '*', Zamba's
// shared block 'S') against their own parallel forward, in double precision. For each stateful
// layer of a model built from YAML: forward on a prompt of T0 rows, state_from_forward, then one
// step per remaining row must give the full forward's output rows; a corrupted cache entry must
// show. Also RoPE of one row against the forward's table (bitwise), and past its length.
#include "attn_cache.h"
#include "keys.h"
#include "model.h"
#include "ops.h"
#include "test.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { T = 11, GUARD = 64 };
// the two paths do the same arithmetic in a different order (one row against a batch): they
// agree to rounding. Errors are relative to the layer's largest output (the shared block's
// outputs are ~1e-3 at init): a wrong position, cache row or angle gives 1e-3 and up.
static const double TOL = 1e-10;

static int build(const char *label, const char *yaml, Config *c, Model *m) {
    ConfError err;
    if (config_load_string(c, yaml, label, NULL, 0, all_key_tables(), &err) != 0 || model_build(m, c, &err) != 0) {
        CHECK(0, "%s: %s", label, err.msg);
        return -1;
    }
    model_alloc(m, 1, T, T);
    model_init(m, 5);
    Rng rng;
    rng_seed(&rng, 11);
    // perturb so that no path is trivially zero (LoRA B matrices start at 0)
    for (size_t i = 0; i < m->nparams; i++) m->params[i] += (real)(0.05 * rng_normal(&rng));
    return 0;
}

static double max_diff(const real *a, const real *b, size_t n) {
    double w = 0;
    for (size_t i = 0; i < n; i++) w = fmax(w, fabs((double)a[i] - (double)b[i]));
    return w;
}

// Prefill T0 rows of x, then step rows T0..T-1; returns max |step out - ref| over the stepped
// rows. The state gets exactly state_size(L, T) reals (so the last step, pos = T-1, runs with no
// free cache row left) plus a guard that must stay untouched, and starts as NaN: a step that
// reads anything the prefill or an earlier step did not write returns NaN. corrupt_at >= 0 adds
// 0.5 to that state entry after the prefill.
static double run_steps(Layer *L, const real *x, const real *e, const real *other, const real *ref, int T0,
                        long corrupt_at, int *guard_ok) {
    Model *m = L->model;
    int C = m->C;
    size_t n = L->type->state_size(L, T);
    real *state = malloc((n + GUARD) * sizeof(real)), *y = malloc((size_t)T * C * sizeof(real));
    for (size_t i = 0; i < n + GUARD; i++) state[i] = NAN;
    for (int i = 0; i < GUARD; i++) state[n + i] = 12345.0 + i;
    memcpy(m->e0, e, (size_t)T * C * sizeof(real));
    L->type->forward(L, y, x, 1, T0);
    L->type->state_from_forward(L, state, T0);
    if (corrupt_at >= 0) state[corrupt_at] += 0.5;
    // overwrite the forward's activations: the steps must live on the state alone
    L->type->forward(L, y, other, 1, T);
    // in a step only e0 row 0 is valid (the current token's embedding)
    for (size_t i = 0; i < (size_t)T * C; i++) m->e0[i] = NAN;
    double worst = 0;
    for (int t = T0; t < T; t++) {
        memcpy(m->e0, e + (size_t)t * C, C * sizeof(real));   // e0 row 0: this token's embedding
        L->type->step(L, y, x + (size_t)t * C, state, t);
        double d = max_diff(y, ref + (size_t)t * C, C);
        worst = isnan(d) || isnan(worst) ? NAN : fmax(worst, d);
    }
    int ok = 1;
    for (int i = 0; i < GUARD; i++) ok &= state[n + i] == 12345.0 + i;
    *guard_ok = ok;
    free(state); free(y);
    return worst;
}

// kd: Hkv·hd of the layers (the cache row is [k (kd) | v (kd)]), to aim the corruptions
static void check_model(const char *label, const char *yaml, int kd) {
    Config c;
    Model m;
    if (build(label, yaml, &c, &m) != 0) return;
    int C = m.C, nkv = 0;
    size_t N = (size_t)T * C;
    real *x = malloc(N * sizeof(real)), *e = malloc(N * sizeof(real)), *other = malloc(N * sizeof(real));
    real *ref = malloc(N * sizeof(real));
    Rng rng;
    rng_seed(&rng, 23);
    for (int l = 0; l < m.nsub; l++) {
        Layer *L = &m.layers[l];
        if (L->type->cache != CACHE_KV) continue;
        nkv++;
        for (size_t i = 0; i < N; i++) {
            x[i] = (real)rng_normal(&rng); e[i] = (real)rng_normal(&rng); other[i] = (real)rng_normal(&rng);
        }
        memcpy(m.e0, e, N * sizeof(real));
        L->type->forward(L, ref, x, 1, T);
        double scale = 0;
        for (size_t i = 0; i < N; i++) scale = fmax(scale, fabs(ref[i]));
        double vary = max_diff(ref, ref + C, C) / scale;   // the output is not trivially constant/zero
        CHECK(scale > 0 && vary > 1e-2, "%s %s: forward output (max %.2e) varies between rows (rel %.2e)",
              label, L->prefix, scale, vary);
        const int splits[] = {1, 2, 6, T - 1};
        for (int s = 0; s < 4; s++) {
            int guard_ok;
            double w = run_steps(L, x, e, other, ref, splits[s], -1, &guard_ok) / scale;
            CHECK(w < TOL, "%s %s: prefill %d + %d steps = forward rows (max rel |d| %.2e)", label, L->prefix,
                  splits[s], T - splits[s], w);
            CHECK(guard_ok, "%s %s: prefill %d: nothing written past state_size", label, L->prefix, splits[s]);
        }
        // a wrong cache entry must change later outputs: k of position 1, v of position 2
        int guard_ok;
        double wk = run_steps(L, x, e, other, ref, 3, 1L * 2 * kd + 1, &guard_ok) / scale;
        double wv = run_steps(L, x, e, other, ref, 3, 2L * 2 * kd + kd + 1, &guard_ok) / scale;
        CHECK(wk > 1e5 * TOL && wv > 1e5 * TOL, "%s %s: a corrupted cached k / v is noticed (rel %.2e, %.2e)",
              label, L->prefix, wk, wv);
    }
    CHECK(nkv > 0, "%s: %d KV-cache layers checked", label, nkv);
    free(x); free(e); free(other); free(ref);
    model_free(&m);
    config_free(&c);
}

// attn_rope_row at every position of a table equals attn_rope_forward bitwise (the step
// computes its angles without a table, so it also works past the forward's length); and it is
// a rotation: norms kept, different positions give different rows.
static void check_rope_row(void) {
    enum { HD = 6, NH = 3, TT = 40, R = NH * HD };
    double theta = 500;
    real *tab = malloc(attn_rope_table_len(HD, TT) * sizeof(real));
    attn_rope_table(tab, HD, TT, theta);
    real *a = malloc((size_t)TT * R * sizeof(real)), *b = malloc((size_t)TT * R * sizeof(real));
    Rng rng;
    rng_seed(&rng, 7);
    for (int i = 0; i < TT * R; i++) a[i] = b[i] = (real)rng_normal(&rng);
    attn_rope_forward(a, tab, TT, 1, TT, NH, HD);
    for (int t = 0; t < TT; t++) attn_rope_row(b + (size_t)t * R, NH, HD, t, theta);
    CHECK(memcmp(a, b, (size_t)TT * R * sizeof(real)) == 0, "rope row: bitwise the forward's table rotation at positions 0..%d", TT - 1);
    real x[R], y[R], z[R];
    for (int i = 0; i < R; i++) x[i] = y[i] = z[i] = (real)rng_normal(&rng);
    attn_rope_row(y, NH, HD, 1000, theta);
    attn_rope_row(z, NH, HD, 1001, theta);
    double nx = 0, ny = 0;
    for (int i = 0; i < R; i++) { nx += x[i] * x[i]; ny += y[i] * y[i]; }
    CHECK(fabs(nx - ny) < 1e-12 * nx && max_diff(y, z, R) > 1e-3,
          "rope row at 1000: norm kept (%.2e), differs from 1001 (%.2e)", fabs(nx - ny), max_diff(y, z, R));
    free(tab); free(a); free(b);
}

// single-query attention against a direct evaluation of softmax(scale q·k) v with GQA
static void check_attend(void) {
    enum { H = 4, HKV = 2, HD = 3, N = 9 };
    AttnDims d = {.H = H, .Hkv = HKV, .hd = HD, .scale = 0.7, .nthreads = 1};
    size_t ld = ATTN_KV_ROW(&d);
    real q[H * HD], kv[N * 2 * HKV * HD], out[H * HD], work[H * N];
    Rng rng;
    rng_seed(&rng, 31);
    for (int i = 0; i < H * HD; i++) q[i] = (real)rng_normal(&rng);
    for (int i = 0; i < N * 2 * HKV * HD; i++) kv[i] = (real)rng_normal(&rng);
    attn_cache_attend(out, q, kv, &d, N, work);
    double worst = 0;
    for (int h = 0; h < H; h++) {
        int g = h / (H / HKV);
        double s[N], z = 0;
        for (int j = 0; j < N; j++) {
            s[j] = 0;
            for (int i = 0; i < HD; i++) s[j] += q[h * HD + i] * kv[j * ld + g * HD + i];
            s[j] = exp(0.7 * s[j]);
            z += s[j];
        }
        for (int i = 0; i < HD; i++) {
            double o = 0;
            for (int j = 0; j < N; j++) o += s[j] / z * kv[j * ld + HKV * HD + g * HD + i];
            worst = fmax(worst, fabs(o - out[h * HD + i]));
        }
    }
    CHECK(worst < 1e-13, "single-query attention with GQA = direct softmax(scale q k) v (max |d| %.2e)", worst);
}

int main(void) {
    ops_init_threads(1);
    test_group("step attention");
    check_attend();
    check_rope_row();
    check_model("attention, 4 heads / 2 kv heads, RoPE",
                "model: {d_model: 16, vocab_size: 13, pattern: \"*-*-\", "
                "attention: {heads: 4, kv_heads: 2, rope: true, rope_theta: 500}, mlp: {hidden: 12}}\n", 2 * 4);
    check_model("attention, kv_heads = heads, no RoPE",
                "model: {d_model: 12, vocab_size: 13, pattern: \"*-\", attention: {heads: 3}, mlp: {hidden: 12}}\n", 3 * 4);
    check_model("attention, multi-query, head_dim 6, scale 0.3, RoPE",
                "model: {d_model: 8, vocab_size: 13, pattern: \"*-\", "
                "attention: {heads: 2, kv_heads: 1, head_dim: 6, scale: 0.3, rope: true, rope_theta: 100}, mlp: {hidden: 8}}\n", 6);
    check_model("Zamba2-style shared blocks (ABA), concat, LoRA on MLP and qkv, RoPE",
                "model: {d_model: 8, vocab_size: 13, pattern: \"M SM M SM SM M\", "
                "mamba: {version: 2, headdim: 4, d_state: 4, chunk_size: 4}, "
                "shared: {blocks: 2, lora_rank: 2, lora_qkv: true, rope: true}, shared_attn: {heads: 2, mlp_hidden: 8}}\n", 8);
    check_model("Zamba1-style shared block, concat, GQA, SiLU, no LoRA, no RoPE",
                "model: {d_model: 8, vocab_size: 13, pattern: \"M SM SM\", "
                "mamba: {version: 2, headdim: 4, d_state: 4, chunk_size: 4}, "
                "shared: {blocks: 1}, shared_attn: {heads: 4, kv_heads: 2, activation: silu, mlp_hidden: 6}}\n", 2 * 4);
    check_model("shared block without concat, MLP LoRA only",
                "model: {d_model: 8, vocab_size: 13, pattern: \"M SM SM\", "
                "mamba: {version: 2, headdim: 4, d_state: 4, chunk_size: 4}, "
                "shared: {blocks: 2, concat_embedding: false, lora_rank: 3}, shared_attn: {heads: 2, mlp_hidden: 8}}\n", 8);
    return test_summary();
}
