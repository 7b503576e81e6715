// test_tasks_icl_mad.c: generator invariants of the in-context classification task (icl) and
// the six MAD-lab tasks: where the labels are, that every target can be derived from the
// context (or, for memorization, from the fixed map), determinism, disjoint splits, the upstream
// bugs fixed, and configuration errors.
#include "test.h"
#include "keys.h"
#include "model.h"
#include "ops.h"
#include "task.h"
#include "train.h"
#include <stdlib.h>
#include <string.h>

static int load(Config *c, const char *yaml) {
    ConfError err;
    int rc = config_load_string(c, yaml, "test", NULL, 0, all_key_tables(), &err);
    if (rc) printf("config error: %s\n", err.msg);
    return rc;
}

// Opens data.task of the yaml; NULL (and a failed check) if anything goes wrong.
static void *open_task(Config *c, const char *yaml, const Task **t) {
    if (load(c, yaml)) { CHECK(0, "config loads"); return NULL; }
    ConfError err;
    *t = task_find(cfg_str(c, "data.task"));
    if (!*t) { CHECK(0, "task %s registered", cfg_str(c, "data.task")); return NULL; }
    if ((*t)->validate(c, &err)) { CHECK(0, "validates: %s", err.msg); return NULL; }
    void *st = (*t)->open(c, &err);
    if (!st) CHECK(0, "opens: %s", err.msg);
    return st;
}

// The config error of a yaml, or "" when it validates.
static const char *error_of(const char *yaml) {
    static ConfError err;
    Config c;
    err.msg[0] = 0;
    if (load(&c, yaml)) return "load failed";
    const Task *t = task_find(cfg_str(&c, "data.task"));
    if (t->validate(&c, &err) == 0) err.msg[0] = 0;
    config_free(&c);
    return err.msg;
}

static int gen(const Task *t, void *st, int split, long i, int *x, int *y) {
    Slice s = {0};
    return t->example(st, split, i, x, y, &s);
}

// Determinism and disjoint splits, common to every task: an example is regenerated exactly;
// no test sequence equals one of the first `ntrain` training sequences.
static void check_splits(const Task *t, void *st, int ntest, int ntrain) {
    int T = t->max_len(st);
    int *x = malloc(T * sizeof(int)), *y = malloc(T * sizeof(int)), *x2 = malloc(T * sizeof(int)), *y2 = malloc(T * sizeof(int));
    int *train = malloc((size_t)ntrain * T * sizeof(int)), *tl = malloc(ntrain * sizeof(int));
    int L = gen(t, st, SPLIT_TRAIN, 5, x, y), L2 = gen(t, st, SPLIT_TRAIN, 5, x2, y2);
    CHECK(L == L2 && !memcmp(x, x2, L * sizeof(int)) && !memcmp(y, y2, L * sizeof(int)), "%s: an example is regenerated exactly", t->name);
    for (int k = 0; k < ntrain; k++) tl[k] = gen(t, st, SPLIT_TRAIN, k, train + (size_t)k * T, y);
    int same = 0;
    for (int i = 0; i < ntest; i++) {
        int n = gen(t, st, SPLIT_TEST, i, x, y);
        for (int k = 0; k < ntrain; k++) same += n == tl[k] && !memcmp(x, train + (size_t)k * T, n * sizeof(int));
    }
    CHECK(same == 0, "%s: no test sequence equals a training sequence (%d x %d compared)", t->name, ntest, ntrain);
    gen(t, st, SPLIT_VALID, 0, x2, y2);
    L = gen(t, st, SPLIT_TEST, 0, x, y);
    CHECK(memcmp(x, x2, L * sizeof(int)) != 0, "%s: valid and test example 0 differ", t->name);
    free(x); free(y); free(x2); free(y2); free(train); free(tl);
}

// ---------------------------------------------------------------------------------------------
// icl

#define ICL_YAML "model: {vocab_size: 256}\ndata: {task: icl, icl: {classes: 3, shots: 6, item_len: 5, cluster_size: 10, neutral_tokens: 8, label_vocab: 40%s}}\n"
enum { K = 3, ITEM = 5, CL = 10, NEU = 8, LV = 40, LBASE = 2 + K * CL + NEU };

