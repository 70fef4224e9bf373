/* bench/train_driver.c: one training run of the seed's MNIST experiment in
 * float32, data parallel over MPI ranks. Semantics follow the seed: batch 100,
 * SGD lr 0.1 dropping to 0.01 at epoch 5, stop on the batch Frobenius norm,
 * Newton rows that fail are zeroed, and a step whose gradient is not finite is
 * skipped. Rank 0 prints one logfmt line per epoch and, with a results file,
 * appends the epoch and its steps there (flushed each epoch).
 *
 * A run is set up (setup_run: validation, backend and model, data buffers,
 * the run's group in the results file), then trains epoch by epoch
 * (run_epochs): each training step (train_step) is reduced over ranks by
 * il_step_reduce (distributed/il_step_reduce.c) and recorded (step_output),
 * then the test pass and the epoch's output (epoch_output). The backend,
 * parameter and gradient accesses are kept in small functions of their own
 * (setup_backend, broadcast_params, allreduce_grads, grads_finite, ...). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "backends/cpu_blas_core.h"
#include "commands.h"
#include "il_bind.h"
#include "il_gpu.h"
#ifdef ILBENCH_HAVE_CUDA
#include "il_cuda.h"
#endif
#include "il_model.h"
#include "il_rng.h"
#include "il_selftest.h"
#include "il_step_reduce.h"
#include "il_warm_start.h"
#include "results.h"
#include "stop_signal.h"
#include "train_driver.h"

typedef il_train_opts train_opts;

/* X (B, 784) = pixels / 255, y (B) for samples idx[0..B) */
static void gather(const il_mnist_split *d, const uint32_t *idx, int B, float *X, uint8_t *y) {
  const size_t dim = d->images.rows * d->images.cols;
  for (int r = 0; r < B; r++) {
    const uint8_t *px = d->images.pixels + (size_t)idx[r] * dim;
    for (size_t j = 0; j < dim; j++) X[(size_t)r * dim + j] = (float)px[j] * (1.0f / 255.0f);
    y[r] = d->labels.labels[idx[r]];
  }
}

typedef struct epoch_acc {
  double loss, iters, bwd_iters, max_grad_norm;
  double phase[4]; /* forward, backward, allreduce, update: sums of per-step max over ranks */
  double wait;     /* sum of per-step max over ranks of the wait for the slowest rank */
  long errors, samples, batches, nan_batches, nonconverged, maxiter_batches, diverged_batches, nonfinite_batches;
  double jr_sum, jr_samples; /* --jac-reg: the estimates summed over the rows of the steps that computed it */
} epoch_acc;

/* epoch_acc as the doubles of a checkpoint (counts are far below 2^53: exact). */
#define ACC_N 17
static void acc_pack(const epoch_acc *a, double *v) {
  const double x[ACC_N] = {a->loss, a->iters, a->bwd_iters, a->max_grad_norm, a->phase[0], a->phase[1], a->phase[2],
                           a->phase[3], a->wait, (double)a->errors, (double)a->samples, (double)a->batches,
                           (double)a->nan_batches, (double)a->nonconverged, (double)a->maxiter_batches,
                           (double)a->diverged_batches, (double)a->nonfinite_batches};
  memcpy(v, x, sizeof x);
}
static void acc_unpack(const double *v, epoch_acc *a) {
  *a = (epoch_acc){.loss = v[0], .iters = v[1], .bwd_iters = v[2], .max_grad_norm = v[3],
                   .phase = {v[4], v[5], v[6], v[7]}, .wait = v[8], .errors = (long)v[9], .samples = (long)v[10],
                   .batches = (long)v[11], .nan_batches = (long)v[12], .nonconverged = (long)v[13],
                   .maxiter_batches = (long)v[14], .diverged_batches = (long)v[15], .nonfinite_batches = (long)v[16]};
}

/* One batch's step-wide values into the epoch's sums. */
static void acc_step(epoch_acc *a, const il_step_meas *m) {
  a->loss += m->sum.loss_sum;
  a->errors += m->sum.errors;
  a->samples += m->sum.samples;
  a->batches++;
  a->iters += m->fwd_iters;
  a->bwd_iters += m->bwd_iters;
  a->nonconverged += m->sum.nonconverged;
  a->maxiter_batches += m->fwd_reason == IL_REASON_MAX_ITER;
  a->diverged_batches += m->fwd_reason == IL_REASON_DIVERGED;
  a->nonfinite_batches += m->fwd_reason == IL_REASON_NONFINITE;
}

/* m:ss (h:mm:ss from an hour) of a duration in seconds. */
static void fmt_duration(double s, char *buf, size_t cap) {
  const long t = s > 0 && s < 1e9 ? (long)(s + 0.5) : 0;
  if (t >= 3600) snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  else snprintf(buf, cap, "%ld:%02ld", t / 60, t % 60);
}

/* The in-epoch progress bar on stderr, called by rank 0 only when stderr is a TTY (run_epochs
 * decides; a pipe or file gets nothing): step n/N, steps/s, ETA, and the pass's running mean
 * loss and forward iterations. Redrawn at most every 0.1 s, cut to the terminal's width; the
 * pass's last step clears the line, so that the epoch's logfmt line stands alone. */
static void progress(const char *what, long epoch, long done, long total, double t0, const epoch_acc *a) {
  static double last = 0;
  const double now = il_now();
  if (done != total && now - last < 0.1) return;
  last = now;
  if (done >= total) {
    fputs("\r\033[K", stderr);
    fflush(stderr);
    return;
  }
  enum { W = 12 };
  char bar[W + 1], eta[32], line[256];
  const int fill = total > 0 ? (int)(W * done / total) : 0;
  for (int i = 0; i < W; i++) bar[i] = i < fill ? '#' : '-';
  bar[W] = '\0';
  const double el = now - t0, rate = el > 0 ? done / el : 0;
  fmt_duration(rate > 0 ? (total - done) / rate : 0, eta, sizeof eta);
  int n = snprintf(line, sizeof line, "%s %ld [%s] %ld/%ld %.1f steps/s ETA %s", what, epoch, bar, done, total, rate,
                   eta);
  if (n > 0 && (size_t)n < sizeof line && a->samples)
    n += snprintf(line + n, sizeof line - (size_t)n, " loss %.4f", a->loss / a->samples);
  if (n > 0 && (size_t)n < sizeof line && a->batches)
    n += snprintf(line + n, sizeof line - (size_t)n, " iters %.1f", a->iters / a->batches);
  struct winsize ws;
  if (ioctl(2, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 && ws.ws_col - 1 < (int)sizeof line) line[ws.ws_col - 1] = '\0';
  fprintf(stderr, "\r\033[K%s", line);
  fflush(stderr);
}

/* The figures of the run for the one-line end-of-run summaries (il_train_last_summary). */
static il_run_summary last_summary;
const il_run_summary *il_train_last_summary(void) { return &last_summary; }
static void summary_epoch(long ep, const epoch_acc *tr, const epoch_acc *te, double t_run) {
  last_summary.epochs = ep + 1;
  last_summary.train_err = tr->samples ? (double)tr->errors / tr->samples : NAN;
  last_summary.test_err = te->samples ? (double)te->errors / te->samples : NAN;
  last_summary.test_loss = te->samples ? te->loss / te->samples : NAN;
  last_summary.nan_batches += tr->nan_batches;
  last_summary.epochs_s = il_now() - t_run;
}

static void print_config(const train_opts *o, const il_model *m, size_t est, const char *binding) {
  printf("# ilbench train (git %s)\n", ILBENCH_GIT);
  printf("# %-18s %s\n", "solver", o->solver);
  printf("# %-18s %s\n", "backward", o->backward);
  printf("# %-18s %g (stop: %s)\n", "tol", o->tol, o->stop);
  printf("# %-18s %ld\n", "max_iter", o->max_iter);
  if (o->eval_tol != o->tol || o->eval_max_iter != o->max_iter)
    printf("# %-18s tol %g, max_iter %ld (the test pass)\n", "eval", o->eval_tol, o->eval_max_iter);
  printf("# %-18s 784 -> %ld (implicit) -> 10\n", "model", o->hidden);
  printf("# %-18s %zu\n", "parameters", m->nparams);
  printf("# %-18s %ld\n", "batch", o->batch);
  printf("# %-18s %ld\n", "epochs", o->epochs);
  printf("# %-18s %g", "lr", o->lr);
  for (int i = 0; i < o->ndrops; i++) printf(", %g at epoch %ld", o->drop_lr[i], o->drop_epoch[i]);
  printf("\n# %-18s %ld\n", "seed", o->seed);
  printf("# %-18s %s\n", "zero_nonconverged", m->layer.zero_rows ? "yes" : "no");
  if (strcmp(o->backward, "implicit") == 0) printf("# %-18s %ld\n", "adjoint_refine", o->refine);
  printf("# %-18s %s (divtol %g%s%s%s)\n", "stop_mode", o->stop_mode, o->divtol,
         o->best == IL_BEST_SAMPLE ? ", each row's lowest-residual iterate" : o->best ? ", lowest-residual iterate" : "",
         strcmp(o->stop_norm, "frob") != 0 ? ", norm " : "", strcmp(o->stop_norm, "frob") != 0 ? o->stop_norm : "");
  if (o->opts_text[0]) printf("# %-18s %s\n", "options", o->opts_text);
  printf("# %-18s %s\n", "sech2", o->sech2);
  if (o->diag) printf("# %-18s every %ld steps\n", "diag", o->diag);
  if (o->jac_reg > 0)
    printf("# %-18s %g (%ld Rademacher probe%s per sample, every %ld step%s)\n", "jac_reg", o->jac_reg,
           o->jac_reg_samples, o->jac_reg_samples == 1 ? "" : "s", o->jac_reg_every, o->jac_reg_every == 1 ? "" : "s");
  if (o->fpc_k > 1)
    printf("# %-18s %ld points, weights %g^(K-k) (loss and error printed: z*'s)\n", "fp_correction", o->fpc_k,
           o->fpc_gamma);
  if (o->trace) printf("# %-18s every %ld steps (the results' trace table)\n", "trace", o->trace);
  if (strcmp(o->w_norm, "none") != 0) printf("# %-18s %s\n", "w_norm", o->w_norm);
  printf("# %-18s %s (%s)\n", "device", o->device, IL_REAL_NAME);
  if (o->grid) {
    char g[160];
    il_grid_describe(o->grid, g, sizeof g);
    printf("# %-18s %s\n", "grid", g);
  }
  printf("# %-18s %ld%s%s%s\n", "threads", o->threads, binding[0] ? " (rank 0: " : "", binding, binding[0] ? ")" : "");
  printf("# %-18s %s\n", "data", o->data);
  printf("# %-18s %zu\n", "est_bytes", est);
  fflush(stdout);
}

il_status il_train_load_data(const char *dir, il_mnist_split *train, il_mnist_split *test) {
  IL_CHECK(il_mnist_load_split(dir, "train", train));
  il_status s = il_mnist_load_split(dir, "t10k", test);
  if (s != IL_OK) {
    il_mnist_split_free(train);
    return il_error_trace(s, __FILE__, __LINE__);
  }
  const il_mnist_split *sp[2] = {train, test};
  const char *nm[2] = {"train", "t10k"};
  for (int i = 0; i < 2; i++)
    if (sp[i]->images.rows != 28 || sp[i]->images.cols != 28) {
      s = IL_ERR(IL_ERR_FORMAT, "%s/%s-images-idx3-ubyte holds %zux%zu images, the model expects 28x28", dir, nm[i],
                 sp[i]->images.rows, sp[i]->images.cols);
      il_mnist_split_free(train);
      il_mnist_split_free(test);
      return s;
    }
  return IL_OK;
}

/* The run's configuration as attributes of its results group. */
static il_status fill_run_info(il_run_info *ri, const train_opts *o, const il_dist *d, long run_index,
                               const il_model *m, const il_gradcomm *gc) {
  IL_CHECK(il_run_attr_s(ri, "solver", o->solver));
  IL_CHECK(il_run_attr_s(ri, "backward", o->backward));
  IL_CHECK(il_run_attr_d(ri, "tol", o->tol));
  IL_CHECK(il_run_attr_i(ri, "max_iter", o->max_iter));
  IL_CHECK(il_run_attr_d(ri, "eval_tol", o->eval_tol));
  IL_CHECK(il_run_attr_i(ri, "eval_max_iter", o->eval_max_iter));
  IL_CHECK(il_run_attr_i(ri, "hidden", o->hidden));
  IL_CHECK(il_run_attr_i(ri, "batch", o->batch));
  IL_CHECK(il_run_attr_i(ri, "epochs", o->epochs));
  IL_CHECK(il_run_attr_i(ri, "max_batches", o->max_batches));
  IL_CHECK(il_run_attr_i(ri, "test_batches", o->test_batches));
  IL_CHECK(il_run_attr_d(ri, "lr", o->lr));
  IL_CHECK(il_run_attr_s(ri, "lr_drop", o->lr_drop_text));
  IL_CHECK(il_run_attr_i(ri, "seed", o->seed));
  IL_CHECK(il_run_attr_s(ri, "stop", o->stop));
  IL_CHECK(il_run_attr_i(ri, "threads", o->threads));
  IL_CHECK(il_run_attr_s(ri, "device", o->device));
  {
    il_blas_core_info bc;
    il_blas_core_query(&bc);
    if (bc.core[0]) {
      const char *forced = getenv("OPENBLAS_CORETYPE");
      char kern[96];
      snprintf(kern, sizeof kern, "OpenBLAS %s%s", bc.core,
               forced ? (getenv("ILBENCH_BLAS_REEXEC") ? ", OPENBLAS_CORETYPE set by ilbench" : ", OPENBLAS_CORETYPE set by the user")
                      : (bc.suggest[0] ? ", below this CPU's SIMD level" : ""));
      IL_CHECK(il_run_attr_s(ri, "blas_kernels", kern));
    }
  }
  IL_CHECK(il_run_attr_s(ri, "precision", IL_REAL_NAME));
  IL_CHECK(il_run_attr_i(ri, "world_size", d->size));
  /* the process grid: shape, block size, data-parallel groups, BLACS context; written only with a
   * grid, so a 1x1 run's attributes (and config_hash) are as before (readers take a missing grid as 1x1) */
  if (o->grid) {
    char ctx[64];
    snprintf(ctx, sizeof ctx, "%dx%d row-major", o->grid->pr, o->grid->pc);
    IL_CHECK(il_run_attr_s(ri, "grid", o->grid_text));
    IL_CHECK(il_run_attr_i(ri, "grid_nb", o->grid->nb));
    IL_CHECK(il_run_attr_i(ri, "grid_groups", o->grid->D));
    IL_CHECK(il_run_attr_s(ri, "blacs_context", ctx));
  }
  IL_CHECK(il_run_attr_s(ri, "data", o->data));
  IL_CHECK(il_run_attr_i(ri, "run_index", run_index));
  IL_CHECK(il_run_attr_s(ri, "zero_nonconverged", m->layer.zero_rows ? "yes" : "no"));
  IL_CHECK(il_run_attr_i(ri, "adjoint_refine", o->refine));
  IL_CHECK(il_run_attr_s(ri, "stop_mode", o->stop_mode));
  IL_CHECK(il_run_attr_d(ri, "divtol", o->divtol));
  IL_CHECK(il_run_attr_i(ri, "best", o->best != IL_BEST_OFF));
  IL_CHECK(il_run_attr_s(ri, "sech2", o->sech2));
  IL_CHECK(il_run_attr_i(ri, "diag", o->diag));
  IL_CHECK(il_run_attr_s(ri, "options", o->opts_text));
  IL_CHECK(il_run_attr_s(ri, "allreduce", il_gradcomm_path_name(gc)));
  IL_CHECK(il_run_attr_i(ri, "parameters", (int64_t)m->nparams));
  IL_CHECK(il_run_attr_d(ri, "jac_reg", o->jac_reg));
  IL_CHECK(il_run_attr_i(ri, "jac_reg_samples", o->jac_reg_samples));
  IL_CHECK(il_run_attr_i(ri, "jac_reg_every", o->jac_reg_every));
  IL_CHECK(il_run_attr_i(ri, "fp_correction", o->fpc_k));
  IL_CHECK(il_run_attr_d(ri, "fp_correction_gamma", o->fpc_gamma));
  /* the stopping norm fwd_residual is measured in, and which lowest-residual iterate is returned */
  IL_CHECK(il_run_attr_s(ri, "stop_norm", o->stop_norm));
  IL_CHECK(il_run_attr_s(ri, "best_rule", o->best_rule));
  if (o->trace) IL_CHECK(il_run_attr_i(ri, "trace", o->trace)); /* only when given: absent means off */
  IL_CHECK(il_run_attr_i(ri, "warm_start", o->warm_start));
  IL_CHECK(il_run_attr_s(ri, "w_norm", o->w_norm));
  if (o->inject_nan_rank >= 0) {
    char inj[64];
    snprintf(inj, sizeof inj, "%ld:%ld", o->inject_nan_rank, o->inject_nan_step);
    IL_CHECK(il_run_attr_s(ri, "inject_nan", inj));
  }
  return IL_OK;
}

/* FNV-1a over the run's configuration attributes (key, kind, value): what a
 * checkpoint is valid for. */
static uint64_t config_hash(const il_run_info *ri) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (int i = 0; i < ri->nattrs; i++) {
    const il_attr *a = &ri->attrs[i];
    char buf[256];
    int n = a->kind == 's' ? snprintf(buf, sizeof buf, "%s\037s\037%s\036", a->key, a->s)
            : a->kind == 'd' ? snprintf(buf, sizeof buf, "%s\037d\037%a\036", a->key, a->d)
                             : snprintf(buf, sizeof buf, "%s\037i\037%lld\036", a->key, (long long)a->i);
    for (int k = 0; k < n && k < (int)sizeof buf; k++) h = (h ^ (unsigned char)buf[k]) * 0x100000001b3ULL;
  }
  return h;
}


