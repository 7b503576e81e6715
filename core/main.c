// main.c: the `hlab` command line.
#include "bench.h"
#include "bench_gen.h"
#include "bench_suite.h"
#include "checkpoint.h"
#include "dist.h"
#include "eval_cmd.h"
#include "export.h"
#include "generate_cmd.h"
#include "report.h"
#include "runs_cmd.h"
#include "sweep.h"
#include "task.h"
#include "info.h"
#include "keys.h"
#include "machine.h"
#include "ops.h"
#include "train.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *usage =
    "usage: hlab COMMAND [options]\n"
    "  train CONFIG [--set KEY=VALUE]... [--db PATH] [--init CKPT] [--out CKPT] [--quiet]\n"
    "        train the model CONFIG describes and record the run (default store: results/hlab.db)\n"
    "  train --resume RUN|CKPT [CONFIG] [--db PATH] [--out CKPT] [--quiet]\n"
    "        continue an interrupted or killed run from its training checkpoint (train.checkpoint_every)\n"
    "  mpirun -np K hlab train ... [--bucket-mb MB]   (hlab built with make MPI=1)\n"
    "        data-parallel: each rank trains on 1/K of every batch and rank 0 records the run; gradients are\n"
    "        summed after backward (ranks on one node) or in MB-megabyte buckets during it (default 4 across nodes)\n"
    "  info CONFIG [--set KEY=VALUE]... [--context N] [--bytes N] [--json]\n"
    "        canonical pattern, per-layer table, parameters, KV-cache and SSM-state bytes, FLOPs\n"
    "  info CONFIG... --table [--set KEY=VALUE]... [--context N] [--bytes N] [--json]\n"
    "        one row per config (several configs imply --table; --context defaults to 262144),\n"
    "        and its reference.* published numbers next to ours, flagged when they disagree\n"
    "  eval RUN_OR_CKPT [--task T] [--set data.KEY=VALUE|eval.KEY=VALUE]... [--split test|valid|all] [--db PATH] [--quiet]\n"
    "        score a trained model (a checkpoint, or a run id of the store) on its tasks or task T,\n"
    "        on any grid the overrides describe, and record every cell in the run store\n"
    "  sweep EXP.yaml [--jobs N] [--shard I/N] [--db PATH] [--dry-run] [--quiet]\n"
    "        expand an experiment, print the plan, train every run the store does not have yet\n"
    "  sweep EXP.yaml --emit-slurm [--shards N] [--db OUT.db]\n"
    "        a Slurm job-array script: one shard per array task into its own store, then a merge\n"
    "  report EXP.yaml [--db PATH] [--out DIR] [--quiet]\n"
    "        the experiment's page: tables (mean +- sd over seeds), the paper's claims checked, plots\n"
    "        (gnuplot); writes DIR/report.md and DIR/report.html (default DIR: reports/NAME)\n"
    "  runs [--db PATH] [--experiment E] [--variant V] [--status S] [--where KEY<op>VALUE]...\n"
    "        list runs with their test scores; --where filters on any config key (= != < <= > >=)\n"
    "  export runs|metrics|evals [same filters] [--db PATH] [--out FILE.csv]\n"
    "        the store as CSV (written atomically with --out)\n"
    "  merge A.db B.db... -o OUT.db   join stores from several machines; no run is duplicated\n"
    "  forward CKPT --tokens FILE [--grads OUT.safetensors]\n"
    "        loss (JSON) of a checkpoint on a token file (one sequence of integer ids per line,\n"
    "        each token predicting the next), optionally writing every parameter's gradient\n"
    "  generate CKPT (--prompt TEXT | --prompt-tokens 1,2,3) [-n N] [--temperature T] [--top-k K] [--seed S] [--threads N]\n"
    "        continue a prompt token by token (KV caches, SSM states); greedy unless a temperature is given\n"
    "  data export CONFIG [--set KEY=VALUE]... [--split train|valid|test] [--limit N] [--out FILE]\n"
    "        the task's generated examples as JSON Lines (tokens, targets, slice), for other models\n"
    "  bench sgemm [--quick]   this machine's sgemm GFLOP/s: 1 thread, OpenBLAS threads, our row split\n"
    "  bench train CONFIG... [--set KEY=VALUE]... [--batch B] [--seq T] [--steps N] [--threads N]\n"
    "        tokens/s, achieved GFLOP/s (of the sgemm yardstick) and memory of whole training steps\n"
    "  bench generate CONFIG... [--set KEY=VALUE]... [--tokens N] [--prompts 128,512,...] [--budget-mb MB] [--threads N] [--db PATH]\n"
    "        decode ms/token and state memory vs tokens generated, time to first token vs prompt,\n"
    "        longest context whose state fits in the budget next to the weights (--db: also into the store)\n"
    "  bench suite [--db PATH] [--out DIR] [--quick] [--threads N]\n"
    "        all of the above for 5 architectures (configs/bench/), recorded in the store's benchmarks\n"
    "        table (default results/bench.db) and written up with plots (default reports/bench)\n"
    "  mpirun -np K hlab bench allreduce   all-reduce time and bandwidth, 16 KB to 64 MB (for --bucket-mb)\n"
    "  keys [--markdown]   every config key with its type, default and meaning\n"
    "  version             code version, BLAS core, CPU\n";

