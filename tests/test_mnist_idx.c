/* tests/test_mnist_idx.c: the idx reader (bench/mnist_idx.c).
 * Writes small idx files, raw and gzipped, into a mkdtemp directory and checks
 * that valid files load with the right values and that each kind of damage is
 * refused with the right status and a message naming the file. A last test
 * loads the real MNIST files from $ILBENCH_MNIST_DIR (skipped when unset). */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "mnist_idx.h"
#include "il_status.h"

static char g_dir[256]; /* the temp directory; flat, except for sub-directories made by mkdir_in */

/* ---- helpers ---------------------------------------------------------- */

static void path_in(char *buf, size_t n, const char *sub, const char *name) {
  int w = sub ? snprintf(buf, n, "%s/%s/%s", g_dir, sub, name)
              : snprintf(buf, n, "%s/%s", g_dir, name);
  assert_true(w > 0 && (size_t)w < n);
}

static void mkdir_in(const char *sub) {
  char p[512];
  int w = snprintf(p, sizeof p, "%s/%s", g_dir, sub);
  assert_true(w > 0 && (size_t)w < sizeof p);
  if (mkdir(p, 0700) != 0) {
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
  }
}

static void write_raw(const char *path, const uint8_t *bytes, size_t len) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(bytes, 1, len, f), len);
  assert_int_equal(fclose(f), 0);
}

static void write_gz(const char *path, const uint8_t *bytes, size_t len) {
  gzFile g = gzopen(path, "wb");
  assert_non_null(g);
  assert_int_equal(gzwrite(g, bytes, (unsigned)len), (int)len);
  assert_int_equal(gzclose(g), Z_OK);
}

static void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static uint8_t pixel_value(size_t i) { return (uint8_t)((i * 37u + 11u) & 0xffu); }
static uint8_t label_value(size_t i) { return (uint8_t)((i * 3u + 1u) % 10u); }

/* An idx3-ubyte image file in memory: 16-byte header + count*rows*cols pixels. */
static uint8_t *make_images(uint32_t count, uint32_t rows, uint32_t cols, size_t *len) {
  size_t n = (size_t)count * rows * cols;
  uint8_t *b = malloc(16 + n);
  assert_non_null(b);
  put_be32(b, 0x00000803u);
  put_be32(b + 4, count);
  put_be32(b + 8, rows);
  put_be32(b + 12, cols);
  for (size_t i = 0; i < n; i++) b[16 + i] = pixel_value(i);
  *len = 16 + n;
  return b;
}

/* An idx1-ubyte label file in memory: 8-byte header + count labels. */
static uint8_t *make_labels(uint32_t count, size_t *len) {
  uint8_t *b = malloc(8 + (size_t)count);
  assert_non_null(b);
  put_be32(b, 0x00000801u);
  put_be32(b + 4, count);
  for (size_t i = 0; i < count; i++) b[8 + i] = label_value(i);
  *len = 8 + (size_t)count;
  return b;
}

/* The failing call returned `want` and its message names `needle` (and, when given, `also`). */
static void expect_error(il_status got, il_status want, const char *needle, const char *also) {
  const char *msg = il_error_message();
  if (getenv("IL_TEST_VERBOSE")) print_message("  %s: %s\n", il_status_str(got), msg);
  if (got != want || !strstr(msg, needle) || (also && !strstr(msg, also)))
    print_error("status %d (%s), expected %d (%s); message: \"%s\"; wanted it to contain "
                "\"%s\"%s%s%s\n",
                (int)got, il_status_str(got), (int)want, il_status_str(want), msg, needle,
                also ? " and \"" : "", also ? also : "", also ? "\"" : "");
  assert_int_equal(got, want);
  assert_non_null(strstr(msg, needle));
  if (also) assert_non_null(strstr(msg, also));
}

/* Read `path` as images and expect failure `want`; the output must be left empty. */
static void expect_images_fail(const char *path, il_status want, const char *also) {
  il_idx_images im;
  memset(&im, 0xab, sizeof im);
  il_error_clear();
  il_status s = il_idx_read_images(path, &im);
  expect_error(s, want, path, also);
  assert_null(im.pixels);
  assert_int_equal(im.count, 0);
}

