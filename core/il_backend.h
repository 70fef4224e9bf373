/* core/il_backend.h: the compute backend, an instance (ops table + its own
 * context) found by name in core/backends/ (registry.c).
 *
 * The backend owns a memory space. Every tensor the core computes on lives in
 * that space, and every operation on (B, n) or (B, n, n) data is one of the ops
 * below, with its shapes in the comment. Solvers, backward modes, cells and the
 * model never index tensor data. Scalars that steer control flow (residual
 * norms, finite flags, LU info) come back to host memory through the ops marked
 * "sync point"; the caller names each one. Pointers to host memory are marked
 * `host`; every other pointer is in the backend's space.
 *
 * All matrices are row-major; "batched" arrays are contiguous (B, n) or
 * (B, n, n). Every op returns a status; a device backend reports launch and
 * library errors there. Compiled once per precision (il_real). */
#ifndef IL_BACKEND_H
#define IL_BACKEND_H

#include <stddef.h>

#include "il_arena.h"
#include "il_events.h"
#include "il_prec.h"
#include "il_status.h"

#define il_backend_ops IL_P(il_backend_ops)
#define il_backend IL_P(il_backend)

/* Activations the fused map and the derivative ops know. The derivative of
 * each is evaluated from the activation's output f (tanh: 1 - f^2; relu: f > 0). */
typedef enum il_act { IL_ACT_NONE = 0, IL_ACT_TANH = 1, IL_ACT_RELU = 2 } il_act;

typedef enum il_copy_kind {
  IL_COPY_TO_SPACE = 0, /* host -> space */
  IL_COPY_TO_HOST = 1,  /* space -> host */
  IL_COPY_IN_SPACE = 2, /* space -> space */
} il_copy_kind;

typedef struct il_backend_options {
  int threads; /* >= 1: threads over rows and samples (CPU); ignored where meaningless */
  const int *cpus; /* NULL, or threads CPU numbers: thread t is pinned to cpus[t] (CPU) */
  int device;      /* GPU index among the visible ones (cuda; distributed/il_gpu.c picks it per rank) */
  const void *grid; /* NULL, or the process grid of a distributed backend (distributed/'s il_grid);
                       core never reads it, so it stays MPI-free */
} il_backend_options;

/* Batched LU factors of B n x n matrices, in a layout only the backend knows
 * (row-major blocks and pivots on the CPU; a compact, cuBLAS or ScaLAPACK
 * layout elsewhere). Its two parts are allocated from an arena by
 * il_lu_alloc (bytes from the backend's lu_layout), so they are counted
 * like any tensor. A Jacobian is built straight into it (jac_eye_minus_diag_w). */
typedef struct il_lu {
  void *a, *p; /* the backend's parts, in its space */
  int B, n;
} il_lu;

/* The epilogue of the fused map: out = act(A W^T + add + bias), plus optional
 * by-products. Each pointer may be NULL. */
typedef struct il_epilogue {
  const il_real *add; /* (B, N) added before the activation */
  const il_real *bias; /* (N) added to every row before the activation */
  il_act act;
  il_real *pre;        /* (B, N) out: the pre-activation */
  il_real *deriv;      /* (B, N) out: act'(pre) */
  const il_real *res_ref; /* (B, N): with res_rows, the per-row residual ||res_ref - out||^2 */
  double *res_rows;    /* host (B) out; sync point */
} il_epilogue;

