/* core/backward/backward_phantom.c: inexact gradients that need no adjoint solve.
 *   phantom:K  K damped steps z_{k+1} = (1 - tau) z_k + tau f(z_k) from z_0 = z*,
 *              backpropagated with z* held constant (Geng et al. 2021, "phantom
 *              gradients"); the output is z_K. Options phantom-k (the K, 1..1000,
 *              default 5) and phantom-tau (default 1, as TorchDEQ).
 *   jfb        the Jacobian-free backward (Fung et al. 2022): one undamped step,
 *              out = f(z*), gradient (df/dx, df/dtheta)^T dout, i.e. phantom:1.
 * As K grows (for a contractive f and tau = 1) the phantom gradient approaches
 * the IFT gradient: it is the Neumann series of (I - df/dz)^{-T} cut at K terms.
 * Saved state: 2K (B, n) arrays. The steps themselves (il_phantom_steps) also
 * make the outputs of fixed-point correction's intermediate points. */
#include <math.h>
#include <stdlib.h>

#include "il_layer.h"

typedef struct phantom_state {
  int K;
  double tau;
  il_phantom_tape tape; /* the steps of the last training forward */
} phantom_state;

il_status il_phantom_steps(const il_cell *c, int B, const il_real *x, const il_real *z0, int K, double tau,
                           il_arena *saved, il_arena *hsaved, il_arena *ws, il_phantom_tape *tape, il_real *out) {
  const il_backend *be = c->be;
  const size_t len = (size_t)B * c->n;
  const il_real rtau = (il_real)tau;
  const int train = saved != NULL;
  il_arena *a = train ? saved : ws;
  il_arena_mark m = il_arena_get_mark(ws);
  *tape = (il_phantom_tape){.K = K, .tau = tau};
  if (train) {
    IL_CHECK(il_arena_calloc(hsaved, (size_t)K, sizeof *tape->z, (void **)&tape->z));
    IL_CHECK(il_arena_calloc(hsaved, (size_t)K, sizeof *tape->f, (void **)&tape->f));
  }
  const il_real *zk = z0;
  for (int k = 0; k < K; k++) {
    il_real *fk, *zn;
    IL_CHECK(il_arena_alloc_n(a, len, sizeof *fk, (void **)&fk));
    IL_CHECK(il_cell_map(c, B, x, zk, fk, NULL, ws, NULL));
    if (train) {
      tape->z[k] = zk;
      tape->f[k] = fk;
    }
    if (k == K - 1) zn = out;
    else IL_CHECK(il_arena_alloc_n(a, len, sizeof *zn, (void **)&zn));
    if (rtau == 1) IL_CHECK(il_copy(be, zn, fk, len));
    else IL_CHECK(IL_BE(be, lincomb, len, 1 - rtau, zk, rtau, fk, zn));
    zk = zn;
  }
  if (!train) il_arena_rewind(ws, m);
  return IL_OK;
}

il_status il_phantom_steps_backward(const il_phantom_tape *tape, const il_cell *c, int B,
                                    const unsigned char *zeroed, il_arena *ws, const il_real *dout, il_real *dx,
                                    il_real *dW, int *nan_iter) {
  const il_backend *be = c->be;
  const int n = c->n;
  const size_t len = (size_t)B * n;
  const il_real tau = (il_real)tape->tau;
  if (!tape->z) return IL_ERR(IL_ERR_INTERNAL, "phantom backward: the forward kept no steps");
  il_arena_mark m = il_arena_get_mark(ws);
  il_real *u, *v, *t;
  int fin;
  IL_CHECK(il_arena_alloc_n(ws, len, sizeof *u, (void **)&u));
  IL_CHECK(il_arena_alloc_n(ws, len, sizeof *v, (void **)&v));
  IL_CHECK(il_arena_alloc_n(ws, len, sizeof *t, (void **)&t));
  IL_CHECK(il_copy(be, u, dout, len));
  IL_CHECK(IL_BE(be, row_fill, B, n, zeroed, 1, 0, u));
  *nan_iter = -1;
  for (int k = tape->K - 1; k >= 0; k--) {
    IL_CHECK(IL_BE(be, axpby, len, tau, u, 0, v)); /* v = tau u */
    /* z_0 is a constant: its dz is not needed */
    IL_CHECK(il_cell_vjp(c, B, tape->z[k], tape->f[k], NULL, v, k > 0 ? t : NULL, dx, dW, ws));
    if (k > 0) {
      IL_CHECK(IL_BE(be, lincomb, len, 1 - tau, u, 1, t, u)); /* u = (1 - tau) u + t */
      if (*nan_iter < 0) {
        IL_CHECK(IL_BE(be, all_finite, len, u, &fin)); /* sync point: NaN attribution */
        if (!fin) *nan_iter = k;
      }
    }
  }
  IL_CHECK(IL_BE(be, all_finite, len, u, &fin)); /* sync point */
  if (!fin) *nan_iter = *nan_iter < 0 ? 0 : *nan_iter;
  il_arena_rewind(ws, m);
  return IL_OK;
}

