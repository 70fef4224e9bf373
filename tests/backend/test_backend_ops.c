/* tests/backend/test_backend_ops.c: run the backend self-test (core/il_selftest.h)
 * for every registered backend in the precision this file is compiled with
 * (the test is built for 32 and 64). Prints each backend's op list; fails if
 * any case fails. A backend whose device is missing (create returns
 * IL_ERR_UNSUPPORTED, e.g. CUDA on a CPU machine) is skipped, not failed.
 * ILBENCH_SELFTEST_SEED=S changes the seed (default 0),
 * ILBENCH_SELFTEST_VERBOSE=1 prints every case. */
#include <stdlib.h>

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

int main(void) {
  const int nb = il_backend_count();
  struct CMUnitTest *tests = calloc((size_t)nb + 1, sizeof *tests);
  char(*names)[64] = calloc((size_t)nb, sizeof *names);
  if (!tests || !names) return 1;
  for (int i = 0; i < nb; i++) {
    snprintf(names[i], sizeof names[i], "selftest_%s", il_backend_at(i)->name);
    tests[i] = (struct CMUnitTest){.name = names[i], .test_func = test_backend, .initial_state = (void *)(intptr_t)i};
  }
  tests[nb] = (struct CMUnitTest){.name = "selftest_cpu_threads3", .test_func = test_cpu_threads};
  const int rc = _cmocka_run_group_tests("backend_ops_" IL_REAL_NAME, tests, (size_t)nb + 1, NULL, NULL);
  free(tests);
  free(names);
  return rc;
}
