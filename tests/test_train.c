// test_train.c: optimizer, schedules, weight-decay mask, gradient norm, and the task generators'
// invariants (MQAR exactly as Zoology defines it; byte-level splits).
#include "test.h"
#include "keys.h"
#include "model.h"
#include "ops.h"
#include "optim.h"
#include "task.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int load(Config *c, const char *yaml) {
    ConfError err;
    int rc = config_load_string(c, yaml, "test", NULL, 0, all_key_tables(), &err);
    if (rc) printf("config error: %s\n", err.msg);
    return rc;
}

static void test_schedules(void) {
    test_group("schedule");
    Schedule s = {.kind = 1, .lr = 1.0, .min_lr = 0.1, .warmup = 10, .total = 110};
    CHECK(fabs(schedule_lr(&s, 0) - 0.1) < 1e-12, "warmup starts at lr/warmup (%.3f)", schedule_lr(&s, 0));
    CHECK(fabs(schedule_lr(&s, 9) - 1.0) < 1e-12, "warmup ends at lr");
    CHECK(fabs(schedule_lr(&s, 10) - 1.0) < 1e-12, "cosine starts at lr");
    CHECK(fabs(schedule_lr(&s, 60) - 0.55) < 1e-12, "cosine half way is the mean of lr and min_lr (%.4f)", schedule_lr(&s, 60));
    CHECK(schedule_lr(&s, 109) > 0.1 && schedule_lr(&s, 109) < 0.101, "cosine ends near min_lr (%.5f)", schedule_lr(&s, 109));
    Schedule w = {.kind = 2, .lr = 1.0, .min_lr = 0.0, .warmup = 0, .total = 100, .decay_frac = 0.2};
    CHECK(schedule_lr(&w, 0) == 1.0 && schedule_lr(&w, 79) == 1.0, "wsd stable phase at lr");
    CHECK(fabs(schedule_lr(&w, 89) - 0.5) < 1e-12, "wsd decays linearly (%.3f at step 89)", schedule_lr(&w, 89));
    CHECK(fabs(schedule_lr(&w, 99)) < 1e-12, "wsd ends at min_lr");
    Schedule k = {.kind = 0, .lr = 0.3, .total = 50};
    CHECK(schedule_lr(&k, 0) == 0.3 && schedule_lr(&k, 49) == 0.3, "constant");
    CHECK(schedule_kind("wsd") == 2 && schedule_kind("linear") == -1, "schedule names");
}

static void test_adamw_and_decay_mask(void) {
    test_group("adamw");
    Config c;
    if (load(&c, "model: {d_model: 8, vocab_size: 16, tie_embeddings: false, pattern: \"M-*-\", attention: {heads: 2}, "
                 "mamba: {d_state: 4, inner_norm: jamba}}\n")) { CHECK(0, "config"); return; }
    Model m;
    ConfError err;
    CHECK(model_build(&m, &c, &err) == 0, "build");
    model_alloc(&m, 1, 4, 4);
    model_init(&m, 1);
    // decay only on weight matrices (and the conv kernel): never norms, biases, A_log, D
    int bad = 0, decayed = 0;
    for (int i = 0; i < m.npinfo; i++) {
        const char *n = m.pinfo[i].name;
        int should = m.pinfo[i].ndim >= 2 && !strstr(n, "A_log") && !strstr(n, "embed_tokens");
        if (m.pinfo[i].decay != should) { printf("  decay flag of %s is %d\n", n, m.pinfo[i].decay); bad++; }
        decayed += m.pinfo[i].decay;
    }
    CHECK(bad == 0 && decayed > 0, "weight decay exactly on weight matrices (%d tensors decayed)", decayed);

    // one AdamW step against the formula, on one decayed and one undecayed entry
    AdamW o;
    adamw_init(&o, &m, 0.9, 0.95, 1e-8, 0.1);
    for (size_t i = 0; i < m.nparams; i++) m.grads[i] = (real)(0.01 * ((i % 7) - 3));
    int wq = model_find_param(&m, "model.layers.1.self_attn.q_proj.weight");
    int nf = model_find_param(&m, "model.final_layernorm.weight");
    size_t a = m.pinfo[wq].offset + 5, b = m.pinfo[nf].offset + 2;
    double pa = m.params[a], pb = m.params[b], ga = m.grads[a], gb = m.grads[b], lr = 1e-2;
    adamw_step(&o, m.params, m.grads, lr, 1.0);
    // first step: m_hat = g, v_hat = g^2, so the update is lr * g/(|g|+eps) plus decay
    double ea = pa - lr * ga / (fabs(ga) + 1e-8) - lr * 0.1 * pa;
    double eb = pb - lr * gb / (fabs(gb) + 1e-8);
    CHECK(fabs(m.params[a] - ea) < 1e-6, "decayed weight follows AdamW (%.7f vs %.7f)", m.params[a], ea);
    CHECK(fabs(m.params[b] - eb) < 1e-6, "norm weight gets no decay (%.7f vs %.7f)", m.params[b], eb);

    test_group("grad_norm");
    double ref = 0;
    for (size_t i = 0; i < m.nparams; i++) ref += (double)m.grads[i] * m.grads[i];
    CHECK(fabs(grad_norm(m.grads, m.nparams) - sqrt(ref)) < 1e-9 * sqrt(ref), "global L2 norm");
    m.grads[3] = NAN;
    CHECK(!isfinite(grad_norm(m.grads, m.nparams)), "a NaN gradient gives a non-finite norm");
    adamw_free(&o);
    model_free(&m);
    config_free(&c);
}

