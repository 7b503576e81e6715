// task_bytes.c: byte-level language modelling (vocabulary 256) on any text file. The file is
// cut into train | valid | test by byte ranges, so held-out text is never seen in training.
// Train examples are windows at seeded random offsets; valid/test are consecutive windows.
// Every position is labelled with the next byte; the metric is bits per byte (CE / ln 2).
#include "task.h"
#include "common.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const KeySpec bytes_keys[] = {
    {"data.bytes.path", KT_STRING, "/usr/share/common-licenses", 0, -1, NULL, 0,
     "bytes: a text file, or a directory whose regular files (not symlinks) are concatenated in name order"},
    {"data.bytes.valid_frac", KT_FLOAT, "0.05", 0, 0.5, NULL, 0, "bytes: fraction of the file held out for validation"},
    {"data.bytes.test_frac", KT_FLOAT, "0.05", 0, 0.5, NULL, 0, "bytes: fraction of the file held out for test"},
    {"data.bytes.train_examples", KT_INT, "0", 0, 1e12, NULL, 0, "bytes: windows per training epoch (0: train bytes / seq_len)"},
    {NULL, 0, NULL, 0, 0, NULL, 0, NULL}};

typedef struct {
    unsigned char *buf;
    long len, lo[3], hi[3];   // split byte ranges [lo, hi)
    long n[3];
    int T;
    uint64_t seed;
} Bytes;

static int bytes_validate(const Config *c, ConfError *err) {
    if (cfg_int(c, "model.vocab_size") < 256)
        return cfg_error(c, "model.vocab_size", err, "byte-level data needs vocab_size >= 256, got %ld", cfg_int(c, "model.vocab_size"));
    if (cfg_num(c, "data.bytes.valid_frac") + cfg_num(c, "data.bytes.test_frac") >= 0.9)
        return cfg_error(c, "data.bytes.valid_frac", err, "valid_frac + test_frac must leave training text (< 0.9)");
    return 0;
}

static void *bytes_open(const Config *c, ConfError *err) {
    const char *path = cfg_str(c, "data.bytes.path");
    Bytes *b = xcalloc(1, sizeof *b);
    if (task_read_corpus(c, "data.bytes.path", &b->buf, &b->len, err)) goto fail;
    b->T = (int)cfg_int(c, "data.seq_len");
    b->seed = (uint64_t)cfg_int(c, "data.seed");
    long nv = (long)(b->len * cfg_num(c, "data.bytes.valid_frac")), nt = (long)(b->len * cfg_num(c, "data.bytes.test_frac"));
    b->lo[SPLIT_TRAIN] = 0; b->hi[SPLIT_TRAIN] = b->len - nv - nt;
    b->lo[SPLIT_VALID] = b->hi[SPLIT_TRAIN]; b->hi[SPLIT_VALID] = b->lo[SPLIT_VALID] + nv;
    b->lo[SPLIT_TEST] = b->hi[SPLIT_VALID]; b->hi[SPLIT_TEST] = b->len;
    for (int s = 0; s < 3; s++) {
        long span = b->hi[s] - b->lo[s] - 1;   // a window needs T inputs and the T bytes after them
        if (s == SPLIT_TRAIN && span < b->T) {
            cfg_error(c, "data.bytes.path", err, "%s: the training split has %ld bytes, fewer than seq_len+1 = %d",
                      path, span + 1, b->T + 1);
            goto fail;
        }
        b->n[s] = span >= b->T ? span / b->T : 0;   // a held-out split may be empty (frac 0)
    }
    long te = cfg_int(c, "data.bytes.train_examples");
    if (te > 0) b->n[SPLIT_TRAIN] = te;
    return b;
fail:
    free(b->buf);
    free(b);
    return NULL;
}

static long bytes_size(void *st, int split) { return ((Bytes *)st)->n[split]; }
static int bytes_max_labels(void *st) { return ((Bytes *)st)->T; }

static int bytes_example(void *st, int split, long index, int *x, int *y, Slice *slice) {
    Bytes *b = st;
    long start;
    if (split == SPLIT_TRAIN) {
        Rng r;
        rng_seed(&r, task_example_seed(b->seed, split, index));
        start = b->lo[split] + (long)rng_below(&r, (uint64_t)(b->hi[split] - b->lo[split] - b->T));
    } else {
        start = b->lo[split] + index * b->T;
    }
    for (int t = 0; t < b->T; t++) { x[t] = b->buf[start + t]; y[t] = b->buf[start + t + 1]; }
    (void)slice;   // one slice: the whole split
    return b->T;
}

static void bytes_close(void *st) { Bytes *b = st; free(b->buf); free(b); }

const Task bytes_task = {
    .name = "bytes", .metric = "bpb", .keys = bytes_keys, .validate = bytes_validate,
    .open = bytes_open, .size = bytes_size, .max_len = bytes_max_labels, .max_labels = bytes_max_labels,
    .example = bytes_example, .close = bytes_close,
};
