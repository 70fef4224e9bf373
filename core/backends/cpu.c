/* core/backends/cpu.c: the CPU backend on OpenBLAS (cblas) and LAPACK, the
 * readable reference and the oracle for other backends. Its space is host
 * memory. Compiled once per precision (IL_PREC). LAPACK is column-major: a
 * row-major matrix is its transpose, so "solve with A" is getrs with 'T' and
 * vice versa. Loops keep the exact operation order of the code they replaced,
 * so results are bit-identical to the pre-backend core, except the batched LU
 * for n <= IL_LUC_MAX_N: it runs across the batch in the compact layout of
 * cpu_lu_compact.c (the same factorisation up to rounding, several times faster). */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200112L /* posix_memalign under -std=c11 */
#endif
#define _GNU_SOURCE /* pthread_setaffinity_np */
#include <pthread.h>
#include <sched.h>
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_blas_core.h"
#include "cpu_lu_compact.h"
#include "cpu_map_fused.h"
#include "cpu_rows.h"
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
#define il_cosh coshf
#define il_sinh sinhf
#else
#define cblas_gemm cblas_dgemm
#define lapack_getrf dgetrf_
#define lapack_getrs dgetrs_
#define lapack_gecon dgecon_
#define il_cosh cosh
#define il_sinh sinh
#endif

void lapack_getrf(const int *m, const int *n, il_real *a, const int *lda, int *ipiv, int *info);
void lapack_getrs(const char *trans, const int *n, const int *nrhs, const il_real *a, const int *lda,
                  const int *ipiv, il_real *b, const int *ldb, int *info);
void lapack_gecon(const char *norm, const int *n, const il_real *a, const int *lda, const il_real *anorm,
                  il_real *rcond, il_real *work, int *iwork, int *info);
#ifdef IL_HAVE_OPENBLAS_THREADS
void openblas_set_num_threads(int);
#endif

typedef struct cpu_ctx {
  int threads;
  char bound[160]; /* "cpus 0,1", or empty */
  size_t live, peak; /* bytes allocated through alloc */
  double flops;      /* counted by the ops, for events */
} cpu_ctx;
#define FLOPS(ctx, n) (((cpu_ctx *)(ctx))->flops += (double)(n))
#define THREADS(ctx) (((const cpu_ctx *)(ctx))->threads)

/* Pin OpenMP thread t (the pool every later parallel region reuses) to cpus[t]. */
static il_status pin_threads(int T, const int *cpus, char *desc, size_t cap) {
  int bad = -1, err = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(T)
  {
    const int t = omp_get_thread_num();
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpus[t], &set);
    const int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    if (rc != 0 || omp_get_num_threads() != T)
#pragma omp critical
    {
      bad = t;
      err = rc;
    }
  }
#else
  (void)T, (void)cpus;
#endif
  if (bad >= 0)
    return IL_ERR(IL_ERR_ARG, "cpu backend: cannot pin thread %d to CPU %d (%s)", bad, cpus[bad],
                  err ? strerror(err) : "OpenMP gave fewer threads");
  size_t len = (size_t)snprintf(desc, cap, "cpus ");
  for (int t = 0; t < T && len + 8 < cap; t++) len += (size_t)snprintf(desc + len, cap - len, "%s%d", t ? "," : "", cpus[t]);
  return IL_OK;
}

static il_status cpu_create(const il_backend_options *o, void **ctx) {
  const int threads = o ? o->threads : 1;
  if (threads < 1 || threads > 1024) return IL_ERR(IL_ERR_ARG, "threads must be in [1, 1024], got %d", threads);
  cpu_ctx *c = calloc(1, sizeof *c);
  if (!c) return IL_ERR(IL_ERR_NOMEM, "cpu backend: cannot allocate its context");
  c->threads = threads;
  if (o && o->cpus) {
    il_status s = pin_threads(threads, o->cpus, c->bound, sizeof c->bound);
    if (s != IL_OK) {
      free(c);
      return s;
    }
  }
#ifdef IL_HAVE_OPENBLAS_THREADS
#ifdef _OPENMP
  openblas_set_num_threads(1); /* we thread over rows and samples ourselves */
#else
  openblas_set_num_threads(threads);
#endif
#endif
  *ctx = c;
  return IL_OK;
}

static void cpu_destroy(void *ctx) { free(ctx); }

