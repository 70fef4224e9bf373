/* tests/test_layers.c: the implicit layer in float64 (IL_PREC=64): gradients,
 * solver agreement, Newton's quadratic convergence, zeroed rows, reasons,
 * saved-for-backward memory, name and option validation. */
#include <stdlib.h>
#include <string.h>

#include "il_gradcheck.h"
#include "il_layer.h"
#include "il_rng.h"
#include "test_problem.h"
#include "test_util.h"


static void test_gradcheck_every_mode(void **state) {
  const char *solvers[] = {"fp", "newton"}, *modes[] = {"unroll", "implicit"};
  const int sizes[][2] = {{5, 3}, {8, 2}, {3, 6}};
  for (int s = 0; s < 2; s++)
    for (int m = 0; m < 2; m++)
      for (int k = 0; k < 3; k++) {
        il_gradcheck_config gc = {.layer = {.solver = solvers[s], .backward = modes[m], .tol = 1e-10,
                                            .zero_nonconverged = IL_ZERO_AUTO},
                                  .n = sizes[k][0], .B = sizes[k][1], .scale = 1, .eps = 1e-6, .seed = 11 + k};
        il_gradcheck_result gr;
        assert_ok(il_gradcheck(&gc, be, &gr));
        assert_int_equal(gr.fwd.reason, IL_REASON_CONVERGED);
        if (!(gr.relerr_x <= 1e-6 && gr.relerr_W <= 1e-6))
          fail_msg("%s/%s n=%d B=%d: relerr x %.3g W %.3g", solvers[s], modes[m], gc.n, gc.B, gr.relerr_x,
                   gr.relerr_W);
      }
}

/* A gradcheck must be able to fail: a loose tolerance makes fp/implicit's
 * gradient (IFT at an inexact z*) differ from the derivative of the truncated forward. */
static void test_gradcheck_detects_inexact_gradient(void **state) {
  il_gradcheck_config gc = {.layer = {.solver = "fp", .backward = "implicit", .tol = 1e-2, .zero_nonconverged = IL_ZERO_AUTO},
                            .n = 6, .B = 3, .scale = 1.5, .eps = 1e-6, .seed = 5};
  il_gradcheck_result gr;
  assert_ok(il_gradcheck(&gc, be, &gr));
  assert_true(gr.relerr_x > 1e-6 || gr.relerr_W > 1e-6);
}

/* The relu cell, f = relu(W z + x): W at scale 0.5 keeps ||W|| < 1, so the fixed point
 * exists and fp converges; with x ~ N(0, 1) no pre-activation of these seeds lies
 * within the finite-difference step of the kink at 0. */
static void test_gradcheck_relu_cell(void **state) {
  const char *solvers[] = {"fp", "newton"}, *modes[] = {"unroll", "implicit"};
  const int sizes[][2] = {{5, 3}, {8, 2}, {3, 6}};
  for (int s = 0; s < 2; s++)
    for (int m = 0; m < 2; m++)
      for (int k = 0; k < 3; k++) {
        il_gradcheck_config gc = {.layer = {.cell = "relu", .solver = solvers[s], .backward = modes[m], .tol = 1e-10,
                                            .zero_nonconverged = IL_ZERO_AUTO},
                                  .n = sizes[k][0], .B = sizes[k][1], .scale = 0.5, .eps = 1e-6, .seed = 51 + k};
        il_gradcheck_result gr;
        assert_ok(il_gradcheck(&gc, be, &gr));
        assert_int_equal(gr.fwd.reason, IL_REASON_CONVERGED);
        print_message("relu %s/%s n=%d B=%d: %d iterations, relerr x %.2e W %.2e\n", solvers[s], modes[m], gc.n,
                      gc.B, gr.fwd.iters, gr.relerr_x, gr.relerr_W);
        if (!(gr.relerr_x <= 1e-6 && gr.relerr_W <= 1e-6))
          fail_msg("relu %s/%s n=%d B=%d: relerr x %.3g W %.3g", solvers[s], modes[m], gc.n, gc.B, gr.relerr_x,
                   gr.relerr_W);
      }
}

static void solve_with(const il_solver_ops *so, const double *W, const double *x, int n, int B, double tol,
                       int max_iter, double *z, il_solve_result *res) {
  tsolve t;
  void *st;
  tsolve_init(&t, "tanh", W, x, n, B);
  assert_ok(so->create(NULL, &st));
  t.p.tol = tol;
  t.p.max_iter = max_iter;
  assert_ok(tsolve_run(so, st, &t.p, z, NULL, res));
  so->destroy(st);
  tsolve_destroy(&t);
}

