// dtest_mamba1.c: the Mamba-1 block in double precision: config keys and validation, the init of
// blocks.md §1.2, the forward against a plainly written reference of §1.3/§1.5/§1.6, and
// finite-difference gradient checks of every parameter and the input (gradcheck.h).
#include "gradcheck.h"
#include "keys.h"
#include "mamba_keys.h"
#include <fcntl.h>
#include <unistd.h>

extern const BlockType mamba1_block;

static const KeySpec *const tables[] = {core_keys, mamba_keys, NULL};
enum { Bsz = 2, Tsz = 7, SAMPLES = 40 };
static const double TOL = 1e-6;
// Relative accuracy of `real`: the file also builds in float (for the sanitizer run), where the
// value checks loosen to float rounding and finite differences are replaced (see main).
static const double EPS_REL = sizeof(real) == 8 ? 1e-12 : 1e-5;

// Conditioning of the gradient checks. gradcheck_layer's central differences resolve a gradient
// to about 1e-16·|L|/h ≈ 1e-11·|L|, and judge each tensor against 1e-3 of its largest entry. So
// every tensor's gradient must be well above 1e-8·|L|. At Mamba's init on a layer this small
// that fails for A_log and dt_proj: Δ ∈ [0.001, 0.1] makes every path through Δ tiny, and the
// skip path D·u carries most of the output (and of |L|) while contributing nothing to them.
// So the gradient checks move Δ to order one (dt range [0.5, 1], a config override) and, after
// the real init, enlarge the B and C rows of x_proj ×3 and shrink D ×0.3 (fd_init below), so
// that the scan carries the output. The maths checked is the same; only the operating point moves.
static char *dt_order_one[] = {"model.mamba.dt_min=0.5", "model.mamba.dt_max=1"};

static int load_with(Config *c, const char *yaml, char **sets, int nsets) {
    ConfError err;
    if (config_load_string(c, yaml, "test", sets, nsets, tables, &err) == 0) return 0;
    printf("config error: %s\n", err.msg);
    return -1;
}
static int load(Config *c, const char *yaml) { return load_with(c, yaml, NULL, 0); }

// Local index (L->p[i]) of the parameter whose name ends in ".suffix", or -1.
static int local_param(const Layer *L, const char *suffix) {
    for (int i = 0; i < L->np; i++) {
        const char *name = L->model->pinfo[L->param[i]].name;
        size_t n = strlen(name), k = strlen(suffix);
        if (n > k && name[n - k - 1] == '.' && strcmp(name + n - k, suffix) == 0) return i;
    }
    return -1;
}

// ----------------------------------------------------------------------------
// A block whose init pushes every odd channel past the softplus threshold: δ + b ≈ 25 > 20, the
// linear branch, while the even channels stay on log1p(exp()). dt_min = dt_max = 30 through the
// config alone would exercise the branch too, but then exp(ΔA) < e^-30 and dA_log ~ 1e-11, far
// below what finite differences resolve. So the hot channels get a small A (A_log = log 0.02n),
// and their out_proj columns shrink by 1/25 so that the output (and with it the rounding noise
// of the finite differences) stays of order one although h ~ Δ B u is ~25 times larger.

static void hot_init(Layer *L, Rng *rng) {
    mamba1_block.init(L, rng);
    int ib = local_param(L, "dt_proj.bias"), ia = local_param(L, "A_log"), io = local_param(L, "out_proj.weight");
    int E = (int)layer_param_numel(L, ib), N = (int)layer_param_numel(L, ia) / E;
    int C = (int)layer_param_numel(L, io) / E;
    for (int e = 1; e < E; e += 2) {
        L->p[ib][e] = 25;
        for (int n = 0; n < N; n++) L->p[ia][e * N + n] = log(0.02 * (n + 1));
        for (int i = 0; i < C; i++) L->p[io][i * E + e] /= 25;
    }
}
static BlockType hot_block;

