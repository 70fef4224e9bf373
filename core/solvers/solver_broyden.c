/* core/solvers/solver_broyden.c: limited-memory "good" Broyden on g(z) = z - f(z),
 * from z = 0 with the inverse Jacobian estimate H_0 = I (the first step is a
 * fixed-point step). Each sample keeps H = I + sum_i u_i v_i^T, updated by
 * Sherman-Morrison from the good Broyden update of J:
 *   s = z_{k+1} - z_k, y = g_{k+1} - g_k,
 *   H <- H + (s - H y) (s^T H) / (s^T H y),  so u = (s - H y) / (s^T H y), v = H^T s.
 * A sample whose s^T H y vanishes skips its update. When the memory (m pairs)
 * is full it restarts from H = I: overwriting the oldest pair, as some codes do,
 * would leave later pairs built on an H that no longer exists.
 * Stops on ||g||_F of the batch; iterations are map evaluations (as for fp and
 * anderson); the output is the last z. Option: broyden-m (default 20). No tape. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "il_solver.h"

typedef struct broyden_state {
  int m;
} broyden_state;

static il_status broyden_create(il_options *opt, void **state) {
  int m;
  IL_CHECK(il_options_get_int(opt, "broyden-m", 20, 1, 1000, &m));
  broyden_state *st = malloc(sizeof *st);
  if (!st) return IL_ERR(IL_ERR_NOMEM, "broyden: cannot allocate state");
  st->m = m;
  *state = st;
  return IL_OK;
}

static void broyden_destroy(void *state) { free(state); }

/* out_b = v_b + sum_{i<q} P_i,b (Q_i,b . v_b) per row: H v with (P, Q) = (U, V), H^T v with (V, U). */
static void apply(int B, int n, int q, size_t len, const il_real *P, const il_real *Q, const il_real *v, il_real *out) {
  for (int b = 0; b < B; b++) {
    const size_t o = (size_t)b * n;
    il_real *ob = out + o;
    memcpy(ob, v + o, (size_t)n * sizeof *ob);
    for (int i = 0; i < q; i++) {
      const il_real *pi = P + (size_t)i * len + o, *qi = Q + (size_t)i * len + o;
      double dot = 0;
#pragma omp simd reduction(+ : dot)
      for (int j = 0; j < n; j++) dot += (double)qi[j] * (double)v[o + j];
      const il_real c = (il_real)dot;
      for (int j = 0; j < n; j++) ob[j] += pi[j] * c;
    }
  }
}

static il_status broyden_solve(void *state, const il_problem *p, il_real *z, double *row_res,
                               il_solve_result *res) {
  const broyden_state *st = state;
  const il_cell *c = p->cell;
  const int B = p->B, n = c->n, m = st->m;
  const size_t len = (size_t)B * n;
  il_arena_mark mk = il_arena_get_mark(p->ws);
  il_status s = IL_OK;
  il_real *U, *V, *zk, *f, *g, *gnew, *d, *hy;
  double *rows;
  il_stop stop;
  il_best best;
  il_stop_begin(&stop, res);
  IL_CHECK(il_arena_alloc_n(p->ws, len * m, sizeof *U, (void **)&U));
  IL_CHECK(il_arena_alloc_n(p->ws, len * m, sizeof *V, (void **)&V));
  IL_CHECK(il_arena_calloc(p->ws, len, sizeof *zk, (void **)&zk));
  IL_CHECK(il_arena_alloc_n(p->ws, len, sizeof *f, (void **)&f));
  IL_CHECK(il_arena_alloc_n(p->ws, len, sizeof *g, (void **)&g));
  IL_CHECK(il_arena_alloc_n(p->ws, len, sizeof *gnew, (void **)&gnew));
  IL_CHECK(il_arena_alloc_n(p->ws, len, sizeof *d, (void **)&d));
  IL_CHECK(il_arena_alloc_n(p->ws, len, sizeof *hy, (void **)&hy));
  IL_CHECK(il_arena_alloc_n(p->ws, (size_t)B, sizeof *rows, (void **)&rows));
  IL_CHECK(il_best_init(&best, p));
  int q = 0; /* pairs in memory */
  for (int k = 0;; k++) {
    IL_CHECK_GOTO(s, c->ops->map(c, B, p->x, zk, f, NULL, p->ws), out);
    for (size_t i = 0; i < len; i++) gnew[i] = zk[i] - f[i];
    c->be->row_sqdist(B, n, gnew, NULL, rows);
    double local = 0;
    for (int b = 0; b < B; b++) local += rows[b];
    const double err = il_problem_norm(p, local);
    res->iters = k + 1;
    if (il_stop_check(&stop, p, err, k, res)) break;
    il_best_offer(&best, p, zk, rows, err, k);
    if (k > 0) { /* update H with s = d (the last step) and y = gnew - g */
      if (q == m) q = 0; /* restart */
      il_real *u = U + (size_t)q * len, *v = V + (size_t)q * len;
      for (size_t i = 0; i < len; i++) g[i] = gnew[i] - g[i]; /* y, in g's buffer */
      apply(B, n, q, len, U, V, g, hy);                       /* H y */
      apply(B, n, q, len, V, U, d, v);                        /* H^T s */
      for (int b = 0; b < B; b++) {
        const size_t o = (size_t)b * n;
        double den = 0;
#pragma omp simd reduction(+ : den)
        for (int j = 0; j < n; j++) den += (double)v[o + j] * (double)g[o + j]; /* s^T H y */
        if (!(fabs(den) > 1e-30) || !isfinite(den)) { /* no usable curvature: leave this sample's H */
          memset(u + o, 0, (size_t)n * sizeof *u);
          memset(v + o, 0, (size_t)n * sizeof *v);
          continue;
        }
        const il_real r = (il_real)(1.0 / den);
        for (int j = 0; j < n; j++) u[o + j] = (d[o + j] - hy[o + j]) * r;
      }
      q++;
    }
    if (k + 1 == p->max_iter) break;
    memcpy(g, gnew, len * sizeof *g);
    apply(B, n, q, len, U, V, g, d); /* d = H g; the step is -d */
    for (size_t i = 0; i < len; i++) { d[i] = -d[i]; zk[i] += d[i]; }
  }
  il_solve_finish(&best, p, zk, rows, row_res, 0, z, res);
out:
  il_arena_rewind(p->ws, mk);
  return s;
}

const il_solver_ops il_solver_broyden_ops = {
    .name = "broyden",
    .summary = "limited-memory good Broyden (inverse update) from z = 0 (option broyden-m)",
    .default_max_iter = 100,
    .option_keys = "broyden-m",
    .zero_default = 0,
    .per_sample_ok = 0,
    .create = broyden_create,
    .solve = broyden_solve,
    .unroll_backward = NULL,
    .unroll_nan_step = NULL,
    .last_lu = NULL,
    .destroy = broyden_destroy,
};
