/* core/backend_cpu.c: CPU backend on OpenBLAS (cblas) and LAPACK getrf/getrs.
 * Compiled once per precision (IL_PREC). LAPACK is column-major: a row-major
 * matrix is its transpose, so "solve with A" is getrs with 'T' and vice versa. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>

#include "il_backend.h"
#include "il_math.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#if IL_PREC == 32
#define cblas_gemm cblas_sgemm
#define lapack_getrf sgetrf_
#define lapack_getrs sgetrs_
#define lapack_gecon sgecon_
#else
#define cblas_gemm cblas_dgemm
#define lapack_getrf dgetrf_
#define lapack_getrs dgetrs_
#define lapack_gecon dgecon_
#endif

void lapack_getrf(const int *m, const int *n, il_real *a, const int *lda, int *ipiv, int *info);
void lapack_getrs(const char *trans, const int *n, const int *nrhs, const il_real *a, const int *lda,
                  const int *ipiv, il_real *b, const int *ldb, int *info);
void lapack_gecon(const char *norm, const int *n, const il_real *a, const int *lda, const il_real *anorm,
                  il_real *rcond, il_real *work, int *iwork, int *info);
#ifdef IL_HAVE_OPENBLAS_THREADS
void openblas_set_num_threads(int);
#endif

static int g_threads = 1;

/* The implicit layer's GEMMs are small ((100, 100) x (100, 100)): OpenBLAS's
 * own threading gains little there (37 -> 33 us on 2 cores). Splitting the
 * rows of C over OpenMP threads, each calling single-threaded BLAS, nearly
 * halves it. BLAS itself therefore stays at one thread. Each row of C is
 * computed by the same kernel either way, so results do not depend on it. */
