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

// Where a training step's wall time goes (opt-in: set Model.profile = 1). Each part is a block
// type (by BlockType.name: a sublayer's pre-norm and residual add count with its block),
// "embedding", "head+loss" (final norm, pooled auxiliary losses, LM head, cross-entropy) or
// "optimizer" (model_zero_grad, and what the caller adds with model_profile_add: AdamW).
// The parts follow each other without gaps, so their sum is the time spent inside
// model_forward, model_backward and model_zero_grad. Off, the cost is one test per sublayer.
enum { PASS_FORWARD, PASS_BACKWARD, PASS_UPDATE, NPASS };
#define MAX_PROF_PARTS 16
typedef struct {
    const char *name;        // static text: a BlockType.name or a literal
    double t[NPASS];         // seconds accumulated per pass
} ProfPart;

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

    // Data-parallel training (core/dist.c) sets these; a single process keeps model_build's values.
    double loss_denom;       // > 0: backward divides the cross-entropy gradient by this many labels
                             //   (the whole global batch's) instead of this batch's n_labels
    double aux_weight;       // weight of the pooled auxiliary losses' gradient (1; 1/K over K ranks)
    // Called during backward (when set) each time more gradients are final: grads[from, nparams)
    // will not change again in this backward. The last call has from = 0.
    void (*grad_ready)(void *ctx, size_t from);
    void *grad_ready_ctx;
    size_t *ready_from;      // (nsub+1): grads[ready_from[l], nparams) are final once sublayers
                             //   l..nsub-1 went backward (l = nsub: after the head); model_alloc

    int profile;             // 1: accumulate wall time per part into prof (model_build sets 0)
    int nprof;
    ProfPart prof[MAX_PROF_PARTS];   // in order of first appearance

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

// Zeroes the profile (the parts found so far are forgotten).
void model_profile_reset(Model *m);
// Adds seconds to part `name` (a static string) in pass (PASS_*): for work outside the model, such
// as the optimizer step. Does nothing when m->profile is 0.
void model_profile_add(Model *m, const char *name, int pass, double seconds);

// Per-layer numbers blocks report (BlockType.report), as "<layer prefix>.<name>".
void model_report(const Model *m, void (*emit)(void *ctx, const char *name, double value), void *ctx);

// Parameter counts from declared shapes (work after model_build alone).
double model_param_count(const Model *m);   // every tensor once
double model_active_count(const Model *m);  // weighted by ParamInfo.active
int model_find_param(const Model *m, const char *name);   // pinfo index or -1
