// dist.h: data-parallel training over MPI (`make MPI=1`, then `mpirun -np K ./hlab train ...`).
//
// Each of K ranks holds the whole model and optimizer; rank r trains on rows [lo, hi) of every
// global batch (dist_rows). Backward scales the cross-entropy gradient by the global batch's label
// count (Model.loss_denom), so the sum of the ranks' gradients is the gradient a single process
// computes on the whole batch; GradSync sums them with MPI_Iallreduce while backward still runs,
// bucket by bucket as tensors' gradients become final (Model.grad_ready). Every rank then takes the
// same AdamW step. Only rank 0 writes the run store and checkpoints.
//
// Built without MPI (the default), or run without a launcher, this is one process of rank 0:
// every function below is then a cheap no-op, so the training loop has one code path.
#pragma once
#include "model.h"
#include <stddef.h>
#include <stdint.h>

// Starts MPI when the process was launched by mpirun/srun (their environment variables say so) and
// hlab was built with MPI. Refuses (exit 2) to run K > 1 copies of an hlab built without MPI: each
// would train and record the whole run on its own.
void dist_init(int *argc, char ***argv);
// Ends MPI. status: the command's exit status; a rank that ends before the training loop started
// tells the others here (see dist_start), so no rank waits for it forever.
void dist_finalize(int status);
int dist_rank(void);
int dist_size(void);
int dist_built_with_mpi(void);
const char *dist_library(void);   // "Open MPI v4.1.4, ..." or "none"

// Rows [*lo, *hi) of a global batch of B sequences that this rank trains on (near-equal parts).
void dist_rows(int B, int *lo, int *hi);
// The worst (largest) status of all ranks, once, right before training starts: a rank that failed
// to set up (a bad --init file, rank 0's store) stops every rank with its status. Ranks that left
// train early call it from dist_finalize instead.
int dist_start(int status);
// Sums n doubles across ranks in place (blocking).
void dist_sum(double *x, int n);
// The smallest v of all ranks.
int dist_min(int v);
// Rank 0's bytes on every rank.
void dist_bcast(void *buf, size_t bytes);
// 1 when x[0..n) is bitwise the same on every rank (compared through a 64-bit hash).
int dist_identical(const real *x, size_t n);

// Sums every rank's gradient into m->grads, overlapped with backward: gradsync_attach hooks it
// into the model, backward hands over each bucket of bucket_reals reals as it becomes final,
// gradsync_wait finishes. bucket_reals = 0: one blocking MPI_Allreduce after backward.
typedef struct GradSync GradSync;
GradSync *gradsync_attach(Model *m, size_t bucket_reals);
void gradsync_wait(GradSync *g);
// Seconds spent waiting in gradsync_wait (the communication backward did not hide), and the
// number of buckets, since attach.
double gradsync_wait_seconds(const GradSync *g);
// The bucket size when --bucket-mb is not given: 0 (no overlap) when every rank is on one node,
// where overlapping measured slower; 4 MB across nodes. Collective: every rank calls it.
double dist_default_bucket_mb(void);
long gradsync_buckets(const GradSync *g);
void gradsync_free(GradSync *g);

// `hlab bench allreduce`: blocking and non-blocking all-reduce time and bandwidth from 16 KB to
// 64 MB (rank 0 prints), to choose --bucket-mb for an interconnect. Returns an exit status.
int dist_bench_allreduce(void);