// class of an item from its tokens (-1 if the item is not one class)
static int item_class(const int *x) {
    int cls = -1;
    for (int j = 0; j < ITEM; j++) {
        int v = x[j];
        if (v >= 2 && v < 2 + K * CL) {
            int c = (v - 2) / CL;
            if (cls >= 0 && c != cls) return -1;
            cls = c;
        } else if (!(v >= 2 + K * CL && v < LBASE)) return -1;
    }
    return cls;
}

static void test_icl(void) {
    test_group("icl");
    char yaml[512];
    snprintf(yaml, sizeof yaml, ICL_YAML, "");
    Config c;
    const Task *t;
    void *st = open_task(&c, yaml, &t);
    if (!st) return;
    CHECK(!strcmp(t->metric, "accuracy") && t->adherent, "metric accuracy, has adherent()");
    int T = t->max_len(st), x[256], y[256];
    CHECK(T == 6 * (ITEM + 2) + ITEM + 1, "length = shots*(item_len+2) + item_len + 1 (%d)", T);
    int bad_layout = 0, bad_class = 0, bad_map = 0, bad_answer = 0, bad_labels = 0, bad_train = 0, bad_adh = 0;
    long train_labels = 0;
    int used0[256] = {0};   // label tokens naming class 0, over sequences
    for (int split = SPLIT_TRAIN; split <= SPLIT_TEST; split += 2)
        for (long i = 0; i < 400; i++) {
            int L = gen(t, st, split, i, x, y);
            if (L != T) { bad_layout++; continue; }
            int lab[K] = {-1, -1, -1}, nlab = 0;
            for (int s = 0; s < 6; s++) {
                int *it = x + s * (ITEM + 2), sep = s * (ITEM + 2) + ITEM;
                int cls = item_class(it), l = x[sep + 1];
                if (x[sep] != 1 || l < LBASE || l >= LBASE + LV) bad_layout++;
                if (cls < 0) { bad_class++; continue; }
                int earlier = lab[cls] >= 0;
                if (earlier && lab[cls] != l) bad_map++;                       // a class keeps its label
                for (int k = 0; k < K; k++) if (k != cls && lab[k] == l) bad_map++;   // classes have distinct labels
                // training labels exactly the shots whose class occurred before, with their label
                if (split == SPLIT_TRAIN) { if (earlier ? y[sep] != l : y[sep] != -1) bad_train++; train_labels += earlier; }
                else if (y[sep] != -1) bad_labels++;
                lab[cls] = l;
            }
            for (int k = 0; k < K; k++) nlab += lab[k] >= 0;
            if (nlab != K) bad_labels++;   // every class is in context
            if (lab[0] >= 0) used0[lab[0]] = 1;
            int qc = item_class(x + 6 * (ITEM + 2)), qs = T - 1;
            if (x[qs] != 1 || qc < 0) { bad_layout++; continue; }
            if (y[qs] != lab[qc]) bad_answer++;   // the answer is this sequence's label of the query's class
            for (int p = 0; p < qs; p++) if (y[p] >= 0 && (x[p] != 1)) bad_layout++;
            if (split == SPLIT_TEST)
                for (int v = 0; v < 256; v++) {
                    int in = v == lab[0] || v == lab[1] || v == lab[2];
                    if (t->adherent(st, split, i, x, qs, v) != in) bad_adh++;
                }
        }
    CHECK(bad_layout == 0, "layout: items, SEP (1), label tokens in [%d, %d); labels only on SEPs", LBASE, LBASE + LV);
    CHECK(bad_class == 0, "every item's class tokens belong to one class (neutral tokens aside)");
    CHECK(bad_map == 0, "within a sequence a class has one label and classes have distinct labels");
    CHECK(bad_labels == 0, "all K classes occur among the shots; valid/test label only the query");
    CHECK(bad_answer == 0, "the target is the label that this sequence's shots give the query's class");
    CHECK(bad_train == 0 && train_labels > 400, "training also labels shots whose class occurred earlier (%ld such labels)", train_labels);
    CHECK(bad_adh == 0, "adherent() is true for the K in-context labels and false for every other token");
    int nused = 0;
    for (int v = 0; v < 256; v++) nused += used0[v];
    CHECK(nused == LV, "labels are drawn fresh per sequence: class 0 was named by all %d label tokens (%d)", LV, nused);
    check_splits(t, st, 400, 400);
    t->close(st);
    config_free(&c);

    test_group("icl grid");
    snprintf(yaml, sizeof yaml, ICL_YAML, ", min_shots: 3, eval_shots: \"3,9,12\", valid_examples: 10, test_examples: 20");
    st = open_task(&c, yaml, &t);
    if (!st) return;
    CHECK(t->size(st, SPLIT_TEST) == 60 && t->size(st, SPLIT_VALID) == 30, "eval sizes are count x grid cells");
    CHECK(t->max_len(st) == 12 * (ITEM + 2) + ITEM + 1, "max_len covers the largest eval shot count");
    int xs[256], ys[256], bad = 0, lmin = 999, lmax = 0;
    for (long i = 0; i < 60; i++) {
        Slice s = {0};
        int L = t->example(st, SPLIT_TEST, i, xs, ys, &s);
        int want = (int[]){3, 9, 12}[i % 3];
        if (s.n != 1 || strcmp(s.key[0], "shots") || s.val[0] != want || L != want * (ITEM + 2) + ITEM + 1) bad++;
    }
    CHECK(bad == 0, "eval cells interleave (index %% cells), slice {shots}, length follows shots");
    for (long i = 0; i < 300; i++) {
        int L = gen(t, st, SPLIT_TRAIN, i, xs, ys);
        if (L < lmin) lmin = L;
        if (L > lmax) lmax = L;
    }
    CHECK(lmin == 3 * (ITEM + 2) + ITEM + 1 && lmax == 6 * (ITEM + 2) + ITEM + 1, "training shots span [min_shots, shots] (lengths %d..%d)", lmin, lmax);
    t->close(st);
    config_free(&c);

    test_group("icl errors");
    const char *e;
    e = error_of("data: {task: icl, icl: {classes: 3, shots: 2}}\n");
    CHECK(strstr(e, "data.icl.shots") && strstr(e, "shots >= classes"), "fewer shots than classes: %s", e);
    e = error_of("model: {vocab_size: 64}\ndata: {task: icl}\n");
    CHECK(strstr(e, "model.vocab_size") && strstr(e, "114"), "vocabulary too small names the size needed: %s", e);
    snprintf(yaml, sizeof yaml, ICL_YAML, ", eval_shots: \"4,x\"");
    e = error_of(yaml);
    CHECK(strstr(e, "data.icl.eval_shots") != NULL, "bad eval_shots: %s", e);
    snprintf(yaml, sizeof yaml, ICL_YAML, ", eval_shots: \"2,4\"");
    e = error_of(yaml);
    CHECK(strstr(e, "data.icl.eval_shots") && strstr(e, ">= classes"), "eval shot count below classes: %s", e);
    snprintf(yaml, sizeof yaml, ICL_YAML, ", min_shots: 8");
    e = error_of(yaml);
    CHECK(strstr(e, "data.icl.min_shots") != NULL, "min_shots above shots: %s", e);
    e = error_of("data: {task: icl, icl: {classes: 3, label_vocab: 2}}\n");
    CHECK(strstr(e, "data.icl.label_vocab") != NULL, "fewer label tokens than classes: %s", e);
}

