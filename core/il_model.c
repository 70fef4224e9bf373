/* core/il_model.c: forward/backward pairs of the MNIST model (llm.c style).
 *
 * Fixed-point correction (cfg.layer.fp_correction = K > 1, training steps only): the
 * layer gives, besides its output y_K (from z*), the outputs y_1 .. y_{K-1} of K-1
 * intermediate iterates (il_layer_correction.c says which, and what their gradient is).
 * Each goes through the same head, and the loss minimised is
 *   L = sum_{k=1..K} gamma^(K-k) L_k,  L_k = (1/D) sum_b CE(W2 y_{k,b} + b2, label_b),
 * D the loss denominator (the global batch), gamma = cfg.corr_gamma in (0, 1]. It is not
 * normalised by the weights, as TorchDEQ's fp_correction (weight 'exp') and RAFT's sequence
 * loss: with every point at z* it would be (sum of the weights) times the plain loss. The
 * loss and errors a step reports (loss_sum, errors) stay those of y_K, the model's
 * prediction; loss_total is D L. */
#include "il_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "il_rng.h"

static il_status checked_add(size_t *acc, size_t a, size_t b, const char *what) {
  size_t t;
  IL_CHECK(il_size_mul(a, b, &t, what));
  if (*acc > SIZE_MAX - t) return IL_ERR(IL_ERR_NOMEM, "size of %s overflows", what);
  *acc += t;
  return IL_OK;
}

/* The damped steps of each correction point, for the estimate: phantom's K (default 5), else 1. */
static size_t corr_steps_estimate(const il_layer_config *lc) {
  if (!lc->backward || strncmp(lc->backward, "phantom", 7) != 0) return 1;
  long k = 5;
  const char *colon = strchr(lc->backward, ':');
  if (colon) k = strtol(colon + 1, NULL, 10);
  for (int i = 0; !colon && lc->opts && i < lc->opts->count; i++)
    if (strcmp(lc->opts->items[i].key, "phantom-k") == 0) k = strtol(lc->opts->items[i].value, NULL, 10);
  return k >= 1 && k <= 1000 ? (size_t)k : 1000;
}

il_status il_model_estimate_bytes(const il_model_config *cfg, size_t *bytes) {
  if (cfg->in_dim <= 0 || cfg->hidden <= 0 || cfg->classes <= 0 || cfg->max_batch <= 0)
    return IL_ERR(IL_ERR_ARG, "model sizes must be positive (in %d, hidden %d, classes %d, batch %d)",
                  cfg->in_dim, cfg->hidden, cfg->classes, cfg->max_batch);
  if (!(cfg->jac_reg >= 0 && cfg->jac_reg < INFINITY))
    return IL_ERR(IL_ERR_ARG, "Jacobian regulariser weight must be finite and >= 0, got %g", cfg->jac_reg);
  if (cfg->jac_reg > 0 && cfg->jac_reg_samples <= 0)
    return IL_ERR(IL_ERR_ARG, "Jacobian regulariser: samples must be positive, got %d", cfg->jac_reg_samples);
  const size_t in = (size_t)cfg->in_dim, h = (size_t)cfg->hidden, c = (size_t)cfg->classes;
  const size_t B = (size_t)cfg->max_batch, R = sizeof(il_real);
  size_t np = 0, hh, Bhh, total = 0;
  IL_CHECK(checked_add(&np, h, in, "parameters"));
  IL_CHECK(checked_add(&np, h, 1, "parameters"));
  IL_CHECK(il_size_mul(h, h, &hh, "implicit weight"));
  IL_CHECK(checked_add(&np, hh, 1, "parameters"));
  IL_CHECK(checked_add(&np, c, h + 1, "parameters"));
  IL_CHECK(checked_add(&np, il_wnorm_extra(cfg->w_norm, cfg->hidden), 1, "parameters"));
  IL_CHECK(checked_add(&total, np, 2 * R, "parameters and gradients"));
  if (cfg->w_norm != IL_WNORM_NONE) IL_CHECK(checked_add(&total, hh, 2 * R, "the formed weight and its gradient"));
  IL_CHECK(checked_add(&total, B * (4 * h + 2 * c), R, "activations"));
  /* Jacobian / LU per sample: one for implicit and solver scratch, one per step for an unrolled Newton */
  IL_CHECK(il_size_mul(B, hh, &Bhh, "per-sample Jacobians"));
  size_t copies = 2;
  const il_solver_ops *so = cfg->layer.solver ? il_solver_find(cfg->layer.solver) : NULL;
  int K = cfg->layer.max_iter > 0 ? cfg->layer.max_iter : (so ? so->default_max_iter : 200);
  if (so && so->last_lu && cfg->layer.backward && strcmp(cfg->layer.backward, "unroll") == 0) copies += (size_t)K;
  IL_CHECK(checked_add(&total, Bhh, copies * R, "Jacobian storage"));
  IL_CHECK(checked_add(&total, B * h * (size_t)(K + 2), 2 * R, "iterate storage"));
  if (cfg->jac_reg > 0) IL_CHECK(checked_add(&total, B * h, (size_t)cfg->jac_reg_samples * 2 * R, "regulariser probes"));
  const int C = cfg->layer.fp_correction;
  if (C > 1) { /* the points' outputs, softmax and cotangents; the kept points (4C + 1 iterates); their steps */
    IL_CHECK(checked_add(&total, B * (2 * h + c) * (size_t)(C - 1) + B * c, R, "correction activations"));
    IL_CHECK(checked_add(&total, B * h * (4 * (size_t)C + 1), R, "correction points"));
    const size_t P = corr_steps_estimate(&cfg->layer);
    IL_CHECK(checked_add(&total, B * h * 2 * P, (size_t)(C - 1) * R, "correction steps"));
  }
  *bytes = total;
  return IL_OK;
}

