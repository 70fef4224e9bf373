/* core/backends/cpu_lu_compact.c: batched LU across the batch in the compact
 * layout of cpu_lu_compact.h. One vector holds element (i, j) of VL samples,
 * so every operation of an unbatched LU becomes a vector operation and the
 * batch, not the (small) matrix, fills the SIMD lanes.
 *
 * Vectors are GCC/Clang vector extensions of 64 bytes: one AVX-512 register,
 * split by the compiler into narrower ones on other ISAs (correct everywhere,
 * fast where 64-byte registers exist). Every lane is an independent sample;
 * nothing ever mixes lanes, so a NaN stays in its sample.
 *
 * Factor: right-looking over panels of NB columns, within a panel left-looking.
 *  - panel: column k first gets the panel's earlier columns (dot products along
 *    the contiguous rows, four rows at a time), its pivot search runs in the
 *    same pass (per lane the first max |a|, as isamax), then the interchange of
 *    whole rows in the lanes that pivot (skipped when none does, the usual case
 *    for I - diag(s) W), then the column is scaled by 1/pivot (divided where
 *    |pivot| < the smallest normal, left unscaled where it is exactly zero, as
 *    sgetf2 does). A right-looking panel stored every element once per step:
 *    it took 12% longer at n = 100;
 *  - U12 = L11^-1 A12 one column at a time in registers;
 *  - A22 -= L21 U12 with a 4 x 6 register tile (24 accumulators), NB terms.
 * Solve: pivots per lane on the right-hand side, then row-oriented
 * substitutions (trans 0) or column-oriented ones (trans 1, U^T and L^T are
 * read along the rows as stored).
 *
 * Measured (1 thread, B = 100, float32, us, median of 5-11 interleaved runs; the
 * machine was shared, so min and max spread by up to 2x; sgemm 100^3 ~100 GFLOP/s):
 *     n   LAPACK factor   compact factor (GFLOP/s)   LAPACK / compact solve (trans 0)
 *    16          143           8.1  (34)                    38 / 4.2
 *    32          488          47.6  (46)                   110 / 10.4
 *    64         1700           333  (53)                   271 / 42
 *   100         4014          1093  (61; min 839: 79)      507 / 231
 *   128         5902          2236  (63)                   734 / 327
 *   192        15668          7979  (59)                  2243 / 976
 *   256        32044         19561  (57)                  3843 / 2101
 *   320        53747         45851  (48)                  6096 / 4224
 *   384        80309         80349  (47)                  7617 / 6336
 *   448       125317        172616  (35)                 10472 / 8957
 *   512       163100        233305  (38)                 12581 / 12613
 * Beyond ~400 a group no longer fits the 2 MB L2 and the trailing update streams
 * from L3; LAPACK's blocked getrf on one matrix then wins. */
#include "cpu_lu_compact.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "il_backend.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#if IL_PREC == 32
#define lapack_gecon sgecon_
#define REAL_MIN FLT_MIN
#else
#define lapack_gecon dgecon_
#define REAL_MIN DBL_MIN
#endif
void lapack_gecon(const char *norm, const int *n, const il_real *a, const int *lda, const il_real *anorm,
                  il_real *rcond, il_real *work, int *iwork, int *info);

#define VL IL_LUC_VL
typedef il_real vec __attribute__((vector_size(64)));
typedef il_luc_int ivec __attribute__((vector_size(64)));
typedef double dvec __attribute__((vector_size(VL * sizeof(double))));

/* Panel width and the trailing update's register tile (24 accumulators + 4 + 1 of the
 * 32 registers). Measured at n = 100, B = 100: NB = 12 takes 4% and 8 12% longer than 16,
 * 24 spills in trsm_panel; tiles 3 x 8 and 2 x 12 are no faster than 4 x 6. */
#define NB 16
#define MR 4
#define NR 6

#define AT(A, i, j) ((A)[(size_t)(i) * n + (j)]) /* vec (i, j) of a group */

