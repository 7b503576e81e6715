// config.c: see config.h. The YAML is loaded with libyaml's document API, walked as nested
// mappings whose keys are joined with '.', and every scalar leaf is checked against the KeySpec
// tables. Errors point at the key (file:line:col) and always say what would be valid.
#include "config.h"
#include "common.h"
#include <yaml.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define PATH_CAP 256          // longest key path
#define MAX_DEPTH 32          // deeper nesting is an error (also stops recursive aliases)
static const char SET_FILE[] = "--set";

// ----------------------------------------------------------------------------------------------
// small helpers

typedef struct { char *buf; size_t n, cap; } Buf;

static void bput(Buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2 + 256;
        b->buf = xrealloc(b->buf, b->cap);
    }
    memcpy(b->buf + b->n, s, n);
    b->n += n;
    b->buf[b->n] = 0;
}
static void bputs(Buf *b, const char *s) { bput(b, s, strlen(s)); }

// Appends to a fixed buffer without overflowing it (truncates silently).
static void cat(char *dst, size_t cap, const char *s) {
    size_t n = strlen(dst);
    if (n + 1 < cap) snprintf(dst + n, cap - n, "%s", s);
}

// Shortest %g text that parses back to exactly x, so canonical floats are short and exact.
static void shortest(double x, char *buf, size_t cap) {
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, cap, "%.*g", p, x);
        if (strtod(buf, NULL) == x) return;
    }
}

// A number for a message: integral values without an exponent when they are not huge.
static void fmt_num(double x, char *buf, size_t cap) {
    if (x == floor(x) && fabs(x) < 1e15) snprintf(buf, cap, "%.0f", x);
    else shortest(x, buf, cap);
}

// The value as the user wrote it, quoted and cut short, for "got ..." in messages.
static void quote_val(const char *s, char *buf, size_t cap) {
    size_t n = strlen(s);
    if (n > 60) snprintf(buf, cap, "\"%.57s...\"", s);
    else snprintf(buf, cap, "\"%s\"", s);
}

static int levenshtein(const char *a, size_t na, const char *b, size_t nb) {
    int *prev = xmalloc((nb + 1) * sizeof(int)), *cur = xmalloc((nb + 1) * sizeof(int));
    for (size_t j = 0; j <= nb; j++) prev[j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            int del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        int *t = prev; prev = cur; cur = t;
    }
    int d = prev[nb];
    free(prev); free(cur);
    return d;
}

static const char *last_component(const char *path) {
    const char *d = strrchr(path, '.');
    return d ? d + 1 : path;
}

// ----------------------------------------------------------------------------------------------
// errors

static int verr(ConfError *err, const char *where, const char *key, const char *fmt, va_list ap) {
    char msg[1301];
    vsnprintf(msg, sizeof msg, fmt, ap);
    // Precisions keep the total under sizeof err->msg, so nothing is cut silently.
    if (key && *key) snprintf(err->msg, sizeof err->msg, "%.500s: %.200s: %.1300s", where, key, msg);
    else snprintf(err->msg, sizeof err->msg, "%.500s: %.1300s", where, msg);
    return -1;
}

__attribute__((format(printf, 4, 5)))
static int errat(ConfError *err, const char *where, const char *key, const char *fmt, ...) {
    va_list ap; va_start(ap, fmt);
    verr(err, where, key, fmt, ap);
    va_end(ap);
    return -1;
}

// "FILE:LINE:COL", or "FILE" for a position-less error; a config with no file says so.
static void where_file(char *buf, size_t cap, const char *file, int line, int col) {
    const char *f = file && *file ? file : "(defaults)";
    if (line > 0) snprintf(buf, cap, "%.300s:%d:%d", f, line, col);
    else snprintf(buf, cap, "%.300s", f);
}

static int find(const Config *c, const char *path) {
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->v[i].spec->path, path) == 0) return i;
    return -1;
}

int cfg_error(const Config *c, const char *path, ConfError *err, const char *fmt, ...) {
    char where[700];
    int i = find(c, path);
    if (i >= 0 && c->v[i].file == SET_FILE)
        snprintf(where, sizeof where, "--set %.200s=%.300s", path, c->v[i].text ? c->v[i].text : "");
    else if (i >= 0)
        where_file(where, sizeof where, c->v[i].file ? c->v[i].file : c->path, c->v[i].line, c->v[i].col);
    else
        where_file(where, sizeof where, c->path, 0, 0);
    va_list ap; va_start(ap, fmt);
    verr(err, where, path, fmt, ap);
    va_end(ap);
    return -1;
}

// ----------------------------------------------------------------------------------------------
// values

