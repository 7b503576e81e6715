// test_config.c: the YAML config loader (core/config.c) and the layer pattern (core/pattern.c).
// Uses its own key tables (a copy of the model.* layer keys of core/keys.c plus test keys), so
// it does not need the block and task registries; when core/keys.c is linked (the full test
// build) the core table's defaults are checked as well.
#include "config.h"
#include "pattern.h"
#include "model.h"   // MAX_SUBLAYERS
#include "test.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// Weak: present only when core/keys.c is linked in.
extern const KeySpec core_keys[] __attribute__((weak));

#define BIG 1e18
static const KeySpec test_keys[] = {
    {"seed", KT_INT, "1", 0, 4294967295.0, NULL, 0, "random seed"},
    {"name", KT_STRING, "", 0, -1, NULL, 0, "a label"},
    {"model.d_model", KT_INT, "64", 1, 1048576, NULL, 0, "width"},
    {"model.attention.heads", KT_INT, "4", 1, 256, NULL, 0, "attention heads"},
    {"model.attention.window", KT_INT, "auto", 1, 1e6, NULL, 1, "window or auto"},
    {"model.norm_eps", KT_FLOAT, "1e-5", 0, 1, NULL, 0, "epsilon"},
    {"model.tie_embeddings", KT_BOOL, "true", 0, -1, NULL, 0, "tie"},
    {"train.lr", KT_FLOAT, "1e-3", 0, 10, NULL, 0, "learning rate"},
    {"train.schedule", KT_STRING, "cosine", 0, -1, "constant|cosine|wsd", 0, "schedule"},
    {"train.warmup_steps", KT_INT, "0", 0, BIG, NULL, 0, "warmup"},
    {"train.steps", KT_INT, "0", 0, BIG, NULL, 0, "steps"},
    {"data.task", KT_STRING, "mqar", 0, -1, NULL, 0, "task"},
    {NULL, 0, NULL, 0, 0, NULL, 0, NULL}};

// The layer-description rows of core/keys.c (kept in sync by hand).
static const KeySpec layer_keys[] = {
    {"model.pattern", KT_STRING, "", 0, -1, NULL, 0, "explicit pattern"},
    {"model.layers", KT_INT, "0", 0, MAX_SUBLAYERS / 3, NULL, 0, "rule form: layers"},
    {"model.attn_period", KT_INT, "0", 0, BIG, NULL, 0, ""},
    {"model.attn_offset", KT_INT, "0", 0, BIG, NULL, 0, ""},
    {"model.ratio", KT_STRING, "", 0, -1, NULL, 0, ""},
    {"model.moe_period", KT_INT, "0", 0, BIG, NULL, 0, ""},
    {"model.moe_offset", KT_INT, "0", 0, BIG, NULL, 0, ""},
    {"model.ffn", KT_STRING, "mlp", 0, -1, "mlp|none", 0, ""},
    {"model.shared.blocks", KT_INT, "0", 0, 64, NULL, 0, ""},
    {"model.shared.period", KT_INT, "0", 0, BIG, NULL, 0, ""},
    {"model.shared.offset", KT_INT, "0", 0, BIG, NULL, 0, ""},
    {NULL, 0, NULL, 0, 0, NULL, 0, NULL}};

static const KeySpec required_keys[] = {
    {"data.path", KT_STRING, NULL, 0, -1, NULL, 0, "required"},
    {NULL, 0, NULL, 0, 0, NULL, 0, NULL}};

static const KeySpec *const tables[] = {test_keys, layer_keys, NULL};
static const KeySpec *const tables_req[] = {test_keys, layer_keys, required_keys, NULL};

static char tmpdir[256];

static const char *write_file(const char *name, const char *text) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    if (!f) { perror(path); exit(1); }
    fputs(text, f);
    fclose(f);
    return path;
}

// Checks that a load failed cleanly and that the message contains every expected substring
// (NULL-terminated). Returns the number of failed substring checks.
static void expect_fail(const char *what, int rc, const Config *c, const ConfError *err, ...) {
    CHECK(rc == -1 && c->n == 0 && c->v == NULL, "%s: fails and leaves the config empty (rc %d)", what, rc);
    va_list ap; va_start(ap, err);
    for (const char *s; (s = va_arg(ap, const char *));)
        CHECK(strstr(err->msg, s) != NULL, "%s: message has [%s]: %s", what, s, err->msg);
    va_end(ap);
}