/* lane masks: all bits set where true */
static inline ivec vgt(vec a, vec b) { return (ivec)(a > b); }
static inline ivec vlt(vec a, vec b) { return (ivec)(a < b); }
static inline ivec veq(vec a, vec b) { return (ivec)(a == b); }
static inline vec vsel(ivec m, vec a, vec b) { return (vec)(((ivec)a & m) | ((ivec)b & ~m)); } /* m ? a : b */
static inline ivec isel(ivec m, ivec a, ivec b) { return (a & m) | (b & ~m); }
static inline vec vsplat(il_real x) { return x - (vec){0}; } /* x - 0 keeps the sign of -0 */
static inline vec vabs(vec a) { return (vec)((ivec)a & ~(ivec)vsplat(-0.0)); } /* clear the sign bit */
static inline ivec isplat(il_luc_int x) { return (ivec){0} + x; }
static inline int any(ivec m) {
  il_luc_int r = 0;
  for (int l = 0; l < VL; l++) r |= m[l];
  return r != 0;
}

static inline int nthreads(int T, size_t G) { return T > 1 && G > 1 ? (G < (size_t)T ? (int)G : T) : 1; }

/* ---- Jacobian: J_b = I - diag(s_b) W, as cpu.c builds it (-s W, then + 1 on the diagonal) ---- */
static void jac_group(int n, int nv, const il_real *s /* (nv, n) */, const il_real *W, vec *A) {
  vec sv[n > 0 ? n : 1];
  for (int i = 0; i < n; i++) {
    sv[i] = vsplat(0); /* padding: s = 0 gives I */
    for (int l = 0; l < nv; l++) sv[i][l] = s[(size_t)l * n + i];
  }
  ivec pad = isplat(0);
  for (int l = nv; l < VL; l++) pad[l] = -1;
  for (int i = 0; i < n; i++) {
    const vec ms = -sv[i];
    const il_real *Wi = W + (size_t)i * n;
    vec *Ai = A + (size_t)i * n;
    if (nv == VL)
      for (int j = 0; j < n; j++) Ai[j] = ms * Wi[j];
    else /* -0 * NaN would put NaN into a padding lane: make it exactly I */
      for (int j = 0; j < n; j++) Ai[j] = vsel(pad, vsplat(0), ms * Wi[j]);
    Ai[i] += 1;
  }
}

il_status il_luc_jac(int T, int B, int n, const il_real *s, const il_real *W, il_real *a) {
  const size_t G = il_luc_groups(B), gs = (size_t)n * n;
  (void)T;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nthreads(T, G))
#endif
  for (size_t g = 0; g < G; g++) {
    const int nv = B - (int)g * VL < VL ? B - (int)g * VL : VL;
    jac_group(n, nv, s + g * VL * n, W, (vec *)a + g * gs);
  }
  return IL_OK;
}

/* ---- ||J_b||_inf: row sums of |a| in double in column order, as cpu.c ---- */
il_status il_luc_norm_inf(int B, int n, const il_real *a, double *out) {
  const size_t G = il_luc_groups(B), gs = (size_t)n * n;
  for (size_t g = 0; g < G; g++) {
    const vec *A = (const vec *)a + g * gs;
    dvec mx = (dvec){0};
    for (int i = 0; i < n; i++) {
      dvec r = (dvec){0};
      for (int j = 0; j < n; j++) r += __builtin_convertvector(vabs(AT(A, i, j)), dvec);
      for (int l = 0; l < VL; l++) /* NaN propagates */
        mx[l] = isnan(r[l]) || isnan(mx[l]) ? NAN : (r[l] > mx[l] ? r[l] : mx[l]);
    }
    for (int l = 0; l < VL && g * VL + (size_t)l < (size_t)B; l++) out[g * VL + (size_t)l] = mx[l];
  }
  return IL_OK;
}

/* ---- factor ---- */
/* Swap rows k and p[l] of lane l over all columns, for the lanes that pivot. */
static void swap_rows(int n, vec *A, int k, ivec p) {
  for (int l = 0; l < VL; l++) {
    const il_luc_int r = p[l];
    if (r == k) continue;
    vec *x = A + (size_t)k * n, *y = A + (size_t)r * n;
    for (int j = 0; j < n; j++) {
      const il_real t = x[j][l];
      x[j][l] = y[j][l];
      y[j][l] = t;
    }
  }
}