static void expect_labels_fail(const char *path, il_status want, const char *also) {
  il_idx_labels lb;
  memset(&lb, 0xab, sizeof lb);
  il_error_clear();
  il_status s = il_idx_read_labels(path, &lb);
  expect_error(s, want, path, also);
  assert_null(lb.labels);
  assert_int_equal(lb.count, 0);
}

/* ---- fixtures --------------------------------------------------------- */

static int group_setup(void **state) {
  (void)state;
  const char *tmp = getenv("TMPDIR");
  if (!tmp || !tmp[0]) tmp = "/tmp";
  int w = snprintf(g_dir, sizeof g_dir, "%s/il_mnist_test.XXXXXX", tmp);
  if (w <= 0 || (size_t)w >= sizeof g_dir) return -1;
  return mkdtemp(g_dir) ? 0 : -1;
}

/* Remove g_dir: its files and one level of sub-directories. */
static int remove_tree(const char *dir, int depth) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  int rc = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    struct stat st;
    if (lstat(p, &st) != 0) { rc = -1; continue; }
    if (S_ISDIR(st.st_mode) && depth > 0) {
      if (remove_tree(p, depth - 1) != 0) rc = -1;
    } else if (unlink(p) != 0) {
      rc = -1;
    }
  }
  closedir(d);
  if (rmdir(dir) != 0) rc = -1;
  return rc;
}

static int group_teardown(void **state) {
  (void)state;
  return remove_tree(g_dir, 2);
}

/* ---- valid files ------------------------------------------------------ */

static void check_images(const il_idx_images *im, uint32_t count, uint32_t rows, uint32_t cols) {
  assert_int_equal(im->count, count);
  assert_int_equal(im->rows, rows);
  assert_int_equal(im->cols, cols);
  assert_non_null(im->pixels);
  size_t n = (size_t)count * rows * cols;
  for (size_t i = 0; i < n; i++) assert_int_equal(im->pixels[i], pixel_value(i));
}

static void check_labels(const il_idx_labels *lb, uint32_t count) {
  assert_int_equal(lb->count, count);
  assert_non_null(lb->labels);
  for (size_t i = 0; i < count; i++) assert_int_equal(lb->labels[i], label_value(i));
}

static void test_valid_raw(void **state) {
  (void)state;
  mkdir_in("raw");
  char ip[512], lp[512];
  path_in(ip, sizeof ip, "raw", "train-images-idx3-ubyte");
  path_in(lp, sizeof lp, "raw", "train-labels-idx1-ubyte");
  size_t il, ll;
  uint8_t *ib = make_images(3, 4, 5, &il);
  uint8_t *lb = make_labels(3, &ll);
  write_raw(ip, ib, il);
  write_raw(lp, lb, ll);

  il_error_clear();
  il_idx_images im;
  assert_int_equal(il_idx_read_images(ip, &im), IL_OK);
  check_images(&im, 3, 4, 5);
  /* Concrete values, independent of the generator above. */
  assert_int_equal(im.pixels[0], 11);
  assert_int_equal(im.pixels[1], 48);
  assert_int_equal(im.pixels[59], (59 * 37 + 11) & 0xff);
  il_idx_images_free(&im);
  assert_null(im.pixels);
  assert_int_equal(im.count, 0);

  il_idx_labels lab;
  assert_int_equal(il_idx_read_labels(lp, &lab), IL_OK);
  check_labels(&lab, 3);
  assert_int_equal(lab.labels[0], 1);
  assert_int_equal(lab.labels[1], 4);
  assert_int_equal(lab.labels[2], 7);
  il_idx_labels_free(&lab);

  char dir[512];
  path_in(dir, sizeof dir, NULL, "raw");
  il_mnist_split sp;
  assert_int_equal(il_mnist_load_split(dir, "train", &sp), IL_OK);
  check_images(&sp.images, 3, 4, 5);
  check_labels(&sp.labels, 3);
  il_mnist_split_free(&sp);
  assert_null(sp.images.pixels);
  assert_null(sp.labels.labels);
  /* A trailing slash on the directory is fine. */
  strcat(dir, "/");
  assert_int_equal(il_mnist_load_split(dir, "train", &sp), IL_OK);
  assert_int_equal(sp.images.count, 3);
  il_mnist_split_free(&sp);
  assert_string_equal(il_error_message(), "");
  free(ib);
  free(lb);
}