typedef struct il_backend_ops {
  const char *name;
  const char *summary;
  int host_accessible; /* 1: the space is plain host memory that host code may read (MPI can use it in place) */
  int small_k_gemm;    /* 1: G GEMMs of K = B rows run as fast as one of K = G B, so callers need not gather
                        * them into a tall one (CPU: OpenBLAS's small-matrix kernels); 0: gather (devices) */
  il_status (*create)(const il_backend_options *o, void **ctx);
  void (*destroy)(void *ctx);
  /* Set-up notes for `info` and the results (threads, library); may be NULL. */
  void (*describe)(void *ctx, char *buf, size_t cap);
  /* Bytes of the space this instance holds now and at most (all its allocations). */
  void (*mem_stats)(void *ctx, size_t *live, size_t *peak);
  /* Floating-point operations its ops have done since create (GEMMs 2MNK, LU 2n^3/3, a solve
   * 2n^2, Gram rows and combinations 2nk per row, elementwise ops one per element): the
   * counter events read (il_events.h). */
  double (*flops)(void *ctx);

  /* ---- memory of the space ---- */
  il_status (*alloc)(void *ctx, size_t bytes, void **p); /* 64-byte aligned, contents undefined */
  void (*release)(void *ctx, void *p, size_t bytes);
  il_status (*zero)(void *ctx, void *p, size_t bytes);   /* any element type */
  il_status (*copy)(void *ctx, il_copy_kind kind, void *dst, const void *src, size_t bytes);
  il_status (*sync)(void *ctx);                          /* wait for queued work */

  /* ---- dense linear algebra ---- */
  /* C (M, N) = alpha op(A) op(B) + beta C; op(A) (M, K), op(B) (K, N). */
  il_status (*gemm)(void *ctx, int tA, int tB, int M, int N, int K, il_real alpha, const il_real *A, int lda,
                    const il_real *B, int ldb, il_real beta, il_real *C, int ldc);
  /* gemm for i < batch on A + i sA, B + i sB, C + i sC (element strides). */
  il_status (*gemm_strided_batched)(void *ctx, int tA, int tB, int M, int N, int K, il_real alpha, const il_real *A,
                                    int lda, size_t sA, const il_real *B, int ldb, size_t sB, il_real beta, il_real *C,
                                    int ldc, size_t sC, int batch);
  /* The fused map: out (B, N) = epilogue(A (B, K) W^T), W (N, K). */
  il_status (*gemm_ep)(void *ctx, int B, int N, int K, const il_real *A, const il_real *W, const il_epilogue *ep,
                       il_real *out);

  /* ---- elementwise over len ---- */
  il_status (*fill)(void *ctx, size_t len, il_real v, il_real *out);
  il_status (*axpby)(void *ctx, size_t len, il_real a, const il_real *x, il_real b, il_real *y); /* y = a x + b y */
  il_status (*lincomb)(void *ctx, size_t len, il_real a, const il_real *x, il_real b, const il_real *y,
                       il_real *out); /* out = a x + b y; out may alias x or y */
  il_status (*mul)(void *ctx, size_t len, const il_real *a, const il_real *b, il_real *out); /* out = a * b */
  il_status (*act_fwd)(void *ctx, size_t len, il_act act, const il_real *a, il_real *f, il_real *s); /* f = act(a), s = act'(a) or NULL */
  il_status (*act_deriv)(void *ctx, size_t len, il_act act, const il_real *f, il_real *s); /* s = act' from the output f */
  il_status (*act_dmul)(void *ctx, size_t len, il_act act, const il_real *f, const il_real *u, il_real *out); /* out = act'(f) u */
  /* Second order through act' (Newton unrolled): with s = act'(f), s' = d act'/da:
   * sw = s w, q <- w q s'. */
  il_status (*act_d2)(void *ctx, size_t len, il_act act, const il_real *f, const il_real *w, il_real *q, il_real *sw);
  /* The seed's s = 1 / cosh(a)^2, each operation rounded in working precision (--sech2 seed). */
  il_status (*sech2_seed)(void *ctx, size_t len, const il_real *a, il_real *s);
  /* Its second order as autograd takes it (reciprocal, pow, cosh): sw = s w, q <- a_bar (see cell_tanh.c). */
  il_status (*sech2_seed_d2)(void *ctx, size_t len, const il_real *a, const il_real *w, il_real *q, il_real *sw);

  /* ---- per row of (B, n) ---- */
  /* out_b = s a_b x_b + beta y_b, a (B) in the space; y may be NULL when beta = 0. */
  il_status (*row_lincomb)(void *ctx, int B, int n, il_real s, const il_real *a, const il_real *x, il_real beta,
                           const il_real *y, il_real *out);
  /* dst_b = src_b for the rows with (mask_b != 0) == want; mask (B) bytes. */
  il_status (*row_select)(void *ctx, int B, int n, const unsigned char *mask, int want, const il_real *src,
                          il_real *dst);
  /* dst_b = v for the rows with (mask_b != 0) == want. */
  il_status (*row_fill)(void *ctx, int B, int n, const unsigned char *mask, int want, il_real v, il_real *dst);
  /* out_b = beta out_b + sum_{i<k} coef[b k + i] X_i,b in order of i; X: host array of k (B, n)
   * tensors, coef (B, k) in the space. beta = 0 ignores out's old contents. */
  il_status (*row_combine)(void *ctx, int B, int n, int k, const il_real *const *X, const il_real *coef,
                           il_real beta, il_real *out);
  /* H a and H^T c for H = I + sum_{i<k} P_i Q_i^T per row (limited-memory quasi-Newton):
   * oa_b = a_b + sum_i P_i,b (Q_i,b . a_b) and, when c is not NULL, oc_b = c_b + sum_i Q_i,b (P_i,b . c_b).
   * Dots accumulate in double and are rounded to il_real as coefficients; terms are added in
   * order of i. The outputs alias neither the inputs nor P, Q. P, Q: host arrays of k (B, n)
   * tensors. One pass with no host round trip, instead of row_dot + row_combine per apply. */
  il_status (*row_lowrank)(void *ctx, int B, int n, int k, const il_real *const *P, const il_real *const *Q,
                           const il_real *a, il_real *oa, const il_real *c, il_real *oc);
  /* out (n) += column sums of a (B, n), rows in order. */
  il_status (*col_sum_add)(void *ctx, int B, int n, const il_real *a, il_real *out);
  /* Rows of n by index, b < B: dst row (didx ? didx[b] : b) = src row (sidx ? sidx[b] : b);
   * sidx, didx host (B) or NULL (a gather with sidx, a scatter with didx). The destination rows
   * are distinct; src and dst do not overlap. */
  il_status (*row_index_copy)(void *ctx, int B, int n, const int *sidx, const il_real *src, const int *didx,
                              il_real *dst);

  /* ---- reductions to the host (sync points), accumulated in double ---- */
  il_status (*sqdist)(void *ctx, size_t len, const il_real *a, const il_real *b, double *out); /* sum (a - b)^2; b may be NULL */
  il_status (*row_sqdist)(void *ctx, int B, int n, const il_real *a, const il_real *b, double *out); /* host (B) */
  /* Batched Gram row: out[b k + i] = X_i,b . y_b, X a host array of k (B, n) tensors; host (B, k). */
  il_status (*row_dot)(void *ctx, int B, int n, int k, const il_real *const *X, const il_real *y, double *out);
  /* d = a - c (d may alias a or c), then the Gram row of d as row_dot: out[b k + i] = X_i,b . d_b,
   * where X may hold d itself (its new values are used); host (B, k). One pass instead of
   * lincomb + row_dot (Anderson's residual G = F - X and its Gram row). */
  il_status (*row_sub_dot)(void *ctx, int B, int n, int k, const il_real *const *X, const il_real *a,
                           const il_real *c, il_real *d, double *out);
  /* Modified Gram-Schmidt of w_b against the rows V_i,b, i < k, in order (w is updated):
   * h[b (k+1) + i] = the coefficient, h[b (k+1) + k] = ||w_b|| afterwards; host (B, k+1). */
  il_status (*row_mgs)(void *ctx, int B, int n, int k, const il_real *const *V, il_real *w, double *h);
  il_status (*absmax)(void *ctx, size_t len, const il_real *a, double *out); /* NaNs are skipped */
  il_status (*all_finite)(void *ctx, size_t len, const il_real *a, int *out);
  /* out = {a.b, a.a, b.b, (a-b).(a-b)}, summed in index order; host (4). */
  il_status (*compare)(void *ctx, size_t len, const il_real *a, const il_real *b, double *out);

  /* ---- the model's head ---- */
  /* Softmax cross-entropy rows of logits (B, c) into p (B, c); labels (B) bytes or NULL.
   * host: loss_sum (sum of per-row losses), errors: rows whose first maximum (from l[0] on; a NaN entry
   * never wins) is not the label, or whose maximum is not finite (a NaN l[0]). Sync point. */
  il_status (*xent_fwd)(void *ctx, int B, int c, const il_real *logits, const unsigned char *labels, il_real *p,
                        double *loss_sum, int *errors);
  /* p (B, c) <- (p - onehot(labels)) * scale */
  il_status (*xent_bwd)(void *ctx, int B, int c, const unsigned char *labels, il_real scale, il_real *p);

  /* ---- batched LU (B n x n, an il_lu) ---- */
  void (*lu_layout)(void *ctx, int B, int n, size_t *bytes_a, size_t *bytes_p);
  /* J_b = I - diag(s_b) W into lu's storage; s (B, n), W (n, n). */
  il_status (*jac_eye_minus_diag_w)(void *ctx, int B, int n, const il_real *s, const il_real *W, il_lu *lu);
  /* host (B): ||J_b||_inf before factoring (max row sum of |a|), NaN propagates. Sync point. */
  il_status (*lu_norm_inf)(void *ctx, const il_lu *lu, double *out);
  /* In place, partial pivoting; host info (B): 0, or k > 0 when U(k,k) is exactly zero. Sync point. */
  il_status (*lu_factor)(void *ctx, il_lu *lu, int *info);
  /* R (B, n) <- J_b^{-1} r_b (trans 0) or J_b^{-T} r_b (trans 1). */
  il_status (*lu_solve)(void *ctx, int trans, const il_lu *lu, il_real *R);
  /* host rcond (B) in [0, 1] (gecon, inf-norm) from the factors and host anorm (B). Sync point. */
  il_status (*lu_rcond)(void *ctx, const il_lu *lu, const double *anorm, double *rcond);

  /* ---- distributed matrices (optional: NULL where every tensor is whole on each instance) ----
   * p (rows, cols), row-major, contiguous, holding its values: a parameter matrix (a layer's W, its
   * gradient) that from now on only this backend's ops read or write, as a whole (as one operand of
   * a GEMM, the Jacobian build, or inside a flat range of an elementwise op, a reduction or a copy).
   * A distributed backend keeps only its share of it; host *kept: the bytes of p's range it still
   * holds (the rest is given back to the system). Valid until the block holding p is released, or
   * until the call with rows = cols = 0, after which p is plain memory again (contents undefined). */
  il_status (*dist_matrix)(void *ctx, il_real *p, int rows, int cols, size_t *kept);
} il_backend_ops;

