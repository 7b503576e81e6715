// checkpoint.c: see checkpoint.h.
#include "checkpoint.h"
#include "machine.h"
#include "safetensors.h"
#include <stdlib.h>
#include <string.h>

#define TRAINING_KIND "training-state"   // metadata hlab.kind of a training checkpoint
#define M_PREFIX "optimizer.exp_avg."    // AdamW first moment of each parameter (PyTorch's name)
#define V_PREFIX "optimizer.exp_avg_sq." // second moment

// The parameter tensors of m, named prefix + parameter name, with data from base.
static void param_tensors(const Model *m, const real *base, const char *prefix, StTensor *t) {
    for (int i = 0; i < m->npinfo; i++) {
        const ParamInfo *pi = &m->pinfo[i];
        snprintf(t[i].name, sizeof t[i].name, "%s%s", prefix, pi->name);
        strcpy(t[i].dtype, REAL_DTYPE);
        t[i].ndim = pi->ndim;
        for (int d = 0; d < pi->ndim; d++) t[i].shape[d] = pi->shape[d];
        t[i].data = base + pi->offset;
        t[i].nbytes = pi->numel * sizeof(real);
    }
}

static int save_tensors(const Model *m, const real *base, const char *path, char *err, size_t errcap) {
    StTensor *t = xcalloc(m->npinfo, sizeof(StTensor));
    param_tensors(m, base, "", t);
    char *yaml = config_canonical_yaml(m->cfg);
    MachineInfo mi;
    machine_info(&mi);
    const char *keys[] = {"format", "hlab.config", "hlab.pattern", "hlab.version"};
    const char *vals[] = {"pt", yaml, m->pattern, mi.code_version};
    int rc = st_write(path, t, m->npinfo, keys, vals, 4, err, errcap);
    free(yaml);
    free(t);
    return rc;
}

int checkpoint_save(const Model *m, const char *path, char *err, size_t errcap) {
    return save_tensors(m, m->params, path, err, errcap);
}
int checkpoint_save_grads(const Model *m, const char *path, char *err, size_t errcap) {
    return save_tensors(m, m->grads, path, err, errcap);
}

char *checkpoint_config(const char *path, char *err, size_t errcap) {
    StFile f;
    if (st_read(&f, path, err, errcap) != 0) return NULL;
    const char *cfg = st_meta(&f, "hlab.config");
    if (!cfg) {
        snprintf(err, errcap, "%s: not an hlab checkpoint (no hlab.config in the safetensors metadata)", path);
        st_free(&f);
        return NULL;
    }
    char *out = xstrdup(cfg);
    st_free(&f);
    return out;
}

static int is_training(const StFile *f) {
    const char *k = st_meta(f, "hlab.kind");
    return k && !strcmp(k, TRAINING_KIND);
}

int checkpoint_is_training(const char *path) {
    StFile f;
    char err[256];
    if (st_read(&f, path, err, sizeof err) != 0) return 0;
    int yes = is_training(&f);
    st_free(&f);
    return yes;
}

// Copies tensor prefix + name of every parameter of m into base (params, or an AdamW moment).
static int load_params(const Model *m, const StFile *f, const char *prefix, real *base, const char *path, char *err,
                       size_t errcap) {
    for (int i = 0; i < m->npinfo; i++) {
        const ParamInfo *pi = &m->pinfo[i];
        char name[ST_MAX_NAME + 1];
        snprintf(name, sizeof name, "%s%s", prefix, pi->name);
        const StTensor *t = st_find(f, name);
        if (!t) { snprintf(err, errcap, "%s: tensor %s is missing (checkpoint of another model?)", path, name); return -1; }
        int same = t->ndim == pi->ndim;
        for (int d = 0; same && d < pi->ndim; d++) same = t->shape[d] == pi->shape[d];
        if (!same) { snprintf(err, errcap, "%s: tensor %s has another shape than the model's", path, name); return -1; }
        real *dst = base + pi->offset;
        const unsigned char *src = t->data;   // may be unaligned in files from other writers
        if (!strcmp(t->dtype, "F32") && t->nbytes == pi->numel * 4) {
            for (size_t k = 0; k < pi->numel; k++) { float v; memcpy(&v, src + 4 * k, 4); dst[k] = (real)v; }
        } else if (!strcmp(t->dtype, "F64") && t->nbytes == pi->numel * 8) {
            for (size_t k = 0; k < pi->numel; k++) { double v; memcpy(&v, src + 8 * k, 8); dst[k] = (real)v; }
        } else {
            snprintf(err, errcap, "%s: tensor %s has dtype %s; hlab reads F32 and F64", path, name, t->dtype);
            return -1;
        }
    }
    return 0;
}

// The training state's own tensors (everything but parameters and moments) start with these.
static int is_state_name(const char *name) { return !strncmp(name, "optimizer.", 10) || !strncmp(name, "train.", 6); }