/* Columns k0 .. ke-1, rows k0 .. n-1, left-looking: column k gets the panel's earlier
 * columns' updates (dot products along the rows, which are contiguous), then its pivot
 * search in the same pass, then the interchange and the scaling. Each element is
 * stored once per column instead of once per step as in a right-looking panel.
 * Pivots to P, the first zero pivot to info. */
static void panel(int n, vec *A, ivec *P, ivec *info, int k0, int ke) {
  for (int k = k0; k < ke; k++) {
    const int m = k - k0;
    vec u[NB]; /* U(k0 .. k-1, k) */
    for (int c = 0; c < m; c++) {
      vec v = AT(A, k0 + c, k);
      for (int q = 0; q < c; q++) v -= AT(A, k0 + c, k0 + q) * u[q];
      u[c] = AT(A, k0 + c, k) = v;
    }
    vec best = vsplat(0);
    ivec piv = isplat(k);
    int r = k;
    for (; r + 4 <= n; r += 4) { /* four rows at a time against the FMA latency */
      const vec *L0 = A + (size_t)r * n + k0, *L1 = L0 + n, *L2 = L1 + n, *L3 = L2 + n;
      vec v0 = L0[m], v1 = L1[m], v2 = L2[m], v3 = L3[m];
      for (int c = 0; c < m; c++) {
        const vec uc = u[c];
        v0 -= L0[c] * uc, v1 -= L1[c] * uc, v2 -= L2[c] * uc, v3 -= L3[c] * uc;
      }
      AT(A, r, k) = v0, AT(A, r + 1, k) = v1, AT(A, r + 2, k) = v2, AT(A, r + 3, k) = v3;
      const vec w[4] = {v0, v1, v2, v3};
      for (int q = 0; q < 4; q++) { /* strictly greater: the first max wins, NaN never does */
        const vec a = vabs(w[q]);
        const ivec gt = r + q == k ? isplat(-1) : vgt(a, best);
        best = vsel(gt, a, best);
        piv = isel(gt, isplat(r + q), piv);
      }
    }
    for (; r < n; r++) {
      const vec *L0 = A + (size_t)r * n + k0;
      vec v0 = L0[m];
      for (int c = 0; c < m; c++) v0 -= L0[c] * u[c];
      AT(A, r, k) = v0;
      const vec a = vabs(v0);
      const ivec gt = r == k ? isplat(-1) : vgt(a, best);
      best = vsel(gt, a, best);
      piv = isel(gt, isplat(r), piv);
    }
    P[k] = piv;
    const ivec zero = veq(best, vsplat(0));
    *info = isel(zero & (*info == isplat(0)), isplat(k + 1), *info);
    if (any(piv != isplat(k))) swap_rows(n, A, k, piv);
    const vec pv = AT(A, k, k);
    if (any(vlt(vabs(pv), vsplat(REAL_MIN)) & ~zero)) { /* tiny pivots: 1/pivot would overflow */
      const vec d = vsel(zero, vsplat(1), pv);
      for (int i = k + 1; i < n; i++) AT(A, i, k) /= d;
    } else {
      const vec rp = vsplat(1) / vsel(zero, vsplat(1), pv);
      for (int i = k + 1; i < n; i++) AT(A, i, k) *= rp;
    }
  }
}

/* U12 = L11^-1 A12: rows k0 .. k0+NB-1, columns ke .. n-1, one column in registers. */
static void trsm_panel(int n, vec *A, int k0) {
  const int ke = k0 + NB;
  for (int j = ke; j < n; j++) {
    vec x[NB];
#pragma GCC unroll 16
    for (int r = 0; r < NB; r++) x[r] = AT(A, k0 + r, j);
#pragma GCC unroll 16
    for (int c = 0; c < NB; c++)
#pragma GCC unroll 16
      for (int r = c + 1; r < NB; r++) x[r] -= AT(A, k0 + r, k0 + c) * x[c];
#pragma GCC unroll 16
    for (int r = 1; r < NB; r++) AT(A, k0 + r, j) = x[r];
  }
}

