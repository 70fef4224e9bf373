/* core/il_model.h: the seed's MNIST model,
 *   Flatten -> Linear(in, hidden) -> implicit layer(hidden) -> Linear(hidden, classes),
 * with softmax cross-entropy and plain SGD. Linear layers are initialised like
 * PyTorch's nn.Linear (U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias);
 * the implicit weight has no bias. All parameters live in one contiguous
 * buffer and all gradients in another, so a data-parallel layer can reduce
 * them with one call. */
#ifndef IL_MODEL_H
#define IL_MODEL_H

#include <stdint.h>

#include "il_arena.h"
#include "il_layer.h"
#include "il_rng.h"
#include "il_wnorm.h"

typedef struct il_model_config {
  int in_dim;  /* 784 */
  int hidden;  /* 100 */
  int classes; /* 10 */
  int max_batch;
  uint64_t seed;
  /* Jacobian regularisation (DEQ papers, TorchDEQ's jac_reg): the training loss gains
   * jac_reg * (1/N) sum_b (1/K) sum_k ||eps_kb^T (df/dz)(z*_b)||^2, N the loss's samples, K =
   * jac_reg_samples Rademacher probes per sample drawn from a stream seeded by `seed`; its
   * gradient is taken at z* held fixed and added to dW and dx1. 0: off. */
  double jac_reg;
  int jac_reg_samples;
  il_layer_config layer;
  il_wnorm_kind w_norm; /* W's parameterisation (il_wnorm.h); IL_WNORM_NONE: W is the parameter */
  /* fixed-point correction (layer.fp_correction = K > 1): the loss is the sum over the points
   * k = 1..K of corr_gamma^(K-k) times point k's mean cross-entropy; point K is z* (see il_model.c) */
  double corr_gamma;
} il_model_config;

/* What one step measured (local to this process). */
typedef struct il_step_stats {
  double loss_sum;     /* sum over the batch of per-sample loss (of the output z*, with correction or not) */
  double loss_total;   /* the loss training minimises, summed over the batch: loss_sum plus, with fixed-point
                        * correction, the weighted losses of the intermediate points; loss_sum when off */
  int errors;          /* misclassified samples */
  int samples;
  il_solve_result fwd; /* forward solve */
  il_solve_result bwd; /* backward solve (training only) */
  int grad_finite;     /* 1 when every gradient is finite */
  int nan_origin;      /* IL_NAN_*: where a non-finite value first appeared in this step */
  int nan_iter;        /* the solver iteration / unrolled step / adjoint iteration there, -1 if none */
  il_layer_diag diag;  /* the layer's diagnostics (NaN unless layer.diag_now was set) */
  /* training: sum over this batch's rows of the regulariser's estimate (1/K) sum_k ||eps_k^T df/dz||^2
   * (unweighted); NaN when it was not computed (off, or jac_reg_now = 0) */
  double jac_reg_sum;
} il_step_stats;