static void bad_usage(const char *fmt, const char *arg) {
    fprintf(stderr, "hlab: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", usage);
    exit(EXIT_BADINPUT);
}

static long parse_long(const char *opt, const char *s, long lo, long hi) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "hlab: %s expects an integer in [%ld, %ld], got \"%s\"\n", opt, lo, hi, s);
        exit(EXIT_BADINPUT);
    }
    return v;
}

#define MAX_POSITIONAL 256

typedef struct {
    const char *positional;             // the first positional argument
    const char *pos[MAX_POSITIONAL]; int npos;
    char *sets[256]; int nsets;
    const char *db, *init, *out, *tokens, *grads, *split, *task, *shard, *resume;
    long jobs, worker;
    const char *experiment, *variant, *status, *o;
    char *where[64]; int nwhere;
    int dry_run, emit_slurm;
    long context, bytes, limit;
    int context_set;                    // --context was given (info --table has its own default)
    int json, quiet, markdown, table, quick;
    long batch, seq, steps, threads;    // bench train
    long budget_mb;                     // bench generate
    double bucket_mb;                   // train under MPI (-1: not given)
    const char *prompts;
} Args;

// Options every command shares one parser for; each command says which it accepts and how many
// positional arguments (only `info --table` takes more than one).
static void parse_args(int argc, char **argv, Args *a, const char *accepted, int max_pos) {
    memset(a, 0, sizeof *a);
    a->context = 4096; a->bytes = 2; a->bucket_mb = -1;
    for (int i = 2; i < argc; i++) {
        const char *s = argv[i];
        const char *name = s[0] == '-' && s[1] == '-' ? s + 2 : NULL;
        if (!name) {
            if (a->npos >= max_pos) bad_usage("unexpected argument \"%s\"", s);
            if (!a->positional) a->positional = s;
            a->pos[a->npos++] = s;
            continue;
        }
        char key[32];
        snprintf(key, sizeof key, " %s ", name);
        if (!strstr(accepted, key)) bad_usage("unknown option \"%s\" for this command", s);
        int flag = !strcmp(name, "json") || !strcmp(name, "quiet") || !strcmp(name, "markdown") || !strcmp(name, "table") ||
                   !strcmp(name, "dry-run") || !strcmp(name, "emit-slurm") || !strcmp(name, "quick");
        if (!flag && i + 1 >= argc) bad_usage("option %s needs a value", s);
        const char *v = flag ? NULL : argv[++i];
        if (!strcmp(name, "set")) {
            if (a->nsets == 256) bad_usage("too many --set options (%s)", v);
            a->sets[a->nsets++] = (char *)v;
        } else if (!strcmp(name, "db")) a->db = v;
        else if (!strcmp(name, "init")) a->init = v;
        else if (!strcmp(name, "resume")) a->resume = v;
        else if (!strcmp(name, "out")) a->out = v;
        else if (!strcmp(name, "tokens")) a->tokens = v;
        else if (!strcmp(name, "grads")) a->grads = v;
        else if (!strcmp(name, "context")) { a->context = parse_long("--context", v, 1, 1L << 40); a->context_set = 1; }
        else if (!strcmp(name, "bytes")) a->bytes = parse_long("--bytes", v, 1, 8);
        else if (!strcmp(name, "limit")) a->limit = parse_long("--limit", v, 0, 1L << 40);
        else if (!strcmp(name, "split")) a->split = v;
        else if (!strcmp(name, "task")) a->task = v;
        else if (!strcmp(name, "shard")) a->shard = v;
        else if (!strcmp(name, "experiment")) a->experiment = v;
        else if (!strcmp(name, "variant")) a->variant = v;
        else if (!strcmp(name, "status")) a->status = v;
        else if (!strcmp(name, "where")) {
            if (a->nwhere == 64) bad_usage("too many --where options (%s)", v);
            a->where[a->nwhere++] = (char *)v;
        }
        else if (!strcmp(name, "jobs")) a->jobs = parse_long("--jobs", v, 1, 256);
        else if (!strcmp(name, "batch")) a->batch = parse_long("--batch", v, 1, 1 << 20);
        else if (!strcmp(name, "seq")) a->seq = parse_long("--seq", v, 1, 1 << 24);
        else if (!strcmp(name, "steps")) a->steps = parse_long("--steps", v, 1, 1 << 20);
        else if (!strcmp(name, "threads")) a->threads = parse_long("--threads", v, 1, 1024);
        else if (!strcmp(name, "budget-mb")) a->budget_mb = parse_long("--budget-mb", v, 1, 1L << 30);
        else if (!strcmp(name, "prompts")) a->prompts = v;
        else if (!strcmp(name, "bucket-mb")) {
            char *end;
            a->bucket_mb = strtod(v, &end);
            if (*end || end == v || !(a->bucket_mb >= 0 && a->bucket_mb <= 1e6))
                bad_usage("--bucket-mb expects megabytes in [0, 1e6] (0: one all-reduce after backward), got \"%s\"", v);
        }
        else if (!strcmp(name, "worker")) a->worker = parse_long("--worker", v, 1, 256);
        else if (!strcmp(name, "dry-run")) a->dry_run = 1;
        else if (!strcmp(name, "emit-slurm")) a->emit_slurm = 1;
        else if (!strcmp(name, "shards")) a->limit = parse_long("--shards", v, 1, 100000);
        else if (!strcmp(name, "json")) a->json = 1;
        else if (!strcmp(name, "quiet")) a->quiet = 1;
        else if (!strcmp(name, "markdown")) a->markdown = 1;
        else if (!strcmp(name, "table")) a->table = 1;
        else if (!strcmp(name, "quick")) a->quick = 1;
    }
}

