/* core/solvers/solver_stop.c: the stopping test and the lowest-residual
 * iterate, shared by every forward solver so that abs/rel/relf tolerances, the
 * batch norm (frob, max, mean), divergence and non-finite detection mean the
 * same thing for all of them. The norms reduce over processes through
 * p->reduce, so the decision does not depend on how the batch is sharded.
 * Every checked iterate passes through here, so the residual trace (--trace)
 * and the fixed-point correction's points (solver_corr_points.c) are fed here too. */
#include <math.h>
#include <string.h>

#include "il_solver.h"

const char *il_stop_norm_name(int kind) {
  return kind == IL_STOP_MAX ? "max" : kind == IL_STOP_MEAN ? "mean" : "frob";
}

/* a failed reduction reads as NaN, which stops the solve as non-finite, never as converged */
static double reduce_max(const il_problem *p, double v) {
  if (p->reduce.max) return p->reduce.max(p->reduce.ctx, v);
  if (p->reduce.allreduce && p->reduce.allreduce(p->reduce.ctx, &v, 1, IL_REDUCE_MAX) != IL_OK) return NAN;
  return v;
}

/* (sum over all processes) / (rows over all processes), in one reduction where there is one */
static double reduce_mean(const il_problem *p, double sum, double count) {
  double buf[2] = {sum, count};
  if (p->reduce.allreduce) {
    if (p->reduce.allreduce(p->reduce.ctx, buf, 2, IL_REDUCE_SUM) != IL_OK) return NAN;
  } else if (p->reduce.sum) {
    buf[0] = p->reduce.sum(p->reduce.ctx, sum);
    buf[1] = p->reduce.sum(p->reduce.ctx, count);
  }
  return buf[0] / buf[1];
}

/* The batch residual of the row values vals, or (vals NULL) of rows / frows. The default
 * (frob, abs) sums the squared rows as they come, in row order: the seed's number, bit for bit. */
static double batch_norm(const il_problem *p, const double *rows, const double *frows, const double *vals) {
  const int B = p->B;
#define V(b) (vals ? vals[b] : il_stop_row(p, rows[b], frows ? frows[b] : 0))
  if (p->stop_norm == IL_STOP_MAX) {
    double m = 0;
    int nan = 0;
    for (int b = 0; b < B; b++) {
      const double v = V(b);
      nan |= isnan(v);
      if (v > m) m = v;
    }
    return reduce_max(p, nan ? NAN : m);
  }
  double acc = 0;
  if (p->stop_norm == IL_STOP_MEAN) {
    for (int b = 0; b < B; b++) acc += V(b);
    return reduce_mean(p, acc, B);
  }
  if (!vals && !p->stop_relf) {
    for (int b = 0; b < B; b++) acc += rows[b];
  } else {
    for (int b = 0; b < B; b++) {
      const double v = V(b);
      acc += v * v;
    }
  }
#undef V
  return il_problem_norm(p, acc);
}

double il_stop_norm(const il_problem *p, const double *rows, const double *frows) {
  return batch_norm(p, rows, frows, NULL);
}

double il_stop_local(const il_problem *p, const double *rows, const double *frows, const unsigned char *active) {
  double acc = 0;
  for (int b = 0; b < p->B; b++) {
    if (active && !active[b]) continue;
    if (!p->stop_relf) {
      acc += rows[b];
    } else {
      const double v = il_stop_row(p, rows[b], frows[b]);
      acc += v * v;
    }
  }
  return sqrt(acc);
}

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
  if (p->trace) il_trace_add(p->trace, res->iters, err);
  if (p->corr) p->corr->checks++; /* the iterate il_best_offer gets next was checked here */
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

il_status il_trace_vec(const il_problem *p, const il_real *v, int iter) {
  if (!p->trace) return IL_OK;
  double sq;
  IL_CHECK(IL_BE(p->be, sqdist, (size_t)p->B * p->cell->n, v, NULL, &sq)); /* sync point: --trace only */
  il_trace_add(p->trace, iter, p->per_sample ? sqrt(sq) : il_problem_norm(p, sq));
  return IL_OK;
}