// evaluate() on an untrained model reports format adherence, and adherence >= accuracy
static void test_icl_evaluate(void) {
    test_group("icl evaluate");
    Config c;
    const Task *t;
    void *st = open_task(&c, "model: {d_model: 16, vocab_size: 128, pattern: \"M-*-\", attention: {heads: 2}, mamba: {d_state: 4}}\n"
                             "data: {task: icl, icl: {test_examples: 40}}\ntrain: {batch_size: 8}\n", &t);
    if (!st) return;
    Model m;
    ConfError err;
    if (model_build(&m, &c, &err)) { CHECK(0, "model: %s", err.msg); return; }
    int T = t->max_len(st);
    model_alloc(&m, 8, T, 8 * t->max_labels(st));
    model_init(&m, 1);
    int *tok = malloc(8 * T * sizeof(int)), *tgt = malloc(8 * T * sizeof(int));
    EvalResult r = evaluate(&m, t, st, SPLIT_TEST, 0, T, tok, tgt);
    CHECK(r.has_adherence && r.all.examples == 40 && r.all.labels == 40, "one label per test example, adherence recorded");
    CHECK(r.all.adherent >= r.all.correct, "adherent (%ld) >= correct (%ld)", r.all.adherent, r.all.correct);
    eval_free(&r);
    free(tok); free(tgt);
    model_free(&m);
    t->close(st);
    config_free(&c);
}

