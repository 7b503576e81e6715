// config.h: YAML configs validated against typed key tables, flattened to dotted paths.
//
// Every key the program understands is declared once in a KeySpec table: the core's own table
// (core/keys.c), each block type's (blocks/*.c, BlockType.keys) and each task's. The loader reads
// a YAML file with libyaml, applies `--set a.b.c=value` overrides, checks every key against the
// union of the tables (unknown key -> did-you-mean, wrong type, out of range, not one of the
// choices) and fills in defaults. The result is a flat, typed, ordered map: the resolved config.
// Errors name file:line:column and the key path and say what would be valid; the caller exits 2.
#pragma once
#include <stddef.h>

typedef enum { KT_INT, KT_FLOAT, KT_BOOL, KT_STRING } KeyType;

typedef struct KeySpec {
    const char *path;     // full dotted path, e.g. "model.attention.heads"
    KeyType type;
    const char *def;      // default as YAML text ("" for an empty string); NULL means required
    double min, max;      // inclusive range for KT_INT / KT_FLOAT; ignored when min > max
    const char *choices;  // KT_STRING: allowed values "a|b|c"; NULL means any string
    int allow_auto;       // KT_INT / KT_FLOAT also accept the word "auto" (cfg_is_auto)
    const char *doc;      // one line for `hlab keys` and the README
} KeySpec;

typedef struct ConfValue {
    const KeySpec *spec;
    char *text;           // the value as text, canonical: ints "12", floats "%.17g" trimmed, bools "true"/"false"
    double num;           // numeric value for KT_INT / KT_FLOAT / KT_BOOL (1/0)
    int is_auto;          // the value is the word "auto"
    int is_set;           // given by the file or --set (not a default)
    const char *file;     // where it was set: file name, or "--set"
    int line, col;        // 1-based; 0 when defaulted
} ConfValue;

typedef struct Config {
    char *path;           // the file it came from ("" if none)
    int n;                // number of values (= total keys in all tables), in table order
    ConfValue *v;
} Config;

typedef struct ConfError { char msg[2048]; } ConfError;

// Loads `path` (NULL: no file, defaults only), then applies the `nsets` overrides "a.b.c=value"
// in order. `tables` is a NULL-terminated list of NULL-path-terminated KeySpec arrays.
// Returns 0 on success; on error returns -1 and fills err (the Config is left empty).
int config_load(Config *c, const char *path, char **sets, int nsets,
                const KeySpec *const *tables, ConfError *err);
// The same from a YAML string (for tests, experiment variants and checkpoint metadata);
// `name` is used as the file name in error messages.
int config_load_string(Config *c, const char *yaml, const char *name, char **sets, int nsets,
                       const KeySpec *const *tables, ConfError *err);
// A copy of a resolved config with further "a.b.c=value" overrides applied (training phases).
// Values keep where they were set; the overrides report as --set. Returns 0, or -1 with err.
int config_derive(Config *c, const Config *base, char **sets, int nsets, ConfError *err);
void config_free(Config *c);

// Typed lookups. Asking for a path no table declares is a programming error (die).
const ConfValue *cfg_get(const Config *c, const char *path);
long        cfg_int(const Config *c, const char *path);
double      cfg_num(const Config *c, const char *path);
int         cfg_bool(const Config *c, const char *path);
const char *cfg_str(const Config *c, const char *path);
int         cfg_is_auto(const Config *c, const char *path);
int         cfg_is_set(const Config *c, const char *path);
// Set (by the file or --set) to a value other than the key's default. Conflict checks use this
// rather than cfg_is_set, so the canonical YAML (which spells out every default) loads back.
int         cfg_is_changed(const Config *c, const char *path);

// Writes err->msg as "FILE:LINE:COL: KEY: message" (or "FILE: KEY: message" for a defaulted key,
// "--set KEY=VALUE: message" for an override). Always returns -1 so callers can `return cfg_error(...)`.
int cfg_error(const Config *c, const char *path, ConfError *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

// The resolved config as canonical YAML: every key (set or defaulted) in table order, nested by
// path, values in canonical text. Same config -> same bytes; it is stored with every run and
// hashed for the run identity. Caller frees.
char *config_canonical_yaml(const Config *c);
// FNV-1a 64-bit hash of a byte string, as 16 hex digits into out[17].
void hash_hex(const char *s, size_t n, char out[17]);