/* ---- one run: its state, set-up, training steps, epochs and end ---- */

/* Everything one run holds from set-up to the end. */
typedef struct train_run {
  il_dist dist; /* the data-parallel ranks (with --grid: the peers at this rank's grid position); the caller's */
  il_dist world; /* every rank of the run (the same as dist without a grid): agreement, binding, abort */
  train_opts o;
  int root;
  const char *pfx, *run_id;
  long run_index;
  const il_mnist_split *train, *test;
  il_h5_file *h5;          /* NULL: no results file */
  il_backend *be;
  il_events ev;            /* the run's events (--log-view and the results' events table) */
  il_gradcomm gc;          /* the gradient allreduce (MPI in place, staged, or NCCL) */
  int gc_ok, gpu;          /* gpu: this rank's GPU (--device cuda), else -1 */
  float *stage;            /* (nparams) host staging of parameters/gradients when the space is not host memory */
  il_model model;
  int model_ok, run_open;  /* the model is built; the run is open in the results file */
  size_t est;              /* estimated bytes of the model on one rank */
  long lb_max;             /* rows of the largest shard: rank 0's */
  long ntrain, ntest;      /* samples in the splits */
  long nb, ntb;            /* training and test batches per epoch */
  float *X;                /* (lb_max, 784) */
  uint8_t *y;              /* (lb_max) */
  uint32_t *perm, *tidx;   /* (ntrain) shuffled training order, (ntest) identity */
  uint32_t *order;         /* (epochs, order_per_epoch) --batch-order's indices, or NULL */
  long order_per_epoch;    /* training samples an epoch feeds: min(nb * batch, ntrain) */
  char init_tag[160], order_tag[160]; /* "fnv1a64:HEX PATH" of --init-from / --batch-order, or "" */
  il_step_row *steps;      /* (nb) this epoch's steps table */
  il_rank_row my;          /* this rank's phase totals over the run */
  il_memstats run_peak;    /* high-water marks over the run's epochs */
  /* training state a checkpoint holds (with the parameters) */
  il_rng shuffle;          /* the shuffle stream, now */
  il_rng shuffle_epoch;    /* ... at the start of the current epoch (before its permutation) */
  double lr;               /* the learning rate in effect */
  epoch_acc tr;            /* the current epoch's training sums */
  long epoch, step, global_step; /* position: epoch in progress, its batches done, batches done in the run */
  long steps_written;      /* rows of this epoch's steps already in the results file */
  uint64_t config_hash;
  float *ck_params;        /* (nparams) host copy for resume */
  int stop_sig;            /* SIGTERM/SIGINT that stopped the run, agreed by every rank */
  uint64_t resume_epoch_peak[IL_MEM_NCAT + 2]; /* a mid-epoch checkpoint's high-water marks of its epoch */
  int cpus[IL_BIND_MAX], bound; /* --threads T > 1: the CPUs this rank's threads are pinned to */
  char bind_desc[256];
  il_trace_row *trace_rows;  /* --trace (rank 0): rows of the traced steps not yet in the results file */
  long ntrace, trace_cap;
  int trace_warned;          /* a trace overflowed (a sizing bug): said once */
  /* --warm-start: the fixed points by sample (kept equal on every rank), the host copies a
   * checkpoint takes when the space is not host memory, and the exchange's buffers */
  il_warm_start warm;
  int warm_ok;
  float *ck_warm;          /* (ntrain, hidden) or NULL */
  float *xs_rows;          /* (batch, hidden) host: the batch's fixed points, gathered over ranks */
  unsigned char *xs_forget; /* (batch) host: their zeroed flags */
  int *xs_counts;          /* (4 ranks) MPI_Allgatherv's counts and displacements of rows and flags */
  float *ck_uv;            /* --w-norm spectral: u, v (2 hidden) for checkpoints */
} train_run;

/* How a phase of the run ended (il_train_run turns it into its return code). */
typedef enum run_outcome {
  RUN_OK,
  RUN_INVALID, /* refused, with the same verdict on every rank: return 2 */
  RUN_FAILED,  /* every rank stopped here together: mark the run failed, return 1 */
  RUN_FATAL,   /* a failure inside a collective phase: report and abort the job */
  RUN_STOPPED, /* SIGTERM/SIGINT on some rank: every rank checkpointed here together */
} run_outcome;

/* ---- the compute backend, parameters and gradients ---- */

/* --device cuda (and cuda-host, its host twin, so this runs in tests here): the backend-ops
 * self-test once per process and GPU before the first run on it
 * (a few seconds), so a kernel that is wrong on a GPU nobody here has tried stops the run with a
 * clear error instead of producing wrong results. Failures are listed on stderr by each rank. */
static il_status device_selftest(const train_run *r, const il_backend_options *bo) {
  static int passed_gpu = -1;
  const char *name = r->be->ops->name;
  if (strncmp(name, "cuda", 4) != 0 || passed_gpu == bo->device) return IL_OK;
  il_selftest_summary sum;
  const il_status s = il_selftest_run_on_f32(name, bo, 0, 0, stderr, &sum);
  if (s != IL_OK)
    return IL_ERR(IL_ERR_NUMERIC,
                  "rank %d: the %s backend failed its self-test on GPU %d (%d of %d cases; `ilbench selftest "
                  "--device %s --verbose` lists them): refusing to train on kernels that compute wrong results",
                  r->dist.rank, name, bo->device, sum.failed, sum.cases, name);
  passed_gpu = bo->device;
  if (r->root)
    printf("%s# %-18s %s passed (float32, %d cases, %.1f s)\n", r->pfx, "selftest", name, sum.cases, sum.seconds);
  return IL_OK;
}

