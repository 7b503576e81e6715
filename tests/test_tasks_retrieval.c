// test_tasks_retrieval.c: the retrieval tasks' generators (core/task_niah.c, core/task_passkey.c):
// label positions, answers, needle keys and depths, lengths and slices, determinism, disjoint
// splits, haystacks, validation messages, and per-cell evaluation.
#include "test.h"
#include "keys.h"
#include "model.h"
#include "ops.h"
#include "task.h"
#include "train.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { NEEDLE = 1, IS = 2, QUERY = 3, ANSWER = 4 };   // the documented marker tokens / bytes
#define MAXT 4096

static int load(Config *c, const char *yaml) {
    ConfError err;
    int rc = config_load_string(c, yaml, "test", NULL, 0, all_key_tables(), &err);
    if (rc) printf("config error: %s\n", err.msg);
    return rc;
}

// One example taken apart by the documented format.
typedef struct {
    int L, Q, p0;                 // length, QUERY position, first labelled position (ANSWER marker)
    int n, start[64], key[64][8], val[64][8];
    int nq, qkey[64][8];
    int nans, ans[512];
    int hay, haytok[MAXT];        // haystack tokens in order, and how many
    int ok;                       // labels exactly on the answer, teacher forced; needles well formed
} Parsed;

static void parse(const int *x, const int *y, int L, int kl, int vl, Parsed *P) {
    memset(P, 0, sizeof *P);
    P->L = L; P->ok = 1;
    int p0 = L;
    while (p0 > 0 && y[p0 - 1] >= 0) p0--;
    for (int t = 0; t < p0; t++) if (y[t] >= 0) P->ok = 0;   // nothing labelled before the answer
    P->p0 = p0; P->nans = L - p0;
    if (P->nans <= 0 || x[p0] != ANSWER) { P->ok = 0; return; }
    for (int a = 0; a < P->nans; a++) {
        P->ans[a] = y[p0 + a];
        if (a > 0 && x[p0 + a] != y[p0 + a - 1]) P->ok = 0;   // input = previous answer token
    }
    int Q = p0 - 1;
    while (Q >= 0 && x[Q] != QUERY) Q--;
    if (Q < 0 || (p0 - Q - 1) % kl) { P->ok = 0; return; }
    P->Q = Q; P->nq = (p0 - Q - 1) / kl;
    for (int j = 0; j < P->nq; j++) for (int m = 0; m < kl; m++) P->qkey[j][m] = x[Q + 1 + j * kl + m];
    for (int t = 0; t < Q;) {
        if (x[t] == NEEDLE) {
            if (t + 2 + kl + vl > Q || x[t + 1 + kl] != IS || P->n == 64) { P->ok = 0; return; }
            P->start[P->n] = t;
            for (int m = 0; m < kl; m++) P->key[P->n][m] = x[t + 1 + m];
            for (int m = 0; m < vl; m++) P->val[P->n][m] = x[t + 2 + kl + m];
            P->n++;
            t += 2 + kl + vl;
        } else {
            if (x[t] == IS || x[t] == QUERY || x[t] == ANSWER || x[t] == 0) P->ok = 0;   // markers only as markers
            if (P->hay < MAXT) P->haytok[P->hay] = x[t];
            P->hay++;
            t++;
        }
    }
}

static int same_key(const int *a, const int *b, int kl) { return !memcmp(a, b, kl * sizeof(int)); }
static int find_key(const Parsed *P, const int *k, int kl) {
    for (int i = 0; i < P->n; i++) if (same_key(P->key[i], k, kl)) return i;
    return -1;
}

typedef struct { const char *variant; int needles, answers, queries, same_keys; } VariantSpec;

