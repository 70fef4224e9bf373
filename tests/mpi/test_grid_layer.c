/* tests/mpi/test_grid_layer.c: the scalapack backend on process grids equals
 * the single-rank CPU backend (float64). On the world it is started on (1, 2 or
 * 4 ranks) it builds every grid of 1x1, 1x2, 2x1, 2x2 that divides the world
 * (il_grid_create: BLACS on each group's sub-communicator; the D groups run
 * the same problems side by side) and, for odd sizes and n not a multiple of
 * the block size, runs one training forward and backward of every solver with
 * every backward mode on the grid and on a local cpu backend, then checks:
 *   - reasons equal; iteration counts equal, or, where they differ, the run
 *     that stopped earlier stopped with its residual within rounding of tol
 *     (printed as a NOTE: p?getrf sums in another order than LAPACK);
 *   - pairs with no LU anywhere (fp, anderson, broyden with unroll, phantom,
 *     jfb, implicit gmres): z*, dx and dW bit for bit equal, since the backend
 *     runs the CPU kernels on replicated (B, n) tensors;
 *   - pairs with an LU: z*, dx and dW within float64 rounding (relative max
 *     error 1e-10 against the largest entry);
 *   - every pair again with W and dW handed to the backend as distributed
 *     matrices (il_dist_matrix, as the model does): the GEMMs then sum over
 *     the grid, so z*, dx and dW are checked within 1e-10, and each rank's
 *     bytes for W and dW equal its ScaLAPACK share (numroc);
 *   - every rank of a grid holds the same bits (hash over the grid);
 *   - il_gradcheck on the grid backend: newton/implicit and newton/unroll
 *     against central differences.
 * Every rank computes and checks; the failure count is summed over the world
 * (collectives first, verdicts after, so no rank is left waiting). */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "il_backend.h"
#include "il_backend_scalapack.h"
#include "il_dist.h"
#include "il_gradcheck.h"
#include "il_grid.h"
#include "il_layer.h"
#include "il_rng.h"
#include "il_scalapack.h"

static int world_rank, failures, notes;