/* This rank's GPU (--device cuda): --gpu-map or its node-local rank; cuda-host stands in with one. */
static il_status pick_gpu(train_run *r, int *gpu) {
  *gpu = -1;
  if (strncmp(r->o.device, "cuda", 4) != 0) return IL_OK;
  int ngpus = 1;
#ifdef ILBENCH_HAVE_CUDA
  if (strcmp(r->o.device, "cuda") == 0) ngpus = il_cuda_device_count();
#endif
  if (ngpus < 1) return IL_OK; /* creating the backend says why there is none */
  return il_gpu_pick(r->dist.node_rank, r->dist.node_size, ngpus, r->o.gpu_map, gpu);
}

static il_status setup_backend(train_run *r) {
  IL_CHECK(pick_gpu(r, &r->gpu));
  const il_backend_options bo = {.threads = (int)r->o.threads, .cpus = r->bound ? r->cpus : NULL,
                                 .device = r->gpu < 0 ? 0 : r->gpu, .grid = r->o.grid};
  IL_CHECK(il_backend_create(r->o.device, &bo, &r->be));
  IL_CHECK(device_selftest(r, &bo));
  il_events_reset(&r->ev);
  r->be->events = &r->ev; /* two clock reads per event: always on */
  return IL_OK;
}

/* MPI reads and writes host memory: a space the host can read is used in place, any other
 * (cpu-guard, a device) is staged through r->stage around each collective. */
static il_status staged(train_run *r, float **host) {
  *host = r->model.params; /* overwritten below when staging */
  if (r->be->ops->host_accessible) return IL_OK;
  if (!r->stage && !(r->stage = malloc(r->model.nparams * sizeof *r->stage)))
    return IL_ERR(IL_ERR_NOMEM, "cannot allocate the %zu-parameter host staging buffer", r->model.nparams);
  *host = r->stage;
  return IL_OK;
}

/* Every rank initialised from the same seed; the broadcast makes rank 0 the single source anyway. */
static il_status broadcast_params(train_run *r) {
  float *h;
  IL_CHECK(staged(r, &h));
  if (h == r->stage) IL_CHECK(il_model_get_params(&r->model, h));
  IL_CHECK(il_dist_bcast(&r->dist, h, r->model.nparams, MPI_FLOAT, 0));
  if (h == r->stage) IL_CHECK(il_model_set_params(&r->model, h));
  return IL_OK;
}

/* One allreduce of the whole gradient; a NaN on any rank reaches every rank. */
static il_status allreduce_grads_(train_run *r) {
  return il_gradcomm_allreduce(&r->gc, r->model.grads);
}
static il_status allreduce_grads(train_run *r) {
  const il_ev_scope ev = il_ev_open(r->be);
  const il_status s = allreduce_grads_(r);
  il_ev_close(r->be, ev, IL_EV_ALLREDUCE);
  return s;
}

/* The run's events over ranks: calls of rank 0, the largest and the summed time, summed FLOPs.
 * Collective; every rank gets the same rows. */
static il_status event_rows(train_run *r, il_event_row *rows) {
  double tmax[IL_EV_N], tsum[IL_EV_N], fl[IL_EV_N];
  int64_t calls[IL_EV_N];
  for (int i = 0; i < IL_EV_N; i++) {
    tmax[i] = tsum[i] = r->ev.ev[i].time;
    fl[i] = r->ev.ev[i].flops;
    calls[i] = r->ev.ev[i].calls;
  }
  if (r->dist.size > 1 &&
      (MPI_Allreduce(MPI_IN_PLACE, tmax, IL_EV_N, MPI_DOUBLE, MPI_MAX, r->dist.comm) != MPI_SUCCESS ||
       MPI_Allreduce(MPI_IN_PLACE, tsum, IL_EV_N, MPI_DOUBLE, MPI_SUM, r->dist.comm) != MPI_SUCCESS ||
       MPI_Allreduce(MPI_IN_PLACE, fl, IL_EV_N, MPI_DOUBLE, MPI_SUM, r->dist.comm) != MPI_SUCCESS ||
       MPI_Bcast(calls, IL_EV_N, MPI_INT64_T, 0, r->dist.comm) != MPI_SUCCESS))
    return IL_ERR(IL_ERR_INTERNAL, "reducing the events over ranks failed");
  for (int i = 0; i < IL_EV_N; i++) {
    rows[i] = (il_event_row){.calls = calls[i], .time_max = tmax[i], .time_sum = tsum[i], .flops = fl[i]};
    snprintf(rows[i].name, sizeof rows[i].name, "%s", il_event_name((il_event_id)i));
  }
  return IL_OK;
}

/* --log-view: the events table, PETSc style (rank 0). */
static void print_events(const train_run *r, const il_event_row *rows) {
  double top = 0; /* the top-level events do not nest: their sum is the instrumented time */
  const int toplevel[] = {IL_EV_FWD_SOLVE, IL_EV_BWD_SOLVE, IL_EV_HEAD, IL_EV_ALLREDUCE, IL_EV_UPDATE, IL_EV_JAC_REG};
  for (int i = 0; i < 6; i++) top += rows[toplevel[i]].time_max;
  printf("%s# events (%d rank%s; time: largest over ranks, inclusive; FLOPs: summed over ranks, counted by the "
         "backend)\n", r->pfx, r->dist.size, r->dist.size == 1 ? "" : "s");
  printf("%s# %-10s %10s %11s %7s %12s %9s\n", r->pfx, "event", "calls", "time_s", "%time", "GFLOP", "GFLOP/s");
  for (int i = 0; i < IL_EV_N; i++) {
    const il_event_row *e = &rows[i];
    if (!e->calls) continue;
    printf("%s# %-10s %10lld %11.4f %6.1f%% %12.4f %9.2f\n", r->pfx, e->name, (long long)e->calls, e->time_max,
           top > 0 ? 100 * e->time_max / top : 0, 1e-9 * e->flops,
           e->time_max > 0 ? 1e-9 * e->flops / r->dist.size / e->time_max : 0);
  }
  fflush(stdout);
}

static il_status grads_finite(const train_run *r, int *finite) {
  return IL_BE(r->be, all_finite, r->model.nparams, r->model.grads, finite);
}

static il_status grad_norm(const train_run *r, double *gn) {
  IL_CHECK(IL_BE(r->be, sqdist, r->model.nparams, r->model.grads, NULL, gn));
  *gn = sqrt(*gn);
  return IL_OK;
}

/* --inject-nan: a NaN in one gradient of one rank, for testing the skip. */
static il_status inject_nan_grad(train_run *r) {
  const float nan = NAN;
  return il_upload(r->be, r->model.grads, &nan, 1);
}

/* The parameters on the host (the model's own buffer, or the staging copy). */
static il_status params_on_host(train_run *r, const float **host) {
  float *h;
  IL_CHECK(staged(r, &h));
  if (h == r->stage) IL_CHECK(il_model_get_params(&r->model, h));
  *host = h;
  return IL_OK;
}

/* *same = 1 when the parameters are bitwise identical on every rank. Collective. */
static il_status params_in_sync(train_run *r, int *same) {
  const float *h = NULL;
  IL_CHECK(params_on_host(r, &h));
  return il_dist_in_sync(&r->world, il_hash_bytes(h, r->model.nparams * sizeof *h), same); /* the grids' ranks too */
}

/* --save-params: the raw parameters, written by rank 0; 0 and the error set on failure. Collective: a
 * grid's ranks gather W and dW together. */
static int write_params(train_run *r, const char *path) {
  const float *h = NULL;
  if (params_on_host(r, &h) != IL_OK) return 0;
  if (!r->root) return 1;
  FILE *f = fopen(path, "wb");
  int ok = f && fwrite(h, sizeof *h, r->model.nparams, f) == r->model.nparams;
  if (f && fclose(f) != 0) ok = 0;
  if (!ok) IL_ERR(IL_ERR_IO, "cannot write parameters to '%s': %s", path, strerror(errno));
  return ok;
}

/* ---- set-up ---- */

/* Checks of the options against this world and the data, and the model's
 * configuration. *local_ok = 0 when a check whose verdict may differ by rank
 * (node memory) failed; the ranks agree on it in create_model. */
static run_outcome validate_run(train_run *r, il_model_config *mc, int *local_ok) {
  const train_opts *o = &r->o;
  const il_dist *d = &r->dist;
  if (o->batch < d->size) {
    IL_ERR(IL_ERR_ARG, "--batch %ld is smaller than the %d ranks: every rank needs at least one row", o->batch,
           d->size);
    return RUN_INVALID;
  }
  long off, cnt;
  il_dist_shard(o->batch, 0, d->size, &off, &r->lb_max);
  il_dist_shard(o->batch, d->rank, d->size, &off, &cnt);
  r->my.local_batch = (int32_t)cnt;
  *mc = (il_model_config){.in_dim = 784, .hidden = (int)o->hidden, .classes = 10, .max_batch = (int)r->lb_max,
                          .seed = (uint64_t)o->seed, .corr_gamma = o->fpc_gamma, .jac_reg = o->jac_reg,
                          .jac_reg_samples = (int)o->jac_reg_samples};
  il_train_layer_config(o, &mc->layer);
  mc->w_norm = (il_wnorm_kind)il_wnorm_from_name(o->w_norm);
  if (il_model_estimate_bytes(mc, &r->est) != IL_OK) {
    il_error_clear();
    IL_ERR(IL_ERR_NOMEM, "--hidden %ld with --batch %ld is too large to allocate (its size overflows)", o->hidden,
           o->batch);
    return RUN_INVALID;
  }
  *local_ok = 1;
  if (o->warm_start) /* the table: a row per training sample */
    r->est += (size_t)r->train->images.count * (size_t)o->hidden * sizeof(float);
  unsigned long long phys = il_phys_mem();
  if (phys && (double)r->est * d->node_size > (double)phys) {
    IL_ERR(IL_ERR_NOMEM, "--hidden %ld with --batch %ld needs about %.3g GiB on %d rank(s) of this node, more than its %.3g GiB",
           o->hidden, o->batch, (double)r->est * d->node_size / (1 << 30), d->node_size, (double)phys / (1 << 30));
    *local_ok = 0;
  }
  if (o->trace && strcmp(o->stop, "sample") == 0 && (d->size > 1 || o->threads > 1)) {
    IL_ERR(IL_ERR_UNSUPPORTED, "--trace with --stop sample needs one rank and --threads 1: each rank and thread shard "
           "stops on its own rows, so there is no one residual per iteration to record (here %d rank(s), %ld "
           "thread(s))", d->size, o->threads);
    return RUN_INVALID;
  }
  r->ntrain = (long)r->train->images.count;
  r->ntest = (long)r->test->images.count;
  if (r->ntrain % o->batch != 0 && r->ntrain % o->batch < d->size) {
    IL_ERR(IL_ERR_ARG, "the last training batch has %ld rows, fewer than the %d ranks; choose another --batch",
           r->ntrain % o->batch, d->size);
    return RUN_INVALID;
  }
  if (r->ntest % o->batch != 0 && r->ntest % o->batch < d->size) {
    IL_ERR(IL_ERR_ARG, "the last test batch has %ld rows, fewer than the %d ranks; choose another --batch",
           r->ntest % o->batch, d->size);
    return RUN_INVALID;
  }
  return RUN_OK;
}

/* The backend and the model on every rank where the checks passed, then the
 * ranks agree: when any rank failed, every rank refuses the run. */
