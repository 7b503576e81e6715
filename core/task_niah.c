// task_niah.c: token-level needle in a haystack, in RULER's taxonomy (conventions §4.1, §4.2),
// sized for small models trained from scratch.
//
// Variants (data.niah.variant):
//   single      one needle; its key is queried.
//   multikey    num_keys needles with distinct keys; one is queried, the others are distractors.
//   multivalue  num_values needles with one key and distinct values; the answer is every value,
//               in order of appearance.
//   multiquery  num_keys needles with distinct keys; num_queries of them are queried (in a random
//               order); the answer is their values in query order.
//
// Sequence (tokens; every key has key_len tokens, every value value_len tokens):
//   [haystack with needles] QUERY key(s) ANSWER a0 a1 ... a(n-2)
//   needle = NEEDLE key IS value
// The answer a0..a(n-1) is the queried value(s) concatenated, without separators. Labels sit on
// the answer only, teacher forced: the target at the ANSWER marker is a0, the input after it is
// a0 with target a1, ..., so an example of length L has its n labels at L-n .. L-1, and exact
// match means every answer token right. The context length is the whole example, L.
//
// Vocabulary, haystack noise or repeat (model.vocab_size = V):
//   0 padding | 1 NEEDLE | 2 IS | 3 QUERY | 4 ANSWER | keys [5, 5+K) | values [5+K, 5+K+W) |
//   haystack [5+K+W, V)          with K = key_vocab, W = value_vocab.
// Noise draws every haystack token uniformly; repeat cycles one fixed "sentence" of filler_len
// haystack tokens (RULER's repeated filler; the same sentence for every seed, as RULER's).
// Vocabulary, haystack text (bytes, V >= 256): markers are the bytes 0x01-0x04 in the same
// order; keys are lowercase letters a-z, values digits 0-9. The haystack is a window of real
// text from data.niah.text_path at a random offset (wrapping around the end); marker bytes in
// the text are replaced by spaces so they occur only as markers. Every split reads the whole
// text: the haystack is the distraction, not what is measured, and held-out ranges would cap the
// evaluation lengths.
//
// Depth (gkamradt / RULER): with a context of Q tokens before the query, answer needles of
// total length A*nl (nl = needle length) and the rest (haystack plus distractor needles) the
// background of Bg = Q - A*nl tokens, the first answer needle is inserted after
// floor(Bg * depth / 100) background tokens: depth 0 = the very start, depth 100 = right before
// the query. An insertion point that falls inside a distractor needle moves back to its start
// (as gkamradt moves back to the previous '.'), so the needle is within one needle length of
// the requested position. Further answer needles (multivalue, multiquery) follow gkamradt's
// multi-needle rule: needle i at depth + i*(100-depth)/A. Distractors sit at uniform random
// haystack offsets.
//
// Splits: training draws a length from train_lengths and a depth uniformly in [0, 100] (or, with
// train_depths: grid, one of the evaluation depths);
// valid and test are the grid eval_lengths x depths with `samples` examples per cell, cell-major
// (index / samples = cell, lengths outermost), so batches are mostly one length and
// eval.max_examples keeps the first cells. Slices: {context, depth}. data.seq_len is not used.
#include "task.h"
#include "common.h"
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const KeySpec niah_keys[] = {
    {"data.niah.variant", KT_STRING, "single", 0, -1, "single|multikey|multivalue|multiquery", 0,
     "NIAH: single needle; multikey (distractor needles with other keys); multivalue (one key, all its values); multiquery (several keys queried)"},
    {"data.niah.haystack", KT_STRING, "noise", 0, -1, "noise|repeat|text", 0,
     "NIAH: random haystack tokens (noise), one filler sentence repeated (repeat), or real text at byte level (text: vocab 256)"},
    {"data.niah.text_path", KT_STRING, "/usr/share/common-licenses", 0, -1, NULL, 0,
     "NIAH: haystack text, a file or a directory whose regular files are concatenated in name order (haystack text only)"},
    {"data.niah.key_len", KT_INT, "1", 1, 64, NULL, 0, "NIAH: tokens per key"},
    {"data.niah.value_len", KT_INT, "2", 1, 64, NULL, 0, "NIAH: tokens per value (the answer has value_len tokens per queried value)"},
    {"data.niah.key_vocab", KT_INT, "64", 1, 1 << 24, NULL, 0, "NIAH: distinct key tokens (noise/repeat; text keys are the letters a-z)"},
    {"data.niah.value_vocab", KT_INT, "64", 1, 1 << 24, NULL, 0, "NIAH: distinct value tokens (noise/repeat; text values are the digits 0-9)"},
    {"data.niah.num_keys", KT_INT, "4", 1, 1024, NULL, 0, "NIAH: needles with distinct keys (multikey, multiquery; RULER num_needle_k)"},
    {"data.niah.num_values", KT_INT, "4", 1, 1024, NULL, 0, "NIAH: values of the one key (multivalue; RULER num_needle_v)"},
    {"data.niah.num_queries", KT_INT, "4", 1, 1024, NULL, 0, "NIAH: keys queried, at most num_keys (multiquery; RULER num_needle_q)"},
    {"data.niah.filler_len", KT_INT, "16", 1, 4096, NULL, 0, "NIAH: length of the filler sentence that haystack repeat cycles"},
    {"data.niah.train_lengths", KT_STRING, "256", 0, -1, NULL, 0,
     "NIAH: training context lengths \"a,b,...\" (whole example, query and answer included), one drawn per example"},
    {"data.niah.eval_lengths", KT_STRING, "256", 0, -1, NULL, 0,
     "NIAH: validation/test context lengths \"a,b,...\", may exceed the training lengths"},
    {"data.niah.depths", KT_STRING, "0,25,50,75,100", 0, -1, NULL, 0,
     "NIAH: evaluation needle depths in percent \"a,b,...\" (0 = start, 100 = right before the query); training draws depths uniformly"},
    {"data.niah.train_depths", KT_STRING, "uniform", 0, -1, "uniform|grid", 0,
     "NIAH: training needle depths: uniform on [0, 100] (a needle right before the query, depth 100, is then rare: about "
     "1 in 250 at length 256), or drawn from data.niah.depths, the evaluation grid"},
    {"data.niah.samples", KT_INT, "20", 1, 1e9, NULL, 0, "NIAH: validation and test examples per (length, depth) cell"},
    {"data.niah.train_examples", KT_INT, "100000", 1, 1e12, NULL, 0, "NIAH: training examples per epoch"},
    {NULL, 0, NULL, 0, 0, NULL, 0, NULL}};