int checkpoint_load(Model *m, const char *path, char *err, size_t errcap) {
    StFile f;
    if (st_read(&f, path, err, errcap) != 0) return -1;
    int rc = load_params(m, &f, "", m->params, path, err, errcap), training = is_training(&f);
    // a tensor the model does not know means the checkpoint belongs to another architecture
    for (int i = 0; rc == 0 && i < f.n; i++)
        if (model_find_param(m, f.t[i].name) < 0 && !(training && is_state_name(f.t[i].name))) {
            snprintf(err, errcap, "%s: tensor %s is not part of this model", path, f.t[i].name);
            rc = -1;
        }
    st_free(&f);
    return rc;
}

// ---- training checkpoints ----

// The scalars and small vectors of the state, each an I64 or F64 tensor. Values are copied into
// `store` (the tensors point into it) so that saving never writes through the caller's types.
enum { MAX_STATE = 16 + 2 * PHASE_MAX };
typedef struct { StTensor t[MAX_STATE]; int n; int64_t ints[MAX_STATE][MIX_MAX]; double reals[MAX_STATE]; } StateTensors;

static void put_int(StateTensors *s, const char *name, const long *v, int n, int vector) {
    StTensor *t = &s->t[s->n];
    snprintf(t->name, sizeof t->name, "%s", name);
    strcpy(t->dtype, "I64");
    t->ndim = vector;
    t->shape[0] = n;
    for (int i = 0; i < n; i++) s->ints[s->n][i] = v[i];
    t->data = s->ints[s->n];
    t->nbytes = (size_t)n * 8;
    s->n++;
}
static void put_real(StateTensors *s, const char *name, double v) {
    StTensor *t = &s->t[s->n];
    snprintf(t->name, sizeof t->name, "%s", name);
    strcpy(t->dtype, "F64");
    t->ndim = 0;
    s->reals[s->n] = v;
    t->data = &s->reals[s->n];
    t->nbytes = 8;
    s->n++;
}

int checkpoint_save_training(const Model *m, const AdamW *opt, const TrainState *ts, const char *path, char *err,
                             size_t errcap) {
    int np = m->npinfo;
    StTensor *t = xcalloc(3 * np + MAX_STATE, sizeof(StTensor));
    param_tensors(m, m->params, "", t);
    param_tensors(m, opt->m, M_PREFIX, t + np);
    param_tensors(m, opt->v, V_PREFIX, t + 2 * np);
    StateTensors *s = xcalloc(1, sizeof *s);
    long adam_t = opt->t;
    put_int(s, "optimizer.step", &adam_t, 1, 0);
    put_int(s, "train.step", &ts->step, 1, 0);
    put_int(s, "train.skipped_steps", &ts->skipped, 1, 0);
    put_int(s, "train.finished", &ts->finished, 1, 0);
    put_int(s, "train.log.count", &ts->loss_n, 1, 0);
    put_real(s, "train.tokens", ts->tokens);
    put_real(s, "train.wall", ts->wall);
    put_real(s, "train.log.loss_sum", ts->loss_sum);
    put_real(s, "train.log.aux_sum", ts->aux_sum);
    for (int k = 0; k < ts->nphases; k++) {
        char name[64];
        snprintf(name, sizeof name, "train.data.phase%d.cursor", k + 1);
        put_int(s, name, ts->cursor[k], ts->ntasks[k], 1);
        snprintf(name, sizeof name, "train.data.phase%d.epoch", k + 1);
        put_int(s, name, ts->epoch[k], ts->ntasks[k], 1);
    }
    memcpy(t + 3 * np, s->t, s->n * sizeof(StTensor));

    char *yaml = config_canonical_yaml(m->cfg);
    MachineInfo mi;
    machine_info(&mi);
    char step[32], run[32], threads[16], ranks[16];
    snprintf(step, sizeof step, "%ld", ts->step);
    snprintf(run, sizeof run, "%lld", ts->run);
    snprintf(threads, sizeof threads, "%d", ts->threads);
    snprintf(ranks, sizeof ranks, "%d", ts->ranks > 1 ? ts->ranks : 1);
    const char *keys[] = {"format", "hlab.config", "hlab.pattern", "hlab.version", "hlab.kind", "hlab.identity",
                          "hlab.run", "hlab.store", "hlab.step", "hlab.threads", "hlab.ranks"};
    const char *vals[] = {"pt", yaml, m->pattern, mi.code_version, TRAINING_KIND, ts->identity, run, ts->store, step, threads, ranks};
    int rc = st_write(path, t, 3 * np + s->n, keys, vals, 11, err, errcap);
    free(yaml);
    free(s);
    free(t);
    return rc;
}

