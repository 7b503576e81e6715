// registry.c: lookups over the block and task registries (the lists themselves live in
// blocks/registry.c and core/tasks.c), and the union of every key table.
#include "keys.h"
#include "block.h"
#include "task.h"
#include <string.h>

const BlockType *block_for_symbol(char symbol, const Config *c) {
    for (int i = 0; block_registry[i]; i++) {
        const BlockType *t = block_registry[i];
        if (t->symbol != symbol) continue;
        if (t->select_key && cfg_int(c, t->select_key) != t->select_value) continue;
        return t;
    }
    return NULL;
}

const KeySpec *const *all_key_tables(void) {
    static const KeySpec *tables[64];
    static int n = 0;
    if (n) return tables;
    tables[n++] = core_keys;
    for (int i = 0; block_registry[i]; i++)
        if (block_registry[i]->keys) {
            int dup = 0;   // several registry entries may share one table (M for version 1 and 2)
            for (int j = 0; j < n; j++) if (tables[j] == block_registry[i]->keys) dup = 1;
            if (!dup) tables[n++] = block_registry[i]->keys;
        }
    for (int i = 0; task_registry[i]; i++)
        if (task_registry[i]->keys) tables[n++] = task_registry[i]->keys;
    tables[n] = NULL;
    return tables;
}
