// safetensors.c: see safetensors.h.
#include "safetensors.h"
#include "common.h"
#include "json.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct { const char *name; size_t size; } dtypes[] = {
    {"F32", 4}, {"F64", 8}, {"F16", 2}, {"BF16", 2}, {"I32", 4}, {"I64", 8}, {"U8", 1},
};

size_t st_dtype_size(const char *dtype) {
    for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
        if (strcmp(dtype, dtypes[i].name) == 0) return dtypes[i].size;
    return 0;
}

static int errf(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int errf(char *err, size_t cap, const char *fmt, ...) {
    va_list ap; va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return -1;
}

// numel * element size, or -1 if a dimension is negative or the product overflows size_t.
static int shape_bytes(const long *shape, int ndim, size_t esize, size_t *out) {
    size_t n = esize;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0 || __builtin_mul_overflow(n, (size_t)shape[d], &n)) return -1;
    }
    *out = n;
    return 0;
}

static int cmp_by_name(const void *a, const void *b) {
    return strcmp((*(const StTensor *const *)a)->name, (*(const StTensor *const *)b)->name);
}

// The first name that occurs twice, or NULL. Sorting keeps this O(n log n) for big headers.
static const char *duplicate_name(const StTensor **sorted, int n) {
    for (int i = 1; i < n; i++)
        if (strcmp(sorted[i - 1]->name, sorted[i]->name) == 0) return sorted[i]->name;
    return NULL;
}

// ---- writing ----

static int check_for_write(const char *path, const StTensor *t, int n, char *err, size_t cap) {
    for (int i = 0; i < n; i++) {
        size_t len = strnlen(t[i].name, sizeof t[i].name), esize = st_dtype_size(t[i].dtype), need;
        if (len == 0 || len > ST_MAX_NAME) return errf(err, cap, "%s: tensor %d: name must be 1..%d bytes", path, i, ST_MAX_NAME);
        if (strcmp(t[i].name, "__metadata__") == 0) return errf(err, cap, "%s: tensor %d: the name __metadata__ is reserved", path, i);
        if (!esize) return errf(err, cap, "%s: tensor '%s': unknown dtype '%.7s'", path, t[i].name, t[i].dtype);
        if (t[i].ndim < 0 || t[i].ndim > ST_MAX_DIMS) return errf(err, cap, "%s: tensor '%s': ndim %d not in 0..%d", path, t[i].name, t[i].ndim, ST_MAX_DIMS);
        if (shape_bytes(t[i].shape, t[i].ndim, esize, &need) != 0)
            return errf(err, cap, "%s: tensor '%s': negative or overflowing shape", path, t[i].name);
        if (need != t[i].nbytes)
            return errf(err, cap, "%s: tensor '%s': nbytes %zu but the %s shape needs %zu", path, t[i].name, t[i].nbytes, t[i].dtype, need);
        if (need && !t[i].data) return errf(err, cap, "%s: tensor '%s': no data", path, t[i].name);
    }
    const StTensor **sorted = xmalloc((n ? n : 1) * sizeof *sorted);
    for (int i = 0; i < n; i++) sorted[i] = &t[i];
    qsort(sorted, n, sizeof *sorted, cmp_by_name);
    const char *dup = duplicate_name(sorted, n);
    int rc = dup ? errf(err, cap, "%s: duplicate tensor name '%s'", path, dup) : 0;
    free(sorted);
    return rc;
}

// The JSON header, padded with spaces to a multiple of 8 bytes.
static JsonBuf build_header(const StTensor *t, int n, const char *const *mk, const char *const *mv, int nmeta) {
    JsonBuf h = {0};
    jbuf_put(&h, "{", 1);
    if (nmeta > 0) {
        jbuf_put(&h, "\"__metadata__\":{", 16);
        for (int i = 0; i < nmeta; i++) {
            jbuf_put(&h, i ? ",\"" : "\"", i ? 2 : 1);
            json_escape_buf(&h, mk[i]);
            jbuf_put(&h, "\":\"", 3);
            json_escape_buf(&h, mv[i]);
            jbuf_put(&h, "\"", 1);
        }
        jbuf_put(&h, "}", 1);
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        jbuf_put(&h, nmeta > 0 || i ? ",\"" : "\"", nmeta > 0 || i ? 2 : 1);
        json_escape_buf(&h, t[i].name);
        jbuf_printf(&h, "\":{\"dtype\":\"%s\",\"shape\":[", t[i].dtype);
        for (int d = 0; d < t[i].ndim; d++) jbuf_printf(&h, d ? ",%ld" : "%ld", t[i].shape[d]);
        jbuf_printf(&h, "],\"data_offsets\":[%zu,%zu]}", off, off + t[i].nbytes);
        off += t[i].nbytes;
    }
    jbuf_put(&h, "}", 1);
    while (h.len % 8) jbuf_put(&h, " ", 1);
    return h;
}