static void condition(Layer *L) {
    int ix = local_param(L, "x_proj.weight"), iD = local_param(L, "D"), ia = local_param(L, "A_log");
    int E = (int)layer_param_numel(L, iD), N = (int)layer_param_numel(L, ia) / E;
    int W = (int)layer_param_numel(L, ix) / E, R = W - 2 * N;
    for (size_t i = (size_t)R * E; i < (size_t)W * E; i++) L->p[ix][i] *= 3;   // rows of B and C
    for (int e = 0; e < E; e++) L->p[iD][e] *= 0.3;
}
static void fd_init(Layer *L, Rng *rng) { mamba1_block.init(L, rng); condition(L); }
static void fd_hot_init(Layer *L, Rng *rng) { hot_init(L, rng); condition(L); }
static BlockType fd_block, fd_hot_block;

// ----------------------------------------------------------------------------
// The reference: blocks.md §1.3 written out with loops, in double, no BLAS. Fills out (B,T,C)
// and returns how many δ + b values took the linear branch of softplus (> 20).

static const real *P(const LayerRig *r, const char *name) {
    int i = local_param(&r->L, name);
    return i < 0 ? NULL : r->L.p[i];
}

static int reference_forward(double *out, const LayerRig *r, const Config *c) {
    int B = r->B, T = r->T, C = r->m.C;
    int E = (int)(cfg_num(c, "model.mamba.expand") * C), N = (int)cfg_int(c, "model.mamba.d_state");
    int K = (int)cfg_int(c, "model.mamba.d_conv");
    int R = cfg_is_auto(c, "model.mamba.dt_rank") ? (C + 15) / 16 : (int)cfg_int(c, "model.mamba.dt_rank");
    const char *norm = cfg_str(c, "model.mamba.inner_norm");
    double eps = cfg_num(c, "model.mamba.inner_norm_eps");
    const real *Win = P(r, "in_proj.weight"), *Wc = P(r, "conv1d.weight"), *bc = P(r, "conv1d.bias");
    const real *Wx = P(r, "x_proj.weight"), *Wdt = P(r, "dt_proj.weight"), *bdt = P(r, "dt_proj.bias");
    const real *A_log = P(r, "A_log"), *D = P(r, "D"), *Wout = P(r, "out_proj.weight");
    const real *nw[3] = {P(r, "dt_layernorm.weight"), P(r, "b_layernorm.weight"), P(r, "c_layernorm.weight")};
    int W = R + 2 * N, hot = 0;
    double *xz = calloc((size_t)B * T * 2 * E, sizeof(double)), *u = calloc((size_t)B * T * E, sizeof(double));
    double *xd = calloc((size_t)B * T * W, sizeof(double)), *yg = calloc((size_t)B * T * E, sizeof(double));
    double *h = calloc(N, sizeof(double));
    for (int bt = 0; bt < B * T; bt++)
        for (int j = 0; j < 2 * E; j++) {
            double s = 0;
            for (int i = 0; i < C; i++) s += r->x[bt * C + i] * Win[j * C + i];
            xz[bt * 2 * E + j] = s;
        }
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int e = 0; e < E; e++) {
                double s = bc ? bc[e] : 0;
                for (int k = 0; k < K; k++) {
                    int tt = t - (K - 1) + k;
                    if (tt >= 0) s += Wc[e * K + k] * xz[(b * T + tt) * 2 * E + e];
                }
                u[(b * T + t) * E + e] = s / (1 + exp(-s));
            }
    for (int bt = 0; bt < B * T; bt++) {
        for (int j = 0; j < W; j++) {
            double s = 0;
            for (int e = 0; e < E; e++) s += u[bt * E + e] * Wx[j * E + e];
            xd[bt * W + j] = s;
        }
        if (strcmp(norm, "none") != 0) {
            int off[3] = {0, R, R + N}, wid[3] = {R, N, N};
            for (int s = 0; s < 3; s++) {
                double *v = xd + bt * W + off[s], ms = 0;
                for (int i = 0; i < wid[s]; i++) ms += v[i] * v[i];
                double rs = 1 / sqrt(ms / wid[s] + eps);
                for (int i = 0; i < wid[s]; i++) v[i] *= rs * (nw[s] ? nw[s][i] : 1);
            }
        }
    }
    for (int b = 0; b < B; b++)
        for (int e = 0; e < E; e++) {
            for (int n = 0; n < N; n++) h[n] = 0;
            for (int t = 0; t < T; t++) {
                int bt = b * T + t;
                const double *dtl = xd + bt * W, *Bt = dtl + R, *Ct = dtl + R + N;
                double dp = bdt[e];
                for (int i = 0; i < R; i++) dp += dtl[i] * Wdt[e * R + i];
                hot += dp > 20;
                double delta = dp > 20 ? dp : log1p(exp(dp)), ut = u[bt * E + e], y = D[e] * ut;
                for (int n = 0; n < N; n++) {
                    double A = -exp(A_log[e * N + n]);
                    h[n] = exp(delta * A) * h[n] + delta * Bt[n] * ut;
                    y += h[n] * Ct[n];
                }
                double z = xz[bt * 2 * E + E + e];
                yg[bt * E + e] = y * z / (1 + exp(-z));
            }
        }
    for (int bt = 0; bt < B * T; bt++)
        for (int i = 0; i < C; i++) {
            double s = 0;
            for (int e = 0; e < E; e++) s += yg[bt * E + e] * Wout[i * E + e];
            out[bt * C + i] = s;
        }
    free(xz); free(u); free(xd); free(yg); free(h);
    return hot;
}

