// safetensors.h: the checkpoint format (https://huggingface.co/docs/safetensors).
//
// Layout: 8-byte little-endian header length N, N bytes of JSON header, then the data buffer.
//   {"__metadata__": {"key": "value", ...},
//    "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
// Offsets are relative to the start of the data buffer. We pad the header with spaces to a
// multiple of 8 so the data buffer is 8-aligned in the file, and write tensors back to back in
// the order given, so files we write are also valid for the Hugging Face library.
#pragma once
#include <stddef.h>

#define ST_MAX_NAME 159          // bytes of a tensor name (UTF-8), excluding the NUL
#define ST_MAX_DIMS 8
#define ST_MAX_HEADER 100000000  // larger header lengths are refused as absurd (as the HF library)

typedef struct StTensor {
    char name[ST_MAX_NAME + 1];
    char dtype[8];               // F32 F64 F16 BF16 I32 I64 U8
    int ndim;                    // 0 is a scalar (one element)
    long shape[ST_MAX_DIMS];
    const void *data;            // nbytes bytes (may be NULL when nbytes is 0)
    size_t nbytes;
} StTensor;

// Bytes per element of a dtype name, 0 if unknown.
size_t st_dtype_size(const char *dtype);

// Writes the tensors (in the order given) and the metadata string pairs to `path` atomically:
// PATH.tmp.<pid>, fwrite, fflush, fsync, rename over PATH, fsync the directory. On any failure
// the temporary is removed and an existing PATH is left untouched (except when only the final
// directory fsync fails: PATH is then already replaced, but the error is still reported).
// A FIFO or device at PATH is written directly, a directory refused (common.h, OutFile).
// The tensors are checked first (known dtype, nbytes = numel * element size, unique names of
// 1..159 bytes, not "__metadata__"). Returns 0, or -1 with a message in err.
int st_write(const char *path, const StTensor *t, int n, const char *const *meta_keys,
             const char *const *meta_vals, int nmeta, char *err, size_t errcap);

// A file read into memory. Tensor data points into `bytes` and is NOT necessarily aligned for
// its dtype (other writers may place tensors at any offset): copy it out with memcpy.
typedef struct StFile {
    int n;                       // tensors, in header order
    StTensor *t;
    int nmeta;                   // __metadata__ pairs, in header order
    char **meta_keys, **meta_vals;
    const unsigned char *bytes;  // the whole file
    size_t size;
    const StTensor **by_name;    // the tensors sorted by name, for st_find
    void *alloc_;                // the allocation behind bytes
} StFile;

// Reads and validates `path`. Hostile input gives an error, never a crash: bad or absurd header
// length, truncation, JSON errors, unknown dtypes, bad shapes (overflow-checked), out-of-bounds,
// mis-sized or overlapping data_offsets, duplicate, empty or over-long names. Returns 0, or -1 with
// "PATH: what is wrong" in err (and *f empty, safe to st_free).
int st_read(StFile *f, const char *path, char *err, size_t errcap);
// The same from n bytes in memory (copied, so the caller may free them); `name` stands for the
// path in messages. For fuzzing, and for files that arrive other than from disk.
int st_read_mem(StFile *f, const void *bytes, size_t n, const char *name, char *err, size_t errcap);
const StTensor *st_find(const StFile *f, const char *name);   // NULL if absent
const char *st_meta(const StFile *f, const char *key);        // NULL if absent
void st_free(StFile *f);
