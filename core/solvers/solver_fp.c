/* core/solvers/solver_fp.c: fixed-point iteration z <- f(z) from z = 0, as the
 * seed's TanhFixedPointLayer: stop when ||z_k - z_{k+1}||_F < tol; the
 * iteration count is the number of maps. With a tape, every iterate is kept
 * so that unrolled backward can replay the chain in reverse, as autograd does.
 * Options: none yet (damping arrives with the solver zoo). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "il_solver.h"

typedef struct fp_state {
  /* tape of the last solve with p->saved: iterates z_0 = 0, z_1, ..., z_K */
  il_real **iter;
  /* per-sample stopping: moved[k][b] = 1 when row b was mapped at step k (else frozen, z_{k+1} = z_k) */
  unsigned char **moved;
  int K;
} fp_state;

static il_status fp_create(il_options *opt, void **state) {
  fp_state *st = calloc(1, sizeof *st);
  if (!st) return IL_ERR(IL_ERR_NOMEM, "fp: cannot allocate state");
  *state = st;
  return IL_OK;
}

static void fp_destroy(void *state) { free(state); }

static il_status fp_solve(void *state, const il_problem *p, il_real *z, double *row_res, il_solve_result *res) {
  fp_state *st = state;
  const il_cell *c = p->cell;
  const int B = p->B, n = c->n;
  const size_t len = (size_t)B * n;
  il_arena_mark m = il_arena_get_mark(p->ws);
  il_status s = IL_OK;
  il_real *cur, *next;
  st->iter = NULL;
  st->K = 0;
  if (p->saved) {
    IL_CHECK(il_arena_calloc(p->saved, (size_t)p->max_iter + 1, sizeof *st->iter, (void **)&st->iter));
    IL_CHECK(il_arena_calloc(p->saved, len, sizeof(il_real), (void **)&st->iter[0]));
    cur = st->iter[0];
    next = NULL;
  } else {
    IL_CHECK(il_arena_calloc(p->ws, len, sizeof(il_real), (void **)&cur));
    IL_CHECK(il_arena_calloc(p->ws, len, sizeof(il_real), (void **)&next));
  }
  res->iters = 0;
  res->residual = INFINITY;
  res->reason = IL_REASON_MAX_ITER;
  res->nonconverged_rows = 0;
  unsigned char *active = NULL; /* per-sample: rows still iterating */
  double *rd = NULL;            /* per-sample: each row's last step size, squared */
  double *rows = NULL;          /* per-sample: this step's row sizes, squared */
  int nactive = B;
  st->moved = NULL;
  if (p->per_sample) {
    IL_CHECK_GOTO(s, il_arena_alloc_n(p->ws, (size_t)B, 1, (void **)&active), out);
    IL_CHECK_GOTO(s, il_arena_calloc(p->ws, (size_t)B, sizeof *rd, (void **)&rd), out);
    IL_CHECK_GOTO(s, il_arena_alloc_n(p->ws, (size_t)B, sizeof *rows, (void **)&rows), out);
    memset(active, 1, (size_t)B);
    if (p->saved) IL_CHECK_GOTO(s, il_arena_calloc(p->saved, (size_t)p->max_iter, sizeof *st->moved, (void **)&st->moved), out);
  }
  while (res->iters < p->max_iter) {
    if (p->saved) IL_CHECK_GOTO(s, il_arena_alloc_n(p->saved, len, sizeof(il_real), (void **)&next), out);
    IL_CHECK_GOTO(s, c->ops->map(c, B, p->x, cur, next, NULL, p->ws), out);
    double err;
    if (p->per_sample) {
      c->be->row_sqdist(B, n, cur, next, rows);
      if (p->saved) {
        IL_CHECK_GOTO(s, il_arena_alloc_n(p->saved, (size_t)B, 1, (void **)&st->moved[res->iters]), out);
        memcpy(st->moved[res->iters], active, (size_t)B);
      }
      double acc = 0;
      int bad = 0;
      for (int b = 0; b < B; b++) {
        if (!active[b]) { /* frozen: keep its converged value */
          memcpy(next + (size_t)b * n, cur + (size_t)b * n, (size_t)n * sizeof *next);
          continue;
        }
        rd[b] = rows[b];
        acc += rows[b];
        bad |= !isfinite(rows[b]);
        if (sqrt(rows[b]) < p->tol) { active[b] = 0; nactive--; }
      }
      err = bad ? NAN : sqrt(acc); /* norm of this step over the rows that moved */
    } else {
      err = il_problem_norm(p, c->be->sqdist(len, cur, next));
    }
    res->iters++;
    res->residual = err;
    if (p->saved) {
      st->iter[res->iters] = next;
      st->K = res->iters;
      cur = next;
    } else {
      il_real *t = cur; cur = next; next = t;
    }
    if (!isfinite(err)) { res->reason = IL_REASON_NONFINITE; break; }
    if (p->per_sample ? nactive == 0 : err < p->tol) { res->reason = IL_REASON_CONVERGED; break; }
  }
  /* per-row size of the last step, the fixed-point residual of z_{K-1} */
  if (!row_res) IL_CHECK_GOTO(s, il_arena_calloc(p->ws, (size_t)B, sizeof *row_res, (void **)&row_res), out);
  if (p->per_sample) {
    for (int b = 0; b < B; b++) {
      row_res[b] = sqrt(rd[b]);
      if (!(row_res[b] < p->tol)) res->nonconverged_rows++;
    }
  } else {
    const il_real *prev = p->saved ? st->iter[st->K > 0 ? st->K - 1 : 0] : next;
    c->be->row_sqdist(B, n, cur, prev, row_res);
    for (int b = 0; b < B; b++) {
      row_res[b] = sqrt(row_res[b]);
      if (!(row_res[b] < p->tol)) res->nonconverged_rows++;
    }
  }
  memcpy(z, cur, len * sizeof *z);
out:
  il_arena_rewind(p->ws, m);
  return s;
}