// ----------------------------------------------------------------------------
// the cases

typedef struct { const char *label, *yaml; int hot; } Case;
static const Case cases[] = {
    {"plain", "model: {d_model: 8, mamba: {d_state: 4}}", 0},
    {"inner_norm jamba", "model: {d_model: 8, mamba: {d_state: 4, inner_norm: jamba}}", 0},
    {"inner_norm falcon, dt_rank 2", "model: {d_model: 8, mamba: {d_state: 4, dt_rank: 2, inner_norm: falcon}}", 0},
    {"dt_rank 3", "model: {d_model: 8, mamba: {d_state: 4, dt_rank: 3}}", 0},
    {"jamba, dt_rank 3", "model: {d_model: 8, mamba: {d_state: 4, dt_rank: 3, inner_norm: jamba}}", 0},
    {"d_conv 1", "model: {d_model: 8, mamba: {d_state: 4, d_conv: 1}}", 0},
    {"d_conv 9 > T", "model: {d_model: 8, mamba: {d_state: 4, d_conv: 9}}", 0},
    {"no conv bias, expand 1.5", "model: {d_model: 8, mamba: {d_state: 4, conv_bias: false, expand: 1.5}}", 0},
    {"δ+b > 20 on half the channels", "model: {d_model: 8, mamba: {d_state: 4}}", 1},
    {"δ+b > 20, falcon, dt_rank 2", "model: {d_model: 8, mamba: {d_state: 4, dt_rank: 2, inner_norm: falcon}}", 1},
};

static void test_forward_reference(const Case *k, int mamba_dt) {
    Config c;
    char label[128];
    snprintf(label, sizeof label, "%s%s", k->label, mamba_dt ? ", Mamba's dt range" : "");
    if (load_with(&c, k->yaml, mamba_dt ? NULL : dt_order_one, mamba_dt ? 0 : 2)) { CHECK(0, "%s: config loads", label); return; }
    LayerRig r;
    rig_setup(&r, k->hot ? &hot_block : &mamba1_block, &c, Bsz, Tsz, 42);
    rig_loss(&r);
    size_t n = (size_t)Bsz * Tsz * r.m.C;
    double *ref = malloc(n * sizeof(double)), diff = 0, mag = 0;
    int hot = reference_forward(ref, &r, &c);
    for (size_t i = 0; i < n; i++) { diff = fmax(diff, fabs(r.out[i] - ref[i])); mag = fmax(mag, fabs(ref[i])); }
    CHECK(diff <= EPS_REL * fmax(1, mag), "%s: forward = reference, max |diff| %.1e (max |out| %.2f)", label, diff, mag);
    if (k->hot) CHECK(hot > 0 && hot < Bsz * Tsz * 16, "%s: %d of %d δ+b values above 20", label, hot, Bsz * Tsz * 16);
    else CHECK(hot == 0, "%s: no δ+b above 20", label);
    free(ref);
    rig_free(&r);
    config_free(&c);
}