static void load_config(Config *c, const char *path, char **sets, int nsets) {
    ConfError err;
    if (config_load(c, path, sets, nsets, all_key_tables(), &err) != 0) {
        fprintf(stderr, "hlab: %s\n", err.msg);
        exit(EXIT_BADINPUT);
    }
}

static int cmd_train(int argc, char **argv) {
    Args a;
    parse_args(argc, argv, &a, " set db init out quiet resume bucket-mb ", 1);
    TrainOptions o = {.db = a.db, .init = a.init, .out = a.out, .quiet = a.quiet, .experiment = "", .variant = "",
                      .bucket_mb = a.bucket_mb};
    if (a.resume) {   // the run's config comes from its checkpoint; a config given must be the same
        if (a.init || a.nsets) bad_usage("--resume continues a run as it was configured: no --init or --set%s", "");
        Config c;
        if (a.positional) load_config(&c, a.positional, NULL, 0);
        int rc = train_resume(a.resume, a.positional ? &c : NULL, &o);
        if (a.positional) config_free(&c);
        return rc;
    }
    if (!a.positional) bad_usage("train needs a config file%s", "");
    Config c;
    load_config(&c, a.positional, a.sets, a.nsets);
    // an unwritable checkpoint location is found now, not after the training
    const char *out = a.out ? a.out : cfg_str(&c, "train.checkpoint");
    char emsg[1200];
    if (out[0] && dist_rank() == 0 && outfile_check(out, emsg, sizeof emsg) != 0) die_input("%s", emsg);   // rank 0 writes it
    int rc = train_main(&c, &o);
    config_free(&c);
    return rc;
}

static RunsOptions runs_options(const Args *a) {
    RunsOptions o = {.db = a->db, .experiment = a->experiment, .variant = a->variant, .status = a->status,
                     .where = (char **)a->where, .nwhere = a->nwhere};
    return o;
}

