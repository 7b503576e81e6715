// test_safetensors.c: round trips, atomic writes and a table of hostile files for the
// safetensors reader (and through it the JSON parser).
#include "test.h"
#include "safetensors.h"
#include "json.h"
#include "common.h"
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static char *path_in(const char *name) {
    static char buf[4][512];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) die("cannot write %s", path);
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

static unsigned char *read_bytes(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) { *n = 0; return NULL; }
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = xmalloc(sz + 1);
    *n = fread(b, 1, sz, f);
    fclose(f);
    return b;
}

// A file with the given header (length field = strlen(header) unless hlen_override >= 0),
// followed by ndata bytes of data.
static void write_raw(const char *path, const char *header, long long hlen_override, size_t ndata) {
    size_t hl = strlen(header);
    uint64_t n = hlen_override >= 0 ? (uint64_t)hlen_override : hl;
    size_t total = 8 + hl + ndata;
    unsigned char *b = xcalloc(total, 1);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(n >> (8 * i));
    memcpy(b + 8, header, hl);
    for (size_t i = 0; i < ndata; i++) b[8 + hl + i] = (unsigned char)i;
    write_bytes(path, b, total);
    free(b);
}

static int no_temporaries(const char *d) {
    DIR *dp = opendir(d);
    if (!dp) return 1;
    struct dirent *e;
    int clean = 1;
    while ((e = readdir(dp))) if (strstr(e->d_name, ".tmp.")) clean = 0;
    closedir(dp);
    return clean;
}

static StTensor tensor(const char *name, const char *dtype, int ndim, const long *shape, const void *data) {
    StTensor t;
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "%s", name);
    snprintf(t.dtype, sizeof t.dtype, "%s", dtype);
    t.ndim = ndim;
    size_t n = st_dtype_size(dtype);
    for (int d = 0; d < ndim; d++) { t.shape[d] = shape[d]; n *= (size_t)shape[d]; }
    t.data = data;
    t.nbytes = n;
    return t;
}

static int same_tensor(const StTensor *a, const StTensor *b) {
    if (strcmp(a->name, b->name) || strcmp(a->dtype, b->dtype) || a->ndim != b->ndim || a->nbytes != b->nbytes) return 0;
    for (int d = 0; d < a->ndim; d++) if (a->shape[d] != b->shape[d]) return 0;
    return a->nbytes == 0 || memcmp(a->data, b->data, a->nbytes) == 0;
}

