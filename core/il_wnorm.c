/* core/il_wnorm.c: see il_wnorm.h. Row-major W, V (n, n); vectors are 1 x n rows, so
 * V^T u is the GEMM u^T V and V v is v^T V^T. */
#include "il_wnorm.h"

#include <math.h>

#include "il_rng.h"

#define SN_EPS 1e-12 /* torch's F.normalize eps in spectral_norm */

il_status il_wnorm_init(il_wnorm *w, il_wnorm_kind kind, const il_backend *be, int n, uint64_t seed,
                        il_memstats *stats) {
  memset(w, 0, sizeof *w);
  if (kind != IL_WNORM_NONE && kind != IL_WNORM_WEIGHT && kind != IL_WNORM_SPECTRAL)
    return IL_ERR(IL_ERR_ARG, "w-norm: unknown parameterisation %d (valid: %s)", (int)kind, IL_WNORM_CHOICES);
  if (n <= 0) return IL_ERR(IL_ERR_ARG, "w-norm: size must be positive, got %d", n);
  w->kind = kind;
  w->n = n;
  w->be = be;
  IL_CHECK(il_arena_init_for(&w->state, be, IL_MEM_STATE, stats, 0));
  IL_CHECK(il_arena_init_for(&w->ws, be, IL_MEM_WORKSPACE, stats, 0));
  IL_CHECK(il_arena_init(&w->hws, IL_MEM_WORKSPACE, stats, 0));
  if (kind == IL_WNORM_WEIGHT) {
    IL_CHECK(il_arena_calloc(&w->hws, (size_t)n, sizeof *w->rnorm, (void **)&w->rnorm));
    IL_CHECK(il_arena_calloc(&w->hws, (size_t)n, sizeof *w->hg, (void **)&w->hg));
  }
  if (kind != IL_WNORM_SPECTRAL) return IL_OK;
  IL_CHECK(il_arena_alloc_n(&w->state, (size_t)n, sizeof *w->u, (void **)&w->u));
  IL_CHECK(il_arena_alloc_n(&w->state, (size_t)n, sizeof *w->v, (void **)&w->v));
  il_arena_mark m = il_arena_get_mark(&w->hws);
  il_real *h;
  IL_CHECK(il_arena_alloc_n(&w->hws, 2 * (size_t)n, sizeof *h, (void **)&h));
  il_rng r;
  il_rng_seed(&r, seed);
  for (int k = 0; k < 2; k++) { /* u, then v: normalize(N(0, I)) */
    double s = 0;
    for (int i = 0; i < n; i++) {
      const double x = il_rng_normal(&r);
      h[k * n + i] = (il_real)x;
      s += x * x;
    }
    const double inv = 1 / fmax(sqrt(s), SN_EPS);
    for (int i = 0; i < n; i++) h[k * n + i] = (il_real)(h[k * n + i] * inv);
  }
  il_status st = il_wnorm_set_state(w, h);
  il_arena_rewind(&w->hws, m);
  return st;
}

void il_wnorm_destroy(il_wnorm *w) {
  il_arena_destroy(&w->state);
  il_arena_destroy(&w->ws);
  il_arena_destroy(&w->hws);
}

il_status il_wnorm_get_state(const il_wnorm *w, il_real *host) {
  if (w->kind != IL_WNORM_SPECTRAL) return IL_OK;
  IL_CHECK(il_download(w->be, host, w->u, (size_t)w->n));
  return il_download(w->be, host + w->n, w->v, (size_t)w->n);
}

il_status il_wnorm_set_state(il_wnorm *w, const il_real *host) {
  if (w->kind != IL_WNORM_SPECTRAL) return IL_OK;
  IL_CHECK(il_upload(w->be, w->u, host, (size_t)w->n));
  return il_upload(w->be, w->v, host + w->n, (size_t)w->n);
}