// Every invariant of one variant on an eval grid and on training examples.
static void check_variant(const VariantSpec *vs, const char *haystack, const char *extra) {
    char name[96];
    snprintf(name, sizeof name, "niah %s/%s", vs->variant, haystack);
    test_group(name);
    int kl = 2, vl = 3, lens[2] = {160, 320}, depths[3] = {0, 50, 100}, samples = 4;
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "model: {vocab_size: 256}\ndata: {task: niah, niah: {variant: %s, haystack: %s, key_len: %d, value_len: %d, "
             "num_keys: 4, num_values: 3, num_queries: 3, train_lengths: \"128,160\", eval_lengths: \"160,320\", "
             "depths: \"0,50,100\", samples: %d, train_examples: 500%s}}\n",
             vs->variant, haystack, kl, vl, samples, extra);
    Config c;
    if (load(&c, yaml)) { CHECK(0, "config"); return; }
    const Task *t = task_find("niah");
    ConfError err;
    if (!CHECK(t && t->validate(&c, &err) == 0, "valid config")) { printf("  %s\n", err.msg); config_free(&c); return; }
    void *st = t->open(&c, &err);
    if (!CHECK(st != NULL, "opens")) { printf("  %s\n", err.msg); config_free(&c); return; }
    int nl = 2 + kl + vl, A = vs->answers;
    CHECK(t->size(st, SPLIT_VALID) == 2 * 3 * samples && t->size(st, SPLIT_TEST) == 2 * 3 * samples && t->size(st, SPLIT_TRAIN) == 500,
          "split sizes: lengths x depths x samples for valid and test");
    CHECK(t->max_len(st) == 320 && t->max_labels(st) == A * vl, "max_len %d, max_labels %d", t->max_len(st), t->max_labels(st));
    int x[MAXT], y[MAXT];
    Parsed P;
    int bad_form = 0, bad_count = 0, bad_keys = 0, bad_answer = 0, bad_depth = 0, bad_len = 0, bad_slice = 0, bad_spacing = 0, bad_hay = 0;
    for (int split = SPLIT_VALID; split <= SPLIT_TEST; split++)
        for (long i = 0; i < t->size(st, split); i++) {
            Slice s = {0};
            int L = t->example(st, split, i, x, y, &s);
            long cell = i / samples;
            int wantL = lens[cell / 3], d = depths[cell % 3];
            if (L != wantL) bad_len++;
            if (s.n != 2 || strcmp(s.key[0], "context") || strcmp(s.key[1], "depth") || s.val[0] != wantL || s.val[1] != d) bad_slice++;
            parse(x, y, L, kl, vl, &P);
            if (!P.ok) { bad_form++; continue; }
            if (P.n != vs->needles || P.nq != vs->queries || P.nans != A * vl) bad_count++;
            if (P.hay != P.Q - P.n * nl) bad_hay++;
            // keys: distinct across needles, or one shared key (multivalue); queries name needles
            for (int a = 0; a < P.n; a++)
                for (int b = a + 1; b < P.n; b++)
                    if (same_key(P.key[a], P.key[b], kl) != vs->same_keys) bad_keys++;
            int qi[64] = {0}, first = -1;
            for (int j = 0; j < P.nq; j++) {
                qi[j] = find_key(&P, P.qkey[j], kl);
                if (qi[j] < 0) bad_keys++;
                for (int k = 0; k < j; k++) if (qi[k] == qi[j]) bad_keys++;   // each key queried once
            }
            if (bad_keys) continue;
            // the answer: the queried values in query order, or every value in order of appearance
            int k = 0;
            if (vs->same_keys) { for (int n = 0; n < P.n; n++) for (int m = 0; m < vl; m++) if (P.ans[k++] != P.val[n][m]) bad_answer++; }
            else for (int j = 0; j < P.nq; j++) for (int m = 0; m < vl; m++) if (P.ans[k++] != P.val[qi[j]][m]) bad_answer++;
            // depth: the first answer needle after floor(background * depth / 100) tokens, within one needle
            if (vs->same_keys) first = 0;
            else { first = qi[0]; for (int j = 1; j < P.nq; j++) if (P.start[qi[j]] < P.start[first]) first = qi[j]; }
            long bg = P.Q - (long)A * nl, want = (long)floor(bg * d / 100.0);
            if (!(P.start[first] <= want && P.start[first] > want - nl)) bad_depth++;
            if (vs->needles == 1 && P.start[0] != want) bad_depth++;
            if (vs->same_keys)   // multivalue: gkamradt's spacing, exactly (no distractors to dodge)
                for (int n = 1; n < P.n; n++)
                    if (P.start[n] != (long)floor(bg * (d + n * (100.0 - d) / A) / 100.0) + n * nl) bad_spacing++;
        }
    CHECK(bad_form == 0, "labels exactly on the answer tokens, teacher forced; needles well formed; markers only as markers (%d bad)", bad_form);
    CHECK(bad_count == 0, "%d needle(s), %d queried key(s), %d answer tokens per example", vs->needles, vs->queries, A * vl);
    CHECK(bad_hay == 0, "the context before the query is needles plus haystack");
    CHECK(bad_keys == 0, vs->same_keys ? "one key for every needle, and it is the query" : "distinct needle keys; every queried key is a needle's, queried once");
    CHECK(bad_answer == 0, vs->same_keys ? "the answer is every value in order of appearance" : "the answer is the queried values in query order");
    CHECK(bad_depth == 0, "the first answer needle at floor(background x depth / 100), within one needle length");
    if (vs->same_keys) CHECK(bad_spacing == 0, "further values at depth + i(100-depth)/n (gkamradt multi-needle)");
    CHECK(bad_len == 0 && bad_slice == 0, "cell-major grid: length and slice {context, depth} from the index");
    // training: lengths from train_lengths, depths spread over [0, 100], same invariants
    int seen128 = 0, seen160 = 0, lo = 0, hi = 0, bad = 0;
    for (long i = 0; i < 300; i++) {
        Slice s = {0};
        int L = t->example(st, SPLIT_TRAIN, i, x, y, &s);
        seen128 += L == 128; seen160 += L == 160;
        if (L != 128 && L != 160) bad++;
        if (s.n != 2 || s.val[0] != L || s.val[1] < 0 || s.val[1] > 100) bad++;
        lo += s.val[1] < 20; hi += s.val[1] > 80;
        parse(x, y, L, kl, vl, &P);
        if (!P.ok || P.n != vs->needles || P.nans != A * vl) bad++;
    }
    CHECK(bad == 0 && seen128 > 0 && seen160 > 0, "training lengths drawn from train_lengths (%d x 128, %d x 160)", seen128, seen160);
    CHECK(lo > 20 && hi > 20, "training depths spread over [0, 100] (%d below 20, %d above 80)", lo, hi);
    // determinism, and the splits differ
    int x2[MAXT], y2[MAXT];
    int L1 = t->example(st, SPLIT_TEST, 5, x, y, &(Slice){0}), L2 = t->example(st, SPLIT_TEST, 5, x2, y2, &(Slice){0});
    CHECK(L1 == L2 && !memcmp(x, x2, L1 * sizeof(int)) && !memcmp(y, y2, L1 * sizeof(int)), "same index, same example");
    t->example(st, SPLIT_VALID, 5, x2, y2, &(Slice){0});
    CHECK(memcmp(x, x2, L1 * sizeof(int)) != 0, "valid and test examples of the same index differ");
    // format adherence: value tokens are answers of the right kind, haystack tokens are not
    int val_tok = P.ans[0];
    CHECK(t->adherent(st, SPLIT_TEST, 0, x, 0, val_tok) == 1 && t->adherent(st, SPLIT_TEST, 0, x, 0, QUERY) == 0, "adherent: value tokens only");
    t->close(st);
    config_free(&c);
}