// ---------------------------------------------------------------------------------------------
// MAD in-context recall, plain and noisy: keys [0, ns/2), values [ns/2, ns)

// Checks one recall example (x, y of length n; ns keys+values; noise tokens >= ns below V-1).
// Scored positions hold a key at an even offset whose value followed the same key earlier.
static int recall_ok(const int *x, const int *y, int n, int ns, int split, int train_all, int *noise_targets) {
    int nk = ns / 2, ok = 1, nl = 0;
    for (int p = 0; p < n; p++) {
        if (y[p] < 0) continue;
        nl++;
        if (y[p] >= ns) (*noise_targets)++;
        if (split == SPLIT_TRAIN && train_all) {
            if (p + 1 < n && y[p] != x[p + 1]) ok = 0;   // the next token
            continue;
        }
        if (x[p] >= nk || (p % 2 && p != n - 1)) ok = 0;   // without multi_query the probe follows the prefix
        int found = 0;
        for (int q = 0; q + 1 < p; q += 2) if (x[q] == x[p] && x[q + 1] == y[p]) found = 1;
        if (!found) ok = 0;
    }
    if (y[n - 1] < 0) ok = 0;   // the final probe is always scored
    // a key keeps its value inside a sequence
    for (int p = 0; p + 1 < n; p += 2)
        for (int q = 0; q < p && x[p] < nk; q += 2) if (x[q] == x[p] && x[q + 1] != x[p + 1]) ok = 0;
    return ok && nl > 0;
}

static void test_mad_recall(void) {
    test_group("mad_recall");
    Config c;
    const Task *t;
    void *st = open_task(&c, "model: {vocab_size: 16}\ndata: {task: mad_recall, seq_len: 128}\n", &t);
    if (!st) return;
    CHECK(t->size(st, SPLIT_TRAIN) == 12800 && t->size(st, SPLIT_TEST) == 1280, "MAD's example counts (12800 train, 1280 test)");
    int x[256], y[256], bad = 0, noise = 0, ntest_labels = 0;
    for (int split = SPLIT_TRAIN; split <= SPLIT_TEST; split++)
        for (long i = 0; i < 300; i++) {
            Slice s = {0};
            int n = t->example(st, split, i, x, y, &s);
            if (n != 127 || s.n != 2 || s.val[0] != 128 || s.val[1] != 16) bad++;
            if (!recall_ok(x, y, n, 16, split, 1, &noise)) bad++;
            if (split == SPLIT_TEST) for (int p = 0; p < n; p++) ntest_labels += y[p] >= 0;
        }
    CHECK(bad == 0, "127 tokens (MAD's x[:-1]); train labels every next token; test labels repeated keys with their earlier value");
    printf("  (%.1f scored queries per test sequence)\n", ntest_labels / 300.0);
    check_splits(t, st, 300, 300);
    t->close(st);
    config_free(&c);

    st = open_task(&c, "model: {vocab_size: 16}\ndata: {task: mad_recall, seq_len: 64, mad: {multi_query: false, train_labels: queries}}\n", &t);
    if (!st) return;
    bad = 0;
    for (int split = SPLIT_TRAIN; split <= SPLIT_TEST; split++)
        for (long i = 0; i < 200; i++) {
            int n = gen(t, st, split, i, x, y), nl = 0;
            for (int p = 0; p < n; p++) nl += y[p] >= 0;
            // ... copy-prefix(15) key | value: only the final probe is scored, at the key
            if (n != 64 || x[n - 2] != 15 || nl != 1 || y[n - 1] < 0 || !recall_ok(x, y, n, 15, split, 0, &noise)) bad++;
        }
    CHECK(bad == 0, "without multi_query: copy prefix V-1 before the probe, only the probe is scored; train_labels=queries trains on it alone");
    t->close(st);
    config_free(&c);
}

