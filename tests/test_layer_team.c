/* tests/test_layer_team.c: the layer's thread team (core/il_layer_team.c). With
 * --threads T > 1 every pair must give the one-thread answer up to float64
 * rounding (shards meet in the stopping test, so iteration counts are equal),
 * be bitwise reproducible run to run, merge per-row state and diagnostics into
 * the caller's view, and count the shards' memory. */
#include "test_util.h"
#include "test_problem.h"

#include "il_events.h"

static il_backend *be1, *be3; /* one thread; three threads (a team of three shards) */

static int team_setup(void **state) {
  (void)state;
  const il_backend_options o1 = {.threads = 1}, o3 = {.threads = 3};
  if (il_backend_create("cpu", &o1, &be1) != IL_OK || il_backend_create("cpu", &o3, &be3) != IL_OK) return -1;
  be = be1;
  return il_arena_init_for(&tspace, be, IL_MEM_WORKSPACE, NULL, 0) == IL_OK ? 0 : -1;
}

static int team_teardown(void **state) {
  (void)state;
  il_arena_destroy(&tspace);
  il_backend_destroy(be1);
  il_backend_destroy(be3);
  return 0;
}

typedef struct run_out {
  double *out, *dx, *dW, *row_res;
  unsigned char *zeroed;
  il_solve_result fres, bres;
  il_layer_diag diag;
  int team;
  il_memstats mem;
  size_t grads_held, left; /* GRADS bytes while the layer lives; bytes still counted after destroy */
  il_events ev;
} run_out;

/* One training step of solver/mode on backend b; C is the output cotangent. */
static void step(il_backend *b, const il_layer_config *cfg, int n, int B, const double *W, const double *x,
                 const double *C, int diag, run_out *r) {
  be = b; /* dev() and host() go through the global instance; the cpu space is plain memory */
  il_layer L;
  memset(&r->mem, 0, sizeof r->mem);
  il_events_reset(&r->ev);
  r->out = calloc((size_t)B * n, sizeof *r->out);
  r->dx = calloc((size_t)B * n, sizeof *r->dx);
  r->dW = calloc((size_t)n * n, sizeof *r->dW);
  r->row_res = calloc((size_t)B, sizeof *r->row_res);
  r->zeroed = calloc((size_t)B, 1);
  assert_ok(layer_create_h(&L, cfg, n, W, &r->mem));
  assert_ok(il_layer_reserve(&L, B));
  r->team = L.team != NULL;
  b->events = &r->ev;
  L.diag_now = diag;
  layer_forward_h(&L, B, x, r->out, 1);
  memcpy(r->row_res, L.row_res, (size_t)B * sizeof *r->row_res);
  memcpy(r->zeroed, L.zeroed, (size_t)B);
  layer_backward_h(&L, C, r->dx, r->dW);
  b->events = NULL;
  r->fres = L.fres;
  r->bres = L.bres;
  r->diag = L.diag;
  r->grads_held = r->mem.current[IL_MEM_GRADS];
  il_layer_destroy(&L);
  r->left = r->mem.current_total;
  be = be1;
}

static void run_free(run_out *r) {
  free(r->out), free(r->dx), free(r->dW), free(r->row_res), free(r->zeroed);
}