// Loads a YAML file written to the temp dir; expects failure with the given substrings. The
// first substring should be the "path:line:col: key" prefix, built here from the file path.
static void file_fail(const char *what, const char *yaml, const char *loc, ...) {
    Config c; ConfError err;
    const char *path = write_file("bad.yaml", yaml);
    char prefix[700];
    snprintf(prefix, sizeof prefix, "%s%s", path, loc);
    int rc = config_load(&c, path, NULL, 0, tables, &err);
    CHECK(rc == -1 && c.n == 0 && c.v == NULL, "%s: fails and leaves the config empty", what);
    CHECK(strncmp(err.msg, prefix, strlen(prefix)) == 0, "%s: message starts with [%s]: %s", what, prefix, err.msg);
    va_list ap; va_start(ap, loc);
    for (const char *s; (s = va_arg(ap, const char *));)
        CHECK(strstr(err.msg, s) != NULL, "%s: message has [%s]: %s", what, s, err.msg);
    va_end(ap);
    if (rc == 0) config_free(&c);
}

static void test_good_file(void) {
    test_group("good file");
    const char *good =
        "# a config with nested and flat dotted keys\n"
        "seed: 7\n"
        "name: \"  my run \"\n"
        "model:\n"
        "  d_model: 1e2\n"
        "  attention:\n"
        "    heads: \"8\"\n"
        "  tie_embeddings: Off\n"
        "  shared.blocks: 0\n"
        "model.attention.window: 128\n"
        "train:\n"
        "  lr: 3e-4\n"
        "  schedule: wsd\n"
        "train.warmup_steps: 10\n";
    const char *path = write_file("good.yaml", good);
    Config c; ConfError err;
    int rc = config_load(&c, path, NULL, 0, tables, &err);
    if (!CHECK(rc == 0, "loads (%s)", rc ? err.msg : "ok")) return;
    CHECK(strcmp(c.path, path) == 0, "keeps the file path as given");
    CHECK(c.n == 12 + 11, "one value per declared key (%d)", c.n);
    CHECK(cfg_int(&c, "seed") == 7, "seed 7");
    CHECK(strcmp(cfg_str(&c, "name"), "  my run ") == 0, "quoted string kept exactly [%s]", cfg_str(&c, "name"));
    CHECK(cfg_int(&c, "model.d_model") == 100 && strcmp(cfg_str(&c, "model.d_model"), "100") == 0, "1e2 is the integer 100");
    CHECK(cfg_int(&c, "model.attention.heads") == 8, "quoted \"8\" accepted for an int");
    CHECK(cfg_bool(&c, "model.tie_embeddings") == 0 && strcmp(cfg_str(&c, "model.tie_embeddings"), "false") == 0, "Off is false");
    CHECK(cfg_int(&c, "model.attention.window") == 128 && !cfg_is_auto(&c, "model.attention.window"), "flat dotted key at the top level");
    CHECK(cfg_int(&c, "train.warmup_steps") == 10, "flat dotted key next to a nested section");
    CHECK(cfg_num(&c, "train.lr") == 3e-4 && strcmp(cfg_str(&c, "train.lr"), "0.0003") == 0, "float canonical text [%s]", cfg_str(&c, "train.lr"));
    CHECK(strcmp(cfg_str(&c, "train.schedule"), "wsd") == 0, "choice wsd");
    const ConfValue *v = cfg_get(&c, "model.attention.heads");
    CHECK(v->is_set && v->line == 7 && v->col == 5 && v->file && strcmp(v->file, path) == 0, "position of a nested key 7:5 (%d:%d)", v->line, v->col);
    v = cfg_get(&c, "model.attention.window");
    CHECK(v->line == 10 && v->col == 1, "position of a flat key 10:1 (%d:%d)", v->line, v->col);
    v = cfg_get(&c, "model.norm_eps");
    CHECK(!v->is_set && v->line == 0 && v->col == 0 && strcmp(v->text, "1e-05") == 0 && v->num == 1e-5, "default float [%s]", v->text);
    CHECK(cfg_is_auto(&c, "model.attention.window") == 0 && !cfg_is_set(&c, "data.task") && strcmp(cfg_str(&c, "data.task"), "mqar") == 0, "default string");
    CHECK(cfg_is_set(&c, "model.shared.blocks") && !cfg_is_changed(&c, "model.shared.blocks") && cfg_is_changed(&c, "seed"), "cfg_is_changed: set to the default is not a change");
    CHECK(cfg_int(&c, "model.layers") == 0 && strcmp(cfg_str(&c, "model.ffn"), "mlp") == 0, "defaults of the second table");
    config_free(&c);
    CHECK(c.n == 0 && c.v == NULL && c.path == NULL, "config_free empties");

    // Defaults, "auto", booleans and the empty file.
    rc = config_load_string(&c, "", "empty.yaml", NULL, 0, tables, &err);
    CHECK(rc == 0 && c.n == 23 && cfg_is_auto(&c, "model.attention.window") && cfg_num(&c, "model.attention.window") == -1
          && strcmp(cfg_str(&c, "model.attention.window"), "auto") == 0, "empty file: all defaults, auto default");
    if (rc == 0) config_free(&c);
    rc = config_load_string(&c, "# only a comment\n", "c.yaml", NULL, 0, tables, &err);
    CHECK(rc == 0 && cfg_int(&c, "seed") == 1, "comment-only file: defaults");
    if (rc == 0) config_free(&c);
    rc = config_load(&c, NULL, NULL, 0, tables, &err);
    CHECK(rc == 0 && strcmp(c.path, "") == 0 && cfg_int(&c, "model.d_model") == 64, "no file at all: defaults, path \"\"");
    if (rc == 0) config_free(&c);
    rc = config_load_string(&c, "model:\n  attention: {window: auto, heads: 16}\n  tie_embeddings: YES\n  norm_eps: 0.1\ntrain: {lr: 1e-3, steps: 1000000000000}\n",
                            "f.yaml", NULL, 0, tables, &err);
    CHECK(rc == 0, "flow mappings load (%s)", rc ? err.msg : "ok");
    if (rc == 0) {
        CHECK(cfg_is_auto(&c, "model.attention.window") && cfg_is_set(&c, "model.attention.window"), "auto accepted for allow_auto");
        CHECK(cfg_bool(&c, "model.tie_embeddings") == 1, "YES is true");
        CHECK(strcmp(cfg_str(&c, "model.norm_eps"), "0.1") == 0 && strcmp(cfg_str(&c, "train.lr"), "0.001") == 0, "shortest floats 0.1, 0.001");
        CHECK(cfg_int(&c, "train.steps") == 1000000000000L, "a large integer");
        config_free(&c);
    }
    rc = config_load_string(&c, "model:\n", "s.yaml", NULL, 0, tables, &err);
    CHECK(rc == 0, "an empty section (all keys commented out) is fine");
    if (rc == 0) config_free(&c);
}

