// dtest_step_mamba2.c: the Mamba-2 mixer's inference interface (state_size, state_from_forward,
// step) against its own parallel forward, in double precision. For each config, one Mamba-2
// layer of a model built from YAML runs forward on T = 11 random rows (B = 1); then, for
// prefixes T0 in {1, 3, 4, 8, 10}, forward on the first T0 rows, state_from_forward(T0), and
// step through rows T0..T-1: every stepped output row must equal the full forward's row.
//
// The prefixes are chosen against chunk_size 4 (T = 11 is not a multiple): T0 = 1, 3 end inside
// chunk 0 (state_from_forward starts from the zero checkpoint), 4 and 8 end exactly on a chunk
// boundary (the last chunk has 4 positions), 10 ends 2 positions into the third chunk. T0 = 1
// and 3 are shorter than the conv window K-1 = 3, so the window's zero padding is exercised.
// The state buffer is filled with garbage first, so a part state_from_forward forgets to write
// shows. Finally a corrupted state (conv window, SSM state) must change the stepped outputs.
#include "keys.h"
#include "model.h"
#include "ops.h"
#include "test.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { T = 11 };
// The step and the forward do the same arithmetic on one row instead of a batch (BLAS may sum
// in another order): they agree to rounding, ~1e-16. A wrong state gives errors of 1e-3 and up.
static const double TOL = 1e-10;

typedef struct { const char *label, *mamba; int clamp; } Case;

// d_model 8, expand 2: E = 16; headdim 4: H = 4 heads
static const Case cases[] = {
    {"G1, chunk 4, d_conv 4, no clamp", "headdim: 4, d_state: 4, chunk_size: 4", 0},
    {"G2, chunk 4, d_conv 4, dt clamp", "headdim: 4, ngroups: 2, d_state: 4, chunk_size: 4, dt_limit_min: 0.02, dt_limit_max: 0.06", 1},
    {"G2, chunk 4, d_conv 2, no clamp", "headdim: 4, ngroups: 2, d_state: 4, chunk_size: 4, d_conv: 2", 0},
    {"G1, chunk 4, d_conv 2, dt clamp, no conv bias", "headdim: 4, d_state: 3, chunk_size: 4, d_conv: 2, conv_bias: false, dt_limit_min: 0.02, dt_limit_max: 0.06", 1},
    {"G2 P2 (H8), chunk 3, d_conv 4", "headdim: 2, ngroups: 2, d_state: 4, chunk_size: 3", 0},
    {"G1, chunk 64 > T, d_conv 1", "headdim: 4, d_state: 4, d_conv: 1", 0},
};

static const real *param(const Model *m, const char *name) {
    int i = model_find_param(m, name);
    return i < 0 ? NULL : m->params + m->pinfo[i].offset;
}

// How many of the T·H values Δ = softplus(dt + dt_bias) the clamp moves, below and above,
// recomputed from the parameters (so the clamp configs are known to bind both ways).
static void count_clamped(const Model *m, const real *x, double lo, double hi, int *below, int *above) {
    const Config *c = m->cfg;
    int C = m->C, E = (int)(cfg_num(c, "model.mamba.expand") * C), H = E / (int)cfg_int(c, "model.mamba.headdim");
    int GN = (int)(cfg_int(c, "model.mamba.ngroups") * cfg_int(c, "model.mamba.d_state"));
    const real *Win = param(m, "model.layers.0.mamba.in_proj.weight"), *bias = param(m, "model.layers.0.mamba.dt_bias");
    *below = *above = 0;
    for (int t = 0; t < T; t++)
        for (int h = 0; h < H; h++) {
            const real *w = Win + (size_t)(2 * E + 2 * GN + h) * C;
            double pre = bias[h];
            for (int i = 0; i < C; i++) pre += w[i] * x[t * C + i];
            double d = pre > 20 ? pre : log1p(exp(pre));
            *below += d < lo;
            *above += d > hi;
        }
}

// Prefix T0 through the forward, then steps: max |step row - full row| over rows T0..T-1.
// corrupt: 0 none; 1 add 0.5 to every conv window entry; 2 to every SSM state entry.
static double run_prefix(Layer *L, const real *x, const real *full, real *state, size_t ns, int T0,
                         int corrupt, size_t win_n, size_t ssm_n) {
    int C = L->model->C;
    real *out = malloc((size_t)T * C * sizeof(real));
    for (size_t i = 0; i < ns; i++) state[i] = 1e3 * ((i % 7) + 1);   // garbage
    L->type->forward(L, out, x, 1, T0);
    L->type->state_from_forward(L, state, T0);
    if (corrupt == 1) for (size_t i = 0; i < win_n; i++) state[i] += 0.5;
    if (corrupt == 2) for (size_t i = 0; i < ssm_n; i++) state[win_n + i] += 0.5;
    double worst = 0;
    for (int t = T0; t < T; t++) {
        L->type->step(L, out, x + (size_t)t * C, state, t);
        for (int i = 0; i < C; i++) worst = fmax(worst, fabs(out[i] - full[(size_t)t * C + i]));
    }
    free(out);
    return worst;
}