static void test_valid_gzip(void **state) {
  (void)state;
  mkdir_in("gz");
  mkdir_in("raw");
  char ip[512], lp[512], odd[512];
  path_in(ip, sizeof ip, "gz", "t10k-images-idx3-ubyte.gz");
  path_in(lp, sizeof lp, "gz", "t10k-labels-idx1-ubyte.gz");
  path_in(odd, sizeof odd, NULL, "gzip-without-gz-suffix");
  /* Big enough that the reader's growing gzip buffer has to grow (> 1 MiB). */
  const uint32_t n = 1500, r = 28, c = 28;
  size_t il, ll;
  uint8_t *ib = make_images(n, r, c, &il);
  uint8_t *lb = make_labels(n, &ll);
  write_gz(ip, ib, il);
  write_gz(lp, lb, ll);
  write_gz(odd, ib, il);

  il_error_clear();
  il_idx_images im;
  assert_int_equal(il_idx_read_images(ip, &im), IL_OK);
  check_images(&im, n, r, c);
  assert_memory_equal(im.pixels, ib + 16, il - 16);
  il_idx_images_free(&im);

  /* gzip is detected by magic bytes, not by the name. */
  assert_int_equal(il_idx_read_images(odd, &im), IL_OK);
  check_images(&im, n, r, c);
  il_idx_images_free(&im);

  /* load_split falls back to "<name>.gz", and the result equals the raw file's. */
  char dir[512];
  path_in(dir, sizeof dir, NULL, "gz");
  il_mnist_split sp;
  assert_int_equal(il_mnist_load_split(dir, "t10k", &sp), IL_OK);
  check_images(&sp.images, n, r, c);
  check_labels(&sp.labels, n);
  assert_memory_equal(sp.labels.labels, lb + 8, n);
  il_mnist_split_free(&sp);

  /* Same small files as test_valid_raw, gzipped: identical result. */
  char rp[512], gp[512];
  path_in(rp, sizeof rp, "raw", "train-images-idx3-ubyte");
  path_in(gp, sizeof gp, NULL, "small-images.gz");
  size_t sl;
  uint8_t *sb = make_images(3, 4, 5, &sl);
  write_raw(rp, sb, sl);
  write_gz(gp, sb, sl);
  il_idx_images a, b;
  assert_int_equal(il_idx_read_images(rp, &a), IL_OK);
  assert_int_equal(il_idx_read_images(gp, &b), IL_OK);
  assert_int_equal(a.count, b.count);
  assert_int_equal(a.rows, b.rows);
  assert_int_equal(a.cols, b.cols);
  assert_memory_equal(a.pixels, b.pixels, 60);
  il_idx_images_free(&a);
  il_idx_images_free(&b);
  assert_string_equal(il_error_message(), "");
  free(ib);
  free(lb);
  free(sb);
}

/* ---- damaged files ---------------------------------------------------- */

