/* core/solvers/solver_newton.c: Newton on g(z) = z - f(z), plain (`newton`, as
 * the seed's TanhNewtonLayer) or protected by a backtracking Armijo line search
 * on ||g|| (`newton-ls`, the seed's "protected update"). z_0 = f(0) (tanh(x)
 * for the tanh cell), then z_{k+1} = z_k - alpha_k J_k^{-1} g(z_k) with the
 * per-sample Jacobian J_k = I - df/dz factored by batched LU. Stops when ||g||_F
 * of the batch < tol; the count is Newton steps. The tape keeps z_k, f(z_k),
 * the LU of J_k, the step d_k and the per-row step lengths: memory grows as
 * K * B * n^2, as the seed's autograd graph does.
 * Options (newton-ls): ls-c1 (Armijo constant, default 1e-4), ls-max (halvings, default 10). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "il_solver.h"

typedef struct newton_step {
  il_real *z, *f, *lin, *lu, *d; /* (B,n), (B,n), (B,lin_dim) or NULL, (B,n,n), (B,n) */
  int *ipiv;                     /* (B,n) */
  il_real *alpha;                /* (B) step length per row: 1, a line-search fraction, or 0 (frozen row) */
} newton_step;

typedef struct newton_state {
  int line_search;
  double c1;
  int ls_max;
  newton_step *tape; /* K steps of the last solve with p->saved */
  il_real *z0;       /* f(0), the start */
  int K;
  const il_real *kept_lu; /* last LU, in p->keep */
  const int *kept_ipiv;
  long ls_maps;      /* extra map evaluations spent in line searches (last solve) */
  int nan_step;      /* last unrolled backward: first step whose cotangent went non-finite, -1 if none */
} newton_state;

static il_status newton_create_common(il_options *opt, void **state, int line_search) {
  double c1 = 1e-4;
  int ls_max = 10;
  if (line_search) {
    IL_CHECK(il_options_get_double(opt, "ls-c1", 1e-4, 1e-12, 0.49, &c1));
    IL_CHECK(il_options_get_int(opt, "ls-max", 10, 1, 60, &ls_max));
  }
  newton_state *st = calloc(1, sizeof *st);
  if (!st) return IL_ERR(IL_ERR_NOMEM, "newton: cannot allocate state");
  st->line_search = line_search;
  st->c1 = c1;
  st->ls_max = ls_max;
  *state = st;
  return IL_OK;
}
static il_status newton_create(il_options *opt, void **state) { return newton_create_common(opt, state, 0); }
static il_status newton_ls_create(il_options *opt, void **state) { return newton_create_common(opt, state, 1); }

static void newton_destroy(void *state) { free(state); }

/* Largest condition estimate of B factored Jacobians (anorm taken before factoring). */
static il_status track_cond(const il_backend *be, int B, int n, const il_real *lu, const int *info, const double *anorm,
                            double *rcond, il_solve_result *res) {
  IL_CHECK(be->lu_rcond_batched(B, n, lu, anorm, rcond));
  for (int b = 0; b < B; b++) {
    double cnd = info[b] > 0 ? INFINITY : 1.0 / rcond[b];
    if (isnan(res->cond_max) || cnd > res->cond_max) res->cond_max = cnd;
  }
  return IL_OK;
}

