/* core/cells/cell_pointwise.c: the ops of pointwise cells f(z; x, W) = act(W z + x)
 * (tanh, the seed's cell, and relu), on backend ops only.
 * Batched row-major: A (B, n) = Z W^T + X. With s = act'(A), evaluated from f:
 *   df/dz = diag(s) W,  (df/dz)^T u = W^T (s*u),  dW += (s*u)^T Z,  dx += s*u.
 * Second order (Newton unrolled), with s' = ds/da (tanh: -2 s f; relu: 0), for w^T diag(s) W d:
 *   dW += (s*w) d^T,  a_bar = w * (W d) * s',  dz += a_bar W, dx += a_bar, dW += a_bar^T Z.
 * Jacobian regulariser, z fixed: with p = s*eps, r = p^T W (a row of R = P W), L = sum_b ||r_b||^2:
 *   dL/dW = 2 P^T R (through W itself) + a_bar^T Z,  dL/dx = a_bar,  a_bar = eps * (2 R W^T) * s'
 * (through s's dependence on the pre-activation; tanh s' = -2 f s, relu 0), i.e. twice
 * the second-order term above with d = r, w = eps.
 *
 * sech2_seed (--sech2 seed, tanh only): the Jacobian used by Newton is built as
 * the seed builds it, s = 1 / cosh(a)^2 (reciprocal of a square, as PyTorch
 * evaluates `1 / torch.cosh(a)**2`), and its second-order term is
 * differentiated as autograd does, through reciprocal, pow and cosh:
 *   q_bar = -s_bar * s^2,  p_bar = q_bar * 2 p,  a_bar = p_bar * sinh(a),  p = cosh(a).
 * In float32 cosh overflows for |a| > 89.4: s = 1/inf = 0, and p_bar = 0 * inf
 * = NaN. The map, its vjp and the diagnostics stay on 1 - f^2, as the seed's
 * tanh autograd does. This mode needs the pre-activation a, kept in `lin`. */
#include "il_cell.h"

size_t il_pw_ntheta(int n) { return (size_t)n * n; }

size_t il_pw_ws_bytes(const il_cell *c, int B) { return 2 * il_ws_round((size_t)B * c->n * sizeof(il_real)); }

il_status il_pw_map(const il_cell *c, int B, const il_real *x, const il_real *z, il_real *f, il_real *lin,
                    il_arena *ws, double *row_res) {
  (void)ws;
  /* f = act(Z W^T + x); lin: the pre-activation (--sech2 seed needs it, diagnostics read it) */
  const il_epilogue ep = {.add = x, .act = c->act, .pre = lin, .res_ref = row_res ? z : NULL, .res_rows = row_res};
  return IL_BE(c->be, gemm_ep, B, c->n, c->n, z, c->theta, &ep, f);
}

static il_status need_lin(const il_cell *c, const il_real *lin) {
  if (c->sech2_seed && !lin)
    return IL_ERR(IL_ERR_INTERNAL, "tanh cell: --sech2 seed needs the pre-activation, but the caller passed none");
  return IL_OK;
}

il_status il_pw_jac_g(const il_cell *c, int B, const il_real *z, const il_real *f, const il_real *lin, il_lu *J,
                      il_arena *ws) {
  (void)z;
  const il_backend *be = c->be;
  il_arena_mark m = il_arena_get_mark(ws);
  il_real *s; /* (B, n) */
  IL_CHECK(need_lin(c, lin));
  IL_CHECK(il_arena_alloc_n(ws, (size_t)B * c->n, sizeof *s, (void **)&s));
  if (c->sech2_seed) IL_CHECK(IL_BE(be, sech2_seed, (size_t)B * c->n, lin, s));
  else IL_CHECK(IL_BE(be, act_deriv, (size_t)B * c->n, c->act, f, s));
  IL_CHECK(IL_BE(be, jac_eye_minus_diag_w, B, c->n, s, c->theta, J));
  il_arena_rewind(ws, m);
  return IL_OK;
}

il_status il_pw_jvp_z(const il_cell *c, int B, const il_real *z, const il_real *f, const il_real *lin,
                      const il_real *v, il_real *out, il_arena *ws) {
  (void)z, (void)lin, (void)ws;
  const int n = c->n;
  IL_CHECK(IL_BE(c->be, gemm, 0, 1, B, n, n, 1, v, n, c->theta, n, 0, out, n)); /* out = V W^T */
  return IL_BE(c->be, act_dmul, (size_t)B * n, c->act, f, out, out);            /* out = s * out */
}