#define CHECK(cond, ...)                                                   \
  do {                                                                     \
    if (!(cond)) {                                                         \
      failures++;                                                          \
      fprintf(stderr, "[rank %d] FAIL %s:%d: ", world_rank, __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                                        \
      fprintf(stderr, "\n");                                               \
    }                                                                      \
  } while (0)
#define OK(call)                                                                                            \
  do {                                                                                                      \
    il_status s_ = (call);                                                                                  \
    if (s_ != IL_OK) {                                                                                      \
      fprintf(stderr, "[rank %d] FATAL %s:%d: %s: %s\n", world_rank, __FILE__, __LINE__, #call, il_error_message()); \
      MPI_Abort(MPI_COMM_WORLD, 1);                                                                         \
    }                                                                                                       \
  } while (0)

typedef struct run_out {
  double *z, *dx, *dW; /* host copies */
  size_t wbytes;       /* W and dW as the grid's backend holds them on this rank (distributed runs) */
  il_solve_result f, b;
  il_layer_diag diag; /* --diag's measurements: power-iteration rho, LU condition, gradient vs exact IFT */
} run_out;

/* One training forward + backward of (solver, backward, options) on be; results to host. */
static void run_layer(const il_backend *be, const char *solver, const char *backward, const char *adj, int n, int B,
                      const double *hW, const double *hx, const double *hC, int dist, run_out *o) {
  const size_t len = (size_t)B * n, nn = (size_t)n * n;
  il_arena a;
  OK(il_arena_init_for(&a, be, IL_MEM_WORKSPACE, NULL, 0));
  double *W, *x, *C, *out, *dx, *dW;
  OK(il_arena_alloc_n(&a, nn, sizeof *W, (void **)&W));
  OK(il_arena_alloc_n(&a, len, sizeof *x, (void **)&x));
  OK(il_arena_alloc_n(&a, len, sizeof *C, (void **)&C));
  OK(il_arena_alloc_n(&a, len, sizeof *out, (void **)&out));
  OK(il_arena_calloc(&a, len, sizeof *dx, (void **)&dx));
  OK(il_arena_calloc(&a, nn, sizeof *dW, (void **)&dW));
  OK(il_upload(be, W, hW, nn));
  OK(il_upload(be, x, hx, len));
  OK(il_upload(be, C, hC, len));
  if (dist) { /* W and dW 2-D block-cyclic, as the model hands them over; the arena counts the shares */
    size_t kw = 0, kd = 0;
    OK(il_dist_matrix(be, &a, W, n, n, &kw));
    OK(il_dist_matrix(be, &a, dW, n, n, &kd));
    o->wbytes = kw + kd;
  }
  il_options opts;
  il_options_init(&opts);
  if (adj) OK(il_options_set(&opts, "adjoint-solver", adj));
  il_layer_config cfg = {.cell = "tanh", .solver = solver, .backward = backward, .tol = 1e-10, .max_iter = 0,
                         .zero_nonconverged = IL_ZERO_AUTO, .opts = &opts};
  if (strcmp(solver, "fp") == 0 || strcmp(solver, "anderson") == 0 || strcmp(solver, "broyden") == 0) cfg.tol = 1e-8;
  il_memstats mem = {0};
  il_layer L;
  OK(il_layer_create(&L, &cfg, be, n, W, &mem));
  OK(il_layer_reserve(&L, B));
  L.diag_now = 1;
  OK(il_layer_forward(&L, B, x, out, 1));
  OK(il_layer_backward(&L, C, dx, dW));
  o->f = L.fres;
  o->b = L.bres;
  o->diag = L.diag;
  o->z = malloc(len * sizeof *o->z);
  o->dx = malloc(len * sizeof *o->dx);
  o->dW = malloc(nn * sizeof *o->dW);
  OK(il_download(be, o->z, out, len));
  OK(il_download(be, o->dx, dx, len));
  OK(il_download(be, o->dW, dW, nn));
  il_layer_destroy(&L);
  il_arena_destroy(&a);
}

static void run_free(run_out *o) {
  free(o->z);
  free(o->dx);
  free(o->dW);
}

/* max |a - b| / max |b| (0 when both are zero); -1 when the bits differ somewhere and bitwise is asked */
static double relerr(const double *a, const double *b, size_t len) {
  double d = 0, m = 0;
  for (size_t i = 0; i < len; i++) {
    const double e = fabs(a[i] - b[i]);
    if (e > d || isnan(e)) d = isnan(e) ? INFINITY : e;
    if (fabs(b[i]) > m) m = fabs(b[i]);
  }
  return m > 0 ? d / m : d;
}

static int same_bits(const double *a, const double *b, size_t len) { return memcmp(a, b, len * sizeof *a) == 0; }

typedef struct pair {
  const char *solver, *backward, *adj;
  int lu; /* the solver or the backward factors a Jacobian */
} pair;

static const pair pairs[] = {
    {"fp", "unroll", NULL, 0},         {"fp", "implicit", NULL, 1},       {"fp", "implicit", "gmres", 0},
    {"fp", "phantom:3", NULL, 0},      {"fp", "jfb", NULL, 0},            {"anderson", "phantom:3", NULL, 0},
    {"anderson", "implicit", NULL, 1}, {"anderson", "implicit", "fp", 0}, {"broyden", "phantom:2", NULL, 0},
    {"broyden", "implicit", NULL, 1},  {"broyden", "jfb", NULL, 0},       {"newton", "unroll", NULL, 1},
    {"newton", "implicit", NULL, 1},   {"newton", "implicit", "anderson", 1}, {"newton", "phantom:2", NULL, 1},
    {"newton-ls", "unroll", NULL, 1},  {"newton-ls", "implicit", NULL, 1},
};

static void check_case(const il_grid *g, const il_backend *cpu, const il_backend *grid, const pair *p, int n, int B,
                       uint64_t seed, int dist) {
  const size_t len = (size_t)B * n, nn = (size_t)n * n;
  double *hW = malloc(nn * sizeof *hW), *hx = malloc(len * sizeof *hx), *hC = malloc(len * sizeof *hC);
  il_rng r;
  il_rng_seed(&r, seed);
  for (size_t i = 0; i < nn; i++) hW[i] = 0.9 * (2 * il_rng_uniform(&r) - 1) / sqrt((double)n);
  for (size_t i = 0; i < len; i++) hx[i] = il_rng_normal(&r);
  for (size_t i = 0; i < len; i++) hC[i] = il_rng_normal(&r);
  run_out a, b;
  run_layer(cpu, p->solver, p->backward, p->adj, n, B, hW, hx, hC, 0, &a);
  run_layer(grid, p->solver, p->backward, p->adj, n, B, hW, hx, hC, dist, &b);
  /* collective: the grid's ranks agree bit for bit */
  int same = 0;
  uint64_t h = il_hash_bytes(b.z, len * sizeof *b.z) ^ il_hash_bytes(b.dW, nn * sizeof *b.dW) * 3;
  OK(il_dist_in_sync((il_dist *)&g->grid, h, &same));
  char what[160];
  snprintf(what, sizeof what, "grid %dx%d nb %d n %d B %d %s/%s%s%s%s", g->pr, g->pc, g->nb, n, B, p->solver,
           p->backward, p->adj ? " adjoint " : "", p->adj ? p->adj : "", dist ? " (W distributed)" : "");
  if (dist) { /* the shares: W and dW per rank as ScaLAPACK's numroc counts them */
    const int zero = 0, ml = numroc_(&n, &g->nb, &g->myrow, &zero, &g->pr), nl = numroc_(&n, &g->nb, &g->mycol, &zero, &g->pc);
    const size_t want = 2 * (size_t)(ml > 1 ? ml : 1) * nl * sizeof(double);
    CHECK(b.wbytes == want, "%s: W and dW hold %zu bytes on rank %d, numroc says %zu", what, b.wbytes, world_rank, want);
  }
  CHECK(same, "%s: the grid's ranks hold different z*/dW", what);
  CHECK(a.f.reason == b.f.reason, "%s: forward reason %s on the grid, %s on one rank", what, il_reason_name(b.f.reason),
        il_reason_name(a.f.reason));
  CHECK(a.b.reason == b.b.reason, "%s: backward reason %s on the grid, %s on one rank", what,
        il_reason_name(b.b.reason), il_reason_name(a.b.reason));
  int iters_equal = a.f.iters == b.f.iters && a.b.iters == b.b.iters;
  if (!iters_equal) {
    /* allowed only where the run that stopped first stopped within rounding of its tolerance */
    const il_solve_result *first = a.f.iters < b.f.iters ? &a.f : &b.f;
    const il_solve_result *bf = a.b.iters < b.b.iters ? &a.b : &b.b;
    const int fwd_near = a.f.iters == b.f.iters || (abs(a.f.iters - b.f.iters) == 1 && first->residual > 0.999 * first->tol_abs);
    const int bwd_near = a.b.iters == b.b.iters || (abs(a.b.iters - b.b.iters) == 1 && bf->residual > 0.999 * bf->tol_abs);
    CHECK(fwd_near && bwd_near, "%s: iterations fwd %d/%d bwd %d/%d (grid/one rank), residuals %.17g/%.17g, tol %.3g",
          what, b.f.iters, a.f.iters, b.b.iters, a.b.iters, b.f.residual, a.f.residual, first->tol_abs);
    if (fwd_near && bwd_near && world_rank == 0) {
      printf("NOTE %s: iteration counts differ (fwd %d/%d, bwd %d/%d, grid/one rank); the earlier stop's residual "
             "%.6g is within rounding of tol %.3g\n", what, b.f.iters, a.f.iters, b.b.iters, a.b.iters, first->residual,
             first->tol_abs);
      notes++;
    }
  } else if (!p->lu && !dist) {
    CHECK(same_bits(a.z, b.z, len), "%s: z* differs (no LU: must be bitwise), relerr %.3g", what, relerr(b.z, a.z, len));
    CHECK(same_bits(a.dx, b.dx, len), "%s: dx differs (no LU: must be bitwise), relerr %.3g", what,
          relerr(b.dx, a.dx, len));
    CHECK(same_bits(a.dW, b.dW, nn), "%s: dW differs (no LU: must be bitwise), relerr %.3g", what,
          relerr(b.dW, a.dW, nn));
  } else {
    const double ez = relerr(b.z, a.z, len), ex = relerr(b.dx, a.dx, len), ew = relerr(b.dW, a.dW, nn);
    CHECK(ez <= 1e-10 && ex <= 1e-10 && ew <= 1e-10, "%s: relerr z* %.3g dx %.3g dW %.3g (bound 1e-10)", what, ez, ex,
          ew);
  }
  /* the diagnostics: the spectral radius by power iteration runs on replicated tensors (bitwise
   * without an LU); the condition estimate is Higham's on p?getrs against LAPACK's gecon */
  if (iters_equal) {
    CHECK((isnan(a.diag.rho_max) && isnan(b.diag.rho_max)) ||
              ((p->lu || dist) ? fabs(a.diag.rho_max - b.diag.rho_max) <= 1e-10 * fabs(a.diag.rho_max)
                     : a.diag.rho_max == b.diag.rho_max),
          "%s: spectral radius %.17g on the grid, %.17g on one rank", what, b.diag.rho_max, a.diag.rho_max);
    CHECK(isnan(a.diag.cond_max) == isnan(b.diag.cond_max) &&
              (isnan(a.diag.cond_max) || (b.diag.cond_max <= 1.5 * a.diag.cond_max && a.diag.cond_max <= 1.5 * b.diag.cond_max)),
          "%s: condition estimate %.6g on the grid, %.6g on one rank (allowed: a factor of 1.5)", what, b.diag.cond_max,
          a.diag.cond_max);
    CHECK(!p->lu || !(a.diag.rho_max > 0) || isfinite(b.diag.rho_max), "%s: no spectral radius on the grid", what);
  }
  if (world_rank == 0 && iters_equal)
    printf("ok %s: iters %d/%d reason %s, z* relerr %.2g, dW relerr %.2g%s; rho %.6g, cond %.6g (one rank %.6g)\n",
           what, b.f.iters, b.b.iters, il_reason_name(b.f.reason), relerr(b.z, a.z, len), relerr(b.dW, a.dW, nn),
           p->lu || dist ? "" : " (bitwise)", b.diag.rho_max, b.diag.cond_max, a.diag.cond_max);
  run_free(&a);
  run_free(&b);
  free(hW);
  free(hx);
  free(hC);
}

static void check_gradcheck(const il_grid *g, const il_backend *grid, const char *backward, int n) {
  il_options opts;
  il_options_init(&opts);
  il_gradcheck_config cfg = {
      .layer = {.cell = "tanh", .solver = "newton", .backward = backward, .tol = 1e-12, .opts = &opts,
                .zero_nonconverged = IL_ZERO_AUTO},
      .n = n, .B = 3, .scale = 0.9, .eps = 1e-6, .seed = 5};
  il_gradcheck_result res;
  OK(il_gradcheck(&cfg, grid, &res));
  CHECK(res.relerr_x < 1e-6 && res.relerr_W < 1e-6, "gradcheck grid %dx%d n %d newton/%s: relerr x %.3g W %.3g",
        g->pr, g->pc, n, backward, res.relerr_x, res.relerr_W);
  if (world_rank == 0)
    printf("gradcheck grid %dx%d nb %d n %d newton/%s: relerr x %.2e W %.2e\n", g->pr, g->pc, g->nb, n, backward,
           res.relerr_x, res.relerr_W);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int size;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  OK(il_grid_register_backends());
  const int shapes[4][2] = {{1, 1}, {1, 2}, {2, 1}, {2, 2}};
  /* sizes: odd, below, at and above the block size, not multiples of it */
  const struct { int n, nb; } sizes[] = {{64, 64}, {97, 16}, {131, 32}, {300, 64}};
  const int quick = getenv("IL_GRID_TEST_QUICK") != NULL;
  for (int s = 0; s < 4; s++) {
    const int pr = shapes[s][0], pc = shapes[s][1];
    if (size % (pr * pc)) continue;
    for (int z = 0; z < 4; z++) {
      il_grid g;
      OK(il_grid_create(MPI_COMM_WORLD, pr, pc, sizes[z].nb, &g));
      const il_backend_options o1 = {.threads = 1}, og = {.threads = 1, .grid = &g};
      il_backend *cpu, *grid;
      OK(il_backend_create("cpu", &o1, &cpu));
      OK(il_backend_create("scalapack", &og, &grid));
      const int n = sizes[z].n, B = n >= 300 ? 2 : 3;
      for (size_t k = 0; k < sizeof pairs / sizeof *pairs; k++) {
        if (n >= 300 && (quick || strcmp(pairs[k].backward, "unroll") == 0)) continue; /* keep the big size short */
        check_case(&g, cpu, grid, &pairs[k], n, B, 1000 + (uint64_t)(17 * z + k), 0);
        check_case(&g, cpu, grid, &pairs[k], n, B, 1000 + (uint64_t)(17 * z + k), 1);
      }
      if (n == 97) {
        check_gradcheck(&g, grid, "implicit", 23);
        check_gradcheck(&g, grid, "unroll", 23);
      }
      il_backend_destroy(grid);
      il_backend_destroy(cpu);
      il_grid_free(&g);
    }
  }
  int total = 0;
  MPI_Allreduce(&failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (world_rank == 0) printf("test_grid_layer: %d rank(s), %d failure(s), %d note(s)\n", size, total, notes);
  MPI_Finalize();
  return total ? 1 : 0;
}
