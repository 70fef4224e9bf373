/* tests/test_math.c: the vectorised tanh/sech^2 kernel against libm, in the
 * precision this file is compiled with (the test is built for 32 and 64): the
 * backend's act_fwd over its own memory, and the scalar kernel's special values. */
#include <stdlib.h>

#include "il_backend.h"
#include "il_math.h"
#include "test_util.h"

#if IL_PREC == 32
#define ULP 5.9604645e-08 /* 2^-24 */
#define MAX_TANH_ULP 4.0
#define MAX_SECH2_ULP 8.0
#else
#define ULP 1.1102230246251565e-16 /* 2^-53 */
#define MAX_TANH_ULP 8.0
#define MAX_SECH2_ULP 16.0
#endif

static void test_tanh_sech2_accuracy(void **state) {
  /* the backend's act_fwd on its own memory (ILBENCH_TEST_DEVICE, default cpu) */
  const char *dev = getenv("ILBENCH_TEST_DEVICE");
  const il_backend_options bo = {.threads = 1};
  il_backend *be;
  il_arena sp;
  assert_ok(il_backend_create(dev && *dev ? dev : "cpu", &bo, &be));
  assert_ok(il_arena_init_for(&sp, be, IL_MEM_WORKSPACE, NULL, 0));
  const size_t n = 400001;
  il_real *a = malloc(n * sizeof *a), *t = malloc(n * sizeof *t), *s = malloc(n * sizeof *s);
  il_real *da, *dt, *ds;
  assert_ok(il_arena_alloc_n(&sp, n, sizeof *da, (void **)&da));
  assert_ok(il_arena_alloc_n(&sp, n, sizeof *dt, (void **)&dt));
  assert_ok(il_arena_alloc_n(&sp, n, sizeof *ds, (void **)&ds));
  for (size_t i = 0; i < n; i++) a[i] = (il_real)(-40.0 + 80.0 * (double)i / (double)(n - 1));
  a[n / 2] = 0;
  a[1] = (il_real)1e-30;
  a[2] = (il_real)-3e-8;
  assert_ok(il_upload(be, da, a, n));
  assert_ok(IL_BE(be, act_fwd, n, IL_ACT_TANH, da, dt, ds));
  assert_ok(il_download(be, t, dt, n));
  assert_ok(il_download(be, s, ds, n));
  il_arena_destroy(&sp);
  il_backend_destroy(be);
  double worst_t = 0, worst_s = 0;
  for (size_t i = 0; i < n; i++) {
    long double x = a[i];
    long double rt = tanhl(x), c = coshl(x), rs = 1 / (c * c);
    double et = rt != 0 ? (double)fabsl((t[i] - rt) / rt) : fabs((double)t[i]);
    double es = rs > 1e-30L ? (double)fabsl((s[i] - rs) / rs) : 0;
    if (et > worst_t) worst_t = et;
    if (es > worst_s) worst_s = es;
  }
  print_message("max relative error: tanh %.2f ulp, sech^2 %.2f ulp (%s)\n", worst_t / ULP, worst_s / ULP,
                IL_REAL_NAME);
  assert_true(worst_t <= MAX_TANH_ULP * ULP);
  assert_true(worst_s <= MAX_SECH2_ULP * ULP);
  free(a); free(t); free(s);
}

static void test_special_values(void **state) {
  il_real t, s;
  il_tanh_sech2_1((il_real)NAN, &t, &s);
  assert_true(isnan(t) && isnan(s)); /* NaN must stay visible to the non-finite checks */
  il_tanh_sech2_1((il_real)INFINITY, &t, &s);
  assert_true(t == 1 && s >= 0 && s < 1e-30);
  il_tanh_sech2_1((il_real)-INFINITY, &t, &s);
  assert_true(t == -1 && s >= 0 && s < 1e-30);
  il_tanh_sech2_1((il_real)-0.0, &t, &s);
  assert_true(t == 0 && s == 1);
  il_tanh_sech2_1((il_real)100, &t, &s); /* where the seed's float32 1/cosh^2 gives 0 and its grad inf*0 */
  assert_true(t == 1 && s >= 0 && isfinite(s));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tanh_sech2_accuracy),
      cmocka_unit_test(test_special_values),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
