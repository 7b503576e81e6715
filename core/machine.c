// machine.c: host, CPU model, BLAS core and code version (git describe, baked in at build time).
#include "machine.h"
#include "ops.h"
#include <omp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifndef HLAB_VERSION
#define HLAB_VERSION "unknown"
#endif

void machine_info(MachineInfo *mi) {
    memset(mi, 0, sizeof *mi);
    if (gethostname(mi->host, sizeof mi->host - 1) != 0) strcpy(mi->host, "unknown");
    strcpy(mi->cpu, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "model name", 10)) {
                char *p = strchr(line, ':');
                if (p) {
                    p++; while (*p == ' ') p++;
                    p[strcspn(p, "\n")] = 0;
                    snprintf(mi->cpu, sizeof mi->cpu, "%s", p);
                }
                break;
            }
        fclose(f);
    }
    const char *core = blas_core_name();
    snprintf(mi->blas_core, sizeof mi->blas_core, "%s", core ? core : "unknown");
    snprintf(mi->code_version, sizeof mi->code_version, "%s", HLAB_VERSION);
    mi->cores = omp_get_num_procs();
    mi->threads = ops_threads();
}
