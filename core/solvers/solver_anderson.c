/* core/solvers/solver_anderson.c: Anderson acceleration of z <- f(z) (Walker &
 * Ni 2011; the DEQ papers' and TorchDEQ's default solver), from z = 0. Each
 * sample keeps the last m iterates X_i and maps F_i = f(X_i) and mixes them:
 *   alpha = argmin || sum_i alpha_i (F_i - X_i) ||^2 + lam' ||alpha||^2, sum_i alpha_i = 1
 *   z_next = beta * sum_i alpha_i F_i + (1 - beta) * sum_i alpha_i X_i
 * solved per sample as alpha = y / (1^T y), (G G^T + lam' I) y = 1 (Cholesky; the bordered
 * KKT system [[0, 1^T], [1, G G^T + lam' I]] is the fallback).
 * The ridge is relative, lam' = lam * max_i ||G_i||^2, so it means the same at
 * every residual scale (TorchDEQ adds an absolute lam, which dominates the Gram
 * matrix once residuals fall below sqrt(lam)). Stops on ||F_k - X_k||_F of the
 * batch; iterations are map evaluations, as for fp; the output is F_k.
 * Options: anderson-m (memory, default 6), anderson-beta (mixing, default 1),
 * anderson-lambda (relative ridge, default 1e-4). No tape: use an implicit,
 * phantom or jfb backward. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "il_solver.h"

#define AA_MAX_M 32

typedef il_anderson_params aa_state;

static il_status aa_create(il_options *opt, void **state) {
  aa_state a;
  IL_CHECK(il_options_get_int(opt, "anderson-m", 6, 1, AA_MAX_M, &a.m));
  IL_CHECK(il_options_get_double(opt, "anderson-beta", 1.0, 1e-6, 1.0, &a.beta));
  IL_CHECK(il_options_get_double(opt, "anderson-lambda", 1e-4, 0.0, 1e6, &a.lam));
  aa_state *st = malloc(sizeof *st);
  if (!st) return IL_ERR(IL_ERR_NOMEM, "anderson: cannot allocate state");
  *st = a;
  *state = st;
  return IL_OK;
}

static void aa_destroy(void *state) { free(state); }

/* Solve the SPD q x q system A y = b in place by Cholesky (A's lower triangle is used).
 * Returns 0 when a pivot is not positive (A not numerically positive definite). */
static int spd_solve(int q, double *A, double *b) {
  for (int j = 0; j < q; j++) {
    double d = A[j * q + j];
    for (int k = 0; k < j; k++) d -= A[j * q + k] * A[j * q + k];
    if (!(d > 0)) return 0;
    d = sqrt(d);
    A[j * q + j] = d;
    for (int i = j + 1; i < q; i++) {
      double v = A[i * q + j];
      for (int k = 0; k < j; k++) v -= A[i * q + k] * A[j * q + k];
      A[i * q + j] = v / d;
    }
  }
  for (int i = 0; i < q; i++) { /* L y = b */
    double v = b[i];
    for (int k = 0; k < i; k++) v -= A[i * q + k] * b[k];
    b[i] = v / A[i * q + i];
  }
  for (int i = q - 1; i >= 0; i--) { /* L^T x = y */
    double v = b[i];
    for (int k = i + 1; k < q; k++) v -= A[k * q + i] * b[k];
    b[i] = v / A[i * q + i];
  }
  return 1;
}

/* Solve the k x k system A x = b in place (Gaussian elimination, partial pivoting).
 * Returns 0 when A is singular to working precision. */
