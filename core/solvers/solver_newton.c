/* core/solvers/solver_newton.c: Newton on g(z) = z - f(z), plain (`newton`, as
 * the seed's TanhNewtonLayer) or protected by a backtracking Armijo line search
 * on ||g|| (`newton-ls`, the seed's "protected update"). z_0 = f(0) (tanh(x)
 * for the tanh cell), then z_{k+1} = z_k - alpha_k J_k^{-1} g(z_k) with the
 * per-sample Jacobian J_k = I - df/dz factored by batched LU. Stops when ||g||_F
 * of the batch < tol; the count is Newton steps. The tape keeps z_k, f(z_k),
 * the LU of J_k, the step d_k and the per-row step lengths: memory grows as
 * K * B * n^2, as the seed's autograd graph does.
 * A warm start (p->z0) replaces f(0) and is a constant for the backward.
 * Options (newton-ls): ls-c1 (Armijo constant, default 1e-4), ls-max (halvings, default 10). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "il_solver.h"

typedef struct newton_step {   /* host record of space tensors */
  il_real *z, *f, *lin, *d;    /* (B,n), (B,n), (B,lin_dim) or NULL, (B,n) */
  il_lu lu;                    /* J_k's factors */
  il_real *alpha;              /* (B) step length per row: 1, a line-search fraction, or 0 (frozen row) */
} newton_step;

