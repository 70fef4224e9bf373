/* tests/test_warm_start.c: per-sample warm starts in float64 (core/il_warm_start.h,
 * il_layer_cold_start, il_layer_get_zstar): the table's gather and scatter by sample index,
 * the never-seen and forgotten rows, each solver's own start for them (0, or Newton's f(0)),
 * and a second solve of the same samples from their stored fixed points. */
#include <stdlib.h>
#include <string.h>

#include "il_layer.h"
#include "il_warm_start.h"
#include "test_problem.h"
#include "test_util.h"

static void test_table_by_sample(void **state) {
  enum { count = 10, n = 3 };
  il_warm_start w;
  il_memstats st = {0};
  assert_ok(il_warm_start_init(&w, be, count, n, 4, &st));
  assert_true(st.current[IL_MEM_STATE] >= count * n * sizeof(double));
  il_real *z0;
  const unsigned char *cold;
  const uint32_t first[3] = {7, 2, 9};
  assert_ok(il_warm_start_begin(&w, 3, first, &z0, &cold)); /* nothing seen: no start at all */
  assert_null(z0);
  assert_null(cold);
  const double rows[3 * n] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  assert_ok(il_upload(be, w.rows, rows, 3 * n));
  const unsigned char forget[3] = {0, 1, 0}; /* sample 2 forgets */
  assert_ok(il_warm_start_store(&w, 3, first, forget));
  const uint32_t next[4] = {9, 2, 5, 7};
  assert_ok(il_warm_start_begin(&w, 4, next, &z0, &cold));
  assert_non_null(z0);
  assert_non_null(cold);
  const unsigned char want_cold[4] = {0, 1, 1, 0};
  assert_memory_equal(cold, want_cold, 4);
  double got[4 * n];
  const double s9[n] = {7, 8, 9}, s7[n] = {1, 2, 3};
  host(got, z0, 4 * n);
  assert_allclose(got, s9, n, 0, 0);         /* sample 9 */
  assert_allclose(got + 3 * n, s7, n, 0, 0); /* sample 7 */
  const uint32_t seen[2] = {7, 9};
  assert_ok(il_warm_start_begin(&w, 2, seen, &z0, &cold)); /* all seen: no cold rows */
  assert_non_null(z0);
  assert_null(cold);
  const uint32_t out_of_range[1] = {count};
  il_error_clear();
  assert_int_equal(il_warm_start_begin(&w, 1, out_of_range, &z0, &cold), IL_ERR_ARG);
  /* the table's round trip */
  double *tab = calloc(count * n, sizeof *tab);
  assert_ok(il_warm_start_get(&w, tab));
  assert_allclose(tab + 9 * n, s9, n, 0, 0);
  tab[0] = 42;
  assert_ok(il_warm_start_set(&w, tab));
  double back[count * n];
  assert_ok(il_warm_start_get(&w, back));
  assert_memory_equal(back, tab, sizeof back);
  free(tab);
  il_warm_start_destroy(&w);
  assert_int_equal(st.current[IL_MEM_STATE], 0);
}

/* The marked rows get the solver's own start, the others stay: 0 for fp, f(0) = tanh(x) for
 * Newton (W z = 0). Then a solve from those starts: Newton from f(0) is the cold solve. */
static void test_cold_start_rows(void **state) {
  enum { n = 6, B = 4 };
  double W[n * n], x[B * n], z[B * n], zc[B * n], got[B * n];
  make_problem(n, B, 1.0, 1.0, 91, W, x);
  const unsigned char rows[B] = {1, 0, 1, 1};
  const char *solvers[] = {"fp", "newton"};
  for (int k = 0; k < 2; k++) {
    il_layer L;
    il_layer_config cfg = {.solver = solvers[k], .backward = "implicit", .tol = 1e-12};
    assert_ok(layer_create_h(&L, &cfg, n, W, NULL));
    for (int i = 0; i < B * n; i++) z[i] = 100 + i;
    double *dz = dev(z, B * n), *dx = dev(x, B * n);
    assert_ok(il_layer_cold_start(&L, B, dx, rows, dz));
    host(got, dz, B * n);
    for (int b = 0; b < B; b++)
      for (int i = 0; i < n; i++) {
        const double want = !rows[b] ? z[b * n + i] : k == 0 ? 0 : tanh(x[b * n + i]);
        assert_allclose(&got[b * n + i], &want, 1, 1e-15, 0);
      }
    if (k == 1) { /* every row from f(0): the cold solve, to the last bit */
      const unsigned char all[B] = {1, 1, 1, 1};
      assert_ok(il_layer_cold_start(&L, B, dx, all, dz));
      double *out = dev(NULL, B * n);
      assert_ok(il_layer_forward_from(&L, B, dx, dz, out, 0));
      host(got, out, B * n);
      const int warm_iters = L.fres.iters;
      layer_forward_h(&L, B, x, zc, 0);
      assert_memory_equal(got, zc, sizeof got);
      assert_int_equal(warm_iters, L.fres.iters);
    }
    il_layer_destroy(&L);
  }
}

/* A training forward's z* (il_layer_get_zstar) stored and given back: the second solve of the
 * same samples starts at its fixed point and stops at once. */
static void test_second_solve_from_stored_fixed_point(void **state) {
  enum { n = 8, B = 5, count = 12 };
  double W[n * n], x[B * n], zs[B * n], out[B * n];
  make_problem(n, B, 1.0, 1.0, 92, W, x);
  il_layer L;
  il_layer_config cfg = {.solver = "fp", .backward = "implicit", .tol = 1e-10, .max_iter = 500};
  assert_ok(layer_create_h(&L, &cfg, n, W, NULL));
  il_warm_start w;
  assert_ok(il_warm_start_init(&w, be, count, n, B, NULL));
  const uint32_t idx[B] = {11, 0, 4, 6, 3};
  layer_forward_h(&L, B, x, out, 1);
  const int cold_iters = L.fres.iters;
  assert_ok(il_layer_get_zstar(&L, w.rows));
  host(zs, w.rows, B * n);
  assert_allclose(zs, out, B * n, 0, 1e-9); /* implicit's output: f(z*), within tol of z* */
  assert_ok(il_warm_start_store(&w, B, idx, L.zeroed));
  il_real *z0;
  const unsigned char *cold;
  assert_ok(il_warm_start_begin(&w, B, idx, &z0, &cold));
  assert_null(cold);
  double *dout = dev(NULL, B * n);
  assert_ok(il_layer_forward_from(&L, B, dev(x, B * n), z0, dout, 1));
  print_message("fp: %d maps cold, %d from the stored fixed points\n", cold_iters, L.fres.iters);
  assert_int_equal(L.fres.reason, IL_REASON_CONVERGED);
  assert_true(cold_iters > 10 && L.fres.iters <= 1);
  il_warm_start_destroy(&w);
  il_layer_destroy(&L);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      IL_TEST(test_table_by_sample),
      IL_TEST(test_cold_start_rows),
      IL_TEST(test_second_solve_from_stored_fixed_point),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
