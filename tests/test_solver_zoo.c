/* tests/test_solver_zoo.c: the solver zoo in float64 (IL_PREC=64). Every solver
 * reaches Newton's z*; every reason comes out of a constructed case; gradcheck
 * of implicit backward with every adjoint solver; phantom/jfb against the IFT
 * gradient; stop modes, lowest-residual iterate, divergence; the seed's sech^2;
 * diagnostics on known matrices; option and pair validation. */
#include <stdlib.h>
#include <string.h>

#include "il_gradcheck.h"
#include "il_layer.h"
#include "il_rng.h"
#include "test_problem.h"
#include "test_util.h"


typedef struct solve_opts {
  const char *key[4], *val[4];
  int stop_rel, keep_best;
  double divtol;
} solve_opts;

static il_status solve_by_name(const char *name, const solve_opts *so, const double *W, const double *x, int n, int B,
                               double tol, int max_iter, double *z, double *rows, il_solve_result *res) {
  const il_solver_ops *ops = il_solver_find(name);
  assert_non_null(ops);
  tsolve t;
  il_options o;
  void *st;
  il_options_init(&o);
  for (int i = 0; so && i < 4 && so->key[i]; i++) assert_ok(il_options_set(&o, so->key[i], so->val[i]));
  tsolve_init(&t, "tanh", W, x, n, B);
  il_status s = ops->create(&o, &st);
  if (s != IL_OK) {
    tsolve_destroy(&t);
    return s;
  }
  assert_ok(il_options_check_all_used(&o, name));
  t.p.tol = tol;
  t.p.max_iter = max_iter;
  t.p.stop_rel = so ? so->stop_rel : 0;
  t.p.divtol = so ? so->divtol : 0;
  t.p.keep_best = so ? so->keep_best : 0;
  s = tsolve_run(ops, st, &t.p, z, rows, res);
  ops->destroy(st);
  tsolve_destroy(&t);
  return s;
}

static double fixed_point_residual(const double *W, const double *x, const double *z, int n, int B) {
  double acc = 0;
  for (int b = 0; b < B; b++)
    for (int i = 0; i < n; i++) {
      double a = x[b * n + i];
      for (int j = 0; j < n; j++) a += W[i * n + j] * z[b * n + j];
      const double e = tanh(a) - z[b * n + i];
      acc += e * e;
    }
  return sqrt(acc);
}

static void test_every_solver_reaches_newtons_fixed_point(void **state) {
  enum { n = 40, B = 6 };
  double *W = malloc(sizeof(double) * n * n), x[B * n], zn[B * n], z[B * n];
  il_solve_result rn, r, rfp;
  make_problem(n, B, 1.2, 1.0, 42, W, x);
  assert_ok(solve_by_name("newton", NULL, W, x, n, B, 1e-12, 40, zn, NULL, &rn));
  assert_int_equal(rn.reason, IL_REASON_CONVERGED);
  assert_ok(solve_by_name("fp", NULL, W, x, n, B, 1e-11, 2000, z, NULL, &rfp));
  const struct { const char *name; solve_opts o; } cases[] = {
      {"fp", {.key = {0}}},
      {"fp", {.key = {"fp-tau"}, .val = {"0.7"}}},
      {"anderson", {.key = {0}}},
      {"anderson", {.key = {"anderson-m", "anderson-beta", "anderson-lambda"}, .val = {"3", "0.8", "1e-8"}}},
      {"broyden", {.key = {0}}},
      {"broyden", {.key = {"broyden-m"}, .val = {"4"}}}, /* restarts */
      {"broyden", {.key = {"broyden-ls"}, .val = {"1"}}},
      {"newton-ls", {.key = {0}}},
      {"newton-ls", {.key = {"ls-c1", "ls-max"}, .val = {"0.3", "4"}}},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    assert_ok(solve_by_name(cases[k].name, &cases[k].o, W, x, n, B, 1e-11, 3000, z, NULL, &r));
    if (r.reason != IL_REASON_CONVERGED) fail_msg("%s case %zu: reason %s", cases[k].name, k, il_reason_name(r.reason));
    print_message("%-9s case %zu: %d iterations (fp: %d, newton: %d)\n", cases[k].name, k, r.iters, rfp.iters, rn.iters);
    assert_allclose(z, zn, (size_t)B * n, 0, 1e-9);
    assert_true(fixed_point_residual(W, x, z, n, B) < 1e-9);
    if (strcmp(cases[k].name, "anderson") == 0 || strcmp(cases[k].name, "broyden") == 0)
      if (!(r.iters < rfp.iters)) fail_msg("%s case %zu: %d maps, fp needed %d", cases[k].name, k, r.iters, rfp.iters);
  }
  free(W);
}

/* ---- broyden-ls against TorchDEQ ----
 * A plain transcription of torchdeq/solver/broyden.py (broyden_solver with ls=True,
 * line_search, scalar_search_armijo, matvec, rmatvec) in double, dense, on its own sign
 * convention g(z) = f(z) - z with the inverse-Jacobian estimate -I + U V^T: `steps` line
 * searches from z = 0, its stopping rules left out. *backtracked counts the steps whose
 * length was not 1. */
