/* core/il_layer.h: an implicit layer = a cell (what is computed) + a forward
 * solver (how z* is found) + a backward mode (how gradients are formed), each
 * chosen by name. Backward modes are registered like solvers. */
#ifndef IL_LAYER_H
#define IL_LAYER_H

#include "il_arena.h"
#include "il_cell.h"
#include "il_diag.h"
#include "il_options.h"
#include "il_solver.h"

typedef struct il_layer il_layer;
typedef struct il_layer_team il_layer_team; /* row shards on threads (il_layer_team.c) */

/* What a backward mode works on: the adjoint problem at the forward's z*.
 * Tensors are in be's space; zeroed has a host twin for host-side decisions. */
typedef struct il_adjoint {
  const il_cell *cell;
  const il_backend *be;
  int B;
  const il_real *x;              /* (B, n) the layer input */
  const il_real *zstar;          /* (B, n) the solver's z*, zeroed rows already 0 */
  const unsigned char *zeroed;   /* (B) rows zeroed as non-converged (space): they carry no gradient */
  const unsigned char *hzeroed;  /* (B) the same on the host */
  il_arena *ws, *hws;            /* workspace (space, host), rewound by each op */
  il_arena *saved, *hsaved;      /* training forward: state kept for backward; NULL in inference */
  il_reducer reduce;             /* sums over cooperating processes (stopping tests stay global) */
  const il_lu *lu;               /* reusable factors of J near z* (the solver's last Newton step), or NULL */
  int diag;                      /* this step measures diagnostics (condition estimates) */
  int adjoint_refine;            /* lu adjoint: max refinement steps against J(z*), 0: none */
  int fwd_iters;                 /* iterations of the forward solve */
  /* the forward solve, for backward modes that replay it (unroll) */
  const struct il_solver_ops *sops;
  void *sstate;
  const il_problem *fprob;
  il_trace *trace;               /* non-NULL: record the backward's residuals here (--trace) */
} il_adjoint;

typedef struct il_backward_ops {
  const char *name;
  const char *summary;
  int needs_tape; /* the solver must record its iterations */
  /* Optional: consume this mode's options into *state; *keep_lu = 1 asks the solver to keep its
   * last LU for reuse. NULL: no options, no state. */
  il_status (*create)(il_options *opt, void **state, int *keep_lu);
  void (*destroy)(void *state);
  /* Upper bound of the space workspace bytes of finish_forward and backward at batch B. */
  size_t (*ws_bytes)(void *state, const il_cell *c, int B);
  /* out (B, n): the layer output from a->zstar */
  il_status (*finish_forward)(void *state, const il_adjoint *a, il_real *out);
  /* dout (B, n) -> dx (B, n, accumulated), dtheta (accumulated); fills bres and *nan_iter
   * (where the cotangent first went non-finite, -1 if it did not). */
  il_status (*backward)(void *state, const il_adjoint *a, const il_real *dout, il_real *dx, il_real *dtheta,
                        il_solve_result *bres, int *nan_iter);
  /* The options it consumes, with help and defaults (the CLI builds its flags from these);
   * NULL-terminated (key == NULL), or NULL for none. */
  const il_option_decl *options;
  /* Fixed-point correction (il_layer_correction.c): the damped steps (count, tau) that make each
   * intermediate point's output under this mode; NULL: the mode takes no correction terms. */
  void (*corr_steps)(void *state, int *steps, double *tau);
  int zstar_detached; /* the gradient holds z* constant (phantom, jfb): a gradient check holds it too */
  /* Optional (--trace): the most residuals one backward records into a->trace, and in *solver
   * the name of what iterates ("unroll", or the adjoint solver). NULL: it records none (it
   * solves no system: phantom, jfb). */
  int (*trace_info)(void *state, int fwd_max_iter, int adjoint_refine, const char **solver);
} il_backward_ops;

/* Damped steps z_{i+1} = (1 - tau) z_i + tau f(z_i), i < K, from a z_0 held constant, and their
 * backprop (backward_phantom.c): the machinery of phantom:K and jfb, which fixed-point correction
 * applies to its intermediate points too. */
typedef struct il_phantom_tape {
  int K;
  double tau;
  const il_real **z, **f; /* host (K): z_i and f(z_i), in saved memory; NULL: nothing kept */
} il_phantom_tape;
#define il_phantom_steps IL_P(il_phantom_steps)
#define il_phantom_steps_backward IL_P(il_phantom_steps_backward)
/* out (B, n) = z_K from z0 (B, n). saved != NULL (training): the steps are kept in saved/hsaved and
 * listed in tape; NULL: they live in ws and are released. */
