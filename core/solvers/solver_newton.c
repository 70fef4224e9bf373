/* core/solvers/solver_newton.c: exact Newton on g(z) = z - f(z), as the seed's
 * TanhNewtonLayer: z_0 = f(0) (tanh(x) for the tanh cell), then
 * z_{k+1} = z_k - J_k^{-1} g(z_k) with the per-sample Jacobian J_k = I - df/dz
 * factored by batched LU. Stops when ||g||_F of the batch < tol; the count is
 * Newton steps. The tape keeps z_k, f(z_k), the LU of J_k and the step d_k:
 * memory grows as K * B * n^2, as the seed's autograd graph does. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "il_solver.h"

typedef struct newton_step {
  il_real *z, *f, *lu, *d; /* (B,n), (B,n), (B,n,n), (B,n) */
  int *ipiv;               /* (B,n) */
  unsigned char *moved;    /* per-sample stopping: (B) rows that took this step, or NULL */
} newton_step;

typedef struct newton_state {
  newton_step *tape; /* K steps of the last solve with p->saved */
  il_real *z0;       /* f(0), the start */
  int K;
  const il_real *kept_lu; /* last LU, in p->keep */
  const int *kept_ipiv;
} newton_state;

static il_status newton_create(il_options *opt, void **state) {
  newton_state *st = calloc(1, sizeof *st);
  if (!st) return IL_ERR(IL_ERR_NOMEM, "newton: cannot allocate state");
  *state = st;
  return IL_OK;
}

static void newton_destroy(void *state) { free(state); }

static il_status newton_solve(void *state, const il_problem *p, il_real *z, double *row_res,
                              il_solve_result *res) {
  newton_state *st = state;
  const il_cell *c = p->cell;
  const il_backend *be = c->be;
  const int B = p->B, n = c->n;
  const size_t len = (size_t)B * n, nn = (size_t)n * n;
  il_arena_mark m = il_arena_get_mark(p->ws);
  il_status s = IL_OK;
  il_real *zk, *fk, *g, *lu = NULL, *zero;
  int *ipiv = NULL, *info;
  double *rows;

  st->tape = NULL;
  st->K = 0;
  st->kept_lu = NULL;
  st->kept_ipiv = NULL;
  il_arena *zs = p->saved ? p->saved : p->ws; /* where iterates live */
  IL_CHECK(il_arena_calloc(p->ws, len, sizeof *g, (void **)&g));
  IL_CHECK(il_arena_calloc(p->ws, len, sizeof *zero, (void **)&zero));
  IL_CHECK(il_arena_calloc(p->ws, (size_t)B, sizeof *info, (void **)&info));
  IL_CHECK(il_arena_calloc(p->ws, (size_t)B, sizeof *rows, (void **)&rows));
  if (p->saved) IL_CHECK(il_arena_calloc(p->saved, (size_t)p->max_iter, sizeof *st->tape, (void **)&st->tape));
  if (!p->saved) { /* one factor buffer, reused; kept for implicit backward when asked */
    il_arena *la = p->keep ? p->keep : p->ws;
    IL_CHECK(il_arena_calloc(la, (size_t)B * nn, sizeof *lu, (void **)&lu));
    IL_CHECK(il_arena_calloc(la, len, sizeof *ipiv, (void **)&ipiv));
  }
  IL_CHECK(il_arena_calloc(zs, len, sizeof *zk, (void **)&zk));
  IL_CHECK(c->ops->map(c, B, p->x, zero, zk, NULL, p->ws)); /* z_0 = f(0) */
  st->z0 = zk;

  res->iters = 0;
  res->reason = IL_REASON_MAX_ITER;
  res->nonconverged_rows = 0;
  unsigned char *active = NULL; /* per-sample: rows still iterating */
  int nactive = B;
  if (p->per_sample) {
    IL_CHECK(il_arena_alloc_n(p->ws, (size_t)B, 1, (void **)&active));
    memset(active, 1, (size_t)B);
  }
  if (!p->saved) IL_CHECK(il_arena_calloc(p->ws, len, sizeof *fk, (void **)&fk));
  for (int k = 0;; k++) {
    if (p->saved) IL_CHECK_GOTO(s, il_arena_alloc_n(zs, len, sizeof *fk, (void **)&fk), out);
    IL_CHECK_GOTO(s, c->ops->map(c, B, p->x, zk, fk, NULL, p->ws), out);
    for (size_t i = 0; i < len; i++) g[i] = zk[i] - fk[i];
    be->row_sqdist(B, n, g, NULL, rows);
    double local = 0;
    for (int b = 0; b < B; b++) local += rows[b];
    double err = p->per_sample ? sqrt(local) : il_problem_norm(p, local);
    res->residual = err;
    if (!isfinite(err)) { res->reason = IL_REASON_NONFINITE; break; }
    if (p->per_sample) {
      for (int b = 0; b < B; b++)
        if (active[b] && sqrt(rows[b]) < p->tol) { active[b] = 0; nactive--; }
      if (nactive == 0) { res->reason = IL_REASON_CONVERGED; break; }
    } else if (err < p->tol) {
      res->reason = IL_REASON_CONVERGED;
      break;
    }
    if (k == p->max_iter) break;

    il_real *d;
    if (p->saved) {
      newton_step *t = &st->tape[k];
      IL_CHECK_GOTO(s, il_arena_alloc_n(p->saved, (size_t)B * nn, sizeof *lu, (void **)&lu), out);
      IL_CHECK_GOTO(s, il_arena_alloc_n(p->saved, len, sizeof *ipiv, (void **)&ipiv), out);
      IL_CHECK_GOTO(s, il_arena_alloc_n(p->saved, len, sizeof *d, (void **)&d), out);
      t->z = zk; t->f = fk; t->lu = lu; t->ipiv = ipiv; t->d = d; t->moved = NULL;
      if (p->per_sample) {
        IL_CHECK_GOTO(s, il_arena_alloc_n(p->saved, (size_t)B, 1, (void **)&t->moved), out);
        memcpy(t->moved, active, (size_t)B);
      }
    } else {
      d = g; /* solve in place */
    }
    IL_CHECK_GOTO(s, c->ops->jac_g(c, B, zk, fk, NULL, lu, p->ws), out);
    IL_CHECK_GOTO(s, be->lu_factor_batched(B, n, lu, ipiv, info), out);
    if (d != g) memcpy(d, g, len * sizeof *d);
    IL_CHECK_GOTO(s, be->lu_solve_batched(0, B, n, lu, ipiv, d), out); /* d = J^{-1} g */
    if (p->per_sample) /* converged rows stay where they are */
      for (int b = 0; b < B; b++)
        if (!active[b]) memset(d + (size_t)b * n, 0, (size_t)n * sizeof *d);
    il_real *znext;
    if (p->saved) IL_CHECK_GOTO(s, il_arena_alloc_n(zs, len, sizeof *znext, (void **)&znext), out);
    else znext = zk; /* update in place */
    for (size_t i = 0; i < len; i++) znext[i] = zk[i] - d[i];
    zk = znext;
    res->iters = k + 1;
    st->K = k + 1;
  }
  if (p->keep && res->iters > 0 && !p->saved) {
    st->kept_lu = lu;
    st->kept_ipiv = ipiv;
  } else if (p->keep && p->saved && res->iters > 0) {
    st->kept_lu = st->tape[res->iters - 1].lu;
    st->kept_ipiv = st->tape[res->iters - 1].ipiv;
  }
  for (int b = 0; b < B; b++) {
    double r = sqrt(rows[b]);
    if (row_res) row_res[b] = r;
    if (!(r <= p->tol)) res->nonconverged_rows++; /* the seed zeroes rows with norm > tol */
  }
  memcpy(z, zk, len * sizeof *z);
out:
  il_arena_rewind(p->ws, m);
  return s;
}

