// dtest_moe.c: the sparse MoE block ('E') in double precision: config keys and validation,
// tensor names and accounting, forward values against a plain per-token reference written from
// blocks.md §3.4/§6.4, the load-balancing loss of §6.5 on hand examples, the claim that only
// chosen experts are computed, report(), finite-difference gradient checks of the layer (with
// and without the aux term, Jamba and Mixtral weights, top-1 and top-2) and of a whole model
// with two MoE layers sharing one aux pool.
//
// Finite differences of a MoE hold the top-k choice fixed: every check here recomputes the
// choice of every token at each perturbed point and fails if any set changed.
#include "gradcheck.h"
#include "keys.h"
#include "moe.h"
#include "mlp.h"
#include "ops.h"
#include <omp.h>

static int load(Config *c, const char *yaml) {
    ConfError err;
    if (config_load_string(c, yaml, "test", NULL, 0, all_key_tables(), &err) != 0) {
        CHECK(0, "config %s loads: %s", yaml, err.msg);
        return -1;
    }
    return 0;
}

static real *param(LayerRig *r, const char *name) {
    char full[192];
    snprintf(full, sizeof full, "%s.%s", r->L.prefix, name);
    int i = model_find_param(&r->m, full);
    if (i < 0) die("no tensor %s", full);
    return r->m.params + r->m.pinfo[i].offset;
}

// The expert set of each token as a bit mask (X <= MOE_MAX_EXPERTS < 32).
static void route_masks(const Layer *L, unsigned *mask) {
    MoeRouting rt = moe_routing(L);
    for (int t = 0; t < rt.N; t++) {
        mask[t] = 0;
        for (int j = 0; j < rt.k; j++) mask[t] |= 1u << rt.sel[t * rt.k + j];
    }
}
static int masks_differ(const Layer *L, const unsigned *base) {
    MoeRouting rt = moe_routing(L);
    unsigned now[rt.N];
    route_masks(L, now);
    int n = 0;
    for (int t = 0; t < rt.N; t++) n += now[t] != base[t];
    return n;
}

// The smallest gap between the k-th and the (k+1)-th router probability of any token: the FD
// steps must move the probabilities by much less than this.
static double route_margin(const Layer *L) {
    MoeRouting rt = moe_routing(L);
    if (rt.k == rt.X) return INFINITY;
    double m = INFINITY;
    for (int t = 0; t < rt.N; t++) {
        const real *p = rt.prob + (size_t)t * rt.X;
        double kth = p[rt.sel[t * rt.k + rt.k - 1]], best_out = -1;
        for (int e = 0; e < rt.X; e++) {
            int in = 0;
            for (int j = 0; j < rt.k; j++) in |= rt.sel[t * rt.k + j] == e;
            if (!in && p[e] > best_out) best_out = p[e];
        }
        m = fmin(m, kth - best_out);
    }
    return m;
}

// ----------------------------------------------------------------------------
// keys and validation

static void test_keys(void) {
    test_group("moe keys");
    Config c;
    if (load(&c, "model: {d_model: 64}") == 0) {
        CHECK(cfg_int(&c, "model.moe.experts") == 8 && cfg_int(&c, "model.moe.top_k") == 2 &&
              !cfg_bool(&c, "model.moe.renormalize") && cfg_is_auto(&c, "model.moe.hidden") &&
              cfg_num(&c, "model.moe.aux_loss_coef") == 0.001,
              "defaults: 8 experts, top-2, Jamba weights (no renormalisation), hidden auto, aux coef 0.001");
        ConfError err;
        CHECK(moe_block.validate(&c, &err) == 0, "defaults validate");
        config_free(&c);
    }
    // hidden auto follows the dense MLP's width, auto or set
    if (load(&c, "model: {d_model: 16, pattern: \"*E\", mlp: {hidden: 20}}") == 0) {
        Model m;
        ConfError err;
        if (model_build(&m, &c, &err) == 0) {
            int i = model_find_param(&m, "model.layers.0.feed_forward.experts.0.gate_proj.weight");
            CHECK(i >= 0 && m.pinfo[i].shape[0] == 20, "moe.hidden auto = model.mlp.hidden 20");
            model_free(&m);
        } else CHECK(0, "build: %s", err.msg);
        config_free(&c);
    }
    struct { const char *yaml, *key, *words; } bad[] = {
        {"model: {moe: {experts: 4, top_k: 5}}", "model.moe.top_k", "more than model.moe.experts"},
        {"model: {moe: {experts: 22}}", "model.moe.experts", "at most 64 tensors"},
    };
    for (int i = 0; i < 2; i++) {
        if (load(&c, bad[i].yaml) != 0) continue;
        ConfError err;
        int rc = moe_block.validate(&c, &err);
        CHECK(rc == -1 && strstr(err.msg, bad[i].key) && strstr(err.msg, bad[i].words),
              "%s rejected: %s", bad[i].yaml, rc ? err.msg : "(accepted)");
        config_free(&c);
    }
    if (load(&c, "model: {moe: {experts: 21, top_k: 21}}") == 0) {
        ConfError err;
        CHECK(moe_block.validate(&c, &err) == 0, "21 experts, top_k = experts accepted");
        config_free(&c);
    }
    ConfError err;
    CHECK(config_load_string(&c, "model: {moe: {experts: 1}}", "test", NULL, 0, all_key_tables(), &err) != 0 &&
          strstr(err.msg, "model.moe.experts"), "1 expert rejected by the key range: %s", err.msg);
    CHECK(config_load_string(&c, "model: {moe: {router_jitter: 0.1}}", "test", NULL, 0, all_key_tables(), &err) != 0,
          "router_jitter is not a key (not implemented)");
}