static il_status newton_solve(void *state, const il_problem *p, il_real *z, double *row_res,
                              il_solve_result *res) {
  newton_state *st = state;
  const il_cell *c = p->cell;
  const il_backend *be = c->be;
  const int B = p->B, n = c->n;
  /* the cell's linearisation state, or with diagnostics at least the pre-activation (tanh: n per row) */
  const int ld = c->lin_dim ? c->lin_dim : (p->diag ? n : 0);
  const size_t len = (size_t)B * n, nn = (size_t)n * n;
  il_arena_mark m = il_arena_get_mark(p->ws);
  il_status s = IL_OK;
  il_real *zk, *fk, *link = NULL, *g, *d, *lu = NULL, *zero, *alpha;
  int *ipiv = NULL, *info;
  double *rows, *trows, *anorm = NULL, *rcond = NULL;
  il_stop stop;
  il_best best;

  il_stop_begin(&stop, res);
  st->tape = NULL;
  st->K = 0;
  st->kept_lu = NULL;
  st->kept_ipiv = NULL;
  st->ls_maps = 0;
  il_arena *zs = p->saved ? p->saved : p->ws; /* where iterates live */
  IL_CHECK(il_arena_calloc(p->ws, len, sizeof *g, (void **)&g));
  IL_CHECK(il_arena_calloc(p->ws, len, sizeof *zero, (void **)&zero));
  IL_CHECK(il_arena_calloc(p->ws, (size_t)B, sizeof *info, (void **)&info));
  IL_CHECK(il_arena_calloc(p->ws, (size_t)B, sizeof *rows, (void **)&rows));
  IL_CHECK(il_arena_calloc(p->ws, (size_t)B, sizeof *trows, (void **)&trows));
  if (p->diag) {
    IL_CHECK(il_arena_calloc(p->ws, (size_t)B, sizeof *anorm, (void **)&anorm));
    IL_CHECK(il_arena_calloc(p->ws, (size_t)B, sizeof *rcond, (void **)&rcond));
  }
  IL_CHECK(il_best_init(&best, p));
  if (p->saved) IL_CHECK(il_arena_calloc(p->saved, (size_t)p->max_iter, sizeof *st->tape, (void **)&st->tape));
  if (!p->saved) { /* one factor buffer and one step, reused; the LU is kept for implicit backward when asked */
    il_arena *la = p->keep ? p->keep : p->ws;
    IL_CHECK(il_arena_calloc(la, (size_t)B * nn, sizeof *lu, (void **)&lu));
    IL_CHECK(il_arena_calloc(la, len, sizeof *ipiv, (void **)&ipiv));
    IL_CHECK(il_arena_calloc(p->ws, len, sizeof *d, (void **)&d));
    IL_CHECK(il_arena_calloc(p->ws, (size_t)B, sizeof *alpha, (void **)&alpha));
  }
  /* z_0 = f(0), then f(z_0) */
  IL_CHECK(il_arena_calloc(zs, len, sizeof *zk, (void **)&zk));
  IL_CHECK(il_arena_calloc(zs, len, sizeof *fk, (void **)&fk));
  if (ld) IL_CHECK(il_arena_calloc(zs, (size_t)B * ld, sizeof *link, (void **)&link));
  IL_CHECK(c->ops->map(c, B, p->x, zero, zk, link, p->ws));
  st->z0 = zk;
  IL_CHECK(c->ops->map(c, B, p->x, zk, fk, link, p->ws));
  il_real *zbuf[2] = {zk, NULL}, *fbuf[2] = {fk, NULL}, *lbuf[2] = {link, NULL};
  int cur = 0;
  if (!p->saved) {
    IL_CHECK(il_arena_alloc_n(p->ws, len, sizeof *zk, (void **)&zbuf[1]));
    IL_CHECK(il_arena_alloc_n(p->ws, len, sizeof *fk, (void **)&fbuf[1]));
    if (ld) IL_CHECK(il_arena_alloc_n(p->ws, (size_t)B * ld, sizeof *link, (void **)&lbuf[1]));
  }

  unsigned char *active = NULL; /* per-sample: rows still iterating */
  int nactive = B;
  if (p->per_sample) {
    IL_CHECK(il_arena_alloc_n(p->ws, (size_t)B, 1, (void **)&active));
    memset(active, 1, (size_t)B);
  }
  for (int k = 0;; k++) {
    for (size_t i = 0; i < len; i++) g[i] = zk[i] - fk[i];
    be->row_sqdist(B, n, g, NULL, rows);
    double local = 0;
    for (int b = 0; b < B; b++) local += rows[b];
    double err = p->per_sample ? sqrt(local) : il_problem_norm(p, local);
    int done = -1;
    if (p->per_sample) {
      for (int b = 0; b < B; b++)
        if (active[b] && sqrt(rows[b]) < p->tol) { active[b] = 0; nactive--; }
      done = nactive == 0;
    }
    if (il_stop_judge(&stop, p, err, done, k, res)) break;
    il_best_offer(&best, p, zk, rows, err, k);
    if (k == p->max_iter) break;

    il_real *znext, *fnext, *linnext = NULL;
    if (p->saved) {
      newton_step *t = &st->tape[k];
      IL_CHECK_GOTO(s, il_arena_alloc_n(p->saved, (size_t)B * nn, sizeof *lu, (void **)&lu), out);
      IL_CHECK_GOTO(s, il_arena_alloc_n(p->saved, len, sizeof *ipiv, (void **)&ipiv), out);
      IL_CHECK_GOTO(s, il_arena_alloc_n(p->saved, len, sizeof *d, (void **)&d), out);
      IL_CHECK_GOTO(s, il_arena_alloc_n(p->saved, (size_t)B, sizeof *alpha, (void **)&alpha), out);
      *t = (newton_step){.z = zk, .f = fk, .lin = link, .lu = lu, .d = d, .ipiv = ipiv, .alpha = alpha};
      IL_CHECK_GOTO(s, il_arena_alloc_n(zs, len, sizeof *znext, (void **)&znext), out);
      IL_CHECK_GOTO(s, il_arena_alloc_n(zs, len, sizeof *fnext, (void **)&fnext), out);
      if (ld) IL_CHECK_GOTO(s, il_arena_alloc_n(zs, (size_t)B * ld, sizeof *linnext, (void **)&linnext), out);
    } else { /* two sets of buffers, alternating */
      znext = zbuf[cur ^ 1];
      fnext = fbuf[cur ^ 1];
      linnext = lbuf[cur ^ 1];
    }
    if (p->diag && link) { /* |a| at the Jacobian's point: cosh(a) overflows float32 past 89.4 (--sech2 seed) */
      double mx = isnan(res->preact_max) ? 0 : res->preact_max;
      for (size_t i = 0; i < (size_t)B * ld; i++) mx = fabs((double)link[i]) > mx ? fabs((double)link[i]) : mx;
      res->preact_max = mx;
    }
    IL_CHECK_GOTO(s, c->ops->jac_g(c, B, zk, fk, link, lu, p->ws), out);
    if (p->diag) be->norm_inf_batched(B, n, lu, anorm);
    IL_CHECK_GOTO(s, be->lu_factor_batched(B, n, lu, ipiv, info), out);
    if (p->diag) IL_CHECK_GOTO(s, track_cond(be, B, n, lu, info, anorm, rcond, res), out);
    memcpy(d, g, len * sizeof *d);
    IL_CHECK_GOTO(s, be->lu_solve_batched(0, B, n, lu, ipiv, d), out); /* d = J^{-1} g */
    for (int b = 0; b < B; b++) alpha[b] = (il_real)(active && !active[b] ? 0 : 1); /* converged rows stay */
    for (int b = 0; b < B; b++)
      for (int j = 0; j < n; j++) znext[(size_t)b * n + j] = zk[(size_t)b * n + j] - alpha[b] * d[(size_t)b * n + j];
    IL_CHECK_GOTO(s, c->ops->map(c, B, p->x, znext, fnext, linnext, p->ws), out);
    if (st->line_search) {
      /* Armijo on phi = ||g||^2 / 2 along the Newton direction, where phi'(0) = -||g||^2:
       * accept a row when ||g(z - a d)||^2 <= (1 - 2 c1 a) ||g(z)||^2, else halve a (per row). */
      for (int bt = 0;; bt++) {
        int nfail = 0;
        for (int b = 0; b < B; b++) {
          const il_real *zr = znext + (size_t)b * n, *fr = fnext + (size_t)b * n;
          double tr = 0;
          for (int j = 0; j < n; j++) { double e = (double)zr[j] - (double)fr[j]; tr += e * e; }
          trows[b] = tr;
        }
        for (int b = 0; b < B; b++) {
          const double a = alpha[b];
          if (a == 0 || trows[b] <= (1 - 2 * st->c1 * a) * rows[b]) continue;
          if (bt == st->ls_max) continue; /* out of halvings: keep the smallest step tried */
          alpha[b] = (il_real)(a * 0.5);
          for (int j = 0; j < n; j++)
            znext[(size_t)b * n + j] = zk[(size_t)b * n + j] - alpha[b] * d[(size_t)b * n + j];
          nfail++;
        }
        if (!nfail) break;
        IL_CHECK_GOTO(s, c->ops->map(c, B, p->x, znext, fnext, linnext, p->ws), out);
        st->ls_maps++;
      }
    }
    cur ^= 1;
    zk = znext;
    fk = fnext;
    link = linnext;
    res->iters = k + 1;
    st->K = k + 1;
  }
  if (p->keep && res->iters > 0) {
    st->kept_lu = p->saved ? st->tape[res->iters - 1].lu : lu;
    st->kept_ipiv = p->saved ? st->tape[res->iters - 1].ipiv : ipiv;
  }
  /* inclusive: the seed zeroes rows with norm > tol */
  if (il_solve_finish(&best, p, zk, rows, row_res, 1, z, res)) { /* the last LU belongs to another point */
    st->kept_lu = NULL;
    st->kept_ipiv = NULL;
  }
out:
  il_arena_rewind(p->ws, m);
  return s;
}

