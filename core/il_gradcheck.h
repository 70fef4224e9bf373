/* core/il_gradcheck.h: central finite differences against a layer's backward.
 * Loss L = sum(C * layer(x; W)) with random W, x, C; compares the analytic
 * dL/dx and dL/dW with (L(v + eps) - L(v - eps)) / 2eps for every entry.
 * With jac_reg > 0 the loss adds jac_reg * R, R = sum_k sum_b ||eps_kb^T (df/dz)(z*_b)||^2
 * over jac_reg_samples fixed Rademacher probes, whose gradient (il_layer_jac_reg) is taken with
 * z* held fixed: its finite differences perturb W or x at the training forward's z*.
 * Meant for IL_PREC=64, like torch.autograd.gradcheck. */
#ifndef IL_GRADCHECK_H
#define IL_GRADCHECK_H

#include <stdint.h>

#include "il_layer.h"

typedef struct il_gradcheck_config {
  il_layer_config layer;
  int n, B;
  double scale; /* W = scale * U(-1, 1) / sqrt(n), x ~ N(0, 1) */
  double eps;
  uint64_t seed;
  double jac_reg;      /* > 0: add the Jacobian regulariser with this weight (0: off) */
  int jac_reg_samples; /* its probes (>= 1 when jac_reg > 0) */
} il_gradcheck_config;

typedef struct il_gradcheck_result {
  double relerr_x, relerr_W; /* ||g - g_fd||_2 / ||g_fd||_2 */
  double maxabs_x, maxabs_W;
  /* with jac_reg: the regulariser's own part (its gradient against its finite differences at
   * fixed z*) and R itself; NaN without */
  double relerr_reg_x, relerr_reg_W, reg;
  il_solve_result fwd;
} il_gradcheck_result;

#define il_gradcheck IL_P(il_gradcheck)
il_status il_gradcheck(const il_gradcheck_config *cfg, const il_backend *be, il_gradcheck_result *res);

#endif
