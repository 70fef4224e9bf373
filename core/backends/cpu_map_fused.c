/* core/backends/cpu_map_fused.c: the fused map of the CPU backend,
 * out = act(A W^T + add + bias) and its by-products (il_epilogue) in one op.
 *
 * Why: at the layer's sizes (B = n = 100) a fixed-point step through OpenBLAS
 * plus separate passes (copy the addend, GEMM, tanh, residual) ran at ~1.6x the
 * GEMM alone; each pass streams (B, n) arrays from L2. Here they run on a row
 * block while it is in L1. Float32 with AVX-512 only; elsewhere cpu.c keeps the
 * OpenBLAS path, and il_cpu_map_fused_use() picks the shapes where this wins.
 *
 * Design:
 *  - W (N, K) is packed per call into W^T panels of 32, then 16 columns (zero
 *    padded), and a narrow tail of <= 8 columns whose vector lanes hold g = 16/8..1
 *    consecutive k each (a 4-column tail at N = 100 would waste 3/4 of its FMAs).
 *    Packing 100x100 takes ~1 us (4-float inserts, then in-lane 4x4 transposes), so
 *    there is no cache keyed on W's address or contents: no state, nothing stale.
 *  - Micro-kernel: row blocks of 8..12 rows (B split evenly) x 2 vectors of 16
 *    columns: up to 24 accumulators over all of K, A read in place by broadcasts.
 *    Full columns sum over k in order with FMA, as OpenBLAS does.
 *  - Tile store: + bias (+ add, in the unfused rounding order add + bias first,
 *    when there is a bias or out aliases add) into out.
 *  - Then, over the row block as one contiguous run of 16-lane vectors (no waste
 *    at row ends), one block behind so its tile stores have left the store buffer:
 *    + add, pre, act (tanh/sech^2 below), out, deriv, and (res_ref - out)^2 summed
 *    in double per row, as cpu_row_sqdist.
 *  - Threads each pack all of W into their own copy, then split the row blocks, once per call.
 * Results equal the unfused path up to the order of the sums (narrow tails, the
 * double residual) and <= 1 ulp in tanh/sech^2. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200112L
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_map_fused.h"
#include "il_math.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#if IL_PREC == 32 && defined(__AVX512F__)
#define IL_FUSED 1
#include <immintrin.h>
#else
#define IL_FUSED 0
#endif

int il_cpu_map_fused_built(void) { return IL_FUSED; }

#if IL_FUSED

/* ---- tanh and sech^2 on 16 lanes ----
 * exp and expm1 as il_exp_expm1_neg, operation by operation (GCC contracts the
 * same expressions the same way). The two divisions of il_tanh_sech2_1 would
 * hold the divider for most of the epilogue (vdivps zmm: ~3 FMAs of throughput
 * each, measured), so each quotient n/d is rcp14(d) refined by one Markstein step,
 * q = q0 + (n - q0 d) r0 with r0 ~ 1/d: relative error (2^-14)^2 before the last
 * rounding, so within 1 ulp of the division (tests/test_math.c sweeps it). */
typedef float vf __attribute__((vector_size(64)));

static inline vf splat(float x) { return (vf){0} + x; }

/* n / d, d in [1, 4] */
static inline __attribute__((always_inline)) vf quot(vf n, vf d, vf rd) {
  const vf q0 = n * rd;
  return _mm512_fmadd_ps(_mm512_fnmadd_ps(q0, d, n), rd, q0);
}

/* t = tanh(a); with s, s = sech^2(a). A NaN propagates through every step
 * (vmaxps returns its second operand, y, when y is NaN; vrangeps would drop
 * signalling NaNs). 2^k comes from vscalefps, the same power of 2 as
 * il_exp_expm1_neg's bit-built scale, and 2^k p is exact (but for subnormals), so
 * fma(2^k, p, 2^k - 1) is the scalar's e. */
