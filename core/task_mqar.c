// task_mqar.c: multi-query associative recall exactly as Zoology defines it
// (zoology/data/multiquery_ar.py; toolkits.md §1.2).
//
//   keys   ~ N distinct from [1, V/2)      values ~ N distinct from [V/2, V)     (0 = filler)
//   x = k1 v1 k2 v2 ... kN vN (repeated num_passes times), then the query region:
//   every key appears once more, at an even slot 2*gap_j chosen with a power-law preference for
//   early slots (p(i) ∝ a·i^(a-1)); the target at that position is its value.
//   random_non_queries replaces every remaining 0 by a random token. Zoology's filler may equal
//   a key or value of the sequence (its issue #29); no_collisions draws filler that does not.
//
// A split is one or more segments (seq_len, pairs, count), as Zoology's mixed-length training
// sets: data.mqar.train_mix / eval_mix, e.g. "64:4:100000,128:8:20000". Examples are reported
// under the slice {seq_len, num_kv_pairs}.
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
    {"data.mqar.no_collisions", KT_BOOL, "false", 0, -1, NULL, 0,
     "MQAR: random filler never equals a key or value of its sequence (Zoology's filler can, issue #29)"},
    {"data.mqar.train_examples", KT_INT, "100000", 1, 1e12, NULL, 0, "MQAR: training sequences (when train_mix is empty)"},
    {"data.mqar.valid_examples", KT_INT, "1000", 1, 1e12, NULL, 0, "MQAR: validation sequences (when eval_mix is empty)"},
    {"data.mqar.test_examples", KT_INT, "3000", 1, 1e12, NULL, 0, "MQAR: test sequences (when eval_mix is empty)"},
    {"data.mqar.train_mix", KT_STRING, "", 0, -1, NULL, 0,
     "MQAR: training segments \"len:pairs:count,...\" mixed in one set (empty: data.seq_len, num_kv_pairs, train_examples)"},
    {"data.mqar.eval_mix", KT_STRING, "", 0, -1, NULL, 0,
     "MQAR: validation and test segments \"len:pairs:count,...\", count per split (empty: data.seq_len and num_kv_pairs)"},
    {NULL, 0, NULL, 0, 0, NULL, 0, NULL}};

#define MAX_SEGMENTS 32
typedef struct { int L, N; long count; double *cdf; int space; } Segment;

typedef struct {
    int V, passes, random_fill, no_collide;
    double a;
    uint64_t seed;
    int nseg[3];
    Segment seg[3][MAX_SEGMENTS];
} Mqar;

// Parses "len:pairs:count,..." into segments. Returns the number, or -1 with a message.
static int parse_mix(const char *s, Segment *seg, char *msg, size_t cap) {
    int n = 0;
    const char *p = s;
    while (*p) {
        long L, N, count;
        int used = 0;
        if (sscanf(p, "%ld:%ld:%ld%n", &L, &N, &count, &used) != 3 || used == 0) {
            snprintf(msg, cap, "expected \"len:pairs:count\" items separated by commas, e.g. \"64:4:100000,128:8:20000\"; got \"%s\"", p);
            return -1;
        }
        if (n == MAX_SEGMENTS) { snprintf(msg, cap, "at most %d segments", MAX_SEGMENTS); return -1; }
        if (L < 2 || N < 1 || count < 1 || L > (1 << 24)) { snprintf(msg, cap, "segment %d: len >= 2, pairs >= 1, count >= 1 needed", n + 1); return -1; }
        seg[n].L = (int)L; seg[n].N = (int)N; seg[n].count = count;
        n++;
        p += used;
        if (*p == ',') p++;
        else if (*p) { snprintf(msg, cap, "unexpected \"%s\" after segment %d", p, n); return -1; }
    }
    return n;
}