static void init_uniform(il_rng *r, il_real *a, size_t n, double bound) {
  for (size_t i = 0; i < n; i++) a[i] = (il_real)((2 * il_rng_uniform(r) - 1) * bound);
}

il_status il_model_create(il_model *m, const il_model_config *cfg, const il_backend *be) {
  memset(m, 0, sizeof *m);
  size_t est;
  IL_CHECK(il_model_estimate_bytes(cfg, &est));
  m->cfg = *cfg;
  m->be = be;
  const size_t in = (size_t)cfg->in_dim, h = (size_t)cfg->hidden, c = (size_t)cfg->classes;
  const size_t B = (size_t)cfg->max_batch;
  m->nparams = h * in + h + h * h + c * h + c + il_wnorm_extra(cfg->w_norm, cfg->hidden);
  IL_CHECK(il_arena_init_for(&m->params_arena, be, IL_MEM_PARAMS, &m->mem, 0));
  IL_CHECK(il_arena_init_for(&m->grads_arena, be, IL_MEM_GRADS, &m->mem, 0));
  IL_CHECK(il_arena_init_for(&m->act_arena, be, IL_MEM_ACTIVATIONS, &m->mem, 0));
  /* the input batch is the caller's data, not counted (as before the backend owned memory) */
  IL_CHECK(il_arena_init_for(&m->input_arena, be, IL_MEM_ACTIVATIONS, NULL, 0));
  IL_CHECK(il_arena_calloc(&m->params_arena, m->nparams, sizeof(il_real), (void **)&m->params));
  IL_CHECK(il_arena_calloc(&m->grads_arena, m->nparams, sizeof(il_real), (void **)&m->grads));
  il_real *p = m->params, *g = m->grads;
  m->W1 = p; m->dW1 = g; p += h * in; g += h * in;
  m->b1 = p; m->db1 = g; p += h; g += h;
  m->W = p; m->dW = g; p += h * h; g += h * h;
  m->W2 = p; m->dW2 = g; p += c * h; g += c * h;
  m->b2 = p; m->db2 = g; p += c; g += c;
  if (cfg->w_norm != IL_WNORM_NONE) { /* the slot of W holds V; W and dW get buffers of their own */
    m->V = m->W;
    m->dV = m->dW;
    if (cfg->w_norm == IL_WNORM_WEIGHT) m->g = p, m->dg = g;
    IL_CHECK(il_arena_alloc_n(&m->act_arena, h * h, sizeof(il_real), (void **)&m->W));
    IL_CHECK(il_arena_calloc(&m->grads_arena, h * h, sizeof(il_real), (void **)&m->dW));
  }
  /* PyTorch's nn.Linear initialisation, drawn on the host in a fixed order, then uploaded */
  il_real *host = malloc(m->nparams * sizeof *host);
  if (!host) return IL_ERR(IL_ERR_NOMEM, "model: cannot allocate %zu parameters on the host", m->nparams);
  il_rng r;
  il_rng_seed(&r, cfg->seed);
  il_real *hp = host;
  init_uniform(&r, hp, h * in, 1 / sqrt((double)in)), hp += h * in;
  init_uniform(&r, hp, h, 1 / sqrt((double)in)), hp += h;
  init_uniform(&r, hp, h * h, 1 / sqrt((double)h)), hp += h * h;
  init_uniform(&r, hp, c * h, 1 / sqrt((double)h)), hp += c * h;
  init_uniform(&r, hp, c, 1 / sqrt((double)h));
  il_status s = il_upload(be, m->params, host, m->nparams);
  free(host);
  IL_CHECK(s);
  if (!m->V) { /* a distributed backend keeps its share of W and dW (spectral/weight norm: W is derived, kept whole) */
    IL_CHECK(il_dist_matrix(be, &m->params_arena, m->W, (int)h, (int)h, NULL));
    IL_CHECK(il_dist_matrix(be, &m->grads_arena, m->dW, (int)h, (int)h, NULL));
  }
  /* u, v from a stream of their own, so that the other parameters' draws stay the seed's */
  IL_CHECK(il_wnorm_init(&m->wnorm, cfg->w_norm, be, cfg->hidden, cfg->seed ^ 0x574e4f524dULL, &m->mem));
  IL_CHECK(il_wnorm_init_g(&m->wnorm, m->V, m->g)); /* weight: g = ||V_i||, W = V at the start */
  il_real **acts[] = {&m->x1, &m->z, &m->dz, &m->dx1};
  for (int i = 0; i < 4; i++) IL_CHECK(il_arena_calloc(&m->act_arena, B * h, sizeof(il_real), (void **)acts[i]));
  IL_CHECK(il_arena_calloc(&m->act_arena, B * c, sizeof(il_real), (void **)&m->logits));
  IL_CHECK(il_arena_calloc(&m->act_arena, B * c, sizeof(il_real), (void **)&m->p));
  const int ncorr = cfg->layer.fp_correction > 1 ? cfg->layer.fp_correction - 1 : 0;
  if (ncorr) {
    if (!(cfg->corr_gamma > 0 && cfg->corr_gamma <= 1))
      return IL_ERR(IL_ERR_ARG, "fixed-point correction: gamma %g outside (0, 1]", cfg->corr_gamma);
    m->ycorr = calloc((size_t)ncorr, sizeof *m->ycorr);
    m->pcorr = calloc((size_t)ncorr, sizeof *m->pcorr);
    m->dycorr = calloc((size_t)ncorr, sizeof *m->dycorr);
    if (!m->ycorr || !m->pcorr || !m->dycorr) return IL_ERR(IL_ERR_NOMEM, "model: cannot allocate correction tables");
    m->ncorr = ncorr;
    for (int k = 0; k < ncorr; k++) {
      IL_CHECK(il_arena_calloc(&m->act_arena, B * h, sizeof(il_real), (void **)&m->ycorr[k]));
      IL_CHECK(il_arena_calloc(&m->act_arena, B * c, sizeof(il_real), (void **)&m->pcorr[k]));
      IL_CHECK(il_arena_calloc(&m->act_arena, B * h, sizeof(il_real), (void **)&m->dycorr[k]));
    }
    IL_CHECK(il_arena_calloc(&m->act_arena, B * c, sizeof(il_real), (void **)&m->lcorr));
  }
  if (!be->ops->host_accessible) { /* a device space gets the batch uploaded; host memory is used in place */
    IL_CHECK(il_arena_alloc_n(&m->input_arena, B * in, sizeof(il_real), (void **)&m->Xbuf));
    IL_CHECK(il_arena_alloc_n(&m->input_arena, B, 1, (void **)&m->ybuf));
  }
  if (cfg->jac_reg > 0) {
    const size_t np = (size_t)cfg->jac_reg_samples * B * h;
    m->cfg.layer.jac_reg = 1;
    m->jac_reg_now = 1;
    il_rng_seed(&m->jr_rng, cfg->seed ^ 0x4a4143524547ULL); /* "JACREG": a stream apart from init and shuffle */
    if (!(m->jr_host = malloc(np * sizeof *m->jr_host)))
      return IL_ERR(IL_ERR_NOMEM, "model: cannot allocate the regulariser's %zu probe values on the host", np);
    IL_CHECK(il_arena_alloc_n(&m->act_arena, np, sizeof(il_real), (void **)&m->jr_eps));
  }
  IL_CHECK(il_layer_create(&m->layer, &m->cfg.layer, be, cfg->hidden, m->W, &m->mem));
  IL_CHECK(il_layer_reserve(&m->layer, cfg->max_batch));
  return IL_OK;
}

