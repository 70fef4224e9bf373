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
  double residual;      /* final value of the stopping test's norm (p->stop_norm of the rows' values) */
  il_reason reason;
  int nonconverged_rows; /* rows whose own residual norm exceeds tol_abs at the output */
  double tol_abs;       /* the threshold used (tol, or tol * initial residual with stop_rel) */
  int nonfinite_iter;   /* iteration at which a non-finite value first appeared, -1 if none */
  double cond_max;      /* with p->diag: largest LU condition estimate (inf-norm) of the solve, NaN if no LU */
  double preact_max;    /* with p->diag, Newton solvers: largest |pre-activation| where a Jacobian was built */
} il_solve_result;

/* Reductions over all cooperating processes (the distributed layer supplies
 * them; NULL members mean a single process). Keeps the stopping test
 * independent of how the batch is sharded. A model-parallel run supplies a
 * two-level reducer (inside its process grid, then across data-parallel groups)
 * behind the same members; core never sees MPI. */
typedef enum il_reduce_op { IL_REDUCE_SUM = 0, IL_REDUCE_MAX = 1 } il_reduce_op;
typedef struct il_reducer {
  double (*sum)(void *ctx, double local);
  double (*max)(void *ctx, double local); /* a NaN on any process gives NaN */
  /* In place over n host doubles; returns IL_OK or an error status. */
  il_status (*allreduce)(void *ctx, double *buf, int n, il_reduce_op op);
  void *ctx;
} il_reducer;

typedef struct il_corr_points il_corr_points; /* iterates kept for fixed-point correction (below) */

/* The residuals one solve checked, in host memory (--trace). Sized before the solve
 * and never grown inside it: a check that finds it full only counts in `lost`. */
typedef struct il_trace {
  int *iter;   /* (cap) the solve's iteration count when the residual was checked */
  double *res; /* (cap) that residual, the norm the solve's stopping test uses */
  int n, cap;
  int lost;    /* checks that found it full (0 when sized right) */
} il_trace;
static inline void il_trace_add(il_trace *t, int iter, double res) {
  if (!t) return;
  if (t->n >= t->cap) {
    t->lost++;
    return;
  }
  t->iter[t->n] = iter;
  t->res[t->n++] = res;
}

/* One batch to solve. Tensors (x, z0, the solvers' iterates) live in be's
 * space and are touched only through its ops; per-row scalars and flags that
 * steer control flow live in host arenas. */
typedef struct il_problem {
  const il_cell *cell;
  const il_backend *be; /* where the solve runs (the cell computes on the same backend) */
  int B;
  const il_real *x;   /* (B, n) */
  const il_real *z0;  /* (B, n) starting iterate (warm start), or NULL: the solver's own start */
  double tol;         /* stop when ||residual||_F of the batch < tol */
  int max_iter;
  il_arena *ws;       /* space scratch, rewound by the solver before it returns */
  il_arena *hws;      /* host scratch, the same */
  il_arena *saved;    /* non-NULL: record the tape for unrolled backward here (space) ... */
  il_arena *hsaved;   /* ... and its host bookkeeping here */
  il_arena *keep;     /* non-NULL: keep the last LU factors here for implicit backward (space) */
  il_reducer reduce;
  /* 0: stop when the whole batch's residual norm < tol (the seed; global over
   * ranks through `reduce`). 1: each row stops on its own row norm < tol and is
   * frozen from then on; no communication, iterations differ per rank. */
  int per_sample;
  int stop_rel;       /* 1: stop when residual < tol * (first residual), PETSc's rtol */
  double divtol;      /* > 0: diverged when residual > divtol * (first residual) */
  int keep_best;      /* il_best_rule: IL_BEST_BATCH (1), IL_BEST_SAMPLE (2), 0: off */
  /* Batch stopping: how the rows' values (il_stop_row) make the batch residual (il_stop_norm).
   * Per-sample stopping ignores it: each row is judged on its own value. */
  int stop_norm;      /* il_stop_norm_kind: IL_STOP_FROB (0, the seed), IL_STOP_MAX, IL_STOP_MEAN */
  int stop_relf;      /* 1: a row's value is ||z_b - f_b|| / (||f_b|| + 1e-9), TorchDEQ's rel */
  int diag;           /* 1: fill cond_max (condition estimates of every LU) */
  il_trace *trace;    /* non-NULL: il_stop_judge appends every residual it checks here */
  il_corr_points *corr; /* non-NULL: keep checked iterates for fixed-point correction (solver_corr_points.c) */
} il_problem;