static void test_fp_and_newton_reach_same_fixed_point(void **state) {
  enum { n = 50, B = 10 };
  double *W = malloc(sizeof(double) * n * n), x[B * n], zf[B * n], zn[B * n], f[B * n];
  il_solve_result rf, rn;
  make_problem(n, B, 1.0, 1.0, 42, W, x);
  solve_with(&il_solver_fp_ops, W, x, n, B, 1e-12, 1000, zf, &rf);
  solve_with(&il_solver_newton_ops, W, x, n, B, 1e-12, 40, zn, &rn);
  assert_int_equal(rf.reason, IL_REASON_CONVERGED);
  assert_int_equal(rn.reason, IL_REASON_CONVERGED);
  assert_true(rn.iters < rf.iters / 4); /* Newton needs far fewer steps */
  assert_allclose(zf, zn, (size_t)B * n, 0, 1e-10);
  /* and it is a fixed point: z = tanh(W z + x) */
  for (int b = 0; b < B; b++)
    for (int i = 0; i < n; i++) {
      double a = x[b * n + i];
      for (int j = 0; j < n; j++) a += W[i * n + j] * zn[b * n + j];
      f[b * n + i] = tanh(a);
    }
  assert_allclose(zn, f, (size_t)B * n, 0, 1e-12);
  free(W);
}

static void layer_grads(const char *solver, const char *mode, double tol, const double *W, const double *x,
                        const double *C, int n, int B, double *dx, double *dW, il_solve_result *fres) {
  il_layer L;
  il_layer_config cfg = {.solver = solver, .backward = mode, .tol = tol, .max_iter = 2000, .zero_nonconverged = IL_ZERO_AUTO};
  double *out = calloc((size_t)B * n, sizeof *out);
  assert_ok(layer_create_h(&L, &cfg, n, W, NULL));
  memset(dx, 0, sizeof(double) * B * n);
  memset(dW, 0, sizeof(double) * n * n);
  layer_forward_h(&L, B, x, out, 1);
  layer_backward_h(&L, C, dx, dW);
  if (fres) *fres = L.fres;
  il_layer_destroy(&L);
  free(out);
}

static void test_implicit_matches_unrolled_fp(void **state) {
  enum { n = 20, B = 4 };
  double W[n * n], x[B * n], C[B * n], dx1[B * n], dW1[n * n], dx2[B * n], dW2[n * n], dx3[B * n], dW3[n * n];
  make_problem(n, B, 1.0, 1.0, 7, W, x);
  il_rng r;
  il_rng_seed(&r, 99);
  for (int i = 0; i < B * n; i++) C[i] = il_rng_normal(&r);
  layer_grads("fp", "unroll", 1e-13, W, x, C, n, B, dx1, dW1, NULL);
  layer_grads("newton", "implicit", 1e-13, W, x, C, n, B, dx2, dW2, NULL);
  layer_grads("fp", "implicit", 1e-13, W, x, C, n, B, dx3, dW3, NULL);
  assert_allclose(dx1, dx2, (size_t)B * n, 1e-8, 1e-10);
  assert_allclose(dW1, dW2, (size_t)n * n, 1e-8, 1e-10);
  assert_allclose(dx3, dx2, (size_t)B * n, 1e-8, 1e-10);
  assert_allclose(dW3, dW2, (size_t)n * n, 1e-8, 1e-10);
}

static void test_newton_converges_quadratically(void **state) {
  enum { n = 30, B = 8 };
  double W[n * n], x[B * n], z[B * n], res[12];
  make_problem(n, B, 0.9, 2.0, 3, W, x);
  int K = 0;
  for (int k = 0; k < 12; k++) { /* residual at z_k: stop after exactly k steps */
    il_solve_result r;
    solve_with(&il_solver_newton_ops, W, x, n, B, 1e-300, k, z, &r);
    res[k] = r.residual;
    print_message("newton step %d: ||g||_F = %.3e\n", k, res[k]);
    if (res[k] < 1e-13) break;
    K = k + 1;
  }
  assert_true(K >= 3);
  int quadratic_steps = 0;
  for (int k = 0; k + 1 <= K; k++) {
    assert_true(res[k + 1] < res[k]);
    if (res[k] < 1e-1 && res[k + 1] > 1e-13) {
      /* e_{k+1} <= C e_k^2 with a modest C; linear convergence would give ratio ~ e_k^-1 -> grows */
      assert_true(res[k + 1] <= 10 * res[k] * res[k]);
      quadratic_steps++;
    }
  }
  assert_true(quadratic_steps >= 2);
}