static inline __attribute__((always_inline)) vf tanh_sech2_v(vf a, vf *s) {
  const il_real log2e = (il_real)1.4426950408889634;
  const il_real ln2_hi = (il_real)0.693145751953125;
  const il_real ln2_lo = (il_real)1.4286068203094172e-06;
  const vf y = _mm512_max_ps(splat(IL_EXP_MIN_ARG), -2 * _mm512_abs_ps(a)); /* y = -2|a| clamped */
  const vf kf = (y * log2e + IL_ROUND_MAGIC) - IL_ROUND_MAGIC;
  const vf r = (y - kf * ln2_hi) - kf * ln2_lo;
  const vf p = r * (1 + r * ((il_real)(1.0 / 2) + r * ((il_real)(1.0 / 6) + r * ((il_real)(1.0 / 24) +
               r * ((il_real)(1.0 / 120) + r * ((il_real)(1.0 / 720) + r * (il_real)(1.0 / 5040)))))));
  const vf scale = _mm512_scalef_ps(splat(1), kf); /* 2^k */
  const vf e = _mm512_fmadd_ps(scale, p, scale - 1); /* expm1(-2|a|) <= 0; scale p is exact */
  const vf d = 2 + e;
  const vf rd = _mm512_rcp14_ps(d);
  if (s) *s = quot(4 * _mm512_fmadd_ps(scale, p, scale), d * d, rd * rd); /* 4 exp(-2|a|) / d^2 */
  /* tanh|a| = -e / d = |e / d|, given the sign of a */
  return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(_mm512_castps_si512(quot(e, d, rd)), _mm512_castps_si512(a),
                                                       _mm512_set1_epi32(INT32_MIN), 0xd8));
}

/* ---- packing W (N, K) into column panels ----
 * A panel of w <= 32 columns j0.. is one of
 *   NV2: P[k][32], NV1: P[k][16]: P[k][c] = W[j0 + c][k], zero for c >= w;
 *   grouped (w <= 8): a vector holds c < 16/g columns x g consecutive k:
 *        P[k/g][c g + q] = W[j0 + c][k + q], zero past w and K,
 *   so that a narrow tail (N = 100 = 3 x 32 + 4) does not pay a full vector per k. */
enum { PK_NV2, PK_NV1, PK_GROUP };
typedef struct panel {
  int j0, w, kind, g; /* g: k per lane group (1 unless grouped) */
  size_t off;         /* floats into the packed buffer */
} panel;
#define MAX_PANELS 80 /* N / 32 + 2 for N <= FUSED_MAX_N */

static inline __mmask16 lanes(int n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n > 0 ? n : 0)) - 1); }

/* Plan the panels of N columns; returns their count, *floats the packed size. */
static int plan(int N, int K, panel *pl, size_t *floats) {
  int np = 0;
  size_t off = 0;
  for (int j0 = 0; j0 < N;) {
    const int rem = N - j0;
    panel p = {.j0 = j0, .g = 1, .off = off};
    if (rem > 16) {
      p.kind = PK_NV2, p.w = rem < 32 ? rem : 32;
      off += (size_t)32 * K;
    } else if (rem > 8) {
      p.kind = PK_NV1, p.w = rem;
      off += (size_t)16 * K;
    } else {
      const int wp = rem > 4 ? 8 : rem > 2 ? 4 : rem; /* lanes per k: the power of 2 >= rem */
      p.kind = PK_GROUP, p.w = rem, p.g = 16 / wp;
      off += (size_t)16 * ((K + p.g - 1) / p.g);
    }
    pl[np++] = p;
    j0 += p.w;
  }
  *floats = off;
  return np;
}

/* P[k][i] = Wr[i][k] for rows i < rows (zero past them) and k < kn of a 16 x 16 block. Each
 * 512-bit vector gathers 4-float pieces of rows i0, i0 + 4, i0 + 8, i0 + 12 by inserts (a load
 * and a p0/p5 uop each), so only the in-lane 4 x 4 transposes need the shuffle port (p5): 32
 * shuffles a block instead of the 64 of a 16 x 16 register transpose, which bound the pack. */
