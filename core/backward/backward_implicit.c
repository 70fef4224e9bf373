/* core/backward/backward_implicit.c: implicit-function-theorem backward, as the
 * seed's TanhNewtonImplicitLayer. The forward re-engages once: out = f(z*).
 * Backward solves the adjoint system (I - df/dz)^T u = dL/dout at z*, then
 * pushes u through f: dx += (df/dx)^T u, dtheta += (df/dtheta)^T u. The forward
 * solver never matters, only z*.
 *
 * Adjoint solvers (option adjoint-solver):
 *   lu       (default) batched LU. The LU of the solver's last step is reused
 *            when there is one (Newton, like the seed's hook, whose J is from
 *            the last step z_{K-1}), refined against J(z*) (up to
 *            --adjoint-refine corrections; 0 gives the seed's gradient
 *            exactly); otherwise J(z*) is factored. Saved state: one LU.
 *   fp       u <- dout + (df/dz)^T u, matrix-free (one vjp, a GEMM, per iteration).
 *   anderson the same map with Anderson mixing (shared with the forward solver).
 *   gmres    restarted GMRES per sample on (I - (df/dz)^T) u = dout, matrix-free.
 * The matrix-free ones stop on the relative residual ||dout - (I - A^T) u|| / ||dout||
 * < adjoint-tol (default 1e-6) or after adjoint-max-iter vjps (default 200);
 * adjoint-m is Anderson's memory (6) or GMRES's restart length (30). They need
 * neither an n x n matrix per sample nor its O(n^3) factorisation.
 * The backward result (bres) holds vjps (or 1 + refinements for lu), the final
 * relative residual of the adjoint system and its reason. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "il_layer.h"

typedef enum { ADJ_LU, ADJ_FP, ADJ_ANDERSON, ADJ_GMRES } adj_kind;

typedef struct implicit_state {
  adj_kind kind;
  double tol;
  int max_iter, m;
  il_real *f; /* f(z*) (B, n), kept in a->saved by the training forward */
} implicit_state;

static il_status implicit_create(il_options *opt, void **state, int *keep_lu) {
  const char *name;
  implicit_state a = {.kind = ADJ_LU, .tol = 1e-6, .max_iter = 200, .m = 0};
  IL_CHECK(il_options_get_choice(opt, "adjoint-solver", "lu", "lu|fp|anderson|gmres", &name));
  a.kind = strcmp(name, "lu") == 0 ? ADJ_LU : strcmp(name, "fp") == 0 ? ADJ_FP
         : strcmp(name, "anderson") == 0 ? ADJ_ANDERSON : ADJ_GMRES;
  if (a.kind != ADJ_LU) { /* lu takes none of these: left unconsumed they are reported as unknown */
    IL_CHECK(il_options_get_double(opt, "adjoint-tol", 1e-6, 1e-300, 1.0, &a.tol));
    IL_CHECK(il_options_get_int(opt, "adjoint-max-iter", 200, 1, 1000000, &a.max_iter));
  }
  if (a.kind == ADJ_ANDERSON) IL_CHECK(il_options_get_int(opt, "adjoint-m", 6, 1, 32, &a.m));
  if (a.kind == ADJ_GMRES) IL_CHECK(il_options_get_int(opt, "adjoint-m", 30, 1, 1000, &a.m));
  implicit_state *st = malloc(sizeof *st);
  if (!st) return IL_ERR(IL_ERR_NOMEM, "implicit: cannot allocate state");
  *st = a;
  *state = st;
  *keep_lu = a.kind == ADJ_LU;
  return IL_OK;
}

static void implicit_destroy(void *state) { free(state); }

#define R(count, T) il_ws_round((size_t)(count) * sizeof(T))
static size_t implicit_ws_bytes(void *state, const il_cell *c, int B) {
  const implicit_state *st = state;
  const size_t len = (size_t)B * c->n;
  size_t lu_a, lu_p;
  c->be->ops->lu_layout(c->be->ctx, B, c->n, &lu_a, &lu_p);
  size_t solver = 2 * R(len, il_real); /* u, r */
  if (st->kind == ADJ_LU) solver += il_ws_round(lu_a) + il_ws_round(lu_p) + 2 * R(len, il_real);
  else if (st->kind == ADJ_FP) solver += 2 * R(len, il_real);
  else if (st->kind == ADJ_ANDERSON) solver += il_anderson_ws_bytes(st->m, B, c->n, 1) + R(len, il_real);
  else solver += (size_t)(st->m + 2) * R(len, il_real) + R((size_t)B * st->m, il_real) + R(B, il_real);
  /* the diagnostics' exact IFT gradient (il_layer.c) factors J(z*) as well */
  const size_t diag = 2 * R(len + c->ntheta, il_real) + 2 * R(len, il_real) + il_ws_round(lu_a) + il_ws_round(lu_p);
  return solver + diag + c->ops->ws_bytes(c, B);
}