static void test_mad_noisy(void) {
    test_group("mad_noisy_recall");
    Config c;
    const Task *t;
    void *st = open_task(&c, "model: {vocab_size: 32}\ndata: {task: mad_noisy_recall, seq_len: 128}\n", &t);
    if (!st) return;
    int x[256], y[256], bad = 0, noise_targets = 0;
    long noise = 0, total = 0, bad_pairs = 0;
    for (int split = SPLIT_TRAIN; split <= SPLIT_TEST; split++)
        for (long i = 0; i < 400; i++) {
            Slice s = {0};
            int n = t->example(st, split, i, x, y, &s);
            if (n != 127 || s.n != 3 || s.val[2] != 20) bad++;
            if (!recall_ok(x, y, n, 16, split, 1, &noise_targets)) bad++;
            for (int p = 0; p < n; p++) { noise += x[p] >= 16; total++; }
            for (int p = 0; p + 1 < n; p += 2) bad_pairs += (x[p] >= 16) != (x[p + 1] >= 16);   // noise comes in slots
        }
    CHECK(bad == 0, "noisy sequences keep the recall invariants; slice {seq_len, vocab_size, noise_pct 20}");
    CHECK(noise_targets == 0, "noise tokens [16, 32) are never targets, in training either");
    CHECK(bad_pairs == 0, "noise fills whole key-value slots");
    CHECK(noise > 0.17 * total && noise < 0.23 * total, "about frac_noise 0.2 of the tokens are noise (%.3f; MAD measured 0.1985)", (double)noise / total);
    check_splits(t, st, 300, 300);
    t->close(st);
    config_free(&c);

    // MAD's guaranteed key slot could be the unvisited probe slot: with 3 slots at frac 0.95 an
    // all-noise sequence would leave nothing to probe. Every sequence must still be answerable.
    st = open_task(&c, "model: {vocab_size: 32}\ndata: {task: mad_noisy_recall, seq_len: 8, mad: {frac_noise: 0.95}}\n", &t);
    if (!st) return;
    bad = 0;
    for (long i = 0; i < 3000; i++) {
        int n = gen(t, st, SPLIT_TEST, i, x, y);
        if (!recall_ok(x, y, n, 16, SPLIT_TEST, 1, &noise_targets)) bad++;
    }
    CHECK(bad == 0 && noise_targets == 0, "frac_noise 0.95, 3 slots: every probe asks for a key shown earlier (3000 sequences)");
    t->close(st);
    config_free(&c);
}

// ---------------------------------------------------------------------------------------------
// MAD fuzzy recall (V 16, multi_query): keys [0, 7), values [7, 15), pad 15

