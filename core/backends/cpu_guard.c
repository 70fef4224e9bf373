/* core/backends/cpu_guard.c: `cpu-guard`, a test backend that proves the core
 * is device-neutral without a device. It runs the CPU kernels, but its memory
 * space is mmap'd regions that stay PROT_NONE except while one of its own ops
 * runs. Host code that reads or writes a tensor outside a backend op, as a
 * device backend would not allow, dies with SIGSEGV at that line.
 * Every op opens all regions, calls the CPU op and closes them again, so it is
 * slow (two mprotect calls per region per op): for tests only. */
#define _DEFAULT_SOURCE /* mmap flags under -std=c11 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "il_backend.h"

typedef struct region {
  void *p;
  size_t bytes; /* mapped, a multiple of the page size */
} region;

typedef struct guard_ctx {
  void *inner; /* the CPU backend's context */
  region *r;
  int n, cap;
  size_t live, peak; /* bytes requested by callers */
  long allocs, ops;
} guard_ctx;

#define CPU il_backend_cpu_ops

static il_status guard_create(const il_backend_options *o, void **ctx) {
  guard_ctx *g = calloc(1, sizeof *g);
  if (!g) return IL_ERR(IL_ERR_NOMEM, "cpu-guard: cannot allocate its context");
  il_status s = CPU.create(o, &g->inner);
  if (s != IL_OK) {
    free(g);
    return il_error_trace(s, __FILE__, __LINE__);
  }
  *ctx = g;
  return IL_OK;
}

static void guard_destroy(void *ctx) {
  guard_ctx *g = ctx;
  for (int i = 0; i < g->n; i++) munmap(g->r[i].p, g->r[i].bytes);
  free(g->r);
  CPU.destroy(g->inner);
  free(g);
}

static void guard_describe(void *ctx, char *buf, size_t cap) {
  guard_ctx *g = ctx;
  snprintf(buf, cap, "CPU kernels over PROT_NONE memory (test backend): %zu bytes live in %d regions, peak %zu, "
                     "%ld allocations, %ld guarded ops", g->live, g->n, g->peak, g->allocs, g->ops);
}

static void guard_mem_stats(void *ctx, size_t *live, size_t *peak) {
  guard_ctx *g = ctx;
  *live = g->live;
  *peak = g->peak;
}

/* mprotect cannot fail on a region we mapped ourselves, except for lack of kernel memory:
 * then the op reports it and the test fails, rather than running unguarded. */
static il_status protect_all(guard_ctx *g, int prot) {
  for (int i = 0; i < g->n; i++)
    if (mprotect(g->r[i].p, g->r[i].bytes, prot) != 0)
      return IL_ERR(IL_ERR_INTERNAL, "cpu-guard: mprotect of %zu bytes failed", g->r[i].bytes);
  return IL_OK;
}
#define OPEN(g) IL_CHECK(protect_all((g), PROT_READ | PROT_WRITE))
#define CLOSE(g) IL_CHECK(protect_all((g), PROT_NONE))

static il_status guard_alloc(void *ctx, size_t bytes, void **p) {
  guard_ctx *g = ctx;
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  const size_t mapped = ((bytes ? bytes : 1) + page - 1) / page * page;
  *p = NULL;
  if (g->n == g->cap) {
    const int cap = g->cap ? 2 * g->cap : 64;
    region *r = realloc(g->r, (size_t)cap * sizeof *r);
    if (!r) return IL_ERR(IL_ERR_NOMEM, "cpu-guard: cannot grow its region table");
    g->r = r;
    g->cap = cap;
  }
  void *m = mmap(NULL, mapped, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return IL_ERR(IL_ERR_NOMEM, "cpu-guard: cannot map %zu bytes", bytes);
  g->r[g->n++] = (region){m, mapped};
  g->live += bytes;
  if (g->live > g->peak) g->peak = g->live;
  g->allocs++;
  *p = m;
  return IL_OK;
}

static void guard_release(void *ctx, void *p, size_t bytes) {
  guard_ctx *g = ctx;
  for (int i = 0; i < g->n; i++)
    if (g->r[i].p == p) {
      munmap(p, g->r[i].bytes);
      g->r[i] = g->r[--g->n];
      g->live -= bytes;
      return;
    }
}

static double guard_flops(void *ctx) { return CPU.flops(((guard_ctx *)ctx)->inner); }

static void guard_lu_layout(void *ctx, int B, int n, size_t *a, size_t *p) {
  CPU.lu_layout(((guard_ctx *)ctx)->inner, B, n, a, p);
}

/* One wrapper per op: open the space, run the CPU op, close it. */
#define GUARD(op, params, args)                   \
  static il_status guard_##op params {            \
    guard_ctx *g = ctx;                           \
    OPEN(g);                                      \
    g->ops++;                                     \
    il_status s_ = CPU.op args;                   \
    CLOSE(g);                                     \
    return s_;                                    \
  }

