/* tests/test_problem.h: the float64 layer tests' common setup: one CPU backend and
 * random problems drawn like PyTorch's Linear initialisation. Include once per test. */
#ifndef IL_TEST_PROBLEM_H
#define IL_TEST_PROBLEM_H

#include <math.h>

#include "il_backend.h"
#include "il_rng.h"

static const il_backend *be;

static int setup(void **state) {
  (void)state;
  return il_backend_cpu(1, &be) == IL_OK ? 0 : -1;
}

/* W = scale * U(-1,1)/sqrt(n), x = xscale * N(0,1) */
static void make_problem(int n, int B, double scale, double xscale, uint64_t seed, double *W, double *x) {
  il_rng r;
  il_rng_seed(&r, seed);
  for (int i = 0; i < n * n; i++) W[i] = scale * (2 * il_rng_uniform(&r) - 1) / sqrt((double)n);
  for (int i = 0; i < B * n; i++) x[i] = xscale * il_rng_normal(&r);
}

#endif
