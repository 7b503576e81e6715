// export.h: `hlab data export`: a task's generated examples as JSON Lines, so that any other
// model (PyTorch, JAX ...) can be tested on exactly the data hybridlab trains and scores on.
#pragma once
#include "config.h"

// Writes the first `limit` examples (0: all) of `split` of the config's task to `out` ("-" or
// NULL: stdout; a file is written to a temporary name and renamed only when complete). One line
// per example: {"task", "split", "index", "length", "tokens": [...], "targets": [...] (-1 =
// unlabelled), "slice": {...}}. Returns an exit status; errors are printed.
int data_export(const Config *c, int split, long limit, const char *out);
