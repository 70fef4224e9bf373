/* core/backends/cuda.cu: the `cuda` backend. Its op code is cuda_ops.cuh (shared with the
 * cuda-host test backend); this file is the device launcher under it:
 *   - kernels of cuda_kernels.cuh as <<<>>> launches on one stream per instance;
 *   - cuBLAS for GEMM, strided-batched GEMM and the batched LU (getrfBatched/getrsBatched);
 *   - memory from cudaMalloc (never managed memory), counted by the arenas like any space;
 *   - results reach the host only in to_host, which the ops call at the sync points
 *     il_backend.h names (and a copy to the host);
 *   - every CUDA and cuBLAS call is checked; a failure becomes a status with file:line
 *     (library code never exits).
 * The runtime is linked statically; it loads the driver at run time, so without a driver
 * or a device create fails with IL_ERR_UNSUPPORTED naming the reason. Compiled once per
 * precision. Status: GPU-unverified until scripts/gpu-check has passed on a GPU. */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <new>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_ops.cuh"
extern "C" {
#include "il_cuda.h"
}

#define CU_TRY(call)                                                                                            \
  do {                                                                                                          \
    const cudaError_t e_ = (call);                                                                              \
    if (e_ != cudaSuccess)                                                                                      \
      return IL_ERR(IL_ERR_INTERNAL, "cuda: %s failed: %s (%s)", #call, cudaGetErrorString(e_), cudaGetErrorName(e_)); \
  } while (0)
#define CB_TRY(call)                                                                                            \
  do {                                                                                                          \
    const cublasStatus_t e_ = (call);                                                                           \
    if (e_ != CUBLAS_STATUS_SUCCESS)                                                                            \
      return IL_ERR(IL_ERR_INTERNAL, "cuda: %s failed: %s", #call, cublasGetStatusString(e_));                  \
  } while (0)

#if IL_PREC == 32
#define cublas_gemm cublasSgemm
#define cublas_gemm_sb cublasSgemmStridedBatched
#define cublas_getrf cublasSgetrfBatched
#define cublas_getrs cublasSgetrsBatched
#else
#define cublas_gemm cublasDgemm
#define cublas_gemm_sb cublasDgemmStridedBatched
#define cublas_getrf cublasDgetrfBatched
#define cublas_getrs cublasDgetrsBatched
#endif

/* Every own kernel: one thread of functor F per (block, thread) of a 1-D grid. */
template <class F> __global__ void il_kernel(F f) { f(blockIdx.x, threadIdx.x, blockDim.x); }

namespace {

enum { BLOCK = 128 }; /* cuda_host.cpp runs the same grids */

static cublasOperation_t op(int t) { return t ? CUBLAS_OP_T : CUBLAS_OP_N; }

struct dev_launcher {
  static constexpr const char *NAME = "cuda";
  int device = 0;
  cudaStream_t st = nullptr;
  cublasHandle_t h = nullptr;
  size_t live = 0, peak = 0;
  double flops = 0;
  void *scr = nullptr;
  size_t scr_bytes = 0;
  long launches = 0;
  il_cuda_info info;
  void *cublas_ws = nullptr;

  /* ---- CUDA graphs: an op's device-side launches (cuda_ops.cuh: graphed) captured on the
   * second call with the same arguments and replayed after; copies to the host stay outside
   * (they are the sync points). A graph embeds the scratch buffer's address, so growing it
   * retires every graph (scr_gen). Any graph API failure turns graphs off for the instance
   * and the op runs as plain launches; ILBENCH_CUDA_GRAPHS=0 turns them off from the start. */
  enum { NGRAPH = 32, NSEEN = 64 };
  struct gentry {
    ilk::gkey key;
    unsigned gen;
    cudaGraphExec_t exec;
  };
  gentry graphs[NGRAPH];
  int ngraphs = 0, gnext = 0, graphs_on = 1;
  uint64_t seen[NSEEN] = {0};
  int nseen = 0;
  unsigned scr_gen = 0;
  long graph_replays = 0, graph_captures = 0;
  char graphs_off_why[160] = "";

  static uint64_t hash(const ilk::gkey &k) {
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < k.n; i++) h = (h ^ k.b[i]) * 1099511628211ULL;
    return h | 1; /* 0 marks an empty slot */
  }
  void graphs_off(const char *what, cudaError_t e) {
    graphs_on = 0;
    snprintf(graphs_off_why, sizeof graphs_off_why, "%s: %s", what, cudaGetErrorString(e));
    (void)cudaGetLastError(); /* the error was ours to handle, not a later op's */
  }
  template <class Body> il_status graphed(const ilk::gkey &k, Body body) {
    if (!graphs_on || k.n > sizeof k.b) return body();
    for (int i = 0; i < ngraphs; i++)
      if (graphs[i].gen == scr_gen && graphs[i].key.n == k.n && memcmp(graphs[i].key.b, k.b, k.n) == 0) {
        CU_TRY(cudaGraphLaunch(graphs[i].exec, st));
        graph_replays++;
        return IL_OK;
      }
    const uint64_t hk = hash(k);
    int again = 0;
    for (int i = 0; i < NSEEN; i++) again |= seen[i] == hk;
    if (!again) { /* a call seen once runs directly: one-off calls never pay for a capture */
      seen[nseen++ % NSEEN] = hk;
      return body();
    }
    cudaError_t e = cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) return graphs_off("cudaStreamBeginCapture", e), body();
    const il_status s = body();
    cudaGraph_t g = nullptr;
    e = cudaStreamEndCapture(st, &g);
    if (s != IL_OK || e != cudaSuccess || !g) { /* nothing ran: run it plainly */
      if (g) cudaGraphDestroy(g);
      graphs_off(s != IL_OK ? il_error_message() : "cudaStreamEndCapture", e);
      il_error_clear();
      return body();
    }
    cudaGraphExec_t x = nullptr;
    e = cudaGraphInstantiate(&x, g, 0);
    cudaGraphDestroy(g);
    if (e != cudaSuccess) return graphs_off("cudaGraphInstantiate", e), body();
    gentry *slot;
    if (ngraphs < NGRAPH) {
      slot = &graphs[ngraphs++];
    } else { /* full: replace the oldest capture */
      slot = &graphs[gnext++ % NGRAPH];
      cudaGraphExecDestroy(slot->exec);
    }
    slot->key = k, slot->gen = scr_gen, slot->exec = x;
    graph_captures++;
    CU_TRY(cudaGraphLaunch(x, st));
    return IL_OK;
  }

  template <class F> il_status run(const F &f, size_t n) {
    const size_t grid = (n + BLOCK - 1) / BLOCK;
    if (grid > 0x7fffffffu) return IL_ERR(IL_ERR_UNSUPPORTED, "cuda: %zu threads exceed one 1-D grid", n);
    il_kernel<F><<<(unsigned)grid, BLOCK, 0, st>>>(f);
    launches++;
    CU_TRY(cudaGetLastError());
    return IL_OK;
  }
  /* row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T */
  il_status gemm(int tA, int tB, int M, int N, int K, il_real alpha, const il_real *A, int lda, const il_real *B,
                 int ldb, il_real beta, il_real *C, int ldc) {
    CB_TRY(cublas_gemm(h, op(tB), op(tA), N, M, K, &alpha, B, ldb, A, lda, &beta, C, ldc));
    return IL_OK;
  }
  il_status gemm_sb(int tA, int tB, int M, int N, int K, il_real alpha, const il_real *A, int lda, size_t sA,
                    const il_real *B, int ldb, size_t sB, il_real beta, il_real *C, int ldc, size_t sC, int batch) {
    CB_TRY(cublas_gemm_sb(h, op(tB), op(tA), N, M, K, &alpha, B, ldb, (long long)sB, A, lda, (long long)sA, &beta, C,
                          ldc, (long long)sC, batch));
    return IL_OK;
  }
  il_status getrf_batched(int n, il_real **A, int *piv, int *info_d, int B) {
    CB_TRY(cublas_getrf(h, n, A, n, piv, info_d, B));
    return IL_OK;
  }
  il_status getrs_batched(int op_t, int n, il_real **A, const int *piv, il_real **R, int B) {
    int info = 0; /* host: argument errors only */
    CB_TRY(cublas_getrs(h, op(op_t), n, 1, (const il_real *const *)A, n, piv, R, n, &info, B));
    if (info != 0) return IL_ERR(IL_ERR_INTERNAL, "cuda: getrsBatched: illegal argument %d", -info);
    return IL_OK;
  }
  /* One scratch buffer reused by consecutive ops: they are ordered on the one stream. */
  il_status scratch(size_t bytes, void **p) {
    if (bytes > scr_bytes) {
      const size_t want = bytes < ((size_t)1 << 16) ? ((size_t)1 << 16) : bytes;
      void *q = nullptr;
      if (scr) CU_TRY(cudaFree(scr)); /* waits for the work that used it */
      scr = nullptr, scr_bytes = 0;
      scr_gen++; /* graphs holding the old address are retired */
      CU_TRY(cudaMalloc(&q, want));
      scr = q, scr_bytes = want;
    }
    *p = scr;
    return IL_OK;
  }
  il_status alloc(size_t bytes, void **p) {
    *p = nullptr;
    const cudaError_t e = cudaMalloc(p, bytes ? bytes : 1); /* 256-byte aligned */
    if (e != cudaSuccess) {
      *p = nullptr;
      return IL_ERR(IL_ERR_NOMEM, "cuda: cudaMalloc of %zu bytes failed: %s", bytes, cudaGetErrorString(e));
    }
    live += bytes;
    if (live > peak) peak = live;
    return IL_OK;
  }
  void release(void *p, size_t bytes) {
    if (!p) return;
    live -= bytes;
    cudaFree(p); /* a failure here is a sticky context error: the next checked call reports it */
  }
  il_status zero(void *p, size_t bytes) {
    CU_TRY(cudaMemsetAsync(p, 0, bytes, st));
    return IL_OK;
  }
  il_status to_host(void *hst, const void *d, size_t bytes) {
    CU_TRY(cudaMemcpyAsync(hst, d, bytes, cudaMemcpyDeviceToHost, st));
    CU_TRY(cudaStreamSynchronize(st));
    return IL_OK;
  }
  il_status to_space(void *d, const void *hst, size_t bytes) {
    CU_TRY(cudaMemcpyAsync(d, hst, bytes, cudaMemcpyHostToDevice, st));
    return IL_OK;
  }
  il_status in_space(void *d, const void *s, size_t bytes) {
    CU_TRY(cudaMemcpyAsync(d, s, bytes, cudaMemcpyDeviceToDevice, st));
    return IL_OK;
  }
  il_status sync() {
    CU_TRY(cudaStreamSynchronize(st));
    return IL_OK;
  }
};

using ops = ilk::cu_ops<dev_launcher>;

void dev_destroy(void *ctx) {
  dev_launcher *l = (dev_launcher *)ctx;
  if (!l) return;
  for (int i = 0; i < l->ngraphs; i++)
    if (l->graphs[i].exec) cudaGraphExecDestroy(l->graphs[i].exec);
  if (l->scr) cudaFree(l->scr);
  if (l->cublas_ws) cudaFree(l->cublas_ws);
  if (l->h) cublasDestroy(l->h);
  if (l->st) cudaStreamDestroy(l->st);
  delete l;
}

il_status setup(dev_launcher *l, int device) {
  CU_TRY(cudaSetDevice(device));
  cudaDeviceProp p;
  CU_TRY(cudaGetDeviceProperties(&p, device));
  il_cuda_info *in = &l->info;
  snprintf(in->name, sizeof in->name, "%s", p.name);
  in->cc_major = p.major, in->cc_minor = p.minor, in->sms = p.multiProcessorCount;
  in->mem_bytes = p.totalGlobalMem;
  snprintf(in->pci, sizeof in->pci, "%04x:%02x:%02x.0", p.pciDomainID, p.pciBusID, p.pciDeviceID);
  CU_TRY(cudaStreamCreate(&l->st)); /* a blocking stream: ordered with the legacy default stream NCCL may use */
  CB_TRY(cublasCreate(&l->h));
  CB_TRY(cublasSetStream(l->h, l->st));
  CB_TRY(cublasSetMathMode(l->h, CUBLAS_DEFAULT_MATH)); /* no TF32: the harness's GEMM bound refuses it */
  /* a workspace of our own: cuBLAS then allocates nothing while a graph is captured */
  const size_t ws = (size_t)32 << 20;
  CU_TRY(cudaMalloc(&l->cublas_ws, ws));
  CB_TRY(cublasSetWorkspace(l->h, l->cublas_ws, ws));
  const char *gv = getenv("ILBENCH_CUDA_GRAPHS");
  if (gv && strcmp(gv, "0") == 0) {
    l->graphs_on = 0;
    snprintf(l->graphs_off_why, sizeof l->graphs_off_why, "ILBENCH_CUDA_GRAPHS=0");
  }
  int v = 0;
  CB_TRY(cublasGetVersion(l->h, &v));
  in->cublas = v;
  return IL_OK;
}

il_status dev_create(const il_backend_options *o, void **ctx) {
  *ctx = nullptr;
  int drv = 0, rt = 0, n = 0;
  cudaDriverGetVersion(&drv); /* 0 when no driver is installed */
  cudaRuntimeGetVersion(&rt);
  const cudaError_t e = cudaGetDeviceCount(&n);
  const char *vis = getenv("CUDA_VISIBLE_DEVICES");
  if (e == cudaErrorInsufficientDriver && drv == 0)
    return IL_ERR(IL_ERR_UNSUPPORTED, "cuda: no usable GPU: no CUDA driver found (cudaDriverGetVersion gives none; this build needs one for runtime %d.%d)",
                  rt / 1000, rt % 1000 / 10);
  if (e == cudaErrorInsufficientDriver)
    return IL_ERR(IL_ERR_UNSUPPORTED, "cuda: no usable GPU: the CUDA driver (%d.%d) is older than this build's runtime (%d.%d)",
                  drv / 1000, drv % 1000 / 10, rt / 1000, rt % 1000 / 10);
  if (e == cudaErrorNoDevice || (e == cudaSuccess && n == 0))
    return IL_ERR(IL_ERR_UNSUPPORTED, "cuda: no usable GPU: the driver (%d.%d) sees no CUDA device%s%s%s", drv / 1000,
                  drv % 1000 / 10, vis ? " (CUDA_VISIBLE_DEVICES=" : "", vis ? vis : "", vis ? ")" : "");
  if (e != cudaSuccess)
    return IL_ERR(IL_ERR_UNSUPPORTED, "cuda: no usable GPU: cudaGetDeviceCount failed: %s (%s)", cudaGetErrorString(e),
                  cudaGetErrorName(e));
  const int dev = o ? o->device : 0;
  if (dev < 0 || dev >= n)
    return IL_ERR(IL_ERR_ARG, "cuda: GPU %d requested, but %d %s visible%s%s%s", dev, n, n == 1 ? "is" : "are",
                  vis ? " (CUDA_VISIBLE_DEVICES=" : "", vis ? vis : "", vis ? ")" : "");
  dev_launcher *l = new (std::nothrow) dev_launcher();
  if (!l) return IL_ERR(IL_ERR_NOMEM, "cuda: cannot allocate its context");
  memset(&l->info, 0, sizeof l->info);
  l->device = dev;
  l->info.device = dev, l->info.visible = n, l->info.driver = drv, l->info.runtime = rt;
  snprintf(l->info.visible_env, sizeof l->info.visible_env, "%s", vis ? vis : "");
  const il_status s = setup(l, dev);
  if (s != IL_OK) {
    dev_destroy(l);
    return il_error_trace(s, __FILE__, __LINE__);
  }
  *ctx = l;
  return IL_OK;
}

void dev_describe(void *ctx, char *buf, size_t cap) {
  const dev_launcher *l = (const dev_launcher *)ctx;
  const il_cuda_info *in = &l->info;
  snprintf(buf, cap, "GPU %d of %d: %s (sm_%d%d, %d SMs, %.1f GiB, PCI %s), driver %d.%d, runtime %d.%d, cuBLAS %d; "
           "%ld launches, CUDA graphs %s%s%s (%ld captured, %ld replays); GPU-unverified", in->device, in->visible,
           in->name, in->cc_major, in->cc_minor, in->sms, (double)in->mem_bytes / (1 << 30), in->pci, in->driver / 1000,
           in->driver % 1000 / 10, in->runtime / 1000, in->runtime % 1000 / 10, in->cublas, l->launches,
           l->graphs_on ? "on" : "off", l->graphs_on ? "" : ": ", l->graphs_off_why, l->graph_captures,
           l->graph_replays);
}

} /* namespace */

