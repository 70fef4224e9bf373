/* core/solvers/solver_fp.c: (damped) fixed-point iteration
 * z <- (1 - tau) z + tau f(z) from z = 0. With tau = 1 (the default) this is
 * the seed's TanhFixedPointLayer: stop when ||z_k - f(z_k)||_F < tol; the
 * iteration count is the number of maps. With a tape, every iterate is kept
 * so that unrolled backward can replay the chain in reverse, as autograd does.
 * A warm start (p->z0) replaces z = 0 and is a constant for the backward.
 * Options: fp-tau (damping, (0, 1], default 1). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "il_solver.h"

typedef struct fp_state {
  double tau;
  /* tape of the last solve with p->saved: iterates z_0 = 0, z_1, ..., z_K */
  il_real **iter;
  /* with tau != 1: f(z_k) for k < K (with tau = 1 it is z_{k+1}) */
  il_real **fval;
  /* per-sample stopping: moved[k][b] = 1 when row b was mapped at step k (else frozen, z_{k+1} = z_k);
   * masks in the space (the row ops read them), the pointer tables on the host */
  unsigned char **moved;
  int K;
  int nan_step; /* last unrolled backward: first step whose cotangent went non-finite, -1 if none */
} fp_state;

static il_status fp_create(il_options *opt, void **state) {
  double tau;
  IL_CHECK(il_options_get_double(opt, "fp-tau", 1.0, 1e-6, 1.0, &tau));
  fp_state *st = calloc(1, sizeof *st);
  if (!st) return IL_ERR(IL_ERR_NOMEM, "fp: cannot allocate state");
  st->tau = tau;
  *state = st;
  return IL_OK;
}

static void fp_destroy(void *state) { free(state); }

#define FP_THETA_CHUNK 16 /* see fp_unroll_backward */
/* iterations per dW GEMM: 1 (dW in each step's vjp, s*u formed once) where small-K GEMMs are fast */
static int theta_chunk(const il_backend *be) { return be->ops->small_k_gemm ? 1 : FP_THETA_CHUNK; }
#define R(count, T) il_ws_round((size_t)(count) * sizeof(T))
static size_t fp_ws_bytes(void *state, const il_cell *c, int B, int max_iter, int taped) {
  (void)state, (void)max_iter;
  const size_t len = (size_t)B * c->n;
  const size_t solve = (taped ? 0 : 3 * R(len, il_real)) + R(B, unsigned char) + R(len, il_real) /* best */ +
                       R(B, unsigned char) /* best's row mask */;
  const int G = theta_chunk(c->be);
  const size_t back = (2 + (size_t)G) * R(len, il_real);
  return (solve > back ? solve : back) + c->ops->ws_bytes(c, B * G);
}