static il_status phantom_make(int K, double tau, void **state, int *keep_lu) {
  phantom_state *st = calloc(1, sizeof *st);
  if (!st) return IL_ERR(IL_ERR_NOMEM, "phantom: cannot allocate state");
  st->K = K;
  st->tau = tau;
  *state = st;
  *keep_lu = 0;
  return IL_OK;
}

static il_status phantom_create(il_options *opt, void **state, int *keep_lu) {
  int K;
  double tau;
  IL_CHECK(il_options_get_int(opt, "phantom-k", 5, 1, 1000, &K));
  IL_CHECK(il_options_get_double(opt, "phantom-tau", 1.0, 1e-6, 1.0, &tau));
  return phantom_make(K, tau, state, keep_lu);
}

static il_status jfb_create(il_options *opt, void **state, int *keep_lu) {
  (void)opt; /* no options: "jfb:3" leaves jfb-k unconsumed, which is reported */
  return phantom_make(1, 1.0, state, keep_lu);
}

static void phantom_destroy(void *state) { free(state); }

static size_t phantom_ws_bytes(void *state, const il_cell *c, int B) {
  const phantom_state *st = state;
  const size_t r = il_ws_round((size_t)B * c->n * sizeof(il_real));
  return (3 + 2 * (size_t)st->K) * r + c->ops->ws_bytes(c, B); /* inference keeps its steps in ws */
}

static il_status phantom_finish(void *state, const il_adjoint *ad, il_real *out) {
  phantom_state *st = state;
  return il_phantom_steps(ad->cell, ad->B, ad->x, ad->zstar, st->K, st->tau, ad->saved, ad->hsaved, ad->ws, &st->tape,
                          out);
}

static il_status phantom_backward(void *state, const il_adjoint *a, const il_real *dout, il_real *dx, il_real *dW,
                                  il_solve_result *bres, int *nan_iter) {
  phantom_state *st = state;
  IL_CHECK(il_phantom_steps_backward(&st->tape, a->cell, a->B, a->zeroed, a->ws, dout, dx, dW, nan_iter));
  *bres = (il_solve_result){.iters = st->K, .residual = NAN, .reason = IL_REASON_CONVERGED, .nonfinite_iter = -1,
                            .cond_max = NAN};
  if (*nan_iter >= 0) {
    bres->reason = IL_REASON_NONFINITE;
    bres->nonfinite_iter = *nan_iter;
  }
  return IL_OK;
}

/* Fixed-point correction takes this mode's own steps for every intermediate point (as TorchDEQ
 * gives all correction terms the same phantom gradient). */
static void phantom_corr_steps(void *state, int *steps, double *tau) {
  const phantom_state *st = state;
  *steps = st->K;
  *tau = st->tau;
}

static const il_option_decl phantom_options[] = {
    {"phantom-k", "K", "phantom:K: number of damped steps, 1..1000", "5", 0, 1},
    {"phantom-tau", "TAU", "damping of the phantom:K steps, in [1e-6, 1]", "1", 1, 0},
    {0},
};

const il_backward_ops il_backward_phantom_ops = {
    .name = "phantom",
    .summary = "phantom:K gradient: backprop through K damped steps from z* (options phantom-k, phantom-tau)",
    .needs_tape = 0,
    .options = phantom_options,
    .create = phantom_create,
    .destroy = phantom_destroy,
    .ws_bytes = phantom_ws_bytes,
    .finish_forward = phantom_finish,
    .backward = phantom_backward,
    .corr_steps = phantom_corr_steps,
    .zstar_detached = 1,
    .trace_info = NULL, /* --trace: no system solved, nothing to record */
};

const il_backward_ops il_backward_jfb_ops = {
    .name = "jfb",
    .summary = "Jacobian-free backward: out = f(z*), gradient through that one step only",
    .needs_tape = 0,
    .create = jfb_create,
    .destroy = phantom_destroy,
    .ws_bytes = phantom_ws_bytes,
    .finish_forward = phantom_finish,
    .backward = phantom_backward,
    .corr_steps = phantom_corr_steps,
    .zstar_detached = 1,
    .trace_info = NULL, /* --trace: no system solved, nothing to record */
};
