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

#define R(count, T) il_ws_round((size_t)(count) * sizeof(T))
static size_t broyden_ws_bytes(void *state, const il_cell *c, int B, int max_iter, int taped) {
  (void)max_iter, (void)taped;
  const int m = ((broyden_state *)state)->m;
  const size_t len = (size_t)B * c->n;
  return 2 * R(len * m, il_real) + 7 * R(len, il_real) + R(2 * (size_t)B, il_real) + R(B, unsigned char) +
         c->ops->ws_bytes(c, B);
}

/* One pass of row_lowrank per iteration gives H g and v = H^T s (TorchDEQ's count: a matvec
 * and an rmatvec; the textbook form takes three applies). With H the estimate before the
 * update and s = -H g_old the last step,
 *   H y = H g - H g_old = H g + s,  s - H y = -H g,  s^T H y = s . H g + s . s,
 * and the next step is -H' g = -(H g + u (v . g)) with v . g = s^T H g, so
 *   u = -H g / (s^T H y),  -H' g = -(s . s / s^T H y) H g:
 * both are multiples of H g. After a restart H = I is not the H that made s: then
 * H y = y = g - g_old, u = (s - y) / (s . y) and -H' g = -(g + u (s . g)). */
static il_status broyden_solve(void *state, const il_problem *p, il_real *z, double *row_res,
                               il_solve_result *res) {
  const broyden_state *st = state;
  const il_cell *c = p->cell;
  const il_backend *be = p->be;
  const int B = p->B, n = c->n, m = st->m;
  const size_t len = (size_t)B * n;
  il_marks mk = il_marks_get(p->ws, p->hws);
  il_status s = IL_OK;
  il_real *U, *V, *zk, *f, *g, *gnew, *d, *hy, *rc, *hrc;
  unsigned char *bad, *hbad; /* rows that skip their update: space, host */
  double *rows, *dots;
  const il_real **up, **vp; /* host (m) slot pointers of U and V */
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
  IL_CHECK(il_arena_alloc_n(p->ws, 2 * (size_t)B, sizeof *rc, (void **)&rc));
  IL_CHECK(il_arena_alloc_n(p->ws, (size_t)B, 1, (void **)&bad));
  IL_CHECK(il_arena_alloc_n(p->hws, (size_t)B, sizeof *rows, (void **)&rows));
  IL_CHECK(il_arena_alloc_n(p->hws, 2 * (size_t)B, sizeof *dots, (void **)&dots));
  IL_CHECK(il_arena_alloc_n(p->hws, 2 * (size_t)B, sizeof *hrc, (void **)&hrc));
  IL_CHECK(il_arena_alloc_n(p->hws, (size_t)B, 1, (void **)&hbad));
  IL_CHECK(il_arena_alloc_n(p->hws, (size_t)m, sizeof *up, (void **)&up));
  IL_CHECK(il_arena_alloc_n(p->hws, (size_t)m, sizeof *vp, (void **)&vp));
  for (int i = 0; i < m; i++) up[i] = U + (size_t)i * len, vp[i] = V + (size_t)i * len;
  IL_CHECK(il_best_init(&best, p));
  if (p->z0) IL_CHECK(il_copy(be, zk, p->z0, len)); /* warm start */
  int q = 0; /* pairs in memory */
  for (int k = 0;; k++) {
    IL_CHECK_GOTO(s, il_cell_map(c, B, p->x, zk, f, NULL, p->ws, NULL), out);
    const il_real *gx = gnew; /* g = z - f and ||g||^2 per row in one pass */
    IL_CHECK_GOTO(s, IL_BE(be, row_sub_dot, B, n, 1, &gx, zk, f, gnew, rows), out); /* sync point: the stopping test */
    double local = 0;
    for (int b = 0; b < B; b++) local += rows[b];
    const double err = il_problem_norm(p, local);
    res->iters = k + 1;
    if (il_stop_check(&stop, p, err, k, res)) break;
    IL_CHECK_GOTO(s, il_best_offer(&best, p, zk, rows, err, k), out);
    if (k > 0) { /* update H with s = d (the last step) and y = gnew - g */
      const int restart = q == m;
      if (restart) q = 0;
      il_real *u = U + (size_t)q * len, *v = V + (size_t)q * len, *hg = f; /* f is free once g is formed */
      IL_CHECK_GOTO(s, IL_BE(be, row_lowrank, B, n, q, up, vp, gnew, hg, d, v), out); /* H g, v = H^T s */
      const il_real *dx[2] = {hg, d};
      if (restart) {
        IL_CHECK_GOTO(s, IL_BE(be, lincomb, len, 1, gnew, -1, g, hy), out); /* H y = y */
        dx[1] = hy;
      }
      IL_CHECK_GOTO(s, IL_BE(be, row_dot, B, n, 2, dx, d, dots), out); /* sync point: s . H g, s . s (s . y) */
      int nbad = 0;
      for (int b = 0; b < B; b++) {
        const double shg = dots[2 * b], den = restart ? dots[2 * b + 1] : shg + dots[2 * b + 1];
        hbad[b] = !(fabs(den) > 1e-30) || !isfinite(den); /* no usable curvature: leave this sample's H */
        nbad += hbad[b];
        if (restart) /* u = (s - y) / (s . y), then -H' g = -g - u (s . g) */
          hrc[b] = hbad[b] ? 0 : (il_real)(1.0 / den), hrc[B + b] = hbad[b] ? 0 : (il_real)-shg;
        else /* u = -H g / (s^T H y), -H' g = -(s . s / s^T H y) H g */
          hrc[b] = hbad[b] ? 0 : (il_real)(-1.0 / den), hrc[B + b] = hbad[b] ? -1 : (il_real)(-dots[2 * b + 1] / den);
      }
      IL_CHECK_GOTO(s, il_upload(be, rc, hrc, 2 * (size_t)B), out);
      if (restart) {
        IL_CHECK_GOTO(s, IL_BE(be, lincomb, len, 1, d, -1, hy, u), out);
        IL_CHECK_GOTO(s, IL_BE(be, row_lincomb, B, n, 1, rc, u, 0, NULL, u), out);
      } else {
        IL_CHECK_GOTO(s, IL_BE(be, row_lincomb, B, n, 1, rc, hg, 0, NULL, u), out);
      }
      if (nbad) {
        IL_CHECK_GOTO(s, IL_BE(be, copy, IL_COPY_TO_SPACE, bad, hbad, (size_t)B), out);
        IL_CHECK_GOTO(s, IL_BE(be, row_fill, B, n, bad, 1, 0, u), out);
        IL_CHECK_GOTO(s, IL_BE(be, row_fill, B, n, bad, 1, 0, v), out);
      }
      q++;
      if (k + 1 == p->max_iter) break;
      if (restart) IL_CHECK_GOTO(s, IL_BE(be, row_lincomb, B, n, 1, rc + B, u, -1, hg, d), out);
      else IL_CHECK_GOTO(s, IL_BE(be, row_lincomb, B, n, 1, rc + B, hg, 0, NULL, d), out);
    } else {
      if (k + 1 == p->max_iter) break;
      IL_CHECK_GOTO(s, IL_BE(be, axpby, len, -1, gnew, 0, d), out); /* H = I: d = -g */
    }
    il_real *tmp = g; /* the residual becomes the old one */
    g = gnew, gnew = tmp;
    IL_CHECK_GOTO(s, IL_BE(be, axpby, len, 1, d, 1, zk), out);
  }
  IL_CHECK_GOTO(s, il_solve_finish(&best, p, zk, rows, row_res, 0, z, res, NULL), out);
out:
  il_marks_rewind(p->ws, p->hws, mk);
  return s;
}

static const il_option_decl broyden_options[] = {
    {"broyden-m", "M", "memory (rank-one updates kept before a restart), 1..1000", "20", 1, 0},
    {0},
};

const il_solver_ops il_solver_broyden_ops = {
    .name = "broyden",
    .summary = "limited-memory good Broyden (inverse update) from z = 0 (option broyden-m)",
    .default_max_iter = 100,
    .options = broyden_options,
    .zero_default = 0,
    .per_sample_ok = 0,
    .create = broyden_create,
    .ws_bytes = broyden_ws_bytes,
    .solve = broyden_solve,
    .unroll_backward = NULL,
    .unroll_nan_step = NULL,
    .last_lu = NULL,
    .destroy = broyden_destroy,
};
