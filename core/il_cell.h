/* core/il_cell.h: the implicit function f(z; x, theta), whose fixed point
 * z* = f(z*) the layer outputs. The residual is g(z) = z - f(z).
 * A cell knows nothing about the solver that runs it, and computes only
 * through its backend's ops (x, z, f, lin and every output are tensors in the
 * backend's space). Every op works on a batch: x, z, f are (B, n). Derivative
 * ops take the point (z, f) where f was produced by `map` at z; cells that need
 * more state than f keep it in `lin` (B, lin_dim) filled by `map` (the tanh cell
 * needs none: sech^2 = 1 - f^2, except with sech2_seed; given a (B, n) lin
 * anyway, it stores the pre-activation there for diagnostics).
 * Cells are found by name (cells/registry.c): a new cell is one file and one line. */
#ifndef IL_CELL_H
#define IL_CELL_H

#include "il_arena.h"
#include "il_backend.h"
#include "il_prec.h"
#include "il_status.h"

#define il_cell_ops IL_P(il_cell_ops)
#define il_cell IL_P(il_cell)
typedef struct il_cell il_cell;

typedef struct il_cell_config {
  int sech2_seed; /* 1: build the Newton Jacobian with the seed's 1/cosh^2 (tanh only, see cell_pointwise.c) */
} il_cell_config;