static run_outcome create_model(train_run *r, const il_model_config *mc, int local_ok) {
  /* collective, so every rank takes part whatever its own checks said */
  if (il_bind_cpus(&r->world, (int)r->o.threads, r->cpus, &r->bound, r->bind_desc, sizeof r->bind_desc) != IL_OK)
    local_ok = 0;
  if (local_ok) {
    if (setup_backend(r) != IL_OK) local_ok = 0;
    else if (il_model_create(&r->model, mc, r->be) != IL_OK) {
      il_model_destroy(&r->model); /* frees whatever part was built */
      local_ok = 0;
    } else {
      r->model_ok = 1;
      if (r->o.trace && il_layer_trace_init(&r->model.layer) != IL_OK) local_ok = 0;
      if (r->o.warm_start) {
        if (il_warm_start_init(&r->warm, r->be, r->ntrain, (int)r->o.hidden, (int)r->o.batch, &r->model.mem) != IL_OK)
          local_ok = 0;
        r->warm_ok = 1; /* destroy what was built either way */
      }
    }
  }
  int all_ok = local_ok;
  if (r->world.size > 1) MPI_Allreduce(&local_ok, &all_ok, 1, MPI_INT, MPI_LAND, r->world.comm);
  if (!all_ok) {
    if (!local_ok && !r->root) { /* only rank 0 reports for the job: say it here */
      char who[300];
      snprintf(who, sizeof who, "rank %d on %s: ", r->dist.rank, r->dist.host);
      const char *msg = il_error_message();
      fprintf(stderr, "ilbench: error: %s%s\n", strncmp(msg, who, strlen(who)) == 0 ? "" : who, msg);
    }
    if (local_ok) IL_ERR(IL_ERR_NOMEM, "setup failed on another rank (see its message)");
    return RUN_INVALID;
  }
  /* collective; its verdict (NCCL or staged) is the same on every rank */
  if (il_gradcomm_init(&r->gc, &r->dist, r->be, r->model.nparams, r->o.allreduce, r->gpu) != IL_OK) {
    il_gradcomm_free(&r->gc);
    return RUN_INVALID;
  }
  r->gc_ok = 1;
  return RUN_OK;
}

/* Batch counts, index and batch buffers. */
static run_outcome setup_data(train_run *r) {
  const train_opts *o = &r->o;
  r->nb = (r->ntrain + o->batch - 1) / o->batch;
  if (o->max_batches > 0 && o->max_batches < r->nb) r->nb = o->max_batches;
  r->ntb = (r->ntest + o->batch - 1) / o->batch;
  if (o->test_batches >= 0 && o->test_batches < r->ntb) r->ntb = o->test_batches;
  if (o->inject_nan_rank >= r->dist.size) {
    IL_ERR(IL_ERR_ARG, "--inject-nan %ld:%ld: there is no rank %ld in this world of %d", o->inject_nan_rank,
           o->inject_nan_step, o->inject_nan_rank, r->dist.size);
    return RUN_INVALID;
  }
  if (o->inject_nan_rank >= 0 && o->inject_nan_step >= r->nb * o->epochs) {
    IL_ERR(IL_ERR_ARG, "--inject-nan %ld:%ld: there is no step %ld (the run has %ld steps, 0..%ld)",
           o->inject_nan_rank, o->inject_nan_step, o->inject_nan_step, r->nb * o->epochs, r->nb * o->epochs - 1);
    return RUN_INVALID;
  }
  r->X = malloc((size_t)r->lb_max * 784 * sizeof *r->X);
  r->y = malloc((size_t)r->lb_max);
  r->perm = malloc(r->train->images.count * sizeof *r->perm);
  r->tidx = malloc(r->test->images.count * sizeof *r->tidx);
  r->steps = calloc((size_t)r->nb, sizeof *r->steps);
  if (!r->X || !r->y || !r->perm || !r->tidx || !r->steps) {
    IL_ERR(IL_ERR_NOMEM, "rank %d: out of memory for batch buffers", r->dist.rank);
    return RUN_FATAL;
  }
  for (size_t i = 0; i < r->test->images.count; i++) r->tidx[i] = (uint32_t)i;
  return RUN_OK;
}

/* ---- --init-from and --batch-order: rank 0 reads the file, every rank gets its verdict ---- */

/* The whole file at path, NUL-terminated (*data malloc'd, *n bytes without the NUL). */
static il_status slurp(const char *opt, const char *path, char **data, size_t *n) {
  *data = NULL;
  *n = 0;
  FILE *f;
  IL_CHECK(il_cli_open_input(path, opt, &f)); /* a regular file only: a FIFO would block in open() */
  size_t cap = 1 << 16, len = 0, k;
  char *buf = malloc(cap + 1);
  while (buf && (k = fread(buf + len, 1, cap - len, f)) > 0) {
    len += k;
    if (len == cap) {
      char *nb = cap < ((size_t)1 << 40) ? realloc(buf, 2 * cap + 1) : NULL;
      if (!nb) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = nb;
      cap *= 2;
    }
  }
  const int bad = ferror(f);
  fclose(f);
  if (!buf) return IL_ERR(IL_ERR_NOMEM, "%s: '%s' is too large to read into memory", opt, path);
  if (bad) {
    free(buf);
    return IL_ERR(IL_ERR_IO, "%s: cannot read '%s'", opt, path);
  }
  buf[len] = '\0';
  *data = buf;
  *n = len;
  return IL_OK;
}

/* "fnv1a64:<16 hex> <path>": how a run records an input file, by the standard 64-bit FNV-1a hash
 * of its bytes (analysis/SCHEMA.md gives the recipe). A path too long for a run attribute keeps
 * its last characters after "...". */
static void file_tag(char *tag, size_t cap, const char *path, const void *data, size_t n) {
  const unsigned long long h = il_hash_bytes(data, n);
  const size_t plen = strlen(path), room = cap - 26; /* "fnv1a64:" + 16 hex + ' ' + NUL */
  if (plen <= room) snprintf(tag, cap, "fnv1a64:%016llx %s", h, path);
  else snprintf(tag, cap, "fnv1a64:%016llx ...%s", h, path + plen - (room - 3));
}

/* Rank 0's verdict ok (and its tag) on every rank. Collective. */
static run_outcome agree_with_root(train_run *r, int ok, const char *opt, char *tag, size_t tagcap) {
  if (r->dist.size > 1 && (MPI_Bcast(&ok, 1, MPI_INT, 0, r->dist.comm) != MPI_SUCCESS ||
                           MPI_Bcast(tag, (int)tagcap, MPI_CHAR, 0, r->dist.comm) != MPI_SUCCESS)) {
    IL_ERR(IL_ERR_INTERNAL, "MPI_Bcast of the %s verdict failed", opt);
    return RUN_FATAL;
  }
  if (!ok && !r->root) IL_ERR(IL_ERR_ARG, "%s was refused on rank 0 (see its message)", opt);
  return ok ? RUN_OK : RUN_INVALID;
}

/* --init-from (rank 0): the file must hold exactly the model's nparams float32 values, all
 * finite, in the order --save-params writes them; they replace the seeded initialisation
 * before the broadcast. */
static il_status read_init(train_run *r, const char *path) {
  char *data;
  size_t n;
  IL_CHECK(slurp("--init-from", path, &data, &n));
  const size_t np = r->model.nparams, want = np * sizeof(float);
  const long h = r->o.hidden;
  il_status s = IL_OK;
  if (n != want) {
    s = IL_ERR(IL_ERR_FORMAT, "--init-from '%s': %zu bytes, expected %zu: the %zu float32 parameters of the 784-%ld-10 "
               "model (W1 %ldx784, b1 %ld, W %ldx%ld, W2 10x%ld, b2 10, row-major, as --save-params writes; "
               "check --hidden)", path, n, want, np, h, h, h, h, h, h);
  } else {
    const float *p = (const float *)(void *)data; /* malloc'd: aligned for float */
    for (size_t i = 0; i < np && s == IL_OK; i++)
      if (!isfinite(p[i])) s = IL_ERR(IL_ERR_FORMAT, "--init-from '%s': parameter %zu is not finite (%g)", path, i,
                                      (double)p[i]);
    if (s == IL_OK) s = il_model_set_params(&r->model, p);
    if (s == IL_OK) file_tag(r->init_tag, sizeof r->init_tag, path, data, n);
  }
  free(data);
  return s;
}

static run_outcome load_init(train_run *r) {
  if (!r->o.init_from) return RUN_OK;
  const int ok = !r->root || read_init(r, r->o.init_from) == IL_OK;
  return agree_with_root(r, ok, "--init-from", r->init_tag, sizeof r->init_tag);
}

/* --batch-order (rank 0). The file is text: 0-based training-sample indices separated by
 * white space, '#' to the end of a line is a comment. It lists epoch after epoch, and within an
 * epoch the batches in turn: --epochs blocks of min(batches * --batch, training samples)
 * indices, batches counted after --max-batches. Line breaks carry no meaning (one batch a line
 * is customary). Refused: a token that is not an index, an index out of range, the wrong count,
 * an index twice within one epoch. */
static il_status read_order(train_run *r, const char *path) {
  char *text;
  size_t n;
  IL_CHECK(slurp("--batch-order", path, &text, &n));
  const long per = r->order_per_epoch, ntrain = r->ntrain;
  const size_t want = (size_t)r->o.epochs * (size_t)per;
  il_status s = IL_OK;
  size_t count = 0;
  long line = 1;
  if (strlen(text) != n) s = IL_ERR(IL_ERR_FORMAT, "--batch-order '%s': not a text file (it holds a NUL byte)", path);
  else if (!(r->order = malloc(want * sizeof *r->order)))
    s = IL_ERR(IL_ERR_NOMEM, "--batch-order: cannot allocate %zu indices (--epochs %ld)", want, r->o.epochs);
  for (const char *c = text; s == IL_OK && *c;) {
    if (*c == '\n') {
      line++;
      c++;
    } else if (isspace((unsigned char)*c)) {
      c++;
    } else if (*c == '#') {
      while (*c && *c != '\n') c++;
    } else {
      const char *t = c;
      unsigned long long v = 0;
      while (isdigit((unsigned char)*c)) {
        if (v <= (unsigned long long)ntrain) v = 10 * v + (unsigned long long)(*c - '0');
        c++;
      }
      if (c == t || (*c && !isspace((unsigned char)*c) && *c != '#')) {
        while (*c && !isspace((unsigned char)*c)) c++;
        s = IL_ERR(IL_ERR_FORMAT, "--batch-order '%s': line %ld: '%.*s' is not a sample index (0-based integers "
                   "separated by white space; '#' starts a comment)", path, line, (int)(c - t > 40 ? 40 : c - t), t);
      } else if (v >= (unsigned long long)ntrain) {
        s = IL_ERR(IL_ERR_FORMAT, "--batch-order '%s': line %ld: index %.*s is out of range: the training split has "
                   "%ld samples (0..%ld)", path, line, (int)(c - t > 40 ? 40 : c - t), t, ntrain, ntrain - 1);
      } else {
        if (count < want) r->order[count] = (uint32_t)v;
        count++;
      }
    }
  }
  if (s == IL_OK && count != want)
    s = IL_ERR(IL_ERR_FORMAT, "--batch-order '%s': holds %zu indices, expected %zu: %ld epoch(s) of %ld samples "
               "(%ld batch(es) of --batch %ld%s)", path, count, want, r->o.epochs, per, r->nb, r->o.batch,
               per < r->nb * r->o.batch ? ", the last one partial" : "");
  int64_t *seen = s == IL_OK ? malloc((size_t)ntrain * sizeof *seen) : NULL; /* position in the file, -1: none */
  if (s == IL_OK && !seen) s = IL_ERR(IL_ERR_NOMEM, "--batch-order: cannot allocate the duplicate check");
  for (long i = 0; s == IL_OK && i < ntrain; i++) seen[i] = -1;
  for (size_t k = 0; s == IL_OK && k < want; k++) {
    const int64_t ep = (int64_t)(k / (size_t)per), at = (int64_t)k, first = seen[r->order[k]];
    if (first >= ep * per) {
      const long p0 = (long)(first - ep * per), p1 = (long)(at - ep * per);
      s = IL_ERR(IL_ERR_FORMAT, "--batch-order '%s': epoch %lld: sample %u appears twice, in batch %ld (position %ld) "
                 "and in batch %ld (position %ld); an epoch feeds each sample at most once", path, (long long)ep,
                 r->order[k], p0 / r->o.batch, p0 % r->o.batch, p1 / r->o.batch, p1 % r->o.batch);
    }
    seen[r->order[k]] = at;
  }
  free(seen);
  if (s == IL_OK) file_tag(r->order_tag, sizeof r->order_tag, path, text, n);
  free(text);
  return s;
}

