/* core/solvers/solver_broyden.c: limited-memory "good" Broyden on g(z) = z - f(z),
 * from z = 0 with the inverse Jacobian estimate H_0 = I (the first step is a
 * fixed-point step). Each sample keeps H = I + sum_i u_i v_i^T, updated by
 * Sherman-Morrison from the good Broyden update of J:
 *   s = z_{k+1} - z_k, y = g_{k+1} - g_k,
 *   H <- H + (s - H y) (s^T H) / (s^T H y),  so u = (s - H y) / (s^T H y), v = H^T s.
 * A sample whose s^T H y vanishes skips its update. When the memory (m pairs)
 * is full it restarts from H = I: overwriting the oldest pair, as some codes do,
 * would leave later pairs built on an H that no longer exists.
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

/* Host scratch of one apply: the (B, q) dot products and their float copies. */
typedef struct bro_tmp {
  double *dots;     /* host (B, m) */
  il_real *hcoef;   /* host (B, m) */
  il_real *coef;    /* space (B, m) */
  const il_real **ptr; /* host (2m) slot pointers */
} bro_tmp;

/* out_b = v_b + sum_{i<q} P_i,b (Q_i,b . v_b) per row: H v with (P, Q) = (U, V), H^T v with (V, U). */
static il_status apply(const il_backend *be, int B, int n, int q, size_t len, const il_real *P, const il_real *Q,
                       const il_real *v, il_real *out, bro_tmp *t) {
  IL_CHECK(il_copy(be, out, v, len));
  if (q == 0) return IL_OK;
  for (int i = 0; i < q; i++) t->ptr[i] = Q + (size_t)i * len;
  IL_CHECK(IL_BE(be, row_dot, B, n, q, t->ptr, v, t->dots)); /* sync point: coefficients */
  for (size_t i = 0; i < (size_t)B * q; i++) t->hcoef[i] = (il_real)t->dots[i];
  IL_CHECK(il_upload(be, t->coef, t->hcoef, (size_t)B * q));
  for (int i = 0; i < q; i++) t->ptr[i] = P + (size_t)i * len;
  return IL_BE(be, row_combine, B, n, q, t->ptr, t->coef, 1, out);
}

