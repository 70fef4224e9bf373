/* core/solvers/solver_anderson.c: Anderson acceleration of z <- f(z) (Walker &
 * Ni 2011; the DEQ papers' and TorchDEQ's default solver), from z = 0. Each
 * sample keeps the last m iterates X_i and maps F_i = f(X_i) and mixes them:
 *   alpha = argmin || sum_i alpha_i (F_i - X_i) ||^2 + lam' ||alpha||^2, sum_i alpha_i = 1
 *   z_next = beta * sum_i alpha_i F_i + (1 - beta) * sum_i alpha_i X_i
 * solved per sample as alpha = y / (1^T y), (G G^T + lam' I) y = 1 (LDL^T; the bordered
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
size_t il_anderson_ws_bytes(const il_anderson_params *a, int B, int n, int keep_best) {
  const size_t len = (size_t)B * n;
  const size_t xslots = a->beta == 1.0 ? 1 : (size_t)a->m + 1; /* beta = 1 mixes F only: X is the new iterate */
  return (2 * (size_t)(a->m + 1) + xslots) * R(len, il_real) + R((size_t)B * 2 * a->m, il_real) +
         R(B, unsigned char) + (keep_best ? R(len, il_real) + R(B, unsigned char) : 0);
}

/* The Gram matrices of all samples are stored sample-innermost, gram[(i R + j) B + b], so
 * that the mixing solves run across the batch in SIMD lanes: each step of the q x q
 * LDL^T below is one loop over b, the same operations per sample as a scalar solve.
 * Only the lower triangle (slot i >= slot j) is kept: GRAM_SYM reads either half. */
#define GRAM(i, j) (gram + ((size_t)(i) * R + (j)) * B)
#define GRAM_SYM(i, j) ((i) >= (j) ? GRAM(i, j) : GRAM(j, i))

/* Host scratch of the batched mixing solve. */
typedef struct aa_mix_ws {
  double *L;          /* (q (q+1) / 2, B) packed lower triangle: L of LDL^T, 1 / D on the diagonal */
  double *y;          /* (q, B) the solution, then alpha */
  double *gmax;       /* (B) the largest squared residual in each window */
  unsigned char *ok;  /* (B) 1: the LDL^T path succeeded */
} aa_mix_ws;

/* The bordered KKT system [[0, 1^T], [1, G G^T + lam' I]] of sample b: alpha (q) into
 * rhs[1..q]. Returns 0 when it is singular (a degenerate window). */
static int aa_kkt(const il_anderson_params *st, const double *gram, int R, int B, int b, const int *idx, int q,
                  double gmax, double *rhs) {
  double H[(AA_MAX_M + 1) * (AA_MAX_M + 1)];
  const int K1 = q + 1;
  H[0] = 0;
  rhs[0] = 1;
  for (int i = 0; i < q; i++) {
    H[i + 1] = H[(i + 1) * K1] = 1;
    rhs[i + 1] = 0;
    for (int j = 0; j < q; j++) H[(i + 1) * K1 + j + 1] = GRAM_SYM(idx[i], idx[j])[b] + (i == j ? st->lam * gmax : 0);
  }
  return small_solve(K1, H, rhs);
}

/* Mixing coefficients of every sample from the window's Gram matrix (slots idx, q of them):
 * alpha_i of sample b into w->y[i B + b]; deg[b] = 1 where the window is degenerate (alpha
 * is then not used). The constrained least squares is alpha = y / (1^T y) with
 * (G G^T + lam' I) y = 1, an SPD solve by LDL^T; the KKT system is the fallback when
 * the window is singular (lam = 0) or 1^T y vanishes. Returns the degenerate count. */
