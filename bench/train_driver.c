/* bench/train_driver.c: one training run of the seed's MNIST experiment in
 * float32, data parallel over MPI ranks. Semantics follow the seed: batch 100,
 * SGD lr 0.1 dropping to 0.01 at epoch 5, stop on the batch Frobenius norm,
 * Newton rows that fail are zeroed, and a step whose gradient is not finite is
 * skipped. Rank 0 prints one logfmt line per epoch and, with a results file,
 * appends the epoch and its steps there (flushed each epoch). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "il_model.h"
#include "il_rng.h"
#include "results.h"
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
} epoch_acc;

static void acc_step(epoch_acc *a, const il_step_stats *st) {
  a->loss += st->loss_sum;
  a->errors += st->errors;
  a->samples += st->samples;
  a->batches++;
  a->iters += st->fwd.iters;
  a->bwd_iters += st->bwd.iters;
  a->nonconverged += st->fwd.nonconverged_rows;
  a->maxiter_batches += st->fwd.reason == IL_REASON_MAX_ITER;
  a->diverged_batches += st->fwd.reason == IL_REASON_DIVERGED;
  a->nonfinite_batches += st->fwd.reason == IL_REASON_NONFINITE;
}

static void progress(const char *what, long epoch, long done, long total, double t0) {
  static double last = 0;
  double now = il_now();
  if (done != total && now - last < 0.2) return;
  last = now;
  fprintf(stderr, "\r[%s epoch %ld] %ld/%ld batches %.1fs   ", what, epoch, done, total, now - t0);
  if (done == total) fprintf(stderr, "\r%60s\r", "");
  fflush(stderr);
}

static void print_config(const train_opts *o, const il_model *m, size_t est) {
  printf("# ilbench train (git %s)\n", ILBENCH_GIT);
  printf("# %-18s %s\n", "solver", o->solver);
  printf("# %-18s %s\n", "backward", o->backward);
  printf("# %-18s %g (stop: %s)\n", "tol", o->tol, o->stop);
  printf("# %-18s %ld\n", "max_iter", o->max_iter);
  printf("# %-18s 784 -> %ld (implicit) -> 10\n", "model", o->hidden);
  printf("# %-18s %zu\n", "parameters", m->nparams);
  printf("# %-18s %ld\n", "batch", o->batch);
  printf("# %-18s %ld\n", "epochs", o->epochs);
  printf("# %-18s %g", "lr", o->lr);
  for (int i = 0; i < o->ndrops; i++) printf(", %g at epoch %ld", o->drop_lr[i], o->drop_epoch[i]);
  printf("\n# %-18s %ld\n", "seed", o->seed);
  printf("# %-18s %s\n", "zero_nonconverged", m->layer.zero_rows ? "yes" : "no");
  if (strcmp(o->backward, "implicit") == 0) printf("# %-18s %ld\n", "adjoint_refine", o->refine);
  printf("# %-18s %s (divtol %g%s)\n", "stop_mode", o->stop_mode, o->divtol, o->best ? ", lowest-residual iterate" : "");
  if (o->opts_text[0]) printf("# %-18s %s\n", "options", o->opts_text);
  printf("# %-18s %s\n", "sech2", o->sech2);
  if (o->diag) printf("# %-18s every %ld steps\n", "diag", o->diag);
  printf("# %-18s %s (%s)\n", "device", o->device, IL_REAL_NAME);
  printf("# %-18s %ld\n", "threads", o->threads);
  printf("# %-18s %s\n", "data", o->data);
  printf("# %-18s %zu\n", "est_bytes", est);
  fflush(stdout);
}

/* Statistics summed over ranks once per step (one small allreduce in double). */
enum { ST_LOSS, ST_ERR, ST_NONCONV, ST_SAMPLES, ST_RHO_SUM, ST_RHO_N, ST_N };
/* Per-step maxima over ranks: phase times and backward iterations. */
enum { MX_FWD, MX_BWD, MX_AR, MX_UPD, MX_BWD_ITERS, MX_BWD_RES, MX_FWD_ITERS, MX_WAIT, MX_FWD_RES, MX_FWD_REASON,
       MX_BWD_REASON, MX_RHO, MX_COND, MX_NEG_COS, MX_RELERR, MX_NEG_NAN, MX_PREACT,
       /* 1 when this rank's value is NaN: MPI_MAX has no NaN rule, so values travel as -inf and a
        * NaN on any rank is restored from its flag (a NaN must not hide behind another rank's number) */
       MX_NAN_BWD_RES, MX_NAN_RHO, MX_NAN_COND, MX_NAN_COS, MX_NAN_RELERR, MX_NAN_PREACT, MX_N };