/* A backend instance: never a global, so two can coexist (e.g. cpu and cpu-guard in one test). */
typedef struct il_backend {
  const il_backend_ops *ops;
  void *ctx;
  il_mspace space; /* the arenas' view of its memory */
  int threads;
  il_events *events; /* NULL: events are not recorded */
} il_backend;

/* An event scope on a backend instance: IL_EV_OPEN(be) ... IL_EV_CLOSE(be, s, IL_EV_MAP). */
typedef struct il_ev_scope {
  double t, f;
} il_ev_scope;
static inline il_ev_scope il_ev_open(const il_backend *be) {
  il_ev_scope s = {0, 0};
  if (be->events) {
    s.t = il_clock();
    s.f = be->ops->flops ? be->ops->flops(be->ctx) : 0;
  }
  return s;
}
static inline void il_ev_close(const il_backend *be, il_ev_scope s, il_event_id id) {
  if (be->events)
    il_events_add(be->events, id, il_clock() - s.t, (be->ops->flops ? be->ops->flops(be->ctx) : 0) - s.f);
}

#define il_backend_create IL_P(il_backend_create)
#define il_backend_destroy IL_P(il_backend_destroy)
#define il_backend_find IL_P(il_backend_find)
#define il_backend_register IL_P(il_backend_register)
#define il_backend_count IL_P(il_backend_count)
#define il_backend_at IL_P(il_backend_at)
#define il_backend_names IL_P(il_backend_names)
#define il_backend_cpu_ops IL_P(il_backend_cpu_ops)
#define il_backend_cpu_guard_ops IL_P(il_backend_cpu_guard_ops)
#define il_backend_cuda_host_ops IL_P(il_backend_cuda_host_ops)
#define il_backend_cuda_ops IL_P(il_backend_cuda_ops)
#define il_lu_alloc IL_P(il_lu_alloc)
#define il_upload IL_P(il_upload)
#define il_download IL_P(il_download)
#define il_copy IL_P(il_copy)
#define il_arena_init_for IL_P(il_arena_init_for)
#define il_dist_matrix IL_P(il_dist_matrix)

