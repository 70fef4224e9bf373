/* distributed/il_gpu.c: see il_gpu.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* dlopen flags */
#endif
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "il_gpu.h"
#ifdef ILBENCH_HAVE_CUDA
#include "il_cuda.h"
#endif

il_status il_gpu_pick(int node_rank, int node_size, int ngpus, const char *map, int *gpu) {
  *gpu = -1;
  if (ngpus < 1) return IL_ERR(IL_ERR_ARG, "no GPU is visible to pick from (CUDA_VISIBLE_DEVICES may hide them)");
  if (!map || !*map) {
    *gpu = node_rank % ngpus;
    return IL_OK;
  }
  int n = 0, mine = -1;
  for (const char *p = map; *p;) {
    char *end;
    errno = 0;
    const long v = strtol(p, &end, 10);
    if (end == p || errno || v < 0 || v >= ngpus || (*end && *end != ',' && *end != ':'))
      return IL_ERR(IL_ERR_ARG, "--gpu-map '%s': entry %d is not a GPU index in [0, %d) (the %d visible GPU%s)", map, n,
                    ngpus, ngpus, ngpus == 1 ? "" : "s");
    if (n == node_rank) mine = (int)v;
    n++;
    p = *end ? end + 1 : end;
    if (*end && !*p) return IL_ERR(IL_ERR_ARG, "--gpu-map '%s': ends with a separator", map);
  }
  if (n < node_size)
    return IL_ERR(IL_ERR_ARG, "--gpu-map '%s' has %d entr%s, but this node runs %d ranks (one entry per node-local rank)",
                  map, n, n == 1 ? "y" : "ies", node_size);
  *gpu = mine;
  return IL_OK;
}

/* ---- NCCL, loaded at run time: the few calls we need, with its ABI's types ---- */
typedef struct { char internal[128]; } nccl_id; /* ncclUniqueId (NCCL_UNIQUE_ID_BYTES) */
enum { NCCL_SUCCESS = 0, NCCL_FLOAT32 = 7, NCCL_SUM = 0 };
typedef struct nccl_api {
  void *lib;
  int (*get_version)(int *);
  int (*get_unique_id)(nccl_id *);
  int (*comm_init_rank)(void **, int, nccl_id, int);
  int (*all_reduce)(const void *, void *, size_t, int, int, void *, void *);
  int (*comm_destroy)(void *);
  const char *(*error_string)(int);
} nccl_api;
static nccl_api nccl;

/* ILBENCH_NCCL_LIB, then the loader's path, then the CUDA toolkit's lib folders */
static int nccl_load(void) {
  if (nccl.lib) return 1;
  const char *env = getenv("ILBENCH_NCCL_LIB");
  const char *names[] = {env && *env ? env : NULL, "libnccl.so.2", "/usr/local/cuda/lib/libnccl.so.2",
                         "/usr/local/cuda/lib64/libnccl.so.2", "libnccl.so"};
  for (size_t i = 0; i < sizeof names / sizeof *names && !nccl.lib; i++)
    if (names[i]) nccl.lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
  if (!nccl.lib) return 0;
#define SYM(field, name) *(void **)(&nccl.field) = dlsym(nccl.lib, name)
  SYM(get_version, "ncclGetVersion");
  SYM(get_unique_id, "ncclGetUniqueId");
  SYM(comm_init_rank, "ncclCommInitRank");
  SYM(all_reduce, "ncclAllReduce");
  SYM(comm_destroy, "ncclCommDestroy");
  SYM(error_string, "ncclGetErrorString");
#undef SYM
  if (!nccl.get_version || !nccl.get_unique_id || !nccl.comm_init_rank || !nccl.all_reduce || !nccl.comm_destroy ||
      !nccl.error_string) {
    dlclose(nccl.lib);
    memset(&nccl, 0, sizeof nccl);
    return 0;
  }
  return 1;
}

int il_nccl_available(int *version) {
  *version = 0;
  if (!nccl_load()) return 0;
  return nccl.get_version(version) == NCCL_SUCCESS;
}

#define NCCL_TRY(call, what)                                                                  \
  do {                                                                                        \
    const int nrc_ = (call);                                                                  \
    if (nrc_ != NCCL_SUCCESS) return IL_ERR(IL_ERR_INTERNAL, "%s failed: %s", (what), nccl.error_string(nrc_)); \
  } while (0)

/* 1 when two ranks of this node use the same GPU (the node's GPUs gathered over node_comm) */
static il_status gpu_shared(il_dist *d, int gpu, int *shared) {
  *shared = 0;
  int *all = malloc((size_t)d->node_size * sizeof *all);
  if (!all) return IL_ERR(IL_ERR_NOMEM, "cannot allocate %d GPU indices", d->node_size);
  if (MPI_Allgather(&gpu, 1, MPI_INT, all, 1, MPI_INT, d->node_comm) != MPI_SUCCESS) {
    free(all);
    return IL_ERR(IL_ERR_INTERNAL, "MPI_Allgather of the node's GPUs failed");
  }
  for (int i = 0; i < d->node_size; i++)
    if (i != d->node_rank && all[i] == gpu) *shared = 1;
  free(all);
  return IL_OK;
}