/* C (mr x nr tile at i, j) -= L (rows i.., columns k0 .. k0+NB-1) U (rows k0.., columns j..) */
static inline __attribute__((always_inline)) void tile(int n, vec *A, int i, int j, int k0, const int mr,
                                                       const int nr) {
  vec c[MR][NR];
#pragma GCC unroll 16
  for (int r = 0; r < mr; r++)
#pragma GCC unroll 16
    for (int q = 0; q < nr; q++) c[r][q] = AT(A, i + r, j + q);
  for (int kk = 0; kk < NB; kk++) {
    vec l[MR];
#pragma GCC unroll 16
    for (int r = 0; r < mr; r++) l[r] = AT(A, i + r, k0 + kk);
#pragma GCC unroll 16
    for (int q = 0; q < nr; q++) {
      const vec u = AT(A, k0 + kk, j + q);
#pragma GCC unroll 16
      for (int r = 0; r < mr; r++) c[r][q] -= l[r] * u;
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < mr; r++)
#pragma GCC unroll 16
    for (int q = 0; q < nr; q++) AT(A, i + r, j + q) = c[r][q];
}

/* the tiles of one column strip of width nr, rows i0 .. n-1 */
#define TILE_COL(nr)                                                     \
  static void tile_col_##nr(int n, vec *A, int j, int k0, int i0) {      \
    int i = i0;                                                          \
    for (; i + MR <= n; i += MR) tile(n, A, i, j, k0, MR, nr);           \
    switch (n - i) {                                                     \
    case 3: tile(n, A, i, j, k0, 3, nr); break;                          \
    case 2: tile(n, A, i, j, k0, 2, nr); break;                          \
    case 1: tile(n, A, i, j, k0, 1, nr); break;                          \
    default: break;                                                      \
    }                                                                    \
  }
TILE_COL(1)
TILE_COL(2)
TILE_COL(3)
TILE_COL(4)
TILE_COL(5)
TILE_COL(6)

/* A22 -= L21 U12, A22 = rows and columns ke .. n-1, in strips of NR columns */
static void gemm_update(int n, vec *A, int k0) {
  static void (*const strip[NR + 1])(int, vec *, int, int, int) = {
      NULL, tile_col_1, tile_col_2, tile_col_3, tile_col_4, tile_col_5, tile_col_6};
  const int ke = k0 + NB;
  int j = ke;
  for (; j + NR <= n; j += NR) strip[NR](n, A, j, k0, ke);
  if (j < n) strip[n - j](n, A, j, k0, ke);
}

static ivec factor_group(int n, vec *A, ivec *P) {
  ivec info = isplat(0);
  for (int k0 = 0; k0 < n; k0 += NB) {
    const int ke = k0 + NB < n ? k0 + NB : n;
    panel(n, A, P, &info, k0, ke);
    if (ke == n) break; /* only the last panel may be narrower than NB */
    trsm_panel(n, A, k0);
    gemm_update(n, A, k0);
  }
  return info;
}

il_status il_luc_factor(int T, int B, int n, il_real *a, il_luc_int *p, int *info) {
  const size_t G = il_luc_groups(B), gs = (size_t)n * n;
  (void)T;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nthreads(T, G))
#endif
  for (size_t g = 0; g < G; g++) {
    const ivec in = factor_group(n, (vec *)a + g * gs, (ivec *)p + g * n);
    for (int l = 0; l < VL && g * VL + (size_t)l < (size_t)B; l++) info[g * VL + (size_t)l] = (int)in[l];
  }
  return IL_OK;
}

/* ---- solve ---- */
/* x_k <-> x_{p_k} per lane */
static inline void swap_x(vec *x, int k, ivec p) {
  if (!any(p != isplat(k))) return;
  for (int l = 0; l < VL; l++) {
    const il_luc_int r = p[l];
    const il_real t = x[k][l];
    x[k][l] = x[r][l];
    x[r][l] = t;
  }
}

/* acc - sum_{j < m} a[j] x[j], four partial sums against the FMA latency */
static inline vec dot_sub(vec acc, const vec *a, const vec *x, int m) {
  vec s0 = vsplat(0), s1 = vsplat(0), s2 = vsplat(0), s3 = vsplat(0);
  int j = 0;
  for (; j + 4 <= m; j += 4) {
    s0 += a[j] * x[j];
    s1 += a[j + 1] * x[j + 1];
    s2 += a[j + 2] * x[j + 2];
    s3 += a[j + 3] * x[j + 3];
  }
  for (; j < m; j++) s0 += a[j] * x[j];
  return acc - ((s0 + s1) + (s2 + s3));
}