/* Registry (core/backends/registry.c): the built-in backends plus any added at
 * run time (distributed/ adds its ScaLAPACK backend without core knowing MPI). */
const il_backend_ops *il_backend_find(const char *name);
il_status il_backend_register(const il_backend_ops *ops);
int il_backend_count(void);
const il_backend_ops *il_backend_at(int i);
const char *il_backend_names(void); /* "cpu, cpu-guard, ..." */
extern const il_backend_ops il_backend_cpu_ops;
extern const il_backend_ops il_backend_cpu_guard_ops;
extern const il_backend_ops il_backend_cuda_host_ops; /* cuda_host.cpp: the cuda kernels on the host (test backend) */
#ifdef IL_HAVE_CUDA
extern const il_backend_ops il_backend_cuda_ops;      /* cuda.cu: built when nvcc is found */
#endif

/* Create the backend `name` (an error lists the registry when unknown). */
il_status il_backend_create(const char *name, const il_backend_options *o, il_backend **out);
void il_backend_destroy(il_backend *be);
/* An arena over the backend's space (be == NULL: a host arena). */
il_status il_arena_init_for(il_arena *a, const il_backend *be, il_mem_category cat, il_memstats *stats,
                            size_t block_bytes);
/* Hand p (rows, cols), allocated whole from arena a, to the backend as a distributed matrix
 * (dist_matrix above); the bytes it gives back no longer count in a's category. A no-op where
 * the backend has no such op. kept (may be NULL): the bytes this rank still holds. */