il_status il_phantom_steps(const il_cell *c, int B, const il_real *x, const il_real *z0, int K, double tau,
                           il_arena *saved, il_arena *hsaved, il_arena *ws, il_phantom_tape *tape, il_real *out);
/* dout (B, n) on z_K -> dx += ..., dW += ...; rows with zeroed (B, space) set carry nothing. *nan_iter: the
 * step whose cotangent first went non-finite, -1 if none. */
il_status il_phantom_steps_backward(const il_phantom_tape *tape, const il_cell *c, int B,
                                    const unsigned char *zeroed, il_arena *ws, const il_real *dout, il_real *dx,
                                    il_real *dW, int *nan_iter);

#define il_backward_find IL_P(il_backward_find)
#define il_backward_names IL_P(il_backward_names)
#define il_backward_at IL_P(il_backward_at)
#define il_backward_unroll_ops IL_P(il_backward_unroll_ops)
#define il_backward_implicit_ops IL_P(il_backward_implicit_ops)
#define il_backward_phantom_ops IL_P(il_backward_phantom_ops)
#define il_backward_jfb_ops IL_P(il_backward_jfb_ops)
/* `name` may carry an argument after ':' ("phantom:5"); it is matched on the part before. */
const il_backward_ops *il_backward_find(const char *name);
const char *il_backward_names(void);
/* The i-th registered backward mode (registry order), or NULL when i is out of range. */
const il_backward_ops *il_backward_at(int i);
extern const il_backward_ops il_backward_unroll_ops;
extern const il_backward_ops il_backward_implicit_ops;
extern const il_backward_ops il_backward_phantom_ops;
extern const il_backward_ops il_backward_jfb_ops;


/* Per-step diagnostics of the layer (--diag), NaN where not measured. */
typedef struct il_layer_diag {
  double rho_max, rho_mean; /* power-iteration spectral radius of df/dz at z* over the batch */
  int rho_samples;          /* rows it was measured on */
  double cond_max;          /* largest LU condition estimate (inf-norm) of the step, forward and backward */
  double grad_cos, grad_relerr; /* layer gradient (dx, dW) against the exact IFT gradient at z* */
  double preact_max;        /* Newton solvers: largest |W z + x| where a Jacobian was built */
} il_layer_diag;

enum { IL_ZERO_AUTO = 0, IL_ZERO_YES = 1, IL_ZERO_NO = 2 };

typedef struct il_layer_config {
  const char *cell;     /* "tanh" (NULL: tanh), "relu", ... */
  const char *solver;   /* "fp", "newton", ... */
  const char *backward; /* "unroll", "implicit", ... */
  double tol;           /* > 0 */
  int max_iter;         /* <= 0: the solver's default (fp 200, newton 40) */
  /* evaluation forwards (train = 0): their own tolerance and iteration limit, as DEQ papers
   * evaluate with more (or fewer) iterations than they train with; <= 0: the training values */
  double eval_tol;
  int eval_max_iter;
  /* IL_ZERO_AUTO (0): zero Newton's non-converged rows, as the seed's TanhNewtonLayer does.
   * The seed's implicit layer skips this; we do not, because the IFT gradient of a row
   * that is not at a fixed point is meaningless and, in float32 training, a few such
   * rows per epoch were enough to set training back (README: semantics). */
  int zero_nonconverged; /* IL_ZERO_AUTO, IL_ZERO_YES, IL_ZERO_NO */
  int adjoint_refine;   /* implicit: max refinement steps of the adjoint solve against J(z*);
                           0: default (3); negative: none, plain reuse of the last Newton LU, as the seed */
  int stop_per_sample;  /* 0: batch norm (the seed), 1: each row on its own (see il_problem) */
  int stop_rel;         /* 1: tol is relative to the first residual (--stop-mode rel) */
  double divtol;        /* > 0: diverged when residual > divtol * first residual; 0: off */
  int keep_best;        /* il_best_rule: 1 (batch) an unconverged solve returns its lowest-residual iterate;
                           2 (sample) each row returns its own lowest-residual iterate (TorchDEQ) */
  int stop_norm;        /* il_stop_norm_kind: how batch stopping reduces the rows (0: Frobenius, the seed) */
  int stop_relf;        /* 1: each row's residual relative to ||f(z_b)|| (--stop-mode relf, TorchDEQ's rel) */
  int sech2_seed;       /* 1: Newton's Jacobian uses the seed's 1/cosh^2 (see cell_tanh.c) */
  int jac_reg;          /* 1: training steps may call il_layer_jac_reg (its workspace is reserved) */
  il_options *opts;     /* solver/backward options; unknown keys are errors */
  int fp_correction;    /* fixed-point correction: K points, 2..100 (il_layer_correction.c); 0 or 1: off */
} il_layer_config;

