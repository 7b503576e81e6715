// block.c: how a layer declares its parameters, activations and scratch (see block.h).
#include "model.h"
#include <omp.h>
#include <stdarg.h>
#include <string.h>

static int new_pinfo(Model *m, const char *name, int decay, int ndim, const long *dims, int owner) {
    if (m->npinfo == m->cap_pinfo) {
        m->cap_pinfo = m->cap_pinfo ? 2 * m->cap_pinfo : 256;
        m->pinfo = xrealloc(m->pinfo, m->cap_pinfo * sizeof(ParamInfo));
    }
    ParamInfo *pi = &m->pinfo[m->npinfo];
    memset(pi, 0, sizeof *pi);
    if (strlen(name) >= sizeof pi->name) die("tensor name too long: %s", name);
    strcpy(pi->name, name);
    pi->ndim = ndim; pi->numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] <= 0) die("tensor %s: dimension %d is %ld", name, i, dims[i]);
        pi->shape[i] = dims[i]; pi->numel *= (size_t)dims[i];
    }
    pi->offset = m->nparams; pi->decay = decay; pi->active = 1.0; pi->owner = owner;
    m->nparams += pi->numel;
    return m->npinfo++;
}

static int add_local(Layer *L, int pidx) {
    if (L->np == LAYER_MAX_PARAMS) die("%s: more than %d parameters", L->prefix, LAYER_MAX_PARAMS);
    L->param[L->np] = pidx;
    return L->np++;
}

int layer_param(Layer *L, const char *name, int decay, int ndim, long d0, long d1, long d2, long d3) {
    char full[192];
    snprintf(full, sizeof full, "%s.%s", L->prefix, name);
    long dims[4] = {d0, d1, d2, d3};
    if (model_find_param(L->model, full) >= 0) die("tensor %s declared twice", full);
    return add_local(L, new_pinfo(L->model, full, decay, ndim, dims, L->index));
}

int layer_param_shared(Layer *L, const char *fullname, int decay, int ndim, long d0, long d1, long d2, long d3) {
    long dims[4] = {d0, d1, d2, d3};
    int found = model_find_param(L->model, fullname);
    if (found < 0) return add_local(L, new_pinfo(L->model, fullname, decay, ndim, dims, L->index));
    ParamInfo *pi = &L->model->pinfo[found];
    if (pi->ndim != ndim) die("shared tensor %s redeclared with another rank", fullname);
    for (int i = 0; i < ndim; i++)
        if (pi->shape[i] != dims[i]) die("shared tensor %s redeclared with another shape", fullname);
    return add_local(L, found);
}

void layer_param_active(Layer *L, int i, double fraction) { L->model->pinfo[L->param[i]].active = fraction; }
size_t layer_param_numel(const Layer *L, int i) { return L->model->pinfo[L->param[i]].numel; }

int layer_act(Layer *L, size_t n) {
    if (L->na == LAYER_MAX_ACTS) die("%s: more than %d activations", L->prefix, LAYER_MAX_ACTS);
    L->act_n[L->na] = n;
    return L->na++;
}
void layer_scratch(Layer *L, size_t n) { if (n > L->scratch_n) L->scratch_n = n; }
real *layer_scratch_ptr(Layer *L) { return L->model->scratch; }
int layer_threads(void) { return omp_get_max_threads(); }

void init_normal(real *w, size_t n, double std, Rng *rng) { for (size_t i = 0; i < n; i++) w[i] = (real)(std * rng_normal(rng)); }
void init_uniform(real *w, size_t n, double bound, Rng *rng) { for (size_t i = 0; i < n; i++) w[i] = (real)(bound * (2 * rng_uniform(rng) - 1)); }
void init_const(real *w, size_t n, double v) { for (size_t i = 0; i < n; i++) w[i] = (real)v; }

int model_find_param(const Model *m, const char *name) {
    for (int i = 0; i < m->npinfo; i++) if (strcmp(m->pinfo[i].name, name) == 0) return i;
    return -1;
}
