// task_mqar.c: multi-query associative recall exactly as Zoology defines it
// (zoology/data/multiquery_ar.py; toolkits.md §1.2).
//
//   keys   ~ N distinct from [1, V/2)      values ~ N distinct from [V/2, V)     (0 = filler)
//   x = k1 v1 k2 v2 ... kN vN (repeated num_passes times), then the query region:
//   every key appears once more, at an even slot 2*gap_j chosen with a power-law preference for
//   early slots (p(i) ∝ a·i^(a-1)); the target at that position is its value.
//   random_non_queries replaces every remaining 0 by a random token (may collide with keys).
#include "task.h"
#include "common.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const KeySpec mqar_keys[] = {
    {"data.mqar.num_kv_pairs", KT_INT, "4", 1, 1 << 20, NULL, 0, "MQAR: key-value pairs per sequence (N)"},
    {"data.mqar.num_passes", KT_INT, "1", 1, 1024, NULL, 0, "MQAR: times the key-value context is repeated"},
    {"data.mqar.power_a", KT_FLOAT, "0.01", 1e-9, 1, NULL, 0, "MQAR: power-law exponent of query gaps (1 = uniform)"},
    {"data.mqar.random_non_queries", KT_BOOL, "true", 0, -1, NULL, 0, "MQAR: replace filler zeros by random tokens"},
    {"data.mqar.train_examples", KT_INT, "100000", 1, 1e12, NULL, 0, "MQAR: training sequences"},
    {"data.mqar.valid_examples", KT_INT, "1000", 1, 1e12, NULL, 0, "MQAR: validation sequences (early stopping)"},
    {"data.mqar.test_examples", KT_INT, "3000", 1, 1e12, NULL, 0, "MQAR: test sequences (final score)"},
    {NULL, 0, NULL, 0, 0, NULL, 0, NULL}};

typedef struct {
    int V, L, N, passes, random_fill;
    double a;
    long n[3];
    uint64_t seed;
    double *cdf;     // (space) cumulative power-law weights of the query slots
    int space;
} Mqar;

static int mqar_validate(const Config *c, ConfError *err) {
    long V = cfg_int(c, "model.vocab_size"), L = cfg_int(c, "data.seq_len");
    long N = cfg_int(c, "data.mqar.num_kv_pairs"), P = cfg_int(c, "data.mqar.num_passes");
    if (L % 2) return cfg_error(c, "data.seq_len", err, "MQAR needs an even sequence length, got %ld", L);
    if (V <= L) return cfg_error(c, "model.vocab_size", err, "MQAR needs vocab_size > seq_len (%ld), got %ld", L, V);
    if (2 * N * P + 2 * N > L)
        return cfg_error(c, "data.mqar.num_kv_pairs", err,
                         "%ld pairs x %ld passes do not fit in seq_len %ld: need 2*N*passes + 2*N <= seq_len, so N <= %ld",
                         N, P, L, L / (2 * P + 2));
    if (N >= V / 2) return cfg_error(c, "data.mqar.num_kv_pairs", err, "needs fewer than vocab_size/2 = %ld distinct keys", V / 2);
    return 0;
}

static void *mqar_open(const Config *c, ConfError *err) {
    Mqar *q = xcalloc(1, sizeof *q);
    q->V = (int)cfg_int(c, "model.vocab_size"); q->L = (int)cfg_int(c, "data.seq_len");
    q->N = (int)cfg_int(c, "data.mqar.num_kv_pairs"); q->passes = (int)cfg_int(c, "data.mqar.num_passes");
    q->a = cfg_num(c, "data.mqar.power_a"); q->random_fill = cfg_bool(c, "data.mqar.random_non_queries");
    q->n[SPLIT_TRAIN] = cfg_int(c, "data.mqar.train_examples");
    q->n[SPLIT_VALID] = cfg_int(c, "data.mqar.valid_examples");
    q->n[SPLIT_TEST] = cfg_int(c, "data.mqar.test_examples");
    q->seed = (uint64_t)cfg_int(c, "data.seed");
    q->space = (q->L - 2 * q->N * q->passes) / 2;
    q->cdf = xmalloc(q->space * sizeof(double));
    double s = 0;
    for (int i = 0; i < q->space; i++) { s += q->a * pow(i + 1, q->a - 1); q->cdf[i] = s; }
    return q;
}

static long mqar_size(void *st, int split) { return ((Mqar *)st)->n[split]; }
static int mqar_max_labels(void *st) { return ((Mqar *)st)->N; }

// n distinct integers from [lo, hi) by rejection (n is small next to the range)
static void distinct(Rng *r, int *out, int n, int lo, int hi) {
    for (int i = 0; i < n; i++) {
        int v, dup;
        do {
            v = lo + (int)rng_below(r, (uint64_t)(hi - lo));
            dup = 0;
            for (int j = 0; j < i; j++) if (out[j] == v) { dup = 1; break; }
        } while (dup);
        out[i] = v;
    }
}

static void mqar_example(void *st, int split, long index, int *x, int *y) {
    Mqar *q = st;
    Rng r;
    rng_seed(&r, task_example_seed(q->seed, split, index));
    int N = q->N, L = q->L, C = 2 * N * q->passes;
    int keys[N], vals[N], gaps[N];
    distinct(&r, keys, N, 1, q->V / 2);
    distinct(&r, vals, N, q->V / 2, q->V);
    for (int t = 0; t < L; t++) { x[t] = 0; y[t] = -1; }
    for (int p = 0; p < q->passes; p++)
        for (int j = 0; j < N; j++) { x[p * 2 * N + 2 * j] = keys[j]; x[p * 2 * N + 2 * j + 1] = vals[j]; }
    // query slots: N distinct slots drawn with probability ∝ the power law, without replacement
    // (as numpy's choice(replace=False, p=...)): draw from the remaining weight each time
    double total = q->cdf[q->space - 1];
    for (int j = 0; j < N; j++) {
        int slot, dup;
        do {
            double u = rng_uniform(&r) * total;
            int lo = 0, hi = q->space - 1;   // first slot whose cdf exceeds u
            while (lo < hi) { int mid = (lo + hi) / 2; if (q->cdf[mid] > u) hi = mid; else lo = mid + 1; }
            slot = lo; dup = 0;
            for (int k = 0; k < j; k++) if (gaps[k] == slot) { dup = 1; break; }
        } while (dup);
        gaps[j] = slot;
    }
    for (int j = 0; j < N; j++) {
        int pos = C + 2 * gaps[j];     // always < L: 2*gap <= 2*(space-1) = L - C - 2
        x[pos] = keys[j];
        y[pos] = vals[j];
    }
    if (q->random_fill)
        for (int t = 0; t < L; t++) if (x[t] == 0) x[t] = (int)rng_below(&r, (uint64_t)q->V);
}

static void mqar_close(void *st) { Mqar *q = st; free(q->cdf); free(q); }

const Task mqar_task = {
    .name = "mqar", .metric = "accuracy", .keys = mqar_keys, .validate = mqar_validate,
    .open = mqar_open, .size = mqar_size, .max_labels = mqar_max_labels,
    .example = mqar_example, .close = mqar_close,
};
