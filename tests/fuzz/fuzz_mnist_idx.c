/* tests/fuzz/fuzz_mnist_idx.c: libFuzzer target for the MNIST idx reader (bench/mnist_idx.c).
 *
 * The reader takes a path, so each input is written to an in-memory file (memfd_create, a
 * regular file that never touches the disk) and read back through /proc/self/fd/N, both as
 * an idx3 image file and as an idx1 label file. The first input byte picks how the rest
 * reaches the reader:
 *   bit 0 clear: the bytes as they are (raw idx, or a gzip stream when they start 1f 8b);
 *   bit 0 set:   gzip-compressed by this harness first, so that the fuzzer explores the idx
 *                parsing behind the gzip path (size not known in advance, growing buffer);
 *   bits 0 and 1 set: that gzip stream cut short by (second byte) bytes, or its last
 *                byte flipped when bit 2 is set too (a corrupt trailer).
 * Properties checked besides "no crash, no sanitizer report": a success gives exactly the
 * shape the header claims, with labels in 0..9; a failure leaves the output zeroed and records
 * a message that names the file. */
#define _GNU_SOURCE
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include "il_status.h"
#include "mnist_idx.h"

static int g_fd = -1;
static char g_path[64];

static void put_file(const uint8_t *p, size_t n) {
  if (g_fd < 0) {
    g_fd = memfd_create("fuzz_idx", 0);
    if (g_fd < 0) {
      /* no memfd (old kernel, seccomp): a temp file */
      char tmpl[] = "/tmp/fuzz_idx.XXXXXX";
      g_fd = mkstemp(tmpl);
      if (g_fd < 0) abort();
      unlink(tmpl);
    }
    snprintf(g_path, sizeof g_path, "/proc/self/fd/%d", g_fd);
  }
  if (ftruncate(g_fd, 0) != 0) abort();
  size_t done = 0;
  while (done < n) {
    ssize_t w = pwrite(g_fd, p + done, n - done, (off_t)done);
    if (w <= 0) abort();
    done += (size_t)w;
  }
}

/* gzip-compress src into a malloc'd buffer; NULL on failure. */
static uint8_t *gzip_bytes(const uint8_t *src, size_t n, size_t *out_n) {
  z_stream z;
  memset(&z, 0, sizeof z);
  if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return NULL;
  size_t cap = deflateBound(&z, (uLong)n) + 32;
  uint8_t *out = malloc(cap);
  if (!out) {
    deflateEnd(&z);
    return NULL;
  }
  z.next_in = (Bytef *)src;
  z.avail_in = (uInt)n;
  z.next_out = out;
  z.avail_out = (uInt)cap;
  int r = deflate(&z, Z_FINISH);
  *out_n = cap - z.avail_out;
  deflateEnd(&z);
  if (r != Z_STREAM_END) {
    free(out);
    return NULL;
  }
  return out;
}

static void check_failure(void) {
  const char *msg = il_error_message();
  assert(msg && msg[0]);
  assert(strstr(msg, g_path) != NULL); /* every error names the file */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > (1u << 22)) return 0;
  const uint8_t mode = data[0];
  const uint8_t *body = data + 1;
  size_t n = size - 1;
  uint8_t *gz = NULL;
  if (mode & 1) {
    size_t gn = 0;
    gz = gzip_bytes(body, n, &gn);
    if (!gz) return 0;
    if ((mode & 2) && gn > 0) {
      if ((mode & 4)) gz[gn - 1] ^= 0x5a;
      else {
        const size_t cut = n > 0 ? (size_t)body[0] % (gn + 1) : 1;
        gn -= cut < gn ? cut : gn - 1;
      }
    }
    put_file(gz, gn);
  } else {
    put_file(body, n);
  }

  il_idx_images im;
  il_error_clear();
  if (il_idx_read_images(g_path, &im) == IL_OK) {
    assert(im.pixels && im.count > 0 && im.rows > 0 && im.cols > 0);
    /* touch every pixel: ASan checks the buffer really has count*rows*cols bytes */
    unsigned sum = 0;
    for (size_t i = 0; i < im.count * im.rows * im.cols; i++) sum += im.pixels[i];
    (void)sum;
    il_idx_images_free(&im);
    assert(im.pixels == NULL && im.count == 0);
  } else {
    assert(im.pixels == NULL && im.count == 0 && im.rows == 0 && im.cols == 0);
    check_failure();
  }

  il_idx_labels lb;
  il_error_clear();
  if (il_idx_read_labels(g_path, &lb) == IL_OK) {
    assert(lb.labels && lb.count > 0);
    for (size_t i = 0; i < lb.count; i++) assert(lb.labels[i] <= 9);
    il_idx_labels_free(&lb);
  } else {
    assert(lb.labels == NULL && lb.count == 0);
    check_failure();
  }
  il_error_clear();
  free(gz);
  return 0;
}
