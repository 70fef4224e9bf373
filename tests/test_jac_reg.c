/* tests/test_jac_reg.c: the Jacobian regulariser in float64 (IL_PREC=64): the cell op's
 * value and gradient at fixed z against finite differences of a host reference, the exact
 * Frobenius norm with basis probes (J built column by column through jvp_z), the Hutchinson
 * estimate's expectation within five standard errors, every backward mode through
 * il_gradcheck, zeroed rows, the thread team, and the model's weighting, sharding and
 * probe stream. The host references index host arrays only (downloaded tensors). */
#include <stdlib.h>
#include <string.h>

#include "il_gradcheck.h"
#include "il_layer.h"
#include "il_model.h"
#include "il_rng.h"
#include "test_util.h"
#include "test_problem.h"

/* ---- host references ---- */

static int is_relu(const char *cell) { return strcmp(cell, "relu") == 0; }

/* s (B, n) = act'(W z + x) on the host; amin: the smallest |pre-activation| (relu's kink) */
static void host_s(const char *cell, int n, int B, const double *W, const double *x, const double *z, double *s,
                   double *amin) {
  *amin = INFINITY;
  for (int b = 0; b < B; b++)
    for (int i = 0; i < n; i++) {
      double a = x[b * n + i];
      for (int j = 0; j < n; j++) a += W[i * n + j] * z[b * n + j];
      if (fabs(a) < *amin) *amin = fabs(a);
      const double f = tanh(a);
      s[b * n + i] = is_relu(cell) ? (a > 0) : 1 - f * f;
    }
}

/* sum over the K probes and rows of ||(s_b * eps_kb)^T W||^2; rows (B) out per row (may be NULL) */
static double host_probe_sum(const char *cell, int n, int B, int K, const double *W, const double *x,
                             const double *z, const double *eps, double *rows) {
  double *s = malloc(sizeof(double) * B * n), amin, tot = 0;
  host_s(cell, n, B, W, x, z, s, &amin);
  for (int b = 0; b < B; b++) {
    double rb = 0;
    for (int k = 0; k < K; k++)
      for (int j = 0; j < n; j++) {
        double r = 0;
        for (int i = 0; i < n; i++) r += s[b * n + i] * eps[((size_t)k * B + b) * n + i] * W[i * n + j];
        rb += r * r;
      }
    if (rows) rows[b] = rb;
    tot += rb;
  }
  free(s);
  return tot;
}

/* sum_b ||diag(s_b) W||_F^2, the exact squared Frobenius norm of df/dz over the batch */
static double host_frob(const char *cell, int n, int B, const double *W, const double *x, const double *z) {
  double *s = malloc(sizeof(double) * B * n), amin, tot = 0;
  host_s(cell, n, B, W, x, z, s, &amin);
  for (int b = 0; b < B; b++)
    for (int i = 0; i < n; i++)
      for (int j = 0; j < n; j++) tot += s[b * n + i] * s[b * n + i] * W[i * n + j] * W[i * n + j];
  free(s);
  return tot;
}

typedef double (*host_fn)(void *ctx, const double *W, const double *x);
typedef struct probe_ctx {
  const char *cell;
  int n, B, K;
  const double *z, *eps;
} probe_ctx;
static double probe_fn(void *p, const double *W, const double *x) {
  probe_ctx *c = p;
  return host_probe_sum(c->cell, c->n, c->B, c->K, W, x, c->z, c->eps, NULL);
}
static double frob_fn(void *p, const double *W, const double *x) {
  probe_ctx *c = p;
  return host_frob(c->cell, c->n, c->B, W, x, c->z);
}

/* Central differences of fn in W (n, n) and x (B, n) at z held fixed (fn's own z). */
static void host_fd(host_fn fn, void *ctx, int n, int B, const double *W0, const double *x0, double h, double *gW,
                    double *gx) {
  double *W = malloc(sizeof(double) * n * n), *x = malloc(sizeof(double) * B * n);
  memcpy(W, W0, sizeof(double) * n * n);
  memcpy(x, x0, sizeof(double) * B * n);
  for (int which = 0; which < 2; which++) {
    double *v = which ? x : W, *g = which ? gx : gW;
    const int cnt = which ? B * n : n * n;
    for (int i = 0; i < cnt; i++) {
      const double keep = v[i];
      v[i] = keep + h;
      const double lp = fn(ctx, W, x);
      v[i] = keep - h;
      const double lm = fn(ctx, W, x);
      v[i] = keep;
      g[i] = (lp - lm) / (2 * h);
    }
  }
  free(W);
  free(x);
}

static double relerr(const double *a, const double *b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) num += (a[i] - b[i]) * (a[i] - b[i]), den += b[i] * b[i];
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

static double sumsq(const double *a, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += a[i] * a[i];
  return s;
}

/* K Rademacher probes (K, B, n) */
static void rademacher(il_rng *r, size_t count, double *eps) {
  for (size_t i = 0; i < count; i++) eps[i] = il_rng_next(r) >> 63 ? 1 : -1;
}

/* ---- the cell op at a fixed z ---- */

typedef struct op_out {
  double sq, *rows, *dx, *dW; /* dx, dW: what the op added to the buffers' previous contents */
} op_out;