static Slice sl;   // slices of examples whose slice a test does not look at

static void test_mqar(void) {
    test_group("mqar");
    Config c;
    if (load(&c, "model: {vocab_size: 8192}\ndata: {task: mqar, seq_len: 64, mqar: {num_kv_pairs: 4, train_examples: 2000, test_examples: 2000}}\n")) {
        CHECK(0, "config"); return;
    }
    const Task *t = task_find("mqar");
    ConfError err;
    CHECK(t && t->validate(&c, &err) == 0, "valid config");
    void *st = t->open(&c, &err);
    int T = 64, V = 8192, N = 4, x[64], y[64];
    int bad_struct = 0, bad_label = 0, bad_once = 0, collide = 0;
    for (long i = 0; i < 500; i++) {
        t->example(st, SPLIT_TRAIN, i, x, y, &sl);
        // context: keys from [1, V/2) at even positions, values from [V/2, V) after them
        for (int j = 0; j < N; j++)
            if (x[2 * j] < 1 || x[2 * j] >= V / 2 || x[2 * j + 1] < V / 2 || x[2 * j + 1] >= V) bad_struct++;
        int nl = 0;
        for (int p = 0; p < T; p++) {
            if (y[p] < 0) continue;
            nl++;
            // labelled position holds a key; its target is the value that followed that key
            int found = 0;
            for (int j = 0; j < N; j++) if (x[2 * j] == x[p] && x[2 * j + 1] == y[p]) found = 1;
            if (!found || p < 2 * N || (p - 2 * N) % 2) bad_label++;
        }
        if (nl != N) bad_once++;
        for (int p = 2 * N; p < T; p++)
            if (y[p] < 0) for (int j = 0; j < N; j++) if (x[p] == x[2 * j]) collide++;
    }
    CHECK(bad_struct == 0, "keys in [1, V/2), values in [V/2, V), interleaved");
    CHECK(bad_label == 0, "every label sits on a query key at an even offset and names its value");
    CHECK(bad_once == 0, "every key is queried exactly once (N labels per sequence)");
    printf("  (random filler equal to a key outside the query slots: %d times in 500 sequences; Zoology allows it)\n", collide);
    // determinism and disjoint splits
    int x2[64], y2[64];
    t->example(st, SPLIT_TRAIN, 7, x, y, &sl);
    t->example(st, SPLIT_TRAIN, 7, x2, y2, &sl);
    CHECK(!memcmp(x, x2, sizeof x) && !memcmp(y, y2, sizeof y), "an example is regenerated exactly");
    int same = 0;
    for (long i = 0; i < 2000; i++) {
        t->example(st, SPLIT_TEST, i, x2, y2, &sl);
        for (long k = 0; k < 200; k++) {
            t->example(st, SPLIT_TRAIN, k, x, y, &sl);
            if (!memcmp(x, x2, 8 * sizeof(int))) same++;   // same key-value context
        }
    }
    CHECK(same == 0, "no test sequence shares its key-value context with a training sequence (2000 x 200 compared)");
    t->example(st, SPLIT_TEST, 0, x, y, &sl);
    t->example(st, SPLIT_TRAIN, 0, x2, y2, &sl);
    CHECK(memcmp(x, x2, sizeof x) != 0, "test example 0 differs from train example 0");
    // power law: early query slots are preferred
    long early = 0, late = 0;
    for (long i = 0; i < 1000; i++) {
        t->example(st, SPLIT_VALID, i, x, y, &sl);
        for (int p = 0; p < T; p++) if (y[p] >= 0) { if (p < 8 + 28) early++; else late++; }
    }
    CHECK(early > late, "query gaps favour early slots with power_a 0.01 (%ld early, %ld late)", early, late);
    t->close(st);
    config_free(&c);

    // errors: pairs that do not fit
    if (load(&c, "model: {vocab_size: 8192}\ndata: {task: mqar, seq_len: 14, mqar: {num_kv_pairs: 4}}\n") == 0) {
        CHECK(t->validate(&c, &err) != 0 && strstr(err.msg, "N <= 3"), "too many pairs for seq_len is an error: %s", err.msg);
        config_free(&c);
    }
    if (load(&c, "model: {vocab_size: 32}\ndata: {task: mqar, seq_len: 64}\n") == 0) {
        CHECK(t->validate(&c, &err) != 0 && strstr(err.msg, "vocab_size"), "vocab not above seq_len is an error");
        config_free(&c);
    }
}