static void solve_group(int n, int trans, const vec *A, const ivec *P, vec *x) {
  if (!trans) { /* J x = b: x = U^-1 L^-1 P b */
    for (int k = 0; k < n; k++) swap_x(x, k, P[k]);
    for (int i = 1; i < n; i++) x[i] = dot_sub(x[i], A + (size_t)i * n, x, i);
    for (int i = n - 1; i >= 0; i--) {
      const vec *Ai = A + (size_t)i * n;
      x[i] = dot_sub(x[i], Ai + i + 1, x + i + 1, n - 1 - i) / Ai[i];
    }
  } else { /* J^T x = b: x = P^T L^-T U^-T b */
    for (int j = 0; j < n; j++) {
      const vec *Aj = A + (size_t)j * n;
      const vec xj = x[j] / Aj[j];
      x[j] = xj;
      for (int i = j + 1; i < n; i++) x[i] -= Aj[i] * xj;
    }
    for (int j = n - 1; j > 0; j--) {
      const vec *Aj = A + (size_t)j * n;
      const vec xj = x[j];
      for (int i = 0; i < j; i++) x[i] -= Aj[i] * xj;
    }
    for (int k = n - 1; k >= 0; k--) swap_x(x, k, P[k]);
  }
}

il_status il_luc_solve(int T, int trans, int B, int n, const il_real *a, const il_luc_int *p, il_real *R) {
  const size_t G = il_luc_groups(B), gs = (size_t)n * n;
  const int nt = nthreads(T, G);
  vec *work = aligned_alloc(64, (size_t)nt * n * sizeof *work);
  if (!work) return IL_ERR(IL_ERR_NOMEM, "lu_solve: cannot allocate %d x %d workspace", nt, n);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt)
#endif
  for (size_t g = 0; g < G; g++) {
#ifdef _OPENMP
    vec *x = work + (size_t)omp_get_thread_num() * n;
#else
    vec *x = work;
#endif
    const int nv = B - (int)g * VL < VL ? B - (int)g * VL : VL;
    il_real *Rg = R + g * VL * n;
    for (int i = 0; i < n; i++) {
      x[i] = vsplat(0);
      for (int l = 0; l < nv; l++) x[i][l] = Rg[(size_t)l * n + i];
    }
    solve_group(n, trans, (const vec *)a + g * gs, (const ivec *)p + g * n, x);
    for (int l = 0; l < nv; l++)
      for (int i = 0; i < n; i++) Rg[(size_t)l * n + i] = x[i][l];
  }
  free(work);
  return IL_OK;
}

/* ---- rcond: LAPACK's gecon on each sample's factors, unpacked column-major ----
 * They are the factors of J itself, so the infinity-norm estimate ("I") is ||J^-1||_inf. */
il_status il_luc_rcond(int B, int n, const il_real *a, const double *anorm, double *rcond) {
  il_real *lu = malloc((size_t)n * n * sizeof *lu), *work = malloc((size_t)4 * n * sizeof *work);
  int *iwork = malloc((size_t)n * sizeof *iwork);
  il_status s = IL_OK;
  if (!lu || !work || !iwork) {
    s = IL_ERR(IL_ERR_NOMEM, "gecon: cannot allocate %d-sized workspace", n);
    goto out;
  }
  for (int b = 0; b < B; b++) {
    const il_real an = (il_real)anorm[b];
    il_real rc = 0;
    int info = 0;
    if (!isfinite(an)) {
      rcond[b] = NAN;
      continue;
    }
    const vec *A = (const vec *)a + (size_t)(b / VL) * n * n;
    for (int i = 0; i < n; i++)
      for (int j = 0; j < n; j++) lu[i + (size_t)j * n] = AT(A, i, j)[b % VL];
    lapack_gecon("I", &n, lu, &n, &an, &rc, work, iwork, &info);
    if (info < 0) {
      s = IL_ERR(IL_ERR_INTERNAL, "gecon: illegal argument %d", -info);
      goto out;
    }
    rcond[b] = rc;
  }
out:
  free(lu);
  free(work);
  free(iwork);
  return s;
}
