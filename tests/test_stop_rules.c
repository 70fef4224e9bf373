/* tests/test_stop_rules.c: the stopping norms and row values of
 * core/solvers/solver_stop.c (float64). Constructed batches whose row norms are
 * set decide when frob, max (TorchDEQ's test) and mean must stop and must not;
 * random batches near tol against the definitions written out here; relf's row
 * value against the returned z*; the per-sample lowest-residual iterate against
 * the iterates of shorter solves, where rows reach their minimum at different
 * iterations. Rank invariance: tests/mpi/test_stop_norm.c, the thread team:
 * tests/test_layer_team.c. */
#include <stdlib.h>
#include <string.h>

#include "il_layer.h"
#include "il_rng.h"
#include "test_problem.h"
#include "test_util.h"

/* Would one check of rows (squared residuals) / frows (squared ||f||) stop the solve? */
static int stops(int norm, int relf, double tol, int B, const double *rows, const double *frows, double *err) {
  il_problem p = {.B = B, .tol = tol, .stop_norm = norm, .stop_relf = relf};
  il_stop st;
  il_solve_result res;
  il_stop_begin(&st, &res);
  *err = il_stop_norm(&p, rows, frows);
  const int done = il_stop_check(&st, &p, *err, 0, &res);
  assert_true(res.residual == *err || (isnan(res.residual) && isnan(*err)));
  return done && res.reason == IL_REASON_CONVERGED;
}

/* rows[b] = norm[b]^2 */
static void squares(int B, const double *norm, double *rows) {
  for (int b = 0; b < B; b++) rows[b] = norm[b] * norm[b];
}

static void test_constructed_decisions(void **state) {
  (void)state;
  enum { B = 4 };
  const double tol = 1e-3;
  double rows[B], err;
  /* every row below tol, the Frobenius norm above it (2 * 9e-4): TorchDEQ's max rule stops,
   * the seed's frob does not, mean does */
  const double below[B] = {9e-4, 9e-4, 9e-4, 9e-4};
  squares(B, below, rows);
  assert_false(stops(IL_STOP_FROB, 0, tol, B, rows, NULL, &err));
  assert_close(err, 1.8e-3, 1e-15, 1e-12);
  assert_true(stops(IL_STOP_MAX, 0, tol, B, rows, NULL, &err));
  assert_true(err == 9e-4);
  assert_true(stops(IL_STOP_MEAN, 0, tol, B, rows, NULL, &err));
  /* one row above tol, the mean of the rows' norms below it: max and frob must not stop, mean does */
  const double one[B] = {2e-3, 1e-4, 1e-4, 1e-4};
  squares(B, one, rows);
  assert_false(stops(IL_STOP_MAX, 0, tol, B, rows, NULL, &err));
  assert_true(err == 2e-3);
  assert_false(stops(IL_STOP_FROB, 0, tol, B, rows, NULL, &err));
  assert_true(stops(IL_STOP_MEAN, 0, tol, B, rows, NULL, &err));
  assert_close(err, 5.75e-4, 1e-15, 1e-12);
  /* the Frobenius norm below tol: every rule stops (frob >= max >= mean always) */
  const double small[B] = {4e-4, 3e-4, 2e-4, 1e-4};
  squares(B, small, rows);
  for (int norm = IL_STOP_FROB; norm <= IL_STOP_MEAN; norm++) assert_true(stops(norm, 0, tol, B, rows, NULL, &err));
  /* a NaN row is non-finite under every norm (max must not drop it) */
  rows[2] = NAN;
  for (int norm = IL_STOP_FROB; norm <= IL_STOP_MEAN; norm++) {
    assert_false(stops(norm, 0, tol, B, rows, NULL, &err));
    assert_true(isnan(err));
  }
  /* relf: the same residuals against ||f(z_b)||. Large ||f||: below tol relative, above it absolute */
  const double big[B] = {2e-3, 2e-3, 2e-3, 2e-3}, fbig[B] = {10, 10, 10, 10};
  double frows[B];
  squares(B, big, rows);
  squares(B, fbig, frows);
  assert_false(stops(IL_STOP_MAX, 0, tol, B, rows, NULL, &err));
  assert_true(stops(IL_STOP_MAX, 1, tol, B, rows, frows, &err));
  assert_close(err, 2e-3 / (10 + 1e-9), 1e-18, 1e-14);
  assert_true(stops(IL_STOP_FROB, 1, tol, B, rows, frows, &err)); /* sqrt(4) * 2e-4 */
  /* small ||f||: below tol absolute, above it relative, and ||f|| = 0 is guarded by 1e-9 */
  const double tiny[B] = {5e-4, 1e-4, 1e-4, 1e-4}, fsmall[B] = {0.1, 1, 1, 0};
  squares(B, tiny, rows);
  squares(B, fsmall, frows);
  assert_true(stops(IL_STOP_MAX, 0, tol, B, rows, NULL, &err));
  assert_false(stops(IL_STOP_MAX, 1, tol, B, rows, frows, &err));
  assert_close(err, 1e-4 / 1e-9, 1e-6, 1e-12); /* the row with f = 0 */
  assert_false(stops(IL_STOP_MEAN, 1, tol, B, rows, frows, &err));
}

