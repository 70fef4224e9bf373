/* tests/test_trace.c: the residual traces (--trace, il_layer_trace_init) in
 * float64. For every solver and backward mode: the forward trace holds one
 * residual per check, iterations consecutive up to fres.iters (Newton solvers
 * from 0, their start), its last entry is fres.residual; the backward trace
 * holds bres.iters entries (unroll: the replayed cotangents, the first one
 * ||dL/dz*||; lu: the adjoint residual of each kept correction, the last one
 * bres.residual * ||dL/dz*||; the matrix-free adjoints: one per vjp), and
 * phantom/jfb record nothing. Tracing changes no result, a step without
 * trace_now records nothing, and a thread team shows shard 0's traces, equal
 * to one thread's. */
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "test_problem.h"

enum { N = 16, BATCH = 24 };

typedef struct traced_step {
  il_solve_result fres, bres;
  il_trace ft, bt;  /* copies of the layer's traces (arrays malloc'd here) */
  const char *bname;
  double *out, *dx, *dW;
  int team;
} traced_step;

static il_trace copy_trace(const il_trace *t) {
  il_trace c = *t;
  c.res = malloc(sizeof(double) * (size_t)(t->n + 1));
  c.iter = malloc(sizeof(int) * (size_t)(t->n + 1));
  if (t->n > 0) {
    memcpy(c.res, t->res, sizeof(double) * (size_t)t->n);
    memcpy(c.iter, t->iter, sizeof(int) * (size_t)t->n);
  }
  return c;
}

static void step_free(traced_step *s) {
  free(s->ft.res), free(s->ft.iter), free(s->bt.res), free(s->bt.iter);
  free(s->out), free(s->dx), free(s->dW);
}

/* One training step of solver/backward (adjoint: the adjoint solver or NULL) on b, traced or not. */
static void run_step(il_backend *b, const char *solver, const char *backward, const char *adjoint, int traced,
                     traced_step *s) {
  il_backend *keep = be;
  be = b;
  double W[N * N], x[BATCH * N], C[BATCH * N];
  make_problem(N, BATCH, 0.9, 1.0, 7, W, x);
  il_rng r;
  il_rng_seed(&r, 3);
  for (int i = 0; i < BATCH * N; i++) C[i] = il_rng_normal(&r);
  il_options o;
  il_options_init(&o);
  if (adjoint) assert_ok(il_options_set(&o, "adjoint-solver", adjoint));
  const il_layer_config cfg = {.solver = solver, .backward = backward, .tol = 1e-10, .max_iter = 300,
                               .zero_nonconverged = IL_ZERO_NO, .opts = &o};
  il_layer L;
  assert_ok(layer_create_h(&L, &cfg, N, W, NULL));
  assert_ok(il_layer_reserve(&L, BATCH));
  if (traced) assert_ok(il_layer_trace_init(&L));
  memset(s, 0, sizeof *s);
  s->team = L.team != NULL;
  s->out = calloc(BATCH * N, sizeof *s->out);
  s->dx = calloc(BATCH * N, sizeof *s->dx);
  s->dW = calloc(N * N, sizeof *s->dW);
  L.trace_now = traced;
  layer_forward_h(&L, BATCH, x, s->out, 1);
  layer_backward_h(&L, C, s->dx, s->dW);
  s->fres = L.fres;
  s->bres = L.bres;
  s->ft = copy_trace(&L.ftrace);
  s->bt = copy_trace(&L.btrace);
  s->bname = L.btrace_solver;
  /* a step without trace_now records nothing */
  L.trace_now = 0;
  layer_forward_h(&L, BATCH, x, NULL, 1);
  assert_int_equal(L.ftrace.n, 0);
  assert_int_equal(L.btrace.n, 0);
  il_layer_destroy(&L);
  be = keep;
}

static double norm_h(const double *v, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += v[i] * v[i];
  return sqrt(s);
}

