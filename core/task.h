// task.h: the interface every data source implements (core/task_*.c), registered in core/tasks.c.
//
// A task produces numbered examples of three disjoint splits (train / valid / test: their seed
// streams are disjoint, so no example is shared). An example is a token sequence of at most
// max_len tokens with targets at its labelled positions (-1 elsewhere) and a slice: the few
// integer keys it is reported under (sequence length, needle depth, number of pairs ...).
// Examples are generated on demand from (split seed, index), so any example of any split can be
// regenerated exactly, and a grid of evaluation cells is just a range of indices.
#pragma once
#include "config.h"
#include <stdint.h>

enum { SPLIT_TRAIN = 0, SPLIT_VALID = 1, SPLIT_TEST = 2 };
extern const char *const split_names[3];

#define SLICE_MAX 4
typedef struct {
    int n;
    const char *key[SLICE_MAX];   // static strings, e.g. "seq_len", "depth"
    long val[SLICE_MAX];
} Slice;
void slice_add(Slice *s, const char *key, long val);
// {"seq_len": 256, "depth": 50} (keys in the order added); "{}" when empty.
void slice_json(const Slice *s, char *buf, size_t cap);

typedef struct Task {
    const char *name;            // value of data.task
    const char *metric;          // headline metric: "accuracy", "exact_match" or "bpb"
    const KeySpec *keys;         // "data.<name>.*" keys, {NULL}-terminated
    int (*validate)(const Config *c, ConfError *err);
    // Prepares the task (loads files, builds tables); returns its state or NULL with err filled.
    void *(*open)(const Config *c, ConfError *err);
    long (*size)(void *st, int split);             // number of examples in a split
    int (*max_len)(void *st);                      // longest example of any split
    int (*max_labels)(void *st);                   // labelled positions per example, at most
    // Writes example `index` of `split` into tokens[max_len], targets[max_len] and its slice;
    // returns its length L. Positions >= L are padding (token 0, target -1): every model here is
    // causal, so right padding never changes the predictions at real positions.
    int (*example)(void *st, int split, long index, int *tokens, int *targets, Slice *slice);
    // Optional: is `pred` an acceptable kind of answer at labelled position pos of this example
    // (in-context classification: one of the sequence's labels)? Gives "format adherence".
    int (*adherent)(void *st, int split, long index, const int *tokens, int pos, int pred);
    void (*close)(void *st);
} Task;

extern const Task *const task_registry[];
const Task *task_find(const char *name);
uint64_t task_example_seed(uint64_t data_seed, int split, long index);
// Parses a config list "a,b,c" into at most max integers in [lo, hi] (unique: no repeats).
// Returns the count, or -1 with a message saying what would be valid.
// Reads the corpus the string key `key` names: a file, or every regular file (not symlink) of a
// directory concatenated in name order. On success *buf (caller frees) holds *len bytes; on
// failure returns cfg_error(...) and *buf is NULL.
int task_read_corpus(const Config *c, const char *key, unsigned char **buf, long *len, ConfError *err);
int task_parse_ints(const char *s, int *out, int max, long lo, long hi, int unique, char *msg, size_t cap);