// What a key accepts, for messages: "an integer from 1 to 64", "one of: mlp, none" ...
static void describe(const KeySpec *s, char *buf, size_t cap) {
    char lo[40], hi[40];
    buf[0] = 0;
    switch (s->type) {
    case KT_INT: cat(buf, cap, "an integer"); break;
    case KT_FLOAT: cat(buf, cap, "a number"); break;
    case KT_BOOL: cat(buf, cap, "true or false (or yes/no, on/off)"); return;
    case KT_STRING:
        if (!s->choices) { cat(buf, cap, "a string"); return; }
        cat(buf, cap, "one of: ");
        for (const char *p = s->choices; *p; p++) {
            char ch[2] = {*p == '|' ? 0 : *p, 0};
            cat(buf, cap, *p == '|' ? ", " : ch);
        }
        return;
    }
    if (s->min <= s->max) {
        fmt_num(s->min, lo, sizeof lo); fmt_num(s->max, hi, sizeof hi);
        char r[100]; snprintf(r, sizeof r, " from %s to %s", lo, hi);
        cat(buf, cap, r);
    }
    if (s->allow_auto) cat(buf, cap, ", or \"auto\"");
}

// Decimal number syntax: [+-] digits [. digits] [e [+-] digits]. strtod alone would also take
// hex, "inf", "nan" and leading spaces, none of which a config should contain.
static int is_decimal(const char *s) {
    const char *p = s;
    int digits = 0;
    if (*p == '+' || *p == '-') p++;
    while (isdigit((unsigned char)*p)) p++, digits++;
    if (*p == '.') { p++; while (isdigit((unsigned char)*p)) p++, digits++; }
    if (!digits) return 0;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!isdigit((unsigned char)*p)) return 0;
        while (isdigit((unsigned char)*p)) p++;
    }
    return *p == 0;
}

static int is_integer_syntax(const char *s) {
    const char *p = s + (*s == '+' || *s == '-');
    if (!*p) return 0;
    for (; *p; p++) if (!isdigit((unsigned char)*p)) return 0;
    return 1;
}

// Range message shared by ints and floats. Returns 0 if x is inside (or there is no range).
static int check_range(const KeySpec *s, double x, char *msg, size_t cap) {
    if (s->min > s->max || (x >= s->min && x <= s->max)) return 0;
    char v[40], lo[40], hi[40];
    fmt_num(x, v, sizeof v); fmt_num(s->min, lo, sizeof lo); fmt_num(s->max, hi, sizeof hi);
    snprintf(msg, cap, "%s is out of range; valid range: %s to %s", v, lo, hi);
    return -1;
}

// "got X; expected Y": the type error message of every key type.
static int type_error(const KeySpec *s, const char *what, const char *raw, char *msg, size_t cap) {
    char got[80], d[600];
    quote_val(raw, got, sizeof got);
    describe(s, d, sizeof d);
    snprintf(msg, cap, "expected %s, got %s (valid: %s)", what, got, d);
    return -1;
}

// Did-you-mean among the "a|b|c" choices of a string key (within 2 edits).
static void choice_hint(const char *choices, const char *raw, char *buf, size_t cap) {
    int best = 3;
    buf[0] = 0;
    for (const char *p = choices; *p;) {
        size_t n = strcspn(p, "|");
        int d = levenshtein(raw, strlen(raw), p, n);
        if (d < best) { best = d; snprintf(buf, cap, " (did you mean \"%.*s\"?)", (int)n, p); }
        p += n + (p[n] == '|');
    }
}

static int in_choices(const char *choices, const char *s) {
    size_t len = strlen(s);
    for (const char *p = choices; *p;) {
        size_t n = strcspn(p, "|");
        if (n == len && strncmp(p, s, n) == 0) return 1;
        p += n + (p[n] == '|');
    }
    return 0;
}