static il_status fp_solve(void *state, const il_problem *p, il_real *z, double *row_res, il_solve_result *res) {
  fp_state *st = state;
  const il_cell *c = p->cell;
  const il_backend *be = p->be;
  const int B = p->B, n = c->n;
  const size_t len = (size_t)B * n;
  const il_real tau = (il_real)st->tau;
  const int damped = st->tau != 1.0;
  il_marks m = il_marks_get(p->ws, p->hws);
  il_status s = IL_OK;
  il_real *cur, *next = NULL, *f = NULL;
  il_stop stop;
  il_best best;
  il_stop_begin(&stop, res);
  st->iter = NULL;
  st->fval = NULL;
  st->moved = NULL;
  st->K = 0;
  if (p->saved) {
    IL_CHECK(il_arena_calloc(p->hsaved, (size_t)p->max_iter + 1, sizeof *st->iter, (void **)&st->iter));
    if (damped) IL_CHECK(il_arena_calloc(p->hsaved, (size_t)p->max_iter, sizeof *st->fval, (void **)&st->fval));
    IL_CHECK(il_arena_calloc(p->saved, len, sizeof(il_real), (void **)&st->iter[0]));
    cur = st->iter[0];
  } else {
    IL_CHECK(il_arena_calloc(p->ws, len, sizeof(il_real), (void **)&cur));
    IL_CHECK(il_arena_calloc(p->ws, len, sizeof(il_real), (void **)&next));
    if (damped) IL_CHECK(il_arena_alloc_n(p->ws, len, sizeof(il_real), (void **)&f));
  }
  if (p->z0) IL_CHECK(il_copy(be, cur, p->z0, len)); /* warm start */
  unsigned char *active = NULL;   /* per-sample, host: rows still iterating */
  unsigned char *active_d = NULL; /* the same in the space, for the row ops */
  double *rd = NULL;              /* per-sample: each row's last residual, squared */
  double *rows = NULL;            /* this step's row residuals, squared */
  double *frows = NULL, *fd = NULL; /* stop_relf: ||f(z_b)||^2 of this step, and per-sample each row's last */
  int nactive = B;
  IL_CHECK_GOTO(s, il_arena_alloc_n(p->hws, (size_t)B, sizeof *rows, (void **)&rows), out);
  if (p->stop_relf) IL_CHECK_GOTO(s, il_arena_alloc_n(p->hws, (size_t)B, sizeof *frows, (void **)&frows), out);
  fd = frows;
  IL_CHECK_GOTO(s, il_best_init(&best, p), out);
  if (p->per_sample) {
    IL_CHECK_GOTO(s, il_arena_alloc_n(p->hws, (size_t)B, 1, (void **)&active), out);
    IL_CHECK_GOTO(s, il_arena_alloc_n(p->ws, (size_t)B, 1, (void **)&active_d), out);
    IL_CHECK_GOTO(s, il_arena_calloc(p->hws, (size_t)B, sizeof *rd, (void **)&rd), out);
    if (p->stop_relf) IL_CHECK_GOTO(s, il_arena_calloc(p->hws, (size_t)B, sizeof *fd, (void **)&fd), out);
    memset(active, 1, (size_t)B);
    IL_CHECK_GOTO(s, IL_BE(be, copy, IL_COPY_TO_SPACE, active_d, active, (size_t)B), out);
    if (p->saved)
      IL_CHECK_GOTO(s, il_arena_calloc(p->hsaved, (size_t)p->max_iter, sizeof *st->moved, (void **)&st->moved), out);
  } else {
    rd = rows;
  }
  while (res->iters < p->max_iter) {
    const int k = res->iters;
    if (p->saved) {
      IL_CHECK_GOTO(s, il_arena_alloc_n(p->saved, len, sizeof(il_real), (void **)&next), out);
      if (damped) IL_CHECK_GOTO(s, il_arena_alloc_n(p->saved, len, sizeof(il_real), (void **)&st->fval[k]), out);
      if (damped) f = st->fval[k];
    }
    if (!damped) f = next;
    IL_CHECK_GOTO(s, il_cell_map(c, B, p->x, cur, f, NULL, p->ws, rows), out); /* rows: ||cur - f||^2 */
    if (frows) IL_CHECK_GOTO(s, IL_BE(be, row_sqdist, B, n, f, NULL, frows), out); /* sync point: ||f||^2 */
    if (damped) {
      IL_CHECK_GOTO(s, IL_BE(be, axpby, len, 1, cur, 0, next), out);
      IL_CHECK_GOTO(s, IL_BE(be, axpby, len, tau, f, 1 - tau, next), out);
    }
    double err;
    int all_done = 0;
    if (p->per_sample) {
      if (p->saved) {
        IL_CHECK_GOTO(s, il_arena_alloc_n(p->saved, (size_t)B, 1, (void **)&st->moved[k]), out);
        IL_CHECK_GOTO(s, IL_BE(be, copy, IL_COPY_IN_SPACE, st->moved[k], active_d, (size_t)B), out);
      }
      /* frozen rows keep their converged value */
      IL_CHECK_GOTO(s, IL_BE(be, row_select, B, n, active_d, 0, cur, next), out);
      err = il_stop_local(p, rows, frows, active); /* norm of this step over the rows that moved */
      int changed = 0, bad = 0;
      for (int b = 0; b < B; b++) {
        if (!active[b]) continue;
        bad |= !isfinite(rows[b]);
        rd[b] = rows[b];
        if (frows) fd[b] = frows[b];
        if (il_stop_row(p, rows[b], frows ? frows[b] : 0) < p->tol) { active[b] = 0; nactive--; changed = 1; }
      }
      if (changed) IL_CHECK_GOTO(s, IL_BE(be, copy, IL_COPY_TO_SPACE, active_d, active, (size_t)B), out);
      if (bad) err = NAN;
      all_done = nactive == 0;
    } else {
      err = il_stop_norm(p, rows, frows);
    }
    res->iters++;
    if (p->saved) {
      st->iter[res->iters] = next;
      st->K = res->iters;
      cur = next;
    } else {
      il_real *t = cur; cur = next; next = t;
    }
    /* the returned iterate is the newest one, paired with the residual of the step that made it */
    if (il_stop_judge(&stop, p, err, p->per_sample ? all_done : -1, k, res)) break;
    IL_CHECK_GOTO(s, il_best_offer(&best, p, cur, rd, fd, err, k), out);
  }
  IL_CHECK_GOTO(s, il_solve_finish(&best, p, cur, rd, fd, row_res, 0, z, res, NULL), out);
out:
  il_marks_rewind(p->ws, p->hws, m);
  return s;
}

/* z_{k+1} = (1 - tau) z_k + tau f(z_k): with v = tau u_{k+1},
 * u_k = (1 - tau) u_{k+1} + (df/dz at z_k)^T v, dx += (df/dx)^T v, dtheta += (df/dtheta)^T v. The u recursion is sequential, but the theta
 * term of G consecutive iterations is one vjp over a "virtual batch" of G*B rows
 * (for the tanh cell one (n, G*B) x (G*B, n) GEMM instead of G small ones), as
 * long as those iterates sit contiguously in the tape, which the arena gives
 * within a block. The cotangents of a chunk are kept in a (G, B, n) buffer. Where the
 * backend's small-K GEMMs are as fast (small_k_gemm: the CPU), G = 1 and each step's vjp adds its
 * own dW term. */

