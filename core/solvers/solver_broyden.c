/* core/solvers/solver_broyden.c: limited-memory "good" Broyden on g(z) = z - f(z),
 * from z = 0 with the inverse Jacobian estimate H_0 = I (the first step is a
 * fixed-point step). Each sample keeps H = I + sum_i u_i v_i^T, updated by
 * Sherman-Morrison from the good Broyden update of J:
 *   s = z_{k+1} - z_k, y = g_{k+1} - g_k,
 *   H <- H + (s - H y) (s^T H) / (s^T H y),  so u = (s - H y) / (s^T H y), v = H^T s.
 * A sample whose s^T H y vanishes skips its update. When the memory (m pairs)
 * is full it restarts from H = I: overwriting the oldest pair, as some codes do,
 * would leave later pairs built on an H that no longer exists.
 * One row_lowrank pass per iteration gives h = H g_new and v = H^T s. The step s was
 * alpha (-H g_old) (alpha = 1 without the line search), so H y = h + s / alpha and
 *   u = ((1 - 1/alpha) s - h) / (s.h + s.s / alpha),  next step -(h + (s.h) u),
 * needing only the dots s.h and s.s: one host round trip per iteration instead of the
 * textbook's three applies (docs/speed.md). After a restart H = I did not make s, so the
 * general formulas with y = g_new - g_old are used there.
 * Stops on ||g||_F of the batch; iterations are map evaluations (as for fp and
 * anderson); the output is the last z. Option: broyden-m (default 20). No tape.
 * Option broyden-ls: TorchDEQ's line search (broyden_solver ls=True, see line_search
 * below); then an iteration is one Broyden step, and its trial maps count as `map` events. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "il_solver.h"

typedef struct broyden_state {
  int m;
  int ls; /* broyden-ls: a line search along each step */
} broyden_state;

static il_status broyden_create(il_options *opt, void **state) {
  int m, ls;
  IL_CHECK(il_options_get_int(opt, "broyden-m", 20, 1, 1000, &m));
  IL_CHECK(il_options_get_int(opt, "broyden-ls", 0, 0, 1, &ls));
  broyden_state *st = malloc(sizeof *st);
  if (!st) return IL_ERR(IL_ERR_NOMEM, "broyden: cannot allocate state");
  st->m = m;
  st->ls = ls;
  *state = st;
  return IL_OK;
}

static void broyden_destroy(void *state) { free(state); }

#define R(count, T) il_ws_round((size_t)(count) * sizeof(T))
static size_t broyden_ws_bytes(void *state, const il_cell *c, int B, int max_iter, int taped) {
  (void)max_iter, (void)taped;
  const int m = ((broyden_state *)state)->m;
  const size_t len = (size_t)B * c->n;
  return 2 * R(len * m, il_real) + 6 * R(len, il_real) + R((size_t)B * 4, il_real) + R(B, il_real) +
         2 * R(B, unsigned char) /* bad, best's row mask */ + c->ops->ws_bytes(c, B) +
         (((broyden_state *)state)->ls ? R(len, il_real) : 0);
}

/* ---- broyden-ls: TorchDEQ's line search ----
 * As torchdeq/solver/broyden.py's line_search with scalar_search_armijo (from scipy, as
 * TorchDEQ has it): one scalar step length for the whole batch, on phi(a) = ||g(z + a d)||_F^2
 * of the global batch (summed over ranks, so every rank takes the same step), with
 * phi'(0) taken as -phi(0) (exact for a Newton direction up to the factor 2 TorchDEQ leaves
 * out), c1 = 1e-4, amin = 1e-2: a = 1 if it satisfies Armijo, else the quadratic
 * interpolant's minimiser and then cubic steps (each halved, as scipy's safeguard always
 * does here) while a > amin; no acceptable a: the full step a = 1. Kept from TorchDEQ: the
 * quadratic step itself is never tested, only the cubic ones; phi of a step equal to the
 * last one evaluated is reused; a non-finite residual counts as phi = inf. Left out: the
 * evaluation of phi at a quadratic step <= amin, which TorchDEQ makes but never uses.
 * Scalars are double here (float tensors in TorchDEQ). */
typedef struct ls_trial {
  const il_problem *p;
  const il_real *zk, *d; /* the iterate and the direction (B, n) */
  il_real *zt, *f, *g;   /* (B, n) out: z + a d, f there, g = zt - f */
  double *rows;          /* host (B) out: squared row residuals there */
  double a, phi;         /* the last step evaluated and its phi (a = 0: phi(0)) */
} ls_trial;