static inline __attribute__((always_inline)) void tr_block(const int full, const float *Wr, int K, int rows, int kn,
                                                           float *P, int ldp) {
  for (int q = 0; 4 * q < kn; q++) {
    const int left = kn - 4 * q;
    const __mmask8 km = (__mmask8)(left >= 4 ? 0xF : (1u << left) - 1);
    __m512 t[4];
    for (int i0 = 0; i0 < 4; i0++) {
      __m128 v[4];
      for (int L = 0; L < 4; L++) {
        const int i = 4 * L + i0;
        const float *src = Wr + (size_t)i * K + 4 * q;
        v[L] = full ? _mm_loadu_ps(src) : i < rows ? _mm_maskz_loadu_ps(km, src) : _mm_setzero_ps();
      }
      t[i0] = _mm512_insertf32x4(
          _mm512_insertf32x4(_mm512_insertf32x4(_mm512_castps128_ps512(v[0]), v[1], 1), v[2], 2), v[3], 3);
    }
    const __m512 u0 = _mm512_unpacklo_ps(t[0], t[1]), u1 = _mm512_unpackhi_ps(t[0], t[1]);
    const __m512 u2 = _mm512_unpacklo_ps(t[2], t[3]), u3 = _mm512_unpackhi_ps(t[2], t[3]);
    const __m512 o[4] = {_mm512_shuffle_ps(u0, u2, 0x44), _mm512_shuffle_ps(u0, u2, 0xEE),
                         _mm512_shuffle_ps(u1, u3, 0x44), _mm512_shuffle_ps(u1, u3, 0xEE)};
    for (int s = 0; s < 4 && s < left; s++) _mm512_store_ps(P + (size_t)(4 * q + s) * ldp, o[s]);
  }
}

static void pack(int K, const float *W, const panel *p, float *buf) {
  float *P = buf + p->off;
  const float *Wj = W + (size_t)p->j0 * K;
  if (p->kind == PK_GROUP) {
    const int g = p->g, ng = (K + g - 1) / g;
    for (int kg = 0; kg < ng; kg++) {
      float *Pk = P + (size_t)kg * 16;
      const int k = kg * g;
      const __mmask16 m = lanes(K - k < g ? K - k : g);
      _mm512_store_ps(Pk, _mm512_setzero_ps());
      for (int c = 0; c < p->w; c++) _mm512_mask_storeu_ps(Pk + c * g, m, _mm512_maskz_loadu_ps(m, Wj + (size_t)c * K + k));
    }
    return;
  }
  const int ldp = p->kind == PK_NV2 ? 32 : 16;
  for (int h = 0; h < ldp / 16; h++) {
    const int rows = p->w - 16 * h;
    for (int kb = 0; kb < K; kb += 16) {
      const int kn = K - kb < 16 ? K - kb : 16;
      const float *Wr = Wj + (size_t)(16 * h) * K + kb;
      float *Pk = P + (size_t)kb * ldp + 16 * h;
      if (rows >= 16 && kn == 16) tr_block(1, Wr, K, rows, kn, Pk, ldp);
      else tr_block(0, Wr, K, rows, kn, Pk, ldp);
    }
  }
}

/* ---- micro-kernels: C (mr, 32) tile buffer <- A (mr rows from A, stride lda) x panel ---- */
#define MR 12 /* row blocks of 8..12 rows; 2 x 12 accumulators + 2 W vectors + a broadcast fit in 32 zmm */
#define NR 32

static inline __attribute__((always_inline)) void kloop(const int mr, const int nv, int K, const float *A, int lda,
                                                        const float *P, float *C) {
  __m512 c0[MR], c1[MR];
  for (int r = 0; r < MR && r < mr; r++) c0[r] = c1[r] = _mm512_setzero_ps();
  const int ldp = 16 * nv;
  for (int k = 0; k < K; k++) {
    const __m512 w0 = _mm512_load_ps(P + (size_t)k * ldp);
    const __m512 w1 = nv > 1 ? _mm512_load_ps(P + (size_t)k * ldp + 16) : w0;
    for (int r = 0; r < MR && r < mr; r++) {
      const __m512 b = _mm512_set1_ps(A[(size_t)r * lda + k]);
      c0[r] = _mm512_fmadd_ps(b, w0, c0[r]);
      if (nv > 1) c1[r] = _mm512_fmadd_ps(b, w1, c1[r]);
    }
  }
  for (int r = 0; r < MR && r < mr; r++) {
    _mm512_store_ps(C + r * NR, c0[r]);
    if (nv > 1) _mm512_store_ps(C + r * NR + 16, c1[r]);
  }
}

/* g consecutive A values repeated over the 16 lanes */
static inline __attribute__((always_inline)) __m512 bcast_g(const int g, const float *a) {
  if (g == 2) {
    double x;
    memcpy(&x, a, sizeof x);
    return _mm512_castpd_ps(_mm512_set1_pd(x));
  }
  if (g == 4) return _mm512_broadcast_f32x4(_mm_loadu_ps(a));
  if (g == 8) return _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_loadu_pd((const double *)(const void *)a)));
  return _mm512_loadu_ps(a);
}
/* the same for the last n < g values, zero padded (masked: nothing read past them) */
static inline __attribute__((always_inline)) __m512 bcast_g_tail(const int g, const float *a, int n) {
  const __m512 v = _mm512_maskz_loadu_ps(lanes(n), a);
  if (g == 2) return _mm512_castpd_ps(_mm512_broadcastsd_pd(_mm512_castpd512_pd128(_mm512_castps_pd(v))));
  if (g == 4) return _mm512_broadcast_f32x4(_mm512_castps512_ps128(v));
  if (g == 8) return _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm512_castpd512_pd256(_mm512_castps_pd(v))));
  return v;
}