static void test_file_errors(void) {
    test_group("file errors");
    file_fail("int type", "model:\n  attention:\n    heads: four\n", ":3:5: model.attention.heads: ",
              "expected an integer, got \"four\"", "from 1 to 256", NULL);
    file_fail("non-integral", "model:\n  d_model: 3.5\n", ":2:3: model.d_model: ", "expected an integer, got \"3.5\"", NULL);
    file_fail("int range", "model.attention.heads: 0\n", ":1:1: model.attention.heads: ", "out of range", "valid range: 1 to 256", NULL);
    file_fail("float range", "train:\n  lr: 11\n", ":2:3: train.lr: ", "11 is out of range; valid range: 0 to 10", NULL);
    file_fail("float type", "train:\n  lr: fast\n", ":2:3: train.lr: ", "expected a number, got \"fast\"", NULL);
    file_fail("float hex", "train:\n  lr: 0x10\n", ":2:3: train.lr: ", "expected a number", NULL);
    file_fail("bool", "model:\n  tie_embeddings: maybe\n", ":2:3: model.tie_embeddings: ", "expected true or false", "yes/no, on/off", NULL);
    file_fail("choices", "train:\n  schedule: cosin\n", ":2:3: train.schedule: ", "one of: constant, cosine, wsd", "did you mean \"cosine\"?", NULL);
    file_fail("auto not allowed", "model:\n  attention: {heads: auto}\n", ":2:15: model.attention.heads: ", "expected an integer, got \"auto\"", NULL);
    file_fail("int overflow", "seed: 99999999999999999999\n", ":1:1: seed: ", "at most 18 digits", NULL);
    file_fail("unknown section", "model:\n  atention:\n    heads: 4\n", ":2:3: model.atention: ", "unknown section", "did you mean \"model.attention\"?", NULL);
    file_fail("unknown flat key", "train.warmup_step: 5\n", ":1:1: train.warmup_step: ", "unknown key", "did you mean \"train.warmup_steps\"?", NULL);
    file_fail("unique prefix", "train:\n  warm: 5\n", ":2:3: train.warm: ", "did you mean \"train.warmup_steps\"?", NULL);
    file_fail("wrong level", "heads: 4\n", ":1:1: heads: ", "did you mean \"model.attention.heads\"?", NULL);
    file_fail("nothing close", "zzzzzzzz: 1\n", ":1:1: zzzzzzzz: ", "valid top-level keys: seed, name, model.*, train.*, data.*", NULL);
    file_fail("nothing close in a section", "train:\n  qqqqqqqq: 1\n", ":2:3: train.qqqqqqqq: ", "valid keys in section \"train\": lr, schedule", NULL);
    file_fail("mapping for a value", "seed:\n  a: 1\n", ":1:1: seed: ", "expected an integer", "got a mapping", NULL);
    file_fail("value for a section", "model: 5\n", ":1:1: model: ", "is a section", "expected a mapping of its keys (d_model, attention.*", NULL);
    file_fail("list", "seed: [1, 2]\n", ":1:1: seed: ", "lists are not supported", "a single value", NULL);
    file_fail("duplicate", "seed: 1\nname: x\nseed: 2\n", ":3:1: seed: ", "duplicate key (first at line 1, column 1)", NULL);
    file_fail("nested and flat", "model:\n  d_model: 8\nmodel.d_model: 16\n", ":3:1: model.d_model: ", "given twice (first at line 2, column 3)", NULL);
    file_fail("syntax", "model:\n  d_model: 8\n bad: [\n", ":", "YAML syntax error", NULL);
    file_fail("tab", "model:\n\td_model: 8\n", ":2:1: ", "YAML syntax error", "tabs", NULL);
    file_fail("star alias", "model:\n  pattern: *-*-\n", ":2:", "alias", "quote it", NULL);
    file_fail("top-level list", "- a\n- b\n", ":1:1: ", "the top level must be a mapping", NULL);
    file_fail("top-level scalar", "hello\n", ":1:1: ", "the top level must be a mapping", NULL);
    file_fail("no value", "seed:\n", ":1:1: seed: ", "no value given; expected an integer", NULL);
    file_fail("two documents", "seed: 1\n---\nseed: 2\n", ":3:1: ", "only one YAML document", NULL);
    file_fail("merge key", "<<: {seed: 1}\n", ":1:1: <<: ", "merge keys", NULL);

    Config c; ConfError err;
    char missing[600];
    snprintf(missing, sizeof missing, "%s/does-not-exist.yaml", tmpdir);
    int rc = config_load(&c, missing, NULL, 0, tables, &err);
    expect_fail("missing file", rc, &c, &err, missing, "cannot read the config file", NULL);
    const char *path = write_file("req.yaml", "seed: 3\n");
    rc = config_load(&c, path, NULL, 0, tables_req, &err);
    char want[700];
    snprintf(want, sizeof want, "%s: data.path: required", path);
    expect_fail("required", rc, &c, &err, want, "give a string", NULL);
    char *ok_set[] = {"data.path=x.bin"};
    rc = config_load(&c, path, ok_set, 1, tables_req, &err);
    CHECK(rc == 0 && strcmp(cfg_str(&c, "data.path"), "x.bin") == 0, "a required key given by --set");
    if (rc == 0) config_free(&c);
}