struct il_layer {
  il_cell cell;
  const il_backend *be;
  const il_solver_ops *sops;
  void *sstate;
  const il_backward_ops *bops;
  il_options opts; /* a copy of cfg.opts, consumed by the solver and the backward mode */
  void *bstate;   /* the backward mode's own state (options) */
  int keep_lu;    /* the backward mode reuses the solver's last LU */
  il_layer_config cfg;
  int zero_rows;
  il_arena saved, hsaved; /* saved-for-backward (space, host), reset at each forward */
  il_arena ws, hws;       /* solver and kernel workspace (space, host) */
  size_t ws_reserve;      /* the space workspace sized up front (solver + backward + cell), bytes */
  il_problem prob;
  il_adjoint adj;
  /* state of the current step */
  int B;
  int train;
  il_real *zstar;        /* (B, n) in `saved` */
  double *row_res;       /* host (B) */
  unsigned char *zeroed; /* host (B) rows zeroed as non-converged */
  unsigned char *zeroed_d; /* (B) the same in the space */
  il_solve_result fres;  /* forward solve */
  il_solve_result bres;  /* backward solve (LU: iters 1, residual of the adjoint system) */
  int bwd_nan_iter;      /* backward: step/iteration where the layer's cotangent first went non-finite, -1 */
  int diag_now;          /* set by the caller before forward: measure diagnostics on this step */
  il_layer_diag diag;
  double diag_cmp[4];    /* with diag_now: the mode's gradient against the exact one (backend compare) */
  il_layer_team *team;   /* NULL: the ops thread themselves (or one thread) */
  /* fixed-point correction, with cfg.fp_correction = K > 1 (il_layer_correction.c) */
  int corr_K;            /* K; 1: off */
  int corr_steps;        /* damped steps from each intermediate point, and their tau (the backward mode's) */
  double corr_tau;
  il_corr_points corr_points; /* the training solve's kept iterates */
  int corr_M;            /* checks of the last training solve (the largest over processes with per-sample stops) */
  int *corr_j;           /* host (K-1): point k's check j_k (M: z* itself) */
  const il_real **corr_pt; /* host (K-1): the points, in `saved` */
  il_phantom_tape *corr_tape; /* host (K-1): their steps */
  /* --trace (il_layer_trace_init): with trace_now set by the caller, a training forward and its
   * backward record every residual they check (host memory, sized once) */
  int trace_now;
  il_trace ftrace, btrace;
  const char *btrace_solver; /* what the backward iterates ("unroll", "lu", ...), NULL: nothing */
  void *trace_mem;           /* the traces' arrays (with a team, shard 0's arrays are shown instead) */
};

#define il_layer_create IL_P(il_layer_create)
#define il_layer_forward IL_P(il_layer_forward)
#define il_layer_forward_from IL_P(il_layer_forward_from)
#define il_layer_backward IL_P(il_layer_backward)
#define il_layer_destroy IL_P(il_layer_destroy)

/* W (the cell's ntheta parameters, in be's space) is owned by the caller. Validates names and options. */
il_status il_layer_create(il_layer *L, const il_layer_config *cfg, const il_backend *be, int n, const il_real *W,
                          il_memstats *stats);
/* x (B, n) must stay valid until backward. out (B, n). train = 1 keeps what backward needs.
 * z0: NULL, or a (B, n) starting iterate for the solver (warm start). All in be's space. */
il_status il_layer_forward(il_layer *L, int B, const il_real *x, il_real *out, int train);
il_status il_layer_forward_from(il_layer *L, int B, const il_real *x, const il_real *z0, il_real *out, int train);
#define il_layer_cold_start IL_P(il_layer_cold_start)
#define il_layer_get_zstar IL_P(il_layer_get_zstar)
/* The rows b of z (B, n) with rows[b] != 0 (host (B)) get the solver's own start for x (B, n):
 * what it starts from without a warm start (0, or f(0) for Newton); the others are kept. */