// Zoology's constraints for one segment (its asserts), with what would be valid.
static int check_segment(const Config *c, const char *key, ConfError *err, long V, long P, const Segment *s) {
    if (s->L % 2) return cfg_error(c, key, err, "MQAR needs an even sequence length, got %d", s->L);
    if (V <= s->L) return cfg_error(c, "model.vocab_size", err, "MQAR needs vocab_size > sequence length %d, got %ld", s->L, V);
    if (2L * s->N * P + 2L * s->N > s->L)
        return cfg_error(c, key, err, "%d pairs x %ld passes do not fit in length %d: need 2*N*passes + 2*N <= length, so N <= %ld",
                         s->N, P, s->L, s->L / (2 * P + 2));
    if (s->N >= V / 2) return cfg_error(c, key, err, "needs fewer than vocab_size/2 = %ld distinct keys, got %d", V / 2, s->N);
    return 0;
}

// The segments of every split, from the mix keys or the single-segment keys.
static int load_segments(const Config *c, Segment seg[3][MAX_SEGMENTS], int nseg[3], ConfError *err) {
    char msg[512];
    Segment one = {.L = (int)cfg_int(c, "data.seq_len"), .N = (int)cfg_int(c, "data.mqar.num_kv_pairs")};
    const char *tm = cfg_str(c, "data.mqar.train_mix"), *em = cfg_str(c, "data.mqar.eval_mix");
    if (tm[0]) {
        if ((nseg[SPLIT_TRAIN] = parse_mix(tm, seg[SPLIT_TRAIN], msg, sizeof msg)) < 0) return cfg_error(c, "data.mqar.train_mix", err, "%s", msg);
    } else {
        seg[SPLIT_TRAIN][0] = one; seg[SPLIT_TRAIN][0].count = cfg_int(c, "data.mqar.train_examples"); nseg[SPLIT_TRAIN] = 1;
    }
    for (int s = SPLIT_VALID; s <= SPLIT_TEST; s++) {
        if (em[0]) {
            if ((nseg[s] = parse_mix(em, seg[s], msg, sizeof msg)) < 0) return cfg_error(c, "data.mqar.eval_mix", err, "%s", msg);
        } else {
            seg[s][0] = one;
            seg[s][0].count = cfg_int(c, s == SPLIT_VALID ? "data.mqar.valid_examples" : "data.mqar.test_examples");
            nseg[s] = 1;
        }
    }
    long V = cfg_int(c, "model.vocab_size"), P = cfg_int(c, "data.mqar.num_passes");
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < nseg[s]; i++) {
            const char *key = s == SPLIT_TRAIN ? (tm[0] ? "data.mqar.train_mix" : "data.mqar.num_kv_pairs")
                                               : (em[0] ? "data.mqar.eval_mix" : "data.mqar.num_kv_pairs");
            if (check_segment(c, key, err, V, P, &seg[s][i])) return -1;
        }
    return 0;
}

static int mqar_validate(const Config *c, ConfError *err) {
    Segment seg[3][MAX_SEGMENTS];
    int nseg[3];
    if (load_segments(c, seg, nseg, err)) return -1;
    long V = cfg_int(c, "model.vocab_size"), maxN = 0;
    for (int s = 0; s < 3; s++) for (int i = 0; i < nseg[s]; i++) if (seg[s][i].N > maxN) maxN = seg[s][i].N;
    if (cfg_bool(c, "data.mqar.no_collisions") && V - 1 - 2 * maxN < 1)
        return cfg_error(c, "data.mqar.no_collisions", err, "no filler token is left once keys and values are excluded");
    return 0;
}

