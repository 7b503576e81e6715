// task_icl.c: in-context classification with arbitrary labels, a token-level analogue of the
// Jamba paper's IMDB in-context-learning / format-adherence experiment (conventions.md §4.4:
// pure Mamba "often does not follow the correct format", answering with label words that are
// not among the prompt's labels, while a 1:7 attention hybrid does ICL).
//
// Vocabulary layout (K = classes, C = cluster_size, U = neutral_tokens, W = label_vocab):
//   0                      padding (never inside an example)
//   1                      SEP: ends an item; the token after it is the item's label
//   [2 + c*C, 2 + (c+1)*C) the item tokens of class c (c = 0 .. K-1)
//   [2 + K*C, +U)          neutral item tokens, shared by all classes
//   [2 + K*C + U, +W)      label tokens
// so model.vocab_size must be at least 2 + K*C + U + W.
//
// One sequence:  item_1 SEP lab(c_1)  item_2 SEP lab(c_2) ... item_S SEP lab(c_S)  query SEP
// An item of class c is item_len tokens, each from c's cluster, or (with probability
// neutral_frac) a neutral token; at least one token is always from the cluster, so the class of
// an item is a fixed rule shared by every sequence, learnable in the weights. The label tokens
// lab(0..K-1) are K distinct tokens drawn FRESH for every sequence, in a random class order:
// which token names which class exists only in this sequence's shots. Every class occurs among
// the shots at least once, so the answer is always in context.
//
// The labelled position is the final SEP; its target is lab(class of the query).
//  - accuracy: the model must (1) recognise the query's class (in weights), (2) find a shot of
//    the same class and copy the label that followed it (in context: induction / retrieval).
//    Guessing among the K in-context labels gives 1/K.
//  - format_adherence (adherent() below): the prediction is one of this sequence's K label
//    tokens, whatever the class. It only needs "answer with one of the labels shown", the
//    format; a model that answers with a label token absent from the prompt (the Mamba failure
//    in Jamba's IMDB table) loses it. adherence >= accuracy always.
// Training sequences also label the SEP of every shot whose class already occurred in an
// earlier shot (data.icl.train_shot_labels), which is as inferable as the query and gives
// more signal per sequence; validation and test label only the query.
//
// Evaluation can sweep the number of shots (data.icl.eval_shots, slice {shots}).
#include "task.h"
#include "common.h"
#include <stdlib.h>
#include <string.h>

static const KeySpec icl_keys[] = {
    {"data.icl.classes", KT_INT, "2", 2, 64, NULL, 0, "ICL: number of classes K (IMDB: 2)"},
    {"data.icl.shots", KT_INT, "8", 1, 4096, NULL, 0, "ICL: labelled examples (shots) before the query; at least classes"},
    {"data.icl.min_shots", KT_INT, "0", 0, 4096, NULL, 0,
     "ICL: training draws the shot count uniformly from [min_shots, shots] (0: always shots)"},
    {"data.icl.item_len", KT_INT, "8", 1, 4096, NULL, 0, "ICL: tokens per item (the \"review\")"},
    {"data.icl.cluster_size", KT_INT, "16", 1, 1 << 20, NULL, 0, "ICL: item tokens owned by each class"},
    {"data.icl.neutral_tokens", KT_INT, "16", 0, 1 << 20, NULL, 0, "ICL: item tokens shared by all classes (carry no class)"},
    {"data.icl.neutral_frac", KT_FLOAT, "0.5", 0, 0.99, NULL, 0,
     "ICL: probability that an item token is neutral (one token per item is always from its class)"},
    {"data.icl.label_vocab", KT_INT, "64", 2, 1 << 20, NULL, 0,
     "ICL: label tokens to draw each sequence's K labels from (they follow the item tokens in the vocabulary)"},
    {"data.icl.train_shot_labels", KT_BOOL, "true", 0, -1, NULL, 0,
     "ICL: training sequences also label shots whose class occurred earlier (eval labels only the query)"},
    {"data.icl.train_examples", KT_INT, "20000", 1, 1e12, NULL, 0, "ICL: training sequences"},
    {"data.icl.valid_examples", KT_INT, "500", 0, 1e12, NULL, 0, "ICL: validation sequences (per eval_shots cell)"},
    {"data.icl.test_examples", KT_INT, "1000", 0, 1e12, NULL, 0, "ICL: test sequences (per eval_shots cell)"},
    {"data.icl.eval_shots", KT_STRING, "", 0, -1, NULL, 0,
     "ICL: shot counts evaluated on valid/test, e.g. \"2,4,8,16\" (slice {shots}); empty: data.icl.shots"},
    {NULL, 0, NULL, 0, 0, NULL, 0, NULL}};