static int cmd_runs(int argc, char **argv) {
    Args a;
    parse_args(argc, argv, &a, " db experiment variant status where ", 0);
    RunsOptions o = runs_options(&a);
    return runs_main(&o);
}

static int cmd_export(int argc, char **argv) {
    Args a;
    parse_args(argc, argv, &a, " db experiment variant status where out ", 1);
    if (!a.positional) bad_usage("export needs what to export: runs, metrics or evals%s", "");
    RunsOptions o = runs_options(&a);
    return export_main(&o, a.positional, a.out);
}

static int cmd_merge(int argc, char **argv) {
    // hlab merge A.db B.db ... -o OUT.db
    const char *out = NULL, *in[MAX_POSITIONAL];
    int n = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--out")) {
            if (i + 1 >= argc) bad_usage("%s needs the output store", argv[i]);
            out = argv[++i];
        } else if (argv[i][0] == '-') bad_usage("unknown option \"%s\" for merge", argv[i]);
        else if (n < MAX_POSITIONAL) in[n++] = argv[i];
        else bad_usage("merge: more than 256 input stores (merge them in rounds), at \"%s\"", argv[i]);
    }
    if (!out || n == 0) bad_usage("merge needs input stores and -o OUT.db%s", "");
    for (int i = 0; i < n; i++)
        if (!strcmp(in[i], out)) bad_usage("merge: the output %s is also an input", out);
    return merge_main(in, n, out);
}

static int cmd_sweep(int argc, char **argv) {
    Args a;
    parse_args(argc, argv, &a, " jobs shard db dry-run quiet worker emit-slurm shards ", 1);
    if (!a.positional) bad_usage("sweep needs an experiment file%s", "");
    SweepOptions o = {.exp = a.positional, .db = a.db, .jobs = a.jobs ? (int)a.jobs : 1, .shard_i = 0, .shard_n = 1,
                      .dry_run = a.dry_run, .worker = (int)a.worker, .quiet = a.quiet, .emit_slurm = a.emit_slurm,
                      .slurm_shards = (int)a.limit};
    if (a.shard) {
        int used = 0;
        if (sscanf(a.shard, "%d/%d%n", &o.shard_i, &o.shard_n, &used) != 2 || a.shard[used] || o.shard_n < 1 ||
            o.shard_i < 0 || o.shard_i >= o.shard_n)
            bad_usage("--shard expects I/N with 0 <= I < N, e.g. 0/4, not \"%s\"", a.shard);
    }
    return sweep_main(&o);
}

