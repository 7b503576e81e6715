// fuzz_config.c: libFuzzer target for the YAML config loader (config_load_string) and what
// every command does next with a loaded config (pattern_resolve inside model_build, the blocks'
// validate functions). Beyond "no crash, no sanitizer report" it checks the loader's contracts:
//   - an error always has a message, and it starts with the file name (file:line:col or file),
//   - a loaded config's canonical YAML loads back to the same canonical YAML: the canonical text
//     is hashed into every run's identity, so a value that changes on the way round would give
//     one config two identities (or two configs one).
#include "config.h"
#include "keys.h"
#include "model.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char NAME[] = "fuzz.yaml";

static void require(int ok, const char *what, const char *detail) {
    if (ok) return;
    fprintf(stderr, "fuzz_config: contract broken: %s\n%s\n", what, detail ? detail : "");
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 1 << 16) return 0;                  // configs are small; keep the executions fast
    if (memchr(data, 0, size)) return 0;           // config_load refuses NUL bytes before parsing
    char *yaml = malloc(size + 1);
    memcpy(yaml, data, size);
    yaml[size] = 0;

    Config c;
    ConfError err;
    if (config_load_string(&c, yaml, NAME, NULL, 0, all_key_tables(), &err) != 0) {
        require(err.msg[0] != 0, "config_load_string failed without a message", NULL);
        require(strncmp(err.msg, NAME, strlen(NAME)) == 0, "an error message does not start with the file name", err.msg);
        free(yaml);
        return 0;
    }
    char *canon = config_canonical_yaml(&c);
    Config c2;
    ConfError err2;
    int rc = config_load_string(&c2, canon, NAME, NULL, 0, all_key_tables(), &err2);
    require(rc == 0, "the canonical YAML of a loaded config does not load", err2.msg);
    char *canon2 = config_canonical_yaml(&c2);
    require(strcmp(canon, canon2) == 0, "the canonical YAML changes when loaded again", canon);
    free(canon2);
    config_free(&c2);
    free(canon);

    // what `hlab info` and `hlab train` do next: the pattern, the blocks' checks, the layer list
    // (no parameters are allocated: that is model_alloc)
    Model m;
    if (model_build(&m, &c, &err) == 0) model_free(&m);
    else require(err.msg[0] != 0, "model_build failed without a message", NULL);
    config_free(&c);
    free(yaml);
    return 0;
}
