/* tests/backend/test_backend_ops.c: run the backend self-test (core/il_selftest.h)
 * for every registered backend in the precision this file is compiled with
 * (the test is built for 32 and 64). Prints each backend's op list; fails if
 * any case fails. A backend whose device is missing (create returns
 * IL_ERR_UNSUPPORTED, e.g. CUDA on a CPU machine) is skipped, not failed.
 * ILBENCH_SELFTEST_SEED=S changes the seed (default 0),
 * ILBENCH_SELFTEST_VERBOSE=1 prints every case. */
#include <stdlib.h>

#include "backends/cpu_map_fused.h"
#include "il_backend.h"
#include "il_selftest.h"
#include "test_util.h"

static uint64_t env_u64(const char *name, uint64_t def) {
  const char *v = getenv(name);
  return v && *v ? strtoull(v, NULL, 0) : def;
}

static void run_backend(const char *name, int threads) {
  il_selftest_summary sum;
  const uint64_t seed = env_u64("ILBENCH_SELFTEST_SEED", 0);
  const int verbose = (int)env_u64("ILBENCH_SELFTEST_VERBOSE", 0);
  il_error_clear();
  il_status s = il_selftest_run(name, threads, seed, verbose, stdout, &sum);
  if (!sum.created) {
    if (s == IL_ERR_UNSUPPORTED) {
      print_message("backend %s (%s): skipped, its device is missing: %s\n", name, IL_REAL_NAME, il_error_message());
      il_error_clear();
      skip();
    }
    print_error("backend %s: create failed: %s\n", name, il_error_message());
    fail();
  }
  il_selftest_print(&sum, stdout);
  fflush(stdout);
  if (s != IL_OK) print_error("%s\n", il_error_message());
  il_error_clear();
  assert_int_equal(sum.ops_covered, sum.ops_total);
  assert_int_equal(sum.failed, 0);
  assert_int_equal(s, IL_OK);
}

/* state: the backend's index in the registry */
static void test_backend(void **state) {
  const il_backend_ops *ops = il_backend_at((int)(intptr_t)*state);
  assert_non_null(ops);
  run_backend(ops->name, 1);
}

/* the threaded paths of the CPU kernels (rows and batches split over OpenMP threads) */
static void test_cpu_threads(void **state) {
  (void)state;
  run_backend("cpu", 3);
}

/* The CPU fused kernel called directly, also where the backend sends gemm_ep to OpenBLAS
 * (B < 16: row blocks of 1..7 rows), against a float64 reference, elementwise: a dot product
 * of K terms is off by at most ~K eps of its terms' magnitude (300 eps covers K <= 100 with
 * room), tanh/relu/sech^2 have slopes <= 1, and the double residual of the returned out is
 * exact up to its summation order. */
