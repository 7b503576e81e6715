// experiment.c: reading experiment files and expanding them into runs (see experiment.h).
#include "experiment.h"
#include "common.h"
#include "keys.h"
#include "model.h"
#include "train.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

typedef struct {
    Experiment *e;
    yaml_document_t *doc;
    ConfError *err;
} Reader;

__attribute__((format(printf, 3, 4)))
static int fail_at(Reader *r, const yaml_node_t *n, const char *fmt, ...) {
    char msg[1500];
    va_list ap; va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n) snprintf(r->err->msg, sizeof r->err->msg, "%.300s:%d:%d: %s", r->e->path, (int)n->start_mark.line + 1,
                    (int)n->start_mark.column + 1, msg);
    else snprintf(r->err->msg, sizeof r->err->msg, "%.300s: %s", r->e->path, msg);
    return -1;
}

static const char *scalar(const yaml_node_t *n) { return (const char *)n->data.scalar.value; }
static yaml_node_t *node(Reader *r, int id) { return yaml_document_get_node(r->doc, id); }

// Flattens a mapping into dotted keys. Leaves must be scalars (want_lists 0) or lists of scalars
// (want_lists 1: axes). Appends to *ov / *ax.
static int flatten(Reader *r, const yaml_node_t *map, const char *prefix, const char *section, int want_lists,
                   Override **ov, int *nov, Axis **ax, int *nax) {
    if (map->type != YAML_MAPPING_NODE)
        return fail_at(r, map, "%s: expected a mapping of config keys to %s", section, want_lists ? "lists of values" : "values");
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(r, p->key), *v = node(r, p->value);
        if (k->type != YAML_SCALAR_NODE) return fail_at(r, k, "%s: a key must be a plain name", section);
        char path[512];
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", scalar(k));
        if (v->type == YAML_MAPPING_NODE) {
            if (flatten(r, v, path, section, want_lists, ov, nov, ax, nax)) return -1;
        } else if (!want_lists) {
            if (v->type != YAML_SCALAR_NODE)
                return fail_at(r, k, "%s: %s: expected one value; lists belong in grid: or zip:", section, path);
            *ov = xrealloc(*ov, (*nov + 1) * sizeof(Override));
            (*ov)[(*nov)++] = (Override){xstrdup(path), xstrdup(scalar(v)), (int)k->start_mark.line + 1, (int)k->start_mark.column + 1};
        } else {
            if (v->type != YAML_SEQUENCE_NODE || v->data.sequence.items.top == v->data.sequence.items.start)
                return fail_at(r, k, "%s: %s: expected a non-empty list of values, e.g. [16, 32, 64]", section, path);
            Axis a = {xstrdup(path), NULL, 0, (int)k->start_mark.line + 1, (int)k->start_mark.column + 1};
            for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
                yaml_node_t *x = node(r, *it);
                if (x->type != YAML_SCALAR_NODE) { free(a.key); return fail_at(r, x, "%s: %s: each value must be a plain value", section, path); }
                a.values = xrealloc(a.values, (a.nvalues + 1) * sizeof(char *));
                a.values[a.nvalues++] = xstrdup(scalar(x));
            }
            *ax = xrealloc(*ax, (*nax + 1) * sizeof(Axis));
            (*ax)[(*nax)++] = a;
        }
    }
    return 0;
}

static int read_list(Reader *r, const yaml_node_t *v, const char *what, char ***out, int *n) {
    if (v->type != YAML_SEQUENCE_NODE || v->data.sequence.items.top == v->data.sequence.items.start)
        return fail_at(r, v, "%s: expected a non-empty list, e.g. [1, 2, 3]", what);
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        yaml_node_t *x = node(r, *it);
        if (x->type != YAML_SCALAR_NODE) return fail_at(r, x, "%s: each entry must be a plain value", what);
        *out = xrealloc(*out, (*n + 1) * sizeof(char *));
        (*out)[(*n)++] = xstrdup(scalar(x));
    }
    return 0;
}