il_status il_dist_matrix(const il_backend *be, il_arena *a, il_real *p, int rows, int cols, size_t *kept);
/* Factors for B n x n matrices from arena a (the backend's space). */
il_status il_lu_alloc(const il_backend *be, il_arena *a, int B, int n, il_lu *out);
/* Call an op of a backend instance: IL_CHECK(IL_BE(be, gemm, 0, 1, ...)). */
#define IL_BE(be, op, ...) ((be)->ops->op((be)->ctx, __VA_ARGS__))

/* host -> space, space -> host, space -> space, of `count` reals */
static inline il_status il_upload(const il_backend *be, il_real *dst, const il_real *host, size_t count) {
  return be->ops->copy(be->ctx, IL_COPY_TO_SPACE, dst, host, count * sizeof *dst);
}
static inline il_status il_download(const il_backend *be, il_real *host, const il_real *src, size_t count) {
  return be->ops->copy(be->ctx, IL_COPY_TO_HOST, host, src, count * sizeof *host);
}
static inline il_status il_sync(const il_backend *be) { return be->ops->sync(be->ctx); }
static inline il_status il_copy(const il_backend *be, il_real *dst, const il_real *src, size_t count) {
  return be->ops->copy(be->ctx, IL_COPY_IN_SPACE, dst, src, count * sizeof *dst);
}

/* The batched LU ops as the core calls them: each an event. */
static inline il_status il_lu_factor(const il_backend *be, il_lu *lu, int *info) {
  const il_ev_scope s = il_ev_open(be);
  const il_status st = be->ops->lu_factor(be->ctx, lu, info);
  il_ev_close(be, s, IL_EV_LU_FACTOR);
  return st;
}
static inline il_status il_lu_solve(const il_backend *be, int trans, const il_lu *lu, il_real *R) {
  const il_ev_scope s = il_ev_open(be);
  const il_status st = be->ops->lu_solve(be->ctx, trans, lu, R);
  il_ev_close(be, s, IL_EV_LU_SOLVE);
  return st;
}

#endif