#define ICL_SEP 1
#define ICL_MAX_GRID 32

typedef struct {
    int K, shots, min_shots, item_len, cluster, neutral, label_vocab, shot_labels;
    double neutral_frac;
    int neutral_base, label_base;   // layout, see the top of the file
    uint64_t seed;
    long count[3];                  // examples per split (valid/test: per grid cell)
    int ngrid, grid[ICL_MAX_GRID];  // eval shot counts
} Icl;

// Parses "2,4,8" into grid[]. Returns the count, or -1 with a message.
static int parse_grid(const char *s, int *grid, char *msg, size_t cap) {
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 4096) { snprintf(msg, cap, "expected shot counts in [1, 4096] separated by commas, e.g. \"2,4,8\"; got \"%s\"", p); return -1; }
        if (n == ICL_MAX_GRID) { snprintf(msg, cap, "at most %d shot counts", ICL_MAX_GRID); return -1; }
        grid[n++] = (int)v;
        p = end;
        if (*p == ',') p++;
        else if (*p) { snprintf(msg, cap, "unexpected \"%s\" after %ld", p, v); return -1; }
    }
    return n;
}

static int icl_load(const Config *c, Icl *q, ConfError *err) {
    memset(q, 0, sizeof *q);
    q->K = (int)cfg_int(c, "data.icl.classes");
    q->shots = (int)cfg_int(c, "data.icl.shots");
    q->min_shots = (int)cfg_int(c, "data.icl.min_shots");
    if (q->min_shots == 0) q->min_shots = q->shots;
    q->item_len = (int)cfg_int(c, "data.icl.item_len");
    q->cluster = (int)cfg_int(c, "data.icl.cluster_size");
    q->neutral = (int)cfg_int(c, "data.icl.neutral_tokens");
    q->neutral_frac = cfg_num(c, "data.icl.neutral_frac");
    q->label_vocab = (int)cfg_int(c, "data.icl.label_vocab");
    q->shot_labels = cfg_bool(c, "data.icl.train_shot_labels");
    q->neutral_base = 2 + q->K * q->cluster;
    q->label_base = q->neutral_base + q->neutral;
    q->seed = (uint64_t)cfg_int(c, "data.seed");
    q->count[SPLIT_TRAIN] = cfg_int(c, "data.icl.train_examples");
    q->count[SPLIT_VALID] = cfg_int(c, "data.icl.valid_examples");
    q->count[SPLIT_TEST] = cfg_int(c, "data.icl.test_examples");

    if (q->shots < q->K)
        return cfg_error(c, "data.icl.shots", err, "%d shots cannot show all %d classes: shots >= classes needed", q->shots, q->K);
    if (q->min_shots < q->K || q->min_shots > q->shots)
        return cfg_error(c, "data.icl.min_shots", err, "must be 0 or in [classes, shots] = [%d, %d], got %d", q->K, q->shots, q->min_shots);
    if (q->label_vocab < q->K)
        return cfg_error(c, "data.icl.label_vocab", err, "%d label tokens cannot name %d classes: label_vocab >= classes needed", q->label_vocab, q->K);
    long V = cfg_int(c, "model.vocab_size"), need = (long)q->label_base + q->label_vocab;
    if (V < need)
        return cfg_error(c, "model.vocab_size", err,
                         "the ICL layout needs %ld tokens (2 + classes*cluster_size + neutral_tokens + label_vocab = 2 + %d*%d + %d + %d), got %ld",
                         need, q->K, q->cluster, q->neutral, q->label_vocab, V);
    char msg[256];
    const char *g = cfg_str(c, "data.icl.eval_shots");
    if (g[0]) {
        if ((q->ngrid = parse_grid(g, q->grid, msg, sizeof msg)) < 0) return cfg_error(c, "data.icl.eval_shots", err, "%s", msg);
        for (int i = 0; i < q->ngrid; i++)
            if (q->grid[i] < q->K)
                return cfg_error(c, "data.icl.eval_shots", err, "%d shots cannot show all %d classes: every count must be >= classes", q->grid[i], q->K);
    } else {
        q->ngrid = 1;
        q->grid[0] = q->shots;
    }
    return 0;
}

static int icl_validate(const Config *c, ConfError *err) {
    Icl q;
    return icl_load(c, &q, err);
}

