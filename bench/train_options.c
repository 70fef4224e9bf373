/* bench/train_options.c: the options of one training run (`train`, and each point
 * of `sweep`): their table, strict parsing, and the implicit-layer configuration
 * they make. Nothing here touches MPI or data; bench/train_driver.c runs the result. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "il_wnorm.h"
#include "train_driver.h"

#define MAX_DROPS IL_TRAIN_MAX_DROPS

static const il_cli_spec train_spec_head[] = {
    {"solver", 1, "forward solver", "fp"},
    {"backward", 1, "backward mode", "unroll"},
    {"tol", 1, "stop when the batch residual (the Frobenius norm; see --stop-norm, --stop-mode) < tol", "1e-4"},
    {"max-iter", 1, "solver iteration limit", "200 for fp, 40 for newton"},
    {"eval-tol", 1, "the test pass's tolerance (DEQ papers often evaluate with a tighter one)", "--tol"},
    {"eval-max-iter", 1, "the test pass's iteration limit", "--max-iter"},
    {"stop", 1, "batch: stop on the whole global batch's residual norm (the seed; one allreduce per iteration); "
                "sample: each row stops on its own norm (no communication)", "batch"},
    {"hidden", 1, "hidden size of the implicit layer", "100"},
    {"epochs", 1, "training epochs", "10"},
    {"batch", 1, "batch size", "100"},
    {"lr", 1, "SGD learning rate", "0.1"},
    {"lr-drop", 1, "EPOCH:LR[,EPOCH:LR...] set the rate at a 0-based epoch", "5:0.01"},
    {"seed", 1, "seed for initialisation and shuffling", "0"},
    {"data", 1, "directory with the MNIST idx files", "data/mnist"},
    {"device", 1, "compute backend: cpu, or another that `ilbench info` lists (cpu-guard: a test backend)", "cpu"},
    {"grid", 1, "PRxPC: each model-parallel group is a PR x PC BLACS grid (the scalapack backend: Jacobians and their "
                "LU block-cyclic over it); the world size must be a multiple of PR*PC, the multiple is the data-parallel "
                "degree; 1x1: the plain data-parallel path", "1x1"},
    {"grid-nb", 1, "with --grid: the block size of the block-cyclic layout (MB = NB)", "64"},
    {"max-batches", 1, "limit training batches per epoch", "all"},
    {"test-batches", 1, "limit test batches per epoch (0: no test)", "all"},
    {"threads", 1, "threads of each rank, bound to CPUs of their own: the implicit layer runs on T row shards that meet once per solver iteration; the linear layers split GEMM rows (BLAS itself stays single-threaded)",
     "1, or SLURM_CPUS_PER_TASK under Slurm (1 with --grid)"},
    {"zero-nonconverged", 1, "auto|yes|no: zero rows whose residual > tol (auto: yes for newton, as the seed)", "auto"},
    {"adjoint-refine", 1, "implicit with adjoint-solver lu: max refinement steps of the reused LU against J(z*) (0: none, as the seed)", "3"},
    {"stop-mode", 1, "abs: stop when residual < tol; rel: when residual < tol * first residual; relf: each row's "
                     "residual is relative to its ||f(z)||, ||f(z)-z|| / (||f(z)|| + 1e-9), as TorchDEQ's rel", "abs"},
    {"divtol", 1, "diverged when residual > divtol * first residual (0: off)", "0"},
    {"best", IL_CLI_OPTIONAL, "batch (--best alone): a solve that ends unconverged returns its lowest-residual "
                              "iterate; sample: each row returns its own lowest-residual iterate, as TorchDEQ (not "
                              "with unroll; off when not given)", "batch"},
    {"stop-norm", 1, "batch stopping's norm over the rows' residuals: frob (the batch's Frobenius norm, the seed), "
                     "max (the largest row's, TorchDEQ's test) or mean (the mean of the rows' norms); over all ranks",
     "frob"},
    {"sech2", 1, "stable: sech^2 = 1 - tanh^2; seed: Newton's Jacobian uses the seed's 1/cosh(a)^2 and its autograd "
                 "backward (NaN where cosh overflows, |a| > 89.4 in float32)", "stable"},
    {"diag", 1, "every N steps measure spectral radius, LU condition, gradient vs exact IFT (0: never)", "0"},
    {"log-view", 0, "print the run's events table at the end (time, calls, FLOPs per event, as PETSc's -log_view)", NULL},
    {"jac-reg", 1, "Jacobian regularisation: the training loss gains WEIGHT times a Hutchinson estimate of "
                   "||df/dz||_F^2 at z* per sample (Rademacher probes seeded by --seed; its gradient taken at z* held "
                   "fixed, added to any backward mode's); 0: off", "0"},
    {"jac-reg-samples", 1, "with --jac-reg: probes per sample", "1"},
    {"jac-reg-every", 1, "with --jac-reg: regularise every N-th training step (1: every step)", "1"},
    {"fp-correction", 1, "fixed-point correction (README): besides z*, supervise K-1 iterates spread over the forward "
                         "solve, each through the backward mode's phantom steps (1 for implicit), with loss weights "
                         "GAMMA^(K-k), GAMMA in (0, 1] (default 0.8); K 1..100, 1: off; not with --backward unroll",
     "1"},
    {"trace", 1, "every N training steps record the residual of every forward and backward iteration in the --out "
                 "file's trace table (analysis/SCHEMA.md; report.py draws convergence.png from it)", "off"},
    {"warm-start", 0, "start each training sample's solve from its fixed point of the last step that saw it (per "
                      "dataset index, across epochs; the test pass starts cold)", NULL},
    {"w-norm", 1, "none|weight|spectral: W's parameterisation; weight: W_i = g_i V_i / ||V_i|| per row, spectral: "
                  "W = V / sigma(V), one power iteration per training step", "none"},
};
/* then the per-solver / per-backward options, from the registries' declarations (il_option_decl) */
static const il_cli_spec train_spec_tail[] = {
    {"log-steps", 0, "also print one logfmt line per training step (rank 0)", NULL},
    {"save-params", 1, "write the final parameters as raw float32 (W1, b1, W, W2, b2, row-major) to a file", NULL},
    {"init-from", 1, "start from parameters in the --save-params format (raw float32 W1, b1, W, W2, b2) instead of "
                     "the seeded initialisation; a file of the wrong size is refused", NULL},
    {"batch-order", 1, "feed training samples in the order a file gives (text: whitespace-separated 0-based indices, "
                       "'#' comments; epoch after epoch, each epoch's batches in turn, no repeats within an epoch) "
                       "instead of the seeded shuffle", NULL},
    {"gpu-map", 1, "--device cuda: the GPU of each node-local rank, e.g. 0,1,0,1 (indices among the GPUs "
                   "CUDA_VISIBLE_DEVICES leaves visible; default: node-local rank mod their number)", NULL},
    {"allreduce", 1, "gradient allreduce of a device's gradients: auto (NCCL when it loads and no two ranks share "
                     "a GPU, else MPI staged through pinned host memory), nccl or mpi", "auto"},
    {"check-sync", 1, "compare a checksum of the parameters across ranks every N steps (0: never)", "0"},
    {"inject-nan", 1, "RANK:STEP put a NaN into one gradient of RANK at global STEP (for testing the skip)", NULL},
    {"out", 1, "HDF5 results file (analysis/SCHEMA.md); refused if it exists", NULL},
    {"append", 0, "add runs to an existing --out file", NULL},
    {"force", 0, "replace an existing --out file", NULL},
    {"wait-lock", 1, "another process is writing --out: wait up to SECONDS for it instead of refusing at once", "0"},
    {"checkpoint-every", 1, "with --out, also checkpoint every N training steps (0: at the end of each epoch only); "
                            "a run continues from its last checkpoint with --resume", "0"},
    {"help", 0, "show this help", NULL},
};
#define NHEAD ((int)(sizeof train_spec_head / sizeof train_spec_head[0]))
#define NTAIL ((int)(sizeof train_spec_tail / sizeof train_spec_tail[0]))
#define LAYER_OPTS_MAX 64

