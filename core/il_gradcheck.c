/* core/il_gradcheck.c: see il_gradcheck.h. The problem is drawn on the host and
 * uploaded; each perturbation uploads one element, so any backend can be checked. */
#include "il_gradcheck.h"

#include <math.h>
#include <stdlib.h>

#include "il_rng.h"

#define GC_POWER_ITERS 5 /* spectral: u, v moved this far before they are held fixed */

/* The loss sum(C * out) on the host, in index order: out (space) is downloaded into hout.
 * wn: W re-formed from its parameters first (u, v fixed), or NULL. */
static il_status loss_at(il_layer *L, il_wnorm *wn, const il_real *V, const il_real *g, il_real *Wl, int B,
                         const il_real *x, const il_real *C, il_real *out, il_real *hout, double *loss) {
  const size_t len = (size_t)B * L->cell.n;
  if (wn) IL_CHECK(il_wnorm_forward(wn, V, g, 0, Wl));
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
  il_wnorm *wn;          /* W = W(V, g) re-formed before each value, or NULL (the parameters are W) */
  const il_real *V, *g;  /* space: the weight's parameters (g NULL but for weight) */
  il_real *W;            /* space: the layer's W */
  int B, K;
  const il_real *x, *probes; /* space */
  const il_real *C;          /* host */
  il_real *out, *hout;
} gc_ctx;

static il_status loss_value(void *p, double *v) {
  gc_ctx *c = p;
  return loss_at(c->L, c->wn, c->V, c->g, c->W, c->B, c->x, c->C, c->out, c->hout, v);
}

/* R at the training forward's z* and the current W(V, g), x */
static il_status reg_value(void *p, double *v) {
  gc_ctx *c = p;
  if (c->wn) IL_CHECK(il_wnorm_forward(c->wn, c->V, c->g, 0, c->W));
  return il_layer_jac_reg(c->L, c->K, c->probes, (size_t)c->B * c->L->cell.n, 0, NULL, NULL, v);
}

