/* core/il_gradcheck.h: central finite differences against a layer's backward.
 * Loss L = sum(C * layer(x; W)) with random W, x, C; compares the analytic
 * dL/dx and dL/dW with (L(v + eps) - L(v - eps)) / 2eps for every entry
 * (with a w_norm, dL/dV and dL/dg through W = W(V, g) instead of dL/dW).
 * Meant for IL_PREC=64, like torch.autograd.gradcheck. */
#ifndef IL_GRADCHECK_H
#define IL_GRADCHECK_H

#include <stdint.h>

#include "il_layer.h"
#include "il_wnorm.h"

typedef struct il_gradcheck_config {
  il_layer_config layer;
  int n, B;
  double scale; /* W = scale * U(-1, 1) / sqrt(n), x ~ N(0, 1) */
  double eps;
  uint64_t seed;
  /* W's parameterisation (il_wnorm.h): the W columns then check the parameters V (and g) through
   * W = W(V, g), with spectral's u, v held fixed (after a few power iterations) as its gradient does */
  il_wnorm_kind w_norm;
} il_gradcheck_config;

typedef struct il_gradcheck_result {
  double relerr_x, relerr_W; /* ||g - g_fd||_2 / ||g_fd||_2; W: the weight's parameters (V and g with w_norm) */
  double maxabs_x, maxabs_W;
  il_solve_result fwd;
} il_gradcheck_result;

#define il_gradcheck IL_P(il_gradcheck)
il_status il_gradcheck(const il_gradcheck_config *cfg, const il_backend *be, il_gradcheck_result *res);

#endif