/* One thread against a team of three for the layer cfg (its solver, mode and stop rules). */
static void compare_cfg(const il_layer_config *cfg, int B, int diag, double scale) {
  enum { n = 16 };
  double W[n * n], *x = malloc(sizeof(double) * (size_t)B * n), *C = malloc(sizeof(double) * (size_t)B * n);
  make_problem(n, B, scale, 1.0, 11, W, x);
  il_rng r;
  il_rng_seed(&r, 5);
  for (int i = 0; i < B * n; i++) C[i] = il_rng_normal(&r);
  run_out a, t, u;
  step(be1, cfg, n, B, W, x, C, diag, &a);
  step(be3, cfg, n, B, W, x, C, diag, &t);
  step(be3, cfg, n, B, W, x, C, diag, &u);
  print_message("%s/%s B=%d norm %s%s best %d: iters %d vs %d, bwd %d vs %d\n", cfg->solver, cfg->backward, B,
                il_stop_norm_name(cfg->stop_norm), cfg->stop_relf ? " relf" : "", cfg->keep_best, a.fres.iters,
                t.fres.iters, a.bres.iters, t.bres.iters);
  assert_false(a.team);
  assert_true(t.team); /* a batch too small for two shards runs on one shard */
  assert_int_equal(a.fres.iters, t.fres.iters);
  assert_int_equal(a.fres.reason, t.fres.reason);
  assert_int_equal(a.fres.nonconverged_rows, t.fres.nonconverged_rows);
  assert_int_equal(a.bres.iters, t.bres.iters);
  assert_allclose(t.out, a.out, (size_t)B * n, 1e-12, 1e-9);
  assert_allclose(t.dx, a.dx, (size_t)B * n, 1e-12, 1e-9);
  assert_allclose(t.dW, a.dW, (size_t)n * n, 1e-12, 1e-9);
  assert_allclose(t.row_res, a.row_res, (size_t)B, 1e-15, 1e-6);
  assert_memory_equal(t.zeroed, a.zeroed, (size_t)B);
  assert_true(fabs(t.fres.residual - a.fres.residual) <= 1e-6 * a.fres.residual + 1e-15);
  /* the same T twice: bitwise */
  assert_memory_equal(t.out, u.out, sizeof(double) * (size_t)B * n);
  assert_memory_equal(t.dx, u.dx, sizeof(double) * (size_t)B * n);
  assert_memory_equal(t.dW, u.dW, sizeof(double) * (size_t)n * n);
  /* the caller sees the shards' memory and events */
  assert_true(t.mem.peak_total > 0);
  assert_true(t.grads_held >= 3 * sizeof(double) * n * n); /* the shards' dW buffers */
  assert_int_equal(a.left, 0);
  assert_int_equal(t.left, 0); /* destroy hands everything back */
  assert_true(t.mem.peak[IL_MEM_WORKSPACE] > 0);
  assert_int_equal(t.ev.ev[IL_EV_FWD_SOLVE].calls, 1);
  assert_int_equal(t.ev.ev[IL_EV_BWD_SOLVE].calls, 1);
  assert_true(fabs(t.ev.ev[IL_EV_FWD_SOLVE].flops - a.ev.ev[IL_EV_FWD_SOLVE].flops) <=
              1e-9 * a.ev.ev[IL_EV_FWD_SOLVE].flops);
  if (diag) {
    assert_int_equal(t.diag.rho_samples, a.diag.rho_samples);
    assert_true(fabs(t.diag.rho_max - a.diag.rho_max) <= 1e-9);
    assert_true(fabs(t.diag.rho_mean - a.diag.rho_mean) <= 1e-9);
    assert_true(fabs(t.diag.grad_cos - a.diag.grad_cos) <= 1e-9);
    assert_true(isfinite(t.diag.grad_relerr));
  }
  run_free(&a), run_free(&t), run_free(&u);
  free(x), free(C);
}

static void compare_pair(const char *solver, const char *mode, int B, int diag) {
  const il_layer_config cfg = {.solver = solver, .backward = mode, .tol = 1e-10, .max_iter = 300,
                               .zero_nonconverged = IL_ZERO_AUTO};
  compare_cfg(&cfg, B, diag, 0.9);
}

/* The stopping norms and per-row best iterates reduce over the shards as over ranks: the same
 * iterations, rows and residual as one thread (max and mean through the team's max and
 * two-value sum; sample best's residual is reduced after the rows are chosen). */
static void test_team_stop_rules(void **state) {
  (void)state;
  const struct { const char *solver, *mode; int norm, relf, best, max_iter; double tol, scale; } cases[] = {
      {"fp", "implicit", IL_STOP_MAX, 0, 0, 300, 1e-10, 0.9},
      {"fp", "implicit", IL_STOP_MEAN, 1, 0, 300, 1e-10, 0.9},
      {"anderson", "implicit", IL_STOP_MAX, 1, IL_BEST_SAMPLE, 300, 1e-10, 0.9},
      {"newton", "implicit", IL_STOP_MEAN, 0, IL_BEST_SAMPLE, 300, 1e-10, 0.9},
      /* fp that oscillates, cut at 25 maps: sample best picks rows from different iterations */
      {"fp", "implicit", IL_STOP_MAX, 0, IL_BEST_SAMPLE, 25, 1e-14, 3.0},
      {"broyden", "jfb", IL_STOP_FROB, 1, IL_BEST_SAMPLE, 25, 1e-14, 3.0},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    const il_layer_config cfg = {.solver = cases[k].solver, .backward = cases[k].mode, .tol = cases[k].tol,
                                 .max_iter = cases[k].max_iter, .zero_nonconverged = IL_ZERO_NO,
                                 .stop_norm = cases[k].norm, .stop_relf = cases[k].relf,
                                 .keep_best = cases[k].best};
    compare_cfg(&cfg, 37, 0, cases[k].scale);
  }
}