typedef struct tdq {
  const double *W, *x;
  int n, B;
  int evals; /* g evaluations */
} tdq;

static void tdq_g(tdq *t, const double *z, double *g) { /* g = tanh(W z + x) - z */
  const int n = t->n;
  t->evals++;
  for (int b = 0; b < t->B; b++)
    for (int i = 0; i < n; i++) {
      double a = t->x[b * n + i];
      for (int j = 0; j < n; j++) a += t->W[i * n + j] * z[b * n + j];
      g[b * n + i] = tanh(a) - z[b * n + i];
    }
}

static double tdq_sq(const double *v, size_t len) {
  double s = 0;
  for (size_t i = 0; i < len; i++) s += v[i] * v[i];
  return isfinite(s) ? s : INFINITY; /* _safe_norm(v)**2 */
}

/* phi(s) with TorchDEQ's one-entry cache (tmp_s, tmp_g0, tmp_phi) */
typedef struct tdq_ls {
  tdq *t;
  const double *x0, *upd;
  double *xt, *gt, s_last, phi_last;
  double *g_last;
} tdq_ls;
static double tdq_phi(tdq_ls *l, double s) {
  const size_t len = (size_t)l->t->B * l->t->n;
  if (s == l->s_last) return l->phi_last;
  for (size_t i = 0; i < len; i++) l->xt[i] = l->x0[i] + s * l->upd[i];
  tdq_g(l->t, l->xt, l->gt);
  l->s_last = s;
  l->phi_last = tdq_sq(l->gt, len);
  memcpy(l->g_last, l->gt, len * sizeof *l->gt);
  return l->phi_last;
}
static int tdq_armijo(tdq_ls *l, double phi0, double derphi0, double *out) { /* scalar_search_armijo */
  const double c1 = 1e-4, amin = 1e-2;
  double alpha0 = 1, phi_a0 = tdq_phi(l, alpha0);
  if (phi_a0 <= phi0 + c1 * alpha0 * derphi0) return *out = alpha0, 1;
  double alpha1 = -(derphi0)*alpha0 * alpha0 / 2.0 / (phi_a0 - phi0 - derphi0 * alpha0);
  double phi_a1 = tdq_phi(l, alpha1);
  while (alpha1 > amin) {
    const double factor = alpha0 * alpha0 * alpha1 * alpha1 * (alpha1 - alpha0);
    double a = alpha0 * alpha0 * (phi_a1 - phi0 - derphi0 * alpha1) - alpha1 * alpha1 * (phi_a0 - phi0 - derphi0 * alpha0);
    a = a / factor;
    double b = -alpha0 * alpha0 * alpha0 * (phi_a1 - phi0 - derphi0 * alpha1) +
               alpha1 * alpha1 * alpha1 * (phi_a0 - phi0 - derphi0 * alpha0);
    b = b / factor;
    double alpha2 = (-b + sqrt(fabs(b * b - 3 * a * derphi0))) / (3.0 * a);
    const double phi_a2 = tdq_phi(l, alpha2);
    if (phi_a2 <= phi0 + c1 * alpha2 * derphi0) return *out = alpha2, 1;
    if ((alpha1 - alpha2) > alpha1 / 2.0 || (1 - alpha2 / alpha1) < 0.96) alpha2 = alpha1 / 2.0;
    alpha0 = alpha1;
    alpha1 = alpha2;
    phi_a0 = phi_a1;
    phi_a1 = phi_a2;
  }
  return 0;
}

/* (-I + U V^T) v per sample, or its transpose applied from the left (rmatvec); q pairs */
static void tdq_apply(const double *U, const double *VT, int q, int n, int trans, const double *v, double *out) {
  for (int i = 0; i < n; i++) out[i] = -v[i];
  for (int k = 0; k < q; k++) {
    const double *u = U + (size_t)k * n, *w = VT + (size_t)k * n;
    const double *P = trans ? w : u, *Q = trans ? u : w;
    double c = 0;
    for (int i = 0; i < n; i++) c += Q[i] * v[i];
    for (int i = 0; i < n; i++) out[i] += P[i] * c;
  }
}