static int valid_name(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || strchr("_-:.+", *s))) return 0;
    return 1;
}

// claims: a list of {claim, check, task?, metric?}; the checks are parsed once the variants are known.
static int read_claims(Reader *r, const yaml_node_t *v) {
    Experiment *e = r->e;
    if (v->type != YAML_SEQUENCE_NODE)
        return fail_at(r, v, "claims: expected a list of {claim: TEXT, check: \"A > B; C ~ D\"}");
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        yaml_node_t *c = node(r, *it);
        if (c->type != YAML_MAPPING_NODE) return fail_at(r, c, "claims: each claim is a mapping {claim: TEXT, check: \"A > B\"}");
        e->claims = xrealloc(e->claims, (e->nclaims + 1) * sizeof(Claim));
        Claim *cl = &e->claims[e->nclaims++];
        *cl = (Claim){.line = (int)c->start_mark.line + 1, .col = (int)c->start_mark.column + 1};
        for (yaml_node_pair_t *q = c->data.mapping.pairs.start; q < c->data.mapping.pairs.top; q++) {
            yaml_node_t *k = node(r, q->key), *x = node(r, q->value);
            const char *key = k->type == YAML_SCALAR_NODE ? scalar(k) : "";
            char **slot = !strcmp(key, "claim") ? &cl->text : !strcmp(key, "check") ? &cl->check : !strcmp(key, "task") ? &cl->task
                        : !strcmp(key, "metric") ? &cl->metric : !strcmp(key, "at") ? &cl->at : NULL;
            if (!slot) return fail_at(r, k, "claims: unknown key \"%s\"; a claim has: claim check task metric at", key);
            if (*slot) return fail_at(r, k, "claims: %s is given twice", key);
            if (x->type != YAML_SCALAR_NODE || !*scalar(x)) return fail_at(r, x, "claims: %s: expected a non-empty text", key);
            *slot = xstrdup(scalar(x));
            if (slot == &cl->check) { cl->line = (int)x->start_mark.line + 1; cl->col = (int)x->start_mark.column + 1; }
        }
        if (!cl->text || !cl->check) return fail_at(r, c, "claims: each claim needs claim: (the paper's words) and check: (e.g. \"hybrid > attention\")");
    }
    return 0;
}

static int variant_index(const Experiment *e, const char *name) {
    for (int i = 0; i < e->nvar; i++) if (!strcmp(e->var[i].name, name)) return i;
    return -1;
}

// "A > B; C ~ D; E >= F": A better than B, C tied with D, E better than or tied with F (variant names).
static int parse_check(Reader *r, Claim *cl) {
    Experiment *e = r->e;
    char *text = xstrdup(cl->check), *save = NULL;
    int rc = 0;
    for (char *term = strtok_r(text, ";", &save); term && !rc; term = strtok_r(NULL, ";", &save)) {
        char a[128], b[128], ops[3] = "", extra;
        int ok = sscanf(term, " %127[^ <>~=] %2[<>~=] %127[^ ;] %c", a, ops, b, &extra) == 3;
        char op = !strcmp(ops, ">") ? '>' : !strcmp(ops, "<") ? '<' : !strcmp(ops, "~") ? '~' : !strcmp(ops, ">=") ? 'g' : 0;
        if (!ok || !op) {
            snprintf(r->err->msg, sizeof r->err->msg, "%.300s:%d:%d: claims: check: cannot read \"%.80s\"; write \"A > B\" (A better than B), "
                     "\"A ~ B\" (tied) or \"A >= B\" (better or tied), several separated by ';'", e->path, cl->line, cl->col, term);
            rc = -1; break;
        }
        int ia = variant_index(e, a), ib = variant_index(e, b);
        if (ia < 0 || ib < 0 || ia == ib) {
            char names[600] = "";
            for (int i = 0; i < e->nvar; i++) snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", e->var[i].name);
            snprintf(r->err->msg, sizeof r->err->msg, "%.300s:%d:%d: claims: check: %s%s%s is not a variant (or compares a variant with itself); "
                     "variants: %s", e->path, cl->line, cl->col, ia < 0 ? a : "", ia < 0 ? "" : b, "", names);
            rc = -1; break;
        }
        if (op == '<') { int t = ia; ia = ib; ib = t; op = '>'; }
        cl->cmp = xrealloc(cl->cmp, (cl->ncmp + 1) * sizeof(Comparison));
        cl->cmp[cl->ncmp++] = (Comparison){ia, ib, op};
    }
    free(text);
    return rc;
}

