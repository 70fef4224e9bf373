/* core/cells/cell_tanh.c: f(z; x, W) = tanh(W z + x), the seed's cell, with
 * the seed's 1/cosh^2 Jacobian as an option (cell_pointwise.c has the ops). */
#include "il_cell.h"

static il_status tanh_setup(il_cell *c, const il_cell_config *cc) {
  c->act = IL_ACT_TANH;
  c->sech2_seed = cc && cc->sech2_seed;
  c->lin_dim = c->sech2_seed ? c->n : 0; /* the seed's sech^2 is evaluated from the pre-activation */
  return IL_OK;
}

const il_cell_ops il_cell_tanh_ops = {
    .name = "tanh",
    .summary = "f = tanh(W z + x), the seed's cell (W: n x n, no bias)",
    .ntheta = il_pw_ntheta,
    .dtheta_zero_at_z0 = 1,
    .setup = tanh_setup,
    .ws_bytes = il_pw_ws_bytes,
    .map = il_pw_map,
    .jac_g = il_pw_jac_g,
    .jvp_z = il_pw_jvp_z,
    .vjp = il_pw_vjp,
    .jvp_vjp = il_pw_jvp_vjp,
    .jac_reg = il_pw_jac_reg,
};