static il_status implicit_finish(void *state, const il_adjoint *a, il_real *out) {
  implicit_state *st = state;
  const il_cell *c = a->cell;
  IL_CHECK(il_cell_map(c, a->B, a->x, a->zstar, out, NULL, a->ws, NULL));
  st->f = NULL;
  if (a->saved) { /* keep f(z*) for backward: `out` belongs to the caller */
    IL_CHECK(il_arena_alloc_n(a->saved, (size_t)a->B * c->n, sizeof *st->f, (void **)&st->f));
    IL_CHECK(il_copy(a->be, st->f, out, (size_t)a->B * c->n));
  }
  return IL_OK;
}

/* Batch norm of a (B, n) array over every rank (the stopping test stays global). Sync point. */
static il_status batch_norm(const il_adjoint *a, const il_real *v, double *out) {
  double sq;
  IL_CHECK(IL_BE(a->be, sqdist, (size_t)a->B * a->cell->n, v, NULL, &sq));
  *out = a->reduce.sum ? a->reduce.sum(a->reduce.ctx, sq) : sq;
  *out = *out >= 0 ? sqrt(*out) : *out;
  return IL_OK;
}

/* t = r - (u - A^T u), the adjoint residual, with A^T v = (df/dz at z*)^T v */
static il_status adjoint_residual(const implicit_state *st, const il_adjoint *a, const il_real *r, const il_real *u,
                                  il_real *t) {
  const il_cell *c = a->cell;
  const size_t len = (size_t)a->B * c->n;
  IL_CHECK(il_cell_vjp(c, a->B, a->zstar, st->f, NULL, u, t, NULL, NULL, a->ws));
  IL_CHECK(IL_BE(a->be, lincomb, len, 1, u, -1, t, t));
  return IL_BE(a->be, lincomb, len, 1, r, -1, t, t);
}