static il_status nccl_setup(il_gradcomm *g) {
  nccl_id id;
  memset(&id, 0, sizeof id);
  if (g->d->rank == 0) NCCL_TRY(nccl.get_unique_id(&id), "ncclGetUniqueId");
  IL_CHECK(il_dist_bcast(g->d, &id, sizeof id, MPI_BYTE, 0));
  NCCL_TRY(nccl.comm_init_rank(&g->nccl_comm, g->d->size, id, g->d->rank), "ncclCommInitRank");
  return IL_OK;
}

il_status il_gradcomm_init(il_gradcomm *g, il_dist *d, const il_backend *be, size_t count, const char *want, int gpu) {
  memset(g, 0, sizeof *g);
  g->d = d, g->be = be, g->count = count;
  if (strcmp(want, "auto") != 0 && strcmp(want, "nccl") != 0 && strcmp(want, "mpi") != 0)
    return IL_ERR(IL_ERR_ARG, "allreduce path '%s' is not one of auto, nccl, mpi", want);
  if (be->ops->host_accessible) {
    if (strcmp(want, "nccl") == 0) return IL_ERR(IL_ERR_ARG, "NCCL needs a GPU space; %s is host memory", be->ops->name);
    g->path = IL_GRADCOMM_MPI;
    snprintf(g->why, sizeof g->why, "host memory: MPI in place");
    return IL_OK;
  }
  /* NCCL: loadable, a cuda stream, no GPU shared on any node; every rank must agree */
  int ok = 0, shared = 0;
  const char *reason = "NCCL not wanted (--allreduce mpi)";
#ifdef ILBENCH_HAVE_CUDA
  g->stream = il_cuda_stream(be);
#endif
  if (strcmp(want, "mpi") != 0) {
    IL_CHECK(gpu_shared(d, gpu, &shared));
    if (!g->stream) reason = "the space is not a cuda stream's";
    else if (!il_nccl_available(&g->nccl_version)) reason = "libnccl cannot be loaded";
    else if (shared) reason = "ranks share a GPU (one NCCL communicator cannot hold two ranks on one GPU)";
    else ok = 1;
  }
  int all = ok;
  if (d->size > 1 && MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_LAND, d->comm) != MPI_SUCCESS)
    return IL_ERR(IL_ERR_INTERNAL, "MPI_Allreduce of the NCCL verdict failed");
  if (all) {
    IL_CHECK(nccl_setup(g));
    g->path = IL_GRADCOMM_NCCL;
    snprintf(g->why, sizeof g->why, "NCCL %d.%d.%d on the backend's stream", g->nccl_version / 10000,
             g->nccl_version / 100 % 100, g->nccl_version % 100);
    return IL_OK;
  }
  if (strcmp(want, "nccl") == 0)
    return IL_ERR(IL_ERR_ARG, "--allreduce nccl: rank %d: %s", d->rank, ok ? "another rank cannot use NCCL" : reason);
  g->path = IL_GRADCOMM_STAGED;
#ifdef ILBENCH_HAVE_CUDA
  if (g->stream && il_cuda_host_alloc(count * sizeof *g->stage, (void **)&g->stage) == IL_OK) g->pinned = 1;
  il_error_clear(); /* unpinned memory works too, only slower */
#endif
  if (!g->stage && !(g->stage = malloc((count ? count : 1) * sizeof *g->stage)))
    return IL_ERR(IL_ERR_NOMEM, "cannot allocate the %zu-float staging buffer", count);
  snprintf(g->why, sizeof g->why, "staged through %s host memory: %s", g->pinned ? "pinned" : "pageable",
           ok ? "another rank cannot use NCCL" : reason);
  return IL_OK;
}

il_status il_gradcomm_allreduce(il_gradcomm *g, float *buf) {
  if (g->path == IL_GRADCOMM_MPI) return il_dist_allreduce_sum(g->d, buf, g->count, MPI_FLOAT);
  if (g->path == IL_GRADCOMM_NCCL) {
    /* ordered after the gradient's kernels and before the next op by the stream itself */
    NCCL_TRY(nccl.all_reduce(buf, buf, g->count, NCCL_FLOAT32, NCCL_SUM, g->nccl_comm, g->stream), "ncclAllReduce");
    return IL_OK;
  }
  IL_CHECK(il_download(g->be, g->stage, buf, g->count));
  IL_CHECK(il_dist_allreduce_sum(g->d, g->stage, g->count, MPI_FLOAT));
  return il_upload(g->be, buf, g->stage, g->count);
}

void il_gradcomm_free(il_gradcomm *g) {
  if (g->nccl_comm) nccl.comm_destroy(g->nccl_comm);
#ifdef ILBENCH_HAVE_CUDA
  if (g->pinned) il_cuda_host_free(g->stage);
  else
#endif
    free(g->stage);
  memset(g, 0, sizeof *g);
}

const char *il_gradcomm_path_name(const il_gradcomm *g) {
  switch (g->path) {
  case IL_GRADCOMM_MPI: return "mpi";
  case IL_GRADCOMM_NCCL: return "nccl";
  default: return g->pinned ? "mpi-staged-pinned" : "mpi-staged";
  }
}
