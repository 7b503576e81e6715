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

static int add_table(const KeySpec **tables, int n, const KeySpec *t) {
    if (!t) return n;
    for (int j = 0; j < n; j++) if (tables[j] == t) return n;
    tables[n] = t;
    return n + 1;
}

const KeySpec *const *all_key_tables(void) {
    static const KeySpec *tables[64];
    static int n = 0;
    if (n) return tables;
    tables[n++] = core_keys;
    // several entries may share one table (M for Mamba versions 1 and 2, the six MAD tasks)
    for (int i = 0; block_registry[i]; i++) n = add_table(tables, n, block_registry[i]->keys);
    for (int i = 0; task_registry[i]; i++) n = add_table(tables, n, task_registry[i]->keys);
    tables[n] = NULL;
    return tables;
}