static void test_round_trip(void) {
    test_group("round trip");
    float w1[6] = {1, -2, 3.5f, 1e-30f, -0.0f, 3.4e38f}, b1[5] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f}, sc = 42.0f;
    double w2[12];
    for (int i = 0; i < 12; i++) w2[i] = 1.0 / (i + 1) - 1e300 * (i == 7);
    long s23[] = {2, 3}, s5[] = {5}, s322[] = {3, 2, 2}, s04[] = {0, 4};
    StTensor t[] = {
        tensor("layers.0.mixer.w", "F32", 2, s23, w1),
        tensor("z.bias", "F32", 1, s5, b1),
        tensor("scalar", "F32", 0, NULL, &sc),
        tensor("empty", "F32", 2, s04, NULL),
        tensor("a.double \"quoted\" \\ name \xc3\xa9", "F64", 3, s322, w2),
    };
    int n = sizeof t / sizeof *t;
    const char *mk[] = {"config", "quote\"key", "unicode", "code_version"};
    const char *mv[] = {"model:\n  d_model: 64\n\ttab \"q\" \\ \x01 end", "v", "caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80", ""};
    const char *p = path_in("rt.safetensors");
    char err[512] = "";
    CHECK(st_write(p, t, n, mk, mv, 4, err, sizeof err) == 0, "st_write succeeds (%s)", err);

    size_t sz;
    unsigned char *raw = read_bytes(p, &sz);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)raw[i] << (8 * i);
    CHECK(hlen % 8 == 0 && raw[8] == '{', "header length %llu is a multiple of 8 and starts with '{'", (unsigned long long)hlen);
    CHECK(sz == 8 + hlen + 24 + 20 + 4 + 0 + 96, "file size %zu = 8 + header + data", sz);
    CHECK(memcmp(raw + 8 + hlen, w1, 24) == 0 && memcmp(raw + 8 + hlen + 48, w2, 96) == 0, "data written in the order given");
    Json j;
    char jerr[256];
    CHECK(json_parse(&j, (char *)raw + 8, hlen, jerr, sizeof jerr) == 0 && j.type == JSON_OBJECT && j.len == 6,
          "header parses as an object of 6 members");
    CHECK(j.len == 6 && strcmp(j.keys[0].str, "__metadata__") == 0 && strcmp(j.keys[1].str, "layers.0.mixer.w") == 0 &&
          strcmp(j.keys[5].str, t[4].name) == 0, "header lists metadata then the tensors in order");
    json_free(&j);
    free(raw);

    StFile f;
    CHECK(st_read(&f, p, err, sizeof err) == 0, "st_read succeeds (%s)", err);
    CHECK(f.n == n, "%d tensors read back", f.n);
    int same = f.n == n;
    for (int i = 0; same && i < n; i++) same = same_tensor(&f.t[i], &t[i]);
    CHECK(same, "names, dtypes, shapes and bytes identical, in order");
    const StTensor *x = st_find(&f, t[4].name);
    CHECK(x && x == &f.t[4] && ((uintptr_t)x->data % 8) == 0, "st_find finds the F64 tensor (8-aligned in memory)");
    double back[12];
    if (x) memcpy(back, x->data, sizeof back);
    CHECK(x && back[7] == w2[7] && back[11] == w2[11], "F64 values exact");
    CHECK(st_find(&f, "scalar") && st_find(&f, "scalar")->ndim == 0 && *(const float *)st_find(&f, "scalar")->data == 42.0f, "scalar (ndim 0)");
    CHECK(st_find(&f, "empty") && st_find(&f, "empty")->nbytes == 0, "empty tensor [0, 4]");
    CHECK(st_find(&f, "nope") == NULL && st_find(&f, "") == NULL, "st_find of an absent name is NULL");
    CHECK(f.nmeta == 4, "4 metadata pairs");
    int meta_ok = 1;
    for (int i = 0; i < 4; i++) meta_ok &= st_meta(&f, mk[i]) && strcmp(st_meta(&f, mk[i]), mv[i]) == 0;
    CHECK(meta_ok, "metadata with quotes, newlines, tabs, control chars and unicode round-trips");
    CHECK(st_meta(&f, "absent") == NULL, "st_meta of an absent key is NULL");
    st_free(&f);
    CHECK(f.n == 0 && f.t == NULL, "st_free empties the StFile");
    CHECK(no_temporaries(dir), "no temporary left behind");

    // no tensors, no metadata: "{}" padded
    CHECK(st_write(path_in("empty.safetensors"), NULL, 0, NULL, NULL, 0, err, sizeof err) == 0, "empty file written");
    CHECK(st_read(&f, path_in("empty.safetensors"), err, sizeof err) == 0 && f.n == 0 && f.nmeta == 0, "empty file read back");
    st_free(&f);

    // a header from another writer: \u escapes in names decode to UTF-8, unknown keys ignored,
    // tensors not in offset order
    write_raw(path_in("foreign.safetensors"),
              "{\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]},"
              " \"w\\u00e9\\ud83d\\ude00\" : {\"shape\":[1,2],\"dtype\":\"U8\",\"data_offsets\":[0,2],\"extra\":null}}", -1, 4);
    CHECK(st_read(&f, path_in("foreign.safetensors"), err, sizeof err) == 0, "foreign header accepted (%s)", err);
    x = st_find(&f, "w\xc3\xa9\xf0\x9f\x98\x80");
    CHECK(x && x->nbytes == 2 && ((const unsigned char *)x->data)[1] == 1, "\\u escapes (with a surrogate pair) decoded to UTF-8");
    st_free(&f);
}

