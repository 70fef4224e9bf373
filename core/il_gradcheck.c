/* core/il_gradcheck.c: see il_gradcheck.h. */
#include "il_gradcheck.h"

#include <math.h>
#include <stdlib.h>

#include "il_rng.h"

static il_status loss_at(il_layer *L, int B, const il_real *x, const il_real *C, il_real *out, double *loss) {
  IL_CHECK(il_layer_forward(L, B, x, out, 0));
  double s = 0;
  for (size_t i = 0; i < (size_t)B * L->cell.n; i++) s += (double)C[i] * (double)out[i];
  *loss = s;
  return IL_OK;
}

static double rel_err(const il_real *a, const il_real *b, size_t n, double *maxabs) {
  double num = 0, den = 0;
  *maxabs = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)a[i] - (double)b[i];
    num += d * d;
    den += (double)b[i] * (double)b[i];
    if (fabs(d) > *maxabs || d != d) *maxabs = fabs(d);
  }
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

il_status il_gradcheck(const il_gradcheck_config *cfg, const il_backend *be, il_gradcheck_result *res) {
  const int n = cfg->n, B = cfg->B;
  if (n <= 0 || B <= 0 || !(cfg->eps > 0)) return IL_ERR(IL_ERR_ARG, "gradcheck: bad sizes or eps");
  const size_t nn = (size_t)n * n, len = (size_t)B * n;
  il_real *W = calloc(nn, sizeof *W), *x = calloc(len, sizeof *x), *C = calloc(len, sizeof *C);
  il_real *out = calloc(len, sizeof *out), *dx = calloc(len, sizeof *dx), *dW = calloc(nn, sizeof *dW);
  il_real *fx = calloc(len, sizeof *fx), *fW = calloc(nn, sizeof *fW);
  il_layer L;
  int have_layer = 0;
  il_status s = IL_OK;
  if (!W || !x || !C || !out || !dx || !dW || !fx || !fW) {
    s = IL_ERR(IL_ERR_NOMEM, "gradcheck: out of memory");
    goto out;
  }
  il_rng r;
  il_rng_seed(&r, cfg->seed);
  for (size_t i = 0; i < nn; i++) W[i] = (il_real)(cfg->scale * (2 * il_rng_uniform(&r) - 1) / sqrt((double)n));
  for (size_t i = 0; i < len; i++) x[i] = (il_real)il_rng_normal(&r);
  for (size_t i = 0; i < len; i++) C[i] = (il_real)il_rng_normal(&r);
  IL_CHECK_GOTO(s, il_layer_create(&L, &cfg->layer, be, n, W, NULL), out);
  have_layer = 1;
  IL_CHECK_GOTO(s, il_layer_forward(&L, B, x, out, 1), out);
  res->fwd = L.fres;
  IL_CHECK_GOTO(s, il_layer_backward(&L, C, dx, dW), out);
  for (int which = 0; which < 2; which++) {
    il_real *v = which ? W : x, *fd = which ? fW : fx;
    const size_t cnt = which ? nn : len;
    for (size_t i = 0; i < cnt; i++) {
      const il_real keep = v[i];
      double lp = 0, lm = 0;
      v[i] = (il_real)(keep + cfg->eps);
      IL_CHECK_GOTO(s, loss_at(&L, B, x, C, out, &lp), out);
      v[i] = (il_real)(keep - cfg->eps);
      IL_CHECK_GOTO(s, loss_at(&L, B, x, C, out, &lm), out);
      v[i] = keep;
      fd[i] = (il_real)((lp - lm) / (2 * cfg->eps));
    }
  }
  res->relerr_x = rel_err(dx, fx, len, &res->maxabs_x);
  res->relerr_W = rel_err(dW, fW, nn, &res->maxabs_W);
out:
  if (have_layer) il_layer_destroy(&L);
  free(W); free(x); free(C); free(out); free(dx); free(dW); free(fx); free(fW);
  return s;
}