// Converts the scalar text `raw` to a typed, canonical value. Returns 0 and fills out->text
// (allocated), num and is_auto; or -1 with a message that says what would be valid.
static int convert(const KeySpec *s, const char *raw, ConfValue *out, char *msg, size_t cap) {
    char buf[64];
    out->is_auto = 0;
    out->num = 0;
    if ((s->type == KT_INT || s->type == KT_FLOAT) && s->allow_auto && strcmp(raw, "auto") == 0) {
        out->is_auto = 1; out->num = -1; out->text = xstrdup("auto");
        return 0;
    }
    switch (s->type) {
    case KT_INT: {
        const char *what = s->allow_auto ? "an integer or \"auto\"" : "an integer";
        long v;
        if (is_integer_syntax(raw)) {
            errno = 0;
            long long ll = strtoll(raw, NULL, 10);
            if (errno == ERANGE) return type_error(s, "an integer of at most 18 digits", raw, msg, cap);
            v = (long)ll;
        } else if (is_decimal(raw)) {   // 1e5 is fine when it is integral
            double d = strtod(raw, NULL);
            if (d != floor(d) || !isfinite(d)) return type_error(s, what, raw, msg, cap);
            if (fabs(d) > 9e18) return type_error(s, "an integer of at most 18 digits", raw, msg, cap);
            v = (long)d;
        } else {
            return type_error(s, what, raw, msg, cap);
        }
        if (check_range(s, (double)v, msg, cap)) return -1;
        snprintf(buf, sizeof buf, "%ld", v);
        out->num = (double)v; out->text = xstrdup(buf);
        return 0;
    }
    case KT_FLOAT: {
        if (!is_decimal(raw)) return type_error(s, s->allow_auto ? "a number or \"auto\"" : "a number", raw, msg, cap);
        double d = strtod(raw, NULL);
        if (!isfinite(d)) return type_error(s, "a finite number", raw, msg, cap);
        if (check_range(s, d, msg, cap)) return -1;
        shortest(d, buf, sizeof buf);
        out->num = d; out->text = xstrdup(buf);
        return 0;
    }
    case KT_BOOL: {
        static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
        for (int i = 0; i < 3; i++) {
            if (strcasecmp(raw, yes[i]) == 0) { out->num = 1; out->text = xstrdup("true"); return 0; }
            if (strcasecmp(raw, no[i]) == 0) { out->num = 0; out->text = xstrdup("false"); return 0; }
        }
        return type_error(s, "true or false", raw, msg, cap);
    }
    case KT_STRING:
        if (s->choices && !in_choices(s->choices, raw)) {
            char got[80], d[600], hint[80];
            quote_val(raw, got, sizeof got);
            describe(s, d, sizeof d);
            choice_hint(s->choices, raw, hint, sizeof hint);
            snprintf(msg, cap, "expected %s; got %s%s", d, got, hint);
            return -1;
        }
        out->text = xstrdup(raw);
        return 0;
    }
    snprintf(msg, cap, "key has an unknown type");
    return -1;
}

// ----------------------------------------------------------------------------------------------
// the key set: paths, sections and did-you-mean

// A section is a proper prefix of a declared path ending at a '.': "model", "model.shared".
static int is_section(const Config *c, const char *prefix) {
    size_t n = strlen(prefix);
    if (n == 0) return 1;
    for (int i = 0; i < c->n; i++) {
        const char *p = c->v[i].spec->path;
        if (strncmp(p, prefix, n) == 0 && p[n] == '.') return 1;
    }
    return 0;
}

// The names directly under `prefix` in table order ("d_model, vocab_size, shared.*"), to tell
// the user what exists at that level.
static void list_children(const Config *c, const char *prefix, char *buf, size_t cap) {
    size_t pl = strlen(prefix);
    buf[0] = 0;
    int count = 0;
    for (int i = 0; i < c->n; i++) {
        const char *p = c->v[i].spec->path;
        if (pl && !(strncmp(p, prefix, pl) == 0 && p[pl] == '.')) continue;
        const char *rest = p + pl + (pl > 0);
        size_t n = strcspn(rest, ".");
        int seen = 0;   // first appearance only
        for (int j = 0; j < i && !seen; j++) {
            const char *q = c->v[j].spec->path;
            if (strncmp(q, p, (size_t)(rest - p) + n) == 0 && (q[rest - p + n] == '.' || q[rest - p + n] == 0)) seen = 1;
        }
        if (seen) continue;
        if (strlen(buf) > cap - 80) { cat(buf, cap, ", ..."); return; }
        char item[PATH_CAP + 8];
        snprintf(item, sizeof item, "%s%.*s%s", count++ ? ", " : "", (int)n, rest, rest[n] == '.' ? ".*" : "");
        cat(buf, cap, item);
    }
}

