/* core/backends/cuda_ops.cuh: every op of il_backend_ops for the cuda backend, written
 * once as a template over a launcher L (the backend's context):
 *   - cuda.cu's launcher runs the kernels of cuda_kernels.cuh as <<<>>> launches on its
 *     stream, cuBLAS for GEMMs and the batched LU, cudaMalloc'd memory;
 *   - cuda_host.cpp's launcher runs the same kernels over the same grid on the host,
 *     block by block and thread by thread, with CBLAS/LAPACK standing in for cuBLAS.
 * So the `cuda-host` test backend runs exactly this file's op code and the kernels'
 * indexing; only the launcher's few lines differ.
 *
 * L provides: run(functor, threads), gemm, gemm_sb (row-major, as il_backend.h),
 * graphed(key, body) (run body's launches; the device may capture them into a CUDA graph
 * and replay it when the same key comes again; body never copies to the host),
 * getrf_batched / getrs_batched (cuBLAS's column-major batched LU on pointer arrays in
 * the space), scratch(bytes) (space memory reused from op to op), to_host (waits: the
 * sync points), to_space, the memory ops, and a `flops` counter (the counts cpu.c keeps).
 * Compiled once per precision. */
#ifndef IL_CUDA_OPS_CUH
#define IL_CUDA_OPS_CUH

#include <string.h>

#include "cuda_kernels.cuh"

extern "C" {
#include "il_backend.h"
}