static run_outcome load_order(train_run *r) {
  if (!r->o.batch_order) return RUN_OK;
  r->order_per_epoch = r->nb * r->o.batch < r->ntrain ? r->nb * r->o.batch : r->ntrain;
  const int ok = !r->root || read_order(r, r->o.batch_order) == IL_OK;
  run_outcome out = agree_with_root(r, ok, "--batch-order", r->order_tag, sizeof r->order_tag);
  if (out != RUN_OK || r->dist.size == 1) return out;
  const size_t want = (size_t)r->o.epochs * (size_t)r->order_per_epoch;
  if (!r->root && !(r->order = malloc(want * sizeof *r->order))) {
    IL_ERR(IL_ERR_NOMEM, "rank %d: cannot allocate the %zu --batch-order indices", r->dist.rank, want);
    return RUN_FATAL;
  }
  return il_dist_bcast(&r->dist, r->order, want, MPI_UINT32_T, 0) == IL_OK ? RUN_OK : RUN_FATAL;
}

/* ---- checkpoints ---- */

/* The state a checkpoint holds, as named arrays (results_h5.h). A feature that
 * adds training state adds its item here; a checkpoint without it is then
 * refused on resume, never half-restored. */
typedef struct ckpt_bufs {
  uint64_t rng[4];
  double acc[ACC_N], lr;
  uint64_t peak[IL_MEM_NCAT + 1];
  uint64_t epoch_peak[IL_MEM_NCAT + 2]; /* the epoch's high-water marks so far: categories, total, space */
  double ev[IL_EV_N * 3];
  int64_t *rank_nan; /* (2 * ranks) every rank's nan_steps, first_nan_step */
  uint64_t jr_rng[4]; /* --jac-reg: the probes' stream now */
  double jr_acc[2];   /* --jac-reg: the epoch's estimate sums so far */
  float *warm_table; /* --warm-start: (ntrain, hidden) on the host (ckpt_state_buffers) */
} ckpt_bufs;

static void ckpt_layout(train_run *r, il_h5_ckpt *ck, ckpt_bufs *b, float *params) {
  memset(ck, 0, sizeof *ck);
  ck->config_hash = r->config_hash;
  const il_ck_item items[] = {
      {"params", IL_CK_F32, r->model.nparams, params},
      {"shuffle_rng", IL_CK_U64, 4, b->rng},   /* the shuffle stream at the start of the epoch */
      {"epoch_acc", IL_CK_F64, ACC_N, b->acc}, /* the epoch's training sums so far */
      {"lr", IL_CK_F64, 1, &b->lr},
      {"peak_bytes", IL_CK_U64, IL_MEM_NCAT + 1, b->peak},
      {"epoch_peak_bytes", IL_CK_U64, IL_MEM_NCAT + 2, b->epoch_peak},
      {"events", IL_CK_F64, IL_EV_N * 3, b->ev}, /* calls, seconds, FLOPs per event */
      {"rank_nan", IL_CK_I64, 2 * (size_t)r->dist.size, b->rank_nan}, /* per rank: nan_steps, first_nan_step */
      {"jac_reg_rng", IL_CK_U64, 4, b->jr_rng},  /* --jac-reg only: the probes' stream */
      {"jac_reg_acc", IL_CK_F64, 2, b->jr_acc},  /* --jac-reg only: the epoch's estimate sums */
  };
  ck->nitems = (int)(sizeof items / sizeof items[0]) - (r->o.jac_reg > 0 ? 0 : 2); /* runs without it: as before */
  memcpy(ck->items, items, sizeof items);
  /* training state of the options that have it */
  const size_t h = (size_t)r->o.hidden;
  if (r->o.warm_start) {
    ck->items[ck->nitems++] = (il_ck_item){"warm_start_table", IL_CK_F32, (size_t)r->ntrain * h, b->warm_table};
    ck->items[ck->nitems++] = (il_ck_item){"warm_start_seen", IL_CK_U8, (size_t)r->ntrain, r->warm.seen};
  }
  const size_t nuv = il_wnorm_state_count(r->model.wnorm.kind, (int)h);
  if (nuv) ck->items[ck->nitems++] = (il_ck_item){"w_norm_uv", IL_CK_F32, nuv, r->ck_uv};
}

/* Host buffers of the state a checkpoint holds beside the parameters: the warm-start table (in
 * place when the space is host memory) and spectral normalisation's u, v. */
static il_status ckpt_state_buffers(train_run *r, ckpt_bufs *b) {
  b->warm_table = NULL;
  if (r->o.warm_start) {
    if (r->be->ops->host_accessible) {
      b->warm_table = r->warm.table;
    } else {
      if (!r->ck_warm && !(r->ck_warm = malloc((size_t)r->ntrain * (size_t)r->o.hidden * sizeof *r->ck_warm)))
        return IL_ERR(IL_ERR_NOMEM, "rank %d: no memory for the warm-start table's checkpoint copy", r->dist.rank);
      b->warm_table = r->ck_warm;
    }
  }
  const size_t nuv = il_wnorm_state_count(r->model.wnorm.kind, (int)r->o.hidden);
  if (nuv && !r->ck_uv && !(r->ck_uv = malloc(nuv * sizeof *r->ck_uv)))
    return IL_ERR(IL_ERR_NOMEM, "rank %d: no memory for a checkpoint", r->dist.rank);
  return IL_OK;
}

/* --trace (rank 0): this step's forward and backward residuals, as trace rows kept until the
 * next epoch end or checkpoint writes them. */
static run_outcome collect_trace(train_run *r, long global_step) {
  const il_layer *L = &r->model.layer;
  const il_trace *tr[2] = {&L->ftrace, &L->btrace};
  const char *solve[2] = {"forward", "backward"}, *solver[2] = {r->o.solver, L->btrace_solver};
  for (int k = 0; k < 2; k++) {
    const il_trace *t = tr[k];
    if (t->lost && !r->trace_warned) {
      fprintf(stderr, "ilbench: warning: --trace: the %s trace of step %ld was full; %d residual(s) not recorded\n",
              solve[k], global_step, t->lost);
      r->trace_warned = 1;
    }
    if (t->n == 0) continue;
    if (r->ntrace + t->n > r->trace_cap) {
      const long cap = 2 * (r->ntrace + t->n) + 256;
      il_trace_row *nr = realloc(r->trace_rows, (size_t)cap * sizeof *nr);
      if (!nr) {
        IL_ERR(IL_ERR_NOMEM, "--trace: no memory for %ld trace rows", cap);
        return RUN_FATAL;
      }
      r->trace_rows = nr;
      r->trace_cap = cap;
    }
    for (int i = 0; i < t->n; i++) {
      il_trace_row *row = &r->trace_rows[r->ntrace++];
      memset(row, 0, sizeof *row); /* no stray bytes after the names' NULs */
      row->global_step = (int32_t)global_step;
      snprintf(row->solve, sizeof row->solve, "%s", solve[k]);
      snprintf(row->solver, sizeof row->solver, "%s", solver[k] ? solver[k] : "");
      row->iteration = t->iter[i];
      row->residual = t->res[i];
      row->rel_residual = t->res[i] / t->res[0];
    }
  }
  return RUN_OK;
}

/* --trace: the rows collected so far into the results file (rank 0's; collective). */
static run_outcome flush_trace(train_run *r) {
  if (!r->h5 || !r->o.trace) return RUN_OK;
  if (il_h5_run_trace(r->h5, r->trace_rows, r->root ? (int)r->ntrace : 0) != IL_OK) return RUN_FAILED;
  r->ntrace = 0;
  return RUN_OK;
}

/* A checkpoint at the current position, with the steps rows not yet written. Collective. */
static run_outcome write_checkpoint(train_run *r) {
  const float *params = NULL;
  if (params_on_host(r, &params) != IL_OK) return RUN_FATAL;
  il_h5_ckpt ck;
  ckpt_bufs b;
  int64_t mine[2] = {r->my.nan_steps, r->my.first_nan_step};
  if (!(b.rank_nan = malloc(2 * (size_t)r->dist.size * sizeof *b.rank_nan))) {
    IL_ERR(IL_ERR_NOMEM, "rank %d: no memory for a checkpoint", r->dist.rank);
    return RUN_FATAL;
  }
  if (MPI_Allgather(mine, 2, MPI_INT64_T, b.rank_nan, 2, MPI_INT64_T, r->dist.comm) != MPI_SUCCESS) {
    free(b.rank_nan);
    IL_ERR(IL_ERR_INTERNAL, "MPI_Allgather of the NaN counters failed");
    return RUN_FATAL;
  }
  if (ckpt_state_buffers(r, &b) != IL_OK ||
      (r->o.warm_start && b.warm_table != r->warm.table && il_warm_start_get(&r->warm, b.warm_table) != IL_OK) ||
      il_wnorm_get_state(&r->model.wnorm, r->ck_uv) != IL_OK) {
    free(b.rank_nan);
    return RUN_FATAL;
  }
  ckpt_layout(r, &ck, &b, (float *)params);
  memcpy(b.rng, r->shuffle_epoch.s, sizeof b.rng);
  acc_pack(&r->tr, b.acc);
  b.lr = r->lr;
  memcpy(b.jr_rng, r->model.jr_rng.s, sizeof b.jr_rng);
  b.jr_acc[0] = r->tr.jr_sum;
  b.jr_acc[1] = r->tr.jr_samples;
  for (int c = 0; c < IL_MEM_NCAT; c++) b.peak[c] = r->run_peak.peak[c];
  b.peak[IL_MEM_NCAT] = r->run_peak.peak_total;
  for (int c = 0; c < IL_MEM_NCAT; c++) b.epoch_peak[c] = r->model.mem.peak[c];
  b.epoch_peak[IL_MEM_NCAT] = r->model.mem.peak_total;
  b.epoch_peak[IL_MEM_NCAT + 1] = r->model.mem.space_peak;
  for (int e = 0; e < IL_EV_N; e++) {
    b.ev[3 * e] = (double)r->ev.ev[e].calls;
    b.ev[3 * e + 1] = r->ev.ev[e].time;
    b.ev[3 * e + 2] = r->ev.ev[e].flops;
  }
  ck.epoch = r->epoch;
  ck.step = r->step;
  ck.global_step = r->global_step;
  const int pending = (int)(r->step - r->steps_written);
  if (flush_trace(r) != RUN_OK) {
    free(b.rank_nan);
    return RUN_FAILED;
  }
  const il_status cs = il_h5_run_checkpoint(r->h5, r->steps + r->steps_written, pending, &ck);
  free(b.rank_nan);
  if (cs != IL_OK) return RUN_FAILED;
  r->steps_written = r->step;
  return RUN_OK;
}

