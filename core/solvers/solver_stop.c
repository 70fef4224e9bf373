/* core/solvers/solver_stop.c: the stopping test and the lowest-residual
 * iterate, shared by every forward solver so that abs/rel tolerances,
 * divergence and non-finite detection mean the same thing for all of them.
 * Every checked iterate passes through here, so the fixed-point correction's
 * trace (solver_trace.c) is fed here too. */
#include <math.h>
#include <string.h>

#include "il_solver.h"

void il_stop_begin(il_stop *st, il_solve_result *res) {
  st->r0 = NAN;
  st->nchecks = 0;
  *res = (il_solve_result){.iters = 0, .residual = INFINITY, .reason = IL_REASON_MAX_ITER, .nonconverged_rows = 0,
                           .tol_abs = NAN, .nonfinite_iter = -1, .cond_max = NAN,
                           .preact_max = NAN};
}

int il_stop_check(il_stop *st, const il_problem *p, double err, int iter, il_solve_result *res) {
  return il_stop_judge(st, p, err, -1, iter, res);
}

int il_stop_judge(il_stop *st, const il_problem *p, double err, int converged, int iter, il_solve_result *res) {
  res->residual = err;
  if (p->trace) p->trace->checks++; /* the iterate il_best_offer gets next was checked here */
  if (st->nchecks++ == 0) {
    st->r0 = err;
    res->tol_abs = p->stop_rel ? p->tol * err : p->tol;
  }
  if (!isfinite(err)) {
    res->reason = IL_REASON_NONFINITE;
    res->nonfinite_iter = iter;
    return 1;
  }
  /* err == 0: an exact fixed point, converged even when a relative threshold is 0 */
  if (converged < 0 ? (err < res->tol_abs || err == 0) : converged) {
    res->reason = IL_REASON_CONVERGED;
    return 1;
  }
  if (p->divtol > 0 && err > p->divtol * st->r0) {
    res->reason = IL_REASON_DIVERGED;
    return 1;
  }
  return 0;
}

il_status il_best_init(il_best *b, const il_problem *p) {
  memset(b, 0, sizeof *b);
  b->err = INFINITY;
  b->iter = -1;
  if (!p->keep_best) return IL_OK;
  IL_CHECK(il_arena_alloc_n(p->ws, (size_t)p->B * p->cell->n, sizeof *b->z, (void **)&b->z));
  IL_CHECK(il_arena_alloc_n(p->hws, (size_t)p->B, sizeof *b->rows, (void **)&b->rows));
  return IL_OK;
}

il_status il_best_offer(il_best *b, const il_problem *p, const il_real *z, const double *rows, double err, int iter) {
  if (p->trace) IL_CHECK(il_trace_offer(p->trace, p, z));
  if (!b->z || !(err < b->err)) return IL_OK;
  b->err = err;
  b->iter = iter;
  IL_CHECK(il_copy(p->be, b->z, z, (size_t)p->B * p->cell->n));
  memcpy(b->rows, rows, (size_t)p->B * sizeof *rows);
  return IL_OK;
}

il_status il_best_restore(const il_best *b, const il_problem *p, il_real *z, double *rows, il_solve_result *res,
                          int *restored) {
  *restored = 0;
  if (!b->z || b->iter < 0 || res->reason == IL_REASON_CONVERGED) return IL_OK;
  if (isfinite(res->residual) && !(b->err < res->residual)) return IL_OK;
  IL_CHECK(il_copy(p->be, z, b->z, (size_t)p->B * p->cell->n));
  if (rows) memcpy(rows, b->rows, (size_t)p->B * sizeof *rows);
  res->residual = b->err;
  *restored = 1;
  return IL_OK;
}

il_status il_solve_finish(il_best *best, const il_problem *p, const il_real *last, double *rows, double *row_res,
                          int inclusive, il_real *z, il_solve_result *res, int *restored) {
  const int B = p->B;
  int rs = 0;
  for (int b = 0; b < B; b++) rows[b] = sqrt(rows[b]);
  if (best->z)
    for (int b = 0; b < B; b++) best->rows[b] = sqrt(best->rows[b]);
  if (z != last) IL_CHECK(il_copy(p->be, z, last, (size_t)B * p->cell->n));
  IL_CHECK(il_best_restore(best, p, z, rows, res, &rs));
  for (int b = 0; b < B; b++) {
    if (row_res) row_res[b] = rows[b];
    if (inclusive ? !(rows[b] <= res->tol_abs) : !(rows[b] < res->tol_abs)) res->nonconverged_rows++;
  }
  if (restored) *restored = rs;
  return IL_OK;
}