static void test_sets(void) {
    test_group("--set");
    Config c; ConfError err;
    const char *path = write_file("s.yaml", "model:\n  attention:\n    heads: 2\n");
    char *sets[] = {"model.attention.heads=8", "train.lr=1e-2", "train.lr=0.5", "name=a=b", "model.tie_embeddings=no"};
    int rc = config_load(&c, path, sets, 5, tables, &err);
    if (CHECK(rc == 0, "overrides load (%s)", rc ? err.msg : "ok")) {
        const ConfValue *v = cfg_get(&c, "model.attention.heads");
        CHECK(v->num == 8 && v->is_set && strcmp(v->file, "--set") == 0 && v->line == 0, "--set overrides the file");
        CHECK(cfg_num(&c, "train.lr") == 0.5, "later --set wins");
        CHECK(strcmp(cfg_str(&c, "name"), "a=b") == 0, "value split at the first '='");
        CHECK(cfg_bool(&c, "model.tie_embeddings") == 0, "bool by --set");
        cfg_error(&c, "model.attention.heads", &err, "too many (valid: 1 to 2)");
        CHECK(strcmp(err.msg, "--set model.attention.heads=8: model.attention.heads: too many (valid: 1 to 2)") == 0, "cfg_error on a --set value: %s", err.msg);
        cfg_error(&c, "train.steps", &err, "must be positive");
        char want[700];
        snprintf(want, sizeof want, "%s: train.steps: must be positive", path);
        CHECK(strcmp(err.msg, want) == 0, "cfg_error on a default: %s", err.msg);
        config_free(&c);
    }
    char *s1[] = {"model.atention.heads=8"};
    rc = config_load(&c, path, s1, 1, tables, &err);
    expect_fail("unknown", rc, &c, &err, "--set model.atention.heads=8: model.atention.heads: unknown key", "did you mean \"model.attention.heads\"?", NULL);
    char *s2[] = {"model.d_model"};
    rc = config_load(&c, path, s2, 1, tables, &err);
    expect_fail("missing =", rc, &c, &err, "--set model.d_model: ", "expected KEY=VALUE", NULL);
    char *s3[] = {"train.lr=abc"};
    rc = config_load(&c, path, s3, 1, tables, &err);
    expect_fail("bad value", rc, &c, &err, "--set train.lr=abc: train.lr: expected a number, got \"abc\"", NULL);
    char *s4[] = {"model=5"};
    rc = config_load(&c, path, s4, 1, tables, &err);
    expect_fail("section", rc, &c, &err, "--set model=5: model: is a section", "d_model", NULL);
    char *s5[] = {"train.schedule=linear"};
    rc = config_load(&c, NULL, s5, 1, tables, &err);
    expect_fail("choices", rc, &c, &err, "--set train.schedule=linear: train.schedule: ", "one of: constant, cosine, wsd", NULL);
    char *s6[] = {"model.attention.heads=300"};
    rc = config_load(&c, NULL, s6, 1, tables, &err);
    expect_fail("range", rc, &c, &err, "valid range: 1 to 256", NULL);
}