#ifdef HLAB_DOUBLE
static double test_gradients(const Case *k) {
    Config c;
    if (load_with(&c, k->yaml, dt_order_one, 2)) { CHECK(0, "%s: config loads", k->label); return 1; }
    ConfError err;
    CHECK(mamba1_block.validate(&c, &err) == 0, "%s: validates", k->label);
    double w = gradcheck_layer(k->label, k->hot ? &fd_hot_block : &fd_block, &c, Bsz, Tsz, SAMPLES, TOL);
    config_free(&c);
    return w;
}

// ----------------------------------------------------------------------------
// the harness must catch a wrong gradient: dA_log off by 1%

static void bad_backward(Layer *L, real *din, const real *dout, const real *in, int B, int T) {
    mamba1_block.backward(L, din, dout, in, B, T);
    int i = local_param(L, "A_log");
    for (size_t k = 0; k < layer_param_numel(L, i); k++) L->g[i][k] *= 1.01;
}

static void test_harness_catches(void) {
    Config c;
    if (load_with(&c, cases[0].yaml, dt_order_one, 2)) { CHECK(0, "config loads"); return; }
    BlockType bad = fd_block;
    bad.backward = bad_backward;
    int sp = test_passed_, sf = test_failed_;
    fflush(stdout);   // the expected FAIL lines go to /dev/null
    int saved = dup(1), nul = open("/dev/null", O_WRONLY);
    dup2(nul, 1);
    double worst = gradcheck_layer("wrong dA_log", &bad, &c, Bsz, Tsz, SAMPLES, TOL);
    fflush(stdout);
    dup2(saved, 1); close(saved); close(nul);
    int failed = test_failed_ - sf;
    test_passed_ = sp; test_failed_ = sf;
    CHECK(worst > 1e-4 && failed >= 1, "a 1%% error in dA_log is caught: worst rel err %.2e, %d check(s) failed", worst, failed);
    config_free(&c);
}

#else
// Float build: finite differences need double, so only check that backward runs on every case
// (under the sanitizers) and gives finite gradients.
static void test_backward_finite(const Case *k) {
    Config c;
    if (load_with(&c, k->yaml, dt_order_one, 2)) { CHECK(0, "%s: config loads", k->label); return; }
    LayerRig r;
    rig_setup(&r, k->hot ? &fd_hot_block : &fd_block, &c, Bsz, Tsz, 3);
    memset(r.m.grads, 0, r.m.nparams * sizeof(real));
    rig_loss(&r);
    r.L.type->backward(&r.L, r.dx, r.w, r.x, Bsz, Tsz);
    size_t bad = 0, nx = (size_t)Bsz * Tsz * r.m.C;
    for (size_t i = 0; i < r.m.nparams; i++) bad += !isfinite(r.m.grads[i]);
    for (size_t i = 0; i < nx; i++) bad += !isfinite(r.dx[i]);
    CHECK(bad == 0 && max_abs(r.m.grads, r.m.nparams) > 0, "%s: backward gives finite gradients", k->label);
    rig_free(&r);
    config_free(&c);
}

#endif

// ----------------------------------------------------------------------------
// scan checkpointing (model.mamba.scan_checkpoint Q): forward keeps one state per Q-step chunk
// and backward recomputes the rest. The recomputation repeats the forward's arithmetic, so the
// output and every gradient must equal those of Q = 0 (to 1e-12; in practice bit for bit), and
// the finite-difference checks must pass on their own with T = 7 not a multiple of Q = 3.

