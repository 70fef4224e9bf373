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
} il_backward_ops;

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
  int keep_best;        /* 1: an unconverged solve returns its lowest-residual iterate */
  int sech2_seed;       /* 1: Newton's Jacobian uses the seed's 1/cosh^2 (see cell_tanh.c) */
  int jac_reg;          /* 1: training steps may call il_layer_jac_reg (its workspace is reserved) */
  il_options *opts;     /* solver/backward options; unknown keys are errors */
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
/* dout (B, n) -> dx (B, n) += ..., dW (n, n) += ... (space tensors) */
il_status il_layer_backward(il_layer *L, const il_real *dout, il_real *dx, il_real *dW);
void il_layer_destroy(il_layer *L);
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