/* Random batches with row norms around tol: every rule's decision as written out here. */
static void test_random_decisions_match_definitions(void **state) {
  (void)state;
  enum { MAXB = 9 };
  il_rng r;
  il_rng_seed(&r, 77);
  int differ[3] = {0, 0, 0};
  for (int trial = 0; trial < 400; trial++) {
    const int B = 1 + (int)(il_rng_uniform(&r) * MAXB);
    const double tol = pow(10, -2 - 6 * il_rng_uniform(&r));
    const int relf = trial % 2;
    double rows[MAXB], frows[MAXB], v[MAXB];
    double mx = 0, sum = 0, sq = 0;
    for (int b = 0; b < B; b++) {
      const double a = tol * exp(2.5 * (2 * il_rng_uniform(&r) - 1)); /* ||z_b - f_b|| */
      const double f = exp(3 * (2 * il_rng_uniform(&r) - 1));         /* ||f_b|| */
      rows[b] = a * a;
      frows[b] = f * f;
      v[b] = relf ? a / (f + 1e-9) : a; /* TorchDEQ: abs_diff, rel_diff = abs_diff / (||f|| + 1e-9) */
    }
    for (int b = 0; b < B; b++) {
      mx = v[b] > mx ? v[b] : mx;
      sum += v[b];
      sq += v[b] * v[b];
    }
    const double want[3] = {sqrt(sq), mx, sum / B};
    for (int norm = IL_STOP_FROB; norm <= IL_STOP_MEAN; norm++) {
      double err;
      const int got = stops(norm, relf, tol, B, rows, relf ? frows : NULL, &err);
      assert_close(err, want[norm], 0, 1e-12);
      if (fabs(want[norm] - tol) > 1e-9 * tol) /* not within rounding of the threshold */
        if (got != (want[norm] < tol))
          fail_msg("trial %d norm %s relf %d: %.17g vs tol %.17g, stopped %d", trial, il_stop_norm_name(norm), relf,
                   want[norm], tol, got);
      differ[norm] += got;
    }
  }
  print_message("stops out of 400: frob %d, max %d, mean %d\n", differ[0], differ[1], differ[2]);
  /* the cases mean something: every rule both stops and goes on, and they do not agree */
  for (int k = 0; k < 3; k++) assert_true(differ[k] > 20 && differ[k] < 380);
  assert_true(differ[0] < differ[1] && differ[1] < differ[2]);
}

/* ---- solves ---- */

static il_status solve(const char *name, const char *cell, const double *W, const double *x, int n, int B,
                       const il_problem *cfg, double *z, double *rows, il_solve_result *res) {
  const il_solver_ops *ops = il_solver_find(name);
  assert_non_null(ops);
  tsolve t;
  void *st;
  tsolve_init(&t, cell, W, x, n, B);
  assert_ok(ops->create(NULL, &st));
  t.p.tol = cfg->tol;
  t.p.max_iter = cfg->max_iter;
  t.p.stop_norm = cfg->stop_norm;
  t.p.stop_relf = cfg->stop_relf;
  t.p.keep_best = cfg->keep_best;
  t.p.per_sample = cfg->per_sample;
  il_status s = tsolve_run(ops, st, &t.p, z, rows, res);
  ops->destroy(st);
  tsolve_destroy(&t);
  return s;
}

