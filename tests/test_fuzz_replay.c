// test_fuzz_replay.c: the libFuzzer targets' checks (fuzz/fuzz_*.c) on fixed inputs, in the
// ordinary test build (gcc, and under ASan + UBSan in `make test`), so the seeds, every shipped
// config and every input a fuzzer once broke (fuzz/regressions/TARGET/) are checked on every run
// without clang or libFuzzer. A broken contract aborts with its message (the test then ends
// without its summary line, which tests/run.sh counts as a failure).
#include "test.h"
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

// the three targets in one program: each one's entry point and helpers renamed
#define LLVMFuzzerTestOneInput fuzz_config_one
#define require require_config
#include "../fuzz/fuzz_config.c"
#undef LLVMFuzzerTestOneInput
#undef require
#define LLVMFuzzerTestOneInput fuzz_pattern_one
#define require require_pattern
#include "../fuzz/fuzz_pattern.c"
#undef LLVMFuzzerTestOneInput
#undef require
#define LLVMFuzzerTestOneInput fuzz_safetensors_one
#define require require_safetensors
#include "../fuzz/fuzz_safetensors.c"
#undef LLVMFuzzerTestOneInput
#undef require

typedef int (*Target)(const uint8_t *, size_t);

static int replay_file(Target fn, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    for (size_t got; (got = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += got;
        if (n == cap) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    fn(buf, n);
    free(buf);
    return 1;
}

// Every regular file under dir (recursively, in readdir order). Returns how many.
static int replay_dir(Target fn, const char *dir, const char *suffix) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) { n += replay_dir(fn, path, suffix); continue; }
        size_t l = strlen(path), ls = suffix ? strlen(suffix) : 0;
        if (suffix && (l < ls || strcmp(path + l - ls, suffix))) continue;
        n += replay_file(fn, path);
    }
    closedir(d);
    return n;
}

int main(void) {
    test_group("fuzz replay");
    int n = replay_dir(fuzz_config_one, "configs", ".yaml") + replay_dir(fuzz_config_one, "experiments", ".yaml");
    CHECK(n >= 20, "config loader contracts on every shipped config and experiment (%d files)", n);
    // inputs the config fuzzer once broke, and hand-written hostile ones
    n = replay_dir(fuzz_config_one, "fuzz/regressions/config", NULL);
    CHECK(1, "config loader contracts on %d regression inputs", n);
    n = replay_dir(fuzz_pattern_one, "fuzz/seeds/pattern", NULL) + replay_dir(fuzz_pattern_one, "fuzz/regressions/pattern", NULL);
    CHECK(n >= 8, "pattern contracts on the seeds and regressions (%d inputs)", n);
    n = replay_dir(fuzz_safetensors_one, "fuzz/seeds/safetensors", NULL) + replay_dir(fuzz_safetensors_one, "fuzz/regressions/safetensors", NULL);
    CHECK(n >= 5, "safetensors contracts on the seeds and regressions (%d inputs)", n);

    // strings the canonical YAML must carry unchanged: YAML's other line breaks (NEL, LS, PS),
    // a byte order mark, escapes, quotes, a leading space, '#', a bare "auto"/"true"/"5"
    static const char *const tricky[] = {
        "name: \"a\\u2028b\\u2029c\\u0085d\"\n", "name: \"\\ufeffx\"\n", "name: \"tab\\there\\nnl\\x01\\x7f\"\n",
        "name: 'it''s \"q\" \\ back'\n", "name: \" lead and trail \"\n", "name: \"a # not a comment\"\n",
        "name: \"auto\"\n", "name: \"true\"\n", "name: \"5\"\n", "name: \"\"\n", "name: \"- [x]: {y}\"\n",
        "name: |\n  two\n  lines\n", "name: \"\\u00e9\\U0001F600\"\n", "train: {lr: 1e-3, warmup_steps: 1e2}\n", NULL};
    int k = 0;
    for (; tricky[k]; k++) fuzz_config_one((const uint8_t *)tricky[k], strlen(tricky[k]));
    CHECK(1, "%d configs with tricky strings load back from their canonical YAML unchanged", k);
    return test_summary();
}
