/* bench/cmd_train.c: `ilbench train`, the seed's MNIST experiment in float32.
 * Semantics follow the seed: batch 100, SGD lr 0.1 dropping to 0.01 at epoch 5,
 * stop on the batch Frobenius norm, Newton rows that fail are zeroed (unroll),
 * and a step whose gradient is not finite is skipped. One logfmt line per epoch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_args.h"
#include "commands.h"
#include "il_mnist.h"
#include "il_model.h"
#include "il_rng.h"

#define MAX_DROPS 16

static const il_cli_spec train_spec[] = {
    {"solver", 1, "forward solver", "fp"},
    {"backward", 1, "backward mode", "unroll"},
    {"tol", 1, "stop when the batch residual Frobenius norm < tol", "1e-4"},
    {"max-iter", 1, "solver iteration limit", "200 for fp, 40 for newton"},
    {"hidden", 1, "hidden size of the implicit layer", "100"},
    {"epochs", 1, "training epochs", "10"},
    {"batch", 1, "batch size", "100"},
    {"lr", 1, "SGD learning rate", "0.1"},
    {"lr-drop", 1, "EPOCH:LR[,EPOCH:LR...] set the rate at a 0-based epoch", "5:0.01"},
    {"seed", 1, "seed for initialisation and shuffling", "0"},
    {"data", 1, "directory with the MNIST idx files", "data/mnist"},
    {"device", 1, "cpu or cuda", "cpu"},
    {"max-batches", 1, "limit training batches per epoch", "all"},
    {"test-batches", 1, "limit test batches per epoch (0: no test)", "all"},
    {"threads", 1, "threads over GEMM rows and over the batch in batched LU (BLAS itself stays single-threaded)", "1"},
    {"zero-nonconverged", 1, "auto|yes|no: zero rows whose residual > tol (auto: yes for newton, as the seed)", "auto"},
    {"adjoint-refine", 1, "implicit: max refinement steps of the reused LU against J(z*) (0: none, as the seed)", "3"},
    {"help", 0, "show this help", NULL},
};
#define NSPEC ((int)(sizeof train_spec / sizeof train_spec[0]))

typedef struct train_opts {
  const char *solver, *backward, *data, *device;
  double tol, lr;
  long max_iter, hidden, epochs, batch, seed, max_batches, test_batches, threads, refine;
  int zero;
  int ndrops;
  long drop_epoch[MAX_DROPS];
  double drop_lr[MAX_DROPS];
} train_opts;

static il_status parse_drops(const char *s, train_opts *o) {
  o->ndrops = 0;
  if (strcmp(s, "none") == 0) return IL_OK;
  char items[MAX_DROPS][64];
  int nitems;
  IL_CHECK(il_cli_split_list(s, "lr-drop", items, MAX_DROPS, &nitems));
  for (int it = 0; it < nitems; it++) {
    char *item = items[it];
    char *colon = strchr(item, ':');
    if (!colon) return IL_ERR(IL_ERR_ARG, "--lr-drop: '%s' is not EPOCH:LR", item);
    *colon = '\0';
    if (o->ndrops == MAX_DROPS) return IL_ERR(IL_ERR_ARG, "--lr-drop: more than %d drops", MAX_DROPS);
    IL_CHECK(il_parse_int(item, "--lr-drop epoch", 0, 1000000, &o->drop_epoch[o->ndrops]));
    IL_CHECK(il_parse_double(colon + 1, "--lr-drop rate", &o->drop_lr[o->ndrops]));
    if (!(o->drop_lr[o->ndrops] > 0)) return IL_ERR(IL_ERR_ARG, "--lr-drop: rate must be positive, got %s", colon + 1);
    o->ndrops++;
  }
  return IL_OK;
}

static il_status parse_train(const il_cli *cli, train_opts *o) {
  o->solver = il_cli_get(cli, "solver", "fp");
  o->backward = il_cli_get(cli, "backward", "unroll");
  const il_solver_ops *so = il_solver_find(o->solver);
  if (!so) return IL_ERR(IL_ERR_ARG, "--solver: unknown solver '%s' (valid: %s)", o->solver, il_solver_names());
  const il_backward_ops *bo = il_backward_find(o->backward);
  if (!bo)
    return IL_ERR(IL_ERR_ARG, "--backward: unknown backward mode '%s' (valid: %s)", o->backward, il_backward_names());
  if (bo->needs_tape && !so->unroll_backward)
    return IL_ERR(IL_ERR_ARG, "--backward %s is not supported with --solver %s", o->backward, o->solver);
  IL_CHECK(il_cli_positive_double(cli, "tol", 1e-4, &o->tol));
  IL_CHECK(il_cli_int(cli, "max-iter", so->default_max_iter, 1, 1000000, &o->max_iter));
  IL_CHECK(il_cli_int(cli, "hidden", 100, 1, 1L << 30, &o->hidden));
  IL_CHECK(il_cli_int(cli, "epochs", 10, 1, 100000, &o->epochs));
  IL_CHECK(il_cli_int(cli, "batch", 100, 1, 60000, &o->batch));
  IL_CHECK(il_cli_positive_double(cli, "lr", 0.1, &o->lr));
  IL_CHECK(parse_drops(il_cli_get(cli, "lr-drop", "5:0.01"), o));
  IL_CHECK(il_cli_int(cli, "seed", 0, 0, 0x7fffffffffffffffL, &o->seed));
  o->data = il_cli_get(cli, "data", "data/mnist");
  IL_CHECK(il_cli_choice(cli, "device", "cpu", "cpu|cuda", &o->device));
  if (strcmp(o->device, "cuda") == 0)
    return IL_ERR(IL_ERR_UNSUPPORTED, "--device cuda: this build has no CUDA backend (see README: building with CUDA)");
  IL_CHECK(il_cli_int(cli, "max-batches", 0, 1, 1L << 30, &o->max_batches));
  IL_CHECK(il_cli_int(cli, "test-batches", -1, 0, 1L << 30, &o->test_batches));
  IL_CHECK(il_cli_int(cli, "threads", 1, 1, 256, &o->threads));
  const char *z;
  IL_CHECK(il_cli_choice(cli, "zero-nonconverged", "auto", "auto|yes|no", &z));
  o->zero = strcmp(z, "auto") == 0 ? IL_ZERO_AUTO : strcmp(z, "yes") == 0 ? IL_ZERO_YES : IL_ZERO_NO;
  IL_CHECK(il_cli_int(cli, "adjoint-refine", 3, 0, 100, &o->refine));
  return IL_OK;
}

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
  long errors, samples, batches, nan_batches, nonconverged, maxiter_batches, nonfinite_batches;
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
  printf("# %-18s %g\n", "tol", o->tol);
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
  printf("# %-18s %s (%s)\n", "device", o->device, IL_REAL_NAME);
  printf("# %-18s %ld\n", "threads", o->threads);
  printf("# %-18s %s\n", "data", o->data);
  printf("# %-18s %zu\n", "est_bytes", est);
  fflush(stdout);
}

int il_cmd_train(int argc, char **argv) {
  il_cli cli;
  train_opts o;
  il_mnist_split train = {0}, test = {0};
  il_model model;
  int model_ok = 0, rc = 1;
  float *X = NULL;
  uint8_t *y = NULL;
  uint32_t *perm = NULL, *tidx = NULL;

  if (il_cli_parse(&cli, "train", train_spec, NSPEC, argc, argv, 0) != IL_OK) goto usage_err;
  if (il_cli_has(&cli, "help")) {
    il_cli_usage("train", "[options]", train_spec, NSPEC);
    return 0;
  }
  if (parse_train(&cli, &o) != IL_OK) goto usage_err;

  il_model_config mc = {.in_dim = 784, .hidden = (int)o.hidden, .classes = 10, .max_batch = (int)o.batch,
                        .seed = (uint64_t)o.seed,
                        .layer = {.solver = o.solver, .backward = o.backward, .tol = o.tol,
                                  .max_iter = (int)o.max_iter, .zero_nonconverged = o.zero,
                                  .adjoint_refine = o.refine ? (int)o.refine : -1, .opts = NULL}};
  size_t est;
  if (il_model_estimate_bytes(&mc, &est) != IL_OK) {
    il_error_clear();
    IL_ERR(IL_ERR_NOMEM, "--hidden %ld with --batch %ld is too large to allocate (its size overflows)", o.hidden, o.batch);
    goto usage_err;
  }
  unsigned long long phys = il_phys_mem();
  if (phys && est > phys) {
    IL_ERR(IL_ERR_NOMEM, "--hidden %ld with --batch %ld needs about %.3g GiB, more than this machine's %.3g GiB",
           o.hidden, o.batch, (double)est / (1 << 30), (double)phys / (1 << 30));
    goto usage_err;
  }
  il_status ls = il_mnist_load_split(o.data, "train", &train);
  if (ls == IL_OK) ls = il_mnist_load_split(o.data, "t10k", &test);
  if (ls != IL_OK) {
    il_report_error("train");
    if (ls == IL_ERR_IO) fprintf(stderr, "ilbench train: hint: scripts/fetch-mnist downloads MNIST into data/mnist\n");
    goto done;
  }
  {
    const il_mnist_split *sp[2] = {&train, &test};
    const char *nm[2] = {"train", "t10k"};
    for (int i = 0; i < 2; i++)
      if (sp[i]->images.rows != 28 || sp[i]->images.cols != 28) {
        fprintf(stderr, "ilbench train: error: %s/%s-images-idx3-ubyte holds %zux%zu images, the model expects 28x28\n",
                o.data, nm[i], sp[i]->images.rows, sp[i]->images.cols);
        goto done;
      }
  }
  const il_backend *be;
  if (il_backend_cpu((int)o.threads, &be) != IL_OK || il_model_create(&model, &mc, be) != IL_OK) {
    il_report_error("train");
    goto done;
  }
  model_ok = 1;
  X = malloc((size_t)o.batch * 784 * sizeof *X);
  y = malloc((size_t)o.batch);
  perm = malloc(train.images.count * sizeof *perm);
  tidx = malloc(test.images.count * sizeof *tidx);
  if (!X || !y || !perm || !tidx) {
    fprintf(stderr, "ilbench train: error: out of memory for batch buffers\n");
    goto done;
  }
  for (size_t i = 0; i < test.images.count; i++) tidx[i] = (uint32_t)i;
  print_config(&o, &model, est);

  il_rng shuffle;
  il_rng_seed(&shuffle, (uint64_t)o.seed ^ 0x5348554646UL); /* stream apart from the init stream */
  const int tty = isatty(2);
  const long ntrain = (long)train.images.count, ntest = (long)test.images.count;
  long nb = (ntrain + o.batch - 1) / o.batch;
  if (o.max_batches > 0 && o.max_batches < nb) nb = o.max_batches;
  long ntb = (ntest + o.batch - 1) / o.batch;
  if (o.test_batches >= 0 && o.test_batches < ntb) ntb = o.test_batches;
  double lr = o.lr;
  for (long ep = 0; ep < o.epochs; ep++) {
    for (int i = 0; i < o.ndrops; i++)
      if (o.drop_epoch[i] == ep) lr = o.drop_lr[i];
    il_rng_permutation(&shuffle, (size_t)ntrain, perm);
    epoch_acc tr = {0}, te = {0};
    il_memstats_reset_peaks(&model.mem);
    double t0 = il_now();
    for (long b = 0; b < nb; b++) {
      long start = b * o.batch;
      int B = (int)((start + o.batch <= ntrain) ? o.batch : ntrain - start);
      il_step_stats st;
      gather(&train, perm + start, B, X, y);
      if (il_model_forward(&model, B, X, y, 1, &st) != IL_OK || il_model_backward(&model, &st) != IL_OK) {
        il_report_error("train");
        goto done;
      }
      if (st.grad_finite) {
        /* the largest step taken: a huge but finite gradient passes the NaN check */
        double gn = sqrt(be->sqdist(model.nparams, model.grads, NULL));
        if (gn > tr.max_grad_norm) tr.max_grad_norm = gn;
        il_model_sgd(&model, lr);
      } else {
        tr.nan_batches++;
      }
      acc_step(&tr, &st);
      if (tty) progress("train", ep, b + 1, nb, t0);
    }
    double t1 = il_now();
    for (long b = 0; b < ntb; b++) {
      long start = b * o.batch;
      int B = (int)((start + o.batch <= ntest) ? o.batch : ntest - start);
      il_step_stats st;
      gather(&test, tidx + start, B, X, y);
      if (il_model_forward(&model, B, X, y, 0, &st) != IL_OK) {
        il_report_error("train");
        goto done;
      }
      acc_step(&te, &st);
      if (tty) progress("test", ep, b + 1, ntb, t1);
    }
    double t2 = il_now();
    printf("epoch=%ld lr=%g train_err=%.4f train_loss=%.4f train_iters=%.2f train_bwd_iters=%.2f "
           "test_err=%.4f test_loss=%.4f test_iters=%.2f nan_batches=%ld max_grad_norm=%.4g nonconverged=%ld "
           "maxiter_batches=%ld nonfinite_batches=%ld train_batches=%ld train_s=%.3f test_s=%.3f "
           "peak_mem_bytes=%zu saved_peak_bytes=%zu workspace_peak_bytes=%zu\n",
           ep, lr, tr.samples ? (double)tr.errors / tr.samples : NAN, tr.samples ? tr.loss / tr.samples : NAN,
           tr.batches ? tr.iters / tr.batches : NAN, tr.batches ? tr.bwd_iters / tr.batches : NAN,
           te.samples ? (double)te.errors / te.samples : NAN, te.samples ? te.loss / te.samples : NAN,
           te.batches ? te.iters / te.batches : NAN, tr.nan_batches, tr.max_grad_norm, tr.nonconverged, tr.maxiter_batches,
           tr.nonfinite_batches, tr.batches, t1 - t0, t2 - t1, model.mem.peak_total, model.mem.peak[IL_MEM_SAVED],
           model.mem.peak[IL_MEM_WORKSPACE]);
    fflush(stdout);
  }
  rc = 0;
  goto done;

usage_err:
  il_report_error("train");
  rc = 2;
done:
  free(X);
  free(y);
  free(perm);
  free(tidx);
  if (model_ok) il_model_destroy(&model);
  il_mnist_split_free(&train);
  il_mnist_split_free(&test);
  return rc;
}