static void cpu_describe(void *ctx, char *buf, size_t cap) {
  const cpu_ctx *c = ctx;
  il_blas_core_info bc;
  il_blas_core_query(&bc);
  snprintf(buf, cap, "host memory, %d thread(s)%s%s%s, single-threaded BLAS/LAPACK calls%s%s%s%s", c->threads,
           c->threads > 1 ? " (layer: row shards, one sync per iteration; other ops: rows)" : "",
           c->bound[0] ? " bound to " : "", c->bound, bc.core[0] ? " (OpenBLAS " : "", bc.core,
           bc.core[0] ? " kernels" : "", bc.core[0] ? (bc.suggest[0] ? ", below this CPU's SIMD level)" : ")") : "");
}

/* ---- memory ---- */
static il_status cpu_alloc(void *ctx, size_t bytes, void **p) {
  cpu_ctx *c = ctx;
  *p = NULL;
  if (posix_memalign(p, 64, bytes ? bytes : 64) != 0)
    return IL_ERR(IL_ERR_NOMEM, "cpu backend: cannot allocate %zu bytes", bytes);
  c->live += bytes;
  if (c->live > c->peak) c->peak = c->live;
  return IL_OK;
}
static void cpu_release(void *ctx, void *p, size_t bytes) {
  cpu_ctx *c = ctx;
  if (p) c->live -= bytes;
  free(p);
}
static double cpu_flops(void *ctx) { return ((cpu_ctx *)ctx)->flops; }

static void cpu_mem_stats(void *ctx, size_t *live, size_t *peak) {
  *live = ((cpu_ctx *)ctx)->live;
  *peak = ((cpu_ctx *)ctx)->peak;
}
static il_status cpu_zero(void *ctx, void *p, size_t bytes) { (void)ctx; memset(p, 0, bytes); return IL_OK; }
static il_status cpu_copy(void *ctx, il_copy_kind kind, void *dst, const void *src, size_t bytes) {
  (void)ctx; (void)kind;
  if (bytes && dst != src) memmove(dst, src, bytes);
  return IL_OK;
}
static il_status cpu_sync(void *ctx) { (void)ctx; return IL_OK; }

/* ---- dense linear algebra ---- */
/* The implicit layer's GEMMs are small ((100, 100) x (100, 100)): OpenBLAS's
 * own threading gains little there (37 -> 33 us on 2 cores). Splitting the
 * rows of C over OpenMP threads, each calling single-threaded BLAS, nearly
 * halves it. BLAS itself therefore stays at one thread. Each row of C is
 * computed by the same kernel either way, so results do not depend on it. */