static il_status solve_lu(const implicit_state *st, const il_adjoint *a, const il_real *r, il_real *u,
                          il_solve_result *bres) {
  const il_cell *c = a->cell;
  const il_backend *be = a->be;
  const int B = a->B, n = c->n;
  const size_t len = (size_t)B * n;
  const il_lu *lu = a->lu;
  il_lu J;
  IL_CHECK(il_copy(be, u, r, len));
  if (!lu) {
    int *info;
    IL_CHECK(il_lu_alloc(be, a->ws, B, n, &J));
    IL_CHECK(il_arena_calloc(a->hws, (size_t)B, sizeof *info, (void **)&info));
    il_cell stable = *c; /* no pre-activation kept here: the seed's 1/cosh^2 applies to Newton's own LUs only */
    stable.sech2_seed = 0;
    IL_CHECK(il_cell_jac_g(&stable, B, a->zstar, st->f, NULL, &J, a->ws));
    double *anorm = NULL, *rcond = NULL;
    if (a->diag) {
      IL_CHECK(il_arena_alloc_n(a->hws, (size_t)B, sizeof *anorm, (void **)&anorm));
      IL_CHECK(il_arena_alloc_n(a->hws, (size_t)B, sizeof *rcond, (void **)&rcond));
      IL_CHECK(IL_BE(be, lu_norm_inf, &J, anorm));
    }
    IL_CHECK(il_lu_factor(be, &J, info)); /* sync point: LU info */
    if (a->diag) {
      IL_CHECK(IL_BE(be, lu_rcond, &J, anorm, rcond)); /* sync point: diagnostics */
      for (int b = 0; b < B; b++) {
        const double cnd = info[b] > 0 ? INFINITY : 1.0 / rcond[b];
        if (isnan(bres->cond_max) || cnd > bres->cond_max) bres->cond_max = cnd;
      }
    }
    lu = &J;
  }
  IL_CHECK(il_lu_solve(be, 1, lu, u)); /* u = J^{-T} dout */

  /* Iterative refinement against the Jacobian at z* itself. The reused LU is
   * from z_{K-1}, off by O(||z_K - z_{K-1}||); each correction
   *   u += LU^{-T} (dout - J*^T u),  J*^T u = u - (df/dz)^T u  (one GEMM)
   * shrinks the error by that factor, so the gradient is the exact IFT one. */
  il_real *t, *corr; /* residual / correction; the last correction applied to u */
  IL_CHECK(il_arena_calloc(a->ws, len, sizeof *t, (void **)&t));
  IL_CHECK(il_arena_calloc(a->ws, len, sizeof *corr, (void **)&corr));
  double rhs, res;
  IL_CHECK(IL_BE(be, sqdist, len, r, NULL, &rhs)); /* sync point */
  rhs = sqrt(rhs);
  const double target = 100 * IL_EPS * (rhs > 0 ? rhs : 1);
  bres->iters = 1;
  for (int k = 0;; k++) {
    IL_CHECK(adjoint_residual(st, a, r, u, t));
    IL_CHECK(IL_BE(be, sqdist, len, t, NULL, &res)); /* sync point: the refinement test */
    res = sqrt(res);
    if (!isfinite(res)) {
      bres->reason = IL_REASON_NONFINITE;
      bres->nonfinite_iter = k > 0 ? k : -1; /* -1: the direct solve itself, which has no iterations */
      bres->residual = res;
      il_trace_add(a->trace, bres->iters, res);
      break;
    }
    if (k > 0 && !(res < 0.5 * bres->residual)) {
      /* the last correction did not help (rounding level, or an LU too far from J(z*)): undo it */
      IL_CHECK(IL_BE(be, axpby, len, -1, corr, 1, u));
      bres->iters--;
      break;
    }
    bres->residual = res;
    il_trace_add(a->trace, bres->iters, res); /* --trace: the residual of the u kept */
    if (res <= target) { bres->reason = IL_REASON_CONVERGED; break; }
    if (k == a->adjoint_refine) break;
    IL_CHECK(il_lu_solve(be, 1, lu, t));
    IL_CHECK(IL_BE(be, axpby, len, 1, t, 1, u));
    IL_CHECK(il_copy(be, corr, t, len));
    bres->iters++;
  }
  if (isfinite(bres->residual) && rhs > 0) bres->residual /= rhs;
  return IL_OK;
}

typedef struct adj_map_ctx {
  const implicit_state *st;
  const il_adjoint *a;
  const il_real *r;
} adj_map_ctx;

/* the adjoint fixed-point map u -> r + A^T u */
static il_status adj_map(void *ctx, const il_real *in, il_real *out) {
  adj_map_ctx *m = ctx;
  const il_adjoint *a = m->a;
  const il_cell *c = a->cell;
  IL_CHECK(il_cell_vjp(c, a->B, a->zstar, m->st->f, NULL, in, out, NULL, NULL, a->ws));
  return IL_BE(a->be, axpby, (size_t)a->B * c->n, 1, m->r, 1, out);
}

static il_status solve_fp(const implicit_state *st, const il_adjoint *a, const il_problem *p, const il_real *r,
                          il_real *u, il_solve_result *res) {
  const size_t len = (size_t)a->B * a->cell->n;
  il_real *t;
  il_stop stop;
  adj_map_ctx ctx = {st, a, r};
  IL_CHECK(il_arena_alloc_n(a->ws, len, sizeof *t, (void **)&t));
  il_stop_begin(&stop, res);
  IL_CHECK(il_copy(a->be, u, r, len));
  for (int k = 0; k < st->max_iter; k++) {
    double acc;
    IL_CHECK(adj_map(&ctx, u, t));
    IL_CHECK(IL_BE(a->be, sqdist, len, t, u, &acc)); /* sync point: ||map(u) - u|| is the residual of u */
    IL_CHECK(il_copy(a->be, u, t, len));
    res->iters = k + 1;
    if (il_stop_check(&stop, p, il_problem_norm(p, acc), k, res)) break;
  }
  return IL_OK;
}

/* Restarted GMRES, one Krylov space per sample (samples are independent
 * systems); each iteration is one vjp over the whole batch. The Krylov basis
 * is in the space; the small Hessenberg systems are host bookkeeping. */
