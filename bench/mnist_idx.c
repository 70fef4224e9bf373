/* bench/mnist_idx.c: reader for MNIST-style idx files, raw or gzip-compressed.
 *
 * An idx file is a 4-byte magic (0x00, 0x00, type, rank), `rank` big-endian
 * uint32 dimensions, then the elements in row-major order. We accept only
 * type 0x08 (unsigned byte): rank 3 for images, rank 1 for labels.
 *
 * Everything in the header is validated before anything is allocated: the
 * magic, each dimension (non-zero and below a sanity limit), and the product
 * of the dimensions (no size_t overflow). For a raw regular file the file size
 * is then checked against header + payload, so a lying header never causes a
 * large allocation. A gzip stream's decompressed size is not known in advance,
 * so the payload buffer grows as data arrives, up to the size the header claims.
 * The file must hold exactly header + payload bytes: short is "truncated", long
 * is "trailing bytes". Every error message names the file. Only regular files
 * are read: a FIFO, socket, device or directory is refused before it is opened. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "mnist_idx.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include <zlib.h>

enum {
  IDX_TYPE_UBYTE = 0x08,
  IDX_MAX_SIDE = 4096,          /* rows, cols */
  IDX_MAX_COUNT = 100000000,    /* images or labels */
  IDX_GZ_FIRST_CHUNK = 1 << 20, /* first buffer for a gzip payload; doubles */
  IDX_GZ_MAX_READ = 1 << 30     /* gzread takes an unsigned length */
};

/* One open idx file: a raw file descriptor or a gzip stream. */
typedef struct idx_src {
  const char *path;
  int fd;        /* raw: owned; -1 once handed to gz */
  gzFile gz;     /* gzip: owns its descriptor */
  int is_gz;
  int size_known; /* raw regular file: `file_size` is exact */
  size_t file_size;
} idx_src;

static void src_close(idx_src *s) {
  if (s->gz) gzclose(s->gz);
  if (s->fd >= 0) close(s->fd);
  s->gz = NULL;
  s->fd = -1;
}

/* What a non-regular file is, for the message that refuses it. */
static const char *file_kind(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO (named pipe)";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  return "not a regular file";
}

static il_status refuse_kind(const char *path, mode_t m) {
  return IL_ERR(IL_ERR_IO, "cannot read '%s': it is %s; idx files must be regular files (raw or gzip)", path,
                file_kind(m));
}

/* Open `path`, detect gzip by its magic bytes 1f 8b, and position at byte 0.
 * Only regular files are read. The path is checked before it is opened, because
 * open() on a FIFO blocks until a writer appears (forever, for a stray mkfifo) and
 * opening a device can have side effects. O_NONBLOCK covers a path swapped for a
 * FIFO between stat and open, and fstat checks what was actually opened. */
static il_status src_open(idx_src *s, const char *path) {
  memset(s, 0, sizeof *s);
  s->path = path;
  s->fd = -1;
  struct stat st;
  if (stat(path, &st) != 0) {
    int e = errno;
    return IL_ERR(IL_ERR_IO, "cannot open '%s': %s", path, strerror(e));
  }
  if (!S_ISREG(st.st_mode)) return refuse_kind(path, st.st_mode);
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    return IL_ERR(IL_ERR_IO, "cannot open '%s': %s", path, strerror(e));
  }
  s->fd = fd;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    src_close(s);
    return IL_ERR(IL_ERR_IO, "cannot stat '%s': %s", path, strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    src_close(s);
    return refuse_kind(path, st.st_mode);
  }
  const int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK); /* no effect on regular files; tidy */
  unsigned char magic[2] = {0, 0};
  ssize_t got = 0;
  for (;;) {
    got = read(fd, magic, sizeof magic);
    if (got >= 0 || errno != EINTR) break;
  }
  if (got < 0) {
    int e = errno;
    src_close(s);
    return IL_ERR(IL_ERR_IO, "cannot read '%s': %s", path, strerror(e));
  }
  if (lseek(fd, 0, SEEK_SET) != 0) {
    int e = errno;
    src_close(s);
    return IL_ERR(IL_ERR_IO, "cannot rewind '%s': %s", path, strerror(e));
  }
  if (got == 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
    s->is_gz = 1;
    s->gz = gzdopen(fd, "rb");
    if (!s->gz) {
      src_close(s);
      return IL_ERR(IL_ERR_NOMEM, "cannot start gzip decompression of '%s'", path);
    }
    s->fd = -1; /* the gzFile owns it now */
  } else {
    s->size_known = 1;
    s->file_size = (size_t)st.st_size;
  }
  return IL_OK;
}

