// common.h: the number type, errors, allocation and the deterministic random generator.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <tgmath.h>   // exp(), sqrt() ... dispatch on the argument type, so one source serves float and double

// The engine computes in `real`. Training builds use float; the gradient-check build defines
// HLAB_DOUBLE so that finite differences are exact enough to catch a wrong gradient.
#ifdef HLAB_DOUBLE
typedef double real;
#define REAL_DTYPE "F64"
#else
typedef float real;
#define REAL_DTYPE "F32"
#endif

// Exit statuses: 0 ok, 1 runtime failure, 2 bad input (config, command line, files), 3 diverged,
// 4 interrupted by a signal.
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_BADINPUT = 2, EXIT_DIVERGED = 3, EXIT_INTERRUPTED = 4 };

// die: an internal error or an unrecoverable runtime failure (exit 1).
void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
// die_input: the user's input is wrong (exit 2). The message should say what would be valid.
void die_input(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
// Allocates n bytes and writes every page once, so first-touch page faults happen at start-up
// and never inside the training step.
void *alloc_touched(size_t n);
// Bytes alloc_touched has allocated in this process so far (never decreases): the difference
// over a run's set-up is its training memory (parameters, gradients, optimizer state, activations).
size_t alloc_touched_bytes(void);

// mkdir -p: creates dir and its missing parents. Returns 0, or the errno of the failure (ENOTDIR
// when a component exists but is not a directory).
int mkdir_p(const char *dir);

// An output file that never leaves a partial file in place of a good one: the data goes to
// PATH.tmp.PID beside PATH and, once complete, is flushed, fsynced and renamed over PATH (then
// the directory is fsynced). A failure at any step removes the temporary and leaves PATH as it
// was. When PATH exists and is not a regular file (a FIFO, /dev/stdout, /dev/null, /dev/full,
// a shell's >(...)), the data is written to it directly: renaming would replace the special
// file itself, which as root destroys /dev/null. A directory is refused.
typedef struct { FILE *f; char *path, *tmp; int direct; } OutFile;
// Opens PATH for writing (above). Returns 0, or -1 with "PATH: what is wrong" in err.
int outfile_open(OutFile *o, const char *path, char *err, size_t cap);
// Completes the file (flush, fsync, rename). Returns 0, or -1 with err (the temporary removed).
int outfile_commit(OutFile *o, char *err, size_t cap);
// Gives up: closes and removes the temporary.
void outfile_abort(OutFile *o);
// Whether PATH could be written, checked before hours of work rather than after: not a
// directory, and a temporary can be created beside it (it is removed again); a special file
// must be writable. Returns 0, or -1 with err.
int outfile_check(const char *path, char *err, size_t cap);

// SplitMix64-seeded xoshiro256**: fast, good, and identical on every machine.
typedef struct { uint64_t s[4]; } Rng;
void rng_seed(Rng *r, uint64_t seed);
uint64_t rng_u64(Rng *r);
double rng_uniform(Rng *r);              // [0, 1)
double rng_normal(Rng *r);               // N(0, 1), Box-Muller
uint64_t rng_below(Rng *r, uint64_t n);  // uniform in [0, n), unbiased

double now_seconds(void);                // monotonic clock
