/* core/il_cell.h: the implicit function f(z; x, theta), whose fixed point
 * z* = f(z*) the layer outputs. The residual is g(z) = z - f(z).
 * A cell knows nothing about the solver that runs it. Every op works on a
 * batch: x, z, f are (B, n). Derivative ops take the point (z, f) where f was
 * produced by `map` at z; cells that need more state than f keep it in `lin`
 * (B, lin_dim) filled by `map` (the tanh cell needs none: sech^2 = 1 - f^2, except with
 * sech2_seed; given a (B, n) lin anyway, it stores the pre-activation there for diagnostics). */
#ifndef IL_CELL_H
#define IL_CELL_H

#include "il_arena.h"
#include "il_backend.h"
#include "il_prec.h"
#include "il_status.h"

typedef struct il_cell il_cell;

typedef struct il_cell_ops {
  const char *name;
  /* f (B, n) = f(z; x); fills lin when lin_dim > 0. ws: workspace arena for scratch. */
  il_status (*map)(const il_cell *c, int B, const il_real *x, const il_real *z, il_real *f, il_real *lin,
                   il_arena *ws);
  /* Jacobian of the residual per sample: J_b = I - df/dz (B, n, n). */
  il_status (*jac_g)(const il_cell *c, int B, const il_real *z, const il_real *f, const il_real *lin, il_real *J,
                     il_arena *ws);
  /* out (B, n) = (df/dz) v */
  il_status (*jvp_z)(const il_cell *c, int B, const il_real *z, const il_real *f, const il_real *lin,
                     const il_real *v, il_real *out, il_arena *ws);
  /* Given a cotangent u (B, n) on f: dz = (df/dz)^T u (overwritten), dx += (df/dx)^T u,
   * dtheta += (df/dtheta)^T u. Any output may be NULL. */
  il_status (*vjp)(const il_cell *c, int B, const il_real *z, const il_real *f, const il_real *lin,
                   const il_real *u, il_real *dz, il_real *dx, il_real *dtheta, il_arena *ws);
  /* Second order, for backprop through a Jacobian (Newton unrolled): accumulate the gradient of
   * sum_b w_b^T (df/dz)(z_b) d_b with respect to z (dz +=), x (dx +=) and theta (dtheta +=). */
  il_status (*jvp_vjp)(const il_cell *c, int B, const il_real *z, const il_real *f, const il_real *lin,
                       const il_real *d, const il_real *w, il_real *dz, il_real *dx, il_real *dtheta,
                       il_arena *ws);
} il_cell_ops;

struct il_cell {
  const il_cell_ops *ops;
  const il_backend *be;
  int n;             /* state size */
  int lin_dim;       /* extra per-sample linearisation state */
  const il_real *theta; /* parameters, ntheta values, owned by the model */
  size_t ntheta;
  int sech2_seed;    /* 1: build the Newton Jacobian with the seed's 1/cosh^2 (see cell_tanh.c) */
};

#define il_cell_tanh_init IL_P(il_cell_tanh_init)
/* f(z) = tanh(W z + x) with W = theta (n, n) row-major (PyTorch Linear weight, no bias).
 * sech2_seed = 1 evaluates the Jacobian's sech^2 as the seed does (lin_dim = n then). */
il_status il_cell_tanh_init(il_cell *c, const il_backend *be, int n, const il_real *W, int sech2_seed);

#endif