static il_status fp_unroll_backward(void *state, const il_problem *p, const il_real *dz, il_real *dx,
                                    il_real *dtheta) {
  fp_state *st = state;
  const il_cell *c = p->cell;
  const il_backend *be = p->be;
  const int B = p->B;
  const size_t len = (size_t)B * c->n;
  if (!st->iter) return IL_ERR(IL_ERR_INTERNAL, "fp unroll backward: no tape (forward ran without saving)");
  il_arena_mark m = il_arena_get_mark(p->ws);
  il_real *carry, *U, *keep = NULL;
  const int n = c->n;
  const il_real tau = (il_real)st->tau;
  const int damped = st->tau != 1.0;
#define FP_F(k) (damped ? st->fval[k] : st->iter[(k) + 1]) /* f(z_k) */
  IL_CHECK(il_arena_alloc_n(p->ws, len, sizeof *carry, (void **)&carry));
  if (st->moved) IL_CHECK(il_arena_alloc_n(p->ws, len, sizeof *keep, (void **)&keep));
  const int G = theta_chunk(be);
  IL_CHECK(il_arena_alloc_n(p->ws, len * G, sizeof *U, (void **)&U));
  IL_CHECK(il_copy(be, carry, dz, len)); /* dL/dz_K */
  st->nan_step = -1;
  for (int end = st->K; end > 0;) {
    const int k0 = end > G ? end - G : 0, g = end - k0;
    /* slot j holds u_{k0+j+1}, the cotangent on the output of step k0+j */
    IL_CHECK(il_copy(be, U + (size_t)(g - 1) * len, carry, len));
    for (int k = end - 1; k >= k0; k--) {
      il_real *out = k > k0 ? U + (size_t)(k - 1 - k0) * len : carry, *u = U + (size_t)(k - k0) * len;
      const unsigned char *mv = st->moved ? st->moved[k] : NULL;
      IL_CHECK(il_trace_vec(p, u, st->K - k)); /* --trace: dL/dz_{k+1}, entering replayed step K - k */
      if (mv) { /* a frozen row is the identity at this step: its cotangent passes through untouched */
        IL_CHECK(IL_BE(be, row_select, B, n, mv, 0, u, keep));
        IL_CHECK(IL_BE(be, row_fill, B, n, mv, 0, 0, u));
      }
      if (damped) IL_CHECK(IL_BE(be, axpby, len, tau, u, 0, u)); /* the slot now holds v = tau u */
      /* z_0 has nothing upstream: skip its dz; from z = 0 (no warm start) the cell may say that
       * its dtheta term is zero too, a GEMM saved */
      il_real *dth = G == 1 && (k > 0 || p->z0 || !c->ops->dtheta_zero_at_z0) ? dtheta : NULL;
      IL_CHECK(il_cell_vjp(c, B, st->iter[k], FP_F(k), NULL, u, k > 0 ? out : NULL, dx, dth, p->ws));
      if (damped && k > 0) IL_CHECK(IL_BE(be, axpby, len, (1 - tau) / tau, u, 1, out)); /* + (1 - tau) u */
      if (st->nan_step < 0 && k > 0) {
        int fin;
        IL_CHECK(IL_BE(be, all_finite, len, out, &fin)); /* sync point: NaN attribution */
        if (!fin) st->nan_step = k;
      }
      if (mv && k > 0) IL_CHECK(IL_BE(be, row_select, B, n, mv, 0, keep, out));
    }
    if (dtheta && G > 1) {
      int contiguous = 1;
      for (int k = k0; k < end; k++)
        contiguous &= st->iter[k + 1] == st->iter[k] + len && (k == k0 || FP_F(k) == FP_F(k - 1) + len);
      if (contiguous) {
        IL_CHECK(il_cell_vjp(c, B * g, st->iter[k0], FP_F(k0), NULL, U, NULL, NULL, dtheta, p->ws));
      } else {
        for (int k = k0; k < end; k++)
          IL_CHECK(il_cell_vjp(c, B, st->iter[k], FP_F(k), NULL, U + (size_t)(k - k0) * len, NULL, NULL,
                               dtheta, p->ws));
      }
    }
    end = k0;
  }
#undef FP_F
  il_arena_rewind(p->ws, m);
  return IL_OK;
}

static int fp_nan_step(void *state) { return ((fp_state *)state)->nan_step; }

static const il_option_decl fp_options[] = {
    {"fp-tau", "TAU", "damping, z <- (1 - tau) z + tau f(z), in [1e-6, 1]", "1", 1, 0},
    {0},
};

const il_solver_ops il_solver_fp_ops = {
    .name = "fp",
    .summary = "fixed-point iteration z <- (1 - tau) z + tau f(z) from z = 0 (option fp-tau)",
    .default_max_iter = 200,
    .options = fp_options,
    .zero_default = 0,
    .per_sample_ok = 1,
    .create = fp_create,
    .ws_bytes = fp_ws_bytes,
    .solve = fp_solve,
    .unroll_backward = fp_unroll_backward,
    .unroll_nan_step = fp_nan_step,
    .last_lu = NULL,
    .destroy = fp_destroy,
};