enum { SINGLE, MULTIKEY, MULTIVALUE, MULTIQUERY };
enum { NOISE, REPEAT, TEXT };
enum { NIAH_NEEDLE = 1, NIAH_IS, NIAH_QUERY, NIAH_ANSWER, NIAH_SPECIALS };   // 0 is padding
#define MAX_LIST 64

typedef struct {
    int variant, haystack, kl, vl;
    int key_lo, key_n, val_lo, val_n, hay_lo, hay_n;   // token ranges [lo, lo+n)
    int needles, answers, queries, distinct_keys;       // per example, from the variant
    int nl, tail;                                       // needle length; query + answer tokens
    int ntrain, train_len[MAX_LIST], neval, eval_len[MAX_LIST], ndepth, depth[MAX_LIST];
    int train_grid;                                     // training depths from the grid (else uniform)
    long samples, train_examples;
    uint64_t seed;
    int filler_len, *filler;
    unsigned char *text;
    long text_len;
} Niah;

// How many distinct strings of len tokens over n symbols, capped (it only has to beat a count).
static double strings(int n, int len) { double s = pow(n, len); return s > 1e18 ? 1e18 : s; }

// Reads the config into q (no files) and checks that everything fits. Used by validate and open.
static int niah_load(const Config *c, Niah *q, ConfError *err) {
    char msg[512];
    const char *var = cfg_str(c, "data.niah.variant"), *hay = cfg_str(c, "data.niah.haystack");
    memset(q, 0, sizeof *q);
    q->variant = !strcmp(var, "multikey") ? MULTIKEY : !strcmp(var, "multivalue") ? MULTIVALUE : !strcmp(var, "multiquery") ? MULTIQUERY : SINGLE;
    q->haystack = !strcmp(hay, "repeat") ? REPEAT : !strcmp(hay, "text") ? TEXT : NOISE;
    q->kl = (int)cfg_int(c, "data.niah.key_len");
    q->vl = (int)cfg_int(c, "data.niah.value_len");
    q->filler_len = (int)cfg_int(c, "data.niah.filler_len");
    q->samples = cfg_int(c, "data.niah.samples");
    q->train_examples = cfg_int(c, "data.niah.train_examples");
    q->seed = (uint64_t)cfg_int(c, "data.seed");
    int K = (int)cfg_int(c, "data.niah.num_keys"), NV = (int)cfg_int(c, "data.niah.num_values"), NQ = (int)cfg_int(c, "data.niah.num_queries");
    switch (q->variant) {
    case SINGLE: q->needles = 1; q->answers = 1; q->queries = 1; q->distinct_keys = 1; break;
    case MULTIKEY:
        if (K < 2) return cfg_error(c, "data.niah.num_keys", err, "multikey needs at least 2 keys (one queried, the rest distractors), got %d", K);
        q->needles = K; q->answers = 1; q->queries = 1; q->distinct_keys = K; break;
    case MULTIVALUE: q->needles = NV; q->answers = NV; q->queries = 1; q->distinct_keys = 1; break;
    case MULTIQUERY:
        if (NQ > K) return cfg_error(c, "data.niah.num_queries", err, "cannot query %d keys out of num_keys = %d: need num_queries <= num_keys", NQ, K);
        q->needles = K; q->answers = NQ; q->queries = NQ; q->distinct_keys = K; break;
    }
    q->nl = 2 + q->kl + q->vl;                           // NEEDLE key IS value
    q->tail = 2 + q->queries * q->kl + q->answers * q->vl - 1;   // QUERY keys ANSWER, answer inputs

    long V = cfg_int(c, "model.vocab_size");
    if (q->haystack == TEXT) {
        if (V < 256) return cfg_error(c, "model.vocab_size", err, "haystack text is byte-level and needs vocab_size >= 256, got %ld", V);
        if (cfg_is_changed(c, "data.niah.key_vocab") || cfg_is_changed(c, "data.niah.value_vocab"))
            return cfg_error(c, cfg_is_changed(c, "data.niah.key_vocab") ? "data.niah.key_vocab" : "data.niah.value_vocab", err,
                             "haystack text uses the letters a-z as key tokens and the digits 0-9 as values; key_vocab and value_vocab apply to noise and repeat");
        q->key_lo = 'a'; q->key_n = 26; q->val_lo = '0'; q->val_n = 10; q->hay_lo = 0; q->hay_n = 256;
    } else {
        q->key_n = (int)cfg_int(c, "data.niah.key_vocab");
        q->val_n = (int)cfg_int(c, "data.niah.value_vocab");
        q->key_lo = NIAH_SPECIALS; q->val_lo = q->key_lo + q->key_n; q->hay_lo = q->val_lo + q->val_n;
        q->hay_n = (int)(V - q->hay_lo);
        if (q->hay_n < 1)
            return cfg_error(c, "model.vocab_size", err, "the NIAH layout needs %d special + %d key + %d value tokens + at least 1 haystack token: vocab_size >= %d, got %ld",
                             NIAH_SPECIALS, q->key_n, q->val_n, q->hay_lo + 1, V);
    }
    if (strings(q->key_n, q->kl) < q->distinct_keys)
        return cfg_error(c, q->haystack == TEXT ? "data.niah.key_len" : "data.niah.key_vocab", err,
                         "%d distinct keys needed, but %d key tokens ^ key_len %d give only %.0f", q->distinct_keys, q->key_n, q->kl, strings(q->key_n, q->kl));
    if (strings(q->val_n, q->vl) < q->needles)
        return cfg_error(c, q->haystack == TEXT ? "data.niah.value_len" : "data.niah.value_vocab", err,
                         "%d distinct values needed, but %d value tokens ^ value_len %d give only %.0f", q->needles, q->val_n, q->vl, strings(q->val_n, q->vl));

    if ((q->ntrain = task_parse_ints(cfg_str(c, "data.niah.train_lengths"), q->train_len, MAX_LIST, 1, 1 << 24, 0, msg, sizeof msg)) < 0)
        return cfg_error(c, "data.niah.train_lengths", err, "%s", msg);
    if ((q->neval = task_parse_ints(cfg_str(c, "data.niah.eval_lengths"), q->eval_len, MAX_LIST, 1, 1 << 24, 1, msg, sizeof msg)) < 0)
        return cfg_error(c, "data.niah.eval_lengths", err, "%s", msg);
    if ((q->ndepth = task_parse_ints(cfg_str(c, "data.niah.depths"), q->depth, MAX_LIST, 0, 100, 1, msg, sizeof msg)) < 0)
        return cfg_error(c, "data.niah.depths", err, "depths are percentages in [0, 100]: %s", msg);
    q->train_grid = !strcmp(cfg_str(c, "data.niah.train_depths"), "grid");
    int need = q->needles * q->nl + q->tail;
    for (int k = 0; k < 2; k++) {
        const int *len = k ? q->eval_len : q->train_len;
        for (int i = 0; i < (k ? q->neval : q->ntrain); i++)
            if (len[i] < need)
                return cfg_error(c, k ? "data.niah.eval_lengths" : "data.niah.train_lengths", err,
                                 "length %d cannot hold %d needle(s) of %d tokens plus %d query and answer tokens: every length must be >= %d",
                                 len[i], q->needles, q->nl, q->tail, need);
    }
    return 0;
}