typedef struct newton_state {
  int line_search;
  double c1;
  int ls_max;
  newton_step *tape; /* K steps of the last solve with p->saved (host, in p->hsaved) */
  il_real *z0;       /* f(0), the start; NULL with a warm start (a constant for the backward) */
  int have_start;
  int K;
  il_lu kept;        /* last LU, in p->keep */
  int kept_ok;
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
static il_status track_cond(const il_backend *be, const il_lu *lu, const int *info, const double *anorm,
                            double *rcond, il_solve_result *res) {
  IL_CHECK(IL_BE(be, lu_rcond, lu, anorm, rcond)); /* sync point: diagnostics */
  for (int b = 0; b < lu->B; b++) {
    double cnd = info[b] > 0 ? INFINITY : 1.0 / rcond[b];
    if (isnan(res->cond_max) || cnd > res->cond_max) res->cond_max = cnd;
  }
  return IL_OK;
}

#define R(count, T) il_ws_round((size_t)(count) * sizeof(T))
static size_t newton_ws_bytes(void *state, const il_cell *c, int B, int max_iter, int taped) {
  (void)state, (void)max_iter;
  const size_t len = (size_t)B * c->n, ld = (size_t)B * (c->lin_dim ? c->lin_dim : c->n);
  size_t lu_a, lu_p;
  c->be->ops->lu_layout(c->be->ctx, B, c->n, &lu_a, &lu_p);
  size_t solve = 3 * R(len, il_real) /* g, zero, best */ + R(B, unsigned char) /* best's row mask */;
  if (!taped) solve += 3 * R(len, il_real) + R(ld, il_real) + R(B, il_real) + il_ws_round(lu_a) + il_ws_round(lu_p);
  const size_t back = 5 * R(len, il_real);
  return (solve > back ? solve : back) + c->ops->ws_bytes(c, B);
}

/* znext = zk - alpha .* d, per row (alpha in the space) */
static il_status newton_step_to(const il_backend *be, int B, int n, const il_real *alpha, const il_real *d,
                                const il_real *zk, il_real *znext) {
  return IL_BE(be, row_lincomb, B, n, -1, alpha, d, 1, zk, znext);
}

/* Armijo on phi = ||g||^2 / 2 along the Newton direction, where phi'(0) = -||g||^2:
 * accept a row when ||g(z - a d)||^2 <= (1 - 2 c1 a) ||g(z)||^2, else halve a (per row).
 * rows (host): ||g(z)||^2; halpha (host) and alpha (space): the step lengths, updated. */
static il_status line_search(newton_state *st, const il_problem *p, const il_real *zk, const il_real *d,
                             const double *rows, double *trows, il_real *halpha, il_real *alpha, il_real *znext,
                             il_real *fnext, il_real *linnext) {
  const il_cell *c = p->cell;
  const il_backend *be = p->be;
  const int B = p->B, n = c->n;
  for (int bt = 0;; bt++) {
    int nfail = 0;
    IL_CHECK(IL_BE(be, row_sqdist, B, n, znext, fnext, trows)); /* sync point: the line search */
    for (int b = 0; b < B; b++) {
      const double a = halpha[b];
      if (a == 0 || trows[b] <= (1 - 2 * st->c1 * a) * rows[b]) continue;
      if (bt == st->ls_max) continue; /* out of halvings: keep the smallest step tried */
      halpha[b] = (il_real)(a * 0.5);
      nfail++;
    }
    if (!nfail) return IL_OK;
    /* rows whose step did not change get the same values again */
    IL_CHECK(il_upload(be, alpha, halpha, (size_t)B));
    IL_CHECK(newton_step_to(be, B, n, alpha, d, zk, znext));
    IL_CHECK(il_cell_map(c, B, p->x, znext, fnext, linnext, p->ws, NULL));
    st->ls_maps++;
  }
}

static il_status newton_solve(void *state, const il_problem *p, il_real *z, double *row_res,
                              il_solve_result *res) {
  newton_state *st = state;
  const il_cell *c = p->cell;
  const il_backend *be = p->be;
  const int B = p->B, n = c->n;
  /* the cell's linearisation state, or with diagnostics at least the pre-activation (tanh: n per row) */
  const int ld = c->lin_dim ? c->lin_dim : (p->diag ? n : 0);
  const size_t len = (size_t)B * n;
  il_marks m = il_marks_get(p->ws, p->hws);
  il_status s = IL_OK;
  il_real *zk, *fk, *link = NULL, *g, *d = NULL, *zero, *alpha = NULL, *halpha;
  il_lu lu = {0};
  int *info;
  double *rows, *trows, *anorm = NULL, *rcond = NULL, *frows = NULL; /* frows: ||f_b||^2 with stop_relf */
  il_stop stop;
  il_best best;

  il_stop_begin(&stop, res);
  st->tape = NULL;
  st->K = 0;
  st->kept_ok = 0;
  st->ls_maps = 0;
  il_arena *zs = p->saved ? p->saved : p->ws; /* where iterates live */
  IL_CHECK(il_arena_calloc(p->ws, len, sizeof *g, (void **)&g));
  IL_CHECK(il_arena_calloc(p->ws, len, sizeof *zero, (void **)&zero));
  IL_CHECK(il_arena_calloc(p->hws, (size_t)B, sizeof *info, (void **)&info));
  IL_CHECK(il_arena_calloc(p->hws, (size_t)B, sizeof *rows, (void **)&rows));
  IL_CHECK(il_arena_calloc(p->hws, (size_t)B, sizeof *trows, (void **)&trows));
  if (p->stop_relf) IL_CHECK(il_arena_calloc(p->hws, (size_t)B, sizeof *frows, (void **)&frows));
  IL_CHECK(il_arena_calloc(p->hws, (size_t)B, sizeof *halpha, (void **)&halpha));
  if (p->diag) {
    IL_CHECK(il_arena_calloc(p->hws, (size_t)B, sizeof *anorm, (void **)&anorm));
    IL_CHECK(il_arena_calloc(p->hws, (size_t)B, sizeof *rcond, (void **)&rcond));
  }
  IL_CHECK(il_best_init(&best, p));
  if (p->saved) IL_CHECK(il_arena_calloc(p->hsaved, (size_t)p->max_iter, sizeof *st->tape, (void **)&st->tape));
  if (!p->saved) { /* one factor buffer and one step, reused; the LU is kept for implicit backward when asked */
    IL_CHECK(il_lu_alloc(be, p->keep ? p->keep : p->ws, B, n, &lu));
    IL_CHECK(il_arena_calloc(p->ws, len, sizeof *d, (void **)&d));
    IL_CHECK(il_arena_calloc(p->ws, (size_t)B, sizeof *alpha, (void **)&alpha));
  }
  /* z_0 = f(0) (or the warm start), then f(z_0) */
  IL_CHECK(il_arena_calloc(zs, len, sizeof *zk, (void **)&zk));
  IL_CHECK(il_arena_calloc(zs, len, sizeof *fk, (void **)&fk));
  if (ld) IL_CHECK(il_arena_calloc(zs, (size_t)B * ld, sizeof *link, (void **)&link));
  if (p->z0) {
    IL_CHECK(il_copy(be, zk, p->z0, len));
    st->z0 = NULL;
  } else {
    IL_CHECK(il_cell_map(c, B, p->x, zero, zk, link, p->ws, NULL));
    st->z0 = zk;
  }
  st->have_start = 1;
  IL_CHECK(il_cell_map(c, B, p->x, zk, fk, link, p->ws, NULL));
  il_real *zbuf[2] = {zk, NULL}, *fbuf[2] = {fk, NULL}, *lbuf[2] = {link, NULL};
  int cur = 0;
  if (!p->saved) {
    IL_CHECK(il_arena_alloc_n(p->ws, len, sizeof *zk, (void **)&zbuf[1]));
    IL_CHECK(il_arena_alloc_n(p->ws, len, sizeof *fk, (void **)&fbuf[1]));
    if (ld) IL_CHECK(il_arena_alloc_n(p->ws, (size_t)B * ld, sizeof *link, (void **)&lbuf[1]));
  }

  unsigned char *active = NULL; /* per-sample (host): rows still iterating */
  int nactive = B;
  if (p->per_sample) {
    IL_CHECK(il_arena_alloc_n(p->hws, (size_t)B, 1, (void **)&active));
    memset(active, 1, (size_t)B);
  }
  for (int k = 0;; k++) {
    IL_CHECK_GOTO(s, IL_BE(be, lincomb, len, 1, zk, -1, fk, g), out); /* g = z - f */
    IL_CHECK_GOTO(s, IL_BE(be, row_sqdist, B, n, g, NULL, rows), out); /* sync point: the stopping test */
    if (frows) IL_CHECK_GOTO(s, IL_BE(be, row_sqdist, B, n, fk, NULL, frows), out);
    /* per-sample: converged rows stay put, so every row counts */
    double err = p->per_sample ? il_stop_local(p, rows, frows, NULL) : il_stop_norm(p, rows, frows);
    int done = -1;
    if (p->per_sample) {
      for (int b = 0; b < B; b++)
        if (active[b] && il_stop_row(p, rows[b], frows ? frows[b] : 0) < p->tol) { active[b] = 0; nactive--; }
      done = nactive == 0;
    }
    if (il_stop_judge(&stop, p, err, done, k, res)) break;
    IL_CHECK_GOTO(s, il_best_offer(&best, p, zk, rows, frows, err, k), out);
    if (k == p->max_iter) break;

    il_real *znext, *fnext, *linnext = NULL;
    il_lu *luk = &lu;
    if (p->saved) {
      newton_step *t = &st->tape[k];
      *t = (newton_step){.z = zk, .f = fk, .lin = link};
      IL_CHECK_GOTO(s, il_lu_alloc(be, p->saved, B, n, &t->lu), out);
      IL_CHECK_GOTO(s, il_arena_alloc_n(p->saved, len, sizeof *d, (void **)&t->d), out);
      IL_CHECK_GOTO(s, il_arena_alloc_n(p->saved, (size_t)B, sizeof *alpha, (void **)&t->alpha), out);
      luk = &t->lu;
      d = t->d;
      alpha = t->alpha;
      IL_CHECK_GOTO(s, il_arena_alloc_n(zs, len, sizeof *znext, (void **)&znext), out);
      IL_CHECK_GOTO(s, il_arena_alloc_n(zs, len, sizeof *fnext, (void **)&fnext), out);
      if (ld) IL_CHECK_GOTO(s, il_arena_alloc_n(zs, (size_t)B * ld, sizeof *linnext, (void **)&linnext), out);
    } else { /* two sets of buffers, alternating */
      znext = zbuf[cur ^ 1];
      fnext = fbuf[cur ^ 1];
      linnext = lbuf[cur ^ 1];
    }
    if (p->diag && link) { /* |a| at the Jacobian's point: cosh(a) overflows float32 past 89.4 (--sech2 seed) */
      double mx = isnan(res->preact_max) ? 0 : res->preact_max, am;
      IL_CHECK_GOTO(s, IL_BE(be, absmax, (size_t)B * ld, link, &am), out); /* sync point: diagnostics */
      res->preact_max = am > mx ? am : mx;
    }
    IL_CHECK_GOTO(s, il_cell_jac_g(c, B, zk, fk, link, luk, p->ws), out);
    if (p->diag) IL_CHECK_GOTO(s, IL_BE(be, lu_norm_inf, luk, anorm), out);
    IL_CHECK_GOTO(s, il_lu_factor(be, luk, info), out); /* sync point: LU info */
    if (p->diag) IL_CHECK_GOTO(s, track_cond(be, luk, info, anorm, rcond, res), out);
    IL_CHECK_GOTO(s, il_copy(be, d, g, len), out);
    IL_CHECK_GOTO(s, il_lu_solve(be, 0, luk, d), out); /* d = J^{-1} g */
    for (int b = 0; b < B; b++) halpha[b] = (il_real)(active && !active[b] ? 0 : 1); /* converged rows stay */
    IL_CHECK_GOTO(s, il_upload(be, alpha, halpha, (size_t)B), out);
    IL_CHECK_GOTO(s, newton_step_to(be, B, n, alpha, d, zk, znext), out);
    IL_CHECK_GOTO(s, il_cell_map(c, B, p->x, znext, fnext, linnext, p->ws, NULL), out);
    if (st->line_search)
      IL_CHECK_GOTO(s, line_search(st, p, zk, d, rows, trows, halpha, alpha, znext, fnext, linnext), out);
    cur ^= 1;
    zk = znext;
    fk = fnext;
    link = linnext;
    res->iters = k + 1;
    st->K = k + 1;
  }
  if (p->keep && res->iters > 0) {
    st->kept = p->saved ? st->tape[res->iters - 1].lu : lu;
    st->kept_ok = 1;
  }
  /* inclusive: the seed zeroes rows with norm > tol */
  int restored = 0;
  IL_CHECK_GOTO(s, il_solve_finish(&best, p, zk, rows, frows, row_res, 1, z, res, &restored), out);
  if (restored) st->kept_ok = 0; /* the last LU belongs to another point */
out:
  il_marks_rewind(p->ws, p->hws, m);
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
  const il_backend *be = p->be;
  const int B = p->B, n = c->n;
  const size_t len = (size_t)B * n;
  if (!st->have_start || (st->K > 0 && !st->tape))
    return IL_ERR(IL_ERR_INTERNAL, "newton unroll backward: no tape (forward ran without saving)");
  il_arena_mark m = il_arena_get_mark(p->ws);
  il_real *u, *w, *nw, *un, *zero;
  IL_CHECK(il_arena_calloc(p->ws, len, sizeof *u, (void **)&u));
  IL_CHECK(il_arena_calloc(p->ws, len, sizeof *w, (void **)&w));
  IL_CHECK(il_arena_calloc(p->ws, len, sizeof *nw, (void **)&nw));
  IL_CHECK(il_arena_calloc(p->ws, len, sizeof *un, (void **)&un));
  IL_CHECK(il_arena_calloc(p->ws, len, sizeof *zero, (void **)&zero));
  IL_CHECK(il_copy(be, u, dz, len));
  st->nan_step = -1;
  for (int k = st->K - 1; k >= 0; k--) {
    const newton_step *t = &st->tape[k];
    IL_CHECK(il_trace_vec(p, u, st->K - k)); /* --trace: dL/dz_{k+1}, entering replayed step K - k */
    IL_CHECK(IL_BE(be, row_lincomb, B, n, 1, t->alpha, u, 0, NULL, w)); /* w = a u */
    IL_CHECK(il_lu_solve(be, 1, &t->lu, w));                        /* w = J^{-T} (a u) */
    IL_CHECK(il_copy(be, nw, w, len));
    IL_CHECK(IL_BE(be, axpby, len, -1, w, 0, w));
    IL_CHECK(il_cell_vjp(c, B, t->z, t->f, t->lin, nw, un, dx, dtheta, p->ws)); /* un = (df/dz)^T (-w) */
    IL_CHECK(il_cell_jvp_vjp(c, B, t->z, t->f, t->lin, t->d, w, un, dx, dtheta, p->ws));
    IL_CHECK(IL_BE(be, lincomb, len, 1, w, 1, un, nw)); /* u += w + un */
    IL_CHECK(IL_BE(be, axpby, len, 1, nw, 1, u));
    if (st->nan_step < 0) {
      int fin;
      IL_CHECK(IL_BE(be, all_finite, len, u, &fin)); /* sync point: NaN attribution */
      if (!fin) st->nan_step = k;
    }
  }
  if (st->z0) IL_CHECK(il_cell_vjp(c, B, zero, st->z0, NULL, u, NULL, dx, dtheta, p->ws));
  il_arena_rewind(p->ws, m);
  return IL_OK;
}

static il_status newton_last_lu(void *state, const il_lu **lu) {
  newton_state *st = state;
  if (!st->kept_ok) return IL_ERR_UNSUPPORTED; /* no step taken or not kept: caller factors itself */
  *lu = &st->kept;
  return IL_OK;
}

static int newton_nan_step(void *state) { return ((newton_state *)state)->nan_step; }

/* The cold start: z = f(0) */
static il_status newton_start(void *state, const il_problem *p, il_real *z) {
  (void)state;
  const il_cell *c = p->cell;
  const size_t len = (size_t)p->B * c->n;
  il_marks m = il_marks_get(p->ws, p->hws);
  il_real *zero, *lin = NULL;
  IL_CHECK(il_arena_calloc(p->ws, len, sizeof *zero, (void **)&zero));
  if (c->lin_dim) IL_CHECK(il_arena_alloc_n(p->ws, (size_t)p->B * c->lin_dim, sizeof *lin, (void **)&lin));
  const il_status s = il_cell_map(c, p->B, p->x, zero, z, lin, p->ws, NULL);
  il_marks_rewind(p->ws, p->hws, m);
  return s;
}

const il_solver_ops il_solver_newton_ops = {
    .name = "newton",
    .summary = "exact Newton with per-sample Jacobian and batched LU, from z = f(0)",
    .default_max_iter = 40,
    .zero_default = 1,
    .per_sample_ok = 1,
    .create = newton_create,
    .ws_bytes = newton_ws_bytes,
    .solve = newton_solve,
    .unroll_backward = newton_unroll_backward,
    .unroll_nan_step = newton_nan_step,
    .last_lu = newton_last_lu,
    .destroy = newton_destroy,
    .start = newton_start,
};

static const il_option_decl newton_ls_options[] = {
    {"ls-c1", "C1", "Armijo sufficient-decrease constant in [1e-12, 0.49]", "1e-4", 1, 0},
    {"ls-max", "N", "step halvings per Newton step, 1..60", "10", 1, 0},
    {0},
};

const il_solver_ops il_solver_newton_ls_ops = {
    .name = "newton-ls",
    .summary = "Newton with a per-row backtracking Armijo line search on ||g|| (options ls-c1, ls-max)",
    .options = newton_ls_options,
    .default_max_iter = 40,
    .zero_default = 1,
    .per_sample_ok = 1,
    .create = newton_ls_create,
    .ws_bytes = newton_ws_bytes,
    .solve = newton_solve,
    .unroll_backward = newton_unroll_backward,
    .unroll_nan_step = newton_nan_step,
    .last_lu = newton_last_lu,
    .destroy = newton_destroy,
    .start = newton_start,
};