static int cmd_bench(int argc, char **argv) {
    if (argc < 3 || (strcmp(argv[2], "sgemm") && strcmp(argv[2], "train") && strcmp(argv[2], "generate") && strcmp(argv[2], "suite") &&
                     strcmp(argv[2], "allreduce")))
        bad_usage("bench needs what to measure: sgemm, train, generate, suite or allreduce%s", "");
    BenchOptions o = {0};
    if (!strcmp(argv[2], "allreduce")) {
        if (argc > 3) bad_usage("unknown option \"%s\" for bench allreduce", argv[3]);
        return dist_bench_allreduce();
    }
    if (!strcmp(argv[2], "sgemm")) {
        for (int i = 3; i < argc; i++) {
            if (!strcmp(argv[i], "--quick")) o.quick = 1;
            else bad_usage("unknown option \"%s\" for bench sgemm", argv[i]);
        }
        return bench_sgemm_main(&o);
    }
    Args a;
    if (!strcmp(argv[2], "suite")) {
        parse_args(argc - 1, argv + 1, &a, " db out quick threads ", 0);
        SuiteOptions so = {.db = a.db, .out = a.out, .quick = a.quick, .threads = (int)a.threads};
        return bench_suite_main(&so);
    }
    if (!strcmp(argv[2], "generate")) {
        parse_args(argc - 1, argv + 1, &a, " set tokens prompts budget-mb threads db ", MAX_POSITIONAL);
        if (!a.npos) bad_usage("bench generate needs config files%s", "");
        static int lens[32];
        int nl = 0;
        const char *pl = a.prompts ? a.prompts : "128,256,512,1024,2048";
        for (const char *p = pl; *p && nl < 32;) {
            char *end;
            long v = strtol(p, &end, 10);
            if (end == p || v < 1 || v > (1 << 20) || (*end && *end != ',')) bad_usage("--prompts expects lengths like 128,512,2048, not \"%s\"", pl);
            lens[nl++] = (int)v;
            p = *end ? end + 1 : end;
        }
        BenchGenOptions g = {.configs = a.pos, .nconfigs = a.npos, .sets = a.sets, .nsets = a.nsets,
                             .tokens = a.tokens ? parse_long("--tokens", a.tokens, 1, 1L << 30) : 16384, .prompt_lens = lens, .nprompt_lens = nl,
                             .budget_mb = a.budget_mb ? a.budget_mb : 256, .measure_limit = 1L << 22, .threads = (int)a.threads};
        if (!a.db) return bench_generate_run(&g, NULL);
        // every number into the store too (suite NULL: a standalone measurement)
        BenchLog lg;
        char err[1024];
        if (bench_log_open(&lg, a.db, NULL, err, sizeof err) != 0) die_input("%s", err);
        BenchGenSink sink = bench_log_sink(&lg);
        int rc = bench_generate_run(&g, &sink);
        if (bench_log_flush(&lg) != 0 && rc == 0) rc = EXIT_FAIL;
        printf("%d numbers recorded in %s\n", lg.n, a.db);
        bench_log_close(&lg);
        return rc;
    }
    parse_args(argc - 1, argv + 1, &a, " set batch seq steps threads ", MAX_POSITIONAL);
    if (!a.npos) bad_usage("bench train needs config files%s", "");
    o.configs = a.pos; o.nconfigs = a.npos; o.sets = a.sets; o.nsets = a.nsets;
    o.batch = (int)a.batch; o.seq = (int)a.seq; o.steps = (int)a.steps; o.threads = (int)a.threads;
    return bench_train_main(&o);
}

static int cmd_report(int argc, char **argv) {
    Args a;
    parse_args(argc, argv, &a, " db out quiet ", 1);
    if (!a.positional) bad_usage("report needs an experiment file%s", "");
    ReportOptions o = {.exp = a.positional, .db = a.db, .out = a.out, .quiet = a.quiet};
    return report_main(&o);
}

static int cmd_eval(int argc, char **argv) {
    Args a;
    parse_args(argc, argv, &a, " task set split db quiet ", 1);
    if (!a.positional) bad_usage("eval needs a checkpoint file or a run id%s", "");
    EvalOptions o = {.target = a.positional, .db = a.db, .task = a.task, .sets = a.sets, .nsets = a.nsets,
                     .split = a.split, .quiet = a.quiet};
    return eval_main(&o);
}

// Several configs side by side (info.h). A config that fails to load or build gets an error row
// and the others are still shown; the exit status is then 2.
static int info_table(const Args *a) {
    long ctx = a->context_set ? a->context : INFO_REF_CONTEXT;
    InfoRow *rows = xcalloc(a->npos, sizeof(InfoRow));
    int failed = 0;
    for (int i = 0; i < a->npos; i++) failed += info_row(&rows[i], a->pos[i], (char **)a->sets, a->nsets, ctx, (int)a->bytes) != 0;
    info_table_print(rows, a->npos, ctx, (int)a->bytes, a->json);
    free(rows);
    return failed ? EXIT_BADINPUT : 0;
}

static int cmd_info(int argc, char **argv) {
    Args a;
    parse_args(argc, argv, &a, " set context bytes json table ", MAX_POSITIONAL);
    if (!a.positional) bad_usage("info needs a config file%s", "");
    if (a.table || a.npos > 1) return info_table(&a);
    Config c;
    load_config(&c, a.positional, a.sets, a.nsets);
    Model m;
    ConfError err;
    if (model_build(&m, &c, &err) != 0) { fprintf(stderr, "hlab: %s\n", err.msg); return EXIT_BADINPUT; }
    info_print(&m, a.context, (int)a.bytes, a.json);
    model_free(&m);
    config_free(&c);
    return 0;
}

