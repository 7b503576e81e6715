// dtest_mamba2.c: the Mamba-2 block in double precision: config keys and validation, the init of
// blocks.md §2.1-2.2, the forward against a plainly written reference of §2.3, the chunked SSD
// form of §2.4 against the sequential recurrence, and finite-difference gradient checks of every
// parameter and the input (gradcheck.h).
#include "gradcheck.h"
#include "keys.h"
#include "mamba_keys.h"
#include "ssd_scan.h"
#include <fcntl.h>
#include <omp.h>
#include <unistd.h>

extern const BlockType mamba2_block;

static const KeySpec *const tables[] = {core_keys, mamba_keys, NULL};
enum { Bsz = 2, Tsz = 7, SAMPLES = 40 };
static const double TOL = 1e-6;
// Relative accuracy of `real`: the file also builds in float (for a sanitizer run), where the
// value checks loosen to float rounding and finite differences are replaced (see main).
static const double EPS_REL = sizeof(real) == 8 ? 1e-12 : 1e-5;

// Conditioning of the gradient checks (as in dtest_mamba1.c). Central differences resolve a
// gradient to about 1e-11·|L|, and each tensor is judged against 1e-3 of its largest entry, so
// every tensor's gradient must be well above 1e-8·|L|. At Mamba-2's init (Δ ∈ [0.001, 0.1],
// A ∈ -[1, 16]) the paths through Δ and A_log are tiny and the skip path D·x carries the output.
// So the checks move Δ to order one (dt range [0.5, 1], a config override) and, after the real
// init, set A = -(0.25, 0.5, 0.75, 1, ...) so that states live a few steps, enlarge the in_proj
// rows that make B and C ×2 and shrink D ×0.3 (fd_init below), so that the scan carries the
// output. The maths checked is the same; only the operating point moves.
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
static const real *P(const LayerRig *r, const char *name) {
    int i = local_param(&r->L, name);
    return i < 0 ? NULL : r->L.p[i];
}

// The dimensions of §2.2, from the config alone (not from the block).
typedef struct { int C, E, H, P, N, G, K, GN, Cx, Dp; } Dims;
static Dims dims_of(const Config *c) {
    Dims d;
    d.C = (int)cfg_int(c, "model.d_model");
    d.E = (int)(cfg_num(c, "model.mamba.expand") * d.C);
    d.P = (int)cfg_int(c, "model.mamba.headdim");
    d.H = d.E / d.P;
    d.N = (int)cfg_int(c, "model.mamba.d_state");
    d.G = (int)cfg_int(c, "model.mamba.ngroups");
    d.K = (int)cfg_int(c, "model.mamba.d_conv");
    d.GN = d.G * d.N; d.Cx = d.E + 2 * d.GN; d.Dp = d.E + d.Cx + d.H;
    return d;
}

// ----------------------------------------------------------------------------
// conditioned inits (see above)

static void condition(Layer *L) {
    int iw = local_param(L, "in_proj.weight"), iD = local_param(L, "D"), ia = local_param(L, "A_log");
    int H = (int)layer_param_numel(L, iD), C = L->model->C;
    int Dp = (int)layer_param_numel(L, iw) / C, E = (int)layer_param_numel(L, local_param(L, "norm.weight"));
    int GN = (Dp - 2 * E - H) / 2;
    for (size_t i = (size_t)2 * E * C; i < (size_t)(2 * E + 2 * GN) * C; i++) L->p[iw][i] *= 2;   // B, C rows
    for (int h = 0; h < H; h++) { L->p[iD][h] *= 0.3; L->p[ia][h] = log(0.25 * (1 + h % 4)); }
}
static void fd_init(Layer *L, Rng *rng) { mamba2_block.init(L, rng); condition(L); }

