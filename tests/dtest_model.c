// dtest_model.c: whole-model finite-difference gradient checks in double precision: embedding,
// residual norms, every block type in a hybrid stack, final norm, tied and untied heads, loss
// over labelled positions only.
#include "gradcheck.h"
#include "keys.h"
#include "model.h"
#include "ops.h"
#include <stdlib.h>

// The self-test corrupts one tensor's analytic gradient by 1% to prove the check can fail.
static const char *corrupt_name = NULL;
static double corrupt_scale(const char *name) { return corrupt_name && !strcmp(name, corrupt_name) ? 1.01 : 1.0; }
// Per-block checks (dtest_attention, dtest_mamba1) hold 1e-6. Through a whole stack, Mamba's
// A_log and dt_proj gradients are 1e-6 of the loss or less and sit near the noise of finite
// differences, so the whole model is held to 1e-5: a 1% wrong gradient still gives 1e-2
// (the self-test at the end proves it is caught).
static const double TOL = 1e-5;

static double check_model(const char *label, const char *yaml, int B, int T, int label_every, int samples) {
    Config c;
    ConfError err;
    if (config_load_string(&c, yaml, label, NULL, 0, all_key_tables(), &err) != 0) {
        CHECK(0, "%s: config: %s", label, err.msg);
        return 1;
    }
    Model m;
    if (model_build(&m, &c, &err) != 0) { CHECK(0, "%s: build: %s", label, err.msg); return 1; }
    model_alloc(&m, B, T, B * T);
    model_init(&m, 7);
    Rng rng;
    rng_seed(&rng, 3);
    // perturb everything so no gradient is trivially zero or symmetric
    for (size_t i = 0; i < m.nparams; i++) m.params[i] += (real)(0.1 * rng_normal(&rng));
    int tok[B * T], tgt[B * T];
    for (int i = 0; i < B * T; i++) {
        tok[i] = (int)rng_below(&rng, m.V);
        tgt[i] = (i % label_every == 0) ? (int)rng_below(&rng, m.V) : -1;
    }
    model_zero_grad(&m);
    model_forward(&m, tok, tgt, B, T);
    model_backward(&m);
    real *g = malloc(m.nparams * sizeof(real));
    memcpy(g, m.grads, m.nparams * sizeof(real));
    // 4-point central stencil (truncation error O(h^4)), at two steps: an entry passes when it
    // agrees at either. A large step suffers from strong curvature (embeddings, attention), a
    // small one from rounding on the tiny gradients of Mamba's A_log/dt_proj and the LoRA
    // adapters; a wrong gradient disagrees at both (the self-test below shows it is caught).
    const double steps[2] = {1e-3, 1e-4};
    double worst_all = 0;
    for (int i = 0; i < m.npinfo; i++) {
        ParamInfo *pi = &m.pinfo[i];
        // floor: 1e-3 of the tensor's largest gradient, and never below 1e-7 (the loss is O(1);
        // adapters that start at zero have entries of 1e-8 where 1e-13 of rounding would dominate)
        double worst = 0, floor_ = fmax(1e-3 * max_abs(g + pi->offset, pi->numel), 1e-7);
        int ns = pi->numel < (size_t)samples ? (int)pi->numel : samples;
        for (int s = 0; s < ns; s++) {
            size_t k = pi->numel <= (size_t)samples ? (size_t)s : rng_below(&rng, pi->numel);
            real *p = m.params + pi->offset + k, save = *p;
            double e = 1e30;
            for (int hs = 0; hs < 2; hs++) {
                double h = steps[hs], f[4], off[4] = {2 * h, h, -h, -2 * h};
                for (int q = 0; q < 4; q++) { *p = save + off[q]; f[q] = model_forward(&m, tok, tgt, B, T) + m.aux_loss; }
                *p = save;
                double num = (8 * (f[1] - f[2]) - (f[0] - f[3])) / (12 * h);   // differences first: exactly 0 for a zero gradient
                e = fmin(e, fd_compare(g[pi->offset + k] * corrupt_scale(pi->name), num, floor_));
            }
            if (e > worst) worst = e;
        }
        if (worst > worst_all) worst_all = worst;
        if (getenv("HLAB_GC_VERBOSE") && worst > 1e-6) printf("  %s: %s %.2e\n", label, pi->name, worst);
        if (worst >= TOL && !corrupt_name) CHECK(0, "%s: d%s rel err %.2e", label, pi->name, worst);
    }
    if (!corrupt_name) CHECK(worst_all < TOL, "%s: %d tensors, worst rel err %.2e (tol %.0e)", label, m.npinfo, worst_all, TOL);
    free(g);
    model_free(&m);
    config_free(&c);
    return worst_all;
}