namespace ilk {

/* Pieces of one scratch request, each 64-byte aligned. */
struct carve {
  char *base;
  size_t off;
  template <class T> T *take(size_t n) {
    off = (off + 63) & ~(size_t)63;
    T *p = (T *)(void *)(base + off);
    off += n * sizeof(T);
    return p;
  }
};
static inline size_t al64(size_t b) { return (b + 63) & ~(size_t)63; }

/* Partial count of the two-stage reductions: ~64 elements a thread, at most 4096 partials. */
static inline size_t red_parts(size_t len) {
  size_t p = len / 64;
  return p < 1 ? 1 : p > 4096 ? 4096 : p;
}

/* The batched LU's parts: lu->a holds the B row-major n x n J_b (J_b^T column-major, what
 * cuBLAS factors); lu->p holds the two pointer arrays, then the pivots (B, n) and info (B). */
struct lu_parts {
  il_real **pa, **pr;
  int *piv, *info;
};
static inline size_t lu_p_bytes(int B, int n) {
  return al64(2 * (size_t)B * sizeof(void *)) + al64((size_t)B * n * sizeof(int)) + (size_t)B * sizeof(int);
}
static inline lu_parts lu_split(const il_lu *lu) {
  carve c = {(char *)lu->p, 0};
  lu_parts q;
  q.pa = c.take<il_real *>((size_t)lu->B);
  q.pr = c.take<il_real *>((size_t)lu->B);
  q.piv = c.take<int>((size_t)lu->B * lu->n);
  q.info = c.take<int>((size_t)lu->B);
  return q;
}

/* The arguments of one op call, as bytes: a replayed CUDA graph is valid for exactly these
 * (cuda.cu's graph cache; the host launcher ignores it). */
struct gkey {
  unsigned char b[192];
  size_t n;
  template <class T> gkey &add(const T &v) {
    if (n + sizeof v <= sizeof b) memcpy(b + n, &v, sizeof v);
    n += sizeof v; /* too long: never cached (n > sizeof b) */
    return *this;
  }
};
static inline gkey key_of(int op) {
  gkey k;
  k.n = 0;
  return k.add(op);
}

template <class L> struct cu_ops {
  static L *C(void *ctx) { return (L *)ctx; }
  static il_status bad_act(int act) { return IL_ERR(IL_ERR_INTERNAL, "%s backend: unknown activation %d", L::NAME, act); }
  static int act_ok(int act) { return act == ACT_NONE || act == ACT_TANH || act == ACT_RELU; }

  /* ---- memory ---- */
  static il_status alloc(void *ctx, size_t bytes, void **p) { return C(ctx)->alloc(bytes, p); }
  static void release(void *ctx, void *p, size_t bytes) { C(ctx)->release(p, bytes); }
  static il_status zero(void *ctx, void *p, size_t bytes) { return bytes ? C(ctx)->zero(p, bytes) : IL_OK; }
  static il_status copy(void *ctx, il_copy_kind kind, void *dst, const void *src, size_t bytes) {
    if (!bytes || dst == src) return IL_OK;
    if (kind == IL_COPY_TO_HOST) return C(ctx)->to_host(dst, src, bytes);
    if (kind == IL_COPY_TO_SPACE) return C(ctx)->to_space(dst, src, bytes);
    return C(ctx)->in_space(dst, src, bytes);
  }
  static il_status sync(void *ctx) { return C(ctx)->sync(); }
  static void mem_stats(void *ctx, size_t *live, size_t *peak) {
    *live = C(ctx)->live;
    *peak = C(ctx)->peak;
  }
  static double flops(void *ctx) { return C(ctx)->flops; }

  /* ---- dense linear algebra ---- */
  static il_status gemm(void *ctx, int tA, int tB, int M, int N, int K, il_real alpha, const il_real *A, int lda,
                        const il_real *B, int ldb, il_real beta, il_real *Cm, int ldc) {
    C(ctx)->flops += 2.0 * M * N * K;
    if (M == 0 || N == 0) return IL_OK;
    return C(ctx)->gemm(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, Cm, ldc);
  }
  static il_status gemm_strided_batched(void *ctx, int tA, int tB, int M, int N, int K, il_real alpha,
                                        const il_real *A, int lda, size_t sA, const il_real *B, int ldb, size_t sB,
                                        il_real beta, il_real *Cm, int ldc, size_t sC, int batch) {
    C(ctx)->flops += 2.0 * M * N * K * batch;
    if (M == 0 || N == 0 || batch == 0) return IL_OK;
    return C(ctx)->gemm_sb(tA, tB, M, N, K, alpha, A, lda, sA, B, ldb, sB, beta, Cm, ldc, sC, batch);
  }
  /* prologue (add + bias into out), GEMM onto it, then one epilogue pass per row */
  static il_status gemm_ep(void *ctx, int B, int N, int K, const il_real *A, const il_real *W, const il_epilogue *ep,
                           il_real *out) {
    L *l = C(ctx);
    const size_t len = (size_t)B * N;
    if (!act_ok(ep->act)) return bad_act(ep->act);
    l->flops += 2.0 * B * N * K + (ep->act != IL_ACT_NONE ? (double)len : 0) + (ep->res_rows ? 3.0 * (double)len : 0);
    if (len == 0) return IL_OK;
    const int pro = ep->add || ep->bias;
    double *res = NULL;
    if (ep->res_rows) IL_CHECK(l->scratch((size_t)B * sizeof(double), (void **)&res));
    /* the map's three launches as one graph when the same call repeats (a solver iteration);
     * the residual's copy to the host stays outside it: the named sync point */
    gkey key = key_of(1).add(B).add(N).add(K).add(A).add(W).add(ep->add).add(ep->bias).add(ep->act).add(ep->pre);
    key.add(ep->deriv).add(ep->res_ref).add(res).add(out);
    const il_status gs = l->graphed(key, [&]() -> il_status {
      if (pro) IL_CHECK(l->run(k_add_bias{B, N, ep->add, ep->bias, out}, len));
      IL_CHECK(l->gemm(0, 1, B, N, K, 1, A, K, W, K, pro ? 1 : 0, out, N));
      if (ep->act == IL_ACT_NONE && !ep->pre && !ep->deriv && !res) return IL_OK;
      return l->run(k_map_epilogue{B, N, (int)ep->act, out, ep->pre, ep->deriv, ep->res_ref, res}, (size_t)B);
    });
    IL_CHECK(gs);
    if (res) IL_CHECK(l->to_host(ep->res_rows, res, (size_t)B * sizeof(double)));
    return IL_OK;
  }

  /* ---- elementwise ---- */
  static il_status fill(void *ctx, size_t len, il_real v, il_real *out) {
    return len ? C(ctx)->run(k_fill{len, v, out}, len) : IL_OK;
  }
  static il_status axpby(void *ctx, size_t len, il_real a, const il_real *x, il_real b, il_real *y) {
    C(ctx)->flops += 2.0 * len;
    return len ? C(ctx)->run(k_axpby{len, a, b, x, y}, len) : IL_OK;
  }
  static il_status lincomb(void *ctx, size_t len, il_real a, const il_real *x, il_real b, const il_real *y,
                           il_real *out) {
    C(ctx)->flops += 2.0 * len;
    return len ? C(ctx)->run(k_lincomb{len, a, b, x, y, out}, len) : IL_OK;
  }
  static il_status mul(void *ctx, size_t len, const il_real *a, const il_real *b, il_real *out) {
    C(ctx)->flops += (double)len;
    return len ? C(ctx)->run(k_mul{len, a, b, out}, len) : IL_OK;
  }
  static il_status act_fwd(void *ctx, size_t len, il_act act, const il_real *a, il_real *f, il_real *s) {
    if (!act_ok(act)) return bad_act(act);
    C(ctx)->flops += (double)len;
    return len ? C(ctx)->run(k_act_fwd{len, (int)act, a, f, s}, len) : IL_OK;
  }
  static il_status act_deriv(void *ctx, size_t len, il_act act, const il_real *f, il_real *s) {
    if (!act_ok(act)) return bad_act(act);
    C(ctx)->flops += (double)len;
    return len ? C(ctx)->run(k_act_deriv{len, (int)act, f, s}, len) : IL_OK;
  }
  static il_status act_dmul(void *ctx, size_t len, il_act act, const il_real *f, const il_real *u, il_real *out) {
    if (!act_ok(act)) return bad_act(act);
    C(ctx)->flops += 2.0 * len;
    return len ? C(ctx)->run(k_act_dmul{len, (int)act, f, u, out}, len) : IL_OK;
  }
  static il_status act_d2(void *ctx, size_t len, il_act act, const il_real *f, const il_real *w, il_real *q,
                          il_real *sw) {
    if (!act_ok(act)) return bad_act(act);
    C(ctx)->flops += 4.0 * len;
    return len ? C(ctx)->run(k_act_d2{len, (int)act, f, w, q, sw}, len) : IL_OK;
  }
  static il_status sech2_seed(void *ctx, size_t len, const il_real *a, il_real *s) {
    C(ctx)->flops += (double)len;
    return len ? C(ctx)->run(k_sech2_seed{len, a, s}, len) : IL_OK;
  }
  static il_status sech2_seed_d2(void *ctx, size_t len, const il_real *a, const il_real *w, il_real *q, il_real *sw) {
    C(ctx)->flops += 4.0 * len;
    return len ? C(ctx)->run(k_sech2_seed_d2{len, a, w, q, sw}, len) : IL_OK;
  }

  /* ---- per row ---- */
  static il_status row_lincomb(void *ctx, int B, int n, il_real s, const il_real *a, const il_real *x, il_real beta,
                               const il_real *y, il_real *out) {
    const size_t len = (size_t)B * n;
    C(ctx)->flops += 2.0 * len;
    return len ? C(ctx)->run(k_row_lincomb{B, n, s, a, x, beta, y, out}, len) : IL_OK;
  }
  static il_status row_select(void *ctx, int B, int n, const unsigned char *mask, int want, const il_real *src,
                              il_real *dst) {
    const size_t len = (size_t)B * n;
    return len && src != dst ? C(ctx)->run(k_row_select{B, n, mask, want, src, dst}, len) : IL_OK;
  }
  static il_status row_fill(void *ctx, int B, int n, const unsigned char *mask, int want, il_real v, il_real *dst) {
    const size_t len = (size_t)B * n;
    return len ? C(ctx)->run(k_row_fill{B, n, mask, want, v, dst}, len) : IL_OK;
  }
  static rows pack(const il_real *const *X, int off, int kc) {
    rows r;
    memset(&r, 0, sizeof r);
    for (int i = 0; i < kc; i++) r.p[i] = X[off + i];
    return r;
  }
  static int chunk(int k, int off) { return k - off < (int)MAXK ? k - off : (int)MAXK; }
  static il_status row_combine(void *ctx, int B, int n, int k, const il_real *const *X, const il_real *coef,
                               il_real beta, il_real *out) {
    const size_t len = (size_t)B * n;
    C(ctx)->flops += 2.0 * len * k;
    if (!len) return IL_OK;
    for (int off = 0; off == 0 || off < k; off += MAXK) {
      const int kc = k > 0 ? chunk(k, off) : 0;
      IL_CHECK(C(ctx)->run(k_row_combine{B, n, kc, k, off, off == 0, pack(X, off, kc), coef, beta, out}, len));
    }
    return IL_OK;
  }
  static il_status row_lowrank(void *ctx, int B, int n, int k, const il_real *const *P, const il_real *const *Q,
                               const il_real *a, il_real *oa, const il_real *c, il_real *oc) {
    C(ctx)->flops += (c ? 8.0 : 4.0) * B * n * k;
    if (!B || !n) return IL_OK;
    for (int off = 0; off == 0 || off < k; off += MAXK) {
      const int kc = k > 0 ? chunk(k, off) : 0;
      IL_CHECK(C(ctx)->run(k_row_lowrank{B, n, kc, off == 0, pack(P, off, kc), pack(Q, off, kc), a, oa, c, oc},
                           (size_t)B));
    }
    return IL_OK;
  }
  static il_status col_sum_add(void *ctx, int B, int n, const il_real *a, il_real *out) {
    C(ctx)->flops += (double)B * n;
    return n && B ? C(ctx)->run(k_col_sum_add{B, n, a, out}, (size_t)n) : IL_OK;
  }
  static il_status row_index_copy(void *ctx, int B, int n, const int *sidx, const il_real *src, const int *didx,
                                  il_real *dst) {
    L *l = C(ctx);
    const size_t len = (size_t)B * n;
    if (!len) return IL_OK;
    void *scr = nullptr;
    IL_CHECK(l->scratch(2 * al64((size_t)B * sizeof(int)), &scr));
    carve cv = {(char *)scr, 0};
    int *ds = sidx ? cv.take<int>((size_t)B) : NULL, *dd = didx ? cv.take<int>((size_t)B) : NULL;
    if (ds) IL_CHECK(l->to_space(ds, sidx, (size_t)B * sizeof(int)));
    if (dd) IL_CHECK(l->to_space(dd, didx, (size_t)B * sizeof(int)));
    return l->run(k_row_index_copy{B, n, ds, src, dd, dst}, len);
  }

  /* ---- reductions to the host ---- */
  static il_status reduce(L *l, int kind, size_t len, const il_real *a, const il_real *b, double *out, int m) {
    const size_t P = red_parts(len);
    void *scr = nullptr;
    IL_CHECK(l->scratch(al64(P * m * sizeof(double)) + (size_t)m * sizeof(double), &scr));
    carve cv = {(char *)scr, 0};
    double *part = cv.take<double>(P * m), *res = cv.take<double>((size_t)m);
    gkey key = key_of(2).add(kind).add(len).add(a).add(b).add(part);
    const il_status gs = l->graphed(key, [&]() -> il_status {
      IL_CHECK(l->run(k_reduce_part{len, P, kind, a, b, part}, P));
      return l->run(k_reduce_final{P, m, kind, part, res}, 1);
    });
    IL_CHECK(gs);
    return l->to_host(out, res, (size_t)m * sizeof(double));
  }
  static il_status sqdist(void *ctx, size_t len, const il_real *a, const il_real *b, double *out) {
    C(ctx)->flops += 3.0 * len;
    if (!len) return *out = 0, IL_OK;
    return reduce(C(ctx), RED_SQ, len, a, b, out, 1);
  }
  static il_status absmax(void *ctx, size_t len, const il_real *a, double *out) {
    if (!len) return *out = 0, IL_OK;
    return reduce(C(ctx), RED_ABSMAX, len, a, NULL, out, 1);
  }
  static il_status all_finite(void *ctx, size_t len, const il_real *a, int *out) {
    double bad = 0;
    if (len) IL_CHECK(reduce(C(ctx), RED_FINITE, len, a, NULL, &bad, 1));
    *out = bad == 0;
    return IL_OK;
  }
  static il_status compare(void *ctx, size_t len, const il_real *a, const il_real *b, double *out) {
    C(ctx)->flops += 8.0 * len;
    if (!len) return out[0] = out[1] = out[2] = out[3] = 0, IL_OK;
    return reduce(C(ctx), RED_COMPARE, len, a, b, out, 4);
  }
  static il_status row_sqdist(void *ctx, int B, int n, const il_real *a, const il_real *b, double *out) {
    L *l = C(ctx);
    l->flops += 3.0 * B * n;
    if (!B) return IL_OK;
    double *res = nullptr;
    IL_CHECK(l->scratch((size_t)B * sizeof(double), (void **)&res));
    IL_CHECK(l->run(k_row_sqdist{B, n, a, b, res}, (size_t)B));
    return l->to_host(out, res, (size_t)B * sizeof(double));
  }
  static il_status row_dot(void *ctx, int B, int n, int k, const il_real *const *X, const il_real *y, double *out) {
    L *l = C(ctx);
    l->flops += 2.0 * B * n * k;
    if (!B || !k) return IL_OK;
    double *res = nullptr;
    IL_CHECK(l->scratch((size_t)B * k * sizeof(double), (void **)&res));
    for (int off = 0; off < k; off += MAXK) {
      const int kc = chunk(k, off);
      IL_CHECK(l->run(k_row_dot{B, n, kc, k, off, pack(X, off, kc), y, res}, (size_t)B * kc));
    }
    return l->to_host(out, res, (size_t)B * k * sizeof(double));
  }
  static il_status row_sub_dot(void *ctx, int B, int n, int k, const il_real *const *X, const il_real *a,
                               const il_real *c, il_real *d, double *out) {
    L *l = C(ctx);
    l->flops += (double)B * n + 2.0 * B * n * k;
    if (!B) return IL_OK;
    double *res = nullptr;
    IL_CHECK(l->scratch((size_t)(B * (k > 0 ? k : 1)) * sizeof(double), (void **)&res));
    const int k0 = k > 0 ? chunk(k, 0) : 0;
    IL_CHECK(l->run(k_row_sub_dot{B, n, k0, k, pack(X, 0, k0), a, c, d, res}, (size_t)B));
    for (int off = MAXK; off < k; off += MAXK) { /* d is complete: the remaining dots read it */
      const int kc = chunk(k, off);
      IL_CHECK(l->run(k_row_dot{B, n, kc, k, off, pack(X, off, kc), d, res}, (size_t)B * kc));
    }
    return k ? l->to_host(out, res, (size_t)B * k * sizeof(double)) : IL_OK;
  }
  static il_status row_mgs(void *ctx, int B, int n, int k, const il_real *const *V, il_real *w, double *h) {
    L *l = C(ctx);
    l->flops += 4.0 * B * n * k + 2.0 * B * n;
    if (!B) return IL_OK;
    double *res = nullptr;
    IL_CHECK(l->scratch((size_t)B * (k + 1) * sizeof(double), (void **)&res));
    for (int off = 0; off == 0 || off < k; off += MAXK) {
      const int kc = k > 0 ? chunk(k, off) : 0;
      IL_CHECK(l->run(k_row_mgs{B, n, kc, k, off, off + kc >= k, pack(V, off, kc), w, res}, (size_t)B));
    }
    return l->to_host(h, res, (size_t)B * (k + 1) * sizeof(double));
  }

  /* ---- the head ---- */
  static il_status xent_fwd(void *ctx, int B, int c, const il_real *logits, const unsigned char *labels, il_real *p,
                            double *loss_sum, int *errors) {
    L *l = C(ctx);
    l->flops += 4.0 * B * c;
    *loss_sum = 0;
    *errors = 0;
    if (!B) return IL_OK;
    void *scr = nullptr;
    IL_CHECK(l->scratch(al64((size_t)B * sizeof(double)) + (size_t)B * sizeof(int), &scr));
    carve cv = {(char *)scr, 0};
    double *loss = cv.take<double>((size_t)B);
    int *err = cv.take<int>((size_t)B);
    IL_CHECK(l->run(k_xent_fwd{B, c, logits, labels, p, loss, err}, (size_t)B));
    if (!labels) return IL_OK;
    double *hl = (double *)malloc((size_t)B * (sizeof(double) + sizeof(int)));
    if (!hl) return IL_ERR(IL_ERR_NOMEM, "%s backend: cannot allocate %d row losses", L::NAME, B);
    int *he = (int *)(void *)(hl + B);
    il_status s = l->to_host(hl, loss, (size_t)B * sizeof(double));
    if (s == IL_OK) s = l->to_host(he, err, (size_t)B * sizeof(int));
    if (s == IL_OK)
      for (int r = 0; r < B; r++) *loss_sum += hl[r], *errors += he[r]; /* rows in order, as cpu.c */
    free(hl);
    return s;
  }
  static il_status xent_bwd(void *ctx, int B, int c, const unsigned char *labels, il_real scale, il_real *p) {
    C(ctx)->flops += (double)B * c;
    const size_t len = (size_t)B * c;
    return len ? C(ctx)->run(k_xent_bwd{B, c, labels, scale, p}, len) : IL_OK;
  }

  /* ---- batched LU ---- */
  static void lu_layout(void *ctx, int B, int n, size_t *bytes_a, size_t *bytes_p) {
    *bytes_a = (size_t)B * n * n * sizeof(il_real);
    *bytes_p = lu_p_bytes(B, n);
  }
  static il_status jac_eye_minus_diag_w(void *ctx, int B, int n, const il_real *s, const il_real *W, il_lu *lu) {
    const size_t len = (size_t)B * n * n;
    C(ctx)->flops += (double)len;
    return len ? C(ctx)->run(k_jac{B, n, s, W, (il_real *)lu->a}, len) : IL_OK;
  }
  static il_status lu_norm_inf(void *ctx, const il_lu *lu, double *out) {
    L *l = C(ctx);
    const int B = lu->B, n = lu->n;
    l->flops += 2.0 * B * n * n;
    if (!B) return IL_OK;
    void *scr = nullptr;
    IL_CHECK(l->scratch(al64((size_t)B * n * sizeof(double)) + (size_t)B * sizeof(double), &scr));
    carve cv = {(char *)scr, 0};
    double *rs = cv.take<double>((size_t)B * n), *res = cv.take<double>((size_t)B);
    if (n) IL_CHECK(l->run(k_lu_rowsum{B, n, (const il_real *)lu->a, rs}, (size_t)B * n));
    IL_CHECK(l->run(k_lu_rowmax{B, n, rs, res}, (size_t)B));
    return l->to_host(out, res, (size_t)B * sizeof(double));
  }
  static il_status lu_factor(void *ctx, il_lu *lu, int *info) {
    L *l = C(ctx);
    const int B = lu->B, n = lu->n;
    l->flops += 2.0 / 3.0 * B * (double)n * n * n;
    if (!B) return IL_OK;
    if (!n) return memset(info, 0, (size_t)B * sizeof(int)), IL_OK;
    const lu_parts q = lu_split(lu);
    gkey key = key_of(3).add(B).add(n).add(lu->a).add(lu->p);
    const il_status gs = l->graphed(key, [&]() -> il_status {
      IL_CHECK(l->run(k_ptrs{B, (il_real *)lu->a, (size_t)n * n, q.pa}, (size_t)B));
      return l->getrf_batched(n, q.pa, q.piv, q.info, B);
    });
    IL_CHECK(gs);
    IL_CHECK(l->to_host(info, q.info, (size_t)B * sizeof(int)));
    for (int b = 0; b < B; b++)
      if (info[b] < 0) return IL_ERR(IL_ERR_INTERNAL, "%s backend: getrfBatched: illegal argument %d", L::NAME, -info[b]);
    return IL_OK;
  }
  static il_status lu_solve(void *ctx, int trans, const il_lu *lu, il_real *R) {
    L *l = C(ctx);
    const int B = lu->B, n = lu->n;
    l->flops += 2.0 * B * (double)n * n;
    if (!B || !n) return IL_OK;
    const lu_parts q = lu_split(lu);
    gkey key = key_of(4).add(B).add(n).add(trans).add(lu->a).add(lu->p).add(R);
    return l->graphed(key, [&]() -> il_status {
      IL_CHECK(l->run(k_ptrs{B, R, (size_t)n, q.pr}, (size_t)B));
      /* the factors are J^T's: J x = r is a transposed solve with them */
      return l->getrs_batched(!trans, n, q.pa, q.piv, q.pr, B);
    });
  }
  static il_status lu_rcond(void *ctx, const il_lu *lu, const double *anorm, double *rcond) {
    L *l = C(ctx);
    const int B = lu->B, n = lu->n;
    l->flops += 4.0 * B * (double)n * n;
    if (!B) return IL_OK;
    void *scr = nullptr;
    const size_t bB = al64((size_t)B * sizeof(double));
    IL_CHECK(l->scratch(2 * bB + (size_t)B * 2 * (n ? n : 1) * sizeof(double), &scr));
    carve cv = {(char *)scr, 0};
    double *an = cv.take<double>((size_t)B), *rc = cv.take<double>((size_t)B);
    double *work = cv.take<double>((size_t)B * 2 * (n ? n : 1));
    IL_CHECK(l->to_space(an, anorm, (size_t)B * sizeof(double)));
    const lu_parts q = lu_split(lu);
    IL_CHECK(l->run(k_lu_rcond{B, n, (const il_real *)lu->a, q.piv, an, work, rc}, (size_t)B));
    return l->to_host(rcond, rc, (size_t)B * sizeof(double));
  }

  /* The table, in the order of il_backend_ops (C++20 designated initialisers keep it). */
  static il_backend_ops table(const char *name, const char *summary,
                              il_status (*create)(const il_backend_options *, void **), void (*destroy)(void *),
                              void (*describe)(void *, char *, size_t)) {
    il_backend_ops o;
    memset(&o, 0, sizeof o);
    o.name = name;
    o.summary = summary;
    o.host_accessible = 0;
    o.create = create;
    o.destroy = destroy;
    o.describe = describe;
    o.mem_stats = mem_stats;
    o.flops = flops;
    o.alloc = alloc;
    o.release = release;
    o.zero = zero;
    o.copy = copy;
    o.sync = sync;
    o.gemm = gemm;
    o.gemm_strided_batched = gemm_strided_batched;
    o.gemm_ep = gemm_ep;
    o.fill = fill;
    o.axpby = axpby;
    o.lincomb = lincomb;
    o.mul = mul;
    o.act_fwd = act_fwd;
    o.act_deriv = act_deriv;
    o.act_dmul = act_dmul;
    o.act_d2 = act_d2;
    o.sech2_seed = sech2_seed;
    o.sech2_seed_d2 = sech2_seed_d2;
    o.row_lincomb = row_lincomb;
    o.row_select = row_select;
    o.row_fill = row_fill;
    o.row_combine = row_combine;
    o.row_lowrank = row_lowrank;
    o.col_sum_add = col_sum_add;
    o.row_index_copy = row_index_copy;
    o.sqdist = sqdist;
    o.row_sqdist = row_sqdist;
    o.row_dot = row_dot;
    o.row_sub_dot = row_sub_dot;
    o.row_mgs = row_mgs;
    o.absmax = absmax;
    o.all_finite = all_finite;
    o.compare = compare;
    o.xent_fwd = xent_fwd;
    o.xent_bwd = xent_bwd;
    o.lu_layout = lu_layout;
    o.jac_eye_minus_diag_w = jac_eye_minus_diag_w;
    o.lu_norm_inf = lu_norm_inf;
    o.lu_factor = lu_factor;
    o.lu_solve = lu_solve;
    o.lu_rcond = lu_rcond;
    return o;
  }
};

} /* namespace ilk */

#endif