// Every odd head past the softplus threshold: dt + dt_bias ≈ 25 > 20, the linear branch, while
// the even heads stay on log1p(exp()). With Δ ≈ 25 and A ∈ -[1,16], exp(ΔA) < e^-25 and dA_log
// would be far below what finite differences resolve, so the hot heads get A = -0.02. Their
// states are ~25 times larger, which the gated norm absorbs when every head is its own norm
// group (the first hot case, ngroups = H); the second puts a hot and a cold head in each group.
// (Norm groups of only 2 channels, ngroups = H with P = 2, bend the loss so sharply that the
// 2-point differences of gradcheck.h carry O(h²) errors near 1e-5 there; a 4-point stencil
// agrees with the analytic gradient to 1e-10, so that operating point is left out.)
static void hot(Layer *L) {
    int ib = local_param(L, "dt_bias"), ia = local_param(L, "A_log");
    int H = (int)layer_param_numel(L, ib);
    for (int h = 1; h < H; h += 2) { L->p[ib][h] = 25; L->p[ia][h] = log(0.02); }
}
static void hot_init(Layer *L, Rng *rng) { mamba2_block.init(L, rng); hot(L); }
static void fd_hot_init(Layer *L, Rng *rng) { mamba2_block.init(L, rng); condition(L); hot(L); }
static BlockType hot_block, fd_block, fd_hot_block;

// ----------------------------------------------------------------------------
// The reference: blocks.md §2.3 written out with loops, in double, no BLAS. Fills out (B,T,C);
// counts the dt + dt_bias values above 20 and the Δ values the clamp moved.

typedef struct { int hot, clamped, total; } RefStats;

static double silu_d(double v) { return v / (1 + exp(-v)); }

static RefStats reference_forward(double *out, const LayerRig *r, const Config *c) {
    Dims d = dims_of(c);
    int B = r->B, T = r->T, BT = B * T, C = d.C, E = d.E, H = d.H, Pd = d.P, N = d.N, K = d.K;
    int Dp = d.Dp, Cx = d.Cx, GN = d.GN, hpg = d.H / d.G, s = E / d.G;
    double lo = cfg_num(c, "model.mamba.dt_limit_min");
    double hi = cfg_is_auto(c, "model.mamba.dt_limit_max") ? INFINITY : cfg_num(c, "model.mamba.dt_limit_max");
    const real *Win = P(r, "in_proj.weight"), *Wc = P(r, "conv1d.weight"), *bc = P(r, "conv1d.bias");
    const real *dt_bias = P(r, "dt_bias"), *A_log = P(r, "A_log"), *D = P(r, "D");
    const real *nw = P(r, "norm.weight"), *Wout = P(r, "out_proj.weight");
    RefStats st = {0, 0, BT * H};
    double *zx = calloc((size_t)BT * Dp, sizeof(double)), *xbc = calloc((size_t)BT * Cx, sizeof(double));
    double *y = calloc((size_t)BT * E, sizeof(double)), *S = calloc((size_t)Pd * N, sizeof(double));
    for (int bt = 0; bt < BT; bt++)              // in_proj
        for (int j = 0; j < Dp; j++) {
            double a = 0;
            for (int i = 0; i < C; i++) a += r->x[bt * C + i] * Win[j * C + i];
            zx[bt * Dp + j] = a;
        }
    for (int b = 0; b < B; b++)                  // causal conv over xBC, then SiLU
        for (int t = 0; t < T; t++)
            for (int ch = 0; ch < Cx; ch++) {
                double a = bc ? bc[ch] : 0;
                for (int k = 0; k < K; k++) {
                    int tt = t - (K - 1) + k;
                    if (tt >= 0) a += Wc[ch * K + k] * zx[(b * T + tt) * Dp + E + ch];
                }
                xbc[(b * T + t) * Cx + ch] = silu_d(a);
            }
    for (int b = 0; b < B; b++)                  // the recurrence, per (b, h)
        for (int h = 0; h < H; h++) {
            int g = h / hpg;
            double A = -exp(A_log[h]);
            for (int i = 0; i < Pd * N; i++) S[i] = 0;
            for (int t = 0; t < T; t++) {
                int bt = b * T + t;
                double pre = zx[bt * Dp + E + Cx + h] + dt_bias[h];
                st.hot += pre > 20;
                double delta = pre > 20 ? pre : log1p(exp(pre));
                if (delta < lo) { delta = lo; st.clamped++; }
                if (delta > hi) { delta = hi; st.clamped++; }
                const double *x = xbc + bt * Cx + h * Pd, *Bt = xbc + bt * Cx + E + g * N;
                const double *Ct = xbc + bt * Cx + E + GN + g * N;
                for (int p = 0; p < Pd; p++) {
                    double acc = D[h] * x[p];
                    for (int n = 0; n < N; n++) {
                        S[p * N + n] = exp(delta * A) * S[p * N + n] + delta * x[p] * Bt[n];
                        acc += S[p * N + n] * Ct[n];
                    }
                    y[bt * E + h * Pd + p] = acc;
                }
            }
        }
    for (int bt = 0; bt < BT; bt++)              // gated group RMSNorm, in place
        for (int g = 0; g < d.G; g++) {
            double ms = 0;
            for (int i = g * s; i < (g + 1) * s; i++) {
                y[bt * E + i] *= silu_d(zx[bt * Dp + i]);
                ms += y[bt * E + i] * y[bt * E + i];
            }
            double rs = 1 / sqrt(ms / s + 1e-5);
            for (int i = g * s; i < (g + 1) * s; i++) y[bt * E + i] *= rs * nw[i];
        }
    for (int bt = 0; bt < BT; bt++)              // out_proj
        for (int i = 0; i < C; i++) {
            double a = 0;
            for (int e = 0; e < E; e++) a += y[bt * E + e] * Wout[i * E + e];
            out[bt * C + i] = a;
        }
    free(zx); free(xbc); free(y); free(S);
    return st;
}

