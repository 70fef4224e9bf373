/* core/backends/selftest.c: run every op of a backend against a float64
 * reference (see il_selftest.h). Compiled once per precision (IL_PREC).
 *
 * The reference is computed here with plain loops in double from the very
 * il_real inputs the backend gets; it never calls a backend. Tensor data of
 * the backend's space is only touched through its copy op (cpu-guard would
 * crash otherwise). Every case is a function that opens itself with begin();
 * the next begin() (or the end of the run) closes it: the canaries and the
 * inputs are checked, and the case is counted for each op it exercised.
 *
 * Bounds (NMSE = sum (out - ref)^2 / sum ref^2, with eps = IL_EPS):
 *   B_ELEM  (100 eps)^2   elementwise ops, row ops with a few terms, softmax
 *           (1.4e-10 in float32, 4.9e-28 in float64)
 *   B_SUM   (300 eps)^2   dot products and sums of up to 100 terms in working
 *           precision: gemm, gemm_ep, col_sum_add, row_mgs, the xent loss
 *           (1.3e-9 in float32: a TF32 or fp16 GEMM fails it)
 *   B_RED   1e-24         reductions the header says accumulate in double
 *                         (sqdist, row_sqdist, row_dot, row_sub_dot, compare), both precisions
 *   LU      (20 n kappa eps)^2 per matrix, kappa = ||J||_inf ||J^-1||_inf of the
 *           reference; the Jacobians are built with ||diag(s) W||_inf <= 0.85,
 *           so kappa <= 1.85 / 0.15
 *   LU residual (pivoting-heavy J, any conditioning): per matrix
 *           ||J x - r||^2 / || (I + |diag(s) W|) |x| + |r| ||^2 <= (2 n eps)^2 (the
 *           terms of J, each rounded once where J is built); partial pivoting is
 *           backward stable, |dJ| <= 3 n eps |L| |U| with small growth on these
 *           inputs (seen: at most 0.04 of the bound, both layouts of the cpu backend)
 *   rcond   within a factor of 10 of 1 / (||J||_inf ||J^-1||_inf) (an estimate),
 *           and in [0, 1 + 4 eps] (LAPACK's gecon returns 1 + 1 ulp for some 1 x 1)
 *   exact   fill, row_select, row_fill, row_index_copy, absmax, all_finite, lu_factor's info,
 *           xent's error count, the memory ops, and the flop counts il_backend.h
 *           gives (gemm 2MNK, lu_factor 2n^3/3, lu_solve 2n^2 per matrix); the
 *           counter must never go down during any case.
 * Where an output is a sum or difference that can cancel (gemm, lincomb, row
 * dots, 1 - f^2, ...), the NMSE denominator is the squared magnitude of the
 * terms, sum_i (sum_k |term_ik|)^2, instead of sum ref^2. describe and flops
 * are optional (NULL is reported as "absent"). */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cpu_lu_compact.h" /* the cpu backend's LU crossover: its cases cover both sides */
#include "il_backend.h"
#include "il_rng.h"
#include "il_selftest.h"

#define EPS ((double)IL_EPS)
#define B_ELEM ((100 * EPS) * (100 * EPS))
#define B_SUM ((300 * EPS) * (300 * EPS))
#define B_RED 1e-24

/* ---- the ops of il_backend_ops, in the order of the struct ---- */
/* (enum tag, field of il_backend_ops, name in the op list) */
#define IL_SELFTEST_OPS(X)                            \
  X(CREATE, create, "create")                         \
  X(DESTROY, destroy, "destroy")                      \
  X(DESCRIBE, describe, "describe")                   \
  X(MEM_STATS, mem_stats, "mem_stats")                \
  X(FLOPS, flops, "flops")                            \
  X(ALLOC, alloc, "alloc")                            \
  X(RELEASE, release, "release")                      \
  X(ZERO, zero, "zero")                               \
  X(COPY_TO_SPACE, copy, "copy(to_space)")            \
  X(COPY_TO_HOST, copy, "copy(to_host)")              \
  X(COPY_IN_SPACE, copy, "copy(in_space)")            \
  X(SYNC, sync, "sync")                               \
  X(GEMM, gemm, "gemm")                               \
  X(GEMM_SB, gemm_strided_batched, "gemm_strided_batched") \
  X(GEMM_EP, gemm_ep, "gemm_ep")                      \
  X(FILL, fill, "fill")                               \
  X(AXPBY, axpby, "axpby")                            \
  X(LINCOMB, lincomb, "lincomb")                      \
  X(MUL, mul, "mul")                                  \
  X(ACT_FWD, act_fwd, "act_fwd")                      \
  X(ACT_DERIV, act_deriv, "act_deriv")                \
  X(ACT_DMUL, act_dmul, "act_dmul")                   \
  X(ACT_D2, act_d2, "act_d2")                         \
  X(SECH2, sech2_seed, "sech2_seed")                  \
  X(SECH2_D2, sech2_seed_d2, "sech2_seed_d2")         \
  X(ROW_LINCOMB, row_lincomb, "row_lincomb")          \
  X(ROW_SELECT, row_select, "row_select")             \
  X(ROW_FILL, row_fill, "row_fill")                   \
  X(ROW_COMBINE, row_combine, "row_combine")          \
  X(ROW_LOWRANK, row_lowrank, "row_lowrank")          \
  X(COL_SUM_ADD, col_sum_add, "col_sum_add")          \
  X(ROW_INDEX_COPY, row_index_copy, "row_index_copy") \
  X(SQDIST, sqdist, "sqdist")                         \
  X(ROW_SQDIST, row_sqdist, "row_sqdist")             \
  X(ROW_DOT, row_dot, "row_dot")                      \
  X(ROW_SUB_DOT, row_sub_dot, "row_sub_dot")          \
  X(ROW_MGS, row_mgs, "row_mgs")                      \
  X(ABSMAX, absmax, "absmax")                         \
  X(ALL_FINITE, all_finite, "all_finite")             \
  X(COMPARE, compare, "compare")                      \
  X(XENT_FWD, xent_fwd, "xent_fwd")                   \
  X(XENT_BWD, xent_bwd, "xent_bwd")                   \
  X(LU_LAYOUT, lu_layout, "lu_layout")                \
  X(JAC, jac_eye_minus_diag_w, "jac_eye_minus_diag_w") \
  X(LU_NORM, lu_norm_inf, "lu_norm_inf")              \
  X(LU_FACTOR, lu_factor, "lu_factor")                \
  X(LU_SOLVE, lu_solve, "lu_solve")                   \
  X(LU_RCOND, lu_rcond, "lu_rcond")                   \
  X(DIST, dist_matrix, "dist_matrix")

enum {
#define X(tag, field, label) OP_##tag,
  IL_SELFTEST_OPS(X)
#undef X
  OP_N
};

static const struct {
  const char *name;
  size_t off; /* offset of the op's pointer in il_backend_ops */
} op_table[OP_N] = {
#define X(tag, field, label) {label, offsetof(il_backend_ops, field)},
    IL_SELFTEST_OPS(X)
#undef X
};

typedef void (*fnptr)(void);

static int slot_set(const il_backend_ops *o, size_t off) {
  fnptr f;
  memcpy(&f, (const char *)o + off, sizeof f);
  return f != NULL;
}

/* ---- the harness's state ---- */
#define CANARY 64 /* bytes after every space buffer */
#define CANARY_BYTE 0xA5
#define MAX_BUFS 64

typedef struct sbuf {
  const char *name;
  void *p;            /* space */
  const void *expect; /* host copy an input must still equal afterwards, or NULL (an output) */
  size_t bytes;
} sbuf;

typedef struct T {
  il_backend *be;
  il_arena sp, host; /* the backend's space and host scratch, reset per case */
  il_rng rng;
  uint64_t seed;
  FILE *log;
  int verbose;
  il_selftest_summary *sum;
  il_status fatal; /* the harness itself failed (out of memory): stop */
  int device;      /* the instance's GPU index (il_backend_options.device) */
  unsigned char have[OP_N]; /* the op's pointer is set */
  /* the open case */
  int open, primary;
  long index;
  char desc[200];
  unsigned char touched[OP_N], bad[OP_N];
  double case_worst;
  double flops0; /* the backend's flop counter when the case opened */
  sbuf bufs[MAX_BUFS];
  int nbufs;
} T;

#define OPS (t->be->ops)
#define CTX (t->be->ctx)

