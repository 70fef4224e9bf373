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
} implicit_state;

static il_status implicit_create(il_layer *L, il_options *opt) {
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
  L->bstate = st;
  L->keep_lu = a.kind == ADJ_LU;
  return IL_OK;
}

static void implicit_destroy(il_layer *L) { free(L->bstate); }

static il_status implicit_finish(il_layer *L, const il_real *zstar, il_real *out) {
  il_cell *c = &L->cell;
  IL_CHECK(c->ops->map(c, L->B, L->prob.x, zstar, out, NULL, &L->ws));
  if (L->train) { /* keep f(z*) for backward: `out` belongs to the caller */
    il_real *f;
    IL_CHECK(il_arena_calloc(&L->saved, (size_t)L->B * c->n, sizeof *f, (void **)&f));
    memcpy(f, out, (size_t)L->B * c->n * sizeof *f);
    L->out = f;
  }
  return IL_OK;
}

/* Batch norm of a (B, n) array over every rank (the stopping test stays global). */
static double batch_norm(il_layer *L, const il_real *v) {
  return il_problem_norm(&L->prob, L->cell.be->sqdist((size_t)L->B * L->cell.n, v, NULL));
}

/* t = r - (u - A^T u), the adjoint residual, with A^T v = (df/dz at z*)^T v */
static il_status adjoint_residual(il_layer *L, const il_real *r, const il_real *u, il_real *t) {
  il_cell *c = &L->cell;
  const size_t len = (size_t)L->B * c->n;
  IL_CHECK(c->ops->vjp(c, L->B, L->zstar, L->out, NULL, u, t, NULL, NULL, &L->ws));
  for (size_t i = 0; i < len; i++) t[i] = r[i] - (u[i] - t[i]);
  return IL_OK;
}

static il_status solve_lu(il_layer *L, const il_real *r, il_real *u) {
  il_cell *c = &L->cell;
  const il_backend *be = c->be;
  const int B = L->B, n = c->n;
  const size_t len = (size_t)B * n;
  const il_real *lu = NULL;
  const int *ipiv = NULL;
  memcpy(u, r, len * sizeof *u);
  if (!L->sops->last_lu || L->sops->last_lu(L->sstate, &lu, &ipiv) != IL_OK) {
    il_real *J;
    int *piv, *info;
    IL_CHECK(il_arena_calloc(&L->ws, len * (size_t)n, sizeof *J, (void **)&J));
    IL_CHECK(il_arena_calloc(&L->ws, len, sizeof *piv, (void **)&piv));
    IL_CHECK(il_arena_calloc(&L->ws, (size_t)B, sizeof *info, (void **)&info));
    il_cell stable = *c; /* no pre-activation kept here: the seed's 1/cosh^2 applies to Newton's own LUs only */
    stable.sech2_seed = 0;
    IL_CHECK(stable.ops->jac_g(&stable, B, L->zstar, L->out, NULL, J, &L->ws));
    double *anorm = NULL, *rcond = NULL;
    if (L->diag_now) {
      IL_CHECK(il_arena_alloc_n(&L->ws, (size_t)B, sizeof *anorm, (void **)&anorm));
      IL_CHECK(il_arena_alloc_n(&L->ws, (size_t)B, sizeof *rcond, (void **)&rcond));
      be->norm_inf_batched(B, n, J, anorm);
    }
    IL_CHECK(be->lu_factor_batched(B, n, J, piv, info));
    if (L->diag_now) {
      IL_CHECK(be->lu_rcond_batched(B, n, J, anorm, rcond));
      for (int b = 0; b < B; b++) {
        const double cnd = info[b] > 0 ? INFINITY : 1.0 / rcond[b];
        if (isnan(L->bres.cond_max) || cnd > L->bres.cond_max) L->bres.cond_max = cnd;
      }
    }
    lu = J;
    ipiv = piv;
  }
  IL_CHECK(be->lu_solve_batched(1, B, n, lu, ipiv, u)); /* u = J^{-T} dout */

  /* Iterative refinement against the Jacobian at z* itself. The reused LU is
   * from z_{K-1}, off by O(||z_K - z_{K-1}||); each correction
   *   u += LU^{-T} (dout - J*^T u),  J*^T u = u - (df/dz)^T u  (one GEMM)
   * shrinks the error by that factor, so the gradient is the exact IFT one. */
  il_real *t, *corr; /* residual / correction; the last correction applied to u */
  IL_CHECK(il_arena_calloc(&L->ws, len, sizeof *t, (void **)&t));
  IL_CHECK(il_arena_calloc(&L->ws, len, sizeof *corr, (void **)&corr));
  const double rhs = sqrt(be->sqdist(len, r, NULL));
  const double target = 100 * IL_EPS * (rhs > 0 ? rhs : 1);
  L->bres.iters = 1;
  for (int k = 0;; k++) {
    IL_CHECK(adjoint_residual(L, r, u, t));
    const double res = sqrt(be->sqdist(len, t, NULL));
    if (!isfinite(res)) {
      L->bres.reason = IL_REASON_NONFINITE;
      L->bres.nonfinite_iter = k > 0 ? k : -1; /* -1: the direct solve itself, which has no iterations */
      L->bres.residual = res;
      break;
    }
    if (k > 0 && !(res < 0.5 * L->bres.residual)) {
      /* the last correction did not help (rounding level, or an LU too far from J(z*)): undo it */
      for (size_t i = 0; i < len; i++) u[i] -= corr[i];
      L->bres.iters--;
      break;
    }
    L->bres.residual = res;
    if (res <= target) { L->bres.reason = IL_REASON_CONVERGED; break; }
    if (k == L->cfg.adjoint_refine) break;
    IL_CHECK(be->lu_solve_batched(1, B, n, lu, ipiv, t));
    for (size_t i = 0; i < len; i++) { u[i] += t[i]; corr[i] = t[i]; }
    L->bres.iters++;
  }
  if (isfinite(L->bres.residual) && rhs > 0) L->bres.residual /= rhs;
  return IL_OK;
}