/* The cell op on host arrays: the point is (z, f(z)) with f from the cell's own map. */
static void cell_op(const char *cell, int n, int B, const double *W, const double *x, const double *z,
                    const double *eps, double scale, op_out *o) {
  const size_t len = (size_t)B * n, nn = (size_t)n * n;
  il_cell c;
  il_arena ws;
  assert_ok(il_cell_init(&c, cell, be, n, dev(W, nn), NULL));
  assert_ok(il_arena_init_for(&ws, be, IL_MEM_WORKSPACE, NULL, 0));
  double *x0 = malloc(sizeof(double) * len), *W0 = malloc(sizeof(double) * nn);
  il_rng r;
  il_rng_seed(&r, 3);
  for (size_t i = 0; i < len; i++) x0[i] = il_rng_normal(&r); /* the op must add, not overwrite */
  for (size_t i = 0; i < nn; i++) W0[i] = il_rng_normal(&r);
  double *dz = dev(z, len), *df = dev(NULL, len), *ddx = dev(x0, len), *ddW = dev(W0, nn);
  assert_ok(il_cell_map(&c, B, dev(x, len), dz, df, NULL, &ws, NULL));
  o->rows = calloc((size_t)B, sizeof *o->rows);
  o->dx = malloc(sizeof(double) * len);
  o->dW = malloc(sizeof(double) * nn);
  assert_ok(c.ops->jac_reg(&c, B, dz, df, dev(eps, len), scale, o->rows, ddx, ddW, &ws));
  host(o->dx, ddx, len);
  host(o->dW, ddW, nn);
  for (size_t i = 0; i < len; i++) o->dx[i] -= x0[i];
  for (size_t i = 0; i < nn; i++) o->dW[i] -= W0[i];
  o->sq = 0;
  for (int b = 0; b < B; b++) o->sq += o->rows[b];
  il_arena_destroy(&ws);
  free(x0);
  free(W0);
}

static void op_free(op_out *o) { free(o->rows), free(o->dx), free(o->dW); }

/* The op's value and gradient (one fixed Rademacher probe) against the host reference and its
 * central differences in W and x, z held fixed; tanh and relu (away from relu's kink). */
static void test_probe_value_and_gradient(void **state) {
  const char *cells[] = {"tanh", "relu"};
  const int sizes[][2] = {{5, 3}, {8, 2}, {3, 6}};
  for (int ci = 0; ci < 2; ci++)
    for (int k = 0; k < 3; k++) {
      const int n = sizes[k][0], B = sizes[k][1];
      const size_t len = (size_t)B * n, nn = (size_t)n * n;
      double *W = malloc(sizeof(double) * nn), *x = malloc(sizeof(double) * len), *z = malloc(sizeof(double) * len);
      double *eps = malloc(sizeof(double) * len), *s = malloc(sizeof(double) * len), *rows = malloc(sizeof(double) * B);
      double *gW = malloc(sizeof(double) * nn), *gx = malloc(sizeof(double) * len), amin;
      make_problem(n, B, 1.3, 1.0, 70 + k, W, x);
      il_rng r;
      il_rng_seed(&r, 80 + k);
      for (size_t i = 0; i < len; i++) z[i] = tanh(il_rng_normal(&r)); /* any point: z is held fixed */
      rademacher(&r, len, eps);
      host_s(cells[ci], n, B, W, x, z, s, &amin);
      assert_true(amin > 1e-3); /* relu: no pre-activation within the step of its kink */
      const double scale = 0.7;
      op_out o;
      cell_op(cells[ci], n, B, W, x, z, eps, scale, &o);
      const double want = host_probe_sum(cells[ci], n, B, 1, W, x, z, eps, rows);
      assert_allclose(o.rows, rows, (size_t)B, 1e-12, 1e-14);
      assert_close(o.sq, want, 1e-12, 0);
      assert_true(want > 0);
      probe_ctx pc = {.cell = cells[ci], .n = n, .B = B, .K = 1, .z = z, .eps = eps};
      host_fd(probe_fn, &pc, n, B, W, x, 1e-6, gW, gx);
      for (size_t i = 0; i < nn; i++) gW[i] *= scale;
      for (size_t i = 0; i < len; i++) gx[i] *= scale;
      const double ew = relerr(o.dW, gW, nn), ex = relerr(o.dx, gx, len);
      print_message("%s n=%d B=%d: R %.6g, relerr W %.2e x %.2e\n", cells[ci], n, B, want, ew, ex);
      if (!(ew <= 1e-7)) fail_msg("%s n=%d B=%d: dW relerr %.3g", cells[ci], n, B, ew);
      if (ci == 0 && !(ex <= 1e-7)) fail_msg("tanh n=%d B=%d: dx relerr %.3g", n, B, ex);
      if (ci == 1) assert_true(sumsq(o.dx, len) == 0 && sumsq(gx, len) == 0); /* relu: s' = 0, nothing in x */
      op_free(&o);
      free(W), free(x), free(z), free(eps), free(s), free(rows), free(gW), free(gx);
    }
}

/* A layer at its fixed point: z* (host) and the layer kept for il_layer_jac_reg. */
static double *solve_layer(il_layer *L, const il_layer_config *cfg, int n, int B, const double *W, const double *x) {
  double *zs = malloc(sizeof(double) * B * n);
  assert_ok(layer_create_h(L, cfg, n, W, NULL));
  assert_ok(il_layer_reserve(L, B));
  layer_forward_h(L, B, x, NULL, 1);
  assert_int_equal(L->fres.reason, IL_REASON_CONVERGED);
  host(zs, L->zstar, (size_t)B * n);
  return zs;
}

/* Basis probes (K = n, probe k = e_k in every row) give the exact ||df/dz||_F^2: against J built
 * column by column through the cell's jvp_z, and its gradient against central differences of
 * the exact norm (a formula that knows nothing of probes), at the layer's z*. */
