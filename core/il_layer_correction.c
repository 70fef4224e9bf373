/* core/il_layer_correction.c: fixed-point correction, the layer's part (the
 * model weighs the points' losses, il_model.c). The DEQ correction loss of
 * Bai et al., "Deep Equilibrium Optical Flow Estimation" (CVPR 2022), and
 * TorchDEQ's fp_correction over a trajectory sampled with n_states: besides z*,
 * K-1 iterates of the forward solve are supervised, each through a short
 * phantom gradient of its own. With cfg.fp_correction = K > 1, in training:
 *
 * Which iterates. The stopping test of the solve checks iterates c_1 .. c_M,
 * whatever the solver (fp: z_j after j maps; anderson: f of its j-th mix;
 * newton, broyden: the point whose residual the j-th check measured, the first
 * being the start), and c_M is the solve's result. Point k = 1 .. K-1 is c_{j_k},
 *   j_k = s * round(k M / (K s)), halves rounded up, clamped to [1, M],
 * with s the smallest power of two such that floor((M - 1) / s) <= 4K; j_k = M
 * stands for z* itself (after zeroing, or the lowest-residual iterate with
 * --best), and point K is z*. For M <= 4K + 1 (s = 1) this is exactly
 * j_k = round(k M / K); a longer solve puts each point within s/2 < M / (4K)
 * checks of k M / K. That grid is what lets the solve keep at most 4K + 1
 * iterates (il_corr_points, solver_corr_points.c) instead of all M, and still find every
 * c_{j_k}. With per-sample stopping M is the largest over every row and every
 * process (a stopped row stays constant, so later checks give it its own z*).
 *
 * Outputs and gradient. Point k's output is y_k = Phi^P(c_{j_k}), P damped steps
 * Phi(z) = (1 - tau) z + tau f(z) from c_{j_k} held constant; (P, tau) come from
 * the backward mode: phantom:K its K and tau, jfb (1, 1), implicit (1, 1), as
 * TorchDEQ gives every correction term the same phantom gradient and keeps IFT
 * for z*. The gradient of y_k is backprop through those P steps (the phantom
 * gradient), c_{j_k} a constant. Rows zeroed as non-converged give y_k = 0 and
 * carry no gradient, as z* does. unroll takes no correction (il_corr_setup). */
#include "il_layer_correction.h"

#include <limits.h>
#include <math.h>
#include <string.h>

#define CORR_MAX 100 /* points */
#define CORR_GRID 4  /* the points kept: CORR_GRID K + 1 iterates */

int il_corr_index(int M, int K, int k) {
  if (M < 1) return 1;
  long s = 1;
  while ((M - 1) / s > (long)CORR_GRID * K) s *= 2;
  long j = s * ((2L * k * M + (long)K * s) / (2L * K * s));
  return (int)(j < 1 ? 1 : j > M ? M : j);
}

il_status il_corr_setup(il_layer *L, const il_layer_config *cfg) {
  const int K = cfg->fp_correction;
  L->corr_K = 1;
  if (K < 0) return IL_ERR(IL_ERR_ARG, "fixed-point correction: %d points (0 or 1: off, 2..%d)", K, CORR_MAX);
  if (K <= 1) return IL_OK;
  if (K > CORR_MAX) return IL_ERR(IL_ERR_ARG, "fixed-point correction: %d points (at most %d)", K, CORR_MAX);
  if (!L->bops->corr_steps)
    return IL_ERR(IL_ERR_UNSUPPORTED,
                  "fixed-point correction is not defined with backward '%s': it backpropagates z* through every "
                  "solver step as autograd does, while correction terms start from iterates held constant; "
                  "supervising the iterates through the unrolled chain would be another loss (deep supervision). "
                  "Use implicit, phantom:K or jfb", L->bops->name);
  L->bops->corr_steps(L->bstate, &L->corr_steps, &L->corr_tau);
  L->corr_K = K;
  return IL_OK;
}

size_t il_corr_ws_bytes(const il_layer *L, int B, size_t fwd, size_t bwd) {
  if (L->corr_K <= 1) return 0;
  const size_t len = il_ws_round((size_t)B * L->cell.n * sizeof(il_real));
  /* the steps with inference's buffers in ws (held evaluation); their backward takes 3 arrays */
  const size_t steps = (3 + 2 * (size_t)L->corr_steps) * len + L->cell.ops->ws_bytes(&L->cell, B);
  /* held evaluation's new z*: the array, its zero mask, then the solve or the mode's output step */
  const size_t held = len + il_ws_round((size_t)B) + (fwd > bwd ? fwd : bwd);
  return steps > held ? steps : held;
}

il_status il_corr_begin(il_layer *L) {
  return il_corr_points_begin(&L->corr_points, CORR_GRID * L->corr_K + 1, &L->saved, &L->hsaved);
}

static int any_zeroed(const il_layer *L) {
  for (int b = 0; b < L->B; b++)
    if (L->zeroed[b]) return 1;
  return 0;
}

