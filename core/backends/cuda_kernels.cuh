/* core/backends/cuda_kernels.cuh: the cuda backend's own kernels, each a functor whose
 * operator() is the body of one thread: f(block index, thread index, block size). The
 * same body runs on the GPU (cuda.cu launches it over a 1-D grid) and on the host
 * (cuda_host.cpp runs the grid block by block, thread by thread), so the harness tests
 * the kernels' indexing, bounds and reduction order where no GPU exists.
 *
 * None of them has a block barrier or a shuffle: each is elementwise, or one thread per
 * row (or per row and term), or a two-stage reduction (per-thread partials in a fixed
 * order, then one thread sums them). Results are therefore deterministic and the same on
 * both launchers up to the libm of each side. Sums accumulate in double where
 * il_backend.h says so. Compiled once per precision (il_real). */
#ifndef IL_CUDA_KERNELS_CUH
#define IL_CUDA_KERNELS_CUH

#include <math.h>
#include <stddef.h>

#include "il_prec.h"

#ifdef __CUDACC__
#define IL_HD __host__ __device__ __forceinline__
#else
#define IL_HD inline
#endif

/* kept apart from il_backend.h (C): the kernels see plain values only */
namespace ilk {

#if IL_PREC == 32
IL_HD il_real r_tanh(il_real x) { return tanhf(x); }
IL_HD il_real r_cosh(il_real x) { return coshf(x); }
IL_HD il_real r_sinh(il_real x) { return sinhf(x); }
IL_HD il_real r_exp(il_real x) { return expf(x); }
#else
IL_HD il_real r_tanh(il_real x) { return tanh(x); }
IL_HD il_real r_cosh(il_real x) { return cosh(x); }
IL_HD il_real r_sinh(il_real x) { return sinh(x); }
IL_HD il_real r_exp(il_real x) { return exp(x); }
#endif
IL_HD int finite_d(double v) { return v - v == 0; } /* false for NaN and +-inf */

enum { ACT_NONE = 0, ACT_TANH = 1, ACT_RELU = 2 }; /* il_act */
enum { MAXK = 64 };                                /* row pointers per launch */

/* k (B, n) tensors of one launch, passed by value (512 bytes of kernel parameters) */
struct rows {
  const il_real *p[MAXK];
};

IL_HD size_t gid(unsigned b, unsigned t, unsigned nt) { return (size_t)b * nt + t; }

/* f = act(a), s = act'(a) from the input (tanh: sech^2 = 4e / (1 + e)^2 with e = exp(-2|a|),
 * no cancellation for large |a|, unlike 1 - tanh^2). NaN stays NaN. */
IL_HD void act1(int act, il_real a, il_real *f, il_real *s) {
  if (act == ACT_TANH) {
    const il_real ax = a < 0 ? -a : a, e = r_exp(-2 * ax), d = 1 + e;
    *f = r_tanh(a);
    *s = a != a ? a : 4 * e / (d * d);
  } else if (act == ACT_RELU) {
    *s = a != a ? a : (a > 0 ? (il_real)1 : (il_real)0);
    *f = a != a ? a : (a > 0 ? a : (il_real)0);
  } else {
    *f = a;
    *s = 1;
  }
}
IL_HD il_real dact_f(int act, il_real f) { /* act' from the output f */
  if (act == ACT_TANH) return 1 - f * f;
  if (act == ACT_RELU) return f != f ? f : (f > 0 ? (il_real)1 : (il_real)0);
  return 1;
}

/* ---- elementwise over len ---- */
struct k_fill {
  size_t len; il_real v; il_real *out;
  IL_HD void operator()(unsigned b, unsigned t, unsigned nt) const {
    const size_t i = gid(b, t, nt);
    if (i < len) out[i] = v;
  }
};
struct k_axpby { /* y = a x + b y (b = 0: y is not read) */
  size_t len; il_real a, bb; const il_real *x; il_real *y;
  IL_HD void operator()(unsigned b, unsigned t, unsigned nt) const {
    const size_t i = gid(b, t, nt);
    if (i < len) y[i] = bb == 0 ? a * x[i] : a * x[i] + bb * y[i];
  }
};
struct k_lincomb { /* out may alias x or y: each element is read before it is written */
  size_t len; il_real a, bb; const il_real *x, *y; il_real *out;
  IL_HD void operator()(unsigned b, unsigned t, unsigned nt) const {
    const size_t i = gid(b, t, nt);
    if (i < len) out[i] = a * x[i] + bb * y[i];
  }
};
struct k_mul {
  size_t len; const il_real *x, *y; il_real *out;
  IL_HD void operator()(unsigned b, unsigned t, unsigned nt) const {
    const size_t i = gid(b, t, nt);
    if (i < len) out[i] = x[i] * y[i];
  }
};
struct k_act_fwd { /* s may be NULL; f may alias a */
  size_t len; int act; const il_real *a; il_real *f, *s;
  IL_HD void operator()(unsigned b, unsigned t, unsigned nt) const {
    const size_t i = gid(b, t, nt);
    if (i >= len) return;
    il_real fi, si;
    act1(act, a[i], &fi, &si);
    f[i] = fi;
    if (s) s[i] = si;
  }
};
struct k_act_deriv {
  size_t len; int act; const il_real *f; il_real *s;
  IL_HD void operator()(unsigned b, unsigned t, unsigned nt) const {
    const size_t i = gid(b, t, nt);
    if (i < len) s[i] = dact_f(act, f[i]);
  }
};
struct k_act_dmul { /* out = act'(f) u; relu keeps a NaN f */
  size_t len; int act; const il_real *f, *u; il_real *out;
  IL_HD void operator()(unsigned b, unsigned t, unsigned nt) const {
    const size_t i = gid(b, t, nt);
    if (i >= len) return;
    const il_real fi = f[i];
    if (act == ACT_TANH) out[i] = (1 - fi * fi) * u[i];
    else if (act == ACT_RELU) out[i] = fi != fi ? fi : (fi > 0 ? u[i] : (il_real)0);
    else out[i] = u[i];
  }
};
struct k_act_d2 { /* sw = s w, q <- w q s' (tanh: s = 1 - f^2, s' = -2 s f; else s' = 0) */
  size_t len; int act; const il_real *f, *w; il_real *q, *sw;
  IL_HD void operator()(unsigned b, unsigned t, unsigned nt) const {
    const size_t i = gid(b, t, nt);
    if (i >= len) return;
    const il_real fi = f[i];
    if (act == ACT_TANH) {
      const il_real s = 1 - fi * fi;
      sw[i] = s * w[i];
      q[i] = w[i] * q[i] * (-2 * s * fi);
    } else {
      const il_real s = act == ACT_NONE ? (il_real)1 : (fi != fi ? fi : (fi > 0 ? (il_real)1 : (il_real)0));
      sw[i] = s * w[i];
      q[i] = fi != fi ? fi : (il_real)0;
    }
  }
};
struct k_sech2_seed { /* the seed's 1 / cosh(a)^2, each step rounded in il_real */
  size_t len; const il_real *a; il_real *s;
  IL_HD void operator()(unsigned b, unsigned t, unsigned nt) const {
    const size_t i = gid(b, t, nt);
    if (i >= len) return;
    const il_real p = r_cosh(a[i]), q = p * p;
    s[i] = (il_real)1 / q;
  }
};
struct k_sech2_seed_d2 { /* autograd's order: reciprocal, pow, cosh backward (cpu.c) */
  size_t len; const il_real *a, *w; il_real *q, *sw;
  IL_HD void operator()(unsigned b, unsigned t, unsigned nt) const {
    const size_t i = gid(b, t, nt);
    if (i >= len) return;
    const il_real p = r_cosh(a[i]), qq = p * p, s = (il_real)1 / qq;
    const il_real s_bar = w[i] * q[i];
    sw[i] = s * w[i];
    const il_real q_bar = -s_bar * (s * s);
    const il_real p_bar = q_bar * (2 * p);
    q[i] = p_bar * r_sinh(a[i]);
  }
};

/* ---- per element of (B, n) ---- */
struct k_add_bias { /* the fused map's prologue: out = add + bias, either may be NULL (not both) */
  int B, n; const il_real *add, *bias; il_real *out;
  IL_HD void operator()(unsigned b, unsigned t, unsigned nt) const {
    const size_t i = gid(b, t, nt);
    if (i >= (size_t)B * n) return;
    const int j = (int)(i % (size_t)n);
    out[i] = add ? (bias ? add[i] + bias[j] : add[i]) : bias[j];
  }
};
struct k_row_lincomb { /* out_b = s a_b x_b + beta y_b */
  int B, n; il_real s; const il_real *a, *x; il_real beta; const il_real *y; il_real *out;
  IL_HD void operator()(unsigned b, unsigned t, unsigned nt) const {
    const size_t i = gid(b, t, nt);
    if (i >= (size_t)B * n) return;
    const il_real c = s * a[i / (size_t)n];
    if (beta == 0 || !y) out[i] = c * x[i];
    else if (beta == 1) out[i] = c * x[i] + y[i];
    else out[i] = c * x[i] + beta * y[i];
  }
};
struct k_row_select {
  int B, n; const unsigned char *mask; int want; const il_real *src; il_real *dst;
  IL_HD void operator()(unsigned b, unsigned t, unsigned nt) const {
    const size_t i = gid(b, t, nt);
    if (i < (size_t)B * n && (mask[i / (size_t)n] != 0) == (want != 0)) dst[i] = src[i];
  }
};
struct k_row_fill {
  int B, n; const unsigned char *mask; int want; il_real v; il_real *dst;
  IL_HD void operator()(unsigned b, unsigned t, unsigned nt) const {
    const size_t i = gid(b, t, nt);
    if (i < (size_t)B * n && (mask[i / (size_t)n] != 0) == (want != 0)) dst[i] = v;
  }
};
/* out_b = beta out_b + sum_i coef[b k + koff + i] X_i,b over this launch's kc terms, in
 * order of i; first: the launch that applies beta (later launches add their terms). */
struct k_row_combine {
  int B, n, kc, k, koff, first; rows X; const il_real *coef; il_real beta; il_real *out;
  IL_HD void operator()(unsigned b, unsigned t, unsigned nt) const {
    const size_t e = gid(b, t, nt);
    if (e >= (size_t)B * n) return;
    const size_t r = e / (size_t)n;
    il_real acc = !first ? out[e] : beta == 0 ? (il_real)0 : beta == 1 ? out[e] : out[e] * beta;
    for (int i = 0; i < kc; i++) acc += coef[r * k + koff + i] * X.p[i][e];
    out[e] = acc;
  }
};
struct k_row_index_copy { /* sidx, didx (B) in the space or NULL */
  int B, n; const int *sidx; const il_real *src; const int *didx; il_real *dst;
  IL_HD void operator()(unsigned b, unsigned t, unsigned nt) const {
    const size_t e = gid(b, t, nt);
    if (e >= (size_t)B * n) return;
    const size_t r = e / (size_t)n, j = e % (size_t)n;
    const size_t sr = sidx ? (size_t)sidx[r] : r, dr = didx ? (size_t)didx[r] : r;
    dst[dr * n + j] = src[sr * n + j];
  }
};
struct k_xent_bwd { /* p <- (p - onehot) scale, in cpu.c's order */
  int B, c; const unsigned char *labels; il_real scale; il_real *p;
  IL_HD void operator()(unsigned b, unsigned t, unsigned nt) const {
    const size_t e = gid(b, t, nt);
    if (e >= (size_t)B * c) return;
    il_real v = p[e] * scale;
    if ((int)(e % (size_t)c) == labels[e / (size_t)c]) v -= scale;
    p[e] = v;
  }
};
/* J_b = I - diag(s_b) W, row-major (B, n, n): the column-major layout cuBLAS factors is J_b^T */
struct k_jac {
  int B, n; const il_real *s, *W; il_real *J;
  IL_HD void operator()(unsigned b, unsigned t, unsigned nt) const {
    const size_t e = gid(b, t, nt), nn = (size_t)n * n;
    if (e >= (size_t)B * nn) return;
    const size_t m = e / nn, ij = e % nn, i = ij / (size_t)n, j = ij % (size_t)n;
    il_real v = -s[m * n + i] * W[ij];
    if (i == j) v += 1;
    J[e] = v;
  }
};
struct k_ptrs { /* p[b] = base + b stride: the pointer arrays of the batched LU */
  int B; il_real *base; size_t stride; il_real **p;
  IL_HD void operator()(unsigned b, unsigned t, unsigned nt) const {
    const size_t i = gid(b, t, nt);
    if (i < (size_t)B) p[i] = base + i * stride;
  }
};

/* ---- one thread per column or row ---- */
struct k_col_sum_add { /* out_j += sum_r a_rj, rows in order */
  int B, n; const il_real *a; il_real *out;
  IL_HD void operator()(unsigned b, unsigned t, unsigned nt) const {
    const size_t j = gid(b, t, nt);
    if (j >= (size_t)n) return;
    il_real acc = out[j];
    for (int r = 0; r < B; r++) acc += a[(size_t)r * n + j];
    out[j] = acc;
  }
};
struct k_row_sqdist { /* out_b = sum (a - b)^2 in double; bb may be NULL */
  int B, n; const il_real *a, *bb; double *out;
  IL_HD void operator()(unsigned b, unsigned t, unsigned nt) const {
    const size_t r = gid(b, t, nt);
    if (r >= (size_t)B) return;
    const il_real *ar = a + r * n, *br = bb ? bb + r * n : 0;
    double acc = 0;
    for (int j = 0; j < n; j++) {
      const double d = br ? (double)ar[j] - (double)br[j] : (double)ar[j];
      acc += d * d;
    }
    out[r] = acc;
  }
};
/* The fused map's epilogue, one thread per row: pre, act, act' and the row's residual
 * ||res_ref - out||^2 in one pass over the GEMM's output (each pointer may be NULL). */
struct k_map_epilogue {
  int B, N, act; il_real *out, *pre, *deriv; const il_real *ref; double *res;
  IL_HD void operator()(unsigned b, unsigned t, unsigned nt) const {
    const size_t r = gid(b, t, nt);
    if (r >= (size_t)B) return;
    double acc = 0;
    for (int j = 0; j < N; j++) {
      const size_t e = r * N + j;
      const il_real v = out[e];
      if (pre) pre[e] = v;
      il_real f, s;
      act1(act, v, &f, &s);
      out[e] = f;
      if (deriv) deriv[e] = s;
      if (res) {
        const double d = (double)ref[e] - (double)f;
        acc += d * d;
      }
    }
    if (res) res[r] = acc;
  }
};
/* out[b k + koff + i] = X_i,b . y_b in double: one thread per (row, term) */
struct k_row_dot {
  int B, n, kc, k, koff; rows X; const il_real *y; double *out;
  IL_HD void operator()(unsigned b, unsigned t, unsigned nt) const {
    const size_t e = gid(b, t, nt);
    if (e >= (size_t)B * kc) return;
    const size_t r = e / (size_t)kc;
    const int i = (int)(e % (size_t)kc);
    const il_real *x = X.p[i] + r * n, *yr = y + r * n;
    double acc = 0;
    for (int j = 0; j < n; j++) acc += (double)x[j] * (double)yr[j];
    out[r * k + koff + i] = acc;
  }
};
/* d_b = a_b - c_b, then the first kc dots of d_b (X may hold d: this thread wrote its row) */
struct k_row_sub_dot {
  int B, n, kc, k; rows X; const il_real *a, *c; il_real *d; double *out;
  IL_HD void operator()(unsigned b, unsigned t, unsigned nt) const {
    const size_t r = gid(b, t, nt);
    if (r >= (size_t)B) return;
    const size_t o = r * n;
    for (int j = 0; j < n; j++) d[o + j] = a[o + j] - c[o + j];
    for (int i = 0; i < kc; i++) {
      const il_real *x = X.p[i] + o;
      double acc = 0;
      for (int j = 0; j < n; j++) acc += (double)x[j] * (double)d[o + j];
      out[r * k + i] = acc;
    }
  }
};
/* Modified Gram-Schmidt of w_b against this launch's kc rows; last: also ||w_b|| at h[b (k+1) + k]. */
struct k_row_mgs {
  int B, n, kc, k, koff, last; rows V; il_real *w; double *h;
  IL_HD void operator()(unsigned b, unsigned t, unsigned nt) const {
    const size_t r = gid(b, t, nt);
    if (r >= (size_t)B) return;
    il_real *wr = w + r * n;
    double *hr = h + r * (size_t)(k + 1);
    for (int i = 0; i < kc; i++) {
      const il_real *v = V.p[i] + r * n;
      double c = 0;
      for (int j = 0; j < n; j++) c += (double)wr[j] * (double)v[j];
      hr[koff + i] = c;
      const il_real cr = (il_real)c;
      for (int j = 0; j < n; j++) wr[j] -= cr * v[j];
    }
    if (last) {
      double s = 0;
      for (int j = 0; j < n; j++) s += (double)wr[j] * (double)wr[j];
      hr[k] = sqrt(s);
    }
  }
};
/* ob_b = (first ? a_b : ob_b) + sum_i P_i,b (Q_i,b . a_b) over this launch's kc terms, each
 * dot rounded to il_real, terms in order of i; ob is not a. Then the same for oc, c with P
 * and Q swapped when c is not NULL. One thread per row. */
struct k_row_lowrank {
  int B, n, kc, first; rows P, Q; const il_real *a; il_real *oa; const il_real *c; il_real *oc;
  IL_HD static void apply(int n, int kc, int first, const rows &P, const rows &Q, size_t o, const il_real *x,
                          il_real *ox) {
    if (first && kc == 0)
      for (int j = 0; j < n; j++) ox[o + j] = x[o + j];
    for (int i = 0; i < kc; i++) {
      const il_real *q = Q.p[i] + o, *p = P.p[i] + o;
      double d = 0;
      for (int j = 0; j < n; j++) d += (double)q[j] * (double)x[o + j];
      const il_real cf = (il_real)d;
      const il_real *src = first && i == 0 ? x : ox;
      for (int j = 0; j < n; j++) ox[o + j] = src[o + j] + cf * p[j];
    }
  }
  IL_HD void operator()(unsigned b, unsigned t, unsigned nt) const {
    const size_t r = gid(b, t, nt);
    if (r >= (size_t)B) return;
    apply(n, kc, first, P, Q, r * n, a, oa);
    if (c) apply(n, kc, first, Q, P, r * n, c, oc);
  }
};
/* Softmax cross-entropy of one row (cpu.c's rule): p, and the row's loss and error flag. */
struct k_xent_fwd {
  int B, c; const il_real *l; const unsigned char *labels; il_real *p; double *loss; int *err;
  IL_HD void operator()(unsigned b, unsigned t, unsigned nt) const {
    const size_t r = gid(b, t, nt);
    if (r >= (size_t)B) return;
    const il_real *lr = l + r * c;
    il_real *pr = p + r * c;
    int arg = 0;
    double mx = lr[0];
    for (int j = 1; j < c; j++)
      if (lr[j] > mx) mx = lr[j], arg = j;
    double sum = 0;
    for (int j = 0; j < c; j++) sum += exp((double)lr[j] - mx);
    for (int j = 0; j < c; j++) pr[j] = (il_real)(exp((double)lr[j] - mx) / sum);
    if (labels) {
      loss[r] = log(sum) + mx - (double)lr[labels[r]];
      err[r] = (arg != labels[r]) || !finite_d(mx);
    }
  }
};
/* ||J_b||_inf in two steps: the absolute row sums (one thread per row of every matrix) ... */
struct k_lu_rowsum {
  int B, n; const il_real *J; double *rs;
  IL_HD void operator()(unsigned b, unsigned t, unsigned nt) const {
    const size_t e = gid(b, t, nt);
    if (e >= (size_t)B * n) return;
    const il_real *row = J + e * n; /* row i of matrix m is at (m n + i) n */
    double acc = 0;
    for (int j = 0; j < n; j++) acc += fabs((double)row[j]);
    rs[e] = acc;
  }
};
/* ... then their maximum per matrix, a NaN propagating (cpu.c's rule) */
struct k_lu_rowmax {
  int B, n; const double *rs; double *out;
  IL_HD void operator()(unsigned b, unsigned t, unsigned nt) const {
    const size_t m = gid(b, t, nt);
    if (m >= (size_t)B) return;
    double mx = 0;
    for (int i = 0; i < n; i++) {
      const double r = rs[m * n + i];
      if (r != r || mx != mx) mx = r != r ? r : mx;
      else if (r > mx) mx = r;
    }
    out[m] = mx;
  }
};

/* The factors of A = J^T (column-major, LAPACK's getrf: A = P L U, 1-based pivots). */
IL_HD void lu_apply(int n, const il_real *a, const int *piv, int trans, double *x) {
  if (!trans) { /* A x = b: P, L (unit), U */
    for (int i = 0; i < n; i++) {
      const int p = piv[i] - 1;
      if (p != i) { const double tmp = x[i]; x[i] = x[p]; x[p] = tmp; }
    }
    for (int j = 0; j < n; j++)
      for (int i = j + 1; i < n; i++) x[i] -= (double)a[i + (size_t)j * n] * x[j];
    for (int j = n - 1; j >= 0; j--) {
      x[j] /= (double)a[j + (size_t)j * n];
      for (int i = 0; i < j; i++) x[i] -= (double)a[i + (size_t)j * n] * x[j];
    }
  } else { /* A^T x = b: U^T, L^T, then P^T */
    for (int j = 0; j < n; j++) {
      double s = x[j];
      for (int i = 0; i < j; i++) s -= (double)a[i + (size_t)j * n] * x[i];
      x[j] = s / (double)a[j + (size_t)j * n];
    }
    for (int j = n - 1; j >= 0; j--) {
      double s = x[j];
      for (int i = j + 1; i < n; i++) s -= (double)a[i + (size_t)j * n] * x[i];
      x[j] = s;
    }
    for (int i = n - 1; i >= 0; i--) {
      const int p = piv[i] - 1;
      if (p != i) { const double tmp = x[i]; x[i] = x[p]; x[p] = tmp; }
    }
  }
}
/* rcond_b = 1 / (anorm_b ||A^-1||_1) with ||A^-1||_1 = ||J^-1||_inf estimated as LAPACK's
 * gecon does (Hager's method with Higham's alternative vector): one thread per matrix,
 * work (B, 2n) doubles. Non-finite anorm gives NaN, as on the cpu backend. */
struct k_lu_rcond {
  int B, n; const il_real *a; const int *piv; const double *anorm; double *work; double *rcond;
  IL_HD void operator()(unsigned b, unsigned t, unsigned nt) const {
    const size_t m = gid(b, t, nt);
    if (m >= (size_t)B) return;
    const il_real *am = a + m * n * n;
    const int *pm = piv + m * n;
    double *x = work + m * 2 * n, *y = x + n;
    const double an = anorm[m];
    if (!finite_d(an)) { rcond[m] = an - an; return; }
    if (an == 0) { rcond[m] = 0; return; }
    for (int i = 0; i < n; i++) y[i] = 1.0 / n;
    lu_apply(n, am, pm, 0, y); /* y = A^-1 (1/n) */
    double est = 0;
    for (int i = 0; i < n; i++) est += fabs(y[i]);
    for (int it = 0; it < 5; it++) { /* each step a lower bound; stop when it stops growing */
      for (int i = 0; i < n; i++) x[i] = y[i] >= 0 ? 1.0 : -1.0;
      lu_apply(n, am, pm, 1, x); /* z = A^-T sign(y) */
      int jm = 0;
      for (int i = 1; i < n; i++)
        if (fabs(x[i]) > fabs(x[jm])) jm = i;
      for (int i = 0; i < n; i++) y[i] = i == jm;
      lu_apply(n, am, pm, 0, y); /* y = A^-1 e_j */
      double e1 = 0;
      for (int i = 0; i < n; i++) e1 += fabs(y[i]);
      if (!(e1 > est)) break;
      est = e1;
    }
    for (int i = 0; i < n; i++) y[i] = (i % 2 ? -1.0 : 1.0) * (1.0 + (n > 1 ? (double)i / (n - 1) : 0.0));
    lu_apply(n, am, pm, 0, y);
    double e2 = 0;
    for (int i = 0; i < n; i++) e2 += fabs(y[i]);
    e2 = 2 * e2 / (3.0 * n);
    if (e2 > est || est != est) est = e2 > est ? e2 : est;
    rcond[m] = est > 0 ? (1.0 / est) / an : 0;
  }
};

/* ---- reductions over len: per-thread partials over a fixed stride, then one thread ---- */
enum { RED_SQ = 0, RED_ABSMAX = 1, RED_FINITE = 2, RED_COMPARE = 3 };
/* thread p of P: elements p, p + P, ...; part gets 1 value per thread (RED_COMPARE: 4) */
struct k_reduce_part {
  size_t len, P; int kind; const il_real *a, *bb; double *part;
  IL_HD void operator()(unsigned b, unsigned t, unsigned nt) const {
    const size_t p = gid(b, t, nt);
    if (p >= P) return;
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = p; i < len; i += P) {
      const double x = a[i];
      if (kind == RED_SQ) {
        const double d = bb ? x - (double)bb[i] : x;
        s0 += d * d;
      } else if (kind == RED_ABSMAX) {
        s0 = fabs(x) > s0 ? fabs(x) : s0; /* a NaN compares false: skipped */
      } else if (kind == RED_FINITE) {
        s0 += finite_d(x) ? 0 : 1;
      } else {
        const double y = bb[i];
        s0 += x * y, s1 += x * x, s2 += y * y, s3 += (x - y) * (x - y);
      }
    }
    if (kind == RED_COMPARE) {
      part[4 * p] = s0, part[4 * p + 1] = s1, part[4 * p + 2] = s2, part[4 * p + 3] = s3;
    } else {
      part[p] = s0;
    }
  }
};
/* one thread: out[q] = the partials of column q (of m) combined in order of p */
struct k_reduce_final {
  size_t P; int m, kind; const double *part; double *out;
  IL_HD void operator()(unsigned b, unsigned t, unsigned nt) const {
    if (gid(b, t, nt) != 0) return;
    for (int q = 0; q < m; q++) {
      double s = 0;
      for (size_t p = 0; p < P; p++) {
        const double v = part[p * m + q];
        if (kind == RED_ABSMAX) s = v > s ? v : s;
        else s += v;
      }
      out[q] = s;
    }
  }
};

} /* namespace ilk */

#endif