/* Continue the run from its checkpoint (or from the start when it has none). Collective. */
static run_outcome resume_run(train_run *r, const il_run_info *ri) {
  if (!r->ck_params && !(r->ck_params = malloc(r->model.nparams * sizeof *r->ck_params))) {
    IL_ERR(IL_ERR_NOMEM, "rank %d: no memory for the checkpoint's parameters", r->dist.rank);
    return RUN_FATAL;
  }
  il_h5_ckpt ck;
  ckpt_bufs b;
  int have = 0;
  int64_t *rank_nan = malloc(2 * (size_t)r->dist.size * sizeof *rank_nan);
  if (!rank_nan) {
    IL_ERR(IL_ERR_NOMEM, "rank %d: no memory for the checkpoint", r->dist.rank);
    return RUN_FATAL;
  }
  b.rank_nan = rank_nan;
  if (ckpt_state_buffers(r, &b) != IL_OK) {
    free(rank_nan);
    return RUN_FATAL;
  }
  ckpt_layout(r, &ck, &b, r->ck_params);
  const il_status rs = il_h5_run_resume(r->h5, ri, &ck, &have); /* agreed by every rank */
  if (have) {
    r->my.nan_steps = rank_nan[2 * r->dist.rank];
    r->my.first_nan_step = rank_nan[2 * r->dist.rank + 1];
  }
  free(rank_nan);
  if (rs != IL_OK) return rs == IL_ERR_ARG ? RUN_INVALID : RUN_FAILED;
  r->run_open = 1;
  if (!have) {
    if (r->root) printf("# %-18s no checkpoint yet: starting run %s over\n", "resume", r->run_id);
    return RUN_OK;
  }
  if (il_model_set_params(&r->model, r->ck_params) != IL_OK) return RUN_FATAL;
  if (r->o.warm_start && b.warm_table != r->warm.table && il_warm_start_set(&r->warm, b.warm_table) != IL_OK)
    return RUN_FATAL;
  if (il_wnorm_set_state(&r->model.wnorm, r->ck_uv) != IL_OK) return RUN_FATAL;
  memcpy(r->shuffle_epoch.s, b.rng, sizeof b.rng);
  r->shuffle = r->shuffle_epoch;
  acc_unpack(b.acc, &r->tr);
  r->lr = b.lr;
  if (r->o.jac_reg > 0) {
    memcpy(r->model.jr_rng.s, b.jr_rng, sizeof b.jr_rng);
    r->tr.jr_sum = b.jr_acc[0];
    r->tr.jr_samples = b.jr_acc[1];
  }
  for (int c = 0; c < IL_MEM_NCAT; c++) r->run_peak.peak[c] = (size_t)b.peak[c];
  r->run_peak.peak_total = (size_t)b.peak[IL_MEM_NCAT];
  memcpy(r->resume_epoch_peak, b.epoch_peak, sizeof b.epoch_peak);
  for (int e = 0; e < IL_EV_N; e++) {
    r->ev.ev[e].calls = (long)b.ev[3 * e];
    r->ev.ev[e].time = b.ev[3 * e + 1];
    r->ev.ev[e].flops = b.ev[3 * e + 2];
  }
  r->epoch = (long)ck.epoch;
  r->step = r->steps_written = (long)ck.step;
  r->global_step = (long)ck.global_step;
  if (r->epoch > r->o.epochs || r->step > r->nb || r->global_step != r->epoch * r->nb + r->step) {
    IL_ERR(IL_ERR_FORMAT, "results file '%s': run '%s''s checkpoint is at epoch %ld step %ld (global %ld), which "
           "this configuration (%ld epochs of %ld steps) never reaches", il_h5_path(r->h5), r->run_id, r->epoch,
           r->step, r->global_step, r->o.epochs, r->nb);
    return RUN_FAILED;
  }
  if (r->root)
    printf("# %-18s run %s from its checkpoint at epoch %ld, batch %ld (global step %ld)\n", "resume", r->run_id,
           r->epoch, r->step, r->global_step);
  return RUN_OK;
}

/* The GPU and the allreduce path in the configuration table (rank 0). */
static void print_device(const train_run *r) {
#ifdef ILBENCH_HAVE_CUDA
  il_cuda_info ci;
  if (strcmp(r->be->ops->name, "cuda") == 0 && il_cuda_get_info(r->be, &ci) == IL_OK)
    printf("# %-18s rank 0: GPU %d of %d, %s (driver %d.%d, runtime %d.%d)\n", "gpu", ci.device, ci.visible, ci.name,
           ci.driver / 1000, ci.driver % 1000 / 10, ci.runtime / 1000, ci.runtime % 1000 / 10);
#endif
  printf("# %-18s %s (%s)\n", "allreduce", il_gradcomm_path_name(&r->gc), r->gc.why);
}

/* Where the run computed (informational, after config_hash: not part of what a checkpoint
 * must match, so a resumed run may move to another GPU): rank 0's GPU, the CUDA versions,
 * and why the gradient allreduce took its path. */
static il_status fill_device_info(il_run_info *ri, const train_run *r) {
  IL_CHECK(il_run_attr_s(ri, "allreduce_detail", r->gc.why));
#ifdef ILBENCH_HAVE_CUDA
  il_cuda_info ci;
  if (strcmp(r->be->ops->name, "cuda") == 0 && il_cuda_get_info(r->be, &ci) == IL_OK) {
    char v[32];
    IL_CHECK(il_run_attr_s(ri, "gpu_name", ci.name));
    IL_CHECK(il_run_attr_i(ri, "gpu_index", ci.device));
    IL_CHECK(il_run_attr_i(ri, "gpus_visible", ci.visible));
    IL_CHECK(il_run_attr_s(ri, "cuda_visible_devices", ci.visible_env));
    snprintf(v, sizeof v, "%d.%d", ci.driver / 1000, ci.driver % 1000 / 10);
    IL_CHECK(il_run_attr_s(ri, "cuda_driver", v));
    snprintf(v, sizeof v, "%d.%d", ci.runtime / 1000, ci.runtime % 1000 / 10);
    IL_CHECK(il_run_attr_s(ri, "cuda_runtime", v));
  }
#endif
  return IL_OK;
}

/* The configuration table (rank 0) and the run's group in the results file. */
static run_outcome begin_run_output(train_run *r) {
  if (r->root) {
    if (r->run_id) printf("# %-18s %s\n", "run", r->run_id);
    print_config(&r->o, &r->model, r->est, r->bind_desc);
    print_device(r);
    if (r->init_tag[0]) printf("# %-18s %s\n", "init_from", r->init_tag);
    if (r->order_tag[0]) printf("# %-18s %s\n", "batch_order", r->order_tag);
    if (r->o.warm_start)
      printf("# %-18s per training sample: a (%ld, %ld) float32 table on every rank, %.1f MiB, kept equal over "
             "ranks (the test pass starts cold)\n", "warm_start", r->ntrain, r->o.hidden,
             (double)r->ntrain * (double)r->o.hidden * sizeof(float) / (1 << 20));
    printf("# %-18s %d (%d on this node), batch shard %ld..%ld rows\n", "ranks", r->dist.size, r->dist.node_size,
           r->o.batch / r->dist.size, r->lb_max);
    fflush(stdout);
  }
  if (r->h5) {
    il_run_info ri;
    il_run_info_init(&ri, r->run_id);
    if (fill_run_info(&ri, &r->o, &r->world, r->run_index, &r->model, &r->gc) != IL_OK) return RUN_FATAL;
    if (r->init_tag[0] && il_run_attr_s(&ri, "init_from", r->init_tag) != IL_OK) return RUN_FATAL;
    if (r->order_tag[0] && il_run_attr_s(&ri, "batch_order", r->order_tag) != IL_OK) return RUN_FATAL;
    r->config_hash = config_hash(&ri);
    char hx[24];
    snprintf(hx, sizeof hx, "%016llx", (unsigned long long)r->config_hash);
    if (il_run_attr_s(&ri, "config_hash", hx) != IL_OK || fill_device_info(&ri, r) != IL_OK) return RUN_FATAL;
    run_outcome out = RUN_OK;
    if (r->o.resume) {
      out = resume_run(r, &ri);
    } else {
      /* refusals here are agreed by every rank: a taken run id is a clean skip, a storage failure a failure */
      const il_status bs = il_h5_run_begin(r->h5, &ri);
      if (bs != IL_OK) return bs == IL_ERR_ARG ? RUN_INVALID : RUN_FAILED;
      r->run_open = 1;
    }
    /* --trace: the run has its trace table from the start (a resumed run's, cut back to its checkpoint) */
    if (out == RUN_OK && r->o.trace && il_h5_run_trace(r->h5, NULL, 0) != IL_OK) return RUN_FAILED;
    return out;
  }
  return RUN_OK;
}

/* Validation, the backend and model, the data buffers and the run's output. */
static run_outcome setup_run(train_run *r) {
  il_model_config mc;
  int local_ok = 0;
  run_outcome out = validate_run(r, &mc, &local_ok);
  if (out == RUN_OK) out = create_model(r, &mc, local_ok);
  if (out != RUN_OK) return out;
  out = load_init(r); /* --init-from: rank 0's parameters, before the broadcast */
  if (out != RUN_OK) return out;
  if (broadcast_params(r) != IL_OK) return RUN_FATAL;
  il_layer_set_reducer(&r->model.layer, il_dist_reducer(&r->dist));
  out = setup_data(r);
  if (out == RUN_OK) out = load_order(r);
  if (out == RUN_OK) out = begin_run_output(r);
  return out;
}

/* ---- one training step ---- */

/* What this rank's step measured, in the form the cross-rank reduction takes
 * (phase times are filled in by the caller). */
static void step_meas(const il_step_stats *st, il_step_meas *m) {
  *m = (il_step_meas){
      .sum = {.loss_sum = st->loss_sum, .errors = st->errors, .samples = st->samples,
              .nonconverged = st->fwd.nonconverged_rows, .jac_reg_sum = st->jac_reg_sum},
      .fwd_iters = st->fwd.iters, .bwd_iters = st->bwd.iters, .fwd_reason = st->fwd.reason,
      .bwd_reason = st->bwd.reason, .fwd_residual = st->fwd.residual, .bwd_residual = st->bwd.residual,
      .rho_max = st->diag.rho_max, .cond_max = st->diag.cond_max, .grad_cos = st->diag.grad_cos,
      .grad_relerr = st->diag.grad_relerr, .preact_max = st->diag.preact_max, .rho_mean = st->diag.rho_mean,
      .rho_samples = st->diag.rho_samples, .nan_origin = st->nan_origin, .nan_iter = st->nan_iter};
}

/* --warm-start: the step's fixed points (rows start..start+Bg of the shuffle) into the table on
 * every rank. Each rank has its shard's rows; with several ranks they are gathered over ranks
 * first (Bg x hidden floats and Bg flags per step), so that every rank's table stays the same
 * whichever rank sees a sample next. Rows the layer zeroed as non-converged are forgotten: such a
 * sample starts where the solver starts on its own the next time. */
static il_status store_fixed_points(train_run *r, long start, int Bg, long off, long cnt) {
  il_warm_start *w = &r->warm;
  il_layer *L = &r->model.layer;
  const uint32_t *idx = r->perm + start;
  IL_CHECK(il_layer_get_zstar(L, w->rows));
  if (r->dist.size == 1) return il_warm_start_store(w, Bg, idx, L->zeroed);
  const int P = r->dist.size, n = (int)r->o.hidden;
  if (!r->xs_rows) {
    r->xs_rows = malloc((size_t)r->o.batch * n * sizeof *r->xs_rows);
    r->xs_forget = malloc((size_t)r->o.batch);
    r->xs_counts = malloc(4 * (size_t)P * sizeof *r->xs_counts);
    if (!r->xs_rows || !r->xs_forget || !r->xs_counts)
      return IL_ERR(IL_ERR_NOMEM, "rank %d: no memory for the warm-start exchange", r->dist.rank);
  }
  int *rc = r->xs_counts, *rd = rc + P, *fc = rd + P, *fd = fc + P; /* rows and flags: counts, displacements */
  for (int k = 0; k < P; k++) {
    long o, c;
    il_dist_shard(Bg, k, P, &o, &c);
    rc[k] = (int)c * n, rd[k] = (int)o * n, fc[k] = (int)c, fd[k] = (int)o;
  }
  IL_CHECK(il_download(r->be, r->xs_rows + off * n, w->rows, (size_t)cnt * n));
  memcpy(r->xs_forget + off, L->zeroed, (size_t)cnt);
  if (MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, r->xs_rows, rc, rd, MPI_FLOAT, r->dist.comm) != MPI_SUCCESS ||
      MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, r->xs_forget, fc, fd, MPI_UNSIGNED_CHAR, r->dist.comm) !=
          MPI_SUCCESS)
    return IL_ERR(IL_ERR_INTERNAL, "MPI_Allgatherv of the batch's fixed points failed");
  IL_CHECK(il_upload(r->be, w->rows, r->xs_rows, (size_t)Bg * n));
  return il_warm_start_store(w, Bg, idx, r->xs_forget);
}

