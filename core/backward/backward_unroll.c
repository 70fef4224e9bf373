/* core/backward/backward_unroll.c: backprop through every stored iterate (and,
 * for Newton, every linear solve), as autograd does for the seed's layers.
 * The output is the solver's z* itself. */
#include <math.h>
#include <string.h>

#include "il_layer.h"

static il_status unroll_finish(il_layer *L, const il_real *zstar, il_real *out) {
  memcpy(out, zstar, (size_t)L->B * L->cell.n * sizeof *out);
  return IL_OK;
}

static il_status unroll_backward(il_layer *L, const il_real *dout, il_real *dx, il_real *dW) {
  const int n = L->cell.n;
  const size_t len = (size_t)L->B * n;
  il_arena_mark m = il_arena_get_mark(&L->ws);
  il_real *dz;
  IL_CHECK(il_arena_calloc(&L->ws, len, sizeof *dz, (void **)&dz));
  memcpy(dz, dout, len * sizeof *dz);
  for (int b = 0; b < L->B; b++) /* rows zeroed in the forward carry no gradient */
    if (L->zeroed[b]) memset(dz + (size_t)b * n, 0, (size_t)n * sizeof *dz);
  IL_CHECK(L->sops->unroll_backward(L->sstate, &L->prob, dz, dx, dW));
  L->bres = (il_solve_result){.iters = L->fres.iters, .residual = 0, .reason = IL_REASON_CONVERGED,
                              .nonfinite_iter = -1, .cond_max = NAN};
  if (L->sops->unroll_nan_step) L->bwd_nan_iter = L->sops->unroll_nan_step(L->sstate);
  if (L->bwd_nan_iter >= 0) {
    L->bres.reason = IL_REASON_NONFINITE;
    L->bres.nonfinite_iter = L->bwd_nan_iter;
  }
  il_arena_rewind(&L->ws, m);
  return IL_OK;
}

const il_backward_ops il_backward_unroll_ops = {
    .name = "unroll",
    .summary = "backprop through every iterate and linear solve (autograd semantics)",
    .needs_tape = 1,
    .option_keys = "",
    .create = NULL,
    .destroy = NULL,
    .finish_forward = unroll_finish,
    .backward = unroll_backward,
};