/* ||z_b - tanh(W z_b + x_b)||^2 and ||tanh(W z_b + x_b)||^2 on the host */
static void host_rows(const double *W, const double *x, const double *z, int n, int B, double *r2, double *f2) {
  for (int b = 0; b < B; b++) {
    r2[b] = f2[b] = 0;
    for (int i = 0; i < n; i++) {
      double a = x[b * n + i];
      for (int j = 0; j < n; j++) a += W[i * n + j] * z[b * n + j];
      const double f = tanh(a), e = z[b * n + i] - f;
      r2[b] += e * e;
      f2[b] += f * f;
    }
  }
}

/* Newton and Broyden return the iterate their last check measured: row_res is its row value,
 * abs or relf, and the batch residual is that norm of the rows. */
static void test_row_values_of_the_returned_iterate(void **state) {
  (void)state;
  enum { n = 10, B = 5 };
  double W[n * n], x[B * n], z[B * n], rows[B], r2[B], f2[B];
  il_solve_result res;
  make_problem(n, B, 1.2, 1.0, 31, W, x);
  for (int b = 0; b < n; b++) x[2 * n + b] *= 1e-3; /* a row with a small ||f||: relf and abs differ most */
  const char *names[] = {"newton", "broyden"};
  for (int k = 0; k < 2; k++)
    for (int relf = 0; relf <= 1; relf++)
      for (int norm = IL_STOP_FROB; norm <= IL_STOP_MEAN; norm++) {
        const il_problem cfg = {.tol = 1e-6, .max_iter = 3, .stop_norm = norm, .stop_relf = relf};
        assert_ok(solve(names[k], "tanh", W, x, n, B, &cfg, z, rows, &res));
        host_rows(W, x, z, n, B, r2, f2);
        double v[B], mx = 0, sum = 0, sq = 0;
        for (int b = 0; b < B; b++) {
          v[b] = relf ? sqrt(r2[b]) / (sqrt(f2[b]) + 1e-9) : sqrt(r2[b]);
          mx = v[b] > mx ? v[b] : mx, sum += v[b], sq += v[b] * v[b];
        }
        assert_allclose(rows, v, B, 1e-15, 1e-6);
        const double want = norm == IL_STOP_MAX ? mx : norm == IL_STOP_MEAN ? sum / B : sqrt(sq);
        assert_close(res.residual, want, 1e-15, 1e-6);
      }
}

static double norm_of(int norm, const double *v, int B) {
  double mx = 0, sum = 0, sq = 0;
  for (int b = 0; b < B; b++) mx = v[b] > mx ? v[b] : mx, sum += v[b], sq += v[b] * v[b];
  return norm == IL_STOP_MAX ? mx : norm == IL_STOP_MEAN ? sum / B : sqrt(sq);
}

/* A real solve stops at the first map where its norm of the rows is below tol, not one earlier:
 * mean no later than max, max no later than frob (the iterates do not depend on the norm). */
static void test_norms_order_the_iterations(void **state) {
  (void)state;
  enum { n = 16, B = 40 };
  double W[n * n], x[B * n], z[B * n], rows[B];
  il_solve_result res[3], r;
  make_problem(n, B, 1.0, 1.0, 32, W, x);
  for (int norm = IL_STOP_FROB; norm <= IL_STOP_MEAN; norm++) {
    const il_problem cfg = {.tol = 1e-8, .max_iter = 500, .stop_norm = norm};
    assert_ok(solve("fp", "tanh", W, x, n, B, &cfg, z, rows, &res[norm]));
    assert_int_equal(res[norm].reason, IL_REASON_CONVERGED);
    assert_true(norm_of(norm, rows, B) < 1e-8);
    const il_problem one_less = {.tol = 1e-8, .max_iter = res[norm].iters - 1, .stop_norm = norm};
    assert_ok(solve("fp", "tanh", W, x, n, B, &one_less, z, rows, &r));
    assert_int_equal(r.reason, IL_REASON_MAX_ITER);
    assert_true(norm_of(norm, rows, B) >= 1e-8);
    print_message("fp, %s norm: %d maps\n", il_stop_norm_name(norm), res[norm].iters);
  }
  assert_true(res[IL_STOP_MEAN].iters <= res[IL_STOP_MAX].iters && res[IL_STOP_MAX].iters <= res[IL_STOP_FROB].iters);
  assert_true(res[IL_STOP_MEAN].iters < res[IL_STOP_FROB].iters);
  /* per-sample stopping on relf: every row stops on its own relative value */
  const il_problem ps = {.tol = 1e-8, .max_iter = 500, .per_sample = 1, .stop_relf = 1};
  assert_ok(solve("fp", "tanh", W, x, n, B, &ps, z, rows, &res[0]));
  assert_int_equal(res[0].reason, IL_REASON_CONVERGED);
  for (int b = 0; b < B; b++) assert_true(rows[b] < 1e-8);
}

