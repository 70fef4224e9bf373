/* core/cells/cell_tanh.c: f(z; x, W) = tanh(W z + x), the seed's cell.
 * Batched row-major: A (B, n) = Z W^T + X. With s = sech^2(A) = 1 - f^2:
 *   df/dz = diag(s) W,  (df/dz)^T u = W^T (s*u),  dW += (s*u)^T Z,  dx += s*u.
 * Second order (Newton unrolled): d/da s = -2 s f, so for w^T diag(s) W d:
 *   dW += (s*w) d^T,  a_bar = w * (W d) * (-2 s f),  dz += a_bar W, dx += a_bar, dW += a_bar^T Z.
 *
 * sech2_seed (--sech2 seed): the Jacobian used by Newton is built as the seed
 * builds it, s = 1 / cosh(a)^2 (reciprocal of a square, as PyTorch evaluates
 * `1 / torch.cosh(a)**2`), and its second-order term is differentiated as
 * autograd does, through reciprocal, pow and cosh:
 *   q_bar = -s_bar * s^2,  p_bar = q_bar * 2 p,  a_bar = p_bar * sinh(a),  p = cosh(a).
 * In float32 cosh overflows for |a| > 89.4: s = 1/inf = 0, and p_bar = 0 * inf
 * = NaN. The map, its vjp and the diagnostics stay on 1 - f^2, as the seed's
 * tanh autograd does. This mode needs the pre-activation a, kept in `lin`. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "il_cell.h"

static il_status tanh_map(const il_cell *c, int B, const il_real *x, const il_real *z, il_real *f,
                          il_real *lin, il_arena *ws) {
  const int n = c->n;
  const size_t len = (size_t)B * n;
  /* f <- x, then f += Z W^T, then tanh in place: no scratch needed */
  for (size_t i = 0; i < len; i++) f[i] = x[i];
  c->be->gemm(0, 1, B, n, n, 1, z, n, c->theta, n, 1, f, n);
  if (lin) memcpy(lin, f, len * sizeof *f); /* the pre-activation: --sech2 seed needs it, diagnostics read it */
  c->be->tanh_sech2(len, f, f, NULL);
  return IL_OK;
}

static void sech2_from_f(size_t len, const il_real *f, il_real *s) {
  for (size_t i = 0; i < len; i++) s[i] = 1 - f[i] * f[i];
}

#if IL_PREC == 32
#define il_cosh coshf
#define il_sinh sinhf
#else
#define il_cosh cosh
#define il_sinh sinh
#endif

/* The seed's s = 1 / cosh(a)^2, each operation rounded in working precision. */
static void sech2_seed(size_t len, const il_real *a, il_real *s) {
  for (size_t i = 0; i < len; i++) {
    const il_real p = il_cosh(a[i]), q = p * p;
    s[i] = (il_real)1 / q;
  }
}

static il_status need_lin(const il_cell *c, const il_real *lin) {
  if (c->sech2_seed && !lin)
    return IL_ERR(IL_ERR_INTERNAL, "tanh cell: --sech2 seed needs the pre-activation, but the caller passed none");
  return IL_OK;
}

static il_status tanh_jac_g(const il_cell *c, int B, const il_real *z, const il_real *f, const il_real *lin,
                            il_real *J, il_arena *ws) {
  il_arena_mark m = il_arena_get_mark(ws);
  il_real *s;
  IL_CHECK(need_lin(c, lin));
  IL_CHECK(il_arena_alloc_n(ws, (size_t)B * c->n, sizeof *s, (void **)&s));
  if (c->sech2_seed) sech2_seed((size_t)B * c->n, lin, s);
  else sech2_from_f((size_t)B * c->n, f, s);
  c->be->eye_minus_diag_w(B, c->n, s, c->theta, J);
  il_arena_rewind(ws, m);
  return IL_OK;
}

static il_status tanh_jvp_z(const il_cell *c, int B, const il_real *z, const il_real *f, const il_real *lin,
                            const il_real *v, il_real *out, il_arena *ws) {
  const int n = c->n;
  const size_t len = (size_t)B * n;
  c->be->gemm(0, 1, B, n, n, 1, v, n, c->theta, n, 0, out, n); /* out = V W^T */
  for (size_t i = 0; i < len; i++) out[i] *= 1 - f[i] * f[i];
  return IL_OK;
}