static il_status solve_gmres(const implicit_state *st, const il_adjoint *a, const il_problem *p, const il_real *r,
                             il_real *u, il_solve_result *res) {
  const il_cell *c = a->cell;
  const il_backend *be = a->be;
  const int B = a->B, n = c->n, M = st->m;
  const size_t len = (size_t)B * n;
  il_real *V, *w, *scale, *hscale, *ycoef, *hy;
  double *H, *cs, *sn, *g, *y, *nb, *hcol;
  const il_real **vp;
  IL_CHECK(il_arena_alloc_n(a->ws, len * (size_t)(M + 1), sizeof *V, (void **)&V));
  IL_CHECK(il_arena_alloc_n(a->ws, len, sizeof *w, (void **)&w));
  IL_CHECK(il_arena_alloc_n(a->ws, (size_t)B, sizeof *scale, (void **)&scale));
  IL_CHECK(il_arena_alloc_n(a->ws, (size_t)B * M, sizeof *ycoef, (void **)&ycoef));
  IL_CHECK(il_arena_alloc_n(a->hws, (size_t)B, sizeof *hscale, (void **)&hscale));
  IL_CHECK(il_arena_alloc_n(a->hws, (size_t)B * M, sizeof *hy, (void **)&hy));
  IL_CHECK(il_arena_alloc_n(a->hws, (size_t)B * (M + 1) * M, sizeof *H, (void **)&H));
  IL_CHECK(il_arena_alloc_n(a->hws, (size_t)B * M, sizeof *cs, (void **)&cs));
  IL_CHECK(il_arena_alloc_n(a->hws, (size_t)B * M, sizeof *sn, (void **)&sn));
  IL_CHECK(il_arena_alloc_n(a->hws, (size_t)B * (M + 1), sizeof *g, (void **)&g));
  IL_CHECK(il_arena_alloc_n(a->hws, (size_t)M, sizeof *y, (void **)&y));
  IL_CHECK(il_arena_alloc_n(a->hws, (size_t)B, sizeof *nb, (void **)&nb));
  IL_CHECK(il_arena_alloc_n(a->hws, (size_t)B * (M + 1), sizeof *hcol, (void **)&hcol));
  IL_CHECK(il_arena_alloc_n(a->hws, (size_t)(M + 1), sizeof *vp, (void **)&vp));
  for (int i = 0; i <= M; i++) vp[i] = V + (size_t)i * len;
#define HH(b, i, j) H[((size_t)(b) * (M + 1) + (i)) * M + (j)]
  il_stop stop;
  il_stop_begin(&stop, res);
  IL_CHECK(IL_BE(be, fill, len, 0, u));
  int total = 0, done = 0;
  while (!done) {
    /* V_0 = r0 / |r0| per sample, r0 = r - (I - A^T) u */
    if (total == 0) IL_CHECK(il_copy(be, V, r, len));
    else IL_CHECK(adjoint_residual(st, a, r, u, V));
    IL_CHECK(IL_BE(be, row_sqdist, B, n, V, NULL, nb)); /* sync point: the initial residuals */
    for (int b = 0; b < B; b++) {
      const double nrm = sqrt(nb[b]);
      g[(size_t)b * (M + 1)] = nrm;
      for (int i = 1; i <= M; i++) g[(size_t)b * (M + 1) + i] = 0;
      hscale[b] = (il_real)(nrm > 0 ? 1 / nrm : 0);
    }
    IL_CHECK(il_upload(be, scale, hscale, (size_t)B));
    IL_CHECK(IL_BE(be, row_lincomb, B, n, 1, scale, V, 0, NULL, V));
    int jdone = 0;
    for (int j = 0; j < M; j++) {
      il_real *vj = V + (size_t)j * len, *vn = V + (size_t)(j + 1) * len;
      IL_CHECK(il_cell_vjp(c, B, a->zstar, st->f, NULL, vj, w, NULL, NULL, a->ws));
      IL_CHECK(IL_BE(be, lincomb, len, 1, vj, -1, w, w)); /* (I - A^T) v_j */
      total++;
      /* modified Gram-Schmidt against v_0..v_j; hcol[b] = coefficients, then ||w_b|| */
      IL_CHECK(IL_BE(be, row_mgs, B, n, j + 1, vp, w, hcol)); /* sync point: the Hessenberg column */
      double local = 0;
      for (int b = 0; b < B; b++) {
        const double *hb = hcol + (size_t)b * (j + 2);
        for (int i = 0; i <= j; i++) HH(b, i, j) = hb[i];
        const double hn = hb[j + 1];
        HH(b, j + 1, j) = hn;
        hscale[b] = (il_real)(hn > 0 ? 1 / hn : 0); /* 0: lucky breakdown, the space is invariant */
        for (int i = 0; i < j; i++) { /* earlier Givens rotations on the new column */
          const double x = HH(b, i, j), bb = HH(b, i + 1, j);
          HH(b, i, j) = cs[(size_t)b * M + i] * x + sn[(size_t)b * M + i] * bb;
          HH(b, i + 1, j) = -sn[(size_t)b * M + i] * x + cs[(size_t)b * M + i] * bb;
        }
        const double x = HH(b, j, j), bb = HH(b, j + 1, j), rr = hypot(x, bb);
        const double cj = rr > 0 ? x / rr : 1, sj = rr > 0 ? bb / rr : 0;
        cs[(size_t)b * M + j] = cj;
        sn[(size_t)b * M + j] = sj;
        HH(b, j, j) = rr;
        HH(b, j + 1, j) = 0;
        double *gb = g + (size_t)b * (M + 1);
        gb[j + 1] = -sj * gb[j];
        gb[j] = cj * gb[j];
        local += gb[j + 1] * gb[j + 1]; /* the sample's residual norm, squared */
      }
      IL_CHECK(il_upload(be, scale, hscale, (size_t)B));
      IL_CHECK(IL_BE(be, row_lincomb, B, n, 1, scale, w, 0, NULL, vn)); /* v_{j+1} = w / ||w|| */
      jdone = j + 1;
      res->iters = total; /* the count the check (and --trace) sees */
      if (il_stop_check(&stop, p, il_problem_norm(p, local), total - 1, res) || total == st->max_iter) {
        done = 1;
        break;
      }
    }
    /* u += V y with H y = g (upper triangular, jdone x jdone) per sample */
    for (int b = 0; b < B; b++) {
      const double *gb = g + (size_t)b * (M + 1);
      for (int i = jdone - 1; i >= 0; i--) {
        double acc = gb[i];
        for (int q = i + 1; q < jdone; q++) acc -= HH(b, i, q) * y[q];
        y[i] = HH(b, i, i) != 0 ? acc / HH(b, i, i) : 0;
      }
      for (int i = 0; i < jdone; i++) hy[(size_t)b * jdone + i] = (il_real)y[i];
    }
    IL_CHECK(il_upload(be, ycoef, hy, (size_t)B * jdone));
    IL_CHECK(IL_BE(be, row_combine, B, n, jdone, vp, ycoef, 1, u));
  }
#undef HH
  res->iters = total;
  return IL_OK;
}

