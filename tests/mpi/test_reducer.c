/* tests/mpi/test_reducer.c: the solvers' reducers of distributed/il_dist.c under
 * mpiexec (ctest runs 1, 2 and 4 ranks): the flat one over all ranks and the
 * two-level one (inside grids of 2 ranks, then across the groups), which must
 * give the same sums and maxima, with a NaN on any rank kept. Collectives run
 * first and asserts after, so a failure on one rank never leaves others waiting. */
#include <math.h>
#include <mpi.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "il_dist.h"

static il_dist g_world, g_inner, g_outer;
static il_reducer2 g_two;

static void check_reducer(il_reducer r, const char *what) {
  const int P = g_world.size, k = g_world.rank;
  double s = r.sum ? r.sum(r.ctx, k + 1.0) : k + 1.0;
  double m = r.max ? r.max(r.ctx, 10.0 * k - 3) : 10.0 * k - 3;
  double n = r.max ? r.max(r.ctx, k == P - 1 ? NAN : 1.0) : (k == P - 1 ? NAN : 1.0);
  double buf[3] = {k + 1.0, -k, k == 0 ? NAN : 2.0};
  double mb[3] = {k + 1.0, -k, k == 0 ? NAN : 2.0};
  il_status sb = r.allreduce ? r.allreduce(r.ctx, buf, 3, IL_REDUCE_SUM) : IL_OK;
  il_status sm = r.allreduce ? r.allreduce(r.ctx, mb, 3, IL_REDUCE_MAX) : IL_OK;
  print_message("%s on %d ranks: sum %g max %g\n", what, P, s, m);
  assert_true(s == P * (P + 1) / 2.0);
  assert_true(m == 10.0 * (P - 1) - 3);
  assert_true(isnan(n)); /* a NaN on the last rank reaches every rank */
  assert_int_equal(sb, IL_OK);
  assert_int_equal(sm, IL_OK);
  assert_true(buf[0] == P * (P + 1) / 2.0 && buf[1] == -(P * (P - 1) / 2.0) && isnan(buf[2]));
  assert_true(mb[0] == P && mb[1] == 0 && isnan(mb[2]));
}

static void test_flat(void **state) {
  (void)state;
  check_reducer(il_dist_reducer(&g_world), "flat");
}

static void test_two_level(void **state) {
  (void)state;
  check_reducer(il_dist_reducer2(&g_two), "two-level");
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  il_dist_init(&g_world, MPI_COMM_WORLD);
  /* grids of 2 ranks when the world divides evenly, else of 1 */
  const int g = g_world.size % 2 == 0 ? 2 : 1;
  MPI_Comm inner, outer;
  MPI_Comm_split(MPI_COMM_WORLD, g_world.rank / g, g_world.rank, &inner);
  MPI_Comm_split(MPI_COMM_WORLD, g_world.rank % g, g_world.rank, &outer);
  il_dist_init(&g_inner, inner);
  il_dist_init(&g_outer, outer);
  g_two = (il_reducer2){&g_inner, &g_outer};
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_flat), cmocka_unit_test(test_two_level)};
  int failed = cmocka_run_group_tests(tests, NULL, NULL), all = failed;
  MPI_Allreduce(&failed, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  il_dist_free(&g_inner);
  il_dist_free(&g_outer);
  MPI_Comm_free(&inner);
  MPI_Comm_free(&outer);
  il_dist_free(&g_world);
  MPI_Finalize();
  return all ? 1 : 0;
}