static int read_top(Reader *r, const yaml_node_t *root) {
    Experiment *e = r->e;
    static const char *const known = "name base set variants grid zip seeds lr baseline description paper claims";
    if (root->type != YAML_MAPPING_NODE) return fail_at(r, root, "an experiment file is a mapping (name:, base:, variants: ...)");
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(r, p->key), *v = node(r, p->value);
        const char *key = k->type == YAML_SCALAR_NODE ? scalar(k) : "";
        char padded[80];
        snprintf(padded, sizeof padded, " %s ", key);
        char known_pad[128];
        snprintf(known_pad, sizeof known_pad, " %s ", known);
        if (!*key || !strstr(known_pad, padded)) return fail_at(r, k, "unknown key \"%s\"; an experiment has: %s", key, known);
        for (yaml_node_pair_t *q = root->data.mapping.pairs.start; q < p; q++)
            if (!strcmp(scalar(node(r, q->key)), key)) return fail_at(r, k, "%s is given twice", key);
        int is_scalar = v->type == YAML_SCALAR_NODE;
        if (!strcmp(key, "name") || !strcmp(key, "base") || !strcmp(key, "baseline") || !strcmp(key, "description") ||
            !strcmp(key, "paper")) {
            if (!is_scalar || !*scalar(v)) return fail_at(r, k, "%s: expected a non-empty text", key);
            if (!strcmp(key, "name")) {
                if (!valid_name(scalar(v))) return fail_at(r, v, "name: use letters, digits and _-:.+ only");
                e->name = xstrdup(scalar(v));
            } else if (!strcmp(key, "baseline")) e->baseline = xstrdup(scalar(v));
            else if (!strcmp(key, "description")) e->description = xstrdup(scalar(v));
            else if (!strcmp(key, "paper")) e->paper = xstrdup(scalar(v));
            else if (!strcmp(key, "base")) {
                // relative to the experiment file's directory
                const char *slash = strrchr(e->path, '/');
                char full[4096];
                if (scalar(v)[0] == '/' || !slash) snprintf(full, sizeof full, "%s", scalar(v));
                else snprintf(full, sizeof full, "%.*s/%s", (int)(slash - e->path), e->path, scalar(v));
                e->base = xstrdup(full);
                FILE *f = fopen(full, "r");
                if (!f) return fail_at(r, v, "base: cannot read %s (paths are relative to the experiment file)", full);
                fclose(f);
            }
        } else if (!strcmp(key, "set")) {
            if (flatten(r, v, "", "set", 0, &e->set, &e->nset, NULL, NULL)) return -1;
        } else if (!strcmp(key, "variants")) {
            if (v->type != YAML_MAPPING_NODE) return fail_at(r, v, "variants: expected a mapping of names to overrides");
            for (yaml_node_pair_t *q = v->data.mapping.pairs.start; q < v->data.mapping.pairs.top; q++) {
                yaml_node_t *vk = node(r, q->key), *vv = node(r, q->value);
                if (vk->type != YAML_SCALAR_NODE || !valid_name(scalar(vk)))
                    return fail_at(r, vk, "variants: a variant name uses letters, digits and _-:.+ only");
                for (int i = 0; i < e->nvar; i++)
                    if (!strcmp(e->var[i].name, scalar(vk))) return fail_at(r, vk, "variants: %s is given twice", scalar(vk));
                e->var = xrealloc(e->var, (e->nvar + 1) * sizeof(Variant));
                Variant *va = &e->var[e->nvar++];
                *va = (Variant){xstrdup(scalar(vk)), NULL, 0, (int)vk->start_mark.line + 1, (int)vk->start_mark.column + 1};
                int empty = vv->type == YAML_SCALAR_NODE && !*scalar(vv);   // "hybrid:" with no overrides
                char section[300];
                snprintf(section, sizeof section, "variants.%s", va->name);
                if (!empty && flatten(r, vv, "", section, 0, &va->ov, &va->nov, NULL, NULL)) return -1;
            }
        } else if (!strcmp(key, "grid") || !strcmp(key, "zip")) {
            int is_grid = !strcmp(key, "grid");
            if (flatten(r, v, "", key, 1, NULL, NULL, is_grid ? &e->grid : &e->zip, is_grid ? &e->ngrid : &e->nzip)) return -1;
            for (int i = 1; !is_grid && i < e->nzip; i++)
                if (e->zip[i].nvalues != e->zip[0].nvalues)
                    return fail_at(r, k, "zip: %s has %d values but %s has %d; zipped axes advance together, so give them equal lengths",
                                   e->zip[i].key, e->zip[i].nvalues, e->zip[0].key, e->zip[0].nvalues);
        } else if (!strcmp(key, "seeds")) {
            if (read_list(r, v, "seeds", &e->seeds, &e->nseeds)) return -1;
        } else if (!strcmp(key, "lr")) {
            if (read_list(r, v, "lr", &e->lrs, &e->nlr)) return -1;
        } else if (!strcmp(key, "claims")) {
            if (read_claims(r, v)) return -1;
        }
    }
    if (!e->base) return fail_at(r, root, "base: missing; name the config file every run starts from");
    if (e->nvar == 0) {   // one implicit variant: the base itself
        e->var = xcalloc(1, sizeof(Variant));
        e->var[0].name = xstrdup("base");
        e->nvar = 1;
    }
    if (e->baseline) {
        int found = 0;
        for (int i = 0; i < e->nvar; i++) found |= !strcmp(e->var[i].name, e->baseline);
        if (!found) return fail_at(r, root, "baseline: \"%s\" is not one of the variants", e->baseline);
    } else e->baseline = xstrdup(e->var[0].name);
    for (int i = 0; i < e->nclaims; i++)   // variants may be declared after the claims
        if (parse_check(r, &e->claims[i])) return -1;
    if (!e->name) {   // the file name without directory and .yaml
        const char *b = strrchr(e->path, '/');
        b = b ? b + 1 : e->path;
        size_t n = strlen(b);
        if (n > 5 && !strcmp(b + n - 5, ".yaml")) n -= 5;
        e->name = xstrdup(b);
        e->name[n] = 0;
    }
    return 0;
}