static void check_pair(const char *solver, const char *backward, const char *adjoint) {
  traced_step t, u;
  run_step(be, solver, backward, adjoint, 1, &t);
  run_step(be, solver, backward, adjoint, 0, &u);
  print_message("%s/%s%s%s: forward %d checks (iters %d), backward %d (iters %d, %s)\n", solver, backward,
                adjoint ? " " : "", adjoint ? adjoint : "", t.ft.n, t.fres.iters, t.bt.n, t.bres.iters,
                t.bname ? t.bname : "-");
  /* tracing changes nothing */
  assert_memory_equal(t.out, u.out, sizeof(double) * BATCH * N);
  assert_memory_equal(t.dx, u.dx, sizeof(double) * BATCH * N);
  assert_memory_equal(t.dW, u.dW, sizeof(double) * N * N);
  assert_int_equal(u.ft.n, 0);
  /* forward: iterations consecutive, ending at fres.iters, the last residual the reported one */
  assert_int_equal(t.ft.lost, 0);
  assert_true(t.ft.n >= 1);
  const int first = t.ft.iter[0];
  assert_int_equal(first, strncmp(solver, "newton", 6) == 0 ? 0 : 1);
  for (int i = 0; i < t.ft.n; i++) assert_int_equal(t.ft.iter[i], first + i);
  assert_int_equal(t.ft.iter[t.ft.n - 1], t.fres.iters);
  assert_true(t.ft.res[t.ft.n - 1] == t.fres.residual);
  assert_int_equal(t.fres.reason, IL_REASON_CONVERGED);
  /* backward */
  assert_int_equal(t.bt.lost, 0);
  if (strncmp(backward, "phantom", 7) == 0 || strcmp(backward, "jfb") == 0) {
    assert_int_equal(t.bt.cap, 0);
    assert_int_equal(t.bt.n, 0);
    assert_null(t.bname);
  } else {
    assert_non_null(t.bname);
    assert_string_equal(t.bname, strcmp(backward, "unroll") == 0 ? "unroll" : adjoint ? adjoint : "lu");
    assert_int_equal(t.bt.n, t.bres.iters);
    for (int i = 0; i < t.bt.n; i++) assert_int_equal(t.bt.iter[i], i + 1);
    double C[BATCH * N];
    il_rng r;
    il_rng_seed(&r, 3);
    for (int i = 0; i < BATCH * N; i++) C[i] = il_rng_normal(&r);
    const double cn = norm_h(C, BATCH * N);
    if (strcmp(backward, "unroll") == 0) {
      assert_int_equal(t.bt.n, t.fres.iters);
      assert_close(t.bt.res[0], cn, 1e-12, 0); /* the cotangent entering the last forward step: dL/dz* */
    } else if (!adjoint || strcmp(adjoint, "lu") == 0) {
      assert_close(t.bt.res[t.bt.n - 1] / cn, t.bres.residual, 1e-12, 0);
    }
    for (int i = 0; i < t.bt.n; i++) assert_true(isfinite(t.bt.res[i]) && t.bt.res[i] >= 0);
  }
  step_free(&t), step_free(&u);
}

static void test_every_solver_forward_and_unroll(void **state) {
  (void)state;
  for (int i = 0; il_solver_at(i); i++) {
    const il_solver_ops *so = il_solver_at(i);
    check_pair(so->name, "implicit", NULL);
    if (so->unroll_backward) check_pair(so->name, "unroll", NULL);
  }
}

static void test_every_backward(void **state) {
  (void)state;
  const char *const adjoints[] = {"lu", "fp", "anderson", "gmres"};
  for (size_t k = 0; k < sizeof adjoints / sizeof adjoints[0]; k++) check_pair("fp", "implicit", adjoints[k]);
  check_pair("newton", "implicit", "lu"); /* the reused Newton LU, refined */
  check_pair("fp", "phantom:3", NULL);
  check_pair("anderson", "jfb", NULL);
}

/* A thread team shows shard 0's traces: the same checks and residuals as one thread. */
static void test_team_shows_shard0(void **state) {
  (void)state;
  if (strcmp(test_device(), "cpu") != 0) skip(); /* the team needs host memory */
  il_backend *be3;
  const il_backend_options o3 = {.threads = 3};
  assert_ok(il_backend_create("cpu", &o3, &be3));
  const char *const pairs[][3] = {{"fp", "unroll", NULL}, {"anderson", "implicit", "gmres"}, {"newton", "unroll", NULL}};
  for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++) {
    traced_step a, t;
    run_step(be, pairs[k][0], pairs[k][1], pairs[k][2], 1, &a);
    run_step(be3, pairs[k][0], pairs[k][1], pairs[k][2], 1, &t);
    assert_false(a.team);
    assert_true(t.team);
    assert_int_equal(t.ft.n, a.ft.n);
    assert_int_equal(t.bt.n, a.bt.n);
    assert_memory_equal(t.ft.iter, a.ft.iter, sizeof(int) * (size_t)a.ft.n);
    assert_memory_equal(t.bt.iter, a.bt.iter, sizeof(int) * (size_t)a.bt.n);
    assert_allclose(t.ft.res, a.ft.res, (size_t)a.ft.n, 1e-9, 1e-300);
    assert_allclose(t.bt.res, a.bt.res, (size_t)a.bt.n, 1e-9, 1e-300);
    assert_true(t.ft.res[t.ft.n - 1] == t.fres.residual);
    step_free(&a), step_free(&t);
  }
  il_backend_destroy(be3);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      IL_TEST(test_every_solver_forward_and_unroll),
      IL_TEST(test_every_backward),
      IL_TEST(test_team_shows_shard0),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