/* Read up to `n` bytes; `*got` < n only at end of data. */
static il_status src_read(idx_src *s, void *buf, size_t n, size_t *got) {
  unsigned char *p = buf;
  size_t done = 0;
  while (done < n) {
    size_t want = n - done;
    if (s->is_gz) {
      if (want > (size_t)IDX_GZ_MAX_READ) want = (size_t)IDX_GZ_MAX_READ;
      int r = gzread(s->gz, p + done, (unsigned)want);
      if (r < 0) {
        int errnum = Z_OK;
        const char *msg = gzerror(s->gz, &errnum);
        *got = done;
        if (errnum == Z_ERRNO) {
          int e = errno;
          return IL_ERR(IL_ERR_IO, "cannot read '%s': %s", s->path, strerror(e));
        }
        /* gzdopen names the stream "<fd:N>"; the path is already in our message. */
        if (msg && strncmp(msg, "<fd:", 4) == 0 && strstr(msg, ": ")) msg = strstr(msg, ": ") + 2;
        return IL_ERR(IL_ERR_FORMAT, "'%s': corrupt gzip data: %s", s->path, msg ? msg : "?");
      }
      if (r == 0) break;
      done += (size_t)r;
    } else {
      if (want > (size_t)SSIZE_MAX) want = (size_t)SSIZE_MAX;
      ssize_t r = read(s->fd, p + done, want);
      if (r < 0) {
        if (errno == EINTR) continue;
        int e = errno;
        *got = done;
        return IL_ERR(IL_ERR_IO, "cannot read '%s': %s", s->path, strerror(e));
      }
      if (r == 0) break;
      done += (size_t)r;
    }
  }
  *got = done;
  return IL_OK;
}

/* zlib reports a gzip stream cut short (no trailer) as Z_BUF_ERROR, not as a read error. */
static int src_gz_cut_short(idx_src *s) {
  if (!s->is_gz) return 0;
  int errnum = Z_OK;
  (void)gzerror(s->gz, &errnum);
  return errnum == Z_BUF_ERROR;
}

/* What the byte counts in messages refer to. */
static const char *src_what(const idx_src *s) { return s->is_gz ? "decompressed data" : "file"; }

static uint32_t be32(const unsigned char *b) {
  return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | (uint32_t)b[3];
}

/* Read and validate the header of a rank-`rank` ubyte idx file; dims[] gets the sizes and
 * *payload the element count (overflow-checked). */