#define R(count, T) il_ws_round((size_t)(count) * sizeof(T))
static size_t broyden_ws_bytes(void *state, const il_cell *c, int B, int max_iter, int taped) {
  (void)max_iter, (void)taped;
  const int m = ((broyden_state *)state)->m;
  const size_t len = (size_t)B * c->n;
  return 2 * R(len * m, il_real) + 7 * R(len, il_real) + R((size_t)B * m, il_real) + 2 * R(B, il_real) +
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

static il_status broyden_solve(void *state, const il_problem *p, il_real *z, double *row_res,
                               il_solve_result *res) {
  const broyden_state *st = state;
  const il_cell *c = p->cell;
  const il_backend *be = p->be;
  const int B = p->B, n = c->n, m = st->m;
  const size_t len = (size_t)B * n;
  il_marks mk = il_marks_get(p->ws, p->hws);
  il_status s = IL_OK;
  il_real *U, *V, *zk, *f, *g, *gnew, *d, *hy, *r, *hr;
  unsigned char *bad, *hbad; /* rows that skip their update: space, host */
  double *rows, *den, *frows = NULL; /* frows: ||f_b||^2 with stop_relf */
  bro_tmp t;
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
  IL_CHECK(il_arena_alloc_n(p->ws, len, sizeof *hy, (void **)&hy));
  il_real *zt = NULL; /* broyden-ls: the trial iterate */
  if (st->ls) IL_CHECK(il_arena_alloc_n(p->ws, len, sizeof *zt, (void **)&zt));
  IL_CHECK(il_arena_alloc_n(p->ws, (size_t)B * m, sizeof *t.coef, (void **)&t.coef));
  IL_CHECK(il_arena_alloc_n(p->ws, (size_t)B, sizeof *r, (void **)&r));
  IL_CHECK(il_arena_alloc_n(p->ws, (size_t)B, 1, (void **)&bad));
  IL_CHECK(il_arena_alloc_n(p->hws, (size_t)B, sizeof *rows, (void **)&rows));
  IL_CHECK(il_arena_alloc_n(p->hws, (size_t)B, sizeof *den, (void **)&den));
  if (p->stop_relf) IL_CHECK(il_arena_alloc_n(p->hws, (size_t)B, sizeof *frows, (void **)&frows));
  IL_CHECK(il_arena_alloc_n(p->hws, (size_t)B, sizeof *hr, (void **)&hr));
  IL_CHECK(il_arena_alloc_n(p->hws, (size_t)B, 1, (void **)&hbad));
  IL_CHECK(il_arena_alloc_n(p->hws, (size_t)B * m, sizeof *t.dots, (void **)&t.dots));
  IL_CHECK(il_arena_alloc_n(p->hws, (size_t)B * m, sizeof *t.hcoef, (void **)&t.hcoef));
  IL_CHECK(il_arena_alloc_n(p->hws, (size_t)m, sizeof *t.ptr, (void **)&t.ptr));
  IL_CHECK(il_best_init(&best, p));
  if (p->z0) IL_CHECK(il_copy(be, zk, p->z0, len)); /* warm start */
  int q = 0;     /* pairs in memory */
  int fresh = 0; /* broyden-ls: the accepted trial left f, gnew and rows of zk */
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
    if (k > 0) { /* update H with s = d (the last step) and y = gnew - g */
      if (q == m) q = 0; /* restart */
      il_real *u = U + (size_t)q * len, *v = V + (size_t)q * len;
      IL_CHECK_GOTO(s, IL_BE(be, lincomb, len, 1, gnew, -1, g, g), out); /* y, in g's buffer */
      IL_CHECK_GOTO(s, apply(be, B, n, q, len, U, V, g, hy, &t), out); /* H y */
      IL_CHECK_GOTO(s, apply(be, B, n, q, len, V, U, d, v, &t), out);  /* H^T s */
      const il_real *vp = v;
      IL_CHECK_GOTO(s, IL_BE(be, row_dot, B, n, 1, &vp, g, den), out); /* sync point: s^T H y per row */
      int nbad = 0;
      for (int b = 0; b < B; b++) {
        hbad[b] = !(fabs(den[b]) > 1e-30) || !isfinite(den[b]); /* no usable curvature: leave this sample's H */
        nbad += hbad[b];
        hr[b] = hbad[b] ? 0 : (il_real)(1.0 / den[b]);
      }
      IL_CHECK_GOTO(s, IL_BE(be, lincomb, len, 1, d, -1, hy, u), out); /* u = (s - H y) / (s^T H y) */
      IL_CHECK_GOTO(s, il_upload(be, r, hr, (size_t)B), out);
      IL_CHECK_GOTO(s, IL_BE(be, row_lincomb, B, n, 1, r, u, 0, NULL, u), out);
      if (nbad) {
        IL_CHECK_GOTO(s, IL_BE(be, copy, IL_COPY_TO_SPACE, bad, hbad, (size_t)B), out);
        IL_CHECK_GOTO(s, IL_BE(be, row_fill, B, n, bad, 1, 0, u), out);
        IL_CHECK_GOTO(s, IL_BE(be, row_fill, B, n, bad, 1, 0, v), out);
      }
      q++;
    }
    if (k + 1 == p->max_iter) break;
    IL_CHECK_GOTO(s, il_copy(be, g, gnew, len), out);
    IL_CHECK_GOTO(s, apply(be, B, n, q, len, U, V, g, d, &t), out); /* d = H g; the step is -d */
    IL_CHECK_GOTO(s, IL_BE(be, axpby, len, -1, d, 0, d), out);
    if (st->ls) { /* z <- z + alpha d; d <- the step taken (TorchDEQ's delta_x), for the update */
      ls_trial lt = {.p = p, .zk = zk, .d = d, .zt = zt, .f = f, .g = gnew, .rows = rows};
      double alpha;
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