static double nan_to_low(double v) { return isnan(v) ? -INFINITY : v; }
/* the reduced value, NaN when any rank's was (flag) or every rank's was (-inf) */
static double reduced(const double *mx, int value, int flag) {
  return mx[flag] > 0 || mx[value] == -INFINITY ? NAN : mx[value];
}

static il_status max_over_ranks(il_dist *d, double *v, int n) {
  if (d->size > 1 && MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_MAX, d->comm) != MPI_SUCCESS)
    return IL_ERR(IL_ERR_INTERNAL, "MPI_Allreduce(max) failed");
  return IL_OK;
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
                               const il_model *m) {
  IL_CHECK(il_run_attr_s(ri, "solver", o->solver));
  IL_CHECK(il_run_attr_s(ri, "backward", o->backward));
  IL_CHECK(il_run_attr_d(ri, "tol", o->tol));
  IL_CHECK(il_run_attr_i(ri, "max_iter", o->max_iter));
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
  IL_CHECK(il_run_attr_s(ri, "precision", IL_REAL_NAME));
  IL_CHECK(il_run_attr_i(ri, "world_size", d->size));
  IL_CHECK(il_run_attr_s(ri, "data", o->data));
  IL_CHECK(il_run_attr_i(ri, "run_index", run_index));
  IL_CHECK(il_run_attr_s(ri, "zero_nonconverged", m->layer.zero_rows ? "yes" : "no"));
  IL_CHECK(il_run_attr_i(ri, "adjoint_refine", o->refine));
  IL_CHECK(il_run_attr_s(ri, "stop_mode", o->stop_mode));
  IL_CHECK(il_run_attr_d(ri, "divtol", o->divtol));
  IL_CHECK(il_run_attr_i(ri, "best", o->best));
  IL_CHECK(il_run_attr_s(ri, "sech2", o->sech2));
  IL_CHECK(il_run_attr_i(ri, "diag", o->diag));
  IL_CHECK(il_run_attr_s(ri, "options", o->opts_text));
  IL_CHECK(il_run_attr_s(ri, "allreduce", "mpi"));
  IL_CHECK(il_run_attr_i(ri, "parameters", (int64_t)m->nparams));
  return IL_OK;
}