static il_status read_header(idx_src *s, unsigned rank, const char *what, size_t dims[3],
                             size_t *payload) {
  unsigned char hdr[4 + 4 * 3];
  const size_t hdr_len = 4 + 4 * (size_t)rank;
  /* The magic first, so that e.g. a short label file given as images is named as such. */
  size_t got = 0;
  IL_CHECK(src_read(s, hdr, 4, &got));
  const int magic_ok =
      got == 4 && hdr[0] == 0 && hdr[1] == 0 && hdr[2] == IDX_TYPE_UBYTE && hdr[3] == rank;
  if (magic_ok) {
    size_t more = 0;
    IL_CHECK(src_read(s, hdr + 4, hdr_len - 4, &more));
    got += more;
  }
  if (got < 4 || (magic_ok && got < hdr_len)) {
    if (src_gz_cut_short(s))
      return IL_ERR(IL_ERR_FORMAT,
                    "'%s': truncated header: gzip stream ends after %zu decompressed bytes, "
                    "an idx%u header needs %zu",
                    s->path, got, rank, hdr_len);
    return IL_ERR(IL_ERR_FORMAT,
                  "'%s': truncated header: expected at least %zu bytes for an idx%u header, "
                  "%s has %zu bytes",
                  s->path, hdr_len, rank, src_what(s), got);
  }
  if (hdr[0] != 0 || hdr[1] != 0)
    return IL_ERR(IL_ERR_FORMAT,
                  "'%s': bad idx magic 0x%02x%02x%02x%02x: expected 0x000008%02x (%s); "
                  "not an idx file",
                  s->path, hdr[0], hdr[1], hdr[2], hdr[3], rank, what);
  if (hdr[2] != IDX_TYPE_UBYTE)
    return IL_ERR(IL_ERR_FORMAT,
                  "'%s': idx element type 0x%02x is not supported: expected 0x08 (unsigned byte)",
                  s->path, hdr[2]);
  if (hdr[3] != rank)
    return IL_ERR(IL_ERR_FORMAT,
                  "'%s': idx rank %u, expected %u (%s: magic 0x000008%02x); is this the "
                  "wrong file?",
                  s->path, hdr[3], rank, what, rank);
  static const char *const names3[3] = {"count", "rows", "cols"};
  size_t prod = 1;
  for (unsigned i = 0; i < rank; i++) {
    uint32_t d = be32(hdr + 4 + 4 * i);
    const char *name = rank == 3 ? names3[i] : "count";
    uint32_t limit = (i == 0) ? IDX_MAX_COUNT : IDX_MAX_SIDE;
    if (d == 0)
      return IL_ERR(IL_ERR_FORMAT, "'%s': idx dimension %u (%s) is zero", s->path, i, name);
    if (d > limit)
      return IL_ERR(IL_ERR_FORMAT, "'%s': idx dimension %u (%s) = %lu exceeds the limit %lu",
                    s->path, i, name, (unsigned long)d, (unsigned long)limit);
    if (prod > SIZE_MAX / d)
      return IL_ERR(IL_ERR_NOMEM, "'%s': idx dimensions overflow size_t", s->path);
    prod *= d;
    dims[i] = d;
  }
  if (prod > SIZE_MAX - hdr_len)
    return IL_ERR(IL_ERR_NOMEM, "'%s': idx dimensions overflow size_t", s->path);
  *payload = prod;
  return IL_OK;
}

/* Read exactly `payload` bytes after a `hdr_len`-byte header, then require end of data.
 * On success *out is a malloc'd buffer the caller owns. */