static void emit(T *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(T *t, const char *fmt, ...) {
  if (!t->log) return;
  va_list ap;
  va_start(ap, fmt);
  vfprintf(t->log, fmt, ap);
  va_end(ap);
}

static void fail(T *t, int op, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(T *t, int op, const char *fmt, ...) {
  t->touched[op] = 1;
  t->bad[op] = 1;
  if (!t->log) return;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(t->log, "  FAIL %-20s #%ld %s [%s]: %s\n", op_table[op].name, t->index, t->sum->backend, t->desc, msg);
}

static void fail_status(T *t, int op, il_status s, const char *what) {
  fail(t, op, "%s returned %s: %s", what, il_status_str(s), il_error_message());
  il_error_clear();
}

/* Record one NMSE against its bound for op. */
static void note_nmse(T *t, int op, double nmse, double bound) {
  il_selftest_op *o = &t->sum->op[op];
  t->touched[op] = 1;
  if (nmse > o->worst_nmse) o->worst_nmse = nmse;
  const double ratio = bound > 0 ? nmse / bound : (nmse > 0 ? INFINITY : 0);
  if (ratio > o->worst_ratio) o->worst_ratio = ratio;
  if (nmse > t->case_worst) t->case_worst = nmse;
}

static il_status check_canaries(T *t);
static double flops_now(T *t) { return t->be->ops->flops ? t->be->ops->flops(t->be->ctx) : 0; }

static void end_case(T *t) {
  if (!t->open) return;
  t->open = 0;
  if (!t->fatal) {
    il_status s = check_canaries(t);
    if (s != IL_OK) t->fatal = s;
  }
  const double f1 = flops_now(t);
  if (!(f1 >= t->flops0)) fail(t, OP_FLOPS, "the counter went from %.17g to %.17g during this case", t->flops0, f1);
  int any = 0;
  for (int i = 0; i < OP_N; i++) {
    if (!t->touched[i]) continue;
    t->sum->op[i].cases++;
    if (t->bad[i]) {
      t->sum->op[i].failed++;
      any = 1;
    }
  }
  t->sum->cases++;
  if (any) t->sum->failed++;
  if (t->verbose && t->log)
    fprintf(t->log, "  %s %-20s #%ld [%s] NMSE %.2e\n", any ? "FAIL" : "ok  ", op_table[t->primary].name, t->index,
            t->desc, t->case_worst);
}

/* Open a case named after op; its rng depends only on the seed and the case index. */
static int begin(T *t, int op, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int begin(T *t, int op, const char *fmt, ...) {
  end_case(t);
  if (t->fatal) return 0;
  il_arena_reset(&t->sp);
  il_arena_reset(&t->host);
  t->index++;
  il_rng_seed(&t->rng, t->seed ^ (0x9e3779b97f4a7c15ULL * (uint64_t)t->index));
  t->open = 1;
  t->primary = op;
  memset(t->touched, 0, sizeof t->touched);
  memset(t->bad, 0, sizeof t->bad);
  t->touched[op] = 1;
  t->case_worst = 0;
  t->nbufs = 0;
  t->flops0 = flops_now(t);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t->desc, sizeof t->desc, fmt, ap);
  va_end(ap);
  if (!t->have[op]) { /* reported at the start */
    t->bad[op] = 1;
    return 0;
  }
  return 1;
}

/* ---- memory helpers: host scratch, space buffers with canaries ---- */
static void *hnew(T *t, size_t bytes) {
  void *p = NULL;
  if (t->fatal) return NULL;
  il_status s = il_arena_alloc(&t->host, bytes ? bytes : 1, &p);
  if (s != IL_OK) t->fatal = s;
  return s == IL_OK ? p : NULL;
}
static il_real *hreal(T *t, size_t n) { return hnew(t, n * sizeof(il_real)); }
static double *hdbl(T *t, size_t n) { return hnew(t, n * sizeof(double)); }

/* A space buffer of `bytes` holding host's bytes, followed by a canary.
 * check: host's bytes must still be there when the case closes (an input). */
static void *sput(T *t, const char *name, const void *host, size_t bytes, int check) {
  if (t->fatal) return NULL;
  if (t->nbufs == MAX_BUFS) {
    t->fatal = IL_ERR(IL_ERR_INTERNAL, "selftest: more than %d buffers in one case", MAX_BUFS);
    return NULL;
  }
  void *p = NULL;
  unsigned char *stage = hnew(t, bytes + CANARY);
  if (!stage) return NULL;
  il_status s = il_arena_alloc(&t->sp, bytes + CANARY, &p);
  if (s != IL_OK) {
    t->fatal = s;
    return NULL;
  }
  if (bytes) memcpy(stage, host, bytes);
  memset(stage + bytes, CANARY_BYTE, CANARY);
  s = OPS->copy(CTX, IL_COPY_TO_SPACE, p, stage, bytes + CANARY);
  if (s != IL_OK) {
    fail_status(t, OP_COPY_TO_SPACE, s, "uploading an input");
    return NULL;
  }
  t->bufs[t->nbufs++] = (sbuf){.name = name, .p = p, .expect = check ? stage : NULL, .bytes = bytes};
  return p;
}

static il_status check_canaries(T *t) {
  for (int i = 0; i < t->nbufs; i++) {
    const sbuf *b = &t->bufs[i];
    const size_t off = b->expect ? 0 : b->bytes, len = b->expect ? b->bytes + CANARY : CANARY;
    unsigned char *h = hnew(t, len);
    if (!h) return t->fatal;
    il_status s = OPS->copy(CTX, IL_COPY_TO_HOST, h, (const char *)b->p + off, len);
    if (s != IL_OK) {
      fail_status(t, OP_COPY_TO_HOST, s, "downloading a buffer");
      continue;
    }
    if (b->expect && memcmp(h, b->expect, b->bytes) != 0) {
      size_t j = 0;
      while (h[j] == ((const unsigned char *)b->expect)[j]) j++;
      fail(t, t->primary, "modified its input %s (byte %zu of %zu)", b->name, j, b->bytes);
    }
    const unsigned char *c = h + (len - CANARY);
    for (int j = 0; j < CANARY; j++)
      if (c[j] != CANARY_BYTE) {
        fail(t, t->primary, "wrote past the end of %s (%zu bytes): canary byte %d overwritten", b->name, b->bytes, j);
        break;
      }
  }
  return IL_OK;
}

static double unif(T *t, double lo, double hi) { return lo + (hi - lo) * il_rng_uniform(&t->rng); }
static void rfill(T *t, il_real *h, size_t n, double lo, double hi) {
  for (size_t i = 0; i < n; i++) h[i] = (il_real)unif(t, lo, hi);
}
/* a random scalar of magnitude [0.3, 1.5] and random sign */
static il_real rscalar(T *t) { return (il_real)((il_rng_uniform(&t->rng) < 0.5 ? -1 : 1) * unif(t, 0.3, 1.5)); }

/* input: random values, checked unchanged; *host gets the values */
static il_real *in_rand(T *t, const char *name, size_t n, double lo, double hi, il_real **host) {
  il_real *h = hreal(t, n);
  if (host) *host = h;
  if (!h) return NULL;
  rfill(t, h, n, lo, hi);
  return sput(t, name, h, n * sizeof *h, 1);
}
static il_real *in_host(T *t, const char *name, const il_real *h, size_t n) { return sput(t, name, h, n * sizeof *h, 1); }
/* output: poisoned with NaN */
static il_real *out_nan(T *t, const char *name, size_t n) {
  il_real *h = hreal(t, n);
  if (!h) return NULL;
  for (size_t i = 0; i < n; i++) h[i] = (il_real)NAN;
  return sput(t, name, h, n * sizeof *h, 0);
}
/* in/out: random initial values (accumulated into) */
static il_real *io_rand(T *t, const char *name, size_t n, double lo, double hi, il_real **host) {
  il_real *h = hreal(t, n);
  if (host) *host = h;
  if (!h) return NULL;
  rfill(t, h, n, lo, hi);
  return sput(t, name, h, n * sizeof *h, 0);
}
static il_real *io_host(T *t, const char *name, const il_real *h, size_t n) { return sput(t, name, h, n * sizeof *h, 0); }

/* download n reals as doubles */
static double *get(T *t, const char *name, const il_real *p, size_t n) {
  il_real *h = hreal(t, n);
  double *d = hdbl(t, n);
  if (!h || !d) return NULL;
  il_status s = OPS->copy(CTX, IL_COPY_TO_HOST, h, p, n * sizeof *h);
  if (s != IL_OK) {
    char what[96];
    snprintf(what, sizeof what, "downloading %s", name);
    fail_status(t, OP_COPY_TO_HOST, s, what);
    return NULL;
  }
  for (size_t i = 0; i < n; i++) d[i] = (double)h[i];
  return d;
}
static double *dnan(T *t, size_t n) {
  double *d = hdbl(t, n);
  if (d)
    for (size_t i = 0; i < n; i++) d[i] = NAN;
  return d;
}
static double *todbl(T *t, const il_real *h, size_t n) {
  double *d = hdbl(t, n);
  if (d)
    for (size_t i = 0; i < n; i++) d[i] = (double)h[i];
  return d;
}

/* ---- checks ---- */
/* NMSE of out against ref over the elements not skipped; with mag, the
 * denominator is sum mag^2 (mag_i = sum of |terms| of element i) instead of
 * sum ref^2, so that rounding of the terms of a cancelled sum does not count
 * as an error. A NaN in ref must be
 * NaN in out, an infinity equal; a finite ref needs a finite out. */
static void chk_m(T *t, int op, const char *what, const double *out, const double *ref, const double *mag, size_t n,
                  double bound, const unsigned char *skip) {
  double num = 0, den = 0, worst = -1;
  size_t wi = 0, bad = 0, bi = 0;
  for (size_t i = 0; i < n; i++) {
    if (skip && skip[i]) continue;
    const double o = out[i], r = ref[i];
    int ok;
    if (isnan(r)) ok = isnan(o);
    else if (isinf(r)) ok = o == r;
    else ok = isfinite(o);
    if (!ok) {
      if (!bad) bi = i;
      bad++;
      continue;
    }
    if (!isfinite(r)) continue;
    const double d = (o - r) * (o - r);
    num += d;
    const double m = mag && mag[i] > fabs(r) ? mag[i] : r; /* never below |ref| */
    den += m * m;
    if (d > worst) worst = d, wi = i;
  }
  const double nmse = den > 0 ? num / den : num;
  note_nmse(t, op, bad ? INFINITY : nmse, bound);
  if (bad) {
    fail(t, op, "%s[%zu] = %g, expected %g%s (%zu of %zu elements differ from the reference in NaN/inf)",
         what, bi, out[bi], ref[bi], isnan(out[bi]) && !isnan(ref[bi]) ? " (never written?)" : "", bad, n);
  } else if (!(nmse <= bound)) {
    fail(t, op, "%s: NMSE %.3e > bound %.3e (n = %zu; worst element %zu: %.9g, expected %.9g)", what, nmse, bound, n,
         wi, out[wi], ref[wi]);
  }
}

static void chk(T *t, int op, const char *what, const double *out, const double *ref, size_t n, double bound,
                const unsigned char *skip) {
  chk_m(t, op, what, out, ref, NULL, n, bound, skip);
}

/* Exact equality (NaN equals NaN). */
static void chk_exact(T *t, int op, const char *what, const double *out, const double *ref, size_t n) {
  t->touched[op] = 1;
  for (size_t i = 0; i < n; i++) {
    if (out[i] == ref[i] || (isnan(out[i]) && isnan(ref[i]))) continue;
    size_t bad = 0;
    for (size_t j = i; j < n; j++) bad += !(out[j] == ref[j] || (isnan(out[j]) && isnan(ref[j])));
    fail(t, op, "%s[%zu] = %.9g, expected exactly %.9g (%zu of %zu elements differ)", what, i, out[i], ref[i], bad, n);
    return;
  }
}

static void chk_int(T *t, int op, const char *what, const int *out, const int *ref, size_t n) {
  t->touched[op] = 1;
  for (size_t i = 0; i < n; i++)
    if (out[i] != ref[i]) {
      fail(t, op, "%s[%zu] = %d, expected %d", what, i, out[i], ref[i]);
      return;
    }
}

#define CALL(op, expr)                               \
  do {                                               \
    t->touched[op] = 1;                              \
    if (!t->have[op]) {                              \
      t->bad[op] = 1;                                \
      return;                                        \
    }                                                \
    il_status s_ = (expr);                           \
    if (s_ != IL_OK) {                               \
      fail_status(t, op, s_, op_table[op].name);     \
      return;                                        \
    }                                                \
  } while (0)
#define NN(p) \
  do {        \
    if (!(p)) return; \
  } while (0)

static const char *act_name(il_act a) { return a == IL_ACT_TANH ? "tanh" : a == IL_ACT_RELU ? "relu" : "none"; }
static const il_act ACTS[3] = {IL_ACT_NONE, IL_ACT_TANH, IL_ACT_RELU};

/* ---- reference activations ---- */
static double r_act(il_act a, double x) {
  if (a == IL_ACT_TANH) return tanh(x);
  if (a == IL_ACT_RELU) return x != x ? x : (x > 0 ? x : 0);
  return x;
}
static double r_dact_a(il_act a, double x) { /* act'(x) from the input */
  if (a == IL_ACT_TANH) {
    const double c = cosh(x);
    return 1 / (c * c);
  }
  if (a == IL_ACT_RELU) return x > 0 ? 1 : 0;
  return 1;
}
static double r_dact_f(il_act a, double f) { /* act' from the output f */
  if (a == IL_ACT_TANH) return 1 - f * f;
  if (a == IL_ACT_RELU) return f > 0 ? 1 : 0;
  return 1;
}
static double r_dact_mag(il_act a, double f) { /* |terms| of act' from f: 1 + f^2 for tanh */
  return a == IL_ACT_TANH ? 1 + f * f : r_dact_f(a, f);
}
static double r_d2_f(il_act a, double f) { /* d act' / da from the output f */
  return a == IL_ACT_TANH ? -2 * (1 - f * f) * f : 0;
}
/* f-inputs of the derivative ops: something an activation can output */
static void act_inputs(T *t, il_act a, il_real *f, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (a == IL_ACT_TANH) f[i] = (il_real)unif(t, -0.999, 0.999);
    else if (a == IL_ACT_RELU) f[i] = il_rng_uniform(&t->rng) < 0.25 ? 0 : (il_real)unif(t, 0, 2);
    else f[i] = (il_real)unif(t, -2, 2);
  }
}

/* ======================= memory ops ======================= */
static void case_alloc(T *t, size_t bytes) {
  if (!begin(t, OP_ALLOC, "bytes=%zu, mem_stats, round trip, release", bytes)) return;
  t->touched[OP_RELEASE] = t->touched[OP_COPY_TO_SPACE] = t->touched[OP_COPY_TO_HOST] = 1;
  size_t live0 = 0, peak0 = 0, live1 = 0, peak1 = 0, live2 = 0, peak2 = 0;
  const int ms = t->have[OP_MEM_STATS];
  if (ms) {
    OPS->mem_stats(CTX, &live0, &peak0);
    t->touched[OP_MEM_STATS] = 1;
  }
  unsigned char *h = hnew(t, bytes), *back = hnew(t, bytes);
  NN(h && back);
  void *p = NULL;
  CALL(OP_ALLOC, OPS->alloc(CTX, bytes, &p));
  if (!p) {
    fail(t, OP_ALLOC, "returned IL_OK and a NULL pointer");
    return;
  }
  if ((uintptr_t)p % 64 != 0) fail(t, OP_ALLOC, "pointer %p is not 64-byte aligned", p);
  if (ms) {
    OPS->mem_stats(CTX, &live1, &peak1);
    if (live1 < live0 + bytes) fail(t, OP_MEM_STATS, "live %zu after allocating %zu bytes (before: %zu)", live1, bytes, live0);
    if (peak1 < live1 || peak1 < peak0) fail(t, OP_MEM_STATS, "peak %zu below live %zu or the earlier peak %zu", peak1, live1, peak0);
  }
  for (size_t i = 0; i < bytes; i++) h[i] = (unsigned char)il_rng_next(&t->rng);
  memset(back, 0, bytes);
  il_status s = OPS->copy(CTX, IL_COPY_TO_SPACE, p, h, bytes);
  if (s != IL_OK) fail_status(t, OP_COPY_TO_SPACE, s, "copy to space");
  s = OPS->copy(CTX, IL_COPY_TO_HOST, back, p, bytes);
  if (s != IL_OK) fail_status(t, OP_COPY_TO_HOST, s, "copy to host");
  else if (memcmp(h, back, bytes) != 0) fail(t, OP_COPY_TO_HOST, "a round trip of %zu bytes changed them", bytes);
  OPS->release(CTX, p, bytes);
  if (ms) {
    OPS->mem_stats(CTX, &live2, &peak2);
    if (live2 != live0) fail(t, OP_RELEASE, "live %zu after release, %zu before the alloc", live2, live0);
    if (peak2 < peak1) fail(t, OP_MEM_STATS, "peak went down from %zu to %zu", peak1, peak2);
  }
}

/* zero a byte range inside a buffer (any element type; 0 bytes is a no-op) */
static void case_zero(T *t, size_t len, size_t off, size_t cnt) {
  if (!begin(t, OP_ZERO, "buffer of %zu bytes, zero [%zu, %zu)", len, off, off + cnt)) return;
  unsigned char *h = hnew(t, len), *back = hnew(t, len);
  NN(h && back);
  for (size_t i = 0; i < len; i++) h[i] = (unsigned char)(1 + il_rng_below(&t->rng, 255));
  unsigned char *p = sput(t, "buffer", h, len, 0);
  NN(p);
  CALL(OP_ZERO, OPS->zero(CTX, p + off, cnt));
  CALL(OP_COPY_TO_HOST, OPS->copy(CTX, IL_COPY_TO_HOST, back, p, len));
  for (size_t i = 0; i < len; i++) {
    const unsigned char want = (i >= off && i < off + cnt) ? 0 : h[i];
    if (back[i] != want) {
      fail(t, OP_ZERO, "byte %zu = %u, expected %u", i, back[i], want);
      return;
    }
  }
}

static void case_copy_round_trip(T *t, size_t n) {
  if (!begin(t, OP_COPY_TO_SPACE, "%zu reals, round trip", n)) return;
  t->touched[OP_COPY_TO_HOST] = 1;
  il_real *h = NULL;
  il_real *p = in_rand(t, "x", n, -1e3, 1e3, &h);
  NN(p);
  double *back = get(t, "x", p, n), *ref = todbl(t, h, n);
  NN(back && ref);
  chk_exact(t, OP_COPY_TO_SPACE, "x", back, ref, n);
}

/* odd byte ranges at odd offsets, into a host buffer with guard bytes around */
static void case_copy_to_host(T *t, size_t len, size_t off, size_t cnt) {
  if (!begin(t, OP_COPY_TO_HOST, "bytes [%zu, %zu) of %zu", off, off + cnt, len)) return;
  unsigned char *h = hnew(t, len), *back = hnew(t, cnt + 32);
  NN(h && back);
  for (size_t i = 0; i < len; i++) h[i] = (unsigned char)il_rng_next(&t->rng);
  unsigned char *p = sput(t, "src", h, len, 1);
  NN(p);
  memset(back, 0x5A, cnt + 32);
  CALL(OP_COPY_TO_HOST, OPS->copy(CTX, IL_COPY_TO_HOST, back + 16, p + off, cnt));
  if (memcmp(back + 16, h + off, cnt) != 0) fail(t, OP_COPY_TO_HOST, "bytes differ");
  for (int i = 0; i < 16; i++)
    if (back[i] != 0x5A || back[16 + cnt + i] != 0x5A) {
      fail(t, OP_COPY_TO_HOST, "wrote outside the %zu bytes of host memory it was given", cnt);
      return;
    }
}

static void case_copy_in_space(T *t, size_t len, size_t so, size_t doff, size_t cnt) {
  if (!begin(t, OP_COPY_IN_SPACE, "bytes [%zu, %zu) -> [%zu, %zu) of %zu", so, so + cnt, doff, doff + cnt, len)) return;
  unsigned char *hs = hnew(t, len), *hd = hnew(t, len), *back = hnew(t, len);
  NN(hs && hd && back);
  for (size_t i = 0; i < len; i++) hs[i] = (unsigned char)il_rng_next(&t->rng), hd[i] = (unsigned char)il_rng_next(&t->rng);
  unsigned char *ps = sput(t, "src", hs, len, 1), *pd = sput(t, "dst", hd, len, 0);
  NN(ps && pd);
  CALL(OP_COPY_IN_SPACE, OPS->copy(CTX, IL_COPY_IN_SPACE, pd + doff, ps + so, cnt));
  CALL(OP_COPY_TO_HOST, OPS->copy(CTX, IL_COPY_TO_HOST, back, pd, len));
  for (size_t i = 0; i < len; i++) {
    const unsigned char want = (i >= doff && i < doff + cnt) ? hs[so + i - doff] : hd[i];
    if (back[i] != want) {
      fail(t, OP_COPY_IN_SPACE, "dst byte %zu = %u, expected %u", i, back[i], want);
      return;
    }
  }
}

/* sync alone, and after queued work whose result it must make visible */
static void case_sync(T *t, int after_work) {
  if (!begin(t, OP_SYNC, "%s", after_work ? "after fill" : "idle")) return;
  if (!after_work) {
    CALL(OP_SYNC, OPS->sync(CTX));
    return;
  }
  const size_t n = 4096;
  il_real *p = out_nan(t, "x", n);
  double *ref = hdbl(t, n);
  NN(p && ref);
  CALL(OP_FILL, OPS->fill(CTX, n, (il_real)0.5, p));
  CALL(OP_SYNC, OPS->sync(CTX));
  double *d = get(t, "x", p, n);
  NN(d);
  for (size_t i = 0; i < n; i++) ref[i] = 0.5;
  chk_exact(t, OP_SYNC, "x", d, ref, n);
}

/* describe is optional; its text is NUL-terminated within cap */
static void case_describe(T *t) {
  if (!begin(t, OP_DESCRIBE, "%s", OPS->describe ? "cap 512 and 8" : "absent (optional)") || !OPS->describe) return;
  char buf[512], small[16];
  memset(buf, 'x', sizeof buf);
  memset(small, 0x7f, sizeof small);
  OPS->describe(CTX, buf, sizeof buf);
  if (!memchr(buf, 0, sizeof buf)) fail(t, OP_DESCRIBE, "not NUL-terminated within 512 bytes");
  OPS->describe(CTX, small, 8);
  if (!memchr(small, 0, 8)) fail(t, OP_DESCRIBE, "not NUL-terminated within cap 8");
  for (int i = 8; i < 16; i++)
    if (small[i] != 0x7f) {
      fail(t, OP_DESCRIBE, "wrote past cap 8");
      return;
    }
}

/* a second instance coexists with the first, and is destroyed on its own */
static void case_second_instance(T *t) {
  if (!begin(t, OP_CREATE, "a second instance next to the first")) return;
  t->touched[OP_DESTROY] = 1;
  il_backend *b2 = NULL;
  const il_backend_options o = {.threads = t->be->threads > 0 ? t->be->threads : 1, .device = t->device};
  CALL(OP_CREATE, il_backend_create(OPS->name, &o, &b2));
  void *p = NULL;
  double v[3] = {1.5, -2, 3}, w[3] = {0, 0, 0};
  il_status s = b2->ops->alloc(b2->ctx, sizeof v, &p);
  if (s == IL_OK) {
    s = b2->ops->copy(b2->ctx, IL_COPY_TO_SPACE, p, v, sizeof v);
    if (s == IL_OK) s = b2->ops->copy(b2->ctx, IL_COPY_TO_HOST, w, p, sizeof w);
    b2->ops->release(b2->ctx, p, sizeof v);
  }
  if (s != IL_OK) fail_status(t, OP_CREATE, s, "using the second instance");
  else if (memcmp(v, w, sizeof v) != 0) fail(t, OP_CREATE, "a round trip through the second instance changed data");
  il_backend_destroy(b2);
}

static int lu_inputs(T *t, int B, int n, il_real **hs, il_real **hW);

/* flops: optional; the counts il_backend.h spells out (GEMMs 2MNK, LU 2n^3/3, a solve 2n^2) exactly */
static void flops_delta(T *t, const char *what, double before, double expect) {
  const double got = flops_now(t) - before;
  t->touched[OP_FLOPS] = 1;
  if (!(fabs(got - expect) <= 1e-9 * expect))
    fail(t, OP_FLOPS, "%s counted %.17g flops, expected %.17g", what, got, expect);
}
static void case_flops(T *t) {
  if (!begin(t, OP_FLOPS, "%s", OPS->flops ? "gemm, gemm_strided_batched, lu_factor, lu_solve" : "absent (optional)") ||
      !OPS->flops)
    return;
  const int M = 17, N = 33, K = 7, batch = 3, B = 3, n = 7;
  il_real *hs, *hW;
  il_real *A = in_rand(t, "A", (size_t)batch * M * K, -1, 1, NULL), *Bm = in_rand(t, "B", (size_t)batch * K * N, -1, 1, NULL);
  il_real *C = out_nan(t, "C", (size_t)batch * M * N), *R = io_rand(t, "R", (size_t)B * n, -1, 1, NULL);
  NN(A && Bm && C && R && lu_inputs(t, B, n, &hs, &hW));
  il_real *s = in_host(t, "s", hs, (size_t)B * n), *W = in_host(t, "W", hW, (size_t)n * n);
  int *info = hnew(t, (size_t)B * sizeof(int));
  NN(s && W && info);
  il_lu lu;
  t->touched[OP_LU_LAYOUT] = 1;
  il_status st = il_lu_alloc(t->be, &t->sp, B, n, &lu);
  if (st != IL_OK) {
    fail_status(t, OP_LU_LAYOUT, st, "il_lu_alloc (lu_layout)");
    return;
  }
  double f = flops_now(t);
  CALL(OP_GEMM, OPS->gemm(CTX, 0, 0, M, N, K, 1, A, K, Bm, N, 0, C, N));
  flops_delta(t, "gemm", f, 2.0 * M * N * K);
  f = flops_now(t);
  CALL(OP_GEMM_SB, OPS->gemm_strided_batched(CTX, 0, 0, M, N, K, 1, A, K, (size_t)M * K, Bm, N, (size_t)K * N, 0, C, N,
                                             (size_t)M * N, batch));
  flops_delta(t, "gemm_strided_batched", f, 2.0 * M * N * K * batch);
  CALL(OP_JAC, OPS->jac_eye_minus_diag_w(CTX, B, n, s, W, &lu));
  f = flops_now(t);
  CALL(OP_LU_FACTOR, OPS->lu_factor(CTX, &lu, info));
  flops_delta(t, "lu_factor", f, 2.0 / 3.0 * B * n * n * n);
  f = flops_now(t);
  CALL(OP_LU_SOLVE, OPS->lu_solve(CTX, 0, &lu, R));
  flops_delta(t, "lu_solve", f, 2.0 * B * n * n);
}

static void test_memory(T *t) {
  static const size_t sizes[] = {1, 3, 64, 4099, ((size_t)1 << 20) + 5};
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) case_alloc(t, sizes[i]);
  if (begin(t, OP_RELEASE, "NULL pointer")) OPS->release(CTX, NULL, 0);
  case_zero(t, 1000, 13, 501);
  case_zero(t, 64, 0, 64);
  case_zero(t, 7, 3, 0);
  case_zero(t, 40000, 1, 39998);
  static const size_t cn[] = {1, 7, 1000, 4097};
  for (size_t i = 0; i < sizeof cn / sizeof *cn; i++) case_copy_round_trip(t, cn[i]);
  for (size_t rep = 0; rep < 4; rep++) case_copy_to_host(t, 1003, 3 + 17 * rep, 13 + 211 * rep);
  for (size_t rep = 0; rep < 4; rep++) case_copy_in_space(t, 2048, 5 + 8 * rep, 2 + 31 * rep, 37 + 500 * rep);
  case_sync(t, 0);
  case_sync(t, 1);
  case_describe(t);
  case_flops(t);
  case_second_instance(t);
}

/* ======================= dense linear algebra ======================= */
/* A rows x cols matrix with leading dimension ld; padding is NaN (must never be read). */
static il_real *mat_in(T *t, const char *name, int rows, int cols, int ld, size_t stride, int batch, double scale,
                       il_real **host) {
  const size_t total = stride * (size_t)(batch - 1) + (size_t)rows * ld;
  il_real *h = hreal(t, total);
  *host = h;
  if (!h) return NULL;
  for (size_t i = 0; i < total; i++) h[i] = (il_real)NAN;
  for (int b = 0; b < batch; b++)
    for (int i = 0; i < rows; i++)
      for (int j = 0; j < cols; j++) h[b * stride + (size_t)i * ld + j] = (il_real)unif(t, -scale, scale);
  *host = h;
  return in_host(t, name, h, total);
}