/* grouped panel: lanes c g + q hold column c's sum over k = q mod g; summed at the end */
static inline __attribute__((always_inline)) void kloop_g(const int mr, const int g, int K, const float *A, int lda,
                                                          const float *P, float *C) {
  __m512 c0[MR];
  for (int r = 0; r < MR && r < mr; r++) c0[r] = _mm512_setzero_ps();
  const int kf = K - K % g;
  for (int k = 0; k < kf; k += g) {
    const __m512 w = _mm512_load_ps(P + (size_t)(k / g) * 16);
    for (int r = 0; r < MR && r < mr; r++) c0[r] = _mm512_fmadd_ps(bcast_g(g, A + (size_t)r * lda + k), w, c0[r]);
  }
  if (kf < K) { /* the last K % g values (P is zero past K) */
    const __m512 w = _mm512_load_ps(P + (size_t)(kf / g) * 16);
    for (int r = 0; r < MR && r < mr; r++)
      c0[r] = _mm512_fmadd_ps(bcast_g_tail(g, A + (size_t)r * lda + kf, K - kf), w, c0[r]);
  }
  const __mmask16 heads = g == 2 ? 0x5555 : g == 4 ? 0x1111 : g == 8 ? 0x0101 : 0x0001;
  for (int r = 0; r < MR && r < mr; r++) {
    __m512 v = c0[r];
    v = v + _mm512_permute_ps(v, 0xB1); /* pairs */
    if (g >= 4) v = v + _mm512_permute_ps(v, 0x4E);
    if (g >= 8) v = v + _mm512_shuffle_f32x4(v, v, 0xB1);
    if (g >= 16) v = v + _mm512_shuffle_f32x4(v, v, 0x4E);
    _mm512_store_ps(C + r * NR, _mm512_maskz_compress_ps(heads, v));
  }
}

#define KL(m)                                                  \
  case m:                                                      \
    if (p->kind == PK_NV2) kloop(m, 2, K, A, lda, P, C);       \
    else if (p->kind == PK_NV1) kloop(m, 1, K, A, lda, P, C);  \
    else if (p->g == 2) kloop_g(m, 2, K, A, lda, P, C);        \
    else if (p->g == 4) kloop_g(m, 4, K, A, lda, P, C);        \
    else if (p->g == 8) kloop_g(m, 8, K, A, lda, P, C);        \
    else kloop_g(m, 16, K, A, lda, P, C);                      \
    break;
static void kernel(int mr, const panel *p, int K, const float *A, int lda, const float *P, float *C) {
  switch (mr) { KL(1) KL(2) KL(3) KL(4) KL(5) KL(6) KL(7) KL(8) KL(9) KL(10) KL(11) KL(12) default: break; }
}
#undef KL

/* ---- the epilogue ---- */
typedef struct job {
  int B, N, K, np, nb; /* nb: row blocks */
  const float *A;
  const il_epilogue *ep;
  float *out;
  const panel *pl;
  const float *packed;
  int add_in_tile; /* add with the bias in the tile store (the unfused rounding of add + bias), or in place */
} job;

/* Tile store: out rows r0.. (mr), columns of panel p = C [+ (add + bias)], masked to the panel's width. */
static void tile_store(const job *jb, int r0, int mr, const panel *p, const float *C) {
  const il_epilogue *ep = jb->ep;
  const float *add = jb->add_in_tile ? ep->add : NULL;
  const int N = jb->N;
  for (int r = 0; r < mr; r++) {
    const size_t row = (size_t)(r0 + r) * N;
    for (int v = 0; v * 16 < p->w; v++) {
      const int j = p->j0 + 16 * v;
      const __mmask16 m = lanes(p->w - 16 * v);
      __m512 x = _mm512_load_ps(C + r * NR + 16 * v);
      if (add && ep->bias)
        x = x + (_mm512_maskz_loadu_ps(m, add + row + j) + _mm512_maskz_loadu_ps(m, ep->bias + j));
      else if (add)
        x = x + _mm512_maskz_loadu_ps(m, add + row + j);
      else if (ep->bias)
        x = x + _mm512_maskz_loadu_ps(m, ep->bias + j);
      _mm512_mask_storeu_ps(jb->out + row + j, m, x);
    }
  }
}