/* ||V_i|| into w->rnorm (sync point) */
static il_status row_norms(il_wnorm *w, const il_real *V) {
  const int n = w->n;
  IL_CHECK(IL_BE(w->be, row_sqdist, n, n, V, NULL, w->rnorm));
  for (int i = 0; i < n; i++) w->rnorm[i] = sqrt(w->rnorm[i]);
  return IL_OK;
}

il_status il_wnorm_init_g(il_wnorm *w, const il_real *V, il_real *g) {
  if (w->kind != IL_WNORM_WEIGHT) return IL_OK;
  const int n = w->n;
  IL_CHECK(row_norms(w, V));
  il_arena_mark m = il_arena_get_mark(&w->hws);
  il_real *h;
  IL_CHECK(il_arena_alloc_n(&w->hws, (size_t)n, sizeof *h, (void **)&h));
  for (int i = 0; i < n; i++) h[i] = (il_real)w->rnorm[i];
  il_status s = il_upload(w->be, g, h, (size_t)n);
  il_arena_rewind(&w->hws, m);
  return s;
}

/* x (n) <- x / max(||x||, eps), as torch's F.normalize (sync point: the norm) */
static il_status normalize(il_wnorm *w, il_real *x) {
  double sq;
  IL_CHECK(IL_BE(w->be, sqdist, (size_t)w->n, x, NULL, &sq));
  return IL_BE(w->be, lincomb, (size_t)w->n, (il_real)(1 / fmax(sqrt(sq), SN_EPS)), x, 0, x, x);
}

static il_status spectral_forward(il_wnorm *w, const il_real *V, int power, il_real *W) {
  const il_backend *be = w->be;
  const int n = w->n;
  il_arena_mark m = il_arena_get_mark(&w->ws);
  il_real *t;
  IL_CHECK(il_arena_alloc_n(&w->ws, (size_t)n, sizeof *t, (void **)&t));
  if (power) {
    IL_CHECK(IL_BE(be, gemm, 0, 0, 1, n, n, 1, w->u, n, V, n, 0, w->v, n)); /* v = V^T u */
    IL_CHECK(normalize(w, w->v));
    IL_CHECK(IL_BE(be, gemm, 0, 1, 1, n, n, 1, w->v, n, V, n, 0, w->u, n)); /* u = V v */
    IL_CHECK(normalize(w, w->u));
  }
  IL_CHECK(IL_BE(be, gemm, 0, 1, 1, n, n, 1, w->v, n, V, n, 0, t, n)); /* t = V v */
  const il_real *up = w->u;
  IL_CHECK(IL_BE(be, row_dot, 1, n, 1, &up, t, &w->sigma)); /* sync point: sigma = u^T V v */
  il_arena_rewind(&w->ws, m);
  return IL_BE(be, lincomb, (size_t)n * n, (il_real)(1 / w->sigma), V, 0, V, W);
}

static il_status weight_forward(il_wnorm *w, const il_real *V, const il_real *g, il_real *W) {
  const il_backend *be = w->be;
  const int n = w->n;
  const il_arena_mark md = il_arena_get_mark(&w->ws), mh = il_arena_get_mark(&w->hws);
  il_real *hs, *s;
  IL_CHECK(il_arena_alloc_n(&w->hws, (size_t)n, sizeof *hs, (void **)&hs));
  IL_CHECK(il_arena_alloc_n(&w->ws, (size_t)n, sizeof *s, (void **)&s));
  IL_CHECK(row_norms(w, V));
  IL_CHECK(il_download(be, hs, g, (size_t)n)); /* sync point: g for the scales */
  for (int i = 0; i < n; i++) {
    w->hg[i] = (double)hs[i];
    hs[i] = (il_real)(w->hg[i] / w->rnorm[i]);
  }
  IL_CHECK(il_upload(be, s, hs, (size_t)n));
  IL_CHECK(IL_BE(be, row_lincomb, n, n, 1, s, V, 0, NULL, W)); /* W_i = (g_i / ||V_i||) V_i */
  il_arena_rewind(&w->ws, md);
  il_arena_rewind(&w->hws, mh);
  return IL_OK;
}

