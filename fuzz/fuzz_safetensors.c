// fuzz_safetensors.c: libFuzzer target for the safetensors reader (st_read_mem: the bytes are
// the whole file). The reader's promise is that hostile files give an error, never a crash or
// an out-of-bounds read (the bytes sit in an allocation of exactly their size, so AddressSanitizer
// sees a read one byte past the end). Beyond that, a file it accepts must be what the loaders
// assume: every tensor's bytes inside the data buffer, nbytes = numel * dtype size, no two
// tensors sharing bytes, every name found by st_find and every metadata key by st_meta.
// Files it accepts are also written back with st_write and read again (same tensors).
#include "safetensors.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void require(int ok, const char *what, const char *detail) {
    if (ok) return;
    fprintf(stderr, "fuzz_safetensors: contract broken: %s\n%s\n", what, detail ? detail : "");
    abort();
}

static char tmp_path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    StFile f;
    char err[1024];
    if (st_read_mem(&f, data, size, "fuzz.safetensors", err, sizeof err) != 0) {
        require(strncmp(err, "fuzz.safetensors: ", 18) == 0, "an error message does not start with the file name", err);
        require(f.n == 0 && f.t == NULL && f.alloc_ == NULL, "a failed read left data behind", err);
        return 0;
    }
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)data[i] << (8 * i);
    const unsigned char *buf = f.bytes + 8 + hlen, *end = f.bytes + f.size;
    for (int i = 0; i < f.n; i++) {
        const StTensor *t = &f.t[i];
        size_t esize = st_dtype_size(t->dtype), numel = 1;
        require(esize > 0, "an accepted tensor has an unknown dtype", t->name);
        require(t->ndim >= 0 && t->ndim <= ST_MAX_DIMS, "ndim out of range", t->name);
        for (int d = 0; d < t->ndim; d++) numel *= (size_t)t->shape[d];
        require(t->nbytes == numel * esize, "nbytes != numel * dtype size", t->name);
        if (t->nbytes) {
            const unsigned char *p = t->data;
            require(p >= buf && p <= end && t->nbytes <= (size_t)(end - p), "tensor bytes outside the data buffer", t->name);
            volatile unsigned char sum = 0;   // touch every byte: ASan checks the bounds again
            for (size_t k = 0; k < t->nbytes; k++) sum ^= p[k];
            (void)sum;
        }
        require(st_find(&f, t->name) == t, "st_find does not find an accepted tensor", t->name);
        for (int j = 0; j < i; j++) {
            const StTensor *u = &f.t[j];
            if (!t->nbytes || !u->nbytes) continue;
            const unsigned char *a = t->data, *b = u->data;
            require(a + t->nbytes <= b || b + u->nbytes <= a, "two accepted tensors overlap", t->name);
        }
    }
    for (int i = 0; i < f.nmeta; i++) require(st_meta(&f, f.meta_keys[i]) != NULL, "st_meta misses a key", f.meta_keys[i]);

    // write it back and read it again: same names, dtypes, shapes and bytes
    if (!tmp_path[0]) snprintf(tmp_path, sizeof tmp_path, "%s/fuzz_st_%ld.safetensors", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", (long)getpid());
    if (st_write(tmp_path, f.t, f.n, (const char *const *)f.meta_keys, (const char *const *)f.meta_vals, f.nmeta, err, sizeof err) == 0) {
        StFile g;
        require(st_read(&g, tmp_path, err, sizeof err) == 0, "a file st_write wrote does not read back", err);
        require(g.n == f.n && g.nmeta == f.nmeta, "written file has other counts", NULL);
        for (int i = 0; i < f.n; i++) {
            const StTensor *a = &f.t[i], *b = &g.t[i];
            require(!strcmp(a->name, b->name) && !strcmp(a->dtype, b->dtype) && a->ndim == b->ndim && a->nbytes == b->nbytes,
                    "a tensor changed on the way round", a->name);
            require(!memcmp(a->shape, b->shape, a->ndim * sizeof(long)), "a shape changed on the way round", a->name);
            require(!a->nbytes || !memcmp(a->data, b->data, a->nbytes), "tensor bytes changed on the way round", a->name);
        }
        for (int i = 0; i < f.nmeta; i++)
            require(!strcmp(f.meta_keys[i], g.meta_keys[i]) && !strcmp(f.meta_vals[i], g.meta_vals[i]), "metadata changed", f.meta_keys[i]);
        st_free(&g);
        unlink(tmp_path);
    } else {
        // st_write refuses only what st_read should have refused too
        require(0, "st_write refuses a file st_read accepted", err);
    }
    st_free(&f);
    return 0;
}