// The hint for an unknown key path: the closest declared key or section (edit distance <= 3),
// else a unique prefix match, else the same last component in another section (`heads` at
// the top level -> model.attention.heads), else the list of what exists at that level.
static void unknown_hint(const Config *c, const char *path, char *out, size_t cap) {
    size_t plen = strlen(path);
    const char *best = NULL; size_t best_n = 0; int best_d = 1 << 30;
    const char *pre = NULL; size_t pre_n = 0; int pre_ok = 1;
    for (int i = 0; i < c->n; i++) {
        const char *p = c->v[i].spec->path;
        for (const char *d = p;; d++) {
            if (*d == '.' || *d == 0) {   // candidate: the section p[0..d) or the key itself
                size_t n = (size_t)(d - p);
                int dist = levenshtein(path, plen, p, n);
                if (dist < best_d) { best_d = dist; best = p; best_n = n; }
                if (n > plen && strncmp(p, path, plen) == 0) {
                    // several matches are one if they all extend the shortest ("model.sh" ->
                    // model.shared, model.shared.blocks ...)
                    if (!pre || n < pre_n) {
                        if (pre && !(strncmp(pre, p, n) == 0 && pre[n] == '.')) pre_ok = 0;
                        pre = p; pre_n = n;
                    } else if (!(strncmp(p, pre, pre_n) == 0 && (p[pre_n] == '.' || p[pre_n] == 0))) {
                        pre_ok = 0;
                    }
                }
            }
            if (!*d) break;
        }
    }
    // Distance 3 is only close for longer names: "warm" is not a typo of "lr".
    if (best && best_d <= 3 && 2 * best_d <= (int)strlen(last_component(path))) {
        snprintf(out, cap, "did you mean \"%.*s\"?", (int)best_n, best);
        return;
    }
    if (pre && pre_ok) {
        snprintf(out, cap, "did you mean \"%.*s\"?", (int)pre_n, pre);
        return;
    }
    // The same name in another section: a key put at the wrong level.
    const char *last = last_component(path);
    size_t ln = strlen(last);
    int limit = ln >= 5 ? 2 : ln >= 3 ? 1 : 0, cd = limit + 1, nties = 0;
    char ties[3][PATH_CAP];
    for (int i = 0; i < c->n; i++) {
        const char *lc = last_component(c->v[i].spec->path);
        int d = levenshtein(last, ln, lc, strlen(lc));
        if (d < cd) { cd = d; nties = 0; }
        if (d == cd && nties < 3) snprintf(ties[nties++], PATH_CAP, "%s", c->v[i].spec->path);
    }
    if (cd <= limit && nties > 0) {
        snprintf(out, cap, "did you mean \"%s\"", ties[0]);
        for (int k = 1; k < nties; k++) { cat(out, cap, " or \""); cat(out, cap, ties[k]); cat(out, cap, "\""); }
        cat(out, cap, "?");
        return;
    }
    // Nothing close: list the keys of the deepest section that exists.
    char sec[PATH_CAP];
    snprintf(sec, sizeof sec, "%s", path);
    for (;;) {
        char *d = strrchr(sec, '.');
        if (!d) { sec[0] = 0; break; }
        *d = 0;
        if (is_section(c, sec)) break;
    }
    char list[1000];
    list_children(c, sec, list, sizeof list);
    if (sec[0]) snprintf(out, cap, "valid keys in section \"%s\": %s (`hlab keys` lists every key)", sec, list);
    else snprintf(out, cap, "valid top-level keys: %s (`hlab keys` lists every key)", list);
    if (strcmp(path, "<<") == 0 || strncmp(last, "<<", 2) == 0) cat(out, cap, "; YAML merge keys (<<) are not supported");
}

// ----------------------------------------------------------------------------------------------
// building and loading

static void config_init(Config *c, const char *name, const KeySpec *const *tables) {
    int n = 0;
    for (int t = 0; tables && tables[t]; t++)
        for (const KeySpec *s = tables[t]; s->path; s++) n++;
    c->path = xstrdup(name ? name : "");
    c->n = n;
    c->v = xcalloc(n, sizeof(ConfValue));
    int k = 0;
    for (int t = 0; tables && tables[t]; t++)
        for (const KeySpec *s = tables[t]; s->path; s++) c->v[k++].spec = s;
    // Two tables declaring one path, or a path that is also a section, are table bugs: the
    // canonical YAML could not represent them. The check is quadratic in the number of keys
    // (most of a load's time), so it runs once per set of tables, not at every load.
    // (A list on the stack may reuse an address, so its first table and size are compared too.)
    static const KeySpec *const *checked;
    static const KeySpec *checked_first;
    static int checked_n = -1;
    if (tables && tables == checked && tables[0] == checked_first && n == checked_n) return;
    for (int i = 0; i < n; i++) {
        const char *a = c->v[i].spec->path;
        if (strlen(a) >= PATH_CAP) die("config: key path too long: %s", a);
        for (int j = i + 1; j < n; j++) {
            const char *b = c->v[j].spec->path;
            size_t la = strlen(a), lb = strlen(b);
            if (strcmp(a, b) == 0) die("config: key %s is declared twice in the key tables", a);
            if ((la < lb && strncmp(a, b, la) == 0 && b[la] == '.') || (lb < la && strncmp(a, b, lb) == 0 && a[lb] == '.'))
                die("config: %s and %s: a key cannot also be a section", a, b);
        }
    }
    checked = tables; checked_first = tables ? tables[0] : NULL; checked_n = n;
}

