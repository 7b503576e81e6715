// model.h: a language model assembled from a canonical layer pattern.
//
//   e0 = embed(tokens)                                     (B,T,C)
//   h  = e0
//   for each sublayer l (one symbol of the pattern):
//       x = RMSNorm_l(h + pending)        (pending: output of a non-residual block, else 0)
//       y = Block_l(x)
//       h = h + y            (residual blocks)    |    pending = y   (non-residual blocks)
//   logits = lm_head(RMSNorm_f(h)) at the labelled positions only
//   loss   = mean cross-entropy over labelled positions (+ pooled auxiliary losses)
#pragma once
#include "block.h"

#define MAX_SUBLAYERS 4096

struct Model {
    const Config *cfg;
    int C;                   // d_model
    int V;                   // vocabulary size
    int tied;                // lm_head shares the embedding matrix
    real eps;                // RMSNorm epsilon of the residual norms
    char pattern[MAX_SUBLAYERS + 1];   // canonical pattern, one symbol per sublayer
    int nsub;                // sublayers (= strlen(pattern))
    int n_layers;            // HF-style layers (a mixer with its FFN, see layer names)
    Layer *layers;           // nsub

    int npinfo, cap_pinfo;   // every parameter tensor, in declaration order
    ParamInfo *pinfo;
    size_t nparams;          // total reals (shared tensors counted once)
    int p_embed, p_norm_f, p_head;     // pinfo indices of the frame's tensors (p_head = -1 if tied)

    // Everything below exists after model_alloc.
    real *params, *grads;
    int B, T, max_labels;    // sizes the activations were allocated for
    real *acts; size_t nacts;
    real *scratch; size_t nscratch;
    real *e0;                // (B,T,C) embedding output, readable by blocks (Zamba concat)
    real *de0;               // (B,T,C) gradient blocks may add into for e0
    real *res;               // (nsub+1, B,T,C) residual stream before each sublayer
    real *pend;              // (nsub+1, B,T,C) pending addend entering each sublayer's norm
    real *xn;                // (nsub, B,T,C) normalised inputs
    real *rstd;              // (nsub, B,T)
    real *out;               // (B,T,C) block output
    real *fin, *fin_rstd;    // (B,T,C), (B,T) final norm
    int *lab_pos, *lab_tgt;  // labelled positions (b*T+t) and their targets
    int *lab_pred;           // the model's argmax at each labelled position
    real *lab_h;             // (max_labels, C) final hidden states at labelled positions
    real *logits;            // (max_labels, V), turned into probabilities by forward
    real *dres, *dx, *dpend; // (B,T,C) backward buffers
    real *dtmp;              // (max(B*T, max_labels), C)
    int *tokens;             // (B,T) the batch forward saw
    int fwd_B, fwd_T;        // its size

    // Results of the last forward.
    int n_labels, n_correct;
    double loss;             // mean CE over labelled positions
    double aux_loss;         // pooled auxiliary losses (coefficients included); backward
                             // differentiates loss + aux_loss
};

// Builds the layer list from a loaded config: resolves the pattern, finds each symbol's block,
// declares every parameter (shapes only, no memory). Returns 0, or -1 with err filled.
int model_build(Model *m, const Config *cfg, ConfError *err);
// Allocates (and touches) parameters, gradients, optimizer-independent activations and scratch
// for batches of at most B sequences of length T with at most max_labels labelled positions.
void model_alloc(Model *m, int B, int T, int max_labels);
void model_init(Model *m, uint64_t seed);
void model_free(Model *m);

// tokens, targets: (B,T); targets < 0 are unlabelled. Returns the mean cross-entropy over the
// labelled positions; n_labels / n_correct (argmax == target) are set. B, T may be smaller than
// the allocated sizes. With targets NULL only the hidden states are computed.
double model_forward(Model *m, const int *tokens, const int *targets, int B, int T);
void model_zero_grad(Model *m);
void model_backward(Model *m);   // after model_forward; gradients accumulate into m->grads

// Per-layer numbers blocks report (BlockType.report), as "<layer prefix>.<name>".
void model_report(const Model *m, void (*emit)(void *ctx, const char *name, double value), void *ctx);

// Parameter counts from declared shapes (work after model_build alone).
double model_param_count(const Model *m);   // every tensor once
double model_active_count(const Model *m);  // weighted by ParamInfo.active
int model_find_param(const Model *m, const char *name);   // pinfo index or -1
