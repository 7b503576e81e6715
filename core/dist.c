// dist.c: data-parallel training over MPI (see dist.h). Compiled twice: plain (one process, no MPI
// symbols: the default build) and with -DHLAB_MPI through mpicc (`make MPI=1`, build/hlab-mpi).
#include "dist.h"
#include "common.h"
#include <limits.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#ifdef HLAB_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_size = 1;
static int g_active = 0;      // MPI_Init ran
static int g_started = 0;     // dist_start ran (the training loop began, or was refused)
static int g_finalized = 0;

static long env_long(const char *name) {
    const char *s = getenv(name);
    return s && *s ? strtol(s, NULL, 10) : -1;
}

// How many processes the launcher started, as its environment says: Open MPI's mpirun, a PMI or
// PMIx launcher (srun --mpi=pmi2|pmix, MPICH's hydra). -1: not launched as a parallel job.
static long launched_size(void) {
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_STEP_NUM_TASKS"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        // SLURM_STEP_NUM_TASKS alone is not a launch: sbatch sets it for the batch script as well
        if (i == 3 && env_long("SLURM_PROCID") < 0) continue;
        long n = env_long(vars[i]);
        if (n > 0) return n;
    }
    return getenv("PMIX_RANK") || getenv("PMI_RANK") ? 0 : -1;   // a launcher that did not say how many
}

int dist_built_with_mpi(void) {
#ifdef HLAB_MPI
    return 1;
#else
    return 0;
#endif
}

#ifdef HLAB_MPI
#ifdef HLAB_DOUBLE
#define MPI_REAL_T MPI_DOUBLE
#else
#define MPI_REAL_T MPI_FLOAT
#endif

// exit() from anywhere (die, a usage error): a rank that never reached the training loop still
// takes part in dist_start, so the others learn it failed; once training runs, the others wait
// in a collective for this rank and only an abort ends them.
static void dist_at_exit(void) {
    if (!g_active || g_finalized) return;
    if (g_started) MPI_Abort(MPI_COMM_WORLD, EXIT_FAIL);
    dist_finalize(EXIT_FAIL);
}
#endif

void dist_init(int *argc, char ***argv) {
    long n = launched_size();
#ifdef HLAB_MPI
    if (n < 0) return;   // a plain process: no MPI at all (commands other than train, tests, sweeps)
    int provided;
    // FUNNELED: only the main thread calls MPI; OpenMP threads only compute
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) die("MPI_Init_thread failed");
    g_active = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    atexit(dist_at_exit);
#else
    (void)argc; (void)argv;
    if (n > 1) {
        fprintf(stderr, "hlab: launched as one of %ld processes, but this hlab was built without MPI: each process would train and "
                "record the whole run on its own. Build with `make MPI=1` (Open MPI) for data-parallel training\n", n);
        exit(EXIT_BADINPUT);
    }
#endif
}

void dist_finalize(int status) {
    if (!g_active || g_finalized) return;
#ifdef HLAB_MPI
    if (!g_started) dist_start(status);
    g_finalized = 1;
    MPI_Finalize();
#else
    (void)status;
#endif
}

int dist_rank(void) { return g_rank; }
int dist_size(void) { return g_size; }