// Reads the I64 tensor `name` of n elements (a scalar when vector is 0) into v.
static int get_int(const StFile *f, const char *name, long *v, int n, int vector, const char *path, char *err, size_t errcap) {
    const StTensor *t = st_find(f, name);
    if (!t || strcmp(t->dtype, "I64") || t->ndim != vector || (vector && t->shape[0] != n)) {
        snprintf(err, errcap, "%s: training state tensor %s is missing or not I64 of %d element%s", path, name, n, n == 1 ? "" : "s");
        return -1;
    }
    for (int i = 0; i < n; i++) { int64_t x; memcpy(&x, (const char *)t->data + 8 * i, 8); v[i] = (long)x; }
    return 0;
}
static int get_real(const StFile *f, const char *name, double *v, const char *path, char *err, size_t errcap) {
    const StTensor *t = st_find(f, name);
    if (!t || strcmp(t->dtype, "F64") || t->ndim != 0) {
        snprintf(err, errcap, "%s: training state tensor %s is missing or not an F64 scalar", path, name);
        return -1;
    }
    memcpy(v, t->data, 8);
    return 0;
}

int checkpoint_load_training(Model *m, AdamW *opt, TrainState *ts, const char *path, char *err, size_t errcap) {
    StFile f;
    if (st_read(&f, path, err, errcap) != 0) return -1;
    memset(ts, 0, sizeof *ts);
    int rc = -1;
    if (!is_training(&f)) {
        snprintf(err, errcap, "%s: final weights only, not a training checkpoint (no optimizer state to continue from)", path);
        goto out;
    }
    if (load_params(m, &f, "", m->params, path, err, errcap) || load_params(m, &f, M_PREFIX, opt->m, path, err, errcap) ||
        load_params(m, &f, V_PREFIX, opt->v, path, err, errcap))
        goto out;
    long one;
    if (get_int(&f, "optimizer.step", &one, 1, 0, path, err, errcap)) goto out;
    opt->t = one;
    if (get_int(&f, "train.step", &ts->step, 1, 0, path, err, errcap) ||
        get_int(&f, "train.skipped_steps", &ts->skipped, 1, 0, path, err, errcap) ||
        get_int(&f, "train.finished", &ts->finished, 1, 0, path, err, errcap) ||
        get_int(&f, "train.log.count", &ts->loss_n, 1, 0, path, err, errcap) ||
        get_real(&f, "train.tokens", &ts->tokens, path, err, errcap) || get_real(&f, "train.wall", &ts->wall, path, err, errcap) ||
        get_real(&f, "train.log.loss_sum", &ts->loss_sum, path, err, errcap) ||
        get_real(&f, "train.log.aux_sum", &ts->aux_sum, path, err, errcap))
        goto out;
    for (int k = 0; k < PHASE_MAX; k++) {
        char name[64];
        snprintf(name, sizeof name, "train.data.phase%d.cursor", k + 1);
        const StTensor *t = st_find(&f, name);
        if (!t) break;
        int n = t->ndim == 1 && t->shape[0] >= 0 && t->shape[0] <= MIX_MAX ? (int)t->shape[0] : -1;
        if (n < 0) { snprintf(err, errcap, "%s: %s must have 0..%d elements", path, name, MIX_MAX); goto out; }
        if (get_int(&f, name, ts->cursor[k], n, 1, path, err, errcap)) goto out;
        snprintf(name, sizeof name, "train.data.phase%d.epoch", k + 1);
        if (get_int(&f, name, ts->epoch[k], n, 1, path, err, errcap)) goto out;
        ts->ntasks[k] = n;
        ts->nphases = k + 1;
    }
    // anything else is a tensor this model does not have: another architecture's checkpoint
    for (int i = 0; i < f.n; i++) {
        const char *n = f.t[i].name, *p = n;
        if (!strncmp(n, M_PREFIX, strlen(M_PREFIX))) p = n + strlen(M_PREFIX);
        else if (!strncmp(n, V_PREFIX, strlen(V_PREFIX))) p = n + strlen(V_PREFIX);
        int known = p != n ? model_find_param(m, p) >= 0 : is_state_name(n) || model_find_param(m, n) >= 0;
        if (!known) {
            snprintf(err, errcap, "%s: tensor %s is not part of this model", path, n);
            goto out;
        }
    }
    const char *id = st_meta(&f, "hlab.identity"), *run = st_meta(&f, "hlab.run"), *store = st_meta(&f, "hlab.store"),
               *thr = st_meta(&f, "hlab.threads"), *ver = st_meta(&f, "hlab.version"), *rk = st_meta(&f, "hlab.ranks");
    snprintf(ts->identity, sizeof ts->identity, "%s", id ? id : "");
    ts->run = run ? atoll(run) : 0;
    snprintf(ts->store, sizeof ts->store, "%s", store ? store : "");
    ts->threads = thr ? atoi(thr) : 0;
    ts->ranks = rk ? atoi(rk) : 1;   // checkpoints from before MPI: one process
    snprintf(ts->version, sizeof ts->version, "%s", ver ? ver : "");
    rc = 0;
out:
    st_free(&f);
    return rc;
}
