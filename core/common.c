// common.c: see common.h.
#include "common.h"
#include <errno.h>
#include <fcntl.h>
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

// ---- output files

static int outerr(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int outerr(char *err, size_t cap, const char *fmt, ...) {
    va_list ap; va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return -1;
}

// 1: PATH is a directory, 2: another non-regular file (written directly), 0: a regular file or
// nothing yet. stat follows symbolic links: /dev/stdout is a link to a pipe or a terminal.
static int path_kind(const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0) return 0;
    return S_ISDIR(sb.st_mode) ? 1 : S_ISREG(sb.st_mode) ? 0 : 2;
}

static char *tmp_name(const char *path) {
    size_t n = strlen(path) + 32;
    char *tmp = xmalloc(n);
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    return tmp;
}

int outfile_open(OutFile *o, const char *path, char *err, size_t cap) {
    memset(o, 0, sizeof *o);
    int kind = path_kind(path);
    if (kind == 1) return outerr(err, cap, "%s: is a directory; give a file name", path);
    o->direct = kind == 2;
    o->path = xstrdup(path);
    if (!o->direct) o->tmp = tmp_name(path);
    o->f = fopen(o->direct ? path : o->tmp, "wb");
    if (!o->f) {
        int e = errno;
        outerr(err, cap, "%s: cannot create %s: %s", path, o->direct ? "it" : o->tmp, strerror(e));
        free(o->path); free(o->tmp);
        memset(o, 0, sizeof *o);
        return -1;
    }
    return 0;
}

// fsync the directory holding path, so the rename itself survives a crash.
static int fsync_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? xstrdup(path) : xstrdup(".");
    if (slash) dir[slash == path ? 1 : slash - path] = 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY), rc = -1;
    if (fd >= 0) {
        rc = fsync(fd);
        if (rc != 0 && errno == EINVAL) rc = 0;   // some file systems cannot sync directories
        int e = errno; close(fd); errno = e;
    }
    free(dir);
    return rc;
}

static void outfile_release(OutFile *o) {
    free(o->path); free(o->tmp);
    memset(o, 0, sizeof *o);
}

int outfile_commit(OutFile *o, char *err, size_t cap) {
    const char *step = "write";
    int bad = fflush(o->f) != 0 || ferror(o->f);
    // a pipe or a device cannot be fsynced (EINVAL) and needs no rename
    if (!bad && !o->direct) { step = "fsync"; bad = fsync(fileno(o->f)) != 0; }
    int e = errno;
    if (fclose(o->f) != 0 && !bad) { bad = 1; step = "close"; e = errno; }
    o->f = NULL;
    if (!bad && !o->direct) { step = "rename"; bad = rename(o->tmp, o->path) != 0; e = errno; }
    if (bad) {
        if (!o->direct) unlink(o->tmp);
        if (!strcmp(step, "rename")) outerr(err, cap, "%s: cannot rename %s over it: %s", o->path, o->tmp, strerror(e));
        else outerr(err, cap, "%s: cannot %s %s: %s", o->path, step, o->direct ? "it" : o->tmp, e ? strerror(e) : "I/O error");
        outfile_release(o);
        return -1;
    }
    if (!o->direct && fsync_dir(o->path) != 0) {
        outerr(err, cap, "%s: written, but syncing its directory failed: %s", o->path, strerror(errno));
        outfile_release(o);
        return -1;
    }
    outfile_release(o);
    return 0;
}

void outfile_abort(OutFile *o) {
    if (o->f) fclose(o->f);
    if (o->tmp) unlink(o->tmp);
    outfile_release(o);
}

int outfile_check(const char *path, char *err, size_t cap) {
    int kind = path_kind(path);
    if (kind == 1) return outerr(err, cap, "%s: is a directory; give a file name", path);
    if (kind == 2) return access(path, W_OK) == 0 ? 0 : outerr(err, cap, "%s: cannot write to it: %s", path, strerror(errno));
    char *tmp = tmp_name(path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644), rc = 0;   // a stale one of this pid is ours
    if (fd < 0) rc = outerr(err, cap, "%s: cannot write there: cannot create %s: %s", path, tmp, strerror(errno));
    else { close(fd); unlink(tmp); }
    free(tmp);
    return rc;
}