static il_status implicit_backward(void *state, const il_adjoint *a, const il_real *dout, il_real *dx, il_real *dW,
                                   il_solve_result *bres, int *nan_iter) {
  const implicit_state *st = state;
  const il_cell *c = a->cell;
  const il_backend *be = a->be;
  const int B = a->B, n = c->n;
  const size_t len = (size_t)B * n;
  if (!st->f) return IL_ERR(IL_ERR_INTERNAL, "implicit backward without a training forward");
  il_marks m = il_marks_get(a->ws, a->hws);
  il_status s = IL_OK;
  il_real *u, *r;
  IL_CHECK(il_arena_calloc(a->ws, len, sizeof *u, (void **)&u));
  IL_CHECK(il_arena_calloc(a->ws, len, sizeof *r, (void **)&r));
  IL_CHECK(il_copy(be, r, dout, len));
  IL_CHECK(IL_BE(be, row_fill, B, n, a->zeroed, 1, 0, r)); /* rows zeroed in the forward carry no gradient */
  *bres = (il_solve_result){.iters = 0, .residual = NAN, .reason = IL_REASON_MAX_ITER, .nonfinite_iter = -1,
                            .cond_max = NAN};
  if (st->kind == ADJ_LU) {
    IL_CHECK_GOTO(s, solve_lu(st, a, r, u, bres), out);
  } else {
    /* the same stopping rules as the forward, on the adjoint residual, relative to ||dout|| */
    double rn, tr;
    IL_CHECK_GOTO(s, batch_norm(a, r, &rn), out);
    il_problem p = {.cell = c, .be = be, .B = B, .x = NULL, .tol = st->tol * (rn > 0 ? rn : 1),
                    .max_iter = st->max_iter, .ws = a->ws, .hws = a->hws, .reduce = a->reduce,
                    .keep_best = st->kind == ADJ_ANDERSON, .trace = a->trace};
    il_solve_result res;
    if (st->kind == ADJ_FP) {
      IL_CHECK_GOTO(s, solve_fp(st, a, &p, r, u, &res), out);
    } else if (st->kind == ADJ_ANDERSON) {
      adj_map_ctx ctx = {st, a, r};
      il_anderson_params ap = {.m = st->m, .beta = 1.0, .lam = 1e-4};
      IL_CHECK_GOTO(s, il_anderson_run(&ap, &p, adj_map, &ctx, u, NULL, &res), out);
    } else {
      IL_CHECK_GOTO(s, solve_gmres(st, a, &p, r, u, &res), out);
    }
    /* report the true residual of the u we use, not the solver's running estimate */
    il_real *t;
    IL_CHECK_GOTO(s, il_arena_alloc_n(a->ws, len, sizeof *t, (void **)&t), out);
    IL_CHECK_GOTO(s, adjoint_residual(st, a, r, u, t), out);
    IL_CHECK_GOTO(s, batch_norm(a, t, &tr), out);
    bres->iters = res.iters;
    bres->residual = rn > 0 ? tr / rn : tr;
    bres->nonfinite_iter = res.nonfinite_iter;
    bres->reason = !isfinite(tr) ? IL_REASON_NONFINITE
                   : res.reason == IL_REASON_MAX_ITER && tr <= p.tol ? IL_REASON_CONVERGED
                                                                       : res.reason;
    if (bres->reason == IL_REASON_NONFINITE && bres->nonfinite_iter < 0) bres->nonfinite_iter = res.iters;
  }
  *nan_iter = bres->nonfinite_iter;
  IL_CHECK_GOTO(s, il_cell_vjp(c, B, a->zstar, st->f, NULL, u, NULL, dx, dW, a->ws), out);
out:
  il_marks_rewind(a->ws, a->hws, m);
  return s;
}

