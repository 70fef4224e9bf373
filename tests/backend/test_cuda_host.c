/* tests/backend/test_cuda_host.c: what the harness's shapes do not reach in the cuda
 * backend's op code (core/backends/cuda_ops.cuh), run through the host launcher (cuda-host)
 * against the cpu backend: row ops with more than the 64 row pointers one launch takes
 * (k = 64, 65, 130: chunked launches, in order), and reductions long enough for several
 * thousand partials. Both precisions. */
#include <math.h>
#include <stdlib.h>

#include "il_backend.h"
#include "test_util.h"

#define TOL (IL_PREC == 32 ? 2e-5 : 1e-12)

typedef struct pair {
  il_backend *be[2]; /* cpu, cuda-host */
} pair;

/* the space buffers of the current backend, released before it is destroyed */
static struct { void *p; size_t bytes; } bufs[256];
static int nbufs;
static void release_all(il_backend *be) {
  while (nbufs > 0) nbufs--, be->ops->release(be->ctx, bufs[nbufs].p, bufs[nbufs].bytes);
}
static il_real *up(il_backend *be, const il_real *h, size_t n) {
  il_real *d = NULL;
  assert_true(nbufs < 256);
  assert_ok(be->ops->alloc(be->ctx, n * sizeof *d, (void **)&d));
  bufs[nbufs].p = d, bufs[nbufs++].bytes = n * sizeof *d;
  assert_ok(il_upload(be, d, h, n));
  return d;
}
static void down(il_backend *be, il_real *h, const il_real *d, size_t n) { assert_ok(il_download(be, h, d, n)); }
static void close_to(const double *a, const double *b, size_t n, double tol, const char *what) {
  for (size_t i = 0; i < n; i++) {
    const double m = fabs(a[i]) > fabs(b[i]) ? fabs(a[i]) : fabs(b[i]);
    if (!(fabs(a[i] - b[i]) <= tol * (m + 1))) {
      print_error("%s[%zu]: cpu %.17g, cuda-host %.17g\n", what, i, a[i], b[i]);
      fail();
    }
  }
}
static void close_r(const il_real *a, const il_real *b, size_t n, double tol, const char *what) {
  double *x = malloc(2 * n * sizeof *x);
  assert_non_null(x);
  for (size_t i = 0; i < n; i++) x[i] = a[i], x[n + i] = b[i];
  close_to(x, x + n, n, tol, what);
  free(x);
}

