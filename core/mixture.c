// mixture.c: task mixtures and training phases (see mixture.h).
#include "mixture.h"
#include "common.h"
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Keys a phase may change: the data, and the learning-rate schedule. Anything else (the model,
// the batch size, the optimizer's betas) would make one run several incompatible ones.
static const char *const phase_train_keys[] = {"train.lr", "train.schedule", "train.warmup_steps",
                                               "train.min_lr_frac", "train.decay_frac", NULL};

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
    return s;
}

// "mqar:3, niah:1" (or data.task alone when data.mix is empty) into task names and weights.
static int parse_mix(const Config *c, const Task **task, double *w, int *n, ConfError *err) {
    const char *mix = cfg_str(c, "data.mix");
    *n = 0;
    if (!mix[0]) {
        task[0] = task_find(cfg_str(c, "data.task"));
        if (!task[0]) return cfg_error(c, "data.task", err, "unknown task \"%s\"; see `hlab keys` for the data.* sections", cfg_str(c, "data.task"));
        w[0] = 1; *n = 1;
        return 0;
    }
    if (cfg_is_changed(c, "data.task"))
        return cfg_error(c, "data.mix", err, "give data.task (one task) or data.mix (a mixture), not both");
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", mix);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *item = trim(tok), *colon = strchr(item, ':'), *end;
        if (!colon) return cfg_error(c, "data.mix", err, "entry \"%s\" needs a weight: \"task:weight\", e.g. \"mqar:3,niah:1\"", item);
        *colon = 0;
        char *name = trim(item), *wtext = trim(colon + 1);
        const Task *t = task_find(name);
        if (!t) return cfg_error(c, "data.mix", err, "unknown task \"%s\"; see `hlab keys` for the data.* sections", name);
        double x = strtod(wtext, &end);
        if (end == wtext || *end || !isfinite(x) || x <= 0)
            return cfg_error(c, "data.mix", err, "weight of %s is \"%s\"; expected a positive number", name, wtext);
        for (int i = 0; i < *n; i++)
            if (task[i] == t) return cfg_error(c, "data.mix", err, "task %s is listed twice", name);
        if (*n == MIX_MAX) return cfg_error(c, "data.mix", err, "at most %d tasks", MIX_MAX);
        task[*n] = t; w[*n] = x; (*n)++;
    }
    if (*n == 0) return cfg_error(c, "data.mix", err, "no tasks; expected \"task:weight,...\", e.g. \"mqar:3,niah:1\"");
    return 0;
}

void mixture_close(Mixture *m) {
    for (int i = 0; i < m->n; i++) {
        if (m->owned[i]) m->task[i]->close(m->st[i]);
        free(m->perm[i]);
    }
    memset(m, 0, sizeof *m);
}

// Opens the mixture config c describes. `reuse` (may be NULL) holds tasks already opened with
// the same settings, whose states are shared instead of opened twice.
static int mixture_open(Mixture *m, const Config *c, const Mixture *reuse, int need_train, ConfError *err) {
    memset(m, 0, sizeof *m);
    double w[MIX_MAX], total = 0;
    if (parse_mix(c, m->task, w, &m->n, err)) return -1;
    for (int i = 0; i < m->n; i++) {
        const Task *t = m->task[i];
        for (int j = 0; reuse && j < reuse->n && !m->st[i]; j++)
            if (reuse->task[j] == t) m->st[i] = reuse->st[j];
        if (!m->st[i]) {
            if ((t->validate && t->validate(c, err)) || !(m->st[i] = t->open(c, err))) {
                m->n = i;
                mixture_close(m);
                return -1;
            }
            m->owned[i] = 1;
        }
        m->size[i] = t->size(m->st[i], SPLIT_TRAIN);
        if (need_train && m->size[i] < 1) {
            m->n = i + 1;
            mixture_close(m);
            return cfg_error(c, "data.task", err, "task %s has no training examples", t->name);
        }
        total += w[i];
    }
    double acc = 0;
    for (int i = 0; i < m->n; i++) { acc += w[i] / total; m->cum[i] = acc; }
    m->cum[m->n - 1] = 1;
    return 0;
}

// Permutation of a task's training examples for one epoch (Zoology never shuffles; we do,
// reproducibly).
void mixture_extent(const Mixture *m, int *max_len, int *max_labels) {
    for (int i = 0; i < m->n; i++) {
        int L = m->task[i]->max_len(m->st[i]), lab = m->task[i]->max_labels(m->st[i]);
        if (L > *max_len) *max_len = L;
        if (lab > *max_labels) *max_labels = lab;
    }
}

int mixture_open_eval(Mixture *m, const Config *c, ConfError *err) { return mixture_open(m, c, NULL, 0, err); }