// ----------------------------------------------------------------------------
// the cases (d_model 8, expand 2: E = 16 unless said otherwise; T = 7)

#define M2(s) "model: {d_model: 8, mamba: {version: 2, " s "}}"
typedef struct { const char *label, *yaml; int hot, clamp; } Case;
static const Case cases[] = {
    {"G1 P4 (H4), chunk 3", M2("headdim: 4, d_state: 4, chunk_size: 3"), 0, 0},
    {"G2 P4 (H4), chunk 64 > T", M2("headdim: 4, ngroups: 2, d_state: 4"), 0, 0},
    {"G1 P2 (H8), chunk 1", M2("headdim: 2, d_state: 4, chunk_size: 1"), 0, 0},
    {"G2 P2 (H8), chunk 4", M2("headdim: 2, ngroups: 2, d_state: 4, chunk_size: 4"), 0, 0},
    {"d_conv 1, chunk 2", M2("headdim: 4, d_state: 4, d_conv: 1, chunk_size: 2"), 0, 0},
    {"d_conv 9 > T, no conv bias", M2("headdim: 4, ngroups: 2, d_state: 4, d_conv: 9, conv_bias: false, chunk_size: 5"), 0, 0},
    {"expand 1.5, P3 G4 (H4), N3", M2("expand: 1.5, headdim: 3, ngroups: 4, d_state: 3, chunk_size: 3"), 0, 0},
    {"dt clamp [0.6, 0.9], G2 P4", M2("headdim: 4, ngroups: 2, d_state: 4, chunk_size: 3, dt_limit_min: 0.6, dt_limit_max: 0.9"), 0, 1},
    {"dt+bias > 20 on odd heads, G4 P4", M2("headdim: 4, ngroups: 4, d_state: 4, chunk_size: 3"), 1, 0},
    {"dt+bias > 20, G4 P2 (H8), N3, d_conv 2", M2("headdim: 2, ngroups: 4, d_state: 3, d_conv: 2, chunk_size: 4"), 1, 0},
};