int il_train_add_layer_options(il_cli_spec *spec, int nspec, int cap) {
  for (int i = 0; nspec >= 0 && il_solver_at(i); i++)
    nspec = il_cli_add_decls(spec, nspec, cap, il_solver_at(i)->name, il_solver_at(i)->options);
  for (int i = 0; nspec >= 0 && il_backward_at(i); i++)
    nspec = il_cli_add_decls(spec, nspec, cap, il_backward_at(i)->name, il_backward_at(i)->options);
  return nspec;
}

const il_cli_spec *il_train_spec(int *nspec) {
  static il_cli_spec spec[NHEAD + LAYER_OPTS_MAX + NTAIL];
  static int n = 0;
  if (!n) {
    int k = 0;
    for (int i = 0; i < NHEAD; i++) spec[k++] = train_spec_head[i];
    k = il_train_add_layer_options(spec, k, NHEAD + LAYER_OPTS_MAX);
    if (k < 0) { /* more declared options than LAYER_OPTS_MAX: a programming error */
      il_report_error("options");
      k = NHEAD;
    }
    for (int i = 0; i < NTAIL; i++) spec[k++] = train_spec_tail[i];
    n = k;
  }
  *nspec = n;
  return spec;
}

const char *const *il_train_layer_option_flags(void) {
  static const char *keys[LAYER_OPTS_MAX + 1];
  static int done = 0;
  if (!done) {
    static il_cli_spec spec[LAYER_OPTS_MAX];
    int n = il_train_add_layer_options(spec, 0, LAYER_OPTS_MAX);
    if (n < 0) {
      il_report_error("options");
      n = 0;
    }
    for (int i = 0; i < n; i++) keys[i] = spec[i].name;
    keys[n] = NULL;
    done = 1;
  }
  return keys;
}

