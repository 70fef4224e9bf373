/* core/solvers/solver_anderson.c: Anderson acceleration of z <- f(z) (Walker &
 * Ni 2011; the DEQ papers' and TorchDEQ's default solver), from z = 0. Each
 * sample keeps the last m iterates X_i and maps F_i = f(X_i) and mixes them:
 *   alpha = argmin || sum_i alpha_i (F_i - X_i) ||^2 + lam' ||alpha||^2, sum_i alpha_i = 1
 *   z_next = beta * sum_i alpha_i F_i + (1 - beta) * sum_i alpha_i X_i
 * solved per sample as alpha = y / (1^T y), (G G^T + lam' I) y = 1 (Cholesky; the bordered
 * KKT system [[0, 1^T], [1, G G^T + lam' I]] is the fallback).
 * The ridge is relative, lam' = lam * max_i ||G_i||^2, so it means the same at
 * every residual scale (TorchDEQ adds an absolute lam, which dominates the Gram
 * matrix once residuals fall below sqrt(lam)). Stops on the rows' ||F_k - X_k||
 * (il_stop_norm: the batch's Frobenius norm by default); iterations are map evaluations, as for fp; the output is F_k.
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

#define R(count, T) il_ws_round((size_t)(count) * sizeof(T))
size_t il_anderson_ws_bytes(int m, int B, int n, int keep_best) {
  const size_t len = (size_t)B * n;
  return 3 * (size_t)(m + 1) * R(len, il_real) + R((size_t)B * 2 * m, il_real) + R(B, unsigned char) +
         (keep_best ? R(len, il_real) + R(B, unsigned char) : 0);
}

/* Mixing coefficients of one sample from its Gram matrix of the window's residuals:
 * alpha (q) into out, or 0 when the window is degenerate. */
static int aa_mix_coef(const il_anderson_params *st, const double *gram, int R, const int *idx, int q, double *rhs) {
  double H[(AA_MAX_M + 1) * (AA_MAX_M + 1)];
  const int K1 = q + 1;
  double gmax = 0;
  for (int i = 0; i < q; i++) {
    const double gii = gram[idx[i] * R + idx[i]];
    if (gii > gmax) gmax = gii;
  }
  /* The constrained least squares is alpha = y / (1^T y) with (G G^T + lam' I) y = 1, an SPD
   * solve by Cholesky (q^3/6 flops); the bordered (q+1) KKT system is the fallback when the
   * window is singular (lam = 0) or 1^T y vanishes. rhs[1..q] receives alpha either way. */
  {
    double *A = H;
    for (int i = 0; i < q; i++) {
      rhs[i + 1] = 1;
      for (int j = 0; j <= i; j++) A[i * q + j] = gram[idx[i] * R + idx[j]] + (i == j ? st->lam * gmax : 0);
    }
    if (spd_solve(q, A, rhs + 1)) {
      double sum = 0;
      for (int i = 0; i < q; i++) sum += rhs[i + 1];
      if (isfinite(sum) && fabs(sum) > 1e-300) {
        for (int i = 0; i < q; i++) rhs[i + 1] /= sum;
        return 1;
      }
    }
  }
  H[0] = 0;
  rhs[0] = 1;
  for (int i = 0; i < q; i++) {
    H[i + 1] = H[(i + 1) * K1] = 1;
    rhs[i + 1] = 0;
    for (int j = 0; j < q; j++) H[(i + 1) * K1 + j + 1] = gram[idx[i] * R + idx[j]] + (i == j ? st->lam * gmax : 0);
  }
  return small_solve(K1, H, rhs);
}

