/* tests/mpi/test_stop_norm.c: the stopping norms of core/solvers/solver_stop.c
 * are rank-count invariant. Every rank builds the same global batch of row
 * residuals (norms set around tol, one NaN batch), keeps its shard
 * (il_dist_shard, uneven at 3 ranks), and reduces it through the flat and the
 * two-level reducer of distributed/il_dist.c; the result must equal the norm of
 * the whole batch on one process (max exactly, frob and mean to rounding) and
 * give the same stop decision. Then an fp solve sharded the same way stops at the
 * same iteration with the same rows as the whole batch, and --best sample
 * reduces its residual after each rank picks its rows. ctest runs 1, 2, 3 ranks.
 * Collectives first, asserts after, so a failure on one rank leaves no rank waiting. */
#include <math.h>
#include <mpi.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "il_backend.h"
#include "il_dist.h"
#include "il_rng.h"
#include "il_solver.h"

static il_dist g_world, g_inner, g_outer;
static il_reducer2 g_two;

enum { GB = 23, NB = 6 };

/* batch t of the global rows: squared residuals and squared ||f|| (the same on every rank) */
static void global_rows(int t, double tol, double *rows, double *frows) {
  il_rng r;
  il_rng_seed(&r, 100 + (uint64_t)t);
  for (int b = 0; b < GB; b++) {
    const double a = tol * exp(2 * (2 * il_rng_uniform(&r) - 1)), f = exp(2 * (2 * il_rng_uniform(&r) - 1));
    rows[b] = a * a;
    frows[b] = f * f;
  }
  if (t == NB - 1) rows[GB / 2] = NAN; /* on one rank only */
}

static void check_reducer(il_reducer red, const char *what) {
  const double tol = 1e-4;
  long off, cnt;
  il_dist_shard(GB, g_world.rank, g_world.size, &off, &cnt);
  int nbad = 0;
  for (int t = 0; t < NB; t++) {
    double rows[GB], frows[GB];
    global_rows(t, tol, rows, frows);
    for (int norm = IL_STOP_FROB; norm <= IL_STOP_MEAN; norm++)
      for (int relf = 0; relf <= 1; relf++) {
        il_problem whole = {.B = GB, .tol = tol, .stop_norm = norm, .stop_relf = relf};
        il_problem shard = whole;
        shard.B = (int)cnt;
        shard.reduce = red;
        const double want = il_stop_norm(&whole, rows, relf ? frows : NULL);
        const double got = il_stop_norm(&shard, rows + off, relf ? frows + off : NULL);
        const int ok = (isnan(want) && isnan(got)) ||
                       (norm == IL_STOP_MAX ? got == want : fabs(got - want) <= 1e-14 * want);
        const int same_decision = (isnan(want) && isnan(got)) || ((got < tol) == (want < tol));
        if (!ok || !same_decision) {
          print_error("%s, %d ranks, batch %d, %s%s: %.17g on the shards, %.17g whole\n", what, g_world.size, t,
                      il_stop_norm_name(norm), relf ? " relf" : "", got, want);
          nbad++;
        }
      }
  }
  assert_int_equal(nbad, 0);
}

static void test_flat(void **state) {
  (void)state;
  check_reducer(il_dist_reducer(&g_world), "flat");
}

static void test_two_level(void **state) {
  (void)state;
  check_reducer(il_dist_reducer2(&g_two), "two-level");
}