const il_option_decl *il_train_layer_option_decl(const char *key) {
  const il_option_decl *d = NULL;
  for (int i = 0; !d && il_solver_at(i); i++) d = il_option_decl_find(il_solver_at(i)->options, key);
  for (int i = 0; !d && il_backward_at(i); i++) d = il_option_decl_find(il_backward_at(i)->options, key);
  return d;
}

typedef il_train_opts train_opts;

/* Under Slurm a task owns SLURM_CPUS_PER_TASK CPUs (sbatch -c): use them; else 1. */
long il_default_threads(void) {
  const char *c = getenv("SLURM_CPUS_PER_TASK");
  char *end;
  long v = c ? strtol(c, &end, 10) : 0;
  return c && *c && !*end && v >= 1 && v <= 256 ? v : 1;
}



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

/* --fp-correction K[:GAMMA] */
static il_status parse_fp_correction(const char *s, train_opts *o) {
  char k[32];
  const char *colon = strchr(s, ':');
  o->fpc_gamma = 0.8;
  if (colon && (size_t)(colon - s) >= sizeof k) return IL_ERR(IL_ERR_ARG, "--fp-correction: '%s' is not K[:GAMMA]", s);
  snprintf(k, sizeof k, "%.*s", colon ? (int)(colon - s) : (int)strlen(s), s);
  IL_CHECK(il_parse_int(k, "--fp-correction K (points)", 1, 100, &o->fpc_k));
  if (colon) {
    IL_CHECK(il_parse_double(colon + 1, "--fp-correction GAMMA", &o->fpc_gamma));
    if (!(o->fpc_gamma > 0 && o->fpc_gamma <= 1))
      return IL_ERR(IL_ERR_ARG, "--fp-correction: GAMMA must be in (0, 1], got %s", colon + 1);
  }
  return IL_OK;
}

/* The implicit layer's configuration; cfg->opts points into o. */
void il_train_layer_config(const train_opts *o, il_layer_config *cfg) {
  *cfg = (il_layer_config){.solver = o->solver, .backward = o->backward, .tol = o->tol, .max_iter = (int)o->max_iter,
                           .eval_tol = o->eval_tol, .eval_max_iter = (int)o->eval_max_iter,
                           .zero_nonconverged = o->zero, .adjoint_refine = o->refine ? (int)o->refine : -1,
                           .stop_per_sample = strcmp(o->stop, "sample") == 0,
                           .stop_rel = strcmp(o->stop_mode, "rel") == 0, .divtol = o->divtol, .keep_best = o->best,
                           .stop_relf = strcmp(o->stop_mode, "relf") == 0,
                           .stop_norm = strcmp(o->stop_norm, "max") == 0    ? IL_STOP_MAX
                                        : strcmp(o->stop_norm, "mean") == 0 ? IL_STOP_MEAN
                                                                            : IL_STOP_FROB,
                           .sech2_seed = strcmp(o->sech2, "seed") == 0, .opts = (il_options *)&o->lopts,
                           .fp_correction = (int)o->fpc_k};
}

il_status il_train_parse(const il_cli *cli, train_opts *o) { return il_train_parse_ex(cli, o, 0); }

