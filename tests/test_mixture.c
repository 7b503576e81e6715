// test_mixture.c: task mixtures and training phases (core/mixture.c): weights, determinism,
// the single-task order, phase step ranges, curricula, own schedules, and every config mistake.
#include "test.h"
#include "keys.h"
#include "mixture.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *base =
    "model: {d_model: 16, vocab_size: 256, pattern: \"*\"}\n"
    "data: {seq_len: 64, mqar: {num_kv_pairs: 4, train_examples: 400, valid_examples: 20, test_examples: 20},\n"
    "       niah: {train_lengths: \"128\", eval_lengths: \"128,256\", depths: \"0,50,100\", samples: 2}}\n"
    "train: {batch_size: 16, steps: 200, lr: 1e-3, schedule: cosine}\n";

// Opens a plan from the base config plus overrides; returns 0 or -1 with err filled.
static int open_plan(DataPlan *p, Config *c, char **sets, int nsets, ConfError *err) {
    if (config_load_string(c, base, "test.yaml", sets, nsets, all_key_tables(), err)) return -1;
    int rc = plan_open(p, c, (int)cfg_int(c, "train.batch_size"), 7, err);
    if (rc) config_free(c);
    return rc;
}

static void test_mixture_weights(void) {
    test_group("mixture");
    char *sets[] = {"data.mix=mqar:3, niah:1"};
    Config c;
    DataPlan p, q;
    ConfError err;
    if (!CHECK(open_plan(&p, &c, sets, 1, &err) == 0, "mqar:3,niah:1 opens (%s)", err.msg)) return;
    CHECK(p.eval.n == 2 && !strcmp(p.eval.task[0]->name, "mqar") && !strcmp(p.eval.task[1]->name, "niah"),
          "both tasks are evaluated");
    CHECK(p.max_len == 256, "buffers sized for the longest example of any task and split (%d)", p.max_len);
    plan_open(&q, &c, 16, 7, &err);
    const Task *ta[16], *tb[16];
    void *sa[16], *sb[16];
    long ia[16], ib[16], nmqar = 0, total = 0, same = 1, in_range = 1;
    for (long step = 0; step < 200; step++) {
        plan_batch(&p, step, 16, ta, sa, ia);
        plan_batch(&q, step, 16, tb, sb, ib);
        for (int b = 0; b < 16; b++) {
            same &= ta[b] == tb[b] && ia[b] == ib[b];
            nmqar += !strcmp(ta[b]->name, "mqar");
            in_range &= ia[b] >= 0 && ia[b] < ta[b]->size(sa[b], SPLIT_TRAIN);
            total++;
        }
    }
    double f = (double)nmqar / total;
    CHECK(fabs(f - 0.75) < 0.03, "weights 3:1 give a 0.75 share of mqar examples (%.3f of %ld)", f, total);
    CHECK(same, "two plans with one seed draw the same examples");
    CHECK(in_range, "every drawn index is inside its task's training split");
    plan_close(&p); plan_close(&q);
    config_free(&c);
}

// One task, no phases: the batches walk a permutation of the training set, epoch after epoch.
static void test_single_task_order(void) {
    test_group("mixture");
    Config c;
    DataPlan p;
    ConfError err;
    if (!CHECK(open_plan(&p, &c, NULL, 0, &err) == 0, "mqar alone opens (%s)", err.msg)) return;
    CHECK(p.nphases == 1 && p.phase[0].steps == 200, "no phase keys: one phase of all 200 steps");
    char seen[400] = {0};
    int perm = 1;
    const Task *t[16];
    void *s[16];
    long idx[16];
    for (long step = 0; step < 25; step++) {   // 25 x 16 = 400 = one epoch
        plan_batch(&p, step, 16, t, s, idx);
        for (int b = 0; b < 16; b++) { perm &= !seen[idx[b]]; seen[idx[b]] = 1; }
    }
    CHECK(perm, "one epoch visits each of the 400 training examples exactly once");
    plan_close(&p);
    config_free(&c);
}