static void torchdeq_broyden_ls(const double *W, const double *x, int n, int B, int steps, double *z, int *evals,
                                int *backtracked) {
  const size_t len = (size_t)B * n;
  tdq t = {.W = W, .x = x, .n = n, .B = B};
  double *g = calloc(len, sizeof *g), *upd = calloc(len, sizeof *upd), *x0 = calloc(len, sizeof *x0);
  double *xt = calloc(len, sizeof *xt), *gt = calloc(len, sizeof *gt), *gl = calloc(len, sizeof *gl);
  double *dx = calloc(len, sizeof *dx), *dg = calloc(len, sizeof *dg), *tmp = calloc((size_t)n, sizeof *tmp);
  double *U = calloc(len * steps, sizeof *U), *VT = calloc(len * steps, sizeof *VT); /* (B, steps, n) */
  memset(z, 0, len * sizeof *z);
  tdq_g(&t, z, g);
  for (size_t i = 0; i < len; i++) upd[i] = g[i]; /* -matvec(no pairs, gx) */
  *backtracked = 0;
  for (int nstep = 0; nstep < steps; nstep++) {
    /* line_search(update, x_est, gx, g) */
    memcpy(x0, z, len * sizeof *z);
    const double phi0 = tdq_sq(g, len);
    tdq_ls l = {.t = &t, .x0 = x0, .upd = upd, .xt = xt, .gt = gt, .s_last = 0, .phi_last = phi0, .g_last = gl};
    memcpy(gl, g, len * sizeof *g);
    double s;
    if (!tdq_armijo(&l, phi0, -phi0, &s)) s = 1.0;
    *backtracked += s != 1.0;
    for (size_t i = 0; i < len; i++) z[i] = x0[i] + s * upd[i];
    double *gnew = gt;
    if (s == l.s_last) gnew = gl;
    else tdq_g(&t, z, gnew);
    for (size_t i = 0; i < len; i++) {
      dx[i] = z[i] - x0[i];
      dg[i] = gnew[i] - g[i];
      g[i] = gnew[i];
    }
    /* the update of the pairs, then the next direction, per sample */
    for (int b = 0; b < B; b++) {
      double *Ub = U + (size_t)b * steps * n, *Vb = VT + (size_t)b * steps * n;
      double *vT = Vb + (size_t)nstep * n, *u = Ub + (size_t)nstep * n;
      tdq_apply(Ub, Vb, nstep, n, 1, dx + (size_t)b * n, vT);
      tdq_apply(Ub, Vb, nstep, n, 0, dg + (size_t)b * n, tmp);
      double den = 0;
      for (int i = 0; i < n; i++) den += vT[i] * dg[(size_t)b * n + i];
      for (int i = 0; i < n; i++) u[i] = (dx[(size_t)b * n + i] - tmp[i]) / den;
      for (int i = 0; i < n; i++) {
        if (vT[i] != vT[i]) vT[i] = 0;
        if (u[i] != u[i]) u[i] = 0;
      }
      tdq_apply(Ub, Vb, nstep + 1, n, 0, g + (size_t)b * n, tmp);
      for (int i = 0; i < n; i++) upd[(size_t)b * n + i] = -tmp[i];
    }
  }
  *evals = t.evals;
  free(g); free(upd); free(x0); free(xt); free(gt); free(gl); free(dx); free(dg); free(tmp); free(U); free(VT);
}

/* broyden-ls takes TorchDEQ's steps: on a problem where the full Broyden step often overshoots
 * (rho(W) about 2.4), the iterates after K - 1 line searches equal those of the transcription
 * above, which backtracked on some of them; with every map counted, the solver evaluates g no
 * more often than TorchDEQ does (it skips TorchDEQ's unused evaluation at a quadratic step below
 * amin). Converging to Newton's fixed point: test_every_solver_reaches_newtons_fixed_point. */
static void test_broyden_line_search_matches_torchdeq(void **state) {
  enum { n = 16, B = 4, K = 25 };
  double W[n * n], x[B * n], z[B * n], zr[B * n];
  make_problem(n, B, 4.0, 1.0, 71, W, x);
  int evals, backtracked;
  torchdeq_broyden_ls(W, x, n, B, K - 1, zr, &evals, &backtracked);
  solve_opts ls = {.key = {"broyden-ls", "broyden-m"}, .val = {"1", "1000"}};
  il_solve_result r;
  il_events ev;
  il_events_reset(&ev);
  be->events = &ev;
  assert_ok(solve_by_name("broyden", &ls, W, x, n, B, 1e-300, K, z, NULL, &r));
  be->events = NULL;
  print_message("broyden-ls: %d steps; TorchDEQ transcription backtracked on %d of %d line searches, %d g "
                "evaluations; ilbench %lld maps\n", r.iters, backtracked, K - 1, evals,
                (long long)ev.ev[IL_EV_MAP].calls);
  assert_int_equal(r.iters, K);
  assert_true(backtracked > 0);
  assert_allclose(z, zr, (size_t)B * n, 1e-9, 1e-9);
  assert_true(ev.ev[IL_EV_MAP].calls <= evals);
  /* without the line search the iterates differ */
  solve_opts plain = {.key = {"broyden-m"}, .val = {"1000"}};
  assert_ok(solve_by_name("broyden", &plain, W, x, n, B, 1e-300, K, z, NULL, &r));
  double diff = 0;
  for (int i = 0; i < B * n; i++) diff = fmax(diff, fabs(z[i] - zr[i]));
  assert_true(diff > 1e-6);
}

