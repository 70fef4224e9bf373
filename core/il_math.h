/* core/il_math.h: branch-free tanh and sech^2 that compilers vectorise.
 * glibc's tanhf is a scalar call; in the fixed-point loop it costs more than
 * the GEMM. We evaluate e = expm1(-2|a|) with a Cody-Waite reduction and a
 * Taylor polynomial, then
 *   tanh|a| = -e / (2 + e)                 (no cancellation near 0)
 *   sech^2 a = 4 (1 + e) / (2 + e)^2       (no cancellation for large |a|,
 *                                           unlike 1 - tanh^2)
 * Accuracy is checked against libm in tests/test_math.c. NaN propagates. */
#ifndef IL_MATH_H
#define IL_MATH_H

#include <stdint.h>
#include <string.h>

#include "il_prec.h"

#if IL_PREC == 32
#define IL_EXP_MIN_ARG (-87.0f)
typedef int32_t il_int_bits;
typedef uint32_t il_uint_bits;
#define IL_MANT_BITS 23
#define IL_EXP_BIAS 127
#define IL_ROUND_MAGIC 12582912.0f /* 1.5 * 2^23: adding it rounds to nearest integer */
#else
#define IL_EXP_MIN_ARG (-708.0)
typedef int64_t il_int_bits;
typedef uint64_t il_uint_bits;
#define IL_MANT_BITS 52
#define IL_EXP_BIAS 1023
#define IL_ROUND_MAGIC 6755399441055744.0 /* 1.5 * 2^52 */
#endif

/* exp(y) and expm1(y) for y <= 0 (clamped at IL_EXP_MIN_ARG). */
static inline void il_exp_expm1_neg(il_real y, il_real *ex, il_real *em1) {
  const il_real log2e = (il_real)1.4426950408889634;
  const il_real ln2_hi = (il_real)0.693145751953125;      /* few bits: k*ln2_hi exact */
  const il_real ln2_lo = (il_real)1.4286068203094172e-06;
  /* clamp, and map NaN to 0 so the float->int conversion below is defined;
   * callers put the NaN back */
  y = (y < IL_EXP_MIN_ARG) ? IL_EXP_MIN_ARG : y;
  y = (y != y) ? 0 : y;
  il_real kf = (y * log2e + IL_ROUND_MAGIC) - IL_ROUND_MAGIC; /* round(y / ln2) */
  il_real r = (y - kf * ln2_hi) - kf * ln2_lo;                 /* |r| <= ln2/2 */
  /* p = expm1(r) by Taylor; the truncation error is below half an ulp on |r| <= 0.347 */
#if IL_PREC == 32
  il_real p = r * (1 + r * ((il_real)(1.0 / 2) + r * ((il_real)(1.0 / 6) + r * ((il_real)(1.0 / 24) +
              r * ((il_real)(1.0 / 120) + r * ((il_real)(1.0 / 720) + r * (il_real)(1.0 / 5040)))))));
#else
  il_real p = r * (1 + r * (1.0 / 2 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120 + r * (1.0 / 720 +
              r * (1.0 / 5040 + r * (1.0 / 40320 + r * (1.0 / 362880 + r * (1.0 / 3628800 +
              r * (1.0 / 39916800 + r * (1.0 / 479001600 + r * (1.0 / 6227020800.0)))))))))))));
#endif
  il_int_bits k = (il_int_bits)kf;
  il_uint_bits bits = (il_uint_bits)(k + IL_EXP_BIAS) << IL_MANT_BITS; /* k + bias >= 1 */
  il_real scale;
  memcpy(&scale, &bits, sizeof scale); /* 2^k, k in [-126, 0] (float) or [-1022, 0] (double) */
  *ex = scale + scale * p;
  /* 2^k (1 + p) - 1 = 2^k p + (2^k - 1); exact to rounding when k == 0 */
  *em1 = scale * p + (scale - 1);
}

/* t = tanh(a), s = sech^2(a) = 1 - tanh^2(a). */
static inline void il_tanh_sech2_1(il_real a, il_real *t, il_real *s) {
  il_real ax = a < 0 ? -a : a;
  il_real ex, e;
  il_exp_expm1_neg(-2 * ax, &ex, &e);
  il_real d = 2 + e; /* = 1 + exp(-2|a|) */
  il_real th = -e / d;
  il_real sh = 4 * ex / (d * d);
  th = a < 0 ? -th : th;
  /* a != a is NaN: keep it visible instead of clamping it to a number */
  *t = (a != a) ? a : th;
  *s = (a != a) ? a : sh;
}

#endif