static void check_case(const Case *k) {
    char yaml[512];
    snprintf(yaml, sizeof yaml, "model: {d_model: 8, vocab_size: 13, layers: 2, ratio: \"0:1\", ffn: none, "
             "mamba: {version: 2, %s}}\n", k->mamba);
    Config c;
    Model m;
    ConfError err;
    if (config_load_string(&c, yaml, k->label, NULL, 0, all_key_tables(), &err) != 0 || model_build(&m, &c, &err) != 0) {
        CHECK(0, "%s: %s", k->label, err.msg);
        return;
    }
    model_alloc(&m, 1, T, T);
    model_init(&m, 5);
    Rng rng;
    rng_seed(&rng, 11);
    for (size_t i = 0; i < m.nparams; i++) m.params[i] += (real)(0.05 * rng_normal(&rng));
    Layer *L = &m.layers[0];
    if (!CHECK(strcmp(L->type->name, "mamba2") == 0 && L->type->step, "%s: layer 0 is a Mamba-2 mixer with a step (%s)",
               k->label, L->type->name))
        goto done;

    int C = m.C;
    real *x = malloc((size_t)T * C * sizeof(real)), *full = malloc((size_t)T * C * sizeof(real));
    for (int i = 0; i < T * C; i++) x[i] = (real)rng_normal(&rng);
    L->type->forward(L, full, x, 1, T);
    double scale = 0;
    for (int i = 0; i < T * C; i++) scale = fmax(scale, fabs(full[i]));

    // the state's size: conv window (K-1)·Cx + SSM state H·P·N + workspace, whatever max_T
    int E = 2 * C, Pd = (int)cfg_int(&c, "model.mamba.headdim"), H = E / Pd, N = (int)cfg_int(&c, "model.mamba.d_state");
    int K = (int)cfg_int(&c, "model.mamba.d_conv"), Cx = E + 2 * (int)cfg_int(&c, "model.mamba.ngroups") * N;
    size_t win_n = (size_t)(K - 1) * Cx, ssm_n = (size_t)H * Pd * N;
    size_t ns = L->type->state_size(L, T + 1);
    CHECK(ns == L->type->state_size(L, 100000) && ns >= win_n + ssm_n,
          "%s: state of %zu reals (window %zu + SSM %zu + workspace), the same for max_T 12 and 100000",
          k->label, ns, win_n, ssm_n);
    real *state = malloc(ns * sizeof(real));

    if (k->clamp) {
        int below, above;
        count_clamped(&m, x, cfg_num(&c, "model.mamba.dt_limit_min"), cfg_num(&c, "model.mamba.dt_limit_max"), &below, &above);
        CHECK(below > 0 && above > 0, "%s: the clamp binds both ways (%d below, %d above of %d)", k->label, below, above, T * H);
    }
    const int prefixes[] = {1, 3, 4, 8, 10};
    for (int i = 0; i < 5; i++) {
        double w = run_prefix(L, x, full, state, ns, prefixes[i], 0, win_n, ssm_n);
        CHECK(w < TOL, "%s: forward %d + step %d = forward %d (max |dout| %.2e, outputs up to %.2f)",
              k->label, prefixes[i], T - prefixes[i], T, w, scale);
    }
    // corruption: the conv window (if there is one) at T0 = 8, the SSM state at T0 = 3
    if (win_n) {
        double w = run_prefix(L, x, full, state, ns, 8, 1, win_n, ssm_n);
        CHECK(w > 1e-4, "%s: a corrupted conv window is noticed (max |dout| %.2e)", k->label, w);
    }
    double w = run_prefix(L, x, full, state, ns, 3, 2, win_n, ssm_n);
    CHECK(w > 1e-4, "%s: a corrupted SSM state is noticed (max |dout| %.2e)", k->label, w);
    free(state); free(x); free(full);
done:
    model_free(&m);
    config_free(&c);
}

int main(void) {
    ops_init_threads(0);
    test_group("step mamba2");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_case(&cases[i]);
    return test_summary();
}
