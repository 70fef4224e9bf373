/* distributed/il_dist.h: data parallelism over MPI ranks (libildist).
 * Each rank runs the core on a contiguous shard of the global batch; the
 * ranks agree on every decision that the single-process run makes:
 *   - the same seeded shuffle and the same initial parameters (broadcast);
 *   - the stopping test on the whole batch's residual (an il_reducer that
 *     allreduces the squared norm once per solver iteration);
 *   - one allreduce of the contiguous gradient buffer per step, scaled so the
 *     sum equals the single-process gradient; NaN/Inf anywhere propagates
 *     through the sum, so every rank sees it and skips the same step;
 *   - statistics summed exactly over the global batch, phase times reduced
 *     to min/mean/max over ranks;
 *   - a checksum of the parameters to prove they stay bitwise identical.
 * Depends on core (libilcore) and MPI; never on HDF5 or the CLI. */
#ifndef IL_DIST_H
#define IL_DIST_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "il_solver.h"
#include "il_status.h"

typedef struct il_dist {
  MPI_Comm comm;
  int rank, size;
  MPI_Comm node_comm; /* ranks sharing this node (MPI_COMM_TYPE_SHARED) */
  int node_rank, node_size;
  char host[256];
} il_dist;

/* Wraps comm (usually MPI_COMM_WORLD; MPI must be initialised). */
il_status il_dist_init(il_dist *d, MPI_Comm comm);
void il_dist_free(il_dist *d);

/* Contiguous shard of `global` rows for `rank` of `size`: the first
 * global % size ranks get one extra row (100 over 3 ranks: 34, 33, 33). */
void il_dist_shard(long global, int rank, int size, long *offset, long *count);

/* Reducer for the solvers' stopping tests over all ranks of d: sum, NaN-preserving max, and
 * in-place buffer reductions. */
il_reducer il_dist_reducer(il_dist *d);
/* A two-level reducer: inside `inner` (a model-parallel process grid), then across `outer`
 * (the data-parallel groups: the ranks at the same position of every grid). The result equals
 * the reduction over all ranks of both. ctx and both communicators must outlive the reducer. */
typedef struct il_reducer2 {
  il_dist *inner, *outer;
} il_reducer2;
il_reducer il_dist_reducer2(il_reducer2 *ctx);

/* Collectives on the gradient and parameter buffers (float32 or float64 by elem). */
il_status il_dist_bcast(il_dist *d, void *buf, size_t count, MPI_Datatype type, int root);
/* In-place SUM over ranks of `count` elements. */
il_status il_dist_allreduce_sum(il_dist *d, void *buf, size_t count, MPI_Datatype type);

/* The standard 64-bit FNV-1a hash of a byte buffer; il_dist_in_sync compares it across ranks,
 * run attributes record input files by it. */
uint64_t il_hash_bytes(const void *p, size_t n);
/* *same = 1 when every rank passed the same hash. Collective. */
il_status il_dist_in_sync(il_dist *d, uint64_t hash, int *same);

/* min/mean/max over ranks of each of n local values (results valid on every rank). */
typedef struct il_minmeanmax { double min, mean, max; } il_minmeanmax;
il_status il_dist_minmeanmax(il_dist *d, const double *local, int n, il_minmeanmax *out);

#endif
