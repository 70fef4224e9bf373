/* tests/test_reference.c: agreement with the seed's own PyTorch layers.
 * tests/reference/make_fixture.py ran the seed's TanhFixedPointLayer,
 * TanhNewtonLayer and TanhNewtonImplicitLayer (torch, float64) on fixed W, x
 * and an upstream gradient C (loss = sum(C * z)), and wrote
 * fixture_seed_layers.txt. Here the C layers must reproduce z*, iteration
 * counts, zeroed rows and the input/weight gradients. No torch needed. */
#include <stdlib.h>
#include <string.h>

#include "il_layer.h"
#include "test_problem.h"
#include "test_util.h"

#ifndef IL_FIXTURE_PATH
#error "IL_FIXTURE_PATH must point at tests/reference/fixture_seed_layers.txt"
#endif

typedef struct entry {
  char name[96];
  int rows, cols;
  double *v; /* rows * cols values; scalars are 1 x 1 */
} entry;

static entry entries[128];
static int nentries;

static int load_fixture(void **state) {
  FILE *f = fopen(IL_FIXTURE_PATH, "r");
  if (!f) {
    fprintf(stderr, "cannot open fixture %s\n", IL_FIXTURE_PATH);
    return -1;
  }
  char line[512];
  while (fgets(line, sizeof line, f)) {
    entry *e = &entries[nentries];
    if (line[0] == '#' || line[0] == '\n') continue;
    if (nentries == 128) break;
    if (sscanf(line, "array %95s %d %d", e->name, &e->rows, &e->cols) == 3) {
      e->v = malloc(sizeof(double) * e->rows * e->cols);
      for (int i = 0; i < e->rows * e->cols; i++)
        if (fscanf(f, "%lf", &e->v[i]) != 1) { fclose(f); return -1; }
      nentries++;
    } else {
      double val;
      if (sscanf(line, "scalar %95s %lf", e->name, &val) == 2) {
        e->rows = e->cols = 1;
        e->v = malloc(sizeof(double));
        e->v[0] = val;
        nentries++;
      }
    }
  }
  fclose(f);
  if (nentries <= 20) return -1;
  return setup(state);
}

static int free_fixture(void **state) {
  for (int i = 0; i < nentries; i++) free(entries[i].v);
  return teardown(state);
}

static const entry *get(const char *name) {
  for (int i = 0; i < nentries; i++)
    if (strcmp(entries[i].name, name) == 0) return &entries[i];
  fail_msg("fixture has no entry %s", name);
  return NULL;
}

static const double *arr(const char *cs, const char *name) {
  char key[96];
  snprintf(key, sizeof key, "%s/%s", cs, name);
  return get(key)->v;
}

typedef struct run {
  double z[64], dx[64], dW[64], row_res[16];
  unsigned char zeroed[16];
  il_solve_result fres;
} run;

static void run_case(const char *cs, const char *solver, const char *mode, int refine, const char *inputs, run *r) {
  const int n = (int)get("input/n")->v[0], B = (int)get("input/B")->v[0];
  char key[96];
  snprintf(key, sizeof key, "%s/tol", cs);
  double tol = get(key)->v[0];
  snprintf(key, sizeof key, "%s/max_iter", cs);
  int max_iter = (int)get(key)->v[0];
  const double *W = arr(inputs, "W"), *x = arr(inputs, "x"), *C = get("input/C")->v;
  il_layer L;
  il_layer_config cfg = {.solver = solver, .backward = mode, .tol = tol, .max_iter = max_iter,
                         .zero_nonconverged = IL_ZERO_AUTO, .adjoint_refine = refine};
  memset(r, 0, sizeof *r);
  assert_ok(layer_create_h(&L, &cfg, n, W, NULL));
  layer_forward_h(&L, B, x, r->z, 1);
  layer_backward_h(&L, C, r->dx, r->dW); /* r->dx, r->dW are zero: the gradients themselves */
  r->fres = L.fres;
  memcpy(r->row_res, L.row_res, sizeof(double) * B);
  memcpy(r->zeroed, L.zeroed, (size_t)B);
  il_layer_destroy(&L);
}

