/* core/il_cuda.h: what the cuda backend (core/backends/cuda.cu) tells the rest of the
 * program beyond the ops table: the GPU an instance runs on, the driver and runtime, its
 * stream (for NCCL), and pinned host memory for staged collectives. Declared only in
 * builds with the cuda backend (ILBENCH_HAVE_CUDA). Compiled once per precision. */
#ifndef IL_CUDA_H
#define IL_CUDA_H

#include <stddef.h>

#include "il_prec.h"
#include "il_status.h"

/* precision-neutral: no il_real */
typedef struct il_cuda_info {
  int device, visible;       /* index among the visible GPUs, and how many are visible */
  char visible_env[128];     /* CUDA_VISIBLE_DEVICES as the process saw it ("" when unset) */
  char name[256], pci[32];
  int cc_major, cc_minor, sms;
  size_t mem_bytes;
  int driver, runtime;       /* CUDA versions, 1000 major + 10 minor (cudaDriverGetVersion) */
  int cublas;                /* cublasGetVersion */
} il_cuda_info;

#ifdef ILBENCH_HAVE_CUDA
struct il_backend; /* il_backend.h: il_backend_f32 or _f64 */
#define il_cuda_get_info IL_P(il_cuda_get_info)
#define il_cuda_stream IL_P(il_cuda_stream)
#define il_cuda_host_alloc IL_P(il_cuda_host_alloc)
#define il_cuda_host_free IL_P(il_cuda_host_free)
#define il_cuda_versions IL_P(il_cuda_versions)
#define il_cuda_device_count IL_P(il_cuda_device_count)
#define il_cuda_device_name IL_P(il_cuda_device_name)
/* The instance's GPU (be must be a `cuda` instance). */
il_status il_cuda_get_info(const struct il_backend *be, il_cuda_info *out);
/* Its cudaStream_t, or NULL when be is not a cuda instance. */
void *il_cuda_stream(const struct il_backend *be);
/* Pinned (page-locked) host memory, for staging device buffers through MPI. */
il_status il_cuda_host_alloc(size_t bytes, void **p);
void il_cuda_host_free(void *p);
/* Driver and runtime versions (0 when absent); needs no device. */
void il_cuda_versions(int *driver, int *runtime);
/* GPUs the runtime sees (CUDA_VISIBLE_DEVICES applied); 0 without a driver or device. */
int il_cuda_device_count(void);
/* The name of visible GPU i ("" when it has none). */
void il_cuda_device_name(int i, char *buf, size_t cap);
#endif

#endif
