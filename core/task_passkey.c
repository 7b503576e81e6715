// task_passkey.c: passkey retrieval in the Landmark Attention format (Mohtashami & Jaggi 2023,
// epfml/landmark-attention llama/run_test.py; conventions §4.3), byte level (vocabulary 256).
//
//   <intro>\n<garbage prefix>\n<info>\n<garbage suffix>\n<question> NNNNN
//   intro    "There is an important info hidden inside a lot of irrelevant text. Find it and
//             memorize them. I will quiz you about the important information there."
//   garbage  "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back
//             again." joined by single spaces and cut to a length; the prefix and the suffix are
//             both cut from the start of that text (as run_test.py does)
//   info     "The pass key is NNNNN. Remember it. NNNNN is the pass key."
//   question "What is the pass key? The pass key is"
// The pass key has exactly `digits` digits (uniform, no leading zero: the "random 5-digit key"
// of later papers; Landmark's randint(1, 50000) varies in length). The answer is " NNNNN": the
// space is given as input (a model would generate it), and only the digits are labelled, teacher
// forced: the target at the space is the first digit, the input after it the first digit with
// the second as target, and so on. The metric is exact match: every digit right.
//
// The context length L is the whole example in bytes; the garbage fills what the fixed text
// leaves, n = L - fixed. Depth d puts floor(n * d / 100) garbage bytes in the prefix: depth 0 =
// the info line right after the intro, 100 = right before the question. Training draws a length
// from train_lengths and a prefix uniformly in [0, n] (as run_test.py); valid and test are the
// grid eval_lengths x depths with `samples` examples per cell, cell-major (lengths outermost).
// Slices: {context, depth}. data.seq_len is not used.
#include "task.h"
#include "common.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const KeySpec passkey_keys[] = {
    {"data.passkey.digits", KT_INT, "5", 1, 18, NULL, 0, "passkey: digits of the pass key (exact match needs all of them)"},
    {"data.passkey.train_lengths", KT_STRING, "512", 0, -1, NULL, 0,
     "passkey: training context lengths in bytes \"a,b,...\" (whole example), one drawn per example"},
    {"data.passkey.eval_lengths", KT_STRING, "512", 0, -1, NULL, 0,
     "passkey: validation/test context lengths in bytes \"a,b,...\", may exceed the training lengths"},
    {"data.passkey.depths", KT_STRING, "0,25,50,75,100", 0, -1, NULL, 0,
     "passkey: evaluation depths in percent \"a,b,...\" (0 = right after the intro, 100 = right before the question); training draws the position uniformly"},
    {"data.passkey.samples", KT_INT, "20", 1, 1e9, NULL, 0, "passkey: validation and test examples per (length, depth) cell"},
    {"data.passkey.train_examples", KT_INT, "100000", 1, 1e12, NULL, 0, "passkey: training examples per epoch"},
    {NULL, 0, NULL, 0, 0, NULL, 0, NULL}};

static const char PK_INTRO[] =
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. "
    "I will quiz you about the important information there.";
static const char PK_GARBAGE[] = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";
static const char PK_QUESTION[] = "What is the pass key? The pass key is";
#define MAX_LIST 64

typedef struct {
    int digits, ntrain, train_len[MAX_LIST], neval, eval_len[MAX_LIST], ndepth, depth[MAX_LIST];
    long samples, train_examples;
    uint64_t seed;
} Passkey;

// Bytes of "The pass key is K. Remember it. K is the pass key." for a key of n digits.
static int info_len(int n) { return (int)strlen("The pass key is . Remember it.  is the pass key.") + 2 * n; }

// Everything but the garbage: intro, info, question, four newlines, the space and the answer
// inputs (digits - 1).
static int fixed_len(int n) { return (int)(strlen(PK_INTRO) + info_len(n) + strlen(PK_QUESTION)) + 4 + n; }

static int passkey_load(const Config *c, Passkey *p, ConfError *err) {
    char msg[512];
    memset(p, 0, sizeof *p);
    p->digits = (int)cfg_int(c, "data.passkey.digits");
    p->samples = cfg_int(c, "data.passkey.samples");
    p->train_examples = cfg_int(c, "data.passkey.train_examples");
    p->seed = (uint64_t)cfg_int(c, "data.seed");
    if (cfg_int(c, "model.vocab_size") < 256)
        return cfg_error(c, "model.vocab_size", err, "passkey is byte-level and needs vocab_size >= 256, got %ld", cfg_int(c, "model.vocab_size"));
    if ((p->ntrain = task_parse_ints(cfg_str(c, "data.passkey.train_lengths"), p->train_len, MAX_LIST, 1, 1 << 24, 0, msg, sizeof msg)) < 0)
        return cfg_error(c, "data.passkey.train_lengths", err, "%s", msg);
    if ((p->neval = task_parse_ints(cfg_str(c, "data.passkey.eval_lengths"), p->eval_len, MAX_LIST, 1, 1 << 24, 1, msg, sizeof msg)) < 0)
        return cfg_error(c, "data.passkey.eval_lengths", err, "%s", msg);
    if ((p->ndepth = task_parse_ints(cfg_str(c, "data.passkey.depths"), p->depth, MAX_LIST, 0, 100, 1, msg, sizeof msg)) < 0)
        return cfg_error(c, "data.passkey.depths", err, "depths are percentages in [0, 100]: %s", msg);
    int need = fixed_len(p->digits);
    for (int k = 0; k < 2; k++) {
        const int *len = k ? p->eval_len : p->train_len;
        for (int i = 0; i < (k ? p->neval : p->ntrain); i++)
            if (len[i] < need)
                return cfg_error(c, k ? "data.passkey.eval_lengths" : "data.passkey.train_lengths", err,
                                 "length %d is shorter than the prompt without garbage (%d bytes with a %d-digit key): every length must be >= %d",
                                 len[i], need, p->digits, need);
    }
    return 0;
}