static void test_nonconverged_rows_are_zeroed(void **state) {
  enum { n = 12, B = 16 };
  double W[n * n], x[B * n], out[B * n], C[B * n], dx[B * n], dW[n * n];
  make_problem(n, B, 1.5, 1.0, 17, W, x);
  for (int b = 0; b < B; b++) /* rows with large inputs start further away and converge later */
    for (int i = 0; i < n; i++) x[b * n + i] *= 0.02 + 0.25 * b;
  for (int i = 0; i < B * n; i++) C[i] = 1;
  il_layer L;
  il_layer_config cfg = {.solver = "newton", .backward = "unroll", .tol = 1e-3, .max_iter = 2, .zero_nonconverged = IL_ZERO_AUTO};
  assert_ok(layer_create_h(&L, &cfg, n, W, NULL));
  assert_int_equal(L.zero_rows, 1);
  layer_forward_h(&L, B, x, out, 1);
  memset(dx, 0, sizeof dx);
  memset(dW, 0, sizeof dW);
  layer_backward_h(&L, C, dx, dW);
  int zeroed = 0;
  for (int b = 0; b < B; b++) {
    double rn = 0, dn = 0;
    for (int i = 0; i < n; i++) { rn += fabs(out[b * n + i]); dn += fabs(dx[b * n + i]); }
    print_message("row %2d: residual %.2e\n", b, L.row_res[b]);
    if (L.row_res[b] > 1e-3) {
      zeroed++;
      assert_true(rn == 0 && dn == 0); /* zero output and no gradient through the row */
    } else {
      assert_true(rn > 0 && dn > 0);
    }
  }
  print_message("zeroed %d of %d rows after 2 Newton steps\n", zeroed, B);
  assert_true(zeroed > 0 && zeroed < B);
  assert_int_equal(L.fres.nonconverged_rows, zeroed);
  assert_int_equal(L.fres.reason, IL_REASON_MAX_ITER);
  il_layer_destroy(&L);

  /* implicit zeroes them too (the seed's implicit layer does not; see il_layer.h) */
  cfg.backward = "implicit";
  assert_ok(layer_create_h(&L, &cfg, n, W, NULL));
  assert_int_equal(L.zero_rows, 1);
  layer_forward_h(&L, B, x, out, 1);
  memset(dx, 0, sizeof dx);
  memset(dW, 0, sizeof dW);
  layer_backward_h(&L, C, dx, dW);
  for (int b = 0; b < B; b++) {
    double rn = 0, dn = 0;
    for (int i = 0; i < n; i++) { rn += fabs(out[b * n + i]); dn += fabs(dx[b * n + i]); }
    assert_true((L.row_res[b] > 1e-3) == (rn == 0 && dn == 0));
  }
  il_layer_destroy(&L);
  /* and fp never does by default */
  cfg.solver = "fp";
  assert_ok(layer_create_h(&L, &cfg, n, W, NULL));
  assert_int_equal(L.zero_rows, 0);
  il_layer_destroy(&L);
}

static void test_reasons(void **state) {
  enum { n = 10, B = 3 };
  double W[n * n], x[B * n], z[B * n];
  il_solve_result r;
  make_problem(n, B, 1.0, 1.0, 1, W, x);
  solve_with(&il_solver_fp_ops, W, x, n, B, 1e-12, 3, z, &r);
  assert_int_equal(r.reason, IL_REASON_MAX_ITER);
  assert_int_equal(r.iters, 3);
  assert_int_equal(r.nonconverged_rows, B);
  solve_with(&il_solver_newton_ops, W, x, n, B, 1e-12, 1, z, &r);
  assert_int_equal(r.reason, IL_REASON_MAX_ITER);
  solve_with(&il_solver_newton_ops, W, x, n, B, 1e-8, 40, z, &r);
  assert_int_equal(r.reason, IL_REASON_CONVERGED);
  assert_int_equal(r.nonconverged_rows, 0);
  x[4] = NAN;
  solve_with(&il_solver_fp_ops, W, x, n, B, 1e-8, 100, z, &r);
  assert_int_equal(r.reason, IL_REASON_NONFINITE);
  assert_int_equal(r.iters, 1); /* stops at once instead of spinning to max-iter */
  solve_with(&il_solver_newton_ops, W, x, n, B, 1e-8, 40, z, &r);
  assert_int_equal(r.reason, IL_REASON_NONFINITE);
  x[4] = INFINITY; /* tanh saturates: inf input is finite output, still converges */
  solve_with(&il_solver_newton_ops, W, x, n, B, 1e-8, 40, z, &r);
  assert_int_equal(r.reason, IL_REASON_CONVERGED);
}