static void cpu_gemm(int transA, int transB, int M, int N, int K, il_real alpha, const il_real *A, int lda,
                     const il_real *B, int ldb, il_real beta, il_real *C, int ldc) {
  const CBLAS_TRANSPOSE ta = transA ? CblasTrans : CblasNoTrans, tb = transB ? CblasTrans : CblasNoTrans;
  const int T = g_threads;
  if (T <= 1 || M < 32 * T) {
    cblas_gemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
#ifdef _OPENMP
#pragma omp parallel num_threads(T)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int r0 = (int)((long)M * t / nt), r1 = (int)((long)M * (t + 1) / nt);
    /* rows r0.. of op(A): rows of A, or columns of A when transposed */
    const il_real *Ab = transA ? A + r0 : A + (size_t)r0 * lda;
    if (r1 > r0) cblas_gemm(CblasRowMajor, ta, tb, r1 - r0, N, K, alpha, Ab, lda, B, ldb, beta, C + (size_t)r0 * ldc, ldc);
  }
#else
  cblas_gemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

/* Small LUs gain nothing from BLAS threads; we split the batch over threads instead. */
static il_status cpu_lu_factor_batched(int B, int n, il_real *A, int *ipiv, int *info) {
  const size_t nn = (size_t)n * n;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(g_threads) if (g_threads > 1 && B > 1)
#endif
  for (int b = 0; b < B; b++) lapack_getrf(&n, &n, A + (size_t)b * nn, &n, ipiv + (size_t)b * n, &info[b]);
  for (int b = 0; b < B; b++)
    if (info[b] < 0) return IL_ERR(IL_ERR_INTERNAL, "getrf: illegal argument %d", -info[b]);
  return IL_OK;
}

static il_status cpu_lu_solve_batched(int trans, int B, int n, const il_real *LU, const int *ipiv, il_real *R) {
  const size_t nn = (size_t)n * n;
  const char t = trans ? 'N' : 'T'; /* row-major A is column-major A^T */
  const int one = 1;
  int bad = 0;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(g_threads) if (g_threads > 1 && B > 1) reduction(| : bad)
#endif
  for (int b = 0; b < B; b++) {
    int info;
    lapack_getrs(&t, &n, &one, LU + (size_t)b * nn, &n, ipiv + (size_t)b * n, R + (size_t)b * n, &n, &info);
    bad |= (info != 0);
  }
  if (bad) return IL_ERR(IL_ERR_INTERNAL, "getrs failed");
  return IL_OK;
}

static void cpu_norm_inf_batched(int B, int n, const il_real *A, double *out) {
  for (int b = 0; b < B; b++) {
    const il_real *Ab = A + (size_t)b * n * n;
    double mx = 0;
    for (int i = 0; i < n; i++) {
      double r = 0;
      for (int j = 0; j < n; j++) r += fabs((double)Ab[(size_t)i * n + j]);
      if (isnan(r) || isnan(mx)) mx = NAN; /* NaN propagates */
      else if (r > mx) mx = r;
    }
    out[b] = mx;
  }
}

/* LAPACK factored the column-major view A^T, so its 1-norm estimate of A^T is
 * the infinity-norm estimate of the row-major A, with anorm = ||A||_inf = ||A^T||_1. */
static il_status cpu_lu_rcond_batched(int B, int n, const il_real *LU, const double *anorm, double *rcond) {
  il_real *work = malloc((size_t)4 * n * sizeof *work);
  int *iwork = malloc((size_t)n * sizeof *iwork);
  if (!work || !iwork) {
    free(work);
    free(iwork);
    return IL_ERR(IL_ERR_NOMEM, "gecon: cannot allocate %d-sized workspace", n);
  }
  il_status s = IL_OK;
  for (int b = 0; b < B; b++) {
    const il_real an = (il_real)anorm[b];
    il_real rc = 0;
    int info = 0;
    if (!isfinite(an)) { rcond[b] = NAN; continue; }
    lapack_gecon("1", &n, LU + (size_t)b * n * n, &n, &an, &rc, work, iwork, &info);
    if (info < 0) { s = IL_ERR(IL_ERR_INTERNAL, "gecon: illegal argument %d", -info); break; }
    rcond[b] = rc;
  }
  free(work);
  free(iwork);
  return s;
}

static void cpu_tanh_sech2(size_t len, const il_real *restrict a, il_real *restrict t, il_real *restrict s) {
  if (s) {
#pragma GCC ivdep
    for (size_t i = 0; i < len; i++) il_tanh_sech2_1(a[i], &t[i], &s[i]);
  } else {
#pragma GCC ivdep
    for (size_t i = 0; i < len; i++) {
      il_real dummy;
      il_tanh_sech2_1(a[i], &t[i], &dummy);
    }
  }
}

static void cpu_eye_minus_diag_w(int B, int n, const il_real *restrict s, const il_real *restrict W,
                                 il_real *restrict J) {
  for (int b = 0; b < B; b++) {
    il_real *Jb = J + (size_t)b * n * n;
    const il_real *sb = s + (size_t)b * n;
    for (int i = 0; i < n; i++) {
      const il_real si = sb[i];
      const il_real *Wi = W + (size_t)i * n;
      il_real *Ji = Jb + (size_t)i * n;
      for (int j = 0; j < n; j++) Ji[j] = -si * Wi[j];
      Ji[i] += 1;
    }
  }
}

static void cpu_axpby(size_t len, il_real alpha, const il_real *restrict x, il_real beta, il_real *restrict y) {
  if (beta == 0) {
    for (size_t i = 0; i < len; i++) y[i] = alpha * x[i];
  } else {
    for (size_t i = 0; i < len; i++) y[i] = alpha * x[i] + beta * y[i];
  }
}

static void cpu_mul(size_t len, const il_real *a, const il_real *b, il_real *out) {
  for (size_t i = 0; i < len; i++) out[i] = a[i] * b[i];
}

/* Reductions accumulate in double; `omp simd reduction` lets the compiler
 * reorder the sum into vector lanes (a strict left-to-right sum cannot vectorise). */
static double cpu_sqdist(size_t len, const il_real *a, const il_real *b) {
  double acc = 0;
  if (b) {
#pragma omp simd reduction(+ : acc)
    for (size_t i = 0; i < len; i++) { double d = (double)a[i] - (double)b[i]; acc += d * d; }
  } else {
#pragma omp simd reduction(+ : acc)
    for (size_t i = 0; i < len; i++) acc += (double)a[i] * (double)a[i];
  }
  return acc;
}

static void cpu_row_sqdist(int B, int n, const il_real *a, const il_real *b, double *out) {
  for (int r = 0; r < B; r++)
    out[r] = cpu_sqdist((size_t)n, a + (size_t)r * n, b ? b + (size_t)r * n : NULL);
}

static int cpu_all_finite(size_t len, const il_real *a) {
  int ok = 1;
  for (size_t i = 0; i < len; i++) ok &= isfinite(a[i]) ? 1 : 0;
  return ok;
}

static il_backend g_cpu = {
    .name = "cpu",
    .gemm = cpu_gemm,
    .lu_factor_batched = cpu_lu_factor_batched,
    .lu_solve_batched = cpu_lu_solve_batched,
    .norm_inf_batched = cpu_norm_inf_batched,
    .lu_rcond_batched = cpu_lu_rcond_batched,
    .tanh_sech2 = cpu_tanh_sech2,
    .eye_minus_diag_w = cpu_eye_minus_diag_w,
    .axpby = cpu_axpby,
    .mul = cpu_mul,
    .sqdist = cpu_sqdist,
    .row_sqdist = cpu_row_sqdist,
    .all_finite = cpu_all_finite,
    .threads = 1,
};

il_status il_backend_cpu(int threads, const il_backend **out) {
  if (threads < 1 || threads > 1024) return IL_ERR(IL_ERR_ARG, "threads must be in [1, 1024], got %d", threads);
  g_threads = threads;
  g_cpu.threads = threads;
#ifdef IL_HAVE_OPENBLAS_THREADS
#ifdef _OPENMP
  openblas_set_num_threads(1); /* we thread over rows and samples ourselves */
#else
  openblas_set_num_threads(threads);
#endif
#endif
  *out = &g_cpu;
  return IL_OK;
}