il_status il_wnorm_forward(il_wnorm *w, const il_real *V, const il_real *g, int power, il_real *W) {
  if (w->kind == IL_WNORM_SPECTRAL) return spectral_forward(w, V, power, W);
  if (w->kind == IL_WNORM_WEIGHT) return weight_forward(w, V, g, W);
  return il_copy(w->be, W, V, (size_t)w->n * w->n);
}

/* W = V / sigma, sigma = u^T V v: dV = dW / sigma - (<dW, V> / sigma^2) u v^T */
static il_status spectral_backward(il_wnorm *w, const il_real *V, const il_real *dW, il_real *dV) {
  const il_backend *be = w->be;
  const int n = w->n;
  const size_t nn = (size_t)n * n;
  double cmp[4];
  IL_CHECK(IL_BE(be, compare, nn, dW, V, cmp)); /* sync point: <dW, V> */
  const double sg = w->sigma;
  IL_CHECK(IL_BE(be, axpby, nn, (il_real)(1 / sg), dW, 1, dV));
  return IL_BE(be, gemm, 0, 0, n, n, 1, (il_real)(-cmp[0] / (sg * sg)), w->u, 1, w->v, n, 1, dV, n);
}

/* W_i = s_i V_i, s_i = g_i / r_i, r_i = ||V_i||, c_i = <dW_i, V_i>:
 * dg_i = c_i / r_i, dV_i = s_i dW_i - (g_i c_i / r_i^3) V_i */
static il_status weight_backward(il_wnorm *w, const il_real *V, const il_real *dW, il_real *dV, il_real *dg) {
  const il_backend *be = w->be;
  const int n = w->n;
  const il_arena_mark md = il_arena_get_mark(&w->ws), mh = il_arena_get_mark(&w->hws);
  double *c;
  il_real *hcoef, *hdg, *coef, *tdg;
  IL_CHECK(il_arena_alloc_n(&w->hws, (size_t)n, sizeof *c, (void **)&c));
  IL_CHECK(il_arena_alloc_n(&w->hws, 2 * (size_t)n, sizeof *hcoef, (void **)&hcoef));
  IL_CHECK(il_arena_alloc_n(&w->hws, (size_t)n, sizeof *hdg, (void **)&hdg));
  IL_CHECK(il_arena_alloc_n(&w->ws, 2 * (size_t)n, sizeof *coef, (void **)&coef));
  IL_CHECK(il_arena_alloc_n(&w->ws, (size_t)n, sizeof *tdg, (void **)&tdg));
  const il_real *vp = V;
  IL_CHECK(IL_BE(be, row_dot, n, n, 1, &vp, dW, c)); /* sync point: <dW_i, V_i> */
  for (int i = 0; i < n; i++) {
    const double r = w->rnorm[i], gi = w->hg[i];
    hcoef[2 * i] = (il_real)(gi / r);
    hcoef[2 * i + 1] = (il_real)(-gi * c[i] / (r * r * r));
    hdg[i] = (il_real)(c[i] / r);
  }
  IL_CHECK(il_upload(be, coef, hcoef, 2 * (size_t)n));
  IL_CHECK(il_upload(be, tdg, hdg, (size_t)n));
  const il_real *X[2] = {dW, V};
  IL_CHECK(IL_BE(be, row_combine, n, n, 2, X, coef, 1, dV));
  IL_CHECK(IL_BE(be, axpby, (size_t)n, 1, tdg, 1, dg));
  il_arena_rewind(&w->ws, md);
  il_arena_rewind(&w->hws, mh);
  return IL_OK;
}

il_status il_wnorm_backward(il_wnorm *w, const il_real *V, const il_real *dW, il_real *dV, il_real *dg) {
  if (w->kind == IL_WNORM_SPECTRAL) return spectral_backward(w, V, dW, dV);
  if (w->kind == IL_WNORM_WEIGHT) return weight_backward(w, V, dW, dV, dg);
  return IL_BE(w->be, axpby, (size_t)w->n * w->n, 1, dW, 1, dV);
}
