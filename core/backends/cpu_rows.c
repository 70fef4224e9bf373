/* core/backends/cpu_rows.c: the CPU backend's per-row kernels: the k dot
 * products of one row against y in double (il_backend.h: reductions accumulate
 * in double), and the combination of k rows with per-row coefficients.
 *
 * Why kernels of their own: Anderson's Gram row and mixing and Broyden's
 * low-rank applies work on k = 2..22 rows of n = 100..400 floats per sample.
 * There `omp simd` dots spend as long in their scalar tail and their per-lane
 * reduction arrays (kept on the stack) as in the loop, and widening float to
 * double is the bottleneck (vcvtps2pd: two uops per vector). With AVX-512 the
 * dots of up to 8 rows share one widened y, 8 lanes per instruction, and the
 * tail is a masked load: measured 1.65x (n = 100) to 1.9x (n = 400) faster
 * than the `omp simd` path for k = 7, B = 100; elsewhere (float64, no AVX-512)
 * the portable dots below. The combination has one path (see there). */
#include <string.h>

#include "cpu_rows.h"

#if IL_PREC == 32 && defined(__AVX512F__)
#include <immintrin.h>

/* K <= 8 dots at once, plus y . y when SQ (y is widened once for both); inlined with
 * constant K and SQ so the accumulators stay in registers. */
static inline __attribute__((always_inline)) void dots_k(int K, int SQ, int n, const float *const *X, size_t off,
                                                         const float *y, double *out) {
  __m512d a[9];
  const float *x[8];
  for (int i = 0; i < K + SQ; i++) a[i] = _mm512_setzero_pd();
  for (int i = 0; i < K; i++) x[i] = X[i] + off;
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m512d yv = _mm512_cvtps_pd(_mm256_loadu_ps(y + j));
    for (int i = 0; i < K; i++) a[i] = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x[i] + j)), yv, a[i]);
    if (SQ) a[K] = _mm512_fmadd_pd(yv, yv, a[K]);
  }
  if (j < n) { /* masked-off lanes load zeros and do not fault */
    const __mmask16 m = (__mmask16)((1u << (n - j)) - 1);
    const __m512d yv = _mm512_cvtps_pd(_mm512_castps512_ps256(_mm512_maskz_loadu_ps(m, y + j)));
    for (int i = 0; i < K; i++)
      a[i] = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(_mm512_maskz_loadu_ps(m, x[i] + j))), yv, a[i]);
    if (SQ) a[K] = _mm512_fmadd_pd(yv, yv, a[K]);
  }
  for (int i = 0; i < K + SQ; i++) out[i] = _mm512_reduce_add_pd(a[i]);
}

/* Anderson's Gram row ends with the new residual against itself (X[k-1] is y): that dot
 * reuses the widened y instead of widening the same row again. */
void il_cpu_row_dots(int n, int k, const il_real *const *X, size_t off, const il_real *y, double *out) {
  const int sq = k > 0 && X[k - 1] + off == y, kx = k - sq;
  for (int i = 0; i < kx || (sq && i == kx); i += 8) {
    const il_real *const *x = X + i;
    double *o = out + i;
    const int r = kx - i < 8 ? kx - i : 8, last = sq && r < 8; /* y . y joins the last pass with room */
    switch (r + 9 * last) {
    case 0 + 9: dots_k(0, 1, n, x, off, y, o); break;
    case 1: dots_k(1, 0, n, x, off, y, o); break;
    case 1 + 9: dots_k(1, 1, n, x, off, y, o); break;
    case 2: dots_k(2, 0, n, x, off, y, o); break;
    case 2 + 9: dots_k(2, 1, n, x, off, y, o); break;
    case 3: dots_k(3, 0, n, x, off, y, o); break;
    case 3 + 9: dots_k(3, 1, n, x, off, y, o); break;
    case 4: dots_k(4, 0, n, x, off, y, o); break;
    case 4 + 9: dots_k(4, 1, n, x, off, y, o); break;
    case 5: dots_k(5, 0, n, x, off, y, o); break;
    case 5 + 9: dots_k(5, 1, n, x, off, y, o); break;
    case 6: dots_k(6, 0, n, x, off, y, o); break;
    case 6 + 9: dots_k(6, 1, n, x, off, y, o); break;
    case 7: dots_k(7, 0, n, x, off, y, o); break;
    case 7 + 9: dots_k(7, 1, n, x, off, y, o); break;
    default: dots_k(8, 0, n, x, off, y, o); break;
    }
    if (last) break;
  }
}

