/* tests/test_util.h: helpers missing from cmocka 1.1.5 (it has no double asserts). */
#ifndef IL_TEST_UTIL_H
#define IL_TEST_UTIL_H

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

/* |a - b| <= atol + rtol * |b| elementwise; prints the first offender. */
#define assert_allclose(a, b, n, rtol, atol) il_assert_allclose_((a), (b), (n), (rtol), (atol), #a, __FILE__, __LINE__)

static inline void il_assert_allclose_(const double *a, const double *b, size_t n, double rtol, double atol,
                                       const char *what, const char *file, int line) {
  for (size_t i = 0; i < n; i++) {
    double d = fabs(a[i] - b[i]);
    if (!(d <= atol + rtol * fabs(b[i]))) {
      print_error("%s:%d: %s[%zu] = %.17g, expected %.17g (|diff| %.3g > atol %.3g + rtol %.3g * |b|)\n", file, line,
                  what, i, a[i], b[i], d, atol, rtol);
      _fail(file, line);
    }
  }
}

#define assert_close(a, b, rtol, atol)                                                 \
  do {                                                                                 \
    double il_a_ = (a), il_b_ = (b);                                                   \
    il_assert_allclose_(&il_a_, &il_b_, 1, (rtol), (atol), #a, __FILE__, __LINE__);   \
  } while (0)

/* Fail with the library's error message when a call does not return IL_OK. */
#define assert_ok(call)                                                                 \
  do {                                                                                  \
    il_status il_s_ = (call);                                                           \
    if (il_s_ != IL_OK) {                                                               \
      print_error("%s:%d: %s returned %d: %s\n", __FILE__, __LINE__, #call, (int)il_s_, il_error_message()); \
      _fail(__FILE__, __LINE__);                                                        \
    }                                                                                   \
  } while (0)

#endif