static void test_niah_variants(void) {
    VariantSpec vs[4] = {{"single", 1, 1, 1, 0}, {"multikey", 4, 1, 1, 0}, {"multivalue", 3, 3, 1, 1}, {"multiquery", 4, 3, 3, 0}};
    for (int i = 0; i < 4; i++) check_variant(&vs[i], "noise", "");
    for (int i = 0; i < 4; i++) check_variant(&vs[i], "repeat", "");
}

// A single needle's exact place at the grid's depths, and the vocabulary layout.
static void test_niah_layout(void) {
    test_group("niah layout");
    Config c;
    if (load(&c, "model: {vocab_size: 100}\ndata: {task: niah, niah: {key_vocab: 10, value_vocab: 20, eval_lengths: \"64\", depths: \"0,30,100\", samples: 2}}\n")) {
        CHECK(0, "config"); return;
    }
    const Task *t = task_find("niah");
    ConfError err;
    void *st = t->open(&c, &err);
    int x[64], y[64], bad_tok = 0;
    Parsed P;
    // defaults: key_len 1, value_len 2: needle 5 tokens, tail QUERY k ANSWER a0 = 4 tokens
    t->example(st, SPLIT_TEST, 0, x, y, &(Slice){0});
    parse(x, y, 64, 1, 2, &P);
    CHECK(P.ok && P.start[0] == 0 && P.Q == 60, "depth 0: the needle opens the sequence (at %d), query at 60", P.start[0]);
    t->example(st, SPLIT_TEST, 2, x, y, &(Slice){0});
    parse(x, y, 64, 1, 2, &P);
    CHECK(P.ok && P.start[0] == 16, "depth 30: floor(55 x 0.30) = 16 haystack tokens before the needle (at %d)", P.start[0]);
    t->example(st, SPLIT_TEST, 4, x, y, &(Slice){0});
    parse(x, y, 64, 1, 2, &P);
    CHECK(P.ok && P.start[0] + 5 == P.Q, "depth 100: the needle ends right before the query");
    CHECK(x[60] == QUERY && x[62] == ANSWER && y[62] == x[63] && y[63] >= 0 && y[61] < 0, "tail: QUERY key ANSWER a0, labels at 62, 63");
    for (long i = 0; i < 6; i++) {
        t->example(st, SPLIT_TEST, i, x, y, &(Slice){0});
        parse(x, y, 64, 1, 2, &P);
        for (int h = 0; h < P.hay; h++) bad_tok += P.haytok[h] < 35 || P.haytok[h] >= 100;
        bad_tok += P.key[0][0] < 5 || P.key[0][0] >= 15 || P.val[0][0] < 15 || P.val[0][0] >= 35 || P.val[0][1] < 15 || P.val[0][1] >= 35;
    }
    CHECK(bad_tok == 0, "keys in [5, 15), values in [15, 35), haystack in [35, 100)");
    t->close(st);
    config_free(&c);
    // train_depths: grid draws training depths from the evaluation grid: needles exactly at
    // depth 0, 30 or 100 (uniform training almost never puts one right before the query)
    if (load(&c, "model: {vocab_size: 100}\ndata: {task: niah, niah: {key_vocab: 10, value_vocab: 20, train_lengths: \"64\", "
                 "depths: \"0,30,100\", train_depths: grid, train_examples: 300}}\n")) { CHECK(0, "config"); return; }
    st = t->open(&c, &err);
    int at[3] = {0}, off_grid = 0;
    for (long i = 0; i < 300; i++) {
        t->example(st, SPLIT_TRAIN, i, x, y, &(Slice){0});
        parse(x, y, 64, 1, 2, &P);
        if (!P.ok) { off_grid++; continue; }
        if (P.start[0] == 0) at[0]++;
        else if (P.start[0] == 16) at[1]++;
        else if (P.start[0] + 5 == P.Q) at[2]++;
        else off_grid++;
    }
    CHECK(off_grid == 0 && at[0] > 70 && at[1] > 70 && at[2] > 70,
          "train_depths grid: every training needle at depth 0, 30 or 100 (%d, %d, %d; %d elsewhere)", at[0], at[1], at[2], off_grid);
    t->close(st);
    config_free(&c);
}