il_status il_gradcheck(const il_gradcheck_config *cfg, const il_backend *be, il_gradcheck_result *res) {
  const int n = cfg->n, B = cfg->B;
  if (n <= 0 || B <= 0 || !(cfg->eps > 0)) return IL_ERR(IL_ERR_ARG, "gradcheck: bad sizes or eps");
  const int jr = cfg->jac_reg > 0, K = jr ? cfg->jac_reg_samples : 0;
  if (!(cfg->jac_reg >= 0) || (jr && K <= 0))
    return IL_ERR(IL_ERR_ARG, "gradcheck: the regulariser needs a weight >= 0 and samples >= 1");
  const size_t nn = (size_t)n * n, len = (size_t)B * n, nprobe = (size_t)K * len;
  const int wnk = cfg->w_norm != IL_WNORM_NONE;
  const size_t np = nn + il_wnorm_extra(cfg->w_norm, n); /* the weight's parameters: W, or V (and g) */
  res->relerr_reg_x = res->relerr_reg_W = res->reg = NAN;
  /* host: the problem, the analytic gradients downloaded, the finite differences */
  il_real *P = calloc(np, sizeof *P), *x = calloc(len, sizeof *x), *C = calloc(len, sizeof *C);
  il_real *dx = calloc(len, sizeof *dx), *dP = calloc(np, sizeof *dP);
  il_real *fx = calloc(len, sizeof *fx), *fP = calloc(np, sizeof *fP), *hout = calloc(len, sizeof *hout);
  il_real *rx = calloc(len, sizeof *rx), *rP = calloc(np, sizeof *rP); /* the regulariser's part */
  il_real *frx = calloc(len, sizeof *frx), *frP = calloc(np, sizeof *frP), *hp = calloc(nprobe + 1, sizeof *hp);
  /* space tensors: P, W, x, C, out, dx, dW, dP, the regulariser's dx, dW, dP and probes */
  il_arena sp;
  il_real *dP_, *dW_, *dx_, *dC, *dout, *ddx, *ddW, *ddP, *drx, *drW, *drP, *dprobe = NULL;
  il_layer L;
  il_wnorm wn;
  int have_layer = 0, have_wn = 0;
  il_status s = il_arena_init_for(&sp, be, IL_MEM_WORKSPACE, NULL, 0);
  if (!P || !x || !C || !dx || !dP || !fx || !fP || !hout || !rx || !rP || !frx || !frP || !hp) {
    s = IL_ERR(IL_ERR_NOMEM, "gradcheck: out of memory");
    goto out;
  }
  IL_CHECK_GOTO(s, il_arena_alloc_n(&sp, np, sizeof *dP_, (void **)&dP_), out);
  dW_ = dP_;
  if (wnk) IL_CHECK_GOTO(s, il_arena_alloc_n(&sp, nn, sizeof *dW_, (void **)&dW_), out);
  IL_CHECK_GOTO(s, il_arena_alloc_n(&sp, len, sizeof *dx_, (void **)&dx_), out);
  IL_CHECK_GOTO(s, il_arena_alloc_n(&sp, len, sizeof *dC, (void **)&dC), out);
  IL_CHECK_GOTO(s, il_arena_alloc_n(&sp, len, sizeof *dout, (void **)&dout), out);
  IL_CHECK_GOTO(s, il_arena_calloc(&sp, len, sizeof *ddx, (void **)&ddx), out);
  IL_CHECK_GOTO(s, il_arena_calloc(&sp, nn, sizeof *ddW, (void **)&ddW), out);
  ddP = ddW;
  if (wnk) IL_CHECK_GOTO(s, il_arena_calloc(&sp, np, sizeof *ddP, (void **)&ddP), out);
  IL_CHECK_GOTO(s, il_arena_calloc(&sp, len, sizeof *drx, (void **)&drx), out);
  IL_CHECK_GOTO(s, il_arena_calloc(&sp, nn, sizeof *drW, (void **)&drW), out);
  drP = drW;
  if (wnk && jr) IL_CHECK_GOTO(s, il_arena_calloc(&sp, np, sizeof *drP, (void **)&drP), out);
  if (jr) IL_CHECK_GOTO(s, il_arena_alloc_n(&sp, nprobe, sizeof *dprobe, (void **)&dprobe), out);
  il_rng r;
  il_rng_seed(&r, cfg->seed);
  for (size_t i = 0; i < nn; i++) P[i] = (il_real)(cfg->scale * (2 * il_rng_uniform(&r) - 1) / sqrt((double)n));
  for (size_t i = 0; i < len; i++) x[i] = (il_real)il_rng_normal(&r);
  for (size_t i = 0; i < len; i++) C[i] = (il_real)il_rng_normal(&r);
  for (size_t i = 0; i < nprobe; i++) hp[i] = il_rng_next(&r) >> 63 ? 1 : -1; /* Rademacher probes */
  IL_CHECK_GOTO(s, il_upload(be, dP_, P, np), out);
  if (wnk) { /* W = W(V, g): g = ||V_i|| times a factor in [0.5, 1.5), so that it matters; u, v moved */
    IL_CHECK_GOTO(s, il_wnorm_init(&wn, cfg->w_norm, be, n, cfg->seed ^ 0x574e4f524dULL, NULL), out);
    have_wn = 1;
    if (cfg->w_norm == IL_WNORM_WEIGHT) {
      IL_CHECK_GOTO(s, il_wnorm_init_g(&wn, dP_, dP_ + nn), out);
      IL_CHECK_GOTO(s, il_download(be, P + nn, dP_ + nn, np - nn), out);
      for (size_t i = nn; i < np; i++) P[i] = (il_real)(P[i] * (0.5 + il_rng_uniform(&r)));
      IL_CHECK_GOTO(s, il_upload(be, dP_ + nn, P + nn, np - nn), out);
    }
    for (int k = 0; k < GC_POWER_ITERS; k++) IL_CHECK_GOTO(s, il_wnorm_forward(&wn, dP_, dP_ + nn, 1, dW_), out);
  }
  IL_CHECK_GOTO(s, il_upload(be, dx_, x, len), out);
  IL_CHECK_GOTO(s, il_upload(be, dC, C, len), out);
  if (jr) IL_CHECK_GOTO(s, il_upload(be, dprobe, hp, nprobe), out);
  il_layer_config lc = cfg->layer;
  lc.jac_reg = jr;
  IL_CHECK_GOTO(s, il_layer_create(&L, &lc, be, n, dW_, NULL), out);
  have_layer = 1;
  il_wnorm *w = have_wn ? &wn : NULL;
  const il_real *gp = np > nn ? dP_ + nn : NULL;
  if (w) IL_CHECK_GOTO(s, il_wnorm_forward(w, dP_, gp, 0, dW_), out);
  IL_CHECK_GOTO(s, il_layer_forward(&L, B, dx_, dout, 1), out);
  res->fwd = L.fres;
  IL_CHECK_GOTO(s, il_layer_backward(&L, dC, ddx, ddW), out);
  if (jr) { /* its gradient on its own, then added to the mode's; in V (and g) through W(V, g) like it */
    IL_CHECK_GOTO(s, il_layer_jac_reg(&L, K, dprobe, len, (il_real)cfg->jac_reg, drx, drW, &res->reg), out);
    IL_CHECK_GOTO(s, IL_BE(be, axpby, len, 1, drx, 1, ddx), out);
    IL_CHECK_GOTO(s, IL_BE(be, axpby, nn, 1, drW, 1, ddW), out);
    if (w) IL_CHECK_GOTO(s, il_wnorm_backward(w, dP_, drW, drP, np > nn ? drP + nn : NULL), out);
    IL_CHECK_GOTO(s, il_download(be, rx, drx, len), out);
    IL_CHECK_GOTO(s, il_download(be, rP, drP, np), out);
  }
  /* before any difference: il_wnorm_backward needs the forward's V */
  if (w) IL_CHECK_GOTO(s, il_wnorm_backward(w, dP_, ddW, ddP, np > nn ? ddP + nn : NULL), out);
  IL_CHECK_GOTO(s, il_download(be, dx, ddx, len), out);
  IL_CHECK_GOTO(s, il_download(be, dP, ddP, np), out);
  gc_ctx ctx = {.L = &L, .wn = w, .V = dP_, .g = gp, .W = dW_, .B = B, .K = K, .x = dx_, .C = C,
                .probes = dprobe, .out = dout, .hout = hout};
  if (jr) { /* at z* held fixed: every perturbation before the next forward */
    IL_CHECK_GOTO(s, central_diff(be, x, dx_, len, cfg->eps, reg_value, &ctx, frx), out);
    IL_CHECK_GOTO(s, central_diff(be, P, dP_, np, cfg->eps, reg_value, &ctx, frP), out);
    for (size_t i = 0; i < len; i++) frx[i] = (il_real)(cfg->jac_reg * frx[i]);
    for (size_t i = 0; i < np; i++) frP[i] = (il_real)(cfg->jac_reg * frP[i]);
    double unused;
    res->relerr_reg_x = rel_err(rx, frx, len, &unused);
    res->relerr_reg_W = rel_err(rP, frP, np, &unused);
  }
  IL_CHECK_GOTO(s, central_diff(be, x, dx_, len, cfg->eps, loss_value, &ctx, fx), out);
  IL_CHECK_GOTO(s, central_diff(be, P, dP_, np, cfg->eps, loss_value, &ctx, fP), out);
  for (size_t i = 0; jr && i < len; i++) fx[i] += frx[i];
  for (size_t i = 0; jr && i < np; i++) fP[i] += frP[i];
  res->relerr_x = rel_err(dx, fx, len, &res->maxabs_x);
  res->relerr_W = rel_err(dP, fP, np, &res->maxabs_W);
out:
  if (have_layer) il_layer_destroy(&L);
  if (have_wn) il_wnorm_destroy(&wn);
  il_arena_destroy(&sp);
  free(P); free(x); free(C); free(dx); free(dP); free(fx); free(fP); free(hout);
  free(rx); free(rP); free(frx); free(frP); free(hp);
  return s;
}