void config_free(Config *c) {
    for (int i = 0; i < c->n; i++) free(c->v[i].text);
    free(c->v);
    free(c->path);
    c->v = NULL; c->path = NULL; c->n = 0;
}

typedef struct {
    Config *c;
    yaml_document_t *doc;
    ConfError *err;
} Loader;

static int node_where(const Loader *L, const yaml_node_t *node, char *buf, size_t cap) {
    where_file(buf, cap, L->c->path, (int)node->start_mark.line + 1, (int)node->start_mark.column + 1);
    return 0;
}

static const char *node_kind(const yaml_node_t *n) {
    return n->type == YAML_MAPPING_NODE ? "a mapping" : n->type == YAML_SEQUENCE_NODE ? "a list" : "a value";
}

static int is_null_scalar(const yaml_node_t *n) {
    return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && n->data.scalar.length == 0;
}

static int unknown_key(const Loader *L, const char *where, const char *path, int section) {
    char hint[1400];
    unknown_hint(L->c, path, hint, sizeof hint);
    return errat(L->err, where, path, "unknown %s; %s", section ? "section" : "key", hint);
}

// A scalar leaf from the file: converted, checked and recorded with its position.
static int set_from_file(Loader *L, int idx, const yaml_node_t *key, const yaml_node_t *val, const char *where) {
    ConfValue *v = &L->c->v[idx];
    const KeySpec *s = v->spec;
    char msg[1200], d[600];
    if (v->is_set)   // e.g. once nested and once as a flat dotted key
        return errat(L->err, where, s->path, "given twice (first at line %d, column %d); give each key once", v->line, v->col);
    if (is_null_scalar(val)) {
        describe(s, d, sizeof d);
        return errat(L->err, where, s->path, "no value given; expected %s%s", d,
                     s->type == KT_STRING ? " (write \"\" for an empty string)" : "");
    }
    ConfValue tmp = {0};
    if (convert(s, (const char *)val->data.scalar.value, &tmp, msg, sizeof msg))
        return errat(L->err, where, s->path, "%s", msg);
    v->text = tmp.text; v->num = tmp.num; v->is_auto = tmp.is_auto;
    v->is_set = 1; v->file = L->c->path;
    v->line = (int)key->start_mark.line + 1; v->col = (int)key->start_mark.column + 1;
    return 0;
}

static int walk_mapping(Loader *L, const yaml_node_t *map, const char *prefix, int depth) {
    Config *c = L->c;
    char where[400], path[PATH_CAP + 64], d[1000];
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top; pr++) {
        yaml_node_t *key = yaml_document_get_node(L->doc, pr->key);
        yaml_node_t *val = yaml_document_get_node(L->doc, pr->value);
        node_where(L, key, where, sizeof where);
        if (key->type != YAML_SCALAR_NODE)
            return errat(L->err, where, prefix, "a key must be a plain name, not %s", node_kind(key));
        const char *k = (const char *)key->data.scalar.value;
        if (strlen(prefix) + strlen(k) + 2 > PATH_CAP)
            return errat(L->err, where, NULL, "key path too long: %.100s.%.100s", prefix, k);
        path[0] = 0;
        if (*prefix) { cat(path, sizeof path, prefix); cat(path, sizeof path, "."); }
        cat(path, sizeof path, k);
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < pr; q++) {
            yaml_node_t *k2 = yaml_document_get_node(L->doc, q->key);
            if (k2->type == YAML_SCALAR_NODE && strcmp((const char *)k2->data.scalar.value, k) == 0)
                return errat(L->err, where, path, "duplicate key (first at line %d, column %d); give each key once",
                             (int)k2->start_mark.line + 1, (int)k2->start_mark.column + 1);
        }
        int idx = find(c, path), sec = idx < 0 && is_section(c, path);
        if (idx < 0 && !sec) return unknown_key(L, where, path, val->type == YAML_MAPPING_NODE);
        if (val->type == YAML_SEQUENCE_NODE) {
            if (idx >= 0) describe(c->v[idx].spec, d, sizeof d);
            else list_children(c, path, d, sizeof d);
            return errat(L->err, where, path, "lists are not supported (yet); give %s%s",
                         idx >= 0 ? "a single value: " : "a mapping of its keys: ", d);
        }
        if (val->type == YAML_MAPPING_NODE) {
            if (idx >= 0) {
                describe(c->v[idx].spec, d, sizeof d);
                return errat(L->err, where, path, "expected %s, got a mapping (this key is a value, not a section)", d);
            }
            if (depth >= MAX_DEPTH) return errat(L->err, where, path, "nested too deeply (at most %d levels)", MAX_DEPTH);
            if (walk_mapping(L, val, path, depth + 1)) return -1;
            continue;
        }
        if (sec) {
            if (is_null_scalar(val)) continue;   // "model:" with every key commented out
            char got[80];
            quote_val((const char *)val->data.scalar.value, got, sizeof got);
            list_children(c, path, d, sizeof d);
            return errat(L->err, where, path, "is a section: expected a mapping of its keys (%s), got the value %s", d, got);
        }
        if (set_from_file(L, idx, key, val, where)) return -1;
    }
    return 0;
}

