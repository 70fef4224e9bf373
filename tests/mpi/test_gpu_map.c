/* tests/mpi/test_gpu_map.c: distributed/il_gpu.c under mpiexec (ctest: 1 and 2 ranks), on CPU
 * buffers: the rank -> GPU map (node-local rank, --gpu-map, its refusals), and the gradient
 * allreduce's paths: in place on host memory (cpu), staged through host memory for a space
 * the host may not touch (cuda-host, cpu-guard: a host access outside an op would crash),
 * the NaN that must reach every rank, and the NCCL verdict (refused without a cuda stream,
 * ranks sharing a GPU detected). Collectives run before asserts, as in test_step_reduce.c. */
#include <math.h>
#include <mpi.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "il_gpu.h"

static il_dist g_d;

static void test_pick_default(void **state) {
  (void)state;
  int g = -2;
  assert_int_equal(il_gpu_pick(0, 4, 2, NULL, &g), IL_OK), assert_int_equal(g, 0);
  assert_int_equal(il_gpu_pick(3, 4, 2, NULL, &g), IL_OK), assert_int_equal(g, 1);
  assert_int_equal(il_gpu_pick(5, 8, 3, "", &g), IL_OK), assert_int_equal(g, 2);
  assert_int_equal(il_gpu_pick(1, 2, 0, NULL, &g), IL_ERR_ARG), assert_int_equal(g, -1);
  il_error_clear();
}

static void test_pick_map(void **state) {
  (void)state;
  int g = -2;
  assert_int_equal(il_gpu_pick(1, 4, 2, "1,0,1,0", &g), IL_OK), assert_int_equal(g, 0);
  assert_int_equal(il_gpu_pick(2, 4, 2, "1:0:1:0", &g), IL_OK), assert_int_equal(g, 1);
  assert_int_equal(il_gpu_pick(0, 2, 4, "3,3", &g), IL_OK), assert_int_equal(g, 3); /* sharing is allowed */
  static const char *bad[] = {"0,2", "0,x", "0,,1", "0,1,", "-1,0", "0;1", "0"}; /* ngpus 2, node_size 2 */
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    g = -2;
    il_error_clear();
    assert_int_equal(il_gpu_pick(0, 2, 2, bad[i], &g), IL_ERR_ARG);
    assert_non_null(strstr(il_error_message(), "--gpu-map"));
  }
  il_error_clear();
}

/* buf[i] = (rank + 1) * (i + 1) on every rank: the sum is (i + 1) P (P + 1) / 2 */
static void allreduce_on(const char *device, const char *want, const char *path, int nan) {
  const int P = g_d.size, r = g_d.rank;
  const size_t n = 1000;
  il_backend *be = NULL;
  const il_backend_options bo = {.threads = 1};
  assert_int_equal(il_backend_create(device, &bo, &be), IL_OK);
  float *h = malloc(n * sizeof *h), *d = NULL;
  assert_non_null(h);
  assert_int_equal(be->ops->alloc(be->ctx, n * sizeof *d, (void **)&d), IL_OK);
  for (size_t i = 0; i < n; i++) h[i] = (float)((r + 1) * (i + 1));
  if (nan && r == P - 1) h[n / 2] = NAN; /* one rank's NaN */
  assert_int_equal(il_upload(be, d, h, n), IL_OK);
  il_gradcomm g;
  const il_status s0 = il_gradcomm_init(&g, &g_d, be, n, want, -1);
  const il_status s1 = s0 == IL_OK ? il_gradcomm_allreduce(&g, d) : s0;
  assert_int_equal(s0, IL_OK);
  assert_int_equal(s1, IL_OK);
  assert_string_equal(il_gradcomm_path_name(&g), path);
  int finite = -1;
  assert_int_equal(IL_BE(be, all_finite, n, d, &finite), IL_OK); /* the device-side NaN agreement */
  assert_int_equal(finite, !nan);
  assert_int_equal(il_download(be, h, d, n), IL_OK);
  for (size_t i = 0; i < n; i++) {
    if (nan && i == n / 2) {
      assert_true(isnan(h[i]));
      continue;
    }
    assert_float_equal(h[i], (float)((i + 1) * (size_t)P * (P + 1) / 2), 0);
  }
  il_gradcomm_free(&g);
  be->ops->release(be->ctx, d, n * sizeof *d);
  il_backend_destroy(be);
  free(h);
}

static void test_allreduce_host(void **state) { (void)state; allreduce_on("cpu", "auto", "mpi", 0); }
static void test_allreduce_staged(void **state) {
  (void)state;
  allreduce_on("cuda-host", "auto", "mpi-staged", 0);
  allreduce_on("cuda-host", "mpi", "mpi-staged", 1);
  allreduce_on("cpu-guard", "auto", "mpi-staged", 1);
}

/* --allreduce nccl is refused for a space without a cuda stream, the same way on every rank */
static void test_nccl_refused(void **state) {
  (void)state;
  il_backend *be = NULL;
  const il_backend_options bo = {.threads = 1};
  assert_int_equal(il_backend_create("cuda-host", &bo, &be), IL_OK);
  il_gradcomm g;
  il_error_clear();
  const il_status s = il_gradcomm_init(&g, &g_d, be, 10, "nccl", g_d.node_rank);
  il_gradcomm_free(&g);
  assert_int_equal(s, IL_ERR_ARG);
  assert_non_null(strstr(il_error_message(), "not a cuda stream"));
  il_error_clear();
  assert_int_equal(il_gradcomm_init(&g, &g_d, be, 10, "gloo", 0), IL_ERR_ARG);
  il_gradcomm_free(&g);
  il_backend_destroy(be);
  il_error_clear();
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  if (il_dist_init(&g_d, MPI_COMM_WORLD) != IL_OK) MPI_Abort(MPI_COMM_WORLD, 1);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pick_default),   cmocka_unit_test(test_pick_map),    cmocka_unit_test(test_allreduce_host),
      cmocka_unit_test(test_allreduce_staged), cmocka_unit_test(test_nccl_refused),
  };
  int failed = cmocka_run_group_tests_name("il_gpu", tests, NULL, NULL), all = failed;
  MPI_Allreduce(&failed, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  il_dist_free(&g_d);
  MPI_Finalize();
  return all ? 1 : 0;
}