/* Reverse of z_{k+1} = z_k - d_k, d_k = J_k^{-1} g_k, g_k = z_k - f(z_k), J_k = I - df/dz(z_k).
 * With u = dL/dz_{k+1} and w = -J_k^{-T} u (the cotangent of g_k):
 *   dL/dz_k = u + w + (df/dz)^T (-w) + grad_z[w^T (df/dz) d_k]
 * and the same (df/dx, df/dtheta) terms go to dx and dtheta. Finally z_0 = f(0; x). */
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
  for (int k = st->K - 1; k >= 0; k--) {
    const newton_step *t = &st->tape[k];
    memcpy(w, u, len * sizeof *w);
    IL_CHECK(be->lu_solve_batched(1, B, n, t->lu, t->ipiv, w)); /* w = J^{-T} u */
    for (size_t i = 0; i < len; i++) { w[i] = -w[i]; nw[i] = -w[i]; }
    if (t->moved) /* a frozen row (d = 0) does not depend on this step's g or J */
      for (int b = 0; b < B; b++)
        if (!t->moved[b]) {
          memset(w + (size_t)b * n, 0, (size_t)n * sizeof *w);
          memset(nw + (size_t)b * n, 0, (size_t)n * sizeof *nw);
        }
    IL_CHECK(c->ops->vjp(c, B, t->z, t->f, NULL, nw, un, dx, dtheta, p->ws)); /* un = (df/dz)^T (-w) */
    IL_CHECK(c->ops->jvp_vjp(c, B, t->z, t->f, NULL, t->d, w, un, dx, dtheta, p->ws));
    for (size_t i = 0; i < len; i++) u[i] += w[i] + un[i];
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

const il_solver_ops il_solver_newton_ops = {
    .name = "newton",
    .summary = "exact Newton with per-sample Jacobian and batched LU, from z = f(0)",
    .default_max_iter = 40,
    .create = newton_create,
    .solve = newton_solve,
    .unroll_backward = newton_unroll_backward,
    .last_lu = newton_last_lu,
    .destroy = newton_destroy,
};