// ----------------------------------------------------------------------------
// names, shapes, accounting

static void test_shapes(void) {
    test_group("moe shapes");
    Config c;
    if (load(&c, "model: {d_model: 16, moe: {experts: 4, top_k: 2, hidden: 12}}") != 0) return;
    LayerRig r;
    rig_setup(&r, &moe_block, &c, 1, 4, 1);
    int ok = r.L.np == 13;
    ParamInfo *pi = &r.m.pinfo[r.L.param[0]];
    ok = ok && !strcmp(pi->name, "model.layers.0.feed_forward.router.weight") && pi->shape[0] == 4 &&
         pi->shape[1] == 16 && pi->decay && pi->active == 1;
    const char *mn[] = {"gate_proj", "up_proj", "down_proj"};
    long want[3][2] = {{12, 16}, {12, 16}, {16, 12}};
    for (int e = 0; e < 4 && ok; e++)
        for (int i = 0; i < 3 && ok; i++) {
            pi = &r.m.pinfo[r.L.param[1 + 3 * e + i]];
            char full[192];
            snprintf(full, sizeof full, "model.layers.0.feed_forward.experts.%d.%s.weight", e, mn[i]);
            ok = !strcmp(pi->name, full) && pi->ndim == 2 && pi->shape[0] == want[i][0] &&
                 pi->shape[1] == want[i][1] && pi->decay && pi->active == 0.5;
        }
    CHECK(ok, "router.weight (4,16) active 1; experts.{0..3}.gate/up (12,16), down (16,12), active 2/4; all decayed");
    double f = moe_block.flops_per_token(&r.L, 9), want_f = 2.0 * 16 * 4 + 2 * 2.0 * 3 * 16 * 12;
    CHECK(f == want_f, "flops/token = router 2CX + k·6CF = %.0f (want %.0f)", f, want_f);
    CHECK(moe_block.cache_elems(&r.L, 9) == 0 && moe_block.cache == CACHE_NONE, "no cache");
    CHECK(moe_block.role == ROLE_FFN && moe_block.residual == 1 && !moe_block.own_norm &&
          !strcmp(moe_block.module, "feed_forward") && moe_block.symbol == 'E', "FFN role, residual, core pre-norm, symbol E");
    rig_free(&r);
    config_free(&c);
}

// ----------------------------------------------------------------------------
// forward against a plain per-token reference (blocks.md §3.4, §6.4)

static void naive_moe(double *out, int *sel, double *wsel, LayerRig *r, const Config *c) {
    int C = r->m.C, X = (int)cfg_int(c, "model.moe.experts"), k = (int)cfg_int(c, "model.moe.top_k");
    int F = cfg_is_auto(c, "model.moe.hidden") ? mlp_hidden(c) : (int)cfg_int(c, "model.moe.hidden");
    int renorm = cfg_bool(c, "model.moe.renormalize"), N = r->B * r->T;
    const real *Wr = param(r, "router.weight");
    for (int t = 0; t < N; t++) {
        const real *x = r->x + (size_t)t * C;
        double logit[X], p[X], sum = 0, mx = -INFINITY;
        for (int e = 0; e < X; e++) {
            logit[e] = 0;
            for (int i = 0; i < C; i++) logit[e] += (double)Wr[e * C + i] * x[i];
            mx = fmax(mx, logit[e]);
        }
        for (int e = 0; e < X; e++) { p[e] = exp(logit[e] - mx); sum += p[e]; }
        for (int e = 0; e < X; e++) p[e] /= sum;
        int used[X];
        memset(used, 0, sizeof used);
        double wsum = 0, lsum = 0;
        for (int j = 0; j < k; j++) {
            int b = -1;
            for (int e = 0; e < X; e++) if (!used[e] && (b < 0 || p[e] > p[b])) b = e;
            used[b] = 1; sel[t * k + j] = b; wsel[t * k + j] = p[b]; wsum += p[b]; lsum += exp(logit[b] - mx);
        }
        // Mixtral: w / Σw, written as the softmax over the chosen logits (§6.4)
        if (renorm) for (int j = 0; j < k; j++) wsel[t * k + j] = exp(logit[sel[t * k + j]] - mx) / lsum;
        for (int i = 0; i < C; i++) out[(size_t)t * C + i] = 0;
        for (int j = 0; j < k; j++) {
            char nm[64];
            int e = sel[t * k + j];
            snprintf(nm, sizeof nm, "experts.%d.gate_proj.weight", e); const real *Wg = param(r, nm);
            snprintf(nm, sizeof nm, "experts.%d.up_proj.weight", e); const real *Wu = param(r, nm);
            snprintf(nm, sizeof nm, "experts.%d.down_proj.weight", e); const real *Wd = param(r, nm);
            double h[F];
            for (int f = 0; f < F; f++) {
                double g = 0, u = 0;
                for (int i = 0; i < C; i++) { g += (double)Wg[f * C + i] * x[i]; u += (double)Wu[f * C + i] * x[i]; }
                h[f] = g / (1 + exp(-g)) * u;
            }
            for (int i = 0; i < C; i++) {
                double s = 0;
                for (int f = 0; f < F; f++) s += (double)Wd[i * F + f] * h[f];
                out[(size_t)t * C + i] += wsel[t * k + j] * s;
            }
        }
    }
}

