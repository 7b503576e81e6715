// json.c: see json.h. A recursive-descent parser over a bounded byte range.
#include "json.h"
#include "common.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const unsigned char *p;
    size_t n, pos;
    int depth;
    size_t values;
    char *err; size_t errcap;
} Parser;

static int fail(Parser *ps, const char *msg) {
    snprintf(ps->err, ps->errcap, "JSON error at byte %zu: %s", ps->pos, msg);
    return -1;
}

static void skip_ws(Parser *ps) {
    while (ps->pos < ps->n) {
        unsigned char c = ps->p[ps->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        ps->pos++;
    }
}

// Length of the valid UTF-8 sequence at s (1..4), or 0 if it is invalid: overlong forms,
// surrogates and code points above U+10FFFF are rejected as RFC 3629 asks.
static size_t utf8_seq(const unsigned char *s, size_t avail) {
    unsigned c = s[0], need, cp;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) { need = 1; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { need = 2; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { need = 3; cp = c & 0x07; }
    else return 0;
    if (avail < need + 1) return 0;
    for (unsigned i = 1; i <= need; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10FFFF))) return 0;
    if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
    return need + 1;
}

static size_t utf8_put(char *o, unsigned cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F)); return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F)); return 4;
}

// Four hex digits at ps->pos (after "\u"); -1 if they are not there.
static long hex4(Parser *ps) {
    if (ps->n - ps->pos < 4) return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = ps->p[ps->pos + i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    ps->pos += 4;
    return v;
}

// ps->pos is at the opening quote. The decoded string is never longer than its source, so one
// allocation of the source length suffices.
static int parse_string(Parser *ps, Json *out) {
    size_t start = ++ps->pos, end = start;
    while (end < ps->n && ps->p[end] != '"') end += ps->p[end] == '\\' ? 2 : 1;
    if (end >= ps->n) return fail(ps, "unterminated string");
    char *s = xmalloc(end - start + 1);
    size_t k = 0;
    while (ps->pos < end) {
        unsigned char c = ps->p[ps->pos];
        if (c < 0x20) { free(s); return fail(ps, "control character in string (must be escaped)"); }
        if (c >= 0x80) {
            size_t m = utf8_seq(ps->p + ps->pos, end - ps->pos);
            if (!m) { free(s); return fail(ps, "invalid UTF-8 in string"); }
            memcpy(s + k, ps->p + ps->pos, m); k += m; ps->pos += m;
            continue;
        }
        ps->pos++;
        if (c != '\\') { s[k++] = (char)c; continue; }
        c = ps->p[ps->pos++];   // in bounds: the scan above stepped over it
        const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t", *q = strchr(from, c);
        if (c && q) { s[k++] = to[q - from]; continue; }
        if (c != 'u') { ps->pos--; free(s); return fail(ps, "invalid escape in string"); }
        long cp = hex4(ps);
        if (cp < 0) { free(s); return fail(ps, "\\u must be followed by four hex digits"); }
        if (cp >= 0xDC00 && cp <= 0xDFFF) { free(s); return fail(ps, "lone low surrogate in \\u escape"); }
        if (cp >= 0xD800 && cp <= 0xDBFF) {   // a high surrogate must be followed by a low one
            long lo = -1;
            if (end - ps->pos >= 6 && ps->p[ps->pos] == '\\' && ps->p[ps->pos + 1] == 'u') { ps->pos += 2; lo = hex4(ps); }
            if (lo < 0xDC00 || lo > 0xDFFF) { free(s); return fail(ps, "lone high surrogate in \\u escape"); }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        k += utf8_put(s + k, (unsigned)cp);
    }
    ps->pos = end + 1;
    s[k] = 0;
    out->type = JSON_STRING; out->str = s; out->len = k;
    return 0;
}

static int parse_number(Parser *ps, Json *out) {
    size_t start = ps->pos, i = start;
    const unsigned char *p = ps->p;
    int integral = 1;
    if (i < ps->n && p[i] == '-') i++;
    if (i < ps->n && p[i] == '0') i++;
    else if (i < ps->n && p[i] >= '1' && p[i] <= '9') while (i < ps->n && p[i] >= '0' && p[i] <= '9') i++;
    else return fail(ps, "invalid number");
    if (i < ps->n && p[i] == '.') {
        integral = 0; i++;
        if (i >= ps->n || p[i] < '0' || p[i] > '9') { ps->pos = i; return fail(ps, "digit expected after '.'"); }
        while (i < ps->n && p[i] >= '0' && p[i] <= '9') i++;
    }
    if (i < ps->n && (p[i] == 'e' || p[i] == 'E')) {
        integral = 0; i++;
        if (i < ps->n && (p[i] == '+' || p[i] == '-')) i++;
        if (i >= ps->n || p[i] < '0' || p[i] > '9') { ps->pos = i; return fail(ps, "digit expected in exponent"); }
        while (i < ps->n && p[i] >= '0' && p[i] <= '9') i++;
    }
    char buf[512];   // strtod needs a terminated copy; the text may not be terminated
    if (i - start >= sizeof buf) return fail(ps, "number too long");
    memcpy(buf, p + start, i - start); buf[i - start] = 0;
    out->type = JSON_NUMBER;
    out->num = strtod(buf, NULL);
    if (integral) {   // exact int64, checked for overflow digit by digit
        int neg = buf[0] == '-';
        uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        out->is_int = 1;
        for (const char *d = buf + neg; *d; d++) {
            if (v > (lim - (uint64_t)(*d - '0')) / 10) { out->is_int = 0; break; }
            v = v * 10 + (uint64_t)(*d - '0');
        }
        if (out->is_int) out->i = neg ? (int64_t)(0 - v) : (int64_t)v;
    }
    ps->pos = i;
    return 0;
}

static int parse_value(Parser *ps, Json *out);

// Arrays and objects: items (and keys) grow in local arrays that are freed on any error.
static int parse_container(Parser *ps, Json *out, int object) {
    char close = object ? '}' : ']';
    Json *items = NULL, *keys = NULL;
    size_t n = 0, cap = 0;
    if (++ps->depth > JSON_MAX_DEPTH) return fail(ps, "nesting deeper than 64");
    ps->pos++;
    skip_ws(ps);
    if (ps->pos < ps->n && ps->p[ps->pos] == close) { ps->pos++; goto done; }
    for (;;) {
        if (n == cap) {
            cap = cap ? 2 * cap : 4;
            items = xrealloc(items, cap * sizeof *items);
            if (object) keys = xrealloc(keys, cap * sizeof *keys);
        }
        if (object) {
            skip_ws(ps);
            if (ps->pos >= ps->n || ps->p[ps->pos] != '"') { fail(ps, "expected a string key"); goto error; }
            memset(&keys[n], 0, sizeof *keys);
            if (parse_string(ps, &keys[n]) != 0) goto error;
            skip_ws(ps);
            if (ps->pos >= ps->n || ps->p[ps->pos] != ':') { json_free(&keys[n]); fail(ps, "expected ':'"); goto error; }
            ps->pos++;
        }
        if (parse_value(ps, &items[n]) != 0) { if (object) json_free(&keys[n]); goto error; }
        n++;
        skip_ws(ps);
        if (ps->pos < ps->n && ps->p[ps->pos] == ',') { ps->pos++; continue; }
        if (ps->pos < ps->n && ps->p[ps->pos] == close) { ps->pos++; break; }
        fail(ps, object ? "expected ',' or '}'" : "expected ',' or ']'");
        goto error;
    }
done:
    ps->depth--;
    out->type = object ? JSON_OBJECT : JSON_ARRAY;
    out->items = items; out->keys = keys; out->len = n;
    return 0;
error:
    for (size_t i = 0; i < n; i++) { json_free(&items[i]); if (object) json_free(&keys[i]); }
    free(items); free(keys);
    return -1;
}

static int parse_value(Parser *ps, Json *out) {
    memset(out, 0, sizeof *out);
    if (++ps->values > JSON_MAX_VALUES) return fail(ps, "too many values");
    skip_ws(ps);
    if (ps->pos >= ps->n) return fail(ps, "unexpected end of input");
    unsigned char c = ps->p[ps->pos];
    if (c == '{' || c == '[') return parse_container(ps, out, c == '{');
    if (c == '"') return parse_string(ps, out);
    if (c == '-' || (c >= '0' && c <= '9')) return parse_number(ps, out);
    static const char *const words[3] = {"true", "false", "null"};
    for (int w = 0; w < 3; w++) {
        size_t len = strlen(words[w]);
        if (ps->n - ps->pos >= len && memcmp(ps->p + ps->pos, words[w], len) == 0) {
            ps->pos += len;
            out->type = w == 2 ? JSON_NULL : JSON_BOOL;
            out->num = w == 0;
            return 0;
        }
    }
    return fail(ps, "unexpected character");
}

int json_parse(Json *out, const char *text, size_t n, char *err, size_t errcap) {
    Parser ps = {(const unsigned char *)text, n, 0, 0, 0, err, errcap};
    if (parse_value(&ps, out) != 0) return -1;
    skip_ws(&ps);
    if (ps.pos != n) { json_free(out); return fail(&ps, "unexpected text after the JSON value"); }
    return 0;
}

void json_free(Json *j) {
    if (!j) return;
    for (size_t i = 0; j->items && i < j->len; i++) json_free(&j->items[i]);
    for (size_t i = 0; j->keys && i < j->len; i++) json_free(&j->keys[i]);
    free(j->items); free(j->keys); free(j->str);
    memset(j, 0, sizeof *j);
}

const Json *json_get(const Json *j, const char *key) {
    if (!j || j->type != JSON_OBJECT) return NULL;
    size_t n = strlen(key);
    for (size_t i = 0; i < j->len; i++)
        if (j->keys[i].len == n && memcmp(j->keys[i].str, key, n) == 0) return &j->items[i];
    return NULL;
}

// ---- writing ----

// Calls emit() on runs of bytes that need no escaping and on each escape sequence.
static void escape(const char *s, void (*emit)(void *, const char *, size_t), void *ctx) {
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        if (s > run) emit(ctx, run, (size_t)(s - run));
        char e[8];
        const char *from = "\"\\\b\f\n\r\t", *to = "\"\\bfnrt", *q = strchr(from, c);
        if (q) { e[0] = '\\'; e[1] = to[q - from]; emit(ctx, e, 2); }
        else { snprintf(e, sizeof e, "\\u%04x", c); emit(ctx, e, 6); }
        run = s + 1;
    }
    if (s > run) emit(ctx, run, (size_t)(s - run));
}

static void emit_file(void *f, const char *p, size_t n) { fwrite(p, 1, n, (FILE *)f); }
static void emit_buf(void *b, const char *p, size_t n) { jbuf_put((JsonBuf *)b, p, n); }

void json_escape(FILE *f, const char *s) { escape(s, emit_file, f); }
void json_escape_buf(JsonBuf *b, const char *s) { escape(s, emit_buf, b); }

void jbuf_put(JsonBuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        b->cap = b->cap ? b->cap : 64;
        while (b->len + n + 1 > b->cap) b->cap *= 2;
        b->s = xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

void jbuf_printf(JsonBuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) { jbuf_put(b, small, (size_t)n); return; }
    char *big = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    jbuf_put(b, big, (size_t)n);
    free(big);
}