static void test_mad_fuzzy(void) {
    test_group("mad_fuzzy_recall");
    Config c;
    const Task *t;
    void *st = open_task(&c, "model: {vocab_size: 16}\ndata: {task: mad_fuzzy_recall, seq_len: 128}\n", &t);
    if (!st) return;
    enum { NK = 7, NS = 15, PAD = 15 };
    int x[256], y[256], bad = 0, bad_pad = 0, bad_test_keys = 0, probe_missing = 0, bad_train = 0;
    int klen_hist[8] = {0}, vlen_hist[8] = {0};
    for (int split = SPLIT_TRAIN; split <= SPLIT_TEST; split += 2)
        for (long i = 0; i < 1500; i++) {
            int n = gen(t, st, split, i, x, y);
            if (n != 128) { bad++; continue; }
            int p0 = 0;
            while (p0 < n && x[p0] == PAD) p0++;
            if (p0 == 0) bad_pad++;   // left-padded to L + 1 before the shift: at least one pad
            for (int p = p0; p < n; p++) if (x[p] == PAD) bad_pad++;
            // motif lengths: maximal runs of key tokens and of value tokens
            // motifs alternate key, value, key ...; the last run is cut by the shift
            for (int p = p0; p < n;) {
                int key = x[p] < NK, q = p;
                while (q < n && (x[q] < NK) == key) q++;
                if (q < n) {
                    if (key) { klen_hist[q - p < 8 ? q - p : 7]++; if (split == SPLIT_TEST && q - p != 3) bad_test_keys++; }
                    else vlen_hist[q - p < 8 ? q - p : 7]++;
                }
                p = q;
            }
            if (split == SPLIT_TRAIN) {
                for (int p = 0; p + 1 < n; p++) if (y[p] != x[p + 1]) bad_train++;
                continue;
            }
            // every scored run: value tokens of a key shown earlier with that same value
            for (int p = 0; p < n;) {
                if (y[p] < 0) { p++; continue; }
                int r = 0;
                while (p + r < n && y[p + r] >= 0) r++;
                int kl = 0;
                while (p - kl >= 0 && x[p - kl] < NK) kl++;
                int found = 0;
                for (int q = kl - 1; q + r < p - kl + 1 && !found; q++) {
                    if (q - kl >= 0 && x[q - kl] < NK) continue;   // must be a whole key
                    int same = 1;
                    for (int j = 0; j < kl && same; j++) same = x[q - j] == x[p - j];
                    for (int j = 0; j < r && same; j++) same = x[q + 1 + j] == y[p + j];
                    if (same && (q + 1 + r >= n || x[q + 1 + r] < NK || x[q + 1 + r] >= NS)) found = 1;   // the whole value
                }
                if (!found) { if (p + r == n) probe_missing++; else bad++; }
                for (int j = 0; j < r; j++) if (y[p + j] < NK || y[p + j] >= NS) bad++;
                p += r;
            }
        }
    CHECK(bad == 0, "every scored run is the value (tokens [7, 15)) of a key shown earlier with that value");
    CHECK(probe_missing == 0, "the final probe's key always occurs earlier (MAD can end its loop before inserting it; fixed)");
    CHECK(bad_pad == 0, "pad tokens (15) only at the left, at least one");
    CHECK(bad_test_keys == 0, "test keys are always k_motif_size = 3 tokens");
    CHECK(bad_train == 0, "training labels every next token (pads included, as MAD)");
    CHECK(klen_hist[1] > 0 && klen_hist[2] > 0 && klen_hist[3] > 0 && klen_hist[4] + klen_hist[5] + klen_hist[6] + klen_hist[7] == 0,
          "keys span 1..3 tokens (%d, %d, %d)", klen_hist[1], klen_hist[2], klen_hist[3]);
    CHECK(vlen_hist[1] > 0 && vlen_hist[2] > 0 && vlen_hist[3] > 0 && vlen_hist[4] + vlen_hist[5] + vlen_hist[6] + vlen_hist[7] == 0,
          "values span 1..3 tokens (%d, %d, %d)", vlen_hist[1], vlen_hist[2], vlen_hist[3]);
    check_splits(t, st, 300, 300);
    t->close(st);
    config_free(&c);
}

// ---------------------------------------------------------------------------------------------
// MAD selective copying (V 16, L 256, 16 tokens): content [0, 14), blank 14, copy 15