/* C: logical part NaN (beta == 0) or random, padding a sentinel that must survive */
#define SENTINEL ((il_real)-4242.5)
static il_real *mat_out(T *t, int rows, int cols, int ld, size_t stride, int batch, int random, il_real **host) {
  const size_t total = stride * (size_t)(batch - 1) + (size_t)rows * ld;
  il_real *h = hreal(t, total);
  *host = h;
  if (!h) return NULL;
  for (size_t i = 0; i < total; i++) h[i] = SENTINEL;
  for (int b = 0; b < batch; b++)
    for (int i = 0; i < rows; i++)
      for (int j = 0; j < cols; j++)
        h[b * stride + (size_t)i * ld + j] = random ? (il_real)unif(t, -1, 1) : (il_real)NAN;
  *host = h;
  return io_host(t, "C", h, total);
}

/* reference C = alpha op(A) op(B) + beta C0 for one matrix; checks the logical part by NMSE, the padding exactly */
static void gemm_check(T *t, int op, int tA, int tB, int M, int N, int K, double alpha, const il_real *A, int lda,
                       const il_real *Bm, int ldb, double beta, const il_real *C0, int ldc, const double *Cout,
                       size_t total_c, const char *what) {
  double *ref = hdbl(t, (size_t)M * N), *out = hdbl(t, (size_t)M * N), *mag = hdbl(t, (size_t)M * N);
  if (!ref || !out || !mag) return;
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double acc = 0, m = 0;
      for (int k = 0; k < K; k++) {
        const double a = tA ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
        const double b = tB ? Bm[(size_t)j * ldb + k] : Bm[(size_t)k * ldb + j];
        acc += a * b;
        m += fabs(a * b);
      }
      const double c0 = beta != 0 ? beta * (double)C0[(size_t)i * ldc + j] : 0;
      ref[(size_t)i * N + j] = alpha * acc + c0;
      mag[(size_t)i * N + j] = fabs(alpha) * m + fabs(c0);
      out[(size_t)i * N + j] = Cout[(size_t)i * ldc + j];
    }
  chk_m(t, op, what, out, ref, mag, (size_t)M * N, B_SUM, NULL);
  for (size_t i = 0; i < total_c; i++) {
    const int r = (int)(i / ldc), c = (int)(i % ldc);
    if ((r >= M || c >= N) && Cout[i] != (double)SENTINEL) {
      fail(t, op, "%s: wrote padding element (%d, %d) outside the %d x %d matrix (ldc %d)", what, r, c, M, N, ldc);
      return;
    }
  }
}

static void case_gemm(T *t, int tA, int tB, int M, int N, int K, int pad, int beta_on) {
  const double beta = beta_on ? 0.7 : 0;
  if (!begin(t, OP_GEMM, "tA=%d tB=%d M=%d N=%d K=%d ld+%d beta=%g", tA, tB, M, N, K, pad, beta)) return;
  const int ar = tA ? K : M, ac = tA ? M : K, br = tB ? N : K, bc = tB ? K : N;
  const int lda = ac + pad, ldb = bc + pad, ldc = N + pad;
  il_real *hA, *hB, *hC;
  il_real *A = mat_in(t, "A", ar, ac, lda, 0, 1, 1, &hA);
  il_real *Bm = mat_in(t, "B", br, bc, ldb, 0, 1, 1, &hB);
  il_real *C = mat_out(t, M, N, ldc, 0, 1, beta_on, &hC);
  NN(A && Bm && C);
  const il_real alpha = rscalar(t);
  CALL(OP_GEMM, OPS->gemm(CTX, tA, tB, M, N, K, alpha, A, lda, Bm, ldb, (il_real)beta, C, ldc));
  double *out = get(t, "C", C, (size_t)M * ldc);
  NN(out);
  gemm_check(t, OP_GEMM, tA, tB, M, N, K, alpha, hA, lda, hB, ldb, (il_real)beta, hC, ldc, out, (size_t)M * ldc, "C");
}

static void case_gemm_sb(T *t, int tA, int tB, int M, int N, int K, int batch, int beta_on) {
  const double beta = beta_on ? -0.5 : 0;
  if (!begin(t, OP_GEMM_SB, "tA=%d tB=%d M=%d N=%d K=%d batch=%d beta=%g", tA, tB, M, N, K, batch, beta)) return;
  const int ar = tA ? K : M, ac = tA ? M : K, br = tB ? N : K, bc = tB ? K : N;
  const int lda = ac + 1, ldb = bc, ldc = N + 2;
  const size_t sA = (size_t)ar * lda + 3, sB = (size_t)br * ldb + 5, sC = (size_t)M * ldc + 1;
  il_real *hA, *hB, *hC;
  il_real *A = mat_in(t, "A", ar, ac, lda, sA, batch, 1, &hA);
  il_real *Bm = mat_in(t, "B", br, bc, ldb, sB, batch, 1, &hB);
  il_real *C = mat_out(t, M, N, ldc, sC, batch, beta_on, &hC);
  NN(A && Bm && C);
  const il_real alpha = rscalar(t);
  CALL(OP_GEMM_SB, OPS->gemm_strided_batched(CTX, tA, tB, M, N, K, alpha, A, lda, sA, Bm, ldb, sB, (il_real)beta, C,
                                             ldc, sC, batch));
  const size_t total = sC * (size_t)(batch - 1) + (size_t)M * ldc;
  double *out = get(t, "C", C, total);
  NN(out);
  for (int b = 0; b < batch; b++) {
    char what[32];
    snprintf(what, sizeof what, "C[%d]", b);
    const size_t len = b < batch - 1 ? sC : (size_t)M * ldc;
    gemm_check(t, OP_GEMM_SB, tA, tB, M, N, K, alpha, hA + b * sA, lda, hB + b * sB, ldb, (il_real)beta, hC + b * sC,
               ldc, out + b * sC, len, what);
  }
}

/* every epilogue combination: mask bits add, bias, pre, deriv, res; act = mask / 32 */
static void case_gemm_ep(T *t, int B, int N, int K, int mask) {
  const int has_add = mask & 1, has_bias = mask >> 1 & 1, has_pre = mask >> 2 & 1, has_deriv = mask >> 3 & 1,
            has_res = mask >> 4 & 1;
  const il_act act = ACTS[mask >> 5];
  if (!begin(t, OP_GEMM_EP, "B=%d N=%d K=%d act=%s add=%d bias=%d pre=%d deriv=%d res=%d", B, N, K, act_name(act),
             has_add, has_bias, has_pre, has_deriv, has_res))
    return;
  const size_t len = (size_t)B * N;
  il_real *hA, *hW, *hadd = NULL, *hbias = NULL, *hres = NULL;
  il_real *A = in_rand(t, "A", (size_t)B * K, -1, 1, &hA);
  il_real *W = in_rand(t, "W", (size_t)N * K, -1.5 / sqrt(K), 1.5 / sqrt(K), &hW);
  il_real *out = out_nan(t, "out", len);
  NN(A && W && out);
  il_epilogue ep = {.act = act};
  if (has_add) NN(ep.add = in_rand(t, "add", len, -1, 1, &hadd));
  if (has_bias) NN(ep.bias = in_rand(t, "bias", (size_t)N, -0.5, 0.5, &hbias));
  if (has_pre) NN(ep.pre = out_nan(t, "pre", len));
  if (has_deriv) NN(ep.deriv = out_nan(t, "deriv", len));
  if (has_res) {
    NN(ep.res_ref = in_rand(t, "res_ref", len, -1, 1, &hres));
    NN(ep.res_rows = dnan(t, (size_t)B));
  }
  CALL(OP_GEMM_EP, OPS->gemm_ep(CTX, B, N, K, A, W, &ep, out));
  double *rpre = hdbl(t, len), *rout = hdbl(t, len), *rder = hdbl(t, len), *rres = hdbl(t, (size_t)B);
  double *rmag = hdbl(t, len), *omag = hdbl(t, len), *dmag = hdbl(t, len); /* |terms| of pre, out, deriv */
  unsigned char *amb = hnew(t, len); /* relu: pre too close to 0 for act' to be determined */
  NN(rpre && rout && rder && rres && rmag && omag && dmag && amb);
  for (int b = 0; b < B; b++) {
    for (int j = 0; j < N; j++) {
      double acc = 0, mag = 0;
      for (int k = 0; k < K; k++) {
        const double p = (double)hA[(size_t)b * K + k] * (double)hW[(size_t)j * K + k];
        acc += p;
        mag += fabs(p);
      }
      if (hadd) acc += hadd[(size_t)b * N + j], mag += fabs((double)hadd[(size_t)b * N + j]);
      if (hbias) acc += hbias[j], mag += fabs((double)hbias[j]);
      const size_t i = (size_t)b * N + j;
      rpre[i] = acc;
      rout[i] = r_act(act, acc);
      rder[i] = r_dact_a(act, acc);
      rmag[i] = mag; /* act and act' have slopes <= 1: an error in pre moves them at most as much */
      omag[i] = fabs(rout[i]) + mag;
      dmag[i] = fabs(rder[i]) + mag;
      amb[i] = act == IL_ACT_RELU && fabs(acc) <= 1e3 * EPS * mag;
    }
  }
  double *o = get(t, "out", out, len);
  NN(o);
  chk_m(t, OP_GEMM_EP, "out", o, rout, omag, len, B_SUM, NULL);
  /* the residual is of the out the op returned (already checked above): its reference uses that out,
   * so cancellation in res_ref - out cannot hide or fake an error */
  for (int b = 0; b < B && hres; b++) {
    double res = 0;
    for (int j = 0; j < N; j++) {
      const double d = (double)hres[(size_t)b * N + j] - o[(size_t)b * N + j];
      res += d * d;
    }
    rres[b] = res;
  }
  if (ep.pre) {
    double *p = get(t, "pre", ep.pre, len);
    NN(p);
    chk_m(t, OP_GEMM_EP, "pre", p, rpre, rmag, len, B_SUM, NULL);
  }
  if (ep.deriv) {
    double *d = get(t, "deriv", ep.deriv, len);
    NN(d);
    chk_m(t, OP_GEMM_EP, "deriv", d, rder, dmag, len, B_SUM, amb);
  }
  if (ep.res_rows) chk(t, OP_GEMM_EP, "res_rows", ep.res_rows, rres, (size_t)B, B_SUM, NULL);
}

/* ---- gemm_ep: the CPU backend's fused kernel (core/backends/cpu_map_fused.c) ----
 * Its tiles are row blocks of 8..12 rows and column panels of 32, then 16, then a
 * narrow tail (<= 8 columns) whose lanes hold g = 2, 4, 8 or 16 consecutive k each.
 * The shapes below hit each edge: B < 8 and B = 1, row blocks of 6/7 rows, N = 32 + 1..31
 * (every tail kind), N a multiple of 16, K not a multiple of 16 or of g, K = 1. Any
 * backend must pass them. The bound stays B_SUM: each dot product is a sum of K <= 300
 * terms (the tail's g partial sums are added in a tree at the end), so its error is
 * at most ~K eps of the terms' magnitude, and act, act' have slopes <= 1. */
static void case_gemm_ep_special(T *t, int B, int N, int K, il_act act);
static void run_gemm_ep_fused(T *t) {
  static const int shp[][3] = {{13, 100, 100}, {25, 36, 17}, {12, 40, 9}, {9, 47, 31}, {8, 50, 5},
                               {100, 97, 33}, {17, 16, 64}, {24, 64, 48}, {1, 1, 300}, {3, 6, 300},
                               {100, 3, 2}, {7, 33, 1}, {100, 100, 100}, {1, 61, 19}};
  for (size_t si = 0; si < sizeof shp / sizeof *shp; si++)
    for (int mask = 0; mask < 96; mask++) case_gemm_ep(t, shp[si][0], shp[si][1], shp[si][2], mask);
  static const int nshp[][3] = {{13, 100, 100}, {1, 36, 17}, {25, 47, 31}, {100, 100, 100}};
  for (size_t si = 0; si < sizeof nshp / sizeof *nshp; si++)
    for (int a = 0; a < 3; a++) case_gemm_ep_special(t, nshp[si][0], nshp[si][1], nshp[si][2], ACTS[a]);
}

/* NaN and infinities through every output: a NaN in a row of A makes the row NaN, an
 * infinity makes it +-inf; planted add values are +-inf, NaN, +-50 (tanh saturates,
 * sech^2 underflows) and +-1e30. act' of a NaN is not specified and is skipped. */
static void case_gemm_ep_special(T *t, int B, int N, int K, il_act act) {
  if (!begin(t, OP_GEMM_EP, "B=%d N=%d K=%d act=%s, NaN/inf planted in A and add, all outputs", B, N, K,
             act_name(act)))
    return;
  const size_t len = (size_t)B * N;
  il_real *hA = hreal(t, (size_t)B * K), *hadd = hreal(t, len), *hW, *hbias, *hres;
  NN(hA && hadd);
  rfill(t, hA, (size_t)B * K, -1, 1);
  rfill(t, hadd, len, -1, 1);
  hA[(size_t)il_rng_below(&t->rng, (uint64_t)K)] = (il_real)NAN;                           /* row 0 */
  if (B > 1) hA[(size_t)(B - 1) * K + il_rng_below(&t->rng, (uint64_t)K)] = (il_real)INFINITY; /* last row */
  static const double planted[] = {INFINITY, -INFINITY, NAN, 50, -50, 1e30, -1e30};
  for (size_t i = 0; i < sizeof planted / sizeof *planted; i++)
    hadd[il_rng_below(&t->rng, (uint64_t)len)] = (il_real)planted[i];
  il_real *A = in_host(t, "A", hA, (size_t)B * K), *add = in_host(t, "add", hadd, len);
  il_real *W = in_rand(t, "W", (size_t)N * K, -1.5 / sqrt(K), 1.5 / sqrt(K), &hW);
  il_real *bias = in_rand(t, "bias", (size_t)N, -0.5, 0.5, &hbias), *res_ref = in_rand(t, "res_ref", len, -1, 1, &hres);
  il_real *out = out_nan(t, "out", len), *pre = out_nan(t, "pre", len), *deriv = out_nan(t, "deriv", len);
  double *res = dnan(t, (size_t)B);
  NN(A && add && W && bias && res_ref && out && pre && deriv && res);
  const il_epilogue ep = {.add = add, .bias = bias, .act = act, .pre = pre, .deriv = deriv, .res_ref = res_ref,
                          .res_rows = res};
  CALL(OP_GEMM_EP, OPS->gemm_ep(CTX, B, N, K, A, W, &ep, out));
  double *rpre = hdbl(t, len), *rout = hdbl(t, len), *rder = hdbl(t, len), *rres = hdbl(t, (size_t)B);
  double *rmag = hdbl(t, len), *omag = hdbl(t, len), *dmag = hdbl(t, len);
  unsigned char *skip = hnew(t, len);
  NN(rpre && rout && rder && rres && rmag && omag && dmag && skip);
  for (int b = 0; b < B; b++)
    for (int j = 0; j < N; j++) {
      const size_t i = (size_t)b * N + j;
      double acc = 0, mag = 0;
      for (int k = 0; k < K; k++) {
        const double p = (double)hA[(size_t)b * K + k] * (double)hW[(size_t)j * K + k];
        acc += p;
        mag += fabs(p);
      }
      acc += (double)hadd[i] + (double)hbias[j]; /* (add + bias) is exact in double */
      mag += fabs((double)hadd[i]) + fabs((double)hbias[j]);
      rpre[i] = acc;
      rout[i] = r_act(act, acc);
      rder[i] = r_dact_a(act, acc);
      rmag[i] = mag;
      omag[i] = fabs(rout[i]) + mag;
      dmag[i] = fabs(rder[i]) + mag;
      skip[i] = isnan(acc) || (act == IL_ACT_RELU && fabs(acc) <= 1e3 * EPS * mag);
    }
  double *o = get(t, "out", out, len), *p = get(t, "pre", pre, len), *d = get(t, "deriv", deriv, len);
  NN(o && p && d);
  chk_m(t, OP_GEMM_EP, "out", o, rout, omag, len, B_SUM, NULL);
  chk_m(t, OP_GEMM_EP, "pre", p, rpre, rmag, len, B_SUM, NULL);
  chk_m(t, OP_GEMM_EP, "deriv", d, rder, dmag, len, B_SUM, skip);
  for (int b = 0; b < B; b++) { /* of the out the op returned, as in case_gemm_ep */
    double r = 0;
    for (int j = 0; j < N; j++) {
      const double e = (double)hres[(size_t)b * N + j] - o[(size_t)b * N + j];
      r += e * e;
    }
    rres[b] = r;
  }
  chk(t, OP_GEMM_EP, "res_rows", res, rres, (size_t)B, B_SUM, NULL);
}
/* ---- end of the fused kernel's cases ---- */

/* ======================= elementwise ======================= */
static const size_t LENS[] = {1, 2, 3, 7, 17, 33, 100, 561, 3300, 10000};
#define NLENS (sizeof LENS / sizeof *LENS)

static void case_fill(T *t, size_t n, int zero) {
  if (!begin(t, OP_FILL, "len=%zu v=%s", n, zero ? "0" : "random")) return;
  const il_real v = zero ? 0 : rscalar(t);
  il_real *o = out_nan(t, "out", n);
  NN(o);
  CALL(OP_FILL, OPS->fill(CTX, n, v, o));
  double *d = get(t, "out", o, n), *ref = hdbl(t, n);
  NN(d && ref);
  for (size_t i = 0; i < n; i++) ref[i] = v;
  chk_exact(t, OP_FILL, "out", d, ref, n);
}

static void case_axpby(T *t, size_t n, int which) {
  if (!begin(t, OP_AXPBY, "len=%zu b=%s", n, which == 0 ? "0" : which == 1 ? "1" : "random")) return;
  const il_real a = rscalar(t), b = which == 0 ? 0 : which == 1 ? 1 : rscalar(t);
  il_real *hx, *hy;
  il_real *x = in_rand(t, "x", n, -1, 1, &hx), *y = io_rand(t, "y", n, -1, 1, &hy);
  NN(x && y);
  CALL(OP_AXPBY, OPS->axpby(CTX, n, a, x, b, y));
  double *d = get(t, "y", y, n), *ref = hdbl(t, n), *mag = hdbl(t, n);
  NN(d && ref && mag);
  for (size_t i = 0; i < n; i++)
    ref[i] = (double)a * hx[i] + (double)b * hy[i], mag[i] = fabs((double)a * hx[i]) + fabs((double)b * hy[i]);
  chk_m(t, OP_AXPBY, "y", d, ref, mag, n, B_ELEM, NULL);
}