static int niah_validate(const Config *c, ConfError *err) {
    Niah q;
    return niah_load(c, &q, err);
}

// The haystack text, as core/task_bytes.c reads a corpus: a file, or a directory's regular
// files in name order. Marker bytes become spaces.
static int load_text(const Config *c, Niah *q, ConfError *err) {
    const char *path = cfg_str(c, "data.niah.text_path");
    if (task_read_corpus(c, "data.niah.text_path", &q->text, &q->text_len, err)) return -1;
    if (q->text_len == 0) return cfg_error(c, "data.niah.text_path", err, "%s holds no text", path);
    for (long i = 0; i < q->text_len; i++)
        if (q->text[i] >= NIAH_NEEDLE && q->text[i] < NIAH_SPECIALS) q->text[i] = ' ';
    return 0;
}

static void niah_close(void *st) {
    Niah *q = st;
    free(q->filler);
    free(q->text);
    free(q);
}

static void *niah_open(const Config *c, ConfError *err) {
    Niah *q = xmalloc(sizeof *q);
    if (niah_load(c, q, err)) { free(q); return NULL; }
    if (q->haystack == TEXT && load_text(c, q, err)) { niah_close(q); return NULL; }
    if (q->haystack == REPEAT) {
        // one fixed sentence for every seed and split, as RULER's filler is one fixed text
        Rng r;
        rng_seed(&r, 0x5EEDF111E5ull);
        q->filler = xmalloc(q->filler_len * sizeof(int));
        for (int i = 0; i < q->filler_len; i++) q->filler[i] = q->hay_lo + (int)rng_below(&r, (uint64_t)q->hay_n);
    }
    return q;
}

