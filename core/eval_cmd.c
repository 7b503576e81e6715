// eval_cmd.c: `hlab eval RUN_OR_CKPT [--task T] [--set data.*|eval.*=V]... [--split S]`: scores a
// trained model on any task and grid and records every cell in the run store.
//
// The model comes from the checkpoint (its config is in the file's metadata); only data.* and
// eval.* keys may be overridden, so the grid can change (longer contexts, other depths, another
// task) but never the model. Rows go to evals with source 'eval: OVERRIDES', under the run that
// wrote the checkpoint, or under a run of variant 'imported' created for a checkpoint the store
// has not seen.
#include "eval_cmd.h"
#include "checkpoint.h"
#include "keys.h"
#include "machine.h"
#include "mixture.h"
#include "ops.h"
#include "store.h"
#include "train.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int fail_input(const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "hlab: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n");
    return EXIT_BADINPUT;
}

static int all_digits(const char *s) {
    if (!*s) return 0;
    for (; *s; s++) if (!isdigit((unsigned char)*s)) return 0;
    return 1;
}

// The run the results belong to: the one that wrote the checkpoint, else a new 'imported' run.
static int64_t run_for(Store *st, const char *ckpt, const Config *cfg, const Model *m) {
    int64_t run = store_run_of_checkpoint(st, ckpt);
    if (run != 0) return run;
    MachineInfo mi;
    machine_info(&mi);
    // its identity names the file, so it never matches a trained run's
    char *yaml = config_canonical_yaml(cfg), identity[17], origin[4200];
    snprintf(origin, sizeof origin, "imported %s", ckpt);
    run_identity(yaml, cfg_int(cfg, "seed"), origin, identity);
    RunInfo ri = run_info_for(cfg, m, &mi, yaml, identity, "", "imported");
    run = store_run_begin(st, &ri, cfg);
    if (run > 0 && (store_run_checkpoint(st, run, ckpt) != 0 || store_run_end(st, run, "done", NULL) != 0)) run = -1;
    free(yaml);
    return run;
}