static void *icl_open(const Config *c, ConfError *err) {
    Icl *q = xmalloc(sizeof *q);
    if (icl_load(c, q, err)) { free(q); return NULL; }
    return q;
}

static long icl_size(void *st, int split) {
    Icl *q = st;
    return split == SPLIT_TRAIN ? q->count[split] : q->count[split] * q->ngrid;
}

static int seq_len_for(const Icl *q, int shots) { return shots * (q->item_len + 2) + q->item_len + 1; }

static int icl_max_shots(const Icl *q) {
    int m = q->shots;
    for (int i = 0; i < q->ngrid; i++) if (q->grid[i] > m) m = q->grid[i];
    return m;
}

static int icl_max_len(void *st) { Icl *q = st; return seq_len_for(q, icl_max_shots(q)); }

static int icl_max_labels(void *st) {
    Icl *q = st;
    return q->shot_labels ? q->shots + 1 : 1;   // only training labels shots, at most q->shots of them
}

// The example's random stream, with its K label tokens drawn first (lab[c] names class c), so
// adherent() can recover the labels without regenerating the whole sequence.
static void start_example(const Icl *q, int split, long index, Rng *r, int *lab) {
    rng_seed(r, task_example_seed(q->seed, split, index));
    for (int c = 0; c < q->K; c++) {
        int v, dup;
        do {
            v = q->label_base + (int)rng_below(r, (uint64_t)q->label_vocab);
            dup = 0;
            for (int j = 0; j < c; j++) if (lab[j] == v) { dup = 1; break; }
        } while (dup);
        lab[c] = v;
    }
}

static void write_item(const Icl *q, Rng *r, int cls, int *x) {
    int forced = (int)rng_below(r, (uint64_t)q->item_len);   // guarantees one class token
    for (int j = 0; j < q->item_len; j++) {
        if (j != forced && q->neutral > 0 && rng_uniform(r) < q->neutral_frac)
            x[j] = q->neutral_base + (int)rng_below(r, (uint64_t)q->neutral);
        else
            x[j] = 2 + cls * q->cluster + (int)rng_below(r, (uint64_t)q->cluster);
    }
}

static int icl_example(void *st, int split, long index, int *x, int *y, Slice *slice) {
    Icl *q = st;
    Rng r;
    int lab[q->K];
    start_example(q, split, index, &r, lab);
    int S;
    if (split == SPLIT_TRAIN)
        S = q->min_shots + (int)rng_below(&r, (uint64_t)(q->shots - q->min_shots + 1));
    else
        S = q->grid[index % q->ngrid];   // interleaved, so eval.max_examples keeps every cell
    // shot classes: each class once, the rest uniform, shuffled (every class is in context)
    int cls[S];
    for (int i = 0; i < S; i++) cls[i] = i < q->K ? i : (int)rng_below(&r, (uint64_t)q->K);
    for (int i = S - 1; i > 0; i--) {
        int j = (int)rng_below(&r, (uint64_t)i + 1), t = cls[i];
        cls[i] = cls[j]; cls[j] = t;
    }
    int L = seq_len_for(q, S), pos = 0;
    for (int t = 0; t < L; t++) y[t] = -1;
    int seen[q->K];
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < S; i++) {
        write_item(q, &r, cls[i], x + pos);
        pos += q->item_len;
        x[pos] = ICL_SEP;
        if (split == SPLIT_TRAIN && q->shot_labels && seen[cls[i]]) y[pos] = lab[cls[i]];
        seen[cls[i]] = 1;
        x[pos + 1] = lab[cls[i]];
        pos += 2;
    }
    int qc = (int)rng_below(&r, (uint64_t)q->K);
    write_item(q, &r, qc, x + pos);
    pos += q->item_len;
    x[pos] = ICL_SEP;
    y[pos] = lab[qc];
    slice_add(slice, "shots", S);
    return pos + 1;
}

// Format adherence: the prediction is one of this sequence's K label tokens.
static int icl_adherent(void *st, int split, long index, const int *tokens, int pos, int pred) {
    Icl *q = st;
    Rng r;
    int lab[q->K];
    start_example(q, split, index, &r, lab);
    for (int c = 0; c < q->K; c++) if (lab[c] == pred) return 1;
    return 0;
}

static void icl_close(void *st) { free(st); }

const Task icl_task = {
    .name = "icl", .metric = "accuracy", .keys = icl_keys, .validate = icl_validate,
    .open = icl_open, .size = icl_size, .max_len = icl_max_len, .max_labels = icl_max_labels,
    .example = icl_example, .adherent = icl_adherent, .close = icl_close,
};