il_status il_best_init(il_best *b, const il_problem *p) {
  memset(b, 0, sizeof *b);
  b->err = INFINITY;
  b->iter = -1;
  if (!p->keep_best) return IL_OK;
  IL_CHECK(il_arena_alloc_n(p->ws, (size_t)p->B * p->cell->n, sizeof *b->z, (void **)&b->z));
  IL_CHECK(il_arena_alloc_n(p->hws, (size_t)p->B, sizeof *b->rows, (void **)&b->rows));
  if (p->keep_best == IL_BEST_SAMPLE) {
    IL_CHECK(il_arena_alloc_n(p->ws, (size_t)p->B, 1, (void **)&b->mask));
    IL_CHECK(il_arena_alloc_n(p->hws, (size_t)p->B, 1, (void **)&b->hmask));
    for (int i = 0; i < p->B; i++) b->rows[i] = INFINITY;
  }
  return IL_OK;
}

il_status il_best_offer(il_best *b, const il_problem *p, const il_real *z, const double *rows, const double *frows,
                        double err, int iter) {
  const int B = p->B;
  if (p->corr) IL_CHECK(il_corr_points_offer(p->corr, p, z));
  if (!b->z) return IL_OK;
  if (p->keep_best != IL_BEST_SAMPLE) {
    if (!(err < b->err)) return IL_OK;
    b->err = err;
    b->iter = iter;
    IL_CHECK(il_copy(p->be, b->z, z, (size_t)B * p->cell->n));
    for (int i = 0; i < B; i++) b->rows[i] = il_stop_row(p, rows[i], frows ? frows[i] : 0);
    return IL_OK;
  }
  /* each row keeps its own lowest value; the rows that improved are copied by one masked op */
  int k = 0;
  for (int i = 0; i < B; i++) {
    const double v = il_stop_row(p, rows[i], frows ? frows[i] : 0);
    b->hmask[i] = v < b->rows[i];
    if (b->hmask[i]) b->rows[i] = v, k++;
  }
  if (!k) return IL_OK;
  b->iter = iter;
  if (k == B) return il_copy(p->be, b->z, z, (size_t)B * p->cell->n);
  IL_CHECK(IL_BE(p->be, copy, IL_COPY_TO_SPACE, b->mask, b->hmask, (size_t)B));
  return IL_BE(p->be, row_select, B, p->cell->n, b->mask, 1, z, b->z);
}

il_status il_best_restore(const il_best *b, const il_problem *p, il_real *z, double *vals, il_solve_result *res,
                          int *restored) {
  const int B = p->B;
  *restored = 0;
  if (!b->z) return IL_OK;
  if (p->keep_best != IL_BEST_SAMPLE) {
    if (b->iter < 0 || res->reason == IL_REASON_CONVERGED) return IL_OK;
    if (isfinite(res->residual) && !(b->err < res->residual)) return IL_OK;
    IL_CHECK(il_copy(p->be, z, b->z, (size_t)B * p->cell->n));
    memcpy(vals, b->rows, (size_t)B * sizeof *vals);
    res->residual = b->err;
    *restored = 1;
    return IL_OK;
  }
  int k = 0;
  for (int i = 0; i < B; i++) {
    b->hmask[i] = isfinite(b->rows[i]) && !(vals[i] <= b->rows[i]);
    if (b->hmask[i]) vals[i] = b->rows[i], k++;
  }
  if (k) {
    IL_CHECK(IL_BE(p->be, copy, IL_COPY_TO_SPACE, b->mask, b->hmask, (size_t)B));
    IL_CHECK(IL_BE(p->be, row_select, B, p->cell->n, b->mask, 1, b->z, z));
    *restored = 1;
  }
  /* every process reduces, whether or not its own rows changed */
  res->residual = batch_norm(p, NULL, NULL, vals);
  return IL_OK;
}

il_status il_solve_finish(il_best *best, const il_problem *p, const il_real *last, double *rows, const double *frows,
                          double *row_res, int inclusive, il_real *z, il_solve_result *res, int *restored) {
  const int B = p->B;
  int rs = 0;
  for (int b = 0; b < B; b++) rows[b] = il_stop_row(p, rows[b], frows ? frows[b] : 0);
  if (z != last) IL_CHECK(il_copy(p->be, z, last, (size_t)B * p->cell->n));
  IL_CHECK(il_best_restore(best, p, z, rows, res, &rs));
  for (int b = 0; b < B; b++) {
    if (row_res) row_res[b] = rows[b];
    if (inclusive ? !(rows[b] <= res->tol_abs) : !(rows[b] < res->tol_abs)) res->nonconverged_rows++;
  }
  if (restored) *restored = rs;
  return IL_OK;
}