static void test_team_fp(void **state) {
  (void)state;
  compare_pair("fp", "unroll", 37, 0);
  compare_pair("fp", "implicit", 37, 1);
  compare_pair("fp", "phantom:3", 30, 0);
}

static void test_team_newton(void **state) {
  (void)state;
  compare_pair("newton", "unroll", 37, 0);
  compare_pair("newton", "implicit", 37, 1);
  compare_pair("newton-ls", "implicit", 25, 0);
}

static void test_team_anderson_broyden(void **state) {
  (void)state;
  compare_pair("anderson", "implicit", 37, 0);
  compare_pair("broyden", "jfb", 37, 0);
}

/* A batch of 10 rows is below two shards' minimum: one shard, the caller's own layer path. */
static void test_team_small_batch(void **state) {
  (void)state;
  compare_pair("fp", "unroll", 10, 0);
}

/* Per-sample stopping: no communication; the shards finish at their own iteration. */
static void test_team_per_sample(void **state) {
  (void)state;
  enum { n = 12, B = 40 };
  double W[n * n], x[B * n], C[B * n];
  make_problem(n, B, 0.9, 1.0, 3, W, x);
  for (int i = 0; i < B * n; i++) C[i] = 0.01 * (i % 7);
  il_layer_config cfg = {.solver = "fp", .backward = "implicit", .tol = 1e-9, .max_iter = 300,
                         .zero_nonconverged = IL_ZERO_AUTO, .stop_per_sample = 1};
  run_out a, t;
  step(be1, &cfg, n, B, W, x, C, 0, &a);
  step(be3, &cfg, n, B, W, x, C, 0, &t);
  assert_int_equal(a.fres.iters, t.fres.iters); /* the slowest row decides, wherever it is */
  assert_allclose(t.out, a.out, (size_t)B * n, 1e-12, 1e-9);
  assert_allclose(t.dW, a.dW, (size_t)n * n, 1e-12, 1e-9);
  assert_true(fabs(t.fres.residual - a.fres.residual) <= 1e-6 * a.fres.residual + 1e-15);
  run_free(&a), run_free(&t);
}

/* The team's z* for the warm-start table (il_layer_get_zstar) gathers the shards' rows in order:
 * the one-thread z*, Newton's zeroed rows included; and a team forward from a start takes it. */
static void test_team_zstar_and_start(void **state) {
  (void)state;
  enum { n = 10, B = 48 };
  double W[n * n], x[B * n], z1[B * n], z3[B * n], o3[B * n];
  make_problem(n, B, 2.0, 1.0, 17, W, x);
  il_layer_config cfg = {.solver = "newton", .backward = "implicit", .tol = 1e-4, .max_iter = 4,
                         .zero_nonconverged = IL_ZERO_AUTO};
  il_backend *bs[2] = {be1, be3};
  double *zs[2] = {z1, z3};
  int zeroed = 0;
  for (int k = 0; k < 2; k++) {
    be = bs[k];
    il_layer L;
    assert_ok(layer_create_h(&L, &cfg, n, W, NULL));
    assert_int_equal(L.team != NULL, k == 1);
    layer_forward_h(&L, B, x, NULL, 1);
    double *d = dev(NULL, B * n);
    assert_ok(il_layer_get_zstar(&L, d));
    host(zs[k], d, B * n);
    for (int b = 0; b < B; b++) zeroed += k == 1 && L.zeroed[b];
    if (k == 1) { /* from z* itself: a converged row stays */
      assert_ok(il_layer_forward_from(&L, B, dev(x, B * n), d, dev(NULL, B * n), 0));
      assert_ok(il_layer_get_zstar(&L, d));
      host(o3, d, B * n);
    }
    il_layer_destroy(&L);
  }
  be = be1;
  print_message("team z*: %d of %d rows zeroed after 4 Newton steps\n", zeroed, B);
  assert_true(zeroed > 0 && zeroed < B);
  assert_allclose(z3, z1, (size_t)B * n, 1e-12, 1e-12);
  for (int i = 0; i < B * n; i++) assert_true(isfinite(o3[i]));
}

