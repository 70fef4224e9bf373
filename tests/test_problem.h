/* tests/test_problem.h: the float64 layer tests' common setup: one backend
 * instance (ILBENCH_TEST_DEVICE, default "cpu"; ctest also runs the layer tests
 * on "cpu-guard", whose memory the host cannot touch), a space arena for the
 * tests' tensors, the host <-> space plumbing, and random problems drawn like
 * PyTorch's Linear initialisation. The tests compute and assert on host arrays;
 * every tensor handed to the core is uploaded first and every result downloaded.
 * Include once per test, after test_util.h. */
#ifndef IL_TEST_PROBLEM_H
#define IL_TEST_PROBLEM_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "il_backend.h"
#include "il_layer.h"
#include "il_rng.h"
#include "test_util.h"

#define IL_TEST_UNUSED __attribute__((unused))

static il_backend *be;
static il_arena tspace; /* the tests' own tensors, in be's space; reset before every test */

static const char *test_device(void) {
  const char *d = getenv("ILBENCH_TEST_DEVICE");
  return d && *d ? d : "cpu";
}

/* be := a new instance of the backend `name`, with an empty tensor arena. */
static int setup_device(const char *name) {
  const il_backend_options o = {.threads = 1};
  if (il_backend_create(name, &o, &be) != IL_OK) {
    fprintf(stderr, "cannot create backend '%s': %s\n", name, il_error_message());
    return -1;
  }
  return il_arena_init_for(&tspace, be, IL_MEM_WORKSPACE, NULL, 0) == IL_OK ? 0 : -1;
}

static IL_TEST_UNUSED int setup(void **state) {
  (void)state;
  fprintf(stderr, "[ backend  ] %s\n", test_device());
  return setup_device(test_device());
}

static IL_TEST_UNUSED int teardown(void **state) {
  (void)state;
  il_arena_destroy(&tspace);
  il_backend_destroy(be);
  be = NULL;
  return 0;
}

/* Per-test setup: the tensors of the previous test are gone. */
static IL_TEST_UNUSED int reset_tensors(void **state) {
  (void)state;
  il_arena_reset(&tspace);
  return 0;
}
#define IL_TEST(f) cmocka_unit_test_setup(f, reset_tensors)

/* n reals in the space: a copy of host (NULL: zero-filled). Valid until the test ends. */
static IL_TEST_UNUSED double *dev(const double *h, size_t n) {
  double *d;
  if (!h) {
    assert_ok(il_arena_calloc(&tspace, n, sizeof *d, (void **)&d));
  } else {
    assert_ok(il_arena_alloc_n(&tspace, n, sizeof *d, (void **)&d));
    assert_ok(il_upload(be, d, h, n));
  }
  return d;
}

/* space -> host */
static IL_TEST_UNUSED void host(double *dst, const double *devp, size_t n) { assert_ok(il_download(be, dst, devp, n)); }

/* ---- layers from host arrays ---- */

/* Create L on be from a host W (uploaded; the copy lives until the test ends). */
static IL_TEST_UNUSED il_status layer_create_h(il_layer *L, const il_layer_config *cfg, int n, const double *W,
                                               il_memstats *stats) {
  return il_layer_create(L, cfg, be, n, dev(W, (size_t)n * n), stats);
}

/* Forward of host x (uploaded and kept for backward) into host out (may be NULL). */
static IL_TEST_UNUSED void layer_forward_h(il_layer *L, int B, const double *x, double *out, int train) {
  const size_t len = (size_t)B * L->cell.n;
  double *dout = dev(NULL, len);
  assert_ok(il_layer_forward(L, B, dev(x, len), dout, train));
  if (out) host(out, dout, len);
}

/* The same from the starting iterate z0 (host). */
static IL_TEST_UNUSED void layer_forward_from_h(il_layer *L, int B, const double *x, const double *z0, double *out,
                                                int train) {
  const size_t len = (size_t)B * L->cell.n;
  double *dout = dev(NULL, len);
  assert_ok(il_layer_forward_from(L, B, dev(x, len), z0 ? dev(z0, len) : NULL, dout, train));
  if (out) host(out, dout, len);
}

/* Backward of host C: host dx and dW are accumulated into, as the core does on space tensors. */
static IL_TEST_UNUSED void layer_backward_h(il_layer *L, const double *C, double *dx, double *dW) {
  const size_t len = (size_t)L->B * L->cell.n, nw = L->cell.ntheta;
  double *ddx = dev(dx, len), *ddW = dev(dW, nw);
  assert_ok(il_layer_backward(L, dev(C, len), ddx, ddW));
  host(dx, ddx, len);
  host(dW, ddW, nw);
}

/* ---- a solver run directly on a cell ---- */

/* A problem's pieces on be: the cell over an uploaded W, x uploaded, space and host scratch. */
typedef struct tsolve {
  il_cell c;
  il_arena ws, hws;
  il_problem p;
} tsolve;

static IL_TEST_UNUSED void tsolve_init(tsolve *t, const char *cell, const double *W, const double *x, int n, int B) {
  memset(t, 0, sizeof *t);
  assert_ok(il_cell_init(&t->c, cell, be, n, dev(W, (size_t)n * n), NULL));
  assert_ok(il_arena_init_for(&t->ws, be, IL_MEM_WORKSPACE, NULL, 0));
  assert_ok(il_arena_init(&t->hws, IL_MEM_WORKSPACE, NULL, 0));
  t->p = (il_problem){.cell = &t->c, .be = be, .B = B, .x = dev(x, (size_t)B * n), .ws = &t->ws, .hws = &t->hws};
}

static IL_TEST_UNUSED void tsolve_destroy(tsolve *t) {
  il_arena_destroy(&t->ws);
  il_arena_destroy(&t->hws);
}

/* so->solve of p into host z (rows: host, may be NULL). */
static IL_TEST_UNUSED il_status tsolve_run(const il_solver_ops *so, void *st, const il_problem *p, double *z,
                                           double *rows, il_solve_result *res) {
  const size_t len = (size_t)p->B * p->cell->n;
  double *dz = dev(NULL, len);
  il_status s = so->solve(st, p, dz, rows, res);
  if (s == IL_OK) host(z, dz, len);
  return s;
}

/* W = scale * U(-1,1)/sqrt(n), x = xscale * N(0,1) */
static IL_TEST_UNUSED void make_problem(int n, int B, double scale, double xscale, uint64_t seed, double *W,
                                        double *x) {
  il_rng r;
  il_rng_seed(&r, seed);
  for (int i = 0; i < n * n; i++) W[i] = scale * (2 * il_rng_uniform(&r) - 1) / sqrt((double)n);
  for (int i = 0; i < B * n; i++) x[i] = xscale * il_rng_normal(&r);
}

#endif