typedef struct adj_map_ctx {
  il_layer *L;
  const il_real *r;
} adj_map_ctx;

/* the adjoint fixed-point map u -> r + A^T u */
static il_status adj_map(void *ctx, const il_real *in, il_real *out) {
  adj_map_ctx *a = ctx;
  il_layer *L = a->L;
  il_cell *c = &L->cell;
  const size_t len = (size_t)L->B * c->n;
  IL_CHECK(c->ops->vjp(c, L->B, L->zstar, L->out, NULL, in, out, NULL, NULL, &L->ws));
  for (size_t i = 0; i < len; i++) out[i] += a->r[i];
  return IL_OK;
}

static il_status solve_fp(il_layer *L, const implicit_state *st, const il_problem *p, const il_real *r, il_real *u,
                          il_solve_result *res) {
  const size_t len = (size_t)L->B * L->cell.n;
  il_real *t;
  il_stop stop;
  adj_map_ctx ctx = {L, r};
  IL_CHECK(il_arena_alloc_n(&L->ws, len, sizeof *t, (void **)&t));
  il_stop_begin(&stop, res);
  memcpy(u, r, len * sizeof *u);
  for (int k = 0; k < st->max_iter; k++) {
    IL_CHECK(adj_map(&ctx, u, t));
    double acc = L->cell.be->sqdist(len, t, u); /* ||map(u) - u|| is the residual of u */
    memcpy(u, t, len * sizeof *u);
    res->iters = k + 1;
    if (il_stop_check(&stop, p, il_problem_norm(p, acc), k, res)) break;
  }
  return IL_OK;
}

/* Restarted GMRES, one Krylov space per sample (samples are independent
 * systems); each iteration is one vjp over the whole batch. */