/* Fixed-point correction on the team: the same points, outputs and gradients as one thread. With
 * per-sample stopping the shards stop at their own checks, and the points are placed over the
 * slowest row's count everywhere (one max over the shards), as on one thread. */
enum { CK = 4 };
typedef struct corr_out {
  double *out, *corr[CK - 1], *dx, *dW;
} corr_out;

static void corr_step(il_backend *b, const il_layer_config *cfg, int n, int B, const double *W, const double *x,
                      const double *C, corr_out *r) {
  be = b;
  const size_t len = (size_t)B * n;
  il_layer L;
  assert_ok(layer_create_h(&L, cfg, n, W, NULL));
  assert_ok(il_layer_reserve(&L, B));
  double *dout = dev(NULL, len), *dcorr[CK - 1], *ddx = dev(NULL, len), *ddW = dev(NULL, (size_t)n * n);
  const double *dc[CK - 1];
  for (int k = 0; k < CK - 1; k++) dcorr[k] = dev(NULL, len), dc[k] = dev(C, len);
  assert_ok(il_layer_forward_corr(&L, B, dev(x, len), NULL, dout, dcorr, 1));
  assert_ok(il_layer_backward_corr(&L, dev(C, len), dc, ddx, ddW));
  r->out = malloc(len * sizeof(double)), r->dx = malloc(len * sizeof(double));
  r->dW = malloc((size_t)n * n * sizeof(double));
  host(r->out, dout, len), host(r->dx, ddx, len), host(r->dW, ddW, (size_t)n * n);
  for (int k = 0; k < CK - 1; k++) {
    r->corr[k] = malloc(len * sizeof(double));
    host(r->corr[k], dcorr[k], len);
  }
  il_layer_destroy(&L);
  be = be1;
}

static void corr_compare(const char *solver, const char *mode, int per_sample) {
  enum { n = 12, B = 40 };
  double W[n * n], x[B * n], C[B * n];
  make_problem(n, B, 0.9, 1.0, 13, W, x);
  for (int i = 0; i < B * n; i++) C[i] = 0.01 * (i % 5) - 0.02;
  il_layer_config cfg = {.solver = solver, .backward = mode, .tol = 1e-9, .max_iter = 300,
                         .zero_nonconverged = IL_ZERO_AUTO, .stop_per_sample = per_sample, .fp_correction = CK};
  corr_out a, t;
  corr_step(be1, &cfg, n, B, W, x, C, &a);
  corr_step(be3, &cfg, n, B, W, x, C, &t);
  assert_allclose(t.out, a.out, (size_t)B * n, 1e-12, 1e-9);
  for (int k = 0; k < CK - 1; k++) assert_allclose(t.corr[k], a.corr[k], (size_t)B * n, 1e-12, 1e-9);
  assert_allclose(t.dx, a.dx, (size_t)B * n, 1e-12, 1e-9);
  assert_allclose(t.dW, a.dW, (size_t)n * n, 1e-12, 1e-9);
  free(a.out), free(a.dx), free(a.dW), free(t.out), free(t.dx), free(t.dW);
  for (int k = 0; k < CK - 1; k++) free(a.corr[k]), free(t.corr[k]);
}

static void test_team_correction(void **state) {
  (void)state;
  corr_compare("fp", "implicit", 0);
  corr_compare("fp", "phantom:2", 1);
  corr_compare("newton", "implicit", 1);
  corr_compare("anderson", "jfb", 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      IL_TEST(test_team_fp),          IL_TEST(test_team_newton),   IL_TEST(test_team_anderson_broyden),
      IL_TEST(test_team_small_batch), IL_TEST(test_team_per_sample), IL_TEST(test_team_stop_rules),
      IL_TEST(test_team_zstar_and_start), IL_TEST(test_team_correction),
  };
  return cmocka_run_group_tests(tests, team_setup, team_teardown);
}
