/* tests/test_correction.c: fixed-point correction in float64 (IL_PREC=64):
 * which iterates are selected (the formula, and that the kept points are the
 * solvers' own iterates), that the kept points' memory does not grow with the
 * solve, the gradient of the whole weighted loss against finite differences
 * for every solver and every backward mode that takes corrections (and that
 * the check fails when the points are not held), refusals, and that K = 1 is
 * the uncorrected model. */
#include <stdlib.h>
#include <string.h>

#include "il_gradcheck.h"
#include "il_layer.h"
#include "il_model.h"
#include "test_problem.h"
#include "test_util.h"

/* j_k by hand: s = 1 up to M = 4K + 1, then the power-of-two grid; halves round up. */
static void test_index_formula(void **state) {
  (void)state;
  const struct { int M, K, k, j; } t[] = {
      {10, 3, 1, 3},   {10, 3, 2, 7},    /* round(3.33), round(6.67) */
      {13, 3, 1, 4},   {13, 3, 2, 9},    /* M = 4K + 1: still s = 1 */
      {14, 3, 1, 4},   {14, 3, 2, 10},   /* s = 2: 2 round(2.33), 2 round(4.67) */
      {200, 3, 1, 64}, {200, 3, 2, 128}, /* s = 16: 16 round(4.17), 16 round(8.33) */
      {6, 4, 1, 2},    {6, 4, 2, 3},    {6, 4, 3, 5}, /* 1.5 -> 2, 3, 4.5 -> 5 */
      {2, 3, 1, 1},    {2, 3, 2, 1},     /* round(0.67), round(1.33) */
      {1, 3, 1, 1},    {1, 3, 2, 1},     /* one check: z* */
      {1, 5, 1, 1},    {3, 8, 1, 1},     /* clamped to 1 from round(0.2), round(0.375) */
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (il_corr_index(t[i].M, t[i].K, t[i].k) != t[i].j)
      fail_msg("M=%d K=%d k=%d: j=%d, expected %d", t[i].M, t[i].K, t[i].k, il_corr_index(t[i].M, t[i].K, t[i].k),
               t[i].j);
  /* every long solve: points in order, below M, on the grid and within M/(4K) of k M / K */
  for (int K = 2; K <= 6; K++)
    for (int M = 1; M <= 3000; M++) {
      int prev = 0;
      for (int k = 1; k < K; k++) {
        const int j = il_corr_index(M, K, k);
        assert_true(j >= 1 && j <= M && j >= prev);
        if (M > 4 * K + 1) {
          assert_true(j < M && j > prev);
          assert_true(fabs(j - (double)k * M / K) <= (double)M / (4 * K));
        }
        prev = j;
      }
    }
}

/* Whatever the solve's length, the kept points still hold every point the formula selects: offers of
 * checks 1..J (J = M - 1, or M when the last check was offered too, as at max-iter), through
 * five doublings of the stride. */
static void test_corr_points_keep_every_selected_point(void **state) {
  (void)state;
  double W[1] = {0.5}, x[1] = {0.1};
  tsolve t;
  tsolve_init(&t, "tanh", W, x, 1, 1);
  il_arena slots, tables;
  assert_ok(il_arena_init_for(&slots, be, IL_MEM_SAVED, NULL, 0));
  assert_ok(il_arena_init(&tables, IL_MEM_SAVED, NULL, 0));
  const double *z = dev(NULL, 1);
  for (int K = 2; K <= 5; K++)
    for (int J = 1; J <= 300; J++) {
      il_arena_reset(&slots), il_arena_reset(&tables);
      il_corr_points tr;
      assert_ok(il_corr_points_begin(&tr, 4 * K + 1, &slots, &tables));
      int allocated = 0;
      for (int j = 1; j <= J; j++) {
        tr.checks = j;
        assert_ok(il_corr_points_offer(&tr, &t.p, z));
        assert_true(tr.count <= tr.cap);
        if (tr.count + tr.nspare > allocated) allocated = tr.count + tr.nspare;
      }
      assert_true(allocated <= 4 * K + 1);
      for (int M = J; M <= J + 1; M++)
        for (int k = 1; k < K; k++) {
          const int j = il_corr_index(M, K, k);
          if (j < M && j <= J && !il_corr_points_at(&tr, j))
            fail_msg("K %d, %d offers, M %d: point %d (c_%d) not kept (stride %d)", K, J, M, k, j, tr.stride);
        }
    }
  il_arena_destroy(&slots), il_arena_destroy(&tables);
  tsolve_destroy(&t);
}

typedef struct solver_case {
  const char *solver;
  int lag; /* c_j is the iterate after j - lag steps (newton: its checks start at z_0) */
} solver_case;
static const solver_case solvers[] = {{"fp", 0}, {"anderson", 0}, {"broyden", 0}, {"newton", 1}, {"newton-ls", 1}};
#define NSOLVERS ((int)(sizeof solvers / sizeof solvers[0]))

/* z* of `solver` stopped after `steps` iterations (no tolerance reached, no rows zeroed), host z. */
static void iterate_after(const char *solver, int steps, int n, int B, const double *W, const double *x, double *z) {
  il_layer L;
  const il_layer_config cfg = {.solver = solver, .backward = "implicit", .tol = 1e-300, .max_iter = steps,
                               .zero_nonconverged = IL_ZERO_NO};
  assert_ok(layer_create_h(&L, &cfg, n, W, NULL));
  layer_forward_h(&L, B, x, NULL, 0);
  host(z, L.zstar, (size_t)B * n);
  il_layer_destroy(&L);
}

/* The kept points are each solver's iterates c_{j_k}, bit for bit, and M counts its checks. */
static void test_points_are_the_solvers_iterates(void **state) {
  (void)state;
  const int n = 6, B = 3, K = 4;
  double W[36], x[18], *out = calloc(18, sizeof *out), *pt = calloc(18, sizeof *pt), *ref = calloc(18, sizeof *ref);
  make_problem(n, B, 1.2, 1, 7, W, x);
  for (int s = 0; s < NSOLVERS; s++)
    for (int max_iter = 5; max_iter <= 60; max_iter += 55) { /* s = 1 and a doubled grid */
      il_layer L;
      const il_layer_config cfg = {.solver = solvers[s].solver, .backward = "implicit", .tol = 1e-300,
                                   .max_iter = max_iter, .zero_nonconverged = IL_ZERO_NO, .fp_correction = K};
      assert_ok(layer_create_h(&L, &cfg, n, W, NULL));
      double *corr[3] = {dev(NULL, 18), dev(NULL, 18), dev(NULL, 18)};
      assert_ok(il_layer_forward_corr(&L, B, dev(x, 18), NULL, dev(NULL, 18), corr, 1));
      assert_int_equal(L.corr_M, L.fres.iters + solvers[s].lag);
      for (int k = 1; k < K; k++) {
        const int j = L.corr_j[k - 1];
        assert_int_equal(j, il_corr_index(L.corr_M, K, k));
        host(pt, L.corr_pt[k - 1], 18);
        if (j - solvers[s].lag < 1) continue; /* newton's c_1 is its start, f(0) */
        iterate_after(solvers[s].solver, j - solvers[s].lag, n, B, W, x, ref);
        for (int i = 0; i < 18; i++)
          if (pt[i] != ref[i])
            fail_msg("%s max_iter %d point %d (c_%d): [%d] %.17g, the iterate is %.17g", solvers[s].solver, max_iter,
                     k, j, i, pt[i], ref[i]);
      }
      il_layer_destroy(&L);
    }
  free(out), free(pt), free(ref);
}

/* The kept points' saved memory is the same for 40 and 400 iterations: at most 4K + 1 iterates are kept. */
static void test_corr_points_memory_does_not_grow(void **state) {
  (void)state;
  const int n = 8, B = 4, K = 3;
  const size_t len = (size_t)B * n;
  double W[64], x[32];
  make_problem(n, B, 1, 1, 3, W, x);
  size_t saved[3];
  const int iters[3] = {40, 400, 400};
  for (int r = 0; r < 3; r++) {
    il_layer L;
    il_memstats st = {0};
    const il_layer_config cfg = {.solver = "fp", .backward = "implicit", .tol = 1e-300, .max_iter = iters[r],
                                 .fp_correction = r < 2 ? K : 1};
    assert_ok(layer_create_h(&L, &cfg, n, W, &st));
    double *corr[2] = {dev(NULL, len), dev(NULL, len)};
    assert_ok(il_layer_forward_corr(&L, B, dev(x, len), NULL, dev(NULL, len), corr, 1));
    assert_int_equal(L.fres.iters, iters[r]);
    saved[r] = st.peak[IL_MEM_SAVED];
    il_layer_destroy(&L);
  }
  assert_int_equal(saved[0], saved[1]);
  /* over the uncorrected layer: the 4K + 1 slots and one step per point, plus small host tables */
  const size_t arr = il_ws_round(len * sizeof(double));
  assert_true(saved[1] > saved[2]);
  if (saved[1] - saved[2] > (4 * K + 1 + (K - 1)) * arr + 4096)
    fail_msg("correction's saved memory %zu bytes over %zu allowed", saved[1] - saved[2], (4 * K + 1 + (K - 1)) * arr);
}

typedef struct mode_case {
  const char *backward;
  double tau; /* phantom-tau, 0: not given */
} mode_case;
static const mode_case modes[] = {{"implicit", 0}, {"phantom:3", 0.7}, {"phantom:2", 0}, {"jfb", 0}};
#define NMODES ((int)(sizeof modes / sizeof modes[0]))

static il_status corr_check(const char *solver, const mode_case *mc, int K, double gamma, int per_sample, int no_hold,
                            uint64_t seed, il_gradcheck_corr_result *r) {
  il_options o;
  il_options_init(&o);
  char tau[32];
  snprintf(tau, sizeof tau, "%g", mc->tau);
  if (mc->tau > 0) assert_ok(il_options_set(&o, "phantom-tau", tau));
  il_gradcheck_corr_config gc = {.layer = {.solver = solver, .backward = mc->backward, .tol = 1e-11,
                                           .zero_nonconverged = IL_ZERO_AUTO, .stop_per_sample = per_sample,
                                           .opts = &o, .fp_correction = K},
                                 .gamma = gamma, .in_dim = 4, .n = 5, .classes = 3, .B = 3, .eps = 1e-6,
                                 .seed = seed, .no_hold = no_hold};
  return il_gradcheck_corr(&gc, be, r);
}

static void test_gradcheck_every_solver_and_mode(void **state) {
  (void)state;
  for (int s = 0; s < NSOLVERS; s++)
    for (int m = 0; m < NMODES; m++) {
      il_gradcheck_corr_result r;
      assert_ok(corr_check(solvers[s].solver, &modes[m], 3, 0.8, 0, 0, 21 + s, &r));
      print_message("%-9s %-9s M %2d: relerr x %.1e W %.1e head %.1e in %.1e\n", solvers[s].solver,
                    modes[m].backward, r.M, r.relerr_x, r.relerr_W, r.relerr_head, r.relerr_in);
      assert_int_equal(r.fwd.reason, IL_REASON_CONVERGED);
      assert_true(r.M > 3); /* the points are not all z* */
      if (!(r.relerr_x <= 1e-6 && r.relerr_W <= 1e-6 && r.relerr_head <= 1e-6 && r.relerr_in <= 1e-6))
        fail_msg("%s/%s: relerr x %.3g W %.3g head %.3g in %.3g", solvers[s].solver, modes[m].backward, r.relerr_x,
                 r.relerr_W, r.relerr_head, r.relerr_in);
    }
}

/* Other K and gamma, and per-sample stopping (M the largest over the rows). */
static void test_gradcheck_other_settings(void **state) {
  (void)state;
  const struct { const char *solver; int K; double gamma; int per_sample; } t[] = {
      {"fp", 2, 1.0, 0}, {"fp", 7, 0.5, 0}, {"fp", 4, 0.9, 1}, {"newton", 5, 0.8, 1}};
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    for (int m = 0; m < 2; m++) {
      il_gradcheck_corr_result r;
      assert_ok(corr_check(t[i].solver, &modes[m], t[i].K, t[i].gamma, t[i].per_sample, 0, 40 + i, &r));
      if (!(r.relerr_x <= 1e-6 && r.relerr_W <= 1e-6 && r.relerr_head <= 1e-6 && r.relerr_in <= 1e-6))
        fail_msg("%s/%s K %d gamma %g per-sample %d: relerr x %.3g W %.3g head %.3g in %.3g", t[i].solver,
                 modes[m].backward, t[i].K, t[i].gamma, t[i].per_sample, r.relerr_x, r.relerr_W, r.relerr_head,
                 r.relerr_in);
    }
}

/* The check can fail: differentiating the re-run forward, whose points move with W and x, is not the
 * correction's gradient (which holds them). */
static void test_gradcheck_fails_without_holding(void **state) {
  (void)state;
  il_gradcheck_corr_result r;
  assert_ok(corr_check("fp", &modes[0], 3, 0.8, 0, 1, 5, &r));
  print_message("fp/implicit, points not held: relerr x %.2e W %.2e head %.2e in %.2e\n", r.relerr_x, r.relerr_W,
                r.relerr_head, r.relerr_in);
  assert_true(r.relerr_W > 1e-3 && r.relerr_in > 1e-3);
}

/* K = 1 is the uncorrected model: the same loss and gradients, bit for bit. */
static void test_one_point_is_off(void **state) {
  (void)state;
  const int in = 6, h = 5, c = 3, B = 4;
  double X[24], *g[2];
  uint8_t y[4] = {0, 2, 1, 2};
  il_rng r;
  il_rng_seed(&r, 9);
  for (int i = 0; i < in * B; i++) X[i] = il_rng_uniform(&r);
  double loss[2];
  for (int v = 0; v < 2; v++) {
    il_model m;
    const il_model_config mc = {.in_dim = in, .hidden = h, .classes = c, .max_batch = B, .seed = 3,
                                .layer = {.solver = "fp", .backward = "implicit", .tol = 1e-10,
                                          .fp_correction = v},
                                .corr_gamma = 0.8};
    assert_ok(il_model_create(&m, &mc, be));
    il_step_stats st;
    assert_ok(il_model_forward(&m, B, X, y, 1, &st));
    assert_ok(il_model_backward(&m, &st));
    assert_true(st.loss_total == st.loss_sum);
    loss[v] = st.loss_sum;
    g[v] = calloc(m.nparams, sizeof *g[v]);
    host(g[v], m.grads, m.nparams);
    if (v) assert_memory_equal(g[0], g[1], m.nparams * sizeof *g[0]);
    il_model_destroy(&m);
  }
  assert_true(loss[0] == loss[1]);
  free(g[0]), free(g[1]);
}

/* With every point at z* (a solve of one check) the loss is the sum of the weights times the plain loss. */
static void test_weights_sum_when_points_coincide(void **state) {
  (void)state;
  const int in = 3, h = 4, c = 2, B = 2;
  double X[6] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6};
  uint8_t y[2] = {1, 0};
  il_model m;
  const il_model_config mc = {.in_dim = in, .hidden = h, .classes = c, .max_batch = B, .seed = 1,
                              .layer = {.solver = "fp", .backward = "jfb", .tol = 1e-4, .max_iter = 1,
                                        .fp_correction = 3},
                              .corr_gamma = 0.5};
  assert_ok(il_model_create(&m, &mc, be));
  il_step_stats st;
  assert_ok(il_model_forward(&m, B, X, y, 1, &st));
  assert_int_equal(m.layer.corr_M, 1);
  assert_close(st.loss_total, st.loss_sum * (1 + 0.5 + 0.25), 1e-14, 0);
  il_model_destroy(&m);
}