/* The batch residual from the rows' values v_b (il_stop_row), over every row of every process:
 * frob: sqrt(sum v_b^2), the seed's Frobenius norm; max: max v_b, TorchDEQ's test; mean: sum v_b / B. */
typedef enum il_stop_norm_kind { IL_STOP_FROB = 0, IL_STOP_MAX = 1, IL_STOP_MEAN = 2 } il_stop_norm_kind;
/* --best: the batch's lowest-residual iterate when unconverged, or each row's own lowest one (TorchDEQ). */
typedef enum il_best_rule { IL_BEST_OFF = 0, IL_BEST_BATCH = 1, IL_BEST_SAMPLE = 2 } il_best_rule;
#define IL_STOP_RELF_EPS 1e-9 /* TorchDEQ's guard of ||f_b|| */

/* Marks on both scratch arenas of a problem, rewound together. */
typedef struct il_marks {
  il_arena_mark d, h;
} il_marks;
static inline il_marks il_marks_get(il_arena *ws, il_arena *hws) {
  return (il_marks){il_arena_get_mark(ws), il_arena_get_mark(hws)};
}
static inline void il_marks_rewind(il_arena *ws, il_arena *hws, il_marks m) {
  il_arena_rewind(ws, m.d);
  il_arena_rewind(hws, m.h);
}

typedef struct il_solver_ops {
  const char *name;
  const char *summary;
  int default_max_iter;
  int zero_default;   /* zero non-converged rows by default (the seed's Newton layers do) */
  int per_sample_ok;  /* supports p->per_sample */
  il_status (*create)(il_options *opt, void **state);
  /* Upper bound of the space workspace (p->ws) bytes a solve of B rows of size n takes, with
   * (taped = 1) or without a tape, so that the arena is sized once. Host scratch is not counted. */
  size_t (*ws_bytes)(void *state, const il_cell *c, int B, int max_iter, int taped);
  /* z (B, n): output z*. row_res (host, B): per-row residual norm at the last check. */
  il_status (*solve)(void *state, const il_problem *p, il_real *z, double *row_res, il_solve_result *res);
  /* Backprop dz (B, n) through the recorded iterations: dx += ..., dtheta += ...
   * NULL when the solver cannot be unrolled. */
  il_status (*unroll_backward)(void *state, const il_problem *p, const il_real *dz, il_real *dx,
                               il_real *dtheta);
  /* After unroll_backward: the first forward iteration whose cotangent became non-finite
   * (-1 if none); NULL when the solver does not track it. */
  int (*unroll_nan_step)(void *state);
  /* LU factors of the residual Jacobian from the last step, kept in p->keep; NULL if never kept. */
  il_status (*last_lu)(void *state, const il_lu **lu);
  void (*destroy)(void *state);
  /* The options it consumes, with help and defaults (the CLI builds its flags from these);
   * NULL-terminated (key == NULL), or NULL for none. */
  const il_option_decl *options;
  /* z (B, n) = the iterate the solver starts from when p->z0 is NULL (what a warm start
   * replaces); NULL: z = 0. Uses p->cell, p->x, p->B and the scratch arenas. */
  il_status (*start)(void *state, const il_problem *p, il_real *z);
} il_solver_ops;

#define il_solver_find IL_P(il_solver_find)
#define il_solver_names IL_P(il_solver_names)
#define il_solver_at IL_P(il_solver_at)
#define il_solver_fp_ops IL_P(il_solver_fp_ops)
#define il_solver_newton_ops IL_P(il_solver_newton_ops)
#define il_solver_newton_ls_ops IL_P(il_solver_newton_ls_ops)
#define il_solver_anderson_ops IL_P(il_solver_anderson_ops)
#define il_solver_broyden_ops IL_P(il_solver_broyden_ops)
#define il_stop_begin IL_P(il_stop_begin)
#define il_stop_check IL_P(il_stop_check)
#define il_stop_judge IL_P(il_stop_judge)
#define il_stop_norm IL_P(il_stop_norm)
#define il_stop_local IL_P(il_stop_local)
#define il_stop_norm_name IL_P(il_stop_norm_name)
#define il_trace_vec IL_P(il_trace_vec)
#define il_best_init IL_P(il_best_init)
#define il_best_offer IL_P(il_best_offer)
#define il_best_restore IL_P(il_best_restore)
#define il_solve_finish IL_P(il_solve_finish)

