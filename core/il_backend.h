/* core/il_backend.h: the compute backend as a function table.
 * The CPU backend (OpenBLAS/LAPACK + C kernels) is the readable reference and
 * the oracle; a device backend mirrors it function for function. All matrices
 * are row-major; "batched" arrays are (B, n) or (B, n, n) contiguous. */
#ifndef IL_BACKEND_H
#define IL_BACKEND_H

#include <stddef.h>

#include "il_prec.h"
#include "il_status.h"

#define il_backend_cpu IL_P(il_backend_cpu)

typedef struct il_backend {
  const char *name;
  /* C (M,N) = alpha * op(A) op(B) + beta * C; op(A) is (M,K), op(B) is (K,N). */
  void (*gemm)(int transA, int transB, int M, int N, int K, il_real alpha, const il_real *A, int lda,
               const il_real *B, int ldb, il_real beta, il_real *C, int ldc);
  /* In-place LU with partial pivoting of B matrices (B, n, n); ipiv (B, n).
   * info[b] = 0, or k > 0 when U(k,k) is exactly zero. Returns IL_OK even then. */
  il_status (*lu_factor_batched)(int B, int n, il_real *A, int *ipiv, int *info);
  /* Solve A_b y = r_b (trans = 0) or A_b^T y = r_b (trans = 1) in place on R (B, n). */
  il_status (*lu_solve_batched)(int trans, int B, int n, const il_real *LU, const int *ipiv, il_real *R);
  /* Diagnostics: out[b] = ||A_b||_inf (max row sum of |a|) of B matrices (B, n, n), in double. */
  void (*norm_inf_batched)(int B, int n, const il_real *A, double *out);
  /* Reciprocal condition estimate in the infinity norm (LAPACK gecon) from LU factors and the
   * norm of the matrix before factoring: rcond[b] in [0, 1], 0 for an exactly singular U. */
  il_status (*lu_rcond_batched)(int B, int n, const il_real *LU, const double *anorm, double *rcond);
  /* Elementwise over len: t = tanh(a), s = sech^2(a) (s may be NULL). */
  void (*tanh_sech2)(size_t len, const il_real *a, il_real *t, il_real *s);
  /* J_b = I - diag(s_b) W for b < B; s (B, n), W (n, n), J (B, n, n). */
  void (*eye_minus_diag_w)(int B, int n, const il_real *s, const il_real *W, il_real *J);
  /* y = alpha * x + beta * y */
  void (*axpby)(size_t len, il_real alpha, const il_real *x, il_real beta, il_real *y);
  /* out = a * b elementwise (out may alias a or b) */
  void (*mul)(size_t len, const il_real *a, const il_real *b, il_real *out);
  /* sum (a - b)^2 accumulated in double; b may be NULL (then sum a^2) */
  double (*sqdist)(size_t len, const il_real *a, const il_real *b);
  /* per row of (B, n): out[b] = sum_j (a - b)^2 in double; b may be NULL */
  void (*row_sqdist)(int B, int n, const il_real *a, const il_real *b, double *out);
  /* 1 when every element is finite */
  int (*all_finite)(size_t len, const il_real *a);
  /* threads used over the batch by batched kernels (>= 1) */
  int threads;
} il_backend;

/* The CPU backend; `threads` (>= 1) sets BLAS threads and the batch threads of batched LU. */
il_status il_backend_cpu(int threads, const il_backend **out);

#endif