static long niah_size(void *st, int split) {
    Niah *q = st;
    return split == SPLIT_TRAIN ? q->train_examples : (long)q->neval * q->ndepth * q->samples;
}

static int niah_max_len(void *st) {
    Niah *q = st;
    int m = 0;
    for (int i = 0; i < q->ntrain; i++) if (q->train_len[i] > m) m = q->train_len[i];
    for (int i = 0; i < q->neval; i++) if (q->eval_len[i] > m) m = q->eval_len[i];
    return m;
}

static int niah_max_labels(void *st) { Niah *q = st; return q->answers * q->vl; }

// n distinct strings of len tokens from [lo, lo+range), by rejection (validate checked the space)
static void distinct_strings(Rng *r, int *out, int n, int len, int lo, int range) {
    for (int i = 0; i < n; i++) {
        int dup;
        do {
            for (int k = 0; k < len; k++) out[i * len + k] = lo + (int)rng_below(r, (uint64_t)range);
            dup = 0;
            for (int j = 0; j < i && !dup; j++) dup = !memcmp(out + j * len, out + i * len, len * sizeof(int));
        } while (dup);
    }
}

// The next haystack token: the stream continues across needles, so text stays contiguous.
static int hay_token(const Niah *q, Rng *r, long text_off, long k) {
    if (q->haystack == TEXT) return q->text[(text_off + k) % q->text_len];
    if (q->haystack == REPEAT) return q->filler[k % q->filler_len];
    return q->hay_lo + (int)rng_below(r, (uint64_t)q->hay_n);
}

static void sort_longs(long *a, int n) {
    for (int i = 1; i < n; i++) for (int j = i; j > 0 && a[j - 1] > a[j]; j--) { long t = a[j]; a[j] = a[j - 1]; a[j - 1] = t; }
}

// Start positions (in the sequence) of the needles: answer needles 0..A-1 first, in order of
// appearance, then the distractors. Q is the context length before the query.
static void place_needles(const Niah *q, Rng *r, int Q, double depth, long *start) {
    int A = q->answers, D = q->needles - A, nl = q->nl;
    long H = Q - (long)q->needles * nl, Bg = Q - (long)A * nl;
    long h[D + 1], bs[D + 1], b[A];
    for (int j = 0; j < D; j++) h[j] = (long)rng_below(r, (uint64_t)H + 1);   // haystack tokens before it
    sort_longs(h, D);
    for (int j = 0; j < D; j++) bs[j] = h[j] + (long)j * nl;                 // start in the background
    for (int i = 0; i < A; i++) {
        double d = depth + i * (100.0 - depth) / A;                           // gkamradt multi-needle spacing
        b[i] = (long)floor(Bg * d / 100.0);
        if (b[i] > Bg) b[i] = Bg;
        for (int j = 0; j < D; j++) if (bs[j] < b[i] && b[i] < bs[j] + nl) b[i] = bs[j];   // never split a distractor
        start[i] = b[i] + (long)i * nl;
    }
    for (int j = 0; j < D; j++) {
        int before = 0;   // answer needles inserted at or before this distractor's place
        for (int i = 0; i < A; i++) before += b[i] <= bs[j];
        start[A + j] = bs[j] + (long)before * nl;
    }
}