static void test_truncated_images(void **state) {
  (void)state;
  size_t len;
  uint8_t *b = make_images(2, 3, 3, &len); /* 16 + 18 = 34 bytes */
  char p[512];
  path_in(p, sizeof p, NULL, "trunc-images-idx3-ubyte");
  write_raw(p, b, len - 5);
  expect_images_fail(p, IL_ERR_FORMAT, "truncated");
  assert_non_null(strstr(il_error_message(), "34")); /* expected byte count */
  assert_non_null(strstr(il_error_message(), "29")); /* actual byte count */

  path_in(p, sizeof p, NULL, "trunc-images-idx3-ubyte.gz");
  write_gz(p, b, len - 5);
  expect_images_fail(p, IL_ERR_FORMAT, "truncated");
  assert_non_null(strstr(il_error_message(), "34"));
  assert_non_null(strstr(il_error_message(), "29"));

  /* A gzip stream that is itself cut off (no trailer, data incomplete). */
  path_in(p, sizeof p, NULL, "cut-gzip-stream.gz");
  {
    char full[512];
    path_in(full, sizeof full, NULL, "cut-gzip-full.gz");
    write_gz(full, b, len);
    FILE *f = fopen(full, "rb");
    assert_non_null(f);
    uint8_t gzb[256];
    size_t gl = fread(gzb, 1, sizeof gzb, f);
    fclose(f);
    assert_true(gl > 20 && gl < sizeof gzb);
    write_raw(p, gzb, gl - 12); /* drop the 8-byte trailer and some data */
  }
  expect_images_fail(p, IL_ERR_FORMAT, "truncated");

  /* All the data but no gzip trailer, and a trailer whose CRC does not match. */
  {
    char full[512];
    path_in(full, sizeof full, NULL, "cut-gzip-full.gz");
    FILE *f = fopen(full, "rb");
    assert_non_null(f);
    uint8_t gzb[256];
    size_t gl = fread(gzb, 1, sizeof gzb, f);
    fclose(f);
    path_in(p, sizeof p, NULL, "no-trailer.gz");
    write_raw(p, gzb, gl - 8);
    expect_images_fail(p, IL_ERR_FORMAT, "gzip");
    gzb[gl - 8] ^= 0x5a; /* first CRC32 byte */
    path_in(p, sizeof p, NULL, "bad-crc.gz");
    write_raw(p, gzb, gl);
    expect_images_fail(p, IL_ERR_FORMAT, "corrupt gzip");
  }
  free(b);
}

static void test_truncated_header(void **state) {
  (void)state;
  size_t len;
  uint8_t *b = make_images(2, 3, 3, &len);
  char p[512];
  path_in(p, sizeof p, NULL, "short-header-idx3-ubyte");
  write_raw(p, b, 10);
  expect_images_fail(p, IL_ERR_FORMAT, "header");
  path_in(p, sizeof p, NULL, "empty-file");
  write_raw(p, b, 0);
  expect_images_fail(p, IL_ERR_FORMAT, "header");
  path_in(p, sizeof p, NULL, "short-header.gz");
  write_gz(p, b, 10);
  expect_images_fail(p, IL_ERR_FORMAT, "header");
  uint8_t *l = make_labels(4, &len);
  path_in(p, sizeof p, NULL, "short-labels-idx1-ubyte");
  write_raw(p, l, 6);
  expect_labels_fail(p, IL_ERR_FORMAT, "header");
  free(b);
  free(l);
}

static void test_wrong_magic(void **state) {
  (void)state;
  size_t len;
  uint8_t *b = make_images(2, 3, 3, &len);
  char p[512];
  path_in(p, sizeof p, NULL, "bad-magic-idx3-ubyte");
  b[0] = 0x12;
  b[1] = 0x34;
  write_raw(p, b, len);
  expect_images_fail(p, IL_ERR_FORMAT, "magic");
  /* Right shape, wrong element type (0x0D = float). */
  b[0] = 0;
  b[1] = 0;
  b[2] = 0x0d;
  path_in(p, sizeof p, NULL, "float-idx3");
  write_raw(p, b, len);
  expect_images_fail(p, IL_ERR_FORMAT, "0x0d");
  /* A PNG, say. */
  static const uint8_t png[16] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  path_in(p, sizeof p, NULL, "not-idx.png");
  write_raw(p, png, sizeof png);
  expect_labels_fail(p, IL_ERR_FORMAT, "magic");
  free(b);
}