static il_status read_payload(idx_src *s, size_t hdr_len, size_t payload, uint8_t **out) {
  *out = NULL;
  const size_t expected = hdr_len + payload;
  if (s->size_known) {
    if (s->file_size < expected)
      return IL_ERR(IL_ERR_FORMAT, "'%s': truncated: expected %zu bytes (header %zu + data %zu), "
                    "file has %zu bytes",
                    s->path, expected, hdr_len, payload, s->file_size);
    if (s->file_size > expected)
      return IL_ERR(IL_ERR_FORMAT,
                    "'%s': %zu bytes of trailing data: expected %zu bytes (header %zu + data %zu), "
                    "file has %zu bytes",
                    s->path, s->file_size - expected, expected, hdr_len, payload, s->file_size);
  }
  /* Raw files of known size: allocate it all. Otherwise grow, so that a small corrupt
   * gzip file with a huge header does not make us allocate the claimed size. */
  size_t cap = payload;
  if (!s->size_known && cap > (size_t)IDX_GZ_FIRST_CHUNK) cap = (size_t)IDX_GZ_FIRST_CHUNK;
  uint8_t *buf = malloc(cap);
  if (!buf)
    return IL_ERR(IL_ERR_NOMEM, "'%s': cannot allocate %zu bytes", s->path, cap);
  size_t have = 0;
  il_status st = IL_OK;
  for (;;) {
    size_t got = 0;
    st = src_read(s, buf + have, cap - have, &got);
    if (st != IL_OK) goto fail;
    have += got;
    if (have < cap) break; /* end of data */
    if (cap == payload) break;
    size_t ncap = cap > payload / 2 ? payload : cap * 2;
    uint8_t *nb = realloc(buf, ncap);
    if (!nb) {
      st = IL_ERR(IL_ERR_NOMEM, "'%s': cannot allocate %zu bytes", s->path, ncap);
      goto fail;
    }
    buf = nb;
    cap = ncap;
  }
  if (have < payload) {
    if (src_gz_cut_short(s))
      st = IL_ERR(IL_ERR_FORMAT,
                  "'%s': truncated: gzip stream ends early; expected %zu decompressed bytes "
                  "(header %zu + data %zu), got %zu",
                  s->path, expected, hdr_len, payload, hdr_len + have);
    else
      st = IL_ERR(IL_ERR_FORMAT,
                  "'%s': truncated: expected %zu bytes (header %zu + data %zu), %s has %zu "
                  "bytes",
                  s->path, expected, hdr_len, payload, src_what(s), hdr_len + have);
    goto fail;
  }
  /* Anything after the payload is an error; count it for the message. */
  size_t extra = 0;
  for (;;) {
    unsigned char tail[4096];
    size_t got = 0;
    st = src_read(s, tail, sizeof tail, &got);
    if (st != IL_OK) goto fail;
    extra += got;
    if (got < sizeof tail) break;
  }
  if (extra > 0) {
    st = IL_ERR(IL_ERR_FORMAT,
                "'%s': %zu bytes of trailing data: expected %zu bytes (header %zu + data %zu), "
                "%s has %zu bytes",
                s->path, extra, expected, hdr_len, payload, src_what(s), expected + extra);
    goto fail;
  }
  if (src_gz_cut_short(s)) {
    st = IL_ERR(IL_ERR_FORMAT,
                "'%s': gzip stream is cut short (no trailer); the data cannot be verified",
                s->path);
    goto fail;
  }
  *out = buf;
  return IL_OK;
fail:
  free(buf);
  return st;
}

il_status il_idx_read_images(const char *path, il_idx_images *out) {
  if (!out) return IL_ERR(IL_ERR_ARG, "il_idx_read_images('%s'): out is NULL", path ? path : "(null)");
  memset(out, 0, sizeof *out);
  if (!path || !path[0]) return IL_ERR(IL_ERR_ARG, "il_idx_read_images: empty path ''");
  idx_src s;
  IL_CHECK(src_open(&s, path));
  size_t dims[3] = {0, 0, 0}, payload = 0;
  uint8_t *px = NULL;
  il_status st;
  IL_CHECK_GOTO(st, read_header(&s, 3, "images", dims, &payload), done);
  IL_CHECK_GOTO(st, read_payload(&s, 16, payload, &px), done);
  out->pixels = px;
  out->count = dims[0];
  out->rows = dims[1];
  out->cols = dims[2];
done:
  src_close(&s);
  return st;
}

il_status il_idx_read_labels(const char *path, il_idx_labels *out) {
  if (!out) return IL_ERR(IL_ERR_ARG, "il_idx_read_labels('%s'): out is NULL", path ? path : "(null)");
  memset(out, 0, sizeof *out);
  if (!path || !path[0]) return IL_ERR(IL_ERR_ARG, "il_idx_read_labels: empty path ''");
  idx_src s;
  IL_CHECK(src_open(&s, path));
  size_t dims[3] = {0, 0, 0}, payload = 0;
  uint8_t *lb = NULL;
  il_status st;
  IL_CHECK_GOTO(st, read_header(&s, 1, "labels", dims, &payload), done);
  IL_CHECK_GOTO(st, read_payload(&s, 8, payload, &lb), done);
  for (size_t i = 0; i < payload; i++) {
    if (lb[i] > 9) {
      st = IL_ERR(IL_ERR_FORMAT, "'%s': label %u at index %zu is out of range 0..9", path,
                  (unsigned)lb[i], i);
      free(lb);
      goto done;
    }
  }
  out->labels = lb;
  out->count = dims[0];
done:
  src_close(&s);
  return st;
}

void il_idx_images_free(il_idx_images *im) {
  if (!im) return;
  free(im->pixels);
  memset(im, 0, sizeof *im);
}