int st_write(const char *path, const StTensor *t, int n, const char *const *meta_keys,
             const char *const *meta_vals, int nmeta, char *err, size_t errcap) {
    if (n < 0 || nmeta < 0) return errf(err, errcap, "%s: negative tensor or metadata count", path);
    if (check_for_write(path, t, n, err, errcap) != 0) return -1;
    JsonBuf h = build_header(t, n, meta_keys, meta_vals, nmeta);
    // the temporary, fsync and rename (and a device or FIFO written directly): see OutFile
    OutFile o;
    if (outfile_open(&o, path, err, errcap) != 0) { free(h.s); return -1; }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    int ok = fwrite(len8, 1, 8, o.f) == 8 && fwrite(h.s, 1, h.len, o.f) == h.len;
    for (int i = 0; ok && i < n; i++) ok = !t[i].nbytes || fwrite(t[i].data, 1, t[i].nbytes, o.f) == t[i].nbytes;
    free(h.s);
    if (!ok) {
        int e = errno;   // before outfile_abort can change it
        errf(err, errcap, "%s: cannot write %s: %s", path, o.direct ? "it" : o.tmp, strerror(e));
        outfile_abort(&o);
        return -1;
    }
    return outfile_commit(&o, err, errcap);
}

// ---- reading ----

// The header length against the file size: the first check of every file, made before the
// file is read in, so a 100 GB file that is not a safetensors file is refused rather than
// allocated.
static int check_hlen(uint64_t hlen, size_t size, const char *path, char *err, size_t cap) {
    if (size < 8) return errf(err, cap, "%s: truncated: %zu bytes, too short for the 8-byte header length", path, size);
    if (hlen > ST_MAX_HEADER)
        return errf(err, cap, "%s: header length %llu is absurd (more than %d bytes): not a safetensors file?", path, (unsigned long long)hlen, ST_MAX_HEADER);
    if (hlen > size - 8)
        return errf(err, cap, "%s: header length %llu exceeds the file (%zu bytes after the length field; truncated file?)",
                    path, (unsigned long long)hlen, size - 8);
    return 0;
}

// Reads the whole file. The buffer is placed so that the data buffer (at 8 + header length)
// starts 64-byte aligned in memory, which makes tensors of files we wrote naturally aligned.
static int read_all(StFile *f, const char *path, char *err, size_t cap) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return errf(err, cap, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) { fclose(fp); return errf(err, cap, "%s: not a regular file", path); }
    size_t size = (size_t)sb.st_size;
    unsigned char len8[8] = {0};
    size_t got = fread(len8, 1, size < 8 ? size : 8, fp);
    if (got != (size < 8 ? size : 8)) { fclose(fp); return errf(err, cap, "%s: read error: %s", path, strerror(errno)); }
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)len8[i] << (8 * i);
    if (check_hlen(hlen, size, path, err, cap) != 0) { fclose(fp); return -1; }
    unsigned char *raw = size < SIZE_MAX - 64 ? malloc(size + 64) : NULL;
    if (!raw) { fclose(fp); return errf(err, cap, "%s: cannot hold its %zu bytes in memory", path, size); }
    size_t pad = (64 - ((uintptr_t)raw + 8 + hlen) % 64) % 64;
    unsigned char *bytes = raw + pad;
    memcpy(bytes, len8, got);
    if (got == 8 && size > 8) got += fread(bytes + 8, 1, size - 8, fp);
    int rerr = ferror(fp);
    fclose(fp);
    if (got != size) { free(raw); return errf(err, cap, "%s: read error (%zu of %zu bytes)%s", path, got, size, rerr ? "" : ": file changed while reading"); }
    f->alloc_ = raw; f->bytes = bytes; f->size = size;
    return 0;
}

// A non-negative JSON integer.
static int json_uint(const Json *j, int64_t *out) {
    if (!j || j->type != JSON_NUMBER || !j->is_int || j->i < 0) return -1;
    *out = j->i;
    return 0;
}

