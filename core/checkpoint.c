// checkpoint.c: see checkpoint.h.
#include "checkpoint.h"
#include "machine.h"
#include "safetensors.h"
#include <stdlib.h>
#include <string.h>

static int save_tensors(const Model *m, const real *base, const char *path, char *err, size_t errcap) {
    StTensor *t = xcalloc(m->npinfo, sizeof(StTensor));
    for (int i = 0; i < m->npinfo; i++) {
        const ParamInfo *pi = &m->pinfo[i];
        snprintf(t[i].name, sizeof t[i].name, "%s", pi->name);
        strcpy(t[i].dtype, REAL_DTYPE);
        t[i].ndim = pi->ndim;
        for (int d = 0; d < pi->ndim; d++) t[i].shape[d] = pi->shape[d];
        t[i].data = base + pi->offset;
        t[i].nbytes = pi->numel * sizeof(real);
    }
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

int checkpoint_load(Model *m, const char *path, char *err, size_t errcap) {
    StFile f;
    if (st_read(&f, path, err, errcap) != 0) return -1;
    int rc = 0;
    for (int i = 0; i < m->npinfo && rc == 0; i++) {
        const ParamInfo *pi = &m->pinfo[i];
        const StTensor *t = st_find(&f, pi->name);
        if (!t) { snprintf(err, errcap, "%s: tensor %s is missing (checkpoint of another model?)", path, pi->name); rc = -1; break; }
        int same = t->ndim == pi->ndim;
        for (int d = 0; same && d < pi->ndim; d++) same = t->shape[d] == pi->shape[d];
        if (!same) { snprintf(err, errcap, "%s: tensor %s has another shape than the model's", path, pi->name); rc = -1; break; }
        real *dst = m->params + pi->offset;
        if (!strcmp(t->dtype, "F32") && t->nbytes == pi->numel * 4) {
            const unsigned char *src = t->data;   // may be unaligned in files from other writers
            for (size_t k = 0; k < pi->numel; k++) { float v; memcpy(&v, src + 4 * k, 4); dst[k] = (real)v; }
        } else if (!strcmp(t->dtype, "F64") && t->nbytes == pi->numel * 8) {
            const unsigned char *src = t->data;
            for (size_t k = 0; k < pi->numel; k++) { double v; memcpy(&v, src + 8 * k, 8); dst[k] = (real)v; }
        } else {
            snprintf(err, errcap, "%s: tensor %s has dtype %s; hlab reads F32 and F64", path, pi->name, t->dtype);
            rc = -1;
        }
    }
    // a tensor the model does not know means the checkpoint belongs to another architecture
    for (int i = 0; rc == 0 && i < f.n; i++)
        if (model_find_param(m, f.t[i].name) < 0) {
            snprintf(err, errcap, "%s: tensor %s is not part of this model", path, f.t[i].name);
            rc = -1;
        }
    st_free(&f);
    return rc;
}