int experiment_load(Experiment *e, const char *path, ConfError *err) {
    memset(e, 0, sizeof *e);
    e->path = xstrdup(path);
    FILE *f = fopen(path, "rb");
    if (!f) { snprintf(err->msg, sizeof err->msg, "%s: cannot read the experiment file", path); return -1; }
    // libyaml takes time quadratic in the nesting depth of [ ] and { } (see config.c): a file
    // with more opening brackets than any experiment needs is refused before it is parsed
    int ch, nopen = 0;
    while ((ch = getc(f)) != EOF) nopen += ch == '[' || ch == '{';
    rewind(f);
    if (nopen > 2000) {
        snprintf(err->msg, sizeof err->msg, "%s: more than 2000 '[' and '{' in one file; experiments nest a few levels at most", path);
        fclose(f);
        experiment_free(e);
        return -1;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    int rc = -1;
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(err->msg, sizeof err->msg, "%s:%d:%d: YAML syntax: %s", path, (int)parser.problem_mark.line + 1,
                 (int)parser.problem_mark.column + 1, parser.problem ? parser.problem : "cannot be parsed");
    } else {
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        Reader r = {e, &doc, err};
        if (!root) snprintf(err->msg, sizeof err->msg, "%s: the experiment file is empty", path);
        else rc = read_top(&r, root);
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    fclose(f);
    if (rc) experiment_free(e);
    return rc;
}

static void free_ov(Override *o, int n) {
    for (int i = 0; i < n; i++) { free(o[i].key); free(o[i].value); }
    free(o);
}
static void free_axes(Axis *a, int n) {
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < a[i].nvalues; j++) free(a[i].values[j]);
        free(a[i].values); free(a[i].key);
    }
    free(a);
}
static void free_strs(char **s, int n) {
    for (int i = 0; i < n; i++) free(s[i]);
    free(s);
}