/* --best sample: on a problem where fp oscillates, each row comes back as the iterate of its own
 * lowest residual, found at different iterations for different rows; a contractive solve is left
 * as it is. */
static void test_best_per_sample(void **state) {
  (void)state;
  enum { n = 30, B = 4, K = 40 };
  double W[n * n], x[B * n], rows[B];
  double *zk = malloc(sizeof(double) * K * B * n), rk[K][B], z[B * n];
  il_solve_result res;
  const char *names[] = {"fp", "anderson"};
  for (int s = 0; s < 2; s++) {
    make_problem(n, B, 3.0, 1.0, 9, W, x);
    /* the iterate returned after k + 1 iterations and its rows' values, without --best */
    for (int k = 0; k < K; k++) {
      const il_problem cfg = {.tol = 1e-14, .max_iter = k + 1};
      assert_ok(solve(names[s], "tanh", W, x, n, B, &cfg, zk + (size_t)k * B * n, rk[k], &res));
    }
    int kmin[B], distinct = 0;
    double vmin[B], sq = 0;
    for (int b = 0; b < B; b++) {
      kmin[b] = 0;
      for (int k = 1; k < K; k++)
        if (rk[k][b] < rk[kmin[b]][b]) kmin[b] = k;
      vmin[b] = rk[kmin[b]][b];
      sq += vmin[b] * vmin[b];
      distinct += b > 0 && kmin[b] != kmin[0];
      print_message("%s row %d: lowest residual %.3e at iteration %d (last %.3e)\n", names[s], b, vmin[b], kmin[b],
                    rk[K - 1][b]);
    }
    assert_true(distinct > 0); /* otherwise the case shows nothing batch-best would not */
    const il_problem best = {.tol = 1e-14, .max_iter = K, .keep_best = IL_BEST_SAMPLE};
    assert_ok(solve(names[s], "tanh", W, x, n, B, &best, z, rows, &res));
    assert_int_equal(res.reason, IL_REASON_MAX_ITER);
    for (int b = 0; b < B; b++) {
      assert_memory_equal(z + b * n, zk + ((size_t)kmin[b] * B + b) * n, sizeof(double) * n);
      assert_true(rows[b] == vmin[b]);
    }
    assert_close(res.residual, sqrt(sq), 0, 1e-14);
    /* batch best returns one iterate for all rows: never better per row than sample best */
    const il_problem bb = {.tol = 1e-14, .max_iter = K, .keep_best = IL_BEST_BATCH};
    double zb[B * n], rb[B];
    assert_ok(solve(names[s], "tanh", W, x, n, B, &bb, zb, rb, &res));
    for (int b = 0; b < B; b++) assert_true(rows[b] <= rb[b]);
  }
  /* a contractive fp: each row's residual falls at every map, so sample best changes nothing */
  make_problem(n, B, 0.8, 1.0, 10, W, x);
  const il_problem plain = {.tol = 1e-10, .max_iter = 500}, sb = {.tol = 1e-10, .max_iter = 500,
                                                                   .keep_best = IL_BEST_SAMPLE};
  double z2[B * n];
  il_solve_result r2;
  assert_ok(solve("fp", "tanh", W, x, n, B, &plain, z, rows, &res));
  assert_ok(solve("fp", "tanh", W, x, n, B, &sb, z2, rows, &r2));
  assert_int_equal(res.reason, IL_REASON_CONVERGED);
  assert_int_equal(res.iters, r2.iters);
  assert_memory_equal(z, z2, sizeof z);
  free(zk);
}

/* Through the layer: the rules are validated, and --best sample with a Newton layer's zeroing
 * judges the rows it returns. */
