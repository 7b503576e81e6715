// block.h: the one interface every layer type implements (blocks/*.c), and the calls a block
// uses to declare its parameters and activations. The core never names a specific block: it
// finds them in the registry (blocks/registry.c) by pattern symbol.
//
// Life of a layer:
//   declare(L)          parameters: layer_param(L, "in_proj.weight", decay, ndim, d0, d1, ...)
//                       (only shapes; `hlab info` stops here, so it never allocates weights)
//   declare_acts(L,B,T) activations kept from forward for backward: layer_act(L, n),
//                       and transient scratch: layer_scratch(L, n)
//   init(L, rng)        fills the parameters (after allocation)
//   forward / backward  as in llm.c: plain arrays, shapes in comments
#pragma once
#include "common.h"
#include "config.h"

typedef struct Model Model;
typedef struct Layer Layer;

typedef enum { ROLE_MIXER, ROLE_FFN, ROLE_SHARED } BlockRole;
typedef enum { CACHE_NONE, CACHE_KV, CACHE_SSM } CacheKind;

#define LAYER_MAX_PARAMS 64
#define LAYER_MAX_ACTS 48

typedef struct BlockType {
    const char *name;        // "attention", "mamba1", "mlp" ...
    char symbol;             // pattern symbol: '*', 'M', '-', 'E', 'S'
    const char *select_key;  // optional: this entry serves `symbol` only when the config's
    long select_value;       //   integer key select_key equals select_value (M -> mamba.version)
    BlockRole role;          // decides the HF-style module/norm names the core gives the layer
    const char *module;      // module name in tensor names: "self_attn", "mamba", "feed_forward"
    int own_norm;            // 1: the block gets the raw residual stream and normalises it itself
    int residual;            // 1: h += out. 0: out is added to the next sublayer's norm input
                             //    only, not to the residual stream (Zamba's hybrid layer, §4.2)
    CacheKind cache;
    const KeySpec *keys;     // config keys the block owns, {NULL}-terminated (may be NULL)

    // Cross-key checks once the config is loaded (e.g. d_model divisible by heads). Called only
    // when the pattern uses the block. Return 0, or cfg_error(...).
    int (*validate)(const Config *c, ConfError *err);
    void (*declare)(Layer *L);
    void (*declare_acts)(Layer *L, int B, int T);
    void (*init)(Layer *L, Rng *rng);
    // in: (B,T,C) normalised input (raw residual if own_norm). out: (B,T,C), overwritten.
    void (*forward)(Layer *L, real *out, const real *in, int B, int T);
    // dout: (B,T,C). din: (B,T,C) overwritten. Parameter gradients accumulate (+=) into L->g[],
    // so weights shared between layers sum the gradient of every use.
    void (*backward)(Layer *L, real *din, const real *dout, const real *in, int B, int T);
    // Accounting for `hlab info` (from declared shapes only): forward FLOPs per token when the
    // token sits at context position ctx (matmuls count 2 per multiply-add), and the number of
    // cache elements one sequence keeps at context ctx (KV cache, or conv+SSM state).
    double (*flops_per_token)(const Layer *L, long ctx);
    double (*cache_elems)(const Layer *L, long ctx);

    // Optional: an auxiliary loss pooled over every layer of this type (MoE load balancing,
    // blocks.md §6.5: one pool over all MoE layers' tokens). Called once per forward, after all
    // layers ran, with this type's layers in order; returns the term added to the training loss
    // (coefficient included) and leaves in each layer what its backward needs to add the term's
    // gradient. B, T are the forward's.
    double (*pooled_loss)(Layer **layers, int n, int B, int T);
    // Optional: per-layer numbers recorded with the run's metrics at each logging step (e.g.
    // expert load). Calls emit(ctx, name, value) for each; the core prefixes the layer's prefix.
    void (*report)(const Layer *L, void (*emit)(void *ctx, const char *name, double value), void *ctx);

    // Inference (core/generate.c), one sequence at a time. Blocks with cache != CACHE_NONE
    // provide all three; stateless blocks (MLP, MoE) are stepped by calling forward with B = T = 1.
    // state_size: reals one sequence's state needs to generate up to max_T positions (attention:
    //   k and v of max_T positions; Mamba: conv window + SSM state), workspace for step included,
    //   so that step never allocates. The core allocates and touches it once.
    size_t (*state_size)(const Layer *L, int max_T);
    // Right after forward(B = 1, T) on a prompt (the activations are still the forward's): writes
    // the state after positions 0..T-1 into `state` (state_size(L, max_T) reals, T <= max_T).
    void (*state_from_forward)(Layer *L, real *state, int T);
    // One token at position pos (the state holds positions 0..pos-1, pos < max_T): out (C) = what
    // forward would output at position pos for input row in (C); the state then includes pos.
    // Blocks that read the embedding (Zamba's concat) find the current token's in m->e0 row 0.
    void (*step)(Layer *L, real *out, const real *in, real *state, int pos);
} BlockType;