static void test_forward_reference(const Case *k, int mamba_dt) {
    Config c;
    char label[160];
    snprintf(label, sizeof label, "%s%s", k->label, mamba_dt ? ", Mamba's dt range" : "");
    if (load_with(&c, k->yaml, mamba_dt ? NULL : dt_order_one, mamba_dt ? 0 : 2)) { CHECK(0, "%s: config loads", label); return; }
    ConfError err;
    if (mamba2_block.validate(&c, &err)) { CHECK(0, "%s: validates: %s", label, err.msg); config_free(&c); return; }
    LayerRig r;
    rig_setup(&r, k->hot ? &hot_block : &mamba2_block, &c, Bsz, Tsz, 42);
    rig_loss(&r);
    size_t n = (size_t)Bsz * Tsz * r.m.C;
    double *ref = malloc(n * sizeof(double)), diff = 0, mag = 0;
    RefStats st = reference_forward(ref, &r, &c);
    for (size_t i = 0; i < n; i++) { diff = fmax(diff, fabs(r.out[i] - ref[i])); mag = fmax(mag, fabs(ref[i])); }
    CHECK(diff <= EPS_REL * fmax(1, mag), "%s: forward = reference, max |diff| %.1e (max |out| %.2f)", label, diff, mag);
    if (k->hot) CHECK(st.hot > 0 && st.hot < st.total, "%s: %d of %d dt+bias values above 20", label, st.hot, st.total);
    else CHECK(st.hot == 0, "%s: no dt+bias above 20", label);
    if (k->clamp) CHECK(st.clamped > 0 && st.clamped < st.total, "%s: the clamp moves %d of %d Δ", label, st.clamped, st.total);
    else CHECK(st.clamped == 0, "%s: no Δ clamped", label);
    free(ref);
    rig_free(&r);
    config_free(&c);
}

// ----------------------------------------------------------------------------
// chunked SSD form (§2.4) = sequential recurrence, on random inputs straight into the kernels.
// B 2, T 13, H 4, P 3, N 5, G 2; chunk lengths that divide T, that do not (a short last chunk,
// i.e. zero padding) and that exceed it. Both the outputs and the states entering each chunk.

static double maxdiff(const real *a, const real *b, size_t n, double *mag) {
    double d = 0;
    *mag = 0;
    for (size_t i = 0; i < n; i++) { d = fmax(d, fabs((double)a[i] - b[i])); *mag = fmax(*mag, fabs((double)b[i])); }
    return d;
}

