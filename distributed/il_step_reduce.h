/* distributed/il_step_reduce.h: one training step's measurements reduced over
 * MPI ranks (libildist). Each rank fills an il_step_meas with what it measured
 * on its shard; il_step_reduce gives every rank the same step-wide values:
 *   - counts and losses are summed (the global batch's totals);
 *   - iterations, reasons, residuals, phase times and diagnostics are the
 *     largest over ranks (the worst rank), and a NaN on any rank stays NaN
 *     (MPI_MAX has no NaN rule, so NaN travels as a separate flag);
 *   - the NaN origin is the earliest in computing order over ranks, and for
 *     it the latest iteration reported (MPI_MINLOC on an integer pair).
 * Depends on core (il_solver.h, il_diag.h) and MPI only. */
#ifndef IL_STEP_REDUCE_H
#define IL_STEP_REDUCE_H

#include "il_dist.h"
#include "il_solver.h"
#include "il_status.h"

/* Counts summed over ranks (exact: they travel as doubles far below 2^53). */
typedef struct il_step_sums {
  double loss_sum;  /* sum of per-sample losses */
  int errors;       /* misclassified samples */
  int samples;      /* rows */
  int nonconverged; /* forward rows whose own residual stayed above tol */
  double jac_reg_sum; /* the Jacobian regulariser's per-row estimates, summed (NaN when not computed) */
} il_step_sums;

/* One training step. Each field says how il_step_reduce combines the ranks. */
typedef struct il_step_meas {
  il_step_sums sum; /* summed */
  /* forward and backward solves: largest over ranks; reasons are ordered
   * converged < max-iter < diverged < non-finite, so the largest is the worst */
  int fwd_iters, bwd_iters;
  il_reason fwd_reason, bwd_reason;
  /* largest over ranks with a non-finite value counting as +inf; a rank whose
   * own residual is not finite keeps its own value */
  double fwd_residual;
  double bwd_residual; /* largest over ranks; NaN when any rank's is NaN (no system solved) */
  /* phase times (s): largest over ranks */
  double t_forward, t_backward, t_wait, t_allreduce, t_update;
  /* diagnostics, NaN when not measured: largest over ranks (grad_cos: smallest,
   * clamped to [-1, 1]), NaN when any rank's is NaN */
  double rho_max, cond_max, grad_cos, grad_relerr, preact_max;
  /* mean spectral radius weighted by rho_samples over ranks whose rho_mean is
   * a number; NaN when rho_max is NaN or no rank measured any row */
  double rho_mean;
  int rho_samples; /* summed over ranks whose rho_mean is a number */
  /* il_nan_origin (IL_NAN_NONE = 0 sorts last) and its iteration (-1 none):
   * the smallest origin over ranks, and the largest iteration among the ranks
   * that report it; nan_iter is -1 when no rank reports an origin */
  int nan_origin, nan_iter;
  /* largest over ranks: a signal number when a rank was asked to stop (SIGTERM, SIGINT), else 0;
   * riding on the step's allreduce, every rank stops after the same step */
  int stop;
} il_step_meas;

/* The step-wide values of *local, the same on every rank. Collective over d;
 * on one rank it applies the same rules without communicating. */
il_status il_step_reduce(il_dist *d, const il_step_meas *local, il_step_meas *global);

/* In-place sum over ranks of one batch's counts (an evaluation batch). Collective. */
il_status il_step_sum_over_ranks(il_dist *d, il_step_sums *s);

/* In-place MPI_MAX over ranks of n doubles (no NaN rule: pass finite values). Collective. */
il_status il_max_over_ranks(il_dist *d, double *v, int n);

#endif