static void test_wrong_rank(void **state) {
  (void)state;
  size_t len;
  uint8_t *b = make_images(2, 3, 3, &len);
  char p[512];
  b[3] = 0x02;
  path_in(p, sizeof p, NULL, "rank2-idx3-ubyte");
  write_raw(p, b, len);
  expect_images_fail(p, IL_ERR_FORMAT, "rank 2");
  /* A label file given as images, and an image file given as labels. */
  uint8_t *l = make_labels(4, &len);
  path_in(p, sizeof p, NULL, "labels-as-images");
  write_raw(p, l, len);
  expect_images_fail(p, IL_ERR_FORMAT, "rank 1");
  free(b);
  b = make_images(2, 3, 3, &len);
  path_in(p, sizeof p, NULL, "images-as-labels");
  write_raw(p, b, len);
  expect_labels_fail(p, IL_ERR_FORMAT, "rank 3");
  free(b);
  free(l);
}

static void test_bad_dimensions(void **state) {
  (void)state;
  size_t len;
  char p[512];
  uint8_t *b = make_images(2, 3, 3, &len);
  put_be32(b + 8, 0); /* rows = 0 */
  path_in(p, sizeof p, NULL, "zero-rows-idx3-ubyte");
  write_raw(p, b, 16);
  expect_images_fail(p, IL_ERR_FORMAT, "zero");
  put_be32(b + 8, 3);
  put_be32(b + 4, 0); /* count = 0 */
  path_in(p, sizeof p, NULL, "zero-count-idx3-ubyte");
  write_raw(p, b, 16);
  expect_images_fail(p, IL_ERR_FORMAT, "zero");
  uint8_t *l = make_labels(1, &len);
  put_be32(l + 4, 0);
  path_in(p, sizeof p, NULL, "zero-labels-idx1-ubyte");
  write_raw(p, l, 8);
  expect_labels_fail(p, IL_ERR_FORMAT, "zero");
  /* Absurd sizes are refused from the header alone (the file is only 16 bytes). */
  put_be32(b + 4, 2);
  put_be32(b + 12, 5000); /* cols */
  path_in(p, sizeof p, NULL, "huge-cols-idx3-ubyte");
  write_raw(p, b, 16);
  expect_images_fail(p, IL_ERR_FORMAT, "5000");
  put_be32(b + 12, 3);
  put_be32(b + 4, 0xffffffffu); /* count */
  path_in(p, sizeof p, NULL, "huge-count-idx3-ubyte");
  write_raw(p, b, 16);
  expect_images_fail(p, IL_ERR_FORMAT, "4294967295");
  /* Plausible header, claims ~7.8 GB, file is 16 bytes: truncated, not an 8 GB malloc. */
  put_be32(b + 4, 10000000);
  put_be32(b + 8, 28);
  put_be32(b + 12, 28);
  path_in(p, sizeof p, NULL, "lying-header-idx3-ubyte");
  write_raw(p, b, 16);
  expect_images_fail(p, IL_ERR_FORMAT, "truncated");
  path_in(p, sizeof p, NULL, "lying-header.gz");
  write_gz(p, b, 16);
  expect_images_fail(p, IL_ERR_FORMAT, "truncated");
  free(b);
  free(l);
}

static void test_trailing_bytes(void **state) {
  (void)state;
  size_t len;
  uint8_t *b = make_images(2, 3, 3, &len);
  uint8_t *b2 = malloc(len + 3);
  assert_non_null(b2);
  memcpy(b2, b, len);
  memset(b2 + len, 0, 3);
  char p[512];
  path_in(p, sizeof p, NULL, "trailing-idx3-ubyte");
  write_raw(p, b2, len + 3);
  expect_images_fail(p, IL_ERR_FORMAT, "trailing");
  assert_non_null(strstr(il_error_message(), "37")); /* actual size */
  path_in(p, sizeof p, NULL, "trailing-idx3-ubyte.gz");
  write_gz(p, b2, len + 3);
  expect_images_fail(p, IL_ERR_FORMAT, "trailing");
  uint8_t *l = make_labels(4, &len);
  l = realloc(l, len + 1);
  assert_non_null(l);
  l[len] = 2;
  path_in(p, sizeof p, NULL, "trailing-labels-idx1-ubyte");
  write_raw(p, l, len + 1);
  expect_labels_fail(p, IL_ERR_FORMAT, "trailing");
  free(b);
  free(b2);
  free(l);
}