static void test_mad_selcopy(void) {
    test_group("mad_selective_copy");
    Config c;
    const Task *t;
    void *st = open_task(&c, "model: {vocab_size: 16}\ndata: {task: mad_selective_copy, seq_len: 256}\n", &t);
    if (!st) return;
    int x[256], y[256], bad = 0, blank_before_copy = 0;
    for (int split = SPLIT_TRAIN; split <= SPLIT_TEST; split += 2)
        for (long i = 0; i < 500; i++) {
            Slice s = {0};
            int n = t->example(st, split, i, x, y, &s), content[256], nc = 0, blanks = 0;
            if (n != 256 || x[256 - 17] != 15 || s.n != 3 || s.val[2] != 16) { bad++; continue; }
            for (int p = 0; p < 256 - 17; p++) {
                if (x[p] == 14) blanks++;
                else if (x[p] < 14) content[nc++] = x[p];
                else bad++;
                if (y[p] != -1) bad++;
            }
            if (nc != 16 || blanks != 256 - 33 || y[256 - 17] != -1) bad++;
            for (int j = 0; j < 16 && j < nc; j++) if (x[256 - 16 + j] != 14 || y[256 - 16 + j] != content[j]) bad++;
            blank_before_copy += x[256 - 18] == 14;
        }
    CHECK(bad == 0, "the 16 positions after the copy token are labelled with the non-blank tokens, in order; nothing else is");
    CHECK(blank_before_copy > 800, "blanks can follow the last content token (%d of 1000; MAD's randint(0, n) never does)", blank_before_copy);
    check_splits(t, st, 300, 300);
    t->close(st);
    config_free(&c);
}

// ---------------------------------------------------------------------------------------------
// MAD compression (causal variant): V 16, L 32

static void test_mad_compression(void) {
    test_group("mad_compression");
    Config c;
    const Task *t;
    void *st = open_task(&c, "model: {vocab_size: 16}\ndata: {task: mad_compression, seq_len: 32}\n", &t);
    if (!st) return;
    int x[64], y[64], bad = 0;
    for (long i = 0; i < 500; i++) {
        int n = gen(t, st, i % 2 ? SPLIT_TEST : SPLIT_TRAIN, i, x, y);
        if (n != 62) { bad++; continue; }
        for (int p = 0; p < 31; p++) if (x[p] >= 15 || y[p] != -1 || y[31 + p] != x[p] || x[31 + p] != 15) bad++;
    }
    CHECK(bad == 0, "31 content tokens, then 31 compression tokens (15) labelled with the content in order");
    check_splits(t, st, 300, 300);
    t->close(st);
    config_free(&c);

    st = open_task(&c, "model: {vocab_size: 20}\ndata: {task: mad_compression, seq_len: 32, mad: {frac_noise: 0.3, noise_vocab_size: 4}}\n", &t);
    if (!st) return;
    bad = 0;
    long nnoise = 0;
    for (long i = 0; i < 300; i++) {
        gen(t, st, SPLIT_TEST, i, x, y);
        for (int p = 0; p < 31; p++) {
            int is_noise = x[p] >= 15 && x[p] < 19;
            nnoise += is_noise;
            if (is_noise ? y[31 + p] != -1 : y[31 + p] != x[p]) bad++;
            if (y[31 + p] >= 15) bad++;
        }
    }
    CHECK(bad == 0 && nnoise > 0, "noise tokens are never reproduced as targets (MAD returns the noisy inputs as targets; fixed)");
    t->close(st);
    config_free(&c);
}

// ---------------------------------------------------------------------------------------------
// MAD memorization (V 256, L 32): keys [0, 127), values [127, 255), insert 255

static void memo_map_of(const Task *t, void *st, int *map, int nsplit_seqs) {
    int x[32], y[32];
    for (int k = 0; k < 256; k++) map[k] = -1;
    for (long i = 0; i < nsplit_seqs; i++) {
        gen(t, st, SPLIT_TRAIN, i, x, y);
        for (int p = 0; p < 32; p += 2) map[x[p]] = y[p + 1];
    }
}