static void test_forward(void) {
    test_group("moe forward");
    const char *cfgs[] = {
        "model: {d_model: 8, init_std: 0.5, moe: {experts: 4, top_k: 2, hidden: 6}}",
        "model: {d_model: 8, init_std: 0.5, moe: {experts: 4, top_k: 2, hidden: 6, renormalize: true}}",
        "model: {d_model: 8, init_std: 0.5, moe: {experts: 5, top_k: 1, hidden: 7}}",
        "model: {d_model: 8, init_std: 0.5, moe: {experts: 3, top_k: 3, hidden: 5, renormalize: true}}",
    };
    for (int v = 0; v < 4; v++) {
        Config c;
        if (load(&c, cfgs[v]) != 0) continue;
        LayerRig r;
        rig_setup(&r, &moe_block, &c, 3, 7, 11 + v);
        int N = 21, C = 8, k = (int)cfg_int(&c, "model.moe.top_k");
        moe_block.forward(&r.L, r.out, r.x, 3, 7);
        double ref[N * C], wref[N * k];
        int sref[N * k];
        naive_moe(ref, sref, wref, &r, &c);
        double eo = 0, ew = 0, mag = 0;
        int same_sel = 1;
        MoeRouting rt = moe_routing(&r.L);
        for (int i = 0; i < N * C; i++) { eo = fmax(eo, fabs(r.out[i] - ref[i])); mag = fmax(mag, fabs(ref[i])); }
        for (int i = 0; i < N * k; i++) { same_sel &= rt.sel[i] == sref[i]; ew = fmax(ew, fabs(rt.weight[i] - wref[i])); }
        CHECK(same_sel && ew < 1e-14, "%s: top-k choice as the reference, weights err %.1e%s", cfgs[v], ew,
              cfg_bool(&c, "model.moe.renormalize") ? " (= softmax over the chosen logits)" : " (= p)");
        CHECK(eo < 1e-12 * fmax(1, mag), "%s: output err %.1e (max |out| %.2f)", cfgs[v], eo, mag);
        if (cfg_bool(&c, "model.moe.renormalize")) {
            double worst = 0;
            for (int t = 0; t < N; t++) {
                double s = 0;
                for (int j = 0; j < k; j++) s += rt.weight[t * k + j];
                worst = fmax(worst, fabs(s - 1));
            }
            CHECK(worst < 1e-14, "renormalised weights sum to 1 (err %.1e)", worst);
        }
        rig_free(&r);
        config_free(&c);
    }
}

// ----------------------------------------------------------------------------
// load-balancing loss on hand examples (§6.5)

// A rig whose router is the identity (d_model = experts), so each x row is its token's logits.
static void identity_router(LayerRig *r, int X, const double *logits) {
    real *Wr = param(r, "router.weight");
    for (int e = 0; e < X; e++) for (int i = 0; i < X; i++) Wr[e * X + i] = e == i;
    for (int i = 0; i < r->B * r->T * X; i++) r->x[i] = (real)logits[i];
}

typedef struct { char name[16][96]; double value[16]; int n; } Emitted;
static void collect(void *ctx, const char *name, double value) {
    Emitted *em = ctx;
    if (em->n < 16) { snprintf(em->name[em->n], sizeof em->name[0], "%s", name); em->value[em->n++] = value; }
}