void il_model_destroy(il_model *m) {
  il_layer_destroy(&m->layer);
  free(m->jr_host);
  m->jr_host = NULL;
  il_wnorm_destroy(&m->wnorm);
  free(m->ycorr);
  free(m->pcorr);
  free(m->dycorr);
  m->ycorr = m->pcorr = m->dycorr = NULL;
  il_arena_destroy(&m->input_arena);
  il_arena_destroy(&m->act_arena);
  il_arena_destroy(&m->grads_arena);
  il_arena_destroy(&m->params_arena);
}

il_status il_model_get_params(const il_model *m, il_real *host) { return il_download(m->be, host, m->params, m->nparams); }
il_status il_model_set_params(il_model *m, const il_real *host) { return il_upload(m->be, m->params, host, m->nparams); }

/* y (B, out) = X (B, in) W^T + b */
static il_status linear_forward(const il_backend *be, int B, int in, int out, const il_real *X, const il_real *W,
                                const il_real *b, il_real *y) {
  const il_epilogue ep = {.bias = b, .act = IL_ACT_NONE};
  return IL_BE(be, gemm_ep, B, out, in, X, W, &ep, y);
}

/* dW += dy^T X, db += colsum(dy), dX = dy W (if dX) */
static il_status linear_backward(const il_backend *be, int B, int in, int out, const il_real *X, const il_real *W,
                                 const il_real *dy, il_real *dW, il_real *db, il_real *dX) {
  IL_CHECK(IL_BE(be, gemm, 1, 0, out, in, B, 1, dy, out, X, in, 1, dW, in));
  IL_CHECK(IL_BE(be, col_sum_add, B, out, dy, db));
  if (dX) IL_CHECK(IL_BE(be, gemm, 0, 0, B, in, out, 1, dy, out, W, in, 0, dX, in));
  return IL_OK;
}