/* Reverse of z_{k+1} = z_k - a_k d_k, d_k = J_k^{-1} g_k, g_k = z_k - f(z_k), J_k = I - df/dz(z_k),
 * with the per-row step lengths a_k held constant (they are piecewise constant in z).
 * With u = dL/dz_{k+1} and w = -J_k^{-T} (a_k u) (the cotangent of g_k):
 *   dL/dz_k = u + w + (df/dz)^T (-w) + grad_z[w^T (df/dz) d_k]
 * and the same (df/dx, df/dtheta) terms go to dx and dtheta. Finally z_0 = f(0; x).
 * The first step (in the forward's numbering) whose cotangent became non-finite is
 * recorded for NaN attribution. */
static il_status newton_unroll_backward(void *state, const il_problem *p, const il_real *dz, il_real *dx,
                                        il_real *dtheta) {
  newton_state *st = state;
  const il_cell *c = p->cell;
  const il_backend *be = c->be;
  const int B = p->B, n = c->n;
  const size_t len = (size_t)B * n;
  if (!st->z0 || (st->K > 0 && !st->tape))
    return IL_ERR(IL_ERR_INTERNAL, "newton unroll backward: no tape (forward ran without saving)");
  il_arena_mark m = il_arena_get_mark(p->ws);
  il_real *u, *w, *nw, *un, *zero;
  IL_CHECK(il_arena_calloc(p->ws, len, sizeof *u, (void **)&u));
  IL_CHECK(il_arena_calloc(p->ws, len, sizeof *w, (void **)&w));
  IL_CHECK(il_arena_calloc(p->ws, len, sizeof *nw, (void **)&nw));
  IL_CHECK(il_arena_calloc(p->ws, len, sizeof *un, (void **)&un));
  IL_CHECK(il_arena_calloc(p->ws, len, sizeof *zero, (void **)&zero));
  memcpy(u, dz, len * sizeof *u);
  st->nan_step = -1;
  for (int k = st->K - 1; k >= 0; k--) {
    const newton_step *t = &st->tape[k];
    for (int b = 0; b < B; b++)
      for (int j = 0; j < n; j++) w[(size_t)b * n + j] = t->alpha[b] * u[(size_t)b * n + j];
    IL_CHECK(be->lu_solve_batched(1, B, n, t->lu, t->ipiv, w)); /* w = J^{-T} (a u) */
    for (size_t i = 0; i < len; i++) { nw[i] = w[i]; w[i] = -w[i]; }
    IL_CHECK(c->ops->vjp(c, B, t->z, t->f, t->lin, nw, un, dx, dtheta, p->ws)); /* un = (df/dz)^T (-w) */
    IL_CHECK(c->ops->jvp_vjp(c, B, t->z, t->f, t->lin, t->d, w, un, dx, dtheta, p->ws));
    for (size_t i = 0; i < len; i++) u[i] += w[i] + un[i];
    if (st->nan_step < 0 && !be->all_finite(len, u)) st->nan_step = k;
  }
  IL_CHECK(c->ops->vjp(c, B, zero, st->z0, NULL, u, NULL, dx, dtheta, p->ws));
  il_arena_rewind(p->ws, m);
  return IL_OK;
}