static void test_aux_values(void) {
    test_group("moe aux loss values");
    Config c;
    // 4 tokens, 3 experts, top-1, coefficient 1: the choices are e0, e1, e2, e0, so
    // f = (1/2, 1/4, 1/4), P = mean softmax, aux = 3 Σ f_e P_e
    if (load(&c, "model: {d_model: 3, moe: {experts: 3, top_k: 1, hidden: 4, aux_loss_coef: 1}}") == 0) {
        LayerRig r;
        rig_setup(&r, &moe_block, &c, 1, 4, 5);
        double lg[12] = {2, 0, 0, 0, 1, 0, 0, 0, 3, 1, 0.5, 0};
        identity_router(&r, 3, lg);
        moe_block.forward(&r.L, r.out, r.x, 1, 4);
        Layer *Ls = &r.L;
        double aux = moe_block.pooled_loss(&Ls, 1, 1, 4);
        double P[3] = {0, 0, 0}, f[3] = {0.5, 0.25, 0.25}, want = 0;
        for (int t = 0; t < 4; t++) {
            double s = exp(lg[3 * t]) + exp(lg[3 * t + 1]) + exp(lg[3 * t + 2]);
            for (int e = 0; e < 3; e++) P[e] += exp(lg[3 * t + e]) / s / 4;
        }
        for (int e = 0; e < 3; e++) want += 3 * f[e] * P[e];
        MoeRouting rt = moe_routing(&r.L);
        CHECK(rt.sel[0] == 0 && rt.sel[1] == 1 && rt.sel[2] == 2 && rt.sel[3] == 0 &&
              rt.count[0] == 2 && rt.count[1] == 1 && rt.count[2] == 1, "hand example routes to e0 e1 e2 e0");
        CHECK(fabs(aux - want) < 1e-14 && fabs(aux - 1.0407537171708687) < 1e-14,
              "hand example: aux %.16f = 3 Σ f_e P_e = %.16f (1.0407537171708687 from Python)", aux, want);
        // report: per-layer loads f_e sum to k; aux_balance = the same formula for this layer
        Emitted em = {0};
        moe_block.report(&r.L, collect, &em);
        int ok = em.n == 4 && !strcmp(em.name[0], "expert_load.0") && !strcmp(em.name[2], "expert_load.2") &&
                 !strcmp(em.name[3], "aux_balance");
        CHECK(ok && em.value[0] == 0.5 && em.value[1] == 0.25 && em.value[2] == 0.25 && fabs(em.value[3] - want) < 1e-14,
              "report: expert_load.0..2 = 0.5 0.25 0.25, aux_balance %.6f", ok ? em.value[3] : -1);
        rig_free(&r);
        config_free(&c);
    }
    // a perfectly balanced router gives aux = k: token t's logits are (3,2,1,0) rotated by t, so
    // every expert is chosen equally often at every rank and P_e = 1/X
    for (int k = 1; k <= 3; k++) {
        char y[256];
        snprintf(y, sizeof y, "model: {d_model: 4, moe: {experts: 4, top_k: %d, hidden: 4, aux_loss_coef: 1}}", k);
        if (load(&c, y) != 0) continue;
        LayerRig r;
        rig_setup(&r, &moe_block, &c, 2, 4, 6);
        double lg[32];
        for (int t = 0; t < 8; t++) for (int e = 0; e < 4; e++) lg[t * 4 + e] = 3 - (e + t) % 4;
        identity_router(&r, 4, lg);
        moe_block.forward(&r.L, r.out, r.x, 2, 4);
        Layer *Ls = &r.L;
        double aux = moe_block.pooled_loss(&Ls, 1, 2, 4);
        Emitted em = {0};
        moe_block.report(&r.L, collect, &em);
        double sum = 0, spread = 0;
        for (int e = 0; e < 4; e++) { sum += em.value[e]; spread = fmax(spread, fabs(em.value[e] - k / 4.0)); }
        CHECK(fabs(aux - k) < 1e-14, "balanced router, top-%d: aux = %.15f (want k)", k, aux);
        CHECK(em.n == 5 && fabs(sum - k) < 1e-14 && spread < 1e-14 && fabs(em.value[4] - k) < 1e-14,
              "balanced top-%d: loads %g each, sum %g = k, aux_balance %g", k, em.value[0], sum, em.value[4]);
        rig_free(&r);
        config_free(&c);
    }
    // the coefficient scales the returned term; coefficient 0 returns 0
    if (load(&c, "model: {d_model: 4, moe: {experts: 4, top_k: 2, hidden: 4, aux_loss_coef: 0}}") == 0) {
        LayerRig r;
        rig_setup(&r, &moe_block, &c, 2, 3, 8);
        moe_block.forward(&r.L, r.out, r.x, 2, 3);
        Layer *Ls = &r.L;
        CHECK(moe_block.pooled_loss(&Ls, 1, 2, 3) == 0, "aux_loss_coef 0: no aux term");
        rig_free(&r);
        config_free(&c);
    }
}

// ----------------------------------------------------------------------------
// only the chosen experts run

