/* tests/test_math.c: the vectorised tanh/sech^2 kernel against libm, in the
 * precision this file is compiled with (the test is built for 32 and 64): the
 * backend's act_fwd over its own memory, and the scalar kernel's special values. */
#include <stdlib.h>

#include "il_backend.h"
#include "backends/cpu_map_fused.h"
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

/* Distance in ulps between two finite values of il_real (0 for +0 vs -0). */
static double ulps(il_real x, il_real y) {
  if (x == y) return 0;
  il_uint_bits a, b;
  memcpy(&a, &x, sizeof a);
  memcpy(&b, &y, sizeof b);
  const il_uint_bits sign = (il_uint_bits)1 << (sizeof a * 8 - 1);
  const double oa = a & sign ? -(double)(a & ~sign) : (double)a, ob = b & sign ? -(double)(b & ~sign) : (double)b;
  return fabs(oa - ob);
}

/* The fused map's vector tanh/sech^2 (core/backends/cpu_map_fused.c: rcp14 + one Markstein
 * step instead of two divisions) against the scalar il_tanh_sech2_1 it replaces: within 1 ulp
 * of it, NaN stays NaN. float32: every 61st bit pattern (70 M values: +-0, subnormals, tiny,
 * huge, +-inf and NaNs of both signs included); float64 (not vectorised): a dense sweep. */
static void test_fused_tanh_matches_scalar(void **state) {
  (void)state;
  const size_t chunk = (size_t)1 << 20;
  il_real *a = malloc(chunk * sizeof *a), *tv = malloc(chunk * sizeof *tv), *sv = malloc(chunk * sizeof *sv);
  assert_non_null(a && tv && sv);
  double worst_t = 0, worst_s = 0;
  size_t total = 0, nan_bad = 0;
  static const il_real special[] = {0, -0.0, (il_real)1e-45, (il_real)-1e-45, (il_real)1e-30, (il_real)-3e-8,
                                    (il_real)INFINITY, (il_real)-INFINITY, (il_real)NAN, (il_real)-NAN, 9, -9, 100};
#if IL_PREC == 32
  const uint64_t stride = 61, end = (uint64_t)1 << 32;
#else
  const uint64_t stride = 1, end = 4000001;
#endif
  for (uint64_t base = 0; base < end; base += stride * chunk) {
    size_t m = 0;
    if (base == 0)
      for (; m < sizeof special / sizeof *special; m++) a[m] = special[m];
    for (uint64_t v = base; m < chunk && v < end; v += stride, m++) {
#if IL_PREC == 32
      const uint32_t u = (uint32_t)v;
      memcpy(&a[m], &u, sizeof u);
#else
      a[m] = -60.0 + 120.0 * (double)v / (double)(end - 1);
#endif
    }
    il_cpu_tanh_sech2_vec(m, a, tv, sv);
    for (size_t i = 0; i < m; i++) {
      il_real t, s;
      il_tanh_sech2_1(a[i], &t, &s);
      if (a[i] != a[i]) {
        nan_bad += !(tv[i] != tv[i] && sv[i] != sv[i]);
        continue;
      }
      const double dt = ulps(tv[i], t), ds = ulps(sv[i], s);
      if (dt > worst_t) worst_t = dt;
      if (ds > worst_s) worst_s = ds;
    }
    total += m;
  }
  print_message("vector vs scalar over %zu values (%s, vector kernel %s): tanh %.0f ulp, sech^2 %.0f ulp, NaN lost %zu\n",
                total, IL_REAL_NAME, il_cpu_map_fused_built() ? "built" : "not built: scalar", worst_t, worst_s, nan_bad);
  assert_true(worst_t <= 1);
  assert_true(worst_s <= 1);
  assert_int_equal(nan_bad, 0);
  /* against libm on the grid of test_tanh_sech2_accuracy: the scalar's bounds plus the 1 ulp above */
  const size_t n = 400001;
  for (size_t i = 0; i < n; i++) a[i] = (il_real)(-40.0 + 80.0 * (double)i / (double)(n - 1));
  il_cpu_tanh_sech2_vec(n, a, tv, sv);
  double lt = 0, ls = 0;
  for (size_t i = 0; i < n; i++) {
    const long double x = a[i], rt = tanhl(x), c = coshl(x), rs = 1 / (c * c);
    const double et = rt != 0 ? (double)fabsl((tv[i] - rt) / rt) : fabs((double)tv[i]);
    const double es = rs > 1e-30L ? (double)fabsl((sv[i] - rs) / rs) : 0;
    if (et > lt) lt = et;
    if (es > ls) ls = es;
  }
  print_message("vector kernel vs libm: tanh %.2f ulp, sech^2 %.2f ulp\n", lt / ULP, ls / ULP);
  assert_true(lt <= (MAX_TANH_ULP + 2) * ULP); /* ULP is half an ulp: + 1 ulp */
  assert_true(ls <= (MAX_SECH2_ULP + 2) * ULP);
  /* s NULL (the fp map's case) must give the same tanh */
  il_real t2[sizeof special / sizeof *special];
  il_cpu_tanh_sech2_vec(sizeof special / sizeof *special, special, t2, NULL);
  il_cpu_tanh_sech2_vec(sizeof special / sizeof *special, special, tv, sv);
  for (size_t i = 0; i < sizeof special / sizeof *special; i++)
    assert_true(t2[i] == tv[i] || (t2[i] != t2[i] && tv[i] != tv[i]));
  free(a); free(tv); free(sv);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tanh_sech2_accuracy),
      cmocka_unit_test(test_special_values),
      cmocka_unit_test(test_fused_tanh_matches_scalar),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