// Train and test never share a needle set: their seed streams are disjoint.
static void test_niah_disjoint(void) {
    test_group("niah splits");
    const char *variants[2] = {"single", "multikey"};
    for (int v = 0; v < 2; v++) {
        char yaml[512];
        snprintf(yaml, sizeof yaml, "model: {vocab_size: 256}\ndata: {task: niah, niah: {variant: %s, value_len: 4, train_lengths: \"64\", "
                 "eval_lengths: \"64\", depths: \"0,50\", samples: 250}}\n", variants[v]);
        Config c;
        if (load(&c, yaml)) { CHECK(0, "config"); return; }
        const Task *t = task_find("niah");
        ConfError err;
        void *st = t->open(&c, &err);
        static int sig[2][500][64];
        int x[64], y[64], n[2] = {0, 0};
        Parsed P;
        for (int k = 0; k < 2; k++)
            for (long i = 0; i < 500; i++) {
                t->example(st, k ? SPLIT_TEST : SPLIT_TRAIN, i, x, y, &(Slice){0});
                parse(x, y, 64, 1, 4, &P);
                memset(sig[k][i], 0, sizeof sig[k][i]);
                for (int j = 0; j < P.n; j++) for (int m = 0; m < 4; m++) sig[k][i][j * 4 + m] = P.val[j][m];
                n[k]++;
            }
        int same = 0;
        for (int i = 0; i < 500; i++) for (int j = 0; j < 500; j++) same += !memcmp(sig[0][i], sig[1][j], sizeof sig[0][i]);
        CHECK(same == 0, "%s: no needle value set of 500 train examples recurs in 500 test examples", variants[v]);
        t->close(st);
        config_free(&c);
    }
}

