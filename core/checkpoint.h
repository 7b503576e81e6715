// checkpoint.h: model weights in the safetensors format, PyTorch layout, HF-style tensor names,
// with the resolved config in the header metadata ("hlab.config"), so a checkpoint alone is
// enough to rebuild its model.
#pragma once
#include "model.h"

// Writes every parameter tensor atomically (temporary file, fsync, rename).
int checkpoint_save(const Model *m, const char *path, char *err, size_t errcap);
// The config YAML stored in a checkpoint (caller frees), or NULL with err filled.
char *checkpoint_config(const char *path, char *err, size_t errcap);
// Copies a checkpoint's tensors into an allocated model. Every parameter must be present with
// the same shape; a tensor the model does not have is an error too (a wrong-model checkpoint).
int checkpoint_load(Model *m, const char *path, char *err, size_t errcap);
// Writes the gradients (same names and shapes) so they can be compared with another implementation.
int checkpoint_save_grads(const Model *m, const char *path, char *err, size_t errcap);