il_status il_anderson_run(const il_anderson_params *st, const il_problem *p, il_fixed_map_fn map, void *ctx,
                          il_real *z, double *row_res, il_solve_result *res) {
  const il_cell *c = p->cell;
  const il_backend *be = p->be;
  const int B = p->B, n = c->n, m = st->m, R = m + 1; /* the ring holds the window plus the slot being written */
  const size_t len = (size_t)B * n;
  const int nterm = st->beta == 1.0 ? 1 : 2; /* terms per window slot: beta F_i (+ (1 - beta) X_i) */
  il_marks mk = il_marks_get(p->ws, p->hws);
  il_status s = IL_OK;
  il_real *X, *F, *G;  /* rings of m + 1 slots, each (B, n) */
  il_real *coef, *hcoef; /* (B, nterm m) mixing coefficients: space, host */
  unsigned char *deg, *hdeg; /* (B) rows whose window is degenerate: space, host */
  double *gram, *rows, *dots; /* host: (B, m+1, m+1) Gram of the G slots; (B); (B, m+1) */
  double *frows = NULL;       /* host (B): ||F_b||^2 with stop_relf */
  il_stop stop;
  il_best best;
  il_stop_begin(&stop, res);
  IL_CHECK(il_arena_calloc(p->ws, len * R, sizeof *X, (void **)&X));
  IL_CHECK(il_arena_alloc_n(p->ws, len * R, sizeof *F, (void **)&F));
  IL_CHECK(il_arena_alloc_n(p->ws, len * R, sizeof *G, (void **)&G));
  IL_CHECK(il_arena_alloc_n(p->ws, (size_t)B * nterm * m, sizeof *coef, (void **)&coef));
  IL_CHECK(il_arena_alloc_n(p->ws, (size_t)B, 1, (void **)&deg));
  IL_CHECK(il_arena_alloc_n(p->hws, (size_t)B * nterm * m, sizeof *hcoef, (void **)&hcoef));
  IL_CHECK(il_arena_alloc_n(p->hws, (size_t)B, 1, (void **)&hdeg));
  IL_CHECK(il_arena_calloc(p->hws, (size_t)B * R * R, sizeof *gram, (void **)&gram));
  IL_CHECK(il_arena_alloc_n(p->hws, (size_t)B, sizeof *rows, (void **)&rows));
  IL_CHECK(il_arena_alloc_n(p->hws, (size_t)B * R, sizeof *dots, (void **)&dots));
  if (p->stop_relf) IL_CHECK(il_arena_alloc_n(p->hws, (size_t)B, sizeof *frows, (void **)&frows));
  IL_CHECK(il_best_init(&best, p));
  if (p->z0) IL_CHECK(il_copy(be, X, p->z0, len)); /* warm start in slot 0 */
  int last = 0; /* slot of the newest iterate */
  for (int k = 0; k < p->max_iter; k++) {
    const int slot = k % R;
    il_real *Xs = X + (size_t)slot * len, *Fs = F + (size_t)slot * len, *Gs = G + (size_t)slot * len;
    if (k == 1) { /* the first step is a plain fixed-point step */
      IL_CHECK_GOTO(s, il_copy(be, Xs, F, len), out);
    } else if (k > 1) {
      const int nk = k < m ? k : m; /* slots in the window, all but the one being written */
      int idx[AA_MAX_M];
      const il_real *terms[2 * AA_MAX_M];
      int q = 0, ndeg = 0;
      for (int i = 0; i < R && q < nk; i++)
        if (i != slot) idx[q++] = i;
      for (int i = 0; i < q; i++) {
        terms[nterm * i] = F + (size_t)idx[i] * len;
        if (nterm == 2) terms[nterm * i + 1] = X + (size_t)idx[i] * len;
      }
      for (int b = 0; b < B; b++) {
        double rhs[AA_MAX_M + 1];
        il_real *cb = hcoef + (size_t)b * nterm * q;
        hdeg[b] = !aa_mix_coef(st, gram + (size_t)b * R * R, R, idx, q, rhs);
        ndeg += hdeg[b];
        for (int i = 0; i < q; i++) {
          const il_real a = hdeg[b] ? 0 : (il_real)rhs[i + 1];
          cb[nterm * i] = a * (il_real)st->beta;
          if (nterm == 2) cb[nterm * i + 1] = a * (il_real)(1 - st->beta);
        }
      }
      IL_CHECK_GOTO(s, il_upload(be, coef, hcoef, (size_t)B * nterm * q), out);
      IL_CHECK_GOTO(s, IL_BE(be, row_combine, B, n, nterm * q, terms, coef, 0, Xs), out);
      if (ndeg) { /* degenerate window: plain step from the newest iterate */
        IL_CHECK_GOTO(s, IL_BE(be, copy, IL_COPY_TO_SPACE, deg, hdeg, (size_t)B), out);
        IL_CHECK_GOTO(s, IL_BE(be, row_select, B, n, deg, 1, F + (size_t)last * len, Xs), out);
      }
    }
    IL_CHECK_GOTO(s, map(ctx, Xs, Fs), out);
    IL_CHECK_GOTO(s, IL_BE(be, lincomb, len, 1, Fs, -1, Xs, Gs), out); /* G = F - X */
    /* refresh the Gram row and column of this slot */
    const int filled = k + 1 < R ? k + 1 : R;
    const il_real *gslots[AA_MAX_M + 1];
    for (int i = 0; i < filled; i++) gslots[i] = G + (size_t)i * len;
    IL_CHECK_GOTO(s, IL_BE(be, row_dot, B, n, filled, gslots, Gs, dots), out); /* sync point: the Gram row */
    for (int b = 0; b < B; b++) {
      for (int i = 0; i < filled; i++) {
        const double acc = dots[(size_t)b * filled + i];
        gram[((size_t)b * R + slot) * R + i] = gram[((size_t)b * R + i) * R + slot] = acc;
      }
      rows[b] = gram[((size_t)b * R + slot) * R + slot];
    }
    last = slot;
    if (frows) IL_CHECK_GOTO(s, IL_BE(be, row_sqdist, B, n, Fs, NULL, frows), out); /* sync point: ||F||^2 */
    const double err = il_stop_norm(p, rows, frows);
    res->iters = k + 1;
    if (il_stop_check(&stop, p, err, k, res)) break;
    IL_CHECK_GOTO(s, il_best_offer(&best, p, Fs, rows, frows, err, k), out);
  }
  IL_CHECK_GOTO(s, il_solve_finish(&best, p, F + (size_t)last * len, rows, frows, row_res, 0, z, res, NULL), out);
out:
  il_marks_rewind(p->ws, p->hws, mk);
  return s;
}

