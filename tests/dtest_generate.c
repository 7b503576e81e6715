// dtest_generate.c: inference (core/generate.c) against the parallel forward, in double
// precision: for every architecture the toolkit builds (attention with RoPE and GQA, Mamba-1
// with Falcon's norms, Mamba-2, a Jamba-style hybrid with MoE, Zamba2-style shared blocks), the
// next-token distributions of prefill + step-by-step generation equal, position by position,
// those of one parallel forward over the same tokens. Then sampling (gen_pick) and the state
// accounting (KV caches grow with the context, SSM states do not).
#include "generate.h"
#include "keys.h"
#include "ops.h"
#include "test.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { T = 11 };
// double build: the two paths do the same arithmetic in a different order (one row against a
// whole batch), so they agree to rounding; a wrong state or position gives errors of 1e-3 and up
static const double TOL = sizeof(real) == 8 ? 1e-10 : 2e-4;

static int build(const char *label, const char *yaml, Config *c, Model *m) {
    ConfError err;
    if (config_load_string(c, yaml, label, NULL, 0, all_key_tables(), &err) != 0 || model_build(m, c, &err) != 0) {
        CHECK(0, "%s: %s", label, err.msg);
        return -1;
    }
    model_alloc(m, 1, T, T);
    model_init(m, 5);
    Rng rng;
    rng_seed(&rng, 11);
    // perturb so that no path is trivially zero (e.g. LoRA adapters initialised to 0)
    for (size_t i = 0; i < m->nparams; i++) m->params[i] += (real)(0.05 * rng_normal(&rng));
    return 0;
}

// max over positions >= T0 of |softmax(step logits) - forward probabilities|
static double compare(Model *m, const int *tok, const real *probs, int T0, int corrupt) {
    Generator g;
    char msg[256];
    if (gen_init(&g, m, T + 1, msg, sizeof msg) != 0) { CHECK(0, "%s", msg); return NAN; }
    gen_prefill(&g, tok, T0);
    if (corrupt)   // one wrong number in the first state: the comparison must notice
        for (int l = 0; l < m->nsub; l++) if (g.state[l]) { g.state[l][0] += 0.5; break; }
    double worst = 0;
    int V = m->V;
    for (int t = T0 - 1; t < T; t++) {
        if (t >= T0) gen_step(&g, tok[t]);
        double mx = -INFINITY, sum = 0;
        for (int v = 0; v < V; v++) mx = fmax(mx, g.logits[v]);
        for (int v = 0; v < V; v++) sum += exp(g.logits[v] - mx);
        for (int v = 0; v < V; v++) {
            double p = exp(g.logits[v] - mx) / sum;
            worst = fmax(worst, fabs(p - probs[(size_t)t * V + v]));
        }
    }
    CHECK(g.pos == T, "position after prefill %d + %d steps is %d", T0, T - T0, g.pos);
    gen_free(&g);
    return worst;
}

static void check_arch(const char *label, const char *yaml) {
    Config c;
    Model m;
    if (build(label, yaml, &c, &m) != 0) return;
    int V = m.V, tok[T], tgt[T];
    Rng rng;
    rng_seed(&rng, 17);
    for (int t = 0; t < T; t++) { tok[t] = (int)rng_below(&rng, V); tgt[t] = 0; }
    // the parallel forward labels every position: m.logits then holds each row's probabilities
    model_forward(&m, tok, tgt, 1, T);
    real *probs = malloc((size_t)T * V * sizeof(real));
    memcpy(probs, m.logits, (size_t)T * V * sizeof(real));
    const int splits[] = {1, 2, 6, T - 1};
    for (int s = 0; s < 4; s++) {
        double w = compare(&m, tok, probs, splits[s], 0);
        CHECK(w < TOL, "%s: prefill %d + %d steps = parallel forward (max |dp| %.2e)", label, splits[s], T - splits[s], w);
    }
    double w = compare(&m, tok, probs, 3, 1);
    CHECK(w > 1e3 * TOL, "%s: a perturbed state is noticed (max |dp| %.2e)", label, w);
    free(probs);
    model_free(&m);
    config_free(&c);
}

