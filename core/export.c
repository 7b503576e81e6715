// export.c: see export.h.
#include "export.h"
#include "common.h"
#include "task.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void write_ints(FILE *f, const int *v, int n) {
    fputc('[', f);
    for (int i = 0; i < n; i++) fprintf(f, i ? ",%d" : "%d", v[i]);
    fputc(']', f);
}

int data_export(const Config *c, int split, long limit, const char *out) {
    ConfError err;
    const Task *task = task_find(cfg_str(c, "data.task"));
    if (!task) {
        cfg_error(c, "data.task", &err, "unknown task \"%s\"", cfg_str(c, "data.task"));
        fprintf(stderr, "hlab: %s\n", err.msg);
        return EXIT_BADINPUT;
    }
    if (task->validate && task->validate(c, &err) != 0) { fprintf(stderr, "hlab: %s\n", err.msg); return EXIT_BADINPUT; }
    void *st = task->open(c, &err);
    if (!st) { fprintf(stderr, "hlab: %s\n", err.msg); return EXIT_BADINPUT; }

    int to_stdout = !out || !strcmp(out, "-");
    char emsg[1200];
    OutFile of = {0};
    FILE *f = stdout;
    if (!to_stdout) {
        if (outfile_open(&of, out, emsg, sizeof emsg) != 0) {
            fprintf(stderr, "hlab: %s\n", emsg);
            task->close(st);
            return EXIT_BADINPUT;
        }
        f = of.f;
    }
    long n = task->size(st, split);
    if (limit > 0 && limit < n) n = limit;
    int L = task->max_len(st);
    int *tok = xmalloc(L * sizeof(int)), *tgt = xmalloc(L * sizeof(int));
    for (long i = 0; i < n; i++) {
        Slice s = {0};
        int len = task->example(st, split, i, tok, tgt, &s);
        char js[256];
        slice_json(&s, js, sizeof js);
        fprintf(f, "{\"task\": \"%s\", \"split\": \"%s\", \"index\": %ld, \"length\": %d, \"tokens\": ", task->name,
                split_names[split], i, len);
        write_ints(f, tok, len);
        fputs(", \"targets\": ", f);
        write_ints(f, tgt, len);
        fprintf(f, ", \"slice\": %s}\n", js);
    }
    free(tok); free(tgt);
    task->close(st);
    if (to_stdout) return fflush(stdout) == 0 ? 0 : EXIT_FAIL;
    // the file replaces `out` only once it is complete and on disk
    if (outfile_commit(&of, emsg, sizeof emsg) != 0) {
        fprintf(stderr, "hlab: %s\n", emsg);
        return EXIT_FAIL;
    }
    fprintf(stderr, "wrote %ld %s examples of %s to %s\n", n, split_names[split], task->name, out);
    return 0;
}