/* Every reason from a constructed case, for every solver it applies to. */
static void test_reasons(void **state) {
  enum { n = 12, B = 3 };
  double W[n * n], x[B * n], z[B * n], rows[B];
  il_solve_result r;
  const char *all[] = {"fp", "anderson", "broyden", "newton", "newton-ls"};
  /* max-iter: a tolerance no solver meets in 2 iterations */
  make_problem(n, B, 1.5, 1.0, 3, W, x);
  for (int k = 0; k < 5; k++) {
    assert_ok(solve_by_name(all[k], NULL, W, x, n, B, 1e-14, 2, z, rows, &r));
    if (r.reason != IL_REASON_MAX_ITER) fail_msg("%s: reason %s, expected max-iter", all[k], il_reason_name(r.reason));
    assert_int_equal(r.nonfinite_iter, -1);
    assert_true(r.nonconverged_rows > 0);
  }
  /* non-finite: a NaN input reaches the first residual of every solver */
  make_problem(n, B, 1.0, 1.0, 4, W, x);
  x[n + 3] = NAN;
  for (int k = 0; k < 5; k++) {
    assert_ok(solve_by_name(all[k], NULL, W, x, n, B, 1e-8, 50, z, rows, &r));
    if (r.reason != IL_REASON_NONFINITE) fail_msg("%s: reason %s, expected non-finite", all[k], il_reason_name(r.reason));
    assert_int_equal(r.nonfinite_iter, 0);
  }
  /* diverged: z = 0 is an unstable fixed point (rho(W) ~ 2.3) and x is tiny, so fp
   * starts with a residual of ~1e-9 that grows to O(1) */
  make_problem(n, B, 4.0, 1e-9, 5, W, x);
  solve_opts dv = {.divtol = 1e3};
  assert_ok(solve_by_name("fp", &dv, W, x, n, B, 1e-14, 500, z, rows, &r));
  assert_int_equal(r.reason, IL_REASON_DIVERGED);
  solve_opts dvt = {.key = {"fp-tau"}, .val = {"0.5"}, .divtol = 1e3};
  assert_ok(solve_by_name("fp", &dvt, W, x, n, B, 1e-14, 500, z, rows, &r));
  assert_int_equal(r.reason, IL_REASON_DIVERGED);
  /* without divtol the same solve runs to its limit */
  assert_ok(solve_by_name("fp", NULL, W, x, n, B, 1e-14, 60, z, rows, &r));
  assert_int_equal(r.reason, IL_REASON_MAX_ITER);
}

static void test_stop_modes_and_best_iterate(void **state) {
  enum { n = 30, B = 4 };
  double W[n * n], x[B * n], z[B * n], z2[B * n], rows[B];
  il_solve_result r, r2;
  make_problem(n, B, 1.0, 1.0, 8, W, x);
  /* rel: the threshold is tol times the first residual */
  solve_opts rel = {.stop_rel = 1};
  assert_ok(solve_by_name("fp", &rel, W, x, n, B, 1e-3, 500, z, rows, &r));
  assert_int_equal(r.reason, IL_REASON_CONVERGED);
  double r0 = 0;
  for (int i = 0; i < B * n; i++) r0 += tanh(x[i]) * tanh(x[i]); /* first fp residual: ||f(0) - 0|| */
  assert_close(r.tol_abs, 1e-3 * sqrt(r0), 1e-12, 0);
  assert_true(r.residual < r.tol_abs);
  /* a converged solve is unchanged by keep_best */
  solve_opts best = {.keep_best = 1};
  assert_ok(solve_by_name("anderson", NULL, W, x, n, B, 1e-10, 500, z, rows, &r));
  assert_ok(solve_by_name("anderson", &best, W, x, n, B, 1e-10, 500, z2, rows, &r2));
  assert_memory_equal(z, z2, sizeof z);
  /* a non-contractive problem where fp oscillates: the best iterate is never worse than the last,
   * and its reported residual is the minimum over the iterations */
  make_problem(n, B, 3.0, 1.0, 9, W, x);
  double last[40];
  for (int k = 1; k <= 40; k++) {
    assert_ok(solve_by_name("fp", NULL, W, x, n, B, 1e-14, k, z, rows, &r));
    last[k - 1] = r.residual;
  }
  double mn = INFINITY;
  for (int k = 0; k < 40; k++) mn = last[k] < mn ? last[k] : mn;
  assert_true(mn < last[39]); /* otherwise the case shows nothing */
  assert_ok(solve_by_name("fp", &best, W, x, n, B, 1e-14, 40, z2, rows, &r2));
  assert_int_equal(r2.reason, IL_REASON_MAX_ITER);
  assert_close(r2.residual, mn, 1e-12, 0);
}