static void test_write_rejects(void) {
    test_group("write rejects");
    float d[4] = {0};
    long s4[] = {4}, s2[] = {2};
    char err[512];
    StTensor t[2] = {tensor("a", "F32", 1, s4, d), tensor("a", "F32", 1, s2, d)};
    const char *p = path_in("bad_write.safetensors");
    CHECK(st_write(p, t, 2, NULL, NULL, 0, err, sizeof err) == -1 && strstr(err, "duplicate tensor name"), "duplicate names: %s", err);
    t[1] = tensor("b", "F32", 1, s2, d); t[1].nbytes = 12;
    CHECK(st_write(p, t, 2, NULL, NULL, 0, err, sizeof err) == -1 && strstr(err, "needs 8"), "nbytes mismatch: %s", err);
    t[1] = tensor("b", "Q8", 1, s2, d);
    CHECK(st_write(p, t, 2, NULL, NULL, 0, err, sizeof err) == -1 && strstr(err, "unknown dtype"), "unknown dtype: %s", err);
    t[1] = tensor("__metadata__", "F32", 1, s2, d);
    CHECK(st_write(p, t, 2, NULL, NULL, 0, err, sizeof err) == -1 && strstr(err, "reserved"), "reserved name: %s", err);
    t[1] = tensor("", "F32", 1, s2, d);
    CHECK(st_write(p, t, 2, NULL, NULL, 0, err, sizeof err) == -1 && strstr(err, "name must be"), "empty name: %s", err);
    t[1] = tensor("b", "F32", 1, s2, d); t[1].shape[0] = -2; t[1].nbytes = 0;
    CHECK(st_write(p, t, 2, NULL, NULL, 0, err, sizeof err) == -1 && strstr(err, "negative or overflowing"), "negative dim: %s", err);
    CHECK(access(p, F_OK) != 0 && no_temporaries(dir), "nothing written for rejected input");
}

static void test_atomic(void) {
    test_group("atomic write");
    float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8};
    long s4[] = {4};
    StTensor ta = tensor("w", "F32", 1, s4, a), tb = tensor("w", "F32", 1, s4, b);
    char err[512];
    const char *p = path_in("ckpt.safetensors");
    CHECK(st_write(p, &ta, 1, NULL, NULL, 0, err, sizeof err) == 0, "first write");
    size_t n0, n1;
    unsigned char *old = read_bytes(p, &n0);

    CHECK(st_write(p, &tb, 1, NULL, NULL, 0, err, sizeof err) == 0, "overwrite");
    StFile f;
    CHECK(st_read(&f, p, err, sizeof err) == 0 && f.n == 1 && memcmp(f.t[0].data, b, 16) == 0, "overwrite replaced the contents");
    st_free(&f);
    CHECK(st_write(p, &ta, 1, NULL, NULL, 0, err, sizeof err) == 0, "rewrite the original");

    // a path in a directory that does not exist
    CHECK(st_write(path_in("no/such/dir/x.safetensors"), &tb, 1, NULL, NULL, 0, err, sizeof err) == -1 &&
          strstr(err, "cannot create"), "non-existent directory refused: %s", err);

    // an unwritable directory holding the old file. Root ignores permissions, so there the
    // parent is made a regular file instead (creating anything under it fails with ENOTDIR).
    if (geteuid() != 0) {
        chmod(dir, 0500);
        int rc = st_write(p, &tb, 1, NULL, NULL, 0, err, sizeof err);
        chmod(dir, 0700);
        CHECK(rc == -1 && strstr(err, "cannot create"), "read-only directory refused: %s", err);
    } else {
        write_bytes(path_in("plainfile"), "x", 1);
        CHECK(st_write(path_in("plainfile/x.safetensors"), &tb, 1, NULL, NULL, 0, err, sizeof err) == -1 &&
              strstr(err, "cannot create"), "(root) parent is a regular file, refused: %s", err);
    }
    unsigned char *now = read_bytes(p, &n1);
    CHECK(n0 == n1 && memcmp(old, now, n0) == 0, "old file intact");
    free(now);

    // a write that fails half way: the file size limit makes write() fail with EFBIG
    struct rlimit saved, small;
    getrlimit(RLIMIT_FSIZE, &saved);
    small = saved;
    small.rlim_cur = 4096;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    size_t big = 1 << 20;
    float *data = xcalloc(big, sizeof(float));
    long sbig[] = {(long)big};
    StTensor tbig = tensor("w", "F32", 1, sbig, data);
    setrlimit(RLIMIT_FSIZE, &small);
    int rc = st_write(p, &tbig, 1, NULL, NULL, 0, err, sizeof err);
    setrlimit(RLIMIT_FSIZE, &saved);
    signal(SIGXFSZ, prev);
    free(data);
    CHECK(rc == -1 && strstr(err, "cannot write"), "write failing half way (EFBIG) reported: %s", err);
    now = read_bytes(p, &n1);
    CHECK(n0 == n1 && memcmp(old, now, n0) == 0, "old file intact after the failed write");
    CHECK(no_temporaries(dir), "temporary removed after each failure");
    free(now); free(old);
}

