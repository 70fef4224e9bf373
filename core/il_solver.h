/* core/il_solver.h: forward solvers for z = f(z), found by name at run time.
 * A solver is a name plus an ops table (PETSc SNES style); one file each in
 * core/solvers/ plus one line in solver_registry.c. A solver never knows which
 * cell it solves. */
#ifndef IL_SOLVER_H
#define IL_SOLVER_H

#include "il_arena.h"
#include "il_cell.h"
#include "il_options.h"
#include "il_prec.h"
#include "il_status.h"

typedef enum il_reason {
  IL_REASON_CONVERGED = 0,
  IL_REASON_MAX_ITER = 1,
  IL_REASON_DIVERGED = 2,
  IL_REASON_NONFINITE = 3,
} il_reason;
const char *il_reason_name(il_reason r);

typedef struct il_solve_result {
  int iters;            /* solver iterations (map evaluations for fp, Newton steps for newton) */
  double residual;      /* final value of the stopping test's norm */
  il_reason reason;
  int nonconverged_rows; /* rows whose own residual norm exceeds tol at the output */
} il_solve_result;

/* Sum a local double over all cooperating processes (the MPI layer supplies
 * this; NULL means a single process). Keeps the stopping test independent of
 * how the batch is sharded. */
typedef struct il_reducer {
  double (*sum)(void *ctx, double local);
  void *ctx;
} il_reducer;

/* One batch to solve. */
typedef struct il_problem {
  const il_cell *cell;
  int B;
  const il_real *x;   /* (B, n) */
  double tol;         /* stop when ||residual||_F of the batch < tol */
  int max_iter;
  il_arena *ws;       /* scratch, rewound by the solver before it returns */
  il_arena *saved;    /* non-NULL: record the tape for unrolled backward here */
  il_arena *keep;     /* non-NULL: keep the last LU factors here for implicit backward */
  il_reducer reduce;
  /* 0: stop when the whole batch's residual norm < tol (the seed; global over
   * ranks through `reduce`). 1: each row stops on its own row norm < tol and is
   * frozen from then on; no communication, iterations differ per rank. */
  int per_sample;
} il_problem;

typedef struct il_solver_ops {
  const char *name;
  const char *summary;
  int default_max_iter;
  il_status (*create)(il_options *opt, void **state);
  /* z (B, n): output z*. row_res (B): per-row residual norm at the last check. */
  il_status (*solve)(void *state, const il_problem *p, il_real *z, double *row_res, il_solve_result *res);
  /* Backprop dz (B, n) through the recorded iterations: dx += ..., dtheta += ...
   * NULL when the solver cannot be unrolled. */
  il_status (*unroll_backward)(void *state, const il_problem *p, const il_real *dz, il_real *dx,
                               il_real *dtheta);
  /* LU factors of the residual Jacobian from the last step, kept in p->keep; NULL if never kept. */
  il_status (*last_lu)(void *state, const il_real **lu, const int **ipiv);
  void (*destroy)(void *state);
} il_solver_ops;

#define il_solver_find IL_P(il_solver_find)
#define il_solver_names IL_P(il_solver_names)
#define il_solver_fp_ops IL_P(il_solver_fp_ops)
#define il_solver_newton_ops IL_P(il_solver_newton_ops)

const il_solver_ops *il_solver_find(const char *name);
/* "fp, newton, ..." for error messages */
const char *il_solver_names(void);

extern const il_solver_ops il_solver_fp_ops;
extern const il_solver_ops il_solver_newton_ops;

/* Batch residual norm through the reducer: sqrt(sum over ranks of local squared sum). */
static inline double il_problem_norm(const il_problem *p, double local_sq) {
  double s = p->reduce.sum ? p->reduce.sum(p->reduce.ctx, local_sq) : local_sq;
  return s >= 0 ? __builtin_sqrt(s) : s;
}

#endif