void experiment_free(Experiment *e) {
    free(e->path); free(e->name); free(e->base); free(e->baseline);
    free_ov(e->set, e->nset);
    for (int i = 0; i < e->nvar; i++) { free(e->var[i].name); free_ov(e->var[i].ov, e->var[i].nov); }
    free(e->var);
    free_axes(e->grid, e->ngrid);
    free_axes(e->zip, e->nzip);
    free_strs(e->seeds, e->nseeds);
    free_strs(e->lrs, e->nlr);
    free(e->description); free(e->paper);
    for (int i = 0; i < e->nclaims; i++) {
        Claim *c = &e->claims[i];
        free(c->text); free(c->check); free(c->task); free(c->metric); free(c->at); free(c->cmp);
    }
    free(e->claims);
    memset(e, 0, sizeof *e);
}

typedef struct { char **sets; int *line, *col; int n; } SetList;

static void add_set(SetList *l, const char *key, const char *value, int line, int col) {
    l->sets = xrealloc(l->sets, (l->n + 1) * sizeof(char *));
    l->line = xrealloc(l->line, (l->n + 1) * sizeof(int));
    l->col = xrealloc(l->col, (l->n + 1) * sizeof(int));
    size_t n = strlen(key) + strlen(value) + 2;
    l->sets[l->n] = xmalloc(n);
    snprintf(l->sets[l->n], n, "%s=%s", key, value);
    l->line[l->n] = line; l->col[l->n] = col;
    l->n++;
}

static void label_add(char *label, size_t cap, const char *key, const char *value) {
    size_t k = strlen(label);
    snprintf(label + k, cap - k, "%s%s=%s", k ? " " : "", key, value);
}

// A config error of one run, located at the override that caused it: config_load reports an
// override as "--set KEY=VALUE: ..."; the last override of that key in the run is the culprit.
static void locate(const Experiment *e, const PlannedRun *r, const ConfError *inner, ConfError *err) {
    const char *m = inner->msg;
    if (!strncmp(m, "--set ", 6)) {
        for (int i = r->nsets - 1; i >= 0; i--) {
            size_t n = strlen(r->sets[i]);
            if (!strncmp(m + 6, r->sets[i], n) && m[6 + n] == ':') {
                snprintf(err->msg, sizeof err->msg, "%.300s:%d:%d: variant %s: %s", e->path, r->line[i], r->col[i],
                         e->var[r->variant].name, m + 6 + n + 2);
                return;
            }
        }
    }
    snprintf(err->msg, sizeof err->msg, "%.300s: variant %.100s (%.200s): %.1200s", e->path, e->var[r->variant].name,
             r->label[0] ? r->label : "no axes", m);
}