static void load_q(Config *c, const Case *k, int Q) {
    char q[64];
    snprintf(q, sizeof q, "model.mamba.scan_checkpoint=%d", Q);
    char *sets[] = {dt_order_one[0], dt_order_one[1], q};
    if (load_with(c, k->yaml, sets, 3)) die("config does not load");
}

static size_t act_total(const Layer *L) { size_t n = 0; for (int i = 0; i < L->na; i++) n += L->act_n[i]; return n; }

// One forward + backward at (B, T, Q): the output, dL/dparams, dL/dx, and the layer's sizes
typedef struct { real *out, *g, *dx; size_t n, np, acts; int E, N; } Grads;

static Grads grads_with(const Case *k, int Q, int B, int T) {
    Config c;
    load_q(&c, k, Q);
    LayerRig r;
    rig_setup(&r, k->hot ? &fd_hot_block : &fd_block, &c, B, T, 21);
    memset(r.m.grads, 0, r.m.nparams * sizeof(real));
    rig_loss(&r);
    r.L.type->backward(&r.L, r.dx, r.w, r.x, B, T);
    Grads G = {.n = (size_t)B * T * r.m.C, .np = r.m.nparams, .acts = act_total(&r.L)};
    G.E = (int)layer_param_numel(&r.L, local_param(&r.L, "D"));
    G.N = (int)layer_param_numel(&r.L, local_param(&r.L, "A_log")) / G.E;
    G.out = malloc(G.n * sizeof(real)); G.dx = malloc(G.n * sizeof(real)); G.g = malloc(G.np * sizeof(real));
    memcpy(G.out, r.out, G.n * sizeof(real)); memcpy(G.dx, r.dx, G.n * sizeof(real));
    memcpy(G.g, r.m.grads, G.np * sizeof(real));
    rig_free(&r);
    config_free(&c);
    return G;
}
static void grads_free(Grads *G) { free(G->out); free(G->g); free(G->dx); }

static double rel_diff(const real *a, const real *b, size_t n) {
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) { d = fmax(d, fabs((double)a[i] - b[i])); m = fmax(m, fabs((double)b[i])); }
    return d / fmax(m, 1e-300);
}

static void test_checkpoint_equal(const Case *k) {
    enum { B = 2, T = 7 };
    Grads G0 = grads_with(k, 0, B, T);
    const int Qs[] = {1, 3, 4, 7, 10};   // 1: a checkpoint per step; 7 = T; 10 > T: one chunk
    for (int i = 0; i < 5; i++) {
        int Q = Qs[i];
        Grads G = grads_with(k, Q, B, T);
        double dout = rel_diff(G.out, G0.out, G.n), dg = rel_diff(G.g, G0.g, G.np), ddx = rel_diff(G.dx, G0.dx, G.n);
        int bits = !memcmp(G.out, G0.out, G.n * sizeof(real)) && !memcmp(G.g, G0.g, G.np * sizeof(real)) &&
                   !memcmp(G.dx, G0.dx, G.n * sizeof(real));
        CHECK(dout <= 1e-12 && dg <= 1e-12 && ddx <= 1e-12,
              "%s, scan_checkpoint %d: out, dparams, dx = those of 0 (rel diff %.1e %.1e %.1e%s)",
              k->label, Q, dout, dg, ddx, bits ? ", bitwise" : "");
        // the states kept drop from B·E·T·N to B·E·ceil(T/Q)·N reals, nothing else changes
        size_t fewer = (size_t)B * G.E * (T - (T + Q - 1) / Q) * G.N;
        CHECK(G0.acts - G.acts == fewer, "%s, scan_checkpoint %d: activations %zu -> %zu reals (%zu fewer, expected %zu)",
              k->label, Q, G0.acts, G.acts, G0.acts - G.acts, fewer);
        grads_free(&G);
    }
    grads_free(&G0);
}