static void *mqar_open(const Config *c, ConfError *err) {
    Mqar *q = xcalloc(1, sizeof *q);
    if (load_segments(c, q->seg, q->nseg, err)) { free(q); return NULL; }
    q->V = (int)cfg_int(c, "model.vocab_size");
    q->passes = (int)cfg_int(c, "data.mqar.num_passes");
    q->a = cfg_num(c, "data.mqar.power_a");
    q->random_fill = cfg_bool(c, "data.mqar.random_non_queries");
    q->no_collide = cfg_bool(c, "data.mqar.no_collisions");
    q->seed = (uint64_t)cfg_int(c, "data.seed");
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < q->nseg[s]; i++) {
            Segment *g = &q->seg[s][i];
            g->space = (g->L - 2 * g->N * q->passes) / 2;
            g->cdf = xmalloc(g->space * sizeof(double));
            double sum = 0;
            for (int k = 0; k < g->space; k++) { sum += q->a * pow(k + 1, q->a - 1); g->cdf[k] = sum; }
        }
    return q;
}

static long mqar_size(void *st, int split) {
    Mqar *q = st;
    long n = 0;
    for (int i = 0; i < q->nseg[split]; i++) n += q->seg[split][i].count;
    return n;
}

static int mqar_max_len(void *st) {
    Mqar *q = st;
    int m = 0;
    for (int s = 0; s < 3; s++) for (int i = 0; i < q->nseg[s]; i++) if (q->seg[s][i].L > m) m = q->seg[s][i].L;
    return m;
}

static int mqar_max_labels(void *st) {
    Mqar *q = st;
    int m = 0;
    for (int s = 0; s < 3; s++) for (int i = 0; i < q->nseg[s]; i++) if (q->seg[s][i].N > m) m = q->seg[s][i].N;
    return m;
}

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

static int mqar_example(void *st, int split, long index, int *x, int *y, Slice *slice) {
    Mqar *q = st;
    const Segment *g = q->seg[split];
    long rest = index;
    while (rest >= g->count) { rest -= g->count; g++; }   // the segment this index falls in
    Rng r;
    rng_seed(&r, task_example_seed(q->seed, split, index));
    int N = g->N, L = g->L, C = 2 * N * q->passes;
    int keys[N], vals[N], gaps[N];
    distinct(&r, keys, N, 1, q->V / 2);
    distinct(&r, vals, N, q->V / 2, q->V);
    for (int t = 0; t < L; t++) { x[t] = 0; y[t] = -1; }
    for (int p = 0; p < q->passes; p++)
        for (int j = 0; j < N; j++) { x[p * 2 * N + 2 * j] = keys[j]; x[p * 2 * N + 2 * j + 1] = vals[j]; }
    // query slots: N distinct slots drawn with probability ∝ the power law, without replacement
    // (numpy's choice(replace=False, p=...)): rejecting repeats draws from the remaining weight
    double total = g->cdf[g->space - 1];
    for (int j = 0; j < N; j++) {
        int slot, dup;
        do {
            double u = rng_uniform(&r) * total;
            int lo = 0, hi = g->space - 1;   // first slot whose cdf exceeds u
            while (lo < hi) { int mid = (lo + hi) / 2; if (g->cdf[mid] > u) hi = mid; else lo = mid + 1; }
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
        for (int t = 0; t < L; t++) {
            if (x[t] != 0) continue;
            int v, clash;
            do {
                v = (int)rng_below(&r, (uint64_t)q->V);
                clash = 0;
                if (q->no_collide) {
                    if (v == 0) clash = 1;
                    for (int j = 0; j < N && !clash; j++) clash = v == keys[j] || v == vals[j];
                }
            } while (clash);
            x[t] = v;
        }
    slice_add(slice, "seq_len", L);
    slice_add(slice, "num_kv_pairs", N);
    return L;
}

static void mqar_close(void *st) {
    Mqar *q = st;
    for (int s = 0; s < 3; s++) for (int i = 0; i < q->nseg[s]; i++) free(q->seg[s][i].cdf);
    free(q);
}

const Task mqar_task = {
    .name = "mqar", .metric = "accuracy", .keys = mqar_keys, .validate = mqar_validate,
    .open = mqar_open, .size = mqar_size, .max_len = mqar_max_len, .max_labels = mqar_max_labels,
    .example = mqar_example, .close = mqar_close,
};