static int small_solve(int k, double *A, double *b) {
  for (int c = 0; c < k; c++) {
    int piv = c;
    for (int r = c + 1; r < k; r++)
      if (fabs(A[r * k + c]) > fabs(A[piv * k + c])) piv = r;
    if (!(fabs(A[piv * k + c]) > 0)) return 0;
    if (piv != c) {
      for (int j = 0; j < k; j++) { double t = A[c * k + j]; A[c * k + j] = A[piv * k + j]; A[piv * k + j] = t; }
      double t = b[c]; b[c] = b[piv]; b[piv] = t;
    }
    for (int r = c + 1; r < k; r++) {
      const double l = A[r * k + c] / A[c * k + c];
      for (int j = c; j < k; j++) A[r * k + j] -= l * A[c * k + j];
      b[r] -= l * b[c];
    }
  }
  for (int r = k - 1; r >= 0; r--) {
    double acc = b[r];
    for (int j = r + 1; j < k; j++) acc -= A[r * k + j] * b[j];
    b[r] = acc / A[r * k + r];
  }
  return 1;
}

il_status il_anderson_run(const il_anderson_params *st, const il_problem *p, il_fixed_map_fn map, void *ctx,
                          il_real *z, double *row_res, il_solve_result *res) {
  const il_cell *c = p->cell;
  const int B = p->B, n = c->n, m = st->m, R = m + 1; /* the ring holds the window plus the slot being written */
  const size_t len = (size_t)B * n;
  il_arena_mark mk = il_arena_get_mark(p->ws);
  il_status s = IL_OK;
  il_real *X, *F, *G; /* rings of m + 1 slots, each (B, n) */
  double *gram, *rows; /* (B, m+1, m+1) Gram of the G slots; (B) */
  il_stop stop;
  il_best best;
  il_stop_begin(&stop, res);
  IL_CHECK(il_arena_calloc(p->ws, len * R, sizeof *X, (void **)&X));
  IL_CHECK(il_arena_alloc_n(p->ws, len * R, sizeof *F, (void **)&F));
  IL_CHECK(il_arena_alloc_n(p->ws, len * R, sizeof *G, (void **)&G));
  IL_CHECK(il_arena_calloc(p->ws, (size_t)B * R * R, sizeof *gram, (void **)&gram));
  IL_CHECK(il_arena_alloc_n(p->ws, (size_t)B, sizeof *rows, (void **)&rows));
  IL_CHECK(il_best_init(&best, p));
  int last = 0; /* slot of the newest iterate */
  for (int k = 0; k < p->max_iter; k++) {
    const int slot = k % R;
    il_real *Xs = X + (size_t)slot * len, *Fs = F + (size_t)slot * len, *Gs = G + (size_t)slot * len;
    if (k == 1) { /* the first step is a plain fixed-point step */
      memcpy(Xs, F, len * sizeof *Xs);
    } else if (k > 1) {
      const int nk = k < m ? k : m; /* slots in the window, all but the one being written */
      for (int b = 0; b < B; b++) {
        double H[(AA_MAX_M + 1) * (AA_MAX_M + 1)], rhs[AA_MAX_M + 1];
        int idx[AA_MAX_M];
        int q = 0;
        for (int i = 0; i < R && q < nk; i++)
          if (i != slot) idx[q++] = i;
        const int K1 = q + 1;
        double gmax = 0;
        for (int i = 0; i < q; i++) {
          const double gii = gram[((size_t)b * R + idx[i]) * R + idx[i]];
          if (gii > gmax) gmax = gii;
        }
        /* The constrained least squares is alpha = y / (1^T y) with (G G^T + lam' I) y = 1, an SPD
         * solve by Cholesky (q^3/6 flops); the bordered (q+1) KKT system is the fallback when the
         * window is singular (lam = 0) or 1^T y vanishes. rhs[1..q] receives alpha either way. */
        int ok = 0;
        {
          double *A = H;
          for (int i = 0; i < q; i++) {
            rhs[i + 1] = 1;
            for (int j = 0; j <= i; j++)
              A[i * q + j] = gram[((size_t)b * R + idx[i]) * R + idx[j]] + (i == j ? st->lam * gmax : 0);
          }
          if (spd_solve(q, A, rhs + 1)) {
            double sum = 0;
            for (int i = 0; i < q; i++) sum += rhs[i + 1];
            if (isfinite(sum) && fabs(sum) > 1e-300) {
              for (int i = 0; i < q; i++) rhs[i + 1] /= sum;
              ok = 1;
            }
          }
        }
        if (!ok) {
          H[0] = 0;
          rhs[0] = 1;
          for (int i = 0; i < q; i++) {
            H[i + 1] = H[(i + 1) * K1] = 1;
            rhs[i + 1] = 0;
            for (int j = 0; j < q; j++)
              H[(i + 1) * K1 + j + 1] = gram[((size_t)b * R + idx[i]) * R + idx[j]] + (i == j ? st->lam * gmax : 0);
          }
          ok = small_solve(K1, H, rhs);
        }
        il_real *xb = Xs + (size_t)b * n;
        if (!ok) { /* degenerate window: plain step from the newest iterate */
          memcpy(xb, F + (size_t)last * len + (size_t)b * n, (size_t)n * sizeof *xb);
          continue;
        }
        for (int j = 0; j < n; j++) xb[j] = 0;
        for (int i = 0; i < q; i++) {
          const il_real a = (il_real)rhs[i + 1];
          const il_real *fi = F + (size_t)idx[i] * len + (size_t)b * n, *xi = X + (size_t)idx[i] * len + (size_t)b * n;
          const il_real ab = a * (il_real)st->beta, a1 = a * (il_real)(1 - st->beta);
          if (st->beta == 1.0) /* the default: no need to read the iterates */
            for (int j = 0; j < n; j++) xb[j] += ab * fi[j];
          else
            for (int j = 0; j < n; j++) xb[j] += ab * fi[j] + a1 * xi[j];
        }
      }
    }
    IL_CHECK_GOTO(s, map(ctx, Xs, Fs), out);
    for (size_t i = 0; i < len; i++) Gs[i] = Fs[i] - Xs[i];
    /* refresh the Gram row and column of this slot */
    const int filled = k + 1 < R ? k + 1 : R;
    for (int b = 0; b < B; b++) {
      const il_real *gs = Gs + (size_t)b * n;
      for (int i = 0; i < filled; i++) {
        const il_real *gi = G + (size_t)i * len + (size_t)b * n;
        double acc = 0;
#pragma omp simd reduction(+ : acc)
        for (int j = 0; j < n; j++) acc += (double)gs[j] * (double)gi[j];
        gram[((size_t)b * R + slot) * R + i] = gram[((size_t)b * R + i) * R + slot] = acc;
      }
      rows[b] = gram[((size_t)b * R + slot) * R + slot];
    }
    last = slot;
    double local = 0;
    for (int b = 0; b < B; b++) local += rows[b];
    const double err = il_problem_norm(p, local);
    res->iters = k + 1;
    if (il_stop_check(&stop, p, err, k, res)) break;
    il_best_offer(&best, p, Fs, rows, err, k);
  }
  il_solve_finish(&best, p, F + (size_t)last * len, rows, row_res, 0, z, res);
out:
  il_arena_rewind(p->ws, mk);
  return s;
}

static il_status cell_map(void *ctx, const il_real *in, il_real *out) {
  const il_problem *p = ctx;
  return p->cell->ops->map(p->cell, p->B, p->x, in, out, NULL, p->ws);
}

static il_status aa_solve(void *state, const il_problem *p, il_real *z, double *row_res, il_solve_result *res) {
  return il_anderson_run(state, p, cell_map, (void *)p, z, row_res, res);
}

const il_solver_ops il_solver_anderson_ops = {
    .name = "anderson",
    .summary = "Anderson acceleration from z = 0 (options anderson-m, anderson-beta, anderson-lambda)",
    .default_max_iter = 100,
    .option_keys = "anderson-m,anderson-beta,anderson-lambda",
    .zero_default = 0,
    .per_sample_ok = 0,
    .create = aa_create,
    .solve = aa_solve,
    .unroll_backward = NULL,
    .unroll_nan_step = NULL,
    .last_lu = NULL,
    .destroy = aa_destroy,
};