extern "C" const il_backend_ops il_backend_cuda_ops;
const il_backend_ops il_backend_cuda_ops =
    ops::table("cuda", "cuBLAS GEMMs and batched LU with fused own kernels on an NVIDIA GPU (status: GPU-unverified)",
               dev_create, dev_destroy, dev_describe);

extern "C" il_status il_cuda_host_alloc(size_t bytes, void **p) {
  *p = nullptr;
  const cudaError_t e = cudaMallocHost(p, bytes ? bytes : 1);
  if (e != cudaSuccess) {
    *p = nullptr;
    return IL_ERR(IL_ERR_NOMEM, "cuda: cudaMallocHost of %zu bytes failed: %s", bytes, cudaGetErrorString(e));
  }
  return IL_OK;
}
extern "C" void il_cuda_host_free(void *p) {
  if (p) cudaFreeHost(p);
}
extern "C" void il_cuda_versions(int *driver, int *runtime) {
  *driver = *runtime = 0;
  cudaDriverGetVersion(driver);
  cudaRuntimeGetVersion(runtime);
}
extern "C" int il_cuda_device_count(void) {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}
extern "C" void il_cuda_device_name(int i, char *buf, size_t cap) {
  cudaDeviceProp p;
  if (cap) buf[0] = 0;
  if (cudaGetDeviceProperties(&p, i) == cudaSuccess) snprintf(buf, cap, "%s", p.name);
}
extern "C" il_status il_cuda_get_info(const il_backend *be, il_cuda_info *out) {
  if (!be || be->ops != &il_backend_cuda_ops) return IL_ERR(IL_ERR_ARG, "il_cuda_get_info: not a cuda backend instance");
  *out = ((const dev_launcher *)be->ctx)->info;
  return IL_OK;
}
extern "C" void *il_cuda_stream(const il_backend *be) {
  return be && be->ops == &il_backend_cuda_ops ? (void *)((const dev_launcher *)be->ctx)->st : nullptr;
}