static int syntax_error(const yaml_parser_t *p, const char *file, ConfError *err) {
    char where[400], ctx[200] = "";
    const char *problem = p->problem ? p->problem : "cannot be parsed";
    if (p->error == YAML_READER_ERROR) {
        where_file(where, sizeof where, file, 0, 0);
        return errat(err, where, NULL, "YAML error at byte %zu: %s (the file must be UTF-8 text)", p->problem_offset, problem);
    }
    where_file(where, sizeof where, file, (int)p->problem_mark.line + 1, (int)p->problem_mark.column + 1);
    if (p->context)
        snprintf(ctx, sizeof ctx, " (%s at line %d, column %d)", p->context, (int)p->context_mark.line + 1, (int)p->context_mark.column + 1);
    const char *hint = strstr(problem, "cannot start any token")
        ? "indent with spaces, not tabs, and quote values that start with @ or `"
        : strstr(problem, "alias") || (p->context && strstr(p->context, "alias"))   // a plain *... is an alias
        ? "a value that starts with * is read as a YAML alias: quote it, e.g. pattern: \"*-M-\""
        : "write one \"key: value\" per line, indent nested keys with spaces, and quote values with special characters";
    return errat(err, where, NULL, "YAML syntax error: %s%s; %s", problem, ctx, hint);
}

// libyaml keeps a pending "simple key" for every open [ ] or { } and walks them all at every
// token, so text nested N levels deep takes time quadratic in N: 16000 levels take 3 s, a 600 KB
// file of brackets the better part of an hour. No config needs more than a few levels, so more
// than MAX_FLOW_OPEN opening brackets in one text (counted everywhere, quoted or not, which can
// only overcount) are refused before libyaml sees them.
#define MAX_FLOW_OPEN 2000
static int too_many_brackets(const Config *c, const char *yaml, ConfError *err) {
    int n = 0, line = 1, col = 1;
    for (const char *p = yaml; *p; p++, col++) {
        if (*p == '\n') { line++; col = 0; }
        if ((*p == '[' || *p == '{') && ++n > MAX_FLOW_OPEN) {
            char where[400];
            where_file(where, sizeof where, c->path, line, col);
            return errat(err, where, NULL, "more than %d '[' and '{' in one file; configs nest a few levels at most "
                         "(write nested keys as indented lines)", MAX_FLOW_OPEN);
        }
    }
    return 0;
}

// Parses the YAML text into c (whose keys are already declared). Exactly one document.
static int load_yaml(Config *c, const char *yaml, ConfError *err) {
    yaml_parser_t parser;
    yaml_document_t doc;
    char where[400];
    if (too_many_brackets(c, yaml, err)) return -1;
    if (!yaml_parser_initialize(&parser)) die("libyaml: cannot initialise the parser");
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, strlen(yaml));
    if (!yaml_parser_load(&parser, &doc)) {
        syntax_error(&parser, c->path, err);
        yaml_parser_delete(&parser);
        return -1;
    }
    int rc = 0;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root && !is_null_scalar(root)) {   // empty file: all defaults
        if (root->type != YAML_MAPPING_NODE) {
            Loader L = {c, &doc, err};
            node_where(&L, root, where, sizeof where);
            rc = errat(err, where, NULL, "the top level must be a mapping of keys (\"key: value\" lines), got %s", node_kind(root));
        } else {
            Loader L = {c, &doc, err};
            rc = walk_mapping(&L, root, "", 0);
        }
    }
    yaml_document_delete(&doc);
    if (rc == 0) {   // a second document would be silently ignored: refuse it
        if (!yaml_parser_load(&parser, &doc)) {
            rc = syntax_error(&parser, c->path, err);
        } else {
            yaml_node_t *r2 = yaml_document_get_root_node(&doc);
            if (r2) {
                where_file(where, sizeof where, c->path, (int)r2->start_mark.line + 1, (int)r2->start_mark.column + 1);
                rc = errat(err, where, NULL, "only one YAML document per config file (found a second after '---')");
            }
            yaml_document_delete(&doc);
        }
    }
    yaml_parser_delete(&parser);
    return rc;
}

