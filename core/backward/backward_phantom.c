/* core/backward/backward_phantom.c: inexact gradients that need no adjoint solve.
 *   phantom:K  K damped steps z_{k+1} = (1 - tau) z_k + tau f(z_k) from z_0 = z*,
 *              backpropagated with z* held constant (Geng et al. 2021, "phantom
 *              gradients"); the output is z_K. Options phantom-k (the K, 1..1000,
 *              default 5) and phantom-tau (default 1, as TorchDEQ).
 *   jfb        the Jacobian-free backward (Fung et al. 2022): one undamped step,
 *              out = f(z*), gradient (df/dx, df/dtheta)^T dout, i.e. phantom:1.
 * As K grows (for a contractive f and tau = 1) the phantom gradient approaches
 * the IFT gradient: it is the Neumann series of (I - df/dz)^{-T} cut at K terms.
 * Saved state: 2K (B, n) arrays. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "il_layer.h"

typedef struct phantom_state {
  int K;
  double tau;
  il_real **z, **f; /* z_0 .. z_{K-1} and f(z_k), in L->saved */
} phantom_state;

static il_status phantom_make(il_layer *L, int K, double tau) {
  phantom_state *st = calloc(1, sizeof *st);
  if (!st) return IL_ERR(IL_ERR_NOMEM, "phantom: cannot allocate state");
  st->K = K;
  st->tau = tau;
  L->bstate = st;
  L->keep_lu = 0;
  return IL_OK;
}

static il_status phantom_create(il_layer *L, il_options *opt) {
  int K;
  double tau;
  IL_CHECK(il_options_get_int(opt, "phantom-k", 5, 1, 1000, &K));
  IL_CHECK(il_options_get_double(opt, "phantom-tau", 1.0, 1e-6, 1.0, &tau));
  return phantom_make(L, K, tau);
}

static il_status jfb_create(il_layer *L, il_options *opt) {
  (void)opt; /* no options: "jfb:3" leaves jfb-k unconsumed, which is reported */
  return phantom_make(L, 1, 1.0);
}

static void phantom_destroy(il_layer *L) { free(L->bstate); }

static il_status phantom_finish(il_layer *L, const il_real *zstar, il_real *out) {
  phantom_state *st = L->bstate;
  il_cell *c = &L->cell;
  const size_t len = (size_t)L->B * c->n;
  const il_real tau = (il_real)st->tau;
  il_arena *a = L->train ? &L->saved : &L->ws;
  il_arena_mark m = il_arena_get_mark(&L->ws);
  st->z = st->f = NULL;
  if (L->train) {
    IL_CHECK(il_arena_calloc(&L->saved, (size_t)st->K, sizeof *st->z, (void **)&st->z));
    IL_CHECK(il_arena_calloc(&L->saved, (size_t)st->K, sizeof *st->f, (void **)&st->f));
  }
  const il_real *zk = zstar;
  for (int k = 0; k < st->K; k++) {
    il_real *fk, *zn;
    IL_CHECK(il_arena_alloc_n(a, len, sizeof *fk, (void **)&fk));
    IL_CHECK(c->ops->map(c, L->B, L->prob.x, zk, fk, NULL, &L->ws));
    if (L->train) {
      st->z[k] = (il_real *)zk;
      st->f[k] = fk;
    }
    if (k == st->K - 1) zn = out;
    else IL_CHECK(il_arena_alloc_n(a, len, sizeof *zn, (void **)&zn));
    if (tau == 1) memcpy(zn, fk, len * sizeof *zn);
    else for (size_t i = 0; i < len; i++) zn[i] = (1 - tau) * zk[i] + tau * fk[i];
    zk = zn;
  }
  if (!L->train) il_arena_rewind(&L->ws, m);
  return IL_OK;
}

static il_status phantom_backward(il_layer *L, const il_real *dout, il_real *dx, il_real *dW) {
  phantom_state *st = L->bstate;
  il_cell *c = &L->cell;
  const il_backend *be = c->be;
  const int n = c->n;
  const size_t len = (size_t)L->B * n;
  const il_real tau = (il_real)st->tau;
  if (!st->z) return IL_ERR(IL_ERR_INTERNAL, "phantom backward: the forward kept no steps");
  il_arena_mark m = il_arena_get_mark(&L->ws);
  il_real *u, *v, *t;
  IL_CHECK(il_arena_alloc_n(&L->ws, len, sizeof *u, (void **)&u));
  IL_CHECK(il_arena_alloc_n(&L->ws, len, sizeof *v, (void **)&v));
  IL_CHECK(il_arena_alloc_n(&L->ws, len, sizeof *t, (void **)&t));
  memcpy(u, dout, len * sizeof *u);
  for (int b = 0; b < L->B; b++)
    if (L->zeroed[b]) memset(u + (size_t)b * n, 0, (size_t)n * sizeof *u);
  L->bwd_nan_iter = -1;
  for (int k = st->K - 1; k >= 0; k--) {
    for (size_t i = 0; i < len; i++) v[i] = tau * u[i];
    /* z_0 = z* is a constant: its dz is not needed */
    IL_CHECK(c->ops->vjp(c, L->B, st->z[k], st->f[k], NULL, v, k > 0 ? t : NULL, dx, dW, &L->ws));
    if (k > 0) {
      for (size_t i = 0; i < len; i++) u[i] = (1 - tau) * u[i] + t[i];
      if (L->bwd_nan_iter < 0 && !be->all_finite(len, u)) L->bwd_nan_iter = k;
    }
  }
  L->bres = (il_solve_result){.iters = st->K, .residual = NAN, .reason = IL_REASON_CONVERGED, .nonfinite_iter = -1,
                              .cond_max = NAN};
  if (!be->all_finite(len, u)) L->bwd_nan_iter = L->bwd_nan_iter < 0 ? 0 : L->bwd_nan_iter;
  if (L->bwd_nan_iter >= 0) {
    L->bres.reason = IL_REASON_NONFINITE;
    L->bres.nonfinite_iter = L->bwd_nan_iter;
  }
  il_arena_rewind(&L->ws, m);
  return IL_OK;
}

const il_backward_ops il_backward_phantom_ops = {
    .name = "phantom",
    .summary = "phantom:K gradient: backprop through K damped steps from z* (options phantom-k, phantom-tau)",
    .needs_tape = 0,
    .option_keys = "phantom-k,phantom-tau",
    .create = phantom_create,
    .destroy = phantom_destroy,
    .finish_forward = phantom_finish,
    .backward = phantom_backward,
};

const il_backward_ops il_backward_jfb_ops = {
    .name = "jfb",
    .summary = "Jacobian-free backward: out = f(z*), gradient through that one step only",
    .needs_tape = 0,
    .option_keys = "",
    .create = jfb_create,
    .destroy = phantom_destroy,
    .finish_forward = phantom_finish,
    .backward = phantom_backward,
};