#ifdef HLAB_DOUBLE
static double test_gradients_checkpoint(const Case *k) {
    Config c;
    load_q(&c, k, 3);
    char label[160];
    snprintf(label, sizeof label, "%s, scan_checkpoint 3, T %d", k->label, Tsz);
    double w = gradcheck_layer(label, k->hot ? &fd_hot_block : &fd_block, &c, Bsz, Tsz, SAMPLES, TOL);
    config_free(&c);
    return w;
}
#endif

// ----------------------------------------------------------------------------
// init (§1.2), on a wider layer so that the distributions show

static double absmax(const real *w, size_t n) { double m = 0; for (size_t i = 0; i < n; i++) m = fmax(m, fabs(w[i])); return m; }

static void test_init(void) {
    Config c;
    if (load(&c, "model: {d_model: 64, mamba: {inner_norm: jamba}}")) { CHECK(0, "config loads"); return; }
    LayerRig r;
    rig_setup(&r, &mamba1_block, &c, 1, 2, 5);
    Layer *L = &r.L;
    r.m.nsub = 4;                  // out_proj shrinks by sqrt(nsub)
    Rng rng; rng_seed(&rng, 7);
    mamba1_block.init(L, &rng);    // rig_setup added noise; start again from a clean init
    int C = 64, E = 128, N = 16, R = 4, K = 4;
    size_t expect = 2 * E * C + E * K + E + E * (R + 2 * N) + R * E + E + E * N + E + C * E + (R + 2 * N);
    CHECK(r.m.nparams == expect, "parameter count %zu = 2EC+EK+E+E(R+2N)+RE+E+EN+E+CE+(R+2N) = %zu", r.m.nparams, expect);
    const char *decayed[] = {"in_proj.weight", "conv1d.weight", "x_proj.weight", "dt_proj.weight", "out_proj.weight"};
    int ndec = 0, bad_decay = 0;
    for (int i = 0; i < L->np; i++) {
        const ParamInfo *pi = &r.m.pinfo[L->param[i]];
        int want = 0;
        for (int j = 0; j < 5; j++) if (local_param(L, decayed[j]) == i) want = 1;
        ndec += pi->decay;
        if (pi->decay != want) { bad_decay++; printf("     decay flag of %s is %d\n", pi->name, pi->decay); }
    }
    CHECK(bad_decay == 0 && ndec == 5, "weight decay on the five projection/conv weights only (%d)", ndec);
    const ParamInfo *cw = &r.m.pinfo[L->param[local_param(L, "conv1d.weight")]];
    CHECK(cw->ndim == 3 && cw->shape[0] == E && cw->shape[1] == 1 && cw->shape[2] == K, "conv1d.weight is (E,1,K)");
    struct { const char *name; double bound; } u[] = {
        {"in_proj.weight", 1 / sqrt(C)}, {"conv1d.weight", 1 / sqrt(K)}, {"conv1d.bias", 1 / sqrt(K)},
        {"x_proj.weight", 1 / sqrt(E)}, {"dt_proj.weight", 1 / sqrt(R)}, {"out_proj.weight", 1 / sqrt(E) / 2}};
    for (int j = 0; j < 6; j++) {
        int i = local_param(L, u[j].name);
        double m = absmax(L->p[i], layer_param_numel(L, i));
        CHECK(m <= u[j].bound * (1 + EPS_REL) && m > 0.8 * u[j].bound, "%s ~ U(±%.4f): max |w| %.4f", u[j].name, u[j].bound, m);
    }
    const real *bdt = P(&r, "dt_proj.bias"), *A_log = P(&r, "A_log"), *D = P(&r, "D");
    double lo = 1e9, hi = 0;
    for (int e = 0; e < E; e++) { double dt = log1p(exp(bdt[e])); lo = fmin(lo, dt); hi = fmax(hi, dt); }
    CHECK(lo >= 0.001 * (1 - EPS_REL) && hi <= 0.1 * (1 + EPS_REL), "softplus(dt bias) in [dt_min, dt_max]: [%.5f, %.5f]", lo, hi);
    CHECK(lo < 0.003 && hi > 0.03, "dt spreads log-uniformly over the range");
    int bad = 0;
    for (int e = 0; e < E; e++) {
        for (int n = 0; n < N; n++) bad += A_log[e * N + n] != (real)log((double)(n + 1));
        bad += D[e] != 1;
    }
    CHECK(bad == 0, "A_log rows = log(1..N), D = 1");
    bad = 0;
    for (int s = 0; s < 3; s++) {
        const char *nm[3] = {"dt_layernorm.weight", "b_layernorm.weight", "c_layernorm.weight"};
        int i = local_param(L, nm[s]);
        if (i < 0) { bad++; continue; }
        for (size_t k = 0; k < layer_param_numel(L, i); k++) bad += L->p[i][k] != 1;
    }
    CHECK(bad == 0, "jamba inner norm weights exist and are 1");
    CHECK(mamba1_block.cache_elems(L, 1) == E * (K - 1) + E * N && mamba1_block.cache_elems(L, 100000) == E * (K - 1) + E * N,
          "cache = E(K-1) + EN = %d at any context", E * (K - 1) + E * N);
    double fl = 2.0 * (C * 2 * E + E * (R + 2 * N) + R * E + E * C) + 2 * E * K + 9 * E * N;
    CHECK(mamba1_block.flops_per_token(L, 10) == fl, "flops per token %.0f", fl);
    rig_free(&r);
    config_free(&c);

    // dt_init constant (and dt_scale), the init floor, no conv bias, no norms
    if (load(&c, "model: {d_model: 64, mamba: {dt_init: constant, dt_scale: 2, dt_min: 1e-6, dt_max: 1e-5, "
                 "conv_bias: false, inner_norm: falcon}}")) { CHECK(0, "config loads"); return; }
    rig_setup(&r, &mamba1_block, &c, 1, 2, 5);
    L = &r.L;
    mamba1_block.init(L, &rng);
    const real *Wdt = P(&r, "dt_proj.weight");
    bad = 0;
    for (int i = 0; i < E * R; i++) bad += Wdt[i] != (real)(2 / sqrt(R));
    CHECK(bad == 0, "dt_init constant: every dt_proj weight = dt_scale R^-0.5");
    bdt = P(&r, "dt_proj.bias");
    lo = 1e9; hi = 0;
    for (int e = 0; e < E; e++) { double dt = log1p(exp(bdt[e])); lo = fmin(lo, dt); hi = fmax(hi, dt); }
    CHECK(fabs(lo - 1e-4) < 1e-4 * EPS_REL && fabs(hi - 1e-4) < 1e-4 * EPS_REL, "dt below dt_init_floor is raised to it: [%.3g, %.3g]", lo, hi);
    CHECK(P(&r, "conv1d.bias") == NULL && P(&r, "b_layernorm.weight") == NULL, "no conv bias, falcon norms have no weights");
    rig_free(&r);
    config_free(&c);
}

