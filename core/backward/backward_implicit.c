/* core/backward/backward_implicit.c: implicit-function-theorem backward, as the
 * seed's TanhNewtonImplicitLayer. The forward re-engages once: out = f(z*).
 * Backward solves (I - df/dz)^T u = dL/dout with LU, then pushes u through f:
 * dx += (df/dx)^T u, dtheta += (df/dtheta)^T u. The LU of the solver's last
 * step is reused when there is one (Newton, like the seed's hook, whose J is
 * from the last step z_{K-1}), refined against the Jacobian at z* (up to
 * --adjoint-refine corrections; 0 gives the seed's gradient exactly);
 * otherwise the Jacobian is factored at z*.
 * Saved state is z*, f(z*) and one LU: independent of the iteration count. */
#include <math.h>
#include <string.h>

#include "il_layer.h"

static il_status implicit_finish(il_layer *L, const il_real *zstar, il_real *out) {
  il_cell *c = &L->cell;
  IL_CHECK(c->ops->map(c, L->B, L->prob.x, zstar, out, NULL, &L->ws));
  if (L->train) { /* keep f(z*) for backward: `out` belongs to the caller */
    il_real *f;
    IL_CHECK(il_arena_calloc(&L->saved, (size_t)L->B * c->n, sizeof *f, (void **)&f));
    memcpy(f, out, (size_t)L->B * c->n * sizeof *f);
    L->out = f;
  }
  return IL_OK;
}

static il_status implicit_backward(il_layer *L, const il_real *dout, il_real *dx, il_real *dW) {
  il_cell *c = &L->cell;
  const il_backend *be = c->be;
  const int B = L->B, n = c->n;
  const size_t len = (size_t)B * n;
  il_arena_mark m = il_arena_get_mark(&L->ws);
  il_status s = IL_OK;
  const il_real *lu = NULL;
  const int *ipiv = NULL;
  il_real *u, *r;
  IL_CHECK(il_arena_calloc(&L->ws, len, sizeof *u, (void **)&u));
  IL_CHECK(il_arena_calloc(&L->ws, len, sizeof *r, (void **)&r));
  memcpy(u, dout, len * sizeof *u);
  for (int b = 0; b < B; b++)
    if (L->zeroed[b]) memset(u + (size_t)b * n, 0, (size_t)n * sizeof *u);
  memcpy(r, u, len * sizeof *r); /* keep the right-hand side for the residual */

  if (!L->sops->last_lu || L->sops->last_lu(L->sstate, &lu, &ipiv) != IL_OK) {
    il_real *J;
    int *piv, *info;
    IL_CHECK_GOTO(s, il_arena_calloc(&L->ws, len * (size_t)n, sizeof *J, (void **)&J), out);
    IL_CHECK_GOTO(s, il_arena_calloc(&L->ws, len, sizeof *piv, (void **)&piv), out);
    IL_CHECK_GOTO(s, il_arena_calloc(&L->ws, (size_t)B, sizeof *info, (void **)&info), out);
    IL_CHECK_GOTO(s, c->ops->jac_g(c, B, L->zstar, L->out, NULL, J, &L->ws), out);
    IL_CHECK_GOTO(s, be->lu_factor_batched(B, n, J, piv, info), out);
    lu = J;
    ipiv = piv;
  }
  IL_CHECK_GOTO(s, be->lu_solve_batched(1, B, n, lu, ipiv, u), out); /* u = J^{-T} dout */

  /* Iterative refinement against the Jacobian at z* itself. The reused LU is
   * from z_{K-1}, off by O(||z_K - z_{K-1}||); each correction
   *   u += LU^{-T} (dout - J*^T u),  J*^T u = u - (df/dz)^T u  (one GEMM)
   * shrinks the error by that factor, so the gradient is the exact IFT one. */
  {
    il_real *t, *corr; /* residual / correction; the last correction applied to u */
    IL_CHECK_GOTO(s, il_arena_calloc(&L->ws, len, sizeof *t, (void **)&t), out);
    IL_CHECK_GOTO(s, il_arena_calloc(&L->ws, len, sizeof *corr, (void **)&corr), out);
    double rhs = 0;
    for (size_t i = 0; i < len; i++) rhs += (double)r[i] * (double)r[i];
    rhs = sqrt(rhs);
    const double target = 100 * IL_EPS * (rhs > 0 ? rhs : 1);
    L->bres = (il_solve_result){.iters = 1, .reason = IL_REASON_MAX_ITER};
    for (int k = 0;; k++) {
      IL_CHECK_GOTO(s, c->ops->vjp(c, B, L->zstar, L->out, NULL, u, t, NULL, NULL, &L->ws), out);
      double acc = 0;
      for (size_t i = 0; i < len; i++) {
        t[i] = r[i] - (u[i] - t[i]); /* residual of the adjoint system */
        acc += (double)t[i] * (double)t[i];
      }
      double res = sqrt(acc);
      if (!isfinite(res)) { L->bres.reason = IL_REASON_NONFINITE; L->bres.residual = res; break; }
      if (k > 0 && !(res < 0.5 * L->bres.residual)) {
        /* the last correction did not help (rounding level, or an LU too far from J(z*)): undo it */
        for (size_t i = 0; i < len; i++) u[i] -= corr[i];
        L->bres.iters--;
        break;
      }
      L->bres.residual = res;
      if (res <= target) { L->bres.reason = IL_REASON_CONVERGED; break; }
      if (k == L->cfg.adjoint_refine) break;
      IL_CHECK_GOTO(s, be->lu_solve_batched(1, B, n, lu, ipiv, t), out);
      for (size_t i = 0; i < len; i++) { u[i] += t[i]; corr[i] = t[i]; }
      L->bres.iters++;
    }
  }
  IL_CHECK_GOTO(s, c->ops->vjp(c, B, L->zstar, L->out, NULL, u, NULL, dx, dW, &L->ws), out);
out:
  il_arena_rewind(&L->ws, m);
  return s;
}

const il_backward_ops il_backward_implicit_ops = {
    .name = "implicit",
    .summary = "implicit function theorem: solve (I - df/dz)^T u = dL/dz* by LU",
    .needs_tape = 0,
    .keeps_lu = 1,
    .finish_forward = implicit_finish,
    .backward = implicit_backward,
};