static void gradcheck_case(const char *solver, const char *backward, const char *keys[], const char *vals[], double tol,
                           double limit) {
  il_options o;
  il_options_init(&o);
  for (int i = 0; keys && keys[i]; i++) assert_ok(il_options_set(&o, keys[i], vals[i]));
  const int sizes[][2] = {{5, 3}, {8, 2}};
  for (int k = 0; k < 2; k++) {
    il_gradcheck_config gc = {.layer = {.solver = solver, .backward = backward, .tol = tol, .max_iter = 500,
                                        .zero_nonconverged = IL_ZERO_AUTO, .opts = &o},
                              .n = sizes[k][0], .B = sizes[k][1], .scale = 1, .eps = 1e-6, .seed = 21 + k};
    il_gradcheck_result gr;
    assert_ok(il_gradcheck(&gc, be, &gr));
    assert_int_equal(gr.fwd.reason, IL_REASON_CONVERGED);
    if (!(gr.relerr_x <= limit && gr.relerr_W <= limit))
      fail_msg("%s/%s %s=%s n=%d B=%d: relerr x %.3g W %.3g", solver, backward, keys ? keys[0] : "-",
               keys ? vals[0] : "-", gc.n, gc.B, gr.relerr_x, gr.relerr_W);
  }
}

static void test_gradcheck_implicit_every_adjoint_solver(void **state) {
  const char *solvers[] = {"fp", "anderson", "broyden", "newton", "newton-ls"};
  const char *adj[] = {"lu", "fp", "anderson", "gmres"};
  for (int s = 0; s < 5; s++)
    for (int a = 0; a < 4; a++) {
      const char *k[] = {"adjoint-solver", a ? "adjoint-tol" : NULL, NULL};
      const char *v[] = {adj[a], "1e-13", NULL};
      gradcheck_case(solvers[s], "implicit", k, v, 1e-12, 1e-6);
    }
  /* GMRES with a restart shorter than the system */
  const char *k[] = {"adjoint-solver", "adjoint-tol", "adjoint-m", NULL}, *v[] = {"gmres", "1e-13", "2", NULL};
  gradcheck_case("newton", "implicit", k, v, 1e-12, 1e-6);
}

static void test_gradcheck_unrolled_new_solvers(void **state) {
  const char *k[] = {"fp-tau", NULL}, *v[] = {"0.6", NULL};
  gradcheck_case("fp", "unroll", k, v, 1e-10, 1e-6);
  gradcheck_case("newton-ls", "unroll", NULL, NULL, 1e-10, 1e-6);
}

static void layer_grads(const char *solver, const char *mode, il_options *o, const double *W, const double *x,
                        const double *C, int n, int B, double *dx, double *dW, il_layer_diag *diag) {
  il_layer L;
  il_layer_config cfg = {.solver = solver, .backward = mode, .tol = 1e-13, .max_iter = 2000, .opts = o};
  double *out = calloc((size_t)B * n, sizeof *out);
  assert_ok(layer_create_h(&L, &cfg, n, W, NULL));
  memset(dx, 0, sizeof(double) * B * n);
  memset(dW, 0, sizeof(double) * n * n);
  L.diag_now = diag != NULL;
  layer_forward_h(&L, B, x, out, 1);
  layer_backward_h(&L, C, dx, dW);
  if (diag) *diag = L.diag;
  il_layer_destroy(&L);
  free(out);
}

static double relerr(const double *a, const double *b, size_t len) {
  double d = 0, nb = 0;
  for (size_t i = 0; i < len; i++) { d += (a[i] - b[i]) * (a[i] - b[i]); nb += b[i] * b[i]; }
  return sqrt(d / nb);
}

static void test_phantom_and_jfb(void **state) {
  enum { n = 20, B = 4 };
  double W[n * n], x[B * n], C[B * n], dxi[B * n], dWi[n * n], dx[B * n], dW[n * n], dx1[B * n], dW1[n * n];
  make_problem(n, B, 1.0, 1.0, 17, W, x);
  il_rng r;
  il_rng_seed(&r, 5);
  for (int i = 0; i < B * n; i++) C[i] = il_rng_normal(&r);
  layer_grads("newton", "implicit", NULL, W, x, C, n, B, dxi, dWi, NULL);
  /* the Neumann series: phantom:K tends to the IFT gradient, and is inexact for small K */
  layer_grads("anderson", "phantom:200", NULL, W, x, C, n, B, dx, dW, NULL);
  assert_true(relerr(dx, dxi, B * n) < 1e-9 && relerr(dW, dWi, n * n) < 1e-9);
  layer_grads("anderson", "phantom:3", NULL, W, x, C, n, B, dx, dW, NULL);
  assert_true(relerr(dW, dWi, n * n) > 1e-3);
  /* jfb is phantom:1 */
  layer_grads("anderson", "phantom:1", NULL, W, x, C, n, B, dx, dW, NULL);
  layer_grads("anderson", "jfb", NULL, W, x, C, n, B, dx1, dW1, NULL);
  assert_memory_equal(dx, dx1, sizeof dx);
  assert_memory_equal(dW, dW1, sizeof dW);
  /* a damped phantom is still a Neumann-type series: many steps reach the IFT gradient */
  il_options o;
  il_options_init(&o);
  assert_ok(il_options_set(&o, "phantom-tau", "0.5"));
  layer_grads("fp", "phantom:400", &o, W, x, C, n, B, dx, dW, NULL);
  assert_true(relerr(dW, dWi, n * n) < 1e-9);
}

