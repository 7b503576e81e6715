// test_grad_ready.c: the contract data-parallel training overlaps its all-reduce on
// (Model.grad_ready): when backward says grads[from, nparams) are final, nothing after that call
// changes them. Checked for every architecture the toolkit builds (shared Zamba blocks, whose
// tensors are used by several sublayers; a tied embedding, which the head and the embedding both
// use; MoE with its pooled loss) by snapshotting each range when it is declared final and
// comparing bitwise with the gradient at the end. Also: the ranges only grow, the last call
// declares everything, a batch without labels calls the hook in the same sequence, and
// loss_denom / aux_weight scale the gradient as the ranks' sum needs.
#include "keys.h"
#include "model.h"
#include "ops.h"
#include "test.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { B = 2, T = 9, MAX_CALLS = 256 };

typedef struct {
    const Model *m;
    int ncalls;
    size_t from[MAX_CALLS];
    real *snap[MAX_CALLS];   // grads[from, nparams) at the call
} Recorder;

static void record(void *ctx, size_t from) {
    Recorder *r = ctx;
    if (r->ncalls == MAX_CALLS) return;
    size_t n = r->m->nparams - from;
    r->from[r->ncalls] = from;
    r->snap[r->ncalls] = malloc((n + 1) * sizeof(real));
    memcpy(r->snap[r->ncalls], r->m->grads + from, n * sizeof(real));
    r->ncalls++;
}

static void recorder_free(Recorder *r) {
    for (int i = 0; i < r->ncalls; i++) free(r->snap[i]);
    r->ncalls = 0;
}

static int build(const char *label, const char *yaml, Config *c, Model *m) {
    ConfError err;
    if (config_load_string(c, yaml, label, NULL, 0, all_key_tables(), &err) != 0 || model_build(m, c, &err) != 0) {
        CHECK(0, "%s: %s", label, err.msg);
        return -1;
    }
    model_alloc(m, B, T, B * T);
    model_init(m, 5);
    Rng rng;
    rng_seed(&rng, 11);
    for (size_t i = 0; i < m->nparams; i++) m->params[i] += (real)(0.05 * rng_normal(&rng));   // LoRA etc. non-zero
    return 0;
}

static double grad_sum_abs(const Model *m) {
    double s = 0;
    for (size_t i = 0; i < m->nparams; i++) s += fabs((double)m->grads[i]);
    return s;
}

