/* distributed/il_gpu.h: ranks and GPUs, and the gradient allreduce of a device space.
 *   - il_gpu_pick: each rank's GPU from its node-local rank (il_dist's MPI_COMM_TYPE_SHARED
 *     split), or from --gpu-map; indices are among the GPUs CUDA_VISIBLE_DEVICES leaves
 *     visible (the CUDA runtime numbers only those).
 *   - il_gradcomm: one allreduce (SUM) of a buffer in a backend's space. A host-accessible
 *     space is reduced in place by MPI; any other is staged through host memory (pinned when
 *     the backend is cuda) around MPI_Allreduce, or reduced by NCCL on the backend's stream
 *     when NCCL can be loaded (dlopen, so no build or run needs it) and every rank of a node
 *     has a GPU of its own (one NCCL communicator cannot hold two ranks on one GPU). Every
 *     rank takes the same path; the unique id travels by MPI_Bcast.
 * Library code: errors are statuses. Depends on core and MPI only. */
#ifndef IL_GPU_H
#define IL_GPU_H

#include <stddef.h>

#include "il_backend.h"
#include "il_dist.h"

/* GPU of node-local rank `node_rank` among `ngpus` visible: map[node_rank] when map
 * ("0,1,0,1": one entry per node-local rank, ',' or ':' between) is given, else
 * node_rank mod ngpus. An entry out of range, a map shorter than node_size, or ngpus < 1 is
 * an IL_ERR_ARG naming it. */
il_status il_gpu_pick(int node_rank, int node_size, int ngpus, const char *map, int *gpu);

typedef enum il_gradcomm_path {
  IL_GRADCOMM_MPI = 0,    /* host-accessible space: MPI_Allreduce in place */
  IL_GRADCOMM_STAGED = 1, /* download, MPI_Allreduce on host memory, upload */
  IL_GRADCOMM_NCCL = 2,   /* ncclAllReduce on the device buffer */
} il_gradcomm_path;

typedef struct il_gradcomm {
  il_dist *d;
  const il_backend *be;
  il_gradcomm_path path;
  int pinned;           /* the staging buffer is page-locked (cudaMallocHost) */
  float *stage;         /* (count) host staging buffer */
  size_t count;
  void *nccl_comm, *stream;
  int nccl_version;     /* e.g. 22807; 0 when NCCL is not loaded */
  char why[160];        /* why this path (e.g. "2 ranks share GPU 0 on host x: staged") */
} il_gradcomm;

/* Set up the allreduce of `count` floats in be's space. want: "auto" (NCCL where it can
 * be used, else staged), "nccl" (an error where it cannot) or "mpi" (never NCCL).
 * gpu: this rank's GPU (for the sharing check; -1 when not a GPU). Collective. */
il_status il_gradcomm_init(il_gradcomm *g, il_dist *d, const il_backend *be, size_t count, const char *want, int gpu);
/* In-place SUM over ranks of buf (count floats in be's space). Collective. */
il_status il_gradcomm_allreduce(il_gradcomm *g, float *buf);
void il_gradcomm_free(il_gradcomm *g);
const char *il_gradcomm_path_name(const il_gradcomm *g); /* "mpi", "mpi-staged-pinned", "mpi-staged", "nccl" */

/* 1 when libnccl can be loaded here; *version its ncclGetVersion (0 otherwise). */
int il_nccl_available(int *version);

#endif