/* The seed's 1/cosh^2: equal to 1 - tanh^2 in exact arithmetic (gradcheck passes),
 * but once cosh overflows the unrolled Newton backward produces 0 * inf = NaN. */
static void test_sech2_seed(void **state) {
  enum { n = 6, B = 2 };
  il_gradcheck_config gc = {.layer = {.solver = "newton", .backward = "unroll", .tol = 1e-10, .sech2_seed = 1},
                            .n = n, .B = B, .scale = 1, .eps = 1e-6, .seed = 3};
  il_gradcheck_result gr;
  assert_ok(il_gradcheck(&gc, be, &gr));
  assert_true(gr.relerr_x <= 1e-6 && gr.relerr_W <= 1e-6);
  double W[n * n], x[B * n], C[B * n], dx[B * n], dW[n * n];
  make_problem(n, B, 1.0, 1.0, 4, W, x);
  for (int i = 0; i < B * n; i++) C[i] = 1;
  x[2] = 800; /* cosh(800) overflows a double as cosh(89.5) overflows a float */
  for (int seed = 0; seed < 2; seed++) {
    il_layer L;
    il_layer_config cfg = {.solver = "newton", .backward = "unroll", .tol = 1e-10, .sech2_seed = seed};
    double out[B * n];
    assert_ok(layer_create_h(&L, &cfg, n, W, NULL));
    memset(dx, 0, sizeof dx);
    memset(dW, 0, sizeof dW);
    layer_forward_h(&L, B, x, out, 1);
    assert_int_equal(L.fres.reason, IL_REASON_CONVERGED); /* the forward is unaffected */
    layer_backward_h(&L, C, dx, dW);
    int finite = 1;
    for (int i = 0; i < n * n; i++) finite &= isfinite(dW[i]) ? 1 : 0;
    assert_int_equal(finite, !seed);
    if (seed) {
      assert_true(L.bwd_nan_iter >= 0 && L.bwd_nan_iter < L.fres.iters);
      assert_int_equal(L.bres.reason, IL_REASON_NONFINITE); /* the backward's own reason says so too */
      assert_int_equal(L.bres.nonfinite_iter, L.bwd_nan_iter);
    } else {
      assert_int_equal(L.bwd_nan_iter, -1);
      assert_int_equal(L.bres.reason, IL_REASON_CONVERGED);
    }
    il_layer_destroy(&L);
  }
}

/* Diagnostics on a case with known answers: W = 0.5 I and x = 0 give z* = 0,
 * df/dz = 0.5 I (spectral radius 0.5) and J = 0.5 I (condition number 1). */
static void test_diagnostics_known_values(void **state) {
  enum { n = 7, B = 3 };
  double W[n * n] = {0}, x[B * n] = {0}, C[B * n], dx[B * n], dW[n * n];
  for (int i = 0; i < n; i++) W[i * n + i] = 0.5;
  for (int i = 0; i < B * n; i++) C[i] = 1 + 0.1 * i;
  x[0] = 1e-3; /* one nonzero entry so that Newton takes a step and factors J */
  il_layer_diag d;
  layer_grads("newton", "implicit", NULL, W, x, C, n, B, dx, dW, &d);
  assert_close(d.rho_max, 0.5, 1e-6, 0);
  assert_close(d.rho_mean, 0.5, 1e-6, 0);
  assert_close(d.cond_max, 1.0, 1e-5, 0);
  assert_close(d.grad_cos, 1.0, 0, 1e-12);
  assert_true(d.grad_relerr < 1e-10);
  /* a general problem: jfb's gradient is inexact, implicit-lu's is not */
  double W2[20 * 20], x2[4 * 20], C2[4 * 20], dx2[4 * 20], dW2[20 * 20];
  make_problem(20, 4, 1.5, 1.0, 12, W2, x2);
  for (int i = 0; i < 80; i++) C2[i] = sin(i);
  layer_grads("fp", "jfb", NULL, W2, x2, C2, 20, 4, dx2, dW2, &d);
  assert_true(d.grad_cos < 0.9999 && d.grad_relerr > 1e-3);
  assert_true(isnan(d.cond_max)); /* no LU anywhere */
  assert_true(d.rho_max > 0 && d.rho_max < 1.5);
  layer_grads("fp", "implicit", NULL, W2, x2, C2, 20, 4, dx2, dW2, &d);
  assert_true(d.grad_relerr < 1e-9);
  assert_true(d.cond_max >= 1 && isfinite(d.cond_max)); /* implicit factored J(z*) itself */
}

