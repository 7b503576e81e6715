// fuzz_pattern.c: libFuzzer target for the layer grammar (pattern_resolve, pattern_layer_ids).
//
// The input decides the layer keys, which are applied as `--set` overrides so that they pass
// the same type and range checks as on the command line:
//   first byte even: the explicit form; the remaining bytes are model.pattern (as typed), and
//                    bits 1-2 of the first byte give model.shared.blocks (0..3);
//   first byte odd:  the rule form; the next ten bytes give model.layers, the attention /
//                    MoE / shared period and offset, model.ffn and model.shared.blocks, and the
//                    rest, if any, is model.ratio.
// On success it checks what the model builder relies on: only the symbols M * - E S, at most
// MAX_SUBLAYERS of them, the explicit form reproduced symbol for symbol, one mixer per layer in
// the rule form, no S last or before another S, and layer ids that start at 0 and grow by
// at most 1. Every failure must come with a message that names a model.* key.
#include "config.h"
#include "keys.h"
#include "model.h"
#include "pattern.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void require(int ok, const char *what, const char *detail) {
    if (ok) return;
    fprintf(stderr, "fuzz_pattern: contract broken: %s\n%s\n", what, detail ? detail : "");
    abort();
}

static char *fmt(const char *f, long v) {
    char *s = malloc(64);
    snprintf(s, 64, f, v);
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 20000) return 0;
    char *sets[16];
    int n = 0, rule = data[0] & 1;
    if (!rule) {
        sets[n] = malloc(size + 32);
        memcpy(sets[n], "model.pattern=", 14);
        memcpy(sets[n] + 14, data + 1, size - 1);
        sets[n][14 + size - 1] = 0;   // a NUL in the input ends the pattern, as in argv
        n++;
        sets[n++] = fmt("model.shared.blocks=%ld", (data[0] >> 1) & 3);
    } else {
        uint8_t b[10] = {0};
        for (size_t i = 0; i < 10 && i + 1 < size; i++) b[i] = data[i + 1];
        // signed casts reach the negative values the range checks must refuse
        sets[n++] = fmt("model.layers=%ld", (long)(int8_t)b[0] * 12);
        sets[n++] = fmt("model.attn_period=%ld", (long)(int8_t)b[1] % 12);
        sets[n++] = fmt("model.attn_offset=%ld", (long)(int8_t)b[2] % 12);
        sets[n++] = fmt("model.moe_period=%ld", (long)(int8_t)b[3] % 12);
        sets[n++] = fmt("model.moe_offset=%ld", (long)(int8_t)b[4] % 12);
        sets[n++] = fmt("model.shared.period=%ld", (long)(int8_t)b[5] % 12);
        sets[n++] = fmt("model.shared.offset=%ld", (long)(int8_t)b[6] % 12);
        sets[n++] = fmt("model.shared.blocks=%ld", (long)b[7] % 4);
        sets[n++] = strdup(b[8] & 1 ? "model.ffn=none" : "model.ffn=mlp");
        if (size > 11) {
            sets[n] = malloc(size + 32);
            memcpy(sets[n], "model.ratio=", 12);
            memcpy(sets[n] + 12, data + 11, size - 11);
            sets[n][12 + size - 11] = 0;
            n++;
        }
    }

    Config c;
    ConfError err;
    if (config_load_string(&c, NULL, "fuzz", sets, n, all_key_tables(), &err) == 0) {
        char out[MAX_SUBLAYERS + 1];
        if (pattern_resolve(&c, out, sizeof out, &err) != 0) {
            require(out[0] == 0, "a failed pattern_resolve left a pattern behind", out);
            require(strstr(err.msg, "model.") != NULL, "a pattern error does not name a model.* key", err.msg);
        } else {
            size_t len = strlen(out);
            require(len >= 1 && len <= MAX_SUBLAYERS, "pattern length out of 1..MAX_SUBLAYERS", out);
            require(strspn(out, "M*-ES") == len, "a symbol other than M * - E S", out);
            for (size_t i = 0; i < len; i++)
                require(out[i] != 'S' || (out[i + 1] && out[i + 1] != 'S'), "an S is last or before another S", out);
            if (!rule) {   // the explicit form: the typed symbols, separators dropped
                char want[MAX_SUBLAYERS + 2];
                size_t k = 0;
                for (const char *p = cfg_str(&c, "model.pattern"); *p && k <= MAX_SUBLAYERS; p++)
                    if (!strchr(" |\t\n\r", *p)) want[k++] = *p;
                want[k] = 0;
                require(strcmp(want, out) == 0, "the explicit pattern was not reproduced", out);
            } else {
                long mixers = 0;
                for (size_t i = 0; i < len; i++) mixers += out[i] == 'M' || out[i] == '*';
                require(mixers == cfg_int(&c, "model.layers"), "the rule form has not one mixer per layer", out);
            }
            int *ids = malloc(len * sizeof(int));
            int layers = pattern_layer_ids(out, ids);
            require(layers >= 1 && layers <= (int)len, "layer count out of 1..sublayers", out);
            require(ids[0] == 0 && ids[len - 1] == layers - 1, "layer ids do not run from 0 to layers-1", out);
            for (size_t i = 1; i < len; i++)
                require(ids[i] == ids[i - 1] || ids[i] == ids[i - 1] + 1, "layer ids jump", out);
            require(pattern_layer_ids(out, NULL) == layers, "pattern_layer_ids(NULL) counts differently", out);
            free(ids);
        }
        config_free(&c);
    } else {
        require(err.msg[0] != 0, "a --set failed without a message", NULL);
    }
    for (int i = 0; i < n; i++) free(sets[i]);
    return 0;
}