// Byte-level text haystack: real text, contiguous across needles, markers that never occur in it.
static void test_niah_text(void) {
    test_group("niah text");
    char path[] = "/tmp/hlab_niah_XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    unsigned char text[3000];
    for (int i = 0; i < 3000; i++) text[i] = i % 11 == 10 ? ' ' : 'a' + (i * 7 + i / 13) % 26;
    text[100] = 0x01; text[200] = 0x03;   // marker bytes in the text must not survive
    fwrite(text, 1, sizeof text, f);
    fclose(f);
    char yaml[512];
    snprintf(yaml, sizeof yaml, "data: {task: niah, niah: {haystack: text, text_path: \"%s\", variant: multikey, key_len: 2, value_len: 3, "
             "train_lengths: \"512\", eval_lengths: \"512,1024\", depths: \"0,50,100\", samples: 3}}\n", path);
    Config c;
    if (load(&c, yaml)) { CHECK(0, "config"); return; }
    const Task *t = task_find("niah");
    ConfError err;
    CHECK(t->validate(&c, &err) == 0, "valid config");
    void *st = t->open(&c, &err);
    if (!CHECK(st != NULL, "opens the text")) { printf("  %s\n", err.msg); return; }
    text[100] = text[200] = ' ';
    unsigned char twice[6000];
    memcpy(twice, text, 3000); memcpy(twice + 3000, text, 3000);   // windows may wrap around the end
    int x[1024], y[1024], bad = 0, bad_kv = 0, bad_depth = 0, contiguous = 0;
    Parsed P;
    for (long i = 0; i < t->size(st, SPLIT_TEST); i++) {
        int L = t->example(st, SPLIT_TEST, i, x, y, &(Slice){0});
        parse(x, y, L, 2, 3, &P);
        if (!P.ok || P.n != 4 || P.nans != 3) { bad++; continue; }
        for (int n = 0; n < P.n; n++)
            for (int m = 0; m < 3; m++) bad_kv += P.val[n][m] < '0' || P.val[n][m] > '9' || (m < 2 && (P.key[n][m] < 'a' || P.key[n][m] > 'z'));
        unsigned char hay[1024];
        for (int h = 0; h < P.hay; h++) hay[h] = (unsigned char)P.haytok[h];
        contiguous += memmem(twice, sizeof twice, hay, P.hay) != NULL;
        int q = find_key(&P, P.qkey[0], 2), d = (int)(i / 3 % 3) * 50;
        long want = (long)floor((P.Q - 7) * d / 100.0);
        if (q < 0 || P.start[q] > want || P.start[q] <= want - 7) bad_depth++;
    }
    long n = t->size(st, SPLIT_TEST);
    CHECK(bad == 0, "multikey over text: 4 needles, a 3-byte answer, labels on it");
    CHECK(bad_kv == 0, "keys are letters, values digits");
    CHECK(contiguous == n, "the haystack is one window of the text, contiguous across the needles (%d of %ld)", contiguous, n);
    CHECK(bad_depth == 0, "the queried needle at its depth, within one needle length");
    t->close(st);
    config_free(&c);
    unlink(path);
    snprintf(yaml, sizeof yaml, "data: {task: niah, niah: {haystack: text, text_path: /nonexistent/text}}\n");
    if (load(&c, yaml) == 0) {
        CHECK(t->open(&c, &err) == NULL && strstr(err.msg, "cannot open"), "a missing text is a clear error: %s", err.msg);
        config_free(&c);
    }
    if (load(&c, "data: {task: niah, niah: {haystack: text}}\n") == 0) {   // the default corpus
        void *s2 = t->open(&c, &err);
        if (CHECK(s2 != NULL, "the default text path opens (/usr/share/common-licenses)")) t->close(s2);
        config_free(&c);
    }
}

// The repeat haystack cycles one fixed sentence, the same for every example.
static void test_niah_repeat(void) {
    test_group("niah repeat");
    Config c;
    if (load(&c, "data: {task: niah, niah: {haystack: repeat, filler_len: 7, eval_lengths: \"200\", depths: \"40\", samples: 5}}\n")) {
        CHECK(0, "config"); return;
    }
    const Task *t = task_find("niah");
    ConfError err;
    void *st = t->open(&c, &err);
    int x[200], y[200], first[200], nfirst = 0, periodic = 1, same = 1;
    Parsed P;
    for (long i = 0; i < 5; i++) {
        t->example(st, SPLIT_TEST, i, x, y, &(Slice){0});
        parse(x, y, 200, 1, 2, &P);
        for (int h = 7; h < P.hay; h++) periodic &= P.haytok[h] == P.haytok[h - 7];
        if (i == 0) { nfirst = P.hay; memcpy(first, P.haytok, P.hay * sizeof(int)); }
        else for (int h = 0; h < P.hay && h < nfirst; h++) same &= P.haytok[h] == first[h];
    }
    CHECK(periodic, "the haystack repeats with period filler_len, across the needle");
    CHECK(same, "every example's haystack is the same sentence");
    t->close(st);
    config_free(&c);
}