typedef struct ParamInfo {
    char name[128];          // full tensor name, e.g. "model.layers.3.mamba.in_proj.weight"
    int ndim;
    long shape[4];           // PyTorch layout: Linear weights are (out, in)
    size_t numel;
    size_t offset;           // into Model.params / Model.grads
    int decay;               // AdamW weight decay applies (weight matrices only)
    double active;           // fraction of tokens that use it (MoE experts: top_k/experts), else 1
    int owner;               // sublayer index of the layer that declared it first (-1: model frame)
} ParamInfo;

struct Layer {
    const BlockType *type;
    int index;               // position in the canonical pattern (sublayer index)
    int layer_id;            // HF-style layer number used in tensor names
    int invocation;          // for shared blocks: the j-th use (0, 1, 2 ...) of its symbol
    char prefix[96];         // "model.layers.3.mamba"
    Model *model;
    const Config *cfg;
    void *priv;              // the block's own cached dimensions (allocated by declare)
    int np;                  // parameters, in declaration order
    int param[LAYER_MAX_PARAMS];                 // indices into Model.pinfo
    real *p[LAYER_MAX_PARAMS], *g[LAYER_MAX_PARAMS];
    int na;                  // activations, in declaration order
    size_t act_n[LAYER_MAX_ACTS], act_off[LAYER_MAX_ACTS];
    real *a[LAYER_MAX_ACTS];
    size_t scratch_n;        // reals of transient scratch this layer needs (Model.scratch)
    int norm;                // Model.pinfo index of the core's pre-norm weight (-1 if own_norm)
};

// Declares a parameter named "<prefix>.<name>" and returns its local index (L->p[i], L->g[i]).
int layer_param(Layer *L, const char *name, int decay, int ndim, long d0, long d1, long d2, long d3);
// A parameter shared between layers, by absolute name: the first declaration creates it, later
// ones (same shape required) point at the same storage, so gradients accumulate across uses.
int layer_param_shared(Layer *L, const char *fullname, int decay, int ndim, long d0, long d1, long d2, long d3);
void layer_param_active(Layer *L, int i, double fraction);
size_t layer_param_numel(const Layer *L, int i);
// Declares an activation of n reals kept from forward to backward; returns its index (L->a[i]).
int layer_act(Layer *L, size_t n);
// Requests n reals of scratch (Model.scratch): valid only inside one forward or backward call.
void layer_scratch(Layer *L, size_t n);
real *layer_scratch_ptr(Layer *L);
int layer_threads(void);     // OpenMP threads available to a block

// Initialisers used by several blocks.
void init_normal(real *w, size_t n, double std, Rng *rng);
void init_uniform(real *w, size_t n, double bound, Rng *rng);   // U(-bound, bound)
void init_const(real *w, size_t n, double v);

// Registry (blocks/registry.c): NULL-terminated list of every block type.
extern const BlockType *const block_registry[];
// The block that serves `symbol` for this config (select_key honoured), or NULL.
const BlockType *block_for_symbol(char symbol, const Config *c);
