// test_profile.c: the per-part profile of training steps (Model.profile): off it records nothing
// and changes nothing; on, every part the model has appears with non-negative times, and the
// parts add up to the step's wall time (they follow each other without gaps).
#include "test.h"
#include "keys.h"
#include "model.h"
#include "ops.h"
#include "optim.h"
#include <omp.h>
#include <string.h>

static int load(Config *c, const char *yaml) {
    ConfError err;
    int rc = config_load_string(c, yaml, "test", NULL, 0, all_key_tables(), &err);
    if (rc) printf("config error: %s\n", err.msg);
    return rc;
}

static const ProfPart *part(const Model *m, const char *name) {
    for (int i = 0; i < m->nprof; i++) if (!strcmp(m->prof[i].name, name)) return &m->prof[i];
    return NULL;
}

// One training step as the bench suite times it; returns its wall time.
static double step(Model *m, AdamW *o, const int *tok, const int *tgt, int B, int T, double *loss) {
    double t0 = omp_get_wtime();
    model_zero_grad(m);
    *loss = model_forward(m, tok, tgt, B, T);
    model_backward(m);
    double t1 = omp_get_wtime();
    adamw_step(o, m->params, m->grads, 1e-3, 1.0);
    double t2 = omp_get_wtime();
    model_profile_add(m, "optimizer", PASS_UPDATE, t2 - t1);
    return t2 - t0;
}

int main(void) {
    test_group("profile");
    ops_init_threads(1);
    Config c;
    // attention, Mamba-1, an MLP and an MoE: four block types, each several times
    if (load(&c, "model: {d_model: 64, vocab_size: 256, tie_embeddings: false, pattern: \"M-*EM-*E\", attention: {heads: 4},"
                 " mamba: {d_state: 8}, moe: {experts: 4, top_k: 2}}\n")) { CHECK(0, "config"); return test_summary(); }
    Model m;
    ConfError err;
    if (!CHECK(model_build(&m, &c, &err) == 0, "build")) return test_summary();
    const int B = 4, T = 128;
    model_alloc(&m, B, T, B * T);
    model_init(&m, 1);
    AdamW o;
    adamw_init(&o, &m, 0.9, 0.95, 1e-8, 0.1);
    int tok[4 * 128], tgt[4 * 128];
    Rng rng;
    rng_seed(&rng, 2);
    for (int i = 0; i < B * T; i++) tok[i] = (int)rng_below(&rng, 256);
    for (int i = 0; i < B * T; i++) tgt[i] = (i + 1) % T ? tok[i + 1] : -1;

    // off: nothing recorded
    double loss_off[2], loss_on[2];
    step(&m, &o, tok, tgt, B, T, &loss_off[0]);
    step(&m, &o, tok, tgt, B, T, &loss_off[1]);
    CHECK(m.profile == 0 && m.nprof == 0, "profile off after model_build: no parts recorded");

    // on, from the same initial weights and optimizer state: the same losses, and the parts
    adamw_free(&o);
    model_init(&m, 1);
    adamw_init(&o, &m, 0.9, 0.95, 1e-8, 0.1);
    m.profile = 1;
    double wall = 0;
    for (int s = 0; s < 2; s++) wall += step(&m, &o, tok, tgt, B, T, &loss_on[s]);
    CHECK(loss_on[0] == loss_off[0] && loss_on[1] == loss_off[1], "profiling changes no result (losses %.6f %.6f bitwise equal)",
          loss_on[0], loss_on[1]);
    const char *names[] = {"embedding", "mamba1", "mlp", "attention", "moe", "head+loss", "optimizer"};
    int found = 0;
    for (int i = 0; i < 7; i++) found += part(&m, names[i]) != NULL;
    CHECK(found == 7 && m.nprof == 7, "7 parts: embedding, the 4 block types, head+loss, optimizer (%d found, %d recorded)", found, m.nprof);
    int nonneg = 1, ran = 1;
    double sum = 0;
    for (int i = 0; i < m.nprof; i++)
        for (int p = 0; p < NPASS; p++) { nonneg &= m.prof[i].t[p] >= 0; sum += m.prof[i].t[p]; }
    const char *blocks[] = {"mamba1", "mlp", "attention", "moe"};
    for (int i = 0; i < 4; i++) {
        const ProfPart *q = part(&m, blocks[i]);
        ran &= q && q->t[PASS_FORWARD] > 0 && q->t[PASS_BACKWARD] > 0 && q->t[PASS_UPDATE] == 0;
    }
    const ProfPart *opt = part(&m, "optimizer");
    CHECK(nonneg, "every time is non-negative");
    CHECK(ran, "every block type has forward and backward time, and no update time");
    CHECK(opt && opt->t[PASS_UPDATE] > 0 && opt->t[PASS_FORWARD] == 0, "the optimizer's time is in the update pass");
    printf("  sum of parts %.2f ms, wall %.2f ms over 2 steps\n", sum * 1e3, wall * 1e3);
    CHECK(sum <= wall && sum >= 0.97 * wall, "the parts add up to the steps' wall time within 3%% (%.2f%%)", 100 * sum / wall);

    model_profile_reset(&m);
    CHECK(m.nprof == 0 && m.prof[0].t[PASS_FORWARD] == 0, "reset forgets the parts");
    adamw_free(&o);
    model_free(&m);
    config_free(&c);
    return test_summary();
}