static il_status try_layer(const char *solver, const char *backward, const char *key, const char *val, int per_sample,
                           int keep_best) {
  il_layer L;
  il_options o;
  il_options_init(&o);
  if (key) assert_ok(il_options_set(&o, key, val));
  double *W = dev(NULL, 9);
  il_layer_config cfg = {.solver = solver, .backward = backward, .tol = 1e-6, .opts = &o,
                         .stop_per_sample = per_sample, .keep_best = keep_best};
  il_error_clear();
  il_status s = il_layer_create(&L, &cfg, be, 3, W, NULL);
  if (s == IL_OK) il_layer_destroy(&L);
  return s;
}

static void expect_error(il_status s, il_status want, const char *needle) {
  assert_int_equal(s, want);
  if (!strstr(il_error_message(), needle)) fail_msg("message '%s' lacks '%s'", il_error_message(), needle);
}

static void test_option_and_pair_validation(void **state) {
  /* torchdeq once ignored a misspelled stop-mode: here every unknown key is an error */
  expect_error(try_layer("fp", "implicit", "stop-mod", "rel", 0, 0), IL_ERR_ARG, "stop-mod");
  expect_error(try_layer("fp", "implicit", "anderson-m", "3", 0, 0), IL_ERR_ARG, "anderson-m");
  expect_error(try_layer("anderson", "implicit", "anderson-m", "0", 0, 0), IL_ERR_ARG, "anderson-m");
  expect_error(try_layer("anderson", "implicit", "anderson-beta", "1.5", 0, 0), IL_ERR_ARG, "anderson-beta");
  expect_error(try_layer("broyden", "implicit", "broyden-m", "x", 0, 0), IL_ERR_ARG, "broyden-m");
  expect_error(try_layer("newton-ls", "implicit", "ls-c1", "0.7", 0, 0), IL_ERR_ARG, "ls-c1");
  expect_error(try_layer("newton", "implicit", "ls-c1", "0.1", 0, 0), IL_ERR_ARG, "ls-c1");
  expect_error(try_layer("fp", "implicit", "fp-tau", "0", 0, 0), IL_ERR_ARG, "fp-tau");
  expect_error(try_layer("fp", "implicit", "adjoint-solver", "cg", 0, 0), IL_ERR_ARG, "adjoint-solver");
  expect_error(try_layer("fp", "implicit", "adjoint-tol", "1e-8", 0, 0), IL_ERR_ARG, "adjoint-tol"); /* lu takes none */
  expect_error(try_layer("fp", "unroll", "adjoint-solver", "gmres", 0, 0), IL_ERR_ARG, "adjoint-solver");
  expect_error(try_layer("fp", "phantom:0", NULL, NULL, 0, 0), IL_ERR_ARG, "phantom-k");
  expect_error(try_layer("fp", "phantom:x", NULL, NULL, 0, 0), IL_ERR_ARG, "phantom-k");
  expect_error(try_layer("fp", "jfb:3", NULL, NULL, 0, 0), IL_ERR_ARG, "takes no ':' argument");
  expect_error(try_layer("fp", "phantomx", NULL, NULL, 0, 0), IL_ERR_ARG, "phantomx");
  expect_error(try_layer("anderson", "unroll", NULL, NULL, 0, 0), IL_ERR_UNSUPPORTED, "anderson");
  expect_error(try_layer("broyden", "unroll", NULL, NULL, 0, 0), IL_ERR_UNSUPPORTED, "broyden");
  expect_error(try_layer("anderson", "implicit", NULL, NULL, 1, 0), IL_ERR_UNSUPPORTED, "per-sample");
  expect_error(try_layer("fp", "unroll", NULL, NULL, 0, 1), IL_ERR_UNSUPPORTED, "lowest-residual");
  expect_error(try_layer("newton", "implicit", NULL, NULL, 1, 1), IL_ERR_UNSUPPORTED, "batch stopping");
  {
    il_layer L;
    double *W = dev(NULL, 9);
    il_layer_config cfg = {.solver = "anderson", .backward = "implicit", .tol = 1e-6, .sech2_seed = 1};
    il_error_clear();
    expect_error(il_layer_create(&L, &cfg, be, 3, W, NULL), IL_ERR_UNSUPPORTED, "builds none");
  }
  /* and the valid ones are accepted */
  assert_int_equal(try_layer("anderson", "phantom:4", "phantom-tau", "0.5", 0, 0), IL_OK);
  assert_int_equal(try_layer("broyden", "implicit", "adjoint-solver", "gmres", 0, 1), IL_OK);
  assert_int_equal(try_layer("newton-ls", "unroll", "ls-max", "5", 1, 0), IL_OK);
}

/* The warm-start hook: started at a converged z*, fp needs one map (to measure the
 * residual) and Newton none, through the solver directly and through the layer. */