static void test_exact_frobenius_with_basis_probes(void **state) {
  enum { n = 6, B = 3 };
  const size_t len = (size_t)B * n, nn = (size_t)n * n;
  double W[n * n], x[B * n], basis[n * B * n], col[B * n], gW[n * n], gx[B * n], dxh[B * n], dWh[n * n];
  make_problem(n, B, 1.2, 1.0, 91, W, x);
  memset(basis, 0, sizeof basis);
  for (int k = 0; k < n; k++)
    for (int b = 0; b < B; b++) basis[((size_t)k * B + b) * n + k] = 1;
  il_layer L;
  il_layer_config cfg = {.solver = "newton", .backward = "implicit", .tol = 1e-13, .jac_reg = 1};
  double *zs = solve_layer(&L, &cfg, n, B, W, x);
  /* J's columns: (df/dz) e_j for every row at once */
  double frob_jvp = 0;
  il_arena ws;
  assert_ok(il_arena_init_for(&ws, be, IL_MEM_WORKSPACE, NULL, 0));
  double *df = dev(NULL, len), *dcol = dev(NULL, len);
  assert_ok(il_cell_map(&L.cell, B, L.prob.x, L.zstar, df, NULL, &ws, NULL));
  for (int j = 0; j < n; j++) {
    double e[B * n];
    memset(e, 0, sizeof e);
    for (int b = 0; b < B; b++) e[b * n + j] = 1;
    assert_ok(il_cell_jvp_z(&L.cell, B, L.zstar, df, NULL, dev(e, len), dcol, &ws));
    host(col, dcol, len);
    frob_jvp += sumsq(col, len);
  }
  il_arena_destroy(&ws);
  double sq;
  double *ddx = dev(NULL, len), *ddW = dev(NULL, nn);
  assert_ok(il_layer_jac_reg(&L, n, dev(basis, (size_t)n * len), len, 1, ddx, ddW, &sq));
  host(dxh, ddx, len);
  host(dWh, ddW, nn);
  const double exact = host_frob("tanh", n, B, W, x, zs);
  print_message("||J||_F^2: probes %.15g, jvp columns %.15g, host %.15g\n", sq, frob_jvp, exact);
  assert_close(sq, exact, 1e-12, 0);
  assert_close(frob_jvp, exact, 1e-12, 0);
  probe_ctx pc = {.cell = "tanh", .n = n, .B = B, .z = zs};
  host_fd(frob_fn, &pc, n, B, W, x, 1e-6, gW, gx);
  const double ew = relerr(dWh, gW, nn), ex = relerr(dxh, gx, len);
  print_message("exact-norm gradient: relerr W %.2e x %.2e\n", ew, ex);
  assert_true(ew <= 1e-7 && ex <= 1e-7);
  il_layer_destroy(&L);
  free(zs);
}

/* E over Rademacher eps of ||eps^T J_b||^2 = tr(A_b), A_b = J_b J_b^T, with variance
 * 2 (||A_b||_F^2 - sum_i A_b,ii^2) (the diagonal terms of eps^T A eps are constant since
 * eps_i^2 = 1). N probes: the sample mean lies within 5 sigma / sqrt(N) of tr(A_b), and the
 * sample variance near the derived one. The gradient is linear in eps eps^T, so its mean over
 * probes estimates the exact gradient: each entry within 5 of its own standard errors. */