static size_t saved_peak(const char *solver, const char *mode, double tol, int max_iter, int *iters) {
  enum { n = 16, B = 5 };
  double W[n * n], x[B * n], out[B * n];
  make_problem(n, B, 1.0, 1.0, 23, W, x);
  il_memstats mem = {0};
  il_layer L;
  il_layer_config cfg = {.solver = solver, .backward = mode, .tol = tol, .max_iter = max_iter, .zero_nonconverged = IL_ZERO_NO};
  assert_ok(layer_create_h(&L, &cfg, n, W, &mem));
  layer_forward_h(&L, B, x, out, 1);
  *iters = L.fres.iters;
  size_t peak = mem.peak[IL_MEM_SAVED];
  il_layer_destroy(&L);
  assert_int_equal(mem.current[IL_MEM_SAVED], 0); /* everything returned */
  return peak;
}

static void test_saved_memory_implicit_constant_unroll_linear(void **state) {
  int k1, k2, k3;
  /* implicit: same bytes whatever the iteration count */
  size_t a = saved_peak("newton", "implicit", 1e-1, 40, &k1), b = saved_peak("newton", "implicit", 1e-12, 40, &k2);
  assert_true(k1 < k2);
  assert_int_equal(a, b);
  a = saved_peak("fp", "implicit", 1e-1, 500, &k1);
  b = saved_peak("fp", "implicit", 1e-12, 500, &k2);
  assert_true(k1 < k2);
  assert_int_equal(a, b);
  /* unroll: grows by the same amount per iteration; tolerances pick three iteration counts */
  for (int s = 0; s < 2; s++) {
    const char *solver = s ? "newton" : "fp";
    const double tols[2][3] = {{1e-2, 1e-5, 1e-10}, {1e-1, 1e-5, 1e-13}};
    size_t m1 = saved_peak(solver, "unroll", tols[s][0], 500, &k1), m2 = saved_peak(solver, "unroll", tols[s][1], 500, &k2),
           m3 = saved_peak(solver, "unroll", tols[s][2], 500, &k3);
    print_message("%s/unroll: %d, %d, %d iterations -> %zu, %zu, %zu saved bytes\n", solver, k1, k2, k3, m1, m2, m3);
    assert_true(k1 < k2 && k2 < k3);
    assert_true(m2 > m1);
    assert_int_equal((m3 - m2) * (size_t)(k2 - k1), (m2 - m1) * (size_t)(k3 - k2));
  }
}

/* Per-sample stopping: every backward mode is still exact (tol 1e-10), and the
 * unrolled gradient is the exact derivative of the forward that froze rows at
 * different steps even at a loose tolerance, which only holds if the frozen
 * rows are handled as identities in the backward pass. */
static void test_per_sample_stopping_gradients(void **state) {
  const char *solvers[] = {"fp", "newton"}, *modes[] = {"unroll", "implicit"};
  for (int s = 0; s < 2; s++)
    for (int m = 0; m < 2; m++) {
      il_gradcheck_config gc = {.layer = {.solver = solvers[s], .backward = modes[m], .tol = 1e-10,
                                          .zero_nonconverged = IL_ZERO_NO, .stop_per_sample = 1},
                                .n = 6, .B = 4, .scale = 1.2, .eps = 1e-6, .seed = 31};
      il_gradcheck_result gr;
      assert_ok(il_gradcheck(&gc, be, &gr));
      if (!(gr.relerr_x <= 1e-6 && gr.relerr_W <= 1e-6))
        fail_msg("per-sample %s/%s: relerr x %.3g W %.3g", solvers[s], modes[m], gr.relerr_x, gr.relerr_W);
    }
  for (int s = 0; s < 2; s++) {
    il_gradcheck_config gc = {.layer = {.solver = solvers[s], .backward = "unroll", .tol = s ? 1e-3 : 1e-2,
                                        .zero_nonconverged = IL_ZERO_NO, .stop_per_sample = 1},
                              .n = 6, .B = 5, .scale = 1.2, .eps = 1e-7, .seed = 32};
    il_gradcheck_result gr;
    assert_ok(il_gradcheck(&gc, be, &gr));
    if (!(gr.relerr_x <= 1e-6 && gr.relerr_W <= 1e-6))
      fail_msg("per-sample loose %s/unroll: relerr x %.3g W %.3g", solvers[s], gr.relerr_x, gr.relerr_W);
  }
}

