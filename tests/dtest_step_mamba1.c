// dtest_step_mamba1.c: the Mamba-1 mixer's inference step (state_size, state_from_forward,
// step) against its own parallel forward, in double precision. One mamba layer of a model built
// from YAML runs forward on B = 1, T = 11 random rows; then, for several prefix lengths T0,
// forward on the first T0 rows + state_from_forward + steps over rows T0..T-1 must give the
// full forward's output rows. Every option the step reimplements is covered: inner_norm
// none/jamba/falcon, d_conv 4, 2 and 1, conv bias on and off, δ + b on both sides of the
// softplus threshold 20, and scan checkpointing (the forward keeps one state per chunk). The two
// paths do the same arithmetic on one row instead of a batch, so they agree to rounding (1e-10);
// a wrong window or state gives errors of order 1e-3 and more.
#include "model.h"
#include "keys.h"
#include "ops.h"
#include "test.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { T = 11, GUARD = 64 };
static const double TOL = sizeof(real) == 8 ? 1e-10 : 1e-4;

typedef struct { const char *label, *yaml; int hot; } Case;
static const Case cases[] = {
    {"plain, d_conv 4, δ+b around 20", "model: {mamba: {d_state: 4}}", 1},
    {"jamba norms, dt_rank 3", "model: {mamba: {d_state: 4, dt_rank: 3, inner_norm: jamba}}", 0},
    {"falcon norms, d_conv 2, no conv bias", "model: {mamba: {d_state: 4, d_conv: 2, conv_bias: false, inner_norm: falcon}}", 1},
    {"jamba norms, d_conv 1, expand 1.5", "model: {mamba: {d_state: 3, d_conv: 1, expand: 1.5, inner_norm: jamba}}", 0},
    {"falcon norms, d_conv 4, dt in [0.1, 0.5]", "model: {mamba: {d_state: 5, inner_norm: falcon, dt_min: 0.1, dt_max: 0.5}}", 0},
    // scan checkpointing: the forward keeps one state per chunk; the last one is h_{T0-1}
    {"falcon norms, scan_checkpoint 3", "model: {mamba: {d_state: 4, inner_norm: falcon, scan_checkpoint: 3}}", 1},
    {"jamba norms, d_conv 2, scan_checkpoint 4", "model: {mamba: {d_state: 4, d_conv: 2, inner_norm: jamba, scan_checkpoint: 4}}", 0},
};

static int local_param(const Layer *L, const char *suffix) {
    for (int i = 0; i < L->np; i++) {
        const char *name = L->model->pinfo[L->param[i]].name;
        size_t n = strlen(name), k = strlen(suffix);
        if (n > k && name[n - k - 1] == '.' && strcmp(name + n - k, suffix) == 0) return i;
    }
    return -1;
}

// δ + b on both sides of the softplus threshold: channels 1 mod 4 get b = 25 and no dt_proj
// row (δ + b = 25 exactly, the linear branch), channels 3 mod 4 get b = 20 (δ moves them across)
static void make_hot(Layer *L) {
    int ib = local_param(L, "dt_proj.bias"), iw = local_param(L, "dt_proj.weight");
    int E = (int)layer_param_numel(L, ib), R = (int)layer_param_numel(L, iw) / E;
    for (int e = 1; e < E; e += 2) {
        L->p[ib][e] = e % 4 == 1 ? 25 : 20;
        if (e % 4 == 1) for (int r = 0; r < R; r++) L->p[iw][(size_t)e * R + r] = 0;
    }
}

static double maxdiff(const real *a, const real *b, size_t n, double *mag) {
    double d = 0;
    for (size_t i = 0; i < n; i++) { d = fmax(d, fabs((double)a[i] - b[i])); if (mag) *mag = fmax(*mag, fabs((double)b[i])); }
    return d;
}

