// keys.h: the core's own config keys and the list of every key table (core, blocks, tasks).
#pragma once
#include "config.h"
extern const KeySpec core_keys[];
// NULL-terminated: core_keys, then every registered block's and task's table.
const KeySpec *const *all_key_tables(void);