static il_status newton_last_lu(void *state, const il_real **lu, const int **ipiv) {
  newton_state *st = state;
  if (!st->kept_lu) return IL_ERR_UNSUPPORTED; /* no step taken or not kept: caller factors itself */
  *lu = st->kept_lu;
  *ipiv = st->kept_ipiv;
  return IL_OK;
}

static int newton_nan_step(void *state) { return ((newton_state *)state)->nan_step; }

const il_solver_ops il_solver_newton_ops = {
    .name = "newton",
    .summary = "exact Newton with per-sample Jacobian and batched LU, from z = f(0)",
    .option_keys = "",
    .default_max_iter = 40,
    .zero_default = 1,
    .per_sample_ok = 1,
    .create = newton_create,
    .solve = newton_solve,
    .unroll_backward = newton_unroll_backward,
    .unroll_nan_step = newton_nan_step,
    .last_lu = newton_last_lu,
    .destroy = newton_destroy,
};

const il_solver_ops il_solver_newton_ls_ops = {
    .name = "newton-ls",
    .summary = "Newton with a per-row backtracking Armijo line search on ||g|| (options ls-c1, ls-max)",
    .option_keys = "ls-c1,ls-max",
    .default_max_iter = 40,
    .zero_default = 1,
    .per_sample_ok = 1,
    .create = newton_ls_create,
    .solve = newton_solve,
    .unroll_backward = newton_unroll_backward,
    .unroll_nan_step = newton_nan_step,
    .last_lu = newton_last_lu,
    .destroy = newton_destroy,
};