/* Fixed-point correction: one undamped step from each intermediate point (TorchDEQ's default,
 * grad = 1, with IFT for z* itself). The IFT would be meaningless there: they are no fixed points. */
static void implicit_corr_steps(void *state, int *steps, double *tau) {
  (void)state;
  *steps = 1;
  *tau = 1.0;
}

/* --trace: lu records 1 + refinements, the matrix-free solvers one residual per vjp. */
static int implicit_trace_info(void *state, int fwd_max_iter, int adjoint_refine, const char **solver) {
  static const char *const names[] = {"lu", "fp", "anderson", "gmres"};
  const implicit_state *st = state;
  (void)fwd_max_iter;
  *solver = names[st->kind];
  return st->kind == ADJ_LU ? adjoint_refine + 1 : st->max_iter;
}

static const il_option_decl implicit_options[] = {
    {"adjoint-solver", "NAME", "lu|fp|anderson|gmres for (I - df/dz)^T u = dL/dz*", "lu", 1, 0},
    {"adjoint-tol", "TOL", "matrix-free adjoint (fp, anderson, gmres): relative residual tolerance in (0, 1]", "1e-6", 1, 0},
    {"adjoint-max-iter", "N", "matrix-free adjoint: vjp limit, 1..1000000", "200", 1, 0},
    {"adjoint-m", "M", "anderson memory (1..32) or gmres restart length (1..1000) of the adjoint solve", "6 / 30", 1, 0},
    {0},
};

const il_backward_ops il_backward_implicit_ops = {
    .name = "implicit",
    .summary = "implicit function theorem: solve (I - df/dz)^T u = dL/dz* (adjoint-solver lu|fp|anderson|gmres)",
    .needs_tape = 0,
    .options = implicit_options,
    .create = implicit_create,
    .destroy = implicit_destroy,
    .ws_bytes = implicit_ws_bytes,
    .finish_forward = implicit_finish,
    .backward = implicit_backward,
    .corr_steps = implicit_corr_steps,
    .zstar_detached = 0,
    .trace_info = implicit_trace_info,
};