static int parse_tensor(StTensor *t, const Json *key, const Json *v, const unsigned char *buf, size_t buflen,
                        const char *path, char *err, size_t cap) {
    if (key->len > ST_MAX_NAME)
        return errf(err, cap, "%s: tensor name too long (%zu bytes, at most %d): '%.40s...'", path, key->len, ST_MAX_NAME, key->str);
    if (strlen(key->str) != key->len) return errf(err, cap, "%s: tensor name '%s' contains a NUL character", path, key->str);
    // (found by fuzz_safetensors: the writer refuses an empty name, so the reader must too)
    if (key->len == 0) return errf(err, cap, "%s: a tensor has an empty name", path);
    memcpy(t->name, key->str, key->len + 1);
    const char *nm = t->name;
    if (v->type != JSON_OBJECT) return errf(err, cap, "%s: tensor '%s': entry is not an object", path, nm);

    const Json *dt = json_get(v, "dtype"), *sh = json_get(v, "shape"), *off = json_get(v, "data_offsets");
    if (!dt) return errf(err, cap, "%s: tensor '%s': missing dtype", path, nm);
    if (dt->type != JSON_STRING) return errf(err, cap, "%s: tensor '%s': dtype is not a string", path, nm);
    size_t esize = st_dtype_size(dt->str);
    if (!esize) return errf(err, cap, "%s: tensor '%s': unknown dtype '%.16s' (known: F32 F64 F16 BF16 I32 I64 U8)", path, nm, dt->str);
    strcpy(t->dtype, dt->str);   // known names are at most 4 bytes

    if (!sh) return errf(err, cap, "%s: tensor '%s': missing shape", path, nm);
    if (sh->type != JSON_ARRAY) return errf(err, cap, "%s: tensor '%s': shape is not an array", path, nm);
    if (sh->len > ST_MAX_DIMS) return errf(err, cap, "%s: tensor '%s': shape has %zu dimensions (at most %d)", path, nm, sh->len, ST_MAX_DIMS);
    t->ndim = (int)sh->len;
    for (int d = 0; d < t->ndim; d++) {
        int64_t dim;
        if (json_uint(&sh->items[d], &dim) != 0) return errf(err, cap, "%s: tensor '%s': shape[%d] is not a non-negative integer", path, nm, d);
        t->shape[d] = (long)dim;
    }
    size_t need;
    if (shape_bytes(t->shape, t->ndim, esize, &need) != 0) return errf(err, cap, "%s: tensor '%s': shape size overflows", path, nm);

    int64_t b, e;
    if (!off) return errf(err, cap, "%s: tensor '%s': missing data_offsets", path, nm);
    if (off->type != JSON_ARRAY || off->len != 2 || json_uint(&off->items[0], &b) || json_uint(&off->items[1], &e))
        return errf(err, cap, "%s: tensor '%s': data_offsets must be [begin, end] with non-negative integers", path, nm);
    if (e < b) return errf(err, cap, "%s: tensor '%s': data_offsets end %lld < begin %lld", path, nm, (long long)e, (long long)b);
    if ((uint64_t)e > buflen)
        return errf(err, cap, "%s: tensor '%s': data_offsets [%lld, %lld] beyond the data buffer (%zu bytes; truncated file?)",
                    path, nm, (long long)b, (long long)e, buflen);
    if ((uint64_t)(e - b) != need)
        return errf(err, cap, "%s: tensor '%s': data_offsets span %lld bytes but %s shape needs %zu",
                    path, nm, (long long)(e - b), t->dtype, need);
    t->data = buf + b;
    t->nbytes = need;
    return 0;
}

static int parse_metadata(StFile *f, const Json *m, const char *path, char *err, size_t cap) {
    if (f->meta_keys) return errf(err, cap, "%s: duplicate __metadata__", path);
    if (m->type != JSON_OBJECT) return errf(err, cap, "%s: __metadata__ is not an object", path);
    f->meta_keys = xcalloc(m->len, sizeof(char *));
    f->meta_vals = xcalloc(m->len, sizeof(char *));
    for (size_t i = 0; i < m->len; i++) {
        const Json *k = &m->keys[i], *v = &m->items[i];
        if (v->type != JSON_STRING) return errf(err, cap, "%s: __metadata__['%.60s'] is not a string", path, k->str);
        if (strlen(k->str) != k->len || strlen(v->str) != v->len)
            return errf(err, cap, "%s: __metadata__['%.60s'] contains a NUL character", path, k->str);
        f->meta_keys[i] = xstrdup(k->str);
        f->meta_vals[i] = xstrdup(v->str);
        f->nmeta++;
    }
    return 0;
}

static int cmp_by_offset(const void *a, const void *b) {
    const StTensor *x = *(const StTensor *const *)a, *y = *(const StTensor *const *)b;
    const char *px = x->data, *py = y->data;
    return px < py ? -1 : px > py ? 1 : (x->nbytes > y->nbytes) - (x->nbytes < y->nbytes);
}