/* alias: 0 none, 1 out == x, 2 out == y */
static void case_lincomb(T *t, size_t n, int alias) {
  if (!begin(t, OP_LINCOMB, "len=%zu%s", n, alias == 1 ? " out==x" : alias == 2 ? " out==y" : "")) return;
  const il_real a = rscalar(t), b = rscalar(t);
  il_real *hx, *hy, *x, *y, *o;
  if (alias == 1) {
    x = io_rand(t, "x", n, -1, 1, &hx), y = in_rand(t, "y", n, -1, 1, &hy), o = x;
  } else if (alias == 2) {
    x = in_rand(t, "x", n, -1, 1, &hx), y = io_rand(t, "y", n, -1, 1, &hy), o = y;
  } else {
    x = in_rand(t, "x", n, -1, 1, &hx), y = in_rand(t, "y", n, -1, 1, &hy), o = out_nan(t, "out", n);
  }
  NN(x && y && o);
  CALL(OP_LINCOMB, OPS->lincomb(CTX, n, a, x, b, y, o));
  double *d = get(t, "out", o, n), *ref = hdbl(t, n), *mag = hdbl(t, n);
  NN(d && ref && mag);
  for (size_t i = 0; i < n; i++)
    ref[i] = (double)a * hx[i] + (double)b * hy[i], mag[i] = fabs((double)a * hx[i]) + fabs((double)b * hy[i]);
  chk_m(t, OP_LINCOMB, "out", d, ref, mag, n, B_ELEM, NULL);
}

static void case_mul(T *t, size_t n) {
  if (!begin(t, OP_MUL, "len=%zu", n)) return;
  il_real *ha, *hb;
  il_real *a = in_rand(t, "a", n, -2, 2, &ha), *b = in_rand(t, "b", n, -2, 2, &hb), *o = out_nan(t, "out", n);
  NN(a && b && o);
  CALL(OP_MUL, OPS->mul(CTX, n, a, b, o));
  double *d = get(t, "out", o, n), *ref = hdbl(t, n);
  NN(d && ref);
  for (size_t i = 0; i < n; i++) ref[i] = (double)ha[i] * hb[i];
  chk(t, OP_MUL, "out", d, ref, n, B_ELEM, NULL);
}

/* with_s: s non-NULL; nan: a NaN planted in a (f must be NaN there) */
static void case_act_fwd(T *t, size_t n, il_act act, int with_s, int nan) {
  if (!begin(t, OP_ACT_FWD, "len=%zu act=%s s=%s%s", n, act_name(act), with_s ? "out" : "NULL",
             nan ? " NaN planted" : ""))
    return;
  il_real *ha = hreal(t, n);
  NN(ha);
  rfill(t, ha, n, -4, 4);
  for (size_t i = 0; i < n; i += 5) /* relu at exactly 0 */
    if (act == IL_ACT_RELU) ha[i] = 0;
  const size_t at = nan ? (size_t)il_rng_below(&t->rng, n) : n;
  if (nan) ha[at] = (il_real)NAN;
  il_real *a = in_host(t, "a", ha, n), *f = out_nan(t, "f", n), *s = with_s ? out_nan(t, "s", n) : NULL;
  NN(a && f && (s || !with_s));
  CALL(OP_ACT_FWD, OPS->act_fwd(CTX, n, act, a, f, s));
  double *rf = hdbl(t, n), *rs = hdbl(t, n);
  unsigned char *skip = hnew(t, n);
  NN(rf && rs && skip);
  for (size_t i = 0; i < n; i++) {
    rf[i] = r_act(act, ha[i]);
    rs[i] = r_dact_a(act, ha[i]);
    skip[i] = i == at; /* act'(NaN) is not specified */
  }
  double *df = get(t, "f", f, n);
  NN(df);
  chk(t, OP_ACT_FWD, "f", df, rf, n, B_ELEM, NULL);
  if (s) {
    double *ds = get(t, "s", s, n);
    NN(ds);
    chk(t, OP_ACT_FWD, "s", ds, rs, n, B_ELEM, skip);
  }
}

static void case_act_deriv(T *t, size_t n, il_act act) {
  if (!begin(t, OP_ACT_DERIV, "len=%zu act=%s", n, act_name(act))) return;
  il_real *hf = hreal(t, n);
  NN(hf);
  act_inputs(t, act, hf, n);
  il_real *f = in_host(t, "f", hf, n), *s = out_nan(t, "s", n);
  NN(f && s);
  CALL(OP_ACT_DERIV, OPS->act_deriv(CTX, n, act, f, s));
  double *d = get(t, "s", s, n), *ref = hdbl(t, n), *mag = hdbl(t, n);
  NN(d && ref && mag);
  for (size_t i = 0; i < n; i++) ref[i] = r_dact_f(act, hf[i]), mag[i] = r_dact_mag(act, hf[i]);
  chk_m(t, OP_ACT_DERIV, "s", d, ref, mag, n, B_ELEM, NULL);
}

static void case_act_dmul(T *t, size_t n, il_act act) {
  if (!begin(t, OP_ACT_DMUL, "len=%zu act=%s", n, act_name(act))) return;
  il_real *hf = hreal(t, n), *hu;
  NN(hf);
  act_inputs(t, act, hf, n);
  il_real *f = in_host(t, "f", hf, n), *u = in_rand(t, "u", n, -2, 2, &hu), *o = out_nan(t, "out", n);
  NN(f && u && o);
  CALL(OP_ACT_DMUL, OPS->act_dmul(CTX, n, act, f, u, o));
  double *d = get(t, "out", o, n), *ref = hdbl(t, n), *mag = hdbl(t, n);
  NN(d && ref && mag);
  for (size_t i = 0; i < n; i++)
    ref[i] = r_dact_f(act, hf[i]) * hu[i], mag[i] = r_dact_mag(act, hf[i]) * fabs((double)hu[i]);
  chk_m(t, OP_ACT_DMUL, "out", d, ref, mag, n, B_ELEM, NULL);
}

static void case_act_d2(T *t, size_t n, il_act act) {
  if (!begin(t, OP_ACT_D2, "len=%zu act=%s", n, act_name(act))) return;
  il_real *hf = hreal(t, n), *hw, *hq;
  NN(hf);
  act_inputs(t, act, hf, n);
  il_real *f = in_host(t, "f", hf, n), *w = in_rand(t, "w", n, -2, 2, &hw), *q = io_rand(t, "q", n, -2, 2, &hq);
  il_real *sw = out_nan(t, "sw", n);
  NN(f && w && q && sw);
  CALL(OP_ACT_D2, OPS->act_d2(CTX, n, act, f, w, q, sw));
  double *dq = get(t, "q", q, n), *dsw = get(t, "sw", sw, n), *rq = hdbl(t, n), *rsw = hdbl(t, n);
  double *msw = hdbl(t, n), *mq = hdbl(t, n);
  NN(dq && dsw && rq && rsw && msw && mq);
  for (size_t i = 0; i < n; i++) {
    rsw[i] = r_dact_f(act, hf[i]) * hw[i];
    msw[i] = r_dact_mag(act, hf[i]) * fabs((double)hw[i]);
    rq[i] = (double)hw[i] * hq[i] * r_d2_f(act, hf[i]);
    mq[i] = fabs((double)hw[i] * hq[i]) * 2 * r_dact_mag(act, hf[i]) * fabs((double)hf[i]);
  }
  chk_m(t, OP_ACT_D2, "sw", dsw, rsw, msw, n, B_ELEM, NULL);
  chk_m(t, OP_ACT_D2, "q", dq, rq, mq, n, B_ELEM, NULL);
}

static void case_sech2(T *t, size_t n) {
  if (!begin(t, OP_SECH2, "len=%zu", n)) return;
  il_real *ha;
  il_real *a = in_rand(t, "a", n, -4, 4, &ha), *s = out_nan(t, "s", n);
  NN(a && s);
  CALL(OP_SECH2, OPS->sech2_seed(CTX, n, a, s));
  double *d = get(t, "s", s, n), *ref = hdbl(t, n);
  NN(d && ref);
  for (size_t i = 0; i < n; i++) {
    const double c = cosh((double)ha[i]);
    ref[i] = 1 / (c * c);
  }
  chk(t, OP_SECH2, "s", d, ref, n, B_ELEM, NULL);
}

static void case_sech2_d2(T *t, size_t n) {
  if (!begin(t, OP_SECH2_D2, "len=%zu", n)) return;
  il_real *ha, *hw, *hq;
  il_real *a = in_rand(t, "a", n, -4, 4, &ha), *w = in_rand(t, "w", n, -2, 2, &hw), *q = io_rand(t, "q", n, -2, 2, &hq);
  il_real *sw = out_nan(t, "sw", n);
  NN(a && w && q && sw);
  CALL(OP_SECH2_D2, OPS->sech2_seed_d2(CTX, n, a, w, q, sw));
  double *dq = get(t, "q", q, n), *dsw = get(t, "sw", sw, n), *rq = hdbl(t, n), *rsw = hdbl(t, n);
  NN(dq && dsw && rq && rsw);
  for (size_t i = 0; i < n; i++) {
    const double x = ha[i], c = cosh(x);
    rsw[i] = hw[i] / (c * c);
    rq[i] = -2 * (double)hw[i] * hq[i] * sinh(x) / (c * c * c);
  }
  chk(t, OP_SECH2_D2, "sw", dsw, rsw, n, B_ELEM, NULL);
  chk(t, OP_SECH2_D2, "q", dq, rq, n, B_ELEM, NULL);
}

/* ======================= per row ======================= */
static const int SB[] = {1, 3, 17, 100};
static const int SN[] = {1, 2, 7, 33, 100};
#define NSB (int)(sizeof SB / sizeof *SB)
#define NSN (int)(sizeof SN / sizeof *SN)

/* which: 0 beta = 0 with y NULL, 1 beta = 1, 2 beta random */
static void case_row_lincomb(T *t, int B, int n, int which) {
  if (!begin(t, OP_ROW_LINCOMB, "B=%d n=%d beta=%s", B, n, which == 0 ? "0 y=NULL" : which == 1 ? "1" : "random"))
    return;
  const size_t len = (size_t)B * n;
  const il_real s = rscalar(t), beta = which == 0 ? 0 : which == 1 ? 1 : rscalar(t);
  il_real *ha, *hx, *hy = NULL, *y = NULL;
  il_real *a = in_rand(t, "a", (size_t)B, -2, 2, &ha), *x = in_rand(t, "x", len, -1, 1, &hx), *o = out_nan(t, "out", len);
  NN(a && x && o);
  if (which) NN(y = in_rand(t, "y", len, -1, 1, &hy));
  CALL(OP_ROW_LINCOMB, OPS->row_lincomb(CTX, B, n, s, a, x, beta, y, o));
  double *d = get(t, "out", o, len), *ref = hdbl(t, len), *mag = hdbl(t, len);
  NN(d && ref && mag);
  for (int b = 0; b < B; b++)
    for (int j = 0; j < n; j++) {
      const size_t i = (size_t)b * n + j;
      const double u = (double)s * ha[b] * hx[i], v = hy ? (double)beta * hy[i] : 0;
      ref[i] = u + v, mag[i] = fabs(u) + fabs(v);
    }
  chk_m(t, OP_ROW_LINCOMB, "out", d, ref, mag, len, B_ELEM, NULL);
}

/* a mask with zeros and various non-zero bytes */
static unsigned char *rmask(T *t, int B) {
  static const unsigned char vals[] = {1, 2, 255, 7};
  unsigned char *m = hnew(t, (size_t)B);
  if (!m) return NULL;
  for (int b = 0; b < B; b++) m[b] = il_rng_uniform(&t->rng) < 0.5 ? 0 : vals[il_rng_below(&t->rng, 4)];
  return m;
}

static void case_row_select(T *t, int B, int n, int want) {
  if (!begin(t, OP_ROW_SELECT, "B=%d n=%d want=%d", B, n, want)) return;
  const size_t len = (size_t)B * n;
  unsigned char *hm = rmask(t, B);
  NN(hm);
  il_real *hs, *hd;
  unsigned char *m = sput(t, "mask", hm, (size_t)B, 1);
  il_real *src = in_rand(t, "src", len, -1, 1, &hs), *dst = io_rand(t, "dst", len, -1, 1, &hd);
  NN(m && src && dst);
  CALL(OP_ROW_SELECT, OPS->row_select(CTX, B, n, m, want, src, dst));
  double *d = get(t, "dst", dst, len), *ref = hdbl(t, len);
  NN(d && ref);
  for (int b = 0; b < B; b++)
    for (int j = 0; j < n; j++) {
      const size_t i = (size_t)b * n + j;
      ref[i] = ((hm[b] != 0) == (want != 0)) ? hs[i] : hd[i];
    }
  chk_exact(t, OP_ROW_SELECT, "dst", d, ref, len);
}

static void case_row_fill(T *t, int B, int n, int want, int zero) {
  if (!begin(t, OP_ROW_FILL, "B=%d n=%d want=%d v=%s", B, n, want, zero ? "0" : "random")) return;
  const size_t len = (size_t)B * n;
  unsigned char *hm = rmask(t, B);
  NN(hm);
  const il_real v = zero ? 0 : rscalar(t);
  il_real *hd;
  unsigned char *m = sput(t, "mask", hm, (size_t)B, 1);
  il_real *dst = io_rand(t, "dst", len, -1, 1, &hd);
  NN(m && dst);
  CALL(OP_ROW_FILL, OPS->row_fill(CTX, B, n, m, want, v, dst));
  double *d = get(t, "dst", dst, len), *ref = hdbl(t, len);
  NN(d && ref);
  for (int b = 0; b < B; b++)
    for (int j = 0; j < n; j++) ref[(size_t)b * n + j] = ((hm[b] != 0) == (want != 0)) ? v : hd[(size_t)b * n + j];
  chk_exact(t, OP_ROW_FILL, "dst", d, ref, len);
}

/* X: k separate (B, n) input tensors; host[i] their values */
static int slots(T *t, int k, size_t len, il_real **X, il_real **host) {
  static const char *names[] = {"X0", "X1", "X2", "X3", "X4", "X5", "X6", "X7", "X8", "X9", "X10"};
  for (int i = 0; i < k; i++)
    if (!(X[i] = in_rand(t, names[i], len, -1, 1, &host[i]))) return 0;
  return 1;
}

/* which: 0 beta = 0 (out poisoned: its old contents are ignored), 1 beta = 1, 2 beta random */
static void case_row_combine(T *t, int B, int n, int k, int which) {
  if (!begin(t, OP_ROW_COMBINE, "B=%d n=%d k=%d beta=%s", B, n, k, which == 0 ? "0" : which == 1 ? "1" : "random"))
    return;
  const size_t len = (size_t)B * n;
  const il_real beta = which == 0 ? 0 : which == 1 ? 1 : rscalar(t);
  il_real *X[11] = {0}, *hX[11] = {0}, *hc, *ho = NULL, *o;
  NN(slots(t, k, len, X, hX));
  il_real *coef = in_rand(t, "coef", (size_t)B * (k ? k : 1), -1, 1, &hc);
  o = which ? io_rand(t, "out", len, -1, 1, &ho) : out_nan(t, "out", len);
  NN(coef && o);
  CALL(OP_ROW_COMBINE, OPS->row_combine(CTX, B, n, k, (const il_real *const *)X, coef, beta, o));
  double *d = get(t, "out", o, len), *ref = hdbl(t, len), *mag = hdbl(t, len);
  NN(d && ref && mag);
  for (int b = 0; b < B; b++)
    for (int j = 0; j < n; j++) {
      const size_t i = (size_t)b * n + j;
      double acc = ho ? (double)beta * ho[i] : 0, m = fabs(acc);
      for (int q = 0; q < k; q++) {
        const double u = (double)hc[(size_t)b * k + q] * hX[q][i];
        acc += u, m += fabs(u);
      }
      ref[i] = acc, mag[i] = m;
    }
  chk_m(t, OP_ROW_COMBINE, "out", d, ref, mag, len, B_ELEM, NULL);
}

/* H a and (both) H^T c for H = I + sum_i P_i Q_i^T; the reference keeps its coefficients in double */
static void case_row_lowrank(T *t, int B, int n, int k, int both) {
  if (!begin(t, OP_ROW_LOWRANK, "B=%d n=%d k=%d%s", B, n, k, both ? " H a and H^T c" : " H a")) return;
  static const char *pn[] = {"P0", "P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8", "P9", "P10"};
  static const char *qn[] = {"Q0", "Q1", "Q2", "Q3", "Q4", "Q5", "Q6", "Q7", "Q8", "Q9", "Q10"};
  const size_t len = (size_t)B * n;
  il_real *P[11] = {0}, *Q[11] = {0}, *hP[11] = {0}, *hQ[11] = {0}, *ha, *hc = NULL, *c = NULL, *oc = NULL;
  for (int i = 0; i < k; i++)
    NN((P[i] = in_rand(t, pn[i], len, -1, 1, &hP[i])) && (Q[i] = in_rand(t, qn[i], len, -1, 1, &hQ[i])));
  il_real *a = in_rand(t, "a", len, -1, 1, &ha), *oa = out_nan(t, "oa", len);
  NN(a && oa);
  if (both) NN((c = in_rand(t, "c", len, -1, 1, &hc)) && (oc = out_nan(t, "oc", len)));
  CALL(OP_ROW_LOWRANK,
       OPS->row_lowrank(CTX, B, n, k, (const il_real *const *)P, (const il_real *const *)Q, a, oa, c, oc));
  for (int w = 0; w < 1 + both; w++) { /* w = 0: H a; w = 1: H^T c, the roles of P and Q swapped */
    il_real *const *hX = w ? hP : hQ, *const *hY = w ? hQ : hP; /* dots with hX, terms of hY */
    const il_real *hv = w ? hc : ha;
    double *d = get(t, w ? "oc" : "oa", w ? oc : oa, len), *ref = hdbl(t, len), *mag = hdbl(t, len);
    NN(d && ref && mag);
    for (int b = 0; b < B; b++) {
      double cf[11];
      for (int i = 0; i < k; i++) {
        double acc = 0;
        for (int j = 0; j < n; j++) acc += (double)hX[i][(size_t)b * n + j] * hv[(size_t)b * n + j];
        cf[i] = acc;
      }
      for (int j = 0; j < n; j++) {
        const size_t e = (size_t)b * n + j;
        double acc = hv[e], m = fabs((double)hv[e]);
        for (int i = 0; i < k; i++) acc += cf[i] * hY[i][e], m += fabs(cf[i] * hY[i][e]);
        ref[e] = acc, mag[e] = m;
      }
    }
    chk_m(t, OP_ROW_LOWRANK, w ? "oc" : "oa", d, ref, mag, len, B_ELEM, NULL);
  }
}

static void case_col_sum_add(T *t, int B, int n) {
  if (!begin(t, OP_COL_SUM_ADD, "B=%d n=%d", B, n)) return;
  il_real *ha, *ho;
  il_real *a = in_rand(t, "a", (size_t)B * n, -1, 1, &ha), *o = io_rand(t, "out", (size_t)n, -1, 1, &ho);
  NN(a && o);
  CALL(OP_COL_SUM_ADD, OPS->col_sum_add(CTX, B, n, a, o));
  double *d = get(t, "out", o, (size_t)n), *ref = hdbl(t, (size_t)n), *mag = hdbl(t, (size_t)n);
  NN(d && ref && mag);
  for (int j = 0; j < n; j++) {
    double acc = ho[j], m = fabs((double)ho[j]);
    for (int b = 0; b < B; b++) acc += ha[(size_t)b * n + j], m += fabs((double)ha[(size_t)b * n + j]);
    ref[j] = acc, mag[j] = m;
  }
  chk_m(t, OP_COL_SUM_ADD, "out", d, ref, mag, (size_t)n, B_SUM, NULL);
}

