// pattern.c: see pattern.h. Two ways to describe the layers, one canonical result:
//   explicit  model.pattern: "M- ME *- ME"        (Megatron / NemotronH symbols)
//   rule      model.layers: 32, ratio "1:7" ...    (Hugging Face Jamba period/offset semantics,
//             plus Zamba-style shared-block invocations by shared.period/offset)
#include "pattern.h"
#include "model.h"   // MAX_SUBLAYERS
#include <stdlib.h>
#include <string.h>

static const char VALID[] =
    "valid symbols: M (mamba), * (attention), - (MLP), E (MoE), S (shared block); spaces and | are ignored";

// Keys that only mean something in the rule form; giving them with model.pattern is a mistake
// the user should hear about rather than have silently ignored.
static const char *const RULE_KEYS[] = {
    "model.ratio", "model.attn_period", "model.attn_offset", "model.moe_period", "model.moe_offset",
    "model.ffn", "model.shared.period", "model.shared.offset", NULL};

static int is_ignored(char ch) { return ch == ' ' || ch == '|' || ch == '\t' || ch == '\n' || ch == '\r'; }

// 1-based position in the raw model.pattern string of its k-th (0-based) symbol.
static size_t raw_position(const char *raw, size_t k) {
    for (size_t i = 0; raw[i]; i++)
        if (!is_ignored(raw[i]) && k-- == 0) return i + 1;
    return 0;
}

static int too_long(const Config *c, const char *key, size_t cap, ConfError *err) {
    size_t max = cap - 1 < MAX_SUBLAYERS ? cap - 1 : MAX_SUBLAYERS;
    return cfg_error(c, key, err, "the pattern would have more than %zu sublayers (the maximum); use fewer layers", max);
}

static int parse_explicit(const Config *c, char *out, size_t cap, ConfError *err) {
    const char *raw = cfg_str(c, "model.pattern");
    size_t n = 0;
    for (size_t i = 0; raw[i]; i++) {
        unsigned char ch = (unsigned char)raw[i];
        if (is_ignored(ch)) continue;
        if (ch == '[' || ch == ']' || ch == '/')
            return cfg_error(c, "model.pattern", err,
                             "'%c' at position %zu: Megatron's grouping/MTP syntax is not supported; "
                             "write one symbol per sublayer (%s)", ch, i + 1, VALID);
        if (!strchr("M*-ES", ch)) {
            char shown[8];
            if (ch >= 0x21 && ch < 0x7f) snprintf(shown, sizeof shown, "'%c'", ch);
            else snprintf(shown, sizeof shown, "\\x%02x", ch);
            const char *hint = (ch == 'm' || ch == 'e' || ch == 's') ? " (symbols are upper case)" : "";
            return cfg_error(c, "model.pattern", err, "invalid symbol %s at position %zu%s; %s", shown, i + 1, hint, VALID);
        }
        if (n + 1 >= cap || n >= MAX_SUBLAYERS) return too_long(c, "model.pattern", cap, err);
        out[n++] = (char)ch;
    }
    out[n] = 0;
    if (n == 0) return cfg_error(c, "model.pattern", err, "has no symbols; %s", VALID);
    return 0;
}

typedef struct { long period, offset; } Rule;

// A period/offset pair, checked as HF Jamba's _check_supported_offset does.
static int get_rule(const Config *c, const char *pkey, const char *okey, Rule *r, ConfError *err) {
    r->period = cfg_int(c, pkey);
    r->offset = cfg_int(c, okey);
    if (r->period < 0 || r->offset < 0) return cfg_error(c, r->period < 0 ? pkey : okey, err, "must be 0 or more");
    if (r->period == 0 && r->offset != 0)
        return cfg_error(c, okey, err, "is %ld but %s is 0 (off); set %s as well, or remove the offset", r->offset, pkey, pkey);
    if (r->period > 0 && r->offset >= r->period)
        return cfg_error(c, okey, err, "must be less than %s (%ld): valid offsets are 0 to %ld", pkey, r->period, r->period - 1);
    return 0;
}

static int parse_count(const char **p, long *v) {
    const char *s = *p;
    long x = 0;
    int digits = 0;
    while (*s >= '0' && *s <= '9' && digits < 9) x = x * 10 + (*s++ - '0'), digits++;
    if (!digits || (*s >= '0' && *s <= '9')) return -1;
    *p = s; *v = x;
    return 0;
}

// model.ratio "a:m" (attention:mamba) -> attention period and offset. Jamba's 1:7 is period 8,
// offset 4: attention in the middle of every group of 8.
static int parse_ratio(const Config *c, Rule *attn, ConfError *err) {
    const char *s = cfg_str(c, "model.ratio"), *p = s;
    long a, m;
    if (parse_count(&p, &a) || *p++ != ':' || parse_count(&p, &m) || *p)
        return cfg_error(c, "model.ratio", err,
                         "expected \"a:m\" (attention:mamba, non-negative integers), e.g. \"1:7\", got \"%.60s\"", s);
    if (a + m == 0) return cfg_error(c, "model.ratio", err, "\"0:0\" has no layers; e.g. \"1:7\", \"1:3\", or \"0:1\" for no attention");
    if (cfg_is_changed(c, "model.attn_period") || cfg_is_changed(c, "model.attn_offset"))
        return cfg_error(c, "model.ratio", err,
                         "conflicts with model.attn_period/attn_offset; give either the ratio or the period and offset");
    if (a == 0) { attn->period = 0; attn->offset = 0; return 0; }
    if (m == 0) { attn->period = 1; attn->offset = 0; return 0; }
    if ((a + m) % a != 0)
        return cfg_error(c, "model.ratio", err,
                         "\"%s\": %ld attention layers cannot be spaced evenly in groups of %ld (%ld does not divide %ld); "
                         "use a ratio such as \"1:7\" or \"1:3\", or set model.attn_period and model.attn_offset",
                         s, a, a + m, a, a + m);
    attn->period = (a + m) / a;
    attn->offset = attn->period / 2;
    return 0;
}