typedef struct il_cell_ops {
  const char *name;
  const char *summary;
  size_t (*ntheta)(int n); /* parameter count for state size n */
  /* 1 when dtheta's term vanishes at z = 0 (theta is W alone, no bias): solvers then skip it there */
  int dtheta_zero_at_z0;
  /* Set the cell's own fields (lin_dim, act, ...) from cc; refuse what it does not support. */
  il_status (*setup)(il_cell *c, const il_cell_config *cc);
  /* Workspace bytes (space arena) its ops need at batch B, upper bound incl. alignment. */
  size_t (*ws_bytes)(const il_cell *c, int B);
  /* f (B, n) = f(z; x); fills lin when lin_dim > 0. ws: workspace arena for scratch.
   * row_res: NULL, or host (B) out: ||z - f||^2 per row (fused into the map's epilogue). */
  il_status (*map)(const il_cell *c, int B, const il_real *x, const il_real *z, il_real *f, il_real *lin,
                   il_arena *ws, double *row_res);
  /* Jacobian of the residual per sample, J_b = I - df/dz, built into lu's storage. */
  il_status (*jac_g)(const il_cell *c, int B, const il_real *z, const il_real *f, const il_real *lin, il_lu *J,
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
  /* The Jacobian regulariser's probe at fixed z (DEQ Jacobian regularisation, Hutchinson):
   * r_b = (df/dz)(z_b)^T eps_b, host sq (B) out: ||r_b||^2 (sync point); then, unless both are
   * NULL, dx += scale * d(sum_b ||r_b||^2)/dx and dtheta += scale * the same in theta, z held
   * fixed (no gradient through z). The stable derivative (sech^2 = 1 - f^2) even with sech2_seed. */
  il_status (*jac_reg)(const il_cell *c, int B, const il_real *z, const il_real *f, const il_real *eps,
                       il_real scale, double *sq, il_real *dx, il_real *dtheta, il_arena *ws);
} il_cell_ops;

struct il_cell {
  const il_cell_ops *ops;
  const il_backend *be;
  int n;             /* state size */
  int lin_dim;       /* extra per-sample linearisation state */
  const il_real *theta; /* parameters, ntheta values in the backend's space, owned by the model */
  size_t ntheta;
  il_act act;        /* pointwise cells: the activation */
  int sech2_seed;    /* 1: build the Newton Jacobian with the seed's 1/cosh^2 (see cell_pointwise.c) */
};

#define il_cell_find IL_P(il_cell_find)
#define il_cell_names IL_P(il_cell_names)
#define il_cell_init IL_P(il_cell_init)
#define il_cell_tanh_ops IL_P(il_cell_tanh_ops)
#define il_cell_relu_ops IL_P(il_cell_relu_ops)
const il_cell_ops *il_cell_find(const char *name);
const char *il_cell_names(void);
#define il_cell_at IL_P(il_cell_at)
const il_cell_ops *il_cell_at(int i); /* NULL past the end */
extern const il_cell_ops il_cell_tanh_ops;
extern const il_cell_ops il_cell_relu_ops;

/* The cell `name` ("tanh", ...) of state size n over theta (ops->ntheta(n) values). */
il_status il_cell_init(il_cell *c, const char *name, const il_backend *be, int n, const il_real *theta,
                       const il_cell_config *cc);

/* Pointwise cells f = act(W z + x), W = theta (n, n) row-major (PyTorch Linear weight, no
 * bias), with c->act; the helpers a pointwise cell's ops table is made of (cell_pointwise.c). */
#define il_pw_ntheta IL_P(il_pw_ntheta)
#define il_pw_ws_bytes IL_P(il_pw_ws_bytes)
#define il_pw_map IL_P(il_pw_map)
#define il_pw_jac_g IL_P(il_pw_jac_g)
#define il_pw_jvp_z IL_P(il_pw_jvp_z)
#define il_pw_vjp IL_P(il_pw_vjp)
#define il_pw_jvp_vjp IL_P(il_pw_jvp_vjp)
#define il_pw_jac_reg IL_P(il_pw_jac_reg)
size_t il_pw_ntheta(int n);
size_t il_pw_ws_bytes(const il_cell *c, int B);
il_status il_pw_map(const il_cell *c, int B, const il_real *x, const il_real *z, il_real *f, il_real *lin,
                    il_arena *ws, double *row_res);
il_status il_pw_jac_g(const il_cell *c, int B, const il_real *z, const il_real *f, const il_real *lin, il_lu *J,
                      il_arena *ws);
il_status il_pw_jvp_z(const il_cell *c, int B, const il_real *z, const il_real *f, const il_real *lin,
                      const il_real *v, il_real *out, il_arena *ws);
il_status il_pw_vjp(const il_cell *c, int B, const il_real *z, const il_real *f, const il_real *lin, const il_real *u,
                    il_real *dz, il_real *dx, il_real *dtheta, il_arena *ws);
il_status il_pw_jvp_vjp(const il_cell *c, int B, const il_real *z, const il_real *f, const il_real *lin,
                        const il_real *d, const il_real *w, il_real *dz, il_real *dx, il_real *dtheta, il_arena *ws);
il_status il_pw_jac_reg(const il_cell *c, int B, const il_real *z, const il_real *f, const il_real *eps, il_real scale,
                        double *sq, il_real *dx, il_real *dtheta, il_arena *ws);

/* The cell's ops as callers use them: each is one event (il_events.h) on the cell's backend. */
static inline il_status il_cell_map(const il_cell *c, int B, const il_real *x, const il_real *z, il_real *f,
                                    il_real *lin, il_arena *ws, double *row_res) {
  const il_ev_scope s = il_ev_open(c->be);
  const il_status st = c->ops->map(c, B, x, z, f, lin, ws, row_res);
  il_ev_close(c->be, s, IL_EV_MAP);
  return st;
}
static inline il_status il_cell_jac_g(const il_cell *c, int B, const il_real *z, const il_real *f,
                                      const il_real *lin, il_lu *J, il_arena *ws) {
  const il_ev_scope s = il_ev_open(c->be);
  const il_status st = c->ops->jac_g(c, B, z, f, lin, J, ws);
  il_ev_close(c->be, s, IL_EV_JAC);
  return st;
}
static inline il_status il_cell_jvp_z(const il_cell *c, int B, const il_real *z, const il_real *f,
                                      const il_real *lin, const il_real *v, il_real *out, il_arena *ws) {
  const il_ev_scope s = il_ev_open(c->be);
  const il_status st = c->ops->jvp_z(c, B, z, f, lin, v, out, ws);
  il_ev_close(c->be, s, IL_EV_JVP);
  return st;
}
static inline il_status il_cell_vjp(const il_cell *c, int B, const il_real *z, const il_real *f, const il_real *lin,
                                    const il_real *u, il_real *dz, il_real *dx, il_real *dtheta, il_arena *ws) {
  const il_ev_scope s = il_ev_open(c->be);
  const il_status st = c->ops->vjp(c, B, z, f, lin, u, dz, dx, dtheta, ws);
  il_ev_close(c->be, s, IL_EV_VJP);
  return st;
}
static inline il_status il_cell_jvp_vjp(const il_cell *c, int B, const il_real *z, const il_real *f,
                                        const il_real *lin, const il_real *d, const il_real *w, il_real *dz,
                                        il_real *dx, il_real *dtheta, il_arena *ws) {
  const il_ev_scope s = il_ev_open(c->be);
  const il_status st = c->ops->jvp_vjp(c, B, z, f, lin, d, w, dz, dx, dtheta, ws);
  il_ev_close(c->be, s, IL_EV_VJP2);
  return st;
}

/* Round a request up to the arena's alignment (for ws_bytes sums). */
static inline size_t il_ws_round(size_t bytes) {
  return (bytes + IL_ARENA_ALIGN - 1) / IL_ARENA_ALIGN * IL_ARENA_ALIGN + (bytes ? 0 : IL_ARENA_ALIGN);
}

#endif
