// keys.c: every key the core itself understands. Blocks and tasks declare their own tables.
#include "keys.h"
#include "model.h"
#include <float.h>

#define BIG 1e18
#define PHASE_KEYS(k)                                                                                        \
    {"phase" #k ".frac", KT_FLOAT, "0", 0, 1, NULL, 0,                                                      \
     "fraction of the training steps spent in phase " #k "; the fractions of the phases used must sum to 1 (0: no phase " #k ")"}, \
    {"phase" #k ".set", KT_STRING, "", 0, -1, NULL, 0,                                                      \
     "phase " #k "'s overrides \"key=value; key=value\": data.* keys (another mixture, other lengths), and train.lr, "  \
     "train.schedule, train.warmup_steps, train.min_lr_frac, train.decay_frac (then the phase runs its own schedule)"},
const KeySpec core_keys[] = {
    {"seed", KT_INT, "1", 0, 4294967295.0, NULL, 0, "random seed for initialisation and data order"},
    {"name", KT_STRING, "", 0, -1, NULL, 0, "a label for the run (free text)"},

    // model: the frame around the blocks
    {"model.d_model", KT_INT, "64", 1, 1048576, NULL, 0, "width of the residual stream (C)"},
    {"model.vocab_size", KT_INT, "256", 2, 16777216, NULL, 0, "vocabulary size (V); byte-level data needs 256"},
    {"model.tie_embeddings", KT_BOOL, "true", 0, -1, NULL, 0, "lm_head shares the embedding matrix"},
    {"model.norm_eps", KT_FLOAT, "1e-5", 0, 1, NULL, 0, "epsilon of the residual RMSNorms and the final norm"},
    {"model.init_std", KT_FLOAT, "0.02", 0, 10, NULL, 0, "std of the normal init of embeddings, lm_head and generic weights"},

    // model: the layer pattern, either explicit ...
    {"model.pattern", KT_STRING, "", 0, -1, NULL, 0,
     "explicit pattern, one symbol per sublayer: M mamba, * attention, - MLP, E MoE, S shared block; spaces and | are ignored"},
    // ... or by rule (Hugging Face Jamba semantics)
    {"model.layers", KT_INT, "0", 0, MAX_SUBLAYERS / 3, NULL, 0,
     "rule form: number of layers, each a mixer (attention or mamba) followed by an FFN (MLP or MoE)"},
    {"model.attn_period", KT_INT, "0", 0, BIG, NULL, 0, "rule form: attention at layer i when i % attn_period == attn_offset (0: no attention)"},
    {"model.attn_offset", KT_INT, "0", 0, BIG, NULL, 0, "rule form: see attn_period; must be < attn_period"},
    {"model.ratio", KT_STRING, "", 0, -1, NULL, 0,
     "rule form shorthand \"a:m\" (attention:mamba), e.g. \"1:7\" = attn_period 8, attn_offset 4 as Jamba"},
    {"model.moe_period", KT_INT, "0", 0, BIG, NULL, 0, "rule form: MoE FFN at layer i when i % moe_period == moe_offset (0: no MoE)"},
    {"model.moe_offset", KT_INT, "0", 0, BIG, NULL, 0, "rule form: see moe_period; must be < moe_period"},
    {"model.ffn", KT_STRING, "mlp", 0, -1, "mlp|none", 0, "rule form: every layer has an FFN (mlp) or none (pure mixer stacks such as Falcon Mamba)"},

    // model: Zamba shared blocks (grammar and validation; the layer type registers symbol S)
    {"model.shared.blocks", KT_INT, "0", 0, 64, NULL, 0, "number of distinct shared attention+MLP blocks, used in turn A,B,A,B at the S positions"},
    {"model.shared.period", KT_INT, "0", 0, BIG, NULL, 0, "rule form: a shared-block invocation precedes layer i when i % period == offset (0: none)"},
    {"model.shared.offset", KT_INT, "0", 0, BIG, NULL, 0, "rule form: see shared.period; must be < period"},
    {"model.shared.concat_embedding", KT_BOOL, "true", 0, -1, NULL, 0, "shared block input is concat(h, e0) of width 2*d_model (Zamba); false: h alone"},
    {"model.shared.lora_rank", KT_INT, "0", 0, 65536, NULL, 0, "rank of the per-invocation LoRA adapters on the shared MLP (0: none)"},
    {"model.shared.lora_qkv", KT_BOOL, "false", 0, -1, NULL, 0, "also put per-invocation LoRA adapters on q/k/v (Zamba2 use_shared_attention_adapter)"},
    {"model.shared.rope", KT_BOOL, "false", 0, -1, NULL, 0, "RoPE in the shared attention (Zamba2 use_mem_rope)"},

    // data
    {"data.task", KT_STRING, "mqar", 0, -1, NULL, 0, "training task: see `hlab keys` for each task's section"},
    {"data.seed", KT_INT, "0", 0, 4294967295.0, NULL, 0, "seed of the data (example order and generated tasks), independent of the model seed"},
    {"data.seq_len", KT_INT, "64", 2, 1048576, NULL, 0, "sequence length (T)"},
    {"data.mix", KT_STRING, "", 0, -1, NULL, 0,
     "train on a weighted mixture of tasks \"task:weight,...\" (e.g. \"mqar:3,niah:1\"), each with its own data.<task> "
     "section; every task is evaluated; empty: data.task alone"},

    // training
    {"train.steps", KT_INT, "0", 0, BIG, NULL, 0, "optimizer steps (0: derive from train.epochs)"},
    {"train.epochs", KT_FLOAT, "1", 0, 1e6, NULL, 0, "passes over the training set when train.steps is 0"},
    {"train.batch_size", KT_INT, "32", 1, 1048576, NULL, 0, "sequences per step (B)"},
    {"train.lr", KT_FLOAT, "1e-3", 0, 10, NULL, 0, "peak learning rate"},
    {"train.min_lr_frac", KT_FLOAT, "0", 0, 1, NULL, 0, "final learning rate as a fraction of train.lr (cosine and wsd)"},
    {"train.schedule", KT_STRING, "cosine", 0, -1, "constant|cosine|wsd", 0, "learning-rate schedule after warmup"},
    {"train.warmup_steps", KT_INT, "0", 0, BIG, NULL, 0, "linear warmup steps"},
    {"train.decay_frac", KT_FLOAT, "0.2", 0, 1, NULL, 0, "wsd: fraction of the steps spent in the final decay"},
    {"train.weight_decay", KT_FLOAT, "0.1", 0, 10, NULL, 0, "AdamW decoupled weight decay, on weight matrices only"},
    {"train.beta1", KT_FLOAT, "0.9", 0, 0.999999, NULL, 0, "AdamW beta1"},
    {"train.beta2", KT_FLOAT, "0.999", 0, 0.9999999, NULL, 0, "AdamW beta2"},
    {"train.adam_eps", KT_FLOAT, "1e-8", 0, 1, NULL, 0, "AdamW epsilon"},
    {"train.grad_clip", KT_FLOAT, "1.0", 0, BIG, NULL, 0, "clip the global gradient norm to this value (0: off)"},
    {"train.threads", KT_INT, "0", 0, 1024, NULL, 0, "OpenMP threads (0: OMP_NUM_THREADS if set, else all cores); part of the determinism contract"},
    {"train.log_every", KT_INT, "50", 1, BIG, NULL, 0, "record metrics every N steps"},
    {"train.checkpoint", KT_STRING, "", 0, -1, NULL, 0, "write the final weights to this safetensors file (empty: none)"},
    {"train.checkpoint_every", KT_INT, "0", 0, BIG, NULL, 0,
     "every N steps, write a training checkpoint (weights, AdamW state, position) that `hlab train --resume` continues "
     "bitwise exactly (0: only when stopped by SIGINT/SIGTERM)"},
    {"train.checkpoint_dir", KT_STRING, "", 0, -1, NULL, 0,
     "directory of the training checkpoints (empty: checkpoints/ next to the run store; needed without a store)"},
    {"train.on_divergence", KT_STRING, "stop", 0, -1, "stop|skip_step", 0,
     "a non-finite loss or gradient: stop the run as diverged, or drop that update and go on (skip_step)"},
    {"train.max_skipped_steps", KT_INT, "10", 0, BIG, NULL, 0,
     "skip_step: the run is diverged at the first non-finite step beyond this many skipped updates"},

    // training phases, in order: each a fraction of the steps with its own data and learning-rate
    // settings (a length curriculum, an annealing phase with another mixture and a fast decay)
    PHASE_KEYS(1) PHASE_KEYS(2) PHASE_KEYS(3) PHASE_KEYS(4)

    // evaluation
    {"eval.every", KT_INT, "0", 0, BIG, NULL, 0, "evaluate on the validation split every N steps (0: only at the end)"},
    {"eval.max_examples", KT_INT, "0", 0, BIG, NULL, 0, "evaluate at most this many examples of each slice cell (0: the whole split)"},
    {"eval.early_stop", KT_FLOAT, "0", 0, 1, NULL, 0, "stop when validation accuracy reaches this (0: never); never looks at the test split"},

    // where runs go
    {"store.db", KT_STRING, "results/hlab.db", 0, -1, NULL, 0, "SQLite run store"},

    // reference: published numbers this config should reproduce, shown next to ours by
    // `hlab info --table` (configs/paper/). They never change the model.
    {"reference.params_total", KT_FLOAT, "0", 0, BIG, NULL, 0,
     "published total parameter count this config should reproduce (0: none); hlab info --table flags > 1% off"},
    {"reference.params_active", KT_FLOAT, "0", 0, BIG, NULL, 0,
     "published active parameters per token (MoE) this config should reproduce (0: none); flagged > 1% off"},
    {"reference.kv_cache_bytes", KT_FLOAT, "0", 0, BIG, NULL, 0,
     "published KV-cache bytes of one sequence of 262144 tokens with 2-byte elements (Jamba paper Table 1; 0: none); "
     "compared exactly by hlab info --table at --context 262144 --bytes 2"},
    {"reference.source", KT_STRING, "", 0, -1, NULL, 0, "where the reference numbers are published (free text)"},
    {NULL, 0, NULL, 0, 0, NULL, 0, NULL}};