static void test_sparse(void) {
    test_group("moe sparsity");
    Config c;
    if (load(&c, "model: {d_model: 4, moe: {experts: 4, top_k: 2, hidden: 5}}") != 0) return;
    // logit 3 is always far below the others: expert 3 is never chosen. Its weights are NaN, so
    // touching them anywhere would poison the output or the gradients.
    LayerRig r, z;
    rig_setup(&r, &moe_block, &c, 2, 6, 9);
    rig_setup(&z, &moe_block, &c, 2, 6, 9);
    int N = 12, C = 4, k = 2;
    double lg[48];
    Rng rng;
    rng_seed(&rng, 4);
    for (int t = 0; t < N; t++) for (int e = 0; e < 4; e++) lg[t * 4 + e] = e == 3 ? -20 : rng_normal(&rng);
    identity_router(&r, 4, lg);
    identity_router(&z, 4, lg);
    const char *mn[] = {"experts.3.gate_proj.weight", "experts.3.up_proj.weight", "experts.3.down_proj.weight"};
    for (int i = 0; i < 3; i++) {
        real *a = param(&r, mn[i]), *b = param(&z, mn[i]);
        for (int j = 0; j < 20; j++) { a[j] = NAN; b[j] = 0; }
    }
    memset(r.m.grads, 0, r.m.nparams * sizeof(real));
    moe_block.forward(&r.L, r.out, r.x, 2, 6);
    moe_block.forward(&z.L, z.out, z.x, 2, 6);
    MoeRouting rt = moe_routing(&r.L);
    int rows = 0, agree = 1;
    for (int e = 0; e < 4; e++) {
        rows += rt.count[e];
        int n = 0;   // tokens whose choice includes e, counted from the choices themselves
        for (int t = 0; t < N; t++) for (int j = 0; j < k; j++) n += rt.sel[t * k + j] == e;
        agree &= n == rt.count[e];
    }
    CHECK(rows == N * k && agree, "expert rows %d = N*k = %d, each expert's rows = its tokens", rows, N * k);
    CHECK(rt.count[3] == 0, "expert 3 got no tokens");
    int finite = 1, same = 1;
    for (int i = 0; i < N * C; i++) { finite &= isfinite(r.out[i]); same &= r.out[i] == z.out[i]; }
    CHECK(finite && same, "NaN weights of the unused expert never touched: output finite and equal to zero weights");
    moe_block.backward(&r.L, r.dx, r.w, r.x, 2, 6);
    finite = 1;
    for (size_t i = 0; i < r.m.nparams; i++) finite &= isfinite(r.m.grads[i]);
    for (int i = 0; i < N * C; i++) finite &= isfinite(r.dx[i]);
    int zero = 1;
    for (int i = 0; i < 3; i++) {
        int p = 1 + 3 * 3 + i;
        const real *g = r.L.g[p];
        for (size_t j = 0; j < layer_param_numel(&r.L, p); j++) zero &= g[j] == 0;
    }
    CHECK(finite && zero, "backward finite, unused expert's gradients exactly 0");
    rig_free(&r);
    rig_free(&z);
    config_free(&c);
}

// ----------------------------------------------------------------------------
// gradient checks of one layer

// total = Σ w ⊙ out + pooled_loss([L]) (the aux term with its coefficient)
static double rig_total(LayerRig *r) {
    double s = rig_loss(r);
    Layer *Ls = &r->L;
    return s + moe_block.pooled_loss(&Ls, 1, r->B, r->T);
}

// Like gradcheck_layer, on the total with the aux term, and with the top-k choice of every token
// compared against the unperturbed one at each ±h point. Returns the worst error.
static double gradcheck_total(const char *label, const Config *c, int B, int T, int samples, double tol,
                              double *router_aux_share) {
    LayerRig r;
    rig_setup(&r, &moe_block, c, B, T, 1234);
    Model *m = &r.m;
    int N = B * T;
    // the router's gradient without and with the aux term: how much the check exercises it
    memset(m->grads, 0, m->nparams * sizeof(real));
    rig_loss(&r);
    moe_block.backward(&r.L, r.dx, r.w, r.x, B, T);
    size_t nr = layer_param_numel(&r.L, 0);
    real gr0[nr];
    memcpy(gr0, r.L.g[0], nr * sizeof(real));
    memset(m->grads, 0, m->nparams * sizeof(real));
    rig_total(&r);
    unsigned base[N];
    route_masks(&r.L, base);
    double margin = route_margin(&r.L);
    moe_block.backward(&r.L, r.dx, r.w, r.x, B, T);
    double dmax = 0;
    for (size_t i = 0; i < nr; i++) dmax = fmax(dmax, fabs(r.L.g[0][i] - gr0[i]));
    *router_aux_share = dmax / fmax(max_abs(r.L.g[0], nr), 1e-300);

    real *g = malloc(m->nparams * sizeof(real));
    memcpy(g, m->grads, m->nparams * sizeof(real));
    const double h = 1e-5;
    Rng rng; rng_seed(&rng, 99);
    double worst_all = 0;
    int changed = 0, evals = 0;
    for (int i = 0; i <= r.L.np; i++) {   // i == np: the input
        real *base_p = i < r.L.np ? m->params + m->pinfo[r.L.param[i]].offset : r.x;
        const real *ga = i < r.L.np ? g + m->pinfo[r.L.param[i]].offset : r.dx;
        size_t n = i < r.L.np ? m->pinfo[r.L.param[i]].numel : (size_t)N * m->C;
        double worst = 0, floor_ = fmax(1e-3 * max_abs(ga, n), 1e-8);
        int ns = n < (size_t)samples ? (int)n : samples;
        for (int s = 0; s < ns; s++) {
            size_t kk = n <= (size_t)samples ? (size_t)s : rng_below(&rng, n);
            real *p = base_p + kk, save = *p;
            *p = save + h; double lp = rig_total(&r); changed += masks_differ(&r.L, base) != 0;
            *p = save - h; double lm = rig_total(&r); changed += masks_differ(&r.L, base) != 0;
            *p = save;
            evals += 2;
            double e = fd_compare(ga[kk], (lp - lm) / (2 * h), floor_);
            if (e > worst) worst = e;
        }
        if (worst >= tol) CHECK(0, "%s: d%s rel err %.2e", label, i < r.L.np ? m->pinfo[r.L.param[i]].name : "(input)", worst);
        if (worst > worst_all) worst_all = worst;
    }
    CHECK(changed == 0, "%s: top-k sets unchanged at all %d perturbed points (min top-k margin %.2e)", label, evals, margin);
    CHECK(worst_all < tol, "%s: %d tensors + input, worst rel err %.2e (tol %.0e)", label, r.L.np, worst_all, tol);
    free(g);
    rig_free(&r);
    return worst_all;
}