typedef struct il_model {
  il_model_config cfg;
  const il_backend *be;
  il_memstats mem;
  il_arena params_arena, grads_arena, act_arena, input_arena;
  il_real *params, *grads; /* contiguous, in the backend's space; views below */
  size_t nparams;
  il_real *W1, *b1, *W, *W2, *b2;      /* (h, in), (h), (h, h), (c, h), (c) */
  il_real *dW1, *db1, *dW, *dW2, *db2;
  /* With a w_norm the parameters are W1, b1, V, W2, b2 and, for weight, g (h) at the end; W and dW
   * are then buffers of their own: W formed from V (and g) before every forward, dW the layer's
   * gradient, mapped back to dV (and dg) in backward. */
  il_real *V, *dV, *g, *dg;            /* NULL without a w_norm (g, dg: weight only) */
  il_wnorm wnorm;
  il_layer layer;
  /* activations for the current batch (max_batch rows) */
  const il_real *X;              /* (B, in) in the space: the caller's host batch or its upload */
  const uint8_t *y;              /* (B) the same */
  il_real *Xbuf;                 /* (max_batch, in) upload buffer, NULL when the space is host memory */
  uint8_t *ybuf;                 /* (max_batch) */
  il_real *x1, *z, *logits, *p;  /* (B, h), (B, h), (B, c), (B, c) softmax */
  il_real *dz, *dx1;             /* (B, h) */
  /* fixed-point correction: ncorr = K - 1 intermediate points (0: off); host tables of their tensors */
  int ncorr;
  il_real **ycorr, **pcorr, **dycorr; /* (ncorr): (B, h) outputs, (B, c) softmax, (B, h) cotangents */
  il_real *lcorr;                /* (B, c) logits of one point at a time */
  int B;
  /* Samples the loss is averaged over: 0 means this batch (B). A data-parallel
   * caller sets the global batch, so that summing the shards' gradients gives
   * the single-process gradient. */
  int loss_denominator;
  /* Jacobian regulariser (cfg.jac_reg > 0): the probes are drawn for the whole loss batch
   * (loss_denominator rows, or B) and this process takes rows row_offset .. row_offset + B, so
   * the stream, and the run, do not depend on how the batch is sharded. jac_reg_now: computed
   * in the next backward (1 after create; a caller regularising every N steps sets it). */
  int row_offset;
  int jac_reg_now;
  il_rng jr_rng;      /* the probes' stream: part of the training state (checkpoint it) */
  il_real *jr_host;   /* host (K, max_batch, h) probes drawn for this shard */
  il_real *jr_eps;    /* (K, max_batch, h) the same in the space */
  /* The next forward's start (a warm start, set by the caller before each forward): NULL (the
   * solver's own start), or (B, n) in the space whose rows with z0_cold[b] != 0 (host (B), or
   * NULL: none) first get the solver's own start for this batch (il_layer_cold_start). */
  il_real *z0;
  const unsigned char *z0_cold;
} il_model;

#define il_model_create IL_P(il_model_create)
#define il_model_destroy IL_P(il_model_destroy)
#define il_model_forward IL_P(il_model_forward)
#define il_model_backward IL_P(il_model_backward)
#define il_model_sgd IL_P(il_model_sgd)
#define il_model_estimate_bytes IL_P(il_model_estimate_bytes)
#define il_model_get_params IL_P(il_model_get_params)
#define il_model_set_params IL_P(il_model_set_params)

/* Upper estimate of bytes a training step needs, with overflow checks; used to
 * refuse impossible sizes before allocating anything. */
il_status il_model_estimate_bytes(const il_model_config *cfg, size_t *bytes);
il_status il_model_create(il_model *m, const il_model_config *cfg, const il_backend *be);
void il_model_destroy(il_model *m);
/* X (B, in) in [0,1], y (B) labels, both host memory (uploaded to the space when it is not host
 * memory). train = 1 keeps state for backward (and moves spectral normalisation's u, v). */
il_status il_model_forward(il_model *m, int B, const il_real *X, const uint8_t *y, int train, il_step_stats *st);
/* Fills m->grads (zeroed first); st->grad_finite and st->bwd are set. */
il_status il_model_backward(il_model *m, il_step_stats *st);
/* params -= lr * grads */
il_status il_model_sgd(il_model *m, double lr);
#define il_model_loss_held IL_P(il_model_loss_held)
/* For gradient checks: the batch loss training minimised at the current parameters and the input X
 * (host, the last forward's shape), with what the last training forward held constant held again
 * (il_layer_eval_held), as the sum over samples of the per-sample loss (st->loss_total's kind). */
il_status il_model_loss_held(il_model *m, const il_real *X, double *loss_total);
/* All nparams parameters, in the buffer's order (W1, b1, W, W2, b2), to / from host memory. */
il_status il_model_get_params(const il_model *m, il_real *host);
il_status il_model_set_params(il_model *m, const il_real *host);

#endif
