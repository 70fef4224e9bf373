/* core/il_model.c: forward/backward pairs of the MNIST model (llm.c style). */
#include "il_model.h"

#include <math.h>
#include <string.h>

#include "il_rng.h"

static il_status checked_add(size_t *acc, size_t a, size_t b, const char *what) {
  size_t t;
  IL_CHECK(il_size_mul(a, b, &t, what));
  if (*acc > SIZE_MAX - t) return IL_ERR(IL_ERR_NOMEM, "size of %s overflows", what);
  *acc += t;
  return IL_OK;
}

il_status il_model_estimate_bytes(const il_model_config *cfg, size_t *bytes) {
  if (cfg->in_dim <= 0 || cfg->hidden <= 0 || cfg->classes <= 0 || cfg->max_batch <= 0)
    return IL_ERR(IL_ERR_ARG, "model sizes must be positive (in %d, hidden %d, classes %d, batch %d)",
                  cfg->in_dim, cfg->hidden, cfg->classes, cfg->max_batch);
  const size_t in = (size_t)cfg->in_dim, h = (size_t)cfg->hidden, c = (size_t)cfg->classes;
  const size_t B = (size_t)cfg->max_batch, R = sizeof(il_real);
  size_t np = 0, hh, Bhh, total = 0;
  IL_CHECK(checked_add(&np, h, in, "parameters"));
  IL_CHECK(checked_add(&np, h, 1, "parameters"));
  IL_CHECK(il_size_mul(h, h, &hh, "implicit weight"));
  IL_CHECK(checked_add(&np, hh, 1, "parameters"));
  IL_CHECK(checked_add(&np, c, h + 1, "parameters"));
  IL_CHECK(checked_add(&total, np, 2 * R, "parameters and gradients"));
  IL_CHECK(checked_add(&total, B * (4 * h + 2 * c), R, "activations"));
  /* Jacobian / LU per sample: one for implicit and solver scratch, one per step for an unrolled Newton */
  IL_CHECK(il_size_mul(B, hh, &Bhh, "per-sample Jacobians"));
  size_t copies = 2;
  const il_solver_ops *so = cfg->layer.solver ? il_solver_find(cfg->layer.solver) : NULL;
  int K = cfg->layer.max_iter > 0 ? cfg->layer.max_iter : (so ? so->default_max_iter : 200);
  if (so && so->last_lu && cfg->layer.backward && strcmp(cfg->layer.backward, "unroll") == 0) copies += (size_t)K;
  IL_CHECK(checked_add(&total, Bhh, copies * R, "Jacobian storage"));
  IL_CHECK(checked_add(&total, B * h * (size_t)(K + 2), 2 * R, "iterate storage"));
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
  m->nparams = h * in + h + h * h + c * h + c;
  IL_CHECK(il_arena_init(&m->params_arena, IL_MEM_PARAMS, &m->mem, 0));
  IL_CHECK(il_arena_init(&m->grads_arena, IL_MEM_GRADS, &m->mem, 0));
  IL_CHECK(il_arena_init(&m->act_arena, IL_MEM_ACTIVATIONS, &m->mem, 0));
  IL_CHECK(il_arena_calloc(&m->params_arena, m->nparams, sizeof(il_real), (void **)&m->params));
  IL_CHECK(il_arena_calloc(&m->grads_arena, m->nparams, sizeof(il_real), (void **)&m->grads));
  il_real *p = m->params, *g = m->grads;
  m->W1 = p; m->dW1 = g; p += h * in; g += h * in;
  m->b1 = p; m->db1 = g; p += h; g += h;
  m->W = p; m->dW = g; p += h * h; g += h * h;
  m->W2 = p; m->dW2 = g; p += c * h; g += c * h;
  m->b2 = p; m->db2 = g;
  il_rng r;
  il_rng_seed(&r, cfg->seed);
  init_uniform(&r, m->W1, h * in, 1 / sqrt((double)in));
  init_uniform(&r, m->b1, h, 1 / sqrt((double)in));
  init_uniform(&r, m->W, h * h, 1 / sqrt((double)h));
  init_uniform(&r, m->W2, c * h, 1 / sqrt((double)h));
  init_uniform(&r, m->b2, c, 1 / sqrt((double)h));
  il_real **acts[] = {&m->x1, &m->z, &m->dz, &m->dx1};
  for (int i = 0; i < 4; i++) IL_CHECK(il_arena_calloc(&m->act_arena, B * h, sizeof(il_real), (void **)acts[i]));
  IL_CHECK(il_arena_calloc(&m->act_arena, B * c, sizeof(il_real), (void **)&m->logits));
  IL_CHECK(il_arena_calloc(&m->act_arena, B * c, sizeof(il_real), (void **)&m->p));
  IL_CHECK(il_layer_create(&m->layer, &cfg->layer, be, cfg->hidden, m->W, &m->mem));
  return IL_OK;
}

void il_model_destroy(il_model *m) {
  il_layer_destroy(&m->layer);
  il_arena_destroy(&m->act_arena);
  il_arena_destroy(&m->grads_arena);
  il_arena_destroy(&m->params_arena);
}

/* y (B, out) = X (B, in) W^T + b */
static void linear_forward(const il_backend *be, int B, int in, int out, const il_real *X, const il_real *W,
                           const il_real *b, il_real *y) {
  for (int r = 0; r < B; r++) memcpy(y + (size_t)r * out, b, (size_t)out * sizeof *y);
  be->gemm(0, 1, B, out, in, 1, X, in, W, in, 1, y, out);
}