int il_train_run(il_dist *d, const train_opts *op, const il_mnist_split *train, const il_mnist_split *test,
                 il_h5_file *h5, const char *run_id, long run_index, const char *log_prefix) {
  il_dist dist = *d; /* shorthand; the communicators stay owned by the caller */
  const train_opts o = *op;
  const int root = dist.rank == 0;
  il_model model;
  int model_ok = 0, rc = 1, run_open = 0;
  float *X = NULL;
  uint8_t *y = NULL;
  uint32_t *perm = NULL, *tidx = NULL;
  il_step_row *steps = NULL;
  il_rank_row my = {.rank = dist.rank};
  const char *pfx = log_prefix ? log_prefix : "";

  if (o.batch < dist.size) {
    IL_ERR(IL_ERR_ARG, "--batch %ld is smaller than the %d ranks: every rank needs at least one row", o.batch,
           dist.size);
    goto invalid;
  }
  long lb_off, lb_max; /* the largest shard: rank 0's */
  il_dist_shard(o.batch, 0, dist.size, &lb_off, &lb_max);
  {
    long off, cnt;
    il_dist_shard(o.batch, dist.rank, dist.size, &off, &cnt);
    my.local_batch = (int32_t)cnt;
  }
  il_model_config mc = {.in_dim = 784, .hidden = (int)o.hidden, .classes = 10, .max_batch = (int)lb_max,
                        .seed = (uint64_t)o.seed};
  il_train_layer_config(&o, &mc.layer);
  size_t est;
  if (il_model_estimate_bytes(&mc, &est) != IL_OK) {
    il_error_clear();
    IL_ERR(IL_ERR_NOMEM, "--hidden %ld with --batch %ld is too large to allocate (its size overflows)", o.hidden, o.batch);
    goto invalid;
  }
  /* checks whose verdict may differ by rank (node memory, allocations) are agreed below */
  int local_ok = 1;
  unsigned long long phys = il_phys_mem();
  if (phys && (double)est * dist.node_size > (double)phys) {
    IL_ERR(IL_ERR_NOMEM, "--hidden %ld with --batch %ld needs about %.3g GiB on %d rank(s) of this node, more than its %.3g GiB",
           o.hidden, o.batch, (double)est * dist.node_size / (1 << 30), dist.node_size, (double)phys / (1 << 30));
    local_ok = 0;
  }
  const long ntrain = (long)train->images.count, ntest = (long)test->images.count;
  if (ntrain % o.batch != 0 && ntrain % o.batch < dist.size) {
    IL_ERR(IL_ERR_ARG, "the last training batch has %ld rows, fewer than the %d ranks; choose another --batch",
           ntrain % o.batch, dist.size);
    goto invalid;
  }
  if (ntest % o.batch != 0 && ntest % o.batch < dist.size) {
    IL_ERR(IL_ERR_ARG, "the last test batch has %ld rows, fewer than the %d ranks; choose another --batch",
           ntest % o.batch, dist.size);
    goto invalid;
  }
  const il_backend *be = NULL;
  if (local_ok) {
    if (il_backend_cpu((int)o.threads, &be) != IL_OK) local_ok = 0;
    else if (il_model_create(&model, &mc, be) != IL_OK) {
      il_model_destroy(&model); /* frees whatever part was built */
      local_ok = 0;
    } else {
      model_ok = 1;
    }
  }
  {
    int all_ok = local_ok;
    if (dist.size > 1) MPI_Allreduce(&local_ok, &all_ok, 1, MPI_INT, MPI_LAND, dist.comm);
    if (!all_ok) {
      if (!local_ok && !root) /* only rank 0 reports for the job: say it here */
        fprintf(stderr, "ilbench: error: rank %d on %s: %s\n", dist.rank, dist.host, il_error_message());
      if (local_ok) IL_ERR(IL_ERR_NOMEM, "setup failed on another rank (see its message)");
      goto invalid;
    }
  }
  /* every rank initialised from the same seed; the broadcast makes rank 0 the single source anyway */
  if (il_dist_bcast(&dist, model.params, model.nparams, MPI_FLOAT, 0) != IL_OK) goto run_err;
  il_layer_set_reducer(&model.layer, il_dist_reducer(&dist));
  long nb = (ntrain + o.batch - 1) / o.batch;
  if (o.max_batches > 0 && o.max_batches < nb) nb = o.max_batches;
  long ntb = (ntest + o.batch - 1) / o.batch;
  if (o.test_batches >= 0 && o.test_batches < ntb) ntb = o.test_batches;
  X = malloc((size_t)lb_max * 784 * sizeof *X);
  y = malloc((size_t)lb_max);
  perm = malloc(train->images.count * sizeof *perm);
  tidx = malloc(test->images.count * sizeof *tidx);
  steps = calloc((size_t)nb, sizeof *steps);
  if (!X || !y || !perm || !tidx || !steps) {
    IL_ERR(IL_ERR_NOMEM, "rank %d: out of memory for batch buffers", dist.rank);
    goto run_err;
  }
  for (size_t i = 0; i < test->images.count; i++) tidx[i] = (uint32_t)i;
  if (root) {
    if (run_id) printf("# %-18s %s\n", "run", run_id);
    print_config(&o, &model, est);
    printf("# %-18s %d (%d on this node), batch shard %ld..%ld rows\n", "ranks", dist.size, dist.node_size,
           o.batch / dist.size, lb_max);
    fflush(stdout);
  }
  if (h5) {
    il_run_info ri;
    il_run_info_init(&ri, run_id);
    if (fill_run_info(&ri, &o, &dist, run_index, &model) != IL_OK) goto run_err;
    /* refusals here (e.g. the run id is taken) are agreed by every rank: a clean skip */
    if (il_h5_run_begin(h5, &ri) != IL_OK) goto invalid;
    run_open = 1;
  }

  il_rng shuffle;
  il_rng_seed(&shuffle, (uint64_t)o.seed ^ 0x5348554646UL); /* stream apart from the init stream */
  const int tty = root && isatty(2);
  double lr = o.lr;
  long global_step = 0;
  il_memstats run_peak = {0};
  il_rank_row ep_start = my; /* phase totals at the start of the epoch */
  for (long ep = 0; ep < o.epochs; ep++) {
    for (int i = 0; i < o.ndrops; i++)
      if (o.drop_epoch[i] == ep) lr = o.drop_lr[i];
    il_rng_permutation(&shuffle, (size_t)ntrain, perm); /* identical on every rank */
    epoch_acc tr = {0}, te = {0};
    il_memstats_reset_peaks(&model.mem);
    double t0 = il_now();
    for (long b = 0; b < nb; b++, global_step++) {
      const long start = b * o.batch;
      const int Bg = (int)((start + o.batch <= ntrain) ? o.batch : ntrain - start);
      long off, cnt;
      il_dist_shard(Bg, dist.rank, dist.size, &off, &cnt);
      il_step_stats st;
      double mx[MX_N], sum[ST_N];
      gather(train, perm + start + off, (int)cnt, X, y);
      model.loss_denominator = Bg; /* shard gradients sum to the global-batch mean */
      model.layer.diag_now = o.diag > 0 && global_step % o.diag == 0; /* the same steps on every rank */
      double ta = il_now();
      if (il_model_forward(&model, (int)cnt, X, y, 1, &st) != IL_OK) goto run_err;
      double tb = il_now();
      if (il_model_backward(&model, &st) != IL_OK) goto run_err;
      if (o.inject_nan_step == global_step && o.inject_nan_rank == dist.rank) model.grads[0] = NAN;
      double tw = il_now();
      /* The barrier separates load imbalance (time waiting for the slowest
       * rank) from the cost of the allreduce itself; it costs ~10 us. */
      if (dist.size > 1 && MPI_Barrier(dist.comm) != MPI_SUCCESS) {
        IL_ERR(IL_ERR_INTERNAL, "MPI_Barrier failed");
        goto run_err;
      }
      double tc = il_now();
      /* one allreduce of the whole gradient; a NaN on any rank reaches every rank */
      if (il_dist_allreduce_sum(&dist, model.grads, model.nparams, MPI_FLOAT) != IL_OK) goto run_err;
      const int finite = be->all_finite(model.nparams, model.grads);
      double td = il_now();
      double gn = NAN;
      if (finite) {
        gn = sqrt(be->sqdist(model.nparams, model.grads, NULL));
        if (gn > tr.max_grad_norm) tr.max_grad_norm = gn;
        il_model_sgd(&model, lr);
      } else {
        tr.nan_batches++;
      }
      double te_ = il_now();
      my.t_forward += tb - ta;
      my.t_backward += tw - tb;
      my.t_wait += dist.size > 1 ? tc - tw : 0;
      my.t_allreduce += td - tc;
      my.t_update += te_ - td;
      mx[MX_FWD] = tb - ta;
      mx[MX_BWD] = tw - tb;
      mx[MX_WAIT] = dist.size > 1 ? tc - tw : 0; /* no barrier on one rank */
      mx[MX_AR] = td - tc;
      mx[MX_UPD] = te_ - td;
      mx[MX_BWD_ITERS] = st.bwd.iters;
      mx[MX_BWD_RES] = nan_to_low(st.bwd.residual); /* NaN: no system solved (phantom, jfb) */
      mx[MX_NAN_BWD_RES] = isnan(st.bwd.residual);
      mx[MX_FWD_ITERS] = st.fwd.iters; /* differs per rank only with --stop sample */
      /* the worst over ranks: reasons are ordered converged < max-iter < diverged < non-finite */
      mx[MX_FWD_RES] = isfinite(st.fwd.residual) ? st.fwd.residual : INFINITY;
      mx[MX_FWD_REASON] = st.fwd.reason;
      mx[MX_BWD_REASON] = st.bwd.reason;
      mx[MX_RHO] = nan_to_low(st.diag.rho_max);
      mx[MX_COND] = nan_to_low(st.diag.cond_max);
      mx[MX_NEG_COS] = nan_to_low(isnan(st.diag.grad_cos) ? NAN : -st.diag.grad_cos);
      mx[MX_RELERR] = nan_to_low(st.diag.grad_relerr);
      mx[MX_PREACT] = nan_to_low(st.diag.preact_max);
      {
        const double dv[] = {st.diag.rho_max, st.diag.cond_max, st.diag.grad_cos, st.diag.grad_relerr,
                             st.diag.preact_max};
        for (int k = 0; k < 5; k++) mx[MX_NAN_RHO + k] = isnan(dv[k]);
      }
      /* the first origin in computing order, and for it the latest iteration reported: encoded so
       * that the max over ranks of -(origin * 1e7 - iter) picks them (origin 0 sorts last) */
      mx[MX_NEG_NAN] = -((st.nan_origin ? st.nan_origin : 99) * 1e7 - (st.nan_iter + 1));
      sum[ST_LOSS] = st.loss_sum;
      sum[ST_ERR] = st.errors;
      sum[ST_NONCONV] = st.fwd.nonconverged_rows;
      sum[ST_SAMPLES] = st.samples;
      sum[ST_RHO_SUM] = isnan(st.diag.rho_mean) ? 0 : st.diag.rho_mean * st.diag.rho_samples;
      sum[ST_RHO_N] = isnan(st.diag.rho_mean) ? 0 : st.diag.rho_samples;
      if (il_dist_allreduce_sum(&dist, sum, ST_N, MPI_DOUBLE) != IL_OK || max_over_ranks(&dist, mx, MX_N) != IL_OK)
        goto run_err;
      for (int k = 0; k < 4; k++) tr.phase[k] += mx[k];
      tr.wait += mx[MX_WAIT];
      st.loss_sum = sum[ST_LOSS];
      st.errors = (int)sum[ST_ERR];
      st.fwd.nonconverged_rows = (int)sum[ST_NONCONV];
      st.samples = (int)sum[ST_SAMPLES];
      st.bwd.iters = (int)mx[MX_BWD_ITERS];
      st.fwd.iters = (int)mx[MX_FWD_ITERS];
      st.fwd.reason = (il_reason)mx[MX_FWD_REASON];
      st.bwd.reason = (il_reason)mx[MX_BWD_REASON];
      if (isfinite(st.fwd.residual)) st.fwd.residual = mx[MX_FWD_RES];
      acc_step(&tr, &st);
      {
        const double key = -mx[MX_NEG_NAN];
        const int origin = (int)ceil(key / 1e7);
        st.nan_origin = origin >= 99 ? IL_NAN_NONE : origin;
        st.nan_iter = st.nan_origin ? (int)(origin * 1e7 - key) - 1 : -1;
        /* a NaN injected for testing, or one that appeared only after the allreduce, has no earlier origin */
        if (!finite && st.nan_origin == IL_NAN_NONE) { st.nan_origin = IL_NAN_BWD_OTHER; st.nan_iter = -1; }
        if (st.nan_origin == IL_NAN_FWD_OTHER || st.nan_origin == IL_NAN_BWD_OTHER) st.nan_iter = -1;
      }
      il_step_row *row = &steps[b];
      il_step_row_init(row);
      row->epoch = (int32_t)ep;
      row->step = (int32_t)b;
      row->loss = st.loss_sum / st.samples;
      row->err = (double)st.errors / st.samples;
      row->fwd_iters = st.fwd.iters;
      row->fwd_residual = st.fwd.residual;
      row->fwd_reason = (int32_t)st.fwd.reason;
      row->bwd_iters = st.bwd.iters;
      row->bwd_residual = reduced(mx, MX_BWD_RES, MX_NAN_BWD_RES);
      row->bwd_reason = (int32_t)st.bwd.reason;
      row->nonconverged = st.fwd.nonconverged_rows;
      row->nan_skipped = !finite;
      row->grad_norm = gn;
      row->t_forward = mx[MX_FWD];
      row->t_backward = mx[MX_BWD];
      row->t_wait = mx[MX_WAIT];
      row->t_allreduce = mx[MX_AR];
      row->t_update = mx[MX_UPD];
      row->diag_rho_max = reduced(mx, MX_RHO, MX_NAN_RHO);
      row->diag_rho_mean = isnan(row->diag_rho_max) || !(sum[ST_RHO_N] > 0) ? NAN : sum[ST_RHO_SUM] / sum[ST_RHO_N];
      row->diag_cond = reduced(mx, MX_COND, MX_NAN_COND);
      row->diag_grad_cos = isnan(reduced(mx, MX_NEG_COS, MX_NAN_COS)) ? NAN : fmin(1.0, fmax(-1.0, -mx[MX_NEG_COS]));
      row->diag_grad_relerr = reduced(mx, MX_RELERR, MX_NAN_RELERR);
      row->diag_preact_max = reduced(mx, MX_PREACT, MX_NAN_PREACT);
      row->nan_origin = st.nan_origin;
      row->nan_iter = st.nan_iter;
      if (root && o.log_steps)
        printf("%sstep=%ld epoch=%ld batch=%ld loss=%.9g err=%.4f fwd_iters=%d fwd_residual=%.6g fwd_reason=%s "
               "bwd_iters=%d bwd_residual=%.3g bwd_reason=%s nonconverged=%d nan_skipped=%d nan_origin=%d nan_iter=%d "
               "rho_max=%.4g rho_mean=%.4g cond=%.4g grad_cos=%.6f grad_relerr=%.3g preact_max=%.4g forward_s=%.6f backward_s=%.6f "
               "allreduce_s=%.6f update_s=%.6f\n",
               pfx, global_step, ep, b, st.loss_sum / st.samples, (double)st.errors / st.samples, st.fwd.iters,
               st.fwd.residual, il_reason_name(st.fwd.reason), st.bwd.iters, row->bwd_residual,
               il_reason_name(st.bwd.reason), st.fwd.nonconverged_rows, !finite, row->nan_origin, row->nan_iter,
               row->diag_rho_max, row->diag_rho_mean, row->diag_cond, row->diag_grad_cos, row->diag_grad_relerr,
               row->diag_preact_max, mx[MX_FWD], mx[MX_BWD], mx[MX_AR], mx[MX_UPD]);
      if (o.check_sync > 0 && (global_step + 1) % o.check_sync == 0) {
        int same;
        if (il_dist_in_sync(&dist, il_hash_bytes(model.params, model.nparams * sizeof *model.params), &same) != IL_OK)
          goto run_err;
        if (!same) { /* every rank sees it: record the failure and stop cleanly */
          IL_ERR(IL_ERR_INTERNAL, "parameters differ across ranks after step %ld (epoch %ld, batch %ld)", global_step,
                 ep, b);
          goto collective_fail;
        }
      }
      if (tty) progress("train", ep, b + 1, nb, t0);
    }
    double t1 = il_now();
    model.layer.diag_now = 0;
    for (long b = 0; b < ntb; b++) {
      const long start = b * o.batch;
      const int Bg = (int)((start + o.batch <= ntest) ? o.batch : ntest - start);
      long off, cnt;
      il_dist_shard(Bg, dist.rank, dist.size, &off, &cnt);
      il_step_stats st = {0};
      double sum[ST_N] = {0};
      gather(test, tidx + start + off, (int)cnt, X, y);
      if (il_model_forward(&model, (int)cnt, X, y, 0, &st) != IL_OK) goto run_err;
      sum[ST_LOSS] = st.loss_sum;
      sum[ST_ERR] = st.errors;
      sum[ST_NONCONV] = st.fwd.nonconverged_rows;
      sum[ST_SAMPLES] = st.samples;
      if (il_dist_allreduce_sum(&dist, sum, ST_N, MPI_DOUBLE) != IL_OK) goto run_err;
      st.loss_sum = sum[ST_LOSS];
      st.errors = (int)sum[ST_ERR];
      st.fwd.nonconverged_rows = (int)sum[ST_NONCONV];
      st.samples = (int)sum[ST_SAMPLES];
      acc_step(&te, &st);
      if (tty) progress("test", ep, b + 1, ntb, t1);
    }
    double t2 = il_now();
    my.t_test += t2 - t1;
    for (int c = 0; c < IL_MEM_NCAT; c++)
      if (model.mem.peak[c] > run_peak.peak[c]) run_peak.peak[c] = model.mem.peak[c];
    if (model.mem.peak_total > run_peak.peak_total) run_peak.peak_total = model.mem.peak_total;
    /* each rank's own phase totals this epoch, reduced to min/mean/max over ranks */
    double mine[5] = {my.t_forward - ep_start.t_forward, my.t_backward - ep_start.t_backward,
                      my.t_wait - ep_start.t_wait, my.t_allreduce - ep_start.t_allreduce,
                      my.t_update - ep_start.t_update};
    il_minmeanmax mmm[5];
    if (il_dist_minmeanmax(&dist, mine, 5, mmm) != IL_OK) goto run_err;
    ep_start = my;
    double ep_max[5] = {t1 - t0, t2 - t1, (double)model.mem.peak_total, (double)model.mem.peak[IL_MEM_SAVED],
                        (double)model.mem.peak[IL_MEM_WORKSPACE]};
    if (max_over_ranks(&dist, ep_max, 5) != IL_OK) goto run_err;
    il_epoch_row er = {
        .epoch = (int32_t)ep, .lr = lr, .train_err = tr.samples ? (double)tr.errors / tr.samples : NAN,
        .train_loss = tr.samples ? tr.loss / tr.samples : NAN, .train_iters = tr.batches ? tr.iters / tr.batches : NAN,
        .train_bwd_iters = tr.batches ? tr.bwd_iters / tr.batches : NAN,
        .test_err = te.samples ? (double)te.errors / te.samples : NAN,
        .test_loss = te.samples ? te.loss / te.samples : NAN, .test_iters = te.batches ? te.iters / te.batches : NAN,
        .max_grad_norm = tr.max_grad_norm, .nan_batches = tr.nan_batches, .nonconverged = tr.nonconverged,
        .maxiter_batches = tr.maxiter_batches, .diverged_batches = tr.diverged_batches,
        .nonfinite_batches = tr.nonfinite_batches,
        .train_batches = tr.batches, .train_s = ep_max[0], .test_s = ep_max[1],
        .peak_mem_bytes = (uint64_t)ep_max[2], .saved_peak_bytes = (uint64_t)ep_max[3],
        .workspace_peak_bytes = (uint64_t)ep_max[4]};
    if (root) {
      printf("%sepoch=%ld lr=%g train_err=%.4f train_loss=%.4f train_iters=%.2f train_bwd_iters=%.2f "
             "test_err=%.4f test_loss=%.4f test_iters=%.2f nan_batches=%ld max_grad_norm=%.4g nonconverged=%ld "
             "maxiter_batches=%ld diverged_batches=%ld nonfinite_batches=%ld train_batches=%ld train_s=%.3f test_s=%.3f "
             "forward_s=%.3f backward_s=%.3f wait_s=%.3f allreduce_s=%.3f update_s=%.3f ranks=%d "
             "peak_mem_bytes=%.0f saved_peak_bytes=%.0f workspace_peak_bytes=%.0f\n",
             pfx, ep, lr, er.train_err, er.train_loss, er.train_iters, er.train_bwd_iters, er.test_err, er.test_loss,
             er.test_iters, tr.nan_batches, tr.max_grad_norm, tr.nonconverged, tr.maxiter_batches,
             tr.diverged_batches, tr.nonfinite_batches, tr.batches, ep_max[0], ep_max[1], tr.phase[0], tr.phase[1], tr.wait, tr.phase[2],
             tr.phase[3], dist.size, ep_max[2], ep_max[3], ep_max[4]);
      if (dist.size > 1)
        printf("%s# epoch %ld per-rank phase totals, min/mean/max over %d ranks (s): forward %.3f/%.3f/%.3f "
               "backward %.3f/%.3f/%.3f wait %.3f/%.3f/%.3f allreduce %.3f/%.3f/%.3f update %.3f/%.3f/%.3f\n",
               pfx, ep, dist.size, mmm[0].min, mmm[0].mean, mmm[0].max, mmm[1].min, mmm[1].mean, mmm[1].max,
               mmm[2].min, mmm[2].mean, mmm[2].max, mmm[3].min, mmm[3].mean, mmm[3].max, mmm[4].min, mmm[4].mean,
               mmm[4].max);
      fflush(stdout);
    }
    if (h5 && il_h5_run_epoch(h5, &er, steps, (int)nb) != IL_OK) goto collective_fail;
  }
  int saved_ok = 1;
  if (root && o.save_params) {
    FILE *f = fopen(o.save_params, "wb");
    saved_ok = f && fwrite(model.params, sizeof *model.params, model.nparams, f) == model.nparams;
    if (f && fclose(f) != 0) saved_ok = 0;
    if (!saved_ok) IL_ERR(IL_ERR_IO, "cannot write parameters to '%s': %s", o.save_params, strerror(errno));
  }
  MPI_Bcast(&saved_ok, 1, MPI_INT, 0, dist.comm);
  if (!saved_ok) goto collective_fail;
  my.peak_mem_bytes = run_peak.peak_total;
  if (h5 && il_h5_run_end(h5, "completed", &run_peak, &my) != IL_OK) {
    run_open = 0; /* the writer closed it */
    goto collective_fail;
  }
  rc = 0;
  goto done;

collective_fail:
  /* every rank reached this point together: mark the run failed in the file and return */
  if (root) fprintf(stderr, "ilbench: error: %s\n", il_error_message());
  if (h5 && run_open) {
    my.peak_mem_bytes = run_peak.peak_total;
    (void)il_h5_run_end(h5, "failed", &run_peak, &my);
  }
  rc = 1;
  goto done;

run_err:
  /* failures inside a collective phase are fatal for the job: report and abort all ranks */
  {
    /* rank, host and the file:line where the failure was recorded (first trace line) */
    const char *tr = il_error_trace_text(), *at = tr;
    while (*at == ' ') at++;
    const char *nl = strchr(at, '\n');
    fprintf(stderr, "ilbench: error: rank %d on %s: %s (%.*s)\n", dist.rank, dist.host, il_error_message(),
            nl ? (int)(nl - at) : (int)strlen(at), at);
    if (getenv("ILBENCH_TRACE")) fprintf(stderr, "%s", tr);
    fflush(stderr);
  }
  MPI_Abort(dist.comm, 1);
  rc = 1;
  goto done;
invalid:
  rc = 2;
done:
  free(X);
  free(y);
  free(perm);
  free(tidx);
  free(steps);
  if (model_ok) il_model_destroy(&model);
  return rc;
}