static size_t aa_ws_bytes(void *state, const il_cell *c, int B, int max_iter, int taped) {
  (void)max_iter, (void)taped;
  return il_anderson_ws_bytes(((aa_state *)state)->m, B, c->n, 1) + c->ops->ws_bytes(c, B);
}

static il_status cell_map(void *ctx, const il_real *in, il_real *out) {
  const il_problem *p = ctx;
  return il_cell_map(p->cell, p->B, p->x, in, out, NULL, p->ws, NULL);
}

static il_status aa_solve(void *state, const il_problem *p, il_real *z, double *row_res, il_solve_result *res) {
  return il_anderson_run(state, p, cell_map, (void *)p, z, row_res, res);
}

static const il_option_decl anderson_options[] = {
    {"anderson-m", "M", "memory (iterates mixed), 1..32", "6", 1, 0},
    {"anderson-beta", "BETA", "mixing parameter in [1e-6, 1]", "1", 1, 0},
    {"anderson-lambda", "LAMBDA", "ridge relative to the largest squared residual in the window, in [0, 1e6]", "1e-4", 1, 0},
    {0},
};

const il_solver_ops il_solver_anderson_ops = {
    .name = "anderson",
    .summary = "Anderson acceleration from z = 0 (options anderson-m, anderson-beta, anderson-lambda)",
    .default_max_iter = 100,
    .options = anderson_options,
    .zero_default = 0,
    .per_sample_ok = 0,
    .create = aa_create,
    .ws_bytes = aa_ws_bytes,
    .solve = aa_solve,
    .unroll_backward = NULL,
    .unroll_nan_step = NULL,
    .last_lu = NULL,
    .destroy = aa_destroy,
};