static il_status finite(const il_backend *be, size_t len, const il_real *a, int *ok) {
  return IL_BE(be, all_finite, len, a, ok); /* sync point: NaN checks */
}

/* Point k's weight gamma^(K-k), k = 1..K-1 (the index here is k - 1). */
static double corr_weight(const il_model *m, int idx) { return pow(m->cfg.corr_gamma, m->ncorr - idx); }

/* The head on the first ncorr intermediate points: pcorr[k] = softmax, *sum = their weighted loss sums. */
static il_status corr_losses(il_model *m, int ncorr, double *sum) {
  const il_backend *be = m->be;
  const int h = m->cfg.hidden, c = m->cfg.classes, B = m->B;
  *sum = 0;
  for (int k = 0; k < ncorr; k++) {
    double ls;
    int errs;
    IL_CHECK(linear_forward(be, B, h, c, m->ycorr[k], m->W2, m->b2, m->lcorr));
    IL_CHECK(IL_BE(be, xent_fwd, B, c, m->lcorr, m->y, m->pcorr[k], &ls, &errs)); /* sync point: loss */
    *sum += corr_weight(m, k) * ls;
  }
  return IL_OK;
}

il_status il_model_forward(il_model *m, int B, const il_real *X, const uint8_t *y, int train, il_step_stats *st) {
  const il_backend *be = m->be;
  const int in = m->cfg.in_dim, h = m->cfg.hidden, c = m->cfg.classes;
  if (B <= 0 || B > m->cfg.max_batch)
    return IL_ERR(IL_ERR_ARG, "batch %d outside [1, %d]", B, m->cfg.max_batch);
  memset(st, 0, sizeof *st);
  st->jac_reg_sum = NAN;
  if (m->Xbuf) { /* the batch into the space */
    IL_CHECK(il_upload(be, m->Xbuf, X, (size_t)B * in));
    if (y) IL_CHECK(IL_BE(be, copy, IL_COPY_TO_SPACE, m->ybuf, y, (size_t)B));
    X = m->Xbuf;
    y = y ? m->ybuf : NULL;
  }
  m->X = X;
  m->y = y;
  m->B = B;
  const int ncorr = train ? m->ncorr : 0;
  il_ev_scope ev = il_ev_open(be);
  if (m->V) IL_CHECK(il_wnorm_forward(&m->wnorm, m->V, m->g, train, m->W)); /* W from its parameters */
  IL_CHECK(linear_forward(be, B, in, h, X, m->W1, m->b1, m->x1));
  il_ev_close(be, ev, IL_EV_HEAD);
  if (m->z0 && m->z0_cold) IL_CHECK(il_layer_cold_start(&m->layer, B, m->x1, m->z0_cold, m->z0));
  IL_CHECK(il_layer_forward_corr(&m->layer, B, m->x1, m->z0, m->z, ncorr ? m->ycorr : NULL, train));
  st->fwd = m->layer.fres;
  st->diag = m->layer.diag;
  st->nan_origin = IL_NAN_NONE;
  st->nan_iter = -1;
  if (st->fwd.reason == IL_REASON_NONFINITE) {
    st->nan_origin = IL_NAN_FWD_SOLVE;
    st->nan_iter = st->fwd.nonfinite_iter;
  }
  ev = il_ev_open(be);
  IL_CHECK(linear_forward(be, B, h, c, m->z, m->W2, m->b2, m->logits));
  IL_CHECK(IL_BE(be, xent_fwd, B, c, m->logits, y, m->p, &st->loss_sum, &st->errors)); /* sync point: loss */
  double corr_sum = 0;
  IL_CHECK(corr_losses(m, y ? ncorr : 0, &corr_sum));
  il_ev_close(be, ev, IL_EV_HEAD);
  st->loss_total = st->loss_sum + corr_sum;
  st->samples = B;
  if (st->nan_origin == IL_NAN_NONE) {
    int fz, fl;
    IL_CHECK(finite(be, (size_t)B * h, m->z, &fz));
    IL_CHECK(finite(be, (size_t)B * c, m->logits, &fl));
    for (int k = 0; k < ncorr && fz; k++) IL_CHECK(finite(be, (size_t)B * h, m->ycorr[k], &fz));
    if (!fz || !fl || !isfinite(st->loss_total)) st->nan_origin = IL_NAN_FWD_OTHER;
  }
  return IL_OK;
}