typedef struct { const char *what, *header; long long hlen; size_t ndata; const char *expect; } Hostile;

static void test_hostile(void) {
    test_group("hostile");
    char deep[300] = "{\"a\":";
    for (int i = 0; i < 70; i++) strcat(deep, "[");
    for (int i = 0; i < 70; i++) strcat(deep, "]");
    strcat(deep, "}");
    char longname[400];
    snprintf(longname, sizeof longname, "{\"%0200d\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 7);
    const char *ok = "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]";
    char buf[8][256];
    snprintf(buf[0], 256, "{\"a\":{%s},\"a\":{%s}}", ok, ok);
    const Hostile cases[] = {
        {"header length of 2^62", "{}", 1LL << 62, 0, "absurd"},
        {"header length 100000001", "{}", 100000001, 0, "absurd"},
        {"header length beyond the file", "{}", 500, 8, "exceeds the file"},
        {"header length 0", "{}", 0, 0, "bad JSON header"},
        {"JSON syntax error", "{\"a\": }", -1, 0, "bad JSON header"},
        {"trailing comma", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},}", -1, 1, "expected a string key"},
        {"unterminated string", "{\"abc", -1, 0, "unterminated string"},
        {"invalid escape", "{\"a\\x\":1}", -1, 0, "invalid escape"},
        {"lone surrogate", "{\"a\\ud800\":1}", -1, 0, "surrogate"},
        {"raw control character", "{\"a\x01\":1}", -1, 0, "control character"},
        {"invalid UTF-8", "{\"a\xc0\xaf\":1}", -1, 0, "invalid UTF-8"},
        {"nesting too deep", deep, -1, 0, "deeper than 64"},
        {"text after the header", "{} x", -1, 0, "after the JSON value"},
        {"header is an array", "[1,2]", -1, 0, "not a JSON object"},
        {"tensor entry not an object", "{\"w\":5}", -1, 0, "entry is not an object"},
        {"missing dtype", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,1]}}", -1, 1, "missing dtype"},
        {"dtype not a string", "{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,1]}}", -1, 1, "dtype is not a string"},
        {"unknown dtype", "{\"w\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,1]}}", -1, 1, "unknown dtype 'Q4'"},
        {"missing shape", "{\"w\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", -1, 1, "missing shape"},
        {"shape not an array", "{\"w\":{\"dtype\":\"U8\",\"shape\":3,\"data_offsets\":[0,3]}}", -1, 3, "shape is not an array"},
        {"negative dimension", "{\"w\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,1]}}", -1, 1, "shape[0] is not a non-negative integer"},
        {"fractional dimension", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1.5],\"data_offsets\":[0,1]}}", -1, 1, "shape[0] is not a non-negative integer"},
        {"dimension beyond int64", "{\"w\":{\"dtype\":\"U8\",\"shape\":[99999999999999999999],\"data_offsets\":[0,1]}}", -1, 1, "not a non-negative integer"},
        {"overflowing shape", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4],\"data_offsets\":[0,8]}}", -1, 8, "overflows"},
        {"nine dimensions", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", -1, 1, "9 dimensions"},
        {"missing data_offsets", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1]}}", -1, 1, "missing data_offsets"},
        {"data_offsets of 3 numbers", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,2]}}", -1, 2, "must be [begin, end]"},
        {"float data_offsets", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1.0]}}", -1, 1, "must be [begin, end]"},
        {"end < begin", "{\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,2]}}", -1, 4, "end 2 < begin 4"},
        {"offsets beyond the buffer", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", -1, 4, "beyond the data buffer"},
        {"huge offsets", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[9223372036854775806,9223372036854775807]}}", -1, 1, "beyond the data buffer"},
        {"dtype size mismatch", "{\"w\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,8]}}", -1, 8, "span 8 bytes but F64 shape needs 16"},
        {"overlapping tensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                                "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", -1, 12, "'a' and 'b' overlap"},
        {"tensor inside another", "{\"a\":{\"dtype\":\"U8\",\"shape\":[12],\"data_offsets\":[0,12]},"
                                  "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[6,8]},"
                                  "\"c\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[9,11]}}", -1, 12, "overlap"},
        {"duplicate names", buf[0], -1, 8, "duplicate tensor name 'a'"},
        {"name too long", longname, -1, 1, "name too long"},
        {"NUL in a name", "{\"a\\u0000b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", -1, 1, "NUL character"},
        {"metadata not an object", "{\"__metadata__\":[\"a\"]}", -1, 0, "__metadata__ is not an object"},
        {"metadata value not a string", "{\"__metadata__\":{\"step\":5}}", -1, 0, "__metadata__['step'] is not a string"},
        {"two __metadata__", "{\"__metadata__\":{},\"__metadata__\":{}}", -1, 0, "duplicate __metadata__"},
    };
    int n = sizeof cases / sizeof *cases;
    for (int i = 0; i < n; i++) {
        const char *p = path_in("hostile.safetensors");
        write_raw(p, cases[i].header, cases[i].hlen, cases[i].ndata);
        StFile f;
        char err[512] = "";
        int rc = st_read(&f, p, err, sizeof err);
        CHECK(rc == -1 && strstr(err, cases[i].expect) && f.t == NULL && f.n == 0,
              "%s: rejected with \"%s\" (got: %s)", cases[i].what, cases[i].expect, err);
    }

    // files that are not even a header
    StFile f;
    char err[512];
    write_bytes(path_in("zero"), "", 0);
    CHECK(st_read(&f, path_in("zero"), err, sizeof err) == -1 && strstr(err, "truncated"), "empty file: %s", err);
    write_bytes(path_in("five"), "\x08\0\0\0\0", 5);
    CHECK(st_read(&f, path_in("five"), err, sizeof err) == -1 && strstr(err, "truncated"), "5-byte file: %s", err);
    CHECK(st_read(&f, path_in("does-not-exist"), err, sizeof err) == -1 && strstr(err, "cannot open"), "missing file: %s", err);
    CHECK(st_read(&f, dir, err, sizeof err) == -1 && strstr(err, "not a regular file"), "a directory: %s", err);

    // a good file cut at every length fails cleanly, each cut with some message
    float w[6] = {1, 2, 3, 4, 5, 6};
    long s23[] = {2, 3};
    StTensor t[2] = {tensor("w", "F32", 2, s23, w), tensor("v", "F32", 1, s23, w)};
    const char *mk[] = {"k"}, *mv[] = {"v"};
    const char *good = path_in("good.safetensors");
    st_write(good, t, 2, mk, mv, 1, err, sizeof err);
    size_t sz;
    unsigned char *raw = read_bytes(good, &sz);
    int all_fail = 1, kinds[3] = {0};
    for (size_t cut = 0; cut < sz; cut++) {
        write_bytes(path_in("cut"), raw, cut);
        if (st_read(&f, path_in("cut"), err, sizeof err) == 0) { all_fail = 0; st_free(&f); continue; }
        kinds[strstr(err, "truncated") ? (strstr(err, "data buffer") ? 2 : strstr(err, "exceeds") ? 1 : 0) : 0]++;
    }
    CHECK(all_fail, "the file cut at each of %zu lengths is refused", sz);
    CHECK(kinds[0] == 8 && kinds[1] > 0 && kinds[2] > 0, "cuts: %d in the length field, %d in the header, %d in the data",
          kinds[0], kinds[1], kinds[2]);

    // random corruption of the header never crashes (ASan/UBSan watch); count the outcomes
    Rng rng;
    rng_seed(&rng, 7);
    int accepted = 0, rejected = 0;
    for (int iter = 0; iter < 3000; iter++) {
        unsigned char *m = xmalloc(sz);
        memcpy(m, raw, sz);
        int flips = 1 + (int)rng_below(&rng, 4);
        for (int k = 0; k < flips; k++) {
            size_t at = rng_below(&rng, sz < 200 ? sz : 200);
            m[at] = rng_below(&rng, 2) ? (unsigned char)rng_below(&rng, 256) : (unsigned char)"{}[]\",:0123456789-.eE\\u "[rng_below(&rng, 25)];
        }
        write_bytes(path_in("fuzz"), m, sz);
        if (st_read(&f, path_in("fuzz"), err, sizeof err) == 0) { accepted++; st_free(&f); } else rejected++;
        free(m);
    }
    CHECK(accepted + rejected == 3000 && rejected > 0, "3000 corrupted headers: %d accepted, %d rejected, no crash", accepted, rejected);
    free(raw);
}