/* mode 0: a gather of B rows out of S (repeats allowed), 1: a scatter of B rows into distinct
 * rows of D = B + 3, 2: both */
static void case_row_index_copy(T *t, int B, int n, int mode) {
  if (!begin(t, OP_ROW_INDEX_COPY, "B=%d n=%d %s", B, n, mode == 0 ? "gather" : mode == 1 ? "scatter" : "both"))
    return;
  const int S = B + 2, D = mode == 0 ? B : B + 3;
  int *si = mode != 1 ? hnew(t, (size_t)B * sizeof *si) : NULL, *di = mode != 0 ? hnew(t, (size_t)D * sizeof *di) : NULL;
  if (mode != 1) NN(si);
  if (mode != 0) NN(di);
  if (si)
    for (int b = 0; b < B; b++) si[b] = (int)il_rng_below(&t->rng, (uint64_t)S);
  if (di) { /* a random permutation of the D rows; the first B are written */
    for (int r = 0; r < D; r++) di[r] = r;
    for (int r = D - 1; r > 0; r--) {
      const int j = (int)il_rng_below(&t->rng, (uint64_t)r + 1), x = di[r];
      di[r] = di[j], di[j] = x;
    }
  }
  il_real *hs, *hd;
  il_real *src = in_rand(t, "src", (size_t)S * n, -1, 1, &hs), *dst = io_rand(t, "dst", (size_t)D * n, -1, 1, &hd);
  NN(src && dst);
  CALL(OP_ROW_INDEX_COPY, OPS->row_index_copy(CTX, B, n, si, src, di, dst));
  double *d = get(t, "dst", dst, (size_t)D * n), *ref = hdbl(t, (size_t)D * n);
  NN(d && ref);
  for (size_t i = 0; i < (size_t)D * n; i++) ref[i] = hd[i];
  for (int b = 0; b < B; b++)
    for (int j = 0; j < n; j++) ref[(size_t)(di ? di[b] : b) * n + j] = hs[(size_t)(si ? si[b] : b) * n + j];
  chk_exact(t, OP_ROW_INDEX_COPY, "dst", d, ref, (size_t)D * n);
}

/* ======================= reductions to the host ======================= */
static void case_sqdist(T *t, size_t n, int with_b) {
  if (!begin(t, OP_SQDIST, "len=%zu b=%s", n, with_b ? "given" : "NULL")) return;
  il_real *ha, *hb = NULL, *b = NULL;
  il_real *a = in_rand(t, "a", n, -1, 1, &ha);
  NN(a);
  if (with_b) NN(b = in_rand(t, "b", n, -1, 1, &hb));
  double out = NAN, ref = 0;
  CALL(OP_SQDIST, OPS->sqdist(CTX, n, a, b, &out));
  for (size_t i = 0; i < n; i++) {
    const double d = (double)ha[i] - (hb ? (double)hb[i] : 0);
    ref += d * d;
  }
  chk(t, OP_SQDIST, "out", &out, &ref, 1, B_RED, NULL);
}

static void case_row_sqdist(T *t, int B, int n) {
  if (!begin(t, OP_ROW_SQDIST, "B=%d n=%d", B, n)) return;
  il_real *ha, *hb;
  il_real *a = in_rand(t, "a", (size_t)B * n, -1, 1, &ha), *b = in_rand(t, "b", (size_t)B * n, -1, 1, &hb);
  double *out = dnan(t, (size_t)B), *ref = hdbl(t, (size_t)B);
  NN(a && b && out && ref);
  CALL(OP_ROW_SQDIST, OPS->row_sqdist(CTX, B, n, a, b, out));
  for (int r = 0; r < B; r++) {
    double acc = 0;
    for (int j = 0; j < n; j++) {
      const double d = (double)ha[(size_t)r * n + j] - hb[(size_t)r * n + j];
      acc += d * d;
    }
    ref[r] = acc;
  }
  chk(t, OP_ROW_SQDIST, "out", out, ref, (size_t)B, B_RED, NULL);
}

static void case_row_dot(T *t, int B, int n, int k) {
  if (!begin(t, OP_ROW_DOT, "B=%d n=%d k=%d", B, n, k)) return;
  const size_t len = (size_t)B * n;
  il_real *X[11] = {0}, *hX[11] = {0}, *hy;
  NN(slots(t, k, len, X, hX));
  il_real *y = in_rand(t, "y", len, -1, 1, &hy);
  double *out = dnan(t, (size_t)B * k), *ref = hdbl(t, (size_t)B * k);
  NN(y && out && ref);
  CALL(OP_ROW_DOT, OPS->row_dot(CTX, B, n, k, (const il_real *const *)X, y, out));
  double *mag = hdbl(t, (size_t)B * k);
  NN(mag);
  for (int b = 0; b < B; b++)
    for (int i = 0; i < k; i++) {
      double acc = 0, m = 0;
      for (int j = 0; j < n; j++) {
        const double u = (double)hX[i][(size_t)b * n + j] * hy[(size_t)b * n + j];
        acc += u, m += fabs(u);
      }
      ref[(size_t)b * k + i] = acc, mag[(size_t)b * k + i] = m;
    }
  chk_m(t, OP_ROW_DOT, "out", out, ref, mag, (size_t)B * k, B_RED, NULL);
}

/* d = a - c, then the dots of X_i with the d the backend stored; self: the last of the k
 * tensors is d itself (Anderson's ||G||^2 on the Gram diagonal) */
static void case_row_sub_dot(T *t, int B, int n, int k, int self) {
  if (!begin(t, OP_ROW_SUB_DOT, "B=%d n=%d k=%d%s", B, n, k, self ? " X holds d" : "")) return;
  const size_t len = (size_t)B * n;
  il_real *X[11] = {0}, *hX[11] = {0}, *ha, *hc;
  NN(slots(t, k - self, len, X, hX));
  il_real *a = in_rand(t, "a", len, -1, 1, &ha), *c = in_rand(t, "c", len, -1, 1, &hc), *d = out_nan(t, "d", len);
  double *out = dnan(t, (size_t)B * k), *ref = hdbl(t, (size_t)B * k), *mag = hdbl(t, (size_t)B * k);
  double *dref = hdbl(t, len), *dmag = hdbl(t, len);
  NN(a && c && d && out && ref && mag && dref && dmag);
  if (self) X[k - 1] = d;
  CALL(OP_ROW_SUB_DOT, OPS->row_sub_dot(CTX, B, n, k, (const il_real *const *)X, a, c, d, out));
  double *hd = get(t, "d", d, len);
  NN(hd);
  for (size_t i = 0; i < len; i++) dref[i] = (double)ha[i] - hc[i], dmag[i] = fabs((double)ha[i]) + fabs((double)hc[i]);
  chk_m(t, OP_ROW_SUB_DOT, "d", hd, dref, dmag, len, B_ELEM, NULL);
  for (int b = 0; b < B; b++)
    for (int i = 0; i < k; i++) {
      const double *xi = self && i == k - 1 ? hd : NULL;
      double acc = 0, m = 0;
      for (int j = 0; j < n; j++) {
        const size_t e = (size_t)b * n + j;
        const double u = (xi ? xi[e] : (double)hX[i][e]) * hd[e];
        acc += u, m += fabs(u);
      }
      ref[(size_t)b * k + i] = acc, mag[(size_t)b * k + i] = m;
    }
  chk_m(t, OP_ROW_SUB_DOT, "out", out, ref, mag, (size_t)B * k, B_RED, NULL);
}

/* V_i,b orthonormal over i < k < n (as GMRES/Anderson keep them) */
static void case_row_mgs(T *t, int B, int n, int k) {
  if (!begin(t, OP_ROW_MGS, "B=%d n=%d k=%d", B, n, k)) return;
  static const char *names[] = {"V0", "V1", "V2", "V3"};
  const size_t len = (size_t)B * n;
  il_real *hV[4] = {0}, *V[4] = {0}, *hw;
  double *v = hdbl(t, (size_t)n);
  NN(v);
  for (int i = 0; i < k; i++) NN(hV[i] = hreal(t, len));
  for (int b = 0; b < B; b++)
    for (int i = 0; i < k; i++) {
      for (int j = 0; j < n; j++) v[j] = il_rng_normal(&t->rng);
      for (int pass = 0; pass < 2; pass++)
        for (int p = 0; p < i; p++) {
          double c = 0;
          for (int j = 0; j < n; j++) c += v[j] * hV[p][(size_t)b * n + j];
          for (int j = 0; j < n; j++) v[j] -= c * hV[p][(size_t)b * n + j];
        }
      double nr = 0;
      for (int j = 0; j < n; j++) nr += v[j] * v[j];
      nr = sqrt(nr);
      for (int j = 0; j < n; j++) hV[i][(size_t)b * n + j] = (il_real)(v[j] / nr);
    }
  for (int i = 0; i < k; i++) NN(V[i] = in_host(t, names[i], hV[i], len));
  il_real *w = io_rand(t, "w", len, -1, 1, &hw);
  double *h = dnan(t, (size_t)B * (k + 1)), *rh = hdbl(t, (size_t)B * (k + 1)), *rw = hdbl(t, len);
  double *mh = hdbl(t, (size_t)B * (k + 1)), *mw = hdbl(t, len);
  NN(w && h && rh && rw && mh && mw);
  CALL(OP_ROW_MGS, OPS->row_mgs(CTX, B, n, k, (const il_real *const *)V, w, h));
  for (int b = 0; b < B; b++) {
    double *wb = rw + (size_t)b * n, *mb = mw + (size_t)b * n, n0 = 0;
    for (int j = 0; j < n; j++) wb[j] = hw[(size_t)b * n + j], mb[j] = fabs(wb[j]), n0 += wb[j] * wb[j];
    for (int i = 0; i < k; i++) {
      const il_real *vi = hV[i] + (size_t)b * n;
      double c = 0, m = 0;
      for (int j = 0; j < n; j++) c += wb[j] * vi[j], m += fabs(mb[j] * vi[j]);
      rh[(size_t)b * (k + 1) + i] = c, mh[(size_t)b * (k + 1) + i] = m;
      for (int j = 0; j < n; j++) wb[j] -= c * vi[j], mb[j] += m * fabs((double)vi[j]);
    }
    double nr = 0;
    for (int j = 0; j < n; j++) nr += wb[j] * wb[j];
    rh[(size_t)b * (k + 1) + k] = sqrt(nr), mh[(size_t)b * (k + 1) + k] = sqrt(n0);
  }
  double *dw = get(t, "w", w, len);
  NN(dw);
  chk_m(t, OP_ROW_MGS, "h", h, rh, mh, (size_t)B * (k + 1), B_SUM, NULL);
  chk_m(t, OP_ROW_MGS, "w", dw, rw, mw, len, B_SUM, NULL);
}

/* plant: 0 none, 1 a NaN (skipped), 2 -inf */
static void case_absmax(T *t, size_t n, int plant) {
  if (!begin(t, OP_ABSMAX, "len=%zu%s", n, plant == 1 ? " NaN planted" : plant == 2 ? " -inf planted" : "")) return;
  il_real *ha = hreal(t, n);
  NN(ha);
  rfill(t, ha, n, -3, 3);
  if (plant) ha[il_rng_below(&t->rng, n)] = plant == 1 ? (il_real)NAN : (il_real)-INFINITY;
  il_real *a = in_host(t, "a", ha, n);
  NN(a);
  double out = NAN, ref = 0;
  CALL(OP_ABSMAX, OPS->absmax(CTX, n, a, &out));
  for (size_t i = 0; i < n; i++)
    if (!isnan(ha[i]) && fabs((double)ha[i]) > ref) ref = fabs((double)ha[i]);
  chk_exact(t, OP_ABSMAX, "out", &out, &ref, 1);
}

/* plant: 0 none, 1 NaN, 2 +inf, 3 -inf at a random place, 4 NaN in the last element */
static void case_all_finite(T *t, size_t n, int plant) {
  static const char *what[] = {"", " NaN planted", " +inf planted", " -inf planted", " NaN last"};
  if (!begin(t, OP_ALL_FINITE, "len=%zu%s", n, what[plant])) return;
  il_real *ha = hreal(t, n);
  NN(ha);
  rfill(t, ha, n, -1e30, 1e30);
  const size_t at = plant == 4 ? n - 1 : (size_t)il_rng_below(&t->rng, n);
  if (plant) ha[at] = plant == 2 ? (il_real)INFINITY : plant == 3 ? (il_real)-INFINITY : (il_real)NAN;
  il_real *a = in_host(t, "a", ha, n);
  NN(a);
  int out = -7, ref = plant ? 0 : 1;
  CALL(OP_ALL_FINITE, OPS->all_finite(CTX, n, a, &out));
  chk_int(t, OP_ALL_FINITE, "out", &out, &ref, 1);
}

static void case_compare(T *t, size_t n) {
  if (!begin(t, OP_COMPARE, "len=%zu", n)) return;
  il_real *ha, *hb;
  il_real *a = in_rand(t, "a", n, -1, 1, &ha), *b = in_rand(t, "b", n, -1, 1, &hb);
  NN(a && b);
  double out[4] = {NAN, NAN, NAN, NAN}, ref[4] = {0, 0, 0, 0};
  CALL(OP_COMPARE, OPS->compare(CTX, n, a, b, out));
  for (size_t i = 0; i < n; i++) {
    const double x = ha[i], y = hb[i];
    ref[0] += x * y, ref[1] += x * x, ref[2] += y * y, ref[3] += (x - y) * (x - y);
  }
  /* each component relative to its own scale: a.b to |a| |b|, the others to |a|^2 + |b|^2 */
  const double sc[4] = {sqrt(ref[1] * ref[2]), ref[1] + ref[2], ref[1] + ref[2], ref[1] + ref[2]};
  static const char *names[] = {"a.b", "a.a", "b.b", "(a-b).(a-b)"};
  for (int i = 0; i < 4; i++) {
    const double e = (out[i] - ref[i]) / (sc[i] > 0 ? sc[i] : 1), e2 = isnan(e) ? INFINITY : e * e;
    note_nmse(t, OP_COMPARE, e2, B_RED);
    if (!(e2 <= B_RED))
      fail(t, OP_COMPARE, "out[%d] (%s) = %.17g, expected %.17g (squared error %.3e of its scale > %.3e)", i, names[i],
           out[i], ref[i], e2, B_RED);
  }
}

/* ======================= the head ======================= */
/* nan: NaN planted in the logits of some rows, at column 0 and elsewhere */
static void case_xent_fwd(T *t, int B, int c, int labelled, int nan) {
  if (!begin(t, OP_XENT_FWD, "B=%d c=%d labels=%s%s", B, c, labelled ? "given" : "NULL", nan ? " NaN planted" : ""))
    return;
  const size_t len = (size_t)B * c;
  il_real *hl = hreal(t, len);
  unsigned char *hy = hnew(t, (size_t)B), *y = NULL;
  NN(hl && hy);
  rfill(t, hl, len, -5, 5);
  for (int b = 0; b < B; b++) hy[b] = (unsigned char)il_rng_below(&t->rng, (uint64_t)c);
  if (nan) { /* row 0: NaN in column 0; row 1: NaN in the last column, labelled with the argmax of the others */
    hl[0] = (il_real)NAN;
    if (B > 1 && c > 1) {
      il_real *r1 = hl + c;
      r1[c - 1] = (il_real)NAN;
      int arg = 0;
      for (int j = 1; j < c - 1; j++)
        if (r1[j] > r1[arg]) arg = j;
      hy[1] = (unsigned char)arg;
    }
  }
  il_real *l = in_host(t, "logits", hl, len), *p = out_nan(t, "p", len);
  NN(l && p);
  if (labelled) NN(y = sput(t, "labels", hy, (size_t)B, 1));
  double loss = NAN;
  int errors = -7;
  CALL(OP_XENT_FWD, OPS->xent_fwd(CTX, B, c, l, y, p, &loss, &errors));
  double *rp = hdbl(t, len), rloss = 0;
  NN(rp);
  int rerr = 0;
  for (int b = 0; b < B; b++) {
    const il_real *lr = hl + (size_t)b * c;
    int arg = 0, finite = 1;
    double mx = -INFINITY;
    for (int j = 0; j < c; j++) {
      if (!isfinite(lr[j])) finite = 0;
      else if (lr[j] > mx) mx = lr[j], arg = j;
    }
    double sum = 0;
    for (int j = 0; j < c; j++) sum += exp((double)lr[j] - mx);
    for (int j = 0; j < c; j++) rp[(size_t)b * c + j] = finite ? exp((double)lr[j] - mx) / sum : NAN;
    rloss += finite ? log(sum) + mx - (double)lr[hy[b]] : NAN;
    /* the op's rule (the seed's argmax): the first maximum from l[0] on, NaN entries never win;
     * a row is an error when that is not its label or the maximum is not finite (l[0] NaN) */
    int a0 = 0;
    double m0 = lr[0];
    for (int j = 1; j < c; j++)
      if (lr[j] > m0) m0 = lr[j], a0 = j;
    rerr += a0 != hy[b] || !isfinite(m0);
    (void)arg;
  }
  double *dp = get(t, "p", p, len);
  NN(dp);
  chk(t, OP_XENT_FWD, "p", dp, rp, len, B_ELEM, NULL);
  if (labelled) {
    chk(t, OP_XENT_FWD, "loss_sum", &loss, &rloss, 1, B_SUM, NULL);
    chk_int(t, OP_XENT_FWD, "errors", &errors, &rerr, 1);
  }
}

static void case_xent_bwd(T *t, int B, int c) {
  if (!begin(t, OP_XENT_BWD, "B=%d c=%d", B, c)) return;
  const size_t len = (size_t)B * c;
  unsigned char *hy = hnew(t, (size_t)B);
  NN(hy);
  for (int b = 0; b < B; b++) hy[b] = (unsigned char)il_rng_below(&t->rng, (uint64_t)c);
  il_real *hp;
  const il_real scale = (il_real)unif(t, 0.01, 1);
  il_real *p = io_rand(t, "p", len, 0, 1, &hp);
  unsigned char *y = sput(t, "labels", hy, (size_t)B, 1);
  NN(p && y);
  CALL(OP_XENT_BWD, OPS->xent_bwd(CTX, B, c, y, scale, p));
  double *d = get(t, "p", p, len), *ref = hdbl(t, len), *mag = hdbl(t, len);
  NN(d && ref && mag);
  for (int b = 0; b < B; b++)
    for (int j = 0; j < c; j++) {
      const double pj = hp[(size_t)b * c + j], oh = j == hy[b] ? 1 : 0;
      ref[(size_t)b * c + j] = (pj - oh) * scale, mag[(size_t)b * c + j] = (pj + oh) * scale;
    }
  chk_m(t, OP_XENT_BWD, "p", d, ref, mag, len, B_ELEM, NULL);
}