static void expect_error(const char *yaml, const char *key, const char *text) {
    Config c;
    ConfError err;
    if (load(&c, yaml)) { CHECK(0, "config loads: %s", yaml); return; }
    const Task *t = task_find(cfg_str(&c, "data.task"));
    int rc = t->validate(&c, &err);
    CHECK(rc != 0 && strstr(err.msg, key) && strstr(err.msg, text), "error names %s and says \"%s\": %s", key, text, rc ? err.msg : "(accepted)");
    config_free(&c);
}

static void test_niah_errors(void) {
    test_group("niah errors");
    const char *h = "data: {task: niah, niah: {";
    char y[512];
#define NIAH_ERR(body, key, text) (snprintf(y, sizeof y, "%s%s}}\n", h, body), expect_error(y, key, text))
    NIAH_ERR("train_lengths: \"256,abc\"", "data.niah.train_lengths", "expected integers separated by commas");
    NIAH_ERR("train_lengths: \"256;512\"", "data.niah.train_lengths", "unexpected");
    NIAH_ERR("eval_lengths: \"\"", "data.niah.eval_lengths", "at least one");
    NIAH_ERR("eval_lengths: \"256,256\"", "data.niah.eval_lengths", "listed twice");
    NIAH_ERR("depths: \"0,50,120\"", "data.niah.depths", "[0, 100]");
    NIAH_ERR("depths: \"-5\"", "data.niah.depths", "[0, 100]");
    NIAH_ERR("depths: \"0.5\"", "data.niah.depths", "unexpected");
    // single, key_len 1, value_len 2: needle 5 + tail 4 = 9 tokens
    NIAH_ERR("train_lengths: \"8\"", "data.niah.train_lengths", "every length must be >= 9");
    // multikey: 4 needles x 5 + 4 = 24
    NIAH_ERR("variant: multikey, eval_lengths: \"256,20\"", "data.niah.eval_lengths", "every length must be >= 24");
    NIAH_ERR("variant: multikey, num_keys: 1", "data.niah.num_keys", "at least 2");
    NIAH_ERR("variant: multiquery, num_keys: 4, num_queries: 5", "data.niah.num_queries", "num_queries <= num_keys");
    NIAH_ERR("variant: multikey, key_vocab: 3", "data.niah.key_vocab", "4 distinct keys needed");
    NIAH_ERR("variant: multivalue, num_values: 5, value_vocab: 2, value_len: 2", "data.niah.value_vocab", "5 distinct values needed");
    NIAH_ERR("haystack: text, key_vocab: 20", "data.niah.key_vocab", "letters a-z");
#undef NIAH_ERR
    expect_error("model: {vocab_size: 100}\ndata: {task: niah}\n", "model.vocab_size", "vocab_size >= 134");
    expect_error("model: {vocab_size: 128}\ndata: {task: niah, niah: {haystack: text}}\n", "model.vocab_size", "vocab_size >= 256");
    Config c;
    ConfError err;
    if (load(&c, "data: {task: niah, niah: {variant: multiquery, num_keys: 3, num_queries: 3, key_len: 2, value_len: 2}}\n") == 0) {
        CHECK(task_find("niah")->validate(&c, &err) == 0, "a fitting multiquery config validates");
        config_free(&c);
    }
}

// Evaluation aggregates one cell per (context, depth), each holding its samples.
static void test_niah_evaluate(void) {
    test_group("niah evaluate");
    Config c;
    if (load(&c, "model: {d_model: 8, vocab_size: 160, pattern: \"M-*-\", attention: {heads: 2}, mamba: {d_state: 4}}\n"
                 "train: {batch_size: 4}\ndata: {task: niah, niah: {variant: multivalue, num_values: 2, train_lengths: \"32\", "
                 "eval_lengths: \"32,48\", depths: \"0,50,100\", samples: 3}}\n")) { CHECK(0, "config"); return; }
    const Task *t = task_find("niah");
    ConfError err;
    Model m;
    if (!CHECK(model_build(&m, &c, &err) == 0, "model builds")) { printf("  %s\n", err.msg); config_free(&c); return; }
    void *st = t->open(&c, &err);
    int B = 4, T = t->max_len(st);
    model_alloc(&m, B, T, B * t->max_labels(st));
    model_init(&m, 1);
    int *tok = xmalloc(B * T * sizeof(int)), *tgt = xmalloc(B * T * sizeof(int));
    EvalResult r = evaluate(&m, t, st, SPLIT_TEST, 0, T, tok, tgt);
    int bad = 0;
    for (int i = 0; i < r.ncells; i++) {
        const SliceStats *s = &r.cells[i];
        bad += s->examples != 3 || s->labels != 3 * 4 || s->exact > s->examples || s->slice.n != 2;
        bad += s->slice.val[0] != (i < 3 ? 32 : 48) || s->slice.val[1] != (i % 3) * 50;
    }
    CHECK(r.ncells == 6 && bad == 0, "6 cells {context, depth} in grid order, 3 examples and 12 labels each (%d cells)", r.ncells);
    CHECK(r.all.examples == 18 && r.all.labels == 72 && r.has_adherence, "the split: 18 examples, 72 labels, format adherence");
    eval_free(&r);
    free(tok); free(tgt);
    t->close(st);
    model_free(&m);
    config_free(&c);
}

