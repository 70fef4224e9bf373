/* tests/test_wnorm.c: the parameterisations of W (core/il_wnorm.h, --w-norm) in float64:
 * finite-difference gradients of the layer's loss through W(V, g) (u, v fixed), spectral
 * normalisation's ||W||_2 against LAPACK's SVD as V moves, weight normalisation's row norms,
 * the power-iteration state's round trip (checkpoints), and the model's gradient of V and g
 * (its W and dW buffers, the mapping into the gradient buffer) against finite differences. */
#include <stdlib.h>
#include <string.h>

#include "il_gradcheck.h"
#include "il_model.h"
#include "il_wnorm.h"
#include "test_problem.h"
#include "test_util.h"

void dgesvd_(const char *jobu, const char *jobvt, const int *m, const int *n, double *a, const int *lda, double *s,
             double *u, const int *ldu, double *vt, const int *ldvt, double *work, const int *lwork, int *info);

/* The largest singular value of the n x n matrix A (LAPACK dgesvd; A is not changed). */
static double sigma_max(const double *A, int n) {
  double *a = malloc(sizeof(double) * n * n), *sv = malloc(sizeof(double) * n), q;
  memcpy(a, A, sizeof(double) * n * n);
  int lwork = -1, info, one = 1;
  dgesvd_("N", "N", &n, &n, a, &n, sv, NULL, &one, NULL, &one, &q, &lwork, &info);
  lwork = (int)q;
  double *work = malloc(sizeof(double) * lwork);
  dgesvd_("N", "N", &n, &n, a, &n, sv, NULL, &one, NULL, &one, work, &lwork, &info);
  assert_int_equal(info, 0);
  const double s = sv[0];
  free(a);
  free(sv);
  free(work);
  return s;
}

static void test_gradcheck_through_the_parameterisation(void **state) {
  const il_wnorm_kind kinds[] = {IL_WNORM_WEIGHT, IL_WNORM_SPECTRAL};
  const char *solvers[] = {"fp", "newton"}, *modes[] = {"unroll", "implicit"};
  const int sizes[][2] = {{5, 3}, {7, 2}};
  for (int w = 0; w < 2; w++)
    for (int s = 0; s < 2; s++)
      for (int m = 0; m < 2; m++)
        for (int k = 0; k < 2; k++) {
          il_gradcheck_config gc = {.layer = {.solver = solvers[s], .backward = modes[m], .tol = 1e-11,
                                              .zero_nonconverged = IL_ZERO_AUTO},
                                    .n = sizes[k][0], .B = sizes[k][1], .scale = 1.5, .eps = 1e-6, .seed = 31 + k,
                                    .w_norm = kinds[w]};
          il_gradcheck_result gr;
          assert_ok(il_gradcheck(&gc, be, &gr));
          assert_int_equal(gr.fwd.reason, IL_REASON_CONVERGED);
          print_message("%s %s/%s n=%d B=%d: relerr x %.2e, (V, g) %.2e\n", il_wnorm_name(kinds[w]), solvers[s],
                        modes[m], gc.n, gc.B, gr.relerr_x, gr.relerr_W);
          if (!(gr.relerr_x <= 1e-6 && gr.relerr_W <= 1e-6))
            fail_msg("%s %s/%s n=%d B=%d: relerr x %.3g (V, g) %.3g", il_wnorm_name(kinds[w]), solvers[s], modes[m],
                     gc.n, gc.B, gr.relerr_x, gr.relerr_W);
        }
}

/* One power iteration per step keeps ||W||_2 = sigma_max(V) / (u^T V v) near 1 while V moves as
 * under SGD: far from it at the first step (u, v random), within 1e-3 after 60 steps and from
 * then on; LAPACK's SVD is the measure. */
static void test_spectral_norm_is_one(void **state) {
  enum { n = 24, steps = 200 };
  double V[n * n], W[n * n], x[n];
  make_problem(n, 1, 3.0, 1.0, 77, V, x);
  double *dV = dev(V, (size_t)n * n), *dW = dev(NULL, (size_t)n * n);
  il_wnorm wn;
  assert_ok(il_wnorm_init(&wn, IL_WNORM_SPECTRAL, be, n, 5, NULL));
  il_rng r;
  il_rng_seed(&r, 78);
  double first = 0, worst_late = 0;
  for (int t = 0; t < steps; t++) {
    assert_ok(il_wnorm_forward(&wn, dV, NULL, 1, dW));
    host(W, dW, (size_t)n * n);
    const double s = sigma_max(W, n);
    if (t == 0) first = fabs(s - 1);
    if (t >= 60 && fabs(s - 1) > worst_late) worst_late = fabs(s - 1);
    for (int i = 0; i < n * n; i++) V[i] += 1e-3 * il_rng_normal(&r); /* an SGD-sized move */
    assert_ok(il_upload(be, dV, V, (size_t)n * n));
  }
  print_message("spectral: | ||W||_2 - 1 | at step 0 %.3g, worst over steps 60..%d %.3g\n", first, steps - 1,
                worst_late);
  assert_true(first > 1e-2);
  assert_true(worst_late < 1e-3);
  /* evaluation (power 0) keeps u, v: the same W twice */
  double W2[n * n];
  assert_ok(il_wnorm_forward(&wn, dV, NULL, 0, dW));
  host(W, dW, (size_t)n * n);
  assert_ok(il_wnorm_forward(&wn, dV, NULL, 0, dW));
  host(W2, dW, (size_t)n * n);
  assert_memory_equal(W, W2, sizeof W);
  /* the state's round trip: another instance with this u, v forms the same W */
  double uv[2 * n];
  assert_ok(il_wnorm_get_state(&wn, uv));
  il_wnorm w2;
  assert_ok(il_wnorm_init(&w2, IL_WNORM_SPECTRAL, be, n, 99, NULL));
  assert_ok(il_wnorm_set_state(&w2, uv));
  assert_ok(il_wnorm_forward(&w2, dV, NULL, 1, dW));
  host(W2, dW, (size_t)n * n);
  assert_ok(il_wnorm_forward(&wn, dV, NULL, 1, dW));
  host(W, dW, (size_t)n * n);
  assert_memory_equal(W, W2, sizeof W);
  il_wnorm_destroy(&w2);
  il_wnorm_destroy(&wn);
}