/* z = tanh(W z + x) by fp on this rank's rows with the world's reducer, against the whole batch. */
static il_status fp_solve(const il_backend *be, const double *W, const double *x, int n, int B, il_reducer red,
                          int norm, int best, int max_iter, double *z, double *rows, il_solve_result *res) {
  il_cell c;
  il_arena space, ws, hws;
  il_status s = IL_OK;
  IL_CHECK(il_arena_init_for(&space, be, IL_MEM_WORKSPACE, NULL, 0));
  IL_CHECK(il_arena_init_for(&ws, be, IL_MEM_WORKSPACE, NULL, 0));
  IL_CHECK(il_arena_init(&hws, IL_MEM_WORKSPACE, NULL, 0));
  double *dW, *dx, *dz;
  IL_CHECK_GOTO(s, il_arena_alloc_n(&space, (size_t)n * n, sizeof *dW, (void **)&dW), out);
  IL_CHECK_GOTO(s, il_arena_alloc_n(&space, (size_t)B * n, sizeof *dx, (void **)&dx), out);
  IL_CHECK_GOTO(s, il_arena_alloc_n(&space, (size_t)B * n, sizeof *dz, (void **)&dz), out);
  IL_CHECK_GOTO(s, il_upload(be, dW, W, (size_t)n * n), out);
  IL_CHECK_GOTO(s, il_upload(be, dx, x, (size_t)B * n), out);
  IL_CHECK_GOTO(s, il_cell_init(&c, "tanh", be, n, dW, NULL), out);
  il_problem p = {.cell = &c, .be = be, .B = B, .x = dx, .tol = 1e-9, .max_iter = max_iter, .ws = &ws,
                  .hws = &hws, .reduce = red, .stop_norm = norm, .keep_best = best};
  void *st;
  IL_CHECK_GOTO(s, il_solver_fp_ops.create(NULL, &st), out);
  s = il_solver_fp_ops.solve(st, &p, dz, rows, res);
  il_solver_fp_ops.destroy(st);
  if (s == IL_OK) s = il_download(be, z, dz, (size_t)B * n);
out:
  il_arena_destroy(&space);
  il_arena_destroy(&ws);
  il_arena_destroy(&hws);
  return s;
}

static void test_sharded_solve(void **state) {
  (void)state;
  enum { n = 12 };
  const il_backend_options bo = {.threads = 1};
  il_backend *be;
  assert_int_equal(il_backend_create("cpu", &bo, &be), IL_OK);
  double W[n * n], x[GB * n], z[GB * n], zs[GB * n], rows[GB], rs[GB];
  long off, cnt;
  il_dist_shard(GB, g_world.rank, g_world.size, &off, &cnt);
  const struct { double scale; int norm, best, max_iter; } cases[] = {
      {0.9, IL_STOP_MAX, IL_BEST_OFF, 300}, {0.9, IL_STOP_MEAN, IL_BEST_OFF, 300},
      {3.0, IL_STOP_MAX, IL_BEST_SAMPLE, 30}, {3.0, IL_STOP_MEAN, IL_BEST_SAMPLE, 30},
  };
  int nbad = 0;
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    il_rng r;
    il_rng_seed(&r, 7 + k);
    for (int i = 0; i < n * n; i++) W[i] = cases[k].scale * (2 * il_rng_uniform(&r) - 1) / sqrt((double)n);
    for (int i = 0; i < GB * n; i++) x[i] = il_rng_normal(&r);
    il_solve_result rw, rsh;
    const il_reducer none = {0};
    const il_status s1 = fp_solve(be, W, x, n, GB, none, cases[k].norm, cases[k].best, cases[k].max_iter, z, rows, &rw);
    const il_status s2 = fp_solve(be, W, x + off * n, n, (int)cnt, il_dist_reducer(&g_world), cases[k].norm,
                                  cases[k].best, cases[k].max_iter, zs, rs, &rsh);
    /* a shard's GEMM may round its rows differently from the whole batch's: close, not equal */
    int ok = s1 == IL_OK && s2 == IL_OK && rw.iters == rsh.iters && rw.reason == rsh.reason &&
             fabs(rw.residual - rsh.residual) <= 1e-12 * rw.residual;
    for (long b = 0; ok && b < cnt; b++) ok = fabs(rs[b] - rows[off + b]) <= 1e-10 * rows[off + b] + 1e-300;
    for (long i = 0; ok && i < cnt * n; i++) ok = fabs(zs[i] - z[off * n + i]) <= 1e-12;
    if (!ok) {
      print_error("case %zu, %d ranks: whole %d iters %s %.17g, shards %d iters %s %.17g\n", k, g_world.size,
                  rw.iters, il_reason_name(rw.reason), rw.residual, rsh.iters, il_reason_name(rsh.reason),
                  rsh.residual);
      nbad++;
    }
  }
  il_backend_destroy(be);
  assert_int_equal(nbad, 0);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  il_dist_init(&g_world, MPI_COMM_WORLD);
  const int g = g_world.size % 2 == 0 ? 2 : 1;
  MPI_Comm inner, outer;
  MPI_Comm_split(MPI_COMM_WORLD, g_world.rank / g, g_world.rank, &inner);
  MPI_Comm_split(MPI_COMM_WORLD, g_world.rank % g, g_world.rank, &outer);
  il_dist_init(&g_inner, inner);
  il_dist_init(&g_outer, outer);
  g_two = (il_reducer2){&g_inner, &g_outer};
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_flat), cmocka_unit_test(test_two_level),
                                     cmocka_unit_test(test_sharded_solve)};
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