/* The training loss at the current parameters and host input X, as the check defines it. */
static il_status corr_loss_at(il_model *m, const il_gradcheck_corr_config *cfg, const il_real *X, const uint8_t *y,
                              double *loss) {
  if (cfg->no_hold) {
    il_step_stats st;
    IL_CHECK(il_model_forward(m, cfg->B, X, y, 1, &st));
    *loss = st.loss_total / cfg->B;
    return IL_OK;
  }
  IL_CHECK(il_model_loss_held(m, X, loss));
  *loss /= cfg->B;
  return IL_OK;
}

il_status il_gradcheck_corr(const il_gradcheck_corr_config *cfg, const il_backend *be, il_gradcheck_corr_result *res) {
  const int B = cfg->B, in = cfg->in_dim, h = cfg->n, c = cfg->classes;
  if (B <= 0 || in <= 0 || h <= 0 || c < 2 || c > 255 || !(cfg->eps > 0))
    return IL_ERR(IL_ERR_ARG, "correction gradcheck: bad sizes or eps");
  if (cfg->layer.fp_correction < 2) return IL_ERR(IL_ERR_ARG, "correction gradcheck: fp_correction must be >= 2");
  const il_model_config mc = {.in_dim = in, .hidden = h, .classes = c, .max_batch = B, .seed = cfg->seed,
                              .layer = cfg->layer, .corr_gamma = cfg->gamma};
  const size_t lx = (size_t)B * in;
  il_model m;
  il_status s = il_model_create(&m, &mc, be);
  const size_t np = m.nparams;
  /* host: X, labels, the parameters, analytic gradients, dL/dx1, and the finite differences */
  il_real *X = calloc(lx, sizeof *X), *P = calloc(np, sizeof *P), *G = calloc(np, sizeof *G);
  il_real *dx1 = calloc((size_t)B * h, sizeof *dx1), *gX = calloc(lx, sizeof *gX);
  il_real *fX = calloc(lx, sizeof *fX), *fP = calloc(np, sizeof *fP);
  uint8_t *y = calloc((size_t)B, 1);
  if (s == IL_OK && (!X || !P || !G || !dx1 || !gX || !fX || !fP || !y))
    s = IL_ERR(IL_ERR_NOMEM, "correction gradcheck: out of memory");
  if (s != IL_OK) goto out;
  il_rng r;
  il_rng_seed(&r, cfg->seed + 1);
  for (size_t i = 0; i < lx; i++) X[i] = (il_real)il_rng_normal(&r);
  for (int b = 0; b < B; b++) y[b] = (uint8_t)(il_rng_uniform(&r) * c) % c;
  il_step_stats st;
  IL_CHECK_GOTO(s, il_model_forward(&m, B, X, y, 1, &st), out);
  IL_CHECK_GOTO(s, il_model_backward(&m, &st), out);
  res->fwd = st.fwd;
  res->loss = st.loss_total / B;
  res->M = m.layer.corr_M;
  IL_CHECK_GOTO(s, il_download(be, G, m.grads, np), out);
  IL_CHECK_GOTO(s, il_download(be, dx1, m.dx1, (size_t)B * h), out);
  IL_CHECK_GOTO(s, il_model_get_params(&m, P), out);
  for (int b = 0; b < B; b++) /* dL/dX = dL/dx1 W1, W1 (h, in) first in the parameters */
    for (int i = 0; i < in; i++) {
      double acc = 0;
      for (int k = 0; k < h; k++) acc += (double)dx1[(size_t)b * h + k] * (double)P[(size_t)k * in + i];
      gX[(size_t)b * in + i] = (il_real)acc;
    }
  for (size_t i = 0; i < lx; i++) {
    const il_real keep = X[i];
    double lp, lm;
    X[i] = (il_real)(keep + cfg->eps);
    IL_CHECK_GOTO(s, corr_loss_at(&m, cfg, X, y, &lp), out);
    X[i] = (il_real)(keep - cfg->eps);
    IL_CHECK_GOTO(s, corr_loss_at(&m, cfg, X, y, &lm), out);
    X[i] = keep;
    fX[i] = (il_real)((lp - lm) / (2 * cfg->eps));
  }
  for (size_t i = 0; i < np; i++) {
    const il_real keep = P[i];
    double lp, lm;
    P[i] = (il_real)(keep + cfg->eps);
    IL_CHECK_GOTO(s, il_upload(be, m.params + i, P + i, 1), out);
    IL_CHECK_GOTO(s, corr_loss_at(&m, cfg, X, y, &lp), out);
    P[i] = (il_real)(keep - cfg->eps);
    IL_CHECK_GOTO(s, il_upload(be, m.params + i, P + i, 1), out);
    IL_CHECK_GOTO(s, corr_loss_at(&m, cfg, X, y, &lm), out);
    P[i] = keep;
    IL_CHECK_GOTO(s, il_upload(be, m.params + i, P + i, 1), out);
    fP[i] = (il_real)((lp - lm) / (2 * cfg->eps));
  }
  double mx;
  const size_t o_b1 = (size_t)h * in, o_W = o_b1 + h, o_W2 = o_W + (size_t)h * h;
  res->relerr_x = rel_err(gX, fX, lx, &mx);
  res->relerr_in = rel_err(G, fP, o_W, &mx);
  res->relerr_W = rel_err(G + o_W, fP + o_W, o_W2 - o_W, &mx);
  res->relerr_head = rel_err(G + o_W2, fP + o_W2, np - o_W2, &mx);
out:
  il_model_destroy(&m);
  free(X); free(P); free(G); free(dx1); free(gX); free(fX); free(fP); free(y);
  return s;
}