static double worst_layer = 0, worst_total = 0, worst_model = 0;

static void test_gradcheck_layer(void) {
    test_group("moe gradcheck");
    for (int renorm = 0; renorm <= 1; renorm++)
        for (int k = 1; k <= 2; k++)
            for (int a = 0; a <= 1; a++) {
                char y[256], label[128];
                double coef = a ? 0.1 : 0;
                snprintf(y, sizeof y, "model: {d_model: 8, moe: {experts: 4, top_k: %d, hidden: 6, renormalize: %s, aux_loss_coef: %g}}",
                         k, renorm ? "true" : "false", coef);
                snprintf(label, sizeof label, "%s top-%d coef %g", renorm ? "Mixtral" : "Jamba", k, coef);
                Config c;
                if (load(&c, y) != 0) continue;
                // the main loss alone (gradcheck_layer never calls pooled_loss, so backward leaves the aux term out)
                double w = gradcheck_layer(label, &moe_block, &c, 2, 5, 12, 1e-6);
                worst_layer = fmax(worst_layer, w);
                // main loss + aux term, top-k choice checked at every point
                double share;
                char l2[160];
                snprintf(l2, sizeof l2, "%s, with aux", label);
                w = gradcheck_total(l2, &c, 2, 5, 12, 1e-6, &share);
                worst_total = fmax(worst_total, w);
                if (a) CHECK(share > 1e-2, "%s: the aux term is %.1f%% of the router gradient (the check sees it)", label, 100 * share);
                else CHECK(share == 0, "%s: coefficient 0 adds nothing to the router gradient", label);
                config_free(&c);
            }
    // the harness catches a wrong gradient: scale the aux term's G by 1.01 after pooled_loss
    // (a mis-pooled f) and compare against the true total
    Config c;
    if (load(&c, "model: {d_model: 8, moe: {experts: 4, top_k: 2, hidden: 6, aux_loss_coef: 1}}") == 0) {
        LayerRig r;
        rig_setup(&r, &moe_block, &c, 2, 5, 1234);
        memset(r.m.grads, 0, r.m.nparams * sizeof(real));
        rig_total(&r);
        real *G = r.L.a[r.L.na - 1];   // the aux activation is declared last: G (X), flag
        for (int e = 0; e < 4; e++) G[e] *= (real)1.01;
        moe_block.backward(&r.L, r.dx, r.w, r.x, 2, 5);
        double worst = 0, h = 1e-5, floor_ = fmax(1e-3 * max_abs(r.L.g[0], 32), 1e-8);
        for (int i = 0; i < 32; i++) {
            real *p = r.L.p[0] + i, save = *p;
            *p = save + h; double lp = rig_total(&r);
            *p = save - h; double lm = rig_total(&r);
            *p = save;
            worst = fmax(worst, fd_compare(r.L.g[0][i], (lp - lm) / (2 * h), floor_));
        }
        CHECK(worst > 1e-4, "self-test: a 1%% error in the aux gradient's G is caught (router rel err %.2e)", worst);
        rig_free(&r);
        config_free(&c);
    }
}

// ----------------------------------------------------------------------------
// a whole model with two MoE layers: one aux pool over both layers' tokens

static const char *corrupt = NULL;