static void epoch_order(long *perm, long n, uint64_t seed, long epoch) {
    for (long i = 0; i < n; i++) perm[i] = i;
    Rng r;
    rng_seed(&r, seed * 0x2545F4914F6CDD1Dull + (uint64_t)epoch + 1);
    for (long i = n - 1; i > 0; i--) {
        long j = (long)rng_below(&r, (uint64_t)i + 1), t = perm[i];
        perm[i] = perm[j]; perm[j] = t;
    }
}

static void mixture_start(Mixture *m, uint64_t seed) {
    for (int i = 0; i < m->n; i++) {
        // the first task of the first phase keeps the data seed itself, so a single-task run
        // without phases sees exactly the order it always did
        m->seed[i] = seed ^ ((uint64_t)i * 0xD1B54A32D192ED03ull);
        m->perm[i] = alloc_touched((size_t)(m->size[i] + 1) * sizeof(long));
        epoch_order(m->perm[i], m->size[i], m->seed[i], 0);
    }
}

static int contains(const Mixture *m, const Task *t) {
    for (int i = 0; i < m->n; i++) if (m->task[i] == t) return 1;
    return 0;
}

// Splits "key=value; key=value" into sets[] (pointers into buf) and checks each key may change.
static int phase_sets(const Config *c, const char *key, char *buf, size_t cap, char **sets, int *n, int *own_lr,
                      ConfError *err) {
    snprintf(buf, cap, "%s", cfg_str(c, key));
    *n = 0; *own_lr = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
        char *item = trim(tok);
        if (!*item) continue;
        char *eq = strchr(item, '=');
        if (!eq) return cfg_error(c, key, err, "entry \"%s\" is not key=value; expected e.g. \"data.mix=mqar:1; train.lr=3e-4\"", item);
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(eq - item), item);
        char *k = trim(name);
        int ok = !strncmp(k, "data.", 5), lr = 0;
        for (int i = 0; phase_train_keys[i]; i++) if (!strcmp(k, phase_train_keys[i])) ok = lr = 1;
        if (!ok)
            return cfg_error(c, key, err, "%s cannot change between phases; a phase may set data.* keys and "
                             "train.lr, train.schedule, train.warmup_steps, train.min_lr_frac, train.decay_frac", k);
        if (*n == 64) return cfg_error(c, key, err, "at most 64 overrides per phase");
        *own_lr |= lr;
        sets[(*n)++] = item;
    }
    return 0;
}

