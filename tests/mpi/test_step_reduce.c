/* tests/mpi/test_step_reduce.c: distributed/il_step_reduce.c under mpiexec
 * (any number of ranks; ctest runs 1 and 3). Each rank's values are a function
 * of its rank; every rank checks the step-wide result against the same rule
 * computed over all ranks. Each test calls the collective first and asserts
 * after it, so a failing assert on one rank never leaves the others waiting;
 * the failure count is then summed over ranks. */
#include <math.h>
#include <mpi.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "il_diag.h"
#include "il_step_reduce.h"

static il_dist g_d;

static il_step_meas base(int rank) {
  il_step_meas m = {
      .sum = {.loss_sum = 0.5 + rank, .errors = rank, .samples = 10 + rank, .nonconverged = 2 * rank},
      .fwd_iters = 5 + rank, .bwd_iters = 9 - rank, .fwd_reason = IL_REASON_CONVERGED,
      .bwd_reason = IL_REASON_CONVERGED, .fwd_residual = 1e-5 * (rank + 1), .bwd_residual = 1e-7 * (rank + 1),
      .t_forward = 1.0 + rank, .t_backward = 2.0 - rank, .t_wait = 0.1 * rank, .t_allreduce = 0.01, .t_update = 0.5,
      .rho_max = NAN, .cond_max = NAN, .grad_cos = NAN, .grad_relerr = NAN, .preact_max = NAN, .rho_mean = NAN,
      .rho_samples = 0, .nan_origin = IL_NAN_NONE, .nan_iter = -1};
  return m;
}

static void test_sums_and_maxima(void **state) {
  (void)state;
  const int P = g_d.size, r = g_d.rank;
  il_step_meas l = base(r), g;
  assert_int_equal(il_step_reduce(&g_d, &l, &g), IL_OK);
  double loss = 0;
  int err = 0, samples = 0, nonconv = 0;
  for (int k = 0; k < P; k++) {
    loss += 0.5 + k;
    err += k;
    samples += 10 + k;
    nonconv += 2 * k;
  }
  assert_true(g.sum.loss_sum == loss);
  assert_int_equal(g.sum.errors, err);
  assert_int_equal(g.sum.samples, samples);
  assert_int_equal(g.sum.nonconverged, nonconv);
  assert_int_equal(g.fwd_iters, 5 + P - 1);
  assert_int_equal(g.bwd_iters, 9);
  assert_true(g.fwd_residual == 1e-5 * P);
  assert_true(g.bwd_residual == 1e-7 * P);
  assert_true(g.t_forward == 1.0 + P - 1);
  assert_true(g.t_backward == 2.0);
  assert_true(g.t_wait == 0.1 * (P - 1));
  /* nothing measured: the diagnostics stay NaN, no NaN origin */
  assert_true(isnan(g.rho_max) && isnan(g.rho_mean) && isnan(g.cond_max) && isnan(g.grad_cos));
  assert_true(isnan(g.grad_relerr) && isnan(g.preact_max));
  assert_int_equal(g.nan_origin, IL_NAN_NONE);
  assert_int_equal(g.nan_iter, -1);
}

/* reasons: the worst; a non-finite forward residual counts as +inf elsewhere
 * and stays itself on its own rank */
static void test_reasons_and_residuals(void **state) {
  (void)state;
  const int P = g_d.size, r = g_d.rank, last = P - 1;
  il_step_meas l = base(r), g;
  if (r == last) {
    l.fwd_reason = IL_REASON_MAX_ITER;
    l.bwd_reason = IL_REASON_NONFINITE;
    l.fwd_residual = NAN;
  }
  assert_int_equal(il_step_reduce(&g_d, &l, &g), IL_OK);
  assert_int_equal(g.fwd_reason, IL_REASON_MAX_ITER);
  assert_int_equal(g.bwd_reason, IL_REASON_NONFINITE);
  if (r == last) assert_true(isnan(g.fwd_residual));
  else assert_true(g.fwd_residual == INFINITY);
}

/* a NaN on one rank is not hidden behind another rank's number */
static void test_nan_diagnostics(void **state) {
  (void)state;
  const int P = g_d.size, r = g_d.rank, last = P - 1;
  il_step_meas l = base(r), g;
  l.rho_max = 0.5 + 0.1 * r;
  l.rho_mean = r + 1.0;
  l.rho_samples = r + 1;
  l.cond_max = 10.0 * (r + 1);
  l.grad_cos = 0.9 - 0.1 * r;
  l.grad_relerr = 1e-3 * (r + 1);
  l.preact_max = 3.0 + r;
  if (r == last) {
    l.bwd_residual = NAN; /* e.g. phantom or jfb on this rank */
    l.grad_relerr = NAN;
  }
  assert_int_equal(il_step_reduce(&g_d, &l, &g), IL_OK);
  double wsum = 0, n = 0;
  for (int k = 0; k < P; k++) {
    wsum += (k + 1.0) * (k + 1);
    n += k + 1;
  }
  assert_true(isnan(g.bwd_residual));
  assert_true(isnan(g.grad_relerr));
  assert_true(g.rho_max == 0.5 + 0.1 * last);
  assert_true(fabs(g.rho_mean - wsum / n) <= 1e-15 * (wsum / n));
  assert_int_equal(g.rho_samples, (int)n);
  assert_true(g.cond_max == 10.0 * P);
  assert_true(g.grad_cos == 0.9 - 0.1 * last); /* the smallest cosine */
  assert_true(g.preact_max == 3.0 + last);
}