static void check_pick(void) {
    real logits[6] = {0.1, 2.0, -1.0, 1.9, 0.0, 1.95};
    Rng rng;
    rng_seed(&rng, 3);
    CHECK(gen_pick(logits, 6, 0, 0, &rng) == 1, "greedy picks the argmax");
    int count[6] = {0}, n = 20000;
    for (int i = 0; i < n; i++) count[gen_pick(logits, 6, 1.0, 3, &rng)]++;
    CHECK(count[0] == 0 && count[2] == 0 && count[4] == 0, "top-k 3 never samples outside the 3 largest");
    // softmax over {2.0, 1.9, 1.95}: p(1) = e^0 / (e^0 + e^-0.1 + e^-0.05)
    double p1 = 1 / (1 + exp(-0.1) + exp(-0.05));
    CHECK(fabs(count[1] / (double)n - p1) < 0.02, "sampling follows softmax(logits/T): %.3f vs %.3f", count[1] / (double)n, p1);
    Rng a, b;
    rng_seed(&a, 9); rng_seed(&b, 9);
    int same = 1;
    for (int i = 0; i < 100; i++) same &= gen_pick(logits, 6, 0.7, 0, &a) == gen_pick(logits, 6, 0.7, 0, &b);
    CHECK(same, "the same seed samples the same tokens");
}

static void check_state_bytes(void) {
    Config c1, c2;
    Model a, b;
    ConfError err;
    const char *ya = "model: {d_model: 16, vocab_size: 7, pattern: \"*-*-\", attention: {heads: 2, kv_heads: 1}, mlp: {hidden: 8}}\n";
    const char *yb = "model: {d_model: 16, vocab_size: 7, pattern: \"MM\", mamba: {d_state: 4}}\n";
    if (config_load_string(&c1, ya, "a", NULL, 0, all_key_tables(), &err) || model_build(&a, &c1, &err) ||
        config_load_string(&c2, yb, "b", NULL, 0, all_key_tables(), &err) || model_build(&b, &c2, &err)) {
        CHECK(0, "%s", err.msg);
        return;
    }
    double a1 = gen_state_bytes(&a, 1000), a2 = gen_state_bytes(&a, 2000);
    double b1 = gen_state_bytes(&b, 1000), b2 = gen_state_bytes(&b, 16000);
    // attention: 2 layers x (k + v) x 1 kv head x head width 8 x 4 bytes per position, at least
    CHECK(a2 - a1 >= 2 * 2 * 8 * 4 * 1000.0 * sizeof(real) / 4, "a KV cache grows with the context: %.0f -> %.0f bytes", a1, a2);
    CHECK(b1 == b2 && b1 > 0, "an SSM state does not: %.0f bytes at 1000 and 16000", b1);
    model_free(&a); model_free(&b);
    config_free(&c1); config_free(&c2);
}

int main(void) {
    ops_init_threads(0);
    test_group("generate");
    check_arch("attention, RoPE, GQA, SwiGLU",
               "model: {d_model: 8, vocab_size: 13, tie_embeddings: false, pattern: \"*-*-\", "
               "attention: {heads: 4, kv_heads: 2, rope: true}, mlp: {hidden: 12}}\n");
    check_arch("Mamba-1, Falcon norms",
               "model: {d_model: 8, vocab_size: 13, layers: 3, ratio: \"0:1\", ffn: none, mamba: {d_state: 4, inner_norm: falcon, dt_min: 0.1, dt_max: 0.5}}\n");
    check_arch("Mamba-2, 2 groups, chunk 4",
               "model: {d_model: 8, vocab_size: 13, pattern: \"MM\", mamba: {version: 2, headdim: 4, ngroups: 2, d_state: 4, chunk_size: 4}}\n");
    check_arch("Jamba-style 1:3 with MoE and Jamba norms",
               "model: {d_model: 8, vocab_size: 13, tie_embeddings: false, layers: 4, ratio: \"1:3\", moe_period: 2, moe_offset: 1, "
               "attention: {heads: 2}, mamba: {d_state: 3, dt_rank: 2, inner_norm: jamba}, mlp: {hidden: 8}, "
               "moe: {experts: 4, top_k: 2, hidden: 6}}\n");
    check_arch("Zamba2-style shared blocks (ABA), concat, LoRA, RoPE",
               "model: {d_model: 8, vocab_size: 13, pattern: \"M SM M SM SM M\", "
               "mamba: {version: 2, headdim: 4, d_state: 4, chunk_size: 4}, "
               "shared: {blocks: 2, lora_rank: 2, lora_qkv: true, rope: true}, shared_attn: {heads: 2, mlp_hidden: 8}}\n");
    check_pick();
    check_state_bytes();
    return test_summary();
}