int eval_main(const EvalOptions *o) {
    char ckpt[4096], emsg[1024];
    const char *dbpath = o->db;
    Store *store = NULL;
    int64_t run = 0;
    struct stat sb;
    // a checkpoint file, or a run id in the store
    if (stat(o->target, &sb) == 0) {
        char *abs = realpath(o->target, NULL);
        snprintf(ckpt, sizeof ckpt, "%s", abs ? abs : o->target);
        free(abs);
    } else if (all_digits(o->target)) {
        if (!dbpath) dbpath = store_default_path();
        if (!strcmp(dbpath, "none")) return fail_input("eval %s: a run id needs a run store (--db PATH)%s", o->target, "");
        if (stat(dbpath, &sb) != 0) return fail_input("eval %s: no run store at %s", o->target, dbpath);
        store = store_open(dbpath, emsg, sizeof emsg);
        if (!store) return fail_input("run store: %s%s", emsg, "");
        run = strtoll(o->target, NULL, 10);
        int rc = store_checkpoint_of(store, run, ckpt, sizeof ckpt);
        if (rc != 0) {
            fprintf(stderr, "hlab: eval %s: %s\n", o->target,
                    rc == 1 ? "no such run in the store" : rc == 2 ? "the run wrote no checkpoint (train with train.checkpoint: PATH or --out)"
                                                         : store_errmsg(store));
            store_close(store);
            return EXIT_BADINPUT;
        }
    } else {
        return fail_input("eval: \"%s\" is neither a checkpoint file nor a run id%s", o->target, "");
    }

    // the checkpoint's config, with the evaluation's overrides (never the model's keys)
    char *yaml = checkpoint_config(ckpt, emsg, sizeof emsg);
    if (!yaml) { store_close(store); return fail_input("%s%s", emsg, ""); }
    char *sets[260], taskset[128];
    int nsets = 0;
    if (o->task) {
        snprintf(taskset, sizeof taskset, "data.task=%s", o->task);
        sets[nsets++] = taskset;
        sets[nsets++] = "data.mix=";
    }
    for (int i = 0; i < o->nsets; i++) {
        if (strncmp(o->sets[i], "data.", 5) && strncmp(o->sets[i], "eval.", 5)) {
            free(yaml); store_close(store);
            return fail_input("--set %s: only data.* and eval.* keys can change at evaluation (the checkpoint fixes the model)%s",
                              o->sets[i], "");
        }
        sets[nsets++] = o->sets[i];
    }
    Config cfg, trained;
    ConfError err;
    if (config_load_string(&trained, yaml, ckpt, NULL, 0, all_key_tables(), &err) != 0 ||
        config_load_string(&cfg, yaml, ckpt, sets, nsets, all_key_tables(), &err) != 0) {
        free(yaml); store_close(store);
        return fail_input("%s%s", err.msg, "");
    }
    free(yaml);
    Model m;
    Mixture mix;
    if (model_build(&m, &cfg, &err) != 0 || mixture_open_eval(&mix, &cfg, &err) != 0) {
        config_free(&cfg); config_free(&trained); store_close(store);
        return fail_input("%s%s", err.msg, "");
    }
    int split0 = SPLIT_TEST, split1 = SPLIT_TEST;
    if (o->split && !strcmp(o->split, "valid")) split0 = split1 = SPLIT_VALID;
    else if (o->split && !strcmp(o->split, "all")) split0 = SPLIT_VALID;
    else if (o->split && strcmp(o->split, "test")) {
        config_free(&cfg); config_free(&trained); store_close(store);
        return fail_input("eval: --split must be valid, test or all, not \"%s\"%s", o->split, "");
    }
    int T = 1, labels = 1, B = (int)cfg_int(&cfg, "train.batch_size");
    mixture_extent(&mix, &T, &labels);
    ops_init_threads((int)cfg_int(&cfg, "train.threads"));
    model_alloc(&m, B, T, B * labels);
    if (checkpoint_load(&m, ckpt, emsg, sizeof emsg) != 0) {
        config_free(&cfg); config_free(&trained); store_close(store);
        return fail_input("%s%s", emsg, "");
    }

    // where the results go: --db, or the store the checkpoint's config names
    if (!store) {
        if (!dbpath) dbpath = cfg_str(&trained, "store.db");
        if (dbpath[0] && strcmp(dbpath, "none")) {
            store = store_open(dbpath, emsg, sizeof emsg);
            if (!store) { config_free(&cfg); config_free(&trained); return fail_input("run store: %s%s", emsg, ""); }
        }
    }
    if (store) {
        if (run == 0) run = run_for(store, ckpt, &trained, &m);
        if (run < 0) {
            fprintf(stderr, "hlab: run store: %s\n", store_errmsg(store));
            store_close(store); config_free(&cfg); config_free(&trained);
            return EXIT_FAIL;
        }
        // source names the overrides, so another grid of the same run gets rows of its own
        char source[2048] = "eval";
        for (int i = 0; i < nsets; i++)
            if (strcmp(sets[i], "data.mix=") || !o->task)
                snprintf(source + strlen(source), sizeof source - strlen(source), "%s%s", i ? "; " : ": ", sets[i]);
        store_set_eval_source(store, source);
    }
    if (!o->quiet) printf("eval of %s (pattern %s)%s\n", ckpt, m.pattern, store ? "" : ", not recorded");
    long max_examples = cfg_int(&cfg, "eval.max_examples");
    int *tok = alloc_touched((size_t)B * T * sizeof(int)), *tgt = alloc_touched((size_t)B * T * sizeof(int));
    for (int i = 0; i < mix.n; i++)
        for (int split = split0; split <= split1; split++) {
            const Task *task = mix.task[i];
            if (task->size(mix.st[i], split) == 0) continue;
            EvalResult r = evaluate(&m, task, mix.st[i], split, max_examples, T, tok, tgt);
            record_eval(store, run, task, split, &r);
            if (!o->quiet) {
                printf("%s %-5s %s %.4f  loss %.4f  (%ld examples)\n", task->name, split_names[split], task->metric,
                       stats_headline(task, &r.all), stats_loss(&r.all), r.all.examples);
                for (int c = 0; r.ncells > 1 && c < r.ncells; c++) {
                    char js[256];
                    slice_json(&r.cells[c].slice, js, sizeof js);
                    printf("    %-44s %s %.4f  (%ld examples)\n", js, task->metric, stats_headline(task, &r.cells[c]),
                           r.cells[c].examples);
                }
            }
            eval_free(&r);
        }
    if (store && !o->quiet) printf("recorded under run %lld in %s\n", (long long)run, dbpath);
    free(tok); free(tgt);
    mixture_close(&mix);
    model_free(&m);
    store_close(store);
    config_free(&cfg); config_free(&trained);
    return EXIT_OK;
}