/* The rest of the epilogue over rows r0.. (mr) of out, contiguous: 16 elements a vector
 * whatever the row boundaries, 4 vectors at a time (independent chains for the tanh). */
#define EU 4
static void flat(const job *jb, int r0, int mr) {
  /* the fields in locals: the masked stores may alias anything, ep included, as far as GCC knows */
  const size_t N = (size_t)jb->N, base = (size_t)r0 * N, len = (size_t)mr * N;
  const float *add = jb->add_in_tile ? NULL : jb->ep->add, *res_ref = jb->ep->res_ref;
  float *pre = jb->ep->pre, *deriv = jb->ep->deriv;
  double *res_rows = jb->ep->res_rows;
  const il_act act = jb->ep->act;
  if (!add && !pre && !deriv && !res_rows && act == IL_ACT_NONE) return;
  float *out = jb->out + base;
  int b = 0;                 /* the row of the residual being summed, from r0 */
  size_t rowend = N;         /* its end, from base */
  __m512d acc[EU]; /* the partial sums of row b, one chain per u */
  for (int u = 0; u < EU; u++) acc[u] = _mm512_setzero_pd();
  for (size_t o = 0; o < len; o += 16 * EU) {
    __m512 f[EU], s[EU];
    __mmask16 m[EU];
#pragma GCC unroll 4
    for (int u = 0; u < EU; u++) {
      const size_t i = o + 16 * (size_t)u;
      m[u] = i < len ? lanes((int)(len - i < 16 ? len - i : 16)) : 0;
      __m512 x = _mm512_maskz_loadu_ps(m[u], out + i);
      if (add) x = x + _mm512_maskz_loadu_ps(m[u], add + base + i);
      if (pre) _mm512_mask_storeu_ps(pre + base + i, m[u], x);
      f[u] = x, s[u] = _mm512_set1_ps(1);
      if (act == IL_ACT_TANH) {
        vf d;
        f[u] = tanh_sech2_v(x, deriv ? &d : NULL);
        if (deriv) s[u] = d;
      } else if (act == IL_ACT_RELU) { /* NaN stays NaN */
        const __mmask16 pos = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ);
        const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
        f[u] = _mm512_maskz_mov_ps(pos | nan, x);
        s[u] = _mm512_mask_mov_ps(_mm512_maskz_mov_ps(pos, _mm512_set1_ps(1)), nan, x);
      }
    }
#pragma GCC unroll 4
    for (int u = 0; u < EU; u++) {
      const size_t i = o + 16 * (size_t)u;
      _mm512_mask_storeu_ps(out + i, m[u], f[u]);
      if (deriv) _mm512_mask_storeu_ps(deriv + base + i, m[u], s[u]);
    }
    if (!res_rows) continue;
#pragma GCC unroll 4
    for (int u = 0; u < EU; u++) { /* (double) ref - (double) out, squared, as cpu_row_sqdist */
      const size_t i = o + 16 * (size_t)u;
      if (i >= len) break;
      const __m512 fz = _mm512_maskz_mov_ps(m[u], f[u]);
      const __m512d dl = _mm512_cvtps_pd(_mm256_maskz_loadu_ps((__mmask8)m[u], res_ref + base + i)) -
                         _mm512_cvtps_pd(_mm512_castps512_ps256(fz));
      const __m512d dh = _mm512_cvtps_pd(_mm256_maskz_loadu_ps((__mmask8)(m[u] >> 8), res_ref + base + i + 8)) -
                         _mm512_cvtps_pd(_mm512_extractf32x8_ps(fz, 1));
      if (i + 16 < rowend) { /* inside row b */
        acc[u] = _mm512_fmadd_pd(dh, dh, _mm512_fmadd_pd(dl, dl, acc[u]));
        continue;
      }
      /* lanes [lo, hi) belong to row b; a row's sum is final at its last element */
      const __m512d ql = dl * dl, qh = dh * dh;
      const int nl = len - i < 16 ? (int)(len - i) : 16;
      for (int lo = 0; lo < nl;) {
        const int hi = rowend - i < (size_t)nl ? (int)(rowend - i) : nl;
        const __mmask16 mine = lanes(hi) & (__mmask16)~lanes(lo);
        acc[u] = acc[u] + _mm512_maskz_mov_pd((__mmask8)mine, ql) + _mm512_maskz_mov_pd((__mmask8)(mine >> 8), qh);
        if (i + (size_t)hi == rowend) {
          res_rows[r0 + b++] = _mm512_reduce_add_pd((acc[0] + acc[1]) + (acc[2] + acc[3]));
          for (int v = 0; v < EU; v++) acc[v] = _mm512_setzero_pd();
          rowend += N;
        }
        lo = hi;
      }
    }
  }
}
#undef EU