/* Training batch b of epoch ep on this rank's shard: gather, forward, backward,
 * the gradient allreduce, and the SGD update unless the gradient is not finite
 * (then the step is skipped on every rank). *m: what this rank measured;
 * *finite: the summed gradient is finite; *gn: its 2-norm (NaN when skipped). */
static run_outcome train_step(train_run *r, long b, long global_step, double lr, epoch_acc *tr, il_step_meas *m,
                              int *finite, double *gn) {
  const train_opts *o = &r->o;
  const il_dist *d = &r->dist;
  const long start = b * o->batch;
  const int Bg = (int)((start + o->batch <= r->ntrain) ? o->batch : r->ntrain - start);
  long off, cnt;
  il_dist_shard(Bg, d->rank, d->size, &off, &cnt);
  il_step_stats st;
  gather(r->train, r->perm + start + off, (int)cnt, r->X, r->y);
  r->model.loss_denominator = Bg; /* shard gradients sum to the global-batch mean */
  r->model.row_offset = (int)off;  /* the regulariser's probes are drawn for the global batch */
  r->model.jac_reg_now = o->jac_reg > 0 && global_step % o->jac_reg_every == 0; /* the same steps on every rank */
  r->model.layer.diag_now = o->diag > 0 && global_step % o->diag == 0; /* the same steps on every rank */
  r->model.layer.trace_now = o->trace > 0 && global_step % o->trace == 0; /* likewise: its norms are collective */
  double ta = il_now();
  if (o->warm_start && il_warm_start_begin(&r->warm, (int)cnt, r->perm + start + off, &r->model.z0,
                                           &r->model.z0_cold) != IL_OK)
    return RUN_FATAL;
  const il_status fs = il_model_forward(&r->model, (int)cnt, r->X, r->y, 1, &st);
  r->model.z0 = NULL; /* the test pass starts cold */
  r->model.z0_cold = NULL;
  if (fs != IL_OK) return RUN_FATAL;
  double tb = il_now();
  if (il_model_backward(&r->model, &st) != IL_OK) return RUN_FATAL;
  if (o->inject_nan_step == global_step && o->inject_nan_rank == d->rank && inject_nan_grad(r) != IL_OK)
    return RUN_FATAL;
  int local_finite = 1; /* where a NaN was seen: this rank's own gradient, before the sum hides whose it was */
  if (IL_BE(r->be, all_finite, r->model.nparams, r->model.grads, &local_finite) != IL_OK) return RUN_FATAL;
  if (!local_finite || st.nan_origin != IL_NAN_NONE) {
    if (r->my.nan_steps++ == 0) r->my.first_nan_step = global_step;
  }
  double tw = il_now();
  /* The barrier separates load imbalance (time waiting for the slowest
   * rank) from the cost of the allreduce itself; it costs ~10 us. */
  if (d->size > 1 && MPI_Barrier(d->comm) != MPI_SUCCESS) {
    IL_ERR(IL_ERR_INTERNAL, "MPI_Barrier failed");
    return RUN_FATAL;
  }
  double tc = il_now();
  if (allreduce_grads(r) != IL_OK || grads_finite(r, finite) != IL_OK) return RUN_FATAL;
  double td = il_now();
  *gn = NAN;
  if (*finite) {
    if (grad_norm(r, gn) != IL_OK) return RUN_FATAL;
    if (*gn > tr->max_grad_norm) tr->max_grad_norm = *gn;
    if (il_model_sgd(&r->model, lr) != IL_OK) return RUN_FATAL;
    /* a skipped step keeps the table as it was, like the parameters */
    if (o->warm_start && store_fixed_points(r, start, Bg, off, cnt) != IL_OK) return RUN_FATAL;
  } else {
    tr->nan_batches++;
  }
  double te = il_now();
  /* outside the phase times: copying the trace is bookkeeping, not training */
  if (r->model.layer.trace_now && r->root && collect_trace(r, global_step) != RUN_OK) return RUN_FATAL;
  step_meas(&st, m);
  m->t_forward = tb - ta;
  m->t_backward = tw - tb;
  m->t_wait = d->size > 1 ? tc - tw : 0; /* no barrier on one rank */
  m->t_allreduce = td - tc;
  m->t_update = te - td;
  r->my.forward_s += m->t_forward;
  r->my.backward_s += m->t_backward;
  r->my.wait_s += m->t_wait;
  r->my.allreduce_s += m->t_allreduce;
  r->my.update_s += m->t_update;
  return RUN_OK;
}

/* The step's row of the steps table and, with --log-steps, its logfmt line
 * (rank 0), from the step-wide values g. */
static void step_output(train_run *r, long ep, long b, long global_step, const il_step_meas *g, int finite,
                        double gn) {
  il_step_row *row = &r->steps[b];
  il_step_row_init(row);
  row->global_step = (int32_t)global_step;
  row->epoch = (int32_t)ep;
  row->step = (int32_t)b;
  row->loss = g->sum.loss_sum / g->sum.samples;
  row->err = (double)g->sum.errors / g->sum.samples;
  row->fwd_iters = g->fwd_iters;
  row->fwd_residual = g->fwd_residual;
  row->fwd_reason = (int32_t)g->fwd_reason;
  row->bwd_iters = g->bwd_iters;
  row->bwd_residual = g->bwd_residual;
  row->bwd_reason = (int32_t)g->bwd_reason;
  row->nonconverged = g->sum.nonconverged;
  row->nan_skipped = !finite;
  row->grad_norm = gn;
  row->forward_s = g->t_forward;
  row->backward_s = g->t_backward;
  row->wait_s = g->t_wait;
  row->allreduce_s = g->t_allreduce;
  row->update_s = g->t_update;
  row->diag_rho_max = g->rho_max;
  row->diag_rho_mean = g->rho_mean;
  row->diag_cond = g->cond_max;
  row->diag_grad_cos = g->grad_cos;
  row->diag_grad_relerr = g->grad_relerr;
  row->diag_preact_max = g->preact_max;
  row->nan_origin = g->nan_origin;
  row->nan_iter = g->nan_iter;
  row->jac_reg = r->model.jac_reg_now ? g->sum.jac_reg_sum / g->sum.samples : NAN;
  if (r->root && r->o.log_steps) il_logfmt_row(stdout, r->pfx, &il_results_tables[IL_TABLE_STEPS], row);
}

/* The epoch's training batches from r->step on: each step, reduced over ranks,
 * accumulated and recorded; checkpointed every --checkpoint-every steps, and
 * after the step in which a rank got SIGTERM/SIGINT (then RUN_STOPPED). */
static run_outcome train_pass(train_run *r, long ep, double t0, int tty) {
  epoch_acc *tr = &r->tr;
  long *global_step = &r->global_step;
  const double lr = r->lr;
  for (long b = r->step; b < r->nb; b++, (*global_step)++) {
    il_step_meas m, g;
    int finite;
    double gn;
    run_outcome out = train_step(r, b, *global_step, lr, tr, &m, &finite, &gn);
    if (out != RUN_OK) return out;
    m.stop = il_stop_requested();
    if (il_step_reduce(&r->dist, &m, &g) != IL_OK) return RUN_FATAL;
    tr->phase[0] += g.t_forward;
    tr->phase[1] += g.t_backward;
    tr->phase[2] += g.t_allreduce;
    tr->phase[3] += g.t_update;
    tr->wait += g.t_wait;
    acc_step(tr, &g);
    if (r->model.jac_reg_now) {
      tr->jr_sum += g.sum.jac_reg_sum;
      tr->jr_samples += g.sum.samples;
    }
    /* a NaN injected for testing, or one that appeared only after the allreduce, has no earlier origin */
    if (!finite && g.nan_origin == IL_NAN_NONE) { g.nan_origin = IL_NAN_BWD_OTHER; g.nan_iter = -1; }
    if (g.nan_origin == IL_NAN_FWD_OTHER || g.nan_origin == IL_NAN_BWD_OTHER) g.nan_iter = -1;
    step_output(r, ep, b, *global_step, &g, finite, gn);
    if (r->o.check_sync > 0 && (*global_step + 1) % r->o.check_sync == 0) {
      int same;
      if (params_in_sync(r, &same) != IL_OK) return RUN_FATAL;
      if (!same) { /* every rank sees it: record the failure and stop cleanly */
        IL_ERR(IL_ERR_INTERNAL, "parameters differ across ranks after step %ld (epoch %ld, batch %ld)", *global_step,
               ep, b);
        return RUN_FAILED;
      }
    }
    if (tty) progress("train", ep, b + 1, r->nb, t0, tr);
    r->step = b + 1;
    const int every = r->o.checkpoint_every > 0 && (*global_step + 1) % r->o.checkpoint_every == 0;
    if (r->h5 && (g.stop || (every && r->step < r->nb))) {
      (*global_step)++; /* the position after this step */
      out = write_checkpoint(r);
      (*global_step)--;
      if (out != RUN_OK) return out;
    }
    if (g.stop) {
      r->stop_sig = g.stop;
      (*global_step)++;
      return RUN_STOPPED;
    }
  }
  return RUN_OK;
}

/* The epoch's test batches (forward only), counts summed over ranks. */
static run_outcome test_pass(train_run *r, long ep, epoch_acc *te, double t1, int tty) {
  const train_opts *o = &r->o;
  r->model.layer.diag_now = 0;
  for (long b = 0; b < r->ntb; b++) {
    const long start = b * o->batch;
    const int Bg = (int)((start + o->batch <= r->ntest) ? o->batch : r->ntest - start);
    long off, cnt;
    il_dist_shard(Bg, r->dist.rank, r->dist.size, &off, &cnt);
    il_step_stats st = {0};
    il_step_meas m;
    gather(r->test, r->tidx + start + off, (int)cnt, r->X, r->y);
    if (il_model_forward(&r->model, (int)cnt, r->X, r->y, 0, &st) != IL_OK) return RUN_FATAL;
    step_meas(&st, &m); /* iterations and reasons stay this rank's own */
    if (il_step_sum_over_ranks(&r->dist, &m.sum) != IL_OK) return RUN_FATAL;
    acc_step(te, &m);
    if (tty) progress("test", ep, b + 1, r->ntb, t1, te);
  }
  return RUN_OK;
}

/* ---- epoch output ---- */

/* The epoch's logfmt line (rank 0), per-rank phase spread (rank 0, several
 * ranks) and its epochs row and steps rows in the results file. t0, t1, t2:
 * start of training, of testing, end of testing; ep_start: this rank's phase
 * totals at the start of the epoch (updated here). */