// Tensors sharing bytes would alias each other's parameters after loading. Empty tensors occupy
// no bytes and cannot overlap anything.
static int check_overlap(const StFile *f, const char *path, char *err, size_t cap) {
    const StTensor **s = xmalloc((f->n ? f->n : 1) * sizeof *s);
    int m = 0, rc = 0;
    for (int i = 0; i < f->n; i++) if (f->t[i].nbytes) s[m++] = &f->t[i];
    qsort(s, m, sizeof *s, cmp_by_offset);
    const StTensor *far = NULL;   // the tensor reaching furthest so far
    for (int i = 0; i < m && !rc; i++) {
        const char *begin = s[i]->data;
        if (far && begin < (const char *)far->data + far->nbytes)
            rc = errf(err, cap, "%s: tensors '%s' and '%s' overlap in the data buffer", path, far->name, s[i]->name);
        if (!far || begin + s[i]->nbytes > (const char *)far->data + far->nbytes) far = s[i];
    }
    free(s);
    return rc;
}

static int parse_file(StFile *f, const char *path, char *err, size_t cap) {
    uint64_t hlen = 0;
    for (int i = 0; f->size >= 8 && i < 8; i++) hlen |= (uint64_t)f->bytes[i] << (8 * i);
    if (check_hlen(hlen, f->size, path, err, cap) != 0) return -1;
    Json root;
    char jerr[256];
    if (json_parse(&root, (const char *)f->bytes + 8, hlen, jerr, sizeof jerr) != 0)
        return errf(err, cap, "%s: bad JSON header: %s", path, jerr);
    int rc = 0;
    if (root.type != JSON_OBJECT) { rc = errf(err, cap, "%s: header is not a JSON object", path); goto done; }
    const unsigned char *buf = f->bytes + 8 + hlen;
    size_t buflen = f->size - 8 - hlen;
    f->t = xcalloc(root.len, sizeof *f->t);
    for (size_t i = 0; i < root.len && !rc; i++) {
        const Json *k = &root.keys[i];
        if (k->len == 12 && memcmp(k->str, "__metadata__", 12) == 0) rc = parse_metadata(f, &root.items[i], path, err, cap);
        else if ((rc = parse_tensor(&f->t[f->n], k, &root.items[i], buf, buflen, path, err, cap)) == 0) f->n++;
    }
    if (rc) goto done;
    f->by_name = xmalloc((f->n ? f->n : 1) * sizeof *f->by_name);
    for (int i = 0; i < f->n; i++) f->by_name[i] = &f->t[i];
    qsort(f->by_name, f->n, sizeof *f->by_name, cmp_by_name);
    const char *dup = duplicate_name(f->by_name, f->n);
    if (dup) { rc = errf(err, cap, "%s: duplicate tensor name '%s'", path, dup); goto done; }
    rc = check_overlap(f, path, err, cap);
done:
    json_free(&root);
    return rc;
}

int st_read(StFile *f, const char *path, char *err, size_t errcap) {
    memset(f, 0, sizeof *f);
    if (read_all(f, path, err, errcap) != 0) return -1;
    if (parse_file(f, path, err, errcap) != 0) { st_free(f); return -1; }
    return 0;
}

int st_read_mem(StFile *f, const void *bytes, size_t n, const char *name, char *err, size_t errcap) {
    memset(f, 0, sizeof *f);
    // An allocation of exactly n bytes: under AddressSanitizer any read past the end of the
    // file is caught, where read_all's alignment padding would hide a short over-read.
    unsigned char *copy = xmalloc(n ? n : 1);
    if (n) memcpy(copy, bytes, n);
    f->alloc_ = copy; f->bytes = copy; f->size = n;
    if (parse_file(f, name, err, errcap) != 0) { st_free(f); return -1; }
    return 0;
}

const StTensor *st_find(const StFile *f, const char *name) {
    int lo = 0, hi = f->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(f->by_name[mid]->name, name);
        if (c == 0) return f->by_name[mid];
        if (c < 0) lo = mid + 1; else hi = mid - 1;
    }
    return NULL;
}

const char *st_meta(const StFile *f, const char *key) {
    for (int i = 0; i < f->nmeta; i++) if (strcmp(f->meta_keys[i], key) == 0) return f->meta_vals[i];
    return NULL;
}

void st_free(StFile *f) {
    for (int i = 0; i < f->nmeta; i++) { free(f->meta_keys[i]); free(f->meta_vals[i]); }
    free(f->meta_keys); free(f->meta_vals);
    free(f->t); free(f->by_name); free(f->alloc_);
    memset(f, 0, sizeof *f);
}