/* ======================= batched LU ======================= */
/* partial pivoting in double; 0, or k > 0 at an exactly zero pivot */
static int ref_getrf(int n, double *A, int *piv) {
  for (int k = 0; k < n; k++) {
    int p = k;
    for (int i = k + 1; i < n; i++)
      if (fabs(A[(size_t)i * n + k]) > fabs(A[(size_t)p * n + k])) p = i;
    piv[k] = p;
    if (A[(size_t)p * n + k] == 0) return k + 1;
    if (p != k)
      for (int j = 0; j < n; j++) {
        const double tmp = A[(size_t)k * n + j];
        A[(size_t)k * n + j] = A[(size_t)p * n + j];
        A[(size_t)p * n + j] = tmp;
      }
    for (int i = k + 1; i < n; i++) {
      const double l = A[(size_t)i * n + k] / A[(size_t)k * n + k];
      A[(size_t)i * n + k] = l;
      for (int j = k + 1; j < n; j++) A[(size_t)i * n + j] -= l * A[(size_t)k * n + j];
    }
  }
  return 0;
}
static void ref_getrs(int n, const double *LU, const int *piv, double *x) {
  for (int k = 0; k < n; k++)
    if (piv[k] != k) {
      const double tmp = x[k];
      x[k] = x[piv[k]];
      x[piv[k]] = tmp;
    }
  for (int i = 0; i < n; i++)
    for (int j = 0; j < i; j++) x[i] -= LU[(size_t)i * n + j] * x[j];
  for (int i = n - 1; i >= 0; i--) {
    for (int j = i + 1; j < n; j++) x[i] -= LU[(size_t)i * n + j] * x[j];
    x[i] /= LU[(size_t)i * n + i];
  }
}
static double ref_norm_inf(int n, const double *A) {
  double mx = 0;
  for (int i = 0; i < n; i++) {
    double r = 0;
    for (int j = 0; j < n; j++) r += fabs(A[(size_t)i * n + j]);
    if (isnan(r) || isnan(mx)) mx = NAN;
    else if (r > mx) mx = r;
  }
  return mx;
}

/* s (B, n) in [0, 1) and W (n, n) scaled to ||W||_inf = 0.85, so ||diag(s) W||_inf <= 0.85 */
static int lu_inputs(T *t, int B, int n, il_real **hs, il_real **hW) {
  il_real *s = hreal(t, (size_t)B * n), *W = hreal(t, (size_t)n * n);
  *hs = s;
  *hW = W;
  if (!s || !W) return 0;
  rfill(t, s, (size_t)B * n, 0, 1);
  double *Wd = hdbl(t, (size_t)n * n);
  if (!Wd) return 0;
  for (size_t i = 0; i < (size_t)n * n; i++) Wd[i] = unif(t, -1, 1);
  const double nw = ref_norm_inf(n, Wd);
  for (size_t i = 0; i < (size_t)n * n; i++) W[i] = (il_real)(Wd[i] * 0.85 / nw);
  *hs = s;
  *hW = W;
  return 1;
}
/* J_b = I - diag(s_b) W in double from the il_real inputs */
static void ref_jac(int n, const il_real *s, const il_real *W, double *J) {
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) J[(size_t)i * n + j] = (i == j) - (double)s[i] * W[(size_t)i * n + j];
}

/* jac, norm, factor, solve (both), rcond on well-conditioned J */
static void case_lu(T *t, int B, int n) {
  if (!begin(t, OP_LU_SOLVE, "B=%d n=%d (jac, norm_inf, factor, solve trans 0 and 1, rcond)", B, n)) return;
  const size_t nn = (size_t)n * n, len = (size_t)B * n;
  il_real *hs, *hW, *hr0, *hr1;
  NN(lu_inputs(t, B, n, &hs, &hW));
  il_real *s = in_host(t, "s", hs, len), *W = in_host(t, "W", hW, nn);
  il_real *R0 = io_rand(t, "R0", len, -1, 1, &hr0), *R1 = io_rand(t, "R1", len, -1, 1, &hr1);
  NN(s && W && R0 && R1);
  il_lu lu;
  t->touched[OP_LU_LAYOUT] = 1;
  il_status st = il_lu_alloc(t->be, &t->sp, B, n, &lu);
  if (st != IL_OK) {
    fail_status(t, OP_LU_LAYOUT, st, "il_lu_alloc (lu_layout)");
    return;
  }
  CALL(OP_JAC, OPS->jac_eye_minus_diag_w(CTX, B, n, s, W, &lu));
  double *norm = dnan(t, (size_t)B), *rcond = dnan(t, (size_t)B);
  int *info = hnew(t, (size_t)B * sizeof(int));
  NN(norm && rcond && info);
  for (int b = 0; b < B; b++) info[b] = INT_MIN + 7;
  CALL(OP_LU_NORM, OPS->lu_norm_inf(CTX, &lu, norm));
  CALL(OP_LU_FACTOR, OPS->lu_factor(CTX, &lu, info));
  CALL(OP_LU_SOLVE, OPS->lu_solve(CTX, 0, &lu, R0));
  CALL(OP_LU_SOLVE, OPS->lu_solve(CTX, 1, &lu, R1));
  /* the reference */
  double *J = hdbl(t, nn), *Jt = hdbl(t, nn), *Jinv = hdbl(t, nn), *e = hdbl(t, (size_t)n);
  double *rnorm = hdbl(t, (size_t)B), *rrc = hdbl(t, (size_t)B), *y0 = hdbl(t, len), *y1 = hdbl(t, len);
  int *piv = hnew(t, (size_t)n * sizeof(int)), *rinfo = hnew(t, (size_t)B * sizeof(int));
  double *d0 = get(t, "R0", R0, len), *d1 = get(t, "R1", R1, len);
  NN(J && Jt && Jinv && e && rnorm && rrc && y0 && y1 && piv && rinfo && d0 && d1);
  double worst_kappa = 1;
  for (int b = 0; b < B; b++) {
    ref_jac(n, hs + (size_t)b * n, hW, J);
    rnorm[b] = ref_norm_inf(n, J);
    for (int i = 0; i < n; i++)
      for (int j = 0; j < n; j++) Jt[(size_t)j * n + i] = J[(size_t)i * n + j];
    rinfo[b] = ref_getrf(n, J, piv);
    for (int j = 0; j < n; j++) y0[(size_t)b * n + j] = hr0[(size_t)b * n + j];
    ref_getrs(n, J, piv, y0 + (size_t)b * n);
    for (int c = 0; c < n; c++) { /* column c of J^-1 */
      for (int i = 0; i < n; i++) e[i] = i == c;
      ref_getrs(n, J, piv, e);
      for (int i = 0; i < n; i++) Jinv[(size_t)i * n + c] = e[i];
    }
    const double kappa = rnorm[b] * ref_norm_inf(n, Jinv);
    rrc[b] = 1 / kappa;
    if (kappa > worst_kappa) worst_kappa = kappa;
    (void)ref_getrf(n, Jt, piv);
    for (int j = 0; j < n; j++) y1[(size_t)b * n + j] = hr1[(size_t)b * n + j];
    ref_getrs(n, Jt, piv, y1 + (size_t)b * n);
  }
  const double bound = (20.0 * n * worst_kappa * EPS) * (20.0 * n * worst_kappa * EPS);
  chk(t, OP_LU_NORM, "norm", norm, rnorm, (size_t)B, B_ELEM, NULL);
  chk_int(t, OP_LU_FACTOR, "info", info, rinfo, (size_t)B);
  chk(t, OP_LU_FACTOR, "J^-1 R (trans 0)", d0, y0, len, bound, NULL); /* the factors are only observable so */
  chk(t, OP_LU_SOLVE, "J^-1 R (trans 0)", d0, y0, len, bound, NULL);
  chk(t, OP_LU_SOLVE, "J^-T R (trans 1)", d1, y1, len, bound, NULL);
  chk(t, OP_JAC, "J^-1 R (trans 0)", d0, y0, len, bound, NULL);
  /* rcond from the reference norms */
  CALL(OP_LU_RCOND, OPS->lu_rcond(CTX, &lu, rnorm, rcond));
  for (int b = 0; b < B; b++) {
    /* [0, 1] up to rounding: gecon gives 1 + 1 ulp for some 1 x 1 matrices */
    if (!(rcond[b] >= 0 && rcond[b] <= 1 + 4 * EPS) || !(rcond[b] >= rrc[b] / 10 && rcond[b] <= rrc[b] * 10)) {
      fail(t, OP_LU_RCOND, "rcond[%d] = %.17g, reference 1 / (||J|| ||J^-1||) = %.17g (allowed: a factor of 10, in [0, 1])",
           b, rcond[b], rrc[b]);
      break;
    }
  }
  t->touched[OP_LU_RCOND] = 1;
}

/* info > 0 exactly for the singular matrices: W's row 0 is e_0 and s_b[0] = 1 (J's row 0 is zero) */
static void case_lu_singular(T *t, int B, int n) {
  if (!begin(t, OP_LU_FACTOR, "B=%d n=%d singular rows b %% 2 == 0", B, n)) return;
  const size_t nn = (size_t)n * n, len = (size_t)B * n;
  il_real *hs, *hW;
  NN(lu_inputs(t, B, n, &hs, &hW));
  for (int j = 0; j < n; j++) hW[j] = j == 0 ? 1 : 0;
  for (int b = 0; b < B; b++) hs[(size_t)b * n] = b % 2 == 0 ? 1 : (il_real)0.5;
  il_real *s = in_host(t, "s", hs, len), *W = in_host(t, "W", hW, nn);
  int *info = hnew(t, (size_t)B * sizeof(int));
  NN(s && W && info);
  for (int b = 0; b < B; b++) info[b] = INT_MIN + 7;
  il_lu lu;
  t->touched[OP_LU_LAYOUT] = 1;
  il_status st = il_lu_alloc(t->be, &t->sp, B, n, &lu);
  if (st != IL_OK) {
    fail_status(t, OP_LU_LAYOUT, st, "il_lu_alloc (lu_layout)");
    return;
  }
  CALL(OP_JAC, OPS->jac_eye_minus_diag_w(CTX, B, n, s, W, &lu));
  CALL(OP_LU_FACTOR, OPS->lu_factor(CTX, &lu, info));
  for (int b = 0; b < B; b++) {
    const int sing = b % 2 == 0;
    if (sing ? !(info[b] >= 1 && info[b] <= n) : info[b] != 0) {
      fail(t, OP_LU_FACTOR, "info[%d] = %d, expected %s", b, info[b], sing ? "k in [1, n] (singular)" : "0");
      break;
    }
  }
}

/* lu_rcond on ill-conditioned J: W's row 0 is e_0 and s_b[0] = 1 - 10^-(1 + b % 4), so kappa grows to ~1e4 */
static void case_lu_rcond_ill(T *t, int B, int n) {
  if (!begin(t, OP_LU_RCOND, "B=%d n=%d ill-conditioned (kappa up to 1e4)", B, n)) return;
  const size_t nn = (size_t)n * n, len = (size_t)B * n;
  il_real *hs, *hW;
  NN(lu_inputs(t, B, n, &hs, &hW));
  for (int j = 0; j < n; j++) hW[j] = j == 0 ? 1 : 0;
  for (int b = 0; b < B; b++) hs[(size_t)b * n] = (il_real)(1 - pow(10, -(1 + b % 4)));
  il_real *s = in_host(t, "s", hs, len), *W = in_host(t, "W", hW, nn);
  int *info = hnew(t, (size_t)B * sizeof(int)), *piv = hnew(t, (size_t)n * sizeof(int));
  double *rnorm = hdbl(t, (size_t)B), *rcond = dnan(t, (size_t)B), *J = hdbl(t, nn), *Jinv = hdbl(t, nn);
  double *e = hdbl(t, (size_t)n);
  NN(s && W && info && piv && rnorm && rcond && J && Jinv && e);
  il_lu lu;
  t->touched[OP_LU_LAYOUT] = 1;
  il_status st = il_lu_alloc(t->be, &t->sp, B, n, &lu);
  if (st != IL_OK) {
    fail_status(t, OP_LU_LAYOUT, st, "il_lu_alloc (lu_layout)");
    return;
  }
  CALL(OP_JAC, OPS->jac_eye_minus_diag_w(CTX, B, n, s, W, &lu));
  CALL(OP_LU_FACTOR, OPS->lu_factor(CTX, &lu, info));
  for (int b = 0; b < B; b++) ref_jac(n, hs + (size_t)b * n, hW, J), rnorm[b] = ref_norm_inf(n, J);
  CALL(OP_LU_RCOND, OPS->lu_rcond(CTX, &lu, rnorm, rcond));
  for (int b = 0; b < B; b++) {
    ref_jac(n, hs + (size_t)b * n, hW, J);
    if (ref_getrf(n, J, piv) != 0) continue;
    for (int c = 0; c < n; c++) {
      for (int i = 0; i < n; i++) e[i] = i == c;
      ref_getrs(n, J, piv, e);
      for (int i = 0; i < n; i++) Jinv[(size_t)i * n + c] = e[i];
    }
    const double rrc = 1 / (rnorm[b] * ref_norm_inf(n, Jinv));
    if (!(rcond[b] >= 0 && rcond[b] <= 1 + 4 * EPS) || !(rcond[b] >= rrc / 10 && rcond[b] <= rrc * 10)) {
      fail(t, OP_LU_RCOND, "rcond[%d] = %.17g, reference 1 / (||J|| ||J^-1||) = %.17g (allowed: a factor of 10)", b,
           rcond[b], rrc);
      return;
    }
  }
}

/* lu_norm_inf propagates a NaN of J_b */
static void case_lu_norm_nan(T *t, int B, int n) {
  if (!begin(t, OP_LU_NORM, "B=%d n=%d NaN in J_%d", B, n, B - 1)) return;
  const size_t nn = (size_t)n * n, len = (size_t)B * n;
  il_real *hs, *hW;
  NN(lu_inputs(t, B, n, &hs, &hW));
  hs[len - 1 - il_rng_below(&t->rng, (uint64_t)n)] = (il_real)NAN;
  il_real *s = in_host(t, "s", hs, len), *W = in_host(t, "W", hW, nn);
  double *norm = dnan(t, (size_t)B), *rnorm = hdbl(t, (size_t)B), *J = hdbl(t, nn);
  NN(s && W && norm && rnorm && J);
  il_lu lu;
  t->touched[OP_LU_LAYOUT] = 1;
  il_status st = il_lu_alloc(t->be, &t->sp, B, n, &lu);
  if (st != IL_OK) {
    fail_status(t, OP_LU_LAYOUT, st, "il_lu_alloc (lu_layout)");
    return;
  }
  CALL(OP_JAC, OPS->jac_eye_minus_diag_w(CTX, B, n, s, W, &lu));
  CALL(OP_LU_NORM, OPS->lu_norm_inf(CTX, &lu, norm));
  for (int b = 0; b < B; b++) {
    ref_jac(n, hs + (size_t)b * n, hW, J);
    rnorm[b] = ref_norm_inf(n, J);
  }
  chk(t, OP_LU_NORM, "norm", norm, rnorm, (size_t)B, B_ELEM, NULL);
}

/* Per matrix: NMSE of J_b x_b - r_b (trans: J_b^T) against the magnitude of its terms,
 * (I + |diag(s_b) W|) |x_b| + |r_b|, within (2 n eps)^2 (see the bounds at the top). */
static void lu_check_residual(T *t, int B, int n, const il_real *hs, const il_real *hW, const il_real *r,
                              const double *x, int tr) {
  const double bound = (2.0 * n * EPS) * (2.0 * n * EPS);
  for (int b = 0; b < B; b++) {
    double num = 0, den = 0;
    int finite = 1;
    for (int i = 0; i < n; i++) {
      double acc = -(double)r[(size_t)b * n + i], m = fabs((double)r[(size_t)b * n + i]);
      for (int j = 0; j < n; j++) {
        const size_t ij = tr ? (size_t)j * n + i : (size_t)i * n + j; /* element of J_b */
        const double sw = (double)hs[(size_t)b * n + ij / n] * hW[ij], xj = x[(size_t)b * n + j];
        acc += ((ij / n == ij % n) - sw) * xj;
        m += (fabs(sw) + (i == j)) * fabs(xj);
        finite &= isfinite(xj) != 0;
      }
      num += acc * acc;
      den += m * m;
    }
    const double nmse = finite ? num / den : INFINITY;
    note_nmse(t, OP_LU_SOLVE, nmse, bound);
    note_nmse(t, OP_LU_FACTOR, nmse, bound);
    if (!(nmse <= bound)) {
      fail(t, OP_LU_SOLVE, "trans %d, J_%d: residual NMSE %.3e > bound %.3e", tr, b, nmse, bound);
      return;
    }
  }
}

/* J = I - diag(s) W with pivots that differ per sample: W ~ U(-1, 1), s log-uniform in
 * [1/4, 4], so the largest |J_ik| of a column is rarely on the diagonal and depends on s_b.
 * Checked by the residual (any conditioning); the inputs are checked to pivot in most steps
 * and differently across the first IL_LUC_VL samples (one compact group of the cpu backend). */