/* Row blocks: as even as possible, of 8..MR rows (fewer only when B < 8); with T threads a
 * multiple of T when the blocks keep >= 8 rows (B = 100, T = 2: 10 x 10 rows, not 4 + 5 blocks
 * of 11-12). Blocking does not change any element's sum. */
static int nblocks(int B, int T) {
  const int nb = (B + MR - 1) / MR, even = (nb + T - 1) / T * T;
  return T > 1 && B >= 8 * even ? even : nb;
}
static void block(int B, int nb, int q, int *r0, int *mr) {
  *r0 = (int)((long)B * q / nb);
  *mr = (int)((long)B * (q + 1) / nb) - *r0;
}

static void run_blocks(const job *jb, int q0, int q1) {
  float C[MR * NR] __attribute__((aligned(64)));
  for (int q = q0; q < q1; q++) {
    int r0, mr;
    block(jb->B, jb->nb, q, &r0, &mr);
    const float *A = jb->A + (size_t)r0 * jb->K;
    for (int i = 0; i < jb->np; i++) {
      const panel *p = &jb->pl[i];
      kernel(mr, p, jb->K, A, jb->K, jb->packed + p->off, C);
      tile_store(jb, r0, mr, p, C);
    }
    /* the previous block: its tile stores have left the store buffer (reading them back at
     * once, across row and panel edges, defeats store forwarding: +2 us at B = n = 100) */
    if (q > q0) {
      block(jb->B, jb->nb, q - 1, &r0, &mr);
      flat(jb, r0, mr);
    }
  }
  if (q1 > q0) {
    int r0, mr;
    block(jb->B, jb->nb, q1 - 1, &r0, &mr);
    flat(jb, r0, mr);
  }
}

/* Where the fused kernel beats OpenBLAS + passes (one thread, thread CPU time, min of 30,
 * this machine's AVX-512 Xeon, OpenBLAS 0.3.21 SkylakeX kernels; us per call, fp = add, tanh,
 * res_rows; lin = bias only):
 *   B x N x K       fp unfused  fused   lin unfused  fused
 *   100x16x16          2.18     2.06        0.90     0.85
 *   100x64x64         14.0     10.5         8.18     6.18
 *   100x100x100       30.9     21.8        21.0     15.3
 *   100x256x256      132      103         109       86
 *   100x512x512      458      400         409      375
 *   100x640x640      702      678         633      631
 *   100x704x704        -        -         777      797
 *   100x768x768     1000     1011         923     1002
 *   100x1024x1024   1792     1921        1687     2001
 *   100x100x784 (lin)  -        -         142      101
 *   1/4/8x100x100      0.56/1.53/2.97  1.65/2.24/2.97   (packing W dominates)
 *   8x100x784 (lin)    -        -         8.5      21.5
 *   16x100x784 (lin)   -        -        48.5      29.4
 * Past ~640^2 the packed W (streamed once per row block) no longer fits in L2; below
 * B = 16 packing W costs more than OpenBLAS's small-M path saves. */
#define FUSED_MIN_B 16
#define FUSED_MAX_NK (640 * 640)
#define FUSED_MAX_N 2048 /* MAX_PANELS */
#define FUSED_MAX_K 4096

int il_cpu_map_fused_use(int B, int N, int K) {
  return B >= FUSED_MIN_B && N >= 1 && K >= 1 && N <= FUSED_MAX_N && K <= FUSED_MAX_K &&
         (double)N * K <= FUSED_MAX_NK;
}