// ----------------------------------------------------------------------------
// keys and validate()

static void test_config(void) {
    Config c;
    ConfError err;
    CHECK(load(&c, "model: {d_model: 40}") == 0, "defaults load");
    CHECK(cfg_int(&c, "model.mamba.version") == 1 && cfg_int(&c, "model.mamba.d_state") == 16 &&
          cfg_int(&c, "model.mamba.d_conv") == 4 && cfg_num(&c, "model.mamba.expand") == 2 &&
          cfg_is_auto(&c, "model.mamba.dt_rank") && !strcmp(cfg_str(&c, "model.mamba.inner_norm"), "none") &&
          cfg_bool(&c, "model.mamba.conv_bias") && cfg_is_auto(&c, "model.mamba.dt_limit_max"),
          "Mamba defaults: version 1, N 16, K 4, expand 2, dt_rank auto, no inner norm");
    CHECK(mamba1_block.validate(&c, &err) == 0, "defaults validate");
    config_free(&c);

    struct { const char *yaml, *key; } bad[] = {
        {"model: {mamba: {dt_min: 0.2, dt_max: 0.1}}", "dt_min"},
        {"model: {mamba: {dt_min: 0}}", "dt_min"},
        {"model: {d_model: 8, mamba: {expand: 0.1}}", "expand"},
    };
    for (int i = 0; i < 3; i++) {
        if (load(&c, bad[i].yaml)) { CHECK(0, "%s loads", bad[i].yaml); continue; }
        int rc = mamba1_block.validate(&c, &err);
        CHECK(rc != 0 && strstr(err.msg, bad[i].key), "validate rejects %s: %s", bad[i].yaml, rc ? err.msg : "(accepted)");
        config_free(&c);
    }
    const char *rejected[] = {"model: {mamba: {version: 3}}", "model: {mamba: {inner_norm: layernorm}}",
                              "model: {mamba: {d_conv: 0}}", "model: {mamba: {dt_init: normal}}"};
    for (int i = 0; i < 4; i++) {
        int rc = config_load_string(&c, rejected[i], "test", NULL, 0, tables, &err);
        CHECK(rc != 0, "the loader rejects %s: %s", rejected[i], rc ? err.msg : "(accepted)");
        if (rc == 0) config_free(&c);
    }
}