static il_status ls_phi(ls_trial *t, double a, double *phi) {
  if (a == t->a) { /* TorchDEQ's cache: the buffers hold this step already */
    *phi = t->phi;
    return IL_OK;
  }
  const il_problem *p = t->p;
  const il_backend *be = p->be;
  const int B = p->B, n = p->cell->n;
  const size_t len = (size_t)B * n;
  IL_CHECK(IL_BE(be, lincomb, len, 1, t->zk, (il_real)a, t->d, t->zt));
  IL_CHECK(il_cell_map(p->cell, B, p->x, t->zt, t->f, NULL, p->ws, NULL));
  IL_CHECK(IL_BE(be, lincomb, len, 1, t->zt, -1, t->f, t->g));
  IL_CHECK(IL_BE(be, row_sqdist, B, n, t->g, NULL, t->rows)); /* sync point: the line search's phi */
  double local = 0;
  for (int b = 0; b < B; b++) local += t->rows[b];
  const double sq = p->reduce.sum ? p->reduce.sum(p->reduce.ctx, local) : local;
  t->a = a;
  t->phi = *phi = isfinite(sq) ? sq : INFINITY;
  return IL_OK;
}

/* The step length *alpha along d from zk, whose squared batch residual is phi0. *fresh = 1
 * when t's buffers hold zk + alpha d and g there (the last trial was the accepted one). */
static il_status line_search(ls_trial *t, double phi0, double *alpha, int *fresh) {
  const double c1 = 1e-4, amin = 1e-2, dphi0 = -phi0;
  double a0 = 1, a1, phi_a0, phi_a1, phi_a2;
  t->a = 0;
  t->phi = phi0;
  *alpha = 1;
  IL_CHECK(ls_phi(t, a0, &phi_a0));
  if (!(phi_a0 <= phi0 + c1 * a0 * dphi0)) {
    a1 = -dphi0 * a0 * a0 / 2.0 / (phi_a0 - phi0 - dphi0 * a0);
    if (a1 > amin) IL_CHECK(ls_phi(t, a1, &phi_a1));
    for (int it = 0; a1 > amin && it < 64; it++) { /* a1 halves every pass: a few passes at most */
      const double fac = a0 * a0 * a1 * a1 * (a1 - a0);
      const double ta = (a0 * a0 * (phi_a1 - phi0 - dphi0 * a1) - a1 * a1 * (phi_a0 - phi0 - dphi0 * a0)) / fac;
      const double tb = (-a0 * a0 * a0 * (phi_a1 - phi0 - dphi0 * a1) + a1 * a1 * a1 * (phi_a0 - phi0 - dphi0 * a0)) /
                        fac;
      double a2 = (-tb + sqrt(fabs(tb * tb - 3 * ta * dphi0))) / (3.0 * ta);
      IL_CHECK(ls_phi(t, a2, &phi_a2));
      if (phi_a2 <= phi0 + c1 * a2 * dphi0) {
        *alpha = a2;
        break;
      }
      if ((a1 - a2) > a1 / 2.0 || (1 - a2 / a1) < 0.96) a2 = a1 / 2.0;
      a0 = a1;
      a1 = a2;
      phi_a0 = phi_a1;
      phi_a1 = phi_a2;
    }
  }
  *fresh = *alpha == t->a;
  return IL_OK;
}

/* Host scratch of one update: the rows' dots and coefficients. */
typedef struct bro_upd {
  double *dots;          /* host (B, 2) */
  il_real *hcoef, *coef; /* host, space (B, 4): u's two coefficients, then the step's two */
  unsigned char *hbad, *bad; /* host, space (B): rows without usable curvature */
} bro_upd;

/* From the dots (B, 2) = {s.a, s.b} per row and den_b = fd(dots): u = cu0 s + cu1 a (zero where
 * den is unusable) and the next step d = -(b + (s.b) u). X0/X1: u's terms, Y: b. */