static void test_phases(void) {
    test_group("phases");
    char *sets[] = {"phase1.frac=0.25", "phase1.set=data.mqar.train_mix=32:2:300",
                    "phase2.frac=0.75", "phase2.set=data.mix=mqar:1,niah:1; train.lr=1e-4; train.schedule=constant"};
    Config c;
    DataPlan p;
    ConfError err;
    if (!CHECK(open_plan(&p, &c, sets, 4, &err) == 0, "a curriculum phase and an annealing phase open (%s)", err.msg)) return;
    CHECK(p.nphases == 2 && p.phase[0].first == 0 && p.phase[0].steps == 50 && p.phase[1].first == 50 && p.phase[1].steps == 150,
          "fractions 0.25/0.75 of 200 steps: [0,50) and [50,200) (got %ld+%ld)", p.phase[0].steps, p.phase[1].steps);
    CHECK(plan_phase(&p, 49) == &p.phase[0] && plan_phase(&p, 50) == &p.phase[1], "plan_phase switches at step 50");
    // phase 1 trains on the short curriculum sequences, phase 2 on the base lengths and NIAH
    const Task *t[16];
    void *s[16];
    long idx[16];
    int tok[256], tgt[256], short_ok = 1, niah = 0, long_mqar = 1;
    for (long step = 0; step < 200; step++) {
        plan_batch(&p, step, 16, t, s, idx);
        for (int b = 0; b < 16; b++) {
            Slice sl = {0};
            int L = t[b]->example(s[b], SPLIT_TRAIN, idx[b], tok, tgt, &sl);
            if (step < 50) short_ok &= !strcmp(t[b]->name, "mqar") && L == 32;
            else if (!strcmp(t[b]->name, "niah")) niah++;
            else long_mqar &= L == 64;
        }
    }
    CHECK(short_ok, "phase 1 draws only 32-token MQAR sequences (its train_mix)");
    CHECK(long_mqar, "phase 2 draws MQAR at the base seq_len 64");
    CHECK(niah > 900 && niah < 1500, "phase 2 mixes NIAH in at weight 1:1 (%d of 2400)", niah);
    CHECK(p.eval.n == 2, "NIAH, trained on only in phase 2, is evaluated too");
    long ev_len = 0;
    for (long i = 0; i < p.eval.task[0]->size(p.eval.st[0], SPLIT_VALID); i++) {
        Slice sl = {0};
        ev_len = p.eval.task[0]->example(p.eval.st[0], SPLIT_VALID, i, tok, tgt, &sl);
    }
    CHECK(ev_len == 64, "evaluation uses the base settings, not the curriculum's (%ld)", ev_len);
    Schedule g = schedule_from_config(&c, 200);
    CHECK(plan_lr(&p, &g, 10) == schedule_lr(&g, 10), "phase 1 follows the global cosine schedule");
    CHECK(plan_lr(&p, &g, 60) == 1e-4 && plan_lr(&p, &g, 199) == 1e-4, "phase 2 runs its own constant lr 1e-4");
    plan_close(&p);
    config_free(&c);
}

// Each mistake is refused with a message naming the key and what would be valid.
static void test_phase_errors(void) {
    test_group("phase errors");
    struct { char *sets[4]; int n; const char *want; } cases[] = {
        {{"phase1.frac=0.5", "phase2.frac=0.3"}, 2, "sum to 0.8"},
        {{"phase2.frac=1"}, 1, "number the phases from 1"},
        {{"phase1.frac=1", "phase2.set=data.seq_len=32"}, 2, "phase2.frac is 0"},
        {{"phase1.frac=1", "phase1.set=model.d_model=32"}, 2, "model.d_model cannot change between phases"},
        {{"phase1.frac=1", "phase1.set=train.batch_size=4"}, 2, "train.batch_size cannot change"},
        {{"phase1.frac=1", "phase1.set=data.seq_len"}, 2, "not key=value"},
        {{"phase1.frac=1", "phase1.set=data.mqar.num_kv_pairs=abc"}, 2, "phase1.set: --set data.mqar.num_kv_pairs=abc"},
        {{"phase1.frac=1", "phase1.set=data.mqar.nosuch=1"}, 2, "unknown key"},
        {{"data.mix=mqar:1,zebra:2"}, 1, "unknown task \"zebra\""},
        {{"data.mix=mqar:1,niah:-1"}, 1, "expected a positive number"},
        {{"data.mix=mqar"}, 1, "needs a weight"},
        {{"data.mix=mqar:1,mqar:2"}, 1, "listed twice"},
        {{"data.mix=mqar:1", "data.task=niah"}, 2, "not both"},
        {{"phase1.frac=0.999", "phase2.frac=0.001", "train.steps=100"}, 3, "phase2 gets no steps"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Config c;
        DataPlan p;
        ConfError err = {{0}};
        int rc = open_plan(&p, &c, cases[i].sets, cases[i].n, &err);
        if (rc == 0) { plan_close(&p); config_free(&c); }
        CHECK(rc != 0 && strstr(err.msg, cases[i].want), "%s ... -> \"%s\" (got: %s)", cases[i].sets[0], cases[i].want,
              rc ? err.msg : "accepted");
    }
}

int main(void) {
    test_mixture_weights();
    test_single_task_order();
    test_phases();
    test_phase_errors();
    return test_summary();
}