#else

/* Four dots at a time: y is loaded and widened once per four, and the four sums are
 * independent chains. `omp simd reduction` lets the compiler split each sum into lanes. */
static void dots4(int n, const il_real *x0, const il_real *x1, const il_real *x2, const il_real *x3,
                  const il_real *y, double *out) {
  double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
  for (int j = 0; j < n; j++) {
    const double yj = y[j];
    a0 += (double)x0[j] * yj;
    a1 += (double)x1[j] * yj;
    a2 += (double)x2[j] * yj;
    a3 += (double)x3[j] * yj;
  }
  out[0] = a0, out[1] = a1, out[2] = a2, out[3] = a3;
}

static void dots2(int n, const il_real *x0, const il_real *x1, const il_real *y, double *out) {
  double a0 = 0, a1 = 0;
#pragma omp simd reduction(+ : a0, a1)
  for (int j = 0; j < n; j++) {
    const double yj = y[j];
    a0 += (double)x0[j] * yj;
    a1 += (double)x1[j] * yj;
  }
  out[0] = a0, out[1] = a1;
}

static double dot1(int n, const il_real *x, const il_real *y) {
  double acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int j = 0; j < n; j++) acc += (double)x[j] * (double)y[j];
  return acc;
}

void il_cpu_row_dots(int n, int k, const il_real *const *X, size_t off, const il_real *y, double *out) {
  int i = 0;
  for (; i + 4 <= k; i += 4) dots4(n, X[i] + off, X[i + 1] + off, X[i + 2] + off, X[i + 3] + off, y, out + i);
  if (i + 2 <= k) dots2(n, X[i] + off, X[i + 1] + off, y, out + i), i += 2;
  if (i < k) out[i] = dot1(n, X[i] + off, y);
}


#endif

/* Up to four terms per pass over the row, summed in a register in order of i, so a row is
 * stored ceil(k / 4) times instead of k + 1. One path for all builds: at these sizes it
 * streams its rows from L2 (85 GB/s at n = 100, k = 6), and a 16-lane version with all
 * terms in one pass measured 8% slower at n = 100 and 7% faster at n = 400. */
#define COMBINE_PASS(TERMS)                                                                    \
  _Pragma("omp simd") for (int j = 0; j < n; j++) {                                          \
    il_real acc = i > 0 ? ob[j] : src ? src[j] : (il_real)0;                                \
    TERMS;                                                                                   \
    ob[j] = acc;                                                                             \
  }
void il_cpu_combine_row(int n, int k, const il_real *const *X, size_t off, const il_real *cb, const il_real *src,
                        il_real *ob) {
  if (k == 0) {
    if (!src) memset(ob, 0, (size_t)n * sizeof *ob);
    else if (src != ob) memcpy(ob, src, (size_t)n * sizeof *ob);
  }
  for (int i = 0; i < k; i += 4) {
    const il_real *x0 = X[i] + off, c0 = cb[i];
    switch (k - i) {
    case 1: COMBINE_PASS(acc += c0 * x0[j]) break;
    case 2: {
      const il_real *x1 = X[i + 1] + off, c1 = cb[i + 1];
      COMBINE_PASS(acc += c0 * x0[j]; acc += c1 * x1[j]) break;
    }
    case 3: {
      const il_real *x1 = X[i + 1] + off, *x2 = X[i + 2] + off, c1 = cb[i + 1], c2 = cb[i + 2];
      COMBINE_PASS(acc += c0 * x0[j]; acc += c1 * x1[j]; acc += c2 * x2[j]) break;
    }
    default: {
      const il_real *x1 = X[i + 1] + off, *x2 = X[i + 2] + off, *x3 = X[i + 3] + off;
      const il_real c1 = cb[i + 1], c2 = cb[i + 2], c3 = cb[i + 3];
      COMBINE_PASS(acc += c0 * x0[j]; acc += c1 * x1[j]; acc += c2 * x2[j]; acc += c3 * x3[j]) break;
    }
    }
  }
}
#undef COMBINE_PASS