static il_status tanh_vjp(const il_cell *c, int B, const il_real *z, const il_real *f, const il_real *lin,
                          const il_real *u, il_real *dz, il_real *dx, il_real *dtheta, il_arena *ws) {
  const int n = c->n;
  const size_t len = (size_t)B * n;
  il_arena_mark m = il_arena_get_mark(ws);
  il_real *p; /* (B, n) = s * u, the cotangent on the pre-activation */
  IL_CHECK(il_arena_alloc_n(ws, len, sizeof *p, (void **)&p));
  for (size_t i = 0; i < len; i++) p[i] = (1 - f[i] * f[i]) * u[i];
  if (dz) c->be->gemm(0, 0, B, n, n, 1, p, n, c->theta, n, 0, dz, n);           /* dz = P W */
  if (dx) c->be->axpby(len, 1, p, 1, dx);                                         /* dx += P */
  if (dtheta) c->be->gemm(1, 0, n, n, B, 1, p, n, z, n, 1, dtheta, n);           /* dW += P^T Z */
  il_arena_rewind(ws, m);
  return IL_OK;
}

static il_status tanh_jvp_vjp(const il_cell *c, int B, const il_real *z, const il_real *f, const il_real *lin,
                              const il_real *d, const il_real *w, il_real *dz, il_real *dx, il_real *dtheta,
                              il_arena *ws) {
  const int n = c->n;
  const size_t len = (size_t)B * n;
  il_arena_mark m = il_arena_get_mark(ws);
  il_real *q, *sw;
  IL_CHECK(need_lin(c, lin));
  IL_CHECK(il_arena_alloc_n(ws, len, sizeof *q, (void **)&q));
  IL_CHECK(il_arena_alloc_n(ws, len, sizeof *sw, (void **)&sw));
  c->be->gemm(0, 1, B, n, n, 1, d, n, c->theta, n, 0, q, n); /* q = D W^T: rows are W d_b */
  if (c->sech2_seed) {
    for (size_t i = 0; i < len; i++) {
      const il_real p = il_cosh(lin[i]), qq = p * p, s = (il_real)1 / qq;
      const il_real s_bar = w[i] * q[i];
      sw[i] = s * w[i];
      const il_real q_bar = -s_bar * (s * s); /* reciprocal backward: -grad * result^2 */
      const il_real p_bar = q_bar * (2 * p);  /* pow(., 2) backward: 0 * inf = NaN on overflow */
      q[i] = p_bar * il_sinh(lin[i]);         /* cosh backward */
    }
  } else {
    for (size_t i = 0; i < len; i++) {
      il_real s = 1 - f[i] * f[i];
      sw[i] = s * w[i];
      q[i] = w[i] * q[i] * (-2 * s * f[i]); /* a_bar, reusing q */
    }
  }
  if (dtheta) {
    c->be->gemm(1, 0, n, n, B, 1, sw, n, d, n, 1, dtheta, n); /* dW += (s*w)^T D */
    c->be->gemm(1, 0, n, n, B, 1, q, n, z, n, 1, dtheta, n);  /* dW += A_bar^T Z */
  }
  if (dz) c->be->gemm(0, 0, B, n, n, 1, q, n, c->theta, n, 1, dz, n); /* dz += A_bar W */
  if (dx) c->be->axpby(len, 1, q, 1, dx);
  il_arena_rewind(ws, m);
  return IL_OK;
}

static const il_cell_ops tanh_ops = {
    .name = "tanh",
    .map = tanh_map,
    .jac_g = tanh_jac_g,
    .jvp_z = tanh_jvp_z,
    .vjp = tanh_vjp,
    .jvp_vjp = tanh_jvp_vjp,
};

il_status il_cell_tanh_init(il_cell *c, const il_backend *be, int n, const il_real *W, int sech2_seed) {
  if (n <= 0) return IL_ERR(IL_ERR_ARG, "tanh cell: n must be positive, got %d", n);
  c->ops = &tanh_ops;
  c->be = be;
  c->n = n;
  c->lin_dim = sech2_seed ? n : 0;
  c->theta = W;
  c->ntheta = (size_t)n * n;
  c->sech2_seed = sech2_seed;
  return IL_OK;
}