int experiment_expand(const Experiment *e, PlannedRun **runs, ConfError *err) {
    long ngridpts = 1;
    for (int i = 0; i < e->ngrid; i++) ngridpts *= e->grid[i].nvalues;
    int nzip = e->nzip ? e->zip[0].nvalues : 1, nlr = e->nlr ? e->nlr : 1, nseed = e->nseeds ? e->nseeds : 1;
    long total = (long)e->nvar * ngridpts * nzip * nlr * nseed;
    if (total > 100000) {
        snprintf(err->msg, sizeof err->msg, "%s: the experiment expands to %ld runs; at most 100000", e->path, total);
        return -1;
    }
    PlannedRun *out = xcalloc(total, sizeof(PlannedRun));
    int n = 0;
    for (int v = 0; v < e->nvar; v++)
        for (long g = 0; g < ngridpts; g++)
            for (int z = 0; z < nzip; z++)
                for (int l = 0; l < nlr; l++)
                    for (int sd = 0; sd < nseed; sd++) {
                        PlannedRun *r = &out[n];
                        SetList sl = {0};
                        r->variant = v;
                        for (int i = 0; i < e->nset; i++) add_set(&sl, e->set[i].key, e->set[i].value, e->set[i].line, e->set[i].col);
                        const Variant *va = &e->var[v];
                        for (int i = 0; i < va->nov; i++) add_set(&sl, va->ov[i].key, va->ov[i].value, va->ov[i].line, va->ov[i].col);
                        long rest = g;   // mixed radix, the last axis fastest
                        int digit[64] = {0};
                        for (int i = e->ngrid - 1; i >= 0 && i < 64; i--) { digit[i] = (int)(rest % e->grid[i].nvalues); rest /= e->grid[i].nvalues; }
                        for (int i = 0; i < e->ngrid; i++) {
                            add_set(&sl, e->grid[i].key, e->grid[i].values[digit[i]], e->grid[i].line, e->grid[i].col);
                            label_add(r->label, sizeof r->label, e->grid[i].key, e->grid[i].values[digit[i]]);
                        }
                        for (int i = 0; i < e->nzip; i++) {
                            add_set(&sl, e->zip[i].key, e->zip[i].values[z], e->zip[i].line, e->zip[i].col);
                            label_add(r->label, sizeof r->label, e->zip[i].key, e->zip[i].values[z]);
                        }
                        snprintf(r->point, sizeof r->point, "%s", r->label);
                        r->lr_index = l;
                        if (e->nlr) { add_set(&sl, "train.lr", e->lrs[l], 0, 0); label_add(r->label, sizeof r->label, "lr", e->lrs[l]); }
                        if (e->nseeds) { add_set(&sl, "seed", e->seeds[sd], 0, 0); label_add(r->label, sizeof r->label, "seed", e->seeds[sd]); }
                        r->sets = sl.sets; r->line = sl.line; r->col = sl.col; r->nsets = sl.n;
                        n++;
                        ConfError inner;
                        Model m;
                        if (config_load(&r->cfg, e->base, r->sets, r->nsets, all_key_tables(), &inner) != 0) {
                            locate(e, r, &inner, err);
                            experiment_free_runs(out, n);
                            return -1;
                        }
                        // the model must build too (pattern, shapes): found now, not hours into the sweep
                        if (model_build(&m, &r->cfg, &inner) != 0) {
                            locate(e, r, &inner, err);
                            experiment_free_runs(out, n);
                            return -1;
                        }
                        model_free(&m);
                        char *yaml = config_canonical_yaml(&r->cfg);
                        run_identity(yaml, cfg_int(&r->cfg, "seed"), "", r->identity);
                        free(yaml);
                    }
    *runs = out;
    return n;
}

void experiment_free_runs(PlannedRun *runs, int n) {
    for (int i = 0; i < n; i++) {
        free_strs(runs[i].sets, runs[i].nsets);
        free(runs[i].line); free(runs[i].col);
        if (runs[i].cfg.v) config_free(&runs[i].cfg);
    }
    free(runs);
}

int experiment_open(Experiment *e, const char *path, PlannedRun **runs) {
    ConfError err;
    if (experiment_load(e, path, &err) != 0) { fprintf(stderr, "hlab: %s\n", err.msg); return -1; }
    int n = experiment_expand(e, runs, &err);
    if (n < 0) { fprintf(stderr, "hlab: %s\n", err.msg); experiment_free(e); }
    return n;
}