// prefix T0 through forward + state_from_forward, then steps over T0..T-1; returns the largest
// |step out - full forward out| over those rows. corrupt: 0 none, 1 SSM state, 2 conv window.
static double run_split(Layer *L, real *state, size_t ns, const real *x, const real *full, int T0, int corrupt,
                        int *guard_ok) {
    const BlockType *bt = L->type;
    int C = L->model->C;
    real out[T * 64], row[64];
    for (size_t i = 0; i < ns + GUARD; i++) state[i] = (real)1e30;   // garbage the block must overwrite
    bt->forward(L, out, x, 1, T0);
    bt->state_from_forward(L, state, T0);
    int K = (int)cfg_int(L->cfg, "model.mamba.d_conv"), E = (int)layer_param_numel(L, local_param(L, "D"));
    if (corrupt == 1) state[(size_t)(K - 1) * E + 1] += 0.5;   // h[0][1]
    if (corrupt == 2) state[(size_t)(K - 2) * E] += 0.5;       // newest window row, channel 0
    double worst = 0;
    for (int t = T0; t < T; t++) {
        bt->step(L, row, x + (size_t)t * C, state, t);
        worst = fmax(worst, maxdiff(row, full + (size_t)t * C, C, NULL));
    }
    for (int i = 0; i < GUARD; i++) *guard_ok &= state[ns + i] == (real)1e30;
    return worst;
}

static void check_case(const Case *k) {
    Config c;
    Model m;
    ConfError err;
    char yaml[512];
    // a pure Mamba-1 stack: layers + ratio 0:1, no FFN; the k->yaml model keys are merged in
    snprintf(yaml, sizeof yaml, "%s\n", k->yaml);
    char *sets[] = {"model.d_model=8", "model.vocab_size=13", "model.layers=2", "model.ratio=0:1", "model.ffn=none"};
    if (config_load_string(&c, yaml, k->label, sets, 5, all_key_tables(), &err) != 0 || model_build(&m, &c, &err) != 0) {
        CHECK(0, "%s: %s", k->label, err.msg);
        return;
    }
    model_alloc(&m, 1, T, T);
    model_init(&m, 5);
    Rng rng;
    rng_seed(&rng, 11);
    for (size_t i = 0; i < m.nparams; i++) m.params[i] += (real)(0.05 * rng_normal(&rng));
    Layer *L = NULL;
    for (int l = 0; l < m.nsub; l++) if (m.layers[l].type->cache == CACHE_SSM) L = &m.layers[l];   // the last one
    if (!L || strcmp(L->type->name, "mamba1") != 0) { CHECK(0, "%s: a mamba1 layer exists", k->label); model_free(&m); config_free(&c); return; }
    if (k->hot) make_hot(L);
    int C = m.C;
    real x[T * 8], full[T * 8];
    for (int i = 0; i < T * C; i++) x[i] = (real)rng_normal(&rng);
    L->type->forward(L, full, x, 1, T);
    double mag = 0;
    maxdiff(full, full, (size_t)T * C, &mag);

    size_t ns = L->type->state_size(L, T + 1);
    CHECK(ns == L->type->state_size(L, 100000) && ns == L->type->state_size(L, 1),
          "%s: state_size %zu reals whatever max_T (constant-memory generation)", k->label, ns);
    real *state = malloc((ns + GUARD) * sizeof(real));
    int guard_ok = 1;
    const int T0s[] = {1, 3, 4, 10};
    for (int s = 0; s < 4; s++) {
        double w = run_split(L, state, ns, x, full, T0s[s], 0, &guard_ok);
        CHECK(w <= TOL * fmax(1, mag), "%s: forward(%d) + %d steps = full forward, max |diff| %.1e (max |out| %.2f)",
              k->label, T0s[s], T - T0s[s], w, mag);
    }
    // from position 0 (no prefill): the garbage in the state must not matter
    for (size_t i = 0; i < ns; i++) state[i] = (real)1e30;
    double w = 0;
    real row[8];
    for (int t = 0; t < T; t++) {
        L->type->step(L, row, x + (size_t)t * C, state, t);
        w = fmax(w, maxdiff(row, full + (size_t)t * C, C, NULL));
    }
    CHECK(w <= TOL * fmax(1, mag), "%s: %d steps from position 0 = full forward, max |diff| %.1e", k->label, T, w);
    CHECK(guard_ok, "%s: steps write only inside state_size", k->label);
    w = run_split(L, state, ns, x, full, 3, 1, &guard_ok);
    CHECK(w > 1e3 * TOL, "%s: a corrupted SSM state is noticed (max |diff| %.2e)", k->label, w);
    int K = (int)cfg_int(&c, "model.mamba.d_conv");
    if (K > 1) {
        w = run_split(L, state, ns, x, full, 3, 2, &guard_ok);
        CHECK(w > 1e3 * TOL, "%s: a corrupted conv window is noticed (max |diff| %.2e)", k->label, w);
    }
    free(state);
    model_free(&m);
    config_free(&c);
}

int main(void) {
    ops_init_threads(0);
    test_group("mamba1 step");
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) check_case(&cases[i]);
    return test_summary();
}