// The rule form: for every layer i, [S] mixer [FFN].
static int build_rule(const Config *c, char *out, size_t cap, ConfError *err) {
    long layers = cfg_int(c, "model.layers");
    Rule attn, moe, sh;
    if (cfg_str(c, "model.ratio")[0]) { if (parse_ratio(c, &attn, err)) return -1; }
    else if (get_rule(c, "model.attn_period", "model.attn_offset", &attn, err)) return -1;
    if (get_rule(c, "model.moe_period", "model.moe_offset", &moe, err)) return -1;
    if (get_rule(c, "model.shared.period", "model.shared.offset", &sh, err)) return -1;
    int has_ffn = strcmp(cfg_str(c, "model.ffn"), "none") != 0;
    if (!has_ffn && moe.period > 0)
        return cfg_error(c, "model.moe_period", err,
                         "MoE layers need an FFN but model.ffn is \"none\"; set model.ffn: mlp, or model.moe_period: 0");
    if (sh.period > 0 && cfg_int(c, "model.shared.blocks") == 0)
        return cfg_error(c, "model.shared.period", err,
                         "is %ld but model.shared.blocks is 0; set model.shared.blocks to 1 or more (Zamba2 uses 1 or 2)", sh.period);
    size_t n = 0;
    for (long i = 0; i < layers; i++) {
        char sym[3];
        size_t k = 0;
        if (sh.period > 0 && i % sh.period == sh.offset) sym[k++] = 'S';
        sym[k++] = attn.period > 0 && i % attn.period == attn.offset ? '*' : 'M';
        if (has_ffn) sym[k++] = moe.period > 0 && i % moe.period == moe.offset ? 'E' : '-';
        if (n + k + 1 > cap || n + k > MAX_SUBLAYERS) return too_long(c, "model.layers", cap, err);
        memcpy(out + n, sym, k);
        n += k;
    }
    out[n] = 0;
    return 0;
}

// Shared blocks (Zamba): S needs blocks to run, blocks need an S, and an S feeds the sublayer
// after it, so it cannot end the pattern or precede another S.
static int check_shared(const Config *c, const char *pat, int explicit_form, ConfError *err) {
    long blocks = cfg_int(c, "model.shared.blocks");
    size_t ns = 0;
    for (const char *p = pat; *p; p++) ns += *p == 'S';
    if (ns > 0 && blocks == 0)
        return cfg_error(c, "model.shared.blocks", err,
                         "is 0 but the pattern has %zu S (shared-block) symbols; set it to 1 or more (Zamba2 uses 1 or 2)", ns);
    if (blocks > 0 && ns == 0)
        return cfg_error(c, "model.shared.blocks", err,
                         "is %ld but the pattern has no S symbol, so the shared blocks would never run; "
                         "add S to model.pattern (e.g. \"M M SM M\"), set model.shared.period, or set model.shared.blocks: 0", blocks);
    for (size_t i = 0; pat[i]; i++) {
        if (pat[i] != 'S' || (pat[i + 1] && pat[i + 1] != 'S')) continue;
        size_t pos = explicit_form ? raw_position(cfg_str(c, "model.pattern"), i) : i + 1;
        return cfg_error(c, explicit_form ? "model.pattern" : "model.shared.period", err,
                         "the S at position %zu %s: a shared-block invocation feeds the next sublayer, "
                         "so every S must be followed by a mixer or an FFN (e.g. \"SM\")",
                         pos, pat[i + 1] ? "is followed by another S" : "is the last symbol");
    }
    return 0;
}

int pattern_resolve(const Config *c, char *out, size_t cap, ConfError *err) {
    if (cap == 0) die("pattern_resolve: no room for the pattern");
    out[0] = 0;
    int explicit_form = cfg_str(c, "model.pattern")[0] != 0;
    long layers = cfg_int(c, "model.layers");
    if (explicit_form && layers > 0)
        return cfg_error(c, "model.layers", err,
                         "both model.pattern and model.layers are given; use one: model.pattern spells out every "
                         "sublayer, model.layers builds them by rule");
    if (!explicit_form && layers <= 0)
        return cfg_error(c, "model.pattern", err,
                         "model has no layers: give model.pattern or model.layers "
                         "(e.g. model.pattern: \"M- M- *- M-\", or model.layers: 8 for the rule form)");
    int rc;
    if (explicit_form) {
        for (int i = 0; RULE_KEYS[i]; i++)
            if (cfg_is_changed(c, RULE_KEYS[i]))
                return cfg_error(c, RULE_KEYS[i], err,
                                 "is a rule-form key but model.pattern is given, which alone describes the layers; "
                                 "remove it, or replace model.pattern by model.layers");
        rc = parse_explicit(c, out, cap, err);
    } else {
        rc = build_rule(c, out, cap, err);
    }
    if (rc == 0) rc = check_shared(c, out, explicit_form, err);
    if (rc) out[0] = 0;
    return rc;
}

int pattern_layer_ids(const char *canon, int *layer_of) {
    int layer = -1;
    for (size_t i = 0; canon[i]; i++) {
        char ch = canon[i], prev = i ? canon[i - 1] : 0;
        int joins;
        if (ch == 'S') joins = 0;                                        // always a new layer
        else if (ch == 'M' || ch == '*') joins = prev == 'S';           // Zamba: S + its mixer
        else joins = prev == 'M' || prev == '*';                        // FFN after its mixer
        if (!joins || layer < 0) layer++;
        if (layer_of) layer_of[i] = layer;
    }
    return layer + 1;
}
