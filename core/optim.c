// optim.c: AdamW, gradient norm, schedules (see optim.h).
#include "optim.h"
#include <math.h>
#include <string.h>
#include <stdlib.h>

void adamw_init(AdamW *o, const Model *m, double beta1, double beta2, double eps, double weight_decay) {
    memset(o, 0, sizeof *o);
    o->n = m->nparams;
    o->m = alloc_touched(o->n * sizeof(real));
    o->v = alloc_touched(o->n * sizeof(real));
    o->decay_mask = alloc_touched(o->n * sizeof(real));
    for (int i = 0; i < m->npinfo; i++)
        if (m->pinfo[i].decay)
            for (size_t k = 0; k < m->pinfo[i].numel; k++) o->decay_mask[m->pinfo[i].offset + k] = 1;
    o->beta1 = beta1; o->beta2 = beta2; o->eps = eps; o->weight_decay = weight_decay;
}

void adamw_free(AdamW *o) { free(o->m); free(o->v); free(o->decay_mask); memset(o, 0, sizeof *o); }

void adamw_step(AdamW *o, real *params, const real *grads, double lr, double grad_scale) {
    o->t++;
    double bc1 = 1 - pow(o->beta1, (double)o->t), bc2 = 1 - pow(o->beta2, (double)o->t);
    real b1 = (real)o->beta1, b2 = (real)o->beta2, eps = (real)o->eps, gs = (real)grad_scale;
    real a = (real)(lr / bc1), ibc2 = (real)(1.0 / bc2), wd = (real)(lr * o->weight_decay);
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < o->n; i++) {
        real g = grads[i] * gs;
        real m = o->m[i] = b1 * o->m[i] + (1 - b1) * g;
        real v = o->v[i] = b2 * o->v[i] + (1 - b2) * g * g;
        // decoupled weight decay (Loshchilov & Hutter): shrink the weight, not the gradient
        params[i] -= a * m / (sqrt(v * ibc2) + eps) + wd * o->decay_mask[i] * params[i];
    }
}

double grad_norm(const real *grads, size_t n) {
    // Fixed chunks summed in order: the same value whatever the thread count. The partial sums
    // live on the stack (nothing is allocated inside a training step): chunks of 2^16, longer
    // beyond 2^28 parameters so that there are never more than MAXCH.
    enum { MAXCH = 4096 };
    size_t chunk = (size_t)1 << 16;
    if (n > chunk * MAXCH) chunk = (n + MAXCH - 1) / MAXCH;
    size_t nchunks = (n + chunk - 1) / chunk;
    double part[MAXCH];
    #pragma omp parallel for schedule(static)
    for (size_t c = 0; c < nchunks; c++) {
        size_t lo = c * chunk, hi = lo + chunk < n ? lo + chunk : n;
        double s = 0;
        for (size_t i = lo; i < hi; i++) s += (double)grads[i] * grads[i];
        part[c] = s;
    }
    double s = 0;
    for (size_t c = 0; c < nchunks; c++) s += part[c];
    return sqrt(s);
}

int schedule_kind(const char *name) {
    if (!strcmp(name, "constant")) return 0;
    if (!strcmp(name, "cosine")) return 1;
    if (!strcmp(name, "wsd")) return 2;
    return -1;
}

Schedule schedule_from_config(const Config *c, long total) {
    Schedule s = {.kind = schedule_kind(cfg_str(c, "train.schedule")), .lr = cfg_num(c, "train.lr"),
                  .warmup = cfg_int(c, "train.warmup_steps"), .total = total, .decay_frac = cfg_num(c, "train.decay_frac")};
    s.min_lr = s.lr * cfg_num(c, "train.min_lr_frac");
    return s;
}

double schedule_lr(const Schedule *s, long step) {
    if (s->warmup > 0 && step < s->warmup) return s->lr * (double)(step + 1) / (double)s->warmup;
    long rest = s->total - s->warmup;
    double frac = rest > 0 ? (double)(step - s->warmup) / (double)rest : 0;   // 0 .. <1
    switch (s->kind) {
    case 1:   // cosine from lr down to min_lr
        return s->min_lr + 0.5 * (s->lr - s->min_lr) * (1 + cos(M_PI * frac));
    case 2: { // warmup-stable-decay: flat, then linear decay over the last decay_frac of the steps
        long decay_steps = (long)llround(s->decay_frac * (double)s->total);
        long decay_start = s->total - decay_steps;
        if (step < decay_start || decay_steps <= 0) return s->lr;
        double f = (double)(step - decay_start + 1) / (double)decay_steps;
        return s->lr + (s->min_lr - s->lr) * f;
    }
    default: return s->lr;
    }
}

void nonfinite_where(const Model *m, char *out, size_t cap) {
    int first_w = -1, first_g = -1, ng = 0;
    for (int i = 0; i < m->npinfo; i++) {
        const real *w = m->params + m->pinfo[i].offset, *g = m->grads + m->pinfo[i].offset;
        int bad_w = 0, bad_g = 0;
        for (size_t k = 0; k < m->pinfo[i].numel && !(bad_w && bad_g); k++) {
            bad_w |= !isfinite(w[k]);
            bad_g |= !isfinite(g[k]);
        }
        if (bad_w && first_w < 0) first_w = i;
        if (bad_g && first_g < 0) first_g = i;
        ng += bad_g;
    }
    int n = 0;
    if (first_w >= 0) n = snprintf(out, cap, "non-finite weight in %s; ", m->pinfo[first_w].name);
    if (n < 0 || (size_t)n >= cap) n = 0;
    if (first_g >= 0) snprintf(out + n, cap - n, "first non-finite gradient: %s (%d of %d tensors)", m->pinfo[first_g].name, ng, m->npinfo);
    else snprintf(out + n, cap - n, "every gradient is finite");
}