static void test_mad_memorization(void) {
    test_group("mad_memorization");
    Config c;
    const Task *t;
    void *st = open_task(&c, "model: {vocab_size: 256}\ndata: {task: mad_memorization, seq_len: 32, seed: 7}\n", &t);
    if (!st) return;
    CHECK(t->size(st, SPLIT_TRAIN) == 256, "train_examples auto = 256 (MAD's memorization baseline)");
    int x[32], y[32], bad = 0, map[256], conflict = 0, nkeys = 0;
    for (int k = 0; k < 256; k++) map[k] = -1;
    for (int split = SPLIT_TRAIN; split <= SPLIT_TEST; split++)
        for (long i = 0; i < 300; i++) {
            int n = gen(t, st, split, i, x, y);
            if (n != 32) { bad++; continue; }
            for (int p = 0; p < 32; p += 2) {
                if (x[p] >= 127 || y[p] != -1 || x[p + 1] != 255 || y[p + 1] < 127 || y[p + 1] >= 255) bad++;
                else if (map[x[p]] < 0) map[x[p]] = y[p + 1];
                else conflict += map[x[p]] != y[p + 1];
            }
        }
    int seen_val[256] = {0}, dup = 0;
    for (int k = 0; k < 127; k++) if (map[k] >= 0) { nkeys++; dup += seen_val[map[k]]++ > 0; }
    CHECK(bad == 0, "key, insert (255) pairs; the insert position is labelled with a value in [127, 255)");
    CHECK(conflict == 0, "one fixed key -> value map across every sequence of train, valid and test");
    CHECK(nkeys == 127 && dup == 0, "the map is injective over all 127 keys (%d keys seen)", nkeys);
    check_splits(t, st, 300, 256);
    int map7[256], map8[256];
    memo_map_of(t, st, map7, 200);
    t->close(st);
    config_free(&c);
    st = open_task(&c, "model: {vocab_size: 256}\ndata: {task: mad_memorization, seq_len: 32, seed: 8}\n", &t);
    if (!st) return;
    memo_map_of(t, st, map8, 200);
    int differ = 0;
    for (int k = 0; k < 127; k++) differ += map7[k] >= 0 && map8[k] >= 0 && map7[k] != map8[k];
    CHECK(differ > 100, "data.seed chooses the map (%d of 127 keys map differently for seeds 7 and 8)", differ);
    t->close(st);
    config_free(&c);
}

// ---------------------------------------------------------------------------------------------

static void test_mad_errors(void) {
    test_group("mad errors");
    struct { const char *yaml, *key, *what; } cases[] = {
        {"model: {vocab_size: 16}\ndata: {task: mad_recall, seq_len: 127}\n", "data.seq_len", "even"},
        {"model: {vocab_size: 17}\ndata: {task: mad_noisy_recall, seq_len: 128}\n", "model.vocab_size", ">= 18"},
        {"model: {vocab_size: 16}\ndata: {task: mad_recall, mad: {frac_noise: 0.2}}\n", "data.mad.noise_vocab_size", ">= 1"},
        {"model: {vocab_size: 6}\ndata: {task: mad_fuzzy_recall, seq_len: 128}\n", "model.vocab_size", "needs vocab_size >= 7"},
        {"model: {vocab_size: 16}\ndata: {task: mad_fuzzy_recall, seq_len: 12}\n", "data.seq_len", ">= 14"},
        {"model: {vocab_size: 16}\ndata: {task: mad_selective_copy, seq_len: 33}\n", "data.mad.num_tokens_to_copy", "at most 15"},
        {"model: {vocab_size: 16}\ndata: {task: mad_selective_copy, seq_len: 256, mad: {frac_noise: 0.1, noise_vocab_size: 2}}\n", "data.mad.frac_noise", "no noise"},
        {"model: {vocab_size: 4}\ndata: {task: mad_compression, mad: {noise_vocab_size: 3}}\n", "model.vocab_size", ">= 5"},
        {"model: {vocab_size: 256}\ndata: {task: mad_memorization, seq_len: 31}\n", "data.seq_len", "even"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *e = error_of(cases[i].yaml);
        CHECK(strstr(e, cases[i].key) && strstr(e, cases[i].what), "%s: %s", cases[i].key, e);
    }
    Config c;
    CHECK(load(&c, "data: {task: mad_recall, mad: {train_labels: some}}\n") != 0, "train_labels must be all or queries");
}

int main(void) {
    ops_init_threads(0);
    test_icl();
    test_icl_evaluate();
    test_mad_recall();
    test_mad_noisy();
    test_mad_fuzzy();
    test_mad_selcopy();
    test_mad_compression();
    test_mad_memorization();
    test_mad_errors();
    return test_summary();
}
