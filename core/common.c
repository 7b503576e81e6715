// common.c: see common.h.
#include "common.h"
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void die(const char *fmt, ...) {
    va_list ap; va_start(ap, fmt);
    fprintf(stderr, "hlab: error: "); vfprintf(stderr, fmt, ap); fputc('\n', stderr);
    va_end(ap); exit(EXIT_FAIL);
}

void die_input(const char *fmt, ...) {
    va_list ap; va_start(ap, fmt);
    fprintf(stderr, "hlab: "); vfprintf(stderr, fmt, ap); fputc('\n', stderr);
    va_end(ap); exit(EXIT_BADINPUT);
}

void *xmalloc(size_t n) { void *p = malloc(n ? n : 1); if (!p) die("out of memory (%zu bytes)", n); return p; }
void *xcalloc(size_t n, size_t s) { void *p = calloc(n ? n : 1, s ? s : 1); if (!p) die("out of memory (%zu x %zu bytes)", n, s); return p; }
void *xrealloc(void *q, size_t n) { void *p = realloc(q, n ? n : 1); if (!p) die("out of memory (%zu bytes)", n); return p; }
char *xstrdup(const char *s) { size_t n = strlen(s) + 1; char *p = xmalloc(n); memcpy(p, s, n); return p; }

static size_t touched_total;   // bytes alloc_touched has handed out (what a run's buffers weigh)
size_t alloc_touched_bytes(void) { return touched_total; }

void *alloc_touched(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64) != 0) die("out of memory (%zu bytes)", n);
    memset(p, 0, n);
    touched_total += n;
    return p;
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
void rng_seed(Rng *r, uint64_t seed) { for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed); }
static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
uint64_t rng_u64(Rng *r) {
    uint64_t *s = r->s, result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 45);
    return result;
}
double rng_uniform(Rng *r) { return (double)(rng_u64(r) >> 11) * 0x1.0p-53; }
double rng_normal(Rng *r) {
    double u1 = rng_uniform(r), u2 = rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
uint64_t rng_below(Rng *r, uint64_t n) {
    if (n == 0) return 0;
    uint64_t limit = UINT64_MAX - UINT64_MAX % n, x;
    do { x = rng_u64(r); } while (x >= limit);
    return x % n;
}
double now_seconds(void) { struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts); return ts.tv_sec + 1e-9 * ts.tv_nsec; }

int mkdir_p(const char *dir) {
    size_t n = strlen(dir);
    if (n == 0) return 0;
    char *buf = xstrdup(dir);
    int rc = 0;
    for (char *s = buf + 1; !rc; s++) {
        if (*s != '/' && *s) continue;
        char c = *s;
        *s = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) rc = errno;
        *s = c;
        if (!c) break;
    }
    free(buf);
    struct stat st;
    if (!rc && stat(dir, &st) != 0) rc = errno;
    if (!rc && !S_ISDIR(st.st_mode)) rc = ENOTDIR;
    return rc;
}
