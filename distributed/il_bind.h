/* distributed/il_bind.h: CPUs for each rank's threads. Ranks on one node that
 * share an affinity mask (mpirun --bind-to none, or several ranks per socket)
 * split it in node-rank order; a rank bound to its own CPUs (--map-by
 * slot:PE=T) uses them. Either way no two threads of the node share a CPU, or
 * the run is refused with the mpirun options that fix it. */
#ifndef IL_BIND_H
#define IL_BIND_H

#include <stddef.h>

#include "il_dist.h"

#define IL_BIND_MAX 256

/* For threads T >= 2: cpus[0..T) for this rank, and a line for the logs ("cpus 2,3 of 0-3").
 * T == 1: *bound = 0 and nothing is pinned (mpirun's binding stands). Collective over the node;
 * every rank returns the same verdict (an error names the rank and its mask). */
il_status il_bind_cpus(il_dist *d, int T, int *cpus, int *bound, char *desc, size_t cap);

#endif
