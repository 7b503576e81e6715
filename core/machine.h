// machine.h: what every run and benchmark records about where it ran.
#pragma once
typedef struct {
    char host[128], cpu[160], blas_core[64], code_version[64];
    int cores, threads;
} MachineInfo;
void machine_info(MachineInfo *mi);
// A warning when OpenBLAS picked generic kernels on a CPU with AVX2/AVX-512 (an unknown model) and
// OPENBLAS_CORETYPE is unset; NULL when all is well.
const char *machine_blas_warning(void);
// Resident memory of this process in MB (/proc/self/status): now (VmRSS), or with peak = 1 the
// most it ever had (VmHWM). 0 where unavailable.
double machine_rss_mb(int peak);