/* z_{k+1} = f(z_k): u_k = (df/dz at z_k)^T u_{k+1}, dx += (df/dx)^T u_{k+1}, and
 * dtheta += (df/dtheta)^T u_{k+1}. The u recursion is sequential, but the theta
 * term of G consecutive iterations is one vjp over a "virtual batch" of G*B rows
 * (for the tanh cell one (n, G*B) x (G*B, n) GEMM instead of G small ones), as
 * long as those iterates sit contiguously in the tape, which the arena gives
 * within a block. The cotangents of a chunk are kept in a (G, B, n) buffer. */
#define FP_THETA_CHUNK 16

static il_status fp_unroll_backward(void *state, const il_problem *p, const il_real *dz, il_real *dx,
                                    il_real *dtheta) {
  fp_state *st = state;
  const il_cell *c = p->cell;
  const size_t len = (size_t)p->B * c->n;
  if (!st->iter) return IL_ERR(IL_ERR_INTERNAL, "fp unroll backward: no tape (forward ran without saving)");
  il_arena_mark m = il_arena_get_mark(p->ws);
  il_real *carry, *U, *keep = NULL;
  const int n = c->n;
  IL_CHECK(il_arena_alloc_n(p->ws, len, sizeof *carry, (void **)&carry));
  if (st->moved) IL_CHECK(il_arena_alloc_n(p->ws, len, sizeof *keep, (void **)&keep));
  IL_CHECK(il_arena_alloc_n(p->ws, len * FP_THETA_CHUNK, sizeof *U, (void **)&U));
  memcpy(carry, dz, len * sizeof *carry); /* dL/dz_K */
  for (int end = st->K; end > 0;) {
    const int k0 = end > FP_THETA_CHUNK ? end - FP_THETA_CHUNK : 0, g = end - k0;
    /* slot j holds u_{k0+j+1}, the cotangent on the output of step k0+j */
    memcpy(U + (size_t)(g - 1) * len, carry, len * sizeof *U);
    for (int k = end - 1; k >= k0; k--) {
      il_real *out = k > k0 ? U + (size_t)(k - 1 - k0) * len : carry, *u = U + (size_t)(k - k0) * len;
      const unsigned char *mv = st->moved ? st->moved[k] : NULL;
      if (mv) /* a frozen row is the identity at this step: its cotangent passes through untouched */
        for (int b = 0; b < p->B; b++)
          if (!mv[b]) {
            memcpy(keep + (size_t)b * n, u + (size_t)b * n, (size_t)n * sizeof *u);
            memset(u + (size_t)b * n, 0, (size_t)n * sizeof *u);
          }
      /* z_0 = 0 has nothing upstream: skip its dz */
      IL_CHECK(c->ops->vjp(c, p->B, st->iter[k], st->iter[k + 1], NULL, u, k > 0 ? out : NULL, dx, NULL, p->ws));
      if (mv && k > 0)
        for (int b = 0; b < p->B; b++)
          if (!mv[b]) memcpy(out + (size_t)b * n, keep + (size_t)b * n, (size_t)n * sizeof *out);
    }
    if (dtheta) {
      int contiguous = 1;
      for (int k = k0; k < end; k++) contiguous &= st->iter[k + 1] == st->iter[k] + len;
      if (contiguous) {
        IL_CHECK(c->ops->vjp(c, p->B * g, st->iter[k0], st->iter[k0 + 1], NULL, U, NULL, NULL, dtheta, p->ws));
      } else {
        for (int k = k0; k < end; k++)
          IL_CHECK(c->ops->vjp(c, p->B, st->iter[k], st->iter[k + 1], NULL, U + (size_t)(k - k0) * len, NULL, NULL,
                               dtheta, p->ws));
      }
    }
    end = k0;
  }
  il_arena_rewind(p->ws, m);
  return IL_OK;
}

const il_solver_ops il_solver_fp_ops = {
    .name = "fp",
    .summary = "fixed-point iteration z <- f(z) from z = 0",
    .default_max_iter = 200,
    .create = fp_create,
    .solve = fp_solve,
    .unroll_backward = fp_unroll_backward,
    .last_lu = NULL,
    .destroy = fp_destroy,
};