const il_solver_ops *il_solver_find(const char *name);
/* "fp, newton, ..." for error messages */
const char *il_solver_names(void);
/* The i-th registered solver (registry order), or NULL when i is out of range. */
const il_solver_ops *il_solver_at(int i);

extern const il_solver_ops il_solver_fp_ops;
extern const il_solver_ops il_solver_newton_ops;
extern const il_solver_ops il_solver_newton_ls_ops;
extern const il_solver_ops il_solver_anderson_ops;
extern const il_solver_ops il_solver_broyden_ops;

/* Batch residual norm through the reducer: sqrt(sum over ranks of local squared sum). */
static inline double il_problem_norm(const il_problem *p, double local_sq) {
  double s = p->reduce.sum ? p->reduce.sum(p->reduce.ctx, local_sq) : local_sq;
  return s >= 0 ? __builtin_sqrt(s) : s;
}

/* Stopping as PETSc's SNES does it, shared by every solver (core/solvers/solver_stop.c).
 * Every check of the batch residual goes through il_stop_check, with err from il_stop_norm. */
typedef struct il_stop {
  double r0;   /* first residual checked */
  int nchecks;
} il_stop;
/* Reset res (iters 0, reason max-iter, residual inf, ...) and st. */
void il_stop_begin(il_stop *st, il_solve_result *res);
/* Record the residual `err` checked at iteration `iter`: sets res->residual and
 * res->tol_abs, and returns 1 with res->reason set when the solve must end:
 * non-finite (res->nonfinite_iter = iter), converged (err < tol_abs), or
 * diverged (err > divtol * r0). Max-iter is the caller's loop bound. */
int il_stop_check(il_stop *st, const il_problem *p, double err, int iter, il_solve_result *res);
/* The same with convergence decided by the caller (per-sample stopping: every row below tol).
 * With p->trace, err is appended there with res->iters as its iteration. */
int il_stop_judge(il_stop *st, const il_problem *p, double err, int converged, int iter, il_solve_result *res);
/* With p->trace: append the batch norm of v (B, n), reduced over processes as the stopping test
 * is (local with per-sample stopping), as iteration iter. Unrolled backward records its cotangents
 * with it. A sync point; nothing happens without p->trace. */
il_status il_trace_vec(const il_problem *p, const il_real *v, int iter);

/* One row's value of the stopping test from r2 = ||z_b - f_b||^2 and f2 = ||f_b||^2 (read only
 * with p->stop_relf): ||z_b - f_b||, or with stop_relf ||z_b - f_b|| / (||f_b|| + 1e-9). */
static inline double il_stop_row(const il_problem *p, double r2, double f2) {
  const double r = __builtin_sqrt(r2);
  return p->stop_relf ? r / (__builtin_sqrt(f2) + IL_STOP_RELF_EPS) : r;
}
/* The batch residual of one check (p->stop_norm of the rows' values over all processes, through
 * p->reduce: every process calls it). rows (host, B): ||z_b - f_b||^2; frows (host, B): ||f_b||^2,
 * needed with p->stop_relf, else NULL. A NaN in any row gives NaN. */
double il_stop_norm(const il_problem *p, const double *rows, const double *frows);
/* Per-sample stopping (no communication): sqrt(sum of v_b^2) over the rows with active[b] != 0
 * (active NULL: all), the norm of this step over the rows that moved. */
double il_stop_local(const il_problem *p, const double *rows, const double *frows, const unsigned char *active);
/* "frob", "max", "mean" */
const char *il_stop_norm_name(int kind);

/* Anderson mixing on any fixed-point map z = map(z) of (B, n) batches, from z = 0
 * (core/solvers/solver_anderson.c): the forward solver and the matrix-free
 * adjoint solver share it. p supplies B, n (p->cell->n), tol, max_iter, ws,
 * reduce and the stop settings; p->x and the cell's map are not used. */