static void test_label_out_of_range(void **state) {
  (void)state;
  size_t len;
  uint8_t *l = make_labels(6, &len);
  l[8 + 4] = 10;
  char p[512];
  path_in(p, sizeof p, NULL, "label10-idx1-ubyte");
  write_raw(p, l, len);
  expect_labels_fail(p, IL_ERR_FORMAT, "index 4");
  assert_non_null(strstr(il_error_message(), "10"));
  path_in(p, sizeof p, NULL, "label10-idx1-ubyte.gz");
  write_gz(p, l, len);
  expect_labels_fail(p, IL_ERR_FORMAT, "index 4");
  l[8 + 4] = 9; /* 9 is fine */
  path_in(p, sizeof p, NULL, "label9-idx1-ubyte");
  write_raw(p, l, len);
  il_idx_labels lb;
  il_error_clear();
  assert_int_equal(il_idx_read_labels(p, &lb), IL_OK);
  assert_int_equal(lb.labels[4], 9);
  il_idx_labels_free(&lb);
  free(l);
}

static void test_count_mismatch(void **state) {
  (void)state;
  mkdir_in("mismatch");
  char ip[512], lp[512], dir[512];
  path_in(ip, sizeof ip, "mismatch", "train-images-idx3-ubyte");
  path_in(lp, sizeof lp, "mismatch", "train-labels-idx1-ubyte.gz");
  path_in(dir, sizeof dir, NULL, "mismatch");
  size_t il, ll;
  uint8_t *ib = make_images(3, 2, 2, &il);
  uint8_t *lb = make_labels(7, &ll);
  write_raw(ip, ib, il);
  write_gz(lp, lb, ll);
  il_mnist_split sp;
  memset(&sp, 0xab, sizeof sp);
  il_error_clear();
  il_status s = il_mnist_load_split(dir, "train", &sp);
  expect_error(s, IL_ERR_FORMAT, ip, lp);
  assert_non_null(strstr(il_error_message(), "3 images"));
  assert_non_null(strstr(il_error_message(), "7 labels"));
  assert_null(sp.images.pixels);
  assert_null(sp.labels.labels);
  assert_int_equal(sp.images.count, 0);
  /* A damaged file inside a split is reported with its own name. */
  ib[3] = 1;
  write_raw(ip, ib, il);
  il_error_clear();
  s = il_mnist_load_split(dir, "train", &sp);
  expect_error(s, IL_ERR_FORMAT, ip, "rank 1");
  assert_null(sp.images.pixels);
  free(ib);
  free(lb);
}

static void test_missing_file(void **state) {
  (void)state;
  char p[512];
  path_in(p, sizeof p, NULL, "no-such-file-idx3-ubyte");
  expect_images_fail(p, IL_ERR_IO, "No such file");
  expect_labels_fail(p, IL_ERR_IO, "No such file");
  /* A directory where a file is expected. */
  mkdir_in("raw");
  path_in(p, sizeof p, NULL, "raw");
  expect_images_fail(p, IL_ERR_IO, "directory");
  /* load_split: the images exist, the labels (raw and .gz) do not. */
  mkdir_in("nolabels");
  char ip[512], dir[512];
  path_in(ip, sizeof ip, "nolabels", "t10k-images-idx3-ubyte");
  path_in(dir, sizeof dir, NULL, "nolabels");
  size_t il;
  uint8_t *ib = make_images(1, 2, 2, &il);
  write_raw(ip, ib, il);
  il_mnist_split sp;
  il_error_clear();
  il_status s = il_mnist_load_split(dir, "t10k", &sp);
  expect_error(s, IL_ERR_IO, "t10k-labels-idx1-ubyte", "No such file");
  assert_non_null(strstr(il_error_message(), dir));
  assert_null(sp.images.pixels);
  free(ib);
}