il_status il_corr_forward(il_layer *L, il_real *const *corr) {
  const int K = L->corr_K, B = L->B, n = L->cell.n;
  const int M_here = L->corr_points.checks;
  int M = M_here;
  if (L->cfg.stop_per_sample && L->prob.reduce.max) { /* processes stopped at different checks */
    const double g = L->prob.reduce.max(L->prob.reduce.ctx, (double)M);
    if (g >= M && g < INT_MAX) M = (int)g;
  }
  L->corr_M = M;
  IL_CHECK(il_arena_calloc(&L->hsaved, (size_t)K - 1, sizeof *L->corr_j, (void **)&L->corr_j));
  IL_CHECK(il_arena_calloc(&L->hsaved, (size_t)K - 1, sizeof *L->corr_pt, (void **)&L->corr_pt));
  IL_CHECK(il_arena_calloc(&L->hsaved, (size_t)K - 1, sizeof *L->corr_tape, (void **)&L->corr_tape));
  const int zero = any_zeroed(L);
  for (int k = 1; k < K; k++) {
    const int j = il_corr_index(M, K, k);
    const il_real *pt = L->zstar; /* j at or past this process's last check: its rows have stopped at z* */
    if (j < M_here && !(pt = il_corr_points_at(&L->corr_points, j)))
      return IL_ERR(IL_ERR_INTERNAL, "fixed-point correction: iterate %d of %d was not kept (stride %d)", j, M,
                    L->corr_points.stride);
    L->corr_j[k - 1] = j;
    L->corr_pt[k - 1] = pt;
    IL_CHECK(il_phantom_steps(&L->cell, B, L->prob.x, pt, L->corr_steps, L->corr_tau, &L->saved, &L->hsaved, &L->ws,
                              &L->corr_tape[k - 1], corr[k - 1]));
    if (zero) IL_CHECK(IL_BE(L->be, row_fill, B, n, L->zeroed_d, 1, 0, corr[k - 1]));
  }
  return IL_OK;
}

il_status il_corr_backward(il_layer *L, const il_real *const *dcorr, il_real *dx, il_real *dW) {
  if (!L->corr_tape) return IL_ERR(IL_ERR_INTERNAL, "fixed-point correction: backward without its training forward");
  for (int k = 0; k < L->corr_K - 1; k++) {
    if (!dcorr[k]) continue;
    int ni;
    IL_CHECK(il_phantom_steps_backward(&L->corr_tape[k], &L->cell, L->B, L->zeroed_d, &L->ws, dcorr[k], dx, dW, &ni));
  }
  return IL_OK;
}

il_status il_layer_eval_held(il_layer *L, const il_real *x, il_real *out, il_real *const *corr) {
  if (L->team) return IL_ERR(IL_ERR_UNSUPPORTED, "held evaluation runs on one thread (a gradient check's)");
  if (!L->train) return IL_ERR(IL_ERR_ARG, "held evaluation needs a training forward first");
  if (L->corr_K > 1 && (!L->corr_pt || !corr))
    return IL_ERR(IL_ERR_ARG, "held evaluation: the correction points or their output buffers are missing");
  const il_backend *be = L->be;
  const int B = L->B, n = L->cell.n;
  const size_t len = (size_t)B * n;
  const int zero = any_zeroed(L);
  for (int k = 0; k < L->corr_K - 1; k++) {
    il_phantom_tape tape;
    IL_CHECK(il_phantom_steps(&L->cell, B, x, L->corr_pt[k], L->corr_steps, L->corr_tau, NULL, NULL, &L->ws, &tape,
                              corr[k]));
    if (zero) IL_CHECK(IL_BE(be, row_fill, B, n, L->zeroed_d, 1, 0, corr[k]));
  }
  il_adjoint ad = L->adj;
  ad.x = x;
  ad.saved = ad.hsaved = NULL;
  if (L->bops->zstar_detached) { /* the training forward's z* and zero rows */
    IL_CHECK(L->bops->finish_forward(L->bstate, &ad, out));
    if (zero) IL_CHECK(IL_BE(be, row_fill, B, n, L->zeroed_d, 1, 0, out));
    return IL_OK;
  }
  /* z* depends on x and W: solve it again, with training's tolerance and limit, as the forward did */
  il_marks m = il_marks_get(&L->ws, &L->hws);
  il_status s = IL_OK;
  il_real *z;
  double *rows;
  unsigned char *zh, *zd;
  il_solve_result res;
  IL_CHECK(il_arena_calloc(&L->ws, len, sizeof *z, (void **)&z));
  IL_CHECK(il_arena_calloc(&L->ws, (size_t)B, 1, (void **)&zd));
  IL_CHECK(il_arena_calloc(&L->hws, (size_t)B, sizeof *rows, (void **)&rows));
  IL_CHECK(il_arena_calloc(&L->hws, (size_t)B, 1, (void **)&zh));
  il_problem p = L->prob;
  p.x = x;
  p.saved = p.hsaved = p.keep = NULL;
  p.trace = NULL; /* a held evaluation records neither residuals nor points */
  p.corr = NULL;
  p.diag = 0;
  IL_CHECK_GOTO(s, L->sops->solve(L->sstate, &p, z, rows, &res), out);
  int nzero = 0;
  if (L->zero_rows)
    for (int b = 0; b < B; b++)
      if (!(rows[b] <= res.tol_abs)) zh[b] = 1, nzero++;
  if (nzero) {
    IL_CHECK_GOTO(s, IL_BE(be, copy, IL_COPY_TO_SPACE, zd, zh, (size_t)B), out);
    IL_CHECK_GOTO(s, IL_BE(be, row_fill, B, n, zd, 1, 0, z), out);
  }
  ad.zstar = z;
  ad.zeroed = zd;
  ad.hzeroed = zh;
  IL_CHECK_GOTO(s, L->bops->finish_forward(L->bstate, &ad, out), out);
  if (nzero) IL_CHECK_GOTO(s, IL_BE(be, row_fill, B, n, zd, 1, 0, out), out);
out:
  il_marks_rewind(&L->ws, &L->hws, m);
  return s;
}