static void test_hutchinson_expectation(void **state) {
  enum { n = 6, B = 3, N = 20000 };
  const size_t len = (size_t)B * n, nn = (size_t)n * n, ng = nn + len;
  double W[n * n], x[B * n], eps[B * n], rows[B], basis[n * B * n], s[B * n], amin;
  double *sum_g = calloc(ng, sizeof(double)), *sum_g2 = calloc(ng, sizeof(double)), *g = malloc(sizeof(double) * ng);
  double *exact_g = malloc(sizeof(double) * ng);
  double sum_v[B] = {0}, sum_v2[B] = {0};
  make_problem(n, B, 1.2, 1.0, 93, W, x);
  il_layer L;
  il_layer_config cfg = {.solver = "newton", .backward = "implicit", .tol = 1e-13, .jac_reg = 1};
  double *zs = solve_layer(&L, &cfg, n, B, W, x);
  double *ddx = dev(NULL, len), *ddW = dev(NULL, nn), *deps = dev(NULL, len), sq;
  memset(basis, 0, sizeof basis);
  for (int k = 0; k < n; k++)
    for (int b = 0; b < B; b++) basis[((size_t)k * B + b) * n + k] = 1;
  assert_ok(il_layer_jac_reg(&L, n, dev(basis, (size_t)n * len), len, 1, ddx, ddW, &sq));
  host(exact_g, ddW, nn);
  host(exact_g + nn, ddx, len);
  il_rng r;
  il_rng_seed(&r, 2024);
  double single_min = INFINITY, single_max = -INFINITY;
  for (int t = 0; t < N; t++) {
    rademacher(&r, len, eps);
    assert_ok(il_upload(be, deps, eps, len));
    assert_ok(IL_BE(be, zero, ddx, len * sizeof *ddx));
    assert_ok(IL_BE(be, zero, ddW, nn * sizeof *ddW));
    double v;
    assert_ok(il_layer_jac_reg(&L, 1, deps, len, 1, ddx, ddW, &v));
    host_probe_sum("tanh", n, B, 1, W, x, zs, eps, rows);
    if (v < single_min) single_min = v;
    if (v > single_max) single_max = v;
    for (int b = 0; b < B; b++) sum_v[b] += rows[b], sum_v2[b] += rows[b] * rows[b];
    host(g, ddW, nn);
    host(g + nn, ddx, len);
    for (size_t i = 0; i < ng; i++) sum_g[i] += g[i], sum_g2[i] += g[i] * g[i];
  }
  host_s("tanh", n, B, W, x, zs, s, &amin);
  for (int b = 0; b < B; b++) { /* A_b = diag(s) W W^T diag(s) */
    double A[n * n], tr = 0, fro = 0, diag2 = 0;
    for (int i = 0; i < n; i++)
      for (int j = 0; j < n; j++) {
        double a = 0;
        for (int l = 0; l < n; l++) a += W[i * n + l] * W[j * n + l];
        A[i * n + j] = s[b * n + i] * a * s[b * n + j];
      }
    for (int i = 0; i < n; i++) tr += A[i * n + i], diag2 += A[i * n + i] * A[i * n + i];
    for (int i = 0; i < n * n; i++) fro += A[i] * A[i];
    const double var = 2 * (fro - diag2), mean = sum_v[b] / N, svar = (sum_v2[b] - N * mean * mean) / (N - 1);
    const double se = sqrt(var / N);
    print_message("row %d: mean %.6f exact %.6f (%.2f se), variance %.5f derived %.5f\n", b, mean, tr,
                  (mean - tr) / se, svar, var);
    assert_true(var > 0);
    assert_true(fabs(mean - tr) <= 5 * se);
    assert_true(fabs(svar / var - 1) <= 0.15);
  }
  assert_true(single_max - single_min > 1e-3 * sq); /* one probe is a noisy estimate, not the norm */
  int worst = -1;
  double worst_z = 0;
  for (size_t i = 0; i < ng; i++) {
    const double mean = sum_g[i] / N, var = (sum_g2[i] - N * mean * mean) / (N - 1);
    const double se = sqrt(var > 0 ? var / N : 0), zsc = se > 0 ? fabs(mean - exact_g[i]) / se : 0;
    if (se == 0) assert_close(mean, exact_g[i], 1e-12, 1e-14); /* no noise in this entry: exact */
    if (zsc > worst_z) worst_z = zsc, worst = (int)i;
  }
  print_message("gradient: %zu entries, worst %.2f standard errors (entry %d)\n", ng, worst_z, worst);
  assert_true(worst_z <= 5);
  il_layer_destroy(&L);
  free(zs), free(sum_g), free(sum_g2), free(g), free(exact_g);
}

/* Every backward mode: il_gradcheck with the regulariser checks the total gradient (the mode's plus
 * the regulariser's) against finite differences of sum(C * out) + w R, and the regulariser's part
 * against its own at fixed z*. unroll and implicit are exact; phantom and jfb are not (their total
 * fails, by design), but the regulariser's part added to them is. */
static void test_gradcheck_every_mode(void **state) {
  const struct {
    const char *solver, *mode;
    int exact;
  } pairs[] = {{"fp", "unroll", 1},   {"fp", "implicit", 1},   {"newton", "unroll", 1}, {"newton", "implicit", 1},
               {"fp", "phantom:5", 0}, {"fp", "jfb", 0}, {"anderson", "implicit", 1}};
  const char *cells[] = {"tanh", "relu"};
  for (int ci = 0; ci < 2; ci++)
    for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++) {
      il_gradcheck_config gc = {.layer = {.cell = cells[ci], .solver = pairs[p].solver, .backward = pairs[p].mode,
                                          .tol = 1e-11, .max_iter = 2000, .zero_nonconverged = IL_ZERO_AUTO},
                                .n = 6, .B = 3, .scale = ci ? 0.5 : 1.0, .eps = 1e-6, .seed = 61 + (int)p,
                                .jac_reg = 0.4, .jac_reg_samples = 2};
      il_gradcheck_result gr;
      assert_ok(il_gradcheck(&gc, be, &gr));
      assert_int_equal(gr.fwd.reason, IL_REASON_CONVERGED);
      print_message("%s %s/%s: R %.4g, total relerr x %.2e W %.2e; regulariser x %.2e W %.2e\n", cells[ci],
                    pairs[p].solver, pairs[p].mode, gr.reg, gr.relerr_x, gr.relerr_W, gr.relerr_reg_x,
                    gr.relerr_reg_W);
      assert_true(gr.reg > 0);
      if (!(gr.relerr_reg_W <= 1e-6 && (ci || gr.relerr_reg_x <= 1e-6)))
        fail_msg("%s %s/%s: regulariser relerr x %.3g W %.3g", cells[ci], pairs[p].solver, pairs[p].mode,
                 gr.relerr_reg_x, gr.relerr_reg_W);
      if (pairs[p].exact && !(gr.relerr_x <= 1e-6 && gr.relerr_W <= 1e-6))
        fail_msg("%s %s/%s: total relerr x %.3g W %.3g", cells[ci], pairs[p].solver, pairs[p].mode, gr.relerr_x,
                 gr.relerr_W);
      if (!pairs[p].exact) assert_true(gr.relerr_x > 1e-6 || gr.relerr_W > 1e-6);
    }
}

/* With W = W(V, g) (--w-norm) the regulariser's gradient maps through the parameterisation like the
 * mode's: both parts are checked in V (and g) against differences that re-form W, spectral's u, v
 * held fixed as in training. */