typedef il_status (*il_fixed_map_fn)(void *ctx, const il_real *in, il_real *out);
#define il_anderson_ws_bytes IL_P(il_anderson_ws_bytes)
size_t il_anderson_ws_bytes(int m, int B, int n, int keep_best);
typedef struct il_anderson_params {
  int m;       /* memory */
  double beta; /* mixing */
  double lam;  /* ridge, relative to the largest squared residual in the window */
} il_anderson_params;
#define il_anderson_run IL_P(il_anderson_run)
il_status il_anderson_run(const il_anderson_params *a, const il_problem *p, il_fixed_map_fn map, void *ctx,
                          il_real *z, double *row_res, il_solve_result *res);

/* The lowest-residual iterate of a solve, for p->keep_best: the whole batch's (IL_BEST_BATCH,
 * judged on the batch residual), or each row's own (IL_BEST_SAMPLE, judged on the row's value). */
typedef struct il_best {
  il_real *z;    /* (B, n) copy in p->ws, NULL when keep_best is off */
  double *rows;  /* host (B) the kept rows' values (il_stop_row); sample: INFINITY until a row is kept */
  unsigned char *mask, *hmask; /* sample: (B) rows the last offer improved, space and host */
  double err;    /* batch: the kept iterate's batch residual */
  int iter;      /* the last offer that kept anything, -1 if none */
} il_best;
il_status il_best_init(il_best *b, const il_problem *p);
/* Offer the iterate z with squared per-row residuals rows, squared ||f_b|| frows (stop_relf,
 * else NULL) and batch residual err. */
il_status il_best_offer(il_best *b, const il_problem *p, const il_real *z, const double *rows, const double *frows,
                        double err, int iter);
/* vals (host, B): the final iterate z's row values. Batch: when the solve did not converge and an
 * earlier iterate was better, copy it to z / vals. Sample: every row whose kept value is below its
 * final one (or whose final one is not finite) takes its kept iterate, converged or not, and
 * res->residual becomes the batch residual of the rows returned (collective over p->reduce).
 * *restored = 1 when anything was replaced. */
il_status il_best_restore(const il_best *b, const il_problem *p, il_real *z, double *vals, il_solve_result *res,
                          int *restored);

/* The iterates a training solve keeps for fixed-point correction (core/solvers/solver_corr_points.c).
 * The stopping test checks iterates c_1, c_2, ..., c_M of a solve (c_M is its result). The set
 * keeps c_s, c_2s, c_3s, ...: the stride s starts at 1 and doubles, dropping the odd multiples,
 * whenever one more would not fit in cap slots, so memory stays at cap (B, n) arrays however long
 * the solve runs. No solver knows of it: il_stop_judge counts the checks and il_best_offer hands
 * over each checked iterate that did not end the solve. */
struct il_corr_points {
  int cap;          /* slots at most */
  int checks;       /* stopping checks so far: M once the solve is done */
  int stride;       /* s */
  int count;        /* kept: z[i] is c_{(i+1) s} */
  il_real **z;      /* host (cap) */
  il_real **spare;  /* host (cap): slots freed by a doubling, reused before new ones are taken */
  int nspare;
  il_arena *arena;  /* space: where the slots come from (the layer's saved-for-backward arena) */
};
#define il_corr_points_begin IL_P(il_corr_points_begin)
#define il_corr_points_offer IL_P(il_corr_points_offer)
#define il_corr_points_at IL_P(il_corr_points_at)
/* An empty set of cap >= 2 slots from arena (space); its tables from harena (host). */
il_status il_corr_points_begin(il_corr_points *t, int cap, il_arena *arena, il_arena *harena);
/* The iterate z (B, n) checked at check t->checks; copied when it falls on the stride. */
il_status il_corr_points_offer(il_corr_points *t, const il_problem *p, const il_real *z);
/* The kept c_j, or NULL when c_j is not kept. */
const il_real *il_corr_points_at(const il_corr_points *t, int j);

/* The end of every solve: `last` (B, n) is the final iterate, rows (host, B) its squared per-row
 * residuals and frows its squared ||f_b|| (stop_relf, else NULL). Writes z (the final iterate, or
 * the lowest-residual one with p->keep_best), the rows' values (il_stop_row) into rows and row_res
 * (may be NULL), and counts rows whose value is not below tol_abs (inclusive = 1: not at or below,
 * the seed's Newton rule). *restored = 1 when kept iterates replaced final ones (may be NULL). */
il_status il_solve_finish(il_best *best, const il_problem *p, const il_real *last, double *rows, const double *frows,
                          double *row_res, int inclusive, il_real *z, il_solve_result *res, int *restored);

#endif