static void check_arch(const char *label, const char *yaml) {
    Config c;
    Model m;
    if (build(label, yaml, &c, &m) != 0) return;
    int tok[B * T], tgt[B * T], none[B * T];
    Rng rng;
    rng_seed(&rng, 17);
    for (int i = 0; i < B * T; i++) { tok[i] = (int)rng_below(&rng, m.V); tgt[i] = i % 3 ? (int)rng_below(&rng, m.V) : -1; none[i] = -1; }

    Recorder r = {.m = &m};
    m.grad_ready = record;
    m.grad_ready_ctx = &r;
    model_zero_grad(&m);
    model_forward(&m, tok, tgt, B, T);
    model_backward(&m);
    int grows = 1, unchanged = 1, first_bad = -1;
    for (int i = 0; i < r.ncalls; i++) {
        if (i && r.from[i] > r.from[i - 1]) grows = 0;
        if (memcmp(r.snap[i], m.grads + r.from[i], (m.nparams - r.from[i]) * sizeof(real))) {
            unchanged = 0;
            if (first_bad < 0) first_bad = i;
        }
    }
    CHECK(r.ncalls == m.nsub + 2, "%s: one call after the head, one per sublayer, one at the end (%d calls, %d sublayers)", label,
          r.ncalls, m.nsub);
    CHECK(grows && r.ncalls && r.from[r.ncalls - 1] == 0, "%s: the final range only grows, and ends as the whole gradient", label);
    CHECK(unchanged, "%s: no gradient declared final changes afterwards (first broken call: %d)", label, first_bad);
    // some overlap exists: before the end, more than the head's part is already final
    CHECK(r.ncalls > 2 && r.from[r.ncalls - 2] < m.nparams / 2 + m.nparams / 4,
          "%s: three quarters of the gradient are final before the embedding's backward (from %zu of %zu)", label,
          r.ncalls > 2 ? r.from[r.ncalls - 2] : 0, m.nparams);
    size_t seq[MAX_CALLS];
    int n1 = r.ncalls;
    memcpy(seq, r.from, n1 * sizeof(size_t));
    recorder_free(&r);

    // no labels (and no aux loss): gradients stay zero, the hook sequence is the same
    model_zero_grad(&m);
    model_forward(&m, tok, none, B, T);
    if (m.aux_loss == 0) {
        model_backward(&m);
        CHECK(r.ncalls == n1 && !memcmp(seq, r.from, n1 * sizeof(size_t)) && grad_sum_abs(&m) == 0,
              "%s: a batch without labels hands over the same ranges (%d calls), all zero", label, r.ncalls);
    }
    recorder_free(&r);
    m.grad_ready = NULL;

    // loss_denom: dividing by twice the label count halves the cross-entropy's gradient
    model_zero_grad(&m);
    model_forward(&m, tok, tgt, B, T);
    int n = m.n_labels;
    double aux = m.aux_loss;
    m.aux_weight = 0;   // the cross-entropy alone
    model_forward(&m, tok, tgt, B, T);
    model_backward(&m);
    double full = grad_sum_abs(&m);
    model_zero_grad(&m);
    m.loss_denom = 2.0 * n;
    model_forward(&m, tok, tgt, B, T);
    model_backward(&m);
    double half = grad_sum_abs(&m);
    CHECK(fabs(half / full - 0.5) < 1e-5, "%s: loss_denom = 2 n_labels halves the gradient (ratio %.7f)", label, half / full);
    m.loss_denom = 0;
    if (aux != 0) {
        // aux_weight scales the load-balancing term's gradient only: w=1 minus w=0 is twice w=0.5 minus w=0
        double g[3];
        const double w[3] = {0, 0.5, 1};
        real *base = malloc(m.nparams * sizeof(real));
        double d05 = 0, d1 = 0;
        for (int k = 0; k < 3; k++) {
            m.aux_weight = w[k];
            model_zero_grad(&m);
            model_forward(&m, tok, tgt, B, T);
            model_backward(&m);
            g[k] = grad_sum_abs(&m);
            if (k == 0) memcpy(base, m.grads, m.nparams * sizeof(real));
            double d = 0;
            for (size_t i = 0; k && i < m.nparams; i++) d += fabs((double)m.grads[i] - base[i]);
            if (k == 1) d05 = d; else if (k == 2) d1 = d;
        }
        CHECK(d1 > 0 && fabs(d1 / d05 - 2) < 1e-2, "%s: aux_weight scales the load-balancing gradient linearly (%.4f)", label, d1 / d05);
        (void)g;
        free(base);
    }
    m.aux_weight = 1;
    model_free(&m);
    config_free(&c);
}

int main(void) {
    ops_init_threads(1);
    test_group("grad_ready");
    check_arch("attention, tied embedding, RoPE, GQA",
               "model: {d_model: 8, vocab_size: 13, tie_embeddings: true, pattern: \"*-*-\", "
               "attention: {heads: 4, kv_heads: 2, rope: true}, mlp: {hidden: 12}}\n");
    check_arch("Mamba-1, untied head",
               "model: {d_model: 8, vocab_size: 13, tie_embeddings: false, layers: 3, ratio: \"0:1\", mamba: {d_state: 4}}\n");
    check_arch("Mamba-2",
               "model: {d_model: 8, vocab_size: 13, pattern: \"M-M-\", mamba: {version: 2, headdim: 4, d_state: 4, chunk_size: 4}}\n");
    check_arch("Jamba-style 1:3 with MoE",
               "model: {d_model: 8, vocab_size: 13, tie_embeddings: false, layers: 4, ratio: \"1:3\", moe_period: 2, moe_offset: 1, "
               "attention: {heads: 2}, mamba: {d_state: 3, dt_rank: 2}, mlp: {hidden: 8}, "
               "moe: {experts: 4, top_k: 2, hidden: 6, aux_loss_coef: 0.5}}\n");
    check_arch("Zamba2-style shared blocks (ABA), concat, LoRA",
               "model: {d_model: 8, vocab_size: 13, pattern: \"M SM M SM SM M\", "
               "mamba: {version: 2, headdim: 4, d_state: 4, chunk_size: 4}, "
               "shared: {blocks: 2, lora_rank: 2, lora_qkv: true, rope: true}, shared_attn: {heads: 2, mlp_hidden: 8}}\n");
    return test_summary();
}