static void test_gradcheck_through_w_norm(void **state) {
  const il_wnorm_kind kinds[] = {IL_WNORM_WEIGHT, IL_WNORM_SPECTRAL};
  const char *solvers[] = {"fp", "newton"}, *modes[] = {"implicit", "unroll"};
  for (int w = 0; w < 2; w++)
    for (int p = 0; p < 2; p++) {
      il_gradcheck_config gc = {.layer = {.solver = solvers[p], .backward = modes[p], .tol = 1e-11, .max_iter = 2000,
                                          .zero_nonconverged = IL_ZERO_AUTO},
                                .n = 6, .B = 3, .scale = 1.5, .eps = 1e-6, .seed = 71 + p, .jac_reg = 0.4,
                                .jac_reg_samples = 2, .w_norm = kinds[w]};
      il_gradcheck_result gr;
      assert_ok(il_gradcheck(&gc, be, &gr));
      assert_int_equal(gr.fwd.reason, IL_REASON_CONVERGED);
      print_message("%s %s/%s: R %.4g, total relerr x %.2e (V, g) %.2e; regulariser x %.2e (V, g) %.2e\n",
                    il_wnorm_name(kinds[w]), solvers[p], modes[p], gr.reg, gr.relerr_x, gr.relerr_W, gr.relerr_reg_x,
                    gr.relerr_reg_W);
      assert_true(gr.reg > 0);
      if (!(gr.relerr_reg_x <= 1e-6 && gr.relerr_reg_W <= 1e-6 && gr.relerr_x <= 1e-6 && gr.relerr_W <= 1e-6))
        fail_msg("%s %s/%s: relerr x %.3g (V, g) %.3g; regulariser x %.3g (V, g) %.3g", il_wnorm_name(kinds[w]),
                 solvers[p], modes[p], gr.relerr_x, gr.relerr_W, gr.relerr_reg_x, gr.relerr_reg_W);
    }
}

/* Held fixed means what it says: central differences of R that re-solve z* after each
 * perturbation (the total derivative, through z*'s dependence on W) differ from the gradient the op returns,
 * which matches the differences at fixed z*. So the fixed-z* checks above can tell them apart. */
static void test_fixed_zstar_is_not_the_total_derivative(void **state) {
  enum { n = 5, B = 2 };
  const size_t len = (size_t)B * n, nn = (size_t)n * n;
  double W[n * n], x[B * n], eps[B * n], dWh[n * n], fixed[n * n], total[n * n];
  make_problem(n, B, 1.4, 1.0, 33, W, x);
  il_rng r;
  il_rng_seed(&r, 34);
  rademacher(&r, len, eps);
  il_layer L;
  il_layer_config cfg = {.solver = "newton", .backward = "implicit", .tol = 1e-13, .jac_reg = 1};
  double *zs = solve_layer(&L, &cfg, n, B, W, x), sq;
  double *deps = dev(eps, len), *ddW = dev(NULL, nn), *dWs = (double *)L.cell.theta, *dxs = dev(x, len);
  assert_ok(il_layer_jac_reg(&L, 1, deps, len, 1, NULL, ddW, &sq));
  host(dWh, ddW, nn);
  probe_ctx pc = {.cell = "tanh", .n = n, .B = B, .K = 1, .z = zs, .eps = eps};
  double gx[B * n];
  host_fd(probe_fn, &pc, n, B, W, x, 1e-6, fixed, gx);
  const double h = 1e-6;
  for (size_t i = 0; i < nn; i++) { /* re-solved at W +- h e_i */
    double v[2];
    for (int sgn = 0; sgn < 2; sgn++) {
      double Wp[n * n];
      memcpy(Wp, W, sizeof Wp);
      Wp[i] += sgn ? -h : h;
      assert_ok(il_upload(be, dWs, Wp, nn));
      assert_ok(il_layer_forward(&L, B, dxs, dev(NULL, len), 1));
      assert_ok(il_layer_jac_reg(&L, 1, deps, len, 1, NULL, NULL, &v[sgn]));
    }
    total[i] = (v[0] - v[1]) / (2 * h);
  }
  assert_ok(il_upload(be, dWs, W, nn));
  const double e_fixed = relerr(dWh, fixed, nn), e_total = relerr(dWh, total, nn);
  print_message("dW against fixed-z* differences %.2e, against re-solved ones %.2e\n", e_fixed, e_total);
  assert_true(e_fixed <= 1e-7);
  assert_true(e_total > 1e-3);
  il_layer_destroy(&L);
  free(zs);
}

/* Zeroed rows (Newton's non-converged) carry neither value nor gradient: rows with x = 0 sit at
 * z* = 0 from the first step, rows with a large x do not converge in one step and are zeroed. */
