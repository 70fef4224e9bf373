/* bench/results.h: what a run records, independent of the file format.
 * The HDF5 writer (results_h5.c) stores these rows as compound tables; the
 * schema and units are documented in analysis/SCHEMA.md. Times are seconds,
 * memory is bytes. */
#ifndef IL_RESULTS_H
#define IL_RESULTS_H

#include <stdint.h>

#include "il_arena.h"
#include "il_diag.h"
#include "il_status.h"

/* One row per epoch (rank 0's aggregate over the global batch). */
typedef struct il_epoch_row {
  int32_t epoch;
  double lr;
  double train_err, train_loss;     /* fraction, nats (mean per sample) */
  double train_iters, train_bwd_iters; /* mean per batch */
  double test_err, test_loss, test_iters;
  double max_grad_norm;
  int64_t nan_batches, nonconverged;
  int64_t maxiter_batches, diverged_batches, nonfinite_batches; /* training steps by forward reason 1, 2, 3 */
  int64_t train_batches;
  double train_s, test_s;           /* wall seconds, max over ranks */
  uint64_t peak_mem_bytes, saved_peak_bytes, workspace_peak_bytes; /* max over ranks */
} il_epoch_row;

/* One row per training step. Phase times are the max over ranks (the step's critical path). */
typedef struct il_step_row {
  int32_t epoch, step;              /* step: 0-based within the epoch */
  double loss;                      /* mean over the global batch */
  double err;                       /* fraction of the global batch misclassified */
  int32_t fwd_iters;
  double fwd_residual;
  int32_t fwd_reason;               /* il_reason: 0 converged, 1 max-iter, 2 diverged, 3 non-finite */
  int32_t bwd_iters;
  double bwd_residual;
  int32_t bwd_reason;
  int32_t nonconverged;             /* rows over the global batch */
  int32_t nan_skipped;              /* 1 when the step was skipped for a non-finite gradient */
  double grad_norm;
  double t_forward, t_backward, t_wait, t_allreduce, t_update; /* seconds, max over ranks */
  /* Diagnostics (schema v2). NaN when not measured on this step. */
  double diag_rho_max, diag_rho_mean; /* spectral radius of df/dz at z* (power iteration), max/mean over samples */
  double diag_cond;                 /* largest inf-norm condition estimate (gecon) of I - df/dz over the step's LUs */
  double diag_grad_cos, diag_grad_relerr; /* layer gradient (dx, dW) vs the exact IFT gradient: cosine, rel. error */
  double diag_preact_max;           /* largest |W z + x| where newton/newton-ls built a Jacobian, max over ranks */
  int32_t nan_origin;               /* il_nan_origin: where a non-finite value first appeared (0 none) */
  int32_t nan_iter;                 /* solver iteration / unrolled step / adjoint iteration of it; -1 none or n/a */
} il_step_row;

/* Values of il_step_row.nan_origin: il_nan_origin in core/il_diag.h. */

/* A step row with nothing measured yet: numbers 0, diagnostics NaN,
 * nan_origin IL_NAN_NONE and nan_iter -1. Fill in what the step measured. */
void il_step_row_init(il_step_row *r);

/* Per-rank totals over a run, written collectively (one row per rank). */
typedef struct il_rank_row {
  int32_t rank;
  int32_t local_batch;              /* rows of the global batch this rank holds */
  double t_forward, t_backward, t_wait, t_allreduce, t_update, t_test; /* seconds, summed over the run */
  uint64_t peak_mem_bytes;
} il_rank_row;

/* One row of a run's events table (core/il_events.h, `--log-view`), reduced over ranks. */
typedef struct il_event_row {
  char name[16];     /* il_event_name */
  int64_t calls;     /* on rank 0 */
  double time_max;   /* seconds, inclusive, the largest over ranks */
  double time_sum;   /* seconds, summed over ranks */
  double flops;      /* floating-point operations counted by the backend, summed over ranks */
} il_event_row;

/* A run's configuration as ordered key/value attributes (values are stored as
 * strings, doubles or integers according to `kind`). */
typedef struct il_attr {
  char key[48];
  char kind;                        /* 's' string, 'd' double, 'i' integer */
  char s[160];
  double d;
  int64_t i;
} il_attr;

#define IL_RUN_ATTRS_MAX 64
typedef struct il_run_info {
  char run_id[96];
  il_attr attrs[IL_RUN_ATTRS_MAX];
  int nattrs;
} il_run_info;

void il_run_info_init(il_run_info *ri, const char *run_id);
il_status il_run_attr_s(il_run_info *ri, const char *key, const char *v);
il_status il_run_attr_d(il_run_info *ri, const char *key, double v);
il_status il_run_attr_i(il_run_info *ri, const char *key, int64_t v);

#endif
