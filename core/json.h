// json.h: a small strict JSON parser (RFC 8259) and helpers to write JSON strings.
//
// The parser reads untrusted text (safetensors headers, stored slices), so it is strict and
// bounded: every read is checked against the given length (the text need not be NUL-terminated),
// nesting is limited to JSON_MAX_DEPTH, the number of values to JSON_MAX_VALUES, strings must be
// valid UTF-8 and \uXXXX escapes are decoded to UTF-8 (lone surrogates are errors). It rejects
// what RFC 8259 rejects: trailing commas, comments, leading zeros, NaN, single quotes, raw control
// characters in strings, anything after the value but whitespace. Duplicate object keys are kept
// (json_get returns the first); callers that care check for them.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define JSON_MAX_DEPTH 64
#define JSON_MAX_VALUES 4000000   // bounds memory on hostile input (~56 bytes per value)

typedef enum { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } JsonType;

typedef struct Json {
    JsonType type;
    int is_int;          // JSON_NUMBER written without fraction or exponent and within int64
    int64_t i;           // its exact value when is_int (a double loses integers above 2^53)
    double num;          // JSON_NUMBER value; JSON_BOOL 1 or 0
    char *str;           // JSON_STRING: decoded UTF-8, NUL-terminated; may hold NULs (\u0000), see len
    size_t len;          // JSON_STRING: bytes in str; JSON_ARRAY / JSON_OBJECT: number of items
    struct Json *items;  // JSON_ARRAY / JSON_OBJECT: the values, in document order
    struct Json *keys;   // JSON_OBJECT: the member names (JSON_STRING), parallel to items
} Json;

// Parses text[0..n). Returns 0, or -1 with err = "JSON error at byte B: what" and *out empty.
int json_parse(Json *out, const char *text, size_t n, char *err, size_t errcap);
void json_free(Json *j);
// The value of member `key` of an object (first match), or NULL (also when j is not an object).
const Json *json_get(const Json *j, const char *key);

// Writing. json_escape writes s escaped for use inside a JSON string literal, WITHOUT the
// surrounding quotes: `"` and `\` are backslashed, control characters become \n, \t, ... or
// \u00XX; other bytes (UTF-8) pass through unchanged.
void json_escape(FILE *f, const char *s);

// A growable NUL-terminated string buffer. Zero-initialise; the caller frees b.s.
typedef struct JsonBuf { char *s; size_t len, cap; } JsonBuf;
void jbuf_put(JsonBuf *b, const char *s, size_t n);
void jbuf_printf(JsonBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void json_escape_buf(JsonBuf *b, const char *s);   // as json_escape, appended to b