// Same thread count, same bits: two backward passes give identical gradients.
static void test_deterministic(void) {
    Config c;
    if (load(&c, cases[1].yaml)) { CHECK(0, "config loads"); return; }
    LayerRig r;
    rig_setup(&r, &mamba1_block, &c, 3, 9, 11);
    size_t np = r.m.nparams, nx = (size_t)3 * 9 * r.m.C;
    real *g1 = malloc(np * sizeof(real)), *d1 = malloc(nx * sizeof(real));
    for (int run = 0; run < 2; run++) {
        memset(r.m.grads, 0, np * sizeof(real));
        rig_loss(&r);
        mamba1_block.backward(&r.L, r.dx, r.w, r.x, 3, 9);
        if (run == 0) { memcpy(g1, r.m.grads, np * sizeof(real)); memcpy(d1, r.dx, nx * sizeof(real)); }
    }
    CHECK(!memcmp(g1, r.m.grads, np * sizeof(real)) && !memcmp(d1, r.dx, nx * sizeof(real)),
          "backward is bitwise reproducible (%d threads)", layer_threads());
    free(g1); free(d1);
    rig_free(&r);
    config_free(&c);
}

int main(void) {
    hot_block = mamba1_block;
    hot_block.init = hot_init;
    fd_block = mamba1_block;
    fd_block.init = fd_init;
    fd_hot_block = mamba1_block;
    fd_hot_block.init = fd_hot_init;
    test_group("config"); test_config();
    test_group("init"); test_init();
    test_group("forward");
    test_forward_reference(&cases[0], 1);
    test_forward_reference(&cases[1], 1);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) test_forward_reference(&cases[i], 0);
#ifdef HLAB_DOUBLE
    test_group("gradcheck");
    double worst = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) worst = fmax(worst, test_gradients(&cases[i]));
    printf("     worst relative gradient error over all cases: %.2e\n", worst);
    test_group("harness"); test_harness_catches();
    test_group("scan checkpoint");
    worst = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) worst = fmax(worst, test_gradients_checkpoint(&cases[i]));
    printf("     worst relative gradient error with scan_checkpoint 3: %.2e\n", worst);
#else
    (void)gradcheck_layer; (void)TOL;   // finite differences only in the double build
    test_group("backward (float build: no finite differences)");
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) test_backward_finite(&cases[i]);
#endif
    test_group("scan checkpoint = keep every state");
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) test_checkpoint_equal(&cases[i]);
    test_group("determinism"); test_deterministic();
    return test_summary();
}
