// task.h: the interface every data source implements (core/task_*.c), registered in core/tasks.c.
// A task produces numbered examples of three disjoint splits; each example is a token sequence
// with targets at its labelled positions (-1 elsewhere). Examples are generated on demand from
// (split seed, index), so any example of any split can be regenerated exactly.
#pragma once
#include "config.h"
#include <stdint.h>

enum { SPLIT_TRAIN = 0, SPLIT_VALID = 1, SPLIT_TEST = 2 };
extern const char *const split_names[3];

typedef struct Task {
    const char *name;            // value of data.task
    const char *metric;          // headline metric: "accuracy" or "bpb"
    const KeySpec *keys;         // "data.<name>.*" keys, {NULL}-terminated
    int (*validate)(const Config *c, ConfError *err);
    // Prepares the task (loads files, builds tables); returns its state or NULL with err filled.
    void *(*open)(const Config *c, ConfError *err);
    long (*size)(void *st, int split);             // number of examples in a split
    int (*max_labels)(void *st);                   // labelled positions per sequence, at most
    // Writes example `index` of `split`: tokens[T] and targets[T] (-1 = not labelled).
    void (*example)(void *st, int split, long index, int *tokens, int *targets);
    void (*close)(void *st);
} Task;

extern const Task *const task_registry[];
const Task *task_find(const char *name);
uint64_t task_example_seed(uint64_t data_seed, int split, long index);