static void test_zeroed_rows_carry_nothing(void **state) {
  enum { n = 5, B = 4 };
  const size_t len = (size_t)B * n, nn = (size_t)n * n;
  double W[n * n], x[B * n], eps[B * n], rows[B], zs[B * n], dxh[B * n], dWh[n * n];
  make_problem(n, B, 1.5, 3.0, 17, W, x);
  for (int i = 0; i < 2 * n; i++) x[i] = 0;
  il_rng r;
  il_rng_seed(&r, 4);
  rademacher(&r, len, eps);
  il_layer L;
  il_layer_config cfg = {.solver = "newton", .backward = "implicit", .tol = 1e-10, .max_iter = 1,
                         .zero_nonconverged = IL_ZERO_YES, .jac_reg = 1};
  assert_ok(layer_create_h(&L, &cfg, n, W, NULL));
  assert_ok(il_layer_reserve(&L, B));
  layer_forward_h(&L, B, x, NULL, 1);
  assert_true(!L.zeroed[0] && !L.zeroed[1] && L.zeroed[2] && L.zeroed[3]);
  host(zs, L.zstar, len);
  double sq, *ddx = dev(NULL, len), *ddW = dev(NULL, nn);
  assert_ok(il_layer_jac_reg(&L, 1, dev(eps, len), len, 1, ddx, ddW, &sq));
  host(dxh, ddx, len);
  host(dWh, ddW, nn);
  host_probe_sum("tanh", n, 2, 1, W, x, zs, eps, rows); /* the first two rows only */
  assert_close(sq, rows[0] + rows[1], 1e-12, 0);
  assert_true(sq > 0);
  assert_true(sumsq(dxh + 2 * n, 2 * n) == 0);
  double gW[n * n], gx[2 * n];
  double eps2[2 * n];
  memcpy(eps2, eps, sizeof eps2);
  probe_ctx pc = {.cell = "tanh", .n = n, .B = 2, .K = 1, .z = zs, .eps = eps2};
  host_fd(probe_fn, &pc, n, 2, W, x, 1e-6, gW, gx);
  assert_true(relerr(dWh, gW, nn) <= 1e-7 && relerr(dxh, gx, 2 * n) <= 1e-7);
  il_layer_destroy(&L);
}

/* The thread team (cpu, 3 shards) gives the one-thread value and gradient. */
static void test_team_matches_one_thread(void **state) {
  enum { n = 16, B = 24, K = 2 };
  const size_t len = (size_t)B * n, nn = (size_t)n * n;
  double W[n * n], x[B * n], eps[K * B * n], dx[2][B * n], dW[2][n * n], sq[2];
  make_problem(n, B, 0.9, 1.0, 12, W, x);
  il_rng r;
  il_rng_seed(&r, 8);
  rademacher(&r, (size_t)K * len, eps);
  il_backend *saved = be;
  il_arena saved_space = tspace;
  for (int t = 0; t < 2; t++) {
    const il_backend_options o = {.threads = t ? 3 : 1};
    il_backend *b;
    assert_ok(il_backend_create("cpu", &o, &b));
    be = b;
    assert_ok(il_arena_init_for(&tspace, be, IL_MEM_WORKSPACE, NULL, 0));
    il_layer L;
    il_layer_config cfg = {.solver = "fp", .backward = "implicit", .tol = 1e-12, .max_iter = 500, .jac_reg = 1};
    assert_ok(layer_create_h(&L, &cfg, n, W, NULL));
    assert_ok(il_layer_reserve(&L, B));
    assert_true((L.team != NULL) == (t == 1));
    layer_forward_h(&L, B, x, NULL, 1);
    double *ddx = dev(NULL, len), *ddW = dev(NULL, nn);
    assert_ok(il_layer_jac_reg(&L, K, dev(eps, (size_t)K * len), len, 0.25, ddx, ddW, &sq[t]));
    host(dx[t], ddx, len);
    host(dW[t], ddW, nn);
    il_layer_destroy(&L);
    il_arena_destroy(&tspace);
    il_backend_destroy(b);
  }
  be = saved;
  tspace = saved_space;
  assert_close(sq[1], sq[0], 1e-12, 0);
  assert_allclose(dx[1], dx[0], len, 1e-10, 1e-14);
  assert_allclose(dW[1], dW[0], nn, 1e-10, 1e-14);
}

/* ---- the model ---- */

enum { M_IN = 7, M_H = 5, M_C = 3 };

static void model_cfg(il_model_config *mc, const char *solver, const char *mode, int B, double w, int K) {
  *mc = (il_model_config){.in_dim = M_IN, .hidden = M_H, .classes = M_C, .max_batch = B, .seed = 5,
                          .jac_reg = w, .jac_reg_samples = K,
                          .layer = {.solver = solver, .backward = mode, .tol = 1e-12, .max_iter = 2000}};
}

typedef struct mstep {
  double *grads, *dx1, *zs, *x1, *probes, loss, jr;
} mstep;

/* One training step of a fresh model on (X, y); copies out what the test compares. */
static void model_step(const il_model_config *mc, int B, const double *X, const uint8_t *y, int denom, int off,
                       mstep *o) {
  il_model m;
  il_step_stats st;
  assert_ok(il_model_create(&m, mc, be));
  m.loss_denominator = denom;
  m.row_offset = off;
  assert_ok(il_model_forward(&m, B, X, y, 1, &st));
  assert_ok(il_model_backward(&m, &st));
  assert_true(st.grad_finite);
  o->grads = malloc(sizeof(double) * m.nparams);
  o->dx1 = malloc(sizeof(double) * B * M_H);
  o->zs = malloc(sizeof(double) * B * M_H);
  o->x1 = malloc(sizeof(double) * B * M_H);
  host(o->grads, m.grads, m.nparams);
  host(o->dx1, m.dx1, (size_t)B * M_H);
  host(o->zs, m.layer.zstar, (size_t)B * M_H);
  host(o->x1, m.x1, (size_t)B * M_H);
  const size_t np = mc->jac_reg > 0 ? (size_t)mc->jac_reg_samples * B * M_H : 0;
  o->probes = malloc(sizeof(double) * (np + 1));
  if (np) memcpy(o->probes, m.jr_host, np * sizeof(double)); /* host memory: the probes of this step */
  o->loss = st.loss_sum;
  o->jr = st.jac_reg_sum;
  il_model_destroy(&m);
}