static int aa_mix_coef(const il_anderson_params *st, const double *gram, int R, int B, const int *idx, int q,
                       const aa_mix_ws *w, unsigned char *deg) {
  double *L = w->L, *y = w->y, *gmax = w->gmax;
  unsigned char *ok = w->ok;
#define TRI(i, j) (L + ((size_t)(i) * ((i) + 1) / 2 + (j)) * B)
  for (int b = 0; b < B; b++) gmax[b] = 0, ok[b] = 1;
  for (int i = 0; i < q; i++) {
    const double *g = GRAM(idx[i], idx[i]);
    for (int b = 0; b < B; b++) gmax[b] = g[b] > gmax[b] ? g[b] : gmax[b];
  }
  /* LDL^T, row by row, without square roots: with c_ij = L_ij d_j,
   *   c_ij = a_ij - sum_{k<j} c_ik L_jk,  L_ij = c_ij / d_j,  d_i = a_ii - sum_{j<i} c_ij L_ij.
   * TRI's diagonal keeps 1 / d_i, so a lane divides q + 1 times in all (a vector division or
   * square root costs several FMAs of throughput). Row i's c lives in y until the solve. */
  double *c = y;
  for (int i = 0; i < q; i++) {
    for (int j = 0; j < i; j++) {
      double *cj = c + (size_t)j * B;
      memcpy(cj, GRAM(idx[i], idx[j]), (size_t)B * sizeof *cj); /* idx ascends: the lower half */
      for (int k = 0; k < j; k++) {
        const double *ck = c + (size_t)k * B, *l = TRI(j, k);
        for (int b = 0; b < B; b++) cj[b] -= ck[b] * l[b];
      }
    }
    const double *g = GRAM(idx[i], idx[i]);
    double *d = TRI(i, i);
    for (int b = 0; b < B; b++) d[b] = g[b] + st->lam * gmax[b];
    for (int j = 0; j < i; j++) {
      const double *cj = c + (size_t)j * B, *inv = TRI(j, j);
      double *l = TRI(i, j);
      for (int b = 0; b < B; b++) l[b] = cj[b] * inv[b], d[b] -= cj[b] * l[b];
    }
    for (int b = 0; b < B; b++) {
      ok[b] &= d[b] > 0;
      d[b] = 1 / (d[b] > 0 ? d[b] : 1); /* a failed lane only needs to stay finite */
    }
  }
  for (int i = 0; i < q; i++) { /* L z = 1, unit diagonal */
    double *yi = y + (size_t)i * B;
    for (int b = 0; b < B; b++) yi[b] = 1;
    for (int k = 0; k < i; k++) {
      const double *l = TRI(i, k), *yk = y + (size_t)k * B;
      for (int b = 0; b < B; b++) yi[b] -= l[b] * yk[b];
    }
  }
  for (int i = q - 1; i >= 0; i--) { /* L^T x = D^-1 z */
    double *yi = y + (size_t)i * B;
    const double *inv = TRI(i, i);
    for (int b = 0; b < B; b++) yi[b] *= inv[b];
    for (int k = i + 1; k < q; k++) {
      const double *l = TRI(k, i), *yk = y + (size_t)k * B;
      for (int b = 0; b < B; b++) yi[b] -= l[b] * yk[b];
    }
  }
  double *sum = gmax + B; /* (B) 1^T y, after gmax in the scratch */
  for (int b = 0; b < B; b++) sum[b] = 0;
  for (int i = 0; i < q; i++)
    for (int b = 0; b < B; b++) sum[b] += y[(size_t)i * B + b];
  for (int b = 0; b < B; b++) {
    ok[b] &= isfinite(sum[b]) && fabs(sum[b]) > 1e-300;
    sum[b] = 1 / sum[b];
  }
  for (int i = 0; i < q; i++)
    for (int b = 0; b < B; b++) y[(size_t)i * B + b] *= sum[b];
#undef TRI
  int ndeg = 0;
  for (int b = 0; b < B; b++) {
    deg[b] = 0;
    if (ok[b]) continue;
    double rhs[AA_MAX_M + 1];
    deg[b] = !aa_kkt(st, gram, R, B, b, idx, q, gmax[b], rhs);
    ndeg += deg[b];
    for (int i = 0; i < q; i++) y[(size_t)i * B + b] = rhs[i + 1];
  }
  return ndeg;
}