static int same_config(const Config *a, const Config *b) {
    if (a->n != b->n) return 0;
    for (int i = 0; i < a->n; i++)
        if (a->v[i].spec != b->v[i].spec || strcmp(a->v[i].text, b->v[i].text) != 0 || a->v[i].num != b->v[i].num
            || a->v[i].is_auto != b->v[i].is_auto) return 0;
    return 1;
}

static void test_canonical(void) {
    test_group("canonical yaml");
    Config a, b; ConfError err;
    const char *yaml = "name: \"say \\\"hi\\\" \\\\ true\"\nmodel:\n  pattern: \"M- *E\"\n  shared.blocks: 0\n  attention: {heads: 8}\n"
                       "train.lr: 0.1\nmodel.norm_eps: 1e-6\n";
    int rc = config_load_string(&a, yaml, "a.yaml", NULL, 0, tables, &err);
    if (!CHECK(rc == 0, "loads (%s)", rc ? err.msg : "ok")) return;
    char *y1 = config_canonical_yaml(&a);
    CHECK(strncmp(y1, "seed: 1\nname: \"say \\\"hi\\\" \\\\ true\"\nmodel:\n  d_model: 64\n  attention:\n    heads: 8\n    window: auto\n  norm_eps: 1e-06\n", 99) == 0,
          "nested, in table order, strings quoted");
    if (test_failed_) printf("%s", y1);
    const char *m1 = strstr(y1, "\nmodel:\n");
    CHECK(m1 && !strstr(m1 + 1, "\nmodel:\n"), "the model section is emitted once although two tables declare model.*");
    CHECK(strstr(y1, "  pattern: \"M- *E\"\n") && strstr(y1, "  shared:\n    blocks: 0\n") && strstr(y1, "  ffn: \"mlp\"\n"), "second table's keys nested under model");
    CHECK(strstr(y1, "train:\n  lr: 0.1\n") && strstr(y1, "data:\n  task: \"mqar\"\n"), "sections in first-appearance order");
    rc = config_load_string(&b, y1, "canonical", NULL, 0, tables, &err);
    if (CHECK(rc == 0, "canonical YAML loads back (%s)", rc ? err.msg : "ok")) {
        CHECK(same_config(&a, &b), "round trip gives an identical config");
        char *y2 = config_canonical_yaml(&b);
        CHECK(strcmp(y1, y2) == 0, "canonical YAML is a fixed point");
        char h1[17], h2[17];
        hash_hex(y1, strlen(y1), h1); hash_hex(y2, strlen(y2), h2);
        CHECK(strcmp(h1, h2) == 0 && strlen(h1) == 16, "hash stable (%s)", h1);
        char pat[64];
        CHECK(pattern_resolve(&b, pat, sizeof pat, &err) == 0 && strcmp(pat, "M-*E") == 0, "the reloaded canonical config still resolves its pattern (%s)", err.msg);
        free(y2);
        config_free(&b);
    }
    // A changed value changes the bytes and the hash.
    char *sets[] = {"train.lr=0.2"};
    rc = config_load_string(&b, yaml, "a.yaml", sets, 1, tables, &err);
    if (rc == 0) {
        char *y3 = config_canonical_yaml(&b);
        char h1[17], h3[17];
        hash_hex(y1, strlen(y1), h1); hash_hex(y3, strlen(y3), h3);
        CHECK(strcmp(h1, h3) != 0, "a different value gives a different hash");
        free(y3);
        config_free(&b);
    }
    free(y1);
    config_free(&a);

    // Strings that look like other things stay strings; control characters survive.
    rc = config_load_string(&a, "name: \"true\"\ndata.task: \"tab\\there\\nnewline \\u00e9\"\n", "q.yaml", NULL, 0, tables, &err);
    if (CHECK(rc == 0, "tricky strings load")) {
        char *y = config_canonical_yaml(&a);
        rc = config_load_string(&b, y, "q2", NULL, 0, tables, &err);
        CHECK(rc == 0 && same_config(&a, &b) && strcmp(cfg_str(&b, "name"), "true") == 0, "tricky strings round trip");
        if (rc == 0) config_free(&b);
        free(y);
        config_free(&a);
    }
    char h[17];
    hash_hex("", 0, h);
    CHECK(strcmp(h, "cbf29ce484222325") == 0, "FNV-1a of \"\" (%s)", h);
    hash_hex("a", 1, h);
    CHECK(strcmp(h, "af63dc4c8601ec8c") == 0, "FNV-1a of \"a\" (%s)", h);
}