il_status il_pw_vjp(const il_cell *c, int B, const il_real *z, const il_real *f, const il_real *lin, const il_real *u,
                    il_real *dz, il_real *dx, il_real *dtheta, il_arena *ws) {
  (void)lin;
  const il_backend *be = c->be;
  const int n = c->n;
  const size_t len = (size_t)B * n;
  il_arena_mark m = il_arena_get_mark(ws);
  il_real *p; /* (B, n) = s * u, the cotangent on the pre-activation */
  IL_CHECK(il_arena_alloc_n(ws, len, sizeof *p, (void **)&p));
  IL_CHECK(IL_BE(be, act_dmul, len, c->act, f, u, p));
  if (dz) IL_CHECK(IL_BE(be, gemm, 0, 0, B, n, n, 1, p, n, c->theta, n, 0, dz, n)); /* dz = P W */
  if (dx) IL_CHECK(IL_BE(be, axpby, len, 1, p, 1, dx));                             /* dx += P */
  if (dtheta) IL_CHECK(IL_BE(be, gemm, 1, 0, n, n, B, 1, p, n, z, n, 1, dtheta, n)); /* dW += P^T Z */
  il_arena_rewind(ws, m);
  return IL_OK;
}

il_status il_pw_jvp_vjp(const il_cell *c, int B, const il_real *z, const il_real *f, const il_real *lin,
                        const il_real *d, const il_real *w, il_real *dz, il_real *dx, il_real *dtheta, il_arena *ws) {
  const il_backend *be = c->be;
  const int n = c->n;
  const size_t len = (size_t)B * n;
  il_arena_mark m = il_arena_get_mark(ws);
  il_real *q, *sw; /* (B, n) */
  IL_CHECK(need_lin(c, lin));
  IL_CHECK(il_arena_alloc_n(ws, len, sizeof *q, (void **)&q));
  IL_CHECK(il_arena_alloc_n(ws, len, sizeof *sw, (void **)&sw));
  IL_CHECK(IL_BE(be, gemm, 0, 1, B, n, n, 1, d, n, c->theta, n, 0, q, n)); /* q = D W^T: rows are W d_b */
  if (c->sech2_seed) IL_CHECK(IL_BE(be, sech2_seed_d2, len, lin, w, q, sw)); /* q <- a_bar, as autograd */
  else IL_CHECK(IL_BE(be, act_d2, len, c->act, f, w, q, sw));                /* q <- a_bar */
  if (dtheta) {
    IL_CHECK(IL_BE(be, gemm, 1, 0, n, n, B, 1, sw, n, d, n, 1, dtheta, n)); /* dW += (s*w)^T D */
    IL_CHECK(IL_BE(be, gemm, 1, 0, n, n, B, 1, q, n, z, n, 1, dtheta, n));  /* dW += A_bar^T Z */
  }
  if (dz) IL_CHECK(IL_BE(be, gemm, 0, 0, B, n, n, 1, q, n, c->theta, n, 1, dz, n)); /* dz += A_bar W */
  if (dx) IL_CHECK(IL_BE(be, axpby, len, 1, q, 1, dx));
  il_arena_rewind(ws, m);
  return IL_OK;
}

il_status il_pw_jac_reg(const il_cell *c, int B, const il_real *z, const il_real *f, const il_real *eps, il_real scale,
                        double *sq, il_real *dx, il_real *dtheta, il_arena *ws) {
  const il_backend *be = c->be;
  const int n = c->n;
  const size_t len = (size_t)B * n;
  il_arena_mark m = il_arena_get_mark(ws);
  il_real *p, *r; /* (B, n): p = s * eps, then the cotangent on the pre-activation; R = P W, then scratch */
  IL_CHECK(il_arena_alloc_n(ws, len, sizeof *p, (void **)&p));
  IL_CHECK(il_arena_alloc_n(ws, len, sizeof *r, (void **)&r));
  IL_CHECK(IL_BE(be, act_dmul, len, c->act, f, eps, p));                      /* p = s * eps (stable s) */
  IL_CHECK(IL_BE(be, gemm, 0, 0, B, n, n, 1, p, n, c->theta, n, 0, r, n));     /* R = P W: rows eps_b^T J_b */
  IL_CHECK(IL_BE(be, row_sqdist, B, n, r, NULL, sq));                          /* sync point: ||r_b||^2 */
  if (dx || dtheta) {
    const il_real two = 2 * scale;
    if (dtheta) IL_CHECK(IL_BE(be, gemm, 1, 0, n, n, B, two, p, n, r, n, 1, dtheta, n)); /* dW += 2 P^T R */
    IL_CHECK(IL_BE(be, gemm, 0, 1, B, n, n, two, r, n, c->theta, n, 0, p, n));          /* p = 2 R W^T */
    IL_CHECK(IL_BE(be, act_d2, len, c->act, f, eps, p, r));                  /* p <- a_bar (r: s * eps, unused) */
    if (dtheta) IL_CHECK(IL_BE(be, gemm, 1, 0, n, n, B, 1, p, n, z, n, 1, dtheta, n)); /* dW += A_bar^T Z */
    if (dx) IL_CHECK(IL_BE(be, axpby, len, 1, p, 1, dx));                             /* dx += A_bar */
  }
  il_arena_rewind(ws, m);
  return IL_OK;
}