/* Weight normalisation: g starts at the row norms (W = V), and each row of W has norm g_i. */
static void test_weight_norm_rows(void **state) {
  enum { n = 9 };
  double V[n * n], W[n * n], g[n], x[n];
  make_problem(n, 1, 1.0, 1.0, 79, V, x);
  double *dV = dev(V, (size_t)n * n), *dW = dev(NULL, (size_t)n * n), *dg = dev(NULL, n);
  il_wnorm wn;
  assert_ok(il_wnorm_init(&wn, IL_WNORM_WEIGHT, be, n, 0, NULL));
  assert_ok(il_wnorm_init_g(&wn, dV, dg));
  assert_ok(il_wnorm_forward(&wn, dV, dg, 1, dW));
  host(W, dW, (size_t)n * n);
  assert_allclose(W, V, (size_t)n * n, 1e-15, 1e-15);
  for (int i = 0; i < n; i++) g[i] = 0.3 + 0.1 * i;
  assert_ok(il_upload(be, dg, g, n));
  assert_ok(il_wnorm_forward(&wn, dV, dg, 1, dW));
  host(W, dW, (size_t)n * n);
  for (int i = 0; i < n; i++) {
    double s = 0;
    for (int j = 0; j < n; j++) s += W[i * n + j] * W[i * n + j];
    assert_allclose(&(double){sqrt(s)}, &g[i], 1, 1e-14, 0);
  }
  il_wnorm_destroy(&wn);
}

/* The whole model in float64 with a w_norm: every parameter's gradient (W1, b1, V, W2, b2 and g)
 * against central differences of the mean cross-entropy, u, v held where the training forward
 * left them (the evaluation forwards of the differences do not move them). */
static void test_model_gradient(void **state) {
  enum { in = 6, h = 4, c = 3, B = 5 };
  const il_wnorm_kind kinds[] = {IL_WNORM_WEIGHT, IL_WNORM_SPECTRAL};
  double X[B * in];
  uint8_t y[B];
  il_rng r;
  il_rng_seed(&r, 80);
  for (int i = 0; i < B * in; i++) X[i] = il_rng_uniform(&r);
  for (int b = 0; b < B; b++) y[b] = (uint8_t)(b % c);
  for (int k = 0; k < 2; k++) {
    il_model m;
    const il_model_config mc = {.in_dim = in, .hidden = h, .classes = c, .max_batch = B, .seed = 81,
                                .layer = {.solver = "fp", .backward = "implicit", .tol = 1e-13, .max_iter = 2000},
                                .w_norm = kinds[k]};
    assert_ok(il_model_create(&m, &mc, be));
    const size_t np = m.nparams;
    assert_int_equal(np, h * in + h + h * h + c * h + c + (kinds[k] == IL_WNORM_WEIGHT ? h : 0));
    double *P = malloc(np * sizeof *P), *G = malloc(np * sizeof *G);
    il_step_stats st;
    assert_ok(il_model_forward(&m, B, X, y, 1, &st));
    assert_ok(il_model_backward(&m, &st));
    assert_true(st.grad_finite);
    host(G, m.grads, np);
    assert_ok(il_model_get_params(&m, P));
    double num = 0, den = 0;
    const double eps = 1e-6;
    for (size_t i = 0; i < np; i++) {
      const double keep = P[i];
      double l[2];
      for (int sgn = 0; sgn < 2; sgn++) {
        P[i] = keep + (sgn ? -eps : eps);
        assert_ok(il_model_set_params(&m, P));
        assert_ok(il_model_forward(&m, B, X, y, 0, &st));
        l[sgn] = st.loss_sum / B;
      }
      P[i] = keep;
      const double fd = (l[0] - l[1]) / (2 * eps);
      num += (G[i] - fd) * (G[i] - fd);
      den += fd * fd;
    }
    print_message("model with %s: gradient relative error %.2e over %zu parameters\n", il_wnorm_name(kinds[k]),
                  sqrt(num / den), np);
    assert_true(sqrt(num / den) < 1e-6);
    free(P);
    free(G);
    il_model_destroy(&m);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      IL_TEST(test_gradcheck_through_the_parameterisation),
      IL_TEST(test_spectral_norm_is_one),
      IL_TEST(test_weight_norm_rows),
      IL_TEST(test_model_gradient),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