/* dW += dy^T X, db += colsum(dy), dX = dy W (if dX) */
static void linear_backward(const il_backend *be, int B, int in, int out, const il_real *X, const il_real *W,
                            const il_real *dy, il_real *dW, il_real *db, il_real *dX) {
  be->gemm(1, 0, out, in, B, 1, dy, out, X, in, 1, dW, in);
  for (int r = 0; r < B; r++)
    for (int j = 0; j < out; j++) db[j] += dy[(size_t)r * out + j];
  if (dX) be->gemm(0, 0, B, in, out, 1, dy, out, W, in, 0, dX, in);
}

il_status il_model_forward(il_model *m, int B, const il_real *X, const uint8_t *y, int train, il_step_stats *st) {
  const int in = m->cfg.in_dim, h = m->cfg.hidden, c = m->cfg.classes;
  if (B <= 0 || B > m->cfg.max_batch)
    return IL_ERR(IL_ERR_ARG, "batch %d outside [1, %d]", B, m->cfg.max_batch);
  memset(st, 0, sizeof *st);
  m->X = X;
  m->y = y;
  m->B = B;
  linear_forward(m->be, B, in, h, X, m->W1, m->b1, m->x1);
  IL_CHECK(il_layer_forward(&m->layer, B, m->x1, m->z, train));
  st->fwd = m->layer.fres;
  st->diag = m->layer.diag;
  st->nan_origin = IL_NAN_NONE;
  st->nan_iter = -1;
  if (st->fwd.reason == IL_REASON_NONFINITE) {
    st->nan_origin = IL_NAN_FWD_SOLVE;
    st->nan_iter = st->fwd.nonfinite_iter;
  }
  linear_forward(m->be, B, h, c, m->z, m->W2, m->b2, m->logits);
  /* softmax cross-entropy, log-sum-exp with the max subtracted */
  for (int r = 0; r < B; r++) {
    const il_real *l = m->logits + (size_t)r * c;
    il_real *pr = m->p + (size_t)r * c;
    int arg = 0;
    double mx = l[0];
    for (int j = 1; j < c; j++)
      if (l[j] > mx) { mx = l[j]; arg = j; }
    double sum = 0;
    for (int j = 0; j < c; j++) sum += exp((double)l[j] - mx);
    for (int j = 0; j < c; j++) pr[j] = (il_real)(exp((double)l[j] - mx) / sum);
    if (y) {
      st->loss_sum += log(sum) + mx - (double)l[y[r]];
      st->errors += (arg != y[r]) || !isfinite(mx); /* NaN logits count as errors */
    }
  }
  st->samples = B;
  if (st->nan_origin == IL_NAN_NONE &&
      (!m->be->all_finite((size_t)B * h, m->z) || !m->be->all_finite((size_t)B * c, m->logits) ||
       !isfinite(st->loss_sum)))
    st->nan_origin = IL_NAN_FWD_OTHER;
  return IL_OK;
}

il_status il_model_backward(il_model *m, il_step_stats *st) {
  const int in = m->cfg.in_dim, h = m->cfg.hidden, c = m->cfg.classes, B = m->B;
  if (!m->y) return IL_ERR(IL_ERR_ARG, "backward needs labels");
  memset(m->grads, 0, m->nparams * sizeof *m->grads);
  /* dlogits = (softmax - onehot) / B, written over p */
  il_real *dl = m->p;
  const il_real invB = (il_real)(1.0 / (m->loss_denominator > 0 ? m->loss_denominator : B));
  for (int r = 0; r < B; r++) {
    for (int j = 0; j < c; j++) dl[(size_t)r * c + j] *= invB;
    dl[(size_t)r * c + m->y[r]] -= invB;
  }
  linear_backward(m->be, B, h, c, m->z, m->W2, dl, m->dW2, m->db2, m->dz);
  /* NaN attribution in the order things are computed; only the first origin is kept */
  const int head_bad = !m->be->all_finite((size_t)B * h, m->dz);
  if (head_bad && st->nan_origin == IL_NAN_NONE) st->nan_origin = IL_NAN_BWD_OTHER;
  memset(m->dx1, 0, (size_t)B * h * sizeof *m->dx1);
  IL_CHECK(il_layer_backward(&m->layer, m->dz, m->dx1, m->dW));
  st->bwd = m->layer.bres;
  st->diag = m->layer.diag;
  if (st->nan_origin == IL_NAN_NONE && !head_bad &&
      (!m->be->all_finite((size_t)B * h, m->dx1) || !m->be->all_finite((size_t)h * h, m->dW))) {
    st->nan_origin = IL_NAN_BWD_LAYER;
    st->nan_iter = m->layer.bwd_nan_iter;
  }
  linear_backward(m->be, B, in, h, m->X, m->W1, m->dx1, m->dW1, m->db1, NULL);
  st->grad_finite = m->be->all_finite(m->nparams, m->grads);
  if (!st->grad_finite && st->nan_origin == IL_NAN_NONE) st->nan_origin = IL_NAN_BWD_OTHER;
  return IL_OK;
}

void il_model_sgd(il_model *m, double lr) { m->be->axpby(m->nparams, (il_real)-lr, m->grads, 1, m->params); }