int main(void) {
    ops_init_threads(0);
    test_group("model gradcheck");
    char y[1024];
    snprintf(y, sizeof y, "model: {d_model: 8, vocab_size: 13, pattern: \"M-*-M-\", attention: {heads: 2}, mamba: {d_state: 4, dt_min: 0.5, dt_max: 1.0}, mlp: {hidden: 12}}\n");
    check_model("M-*-M- no rope", y, 2, 5, 1, 12);
    snprintf(y, sizeof y, "model: {d_model: 8, vocab_size: 13, pattern: \"M-*-M-\", attention: {heads: 2, rope: true}, mamba: {d_state: 4, dt_min: 0.5, dt_max: 1.0}, mlp: {hidden: 12}}\n");
    check_model("M-*-M- rope", y, 2, 5, 1, 12);
    snprintf(y, sizeof y, "model: {d_model: 8, vocab_size: 13, tie_embeddings: false, pattern: \"*M- M*-\", attention: {heads: 4, kv_heads: 2, rope: true}, mamba: {d_state: 3, inner_norm: jamba, dt_min: 0.5, dt_max: 1.0}, mlp: {hidden: 6}}\n");
    check_model("untied, GQA, jamba inner norms, labels on 1/3", y, 2, 6, 3, 12);
    snprintf(y, sizeof y, "model: {d_model: 8, vocab_size: 13, layers: 4, ratio: \"1:3\", mamba: {d_state: 4, inner_norm: falcon, dt_rank: 2, dt_min: 0.5, dt_max: 1.0}, attention: {heads: 2}, mlp: {hidden: 8}}\n");
    check_model("rule form 1:3, falcon norms", y, 1, 7, 1, 12);
    // Jamba-style: rule form 1:7 (attention at layer 4 of 8), MoE every 2 layers (offset 1), no
    // RoPE, Jamba's learned inner norms, untied head, pooled load-balancing loss
    snprintf(y, sizeof y, "model: {d_model: 8, vocab_size: 13, tie_embeddings: false, layers: 8, ratio: \"1:7\", moe_period: 2, moe_offset: 1, "
             "attention: {heads: 2}, mamba: {d_state: 3, dt_rank: 2, inner_norm: jamba, dt_min: 0.5, dt_max: 1.0}, mlp: {hidden: 8}, "
             "moe: {experts: 4, top_k: 2, hidden: 6, aux_loss_coef: 0.1}}\n");
    check_model("Jamba-style 1:7 + MoE every 2 layers", y, 1, 6, 1, 8);
    // Zamba2-style: Mamba-2 backbone, 2 shared blocks used A,B,A with embedding concatenation,
    // LoRA on the shared MLP and on q/k/v, RoPE in the shared attention
    snprintf(y, sizeof y, "model: {d_model: 8, vocab_size: 13, pattern: \"M SM M SM SM M\", "
             "mamba: {version: 2, headdim: 4, d_state: 4, dt_min: 0.5, dt_max: 1.0, chunk_size: 4}, "
             "shared: {blocks: 2, lora_rank: 2, lora_qkv: true, rope: true}, shared_attn: {heads: 2, mlp_hidden: 8}}\n");
    check_model("Zamba2-style Mamba-2 + 2 shared blocks (ABA) + LoRA", y, 1, 6, 1, 8);

    // the same check with one gradient 1% wrong must fail
    const char *victims[] = {"model.layers.0.mamba.A_log", "model.layers.1.self_attn.k_proj.weight",
                             "model.layers.2.feed_forward.up_proj.weight", "model.final_layernorm.weight"};
    snprintf(y, sizeof y, "model: {d_model: 8, vocab_size: 13, pattern: \"M-*-M-\", attention: {heads: 2}, mamba: {d_state: 4, dt_min: 0.5, dt_max: 1.0}, mlp: {hidden: 12}}\n");
    for (int v = 0; v < 4; v++) {
        corrupt_name = victims[v];
        double w = check_model("self-test", y, 2, 5, 1, 12);
        corrupt_name = NULL;
        CHECK(w > 1e-3, "a 1%% error in d%s is caught (worst rel err %.2e)", victims[v], w);
    }
    return test_summary();
}
