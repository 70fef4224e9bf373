/* distributed/il_step_reduce.c: see il_step_reduce.h. */
#include "il_step_reduce.h"

#include <limits.h>
#include <math.h>

#include "il_diag.h"

/* Summed over ranks: one allreduce of doubles. */
enum { ST_LOSS, ST_ERR, ST_NONCONV, ST_SAMPLES, ST_JAC_REG, ST_RHO_SUM, ST_RHO_N, ST_N };
/* Largest over ranks: one allreduce of doubles. */
enum { MX_FWD, MX_BWD, MX_AR, MX_UPD, MX_BWD_ITERS, MX_BWD_RES, MX_FWD_ITERS, MX_WAIT, MX_FWD_RES, MX_FWD_REASON,
       MX_BWD_REASON, MX_STOP, MX_RHO, MX_COND, MX_NEG_COS, MX_RELERR, MX_PREACT,
       /* 1 when this rank's value is NaN: MPI_MAX has no NaN rule, so values travel as -inf and a
        * NaN on any rank is restored from its flag (a NaN must not hide behind another rank's number) */
       MX_NAN_BWD_RES, MX_NAN_RHO, MX_NAN_COND, MX_NAN_COS, MX_NAN_RELERR, MX_NAN_PREACT, MX_N };

static double nan_to_low(double v) { return isnan(v) ? -INFINITY : v; }
/* the reduced value, NaN when any rank's was (flag) or every rank's was (-inf) */
static double reduced(const double *mx, int value, int flag) {
  return mx[flag] > 0 || mx[value] == -INFINITY ? NAN : mx[value];
}

il_status il_max_over_ranks(il_dist *d, double *v, int n) {
  if (d->size > 1 && MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_MAX, d->comm) != MPI_SUCCESS)
    return IL_ERR(IL_ERR_INTERNAL, "MPI_Allreduce(max) failed");
  return IL_OK;
}

static void pack_sums(const il_step_sums *s, double *sum) {
  sum[ST_LOSS] = s->loss_sum;
  sum[ST_ERR] = s->errors;
  sum[ST_NONCONV] = s->nonconverged;
  sum[ST_SAMPLES] = s->samples;
  sum[ST_JAC_REG] = s->jac_reg_sum; /* NaN on every rank when not computed; MPI_SUM keeps NaN */
}

static void unpack_sums(const double *sum, il_step_sums *s) {
  s->loss_sum = sum[ST_LOSS];
  s->errors = (int)sum[ST_ERR];
  s->nonconverged = (int)sum[ST_NONCONV];
  s->samples = (int)sum[ST_SAMPLES];
  s->jac_reg_sum = sum[ST_JAC_REG];
}

il_status il_step_sum_over_ranks(il_dist *d, il_step_sums *s) {
  double sum[ST_RHO_SUM];
  pack_sums(s, sum);
  IL_CHECK(il_dist_allreduce_sum(d, sum, ST_RHO_SUM, MPI_DOUBLE));
  unpack_sums(sum, s);
  return IL_OK;
}

static void pack_maxima(const il_step_meas *l, double *mx) {
  mx[MX_FWD] = l->t_forward;
  mx[MX_BWD] = l->t_backward;
  mx[MX_WAIT] = l->t_wait;
  mx[MX_AR] = l->t_allreduce;
  mx[MX_UPD] = l->t_update;
  mx[MX_BWD_ITERS] = l->bwd_iters;
  mx[MX_BWD_RES] = nan_to_low(l->bwd_residual); /* NaN: no system solved (phantom, jfb) */
  mx[MX_NAN_BWD_RES] = isnan(l->bwd_residual);
  mx[MX_FWD_ITERS] = l->fwd_iters; /* differs per rank only with --stop sample */
  mx[MX_FWD_RES] = isfinite(l->fwd_residual) ? l->fwd_residual : INFINITY;
  mx[MX_FWD_REASON] = l->fwd_reason;
  mx[MX_BWD_REASON] = l->bwd_reason;
  mx[MX_STOP] = l->stop;
  mx[MX_RHO] = nan_to_low(l->rho_max);
  mx[MX_COND] = nan_to_low(l->cond_max);
  mx[MX_NEG_COS] = nan_to_low(isnan(l->grad_cos) ? NAN : -l->grad_cos);
  mx[MX_RELERR] = nan_to_low(l->grad_relerr);
  mx[MX_PREACT] = nan_to_low(l->preact_max);
  const double dv[] = {l->rho_max, l->cond_max, l->grad_cos, l->grad_relerr, l->preact_max};
  for (int k = 0; k < 5; k++) mx[MX_NAN_RHO + k] = isnan(dv[k]);
}