#define IN g->inner
GUARD(zero, (void *ctx, void *p, size_t bytes), (IN, p, bytes))
GUARD(copy, (void *ctx, il_copy_kind k, void *d, const void *s, size_t bytes), (IN, k, d, s, bytes))
GUARD(sync, (void *ctx), (IN))
GUARD(gemm, (void *ctx, int tA, int tB, int M, int N, int K, il_real al, const il_real *A, int lda, const il_real *B,
             int ldb, il_real be, il_real *C, int ldc),
      (IN, tA, tB, M, N, K, al, A, lda, B, ldb, be, C, ldc))
GUARD(gemm_strided_batched,
      (void *ctx, int tA, int tB, int M, int N, int K, il_real al, const il_real *A, int lda, size_t sA,
       const il_real *B, int ldb, size_t sB, il_real be, il_real *C, int ldc, size_t sC, int batch),
      (IN, tA, tB, M, N, K, al, A, lda, sA, B, ldb, sB, be, C, ldc, sC, batch))
GUARD(gemm_ep, (void *ctx, int B, int N, int K, const il_real *A, const il_real *W, const il_epilogue *ep, il_real *o),
      (IN, B, N, K, A, W, ep, o))
GUARD(fill, (void *ctx, size_t len, il_real v, il_real *o), (IN, len, v, o))
GUARD(axpby, (void *ctx, size_t len, il_real a, const il_real *x, il_real b, il_real *y), (IN, len, a, x, b, y))
GUARD(lincomb, (void *ctx, size_t len, il_real a, const il_real *x, il_real b, const il_real *y, il_real *o),
      (IN, len, a, x, b, y, o))
GUARD(mul, (void *ctx, size_t len, const il_real *a, const il_real *b, il_real *o), (IN, len, a, b, o))
GUARD(act_fwd, (void *ctx, size_t len, il_act act, const il_real *a, il_real *f, il_real *s), (IN, len, act, a, f, s))
GUARD(act_deriv, (void *ctx, size_t len, il_act act, const il_real *f, il_real *s), (IN, len, act, f, s))
GUARD(act_dmul, (void *ctx, size_t len, il_act act, const il_real *f, const il_real *u, il_real *o),
      (IN, len, act, f, u, o))
GUARD(act_d2, (void *ctx, size_t len, il_act act, const il_real *f, const il_real *w, il_real *q, il_real *sw),
      (IN, len, act, f, w, q, sw))
GUARD(sech2_seed, (void *ctx, size_t len, const il_real *a, il_real *s), (IN, len, a, s))
GUARD(sech2_seed_d2, (void *ctx, size_t len, const il_real *a, const il_real *w, il_real *q, il_real *sw),
      (IN, len, a, w, q, sw))
GUARD(row_lincomb, (void *ctx, int B, int n, il_real s, const il_real *a, const il_real *x, il_real be,
                    const il_real *y, il_real *o),
      (IN, B, n, s, a, x, be, y, o))
GUARD(row_select, (void *ctx, int B, int n, const unsigned char *m, int want, const il_real *src, il_real *dst),
      (IN, B, n, m, want, src, dst))
GUARD(row_fill, (void *ctx, int B, int n, const unsigned char *m, int want, il_real v, il_real *dst),
      (IN, B, n, m, want, v, dst))
GUARD(row_combine, (void *ctx, int B, int n, int k, const il_real *const *X, const il_real *c, il_real be, il_real *o),
      (IN, B, n, k, X, c, be, o))
GUARD(row_lowrank, (void *ctx, int B, int n, int k, const il_real *const *P, const il_real *const *Q,
                    const il_real *a, il_real *oa, const il_real *c, il_real *oc),
      (IN, B, n, k, P, Q, a, oa, c, oc))
GUARD(col_sum_add, (void *ctx, int B, int n, const il_real *a, il_real *o), (IN, B, n, a, o))
GUARD(row_index_copy, (void *ctx, int B, int n, const int *si, const il_real *src, const int *di, il_real *dst),
      (IN, B, n, si, src, di, dst))