static void test_warm_start_from_fixed_point(void **state) {
  enum { n = 24, B = 5 };
  double W[n * n], x[B * n], zs[B * n], z[B * n];
  il_solve_result r;
  make_problem(n, B, 1.0, 1.0, 61, W, x);
  assert_ok(solve_by_name("newton", NULL, W, x, n, B, 1e-13, 40, zs, NULL, &r));
  assert_int_equal(r.reason, IL_REASON_CONVERGED);
  const char *names[] = {"fp", "newton"};
  for (int k = 0; k < 2; k++) {
    const il_solver_ops *so = il_solver_find(names[k]);
    tsolve t;
    void *st;
    tsolve_init(&t, "tanh", W, x, n, B);
    assert_ok(so->create(NULL, &st));
    t.p.tol = 1e-10;
    t.p.max_iter = 500;
    t.p.z0 = dev(zs, (size_t)B * n);
    assert_ok(tsolve_run(so, st, &t.p, z, NULL, &r));
    print_message("%s from z*: %d iterations, residual %.2e\n", names[k], r.iters, r.residual);
    assert_int_equal(r.reason, IL_REASON_CONVERGED);
    assert_true(r.iters <= 1);
    assert_allclose(z, zs, (size_t)B * n, 0, 1e-12);
    /* a cold start of the same solve takes more */
    il_solve_result rc;
    t.p.z0 = NULL;
    assert_ok(tsolve_run(so, st, &t.p, z, NULL, &rc));
    assert_true(rc.iters > 1);
    so->destroy(st);
    tsolve_destroy(&t);
    /* and through the layer, in training */
    il_layer L;
    il_layer_config cfg = {.solver = names[k], .backward = "implicit", .tol = 1e-10, .max_iter = 500};
    assert_ok(layer_create_h(&L, &cfg, n, W, NULL));
    layer_forward_from_h(&L, B, x, zs, z, 1);
    assert_int_equal(L.fres.reason, IL_REASON_CONVERGED);
    assert_true(L.fres.iters <= 1);
    assert_allclose(z, zs, (size_t)B * n, 0, 1e-12);
    il_layer_destroy(&L);
  }
}

/* il_layer_reserve sizes the space workspace as one block (at n = 64, B = 32 the LU
 * factors alone exceed the default 1 MiB block): a training forward +
 * backward at the reserved batch size (and below it) never adds a block. */
static void test_reserved_workspace_does_not_grow(void **state) {
  enum { n = 64, B = 32 };
  double W[n * n], x[B * n], C[B * n], dx[B * n], dW[n * n];
  make_problem(n, B, 1.0, 1.0, 62, W, x);
  for (int i = 0; i < B * n; i++) C[i] = cos(i);
  const struct { const char *solver, *backward; int diag; } cases[] = {
      {"newton", "implicit", 0}, {"newton", "implicit", 1}, {"newton", "unroll", 0}, {"fp", "implicit", 0},
      {"anderson", "implicit", 0}, {"broyden", "implicit", 0}, {"newton-ls", "implicit", 0},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    il_layer L;
    il_layer_config cfg = {.solver = cases[k].solver, .backward = cases[k].backward, .tol = 1e-10, .max_iter = 200};
    assert_ok(layer_create_h(&L, &cfg, n, W, NULL));
    assert_ok(il_layer_reserve(&L, B));
    assert_true(L.ws_reserve > 0);
    const size_t block = L.ws.block_bytes; /* the one block: the reservation, or the default block if larger */
    assert_true(block >= L.ws_reserve);
    const size_t before = L.ws.reserved;
    print_message("%s/%s%s: reserve %zu bytes (block %zu), ws holds %zu before the first solve\n", cases[k].solver,
                  cases[k].backward, cases[k].diag ? " (diag)" : "", L.ws_reserve, block, before);
    assert_true(before == 0 || before == block);
    for (int rep = 0; rep < 3; rep++) {
      const int b = rep == 2 ? B / 2 : B;
      memset(dx, 0, sizeof dx);
      memset(dW, 0, sizeof dW);
      L.diag_now = cases[k].diag;
      layer_forward_h(&L, b, x, NULL, 1);
      assert_int_equal(L.fres.reason, IL_REASON_CONVERGED);
      layer_backward_h(&L, C, dx, dW);
      if (L.ws.reserved != block)
        fail_msg("%s/%s%s, batch %d: workspace holds %zu bytes after the step, one block is %zu (reserve %zu)",
                 cases[k].solver, cases[k].backward, cases[k].diag ? " (diag)" : "", b, L.ws.reserved, block,
                 L.ws_reserve);
    }
    il_layer_destroy(&L);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      IL_TEST(test_every_solver_reaches_newtons_fixed_point),
      IL_TEST(test_broyden_line_search_matches_torchdeq),
      IL_TEST(test_reasons),
      IL_TEST(test_stop_modes_and_best_iterate),
      IL_TEST(test_gradcheck_implicit_every_adjoint_solver),
      IL_TEST(test_gradcheck_unrolled_new_solvers),
      IL_TEST(test_phantom_and_jfb),
      IL_TEST(test_sech2_seed),
      IL_TEST(test_diagnostics_known_values),
      IL_TEST(test_option_and_pair_validation),
      IL_TEST(test_warm_start_from_fixed_point),
      IL_TEST(test_reserved_workspace_does_not_grow),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