static void case_lu_pivot(T *t, int B, int n) {
  if (!begin(t, OP_LU_FACTOR, "B=%d n=%d pivoting per sample (residual of trans 0 and 1)", B, n)) return;
  const size_t nn = (size_t)n * n, len = (size_t)B * n;
  il_real *hs = hreal(t, len), *hW = hreal(t, nn), *hr0, *hr1;
  NN(hs && hW);
  for (size_t i = 0; i < len; i++) hs[i] = (il_real)pow(4, unif(t, -1, 1));
  rfill(t, hW, nn, -1, 1);
  il_real *s = in_host(t, "s", hs, len), *W = in_host(t, "W", hW, nn);
  il_real *R0 = io_rand(t, "R0", len, -1, 1, &hr0), *R1 = io_rand(t, "R1", len, -1, 1, &hr1);
  int *info = hnew(t, (size_t)B * sizeof(int));
  NN(s && W && R0 && R1 && info);
  for (int b = 0; b < B; b++) info[b] = INT_MIN + 7;
  il_lu lu;
  t->touched[OP_LU_LAYOUT] = 1;
  il_status st = il_lu_alloc(t->be, &t->sp, B, n, &lu);
  if (st != IL_OK) {
    fail_status(t, OP_LU_LAYOUT, st, "il_lu_alloc (lu_layout)");
    return;
  }
  CALL(OP_JAC, OPS->jac_eye_minus_diag_w(CTX, B, n, s, W, &lu));
  CALL(OP_LU_FACTOR, OPS->lu_factor(CTX, &lu, info));
  CALL(OP_LU_SOLVE, OPS->lu_solve(CTX, 0, &lu, R0));
  CALL(OP_LU_SOLVE, OPS->lu_solve(CTX, 1, &lu, R1));
  double *J = hdbl(t, nn), *d0 = get(t, "R0", R0, len), *d1 = get(t, "R1", R1, len);
  int *piv = hnew(t, (size_t)n * sizeof(int)), *piv0 = hnew(t, (size_t)n * sizeof(int));
  int *zero = hnew(t, (size_t)B * sizeof(int));
  NN(J && d0 && d1 && piv && piv0 && zero);
  /* the inputs: pivoting in most steps, and per sample */
  const int nlanes = n > 100 ? 4 : IL_LUC_VL, ng = B < nlanes ? B : nlanes; /* large n: the reference's time */
  int swaps = 0, differ = 0;
  for (int b = 0; b < ng; b++) {
    ref_jac(n, hs + (size_t)b * n, hW, J);
    (void)ref_getrf(n, J, b ? piv : piv0);
    int d = 0;
    for (int k = 0; k < n; k++) swaps += (b ? piv : piv0)[k] != k, d |= b && piv[k] != piv0[k];
    differ += d;
  }
  /* interchanges seen (seeds 0-15): >= 28% of the steps at n = 7, >= 78% from n = 33 */
  if (n >= 7 && (swaps * 5 < ng * (n - 1) || (ng > 1 && differ * 2 < ng - 1)))
    fail(t, OP_LU_FACTOR, "test inputs: %d interchanges in %d samples of n = %d, %d of %d samples pivot unlike the first",
         swaps, ng, n, differ, ng - 1);
  for (int b = 0; b < B; b++) zero[b] = 0;
  chk_int(t, OP_LU_FACTOR, "info", info, zero, (size_t)B);
  lu_check_residual(t, B, n, hs, hW, hr0, d0, 0);
  lu_check_residual(t, B, n, hs, hW, hr1, d1, 1);
}

/* Pivots forced per sample: W pairs the indices by a random matching, W_ii = 1, W_ii' = -1
 * (+ noise of size d = sqrt(eps)), so row i of J_b is (1 - s_i) e_i + s_i e_i'. Per sample
 * and pair, s = 1 - d..2d (the partner row must become the pivot: the diagonal is ~d) or
 * s in [0, 0.4] (no interchange). A pivot other than each lane's own max |a| has size ~d
 * and grows the factors by 1/d: a residual ~sqrt(eps), far above (2 n eps)^2 as NMSE. */
static void case_lu_perm(T *t, int B, int n) {
  if (!begin(t, OP_LU_FACTOR, "B=%d n=%d forced pivots per sample (residual of trans 0 and 1)", B, n)) return;
  const size_t nn = (size_t)n * n, len = (size_t)B * n;
  const double d = sqrt(EPS);
  il_real *hs = hreal(t, len), *hW = hreal(t, nn), *hr0, *hr1;
  int *mate = hnew(t, (size_t)n * sizeof(int)), *perm = hnew(t, (size_t)n * sizeof(int));
  NN(hs && hW && mate && perm);
  for (int i = 0; i < n; i++) perm[i] = i;
  for (int i = n - 1; i > 0; i--) { /* Fisher-Yates, then consecutive entries are mates */
    const int j = (int)il_rng_below(&t->rng, (uint64_t)i + 1), tmp = perm[i];
    perm[i] = perm[j], perm[j] = tmp;
  }
  for (int i = 0; i < n; i++) mate[perm[i]] = (i ^ 1) < n ? perm[i ^ 1] : perm[i];
  for (size_t i = 0; i < nn; i++) hW[i] = (il_real)(d * unif(t, -1, 1));
  for (int i = 0; i < n; i++) {
    hW[(size_t)i * n + i] = 1;
    if (mate[i] != i) hW[(size_t)i * n + mate[i]] = -1;
  }
  for (int b = 0; b < B; b++)
    for (int i = 0; i < n; i++) {
      if (mate[i] < i) continue; /* set with its mate */
      const int swap = mate[i] != i && il_rng_uniform(&t->rng) < 0.5;
      hs[(size_t)b * n + i] = (il_real)(swap ? 1 - d * unif(t, 1, 2) : unif(t, 0, 0.4));
      hs[(size_t)b * n + mate[i]] = (il_real)(swap ? 1 - d * unif(t, 1, 2) : unif(t, 0, 0.4));
    }
  il_real *s = in_host(t, "s", hs, len), *W = in_host(t, "W", hW, nn);
  il_real *R0 = io_rand(t, "R0", len, -1, 1, &hr0), *R1 = io_rand(t, "R1", len, -1, 1, &hr1);
  int *info = hnew(t, (size_t)B * sizeof(int)), *zero = hnew(t, (size_t)B * sizeof(int));
  NN(s && W && R0 && R1 && info && zero);
  for (int b = 0; b < B; b++) info[b] = INT_MIN + 7, zero[b] = 0;
  il_lu lu;
  t->touched[OP_LU_LAYOUT] = 1;
  il_status st = il_lu_alloc(t->be, &t->sp, B, n, &lu);
  if (st != IL_OK) {
    fail_status(t, OP_LU_LAYOUT, st, "il_lu_alloc (lu_layout)");
    return;
  }
  CALL(OP_JAC, OPS->jac_eye_minus_diag_w(CTX, B, n, s, W, &lu));
  CALL(OP_LU_FACTOR, OPS->lu_factor(CTX, &lu, info));
  CALL(OP_LU_SOLVE, OPS->lu_solve(CTX, 0, &lu, R0));
  CALL(OP_LU_SOLVE, OPS->lu_solve(CTX, 1, &lu, R1));
  chk_int(t, OP_LU_FACTOR, "info", info, zero, (size_t)B);
  double *d0 = get(t, "R0", R0, len), *d1 = get(t, "R1", R1, len);
  NN(d0 && d1);
  lu_check_residual(t, B, n, hs, hW, hr0, d0, 0);
  lu_check_residual(t, B, n, hs, hW, hr1, d1, 1);
}

/* info exactly: row and column i of J_b are zero for i in a per-sample subset of the
 * indices {0, n/2, n-1} (W's rows and columns there are e_i, s_b[i] = 1; else 0.5), so
 * with any row or column pivoting U(i+1, i+1) is the first zero pivot: info = min + 1.
 * The other samples, in the same groups, must still solve correctly. */
static void case_lu_info(T *t, int B, int n) {
  if (!begin(t, OP_LU_FACTOR, "B=%d n=%d exact info per sample", B, n)) return;
  const size_t nn = (size_t)n * n, len = (size_t)B * n;
  il_real *hs, *hW;
  NN(lu_inputs(t, B, n, &hs, &hW));
  const int S[3] = {0, n / 2, n - 1};
  for (int q = 0; q < 3; q++)
    for (int j = 0; j < n; j++) hW[(size_t)S[q] * n + j] = hW[(size_t)j * n + S[q]] = 0;
  for (int q = 0; q < 3; q++) hW[(size_t)S[q] * n + S[q]] = 1;
  int *rinfo = hnew(t, (size_t)B * sizeof(int)), *info = hnew(t, (size_t)B * sizeof(int));
  NN(rinfo && info);
  for (int b = 0; b < B; b++) {
    const unsigned sub = b % 3 == 0 ? 0 : 1 + (unsigned)il_rng_below(&t->rng, 7); /* a third nonsingular */
    il_real *sb = hs + (size_t)b * n;
    for (int q = 0; q < 3; q++) sb[S[q]] = (il_real)0.5;
    for (int q = 0; q < 3; q++) /* n < 3 repeats an index */
      if ((sub >> q) & 1) sb[S[q]] = 1;
    rinfo[b] = 0;
    for (int q = 2; q >= 0; q--)
      if (sb[S[q]] == 1) rinfo[b] = S[q] + 1;
  }
  il_real *s = in_host(t, "s", hs, len), *W = in_host(t, "W", hW, nn), *hr0;
  il_real *R0 = io_rand(t, "R0", len, -1, 1, &hr0);
  NN(s && W && R0);
  for (int b = 0; b < B; b++) info[b] = INT_MIN + 7;
  il_lu lu;
  t->touched[OP_LU_LAYOUT] = 1;
  il_status st = il_lu_alloc(t->be, &t->sp, B, n, &lu);
  if (st != IL_OK) {
    fail_status(t, OP_LU_LAYOUT, st, "il_lu_alloc (lu_layout)");
    return;
  }
  CALL(OP_JAC, OPS->jac_eye_minus_diag_w(CTX, B, n, s, W, &lu));
  CALL(OP_LU_FACTOR, OPS->lu_factor(CTX, &lu, info));
  CALL(OP_LU_SOLVE, OPS->lu_solve(CTX, 0, &lu, R0));
  chk_int(t, OP_LU_FACTOR, "info", info, rinfo, (size_t)B);
  double *J = hdbl(t, nn), *y = hdbl(t, len), *d = get(t, "R0", R0, len);
  int *piv = hnew(t, (size_t)n * sizeof(int));
  unsigned char *skip = hnew(t, len);
  NN(J && y && d && piv && skip);
  for (int b = 0; b < B; b++) {
    for (int j = 0; j < n; j++) y[(size_t)b * n + j] = hr0[(size_t)b * n + j], skip[(size_t)b * n + j] = rinfo[b] != 0;
    if (rinfo[b]) continue;
    ref_jac(n, hs + (size_t)b * n, hW, J);
    (void)ref_getrf(n, J, piv);
    ref_getrs(n, J, piv, y + (size_t)b * n);
  }
  /* kappa <= 1.85 / 0.15 as for lu_inputs: the zeroed rows are 0.5 e_i */
  const double kb = 20.0 * n * (1.85 / 0.15) * EPS;
  chk(t, OP_LU_SOLVE, "J^-1 R (trans 0) beside singular samples", d, y, len, kb * kb, skip);
}

/* NaN in s_b for every third sample: its norm is NaN and its solutions are not finite,
 * while the other samples (sharing groups with it) factor and solve as without it. */
static void case_lu_nan(T *t, int B, int n) {
  if (!begin(t, OP_LU_SOLVE, "B=%d n=%d NaN in every third J_b", B, n)) return;
  const size_t nn = (size_t)n * n, len = (size_t)B * n;
  il_real *hs, *hW, *hr0, *hr1;
  NN(lu_inputs(t, B, n, &hs, &hW));
  for (int b = 1; b < B; b += 3) hs[(size_t)b * n + il_rng_below(&t->rng, (uint64_t)n)] = (il_real)NAN;
  il_real *s = in_host(t, "s", hs, len), *W = in_host(t, "W", hW, nn);
  il_real *R0 = io_rand(t, "R0", len, -1, 1, &hr0), *R1 = io_rand(t, "R1", len, -1, 1, &hr1);
  int *info = hnew(t, (size_t)B * sizeof(int));
  double *norm = dnan(t, (size_t)B);
  NN(s && W && R0 && R1 && info && norm);
  for (int b = 0; b < B; b++) info[b] = INT_MIN + 7;
  il_lu lu;
  t->touched[OP_LU_LAYOUT] = 1;
  il_status st = il_lu_alloc(t->be, &t->sp, B, n, &lu);
  if (st != IL_OK) {
    fail_status(t, OP_LU_LAYOUT, st, "il_lu_alloc (lu_layout)");
    return;
  }
  CALL(OP_JAC, OPS->jac_eye_minus_diag_w(CTX, B, n, s, W, &lu));
  CALL(OP_LU_NORM, OPS->lu_norm_inf(CTX, &lu, norm));
  CALL(OP_LU_FACTOR, OPS->lu_factor(CTX, &lu, info));
  CALL(OP_LU_SOLVE, OPS->lu_solve(CTX, 0, &lu, R0));
  CALL(OP_LU_SOLVE, OPS->lu_solve(CTX, 1, &lu, R1));
  double *J = hdbl(t, nn), *Jt = hdbl(t, nn), *y0 = hdbl(t, len), *y1 = hdbl(t, len), *rnorm = hdbl(t, (size_t)B);
  double *d0 = get(t, "R0", R0, len), *d1 = get(t, "R1", R1, len);
  int *piv = hnew(t, (size_t)n * sizeof(int));
  unsigned char *skip = hnew(t, len);
  NN(J && Jt && y0 && y1 && rnorm && d0 && d1 && piv && skip);
  for (int b = 0; b < B; b++) {
    const int bad = b % 3 == 1;
    ref_jac(n, hs + (size_t)b * n, hW, J);
    rnorm[b] = ref_norm_inf(n, J);
    for (int j = 0; j < n; j++) {
      skip[(size_t)b * n + j] = (unsigned char)bad;
      y0[(size_t)b * n + j] = hr0[(size_t)b * n + j];
      y1[(size_t)b * n + j] = hr1[(size_t)b * n + j];
    }
    if (bad) {
      int fin0 = 1, fin1 = 1;
      for (int j = 0; j < n; j++) {
        fin0 &= isfinite(d0[(size_t)b * n + j]) != 0;
        fin1 &= isfinite(d1[(size_t)b * n + j]) != 0;
      }
      if (fin0 || fin1) {
        fail(t, OP_LU_SOLVE, "J_%d has a NaN, but its solution (trans %d) is finite", b, fin0 ? 0 : 1);
        return;
      }
      continue;
    }
    if (info[b] != 0) {
      fail(t, OP_LU_FACTOR, "info[%d] = %d beside a NaN sample, expected 0", b, info[b]);
      return;
    }
    for (int i = 0; i < n; i++)
      for (int j = 0; j < n; j++) Jt[(size_t)j * n + i] = J[(size_t)i * n + j];
    (void)ref_getrf(n, J, piv);
    ref_getrs(n, J, piv, y0 + (size_t)b * n);
    (void)ref_getrf(n, Jt, piv);
    ref_getrs(n, Jt, piv, y1 + (size_t)b * n);
  }
  chk(t, OP_LU_NORM, "norm", norm, rnorm, (size_t)B, B_ELEM, NULL);
  const double kb = 20.0 * n * (1.85 / 0.15) * EPS;
  chk(t, OP_LU_SOLVE, "J^-1 R (trans 0) beside NaN samples", d0, y0, len, kb * kb, skip);
  chk(t, OP_LU_SOLVE, "J^-T R (trans 1) beside NaN samples", d1, y1, len, kb * kb, skip);
}


/* dist_matrix (optional): W (n, n) and D (n, n) handed over, then every op a model runs on them, each
 * against the reference: copies (whole, share to share, gather into a replicated buffer), GEMMs
 * with W as op(B) and into D, the fused map, flat ops and reductions mixing them with replicated
 * data, the Jacobian build (through a solve). Handed back at the end (rows = cols = 0). */
