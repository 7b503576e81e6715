// info.h: `hlab info`: what a config describes, computed from declared shapes only (no weights
// are allocated, so a 50B-parameter config answers instantly).
#pragma once
#include "model.h"

typedef struct {
    double params_total, params_active;
    double kv_bytes, ssm_bytes;       // per sequence at the given context
    double flops_token_at_ctx;        // forward FLOPs of the token at position ctx
    double flops_token_mean;          // mean over positions 1..ctx
} ModelStats;
void model_stats(const Model *m, long ctx, int bytes_per_elem, ModelStats *s);
void info_print(const Model *m, long ctx, int bytes_per_elem, int json);

// `hlab info A.yaml B.yaml ... --table`: one row per config, and the published numbers of its
// reference.* keys next to ours. reference.kv_cache_bytes is stated for the Jamba paper's
// setting (Table 1: 256K tokens, 16-bit), so it is compared only at that context and width.
#define INFO_REF_CONTEXT 262144L
#define INFO_REF_BYTES 2
#define INFO_PARAMS_TOL 0.01      // flag parameter counts more than 1% off the published ones

typedef struct {
    const char *path;             // the config file
    char name[128];               // its file name without directory and .yaml
    char error[2048];             // non-empty: it could not be loaded or built (the rest is unset)
    char pattern[MAX_SUBLAYERS + 1];   // canonical pattern
    char short_form[160];         // compact form of it (see info.c)
    int sublayers, layers;
    ModelStats s;
    double ref_total, ref_active, ref_kv;   // 0: not published
    char ref_source[512];
} InfoRow;

// Loads and builds the config at `path` (with the --set overrides) and fills the row; errors go
// to row->error, never to the caller's exit. Returns 0, or -1 when row->error was set.
int info_row(InfoRow *row, const char *path, char **sets, int nsets, long ctx, int bytes_per_elem);
// Prints the comparison table (text, or JSON with one config object per line). Returns the
// number of rows flagged against their reference.
int info_table_print(const InfoRow *rows, int n, long ctx, int bytes_per_elem, int json);