static void test_chunked(void) {
    const int B = 2, T = 13, H = 4, Pd = 3, N = 5, G = 2, E = H * Pd, ld = E + 2 * G * N, nt = 2;
    const int Qs[] = {1, 2, 3, 4, 5, 8, 13, 16, 64};
    Rng rng;
    rng_seed(&rng, 17);
    real *xbc = malloc((size_t)B * T * ld * sizeof(real)), *dlt = malloc((size_t)B * T * H * sizeof(real));
    real A[4], D[4];
    for (int i = 0; i < B * T * ld; i++) xbc[i] = (real)rng_normal(&rng);
    // Δ in [0.05, 2.5] and A in -[0.2, 4]: per-step decays from 0.99 down to e^-10
    for (int i = 0; i < B * T * H; i++) dlt[i] = (real)(0.05 + 2.45 * rng_uniform(&rng));
    for (int h = 0; h < H; h++) { A[h] = (real)-(0.2 + 3.8 * rng_uniform(&rng)); D[h] = (real)rng_normal(&rng); }
    size_t ny = (size_t)B * T * E;
    real *y0 = malloc(ny * sizeof(real)), *y1 = malloc(ny * sizeof(real)), *y2 = malloc(ny * sizeof(real));
    double worst_y = 0, worst_s = 0;
    for (size_t qi = 0; qi < sizeof Qs / sizeof *Qs; qi++) {
        SsdDims d = {.B = B, .T = T, .H = H, .P = Pd, .N = N, .G = G, .Q = Qs[qi], .ld = ld};
        size_t ns = (size_t)B * H * ssd_chunks(&d) * Pd * N;
        real *ck = malloc(ns * sizeof(real)), *st = malloc(ns * sizeof(real));
        real *w1 = malloc(nt * ssd_forward_work(&d) * sizeof(real)), *w2 = malloc(nt * ssd_chunked_work(&d) * sizeof(real));
        ssd_scan_forward(y1, ck, w1, xbc, xbc + E, xbc + E + G * N, dlt, A, D, &d, nt);
        ssd_chunked_forward(y2, st, w2, xbc, xbc + E, xbc + E + G * N, dlt, A, D, &d, nt);
        if (qi == 0) memcpy(y0, y1, ny * sizeof(real));
        double my, ms, dy = maxdiff(y2, y1, ny, &my), ds = maxdiff(st, ck, ns, &ms), d0 = maxdiff(y1, y0, ny, &my);
        CHECK(dy <= EPS_REL * fmax(1, my) && ds <= EPS_REL * fmax(1, ms) && d0 == 0,
              "chunk %2d (%d chunks%s): chunked = sequential, max |dy| %.1e (max |y| %.1f), "
              "chunk states max |diff| %.1e (max %.1f)", Qs[qi], ssd_chunks(&d),
              T % Qs[qi] ? ", short last" : "", dy, my, ds, ms);
        worst_y = fmax(worst_y, dy / fmax(1, my)); worst_s = fmax(worst_s, ds / fmax(1, ms));
        free(ck); free(st); free(w1); free(w2);
    }
    printf("     worst chunked vs sequential: y %.1e, states %.1e (relative)\n", worst_y, worst_s);
    free(xbc); free(dlt); free(y0); free(y1); free(y2);
}

#ifdef HLAB_DOUBLE
static double test_gradients(const Case *k) {
    Config c;
    if (load_with(&c, k->yaml, dt_order_one, 2)) { CHECK(0, "%s: config loads", k->label); return 1; }
    ConfError err;
    CHECK(mamba2_block.validate(&c, &err) == 0, "%s: validates", k->label);
    double w = gradcheck_layer(k->label, k->hot ? &fd_hot_block : &fd_block, &c, Bsz, Tsz, SAMPLES, TOL);
    config_free(&c);
    return w;
}

// ----------------------------------------------------------------------------
// the harness must catch a wrong gradient: dA_log off by 1%