il_status il_train_parse_ex(const il_cli *cli, train_opts *o, int lenient) {
  o->solver = il_cli_get(cli, "solver", "fp");
  o->backward = il_cli_get(cli, "backward", "unroll");
  const il_solver_ops *so = il_solver_find(o->solver);
  if (!so) return IL_ERR(IL_ERR_ARG, "--solver: unknown solver '%s' (valid: %s)", o->solver, il_solver_names());
  const il_backward_ops *bo = il_backward_find(o->backward);
  if (!bo)
    return IL_ERR(IL_ERR_ARG, "--backward: unknown backward mode '%s' (valid: %s)", o->backward, il_backward_names());
  if (bo->needs_tape && !so->unroll_backward)
    return IL_ERR(IL_ERR_UNSUPPORTED, "--backward %s is not supported with --solver %s: it keeps no tape to unroll "
                  "(use implicit, phantom:K or jfb)", o->backward, o->solver);
  IL_CHECK(il_cli_positive_double(cli, "tol", 1e-4, &o->tol));
  IL_CHECK(il_cli_choice(cli, "stop", "batch", "batch|sample", &o->stop));
  IL_CHECK(il_cli_int(cli, "max-iter", so->default_max_iter, 1, 1000000, &o->max_iter));
  IL_CHECK(il_cli_positive_double(cli, "eval-tol", o->tol, &o->eval_tol));
  IL_CHECK(il_cli_int(cli, "eval-max-iter", o->max_iter, 1, 1000000, &o->eval_max_iter));
  IL_CHECK(il_cli_int(cli, "hidden", 100, 1, 1L << 30, &o->hidden));
  IL_CHECK(il_cli_int(cli, "epochs", 10, 1, 100000, &o->epochs));
  IL_CHECK(il_cli_int(cli, "batch", 100, 1, 60000, &o->batch));
  IL_CHECK(il_cli_positive_double(cli, "lr", 0.1, &o->lr));
  o->lr_drop_text = il_cli_get(cli, "lr-drop", "5:0.01");
  IL_CHECK(parse_drops(o->lr_drop_text, o));
  IL_CHECK(il_cli_int(cli, "seed", 0, 0, 0x7fffffffffffffffL, &o->seed));
  o->data = il_cli_get(cli, "data", "data/mnist");
  o->device = il_cli_get(cli, "device", "cpu");
  if (!il_backend_find(o->device)) {
    if (strcmp(o->device, "cuda") == 0)
      return IL_ERR(IL_ERR_UNSUPPORTED, "--device cuda: this build has no CUDA backend (see README: building with CUDA)");
    return IL_ERR(IL_ERR_ARG, "--device: unknown device '%s' (valid: %s)", o->device, il_backend_names());
  }
  IL_CHECK(il_grid_options(cli, &o->grid_pr, &o->grid_pc, &o->grid_nb));
  snprintf(o->grid_text, sizeof o->grid_text, "%dx%d", o->grid_pr, o->grid_pc);
  o->grid = NULL;
  IL_CHECK(il_cli_int(cli, "max-batches", 0, 1, 1L << 30, &o->max_batches));
  IL_CHECK(il_cli_int(cli, "test-batches", -1, 0, 1L << 30, &o->test_batches));
  /* a grid's ranks run one thread each (Slurm's -c would otherwise refuse every grid run) */
  IL_CHECK(il_cli_int(cli, "threads", o->grid_pr * o->grid_pc > 1 ? 1 : il_default_threads(), 1, 256, &o->threads));
  if (o->grid_pr * o->grid_pc > 1) {
    /* a grid runs on the scalapack backend, whose ranks run the CPU kernels */
    if (strcmp(o->device, "cpu") != 0 && strcmp(o->device, "scalapack") != 0)
      return IL_ERR(IL_ERR_ARG, "--grid %s runs on the scalapack backend (CPU kernels on every rank of the grid); "
                    "--device %s cannot take part in it", o->grid_text, o->device);
    /* the layer's thread team makes one backend per row shard, outside the grid */
    if (o->threads > 1)
      return IL_ERR(IL_ERR_ARG, "--grid %s with --threads %ld: the layer's thread team builds a backend per row "
                    "shard outside the process grid; use --threads 1 with a grid", o->grid_text, o->threads);
    o->device = "scalapack";
  }
  const char *z;
  IL_CHECK(il_cli_choice(cli, "zero-nonconverged", "auto", "auto|yes|no", &z));
  o->zero = strcmp(z, "auto") == 0 ? IL_ZERO_AUTO : strcmp(z, "yes") == 0 ? IL_ZERO_YES : IL_ZERO_NO;
  IL_CHECK(il_cli_int(cli, "adjoint-refine", 3, 0, 100, &o->refine));
  IL_CHECK(il_cli_int(cli, "check-sync", 0, 0, 1L << 40, &o->check_sync));
  IL_CHECK(il_cli_choice(cli, "stop-mode", "abs", "abs|rel|relf", &o->stop_mode));
  IL_CHECK(il_cli_choice(cli, "stop-norm", "frob", "frob|max|mean", &o->stop_norm));
  if (strcmp(o->stop_norm, "frob") != 0 && strcmp(o->stop, "sample") == 0)
    return IL_ERR(IL_ERR_ARG, "--stop-norm %s reduces the batch's rows for --stop batch; --stop sample stops each "
                  "row on its own norm", o->stop_norm);
  IL_CHECK(il_cli_double(cli, "divtol", 0, &o->divtol));
  if (!(o->divtol == 0 || o->divtol > 1))
    return IL_ERR(IL_ERR_ARG, "--divtol: must be 0 (off) or greater than 1, got %g", o->divtol);
  o->best_rule = "off";
  if (il_cli_has(cli, "best")) IL_CHECK(il_cli_choice(cli, "best", "batch", "batch|sample", &o->best_rule));
  o->best = strcmp(o->best_rule, "sample") == 0 ? IL_BEST_SAMPLE : strcmp(o->best_rule, "batch") == 0 ? IL_BEST_BATCH
                                                                                                       : IL_BEST_OFF;
  IL_CHECK(il_cli_choice(cli, "sech2", "stable", "stable|seed", &o->sech2));
  IL_CHECK(il_cli_int(cli, "diag", 0, 0, 1L << 40, &o->diag));
  IL_CHECK(il_cli_double(cli, "jac-reg", 0, &o->jac_reg));
  if (!(o->jac_reg >= 0 && o->jac_reg <= 1e30))
    return IL_ERR(IL_ERR_ARG, "--jac-reg: the weight must be a finite number >= 0 (0: off), got %g", o->jac_reg);
  IL_CHECK(il_cli_int(cli, "jac-reg-samples", 1, 1, 1024, &o->jac_reg_samples));
  IL_CHECK(il_cli_int(cli, "jac-reg-every", 1, 1, 1L << 40, &o->jac_reg_every));
  if (!(o->jac_reg > 0) && (il_cli_has(cli, "jac-reg-samples") || il_cli_has(cli, "jac-reg-every")))
    return IL_ERR(IL_ERR_ARG, "--%s applies only with --jac-reg WEIGHT > 0",
                  il_cli_has(cli, "jac-reg-samples") ? "jac-reg-samples" : "jac-reg-every");
  IL_CHECK(parse_fp_correction(il_cli_get(cli, "fp-correction", "1"), o));
  o->trace = 0;
  if (il_cli_has(cli, "trace")) {
    const char *v = il_cli_get(cli, "trace", "");
    if (il_parse_int(v, "--trace", 1, INT32_MAX, &o->trace) != IL_OK) {
      il_error_clear();
      return IL_ERR(IL_ERR_ARG, "--trace N: N must be a positive integer, the step interval (every N-th training "
                    "step is traced), got '%s'", v);
    }
    if (!il_cli_get(cli, "out", NULL) && !il_cli_get(cli, "resume", NULL)) /* train --resume FILE is an --out */
      return IL_ERR(IL_ERR_ARG, "--trace needs --out FILE: the residuals are written to the results file's trace "
                    "table");
  }
  il_options_init(&o->lopts);
  o->opts_text[0] = '\0';
  const char *const *flags = il_train_layer_option_flags();
  for (int i = 0; flags[i]; i++) {
    const char *key = flags[i], *v = il_cli_get(cli, key, NULL);
    if (!v) continue;
    if (lenient && !il_option_decl_find(so->options, key) && !il_option_decl_find(bo->options, key)) continue;
    IL_CHECK(il_options_set(&o->lopts, key, v));
    size_t used = strlen(o->opts_text);
    snprintf(o->opts_text + used, sizeof o->opts_text - used, "%s%s=%s", used ? "," : "", key, v);
  }
  /* --adjoint-refine tunes only the LU adjoint of implicit backward */
  {
    const char *adj = NULL;
    for (int k = 0; k < o->lopts.count; k++)
      if (strcmp(o->lopts.items[k].key, "adjoint-solver") == 0) adj = o->lopts.items[k].value;
    o->refine_applies = strcmp(bo->name, "implicit") == 0 && (!adj || strcmp(adj, "lu") == 0);
    if (il_cli_has(cli, "adjoint-refine") && !o->refine_applies && !lenient)
      return IL_ERR(IL_ERR_ARG, "--adjoint-refine applies only to --backward implicit with --adjoint-solver lu "
                    "(here: --backward %s%s%s)", o->backward, adj ? " --adjoint-solver " : "", adj ? adj : "");
  }
  /* the pair and its options, judged by building a tiny layer (messages name the option) */
  {
    il_backend *be;
    il_layer L;
    il_real W[4] = {0}; /* never read: creating a layer allocates and computes nothing */
    il_layer_config lc;
    const il_backend_options bo_opts = {.threads = 1};
    IL_CHECK(il_backend_create("cpu", &bo_opts, &be));
    il_train_layer_config(o, &lc);
    il_status s = il_layer_create(&L, &lc, be, 2, W, NULL);
    if (s == IL_OK) il_layer_destroy(&L);
    il_backend_destroy(be);
    if (s != IL_OK) return s;
  }
  o->warm_start = il_cli_has(cli, "warm-start");
  IL_CHECK(il_cli_choice(cli, "w-norm", "none", IL_WNORM_CHOICES, &o->w_norm));
  o->log_steps = il_cli_has(cli, "log-steps");
  o->gpu_map = il_cli_get(cli, "gpu-map", NULL);
  if (o->gpu_map && strncmp(o->device, "cuda", 4) != 0)
    return IL_ERR(IL_ERR_ARG, "--gpu-map applies to --device cuda, not to '%s'", o->device);
  IL_CHECK(il_cli_choice(cli, "allreduce", "auto", "auto|nccl|mpi", &o->allreduce));
  o->log_view = il_cli_has(cli, "log-view");
  o->save_params = il_cli_get(cli, "save-params", NULL);
  o->init_from = il_cli_get(cli, "init-from", NULL);
  o->batch_order = il_cli_get(cli, "batch-order", NULL);
  if (o->init_from && !o->init_from[0]) return IL_ERR(IL_ERR_ARG, "--init-from: empty file name");
  if (o->batch_order && !o->batch_order[0]) return IL_ERR(IL_ERR_ARG, "--batch-order: empty file name");
  o->resume = 0; /* set by the commands that take --resume */
  IL_CHECK(il_cli_int(cli, "checkpoint-every", 0, 0, 1L << 40, &o->checkpoint_every));
  IL_CHECK(il_cli_double(cli, "wait-lock", 0, &o->wait_lock_s));
  if (!(o->wait_lock_s >= 0 && o->wait_lock_s <= 1e7))
    return IL_ERR(IL_ERR_ARG, "--wait-lock: %g is not a number of seconds in [0, 1e7]", o->wait_lock_s);
  o->inject_nan_rank = o->inject_nan_step = -1;
  const char *inj = il_cli_get(cli, "inject-nan", NULL);
  if (inj) {
    const char *colon = strchr(inj, ':');
    if (!colon) return IL_ERR(IL_ERR_ARG, "--inject-nan: '%s' is not RANK:STEP", inj);
    char rk[32];
    snprintf(rk, sizeof rk, "%.*s", (int)(colon - inj), inj);
    IL_CHECK(il_parse_int(rk, "--inject-nan rank", 0, 1 << 20, &o->inject_nan_rank));
    IL_CHECK(il_parse_int(colon + 1, "--inject-nan step", 0, 1L << 40, &o->inject_nan_step));
  }
  return IL_OK;
}

il_status il_grid_options(const il_cli *cli, int *pr, int *pc, long *nb) {
  IL_CHECK(il_grid_parse(il_cli_get(cli, "grid", "1x1"), pr, pc));
  IL_CHECK(il_cli_int(cli, "grid-nb", IL_GRID_NB_DEFAULT, 1, 1 << 20, nb));
  int world = 1, inited = 0;
  MPI_Initialized(&inited); /* the option fuzzer parses without MPI: a world of 1 */
  if (inited) MPI_Comm_size(MPI_COMM_WORLD, &world);
  IL_CHECK(il_grid_check(world, *pr, *pc));
  if (*pr * *pc == 1 && il_cli_has(cli, "grid-nb"))
    return IL_ERR(IL_ERR_ARG, "--grid-nb applies only with a --grid larger than 1x1");
  return IL_OK;
}

il_status il_grid_build(int pr, int pc, long nb, il_grid *g, int *made) {
  *made = 0;
  memset(g, 0, sizeof *g);
  if (pr * pc == 1) return IL_OK;
  IL_CHECK(il_grid_create(MPI_COMM_WORLD, pr, pc, (int)nb, g));
  *made = 1;
  return IL_OK;
}
