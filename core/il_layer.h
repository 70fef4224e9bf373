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

typedef struct il_backward_ops {
  const char *name;
  const char *summary;
  int needs_tape; /* the solver must record its iterations */
  const char *option_keys; /* comma list of the option keys it consumes ("" for none) */
  /* Optional: consume this mode's options, set L->bstate and L->keep_lu (ask the
   * solver to keep its last LU for reuse). NULL: no options, no state. */
  il_status (*create)(il_layer *L, il_options *opt);
  void (*destroy)(il_layer *L);
  /* out (B, n): the layer output from the solver's z* (masked rows already zeroed in z*) */
  il_status (*finish_forward)(il_layer *L, const il_real *zstar, il_real *out);
  /* dout (B, n) -> dx (B, n, accumulated), dtheta (accumulated); fills L->bres */
  il_status (*backward)(il_layer *L, const il_real *dout, il_real *dx, il_real *dtheta);
} il_backward_ops;

#define il_backward_find IL_P(il_backward_find)
#define il_backward_names IL_P(il_backward_names)
#define il_backward_unroll_ops IL_P(il_backward_unroll_ops)
#define il_backward_implicit_ops IL_P(il_backward_implicit_ops)
#define il_backward_phantom_ops IL_P(il_backward_phantom_ops)
#define il_backward_jfb_ops IL_P(il_backward_jfb_ops)
/* `name` may carry an argument after ':' ("phantom:5"); it is matched on the part before. */
const il_backward_ops *il_backward_find(const char *name);
const char *il_backward_names(void);
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
  const char *solver;   /* "fp", "newton", ... */
  const char *backward; /* "unroll", "implicit", ... */
  double tol;           /* > 0 */
  int max_iter;         /* <= 0: the solver's default (fp 200, newton 40) */
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
  il_options *opts;     /* solver/backward options; unknown keys are errors */
} il_layer_config;

struct il_layer {
  il_cell cell;
  const il_solver_ops *sops;
  void *sstate;
  const il_backward_ops *bops;
  il_options opts; /* a copy of cfg.opts, consumed by the solver and the backward mode */
  void *bstate;   /* the backward mode's own state (options) */
  int keep_lu;    /* the backward mode reuses the solver's last LU */
  il_layer_config cfg;
  int zero_rows;
  il_arena saved; /* saved-for-backward, reset at each forward */
  il_arena ws;    /* solver and kernel workspace */
  il_problem prob;
  /* state of the current step */
  int B;
  int train;
  il_real *zstar, *out; /* (B, n) in `saved` */
  double *row_res;      /* (B) */
  unsigned char *zeroed; /* (B) rows zeroed as non-converged */
  il_solve_result fres;  /* forward solve */
  il_solve_result bres;  /* backward solve (LU: iters 1, residual of the adjoint system) */
  int bwd_nan_iter;      /* backward: step/iteration where the layer's cotangent first went non-finite, -1 */
  int diag_now;          /* set by the caller before forward: measure diagnostics on this step */
  il_layer_diag diag;
};

#define il_layer_create IL_P(il_layer_create)
#define il_layer_forward IL_P(il_layer_forward)
#define il_layer_backward IL_P(il_layer_backward)
#define il_layer_destroy IL_P(il_layer_destroy)

/* W (n, n) is the cell's weight, owned by the caller. Validates names and options. */
il_status il_layer_create(il_layer *L, const il_layer_config *cfg, const il_backend *be, int n, const il_real *W,
                          il_memstats *stats);
/* x (B, n) must stay valid until backward. out (B, n). train = 1 keeps what backward needs. */
il_status il_layer_forward(il_layer *L, int B, const il_real *x, il_real *out, int train);
/* dout (B, n) -> dx (B, n) += ..., dW (n, n) += ... */
il_status il_layer_backward(il_layer *L, const il_real *dout, il_real *dx, il_real *dW);
void il_layer_destroy(il_layer *L);
#define il_layer_set_reducer IL_P(il_layer_set_reducer)
/* Make the solvers' stopping test global: r.sum adds a local double over all
 * cooperating processes (the batch is sharded across them). */
void il_layer_set_reducer(il_layer *L, il_reducer r);

#endif