static int passkey_validate(const Config *c, ConfError *err) {
    Passkey p;
    return passkey_load(c, &p, err);
}

static void *passkey_open(const Config *c, ConfError *err) {
    Passkey *p = xmalloc(sizeof *p);
    if (passkey_load(c, p, err)) { free(p); return NULL; }
    return p;
}

static long passkey_size(void *st, int split) {
    Passkey *p = st;
    return split == SPLIT_TRAIN ? p->train_examples : (long)p->neval * p->ndepth * p->samples;
}

static int passkey_max_len(void *st) {
    Passkey *p = st;
    int m = 0;
    for (int i = 0; i < p->ntrain; i++) if (p->train_len[i] > m) m = p->train_len[i];
    for (int i = 0; i < p->neval; i++) if (p->eval_len[i] > m) m = p->eval_len[i];
    return m;
}

static int passkey_max_labels(void *st) { return ((Passkey *)st)->digits; }

static int put(int *x, int t, const char *s) { while (*s) x[t++] = (unsigned char)*s++; return t; }

// n bytes of the garbage text: the filler sentence joined by spaces, from its start
static int put_garbage(int *x, int t, long n) {
    long period = (long)strlen(PK_GARBAGE) + 1;
    for (long i = 0; i < n; i++) x[t++] = i % period < period - 1 ? (unsigned char)PK_GARBAGE[i % period] : ' ';
    return t;
}

static int passkey_example(void *st, int split, long index, int *x, int *y, Slice *slice) {
    Passkey *p = st;
    Rng r;
    rng_seed(&r, task_example_seed(p->seed, split, index));
    int L = split == SPLIT_TRAIN ? p->train_len[rng_below(&r, (uint64_t)p->ntrain)]
                                 : p->eval_len[(index / p->samples / p->ndepth) % p->neval];
    long n = L - fixed_len(p->digits), prefix;
    if (split == SPLIT_TRAIN) prefix = (long)rng_below(&r, (uint64_t)n + 1);
    else prefix = (long)floor(n * p->depth[(index / p->samples) % p->ndepth] / 100.0);
    uint64_t lo = 1;
    for (int i = 1; i < p->digits; i++) lo *= 10;
    uint64_t key = lo + rng_below(&r, 9 * lo);   // exactly `digits` digits
    char ks[24];
    snprintf(ks, sizeof ks, "%llu", (unsigned long long)key);

    int t = put(x, 0, PK_INTRO);
    x[t++] = '\n';
    t = put_garbage(x, t, prefix);
    x[t++] = '\n';
    t = put(x, t, "The pass key is "); t = put(x, t, ks); t = put(x, t, ". Remember it. ");
    t = put(x, t, ks); t = put(x, t, " is the pass key.");
    x[t++] = '\n';
    t = put_garbage(x, t, n - prefix);
    x[t++] = '\n';
    t = put(x, t, PK_QUESTION);
    x[t] = ' ';
    for (int i = 0; i < L; i++) y[i] = -1;
    for (int i = 0; i < p->digits; i++) {
        y[t + i] = (unsigned char)ks[i];
        if (i + 1 < p->digits) x[t + i + 1] = (unsigned char)ks[i];
    }
    slice_add(slice, "context", L);
    slice_add(slice, "depth", split == SPLIT_TRAIN ? (n ? lround(100.0 * prefix / n) : 0) : p->depth[(index / p->samples) % p->ndepth]);
    return L;
}

// An answer is of the right kind when it is a digit.
static int passkey_adherent(void *st, int split, long index, const int *tokens, int pos, int pred) {
    return pred >= '0' && pred <= '9';
}

static void passkey_close(void *st) { free(st); }

const Task passkey_task = {
    .name = "passkey", .metric = "exact_match", .keys = passkey_keys, .validate = passkey_validate,
    .open = passkey_open, .size = passkey_size, .max_len = passkey_max_len, .max_labels = passkey_max_labels,
    .example = passkey_example, .adherent = passkey_adherent, .close = passkey_close,
};