// Loads yaml (plus sets) and resolves the pattern; returns the pattern_resolve result.
static int resolve(const char *yaml, char **sets, int nsets, char *out, size_t cap, ConfError *err) {
    Config c;
    if (config_load_string(&c, yaml, "p.yaml", sets, nsets, tables, err)) return -2;
    int rc = pattern_resolve(&c, out, cap, err);
    config_free(&c);
    return rc;
}

static void test_pattern(void) {
    test_group("pattern");
    char out[MAX_SUBLAYERS + 1];
    ConfError err;
    int ids[MAX_SUBLAYERS];

    int rc = resolve("model.pattern: \"M- ME M- ME *- ME M- ME\"\n", NULL, 0, out, sizeof out, &err);
    CHECK(rc == 0 && strcmp(out, "M-MEM-ME*-MEM-ME") == 0, "Jamba block [%s] %s", out, rc ? err.msg : "");
    CHECK(pattern_layer_ids(out, ids) == 8 && ids[0] == 0 && ids[1] == 0 && ids[8] == 4 && ids[15] == 7, "Jamba block: 8 layers");
    rc = resolve("model: {pattern: MMMM}\n", NULL, 0, out, sizeof out, &err);
    CHECK(rc == 0 && strcmp(out, "MMMM") == 0 && pattern_layer_ids(out, NULL) == 4, "pure Mamba [%s]", out);
    rc = resolve("model:\n  pattern: \"*-*-|*-*-\"\n", NULL, 0, out, sizeof out, &err);
    CHECK(rc == 0 && strcmp(out, "*-*-*-*-") == 0 && pattern_layer_ids(out, NULL) == 4, "Llama with a | separator [%s]", out);

    // Jamba-v0.1 by rule: attention at layers 4, 12, 20, 28; MoE on odd layers.
    rc = resolve("model:\n  layers: 32\n  ratio: \"1:7\"\n  moe_period: 2\n  moe_offset: 1\n", NULL, 0, out, sizeof out, &err);
    int ok = rc == 0 && strlen(out) == 64;
    for (int i = 0; ok && i < 32; i++) {
        int attn = i == 4 || i == 12 || i == 20 || i == 28;
        ok = out[2 * i] == (attn ? '*' : 'M') && out[2 * i + 1] == (i % 2 ? 'E' : '-');
    }
    CHECK(ok, "Jamba-v0.1 rule: %s %s", out, rc ? err.msg : "");
    CHECK(pattern_layer_ids(out, ids) == 32 && ids[9] == 4 && ids[63] == 31, "Jamba-v0.1: 32 layers");
    rc = resolve("model:\n  layers: 8\n  ratio: \"1:3\"\n", NULL, 0, out, sizeof out, &err);
    CHECK(rc == 0 && strcmp(out, "M-M-*-M-M-M-*-M-") == 0, "ratio 1:3 -> period 4 offset 2 [%s]", out);
    rc = resolve("model:\n  layers: 3\n  ratio: \"0:1\"\n", NULL, 0, out, sizeof out, &err);
    CHECK(rc == 0 && strcmp(out, "M-M-M-") == 0, "ratio 0:1 -> no attention [%s]", out);
    rc = resolve("model:\n  layers: 3\n  ratio: \"1:0\"\n", NULL, 0, out, sizeof out, &err);
    CHECK(rc == 0 && strcmp(out, "*-*-*-") == 0, "ratio 1:0 -> all attention [%s]", out);
    rc = resolve("model:\n  layers: 4\n  attn_period: 2\n  attn_offset: 1\n", NULL, 0, out, sizeof out, &err);
    CHECK(rc == 0 && strcmp(out, "M-*-M-*-") == 0, "attn_period/offset [%s]", out);
    rc = resolve("model:\n  layers: 4\n  ffn: none\n", NULL, 0, out, sizeof out, &err);
    CHECK(rc == 0 && strcmp(out, "MMMM") == 0, "pure Mamba by rule, ffn none [%s]", out);
    rc = resolve("model:\n  layers: 6\n  ffn: none\n  shared: {blocks: 2, period: 3, offset: 2}\n", NULL, 0, out, sizeof out, &err);
    CHECK(rc == 0 && strcmp(out, "MMSMMMSM") == 0, "Zamba-like rule [%s] %s", out, rc ? err.msg : "");
    CHECK(pattern_layer_ids(out, ids) == 6 && ids[2] == 2 && ids[3] == 2 && ids[6] == 5 && ids[7] == 5, "Zamba-like: S joins the mixer after it");
    rc = resolve("model:\n  pattern: \"SM- M-\"\n  shared.blocks: 1\n", NULL, 0, out, sizeof out, &err);
    CHECK(rc == 0 && strcmp(out, "SM-M-") == 0, "explicit S [%s] %s", out, rc ? err.msg : "");

    // Layer numbering examples.
    CHECK(pattern_layer_ids("M-ME*-", ids) == 3 && ids[0] == 0 && ids[1] == 0 && ids[2] == 1 && ids[3] == 1 && ids[4] == 2 && ids[5] == 2, "M- ME *- -> 0,0,1,1,2,2");
    CHECK(pattern_layer_ids("SMM", ids) == 2 && ids[0] == 0 && ids[1] == 0 && ids[2] == 1, "SM M -> 0,0,1");
    CHECK(pattern_layer_ids("--", ids) == 2 && ids[0] == 0 && ids[1] == 1, "-- -> 0,1");
    CHECK(pattern_layer_ids("", ids) == 0, "empty pattern: 0 layers");
}