static il_status cpu_gemm(void *ctx, int transA, int transB, int M, int N, int K, il_real alpha, const il_real *A,
                          int lda, const il_real *B, int ldb, il_real beta, il_real *C, int ldc) {
  const CBLAS_TRANSPOSE ta = transA ? CblasTrans : CblasNoTrans, tb = transB ? CblasTrans : CblasNoTrans;
  const int T = THREADS(ctx);
  FLOPS(ctx, 2.0 * M * N * K);
  if (T <= 1 || M < 32 * T) {
    cblas_gemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return IL_OK;
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
  return IL_OK;
}

static il_status cpu_gemm_strided_batched(void *ctx, int tA, int tB, int M, int N, int K, il_real alpha,
                                          const il_real *A, int lda, size_t sA, const il_real *B, int ldb, size_t sB,
                                          il_real beta, il_real *C, int ldc, size_t sC, int batch) {
  const CBLAS_TRANSPOSE ta = tA ? CblasTrans : CblasNoTrans, tb = tB ? CblasTrans : CblasNoTrans;
  const int T = THREADS(ctx);
  FLOPS(ctx, 2.0 * M * N * K * batch);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(T) if (T > 1 && batch > 1)
#endif
  for (int i = 0; i < batch; i++)
    cblas_gemm(CblasRowMajor, ta, tb, M, N, K, alpha, A + i * sA, lda, B + i * sB, ldb, beta, C + i * sC, ldc);
  return IL_OK;
}

static il_status cpu_act_fwd(void *ctx, size_t len, il_act act, const il_real *a, il_real *f, il_real *s);
static il_status cpu_row_sqdist(void *ctx, int B, int n, const il_real *a, const il_real *b, double *out);
static il_status cpu_fill(void *ctx, size_t len, il_real v, il_real *out);

/* In the order the unfused code ran (copy the addend, GEMM onto it, activate in place),
 * so it is bit-identical to it. Issue 12's fused kernel replaces this body. */
static il_status cpu_gemm_ep(void *ctx, int B, int N, int K, const il_real *A, const il_real *W, const il_epilogue *ep,
                             il_real *out) {
  const size_t len = (size_t)B * N;
  /* the fused kernel (cpu_map_fused.c) where it is built and faster; the FLOPs this path counts */
  if (il_cpu_map_fused_use(B, N, K)) {
    FLOPS(ctx, 2.0 * B * N * K + (ep->act != IL_ACT_NONE ? (double)len : 0) + (ep->res_rows ? 3.0 * (double)len : 0));
    return il_cpu_map_fused(THREADS(ctx), B, N, K, A, W, ep, out);
  }
  if (ep->add) memcpy(out, ep->add, len * sizeof *out);
  if (ep->bias) {
    for (int r = 0; r < B; r++) {
      il_real *o = out + (size_t)r * N;
      if (ep->add)
        for (int j = 0; j < N; j++) o[j] += ep->bias[j];
      else
        memcpy(o, ep->bias, (size_t)N * sizeof *o);
    }
  }
  IL_CHECK(cpu_gemm(ctx, 0, 1, B, N, K, 1, A, K, W, K, (ep->add || ep->bias) ? 1 : 0, out, N));
  if (ep->pre) memcpy(ep->pre, out, len * sizeof *out);
  if (ep->act != IL_ACT_NONE) IL_CHECK(cpu_act_fwd(ctx, len, ep->act, out, out, ep->deriv));
  else if (ep->deriv) IL_CHECK(cpu_fill(ctx, len, 1, ep->deriv));
  if (ep->res_rows) IL_CHECK(cpu_row_sqdist(ctx, B, N, ep->res_ref, out, ep->res_rows));
  return IL_OK;
}

/* ---- elementwise ---- */
static il_status cpu_fill(void *ctx, size_t len, il_real v, il_real *out) {
  (void)ctx;
  for (size_t i = 0; i < len; i++) out[i] = v;
  return IL_OK;
}

static il_status cpu_axpby(void *ctx, size_t len, il_real alpha, const il_real *restrict x, il_real beta,
                           il_real *restrict y) {
  FLOPS(ctx, 2.0 * len);
  (void)ctx;
  if (beta == 0) {
    for (size_t i = 0; i < len; i++) y[i] = alpha * x[i];
  } else {
    for (size_t i = 0; i < len; i++) y[i] = alpha * x[i] + beta * y[i];
  }
  return IL_OK;
}

static il_status cpu_lincomb(void *ctx, size_t len, il_real a, const il_real *x, il_real b, const il_real *y,
                             il_real *out) {
  FLOPS(ctx, 2.0 * len);
  (void)ctx;
  for (size_t i = 0; i < len; i++) out[i] = a * x[i] + b * y[i];
  return IL_OK;
}

static il_status cpu_mul(void *ctx, size_t len, const il_real *a, const il_real *b, il_real *out) {
  FLOPS(ctx, len);
  (void)ctx;
  for (size_t i = 0; i < len; i++) out[i] = a[i] * b[i];
  return IL_OK;
}

static il_status bad_act(il_act act) { return IL_ERR(IL_ERR_INTERNAL, "cpu backend: unknown activation %d", (int)act); }

static il_status cpu_act_fwd(void *ctx, size_t len, il_act act, const il_real *restrict a, il_real *f,
                             il_real *restrict s) {
  FLOPS(ctx, len);
  (void)ctx;
  if (act == IL_ACT_TANH) {
    if (s) {
#pragma GCC ivdep
      for (size_t i = 0; i < len; i++) il_tanh_sech2_1(a[i], &f[i], &s[i]);
    } else {
#pragma GCC ivdep
      for (size_t i = 0; i < len; i++) {
        il_real dummy;
        il_tanh_sech2_1(a[i], &f[i], &dummy);
      }
    }
  } else if (act == IL_ACT_RELU) { /* NaN stays NaN */
    for (size_t i = 0; i < len; i++) {
      const il_real v = a[i];
      if (s) s[i] = v != v ? v : (v > 0 ? 1 : 0);
      f[i] = v != v ? v : (v > 0 ? v : 0);
    }
  } else if (act == IL_ACT_NONE) {
    if (f != a) memmove(f, a, len * sizeof *f);
    if (s) IL_CHECK(cpu_fill(ctx, len, 1, s));
  } else {
    return bad_act(act);
  }
  return IL_OK;
}

static il_status cpu_act_deriv(void *ctx, size_t len, il_act act, const il_real *f, il_real *s) {
  FLOPS(ctx, len);
  if (act == IL_ACT_TANH) {
    for (size_t i = 0; i < len; i++) s[i] = 1 - f[i] * f[i];
  } else if (act == IL_ACT_RELU) {
    for (size_t i = 0; i < len; i++) s[i] = f[i] != f[i] ? f[i] : (f[i] > 0 ? 1 : 0);
  } else if (act == IL_ACT_NONE) {
    return cpu_fill(ctx, len, 1, s);
  } else {
    return bad_act(act);
  }
  return IL_OK;
}

static il_status cpu_act_dmul(void *ctx, size_t len, il_act act, const il_real *f, const il_real *u, il_real *out) {
  FLOPS(ctx, 2.0 * len);
  (void)ctx;
  if (act == IL_ACT_TANH) {
    for (size_t i = 0; i < len; i++) out[i] = (1 - f[i] * f[i]) * u[i];
  } else if (act == IL_ACT_RELU) {
    for (size_t i = 0; i < len; i++) out[i] = f[i] != f[i] ? f[i] : (f[i] > 0 ? u[i] : 0);
  } else if (act == IL_ACT_NONE) {
    if (out != u) memmove(out, u, len * sizeof *out);
  } else {
    return bad_act(act);
  }
  return IL_OK;
}

static il_status cpu_act_d2(void *ctx, size_t len, il_act act, const il_real *f, const il_real *w, il_real *q,
                            il_real *sw) {
  FLOPS(ctx, 4.0 * len);
  (void)ctx;
  if (act == IL_ACT_TANH) { /* s = 1 - f^2, s' = -2 s f */
    for (size_t i = 0; i < len; i++) {
      il_real s = 1 - f[i] * f[i];
      sw[i] = s * w[i];
      q[i] = w[i] * q[i] * (-2 * s * f[i]);
    }
  } else if (act == IL_ACT_RELU || act == IL_ACT_NONE) { /* s' = 0 */
    for (size_t i = 0; i < len; i++) {
      const il_real s = act == IL_ACT_NONE ? 1 : (f[i] != f[i] ? f[i] : (f[i] > 0 ? 1 : 0));
      sw[i] = s * w[i];
      q[i] = f[i] != f[i] ? f[i] : 0;
    }
  } else {
    return bad_act(act);
  }
  return IL_OK;
}

static il_status cpu_sech2_seed(void *ctx, size_t len, const il_real *a, il_real *s) {
  FLOPS(ctx, len);
  (void)ctx;
  for (size_t i = 0; i < len; i++) {
    const il_real p = il_cosh(a[i]), q = p * p;
    s[i] = (il_real)1 / q;
  }
  return IL_OK;
}

static il_status cpu_sech2_seed_d2(void *ctx, size_t len, const il_real *a, const il_real *w, il_real *q,
                                   il_real *sw) {
  FLOPS(ctx, 4.0 * len);
  (void)ctx;
  for (size_t i = 0; i < len; i++) {
    const il_real p = il_cosh(a[i]), qq = p * p, s = (il_real)1 / qq;
    const il_real s_bar = w[i] * q[i];
    sw[i] = s * w[i];
    const il_real q_bar = -s_bar * (s * s); /* reciprocal backward: -grad * result^2 */
    const il_real p_bar = q_bar * (2 * p);  /* pow(., 2) backward: 0 * inf = NaN on overflow */
    q[i] = p_bar * il_sinh(a[i]);           /* cosh backward */
  }
  return IL_OK;
}

/* ---- per row ---- */
static il_status cpu_row_lincomb(void *ctx, int B, int n, il_real s, const il_real *a, const il_real *x, il_real beta,
                                 const il_real *y, il_real *out) {
  FLOPS(ctx, 2.0 * B * n);
  (void)ctx;
  for (int b = 0; b < B; b++) {
    const il_real c = s * a[b];
    const il_real *xb = x + (size_t)b * n, *yb = y ? y + (size_t)b * n : NULL;
    il_real *ob = out + (size_t)b * n;
    if (beta == 0 || !yb)
      for (int j = 0; j < n; j++) ob[j] = c * xb[j];
    else if (beta == 1)
      for (int j = 0; j < n; j++) ob[j] = c * xb[j] + yb[j];
    else
      for (int j = 0; j < n; j++) ob[j] = c * xb[j] + beta * yb[j];
  }
  return IL_OK;
}

static il_status cpu_row_select(void *ctx, int B, int n, const unsigned char *mask, int want, const il_real *src,
                                il_real *dst) {
  (void)ctx;
  for (int b = 0; b < B; b++)
    if ((mask[b] != 0) == (want != 0) && dst != src)
      memcpy(dst + (size_t)b * n, src + (size_t)b * n, (size_t)n * sizeof *dst);
  return IL_OK;
}

static il_status cpu_row_index_copy(void *ctx, int B, int n, const int *sidx, const il_real *src, const int *didx,
                                    il_real *dst) {
  (void)ctx;
  for (int b = 0; b < B; b++)
    memcpy(dst + (size_t)(didx ? didx[b] : b) * n, src + (size_t)(sidx ? sidx[b] : b) * n, (size_t)n * sizeof *dst);
  return IL_OK;
}

static il_status cpu_row_fill(void *ctx, int B, int n, const unsigned char *mask, int want, il_real v, il_real *dst) {
  (void)ctx;
  for (int b = 0; b < B; b++)
    if ((mask[b] != 0) == (want != 0)) {
      il_real *d = dst + (size_t)b * n;
      if (v == 0) memset(d, 0, (size_t)n * sizeof *d);
      else
        for (int j = 0; j < n; j++) d[j] = v;
    }
  return IL_OK;
}


static il_status cpu_row_combine(void *ctx, int B, int n, int k, const il_real *const *X, const il_real *coef,
                                 il_real beta, il_real *out) {
  FLOPS(ctx, 2.0 * B * n * k);
  (void)ctx;
  for (int b = 0; b < B; b++) {
    il_real *ob = out + (size_t)b * n;
    if (beta != 0 && beta != 1)
      for (int j = 0; j < n; j++) ob[j] *= beta;
    il_cpu_combine_row(n, k, X, (size_t)b * n, coef + (size_t)b * k, beta == 0 ? NULL : ob, ob);
  }
  return IL_OK;
}

/* One low-rank apply of a row: ob = a + sum_i P_i (Q_i . a), the dots rounded to il_real,
 * in chunks of 64 terms (a stack buffer; the order of the terms is kept; ob is not a). */
static void lowrank_row(int n, int k, const il_real *const *P, const il_real *const *Q, size_t off,
                        const il_real *a, il_real *ob) {
  enum { CH = 64 };
  double d[CH];
  il_real cf[CH];
  if (k == 0) memcpy(ob, a, (size_t)n * sizeof *ob);
  for (int i = 0; i < k; i += CH) {
    const int kc = k - i < CH ? k - i : CH;
    il_cpu_row_dots(n, kc, Q + i, off, a, d);
    for (int t = 0; t < kc; t++) cf[t] = (il_real)d[t];
    il_cpu_combine_row(n, kc, P + i, off, cf, i == 0 ? a : ob, ob); /* the first terms start from a */
  }
}

static il_status cpu_row_lowrank(void *ctx, int B, int n, int k, const il_real *const *P, const il_real *const *Q,
                                 const il_real *a, il_real *oa, const il_real *c, il_real *oc) {
  FLOPS(ctx, (c ? 8.0 : 4.0) * B * n * k);
  (void)ctx;
  for (int b = 0; b < B; b++) { /* both applies of a row while its P and Q rows are in L1 */
    const size_t off = (size_t)b * n;
    lowrank_row(n, k, P, Q, off, a + off, oa + off);
    if (c) lowrank_row(n, k, Q, P, off, c + off, oc + off);
  }
  return IL_OK;
}

static il_status cpu_col_sum_add(void *ctx, int B, int n, const il_real *a, il_real *out) {
  FLOPS(ctx, (double)B * n);
  (void)ctx;
  for (int r = 0; r < B; r++)
    for (int j = 0; j < n; j++) out[j] += a[(size_t)r * n + j];
  return IL_OK;
}

/* ---- reductions ---- */
/* Reductions accumulate in double; `omp simd reduction` lets the compiler
 * reorder the sum into vector lanes (a strict left-to-right sum cannot vectorise). */
static double sqdist_d(size_t len, const il_real *a, const il_real *b) {
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

static double dot_d(int n, const il_real *x, const il_real *y) {
  double acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int j = 0; j < n; j++) acc += (double)x[j] * (double)y[j];
  return acc;
}

static il_status cpu_sqdist(void *ctx, size_t len, const il_real *a, const il_real *b, double *out) {
  FLOPS(ctx, 3.0 * len);
  (void)ctx;
  *out = sqdist_d(len, a, b);
  return IL_OK;
}

static il_status cpu_row_sqdist(void *ctx, int B, int n, const il_real *a, const il_real *b, double *out) {
  FLOPS(ctx, 3.0 * B * n);
  (void)ctx;
  for (int r = 0; r < B; r++) out[r] = sqdist_d((size_t)n, a + (size_t)r * n, b ? b + (size_t)r * n : NULL);
  return IL_OK;
}

static il_status cpu_row_dot(void *ctx, int B, int n, int k, const il_real *const *X, const il_real *y, double *out) {
  FLOPS(ctx, 2.0 * B * n * k);
  (void)ctx;
  for (int b = 0; b < B; b++) il_cpu_row_dots(n, k, X, (size_t)b * n, y + (size_t)b * n, out + (size_t)b * k);
  return IL_OK;
}

static il_status cpu_row_sub_dot(void *ctx, int B, int n, int k, const il_real *const *X, const il_real *a,
                                 const il_real *c, il_real *d, double *out) {
  FLOPS(ctx, (double)B * n + 2.0 * B * n * k);
  (void)ctx;
  for (int b = 0; b < B; b++) { /* the row of d is still in L1 when its dots read it */
    const size_t off = (size_t)b * n;
    for (int j = 0; j < n; j++) d[off + j] = a[off + j] - c[off + j];
    il_cpu_row_dots(n, k, X, off, d + off, out + (size_t)b * k);
  }
  return IL_OK;
}

static il_status cpu_row_mgs(void *ctx, int B, int n, int k, const il_real *const *V, il_real *w, double *h) {
  FLOPS(ctx, 4.0 * B * n * k + 2.0 * B * n);
  (void)ctx;
  for (int b = 0; b < B; b++) {
    il_real *wb = w + (size_t)b * n;
    double *hb = h + (size_t)b * (k + 1);
    for (int i = 0; i < k; i++) {
      const il_real *vi = V[i] + (size_t)b * n;
      const double c = dot_d(n, wb, vi);
      hb[i] = c;
      for (int q = 0; q < n; q++) wb[q] -= (il_real)c * vi[q];
    }
    hb[k] = sqrt(dot_d(n, wb, wb));
  }
  return IL_OK;
}

static il_status cpu_absmax(void *ctx, size_t len, const il_real *a, double *out) {
  (void)ctx;
  double mx = 0;
  for (size_t i = 0; i < len; i++) mx = fabs((double)a[i]) > mx ? fabs((double)a[i]) : mx;
  *out = mx;
  return IL_OK;
}

/* Finite iff |a| as an integer is below the all-ones exponent. A max over 16 independent lanes
 * vectorises without a loop-carried chain per vector (isfinite's and-reduction ran 4 floats a
 * cycle; the fp/unroll backward checks every step's dz, the model every gradient). */
#if IL_PREC == 32
typedef uint32_t fin_bits;
#define FIN_ABS 0x7fffffffu
#define FIN_INF 0x7f800000u
#else
typedef uint64_t fin_bits;
#define FIN_ABS 0x7fffffffffffffffull
#define FIN_INF 0x7ff0000000000000ull
#endif
static il_status cpu_all_finite(void *ctx, size_t len, const il_real *a, int *out) {
  (void)ctx;
  enum { L = 64 / sizeof(il_real) * 2 };
  fin_bits m[L] = {0}, top = 0;
  size_t i = 0;
  for (; i + L <= len; i += L)
    for (int j = 0; j < L; j++) {
      fin_bits u;
      memcpy(&u, a + i + j, sizeof u);
      u &= FIN_ABS;
      m[j] = u > m[j] ? u : m[j];
    }
  for (; i < len; i++) {
    fin_bits u;
    memcpy(&u, a + i, sizeof u);
    u &= FIN_ABS;
    top = u > top ? u : top;
  }
  for (int j = 0; j < L; j++) top = m[j] > top ? m[j] : top;
  *out = top < FIN_INF;
  return IL_OK;
}

static il_status cpu_compare(void *ctx, size_t len, const il_real *a, const il_real *b, double *out) {
  FLOPS(ctx, 8.0 * len);
  (void)ctx;
  double dot = 0, aa = 0, bb = 0, dd = 0;
  for (size_t i = 0; i < len; i++) {
    const double x = a[i], y = b[i];
    dot += x * y;
    aa += x * x;
    bb += y * y;
    dd += (x - y) * (x - y);
  }
  out[0] = dot, out[1] = aa, out[2] = bb, out[3] = dd;
  return IL_OK;
}

/* ---- the head ---- */
/* softmax cross-entropy, log-sum-exp with the max subtracted */
static il_status cpu_xent_fwd(void *ctx, int B, int c, const il_real *logits, const unsigned char *labels,
                              il_real *p, double *loss_sum, int *errors) {
  FLOPS(ctx, 4.0 * B * c);
  (void)ctx;
  double loss = 0;
  int err = 0;
  for (int r = 0; r < B; r++) {
    const il_real *l = logits + (size_t)r * c;
    il_real *pr = p + (size_t)r * c;
    int arg = 0;
    double mx = l[0];
    for (int j = 1; j < c; j++)
      if (l[j] > mx) { mx = l[j]; arg = j; }
    double sum = 0;
    for (int j = 0; j < c; j++) sum += exp((double)l[j] - mx);
    for (int j = 0; j < c; j++) pr[j] = (il_real)(exp((double)l[j] - mx) / sum);
    if (labels) {
      loss += log(sum) + mx - (double)l[labels[r]];
      err += (arg != labels[r]) || !isfinite(mx); /* NaN logits count as errors */
    }
  }
  *loss_sum = loss;
  *errors = err;
  return IL_OK;
}

static il_status cpu_xent_bwd(void *ctx, int B, int c, const unsigned char *labels, il_real scale, il_real *p) {
  FLOPS(ctx, (double)B * c);
  (void)ctx;
  for (int r = 0; r < B; r++) {
    for (int j = 0; j < c; j++) p[(size_t)r * c + j] *= scale;
    p[(size_t)r * c + labels[r]] -= scale;
  }
  return IL_OK;
}

/* ---- batched LU: the compact layout (cpu_lu_compact.h) for n <= IL_LUC_MAX_N, else
 * row-major n x n blocks, then (B, n) pivots, factored by LAPACK per sample. The choice
 * depends on n only, so every op recomputes it. ---- */
static void cpu_lu_layout(void *ctx, int B, int n, size_t *bytes_a, size_t *bytes_p) {
  (void)ctx;
  if (il_luc_use(n)) {
    const size_t lanes = il_luc_groups(B) * IL_LUC_VL;
    *bytes_a = lanes * n * n * sizeof(il_real);
    *bytes_p = lanes * n * sizeof(il_luc_int);
    return;
  }
  *bytes_a = (size_t)B * n * n * sizeof(il_real);
  *bytes_p = (size_t)B * n * sizeof(int);
}

static il_status cpu_jac_eye_minus_diag_w(void *ctx, int B, int n, const il_real *restrict s,
                                          const il_real *restrict W, il_lu *lu) {
  FLOPS(ctx, (double)B * n * n);
  if (il_luc_use(n)) return il_luc_jac(THREADS(ctx), B, n, s, W, lu->a);
  il_real *restrict J = lu->a;
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
  return IL_OK;
}

static il_status cpu_lu_norm_inf(void *ctx, const il_lu *lu, double *out) {
  FLOPS(ctx, 2.0 * lu->B * lu->n * lu->n);
  (void)ctx;
  const int B = lu->B, n = lu->n;
  const il_real *A = lu->a;
  if (il_luc_use(n)) return il_luc_norm_inf(B, n, A, out);
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
  return IL_OK;
}

/* Small LUs gain nothing from BLAS threads; we split the batch over threads instead. */
static il_status cpu_lu_factor(void *ctx, il_lu *lu, int *info) {
  FLOPS(ctx, 2.0 / 3.0 * lu->B * (double)lu->n * lu->n * lu->n);
  const int B = lu->B, n = lu->n, T = THREADS(ctx);
  const size_t nn = (size_t)n * n;
  il_real *A = lu->a;
  int *ipiv = lu->p;
  if (il_luc_use(n)) return il_luc_factor(T, B, n, A, lu->p, info);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(T) if (T > 1 && B > 1)
#endif
  for (int b = 0; b < B; b++) lapack_getrf(&n, &n, A + (size_t)b * nn, &n, ipiv + (size_t)b * n, &info[b]);
  for (int b = 0; b < B; b++)
    if (info[b] < 0) return IL_ERR(IL_ERR_INTERNAL, "getrf: illegal argument %d", -info[b]);
  return IL_OK;
}

static il_status cpu_lu_solve(void *ctx, int trans, const il_lu *lu, il_real *R) {
  FLOPS(ctx, 2.0 * lu->B * (double)lu->n * lu->n);
  const int B = lu->B, n = lu->n, T = THREADS(ctx);
  const size_t nn = (size_t)n * n;
  const il_real *LU = lu->a;
  const int *ipiv = lu->p;
  const char t = trans ? 'N' : 'T'; /* row-major A is column-major A^T */
  const int one = 1;
  int bad = 0;
  if (il_luc_use(n)) return il_luc_solve(T, trans, B, n, LU, lu->p, R);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(T) if (T > 1 && B > 1) reduction(| : bad)
#endif
  for (int b = 0; b < B; b++) {
    int info;
    lapack_getrs(&t, &n, &one, LU + (size_t)b * nn, &n, ipiv + (size_t)b * n, R + (size_t)b * n, &n, &info);
    bad |= (info != 0);
  }
  if (bad) return IL_ERR(IL_ERR_INTERNAL, "getrs failed");
  return IL_OK;
}

/* LAPACK factored the column-major view A^T, so its 1-norm estimate of A^T is
 * the infinity-norm estimate of the row-major A, with anorm = ||A||_inf = ||A^T||_1. */
static il_status cpu_lu_rcond(void *ctx, const il_lu *lu, const double *anorm, double *rcond) {
  FLOPS(ctx, 4.0 * lu->B * (double)lu->n * lu->n); /* gecon: a few triangular solves */
  (void)ctx;
  const int B = lu->B, n = lu->n;
  const il_real *LU = lu->a;
  if (il_luc_use(n)) return il_luc_rcond(B, n, LU, anorm, rcond);
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

const il_backend_ops il_backend_cpu_ops = {
    .name = "cpu",
    .summary = "OpenBLAS/LAPACK and C kernels on host memory (the reference)",
    .host_accessible = 1,
    .small_k_gemm = 1, /* (100, K) x (K, 100) dW terms: K = 100 at 145-167 GFLOP/s, K = 1600 at 80-92 */
    .create = cpu_create,
    .destroy = cpu_destroy,
    .describe = cpu_describe,
    .mem_stats = cpu_mem_stats,
    .flops = cpu_flops,
    .alloc = cpu_alloc,
    .release = cpu_release,
    .zero = cpu_zero,
    .copy = cpu_copy,
    .sync = cpu_sync,
    .gemm = cpu_gemm,
    .gemm_strided_batched = cpu_gemm_strided_batched,
    .gemm_ep = cpu_gemm_ep,
    .fill = cpu_fill,
    .axpby = cpu_axpby,
    .lincomb = cpu_lincomb,
    .mul = cpu_mul,
    .act_fwd = cpu_act_fwd,
    .act_deriv = cpu_act_deriv,
    .act_dmul = cpu_act_dmul,
    .act_d2 = cpu_act_d2,
    .sech2_seed = cpu_sech2_seed,
    .sech2_seed_d2 = cpu_sech2_seed_d2,
    .row_lincomb = cpu_row_lincomb,
    .row_select = cpu_row_select,
    .row_fill = cpu_row_fill,
    .row_combine = cpu_row_combine,
    .row_lowrank = cpu_row_lowrank,
    .col_sum_add = cpu_col_sum_add,
    .row_index_copy = cpu_row_index_copy,
    .sqdist = cpu_sqdist,
    .row_sqdist = cpu_row_sqdist,
    .row_dot = cpu_row_dot,
    .row_sub_dot = cpu_row_sub_dot,
    .row_mgs = cpu_row_mgs,
    .absmax = cpu_absmax,
    .all_finite = cpu_all_finite,
    .compare = cpu_compare,
    .xent_fwd = cpu_xent_fwd,
    .xent_bwd = cpu_xent_bwd,
    .lu_layout = cpu_lu_layout,
    .jac_eye_minus_diag_w = cpu_jac_eye_minus_diag_w,
    .lu_norm_inf = cpu_lu_norm_inf,
    .lu_factor = cpu_lu_factor,
    .lu_solve = cpu_lu_solve,
    .lu_rcond = cpu_lu_rcond,
};