static void test_refusals(void **state) {
  (void)state;
  double *W = dev(NULL, 4);
  il_layer L;
  il_layer_config cfg = {.solver = "fp", .backward = "unroll", .tol = 1e-4, .fp_correction = 3};
  il_error_clear();
  assert_int_equal(il_layer_create(&L, &cfg, be, 2, W, NULL), IL_ERR_UNSUPPORTED);
  assert_non_null(strstr(il_error_message(), "unroll"));
  assert_non_null(strstr(il_error_message(), "deep supervision"));
  cfg.backward = "implicit";
  cfg.fp_correction = 101;
  il_error_clear();
  assert_int_equal(il_layer_create(&L, &cfg, be, 2, W, NULL), IL_ERR_ARG);
  cfg.fp_correction = -1;
  assert_int_equal(il_layer_create(&L, &cfg, be, 2, W, NULL), IL_ERR_ARG);
  /* a training forward without the outputs' arrays */
  cfg.fp_correction = 2;
  assert_ok(il_layer_create(&L, &cfg, be, 2, W, NULL));
  il_error_clear();
  assert_int_equal(il_layer_forward(&L, 1, dev(NULL, 2), dev(NULL, 2), 1), IL_ERR_ARG);
  assert_ok(il_layer_forward(&L, 1, dev(NULL, 2), dev(NULL, 2), 0)); /* inference needs none */
  il_layer_destroy(&L);
  il_model m;
  il_model_config mc = {.in_dim = 2, .hidden = 2, .classes = 2, .max_batch = 1, .seed = 1,
                        .layer = {.solver = "fp", .backward = "implicit", .tol = 1e-4, .fp_correction = 2},
                        .corr_gamma = 0};
  assert_int_equal(il_model_create(&m, &mc, be), IL_ERR_ARG);
  il_model_destroy(&m);
  mc.corr_gamma = 1.5;
  assert_int_equal(il_model_create(&m, &mc, be), IL_ERR_ARG);
  il_model_destroy(&m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      IL_TEST(test_index_formula),
      IL_TEST(test_corr_points_keep_every_selected_point),
      IL_TEST(test_points_are_the_solvers_iterates),
      IL_TEST(test_corr_points_memory_does_not_grow),
      IL_TEST(test_gradcheck_every_solver_and_mode),
      IL_TEST(test_gradcheck_other_settings),
      IL_TEST(test_gradcheck_fails_without_holding),
      IL_TEST(test_one_point_is_off),
      IL_TEST(test_weights_sum_when_points_coincide),
      IL_TEST(test_refusals),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