static run_outcome epoch_output(train_run *r, long ep, double lr, const epoch_acc *tr, const epoch_acc *te,
                                double t0, double t1, double t2, il_rank_row *ep_start) {
  const il_rank_row *my = &r->my;
  const il_memstats *mem = &r->model.mem;
  for (int c = 0; c < IL_MEM_NCAT; c++)
    if (mem->peak[c] > r->run_peak.peak[c]) r->run_peak.peak[c] = mem->peak[c];
  if (mem->peak_total > r->run_peak.peak_total) r->run_peak.peak_total = mem->peak_total;
  /* each rank's own phase totals this epoch, reduced to min/mean/max over ranks */
  double mine[5] = {my->forward_s - ep_start->forward_s, my->backward_s - ep_start->backward_s,
                    my->wait_s - ep_start->wait_s, my->allreduce_s - ep_start->allreduce_s,
                    my->update_s - ep_start->update_s};
  il_minmeanmax mmm[5];
  if (il_dist_minmeanmax(&r->dist, mine, 5, mmm) != IL_OK) return RUN_FATAL;
  *ep_start = *my;
  double ep_max[5] = {t1 - t0, t2 - t1, (double)mem->peak_total, (double)mem->peak[IL_MEM_SAVED],
                      (double)mem->peak[IL_MEM_WORKSPACE]};
  if (il_max_over_ranks(&r->dist, ep_max, 5) != IL_OK) return RUN_FATAL;
  il_epoch_row er = {
      .epoch = (int32_t)ep, .lr = lr, .train_err = tr->samples ? (double)tr->errors / tr->samples : NAN,
      .train_loss = tr->samples ? tr->loss / tr->samples : NAN,
      .train_iters = tr->batches ? tr->iters / tr->batches : NAN,
      .train_bwd_iters = tr->batches ? tr->bwd_iters / tr->batches : NAN,
      .test_err = te->samples ? (double)te->errors / te->samples : NAN,
      .test_loss = te->samples ? te->loss / te->samples : NAN,
      .test_iters = te->batches ? te->iters / te->batches : NAN,
      .max_grad_norm = tr->max_grad_norm, .nan_batches = tr->nan_batches, .nonconverged = tr->nonconverged,
      .maxiter_batches = tr->maxiter_batches, .diverged_batches = tr->diverged_batches,
      .nonfinite_batches = tr->nonfinite_batches,
      .train_batches = tr->batches, .train_s = ep_max[0], .test_s = ep_max[1],
      .forward_s = tr->phase[0], .backward_s = tr->phase[1], .wait_s = tr->wait, .allreduce_s = tr->phase[2],
      .update_s = tr->phase[3], .ranks = (int32_t)r->world.size,
      .peak_mem_bytes = (uint64_t)ep_max[2], .saved_peak_bytes = (uint64_t)ep_max[3],
      .workspace_peak_bytes = (uint64_t)ep_max[4],
      .jac_reg = tr->jr_samples > 0 ? tr->jr_sum / tr->jr_samples : NAN};
  if (r->root) {
    il_logfmt_row(stdout, r->pfx, &il_results_tables[IL_TABLE_EPOCHS], &er);
    if (r->dist.size > 1)
      printf("%s# epoch %ld per-rank phase totals, min/mean/max over %d ranks (s): forward %.3f/%.3f/%.3f "
             "backward %.3f/%.3f/%.3f wait %.3f/%.3f/%.3f allreduce %.3f/%.3f/%.3f update %.3f/%.3f/%.3f\n",
             r->pfx, ep, r->dist.size, mmm[0].min, mmm[0].mean, mmm[0].max, mmm[1].min, mmm[1].mean, mmm[1].max,
             mmm[2].min, mmm[2].mean, mmm[2].max, mmm[3].min, mmm[3].mean, mmm[3].max, mmm[4].min, mmm[4].mean,
             mmm[4].max);
    fflush(stdout);
  }
  if (flush_trace(r) != RUN_OK) return RUN_FAILED;
  if (r->h5 && il_h5_run_epoch(r->h5, &er, r->steps + r->steps_written, (int)(r->nb - r->steps_written)) != IL_OK)
    return RUN_FAILED;
  r->steps_written = 0;
  return RUN_OK;
}

/* ---- the run ---- */

/* A signal that arrived outside the training steps (test pass, output), agreed at an epoch's end. */
static run_outcome stop_between_epochs(train_run *r) {
  double sig = il_stop_requested();
  if (il_max_over_ranks(&r->dist, &sig, 1) != IL_OK) return RUN_FATAL;
  r->stop_sig = (int)sig;
  return r->stop_sig ? RUN_STOPPED : RUN_OK;
}

/* The epochs from the run's position (0, or a checkpoint's) to the end. */
static run_outcome run_epochs(train_run *r) {
  const train_opts *o = &r->o;
  const int tty = r->root && isatty(2); /* the progress bar: rank 0, a terminal only */
  const double t_run = il_now();
  last_summary = (il_run_summary){.train_err = NAN, .test_err = NAN, .test_loss = NAN};
  il_rank_row ep_start = r->my; /* phase totals at the start of the epoch */
  for (long ep = r->epoch; ep < o->epochs; ep++) {
    r->epoch = ep;
    if (r->step == 0) r->tr = (epoch_acc){0}; /* else: resumed mid-epoch with its sums */
    for (int i = 0; i < o->ndrops; i++)
      if (o->drop_epoch[i] == ep) r->lr = o->drop_lr[i];
    r->shuffle_epoch = r->shuffle;
    if (r->order) /* --batch-order: this epoch's block of the file */
      memcpy(r->perm, r->order + (size_t)ep * (size_t)r->order_per_epoch,
             (size_t)r->order_per_epoch * sizeof *r->perm);
    else
      il_rng_permutation(&r->shuffle, (size_t)r->ntrain, r->perm); /* identical on every rank */
    epoch_acc te = {0};
    il_memstats *mem = &r->model.mem;
    il_memstats_reset_peaks(mem);
    if (r->step > 0) { /* resumed mid-epoch: the marks of the epoch's steps before the checkpoint */
      for (int c = 0; c < IL_MEM_NCAT; c++)
        if (r->resume_epoch_peak[c] > mem->peak[c]) mem->peak[c] = (size_t)r->resume_epoch_peak[c];
      if (r->resume_epoch_peak[IL_MEM_NCAT] > mem->peak_total) mem->peak_total = (size_t)r->resume_epoch_peak[IL_MEM_NCAT];
      if (r->resume_epoch_peak[IL_MEM_NCAT + 1] > mem->space_peak)
        mem->space_peak = (size_t)r->resume_epoch_peak[IL_MEM_NCAT + 1];
    }
    double t0 = il_now();
    run_outcome out = train_pass(r, ep, t0, tty);
    if (out != RUN_OK) return out;
    double t1 = il_now();
    out = test_pass(r, ep, &te, t1, tty);
    if (out != RUN_OK) return out;
    double t2 = il_now();
    r->my.test_s += t2 - t1;
    out = epoch_output(r, ep, r->lr, &r->tr, &te, t0, t1, t2, &ep_start);
    if (out != RUN_OK) return out;
    summary_epoch(ep, &r->tr, &te, t_run);
    r->epoch = ep + 1;
    r->step = 0;
    r->shuffle_epoch = r->shuffle; /* the next epoch starts from here */
    r->tr = (epoch_acc){0};
    if (r->h5 && (out = write_checkpoint(r)) != RUN_OK) return out;
    if ((out = stop_between_epochs(r)) != RUN_OK) return out;
  }
  return RUN_OK;
}

/* --save-params, then the run's end in the results file. */
static run_outcome finish_run(train_run *r) {
  int saved_ok = 1;
  if (r->o.save_params) saved_ok = write_params(r, r->o.save_params);
  MPI_Bcast(&saved_ok, 1, MPI_INT, 0, r->dist.comm);
  if (!saved_ok) return RUN_FAILED;
  r->my.peak_mem_bytes = r->run_peak.peak_total;
  il_event_row rows[IL_EV_N];
  if (event_rows(r, rows) != IL_OK) return RUN_FAILED;
  if (r->root && r->o.log_view) print_events(r, rows);
  if (r->h5 && il_h5_run_events(r->h5, rows, IL_EV_N) != IL_OK) return RUN_FAILED;
  if (r->h5 && il_h5_run_end(r->h5, "completed", &r->run_peak, &r->my) != IL_OK) {
    r->run_open = 0; /* the writer closed it */
    return RUN_FAILED;
  }
  return RUN_OK;
}

/* Every rank reached this point together: mark the run failed in the file. */
static void fail_run(train_run *r) {
  if (r->root) fprintf(stderr, "ilbench: error: %s\n", il_error_message());
  if (r->h5 && r->run_open) {
    r->my.peak_mem_bytes = r->run_peak.peak_total;
    char reason[512];
    snprintf(reason, sizeof reason, "%s", il_error_message());
    il_error_clear();
    if (il_h5_run_finish(r->h5, "failed", reason, &r->run_peak, &r->my) != IL_OK && r->root) /* a full disk, say */
      fprintf(stderr, "ilbench: error: the run could not be marked failed in the file either: %s\n",
              il_error_message());
  }
}

/* SIGTERM/SIGINT: the checkpoint is written; mark the run interrupted and say where it stands. */
static void stop_run(train_run *r) {
  char reason[160];
  snprintf(reason, sizeof reason, "%s after global step %ld (epoch %ld, batch %ld)", il_stop_name(r->stop_sig),
           r->global_step, r->epoch, r->step);
  if (r->h5 && r->run_open) {
    r->my.peak_mem_bytes = r->run_peak.peak_total;
    if (il_h5_run_finish(r->h5, "interrupted", reason, &r->run_peak, &r->my) != IL_OK && r->root)
      fprintf(stderr, "ilbench: error: %s\n", il_error_message());
  }
  if (r->root) {
    if (r->h5)
      fprintf(stderr, "ilbench: interrupted by %s; run '%s' checkpointed in '%s' and marked interrupted\n", reason,
              r->run_id, il_h5_path(r->h5));
    else
      fprintf(stderr, "ilbench: interrupted by %s; nothing saved (no --out)\n", reason);
    fflush(stderr);
  }
}

/* A failure inside a collective phase is fatal for the job: report rank, host
 * and the file:line where it was recorded (first trace line), abort all ranks. */
static void abort_run(const train_run *r) {
  const char *tr = il_error_trace_text(), *at = tr;
  while (*at == ' ') at++;
  const char *nl = strchr(at, '\n');
  fprintf(stderr, "ilbench: error: rank %d on %s: %s (%.*s)\n", r->dist.rank, r->dist.host, il_error_message(),
          nl ? (int)(nl - at) : (int)strlen(at), at);
  if (getenv("ILBENCH_TRACE")) fprintf(stderr, "%s", tr);
  fflush(stderr);
  MPI_Abort(r->world.comm, 1);
}

int il_train_run(il_dist *d, const train_opts *op, const il_mnist_split *train, const il_mnist_split *test,
                 il_h5_file *h5, const char *run_id, long run_index, const char *log_prefix) {
  train_run r = {.dist = op->grid ? op->grid->peers : *d, .world = *d, .o = *op, .root = d->rank == 0, .pfx = log_prefix ? log_prefix : "",
                 .run_id = run_id, .run_index = run_index, .train = train, .test = test, .h5 = h5,
                 .my = {.rank = d->rank, .first_nan_step = -1}, .lr = op->lr};
  il_rng_seed(&r.shuffle, (uint64_t)op->seed ^ 0x5348554646UL); /* stream apart from the init stream */
  r.shuffle_epoch = r.shuffle;
  run_outcome out = setup_run(&r);
  if (out == RUN_OK) out = run_epochs(&r);
  if (out == RUN_OK) out = finish_run(&r);
  int rc = 0;
  switch (out) {
  case RUN_OK: rc = 0; break;
  case RUN_INVALID: rc = 2; break;
  case RUN_FAILED: fail_run(&r); rc = 1; break;
  case RUN_FATAL: abort_run(&r); rc = 1; break;
  case RUN_STOPPED: stop_run(&r); rc = 128 + r.stop_sig; break;
  }
  free(r.X);
  free(r.y);
  free(r.perm);
  free(r.tidx);
  free(r.order);
  free(r.steps);
  free(r.trace_rows);
  if (r.warm_ok) il_warm_start_destroy(&r.warm);
  free(r.ck_warm);
  free(r.xs_rows);
  free(r.xs_forget);
  free(r.xs_counts);
  free(r.ck_uv);
  if (r.gc_ok) il_gradcomm_free(&r.gc); /* NCCL's communicator before the backend's stream */
  if (r.model_ok) il_model_destroy(&r.model);
  il_backend_destroy(r.be);
  free(r.stage);
  free(r.ck_params);
  return rc;
}