static void mstep_free(mstep *o) { free(o->grads), free(o->dx1), free(o->zs), free(o->x1), free(o->probes); }

/* The model adds w * (1/N) sum_b (1/K) sum_k ||eps^T J||^2 to its loss: with every backward mode,
 * its gradients differ from the unregularised model's by exactly that term's gradient at fixed
 * z*, in W directly and through dx1 in W1 and b1, and nowhere in the head; the cross-entropy is
 * unchanged and st.jac_reg_sum is the unweighted estimate. */
static void test_model_adds_weighted_term(void **state) {
  enum { B = 4, K = 2 };
  const double w = 0.3;
  double X[B * M_IN];
  uint8_t y[B] = {0, 1, 2, 1};
  il_rng r;
  il_rng_seed(&r, 21);
  for (int i = 0; i < B * M_IN; i++) X[i] = il_rng_uniform(&r);
  const char *modes[][2] = {{"fp", "unroll"}, {"fp", "implicit"}, {"fp", "phantom:4"}, {"fp", "jfb"},
                            {"newton", "implicit"}};
  for (int md = 0; md < 5; md++) {
    il_model_config plain, reg;
    model_cfg(&plain, modes[md][0], modes[md][1], B, 0, 1);
    model_cfg(&reg, modes[md][0], modes[md][1], B, w, K);
    mstep a, b;
    model_step(&plain, B, X, y, 0, 0, &a);
    model_step(&reg, B, X, y, 0, 0, &b);
    assert_true(isnan(a.jr));
    assert_close(b.loss, a.loss, 1e-14, 0);
    assert_allclose(b.zs, a.zs, (size_t)B * M_H, 0, 0);
    /* the parameters' layout: W1 (h, in), b1 (h), W (h, h), W2 (c, h), b2 (c) */
    const size_t oW1 = 0, ob1 = M_H * M_IN, oW = ob1 + M_H, oW2 = oW + M_H * M_H, nparams = oW2 + M_C * M_H + M_C;
    double *W = malloc(sizeof(double) * M_H * M_H), dxr[B * M_H], gW[M_H * M_H], gx[B * M_H], rows[B];
    {
      il_model m;
      assert_ok(il_model_create(&m, &plain, be));
      host(W, m.W, M_H * M_H);
      il_model_destroy(&m);
    }
    const double R = host_probe_sum("tanh", M_H, B, K, W, a.x1, a.zs, b.probes, rows);
    assert_close(b.jr, R / K, 1e-12, 0);
    probe_ctx pc = {.cell = "tanh", .n = M_H, .B = B, .K = K, .z = a.zs, .eps = b.probes};
    host_fd(probe_fn, &pc, M_H, B, W, a.x1, 1e-6, gW, gx);
    const double scale = w / (K * B);
    double dW_diff[M_H * M_H], dW1_diff[M_H * M_IN], db1_diff[M_H], want_W1[M_H * M_IN], want_b1[M_H];
    for (int i = 0; i < M_H * M_H; i++) dW_diff[i] = b.grads[oW + i] - a.grads[oW + i], gW[i] *= scale;
    for (int i = 0; i < B * M_H; i++) dxr[i] = b.dx1[i] - a.dx1[i], gx[i] *= scale;
    for (int i = 0; i < M_H * M_IN; i++) dW1_diff[i] = b.grads[oW1 + i] - a.grads[oW1 + i];
    for (int i = 0; i < M_H; i++) db1_diff[i] = b.grads[ob1 + i] - a.grads[ob1 + i];
    memset(want_W1, 0, sizeof want_W1);
    memset(want_b1, 0, sizeof want_b1);
    for (int bb = 0; bb < B; bb++)
      for (int i = 0; i < M_H; i++) {
        want_b1[i] += dxr[bb * M_H + i];
        for (int j = 0; j < M_IN; j++) want_W1[i * M_IN + j] += dxr[bb * M_H + i] * X[bb * M_IN + j];
      }
    print_message("%s/%s: jac_reg %.5g, dW relerr %.2e, dx1 relerr %.2e\n", modes[md][0], modes[md][1], b.jr,
                  relerr(dW_diff, gW, M_H * M_H), relerr(dxr, gx, B * M_H));
    assert_true(sumsq(gW, M_H * M_H) > 0 && sumsq(gx, B * M_H) > 0);
    assert_true(relerr(dW_diff, gW, M_H * M_H) <= 1e-7);
    assert_true(relerr(dxr, gx, B * M_H) <= 1e-7);
    double big = 0; /* the differences of two GEMM results round at the scale of the gradients themselves */
    for (int i = 0; i < M_H * M_IN + M_H; i++) big = fmax(big, fabs(a.grads[oW1 + i]));
    assert_allclose(dW1_diff, want_W1, M_H * M_IN, 1e-9, 1e-13 * big);
    assert_allclose(db1_diff, want_b1, M_H, 1e-9, 1e-13 * big);
    for (size_t i = oW2; i < nparams; i++) assert_true(b.grads[i] == a.grads[i]); /* the head: untouched */
    free(W);
    mstep_free(&a);
    mstep_free(&b);
  }
}

/* The probes are drawn for the whole loss batch: a shard (row_offset, loss_denominator) gets the
 * rows a single process would, and the shards' gradients sum to the single process's; the
 * probes are +-1, and the stream moves on from step to step unless jac_reg_now is 0. */