static void test_mqar_mix(void) {
    test_group("mqar mix");
    Config c;
    if (load(&c, "model: {vocab_size: 8192}\ndata: {task: mqar, mqar: {train_mix: \"64:4:300,128:8:200\", "
                 "eval_mix: \"64:4:50,256:16:50\", no_collisions: true}}\n")) { CHECK(0, "config"); return; }
    const Task *t = task_find("mqar");
    ConfError err;
    CHECK(t->validate(&c, &err) == 0, "mixed segments validate");
    void *st = t->open(&c, &err);
    CHECK(t->size(st, SPLIT_TRAIN) == 500 && t->size(st, SPLIT_TEST) == 100, "split sizes add the segment counts");
    CHECK(t->max_len(st) == 256 && t->max_labels(st) == 16, "max_len and max_labels span every split (%d, %d)", t->max_len(st), t->max_labels(st));
    int x[256], y[256], bad = 0, collide = 0;
    for (long i = 0; i < 500; i++) {
        Slice s = {0};
        int L = t->example(st, SPLIT_TRAIN, i, x, y, &s);
        int wantL = i < 300 ? 64 : 128, wantN = i < 300 ? 4 : 8, nl = 0;
        for (int p = 0; p < L; p++) nl += y[p] >= 0;
        if (L != wantL || nl != wantN || s.n != 2 || s.val[0] != wantL || s.val[1] != wantN) bad++;
        for (int p = 0; p < L; p++) {
            if (y[p] >= 0) continue;
            for (int j = 0; j < wantN; j++) if (p != 2 * j && p != 2 * j + 1 && (x[p] == x[2 * j] || x[p] == x[2 * j + 1])) collide++;
        }
    }
    CHECK(bad == 0, "examples follow their segment: length, pairs and slice {seq_len, num_kv_pairs}");
    CHECK(collide == 0, "no_collisions: filler never equals a key or value of its sequence");
    Slice s = {0};
    CHECK(t->example(st, SPLIT_TEST, 60, x, y, &s) == 256 && s.val[1] == 16, "eval_mix segments for the test split");
    char js[128];
    slice_json(&s, js, sizeof js);
    CHECK(!strcmp(js, "{\"seq_len\": 256, \"num_kv_pairs\": 16}"), "slice JSON %s", js);
    t->close(st);
    config_free(&c);
    const char *bad_mixes[] = {"64:4", "64:40:10", "63:4:10", "64:4:10;", "x"};
    for (int i = 0; i < 5; i++) {
        char y2[256];
        snprintf(y2, sizeof y2, "model: {vocab_size: 8192}\ndata: {task: mqar, mqar: {train_mix: \"%s\"}}\n", bad_mixes[i]);
        if (load(&c, y2) == 0) {
            CHECK(t->validate(&c, &err) != 0 && strstr(err.msg, "data.mqar.train_mix"), "bad train_mix \"%s\": %s", bad_mixes[i], err.msg);
            config_free(&c);
        }
    }
}

static void test_bytes(void) {
    test_group("bytes");
    char path[] = "/tmp/hlab_bytes_XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    for (int i = 0; i < 10000; i++) fputc('a' + (i * 7 + i / 13) % 26, f);
    fclose(f);
    char yaml[512];
    snprintf(yaml, sizeof yaml, "data: {task: bytes, seq_len: 32, bytes: {path: \"%s\", valid_frac: 0.1, test_frac: 0.1}}\n", path);
    Config c;
    if (load(&c, yaml)) { CHECK(0, "config"); return; }
    const Task *t = task_find("bytes");
    ConfError err;
    void *st = t->open(&c, &err);
    CHECK(st != NULL, "opens the file");
    CHECK(t->size(st, SPLIT_VALID) == 999 / 32 && t->size(st, SPLIT_TEST) == 999 / 32, "valid/test are consecutive windows (%ld)", t->size(st, SPLIT_VALID));
    int x[32], y[32], ok = 1;
    for (long i = 0; i < 100; i++) {
        t->example(st, SPLIT_TRAIN, i, x, y, &sl);
        for (int k = 0; k < 31; k++) ok &= y[k] == x[k + 1];
    }
    CHECK(ok, "every target is the next byte");
    t->close(st);
    config_free(&c);
    unlink(path);
    snprintf(yaml, sizeof yaml, "data: {task: bytes, bytes: {path: /nonexistent/file}}\n");
    if (load(&c, yaml) == 0) {
        CHECK(t->open(&c, &err) == NULL && strstr(err.msg, "cannot open"), "missing file is a clear error: %s", err.msg);
        config_free(&c);
    }
}

int main(void) {
    ops_init_threads(0);
    test_schedules();
    test_adamw_and_decay_mask();
    test_mqar();
    test_mqar_mix();
    test_bytes();
    return test_summary();
}
