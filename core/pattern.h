// pattern.h: the layer description of a config (model.pattern, or the Jamba-style rule keys
// model.layers / ratio / attn_* / moe_* / ffn / shared.*) resolved to the canonical pattern.
//
// Symbols: M mamba mixer, * attention, - MLP, E MoE, S shared-block invocation (Zamba).
// Megatron's grouping "[...]", MTP "/" and per-symbol ratios are not supported.
#pragma once
#include <stddef.h>
#include "config.h"

// Resolves the layer description to the canonical pattern: one symbol per sublayer, no
// separators, written to out (cap bytes incl. the NUL). Returns 0 (strlen(out) is the number of
// sublayers), or -1 with err filled by cfg_error on the responsible key.
int pattern_resolve(const Config *c, char *out, size_t cap, ConfError *err);

// HF-style layer number of every sublayer of a canonical pattern (layer_of may be NULL);
// returns the number of layers. A layer is a mixer (M or *) with the FFN that follows it; an
// S joins the mixer after it; an FFN with no mixer before it is a layer of its own.
int pattern_layer_ids(const char *canon, int *layer_of);
