/* core/backward/backward_unroll.c: backprop through every stored iterate (and,
 * for Newton, every linear solve), as autograd does for the seed's layers.
 * The output is the solver's z* itself. With --trace the replay records the
 * norm of the cotangent entering each replayed iteration: for fp these are the
 * terms of the truncated Neumann series, what the fp adjoint's residual is. */
#include <math.h>

#include "il_layer.h"

static il_status unroll_finish(void *state, const il_adjoint *a, il_real *out) {
  (void)state;
  return il_copy(a->be, out, a->zstar, (size_t)a->B * a->cell->n);
}

static size_t unroll_ws_bytes(void *state, const il_cell *c, int B) {
  (void)state;
  return il_ws_round((size_t)B * c->n * sizeof(il_real));
}

static il_status unroll_backward(void *state, const il_adjoint *a, const il_real *dout, il_real *dx, il_real *dW,
                                 il_solve_result *bres, int *nan_iter) {
  (void)state;
  const il_backend *be = a->be;
  const int n = a->cell->n;
  const size_t len = (size_t)a->B * n;
  il_arena_mark m = il_arena_get_mark(a->ws);
  il_real *dz;
  IL_CHECK(il_arena_alloc_n(a->ws, len, sizeof *dz, (void **)&dz));
  IL_CHECK(il_copy(be, dz, dout, len));
  IL_CHECK(IL_BE(be, row_fill, a->B, n, a->zeroed, 1, 0, dz)); /* rows zeroed in the forward carry no gradient */
  il_problem p = *a->fprob; /* the forward's problem, recording into the backward's trace */
  p.trace = a->trace;
  IL_CHECK(a->sops->unroll_backward(a->sstate, &p, dz, dx, dW));
  *bres = (il_solve_result){.iters = a->fwd_iters, .residual = 0, .reason = IL_REASON_CONVERGED, .nonfinite_iter = -1,
                            .cond_max = NAN};
  *nan_iter = a->sops->unroll_nan_step ? a->sops->unroll_nan_step(a->sstate) : -1;
  if (*nan_iter >= 0) {
    bres->reason = IL_REASON_NONFINITE;
    bres->nonfinite_iter = *nan_iter;
  }
  il_arena_rewind(a->ws, m);
  return IL_OK;
}

/* --trace: one cotangent norm per replayed forward iteration. */
static int unroll_trace_info(void *state, int fwd_max_iter, int adjoint_refine, const char **solver) {
  (void)state, (void)adjoint_refine;
  *solver = "unroll";
  return fwd_max_iter;
}

const il_backward_ops il_backward_unroll_ops = {
    .name = "unroll",
    .summary = "backprop through every iterate and linear solve (autograd semantics)",
    .needs_tape = 1,
    .create = NULL,
    .destroy = NULL,
    .ws_bytes = unroll_ws_bytes,
    .finish_forward = unroll_finish,
    .backward = unroll_backward,
    .corr_steps = NULL, /* no correction terms: see il_layer_correction.c */
    .zstar_detached = 0,
    .trace_info = unroll_trace_info,
};