static il_status bro_finish(const il_backend *be, int B, int n, const il_real *s_, const il_real *a,
                            const il_real *b_, double alpha, int general, il_real *u, il_real *v, il_real *d,
                            bro_upd *t) {
  int nbad = 0;
  for (int b = 0; b < B; b++) {
    const double sa = t->dots[2 * b], sb = t->dots[2 * b + 1];
    /* general (H = I after a restart, a = y): den = s.y, u = (s - y) / den.
     * fast (a = h = H g_new): den = s.h + s.s / alpha, u = ((1 - 1/alpha) s - h) / den; there
     * sb is s.s and the step's dot s.h is sa. */
    const double den = general ? sa : sa + sb / alpha;
    const int bad = !(fabs(den) > 1e-30) || !isfinite(den); /* no usable curvature: leave this sample's H */
    t->hbad[b] = (unsigned char)bad;
    nbad += bad;
    const double r = bad ? 0 : 1.0 / den;
    t->hcoef[2 * b] = (il_real)(general ? r : (1 - 1 / alpha) * r);
    t->hcoef[2 * b + 1] = (il_real)(-r);
    t->hcoef[2 * B + 2 * b] = -1;
    t->hcoef[2 * B + 2 * b + 1] = bad ? 0 : (il_real)(-(general ? sb : sa));
  }
  IL_CHECK(il_upload(be, t->coef, t->hcoef, (size_t)B * 4));
  const il_real *ut[2] = {s_, a}, *dt[2] = {b_, u};
  IL_CHECK(IL_BE(be, row_combine, B, n, 2, ut, t->coef, 0, u));
  if (nbad) {
    IL_CHECK(IL_BE(be, copy, IL_COPY_TO_SPACE, t->bad, t->hbad, (size_t)B));
    IL_CHECK(IL_BE(be, row_fill, B, n, t->bad, 1, 0, u));
    IL_CHECK(IL_BE(be, row_fill, B, n, t->bad, 1, 0, v));
  }
  return IL_BE(be, row_combine, B, n, 2, dt, t->coef + 2 * (size_t)B, 0, d);
}