il_status il_cpu_map_fused(int threads, int B, int N, int K, const il_real *A, const il_real *W, const il_epilogue *ep,
                           il_real *out) {
  if (ep->res_rows && !ep->res_ref) return IL_ERR(IL_ERR_ARG, "gemm_ep: res_rows needs res_ref");
  if (ep->act != IL_ACT_NONE && ep->act != IL_ACT_TANH && ep->act != IL_ACT_RELU)
    return IL_ERR(IL_ERR_INTERNAL, "cpu backend: unknown activation %d", (int)ep->act);
  if (N > FUSED_MAX_N || K > FUSED_MAX_K || B < 1 || N < 1 || K < 1) /* any B works; only the panel table limits N */
    return IL_ERR(IL_ERR_INTERNAL, "gemm_ep: shape %d x %d x %d outside the fused kernel's range", B, N, K);
  panel pl[MAX_PANELS];
  size_t floats;
  const int np = plan(N, K, pl, &floats);
  int T = threads > 1 && B >= 32 * threads ? threads : 1; /* as cpu_gemm: small batches stay on one thread */
#ifndef _OPENMP
  T = 1;
#endif
  const int nb = nblocks(B, T);
  /* With threads each packs all of W into its own copy: panels another core packed stream from
   * that core's L2 (100 x 100 x 784 on 2 threads: 93 us shared, 65 us private; 1 thread: 100). */
  float *packed = NULL;
  if (posix_memalign((void **)&packed, 64, (size_t)T * floats * sizeof *packed) != 0)
    return IL_ERR(IL_ERR_NOMEM, "gemm_ep: cannot allocate %zu bytes to pack W", (size_t)T * floats * sizeof *packed);
  const job jb = {.B = B, .N = N, .K = K, .np = np, .nb = nb, .A = A, .ep = ep, .out = out, .pl = pl,
                  .packed = packed, .add_in_tile = ep->add && (ep->bias || ep->add == out)};
  if (T == 1) {
    for (int i = 0; i < np; i++) pack(K, W, &pl[i], packed);
    run_blocks(&jb, 0, nb);
  } else {
#ifdef _OPENMP
#pragma omp parallel num_threads(T)
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      job mine = jb;
      mine.packed = packed + (size_t)t * floats;
      for (int i = 0; i < np; i++) pack(K, W, &pl[i], packed + (size_t)t * floats);
      run_blocks(&mine, (int)((long)nb * t / nt), (int)((long)nb * (t + 1) / nt));
    }
#endif
  }
  free(packed);
  return IL_OK;
}

void il_cpu_tanh_sech2_vec(size_t len, const il_real *a, il_real *t, il_real *s) {
  size_t i = 0;
  for (; i + 64 <= len; i += 64) { /* 4 independent chains: the kernel is latency bound otherwise */
    vf f[4], d[4];
    for (int u = 0; u < 4; u++) f[u] = tanh_sech2_v(_mm512_loadu_ps(a + i + 16 * u), s ? &d[u] : NULL);
    for (int u = 0; u < 4; u++) {
      _mm512_storeu_ps(t + i + 16 * u, f[u]);
      if (s) _mm512_storeu_ps(s + i + 16 * u, d[u]);
    }
  }
  for (; i < len; i += 16) {
    const __mmask16 m = lanes(len - i < 16 ? (int)(len - i) : 16);
    vf d;
    const vf f = tanh_sech2_v(_mm512_maskz_loadu_ps(m, a + i), s ? &d : NULL);
    _mm512_mask_storeu_ps(t + i, m, f);
    if (s) _mm512_mask_storeu_ps(s + i, m, d);
  }
}

#else /* not built: the backend keeps its OpenBLAS path */

int il_cpu_map_fused_use(int B, int N, int K) {
  (void)B, (void)N, (void)K;
  return 0;
}

il_status il_cpu_map_fused(int threads, int B, int N, int K, const il_real *A, const il_real *W, const il_epilogue *ep,
                           il_real *out) {
  (void)threads, (void)B, (void)N, (void)K, (void)A, (void)W, (void)ep, (void)out;
  return IL_ERR(IL_ERR_UNSUPPORTED, "gemm_ep: the fused kernel is not built (float32 with AVX-512 only)");
}

void il_cpu_tanh_sech2_vec(size_t len, const il_real *a, il_real *t, il_real *s) {
  for (size_t i = 0; i < len; i++) {
    il_real d;
    il_tanh_sech2_1(a[i], &t[i], s ? &s[i] : &d);
  }
}

#endif