GUARD(sqdist, (void *ctx, size_t len, const il_real *a, const il_real *b, double *o), (IN, len, a, b, o))
GUARD(row_sqdist, (void *ctx, int B, int n, const il_real *a, const il_real *b, double *o), (IN, B, n, a, b, o))
GUARD(row_dot, (void *ctx, int B, int n, int k, const il_real *const *X, const il_real *y, double *o),
      (IN, B, n, k, X, y, o))
GUARD(row_sub_dot, (void *ctx, int B, int n, int k, const il_real *const *X, const il_real *a, const il_real *c,
                    il_real *d, double *o),
      (IN, B, n, k, X, a, c, d, o))
GUARD(row_mgs, (void *ctx, int B, int n, int k, const il_real *const *V, il_real *w, double *h), (IN, B, n, k, V, w, h))
GUARD(absmax, (void *ctx, size_t len, const il_real *a, double *o), (IN, len, a, o))
GUARD(all_finite, (void *ctx, size_t len, const il_real *a, int *o), (IN, len, a, o))
GUARD(compare, (void *ctx, size_t len, const il_real *a, const il_real *b, double *o), (IN, len, a, b, o))
GUARD(xent_fwd, (void *ctx, int B, int c, const il_real *l, const unsigned char *y, il_real *p, double *ls, int *e),
      (IN, B, c, l, y, p, ls, e))
GUARD(xent_bwd, (void *ctx, int B, int c, const unsigned char *y, il_real sc, il_real *p), (IN, B, c, y, sc, p))
GUARD(jac_eye_minus_diag_w, (void *ctx, int B, int n, const il_real *s, const il_real *W, il_lu *lu),
      (IN, B, n, s, W, lu))
GUARD(lu_norm_inf, (void *ctx, const il_lu *lu, double *o), (IN, lu, o))
GUARD(lu_factor, (void *ctx, il_lu *lu, int *info), (IN, lu, info))
GUARD(lu_solve, (void *ctx, int trans, const il_lu *lu, il_real *R), (IN, trans, lu, R))
GUARD(lu_rcond, (void *ctx, const il_lu *lu, const double *an, double *rc), (IN, lu, an, rc))
#undef IN

const il_backend_ops il_backend_cpu_guard_ops = {
    .name = "cpu-guard",
    .summary = "test backend: CPU kernels over memory the host cannot touch outside an op (proves device neutrality)",
    .host_accessible = 0,
    .small_k_gemm = 1, /* the CPU's kernels and choices: runs match cpu's bitwise */
    .create = guard_create,
    .destroy = guard_destroy,
    .describe = guard_describe,
    .mem_stats = guard_mem_stats,
    .flops = guard_flops,
    .alloc = guard_alloc,
    .release = guard_release,
    .zero = guard_zero,
    .copy = guard_copy,
    .sync = guard_sync,
    .gemm = guard_gemm,
    .gemm_strided_batched = guard_gemm_strided_batched,
    .gemm_ep = guard_gemm_ep,
    .fill = guard_fill,
    .axpby = guard_axpby,
    .lincomb = guard_lincomb,
    .mul = guard_mul,
    .act_fwd = guard_act_fwd,
    .act_deriv = guard_act_deriv,
    .act_dmul = guard_act_dmul,
    .act_d2 = guard_act_d2,
    .sech2_seed = guard_sech2_seed,
    .sech2_seed_d2 = guard_sech2_seed_d2,
    .row_lincomb = guard_row_lincomb,
    .row_select = guard_row_select,
    .row_fill = guard_row_fill,
    .row_combine = guard_row_combine,
    .row_lowrank = guard_row_lowrank,
    .col_sum_add = guard_col_sum_add,
    .row_index_copy = guard_row_index_copy,
    .sqdist = guard_sqdist,
    .row_sqdist = guard_row_sqdist,
    .row_dot = guard_row_dot,
    .row_sub_dot = guard_row_sub_dot,
    .row_mgs = guard_row_mgs,
    .absmax = guard_absmax,
    .all_finite = guard_all_finite,
    .compare = guard_compare,
    .xent_fwd = guard_xent_fwd,
    .xent_bwd = guard_xent_bwd,
    .lu_layout = guard_lu_layout,
    .jac_eye_minus_diag_w = guard_jac_eye_minus_diag_w,
    .lu_norm_inf = guard_lu_norm_inf,
    .lu_factor = guard_lu_factor,
    .lu_solve = guard_lu_solve,
    .lu_rcond = guard_lu_rcond,
};