static il_status broyden_solve(void *state, const il_problem *p, il_real *z, double *row_res,
                               il_solve_result *res) {
  const broyden_state *st = state;
  const il_cell *c = p->cell;
  const il_backend *be = p->be;
  const int B = p->B, n = c->n, m = st->m;
  const size_t len = (size_t)B * n;
  il_marks mk = il_marks_get(p->ws, p->hws);
  il_status s = IL_OK;
  il_real *U, *V, *zk, *f, *g, *gnew, *d, *h;
  double *rows, *frows = NULL; /* frows: ||f_b||^2 with stop_relf */
  bro_upd t;
  const il_real **uptr, **vptr; /* host (m): the pairs' slots */
  il_stop stop;
  il_best best;
  il_stop_begin(&stop, res);
  IL_CHECK(il_arena_alloc_n(p->ws, len * m, sizeof *U, (void **)&U));
  IL_CHECK(il_arena_alloc_n(p->ws, len * m, sizeof *V, (void **)&V));
  IL_CHECK(il_arena_calloc(p->ws, len, sizeof *zk, (void **)&zk));
  IL_CHECK(il_arena_alloc_n(p->ws, len, sizeof *f, (void **)&f));
  IL_CHECK(il_arena_alloc_n(p->ws, len, sizeof *g, (void **)&g));
  IL_CHECK(il_arena_alloc_n(p->ws, len, sizeof *gnew, (void **)&gnew));
  IL_CHECK(il_arena_alloc_n(p->ws, len, sizeof *d, (void **)&d));
  IL_CHECK(il_arena_alloc_n(p->ws, len, sizeof *h, (void **)&h));
  il_real *zt = NULL; /* broyden-ls: the trial iterate */
  if (st->ls) IL_CHECK(il_arena_alloc_n(p->ws, len, sizeof *zt, (void **)&zt));
  IL_CHECK(il_arena_alloc_n(p->ws, (size_t)B * 4, sizeof *t.coef, (void **)&t.coef));
  IL_CHECK(il_arena_alloc_n(p->ws, (size_t)B, 1, (void **)&t.bad));
  IL_CHECK(il_arena_alloc_n(p->hws, (size_t)B, sizeof *rows, (void **)&rows));
  if (p->stop_relf) IL_CHECK(il_arena_alloc_n(p->hws, (size_t)B, sizeof *frows, (void **)&frows));
  IL_CHECK(il_arena_alloc_n(p->hws, (size_t)B, 1, (void **)&t.hbad));
  IL_CHECK(il_arena_alloc_n(p->hws, (size_t)B * 2, sizeof *t.dots, (void **)&t.dots));
  IL_CHECK(il_arena_alloc_n(p->hws, (size_t)B * 4, sizeof *t.hcoef, (void **)&t.hcoef));
  IL_CHECK(il_arena_alloc_n(p->hws, (size_t)m, sizeof *uptr, (void **)&uptr));
  IL_CHECK(il_arena_alloc_n(p->hws, (size_t)m, sizeof *vptr, (void **)&vptr));
  for (int i = 0; i < m; i++) {
    uptr[i] = U + (size_t)i * len;
    vptr[i] = V + (size_t)i * len;
  }
  IL_CHECK(il_best_init(&best, p));
  if (p->z0) IL_CHECK(il_copy(be, zk, p->z0, len)); /* warm start */
  int q = 0;         /* pairs in memory */
  int fresh = 0;     /* broyden-ls: the accepted trial left f, gnew and rows of zk */
  double alpha = 1;  /* the last step's length along -H g (broyden-ls) */
  for (int k = 0;; k++) {
    if (!fresh) {
      IL_CHECK_GOTO(s, il_cell_map(c, B, p->x, zk, f, NULL, p->ws, NULL), out);
      IL_CHECK_GOTO(s, IL_BE(be, lincomb, len, 1, zk, -1, f, gnew), out); /* g = z - f */
      IL_CHECK_GOTO(s, IL_BE(be, row_sqdist, B, n, gnew, NULL, rows), out); /* sync point: the stopping test */
    }
    if (frows) IL_CHECK_GOTO(s, IL_BE(be, row_sqdist, B, n, f, NULL, frows), out);
    const double err = il_stop_norm(p, rows, frows);
    res->iters = k + 1;
    if (il_stop_check(&stop, p, err, k, res)) break;
    IL_CHECK_GOTO(s, il_best_offer(&best, p, zk, rows, frows, err, k), out);
    if (k + 1 == p->max_iter) break;
    /* d <- the next step -H' g_new, H' = H updated with s (in d) and y = g_new - g */
    if (k == 0) {
      IL_CHECK_GOTO(s, IL_BE(be, axpby, len, -1, gnew, 0, d), out);
    } else if (q < m) {
      il_real *u = U + (size_t)q * len, *v = V + (size_t)q * len;
      IL_CHECK_GOTO(s, IL_BE(be, row_lowrank, B, n, q, uptr, vptr, gnew, h, d, v), out); /* h = H g, v = H^T s */
      const il_real *sd[2] = {h, d};
      IL_CHECK_GOTO(s, IL_BE(be, row_dot, B, n, 2, sd, d, t.dots), out); /* sync point: s.h, s.s per row */
      IL_CHECK_GOTO(s, bro_finish(be, B, n, d, h, h, alpha, 0, u, v, d, &t), out);
      q++;
    } else { /* restart: H = I, one pair (u, v = s) */
      q = 0;
      il_real *u = U, *v = V;
      IL_CHECK_GOTO(s, il_copy(be, v, d, len), out);
      IL_CHECK_GOTO(s, IL_BE(be, lincomb, len, 1, gnew, -1, g, g), out); /* y, in g's buffer */
      const il_real *yg[2] = {g, gnew};
      IL_CHECK_GOTO(s, IL_BE(be, row_dot, B, n, 2, yg, d, t.dots), out); /* sync point: s.y, s.g per row */
      IL_CHECK_GOTO(s, bro_finish(be, B, n, d, g, gnew, alpha, 1, u, v, d, &t), out);
      q = 1;
    }
    if (q == m) IL_CHECK_GOTO(s, il_copy(be, g, gnew, len), out); /* the next update restarts: keep g */
    if (st->ls) { /* z <- z + alpha d; d <- the step taken (TorchDEQ's delta_x), for the update */
      ls_trial lt = {.p = p, .zk = zk, .d = d, .zt = zt, .f = f, .g = gnew, .rows = rows};
      IL_CHECK_GOTO(s, line_search(&lt, err * err, &alpha, &fresh), out);
      if (!fresh) IL_CHECK_GOTO(s, IL_BE(be, lincomb, len, 1, zk, (il_real)alpha, d, zt), out);
      IL_CHECK_GOTO(s, IL_BE(be, lincomb, len, 1, zt, -1, zk, d), out);
      IL_CHECK_GOTO(s, il_copy(be, zk, zt, len), out);
    } else {
      IL_CHECK_GOTO(s, IL_BE(be, axpby, len, 1, d, 1, zk), out);
    }
  }
  IL_CHECK_GOTO(s, il_solve_finish(&best, p, zk, rows, frows, row_res, 0, z, res, NULL), out);
out:
  il_marks_rewind(p->ws, p->hws, mk);
  return s;
}

static const il_option_decl broyden_options[] = {
    {"broyden-m", "M", "memory (rank-one updates kept before a restart), 1..1000", "20", 1, 0},
    {"broyden-ls", NULL, "a line search along each step, as TorchDEQ's ls=True (one Armijo step length for the "
                         "whole batch on ||g||^2; an iteration is then one step, its trial maps are map events)",
     NULL, 0, 0},
    {0},
};

const il_solver_ops il_solver_broyden_ops = {
    .name = "broyden",
    .summary = "limited-memory good Broyden (inverse update) from z = 0 (options broyden-m, broyden-ls)",
    .default_max_iter = 100,
    .options = broyden_options,
    .zero_default = 0,
    .per_sample_ok = 0,
    .create = broyden_create,
    .ws_bytes = broyden_ws_bytes,
    .solve = broyden_solve,
    .unroll_backward = NULL,
    .unroll_nan_step = NULL,
    .last_lu = NULL,
    .destroy = broyden_destroy,
};