const char *dist_library(void) {
#ifdef HLAB_MPI
    static char v[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(v, &len);
    v[strcspn(v, ",\n")] = 0;   // "Open MPI v4.1.4, package: ..." -> "Open MPI v4.1.4"
    return v;
#else
    return "none";
#endif
}

void dist_rows(int B, int *lo, int *hi) {
    *lo = (int)((long)B * g_rank / g_size);
    *hi = (int)((long)B * (g_rank + 1) / g_size);
}

int dist_start(int status) {
    int worst = status;
#ifdef HLAB_MPI
    if (g_active && !g_started) MPI_Allreduce(&status, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
#endif
    g_started = 1;
    return worst;
}

void dist_sum(double *x, int n) {
#ifdef HLAB_MPI
    if (g_size > 1) MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
#else
    (void)x; (void)n;
#endif
}

int dist_min(int v) {
#ifdef HLAB_MPI
    int r = v;
    if (g_size > 1) MPI_Allreduce(&v, &r, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    return r;
#else
    return v;
#endif
}

void dist_bcast(void *buf, size_t bytes) {
#ifdef HLAB_MPI
    for (size_t off = 0; g_size > 1 && off < bytes; off += INT_MAX / 2) {
        size_t n = bytes - off < INT_MAX / 2 ? bytes - off : INT_MAX / 2;
        MPI_Bcast((char *)buf + off, (int)n, MPI_BYTE, 0, MPI_COMM_WORLD);
    }
#else
    (void)buf; (void)bytes;
#endif
}

int dist_identical(const real *x, size_t n) {
    if (g_size == 1) return 1;
    // a 64-bit multiply-xorshift hash of the bit patterns: any differing bit changes it
    const unsigned char *p = (const unsigned char *)x;
    size_t bytes = n * sizeof(real), i = 0;
    uint64_t h = 0x9E3779B97F4A7C15ull;
    for (; i + 8 <= bytes; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
    }
    for (; i < bytes; i++) h = (h ^ p[i]) * 0x100000001B3ull;
#ifdef HLAB_MPI
    // identical everywhere iff max(h) == min(h), and min(h) = ~max(~h)
    uint64_t v[2] = {h, ~h}, r[2];
    MPI_Allreduce(v, r, 2, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
    return r[0] == ~r[1];
#else
    return 1;
#endif
}

// ----------------------------------------------------------------------------
// gradient all-reduce, bucket by bucket while backward runs

struct GradSync {
    Model *m;
    size_t bucket;            // reals per bucket (0: one blocking all-reduce after backward)
    size_t sent_from;         // grads[sent_from, nparams) are handed to MPI in this step
    int nreq, capreq;
#ifdef HLAB_MPI
    MPI_Request *req;
#endif
    double wait_s;
    long buckets;
};

#ifdef HLAB_MPI
static void start_bucket(GradSync *g, size_t from) {
    real *grads = g->m->grads;
    // one request per piece of at most INT_MAX/2 reals (MPI counts are int)
    for (size_t hi = g->sent_from; hi > from;) {
        size_t lo = hi - from > INT_MAX / 2 ? hi - INT_MAX / 2 : from;
        if (g->nreq == g->capreq) {
            g->capreq = 2 * g->capreq + 8;
            g->req = xrealloc(g->req, g->capreq * sizeof(MPI_Request));
        }
        MPI_Iallreduce(MPI_IN_PLACE, grads + lo, (int)(hi - lo), MPI_REAL_T, MPI_SUM, MPI_COMM_WORLD, &g->req[g->nreq++]);
        hi = lo;
    }
    g->sent_from = from;
    g->buckets++;
}

// Model.grad_ready: grads[from, nparams) are final. A full bucket goes out; every call also lets
// MPI progress the buckets in flight (Open MPI moves non-blocking collectives only inside calls).
static void on_grad_ready(void *ctx, size_t from) {
    GradSync *g = ctx;
    if (from < g->sent_from && (g->sent_from - from >= g->bucket || from == 0)) start_bucket(g, from);
    if (g->nreq) {
        int done;
        MPI_Testall(g->nreq, g->req, &done, MPI_STATUSES_IGNORE);
    }
}
#endif

GradSync *gradsync_attach(Model *m, size_t bucket_reals) {
    if (g_size == 1) return NULL;
    GradSync *g = xcalloc(1, sizeof *g);
    g->m = m;
    g->bucket = bucket_reals;
    g->sent_from = m->nparams;
#ifdef HLAB_MPI
    g->capreq = m->nsub + 8;   // at most one bucket per sublayer: allocated once, here
    g->req = xmalloc(g->capreq * sizeof(MPI_Request));
    if (bucket_reals > 0) {
        m->grad_ready = on_grad_ready;
        m->grad_ready_ctx = g;
    }
#endif
    return g;
}

void gradsync_wait(GradSync *g) {
    if (!g) return;
#ifdef HLAB_MPI
    double t0 = omp_get_wtime();
    if (g->bucket == 0) {
        real *grads = g->m->grads;
        for (size_t lo = 0; lo < g->m->nparams; lo += INT_MAX / 2) {
            size_t n = g->m->nparams - lo < INT_MAX / 2 ? g->m->nparams - lo : INT_MAX / 2;
            MPI_Allreduce(MPI_IN_PLACE, grads + lo, (int)n, MPI_REAL_T, MPI_SUM, MPI_COMM_WORLD);
        }
        g->buckets++;
    } else {
        // backward ends with grad_ready(0), which sent the rest: only the waiting is left
        if (g->sent_from > 0) die("gradsync: backward did not hand over every gradient");
        MPI_Waitall(g->nreq, g->req, MPI_STATUSES_IGNORE);
    }
    g->wait_s += omp_get_wtime() - t0;
    g->nreq = 0;
    g->sent_from = g->m->nparams;
#endif
}

double dist_default_bucket_mb(void) {
#ifdef HLAB_MPI
    if (g_size == 1) return 0;
    // ranks on one node: shared-memory all-reduce is fast and no core is idle to move a
    // non-blocking one along (Open MPI's is 1.3-2.4x slower there, bench allreduce): one blocking
    // all-reduce after backward. Across nodes the network's latency is worth hiding.
    MPI_Comm node;
    int node_size = 1;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &node_size);
    MPI_Comm_free(&node);
    int all_local = node_size == g_size, every = 0;
    MPI_Allreduce(&all_local, &every, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    return every ? 0 : 4;
#else
    return 0;
#endif
}

double gradsync_wait_seconds(const GradSync *g) { return g ? g->wait_s : 0; }
long gradsync_buckets(const GradSync *g) { return g ? g->buckets : 0; }

void gradsync_free(GradSync *g) {
    if (!g) return;
    if (g->m->grad_ready_ctx == g) { g->m->grad_ready = NULL; g->m->grad_ready_ctx = NULL; }
#ifdef HLAB_MPI
    free(g->req);
#endif
    free(g);
}

// ----------------------------------------------------------------------------
// `mpirun -np K hlab bench allreduce`: what a gradient all-reduce costs on this interconnect

int dist_bench_allreduce(void) {
#ifdef HLAB_MPI
    if (g_size == 1) {
        fprintf(stderr, "hlab: bench allreduce: one process has nothing to all-reduce: run it under mpirun -np K, K >= 2\n");
        return EXIT_BADINPUT;
    }
    char host[128] = "";
    int len = 0;
    MPI_Get_processor_name(host, &len);
    if (g_rank == 0)
        printf("all-reduce (sum of float32) over %d ranks, %s, rank 0 on %s; algorithm bandwidth = bytes / time\n"
               "%10s %12s %12s %14s %14s\n", g_size, dist_library(), host, "bytes", "blocking ms", "GB/s", "non-blocking ms", "GB/s");
    size_t max_n = (size_t)64 << 20 >> 2;   // 64 MB
    // zeros: summing them K-fold every round can never overflow to inf, and costs what any sum costs
    float *buf = xcalloc(max_n, sizeof(float));
    for (size_t n = (size_t)16 << 10 >> 2; n <= max_n; n *= 4) {
        int reps = (int)(((size_t)512 << 20) / (n * sizeof(float)));
        if (reps < 5) reps = 5;
        if (reps > 200) reps = 200;
        double t[2];
        for (int mode = 0; mode < 2; mode++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            for (int r = 0; r < reps; r++) {
                if (mode == 0) MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
                else {
                    MPI_Request q;
                    MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &q);
                    MPI_Wait(&q, MPI_STATUS_IGNORE);
                }
            }
            double dt = (MPI_Wtime() - t0) / reps, worst;
            MPI_Allreduce(&dt, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);   // the slowest rank decides
            t[mode] = worst;
        }
        double bytes = (double)n * sizeof(float);
        if (g_rank == 0) printf("%10.0f %12.3f %12.2f %14.3f %14.2f\n", bytes, 1e3 * t[0], bytes / t[0] / 1e9, 1e3 * t[1], bytes / t[1] / 1e9);
    }
    free(buf);
    return 0;
#else
    fprintf(stderr, "hlab: bench allreduce: this hlab was built without MPI: build with `make MPI=1` and run it under mpirun -np K\n");
    return EXIT_BADINPUT;
#endif
}
