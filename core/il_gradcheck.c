/* core/il_gradcheck.c: see il_gradcheck.h. The problem is drawn on the host and
 * uploaded; each perturbation uploads one element, so any backend can be checked. */
#include "il_gradcheck.h"

#include <math.h>
#include <stdlib.h>

#include "il_rng.h"

/* The loss sum(C * out) on the host, in index order: out (space) is downloaded into hout. */
static il_status loss_at(il_layer *L, int B, const il_real *x, const il_real *C, il_real *out, il_real *hout,
                         double *loss) {
  const size_t len = (size_t)B * L->cell.n;
  IL_CHECK(il_layer_forward(L, B, x, out, 0));
  IL_CHECK(il_download(L->be, hout, out, len)); /* sync point: the loss */
  double s = 0;
  for (size_t i = 0; i < len; i++) s += (double)C[i] * (double)hout[i];
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

/* Central differences of v's entries (host v, mirrored at dv in the space) into fd: fn gives the
 * quantity at the current values. */
typedef il_status (*gc_value_fn)(void *ctx, double *val);
static il_status central_diff(const il_backend *be, il_real *v, il_real *dv, size_t cnt, double eps, gc_value_fn fn,
                              void *ctx, il_real *fd) {
  for (size_t i = 0; i < cnt; i++) {
    const il_real keep = v[i];
    double lp = 0, lm = 0;
    v[i] = (il_real)(keep + eps);
    IL_CHECK(il_upload(be, dv + i, v + i, 1));
    IL_CHECK(fn(ctx, &lp));
    v[i] = (il_real)(keep - eps);
    IL_CHECK(il_upload(be, dv + i, v + i, 1));
    IL_CHECK(fn(ctx, &lm));
    v[i] = keep;
    IL_CHECK(il_upload(be, dv + i, v + i, 1));
    fd[i] = (il_real)((lp - lm) / (2 * eps));
  }
  return IL_OK;
}

typedef struct gc_ctx {
  il_layer *L;
  int B, K;
  const il_real *x, *probes; /* space */
  const il_real *C;          /* host */
  il_real *out, *hout;
} gc_ctx;

static il_status loss_value(void *p, double *v) {
  gc_ctx *c = p;
  return loss_at(c->L, c->B, c->x, c->C, c->out, c->hout, v);
}

/* R at the training forward's z* and the current W, x */
static il_status reg_value(void *p, double *v) {
  gc_ctx *c = p;
  return il_layer_jac_reg(c->L, c->K, c->probes, (size_t)c->B * c->L->cell.n, 0, NULL, NULL, v);
}

il_status il_gradcheck(const il_gradcheck_config *cfg, const il_backend *be, il_gradcheck_result *res) {
  const int n = cfg->n, B = cfg->B;
  if (n <= 0 || B <= 0 || !(cfg->eps > 0)) return IL_ERR(IL_ERR_ARG, "gradcheck: bad sizes or eps");
  const int jr = cfg->jac_reg > 0, K = jr ? cfg->jac_reg_samples : 0;
  if (!(cfg->jac_reg >= 0) || (jr && K <= 0))
    return IL_ERR(IL_ERR_ARG, "gradcheck: the regulariser needs a weight >= 0 and samples >= 1");
  const size_t nn = (size_t)n * n, len = (size_t)B * n, np = (size_t)K * len;
  res->relerr_reg_x = res->relerr_reg_W = res->reg = NAN;
  /* host: the problem, the analytic gradients downloaded, the finite differences */
  il_real *W = calloc(nn, sizeof *W), *x = calloc(len, sizeof *x), *C = calloc(len, sizeof *C);
  il_real *dx = calloc(len, sizeof *dx), *dW = calloc(nn, sizeof *dW);
  il_real *fx = calloc(len, sizeof *fx), *fW = calloc(nn, sizeof *fW), *hout = calloc(len, sizeof *hout);
  il_real *rx = calloc(len, sizeof *rx), *rW = calloc(nn, sizeof *rW); /* the regulariser's part */
  il_real *frx = calloc(len, sizeof *frx), *frW = calloc(nn, sizeof *frW), *hp = calloc(np + 1, sizeof *hp);
  il_arena sp; /* space tensors: W, x, C, out, dx, dW, the regulariser's dx, dW and probes */
  il_real *dW_, *dx_, *dC, *dout, *ddx, *ddW, *drx, *drW, *dprobe = NULL;
  il_layer L;
  int have_layer = 0;
  il_status s = il_arena_init_for(&sp, be, IL_MEM_WORKSPACE, NULL, 0);
  if (!W || !x || !C || !dx || !dW || !fx || !fW || !hout || !rx || !rW || !frx || !frW || !hp) {
    s = IL_ERR(IL_ERR_NOMEM, "gradcheck: out of memory");
    goto out;
  }
  IL_CHECK_GOTO(s, il_arena_alloc_n(&sp, nn, sizeof *dW_, (void **)&dW_), out);
  IL_CHECK_GOTO(s, il_arena_alloc_n(&sp, len, sizeof *dx_, (void **)&dx_), out);
  IL_CHECK_GOTO(s, il_arena_alloc_n(&sp, len, sizeof *dC, (void **)&dC), out);
  IL_CHECK_GOTO(s, il_arena_alloc_n(&sp, len, sizeof *dout, (void **)&dout), out);
  IL_CHECK_GOTO(s, il_arena_calloc(&sp, len, sizeof *ddx, (void **)&ddx), out);
  IL_CHECK_GOTO(s, il_arena_calloc(&sp, nn, sizeof *ddW, (void **)&ddW), out);
  IL_CHECK_GOTO(s, il_arena_calloc(&sp, len, sizeof *drx, (void **)&drx), out);
  IL_CHECK_GOTO(s, il_arena_calloc(&sp, nn, sizeof *drW, (void **)&drW), out);
  if (jr) IL_CHECK_GOTO(s, il_arena_alloc_n(&sp, np, sizeof *dprobe, (void **)&dprobe), out);
  il_rng r;
  il_rng_seed(&r, cfg->seed);
  for (size_t i = 0; i < nn; i++) W[i] = (il_real)(cfg->scale * (2 * il_rng_uniform(&r) - 1) / sqrt((double)n));
  for (size_t i = 0; i < len; i++) x[i] = (il_real)il_rng_normal(&r);
  for (size_t i = 0; i < len; i++) C[i] = (il_real)il_rng_normal(&r);
  for (size_t i = 0; i < np; i++) hp[i] = il_rng_next(&r) >> 63 ? 1 : -1; /* Rademacher probes */
  IL_CHECK_GOTO(s, il_upload(be, dW_, W, nn), out);
  IL_CHECK_GOTO(s, il_upload(be, dx_, x, len), out);
  IL_CHECK_GOTO(s, il_upload(be, dC, C, len), out);
  if (jr) IL_CHECK_GOTO(s, il_upload(be, dprobe, hp, np), out);
  il_layer_config lc = cfg->layer;
  lc.jac_reg = jr;
  IL_CHECK_GOTO(s, il_layer_create(&L, &lc, be, n, dW_, NULL), out);
  have_layer = 1;
  IL_CHECK_GOTO(s, il_layer_forward(&L, B, dx_, dout, 1), out);
  res->fwd = L.fres;
  IL_CHECK_GOTO(s, il_layer_backward(&L, dC, ddx, ddW), out);
  gc_ctx ctx = {.L = &L, .B = B, .K = K, .x = dx_, .C = C, .probes = dprobe, .out = dout, .hout = hout};
  if (jr) { /* its gradient on its own, then added to the mode's */
    IL_CHECK_GOTO(s, il_layer_jac_reg(&L, K, dprobe, len, (il_real)cfg->jac_reg, drx, drW, &res->reg), out);
    IL_CHECK_GOTO(s, IL_BE(be, axpby, len, 1, drx, 1, ddx), out);
    IL_CHECK_GOTO(s, IL_BE(be, axpby, nn, 1, drW, 1, ddW), out);
    IL_CHECK_GOTO(s, il_download(be, rx, drx, len), out);
    IL_CHECK_GOTO(s, il_download(be, rW, drW, nn), out);
    /* at z* held fixed: every perturbation before the next forward */
    IL_CHECK_GOTO(s, central_diff(be, x, dx_, len, cfg->eps, reg_value, &ctx, frx), out);
    IL_CHECK_GOTO(s, central_diff(be, W, dW_, nn, cfg->eps, reg_value, &ctx, frW), out);
    for (size_t i = 0; i < len; i++) frx[i] = (il_real)(cfg->jac_reg * frx[i]);
    for (size_t i = 0; i < nn; i++) frW[i] = (il_real)(cfg->jac_reg * frW[i]);
    double unused;
    res->relerr_reg_x = rel_err(rx, frx, len, &unused);
    res->relerr_reg_W = rel_err(rW, frW, nn, &unused);
  }
  IL_CHECK_GOTO(s, il_download(be, dx, ddx, len), out);
  IL_CHECK_GOTO(s, il_download(be, dW, ddW, nn), out);
  IL_CHECK_GOTO(s, central_diff(be, x, dx_, len, cfg->eps, loss_value, &ctx, fx), out);
  IL_CHECK_GOTO(s, central_diff(be, W, dW_, nn, cfg->eps, loss_value, &ctx, fW), out);
  for (size_t i = 0; jr && i < len; i++) fx[i] += frx[i];
  for (size_t i = 0; jr && i < nn; i++) fW[i] += frW[i];
  res->relerr_x = rel_err(dx, fx, len, &res->maxabs_x);
  res->relerr_W = rel_err(dW, fW, nn, &res->maxabs_W);
out:
  if (have_layer) il_layer_destroy(&L);
  il_arena_destroy(&sp);
  free(W); free(x); free(C); free(dx); free(dW); free(fx); free(fW); free(hout);
  free(rx); free(rW); free(frx); free(frW); free(hp);
  return s;
}