// Reads a token file: one sequence per line, whitespace-separated integer ids, all lines of the
// same length. Returns the tokens (caller frees) and sets *B, *T.
static int *read_tokens(const char *path, int V, int *B, int *T) {
    FILE *f = fopen(path, "r");
    if (!f) die_input("--tokens: cannot open %s: %s", path, strerror(errno));
    int *tok = NULL, n = 0, cap = 0, rows = 0, cols = -1;
    char *line = NULL;
    size_t lcap = 0;
    long lineno = 0;
    while (getline(&line, &lcap, f) > 0) {
        lineno++;
        int count = 0;
        char *p = line, *end;
        for (;;) {
            while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
            if (!*p) break;
            errno = 0;
            long v = strtol(p, &end, 10);
            if (end == p || errno) die_input("%s:%ld: expected an integer token id, got \"%.20s\"", path, lineno, p);
            if (v < 0 || v >= V) die_input("%s:%ld: token %ld is outside the model's vocabulary [0, %d)", path, lineno, v, V);
            if (n == cap) { cap = cap ? 2 * cap : 1024; tok = xrealloc(tok, cap * sizeof(int)); }
            tok[n++] = (int)v; count++; p = end;
        }
        if (count == 0) continue;
        if (cols >= 0 && count != cols) die_input("%s:%ld: %d tokens, but the first sequence has %d (all must be equal)", path, lineno, count, cols);
        cols = count; rows++;
    }
    free(line);
    fclose(f);
    if (rows == 0 || cols < 2) die_input("%s: needs at least one sequence of 2 or more tokens", path);
    *B = rows; *T = cols;
    return tok;
}

static int cmd_forward(int argc, char **argv) {
    Args a;
    parse_args(argc, argv, &a, " tokens grads ", 1);
    if (!a.positional) bad_usage("forward needs a checkpoint%s", "");
    if (!a.tokens) bad_usage("forward needs --tokens FILE%s", "");
    char emsg[1024];
    char *yaml = checkpoint_config(a.positional, emsg, sizeof emsg);
    if (!yaml) die_input("%s", emsg);
    Config c;
    ConfError err;
    if (config_load_string(&c, yaml, a.positional, NULL, 0, all_key_tables(), &err) != 0) die_input("%s", err.msg);
    Model m;
    if (model_build(&m, &c, &err) != 0) die_input("%s", err.msg);
    int B, T;
    int *tok = read_tokens(a.tokens, m.V, &B, &T);
    // inputs are tokens [0, T-1), targets tokens [1, T)
    int T1 = T - 1;
    int *x = xmalloc((size_t)B * T1 * sizeof(int)), *y = xmalloc((size_t)B * T1 * sizeof(int));
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T1; t++) { x[b * T1 + t] = tok[b * T + t]; y[b * T1 + t] = tok[b * T + t + 1]; }
    ops_init_threads(0);
    model_alloc(&m, B, T1, B * T1);
    if (checkpoint_load(&m, a.positional, emsg, sizeof emsg) != 0) die_input("%s", emsg);
    model_zero_grad(&m);
    double loss = model_forward(&m, x, y, B, T1);
    if (a.grads) {
        model_backward(&m);
        if (checkpoint_save_grads(&m, a.grads, emsg, sizeof emsg) != 0) die("--grads: %s", emsg);
    }
    printf("{\"loss\": %.9g, \"sequences\": %d, \"predicted_tokens\": %d, \"accuracy\": %.6g, \"pattern\": \"%s\"%s}\n",
           loss, B, m.n_labels, (double)m.n_correct / m.n_labels, m.pattern, a.grads ? ", \"grads_written\": true" : "");
    free(tok); free(x); free(y); free(yaml);
    model_free(&m);
    config_free(&c);
    return 0;
}

static const char *type_name(KeyType t) {
    return t == KT_INT ? "int" : t == KT_FLOAT ? "float" : t == KT_BOOL ? "bool" : "string";
}

// Writes text for a Markdown table cell, where a bare | would end the cell.
static void md_cell(const char *s) {
    for (; *s; s++) {
        if (*s == '|') fputs("\\|", stdout);
        else putchar(*s);
    }
}

