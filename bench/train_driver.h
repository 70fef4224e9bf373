/* bench/train_driver.h: one training run of the seed's MNIST model over MPI
 * ranks, shared by `ilbench train` (one run) and `ilbench sweep` (many).
 * Options are parsed in train_options.c, runs happen in train_driver.c. */
#ifndef IL_TRAIN_DRIVER_H
#define IL_TRAIN_DRIVER_H

#include "cli_args.h"
#include "il_dist.h"
#include "il_grid.h"
#include "il_layer.h"
#include "mnist_idx.h"
#include "results_h5.h"

#define IL_TRAIN_MAX_DROPS 16

typedef struct il_train_opts {
  const char *solver, *backward, *data, *device, *stop;
  double tol, lr;
  double eval_tol;         /* --eval-tol: the test pass's tolerance (default --tol) */
  long eval_max_iter;      /* --eval-max-iter (default --max-iter) */
  long max_iter, hidden, epochs, batch, seed, max_batches, test_batches, threads, refine, check_sync;
  long inject_nan_rank, inject_nan_step;
  long checkpoint_every;   /* --checkpoint-every N (0: epoch ends only; checkpoints need --out) */
  double wait_lock_s;      /* --wait-lock SECONDS */
  int resume;              /* continue run_id from its checkpoint (train --resume, sweep --resume) */
  int log_view; /* --log-view */
  int log_steps;
  const char *gpu_map;     /* --gpu-map: GPU per node-local rank (distributed/il_gpu.h), or NULL */
  const char *allreduce;   /* --allreduce auto|nccl|mpi */
  const char *save_params;
  const char *init_from;   /* --init-from FILE: initial parameters in the --save-params format, or NULL */
  const char *batch_order; /* --batch-order FILE: training-sample indices per epoch (train_driver.c), or NULL */
  int zero;
  int ndrops;
  long drop_epoch[IL_TRAIN_MAX_DROPS];
  double drop_lr[IL_TRAIN_MAX_DROPS];
  const char *lr_drop_text;
  /* solver zoo and diagnostics */
  const char *stop_mode, *sech2;
  double divtol;
  int best;                /* il_best_rule of --best */
  const char *best_rule;   /* "off", "batch", "sample" */
  const char *stop_norm;   /* --stop-norm: "frob", "max", "mean" */
  long diag;               /* measure diagnostics every diag steps (0: never) */
  long trace;              /* --trace N: record every N-th training step's residuals (0: off) */
  il_options lopts;        /* per-solver / per-backward options (--anderson-m ...) */
  char opts_text[512];     /* "key=value,..." as recorded in the results */
  int refine_applies;      /* --adjoint-refine means something for this configuration */
  /* Jacobian regularisation (core/il_model.h): weight (0: off), probes per sample, every N steps */
  double jac_reg;
  long jac_reg_samples, jac_reg_every;
  int warm_start;          /* --warm-start: each training sample starts from its last fixed point */
  const char *w_norm;      /* --w-norm none|weight|spectral: W's parameterisation (core/il_wnorm.h) */
  long fpc_k;              /* --fp-correction K[:GAMMA]: K points (1: off) */
  /* --grid PRxPC, --grid-nb: model-parallel groups (distributed/il_grid.h); 1x1: the plain path */
  int grid_pr, grid_pc;
  long grid_nb;
  char grid_text[32];      /* "1x2" */
  const il_grid *grid;     /* set by the command once built (collective), NULL for 1x1 */
  double fpc_gamma;        /* ... and GAMMA, point k's loss weight GAMMA^(K-k) (default 0.8) */
} il_train_opts;

/* The per-solver and per-backward option flags (--fp-tau, --anderson-m, ...), NULL-terminated:
 * the keys the registered solvers and backward modes declare (their `options`), built on first use. */
const char *const *il_train_layer_option_flags(void);
/* The declaration of a per-solver / per-backward option key (first in registry order), or NULL. */
const il_option_decl *il_train_layer_option_decl(const char *key);
/* Append the per-solver / per-backward flags to spec[0..nspec) (see il_cli_add_decls); -1 when full. */
int il_train_add_layer_options(il_cli_spec *spec, int nspec, int cap);

/* Options shared by train and sweep (sweep adds its own): the fixed ones with the registered
 * solvers' and backward modes' declared options among them. Built on first use. */
const il_cli_spec *il_train_spec(int *nspec);

/* Validate every training option; messages name the option. The solver /
 * backward pair and its options are checked by building a tiny layer.
 * lenient = 1 (sweeps): option flags the point's solver and backward do not
 * take are left out instead of being errors. */
il_status il_train_parse(const il_cli *cli, il_train_opts *o);
il_status il_train_parse_ex(const il_cli *cli, il_train_opts *o, int lenient);
/* The implicit layer's configuration from parsed options; cfg->opts points into o. */
void il_train_layer_config(const il_train_opts *o, il_layer_config *cfg);
/* Load and check train and t10k splits (28x28 images). */
il_status il_train_load_data(const char *dir, il_mnist_split *train, il_mnist_split *test);

/* Run one configuration. Collective over d. h5 may be NULL (no results file).
 * Returns 0 when the run completed, 1 when it failed (marked so in the file),
 * 2 when the configuration is invalid for this world (detected identically on
 * every rank before any collective), 128 + signal when SIGTERM/SIGINT stopped
 * it (checkpointed and marked `interrupted`), and aborts the job (MPI_Abort)
 * on a failure inside a collective phase. With o->resume, run_id is continued
 * from its last checkpoint in h5 instead of begun. */
int il_train_run(il_dist *d, const il_train_opts *o, const il_mnist_split *train, const il_mnist_split *test,
                 il_h5_file *h5, const char *run_id, long run_index, const char *log_prefix);

/* --threads' default: SLURM_CPUS_PER_TASK under Slurm, else 1. */
long il_default_threads(void);

#endif