static double check_model(const char *label, const char *yaml, int B, int T, int samples) {
    Config c;
    if (load(&c, yaml) != 0) return 1;
    Model m;
    ConfError err;
    if (model_build(&m, &c, &err) != 0) { CHECK(0, "%s: build: %s", label, err.msg); config_free(&c); return 1; }
    model_alloc(&m, B, T, B * T);
    model_init(&m, 7);
    Rng rng;
    rng_seed(&rng, 3);
    for (size_t i = 0; i < m.nparams; i++) m.params[i] += (real)(0.1 * rng_normal(&rng));
    int N = B * T, tok[N], tgt[N];
    for (int i = 0; i < N; i++) { tok[i] = (int)rng_below(&rng, m.V); tgt[i] = (int)rng_below(&rng, m.V); }
    Layer *moe[8];
    int nm = 0;
    for (int l = 0; l < m.nsub; l++) if (m.layers[l].type == &moe_block) moe[nm++] = &m.layers[l];
    model_zero_grad(&m);
    model_forward(&m, tok, tgt, B, T);
    double aux = m.aux_loss;
    model_backward(&m);
    real *g = malloc(m.nparams * sizeof(real));
    memcpy(g, m.grads, m.nparams * sizeof(real));
    if (corrupt) { int i = model_find_param(&m, corrupt); for (size_t j = 0; j < m.pinfo[i].numel; j++) g[m.pinfo[i].offset + j] *= 1.01; }

    if (!corrupt) {
        // one pool: f and P over the concatenated tokens of every MoE layer
        int X = (int)cfg_int(&c, "model.moe.experts");
        double coef = cfg_num(&c, "model.moe.aux_loss_coef"), f[X], P[X], want = 0, per_layer = 0;
        for (int e = 0; e < X; e++) f[e] = P[e] = 0;
        for (int l = 0; l < nm; l++) {
            MoeRouting rt = moe_routing(moe[l]);
            double fl[X], pl[X];
            for (int e = 0; e < X; e++) fl[e] = pl[e] = 0;
            for (int t = 0; t < N; t++) {
                for (int j = 0; j < rt.k; j++) fl[rt.sel[t * rt.k + j]] += 1;
                for (int e = 0; e < X; e++) pl[e] += rt.prob[t * X + e];
            }
            double al = 0;
            for (int e = 0; e < X; e++) { f[e] += fl[e]; P[e] += pl[e]; al += X * (fl[e] / N) * (pl[e] / N); }
            per_layer += al / nm;
        }
        for (int e = 0; e < X; e++) want += coef * X * (f[e] / (nm * N)) * (P[e] / (nm * N));
        CHECK(nm == 2 && fabs(aux - want) < 1e-14, "%s: aux_loss %.12f = coef·X Σ f P over both layers' %d tokens = %.12f "
              "(the mean of per-layer values would be %.12f)", label, aux, nm * N, want, coef * per_layer);
        // report through the model: two layers, loads summing to k each
        Emitted em = {0};
        model_report(&m, collect, &em);
        int k = (int)cfg_int(&c, "model.moe.top_k"), ok = em.n == 2 * (X + 1);
        double s0 = 0, s1 = 0;
        for (int e = 0; e < X && ok; e++) { s0 += em.value[e]; s1 += em.value[X + 1 + e]; }
        ok = ok && strstr(em.name[0], "model.layers.0.feed_forward.expert_load.0") && fabs(s0 - k) < 1e-12 && fabs(s1 - k) < 1e-12;
        CHECK(ok, "%s: model_report gives %s ... , loads sum to k = %d per layer", label, em.n ? em.name[0] : "-", k);
        // active parameters: each expert tensor counts k/X
        double tot = model_param_count(&m), act = model_active_count(&m), expert = 0;
        for (int i = 0; i < m.npinfo; i++) if (strstr(m.pinfo[i].name, ".experts.")) expert += (double)m.pinfo[i].numel;
        CHECK(fabs((tot - act) - expert * (1 - (double)k / X)) < 1e-6, "%s: active params %.0f of %.0f (experts at k/X)", label, act, tot);
    }

    unsigned base[2][N];
    for (int l = 0; l < nm; l++) route_masks(moe[l], base[l]);
    double margin = fmin(route_margin(moe[0]), route_margin(moe[1]));
    // 4-point stencil as in dtest_model.c, with the step kept well under the closest top-k call
    // (a step moves a probability by about p(1-p)|x|h, |x| ~ 1 after the norm); the sets are
    // compared at every point below
    const double h = fmin(3e-4, 0.25 * margin);
    double worst_all = 0;
    int changed = 0, evals = 0;
    for (int i = 0; i < m.npinfo; i++) {
        ParamInfo *pi = &m.pinfo[i];
        double worst = 0, floor_ = fmax(1e-3 * max_abs(g + pi->offset, pi->numel), 1e-8);
        int ns = pi->numel < (size_t)samples ? (int)pi->numel : samples;
        for (int s = 0; s < ns; s++) {
            size_t kk = pi->numel <= (size_t)samples ? (size_t)s : rng_below(&rng, pi->numel);
            real *p = m.params + pi->offset + kk, save = *p;
            double fv[4], off[4] = {2 * h, h, -h, -2 * h};
            for (int q = 0; q < 4; q++) {
                *p = save + off[q];
                fv[q] = model_forward(&m, tok, tgt, B, T) + m.aux_loss;
                for (int l = 0; l < nm; l++) changed += masks_differ(moe[l], base[l]) != 0;
                evals++;
            }
            *p = save;
            // differences first: they are exact for close values, so a gradient of exactly 0 (an
            // expert no token chose) gives exactly 0 here too
            double num = (8 * (fv[1] - fv[2]) - (fv[0] - fv[3])) / (12 * h);
            double e = fd_compare(g[pi->offset + kk], num, floor_);
            if (e > worst) worst = e;
        }
        if (worst > worst_all) worst_all = worst;
        if (worst >= 1e-5 && !corrupt) CHECK(0, "%s: d%s rel err %.2e", label, pi->name, worst);
    }
    if (!corrupt) {
        CHECK(changed == 0, "%s: top-k sets unchanged at all %d perturbed points (min margin %.2e, step %.1e)", label, evals, margin, h);
        CHECK(worst_all < 1e-5, "%s: %d tensors, worst rel err %.2e (tol 1e-5)", label, m.npinfo, worst_all);
    }
    free(g);
    model_free(&m);
    config_free(&c);
    return worst_all;
}

