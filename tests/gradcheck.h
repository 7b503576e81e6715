// gradcheck.h: finite-difference checks of one layer in isolation, in double precision
// (compile the engine with -DHLAB_DOUBLE). The scalar checked is L = Σ w ⊙ Block(x) for a fixed
// random w, so every output element contributes. Each parameter tensor and the input gradient
// are compared against central differences (step 1e-5) on up to `samples` random entries; the
// largest error |a-n| / max(|a|, |n|, floor) must stay under tol, where floor = 1e-3 x the
// tensor's largest analytic gradient: rounding noise scales with the biggest entries, so tiny
// entries are judged against the tensor's scale (and never below 1e-8: a tensor whose gradient
// is exactly zero, like q at T = 1, must not fail on rounding). A wrong gradient gives errors of order
// 1e-2..1, a right one about 1e-9 in double precision.
#pragma once
#include "model.h"
#include "test.h"
#include <stdlib.h>
#include <string.h>
#include <math.h>

typedef struct {
    Model m;
    Layer L;
    real *x, *w, *out, *dx;
    int B, T;
} LayerRig;

// Declares one layer of type t on config c (d_model from model.d_model), allocates everything,
// initialises parameters with init() and then perturbs them with noise so that no gradient is
// trivially zero (e.g. zero-initialised projections).
static void rig_setup(LayerRig *r, const BlockType *t, const Config *c, int B, int T, uint64_t seed) {
    memset(r, 0, sizeof *r);
    Model *m = &r->m;
    m->cfg = c; m->C = (int)cfg_int(c, "model.d_model"); m->V = (int)cfg_int(c, "model.vocab_size");
    m->eps = (real)cfg_num(c, "model.norm_eps"); m->nsub = 1; m->n_layers = 1; m->aux_weight = 1;
    m->layers = &r->L; m->B = B; m->T = T;
    Layer *L = &r->L;
    L->type = t; L->index = 0; L->layer_id = 0; L->model = m; L->cfg = c; L->norm = -1;
    snprintf(L->prefix, sizeof L->prefix, "model.layers.0.%s", t->module);
    t->declare(L);
    t->declare_acts(L, B, T);
    m->params = calloc(m->nparams, sizeof(real));
    m->grads = calloc(m->nparams, sizeof(real));
    size_t na = 0;
    for (int i = 0; i < L->na; i++) { L->act_off[i] = na; na += L->act_n[i]; }
    m->acts = calloc(na + 1, sizeof(real));
    m->nscratch = L->scratch_n; m->scratch = calloc(L->scratch_n + 1, sizeof(real));
    for (int i = 0; i < L->na; i++) L->a[i] = m->acts + L->act_off[i];
    for (int i = 0; i < L->np; i++) {
        L->p[i] = m->params + m->pinfo[L->param[i]].offset;
        L->g[i] = m->grads + m->pinfo[L->param[i]].offset;
    }
    size_t n = (size_t)B * T * m->C;
    m->e0 = calloc(n, sizeof(real)); m->de0 = calloc(n, sizeof(real));
    Rng rng; rng_seed(&rng, seed);
    t->init(L, &rng);
    for (size_t i = 0; i < m->nparams; i++) m->params[i] += (real)(0.05 * rng_normal(&rng));
    r->B = B; r->T = T;
    r->x = malloc(n * sizeof(real)); r->w = malloc(n * sizeof(real));
    r->out = malloc(n * sizeof(real)); r->dx = malloc(n * sizeof(real));
    for (size_t i = 0; i < n; i++) { r->x[i] = (real)rng_normal(&rng); r->w[i] = (real)rng_normal(&rng); m->e0[i] = (real)rng_normal(&rng); }
}

static double rig_loss(LayerRig *r) {
    size_t n = (size_t)r->B * r->T * r->m.C;
    r->L.type->forward(&r->L, r->out, r->x, r->B, r->T);
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)r->w[i] * r->out[i];
    return s;
}

static void rig_free(LayerRig *r) {
    free(r->m.params); free(r->m.grads); free(r->m.acts); free(r->m.scratch);
    free(r->m.e0); free(r->m.de0); free(r->m.pinfo); free(r->L.priv);
    free(r->x); free(r->w); free(r->out); free(r->dx);
}

static double max_abs(const real *g, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) if (fabs((double)g[i]) > m) m = fabs((double)g[i]);
    return m;
}

static inline double fd_compare(double a, double n, double floor_) {
    // a NaN or infinite gradient is the worst error, not one that `e > worst` silently skips
    if (!isfinite(a) || !isfinite(n)) return INFINITY;
    double d = fabs(a - n), s = fmax(fmax(fabs(a), fabs(n)), floor_);
    return d / s;
}

// Checks every parameter tensor and the input gradient of one layer; returns the worst error.
static inline double gradcheck_layer(const char *label, const BlockType *t, const Config *c, int B, int T,
                              int samples, double tol) {
    LayerRig r;
    rig_setup(&r, t, c, B, T, 1234);
    Model *m = &r.m;
    memset(m->grads, 0, m->nparams * sizeof(real));
    rig_loss(&r);
    t->backward(&r.L, r.dx, r.w, r.x, B, T);   // dL/dout = w
    real *g = malloc(m->nparams * sizeof(real));
    memcpy(g, m->grads, m->nparams * sizeof(real));
    const double h = 1e-5;
    Rng rng; rng_seed(&rng, 99);
    double worst_all = 0;
    for (int i = 0; i < r.L.np; i++) {
        ParamInfo *pi = &m->pinfo[r.L.param[i]];
        double worst = 0, floor_ = fmax(1e-3 * max_abs(g + pi->offset, pi->numel), 1e-8);
        int ns = pi->numel < (size_t)samples ? (int)pi->numel : samples;
        for (int s = 0; s < ns; s++) {
            size_t k = pi->numel <= (size_t)samples ? (size_t)s : rng_below(&rng, pi->numel);
            real *p = m->params + pi->offset + k, save = *p;
            *p = save + h; double lp = rig_loss(&r);
            *p = save - h; double lm = rig_loss(&r);
            *p = save;
            double num = (lp - lm) / (2 * h), ana = g[pi->offset + k];
            double e = fd_compare(ana, num, floor_);
            if (e > worst) worst = e;
        }
        CHECK(worst < tol, "%s: d%s rel err %.2e (tol %.0e)", label, pi->name, worst, tol);
        if (worst > worst_all) worst_all = worst;
    }
    // input gradient
    size_t n = (size_t)B * T * m->C;
    double worst = 0, floor_ = fmax(1e-3 * max_abs(r.dx, n), 1e-8);
    for (int s = 0; s < samples; s++) {
        size_t k = rng_below(&rng, n);
        real save = r.x[k];
        r.x[k] = save + h; double lp = rig_loss(&r);
        r.x[k] = save - h; double lm = rig_loss(&r);
        r.x[k] = save;
        double e = fd_compare(r.dx[k], (lp - lm) / (2 * h), floor_);
        if (e > worst) worst = e;
    }
    CHECK(worst < tol, "%s: d(input) rel err %.2e (tol %.0e)", label, worst, tol);
    if (worst > worst_all) worst_all = worst;
    free(g);
    rig_free(&r);
    return worst_all;
}
