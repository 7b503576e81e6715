// tasks.c: the task registry. Adding a task is one core/task_*.c file and one line here.
#include "task.h"
#include "common.h"
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

extern const Task mqar_task, bytes_task;
extern const Task niah_task, passkey_task;
extern const Task icl_task, mad_recall_task, mad_noisy_recall_task, mad_fuzzy_recall_task, mad_selective_copy_task,
    mad_compression_task, mad_memorization_task;

const Task *const task_registry[] = {
    &mqar_task,    // Zoology's multi-query associative recall
    &bytes_task,   // byte-level language modelling on a text file
    &niah_task,    // needle in a haystack, RULER variants (single, multikey, multivalue, multiquery)
    &passkey_task, // passkey retrieval, Landmark Attention format, byte level
    &icl_task,     // in-context classification with arbitrary labels (Jamba's IMDB format adherence)
    &mad_recall_task, &mad_noisy_recall_task, &mad_fuzzy_recall_task,   // MAD-lab's six tasks; keys on the first
    &mad_selective_copy_task, &mad_compression_task, &mad_memorization_task,
    NULL,
};

const char *const split_names[3] = {"train", "valid", "test"};

const Task *task_find(const char *name) {
    for (int i = 0; task_registry[i]; i++) if (!strcmp(task_registry[i]->name, name)) return task_registry[i];
    return NULL;
}

// Seed of example `index` of `split`: disjoint streams per split, so no example is shared
// between train, valid and test by construction (Zoology draws train seeds below 2^31 and test
// seeds above; we separate by a split tag inside the hash instead).
uint64_t task_example_seed(uint64_t data_seed, int split, long index) {
    uint64_t x = data_seed * 0x9E3779B97F4A7C15ull ^ ((uint64_t)(split + 1) << 56) ^ (uint64_t)index;
    x ^= x >> 33; x *= 0xff51afd7ed558ccdull; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ull; x ^= x >> 33;
    return x;
}

void slice_add(Slice *s, const char *key, long val) {
    if (s->n == SLICE_MAX) return;
    s->key[s->n] = key;
    s->val[s->n++] = val;
}

void slice_json(const Slice *s, char *buf, size_t cap) {
    size_t k = (size_t)snprintf(buf, cap, "{");
    for (int i = 0; i < s->n && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s\"%s\": %ld", i ? ", " : "", s->key[i], s->val[i]);
    if (k < cap) snprintf(buf + k, cap - k, "}");
}

// Parses "a,b,c" into integers in [lo, hi]. Returns the count, or -1 with a message.
int task_parse_ints(const char *s, int *out, int max, long lo, long hi, int unique, char *msg, size_t cap) {
    int n = 0;
    const char *p = s;
    while (*p) {
        long v;
        int used = 0;
        if (sscanf(p, "%ld%n", &v, &used) != 1 || used == 0) {
            snprintf(msg, cap, "expected integers separated by commas, e.g. \"256,512,1024\"; got \"%s\"", p);
            return -1;
        }
        if (n == max) { snprintf(msg, cap, "at most %d entries", max); return -1; }
        if (v < lo || v > hi) { snprintf(msg, cap, "entry %d is %ld, outside [%ld, %ld]", n + 1, v, lo, hi); return -1; }
        for (int i = 0; unique && i < n; i++)
            if (out[i] == v) { snprintf(msg, cap, "%ld is listed twice", v); return -1; }
        out[n++] = (int)v;
        p += used;
        if (*p == ',') p++;
        else if (*p) { snprintf(msg, cap, "unexpected \"%s\" after entry %d", p, n); return -1; }
    }
    if (n == 0) { snprintf(msg, cap, "needs at least one entry, e.g. \"256\""); return -1; }
    return n;
}

// Appends a whole file to *buf (capacity *cap, doubled as needed). Returns 0, or -1 with errno.
static int append_file(unsigned char **buf, long *len, long *cap, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t got;
    do {
        if (*len == *cap) { *cap *= 2; *buf = xrealloc(*buf, *cap); }
        got = fread(*buf + *len, 1, *cap - *len, f);
        *len += (long)got;
    } while (got > 0);
    int bad = ferror(f);
    fclose(f);
    if (bad) { errno = EIO; return -1; }
    return 0;
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int task_read_corpus(const Config *c, const char *key, unsigned char **buf, long *len, ConfError *err) {
    const char *path = cfg_str(c, key);
    long cap = 1 << 16;
    *buf = xmalloc(cap);
    *len = 0;
    struct stat sb;
    int rc = 0;
    if (stat(path, &sb) != 0) {
        rc = cfg_error(c, key, err, "cannot open %s: %s", path, strerror(errno));
    } else if (S_ISDIR(sb.st_mode)) {
        // every regular file of the directory, in name order, so the corpus is the same everywhere
        DIR *d = opendir(path);
        if (!d) rc = cfg_error(c, key, err, "cannot read directory %s: %s", path, strerror(errno));
        char **names = NULL;
        int n = 0;
        struct dirent *e;
        while (d && (e = readdir(d))) {
            char full[4096];
            struct stat fs;
            snprintf(full, sizeof full, "%s/%s", path, e->d_name);
            if (lstat(full, &fs) == 0 && S_ISREG(fs.st_mode)) {
                names = xrealloc(names, (n + 1) * sizeof(char *));
                names[n++] = xstrdup(full);
            }
        }
        if (d) closedir(d);
        qsort(names, n, sizeof(char *), cmp_names);
        for (int i = 0; i < n; i++) {
            if (rc == 0 && append_file(buf, len, &cap, names[i]) != 0)
                rc = cfg_error(c, key, err, "cannot read %s: %s", names[i], strerror(errno));
            free(names[i]);
        }
        free(names);
    } else if (append_file(buf, len, &cap, path) != 0) {
        rc = cfg_error(c, key, err, "cannot read %s: %s", path, strerror(errno));
    }
    if (rc) { free(*buf); *buf = NULL; *len = 0; }
    return rc;
}