static void test_model(void) {
    test_group("moe model gradcheck");
    const char *y1 = "model: {d_model: 8, vocab_size: 13, pattern: \"*E*E\", attention: {heads: 2}, "
                     "moe: {experts: 4, top_k: 2, hidden: 6, aux_loss_coef: 0.5}}\n";
    worst_model = fmax(worst_model, check_model("*E*E Jamba top-2 coef 0.5", y1, 2, 5, 10));
    // Mixtral top-1: the weight is always 1, so the router learns from the aux term alone
    const char *y2 = "model: {d_model: 8, vocab_size: 13, pattern: \"*E*E\", attention: {heads: 2}, "
                     "moe: {experts: 4, top_k: 1, hidden: 6, renormalize: true, aux_loss_coef: 0.5}}\n";
    worst_model = fmax(worst_model, check_model("*E*E Mixtral top-1 coef 0.5", y2, 2, 5, 10));
    corrupt = "model.layers.1.feed_forward.router.weight";
    double w = check_model("self-test", y2, 2, 5, 10);
    corrupt = NULL;
    CHECK(w > 1e-3, "self-test: a 1%% error in d%s is caught (worst rel err %.2e)",
          "model.layers.1.feed_forward.router.weight", w);
}

// ----------------------------------------------------------------------------
// determinism

static void run_once(LayerRig *r, real *out, real *grads, real *dx) {
    memset(r->m.grads, 0, r->m.nparams * sizeof(real));
    rig_total(r);
    moe_block.backward(&r->L, r->dx, r->w, r->x, r->B, r->T);
    size_t n = (size_t)r->B * r->T * r->m.C;
    memcpy(out, r->out, n * sizeof(real));
    memcpy(grads, r->m.grads, r->m.nparams * sizeof(real));
    memcpy(dx, r->dx, n * sizeof(real));
}

static void test_determinism(void) {
    test_group("moe determinism");
    Config c;
    if (load(&c, "model: {d_model: 32, moe: {experts: 6, top_k: 2, hidden: 48}}") != 0) return;
    LayerRig r;
    int B = 4, T = 48;
    rig_setup(&r, &moe_block, &c, B, T, 21);
    size_t n = (size_t)B * T * 32, np = r.m.nparams;
    real *o[3], *g[3], *d[3];
    for (int i = 0; i < 3; i++) { o[i] = malloc(n * sizeof(real)); g[i] = malloc(np * sizeof(real)); d[i] = malloc(n * sizeof(real)); }
    int nt = ops_threads();
    run_once(&r, o[0], g[0], d[0]);
    run_once(&r, o[1], g[1], d[1]);
    CHECK(!memcmp(o[0], o[1], n * sizeof(real)) && !memcmp(g[0], g[1], np * sizeof(real)) && !memcmp(d[0], d[1], n * sizeof(real)),
          "two runs on %d threads: identical bits", nt);
    ops_init_threads(1);
    run_once(&r, o[2], g[2], d[2]);
    ops_init_threads(nt);
    double e = 0;
    for (size_t i = 0; i < n; i++) e = fmax(e, fabs(o[0][i] - o[2][i]) + fabs(d[0][i] - d[2][i]));
    for (size_t i = 0; i < np; i++) e = fmax(e, fabs(g[0][i] - g[2][i]));
    CHECK(e < 1e-12, "1 thread vs %d: max difference %.1e", nt, e);
    for (int i = 0; i < 3; i++) { free(o[i]); free(g[i]); free(d[i]); }
    rig_free(&r);
    config_free(&c);
}

int main(void) {
    ops_init_threads(omp_get_max_threads());   // honours OMP_NUM_THREADS
    test_keys();
    test_shapes();
    test_forward();
    test_aux_values();
    test_sparse();
    test_gradcheck_layer();
    test_model();
    test_determinism();
    test_group("moe summary");
    CHECK(worst_layer < 1e-6 && worst_total < 1e-6 && worst_model < 1e-5,
          "worst rel err: layer %.2e, layer + aux %.2e (tol 1e-6), two-layer model %.2e (tol 1e-5)",
          worst_layer, worst_total, worst_model);
    return test_summary();
}