static void test_pattern_errors(void) {
    test_group("pattern errors");
    static char long_pat[MAX_SUBLAYERS + 64];
    memcpy(long_pat, "model.pattern: ", 15);
    memset(long_pat + 15, 'M', MAX_SUBLAYERS + 1);
    long_pat[15 + MAX_SUBLAYERS + 1] = '\n';
    struct { const char *yaml; size_t cap; const char *want1, *want2; } cases[] = {
        {"model.pattern: \"MX-\"\n", 0, "p.yaml:1:1: model.pattern: invalid symbol 'X' at position 2", "valid symbols: M (mamba)"},
        {"model.pattern: \"m-\"\n", 0, "invalid symbol 'm' at position 1", "upper case"},
        {"model.pattern: \"M[*-]\"\n", 0, "'[' at position 2", "Megatron's grouping/MTP syntax is not supported; write one symbol per sublayer"},
        {"model.pattern: \"M-/M-\"\n", 0, "'/' at position 3", "not supported"},
        {"model.pattern: \" | \"\n", 0, "model.pattern: has no symbols", "valid symbols"},
        {"model:\n  pattern: M-\n  layers: 4\n", 0, "p.yaml:3:3: model.layers: both model.pattern and model.layers", "use one"},
        {"seed: 1\n", 0, "p.yaml: model.pattern: model has no layers", "give model.pattern or model.layers"},
        {"model:\n  pattern: M-\n  attn_period: 4\n", 0, "p.yaml:3:3: model.attn_period: is a rule-form key", "model.pattern is given"},
        {"model:\n  pattern: M-\n  ffn: none\n", 0, "model.ffn: is a rule-form key", NULL},
        {"model:\n  layers: 8\n  attn_period: 4\n  attn_offset: 4\n", 0, "p.yaml:4:3: model.attn_offset: must be less than model.attn_period (4)", "valid offsets are 0 to 3"},
        {"model:\n  layers: 8\n  attn_offset: 2\n", 0, "model.attn_offset: is 2 but model.attn_period is 0", NULL},
        {"model:\n  layers: 8\n  moe_period: 2\n  moe_offset: 2\n", 0, "model.moe_offset: must be less than model.moe_period (2)", NULL},
        {"model:\n  layers: 7\n  ratio: \"2:5\"\n", 0, "model.ratio: \"2:5\"", "\"1:7\" or \"1:3\""},
        {"model:\n  layers: 7\n  ratio: \"1/7\"\n", 0, "model.ratio: expected \"a:m\"", "e.g. \"1:7\""},
        {"model:\n  layers: 7\n  ratio: \"0:0\"\n", 0, "model.ratio: \"0:0\" has no layers", NULL},
        {"model:\n  layers: 8\n  ratio: \"1:7\"\n  attn_period: 8\n", 0, "model.ratio: conflicts with model.attn_period", NULL},
        {"model:\n  layers: 8\n  ffn: none\n  moe_period: 2\n", 0, "model.moe_period: MoE layers need an FFN", "model.ffn: mlp"},
        {"model:\n  pattern: SM-\n", 0, "model.shared.blocks: is 0 but the pattern has 1 S", "1 or more"},
        {"model:\n  pattern: M-\n  shared.blocks: 2\n", 0, "model.shared.blocks: is 2 but the pattern has no S", "model.shared.period"},
        {"model:\n  pattern: \"M- S\"\n  shared.blocks: 1\n", 0, "model.pattern: the S at position 4 is the last symbol", "feeds the next sublayer"},
        {"model:\n  pattern: SSM\n  shared.blocks: 1\n", 0, "the S at position 1 is followed by another S", NULL},
        {"model:\n  layers: 6\n  shared.period: 3\n", 0, "model.shared.period: is 3 but model.shared.blocks is 0", NULL},
        {"model:\n  layers: 2\n  shared: {blocks: 1, period: 4, offset: 3}\n", 0, "model.shared.blocks: is 1 but the pattern has no S", NULL},
        {"model:\n  layers: 10\n", 8, "model.layers: the pattern would have more than 7 sublayers", NULL},
        {"model.pattern: MMMM\n", 4, "more than 3 sublayers", NULL},
        {long_pat, 0, "more than 4096 sublayers", NULL},
    };
    int n = sizeof cases / sizeof cases[0];
    char out[MAX_SUBLAYERS + 1];
    for (int i = 0; i < n; i++) {
        ConfError err;
        size_t cap = cases[i].cap ? cases[i].cap : sizeof out;
        int rc = resolve(cases[i].yaml, NULL, 0, out, cap, &err);
        int ok = rc == -1 && out[0] == 0 && strstr(err.msg, cases[i].want1) && (!cases[i].want2 || strstr(err.msg, cases[i].want2));
        CHECK(ok, "case %d: rc %d [%s]", i + 1, rc, err.msg);
    }
    // Errors point at a --set when that is where the value came from.
    ConfError err;
    char *sets[] = {"model.layers=4"};
    int rc = resolve("model.pattern: M-\n", sets, 1, out, sizeof out, &err);
    CHECK(rc == -1 && strstr(err.msg, "--set model.layers=4: model.layers: both"), "error on a --set value: %s", err.msg);
}

// The real core table (only when core/keys.c is linked): every default valid, round trip.
static void test_core_keys(void) {
    test_group("core keys");
    if (!core_keys) { printf("(core/keys.c not linked: skipped)\n"); return; }
    const KeySpec *const t[] = {core_keys, NULL};
    Config a, b; ConfError err;
    int rc = config_load_string(&a, NULL, "", NULL, 0, t, &err);
    if (!CHECK(rc == 0, "the core table's defaults are all valid (%s)", rc ? err.msg : "ok")) return;
    char *y = config_canonical_yaml(&a);
    rc = config_load_string(&b, y, "canonical", NULL, 0, t, &err);
    CHECK(rc == 0 && same_config(&a, &b), "core defaults round trip");
    if (rc == 0) config_free(&b);
    free(y);
    config_free(&a);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/hlab_test_config_XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    test_good_file();
    test_file_errors();
    test_sets();
    test_canonical();
    test_pattern();
    test_pattern_errors();
    test_core_keys();
    // Clean up the temp dir.
    const char *names[] = {"good.yaml", "bad.yaml", "req.yaml", "s.yaml"};
    for (int i = 0; i < 4; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", tmpdir, names[i]);
        unlink(p);
    }
    rmdir(tmpdir);
    return test_summary();
}
