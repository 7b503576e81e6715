// sweep.h: `hlab sweep`, training every run of an experiment the store does not have (sweep.c).
#pragma once

typedef struct {
    const char *exp;         // the experiment file
    const char *db;          // run store (NULL: the base config's store.db)
    int jobs;                // worker processes (1: train in this process)
    int shard_i, shard_n;    // this sweep takes the runs with plan index % shard_n == shard_i
    int dry_run;             // print the plan and stop
    int worker;              // > 0: a worker started by --jobs (no plan, no summary)
    int quiet;
    int emit_slurm;          // print a Slurm job-array script instead of running
    int slurm_shards;        // its number of array tasks (0: one per run)
} SweepOptions;

// Returns an exit status: 0 when every run of the shard is done (or diverged), 1 when some
// failed or are still running elsewhere, 2 for a bad experiment file, 4 when interrupted.
int sweep_main(const SweepOptions *o);
