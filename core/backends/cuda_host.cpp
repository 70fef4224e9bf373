/* core/backends/cuda_host.cpp: `cuda-host`, a test backend that runs the cuda backend's
 * op code (cuda_ops.cuh) and kernels (cuda_kernels.cuh) on the host: the host launcher
 * runs every launch's full grid block by block, thread by thread, through the same kernel
 * bodies, with CBLAS/LAPACK standing in for cuBLAS's GEMMs and batched LU (same
 * column-major conventions, same pointer arrays). Its memory is not host-accessible to
 * the core (host_accessible = 0), so the core's staging paths run as on a GPU.
 * tests/backend runs the whole harness against it, in both precisions, in every build:
 * where no GPU exists this is what tests the kernels' indexing, bounds and reductions.
 * Built without nvcc (plain C++). Compiled once per precision. */
#include <cblas.h>
#include <new>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_ops.cuh"

#if IL_PREC == 32
#define cblas_gemm cblas_sgemm
#define lapack_getrf sgetrf_
#define lapack_getrs sgetrs_
#else
#define cblas_gemm cblas_dgemm
#define lapack_getrf dgetrf_
#define lapack_getrs dgetrs_
#endif
extern "C" {
void lapack_getrf(const int *m, const int *n, il_real *a, const int *lda, int *ipiv, int *info);
void lapack_getrs(const char *trans, const int *n, const int *nrhs, const il_real *a, const int *lda, const int *ipiv,
                  il_real *b, const int *ldb, int *info);
}

namespace {

/* The threads per block of cuda.cu's launches, so the host runs the same grids. */
enum { BLOCK = 128 };

struct host_launcher {
  static constexpr const char *NAME = "cuda-host";
  size_t live = 0, peak = 0;
  double flops = 0;
  void *scr = nullptr;
  size_t scr_bytes = 0;
  long launches = 0, threads_run = 0;

  template <class F> il_status run(const F &f, size_t n) {
    const unsigned grid = (unsigned)((n + BLOCK - 1) / BLOCK);
    for (unsigned b = 0; b < grid; b++)
      for (unsigned t = 0; t < BLOCK; t++) f(b, t, BLOCK); /* the tail threads run too: bounds are the kernel's */
    launches++;
    threads_run += (long)grid * BLOCK;
    return IL_OK;
  }
  /* no graphs on the host: the body's launches run as they come */
  template <class Body> il_status graphed(const ilk::gkey &, Body body) { return body(); }
  il_status gemm(int tA, int tB, int M, int N, int K, il_real alpha, const il_real *A, int lda, const il_real *B,
                 int ldb, il_real beta, il_real *C, int ldc) {
    cblas_gemm(CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
               B, ldb, beta, C, ldc);
    return IL_OK;
  }
  il_status gemm_sb(int tA, int tB, int M, int N, int K, il_real alpha, const il_real *A, int lda, size_t sA,
                    const il_real *B, int ldb, size_t sB, il_real beta, il_real *C, int ldc, size_t sC, int batch) {
    for (int i = 0; i < batch; i++) IL_CHECK(gemm(tA, tB, M, N, K, alpha, A + i * sA, lda, B + i * sB, ldb, beta, C + i * sC, ldc));
    return IL_OK;
  }
  /* cublas<t>getrfBatched's contract: column-major n x n at A[b], 1-based pivots, info[b] */
  il_status getrf_batched(int n, il_real **A, int *piv, int *info, int B) {
    for (int b = 0; b < B; b++) lapack_getrf(&n, &n, A[b], &n, piv + (size_t)b * n, &info[b]);
    return IL_OK;
  }
  /* cublas<t>getrsBatched with one right-hand side per matrix; op_t: solve with A^T */
  il_status getrs_batched(int op_t, int n, il_real **A, const int *piv, il_real **R, int B) {
    const char t = op_t ? 'T' : 'N';
    const int one = 1;
    for (int b = 0; b < B; b++) {
      int info = 0;
      lapack_getrs(&t, &n, &one, A[b], &n, piv + (size_t)b * n, R[b], &n, &info);
      if (info != 0) return IL_ERR(IL_ERR_INTERNAL, "cuda-host: getrs: illegal argument %d", -info);
    }
    return IL_OK;
  }
  il_status scratch(size_t bytes, void **p) {
    if (bytes > scr_bytes) {
      void *q = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
      if (!q) return IL_ERR(IL_ERR_NOMEM, "cuda-host: cannot allocate %zu bytes of scratch", bytes);
      free(scr);
      scr = q;
      scr_bytes = bytes;
    }
    *p = scr;
    return IL_OK;
  }
  il_status alloc(size_t bytes, void **p) {
    *p = aligned_alloc(64, ((bytes ? bytes : 1) + 63) & ~(size_t)63);
    if (!*p) return IL_ERR(IL_ERR_NOMEM, "cuda-host: cannot allocate %zu bytes", bytes);
    live += bytes;
    if (live > peak) peak = live;
    return IL_OK;
  }
  void release(void *p, size_t bytes) {
    if (p) live -= bytes;
    free(p);
  }
  il_status zero(void *p, size_t bytes) { return memset(p, 0, bytes), IL_OK; }
  il_status to_host(void *h, const void *d, size_t bytes) { return memmove(h, d, bytes), IL_OK; }
  il_status to_space(void *d, const void *h, size_t bytes) { return memmove(d, h, bytes), IL_OK; }
  il_status in_space(void *d, const void *s, size_t bytes) { return memmove(d, s, bytes), IL_OK; }
  il_status sync() { return IL_OK; }
};

using ops = ilk::cu_ops<host_launcher>;

il_status host_create(const il_backend_options *o, void **ctx) {
  (void)o;
  host_launcher *l = new (std::nothrow) host_launcher();
  if (!l) return IL_ERR(IL_ERR_NOMEM, "cuda-host: cannot allocate its context");
  *ctx = l;
  return IL_OK;
}
void host_destroy(void *ctx) {
  host_launcher *l = (host_launcher *)ctx;
  free(l->scr);
  delete l;
}
void host_describe(void *ctx, char *buf, size_t cap) {
  const host_launcher *l = (const host_launcher *)ctx;
  snprintf(buf, cap, "the cuda backend's kernels run on the host, block by block and thread by thread (%d-thread "
           "blocks), CBLAS/LAPACK for cuBLAS (test backend): %ld launches, %ld threads, %zu bytes of scratch",
           (int)BLOCK, l->launches, l->threads_run, l->scr_bytes);
}

} /* namespace */

#define il_backend_cuda_host_ops IL_P(il_backend_cuda_host_ops)
extern "C" const il_backend_ops il_backend_cuda_host_ops;
const il_backend_ops il_backend_cuda_host_ops =
    ops::table("cuda-host", "test backend: the cuda backend's kernels and op code run on the host by a host launcher",
               host_create, host_destroy, host_describe);