static void rows_case(int B, int n, int k) {
  const size_t len = (size_t)B * n;
  uint64_t s = 88172645463325252ULL ^ (uint64_t)(k * 131 + n);
#define RND() (s ^= s << 13, s ^= s >> 7, s ^= s << 17, (double)(s >> 11) / 9007199254740992.0 * 2 - 1)
  il_real *hx = malloc((size_t)(k + 4) * len * sizeof *hx), *coef = malloc((size_t)B * k * sizeof *coef);
  il_real *rr[2]; /* per backend: combine, lowrank oa, lowrank oc, mgs w (len each) */
  double *dd[2];  /* per backend: row_dot, row_sub_dot (B k each), mgs h (B k) */
  assert_non_null(hx && coef);
  for (size_t i = 0; i < (size_t)(k + 4) * len; i++) hx[i] = (il_real)(RND() / sqrt((double)n * k));
  for (int i = 0; i < B * k; i++) coef[i] = (il_real)RND();
  const size_t bk = (size_t)B * k;
  for (int v = 0; v < 2; v++) {
    il_backend *be = NULL;
    const il_backend_options bo = {.threads = 1};
    assert_ok(il_backend_create(v ? "cuda-host" : "cpu", &bo, &be));
    const il_real **X = malloc((size_t)k * sizeof *X);
    rr[v] = malloc(4 * len * sizeof **rr);
    dd[v] = malloc(3 * bk * sizeof **dd);
    assert_non_null(X && rr[v] && dd[v]);
    for (int i = 0; i < k; i++) X[i] = up(be, hx + (size_t)i * len, len);
    il_real *a = up(be, hx + (size_t)k * len, len), *c = up(be, hx + (size_t)(k + 1) * len, len);
    il_real *o = up(be, hx + (size_t)(k + 2) * len, len), *o2 = up(be, hx + (size_t)(k + 3) * len, len);
    il_real *cf = up(be, coef, bk);
    /* row_combine with beta, then row_dot and row_lowrank (both applies) over k rows */
    assert_ok(IL_BE(be, row_combine, B, n, k, X, cf, (il_real)0.5, o));
    down(be, rr[v], o, len);
    assert_ok(IL_BE(be, row_dot, B, n, k, X, a, dd[v]));
    assert_ok(IL_BE(be, row_lowrank, B, n, k, X, X, a, o, c, o2));
    down(be, rr[v] + len, o, len);
    down(be, rr[v] + 2 * len, o2, len);
    /* row_sub_dot with X holding d (the last slot), then row_mgs of d against the other rows */
    X[k - 1] = o;
    assert_ok(IL_BE(be, row_sub_dot, B, n, k, X, a, c, o, dd[v] + bk));
    double *h = malloc((size_t)B * k * sizeof *h);
    assert_non_null(h);
    assert_ok(IL_BE(be, row_mgs, B, n, k - 1, X, o, h)); /* h (B, k) */
    for (size_t i = 0; i < bk; i++) dd[v][2 * bk + i] = h[i];
    free(h);
    down(be, rr[v] + 3 * len, o, len);
    free(X);
    release_all(be);
    il_backend_destroy(be);
  }
  close_r(rr[0], rr[1], len, TOL, "row_combine");
  close_r(rr[0] + len, rr[1] + len, len, TOL, "row_lowrank oa");
  close_r(rr[0] + 2 * len, rr[1] + 2 * len, len, TOL, "row_lowrank oc");
  close_r(rr[0] + 3 * len, rr[1] + 3 * len, len, 100 * TOL, "row_mgs w");
  close_to(dd[0], dd[1], bk, TOL, "row_dot");
  close_to(dd[0] + bk, dd[1] + bk, bk, TOL, "row_sub_dot");
  close_to(dd[0] + 2 * bk, dd[1] + 2 * bk, bk, 100 * TOL, "row_mgs h");
  for (int v = 0; v < 2; v++) free(rr[v]), free(dd[v]);
  free(hx);
  free(coef);
#undef RND
}

static void test_rows_chunked(void **state) {
  (void)state;
  static const int ks[] = {64, 65, 130};
  for (int i = 0; i < 3; i++) {
    rows_case(3, 5, ks[i]);
    rows_case(2, 37, ks[i]);
  }
}

/* sqdist, compare, absmax, all_finite over 300001 elements: 4096 partials of ~73 each */
static void test_long_reductions(void **state) {
  (void)state;
  const size_t n = 300001;
  il_real *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
  assert_non_null(a && b);
  for (size_t i = 0; i < n; i++) a[i] = (il_real)sin(0.001 * i), b[i] = (il_real)cos(0.002 * i);
  double r[2][7];
  int fin[2][2];
  for (int v = 0; v < 2; v++) {
    il_backend *be = NULL;
    const il_backend_options bo = {.threads = 1};
    assert_ok(il_backend_create(v ? "cuda-host" : "cpu", &bo, &be));
    il_real *da = up(be, a, n), *db = up(be, b, n);
    assert_ok(IL_BE(be, sqdist, n, da, db, &r[v][0]));
    assert_ok(IL_BE(be, compare, n, da, db, &r[v][1]));
    assert_ok(IL_BE(be, absmax, n, db, &r[v][5]));
    assert_ok(IL_BE(be, sqdist, n, da, NULL, &r[v][6]));
    assert_ok(IL_BE(be, all_finite, n, da, &fin[v][0]));
    const il_real nan = (il_real)NAN;
    assert_ok(il_upload(be, da + n - 1, &nan, 1)); /* the last element: the last partial's tail */
    assert_ok(IL_BE(be, all_finite, n, da, &fin[v][1]));
    release_all(be);
    il_backend_destroy(be);
  }
  close_to(r[0], r[1], 7, 1e-12, "reductions");
  assert_int_equal(fin[0][0], 1), assert_int_equal(fin[1][0], 1);
  assert_int_equal(fin[0][1], 0), assert_int_equal(fin[1][1], 0);
  free(a);
  free(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_rows_chunked), cmocka_unit_test(test_long_reductions)};
  return cmocka_run_group_tests_name("cuda_host_" IL_REAL_NAME, tests, NULL, NULL);
}