/* Rademacher probes (+-1) of rows row_offset .. row_offset + B of a batch of N, for each of K:
 * the stream runs over (k, row of N, unit) in that order, 64 signs per draw, whatever the shard. */
static il_status draw_probes(il_model *m, int B, int N) {
  const int K = m->cfg.jac_reg_samples, h = m->cfg.hidden, r0 = m->row_offset;
  if (r0 < 0 || r0 + B > N)
    return IL_ERR(IL_ERR_ARG, "regulariser: rows %d..%d outside the loss batch of %d", r0, r0 + B - 1, N);
  const uint64_t per_k = (uint64_t)N * h, lo = (uint64_t)r0 * h, hi = (uint64_t)(r0 + B) * h;
  uint64_t word = 0;
  il_real *out = m->jr_host;
  for (int k = 0; k < K; k++)
    for (uint64_t i = 0; i < per_k; i++) {
      const uint64_t at = (uint64_t)k * per_k + i;
      if (at % 64 == 0) word = il_rng_next(&m->jr_rng);
      if (i >= lo && i < hi) *out++ = (word >> (at % 64)) & 1 ? (il_real)1 : (il_real)-1;
    }
  return il_upload(m->be, m->jr_eps, m->jr_host, (size_t)K * B * h);
}

/* The regulariser's value (st->jac_reg_sum) and gradient, weighted for the loss, into dW and dx1. */
static il_status jac_reg_backward(il_model *m, il_step_stats *st) {
  const int B = m->B, h = m->cfg.hidden, K = m->cfg.jac_reg_samples;
  const int N = m->loss_denominator > 0 ? m->loss_denominator : B;
  double sq;
  IL_CHECK(draw_probes(m, B, N));
  const il_real scale = (il_real)(m->cfg.jac_reg / ((double)K * N));
  IL_CHECK(il_layer_jac_reg(&m->layer, K, m->jr_eps, (size_t)B * h, scale, m->dx1, m->dW, &sq));
  st->jac_reg_sum = sq / K;
  return IL_OK;
}

