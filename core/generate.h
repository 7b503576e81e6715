// generate.h: inference for one sequence. A prompt is run through the parallel forward once
// (prefill), every stateful layer takes its state from that forward (KV cache, conv window +
// SSM state: BlockType.state_from_forward), then each new token costs one step per layer
// (BlockType.step). Stateless layers (MLP, MoE) are stepped by their forward with B = T = 1.
//
//   h = embed(token); pending = 0
//   for each sublayer l:  x = RMSNorm_l(h + pending);  y = step_l(x)
//                         h += y (residual)  |  pending = y (non-residual)
//   logits = lm_head(RMSNorm_f(h))
//
// Memory: every state is allocated (and touched) for max_T positions by gen_init; nothing is
// allocated by prefill or step.
#pragma once
#include "model.h"

typedef struct {
    Model *m;                // allocated with model_alloc(m, 1, T_prompt_max, ...)
    int max_T;               // positions the states hold (prompt + generated)
    int pos;                 // tokens seen so far
    real **state;            // (nsub) per-layer state, NULL for stateless layers
    real *state_mem;         // one block for all of them
    size_t state_reals;
    real *h, *pend, *x, *y, *tmp, *fin;   // (C) rows of the step
    real *logits;            // (V) logits of the next token after prefill / step
} Generator;

// Returns 0, or -1 with msg filled when a stateful block has no inference step.
int gen_init(Generator *g, Model *m, int max_T, char *msg, size_t cap);
void gen_free(Generator *g);
// Runs the prompt tokens[0..T-1] (1 <= T <= m->T and T < max_T) through the parallel forward and
// fills every state; g->logits = the prediction for position T. Resets any earlier sequence.
void gen_prefill(Generator *g, const int *tokens, int T);
// Feeds one token at position g->pos (< max_T); g->logits = the prediction for the next one.
void gen_step(Generator *g, int token);
// Bytes of state the model holds at context ctx (KV caches grow with ctx, SSM states do not),
// from the blocks' own sizes: what generation at that context keeps beyond the weights.
double gen_state_bytes(const Model *m, long ctx);

// Picks the next token from logits (V): argmax when temperature <= 0, else a sample of
// softmax(logits / temperature) restricted to the top_k largest (top_k <= 0: all).
int gen_pick(const real *logits, int V, double temperature, int top_k, Rng *rng);