static int niah_example(void *st, int split, long index, int *x, int *y, Slice *slice) {
    Niah *q = st;
    Rng r;
    rng_seed(&r, task_example_seed(q->seed, split, index));
    int L;
    double depth;
    if (split == SPLIT_TRAIN) {
        L = q->train_len[rng_below(&r, (uint64_t)q->ntrain)];
        depth = q->train_grid ? q->depth[rng_below(&r, (uint64_t)q->ndepth)]
                              : rng_below(&r, 100001) / 1000.0;   // uniform on [0, 100], both ends included
    } else {
        long cell = index / q->samples;           // cell-major: lengths outermost, then depths
        L = q->eval_len[(cell / q->ndepth) % q->neval];
        depth = q->depth[cell % q->ndepth];
    }
    int N = q->needles, A = q->answers, kl = q->kl, vl = q->vl;
    int Q = L - q->tail;
    int keys[N * kl], vals[N * vl], order[A];
    // keys: one per needle, or one shared key (multivalue); values distinct over the example
    distinct_strings(&r, keys, q->distinct_keys, kl, q->key_lo, q->key_n);
    for (int i = q->distinct_keys; i < N; i++) memcpy(keys + i * kl, keys, kl * sizeof(int));
    distinct_strings(&r, vals, N, vl, q->val_lo, q->val_n);
    // query order: appearance order, or a random permutation of the queried needles (multiquery)
    for (int i = 0; i < A; i++) order[i] = i;
    if (q->variant == MULTIQUERY)
        for (int i = A - 1; i > 0; i--) { int j = (int)rng_below(&r, (uint64_t)i + 1), t = order[i]; order[i] = order[j]; order[j] = t; }
    long text_off = q->haystack == TEXT ? (long)rng_below(&r, (uint64_t)q->text_len) : 0;

    long start[N];
    int idx[N];
    place_needles(q, &r, Q, depth, start);
    for (int i = 0; i < N; i++) idx[i] = i;
    for (int i = 1; i < N; i++) for (int j = i; j > 0 && start[idx[j - 1]] > start[idx[j]]; j--) { int t = idx[j]; idx[j] = idx[j - 1]; idx[j - 1] = t; }
    int t = 0;
    long k = 0;
    for (int n = 0; n < N; n++) {
        int i = idx[n];
        while (t < start[i]) x[t++] = hay_token(q, &r, text_off, k++);
        x[t++] = NIAH_NEEDLE;
        for (int j = 0; j < kl; j++) x[t++] = keys[i * kl + j];
        x[t++] = NIAH_IS;
        for (int j = 0; j < vl; j++) x[t++] = vals[i * vl + j];
    }
    while (t < Q) x[t++] = hay_token(q, &r, text_off, k++);
    for (int p = 0; p < L; p++) y[p] = -1;

    // QUERY key(s) ANSWER, then the answer teacher forced
    x[t++] = NIAH_QUERY;
    for (int j = 0; j < q->queries; j++)
        for (int m = 0; m < kl; m++) x[t++] = keys[order[j] * kl + m];
    x[t] = NIAH_ANSWER;
    int nans = A * vl;
    for (int a = 0; a < nans; a++) {
        int tok = vals[order[a / vl] * vl + a % vl];
        y[t + a] = tok;
        if (t + a + 1 < L) x[t + a + 1] = tok;
    }
    slice_add(slice, "context", L);
    slice_add(slice, "depth", lround(depth));
    return L;
}

// An answer is of the right kind when it is a value token (a digit at byte level).
static int niah_adherent(void *st, int split, long index, const int *tokens, int pos, int pred) {
    Niah *q = st;
    return pred >= q->val_lo && pred < q->val_lo + q->val_n;
}

const Task niah_task = {
    .name = "niah", .metric = "accuracy", .keys = niah_keys, .validate = niah_validate,
    .open = niah_open, .size = niah_size, .max_len = niah_max_len, .max_labels = niah_max_labels,
    .example = niah_example, .adherent = niah_adherent, .close = niah_close,
};