void il_idx_labels_free(il_idx_labels *lb) {
  if (!lb) return;
  free(lb->labels);
  memset(lb, 0, sizeof *lb);
}

/* "<dir>/<prefix>-<kind>" plus room for ".gz"; NULL when out of memory. */
static char *split_path(const char *dir, const char *prefix, const char *kind) {
  size_t dl = strlen(dir);
  while (dl > 1 && dir[dl - 1] == '/') dl--;
  size_t n = dl + 1 + strlen(prefix) + 1 + strlen(kind) + 3 + 1;
  char *p = malloc(n);
  if (!p) return NULL;
  memcpy(p, dir, dl);
  p[dl] = '\0';
  strcat(p, "/");
  strcat(p, prefix);
  strcat(p, "-");
  strcat(p, kind);
  return p;
}

/* Use the raw name if it exists, else "<name>.gz"; if neither exists, report both. */
static il_status pick_existing(char *path) {
  struct stat st;
  if (stat(path, &st) == 0) return IL_OK;
  int e = errno;
  if (e != ENOENT) return IL_ERR(IL_ERR_IO, "cannot open '%s': %s", path, strerror(e));
  size_t n = strlen(path);
  strcpy(path + n, ".gz");
  if (stat(path, &st) == 0) return IL_OK;
  int e2 = errno;
  if (e2 != ENOENT) return IL_ERR(IL_ERR_IO, "cannot open '%s': %s", path, strerror(e2));
  path[n] = '\0';
  return IL_ERR(IL_ERR_IO, "cannot open '%s' (nor '%s.gz'): %s", path, path, strerror(e));
}

il_status il_mnist_load_split(const char *dir, const char *prefix, il_mnist_split *out) {
  if (!out) return IL_ERR(IL_ERR_ARG, "il_mnist_load_split('%s'): out is NULL", dir ? dir : "(null)");
  memset(out, 0, sizeof *out);
  if (!dir || !dir[0]) return IL_ERR(IL_ERR_ARG, "il_mnist_load_split: empty data directory ''");
  if (!prefix || !prefix[0] || strchr(prefix, '/'))
    return IL_ERR(IL_ERR_ARG, "il_mnist_load_split('%s'): bad split prefix '%s' (train or t10k)",
                  dir, prefix ? prefix : "(null)");
  struct stat st;
  if (stat(dir, &st) != 0) {
    int e = errno;
    return IL_ERR(IL_ERR_IO, "cannot open MNIST directory '%s': %s (run scripts/fetch-mnist)",
                  dir, strerror(e));
  }
  if (!S_ISDIR(st.st_mode))
    return IL_ERR(IL_ERR_IO, "cannot open MNIST directory '%s': %s", dir, strerror(ENOTDIR));

  il_status s = IL_OK;
  char *ipath = split_path(dir, prefix, "images-idx3-ubyte");
  char *lpath = split_path(dir, prefix, "labels-idx1-ubyte");
  if (!ipath || !lpath) {
    s = IL_ERR(IL_ERR_NOMEM, "il_mnist_load_split('%s', '%s'): out of memory", dir, prefix);
    goto done;
  }
  IL_CHECK_GOTO(s, pick_existing(ipath), done);
  IL_CHECK_GOTO(s, pick_existing(lpath), done);
  IL_CHECK_GOTO(s, il_idx_read_images(ipath, &out->images), done);
  IL_CHECK_GOTO(s, il_idx_read_labels(lpath, &out->labels), done);
  if (out->images.count != out->labels.count) {
    s = IL_ERR(IL_ERR_FORMAT, "MNIST split '%s': '%s' has %zu images but '%s' has %zu labels",
               prefix, ipath, out->images.count, lpath, out->labels.count);
    goto done;
  }
done:
  if (s != IL_OK) il_mnist_split_free(out);
  free(ipath);
  free(lpath);
  return s;
}

void il_mnist_split_free(il_mnist_split *s) {
  if (!s) return;
  il_idx_images_free(&s->images);
  il_idx_labels_free(&s->labels);
}