static void test_layer_validation(void **state) {
  (void)state;
  double *W = dev(NULL, 9);
  il_layer L;
  const struct {
    il_layer_config cfg;
    il_status want;
    const char *needle;
  } cases[] = {
      {{.solver = "fp", .backward = "implicit", .tol = 1e-6, .stop_per_sample = 1, .stop_norm = IL_STOP_MAX},
       IL_ERR_UNSUPPORTED, "per-sample"},
      {{.solver = "fp", .backward = "implicit", .tol = 1e-6, .stop_rel = 1, .stop_relf = 1}, IL_ERR_ARG, "relf"},
      {{.solver = "fp", .backward = "implicit", .tol = 1e-6, .stop_per_sample = 1, .stop_rel = 1}, IL_ERR_UNSUPPORTED,
       "first residual"},
      {{.solver = "fp", .backward = "implicit", .tol = 1e-6, .stop_norm = 3}, IL_ERR_ARG, "stop norm"},
      {{.solver = "fp", .backward = "implicit", .tol = 1e-6, .keep_best = 3}, IL_ERR_ARG, "best-iterate"},
      {{.solver = "fp", .backward = "unroll", .tol = 1e-6, .keep_best = IL_BEST_SAMPLE}, IL_ERR_UNSUPPORTED,
       "lowest-residual"},
      {{.solver = "fp", .backward = "implicit", .tol = 1e-6, .keep_best = IL_BEST_SAMPLE, .stop_per_sample = 1},
       IL_ERR_UNSUPPORTED, "batch stopping"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    il_error_clear();
    const il_status s = il_layer_create(&L, &cases[k].cfg, be, 3, W, NULL);
    if (s == IL_OK) il_layer_destroy(&L);
    assert_int_equal(s, cases[k].want);
    if (!strstr(il_error_message(), cases[k].needle))
      fail_msg("case %zu: '%s' lacks '%s'", k, il_error_message(), cases[k].needle);
  }
  const il_layer_config ok[] = {
      {.solver = "fp", .backward = "implicit", .tol = 1e-6, .stop_per_sample = 1, .stop_relf = 1},
      {.solver = "newton", .backward = "implicit", .tol = 1e-6, .stop_norm = IL_STOP_MEAN, .stop_relf = 1,
       .keep_best = IL_BEST_SAMPLE},
  };
  for (size_t k = 0; k < sizeof ok / sizeof ok[0]; k++) {
    assert_ok(il_layer_create(&L, &ok[k], be, 3, W, NULL));
    il_layer_destroy(&L);
  }
  /* mean lets rows above tol through; Newton's layer zeroes exactly those (row_res > tol) */
  enum { n = 8, B = 6 };
  double Wh[n * n], x[B * n], out[B * n];
  make_problem(n, B, 1.0, 1.0, 40, Wh, x);
  for (int i = 0; i < n; i++) x[i] *= 30; /* a saturated row */
  il_layer_config cfg = {.solver = "newton", .backward = "implicit", .tol = 1e-2, .max_iter = 40,
                         .stop_norm = IL_STOP_MEAN, .keep_best = IL_BEST_SAMPLE};
  assert_ok(layer_create_h(&L, &cfg, n, Wh, NULL));
  layer_forward_h(&L, B, x, out, 0);
  int zeroed = 0;
  for (int b = 0; b < B; b++) {
    assert_int_equal(L.zeroed[b], !(L.row_res[b] <= L.fres.tol_abs));
    zeroed += L.zeroed[b];
  }
  assert_int_equal(zeroed, L.fres.nonconverged_rows);
  print_message("newton, mean norm: %s after %d steps, residual %.3e, %d rows zeroed\n",
                il_reason_name(L.fres.reason), L.fres.iters, L.fres.residual, zeroed);
  assert_int_equal(L.fres.reason, IL_REASON_CONVERGED);
  assert_true(zeroed > 0 && zeroed < B);
  il_layer_destroy(&L);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      IL_TEST(test_constructed_decisions),
      IL_TEST(test_random_decisions_match_definitions),
      IL_TEST(test_row_values_of_the_returned_iterate),
      IL_TEST(test_norms_order_the_iterations),
      IL_TEST(test_best_per_sample),
      IL_TEST(test_layer_validation),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