static void test_missing_directory(void **state) {
  (void)state;
  char d[512], p[512];
  path_in(d, sizeof d, NULL, "no-such-dir");
  path_in(p, sizeof p, "no-such-dir", "train-images-idx3-ubyte");
  expect_images_fail(p, IL_ERR_IO, "No such file");
  il_mnist_split sp;
  il_error_clear();
  il_status s = il_mnist_load_split(d, "train", &sp);
  expect_error(s, IL_ERR_IO, d, "No such file");
  assert_null(sp.images.pixels);
  /* Bad arguments. */
  il_error_clear();
  assert_int_equal(il_mnist_load_split(d, "", &sp), IL_ERR_ARG);
  il_error_clear();
  assert_int_equal(il_mnist_load_split("", "train", &sp), IL_ERR_ARG);
  il_error_clear();
}

/* ---- the real files --------------------------------------------------- */

static void test_real_mnist(void **state) {
  (void)state;
  const char *dir = getenv("ILBENCH_MNIST_DIR");
  if (!dir || !dir[0]) {
    print_message("ILBENCH_MNIST_DIR is not set: skipping the real-MNIST check "
                  "(run scripts/fetch-mnist and set it to data/mnist)\n");
    skip();
  }
  il_mnist_split tr, te;
  il_error_clear();
  il_status s = il_mnist_load_split(dir, "train", &tr);
  if (s != IL_OK) print_error("%s\n", il_error_message());
  assert_int_equal(s, IL_OK);
  assert_int_equal(tr.images.count, 60000);
  assert_int_equal(tr.labels.count, 60000);
  assert_int_equal(tr.images.rows, 28);
  assert_int_equal(tr.images.cols, 28);
  s = il_mnist_load_split(dir, "t10k", &te);
  if (s != IL_OK) print_error("%s\n", il_error_message());
  assert_int_equal(s, IL_OK);
  assert_int_equal(te.images.count, 10000);
  assert_int_equal(te.labels.count, 10000);
  assert_int_equal(te.images.rows, 28);
  assert_int_equal(te.images.cols, 28);

  size_t htr[10] = {0}, hte[10] = {0};
  for (size_t i = 0; i < tr.labels.count; i++) htr[tr.labels.labels[i]]++;
  for (size_t i = 0; i < te.labels.count; i++) hte[te.labels.labels[i]]++;
  for (int d = 0; d < 10; d++) {
    if (htr[d] < 5000 || htr[d] > 7000 || hte[d] < 800 || hte[d] > 1200)
      print_error("digit %d: %zu train, %zu test\n", d, htr[d], hte[d]);
    assert_in_range(htr[d], 5000, 7000);
    assert_in_range(hte[d], 800, 1200);
  }
  /* Well-known facts about the canonical files. */
  assert_int_equal(htr[1], 6742);
  assert_int_equal(htr[5], 5421);
  assert_int_equal(tr.labels.labels[0], 5);
  assert_int_equal(te.labels.labels[0], 7);
  uint8_t mx = 0;
  size_t nz = 0;
  for (size_t i = 0; i < 784; i++) {
    if (tr.images.pixels[i] > mx) mx = tr.images.pixels[i];
    nz += tr.images.pixels[i] != 0;
  }
  assert_int_equal(mx, 255);
  assert_in_range(nz, 100, 300); /* a digit, not a blank or a full frame */
  assert_int_equal(tr.images.pixels[0], 0); /* corners are background */
  il_mnist_split_free(&tr);
  il_mnist_split_free(&te);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_valid_raw),
      cmocka_unit_test(test_valid_gzip),
      cmocka_unit_test(test_truncated_images),
      cmocka_unit_test(test_truncated_header),
      cmocka_unit_test(test_wrong_magic),
      cmocka_unit_test(test_wrong_rank),
      cmocka_unit_test(test_bad_dimensions),
      cmocka_unit_test(test_trailing_bytes),
      cmocka_unit_test(test_label_out_of_range),
      cmocka_unit_test(test_count_mismatch),
      cmocka_unit_test(test_missing_file),
      cmocka_unit_test(test_missing_directory),
      cmocka_unit_test(test_real_mnist),
  };
  return cmocka_run_group_tests_name("il_mnist_idx", tests, group_setup, group_teardown);
}