il_status il_anderson_run(const il_anderson_params *st, const il_problem *p, il_fixed_map_fn map, void *ctx,
                          il_real *z, double *row_res, il_solve_result *res) {
  const il_cell *c = p->cell;
  const il_backend *be = p->be;
  const int B = p->B, n = c->n, m = st->m, R = m + 1; /* the ring holds the window plus the slot being written */
  const size_t len = (size_t)B * n;
  const int nterm = st->beta == 1.0 ? 1 : 2; /* terms per window slot: beta F_i (+ (1 - beta) X_i) */
  const int xslots = nterm == 2 ? R : 1;    /* X_i of old slots are only read when beta < 1 */
  il_marks mk = il_marks_get(p->ws, p->hws);
  il_status s = IL_OK;
  il_real *X, *F, *G;  /* rings of m + 1 slots, each (B, n); X has one slot when beta = 1 */
  il_real *coef, *hcoef; /* (B, nterm m) mixing coefficients: space, host */
  unsigned char *deg, *hdeg; /* (B) rows whose window is degenerate: space, host */
  double *frows = NULL;       /* host (B): ||F_b||^2 with stop_relf */
  double *gram, *rows, *dots; /* host: (m+1, m+1, B) Gram of the G slots (GRAM); (B); (B, m+1) */
  aa_mix_ws mw;
  il_stop stop;
  il_best best;
  il_stop_begin(&stop, res);
  IL_CHECK(il_arena_calloc(p->ws, len * xslots, sizeof *X, (void **)&X));
  IL_CHECK(il_arena_alloc_n(p->ws, len * R, sizeof *F, (void **)&F));
  IL_CHECK(il_arena_alloc_n(p->ws, len * R, sizeof *G, (void **)&G));
  IL_CHECK(il_arena_alloc_n(p->ws, (size_t)B * nterm * m, sizeof *coef, (void **)&coef));
  IL_CHECK(il_arena_alloc_n(p->ws, (size_t)B, 1, (void **)&deg));
  IL_CHECK(il_arena_alloc_n(p->hws, (size_t)B * nterm * m, sizeof *hcoef, (void **)&hcoef));
  IL_CHECK(il_arena_alloc_n(p->hws, (size_t)B, 1, (void **)&hdeg));
  IL_CHECK(il_arena_alloc_n(p->hws, (size_t)B * R * R, sizeof *gram, (void **)&gram)); /* read only where written */
  IL_CHECK(il_arena_alloc_n(p->hws, (size_t)B, sizeof *rows, (void **)&rows));
  IL_CHECK(il_arena_alloc_n(p->hws, (size_t)B * R, sizeof *dots, (void **)&dots));
  if (p->stop_relf) IL_CHECK(il_arena_alloc_n(p->hws, (size_t)B, sizeof *frows, (void **)&frows));
  IL_CHECK(il_arena_alloc_n(p->hws, (size_t)B * m * (m + 1) / 2, sizeof *mw.L, (void **)&mw.L));
  IL_CHECK(il_arena_alloc_n(p->hws, (size_t)B * m, sizeof *mw.y, (void **)&mw.y));
  IL_CHECK(il_arena_alloc_n(p->hws, (size_t)B * 2, sizeof *mw.gmax, (void **)&mw.gmax));
  IL_CHECK(il_arena_alloc_n(p->hws, (size_t)B, 1, (void **)&mw.ok));
  IL_CHECK(il_best_init(&best, p));
  if (p->z0) IL_CHECK(il_copy(be, X, p->z0, len)); /* warm start in slot 0 */
  int last = 0; /* slot of the newest iterate */
  for (int k = 0; k < p->max_iter; k++) {
    const int slot = k % R;
    il_real *Xs = X + (size_t)(xslots == 1 ? 0 : slot) * len, *Fs = F + (size_t)slot * len,
            *Gs = G + (size_t)slot * len;
    if (k == 1) { /* the first step is a plain fixed-point step */
      IL_CHECK_GOTO(s, il_copy(be, Xs, F, len), out);
    } else if (k > 1) {
      const int nk = k < m ? k : m; /* slots in the window, all but the one being written */
      int idx[AA_MAX_M];
      const il_real *terms[2 * AA_MAX_M];
      int q = 0;
      for (int i = 0; i < R && q < nk; i++)
        if (i != slot) idx[q++] = i;
      for (int i = 0; i < q; i++) {
        terms[nterm * i] = F + (size_t)idx[i] * len;
        if (nterm == 2) terms[nterm * i + 1] = X + (size_t)idx[i] * len;
      }
      const int ndeg = aa_mix_coef(st, gram, R, B, idx, q, &mw, hdeg);
      for (int b = 0; b < B; b++) { /* alpha is (q, B); row_combine takes (B, nterm q) */
        il_real *cb = hcoef + (size_t)b * nterm * q;
        if (hdeg[b]) {
          for (int i = 0; i < nterm * q; i++) cb[i] = 0;
        } else if (nterm == 1) {
          for (int i = 0; i < q; i++) cb[i] = (il_real)mw.y[(size_t)i * B + b];
        } else {
          for (int i = 0; i < q; i++) {
            const il_real a = (il_real)mw.y[(size_t)i * B + b];
            cb[2 * i] = a * (il_real)st->beta, cb[2 * i + 1] = a * (il_real)(1 - st->beta);
          }
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
    /* G = F - X and the Gram row and column of this slot, against the slots of the next
     * window only: once the ring is full, the oldest slot is overwritten next */
    const int filled = k + 1 < R ? k + 1 : R, evict = k >= m ? (k + 1) % R : -1;
    const il_real *gslots[AA_MAX_M + 1];
    int gi[AA_MAX_M + 1], nd = 0;
    for (int i = 0; i < filled; i++)
      if (i != evict) gi[nd] = i, gslots[nd++] = G + (size_t)i * len;
    IL_CHECK_GOTO(s, IL_BE(be, row_sub_dot, B, n, nd, gslots, Fs, Xs, Gs, dots), out); /* sync point: the Gram row */
    for (int t = 0; t < nd; t++) {
      double *g = GRAM_SYM(slot, gi[t]);
      for (int b = 0; b < B; b++) g[b] = dots[(size_t)b * nd + t];
    }
    memcpy(rows, GRAM(slot, slot), (size_t)B * sizeof *rows);
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
#undef GRAM

static size_t aa_ws_bytes(void *state, const il_cell *c, int B, int max_iter, int taped) {
  (void)max_iter, (void)taped;
  return il_anderson_ws_bytes(state, B, c->n, 1) + c->ops->ws_bytes(c, B);
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