static void test_cpu_fused_direct(void **state) {
  (void)state;
  if (!il_cpu_map_fused_built()) skip(); /* float64, or no AVX-512: OpenBLAS only */
  static const int Bs[] = {1, 2, 3, 5, 7, 8, 9, 13, 16, 25}, Ns[] = {1, 3, 4, 7, 8, 9, 16, 17, 33, 100},
                   Ks[] = {1, 2, 5, 16, 100};
  static const il_act acts[] = {IL_ACT_NONE, IL_ACT_TANH, IL_ACT_RELU};
  const int maxB = 25, maxN = 100, maxK = 100;
  il_real *A = malloc(sizeof *A * maxB * maxK), *W = malloc(sizeof *W * maxN * maxK), *add = malloc(sizeof *add * maxB * maxN);
  il_real *bias = malloc(sizeof *bias * maxN), *ref = malloc(sizeof *ref * maxB * maxN), *out = malloc(sizeof *out * maxB * maxN);
  il_real *pre = malloc(sizeof *pre * maxB * maxN), *der = malloc(sizeof *der * maxB * maxN);
  double *res = malloc(sizeof *res * maxB);
  assert_non_null(A && W && add && bias && ref && out && pre && der && res);
  uint64_t x = 88172645463325252ULL;
#define RND() (x ^= x << 13, x ^= x >> 7, x ^= x << 17, (double)(x >> 11) / 9007199254740992.0 * 2 - 1)
  for (int i = 0; i < maxB * maxK; i++) A[i] = (il_real)RND();
  for (int i = 0; i < maxN * maxK; i++) W[i] = (il_real)RND();
  for (int i = 0; i < maxB * maxN; i++) add[i] = (il_real)RND(), ref[i] = (il_real)RND();
  for (int i = 0; i < maxN; i++) bias[i] = (il_real)(0.5 * RND());
#undef RND
  const double tol = 300 * (double)IL_EPS;
  int cases = 0;
  for (size_t bi = 0; bi < sizeof Bs / sizeof *Bs; bi++)
    for (size_t ni = 0; ni < sizeof Ns / sizeof *Ns; ni++)
      for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++)
        for (int v = 0; v < 6; v++) {
          const int B = Bs[bi], N = Ns[ni], K = Ks[ki], full = v < 3;
          const il_act act = acts[v % 3];
          const il_epilogue ep = {.add = full ? add : NULL, .bias = full ? bias : NULL, .act = act,
                                  .pre = full ? pre : NULL, .deriv = full ? der : NULL, .res_ref = ref,
                                  .res_rows = full ? res : NULL};
          for (int i = 0; i < B * N; i++) out[i] = pre[i] = der[i] = (il_real)NAN;
          assert_ok(il_cpu_map_fused(1, B, N, K, A, W, &ep, out));
          cases++;
          for (int b = 0; b < B; b++) {
            double r2 = 0;
            for (int j = 0; j < N; j++) {
              double acc = 0, mag = 0;
              for (int k = 0; k < K; k++) {
                const double p = (double)A[b * K + k] * (double)W[j * K + k];
                acc += p, mag += fabs(p);
              }
              if (full) acc += (double)add[b * N + j] + (double)bias[j], mag += fabs((double)add[b * N + j]) + fabs((double)bias[j]);
              const double f = act == IL_ACT_TANH ? tanh(acc) : act == IL_ACT_RELU ? (acc > 0 ? acc : 0) : acc;
              const double c = cosh(acc), s = act == IL_ACT_TANH ? 1 / (c * c) : act == IL_ACT_RELU ? (acc > 0) : 1;
              const double o = out[b * N + j], e = tol * (mag + 1);
              if (!(fabs(o - f) <= e) ||
                  (full && !(fabs(pre[b * N + j] - acc) <= e)) ||
                  (full && !(act == IL_ACT_RELU && fabs(acc) <= e) && !(fabs(der[b * N + j] - s) <= e))) {
                print_error("B=%d N=%d K=%d act=%d full=%d [%d,%d]: out %.9g (want %.9g) pre %.9g (want %.9g) deriv %.9g "
                            "(want %.9g)\n", B, N, K, (int)act, full, b, j, o, f, full ? (double)pre[b * N + j] : 0,
                            acc, full ? (double)der[b * N + j] : 0, s);
                fail();
              }
              const double d = (double)ref[b * N + j] - o;
              r2 += d * d;
            }
            if (full && !(fabs(res[b] - r2) <= 1e-12 * r2)) {
              print_error("B=%d N=%d K=%d: res_rows[%d] = %.17g, want %.17g\n", B, N, K, b, res[b], r2);
              fail();
            }
          }
        }
  print_message("fused kernel, direct: %d cases\n", cases);
  free(A); free(W); free(add); free(bias); free(ref); free(out); free(pre); free(der); free(res);
}

int main(void) {
  const int nb = il_backend_count();
  struct CMUnitTest *tests = calloc((size_t)nb + 2, sizeof *tests);
  char(*names)[64] = calloc((size_t)nb, sizeof *names);
  if (!tests || !names) return 1;
  for (int i = 0; i < nb; i++) {
    snprintf(names[i], sizeof names[i], "selftest_%s", il_backend_at(i)->name);
    tests[i] = (struct CMUnitTest){.name = names[i], .test_func = test_backend, .initial_state = (void *)(intptr_t)i};
  }
  tests[nb] = (struct CMUnitTest){.name = "selftest_cpu_threads3", .test_func = test_cpu_threads};
  tests[nb + 1] = (struct CMUnitTest){.name = "cpu_fused_direct", .test_func = test_cpu_fused_direct};
  const int rc = _cmocka_run_group_tests("backend_ops_" IL_REAL_NAME, tests, (size_t)nb + 2, NULL, NULL);
  free(tests);
  free(names);
  return rc;
}