static int cmd_keys(int argc, char **argv) {
    Args a;
    parse_args(argc, argv, &a, " markdown ", 1);
    const KeySpec *const *tables = all_key_tables();
    if (a.markdown) printf("| key | type | default | meaning |\n|---|---|---|---|\n");
    for (int t = 0; tables[t]; t++)
        for (const KeySpec *k = tables[t]; k->path; k++) {
            char extra[160] = "";
            if (k->choices) snprintf(extra, sizeof extra, " (one of %s)", k->choices);
            else if (k->min <= k->max && k->type != KT_BOOL)
                snprintf(extra, sizeof extra, k->max >= 1e17 ? " (>= %.15g)" : " [%.15g, %.15g]", k->min, k->max);
            if (k->allow_auto) strncat(extra, "; \"auto\" allowed", sizeof extra - strlen(extra) - 1);
            if (a.markdown) {
                // a table cell cannot hold a bare |
                printf("| `%s` | %s | `%s` | ", k->path, type_name(k->type), k->def ? k->def : "(required)");
                md_cell(k->doc);
                md_cell(extra);
                printf(" |\n");
            } else
                printf("%-34s %-6s %-10s %s%s\n", k->path, type_name(k->type), k->def ? k->def : "(required)", k->doc, extra);
        }
    return 0;
}

static int cmd_data(int argc, char **argv) {
    if (argc < 3 || strcmp(argv[2], "export")) bad_usage("data needs a subcommand: export%s", "");
    Args a;
    parse_args(argc - 1, argv + 1, &a, " set split limit out ", 1);   // options after "export"
    if (!a.positional) bad_usage("data export needs a config file%s", "");
    int split = SPLIT_TEST;
    if (a.split) {
        for (split = 0; split < 3 && strcmp(a.split, split_names[split]); split++) {}
        if (split == 3) bad_usage("--split must be train, valid or test, not \"%s\"", a.split);
    }
    Config c;
    load_config(&c, a.positional, a.sets, a.nsets);
    int rc = data_export(&c, split, a.limit, a.out);
    config_free(&c);
    return rc;
}

static int cmd_version(void) {
    ops_init_threads(0);
    MachineInfo mi;
    machine_info(&mi);
    printf("hlab %s\nBLAS core %s (%s)\nCPU %s, %d cores\nMPI %s\n", mi.code_version, mi.blas_core, blas_config(), mi.cpu, mi.cores,
           dist_built_with_mpi() ? dist_library() : "none (make MPI=1 builds with Open MPI)");
    if (machine_blas_warning()) fprintf(stderr, "hlab: warning: %s\n", machine_blas_warning());
    return 0;
}

static int run_command(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_BADINPUT : 0;
    }
    const char *cmd = argv[1];
    if (dist_size() > 1 && strcmp(cmd, "train") && !(!strcmp(cmd, "bench") && argc > 2 && !strcmp(argv[2], "allreduce"))) {
        // a sweep or an evaluation on every rank would record everything K times
        if (dist_rank() == 0)
            fprintf(stderr, "hlab: only `hlab train` runs on several MPI ranks (this is one of %d): run `hlab %s` as one process\n",
                    dist_size(), cmd);
        return EXIT_BADINPUT;
    }
    if (!strcmp(cmd, "train")) return cmd_train(argc, argv);
    if (!strcmp(cmd, "info")) return cmd_info(argc, argv);
    if (!strcmp(cmd, "eval")) return cmd_eval(argc, argv);
    if (!strcmp(cmd, "sweep")) return cmd_sweep(argc, argv);
    if (!strcmp(cmd, "report")) return cmd_report(argc, argv);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc, argv);
    if (!strcmp(cmd, "runs")) return cmd_runs(argc, argv);
    if (!strcmp(cmd, "export")) return cmd_export(argc, argv);
    if (!strcmp(cmd, "merge")) return cmd_merge(argc, argv);
    if (!strcmp(cmd, "forward")) return cmd_forward(argc, argv);
    if (!strcmp(cmd, "keys")) return cmd_keys(argc, argv);
    if (!strcmp(cmd, "data")) return cmd_data(argc, argv);
    if (!strcmp(cmd, "generate")) return generate_main(argc, argv);
    if (!strcmp(cmd, "version")) return cmd_version();
    fprintf(stderr, "hlab: unknown command \"%s\"\n%s", cmd, usage);
    return EXIT_BADINPUT;
}

int main(int argc, char **argv) {
    dist_init(&argc, &argv);   // MPI, when launched by mpirun or srun and built with it
    int rc = run_command(argc, argv);
    dist_finalize(rc);
    return rc;
}