static void test_json(void) {
    test_group("json");
    Json j;
    char err[256];
    const char *doc = " {\"a\": [1, -2.5e3, true, false, null, \"x\\n\\u00e9\"], \"b\": {}, \"i\": -9223372036854775808} ";
    CHECK(json_parse(&j, doc, strlen(doc), err, sizeof err) == 0, "parses a mixed document (%s)", err);
    const Json *a = json_get(&j, "a"), *i = json_get(&j, "i");
    CHECK(a && a->type == JSON_ARRAY && a->len == 6 && a->items[0].is_int && a->items[0].i == 1 &&
          a->items[1].num == -2500 && !a->items[1].is_int && a->items[2].type == JSON_BOOL && a->items[2].num == 1 &&
          a->items[4].type == JSON_NULL && strcmp(a->items[5].str, "x\n\xc3\xa9") == 0, "values decoded");
    CHECK(i && i->is_int && i->i == INT64_MIN, "INT64_MIN exact");
    CHECK(json_get(&j, "zz") == NULL && json_get(a, "a") == NULL, "json_get misses");
    json_free(&j);
    const char *bad[] = {"", "01", "1.", "-", "[1,]", "{\"a\" 1}", "nul", "\"abc", "[1 2]", "{'a':1}", "NaN", "1e", "[\"\\u12\"]", "tru"};
    int all = 1;
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++)
        if (json_parse(&j, bad[k], strlen(bad[k]), err, sizeof err) == 0) { all = 0; printf("  accepted: %s\n", bad[k]); json_free(&j); }
    CHECK(all, "%zu invalid documents rejected", sizeof bad / sizeof *bad);
    // the parser never reads past n: a valid prefix of a longer buffer
    CHECK(json_parse(&j, "[1,2]xyz", 5, err, sizeof err) == 0 && j.len == 2, "honours the length, not the NUL");
    json_free(&j);

    JsonBuf b = {0};
    json_escape_buf(&b, "a\"b\\c\n\t\x01\xc3\xa9");
    CHECK(strcmp(b.s, "a\\\"b\\\\c\\n\\t\\u0001\xc3\xa9") == 0, "json_escape_buf: %s", b.s);
    jbuf_printf(&b, "|%d|%s", 42, "x");
    CHECK(strstr(b.s, "|42|x") != NULL, "jbuf_printf appends");
    free(b.s);
    char *out = NULL;
    size_t outlen = 0;
    FILE *mf = open_memstream(&out, &outlen);
    json_escape(mf, "q\"\r");
    fclose(mf);
    CHECK(strcmp(out, "q\\\"\\r") == 0, "json_escape to a FILE: %s", out);
    free(out);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/hlab_st_XXXXXX");
    if (!mkdtemp(dir)) die("mkdtemp failed");
    test_json();
    test_round_trip();
    test_write_rejects();
    test_atomic();
    test_hostile();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_summary();
}
