/* core/il_gradcheck.h: central finite differences against a layer's backward.
 * Loss L = sum(C * layer(x; W)) with random W, x, C; compares the analytic
 * dL/dx and dL/dW with (L(v + eps) - L(v - eps)) / 2eps for every entry
 * (with a w_norm, dL/dV and dL/dg through W = W(V, g) instead of dL/dW).
 * With jac_reg > 0 the loss adds jac_reg * R, R = sum_k sum_b ||eps_kb^T (df/dz)(z*_b)||^2
 * over jac_reg_samples fixed Rademacher probes, whose gradient (il_layer_jac_reg) is taken with
 * z* held fixed: its finite differences perturb W (or V, g: W re-formed) or x at the training
 * forward's z*.
 * Meant for IL_PREC=64, like torch.autograd.gradcheck. */
#ifndef IL_GRADCHECK_H
#define IL_GRADCHECK_H

#include <stdint.h>

#include "il_layer.h"
#include "il_wnorm.h"
#include "il_model.h"

typedef struct il_gradcheck_config {
  il_layer_config layer;
  int n, B;
  double scale; /* W = scale * U(-1, 1) / sqrt(n), x ~ N(0, 1) */
  double eps;
  uint64_t seed;
  double jac_reg;      /* > 0: add the Jacobian regulariser with this weight (0: off) */
  int jac_reg_samples; /* its probes (>= 1 when jac_reg > 0) */
  /* W's parameterisation (il_wnorm.h): the W columns then check the parameters V (and g) through
   * W = W(V, g), with spectral's u, v held fixed (after a few power iterations) as its gradient does */
  il_wnorm_kind w_norm;
} il_gradcheck_config;

typedef struct il_gradcheck_result {
  double relerr_x, relerr_W; /* ||g - g_fd||_2 / ||g_fd||_2; W: the weight's parameters (V and g with w_norm) */
  double maxabs_x, maxabs_W;
  /* with jac_reg: the regulariser's own part (its gradient against its finite differences at
   * fixed z*; W: the weight's parameters, as above) and R itself; NaN without */
  double relerr_reg_x, relerr_reg_W, reg;
  il_solve_result fwd;
} il_gradcheck_result;

#define il_gradcheck IL_P(il_gradcheck)
il_status il_gradcheck(const il_gradcheck_config *cfg, const il_backend *be, il_gradcheck_result *res);

/* Fixed-point correction (il_model.c, il_layer_correction.c): the model's whole training loss, the
 * output's and the weighted intermediate points' cross-entropies, on a small random model and batch,
 * against central differences in every parameter (W1, b1; W, the layer's theta; W2, b2, the head)
 * and in the input X. The differences hold what the definition holds constant at the training
 * forward's values: the selected iterates, and z* where the backward mode detaches it (phantom,
 * jfb); with implicit z* is solved again. no_hold = 1 differentiates the full re-run forward
 * instead, the points moving with the parameters: a check that must then fail. */
typedef struct il_gradcheck_corr_config {
  il_layer_config layer; /* fp_correction = K > 1 */
  double gamma;
  int in_dim, n, classes, B;
  double eps;
  uint64_t seed;
  int no_hold;
} il_gradcheck_corr_config;

typedef struct il_gradcheck_corr_result {
  double relerr_x, relerr_W, relerr_head, relerr_in; /* X; W; W2 and b2; W1 and b1 */
  double loss;      /* the minimised loss (mean over the batch) */
  int M;            /* checks of the training solve */
  il_solve_result fwd;
} il_gradcheck_corr_result;

#define il_gradcheck_corr IL_P(il_gradcheck_corr)
il_status il_gradcheck_corr(const il_gradcheck_corr_config *cfg, const il_backend *be, il_gradcheck_corr_result *res);

#endif