// ---- passkey ----

static const char INTRO[] = "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. I will quiz you about the important information there.";
static const char GARB[] = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";
static const char QUESTION[] = "What is the pass key? The pass key is";

// The Landmark prompt for a key and a prefix length, written independently of the task.
static int landmark(char *out, const char *key, long prefix, long n) {
    char garbage[MAXT * 4] = "";
    while ((long)strlen(garbage) < n) { if (garbage[0]) strcat(garbage, " "); strcat(garbage, GARB); }
    int k = sprintf(out, "%s\n%.*s\n", INTRO, (int)prefix, garbage);
    k += sprintf(out + k, "The pass key is %s. Remember it. %s is the pass key.\n%.*s\n%s %.*s", key, key, (int)(n - prefix), garbage,
                 QUESTION, (int)strlen(key) - 1, key);
    return k;
}

static void test_passkey(void) {
    test_group("passkey");
    Config c;
    if (load(&c, "data: {task: passkey, passkey: {train_lengths: \"400,600\", eval_lengths: \"400,1000\", depths: \"0,50,100\", samples: 4}}\n")) {
        CHECK(0, "config"); return;
    }
    const Task *t = task_find("passkey");
    ConfError err;
    CHECK(t && !strcmp(t->metric, "exact_match"), "metric exact_match");
    CHECK(t->validate(&c, &err) == 0, "valid config");
    void *st = t->open(&c, &err);
    CHECK(t->size(st, SPLIT_TEST) == 24 && t->max_len(st) == 1000 && t->max_labels(st) == 5, "grid size 24, max_len 1000, 5 labels");
    int fixed = (int)(strlen(INTRO) + strlen(QUESTION) + strlen("The pass key is . Remember it.  is the pass key.")) + 2 * 5 + 4 + 5;
    int x[1000], y[1000], bad_text = 0, bad_labels = 0, bad_digits = 0, bad_depth = 0, bad_slice = 0;
    char want[1200], key[8];
    for (int split = SPLIT_VALID; split <= SPLIT_TEST; split++)
        for (long i = 0; i < 24; i++) {
            Slice s = {0};
            int L = t->example(st, split, i, x, y, &s);
            int wantL = i / 12 ? 1000 : 400, d = (int)(i / 4 % 3) * 50;
            long n = wantL - fixed, prefix = (long)floor(n * d / 100.0);
            if (L != wantL || s.n != 2 || s.val[0] != L || s.val[1] != d) { bad_slice++; continue; }
            for (int k = 0; k < 5; k++) key[k] = (char)y[L - 5 + k];
            key[5] = 0;
            for (int p = 0; p < L; p++) bad_labels += (y[p] >= 0) != (p >= L - 5);
            bad_labels += x[L - 5] != ' ';
            for (int k = 1; k < 5; k++) bad_labels += x[L - 5 + k] != y[L - 6 + k];
            bad_digits += key[0] < '1' || key[0] > '9';
            for (int k = 1; k < 5; k++) bad_digits += key[k] < '0' || key[k] > '9';
            if (landmark(want, key, prefix, n) != L) { bad_text++; continue; }
            for (int p = 0; p < L; p++) bad_text += x[p] != (unsigned char)want[p];
            // the info line starts after the intro, a newline, the prefix and a newline
            const char *info = "The pass key is ";
            for (int k = 0; info[k]; k++) bad_depth += x[(int)strlen(INTRO) + 2 + prefix + k] != info[k];
        }
    CHECK(bad_slice == 0, "lengths and slices {context, depth} from the cell-major grid");
    CHECK(bad_labels == 0, "labels exactly on the 5 answer digits after \"...The pass key is \", teacher forced");
    CHECK(bad_digits == 0, "the pass key has exactly 5 digits");
    CHECK(bad_text == 0, "the exact Landmark format: intro, garbage prefix, info line, garbage suffix, question");
    CHECK(bad_depth == 0, "the info line after floor(garbage x depth / 100) garbage bytes");
    t->example(st, SPLIT_TEST, 0, x, y, &(Slice){0});
    CHECK(x[strlen(INTRO)] == '\n' && x[strlen(INTRO) + 1] == '\n' && x[strlen(INTRO) + 2] == 'T', "depth 0: the info line right after the intro");
    t->example(st, SPLIT_TEST, 8, x, y, &(Slice){0});
    int qpos = 400 - 5 - (int)strlen(QUESTION) - 3;   // "...pass key.\n\nWhat is"
    CHECK(x[qpos] == '.' && x[qpos + 1] == '\n' && x[qpos + 2] == '\n', "depth 100: the info line right before the question");
    // training: lengths from the list, positions spread, same format
    int seen[2] = {0, 0}, lo = 0, hi = 0, bad = 0;
    for (long i = 0; i < 300; i++) {
        Slice s = {0};
        int L = t->example(st, SPLIT_TRAIN, i, x, y, &s);
        seen[L == 600]++;
        bad += (L != 400 && L != 600) || s.val[1] < 0 || s.val[1] > 100 || y[L - 5] < '0' || y[L - 6] >= 0;
        lo += s.val[1] < 20; hi += s.val[1] > 80;
    }
    CHECK(bad == 0 && seen[0] && seen[1], "training lengths from train_lengths (%d x 400, %d x 600)", seen[0], seen[1]);
    CHECK(lo > 20 && hi > 20, "training positions spread over the garbage (%d below 20%%, %d above 80%%)", lo, hi);
    // determinism and disjoint splits
    int x2[1000], y2[1000], same = 0;
    t->example(st, SPLIT_TEST, 3, x, y, &(Slice){0});
    t->example(st, SPLIT_TEST, 3, x2, y2, &(Slice){0});
    CHECK(!memcmp(x, x2, 400 * sizeof(int)) && !memcmp(y, y2, 400 * sizeof(int)), "same index, same example");
    for (long i = 0; i < 300; i++) {
        int L = t->example(st, SPLIT_TRAIN, i, x, y, &(Slice){0});
        for (long j = 0; j < 12; j++) {   // the 400-byte test cells
            t->example(st, SPLIT_TEST, j, x2, y2, &(Slice){0});
            same += L == 400 && !memcmp(x, x2, 400 * sizeof(int));
        }
    }
    CHECK(same == 0, "no training example equals a test example");
    t->example(st, SPLIT_VALID, 3, x2, y2, &(Slice){0});
    t->example(st, SPLIT_TEST, 3, x, y, &(Slice){0});
    CHECK(memcmp(x, x2, 400 * sizeof(int)) != 0, "valid and test examples of the same index differ");
    CHECK(t->adherent(st, SPLIT_TEST, 0, x, 0, '7') && !t->adherent(st, SPLIT_TEST, 0, x, 0, 'a'), "adherent: digits only");
    t->close(st);
    config_free(&c);

    test_group("passkey errors");
    char yaml[256], msg[64];
    snprintf(msg, sizeof msg, "every length must be >= %d", fixed);
    snprintf(yaml, sizeof yaml, "data: {task: passkey, passkey: {eval_lengths: \"512,%d\"}}\n", fixed - 1);
    expect_error(yaml, "data.passkey.eval_lengths", msg);
    snprintf(yaml, sizeof yaml, "data: {task: passkey, passkey: {eval_lengths: \"%d\", train_lengths: \"%d\"}}\n", fixed, fixed);
    if (load(&c, yaml) == 0) {
        CHECK(t->validate(&c, &err) == 0, "length %d (no garbage) is accepted", fixed);
        void *s2 = t->open(&c, &err);
        int L = t->example(s2, SPLIT_TEST, 0, x, y, &(Slice){0});
        CHECK(L == fixed && x[strlen(INTRO)] == '\n' && x[strlen(INTRO) + 1] == '\n', "with no garbage the prompt is still exact");
        t->close(s2);
        config_free(&c);
    }
    expect_error("data: {task: passkey, passkey: {depths: \"0,101\"}}\n", "data.passkey.depths", "[0, 100]");
    expect_error("data: {task: passkey, passkey: {train_lengths: \"512,x\"}}\n", "data.passkey.train_lengths", "expected integers");
    expect_error("model: {vocab_size: 128}\ndata: {task: passkey}\n", "model.vocab_size", ">= 256");
}

int main(void) {
    ops_init_threads(1);
    test_niah_variants();
    test_niah_layout();
    test_niah_disjoint();
    test_niah_text();
    test_niah_repeat();
    test_niah_errors();
    test_niah_evaluate();
    test_passkey();
    return test_summary();
}