static void unpack_maxima(const double *mx, const il_step_meas *l, il_step_meas *g) {
  g->t_forward = mx[MX_FWD];
  g->t_backward = mx[MX_BWD];
  g->t_wait = mx[MX_WAIT];
  g->t_allreduce = mx[MX_AR];
  g->t_update = mx[MX_UPD];
  g->bwd_iters = (int)mx[MX_BWD_ITERS];
  g->fwd_iters = (int)mx[MX_FWD_ITERS];
  g->fwd_reason = (il_reason)mx[MX_FWD_REASON];
  g->bwd_reason = (il_reason)mx[MX_BWD_REASON];
  g->stop = (int)mx[MX_STOP];
  g->fwd_residual = isfinite(l->fwd_residual) ? mx[MX_FWD_RES] : l->fwd_residual;
  g->bwd_residual = reduced(mx, MX_BWD_RES, MX_NAN_BWD_RES);
  g->rho_max = reduced(mx, MX_RHO, MX_NAN_RHO);
  g->cond_max = reduced(mx, MX_COND, MX_NAN_COND);
  g->grad_cos = isnan(reduced(mx, MX_NEG_COS, MX_NAN_COS)) ? NAN : fmin(1.0, fmax(-1.0, -mx[MX_NEG_COS]));
  g->grad_relerr = reduced(mx, MX_RELERR, MX_NAN_RELERR);
  g->preact_max = reduced(mx, MX_PREACT, MX_NAN_PREACT);
}

/* The earliest NaN origin and, for it, the latest iteration: the lexicographic
 * minimum of (origin, -iter), which is what MPI_MINLOC computes on a pair
 * (smallest value; on a tie, smallest index). No origin sorts after every origin. */
static il_status reduce_nan_origin(il_dist *d, const il_step_meas *l, il_step_meas *g) {
  struct { int origin, neg_iter; } key = {l->nan_origin != IL_NAN_NONE ? l->nan_origin : INT_MAX, -l->nan_iter};
  if (d->size > 1 && MPI_Allreduce(MPI_IN_PLACE, &key, 1, MPI_2INT, MPI_MINLOC, d->comm) != MPI_SUCCESS)
    return IL_ERR(IL_ERR_INTERNAL, "MPI_Allreduce(minloc) failed");
  g->nan_origin = key.origin == INT_MAX ? IL_NAN_NONE : key.origin;
  g->nan_iter = g->nan_origin != IL_NAN_NONE ? -key.neg_iter : -1;
  return IL_OK;
}

il_status il_step_reduce(il_dist *d, const il_step_meas *local, il_step_meas *global) {
  const il_step_meas l = *local; /* global may alias local */
  double sum[ST_N], mx[MX_N];
  pack_sums(&l.sum, sum);
  sum[ST_RHO_SUM] = isnan(l.rho_mean) ? 0 : l.rho_mean * l.rho_samples;
  sum[ST_RHO_N] = isnan(l.rho_mean) ? 0 : l.rho_samples;
  pack_maxima(&l, mx);
  IL_CHECK(il_dist_allreduce_sum(d, sum, ST_N, MPI_DOUBLE));
  IL_CHECK(il_max_over_ranks(d, mx, MX_N));
  il_step_meas g = l;
  unpack_sums(sum, &g.sum);
  unpack_maxima(mx, &l, &g);
  g.rho_samples = (int)sum[ST_RHO_N];
  g.rho_mean = isnan(g.rho_max) || !(sum[ST_RHO_N] > 0) ? NAN : sum[ST_RHO_SUM] / sum[ST_RHO_N];
  IL_CHECK(reduce_nan_origin(d, &l, &g));
  *global = g;
  return IL_OK;
}
