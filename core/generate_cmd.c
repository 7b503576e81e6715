// generate_cmd.c: `hlab generate CKPT (--prompt TEXT | --prompt-tokens LIST) [-n N]
// [--temperature T] [--top-k K] [--seed S] [--threads N]`.
//
// The checkpoint carries its config, so the model is rebuilt from the file alone. A byte-level
// model (vocabulary 256) reads --prompt as bytes and prints text (non-printable bytes as \xNN);
// any model reads --prompt-tokens "3,17,5" and prints token ids. Greedy unless a temperature
// is given; a sampled continuation is reproducible from its --seed. Timings go to stderr.
#include "checkpoint.h"
#include "generate.h"
#include "generate_cmd.h"
#include "keys.h"
#include "ops.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "hlab: generate: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nusage: hlab generate CKPT (--prompt TEXT | --prompt-tokens 1,2,3) [-n N] [--temperature T] [--top-k K] [--seed S] [--threads N]\n");
    return EXIT_BADINPUT;
}

static int parse_num(const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !(v >= lo && v <= hi)) return -1;
    *out = v;
    return 0;
}

static void print_token(int tok, int bytes) {
    if (!bytes) { printf(" %d", tok); return; }
    if (tok == '\n' || tok == '\t' || (tok >= 32 && tok < 127)) putchar(tok);
    else printf("\\x%02x", tok);
}

int generate_main(int argc, char **argv) {
    const char *ckpt = NULL, *prompt = NULL, *ptoks = NULL;
    double n = 64, temp = 0, topk = 0, seed = 1, threads = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        double *num = !strcmp(a, "-n") ? &n : !strcmp(a, "--temperature") ? &temp : !strcmp(a, "--top-k") ? &topk
                    : !strcmp(a, "--seed") ? &seed : !strcmp(a, "--threads") ? &threads : NULL;
        if (num || !strcmp(a, "--prompt") || !strcmp(a, "--prompt-tokens")) {
            if (!v) return usage_error("option %s needs a value", a);
            i++;
            if (!strcmp(a, "--prompt")) prompt = v;
            else if (!strcmp(a, "--prompt-tokens")) ptoks = v;
            else {
                double hi = num == &temp ? 100 : num == &seed ? 9e15 : 1 << 24;
                if (parse_num(v, 0, hi, num) != 0 || (num != &temp && *num != (long)*num))
                    return usage_error("bad value for an option: \"%s\" (n, top-k, seed, threads: integers >= 0; temperature: 0..100)", v);
            }
        } else if (a[0] == '-') return usage_error("unknown option \"%s\"", a);
        else if (!ckpt) ckpt = a;
        else return usage_error("unexpected argument \"%s\"", a);
    }
    if (!ckpt) return usage_error("needs a checkpoint file%s", "");
    if (!prompt == !ptoks) return usage_error("give exactly one of --prompt TEXT and --prompt-tokens LIST%s", "");

    char emsg[1024];
    char *yaml = checkpoint_config(ckpt, emsg, sizeof emsg);
    if (!yaml) { fprintf(stderr, "hlab: %s\n", emsg); return EXIT_BADINPUT; }
    Config cfg;
    ConfError err;
    Model m;
    if (config_load_string(&cfg, yaml, ckpt, NULL, 0, all_key_tables(), &err) != 0 || model_build(&m, &cfg, &err) != 0) {
        free(yaml);
        fprintf(stderr, "hlab: %s\n", err.msg);
        return EXIT_BADINPUT;
    }
    free(yaml);
    int V = m.V, bytes = V == 256;

    // the prompt as tokens
    size_t cap = prompt ? strlen(prompt) + 1 : strlen(ptoks) / 2 + 2;
    int *tok = xmalloc(cap * sizeof(int)), T = 0;
    if (prompt) {
        if (!bytes) { free(tok); config_free(&cfg); return usage_error("--prompt needs a byte-level model (vocabulary 256); use --prompt-tokens%s", ""); }
        for (const unsigned char *p = (const unsigned char *)prompt; *p; p++) tok[T++] = *p;
    } else {
        for (const char *p = ptoks; *p;) {
            char *end;
            long t = strtol(p, &end, 10);
            if (end == p || t < 0 || t >= V || (*end && *end != ',')) {
                free(tok); config_free(&cfg);
                fprintf(stderr, "hlab: generate: --prompt-tokens must be comma-separated ids in [0, %d), got \"%s\"\n", V, ptoks);
                return EXIT_BADINPUT;
            }
            tok[T++] = (int)t;
            p = *end ? end + 1 : end;
        }
    }
    if (T == 0) { free(tok); config_free(&cfg); return usage_error("the prompt is empty%s", ""); }

    ops_init_threads((int)threads);
    model_alloc(&m, 1, T, 1);
    if (checkpoint_load(&m, ckpt, emsg, sizeof emsg) != 0) {
        fprintf(stderr, "hlab: %s\n", emsg);
        free(tok); model_free(&m); config_free(&cfg);
        return EXIT_BADINPUT;
    }
    Generator g;
    if (gen_init(&g, &m, T + (int)n + 1, emsg, sizeof emsg) != 0) {
        fprintf(stderr, "hlab: generate: %s\n", emsg);
        free(tok); model_free(&m); config_free(&cfg);
        return EXIT_BADINPUT;
    }
    Rng rng;
    rng_seed(&rng, (uint64_t)seed);
    double t0 = now_seconds();
    gen_prefill(&g, tok, T);
    double ttft = now_seconds() - t0;
    for (int i = 0; i < T; i++) print_token(tok[i], bytes);
    if (!bytes) printf(" |");
    double t1 = now_seconds();
    for (long i = 0; i < (long)n; i++) {
        int next = gen_pick(g.logits, V, temp, (int)topk, &rng);
        print_token(next, bytes);
        if (i + 1 < (long)n) gen_step(&g, next);
    }
    double gen_s = now_seconds() - t1;
    printf("\n");
    fflush(stdout);
    fprintf(stderr, "prompt %d tokens: first token after %.2f ms; %ld tokens generated in %.3f s (%.0f tokens/s); state %.2f MB at %d positions\n",
            T, 1e3 * ttft, (long)n, gen_s, n > 1 ? (n - 1) / gen_s : 0, gen_state_bytes(&m, T + (long)n) / 1048576.0, T + (int)n);
    gen_free(&g);
    free(tok);
    model_free(&m);
    config_free(&cfg);
    return 0;
}