il_status il_model_backward(il_model *m, il_step_stats *st) {
  const il_backend *be = m->be;
  const int in = m->cfg.in_dim, h = m->cfg.hidden, c = m->cfg.classes, B = m->B;
  if (!m->y) return IL_ERR(IL_ERR_ARG, "backward needs labels");
  il_ev_scope ev = il_ev_open(be);
  IL_CHECK(IL_BE(be, zero, m->grads, m->nparams * sizeof *m->grads));
  if (m->V) IL_CHECK(IL_BE(be, zero, m->dW, (size_t)h * h * sizeof *m->dW));
  /* dlogits = (softmax - onehot) / B, written over p */
  il_real *dl = m->p;
  const il_real invB = (il_real)(1.0 / (m->loss_denominator > 0 ? m->loss_denominator : B));
  IL_CHECK(IL_BE(be, xent_bwd, B, c, m->y, invB, dl));
  IL_CHECK(linear_backward(be, B, h, c, m->z, m->W2, dl, m->dW2, m->db2, m->dz));
  for (int k = 0; k < m->ncorr; k++) { /* the points' terms, weighted */
    IL_CHECK(IL_BE(be, xent_bwd, B, c, m->y, (il_real)(invB * corr_weight(m, k)), m->pcorr[k]));
    IL_CHECK(linear_backward(be, B, h, c, m->ycorr[k], m->W2, m->pcorr[k], m->dW2, m->db2, m->dycorr[k]));
  }
  il_ev_close(be, ev, IL_EV_HEAD);
  /* NaN attribution in the order things are computed; only the first origin is kept */
  int ok;
  IL_CHECK(finite(be, (size_t)B * h, m->dz, &ok));
  for (int k = 0; k < m->ncorr && ok; k++) IL_CHECK(finite(be, (size_t)B * h, m->dycorr[k], &ok));
  const int head_bad = !ok;
  if (head_bad && st->nan_origin == IL_NAN_NONE) st->nan_origin = IL_NAN_BWD_OTHER;
  IL_CHECK(IL_BE(be, zero, m->dx1, (size_t)B * h * sizeof *m->dx1));
  IL_CHECK(il_layer_backward_corr(&m->layer, m->dz, m->ncorr ? (const il_real *const *)m->dycorr : NULL, m->dx1,
                                  m->dW));
  st->bwd = m->layer.bres;
  st->diag = m->layer.diag;
  st->jac_reg_sum = NAN;
  if (m->cfg.jac_reg > 0 && m->jac_reg_now) IL_CHECK(jac_reg_backward(m, st)); /* a NaN in it counts as the layer's */
  if (st->nan_origin == IL_NAN_NONE && !head_bad) {
    int fx, fw;
    IL_CHECK(finite(be, (size_t)B * h, m->dx1, &fx));
    IL_CHECK(finite(be, (size_t)h * h, m->dW, &fw));
    if (!fx || !fw) {
      st->nan_origin = IL_NAN_BWD_LAYER;
      st->nan_iter = m->layer.bwd_nan_iter;
    }
  }
  ev = il_ev_open(be);
  IL_CHECK(linear_backward(be, B, in, h, m->X, m->W1, m->dx1, m->dW1, m->db1, NULL));
  if (m->V) IL_CHECK(il_wnorm_backward(&m->wnorm, m->V, m->dW, m->dV, m->dg)); /* dW -> dV (and dg) */
  il_ev_close(be, ev, IL_EV_HEAD);
  IL_CHECK(finite(be, m->nparams, m->grads, &st->grad_finite));
  if (!st->grad_finite && st->nan_origin == IL_NAN_NONE) st->nan_origin = IL_NAN_BWD_OTHER;
  return IL_OK;
}

il_status il_model_sgd(il_model *m, double lr) {
  const il_ev_scope ev = il_ev_open(m->be);
  const il_status s = IL_BE(m->be, axpby, m->nparams, (il_real)-lr, m->grads, 1, m->params);
  il_ev_close(m->be, ev, IL_EV_UPDATE);
  return s;
}

il_status il_model_loss_held(il_model *m, const il_real *X, double *loss_total) {
  const il_backend *be = m->be;
  const int in = m->cfg.in_dim, h = m->cfg.hidden, c = m->cfg.classes, B = m->B;
  if (!m->y) return IL_ERR(IL_ERR_ARG, "held loss needs the labels of a training forward");
  if (m->Xbuf) {
    IL_CHECK(il_upload(be, m->Xbuf, X, (size_t)B * in));
    X = m->Xbuf;
  }
  double ls, corr_sum;
  int errs;
  IL_CHECK(linear_forward(be, B, in, h, X, m->W1, m->b1, m->x1));
  IL_CHECK(il_layer_eval_held(&m->layer, m->x1, m->z, m->ncorr ? m->ycorr : NULL));
  IL_CHECK(linear_forward(be, B, h, c, m->z, m->W2, m->b2, m->logits));
  IL_CHECK(IL_BE(be, xent_fwd, B, c, m->logits, m->y, m->p, &ls, &errs)); /* sync point: loss */
  IL_CHECK(corr_losses(m, m->ncorr, &corr_sum));
  *loss_total = ls + corr_sum;
  return IL_OK;
}