static il_status solve_gmres(il_layer *L, const implicit_state *st, const il_problem *p, const il_real *r,
                             il_real *u, il_solve_result *res) {
  il_cell *c = &L->cell;
  const int B = L->B, n = c->n, M = st->m;
  const size_t len = (size_t)B * n;
  il_real *V, *w;
  double *H, *cs, *sn, *g, *y;
  IL_CHECK(il_arena_alloc_n(&L->ws, len * (size_t)(M + 1), sizeof *V, (void **)&V));
  IL_CHECK(il_arena_alloc_n(&L->ws, len, sizeof *w, (void **)&w));
  IL_CHECK(il_arena_alloc_n(&L->ws, (size_t)B * (M + 1) * M, sizeof *H, (void **)&H));
  IL_CHECK(il_arena_alloc_n(&L->ws, (size_t)B * M, sizeof *cs, (void **)&cs));
  IL_CHECK(il_arena_alloc_n(&L->ws, (size_t)B * M, sizeof *sn, (void **)&sn));
  IL_CHECK(il_arena_alloc_n(&L->ws, (size_t)B * (M + 1), sizeof *g, (void **)&g));
  IL_CHECK(il_arena_alloc_n(&L->ws, (size_t)M, sizeof *y, (void **)&y));
#define HH(b, i, j) H[((size_t)(b) * (M + 1) + (i)) * M + (j)]
  il_stop stop;
  il_stop_begin(&stop, res);
  memset(u, 0, len * sizeof *u);
  int total = 0, done = 0;
  while (!done) {
    /* V_0 = r0 / |r0| per sample, r0 = r - (I - A^T) u */
    if (total == 0) memcpy(V, r, len * sizeof *V);
    else IL_CHECK(adjoint_residual(L, r, u, V));
    for (int b = 0; b < B; b++) {
      il_real *v0 = V + (size_t)b * n;
      double nb = 0;
      for (int j = 0; j < n; j++) nb += (double)v0[j] * (double)v0[j];
      nb = sqrt(nb);
      g[(size_t)b * (M + 1)] = nb;
      for (int i = 1; i <= M; i++) g[(size_t)b * (M + 1) + i] = 0;
      const il_real inv = (il_real)(nb > 0 ? 1 / nb : 0);
      for (int j = 0; j < n; j++) v0[j] *= inv;
    }
    int jdone = 0;
    for (int j = 0; j < M; j++) {
      il_real *vj = V + (size_t)j * len, *vn = V + (size_t)(j + 1) * len;
      IL_CHECK(c->ops->vjp(c, B, L->zstar, L->out, NULL, vj, w, NULL, NULL, &L->ws));
      for (size_t i = 0; i < len; i++) w[i] = vj[i] - w[i]; /* (I - A^T) v_j */
      total++;
      double local = 0;
      for (int b = 0; b < B; b++) {
        il_real *wb = w + (size_t)b * n;
        for (int i = 0; i <= j; i++) { /* modified Gram-Schmidt */
          const il_real *vi = V + (size_t)i * len + (size_t)b * n;
          double h = 0;
#pragma omp simd reduction(+ : h)
          for (int q = 0; q < n; q++) h += (double)wb[q] * (double)vi[q];
          HH(b, i, j) = h;
          for (int q = 0; q < n; q++) wb[q] -= (il_real)h * vi[q];
        }
        double hn = 0;
#pragma omp simd reduction(+ : hn)
        for (int q = 0; q < n; q++) hn += (double)wb[q] * (double)wb[q];
        hn = sqrt(hn);
        HH(b, j + 1, j) = hn;
        const il_real inv = (il_real)(hn > 0 ? 1 / hn : 0); /* 0: lucky breakdown, the space is invariant */
        for (int q = 0; q < n; q++) vn[(size_t)b * n + q] = wb[q] * inv;
        for (int i = 0; i < j; i++) { /* earlier Givens rotations on the new column */
          const double a = HH(b, i, j), bb = HH(b, i + 1, j);
          HH(b, i, j) = cs[(size_t)b * M + i] * a + sn[(size_t)b * M + i] * bb;
          HH(b, i + 1, j) = -sn[(size_t)b * M + i] * a + cs[(size_t)b * M + i] * bb;
        }
        const double a = HH(b, j, j), bb = HH(b, j + 1, j), rr = hypot(a, bb);
        const double cj = rr > 0 ? a / rr : 1, sj = rr > 0 ? bb / rr : 0;
        cs[(size_t)b * M + j] = cj;
        sn[(size_t)b * M + j] = sj;
        HH(b, j, j) = rr;
        HH(b, j + 1, j) = 0;
        double *gb = g + (size_t)b * (M + 1);
        gb[j + 1] = -sj * gb[j];
        gb[j] = cj * gb[j];
        local += gb[j + 1] * gb[j + 1]; /* the sample's residual norm, squared */
      }
      jdone = j + 1;
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
      il_real *ub = u + (size_t)b * n;
      for (int i = 0; i < jdone; i++) {
        const il_real yi = (il_real)y[i];
        const il_real *vi = V + (size_t)i * len + (size_t)b * n;
        for (int q = 0; q < n; q++) ub[q] += yi * vi[q];
      }
    }
  }
#undef HH
  res->iters = total;
  return IL_OK;
}