/* the earliest origin in computing order, and for it the latest iteration */
static void test_nan_origin(void **state) {
  (void)state;
  const int P = g_d.size, r = g_d.rank;
  il_step_meas l = base(r), g;
  /* rank 0: none; odd ranks: backward of the layer at iteration 10 + r;
   * even ranks > 0: forward solve at iteration r */
  if (r > 0 && r % 2 == 1) {
    l.nan_origin = IL_NAN_BWD_LAYER;
    l.nan_iter = 10 + r;
  } else if (r > 0) {
    l.nan_origin = IL_NAN_FWD_SOLVE;
    l.nan_iter = r;
  }
  assert_int_equal(il_step_reduce(&g_d, &l, &g), IL_OK);
  int origin = IL_NAN_NONE, iter = -1;
  for (int k = 1; k < P; k++) {
    int o = k % 2 == 1 ? IL_NAN_BWD_LAYER : IL_NAN_FWD_SOLVE, it = k % 2 == 1 ? 10 + k : k;
    if (origin == IL_NAN_NONE || o < origin || (o == origin && it > iter)) {
      origin = o;
      iter = it;
    }
  }
  assert_int_equal(g.nan_origin, origin);
  assert_int_equal(g.nan_iter, iter);
}

/* one origin on every rank: the latest iteration wins */
static void test_nan_origin_tie(void **state) {
  (void)state;
  const int P = g_d.size, r = g_d.rank;
  il_step_meas l = base(r), g;
  l.nan_origin = IL_NAN_BWD_LAYER;
  l.nan_iter = r == 0 ? 0 : 10 + r;
  assert_int_equal(il_step_reduce(&g_d, &l, &g), IL_OK);
  assert_int_equal(g.nan_origin, IL_NAN_BWD_LAYER);
  assert_int_equal(g.nan_iter, P == 1 ? 0 : 10 + P - 1);
}

static void test_sum_over_ranks(void **state) {
  (void)state;
  const int P = g_d.size, r = g_d.rank;
  il_step_sums s = {.loss_sum = 0.25 * r, .errors = 1, .samples = 3, .nonconverged = r};
  assert_int_equal(il_step_sum_over_ranks(&g_d, &s), IL_OK);
  assert_true(s.loss_sum == 0.25 * P * (P - 1) / 2);
  assert_int_equal(s.errors, P);
  assert_int_equal(s.samples, 3 * P);
  assert_int_equal(s.nonconverged, P * (P - 1) / 2);
}

/* The regulariser's estimates are summed; NaN (not computed, or a NaN on any rank) stays NaN. */
static void test_jac_reg_sum(void **state) {
  (void)state;
  const int P = g_d.size, r = g_d.rank;
  il_step_meas l = base(r), g, gn, g1;
  l.sum.jac_reg_sum = 0.125 * (r + 1);
  assert_int_equal(il_step_reduce(&g_d, &l, &g), IL_OK);
  l.sum.jac_reg_sum = NAN;
  assert_int_equal(il_step_reduce(&g_d, &l, &gn), IL_OK);
  l.sum.jac_reg_sum = r == P - 1 ? NAN : 1.0;
  assert_int_equal(il_step_reduce(&g_d, &l, &g1), IL_OK);
  assert_true(g.sum.jac_reg_sum == 0.125 * P * (P + 1) / 2);
  assert_true(isnan(gn.sum.jac_reg_sum));
  assert_true(isnan(g1.sum.jac_reg_sum));
}

static void test_max_over_ranks(void **state) {
  (void)state;
  const int P = g_d.size, r = g_d.rank;
  double v[2] = {(double)r, -(double)r};
  assert_int_equal(il_max_over_ranks(&g_d, v, 2), IL_OK);
  assert_true(v[0] == P - 1);
  assert_true(v[1] == 0);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  if (il_dist_init(&g_d, MPI_COMM_WORLD) != IL_OK) MPI_Abort(MPI_COMM_WORLD, 1);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sums_and_maxima), cmocka_unit_test(test_reasons_and_residuals),
      cmocka_unit_test(test_nan_diagnostics), cmocka_unit_test(test_nan_origin), cmocka_unit_test(test_nan_origin_tie),
      cmocka_unit_test(test_sum_over_ranks),  cmocka_unit_test(test_max_over_ranks), cmocka_unit_test(test_jac_reg_sum),
  };
  int failed = cmocka_run_group_tests_name("il_step_reduce", tests, NULL, NULL), all = failed;
  MPI_Allreduce(&failed, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  il_dist_free(&g_d);
  MPI_Finalize();
  return all ? 1 : 0;
}