static void case_dist(T *t, int B, int n) {
  if (!begin(t, OP_DIST, "B=%d n=%d%s", B, n, OPS->dist_matrix ? "" : " absent (optional)") || !OPS->dist_matrix) return;
  const size_t nn = (size_t)n * n, len = (size_t)B * n;
  il_real *hW = hreal(t, nn), *hD = hreal(t, nn), *hA, *hx, *hR;
  NN(hW && hD);
  rfill(t, hW, nn, -0.9 / n, 0.9 / n);
  rfill(t, hD, nn, -1, 1);
  il_real *W = io_host(t, "W", hW, nn), *D = io_host(t, "D", hD, nn), *Wr = io_host(t, "W replicated", hW, nn);
  il_real *A = in_rand(t, "A", len, -1, 1, &hA), *x = in_rand(t, "x", len, -1, 1, &hx);
  il_real *C = out_nan(t, "C", len), *C2 = out_nan(t, "C2", len), *F = out_nan(t, "f", len), *G = out_nan(t, "G", nn);
  il_real *R = io_rand(t, "R", len, -1, 1, &hR);
  NN(W && D && Wr && A && x && C && C2 && F && G && R);
  size_t kw = 0, kd = 0;
  CALL(OP_DIST, OPS->dist_matrix(CTX, W, n, n, &kw));
  CALL(OP_DIST, OPS->dist_matrix(CTX, D, n, n, &kd));
  if (kw > nn * sizeof(il_real) || kd != kw) fail(t, OP_DIST, "kept %zu and %zu bytes of %zu", kw, kd, nn * sizeof(il_real));
  double *gW = get(t, "W", W, nn), *ref = hdbl(t, nn > len ? nn : len);
  NN(gW && ref);
  for (size_t i = 0; i < nn; i++) ref[i] = hW[i];
  chk_exact(t, OP_DIST, "W downloaded whole", gW, ref, nn);
  /* C = A W^T, C2 = 0.5 A W: W as op(B) */
  CALL(OP_DIST, OPS->gemm(CTX, 0, 1, B, n, n, 1, A, n, W, n, 0, C, n));
  double *gC = get(t, "C", C, len);
  NN(gC);
  gemm_check(t, OP_DIST, 0, 1, B, n, n, 1, hA, n, hW, n, 0, NULL, n, gC, len, "A W^T");
  CALL(OP_DIST, OPS->gemm(CTX, 0, 0, B, n, n, (il_real)0.5, A, n, W, n, 0, C2, n));
  double *gC2 = get(t, "C2", C2, len);
  NN(gC2);
  gemm_check(t, OP_DIST, 0, 0, B, n, n, 0.5, hA, n, hW, n, 0, NULL, n, gC2, len, "0.5 A W");
  /* D = 0.7 D - A^T x: a GEMM into a distributed C */
  CALL(OP_DIST, OPS->gemm(CTX, 1, 0, n, n, B, -1, A, n, x, n, (il_real)0.7, D, n));
  double *gD = get(t, "D", D, nn);
  NN(gD);
  gemm_check(t, OP_DIST, 1, 0, n, n, B, -1, hA, n, hx, n, 0.7, hD, n, gD, nn, "0.7 D - A^T x");
  il_real *hD2 = hreal(t, nn); /* D's values now, as the reference for what follows */
  NN(hD2);
  for (size_t i = 0; i < nn; i++) hD2[i] = (il_real)gD[i];
  /* f = tanh(A W^T + x), with the residual rows against A */
  double *rr = dnan(t, (size_t)B);
  NN(rr);
  const il_epilogue ep = {.add = x, .act = IL_ACT_TANH, .res_ref = A, .res_rows = rr};
  CALL(OP_DIST, OPS->gemm_ep(CTX, B, n, n, A, W, &ep, F));
  double *gF = get(t, "f", F, len), *rres = hdbl(t, (size_t)B);
  NN(gF && rres);
  for (int b = 0; b < B; b++) {
    rres[b] = 0;
    for (int i = 0; i < n; i++) {
      double acc = hx[(size_t)b * n + i];
      for (int k = 0; k < n; k++) acc += (double)hA[(size_t)b * n + k] * hW[(size_t)i * n + k];
      ref[(size_t)b * n + i] = tanh(acc);
      const double d = hA[(size_t)b * n + i] - ref[(size_t)b * n + i];
      rres[b] += d * d;
    }
  }
  chk(t, OP_DIST, "tanh(A W^T + x)", gF, ref, len, B_SUM, NULL);
  chk(t, OP_DIST, "residual rows", rr, rres, (size_t)B, B_SUM, NULL);
  /* flat ops: D <- 2 W + D (both shares), G <- D (gather), D <- D + 0.5 Wr (Wr replicated) */
  CALL(OP_DIST, OPS->axpby(CTX, nn, 2, W, 1, D));
  CALL(OP_DIST, OPS->copy(CTX, IL_COPY_IN_SPACE, G, D, nn * sizeof *G));
  CALL(OP_DIST, OPS->axpby(CTX, nn, (il_real)0.5, Wr, 1, D));
  double *gG = get(t, "G", G, nn), *gD3 = get(t, "D", D, nn), *ref2 = hdbl(t, nn);
  NN(gG && gD3 && ref2);
  for (size_t i = 0; i < nn; i++) {
    ref[i] = (il_real)(2 * hW[i] + hD2[i]);
    ref2[i] = (il_real)((il_real)ref[i] + (il_real)0.5 * hW[i]);
  }
  chk(t, OP_DIST, "2 W + D gathered", gG, ref, nn, B_ELEM, NULL);
  chk(t, OP_DIST, "D + 0.5 W (W replicated)", gD3, ref2, nn, B_ELEM, NULL);
  /* reductions over a share against a replicated copy and alone */
  double sq = NAN, cmp[4] = {NAN, NAN, NAN, NAN}, mx = NAN;
  int fin = -1;
  CALL(OP_DIST, OPS->sqdist(CTX, nn, D, G, &sq));
  CALL(OP_DIST, OPS->compare(CTX, nn, W, Wr, cmp));
  CALL(OP_DIST, OPS->absmax(CTX, nn, D, &mx));
  CALL(OP_DIST, OPS->all_finite(CTX, nn, W, &fin));
  double rsq = 0, rww = 0, rmx = 0;
  for (size_t i = 0; i < nn; i++) {
    rsq += (gD3[i] - gG[i]) * (gD3[i] - gG[i]);
    rww += (double)hW[i] * hW[i];
    if (fabs(gD3[i]) > rmx) rmx = fabs(gD3[i]);
  }
  const double got[4] = {sq, cmp[0], cmp[1], cmp[3]}, want[4] = {rsq, rww, rww, 0};
  chk(t, OP_DIST, "sqdist, compare", got, want, 4, B_SUM, NULL);
  chk(t, OP_DIST, "absmax", &mx, &rmx, 1, B_ELEM, NULL);
  if (fin != 1) fail(t, OP_DIST, "all_finite = %d on a finite W", fin);
  CALL(OP_DIST, OPS->fill(CTX, nn, (il_real)0.25, D));
  CALL(OP_DIST, OPS->zero(CTX, W, nn * sizeof *W));
  double *gD4 = get(t, "D", D, nn), *gW0 = get(t, "W", W, nn);
  NN(gD4 && gW0);
  for (size_t i = 0; i < nn; i++) ref[i] = 0.25, ref2[i] = 0;
  chk_exact(t, OP_DIST, "fill", gD4, ref, nn);
  chk_exact(t, OP_DIST, "zero", gW0, ref2, nn);
  /* the Jacobian from a distributed W: J = I - diag(s) W, through a solve */
  CALL(OP_DIST, OPS->copy(CTX, IL_COPY_TO_SPACE, W, hW, nn * sizeof *W)); /* scattered again */
  il_real *hs = hreal(t, len);
  NN(hs);
  rfill(t, hs, len, 0.2, 1);
  il_real *sdev = in_host(t, "s", hs, len);
  NN(sdev);
  il_lu lu;
  if (il_lu_alloc(t->be, &t->sp, B, n, &lu) != IL_OK) {
    fail(t, OP_DIST, "il_lu_alloc");
    return;
  }
  int *info = hnew(t, (size_t)B * sizeof(int));
  double *J = hdbl(t, nn), *y = hdbl(t, len);
  int *piv = hnew(t, (size_t)n * sizeof(int));
  NN(info && J && y && piv);
  CALL(OP_DIST, OPS->jac_eye_minus_diag_w(CTX, B, n, sdev, W, &lu));
  CALL(OP_DIST, OPS->lu_factor(CTX, &lu, info));
  CALL(OP_DIST, OPS->lu_solve(CTX, 0, &lu, R));
  double *gR = get(t, "R", R, len);
  NN(gR);
  for (int b = 0; b < B; b++) {
    ref_jac(n, hs + (size_t)b * n, hW, J);
    (void)ref_getrf(n, J, piv);
    for (int i = 0; i < n; i++) y[(size_t)b * n + i] = hR[(size_t)b * n + i];
    ref_getrs(n, J, piv, y + (size_t)b * n);
  }
  chk(t, OP_DIST, "J^-1 R, J from a distributed W", gR, y, len, (100.0 * n * EPS) * (100.0 * n * EPS), NULL);
  size_t k0;
  CALL(OP_DIST, OPS->dist_matrix(CTX, W, 0, 0, &k0));
  CALL(OP_DIST, OPS->dist_matrix(CTX, D, 0, 0, &k0));
}

/* ======================= the run ======================= */
static void check_ops_table(T *t) {
  const il_backend_ops *o = OPS;
  const size_t first = offsetof(il_backend_ops, create), fp = sizeof(fnptr);
  const size_t nslot = (sizeof(il_backend_ops) - first) / fp;
  int ok = (sizeof(il_backend_ops) - first) % fp == 0;
  for (size_t sl = 0; sl < nslot; sl++) {
    int found = 0;
    for (int i = 0; i < OP_N; i++) found |= op_table[i].off == first + sl * fp;
    if (!found) {
      emit(t, "  FAIL il_backend_ops has an op (slot %zu of %zu) the self-test does not know: add it to "
              "IL_SELFTEST_OPS in core/backends/selftest.c and give it cases\n", sl, nslot);
      ok = 0;
    }
  }
  t->sum->cases++;
  if (!ok) t->sum->failed++;
  for (int i = 0; i < OP_N; i++) {
    t->have[i] = slot_set(o, op_table[i].off);
    if (!t->have[i] && i != OP_DESCRIBE && i != OP_FLOPS && i != OP_DIST)
      emit(t, "  FAIL %-20s %s: the op is NULL\n", op_table[i].name, o->name);
  }
  t->have[OP_DESCRIBE] = t->have[OP_FLOPS] = t->have[OP_DIST] = 1; /* optional */
  if (!t->have[OP_ALLOC] || !t->have[OP_RELEASE] || !t->have[OP_COPY_TO_SPACE] || !t->have[OP_LU_LAYOUT])
    t->fatal = IL_ERR(IL_ERR_UNSUPPORTED, "selftest: backend %s lacks alloc, release, copy or lu_layout", o->name);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void run_all(T *t) {
  test_memory(t);

  /* dense */
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++)
      for (int mi = 0; mi < NSB; mi++)
        for (int ni = 0; ni < NSN; ni++)
          for (int ki = 0; ki < NSN; ki++)
            for (int be = 0; be < 2; be++)
              case_gemm(t, ta, tb, SB[mi], SN[ni], SN[ki], (mi + ni + ki + be) % 2 ? 3 : 0, be);
  static const int sbM[] = {1, 17}, sbN[] = {1, 7, 33}, sbK[] = {2, 33}, sbBatch[] = {1, 3};
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++)
      for (int mi = 0; mi < 2; mi++)
        for (int ni = 0; ni < 3; ni++)
          for (int ki = 0; ki < 2; ki++)
            for (int bi = 0; bi < 2; bi++)
              for (int be = 0; be < 2; be++) case_gemm_sb(t, ta, tb, sbM[mi], sbN[ni], sbK[ki], sbBatch[bi], be);
  static const int ep[][3] = {{1, 1, 1}, {3, 7, 2}, {17, 33, 7}, {100, 100, 100}, {1, 100, 33}, {100, 1, 7}, {17, 2, 100}};
  for (size_t si = 0; si < sizeof ep / sizeof *ep; si++)
    for (int mask = 0; mask < 96; mask++) case_gemm_ep(t, ep[si][0], ep[si][1], ep[si][2], mask);
  run_gemm_ep_fused(t); /* tile edges and NaN/inf of the CPU fused kernel */
  static const int dist[][2] = {{1, 1}, {3, 17}, {5, 70}, {8, 131}};
  for (size_t di = 0; di < sizeof dist / sizeof *dist; di++) case_dist(t, dist[di][0], dist[di][1]);

  /* elementwise */
  for (size_t li = 0; li < NLENS; li++) {
    const size_t n = LENS[li];
    case_fill(t, n, 0);
    case_fill(t, n, 1);
    for (int w = 0; w < 3; w++) case_axpby(t, n, w);
    for (int al = 0; al < 3; al++) case_lincomb(t, n, al);
    case_mul(t, n);
    for (int a = 0; a < 3; a++) {
      case_act_fwd(t, n, ACTS[a], 1, 0);
      case_act_fwd(t, n, ACTS[a], 0, 0);
      case_act_fwd(t, n, ACTS[a], 1, 1);
      case_act_deriv(t, n, ACTS[a]);
      case_act_dmul(t, n, ACTS[a]);
      case_act_d2(t, n, ACTS[a]);
    }
    case_sech2(t, n);
    case_sech2_d2(t, n);
    /* reductions over len */
    case_sqdist(t, n, 1);
    case_sqdist(t, n, 0);
    for (int p = 0; p < 3; p++) case_absmax(t, n, p);
    for (int p = 0; p < 5; p++) case_all_finite(t, n, p);
    case_compare(t, n);
  }

  /* per row */
  for (int bi = 0; bi < NSB; bi++)
    for (int ni = 0; ni < NSN; ni++) {
      const int B = SB[bi], n = SN[ni];
      for (int w = 0; w < 3; w++) case_row_lincomb(t, B, n, w);
      for (int want = 0; want < 2; want++) {
        case_row_select(t, B, n, want);
        case_row_fill(t, B, n, want, 0);
        case_row_fill(t, B, n, want, 1);
      }
      static const int ks[] = {0, 1, 4};
      for (int ki = 0; ki < 3; ki++)
        for (int w = 0; w < 3; w++) case_row_combine(t, B, n, ks[ki], w);
      case_col_sum_add(t, B, n);
      for (int mode = 0; mode < 3; mode++) case_row_index_copy(t, B, n, mode);
      case_row_sqdist(t, B, n);
      case_row_dot(t, B, n, 1);
      case_row_dot(t, B, n, 3);
      case_row_mgs(t, B, n, 0);
      if (n > 1) case_row_mgs(t, B, n, 1);
      if (n > 3) case_row_mgs(t, B, n, 3);
    }

  /* head */
  static const int xc[] = {1, 2, 10, 33};
  for (int bi = 0; bi < NSB; bi++)
    for (int ci = 0; ci < 4; ci++) {
      case_xent_fwd(t, SB[bi], xc[ci], 1, 0);
      case_xent_fwd(t, SB[bi], xc[ci], 0, 0);
      case_xent_bwd(t, SB[bi], xc[ci]);
    }
  case_xent_fwd(t, 3, 10, 1, 1);
  case_xent_fwd(t, 1, 33, 1, 1);

  /* LU */
  static const int lb[] = {1, 3, 17};
  for (int bi = 0; bi < 3; bi++)
    for (int ni = 0; ni < NSN; ni++) {
      case_lu(t, lb[bi], SN[ni]);
      case_lu_singular(t, lb[bi], SN[ni]);
      case_lu_norm_nan(t, lb[bi], SN[ni]);
      case_lu_rcond_ill(t, lb[bi] + 3, SN[ni]);
    }
  case_lu(t, 100, 7);
  case_lu(t, 100, 33);
  /* lanes: B not a multiple of the cpu backend's group (16 floats, 8 doubles), groups that
   * mix singular, NaN and regular samples, pivots that differ per sample; n on both sides
   * of its crossover between the compact layout and LAPACK per sample */
  static const int pb[] = {1, 17, 100}, pn[] = {1, 2, 7, 33, 100};
  for (int ni = 0; ni < 5; ni++)
    for (int bi = 0; bi < 3; bi++) {
      case_lu_pivot(t, pb[bi], pn[ni]);
      case_lu_perm(t, pb[bi] + 1, pn[ni]);
      case_lu_info(t, pb[bi] + 2, pn[ni]);
      case_lu_nan(t, pb[bi] + 3, pn[ni]);
    }
  for (int n = IL_LUC_MAX_N; n <= IL_LUC_MAX_N + 1; n++) { /* small B: the reference's time */
    case_lu_pivot(t, 1, n);
    case_lu_pivot(t, 17, n);
    case_lu_perm(t, 18, n);
    case_lu_info(t, 3, n);
    case_lu_nan(t, 4, n);
    case_lu_singular(t, 17, n);
  }
  case_lu(t, 2, IL_LUC_MAX_N + 1); /* the cpu backend's LAPACK path; the compact one has n <= 100 above */
  case_lu_rcond_ill(t, 4, IL_LUC_MAX_N + 1);

  /* more terms per row (last, so the inputs of the cases above stay as they were): the cpu
   * backend combines four terms per pass (7 = 4 + 3) and dots up to eight rows per pass.
   * The LU cases' large blocks are released first: cpu-guard re-protects every block of
   * the space on every op, and these cases run many ops on small tensors. */
  end_case(t);
  il_arena_destroy(&t->sp);
  il_arena_init_for(&t->sp, t->be, IL_MEM_WORKSPACE, NULL, 0);
  static const int kb[] = {1, 17, 100};
  for (int bi = 0; bi < 3; bi++)
    for (int ni = 0; ni < NSN; ni++) {
      if (kb[bi] == 100 && SN[ni] != 100) continue; /* the rows' shapes are covered by the small B */
      for (int w = 0; w < 3; w++) case_row_combine(t, kb[bi], SN[ni], 7, w);
      case_row_dot(t, kb[bi], SN[ni], 7);
      case_row_sub_dot(t, kb[bi], SN[ni], 1, 1);
      case_row_sub_dot(t, kb[bi], SN[ni], 3, 0);
      case_row_sub_dot(t, kb[bi], SN[ni], 7, 1);
      case_row_lowrank(t, kb[bi], SN[ni], 0, 1);
      case_row_lowrank(t, kb[bi], SN[ni], 3, 0);
      case_row_dot(t, kb[bi], SN[ni], 11);
      case_row_sub_dot(t, kb[bi], SN[ni], 9, 1); /* d . d after a full pass of eight */
      case_row_lowrank(t, kb[bi], SN[ni], 11, 1);
    }
  end_case(t);
}

il_status il_selftest_run(const char *backend_name, int threads, uint64_t seed, int verbose, FILE *log,
                          il_selftest_summary *sum) {
  const il_backend_options o = {.threads = threads};
  return il_selftest_run_on(backend_name, &o, seed, verbose, log, sum);
}

il_status il_selftest_run_on(const char *backend_name, const il_backend_options *bo, uint64_t seed, int verbose,
                             FILE *log, il_selftest_summary *sum) {
  const int threads = bo->threads;
  il_selftest_summary local;
  if (!sum) sum = &local;
  memset(sum, 0, sizeof *sum);
  snprintf(sum->backend, sizeof sum->backend, "%s", backend_name ? backend_name : "(null)");
  sum->precision = IL_REAL_NAME;
  sum->threads = threads;
  sum->seed = seed;
  sum->ops_total = OP_N;
  sum->nops = OP_N;
  for (int i = 0; i < OP_N; i++) sum->op[i] = (il_selftest_op){.name = op_table[i].name, .worst_nmse = -1};
  const double t0 = now_s();

  T tt;
  memset(&tt, 0, sizeof tt);
  T *t = &tt;
  t->log = log;
  t->verbose = verbose;
  t->sum = sum;
  t->seed = seed;
  t->device = bo->device;
  il_status s = il_backend_create(backend_name, bo, &t->be);
  if (s != IL_OK) return il_error_trace(s, __FILE__, __LINE__);
  sum->created = 1;
  sum->op[OP_CREATE].cases = 1;
  il_arena_init_for(&t->sp, t->be, IL_MEM_WORKSPACE, NULL, 0);
  il_arena_init_for(&t->host, NULL, IL_MEM_WORKSPACE, NULL, 0);

  check_ops_table(t);
  if (!t->fatal) run_all(t);

  il_arena_destroy(&t->sp);
  il_arena_destroy(&t->host);
  il_backend_destroy(t->be);
  sum->op[OP_DESTROY].cases++;
  sum->seconds = now_s() - t0;
  if (t->fatal) return il_error_trace(t->fatal, __FILE__, __LINE__);

  /* coverage: every op of the list was exercised */
  for (int i = 0; i < OP_N; i++) {
    if (sum->op[i].cases > 0) sum->ops_covered++;
    else {
      emit(t, "  FAIL %-20s %s: not exercised by any case\n", op_table[i].name, sum->backend);
      sum->cases++;
      sum->failed++;
    }
  }
  if (sum->failed) {
    return IL_ERR(IL_ERR_NUMERIC, "selftest of %s (%s): %d of %d cases failed", sum->backend, sum->precision,
                  sum->failed, sum->cases);
  }
  return IL_OK;
}

void il_selftest_print(const il_selftest_summary *s, FILE *f) {
  if (!f || !s) return;
  fprintf(f, "selftest %s (%s, threads %d, seed %llu): %d/%d ops covered, %d cases, %d failed, %.2f s\n", s->backend,
          s->precision, s->threads, (unsigned long long)s->seed, s->ops_covered, s->ops_total, s->cases, s->failed,
          s->seconds);
  fprintf(f, "  %-22s %6s %6s %11s %11s\n", "op", "cases", "failed", "worst NMSE", "NMSE/bound");
  for (int i = 0; i < s->nops; i++) {
    const il_selftest_op *o = &s->op[i];
    char nm[16] = "exact", rt[16] = "-";
    if (o->worst_nmse >= 0) {
      snprintf(nm, sizeof nm, "%.2e", o->worst_nmse);
      snprintf(rt, sizeof rt, "%.2e", o->worst_ratio);
    }
    fprintf(f, "  %-22s %6d %6d %11s %11s%s\n", o->name, o->cases, o->failed, o->cases ? nm : "-", o->cases ? rt : "-",
            o->failed ? "  FAIL" : o->cases ? "" : "  NOT COVERED");
  }
}