il_status il_layer_cold_start(il_layer *L, int B, const il_real *x, const unsigned char *rows, il_real *z);
/* dst (B, n) = the last forward's z* (rows zeroed as non-converged are 0). Space tensors. */
il_status il_layer_get_zstar(const il_layer *L, il_real *dst);
/* dout (B, n) -> dx (B, n) += ..., dW (n, n) += ... (space tensors) */
il_status il_layer_backward(il_layer *L, const il_real *dout, il_real *dx, il_real *dW);

/* Fixed-point correction (cfg.fp_correction = K > 1; definition in il_layer_correction.c): a training
 * forward also writes the outputs y_1 .. y_{K-1} of K-1 intermediate iterates into corr[0 .. K-2]
 * (each (B, n), the caller's); inference forwards and K = 1 ignore corr (it may be NULL then). */
#define il_layer_forward_corr IL_P(il_layer_forward_corr)
#define il_layer_backward_corr IL_P(il_layer_backward_corr)
#define il_layer_eval_held IL_P(il_layer_eval_held)
#define il_corr_index IL_P(il_corr_index)
il_status il_layer_forward_corr(il_layer *L, int B, const il_real *x, const il_real *z0, il_real *out,
                                il_real *const *corr, int train);
/* As il_layer_backward, plus the cotangents dcorr[k] (B, n) on y_{k+1} (dcorr may be NULL: none). */
il_status il_layer_backward_corr(il_layer *L, const il_real *dout, const il_real *const *dcorr, il_real *dx,
                                 il_real *dW);
/* For gradient checks (one thread): the outputs after the last training forward at a new x (B, n) or W,
 * with what that forward held constant held again: the intermediate points, and z* where the backward
 * mode detaches it (phantom, jfb); otherwise z* is solved again. Any number of times after backward. */
il_status il_layer_eval_held(il_layer *L, const il_real *x, il_real *out, il_real *const *corr);
/* Point k's check j_k (1 <= k < K) in a solve of M checks: j_k = M is z* itself. */
int il_corr_index(int M, int K, int k);
void il_layer_destroy(il_layer *L);
#define il_layer_trace_init IL_P(il_layer_trace_init)
/* Room for the residual traces (--trace): forward max_iter + 1 checks (Newton also checks its
 * start), and what the backward mode's trace_info says. With a thread team every shard records
 * (their reductions meet) and L's traces show shard 0's: the batch residual is the same in all. */
il_status il_layer_trace_init(il_layer *L);
#define il_layer_ws_bytes IL_P(il_layer_ws_bytes)
#define il_layer_reserve IL_P(il_layer_reserve)
/* Space workspace bytes a forward + backward at batch B takes (upper bound). */
size_t il_layer_ws_bytes(const il_layer *L, int B);
/* Size the workspace arena once for batches up to max_B, so no solve grows it. */
il_status il_layer_reserve(il_layer *L, int max_B);
#define il_layer_grad_diag IL_P(il_layer_grad_diag)
/* grad_cos and grad_relerr from {g.e, g.g, e.e, (g-e).(g-e)} of the mode's and the exact gradient. */
void il_layer_grad_diag(il_layer *L, const double cmp[4]);
#define il_layer_jac_reg IL_P(il_layer_jac_reg)
/* The Jacobian regulariser at the last training forward's z*, held fixed (the gradient the DEQ
 * papers and TorchDEQ take): for the K probes eps_k = eps + k * kstride, each (B, n) in the space,
 * host *sq = sum over k and the rows not zeroed of ||eps_kb^T (df/dz)(z*_b)||^2; with dx or dW
 * (either may be NULL) also dx (B, n) += scale * d(*sq)/dx and dW += scale * d(*sq)/dW.
 * Needs cfg.jac_reg; call it after the forward, before the next one. */
il_status il_layer_jac_reg(il_layer *L, int K, const il_real *eps, size_t kstride, il_real scale, il_real *dx,
                           il_real *dW, double *sq);
#define il_layer_set_reducer IL_P(il_layer_set_reducer)
/* Make the solvers' stopping test global: r.sum adds a local double over all
 * cooperating processes (the batch is sharded across them). */
void il_layer_set_reducer(il_layer *L, il_reducer r);

#endif