static void check_common(const char *cs, const run *r, double grad_rtol) {
  const int n = (int)get("input/n")->v[0], B = (int)get("input/B")->v[0];
  char key[96];
  snprintf(key, sizeof key, "%s/iterations", cs);
  assert_int_equal(r->fres.iters, (int)get(key)->v[0]);
  assert_allclose(r->z, arr(cs, "z"), (size_t)B * n, 1e-10, 1e-12);
  assert_allclose(r->dx, arr(cs, "grad_x"), (size_t)B * n, grad_rtol, 1e-12);
  assert_allclose(r->dW, arr(cs, "grad_W"), (size_t)n * n, grad_rtol, 1e-12);
}

static void test_fixed_point_unrolled(void **state) {
  run r;
  run_case("fp_unroll", "fp", "unroll", 0, "input", &r);
  check_common("fp_unroll", &r, 1e-9);
  assert_close(r.fres.residual, get("fp_unroll/err")->v[0], 1e-6, 0);
}

static void test_fixed_point_unrolled_loose_tolerance(void **state) {
  /* at tol 1e-3 the unrolled gradient is that of 7 steps, not the implicit one */
  run r;
  run_case("fp_unroll_loose", "fp", "unroll", 0, "input", &r);
  check_common("fp_unroll_loose", &r, 1e-9);
  const double *ift = arr("newton_implicit", "grad_W_ift_zstar");
  double diff = 0;
  for (int i = 0; i < 36; i++) diff = fmax(diff, fabs(r.dW[i] - ift[i]));
  assert_true(diff > 1e-4);
}

static void test_newton_unrolled(void **state) {
  run r;
  run_case("newton_unroll", "newton", "unroll", 0, "input", &r);
  check_common("newton_unroll", &r, 1e-9);
}

static void test_newton_unrolled_zeroes_nonconverged_rows(void **state) {
  const int n = (int)get("input/n")->v[0], B = (int)get("input/B")->v[0];
  run r;
  run_case("newton_unroll_maxiter", "newton", "unroll", 0, "newton_unroll_maxiter", &r);
  check_common("newton_unroll_maxiter", &r, 1e-9);
  assert_allclose(r.row_res, arr("newton_unroll_maxiter", "row_residual"), (size_t)B, 1e-8, 1e-14);
  const entry *zr = get("newton_unroll_maxiter/zeroed_rows");
  int expect[16] = {0};
  for (int i = 0; i < zr->cols; i++) expect[(int)zr->v[i]] = 1;
  for (int b = 0; b < B; b++) assert_int_equal(r.zeroed[b], expect[b]);
  assert_int_equal(r.fres.nonconverged_rows, zr->cols);
  (void)n;
}

static void test_newton_implicit_seed_hook(void **state) {
  /* with refinement off, the gradient is the seed's hook exactly: J from the last Newton step */
  run r;
  run_case("newton_implicit", "newton", "implicit", -1, "input", &r);
  check_common("newton_implicit", &r, 1e-9);
}

static void test_newton_implicit_refined_is_exact_ift(void **state) {
  /* default: refined against J(z*), the exact implicit-function-theorem gradient */
  const int n = (int)get("input/n")->v[0], B = (int)get("input/B")->v[0];
  run r;
  run_case("newton_implicit", "newton", "implicit", 0, "input", &r);
  assert_allclose(r.dx, arr("newton_implicit", "grad_x_ift_zstar"), (size_t)B * n, 1e-9, 1e-12);
  assert_allclose(r.dW, arr("newton_implicit", "grad_W_ift_zstar"), (size_t)n * n, 1e-9, 1e-12);
  /* and so equals the fully converged unrolled fp gradient */
  assert_allclose(r.dW, arr("fp_unroll", "grad_W"), (size_t)n * n, 1e-7, 1e-10);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      IL_TEST(test_fixed_point_unrolled),
      IL_TEST(test_fixed_point_unrolled_loose_tolerance),
      IL_TEST(test_newton_unrolled),
      IL_TEST(test_newton_unrolled_zeroes_nonconverged_rows),
      IL_TEST(test_newton_implicit_seed_hook),
      IL_TEST(test_newton_implicit_refined_is_exact_ift),
  };
  return cmocka_run_group_tests(tests, load_fixture, free_fixture);
}