static void test_model_probes_shard_and_stream(void **state) {
  enum { B = 4, K = 3 };
  double X[B * M_IN];
  uint8_t y[B] = {2, 0, 1, 1};
  il_rng r;
  il_rng_seed(&r, 22);
  for (int i = 0; i < B * M_IN; i++) X[i] = il_rng_uniform(&r);
  il_model_config whole, half;
  model_cfg(&whole, "fp", "implicit", B, 0.5, K);
  model_cfg(&half, "fp", "implicit", 2, 0.5, K);
  mstep all, s0, s1;
  model_step(&whole, B, X, y, 0, 0, &all);
  model_step(&half, 2, X, y, B, 0, &s0);
  model_step(&half, 2, X + 2 * M_IN, y + 2, B, 2, &s1);
  int plus = 0;
  for (int k = 0; k < K; k++)
    for (int b = 0; b < B; b++)
      for (int i = 0; i < M_H; i++) {
        const double v = all.probes[((size_t)k * B + b) * M_H + i];
        const mstep *sh = b < 2 ? &s0 : &s1;
        assert_true(v == 1 || v == -1);
        plus += v > 0;
        assert_true(sh->probes[((size_t)k * 2 + b % 2) * M_H + i] == v);
      }
  assert_true(plus > 0 && plus < K * B * M_H);
  assert_close(s0.jr + s1.jr, all.jr, 1e-9, 0); /* each shard's solve stops on its own residual */
  il_model m;
  assert_ok(il_model_create(&m, &whole, be));
  double *sum = malloc(sizeof(double) * m.nparams);
  for (size_t i = 0; i < m.nparams; i++) sum[i] = s0.grads[i] + s1.grads[i];
  assert_allclose(sum, all.grads, m.nparams, 1e-9, 1e-14);
  /* two steps on one model: new probes each step; jac_reg_now = 0 draws none and adds nothing */
  il_step_stats st;
  double first[K * B * M_H];
  assert_ok(il_model_forward(&m, B, X, y, 1, &st));
  assert_ok(il_model_backward(&m, &st));
  memcpy(first, m.jr_host, sizeof first);
  const il_rng before = m.jr_rng;
  assert_ok(il_model_forward(&m, B, X, y, 1, &st));
  assert_ok(il_model_backward(&m, &st));
  assert_true(memcmp(first, m.jr_host, sizeof first) != 0);
  assert_true(memcmp(&before, &m.jr_rng, sizeof before) != 0);
  const il_rng kept = m.jr_rng;
  m.jac_reg_now = 0;
  assert_ok(il_model_forward(&m, B, X, y, 1, &st));
  assert_ok(il_model_backward(&m, &st));
  assert_true(isnan(st.jac_reg_sum));
  assert_true(memcmp(&kept, &m.jr_rng, sizeof kept) == 0);
  il_model_config plain;
  model_cfg(&plain, "fp", "implicit", B, 0, 1);
  mstep p;
  model_step(&plain, B, X, y, 0, 0, &p);
  double *g = malloc(sizeof(double) * m.nparams);
  host(g, m.grads, m.nparams);
  assert_allclose(g, p.grads, m.nparams, 0, 0); /* nothing added: the unregularised model's gradient */
  il_model_destroy(&m);
  free(sum), free(g);
  mstep_free(&all), mstep_free(&s0), mstep_free(&s1), mstep_free(&p);
}

static void test_model_refuses_bad_weights(void **state) {
  il_model m;
  il_model_config mc;
  model_cfg(&mc, "fp", "implicit", 2, -1, 1);
  il_error_clear();
  assert_int_equal(il_model_create(&m, &mc, be), IL_ERR_ARG);
  assert_non_null(strstr(il_error_message(), "weight"));
  model_cfg(&mc, "fp", "implicit", 2, NAN, 1);
  assert_int_equal(il_model_create(&m, &mc, be), IL_ERR_ARG);
  model_cfg(&mc, "fp", "implicit", 2, 1, 0);
  il_error_clear();
  assert_int_equal(il_model_create(&m, &mc, be), IL_ERR_ARG);
  assert_non_null(strstr(il_error_message(), "samples"));
  /* a layer not configured for the regulariser refuses it */
  il_layer L;
  il_layer_config cfg = {.solver = "fp", .backward = "implicit", .tol = 1e-8};
  double W[4] = {0.1, 0, 0, 0.1}, x[2] = {0.5, -0.5}, sq;
  assert_ok(layer_create_h(&L, &cfg, 2, W, NULL));
  layer_forward_h(&L, 1, x, NULL, 1);
  il_error_clear();
  assert_int_equal(il_layer_jac_reg(&L, 1, dev(x, 2), 2, 1, NULL, NULL, &sq), IL_ERR_INTERNAL);
  assert_non_null(strstr(il_error_message(), "jac_reg"));
  il_layer_destroy(&L);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      IL_TEST(test_probe_value_and_gradient),
      IL_TEST(test_exact_frobenius_with_basis_probes),
      IL_TEST(test_hutchinson_expectation),
      IL_TEST(test_gradcheck_every_mode),
      IL_TEST(test_gradcheck_through_w_norm),
      IL_TEST(test_fixed_zstar_is_not_the_total_derivative),
      IL_TEST(test_zeroed_rows_carry_nothing),
      IL_TEST(test_team_matches_one_thread),
      IL_TEST(test_model_adds_weighted_term),
      IL_TEST(test_model_probes_shard_and_stream),
      IL_TEST(test_model_refuses_bad_weights),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
