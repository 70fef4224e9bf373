/* core/cells/cell_relu.c: f(z; x, W) = relu(W z + x). A fixed point exists and
 * fp converges when ||W|| < 1; df/dz = diag(a > 0) W is piecewise constant, so
 * Newton's unrolled second-order term vanishes, as does the Jacobian regulariser's term
 * through s (its gradient flows through W alone). (cell_pointwise.c has the ops.) */
#include "il_cell.h"

static il_status relu_setup(il_cell *c, const il_cell_config *cc) {
  if (cc && cc->sech2_seed)
    return IL_ERR(IL_ERR_UNSUPPORTED, "the seed's sech^2 Jacobian belongs to the tanh cell, not relu");
  c->act = IL_ACT_RELU;
  c->sech2_seed = 0;
  c->lin_dim = 0;
  return IL_OK;
}

const il_cell_ops il_cell_relu_ops = {
    .name = "relu",
    .summary = "f = relu(W z + x) (W: n x n, no bias)",
    .ntheta = il_pw_ntheta,
    .dtheta_zero_at_z0 = 1,
    .setup = relu_setup,
    .ws_bytes = il_pw_ws_bytes,
    .map = il_pw_map,
    .jac_g = il_pw_jac_g,
    .jvp_z = il_pw_jvp_z,
    .vjp = il_pw_vjp,
    .jvp_vjp = il_pw_jvp_vjp,
    .jac_reg = il_pw_jac_reg,
};