static void bad_backward(Layer *L, real *din, const real *dout, const real *in, int B, int T) {
    mamba2_block.backward(L, din, dout, in, B, T);
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
// init (§2.1, §2.2), on a wider layer so that the distributions show

static double absmax(const real *w, size_t n) { double m = 0; for (size_t i = 0; i < n; i++) m = fmax(m, fabs(w[i])); return m; }

static void test_init(void) {
    Config c;
    // C 64, E 128, P 4: H 32 heads; N 16, G 2, K 4
    if (load(&c, "model: {d_model: 64, mamba: {version: 2, headdim: 4, ngroups: 2}}")) { CHECK(0, "config loads"); return; }
    LayerRig r;
    rig_setup(&r, &mamba2_block, &c, 1, 2, 5);
    Layer *L = &r.L;
    r.m.nsub = 4;                  // out_proj shrinks by sqrt(nsub)
    Rng rng; rng_seed(&rng, 7);
    mamba2_block.init(L, &rng);    // rig_setup added noise; start again from a clean init
    Dims d = dims_of(&c);
    int C = 64, E = 128, H = 32, N = 16, G = 2, K = 4;
    CHECK(d.E == E && d.H == H && d.Cx == E + 2 * G * N && d.Dp == 2 * E + 2 * G * N + H, "E 128, H 32, Cx 192, Dp 352");
    size_t expect = (size_t)C * (2 * E + 2 * G * N + H) + (E + 2 * G * N) * (K + 1) + 3 * H + E + E * C;
    CHECK(r.m.nparams == expect, "parameter count %zu = d(2E+2GN+H) + (E+2GN)(K+1) + 3H + E + Ed = %zu", r.m.nparams, expect);
    const char *decayed[] = {"in_proj.weight", "conv1d.weight", "out_proj.weight"};
    int ndec = 0, bad_decay = 0;
    for (int i = 0; i < L->np; i++) {
        const ParamInfo *pi = &r.m.pinfo[L->param[i]];
        int want = 0;
        for (int j = 0; j < 3; j++) if (local_param(L, decayed[j]) == i) want = 1;
        ndec += pi->decay;
        if (pi->decay != want) { bad_decay++; printf("     decay flag of %s is %d\n", pi->name, pi->decay); }
    }
    CHECK(bad_decay == 0 && ndec == 3, "weight decay on in_proj, conv1d.weight and out_proj only (%d)", ndec);
    struct { const char *name; int ndim; long s0, s1, s2; } shp[] = {
        {"in_proj.weight", 2, d.Dp, C, 0}, {"conv1d.weight", 3, d.Cx, 1, K}, {"conv1d.bias", 1, d.Cx, 0, 0},
        {"dt_bias", 1, H, 0, 0}, {"A_log", 1, H, 0, 0}, {"D", 1, H, 0, 0}, {"norm.weight", 1, E, 0, 0},
        {"out_proj.weight", 2, C, E, 0}};
    int bad = 0;
    for (int j = 0; j < 8; j++) {
        int i = local_param(L, shp[j].name);
        if (i < 0) { bad++; printf("     missing %s\n", shp[j].name); continue; }
        const ParamInfo *pi = &r.m.pinfo[L->param[i]];
        long want[3] = {shp[j].s0, shp[j].s1, shp[j].s2};
        int ok = pi->ndim == shp[j].ndim;
        for (int q = 0; q < pi->ndim && ok; q++) ok = pi->shape[q] == want[q];
        if (!ok) { bad++; printf("     %s has the wrong shape\n", pi->name); }
    }
    CHECK(bad == 0 && L->np == 8, "the eight HF Mamba2 tensors with their shapes (%d)", L->np);
    CHECK(!strcmp(r.m.pinfo[L->param[0]].name, "model.layers.0.mamba.in_proj.weight"), "names: %s", r.m.pinfo[L->param[0]].name);
    struct { const char *name; double bound; } u[] = {
        {"in_proj.weight", 1 / sqrt(C)}, {"conv1d.weight", 1 / sqrt(K)}, {"conv1d.bias", 1 / sqrt(K)},
        {"out_proj.weight", 1 / sqrt(E) / 2}};
    for (int j = 0; j < 4; j++) {
        int i = local_param(L, u[j].name);
        double m = absmax(L->p[i], layer_param_numel(L, i));
        CHECK(m <= u[j].bound * (1 + EPS_REL) && m > 0.8 * u[j].bound, "%s ~ U(±%.4f): max |w| %.4f", u[j].name, u[j].bound, m);
    }
    const real *dt_bias = P(&r, "dt_bias"), *A_log = P(&r, "A_log"), *D = P(&r, "D"), *nw = P(&r, "norm.weight");
    double lo = 1e9, hi = 0;
    for (int h = 0; h < H; h++) { double dt = log1p(exp(dt_bias[h])); lo = fmin(lo, dt); hi = fmax(hi, dt); }
    CHECK(lo >= 0.001 * (1 - EPS_REL) && hi <= 0.1 * (1 + EPS_REL), "softplus(dt_bias) in [dt_min, dt_max]: [%.5f, %.5f]", lo, hi);
    CHECK(lo < 0.003 && hi > 0.03, "dt spreads log-uniformly over the range");
    lo = 1e9; hi = 0;
    for (int h = 0; h < H; h++) { double a = exp(A_log[h]); lo = fmin(lo, a); hi = fmax(hi, a); }
    CHECK(lo >= 1 && hi <= 16 && lo < 3 && hi > 12, "-A = exp(A_log) ~ U(1,16): [%.2f, %.2f]", lo, hi);
    bad = 0;
    for (int h = 0; h < H; h++) bad += D[h] != 1;
    for (int e = 0; e < E; e++) bad += nw[e] != 1;
    CHECK(bad == 0, "D = 1, norm.weight = 1");
    double cache = (double)d.Cx * (K - 1) + (double)H * 4 * N;
    CHECK(mamba2_block.cache_elems(L, 1) == cache && mamba2_block.cache_elems(L, 100000) == cache,
          "cache = (E+2GN)(K-1) + HPN = %.0f at any context", cache);
    double fl = 2.0 * (C * d.Dp + E * C) + 2.0 * d.Cx * K + 5.0 * E * N + 3.0 * E;
    CHECK(mamba2_block.flops_per_token(L, 10) == fl, "flops per token %.0f", fl);
    rig_free(&r);
    config_free(&c);

    // Zamba2's A init, the dt floor, no conv bias
    if (load(&c, "model: {d_model: 64, mamba: {version: 2, headdim: 8, a_init: range, dt_min: 1e-6, dt_max: 1e-5, "
                 "conv_bias: false}}")) { CHECK(0, "config loads"); return; }
    rig_setup(&r, &mamba2_block, &c, 1, 2, 5);
    L = &r.L;
    mamba2_block.init(L, &rng);
    A_log = P(&r, "A_log");
    bad = 0;
    for (int h = 0; h < 16; h++) bad += A_log[h] != (real)log(h + 1.0);
    CHECK(bad == 0, "a_init range: A_log = log(1..H) (Zamba2)");
    dt_bias = P(&r, "dt_bias");
    lo = 1e9; hi = 0;
    for (int h = 0; h < 16; h++) { double dt = log1p(exp(dt_bias[h])); lo = fmin(lo, dt); hi = fmax(hi, dt); }
    CHECK(fabs(lo - 1e-4) < 1e-4 * EPS_REL && fabs(hi - 1e-4) < 1e-4 * EPS_REL, "dt below dt_init_floor is raised to it: [%.3g, %.3g]", lo, hi);
    CHECK(P(&r, "conv1d.bias") == NULL && L->np == 7, "no conv bias");
    rig_free(&r);
    config_free(&c);
}

// ----------------------------------------------------------------------------
// keys and validate()

static void test_config(void) {
    Config c;
    ConfError err;
    CHECK(load(&c, "model: {d_model: 64, mamba: {version: 2}}") == 0, "version 2 loads");
    CHECK(cfg_int(&c, "model.mamba.headdim") == 64 && cfg_int(&c, "model.mamba.ngroups") == 1 &&
          cfg_int(&c, "model.mamba.chunk_size") == 64 && cfg_num(&c, "model.mamba.dt_limit_min") == 0 &&
          cfg_is_auto(&c, "model.mamba.dt_limit_max") && !strcmp(cfg_str(&c, "model.mamba.a_init"), "uniform"),
          "Mamba-2 defaults: headdim 64, ngroups 1, chunk 64, no dt clamp, A ~ U(1,16)");
    CHECK(mamba2_block.validate(&c, &err) == 0, "d_model 64 (E 128, H 2) validates");
    config_free(&c);

    struct { const char *yaml, *key, *hint; } bad[] = {
        {M2("headdim: 5"), "headdim", "1, 2, 4, 8, 16"},
        {"model: {d_model: 8, mamba: {version: 2}}", "headdim", "E = expand * d_model = 16"},
        {M2("headdim: 4, ngroups: 3"), "ngroups", "1, 2, 4"},
        {M2("headdim: 4, dt_limit_min: 0.5, dt_limit_max: 0.5"), "dt_limit_max", "empty"},
        {M2("headdim: 4, dt_min: 0.2, dt_max: 0.1"), "dt_min", "empty"},
        {M2("headdim: 4, expand: 0.01"), "expand", "E below 1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (load(&c, bad[i].yaml)) { CHECK(0, "%s loads", bad[i].yaml); continue; }
        int rc = mamba2_block.validate(&c, &err);
        CHECK(rc != 0 && strstr(err.msg, bad[i].key) && strstr(err.msg, bad[i].hint),
              "validate rejects %s: %s", bad[i].yaml, rc ? err.msg : "(accepted)");
        config_free(&c);
    }
    const char *rejected[] = {M2("a_init: log"), M2("headdim: 0"), M2("ngroups: 0"), M2("chunk_size: 0")};
    for (int i = 0; i < 4; i++) {
        int rc = config_load_string(&c, rejected[i], "test", NULL, 0, tables, &err);
        CHECK(rc != 0, "the loader rejects %s: %s", rejected[i], rc ? err.msg : "(accepted)");
        if (rc == 0) config_free(&c);
    }
}

// Gradients are the same bits twice, and for 1 and 3 threads (every cross-item reduction is
// summed in a fixed order). ops.h's matmuls run single-threaded here (ops_init_threads is not
// called), so the thread count reaches only the block's own loops.
static void test_deterministic(void) {
    Config c;
    if (load(&c, cases[3].yaml)) { CHECK(0, "config loads"); return; }
    int B = 3, T = 9, saved = omp_get_max_threads();
    real *g[3], *dx[3];
    size_t np = 0, nx = 0;
    for (int run = 0; run < 3; run++) {
        omp_set_num_threads(run < 2 ? 3 : 1);   // the per-thread buffers are sized at setup
        LayerRig r;
        rig_setup(&r, &mamba2_block, &c, B, T, 11);
        np = r.m.nparams; nx = (size_t)B * T * r.m.C;
        memset(r.m.grads, 0, np * sizeof(real));
        rig_loss(&r);
        mamba2_block.backward(&r.L, r.dx, r.w, r.x, B, T);
        g[run] = malloc(np * sizeof(real)); dx[run] = malloc(nx * sizeof(real));
        memcpy(g[run], r.m.grads, np * sizeof(real)); memcpy(dx[run], r.dx, nx * sizeof(real));
        rig_free(&r);
    }
    omp_set_num_threads(saved);
    CHECK(!memcmp(g[0], g[1], np * sizeof(real)) && !memcmp(dx[0], dx[1], nx * sizeof(real)), "backward is bitwise reproducible (3 threads)");
    CHECK(!memcmp(g[0], g[2], np * sizeof(real)) && !memcmp(dx[0], dx[2], nx * sizeof(real)), "1 thread gives the same bits as 3");
    for (int i = 0; i < 3; i++) { free(g[i]); free(dx[i]); }
    config_free(&c);
}

int main(void) {
    hot_block = mamba2_block;
    hot_block.init = hot_init;
    fd_block = mamba2_block;
    fd_block.init = fd_init;
    fd_hot_block = mamba2_block;
    fd_hot_block.init = fd_hot_init;
    test_group("config"); test_config();
    test_group("init"); test_init();
    test_group("forward");
    test_forward_reference(&cases[0], 1);
    test_forward_reference(&cases[1], 1);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) test_forward_reference(&cases[i], 0);
    test_group("chunked SSD"); test_chunked();
#ifdef HLAB_DOUBLE
    test_group("gradcheck");
    double worst = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) worst = fmax(worst, test_gradients(&cases[i]));
    printf("     worst relative gradient error over all cases: %.2e\n", worst);
    test_group("harness"); test_harness_catches();
#else
    (void)gradcheck_layer; (void)TOL;   // finite differences only in the double build
    test_group("backward (float build: no finite differences)");
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) test_backward_finite(&cases[i]);
#endif
    test_group("determinism"); test_deterministic();
    return test_summary();
}