// One "--set a.b.c=value" override. The value is taken literally (no YAML quoting rules).
static int apply_set(Config *c, const char *arg, ConfError *err) {
    char where[600], path[PATH_CAP], msg[1200], hint[1400];
    snprintf(where, sizeof where, "--set %.500s", arg);
    const char *eq = strchr(arg, '=');
    if (!eq) return errat(err, where, NULL, "expected KEY=VALUE, e.g. --set model.d_model=128");
    const char *k0 = arg, *k1 = eq;
    while (k0 < k1 && isspace((unsigned char)*k0)) k0++;
    while (k1 > k0 && isspace((unsigned char)k1[-1])) k1--;
    if (k1 == k0) return errat(err, where, NULL, "missing key before '='; expected KEY=VALUE, e.g. --set model.d_model=128");
    if ((size_t)(k1 - k0) >= sizeof path) return errat(err, where, NULL, "key too long");
    snprintf(path, sizeof path, "%.*s", (int)(k1 - k0), k0);
    int idx = find(c, path);
    if (idx < 0) {
        if (is_section(c, path)) {
            list_children(c, path, hint, sizeof hint);
            return errat(err, where, path, "is a section, not a key; set one of its keys: %s", hint);
        }
        unknown_hint(c, path, hint, sizeof hint);
        return errat(err, where, path, "unknown key; %s", hint);
    }
    ConfValue *v = &c->v[idx], tmp = {0};
    if (convert(v->spec, eq + 1, &tmp, msg, sizeof msg)) return errat(err, where, path, "%s", msg);
    free(v->text);
    v->text = tmp.text; v->num = tmp.num; v->is_auto = tmp.is_auto;
    v->is_set = 1; v->file = SET_FILE; v->line = v->col = 0;
    return 0;
}

static int fill_defaults(Config *c, ConfError *err) {
    char msg[1200], d[600], where[400];
    for (int i = 0; i < c->n; i++) {
        ConfValue *v = &c->v[i];
        if (v->is_set) continue;
        if (!v->spec->def) {
            describe(v->spec, d, sizeof d);
            where_file(where, sizeof where, c->path, 0, 0);
            return errat(err, where, v->spec->path, "required (no default); give %s", d);
        }
        ConfValue tmp = {0};
        if (convert(v->spec, v->spec->def, &tmp, msg, sizeof msg))
            die("config: the default of %s in its key table is invalid: %s", v->spec->path, msg);
        v->text = tmp.text; v->num = tmp.num; v->is_auto = tmp.is_auto;
        v->file = c->path; v->line = v->col = 0;
    }
    return 0;
}

int config_load_string(Config *c, const char *yaml, const char *name, char **sets, int nsets,
                       const KeySpec *const *tables, ConfError *err) {
    memset(c, 0, sizeof *c);
    err->msg[0] = 0;
    config_init(c, name, tables);
    int rc = yaml ? load_yaml(c, yaml, err) : 0;
    for (int i = 0; rc == 0 && i < nsets; i++) rc = apply_set(c, sets[i], err);
    if (rc == 0) rc = fill_defaults(c, err);
    if (rc) config_free(c);
    return rc;
}

int config_derive(Config *c, const Config *base, char **sets, int nsets, ConfError *err) {
    err->msg[0] = 0;
    c->path = xstrdup(base->path);
    c->n = base->n;
    c->v = xcalloc(c->n, sizeof(ConfValue));
    for (int i = 0; i < c->n; i++) {
        c->v[i] = base->v[i];
        c->v[i].text = xstrdup(base->v[i].text);
        if (base->v[i].file == base->path) c->v[i].file = c->path;   // the copy owns its own path
    }
    int rc = 0;
    for (int i = 0; rc == 0 && i < nsets; i++) rc = apply_set(c, sets[i], err);
    if (rc) config_free(c);
    return rc;
}

int config_load(Config *c, const char *path, char **sets, int nsets, const KeySpec *const *tables, ConfError *err) {
    if (!path) return config_load_string(c, NULL, "", sets, nsets, tables, err);
    memset(c, 0, sizeof *c);
    FILE *f = fopen(path, "rb");
    if (!f) return errat(err, path, NULL, "cannot read the config file: %s", strerror(errno));
    Buf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) bput(&b, chunk, n);
    int bad = ferror(f);
    fclose(f);
    if (bad) { free(b.buf); return errat(err, path, NULL, "cannot read the config file: read error"); }
    if (b.buf && memchr(b.buf, 0, b.n)) { free(b.buf); return errat(err, path, NULL, "the config file contains a NUL byte; it must be UTF-8 YAML text"); }
    int rc = config_load_string(c, b.buf ? b.buf : "", path, sets, nsets, tables, err);
    free(b.buf);
    return rc;
}

// ----------------------------------------------------------------------------------------------
// lookups