/* Each row stops on its own: it meets the tolerance by itself and its value does
 * not depend on the other rows of the batch (solving it alone gives the same z). */
static void test_per_sample_rows_independent(void **state) {
  enum { n = 10, B = 6 };
  double W[n * n], x[B * n], z[B * n], z1[n];
  make_problem(n, B, 1.0, 1.0, 41, W, x);
  for (int b = 0; b < B; b++)
    for (int i = 0; i < n; i++) x[b * n + i] *= 0.1 + 0.5 * b; /* rows converge at different steps */
  for (int s = 0; s < 2; s++) {
    const il_solver_ops *so = s ? &il_solver_newton_ops : &il_solver_fp_ops;
    tsolve t;
    void *st;
    il_solve_result r, r1;
    double rows[B];
    tsolve_init(&t, "tanh", W, x, n, B);
    assert_ok(so->create(NULL, &st));
    il_problem p = t.p;
    p.tol = 1e-6;
    p.max_iter = 500;
    p.per_sample = 1;
    assert_ok(tsolve_run(so, st, &p, z, rows, &r));
    assert_int_equal(r.reason, IL_REASON_CONVERGED);
    for (int b = 0; b < B; b++) {
      assert_true(rows[b] < 1e-6);
      il_problem p1 = p;
      p1.B = 1;
      p1.x = p.x + b * n; /* row b of the uploaded x (pointer arithmetic only) */
      assert_ok(tsolve_run(so, st, &p1, z1, NULL, &r1));
      assert_allclose(z1, z + b * n, (size_t)n, 0, 1e-14);
    }
    so->destroy(st);
    tsolve_destroy(&t);
  }
}

static void test_names_and_options_validated(void **state) {
  double *W = dev(NULL, 4);
  il_layer L;
  il_layer_config cfg = {.solver = "bogus", .backward = "unroll", .tol = 1e-4};
  il_error_clear();
  assert_int_equal(il_layer_create(&L, &cfg, be, 2, W, NULL), IL_ERR_ARG);
  assert_non_null(strstr(il_error_message(), "bogus"));
  assert_non_null(strstr(il_error_message(), "fp, newton"));
  cfg.solver = "fp";
  cfg.backward = "magic";
  il_error_clear();
  assert_int_equal(il_layer_create(&L, &cfg, be, 2, W, NULL), IL_ERR_ARG);
  assert_non_null(strstr(il_error_message(), "unroll, implicit"));
  cfg.backward = "implicit";
  cfg.tol = 0;
  il_error_clear();
  assert_int_equal(il_layer_create(&L, &cfg, be, 2, W, NULL), IL_ERR_ARG);
  il_options o;
  il_options_init(&o);
  assert_ok(il_options_set(&o, "stop-mdoe", "rel"));
  cfg.tol = 1e-4;
  cfg.opts = &o;
  il_error_clear();
  assert_int_equal(il_layer_create(&L, &cfg, be, 2, W, NULL), IL_ERR_ARG);
  assert_non_null(strstr(il_error_message(), "stop-mdoe"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      IL_TEST(test_gradcheck_every_mode),
      IL_TEST(test_gradcheck_detects_inexact_gradient),
      IL_TEST(test_gradcheck_relu_cell),
      IL_TEST(test_fp_and_newton_reach_same_fixed_point),
      IL_TEST(test_implicit_matches_unrolled_fp),
      IL_TEST(test_newton_converges_quadratically),
      IL_TEST(test_nonconverged_rows_are_zeroed),
      IL_TEST(test_reasons),
      IL_TEST(test_saved_memory_implicit_constant_unroll_linear),
      IL_TEST(test_per_sample_stopping_gradients),
      IL_TEST(test_per_sample_rows_independent),
      IL_TEST(test_names_and_options_validated),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