int plan_open(DataPlan *p, const Config *cfg, int B, uint64_t data_seed, ConfError *err) {
    memset(p, 0, sizeof *p);
    p->data_seed = data_seed;
    // which phases are used, and do their fractions add up
    double frac[PHASE_MAX], sum = 0;
    int used = 0;
    for (int k = 0; k < PHASE_MAX; k++) {
        char fk[32], sk[32];
        snprintf(fk, sizeof fk, "phase%d.frac", k + 1);
        snprintf(sk, sizeof sk, "phase%d.set", k + 1);
        frac[k] = cfg_num(cfg, fk);
        if (frac[k] > 0 && used < k)
            return cfg_error(cfg, fk, err, "phase%d is used but phase%d is not: number the phases from 1 without gaps", k + 1, used + 1);
        if (frac[k] == 0 && cfg_str(cfg, sk)[0])
            return cfg_error(cfg, sk, err, "phase%d has overrides but phase%d.frac is 0: give it a fraction of the steps", k + 1, k + 1);
        if (frac[k] > 0) { used = k + 1; sum += frac[k]; }
    }
    if (used && fabs(sum - 1) > 1e-9)
        return cfg_error(cfg, "phase1.frac", err, "the phase fractions sum to %g; they must sum to 1", sum);

    // evaluation tasks: the base config's mixture, plus every task a phase adds (below)
    if (mixture_open(&p->eval, cfg, NULL, 1, err)) return -1;
    long steps = cfg_int(cfg, "train.steps");
    if (steps == 0) {
        double n = 0;
        for (int i = 0; i < p->eval.n; i++) n += (double)p->eval.size[i];
        steps = (long)ceil(cfg_num(cfg, "train.epochs") * n / B);
    }
    if (steps < 1) steps = 1;
    p->steps = steps;
    if (steps < used)
        return plan_close(p), cfg_error(cfg, "train.steps", err, "%ld steps cannot hold %d phases", steps, used);

    p->nphases = used ? used : 1;
    long first = 0;
    for (int k = 0; k < p->nphases; k++) {
        Phase *ph = &p->phase[k];
        ph->first = first;
        ph->steps = k == p->nphases - 1 ? steps - first : (long)llround((used ? frac[k] : 1) * (double)steps);
        char sk[32], buf[4096], *sets[64];
        snprintf(sk, sizeof sk, "phase%d.set", k + 1);
        if (ph->steps < 1 || first + ph->steps > steps) {
            p->nphases = k;
            plan_close(p);
            snprintf(sk, sizeof sk, "phase%d.frac", k + 1);
            return cfg_error(cfg, sk, err, "phase%d gets no steps of %ld: raise its fraction or train.steps", k + 1, steps);
        }
        first += ph->steps;
        int nsets = 0;
        if (used && phase_sets(cfg, sk, buf, sizeof buf, sets, &nsets, &ph->own_schedule, err)) {
            p->nphases = k;
            plan_close(p);
            return -1;
        }
        ConfError inner;
        if (nsets) {
            if (config_derive(&ph->cfg, cfg, sets, nsets, &inner)) {
                p->nphases = k;
                plan_close(p);
                return cfg_error(cfg, sk, err, "%s", inner.msg);
            }
            ph->derived = 1;
        } else {
            ph->cfg = *cfg;   // aliases the base: nothing to free
        }
        // a phase with no data overrides shares the evaluation tasks' states (same settings)
        int same_data = 1;
        for (int i = 0; i < nsets; i++) if (!strncmp(sets[i], "data.", 5)) same_data = 0;
        if (mixture_open(&ph->mix, &ph->cfg, same_data ? &p->eval : NULL, 1, &inner)) {
            if (ph->derived) config_free(&ph->cfg);
            p->nphases = k;
            plan_close(p);
            if (!ph->derived) { *err = inner; return -1; }
            return cfg_error(cfg, sk, err, "%s", inner.msg);
        }
        ph->sched = schedule_from_config(&ph->cfg, ph->steps);
        mixture_start(&ph->mix, data_seed ^ ((uint64_t)k * 0x9E3779B97F4A7C15ull));
        // a task only a phase trains on is still evaluated, with the base settings
        for (int i = 0; i < ph->mix.n; i++) {
            const Task *t = ph->mix.task[i];
            if (contains(&p->eval, t)) continue;
            if (p->eval.n == MIX_MAX) {
                p->nphases = k + 1;
                plan_close(p);
                return cfg_error(cfg, sk, err, "more than %d tasks over all phases", MIX_MAX);
            }
            int j = p->eval.n;
            if ((t->validate && t->validate(cfg, err)) || !(p->eval.st[j] = t->open(cfg, err))) {
                p->nphases = k + 1;
                plan_close(p);
                return -1;
            }
            p->eval.task[j] = t; p->eval.owned[j] = 1; p->eval.n++;
        }
    }
    // the longest example and the most labels any of them can produce size the model's buffers
    mixture_extent(&p->eval, &p->max_len, &p->max_labels);
    for (int k = 0; k < p->nphases; k++) mixture_extent(&p->phase[k].mix, &p->max_len, &p->max_labels);
    return 0;
}

void plan_close(DataPlan *p) {
    for (int k = 0; k < p->nphases; k++) {
        mixture_close(&p->phase[k].mix);
        if (p->phase[k].derived) config_free(&p->phase[k].cfg);
    }
    mixture_close(&p->eval);
    p->nphases = 0;
}

const Phase *plan_phase(const DataPlan *p, long step) {
    for (int k = p->nphases - 1; k > 0; k--)
        if (step >= p->phase[k].first) return &p->phase[k];
    return &p->phase[0];
}

void plan_batch(DataPlan *p, long step, int B, const Task **task, void **st, long *idx) {
    Mixture *m = (Mixture *)&plan_phase(p, step)->mix;
    Rng r;
    rng_seed(&r, p->data_seed * 0xA24BAED4963EE407ull + (uint64_t)step);
    for (int b = 0; b < B; b++) {
        int i = 0;
        if (m->n > 1) {   // a single task draws nothing, so its order is exactly the epoch order
            double u = rng_uniform(&r);
            while (i < m->n - 1 && u >= m->cum[i]) i++;
        }
        if (m->cursor[i] == m->size[i]) { m->cursor[i] = 0; epoch_order(m->perm[i], m->size[i], m->seed[i], ++m->epoch[i]); }
        task[b] = m->task[i];
        st[b] = m->st[i];
        idx[b] = m->perm[i][m->cursor[i]++];
    }
}

double plan_lr(const DataPlan *p, const Schedule *global, long step) {
    const Phase *ph = plan_phase(p, step);
    return ph->own_schedule ? schedule_lr(&ph->sched, step - ph->first) : schedule_lr(global, step);
}