const ConfValue *cfg_get(const Config *c, const char *path) {
    int i = find(c, path);
    if (i < 0) die("config: no key table declares \"%s\" (a programming error)", path);
    return &c->v[i];
}

static const ConfValue *get_typed(const Config *c, const char *path, int t1, int t2, const char *fn) {
    const ConfValue *v = cfg_get(c, path);
    if ((int)v->spec->type != t1 && (int)v->spec->type != t2) die("config: %s(\"%s\"): the key has another type", fn, path);
    return v;
}
long cfg_int(const Config *c, const char *path) { return (long)get_typed(c, path, KT_INT, KT_INT, "cfg_int")->num; }
double cfg_num(const Config *c, const char *path) {
    const ConfValue *v = cfg_get(c, path);
    if (v->spec->type == KT_STRING) die("config: cfg_num(\"%s\"): the key is a string", path);
    return v->num;
}
int cfg_bool(const Config *c, const char *path) { return get_typed(c, path, KT_BOOL, KT_BOOL, "cfg_bool")->num != 0; }
const char *cfg_str(const Config *c, const char *path) { return cfg_get(c, path)->text; }
int cfg_is_auto(const Config *c, const char *path) { return cfg_get(c, path)->is_auto; }
int cfg_is_set(const Config *c, const char *path) { return cfg_get(c, path)->is_set; }

int cfg_is_changed(const Config *c, const char *path) {
    const ConfValue *v = cfg_get(c, path);
    if (!v->is_set) return 0;
    if (!v->spec->def) return 1;
    ConfValue tmp = {0};
    char msg[1200];
    if (convert(v->spec, v->spec->def, &tmp, msg, sizeof msg)) return 1;
    int changed = strcmp(tmp.text, v->text) != 0;
    free(tmp.text);
    return changed;
}

// ----------------------------------------------------------------------------------------------
// canonical YAML and hashing

// Strings are always double-quoted, so "true", "5" or "auto" stay strings when read back.
// YAML also reads NEL (U+0085), LS (U+2028) and PS (U+2029) as line breaks, which a quoted
// scalar folds, and drops a byte order mark (U+FEFF): those are escaped, else a value would
// change on the way round and with it the run identity hashed from this text.
static void put_quoted(Buf *b, const char *s) {
    bputs(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char e[8];
        if (p[0] == 0xc2 && p[1] == 0x85) { bputs(b, "\\u0085"); p++; }
        else if (p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9)) { bputs(b, p[2] == 0xa8 ? "\\u2028" : "\\u2029"); p += 2; }
        else if (p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf) { bputs(b, "\\ufeff"); p += 2; }
        else if (*p == '"') bputs(b, "\\\"");
        else if (*p == '\\') bputs(b, "\\\\");
        else if (*p == '\n') bputs(b, "\\n");
        else if (*p == '\t') bputs(b, "\\t");
        else if (*p < 0x20 || *p == 0x7f) { snprintf(e, sizeof e, "\\x%02x", *p); bputs(b, e); }
        else bput(b, (const char *)p, 1);
    }
    bputs(b, "\"");
}

// Emits every key under `prefix` (which ends in '.' or is ""): leaves and sub-sections in the
// order they first appear in the tables, each section once.
static void emit_section(const Config *c, Buf *b, const char *prefix, int indent) {
    size_t pl = strlen(prefix);
    for (int i = 0; i < c->n; i++) {
        const char *p = c->v[i].spec->path;
        if (strncmp(p, prefix, pl) != 0) continue;
        const char *rest = p + pl, *dot = strchr(rest, '.');
        size_t sub = dot ? (size_t)(dot - p) + 1 : 0;   // "model.shared." for a sub-section
        int seen = 0;
        for (int j = 0; j < i && dot && !seen; j++) seen = strncmp(c->v[j].spec->path, p, sub) == 0;
        if (seen) continue;
        for (int k = 0; k < indent; k++) bputs(b, " ");
        if (!dot) {
            bputs(b, rest);
            bputs(b, ": ");
            if (c->v[i].spec->type == KT_STRING) put_quoted(b, c->v[i].text);
            else bputs(b, c->v[i].text);
            bputs(b, "\n");
            continue;
        }
        bput(b, rest, (size_t)(dot - rest));
        bputs(b, ":\n");
        char next[PATH_CAP];
        snprintf(next, sizeof next, "%.*s", (int)sub, p);
        emit_section(c, b, next, indent + 2);
    }
}

char *config_canonical_yaml(const Config *c) {
    Buf b = {0};
    bputs(&b, "");   // an empty config is "" rather than NULL
    emit_section(c, &b, "", 0);
    return b.buf;
}

void hash_hex(const char *s, size_t n, char out[17]) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 0x100000001b3ull; }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}