static il_status implicit_backward(il_layer *L, const il_real *dout, il_real *dx, il_real *dW) {
  const implicit_state *st = L->bstate;
  il_cell *c = &L->cell;
  const il_backend *be = c->be;
  const int B = L->B, n = c->n;
  const size_t len = (size_t)B * n;
  il_arena_mark m = il_arena_get_mark(&L->ws);
  il_status s = IL_OK;
  il_real *u, *r;
  IL_CHECK(il_arena_calloc(&L->ws, len, sizeof *u, (void **)&u));
  IL_CHECK(il_arena_calloc(&L->ws, len, sizeof *r, (void **)&r));
  memcpy(r, dout, len * sizeof *r);
  for (int b = 0; b < B; b++) /* rows zeroed in the forward carry no gradient */
    if (L->zeroed[b]) memset(r + (size_t)b * n, 0, (size_t)n * sizeof *r);
  L->bres = (il_solve_result){.iters = 0, .residual = NAN, .reason = IL_REASON_MAX_ITER, .nonfinite_iter = -1,
                              .cond_max = NAN};
  if (st->kind == ADJ_LU) {
    IL_CHECK_GOTO(s, solve_lu(L, r, u), out);
  } else {
    /* the same stopping rules as the forward, on the adjoint residual, relative to ||dout|| */
    const double rn = batch_norm(L, r);
    il_problem p = {.cell = c, .B = B, .x = NULL, .tol = st->tol * (rn > 0 ? rn : 1), .max_iter = st->max_iter,
                    .ws = &L->ws, .reduce = L->prob.reduce, .keep_best = st->kind == ADJ_ANDERSON};
    il_solve_result res;
    if (st->kind == ADJ_FP) {
      IL_CHECK_GOTO(s, solve_fp(L, st, &p, r, u, &res), out);
    } else if (st->kind == ADJ_ANDERSON) {
      adj_map_ctx ctx = {L, r};
      il_anderson_params ap = {.m = st->m, .beta = 1.0, .lam = 1e-4};
      IL_CHECK_GOTO(s, il_anderson_run(&ap, &p, adj_map, &ctx, u, NULL, &res), out);
    } else {
      IL_CHECK_GOTO(s, solve_gmres(L, st, &p, r, u, &res), out);
    }
    /* report the true residual of the u we use, not the solver's running estimate */
    il_real *t;
    IL_CHECK_GOTO(s, il_arena_alloc_n(&L->ws, len, sizeof *t, (void **)&t), out);
    IL_CHECK_GOTO(s, adjoint_residual(L, r, u, t), out);
    const double tr = batch_norm(L, t);
    L->bres.iters = res.iters;
    L->bres.residual = rn > 0 ? tr / rn : tr;
    L->bres.nonfinite_iter = res.nonfinite_iter;
    L->bres.reason = !isfinite(tr) ? IL_REASON_NONFINITE
                     : res.reason == IL_REASON_MAX_ITER && tr <= p.tol ? IL_REASON_CONVERGED
                                                                         : res.reason;
    if (L->bres.reason == IL_REASON_NONFINITE && L->bres.nonfinite_iter < 0) L->bres.nonfinite_iter = res.iters;
  }
  L->bwd_nan_iter = L->bres.nonfinite_iter;
  IL_CHECK_GOTO(s, c->ops->vjp(c, B, L->zstar, L->out, NULL, u, NULL, dx, dW, &L->ws), out);
out:
  il_arena_rewind(&L->ws, m);
  (void)be;
  return s;
}

const il_backward_ops il_backward_implicit_ops = {
    .name = "implicit",
    .summary = "implicit function theorem: solve (I - df/dz)^T u = dL/dz* (adjoint-solver lu|fp|anderson|gmres)",
    .needs_tape = 0,
    .option_keys = "adjoint-solver,adjoint-tol,adjoint-max-iter,adjoint-m",
    .create = implicit_create,
    .destroy = implicit_destroy,
    .finish_forward = implicit_finish,
    .backward = implicit_backward,
};
