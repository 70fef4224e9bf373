/* bench/results_merge.c: merge results files (serial, one process).
 * Every input is checked (schema name and major version, run ids unique over
 * all inputs) before the output is created, so a refused merge writes nothing.
 *
 * Atomic: the output is written to a temporary file in its directory, synced,
 * then renamed over the output (and the directory synced). A merge that fails
 * at any point (a full disk included) removes the temporary and leaves the old
 * output and every input as they were; --force replaces the old output only
 * with a complete new one.
 *
 * Versions: the merge copies run groups verbatim and the first input's root
 * attributes, so merging inputs that all have one major version is safe for
 * any version this program knows (IL_H5_SCHEMA_VERSION_OLDEST..
 * IL_H5_SCHEMA_VERSION): the output is a file of that version. Inputs of
 * different major versions are refused: the output's root would claim one
 * version while some of its runs had another's tables. */
#define _GNU_SOURCE /* renameat2 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#ifndef NAME_MAX
#define NAME_MAX 255
#endif

#include "results_h5.h"
#include "results_h5_internal.h"
#include "results_merge.h"

typedef struct run_ref {
  char *name;
  int input; /* index into inputs */
} run_ref;

typedef struct run_list {
  run_ref *v;
  size_t n, cap;
  int input;
  int nomem;
} run_list;

static herr_t collect_cb(hid_t g, const char *name, const H5L_info_t *info, void *p) {
  run_list *l = p;
  (void)g;
  (void)info;
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 16;
    run_ref *v = realloc(l->v, cap * sizeof *v);
    if (!v) {
      l->nomem = 1;
      return -1;
    }
    l->v = v;
    l->cap = cap;
  }
  char *s = strdup(name);
  if (!s) {
    l->nomem = 1;
    return -1;
  }
  l->v[l->n].name = s;
  l->v[l->n].input = l->input;
  l->n++;
  return 0;
}

static int cmp_run(const void *a, const void *b) {
  const run_ref *x = a, *y = b;
  int c = strcmp(x->name, y->name);
  return c ? c : (x->input > y->input) - (x->input < y->input);
}

/* Copy every root attribute of src except those named in skip (NULL-terminated). */
static il_status copy_root_attrs(hid_t src, hid_t dst, const char *src_path, const char *dst_path,
                                 const char *const *skip) {
  H5O_info_t oi;
  if (H5Oget_info2(src, &oi, H5O_INFO_NUM_ATTRS) < 0)
    return IL_H5_FAIL(IL_ERR_FORMAT, src_path, "cannot count root attributes");
  for (hsize_t i = 0; i < oi.num_attrs; i++) {
    il_status st = IL_OK;
    hid_t a = -1, t = -1, sp = -1, na = -1;
    char *name = NULL;
    void *buf = NULL;
    int read_ok = 0;
    if ((a = H5Aopen_by_idx(src, ".", H5_INDEX_NAME, H5_ITER_INC, i, H5P_DEFAULT, H5P_DEFAULT)) < 0) {
      st = IL_H5_FAIL(IL_ERR_FORMAT, src_path, "cannot open root attribute %llu", (unsigned long long)i);
      goto next;
    }
    ssize_t nl = H5Aget_name(a, 0, NULL);
    if (nl < 0 || !(name = malloc((size_t)nl + 1)) || H5Aget_name(a, (size_t)nl + 1, name) < 0) {
      st = IL_H5_FAIL(IL_ERR_FORMAT, src_path, "cannot read the name of root attribute %llu", (unsigned long long)i);
      goto next;
    }
    int skipped = 0;
    for (const char *const *s = skip; *s; s++)
      if (strcmp(name, *s) == 0) skipped = 1;
    if (skipped) goto next;
    if ((t = H5Aget_type(a)) < 0 || (sp = H5Aget_space(a)) < 0) {
      st = IL_H5_FAIL(IL_ERR_FORMAT, src_path, "cannot read root attribute '%s'", name);
      goto next;
    }
    hssize_t np = H5Sget_simple_extent_npoints(sp);
    size_t ts = H5Tget_size(t);
    if (np < 0 || ts == 0 || !(buf = calloc((size_t)(np > 0 ? np : 1), ts))) {
      st = IL_ERR(IL_ERR_NOMEM, "results file '%s': cannot buffer root attribute '%s'", src_path, name);
      goto next;
    }
    if (H5Aread(a, t, buf) < 0) {
      st = IL_H5_FAIL(IL_ERR_FORMAT, src_path, "cannot read root attribute '%s'", name);
      goto next;
    }
    /* reclaim whatever variable-length data the read allocated, also inside arrays and compounds
     * (H5Tis_variable_str does not see a vlen string inside an array); a no-op for other types */
    read_ok = 1;
    if ((na = H5Acreate2(dst, name, t, sp, H5P_DEFAULT, H5P_DEFAULT)) < 0 || H5Awrite(na, t, buf) < 0)
      st = IL_H5_FAIL(IL_ERR_IO, dst_path, "cannot write root attribute '%s'", name);
  next:
    if (buf && read_ok) H5Dvlen_reclaim(t, sp, H5P_DEFAULT, buf);
    free(buf);
    free(name);
    if (na >= 0) H5Aclose(na);
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    if (st != IL_OK) return st;
  }
  return IL_OK;
}

/* 1-D array of fixed-length strings. */
static il_status set_str_array_attr(hid_t obj, const char *name, const char *const *v, int n, const char *path) {
  il_status st = IL_OK;
  size_t w = 1;
  for (int i = 0; i < n; i++)
    if (strlen(v[i]) + 1 > w) w = strlen(v[i]) + 1;
  char *buf = calloc((size_t)n, w);
  hid_t t = -1, sp = -1, a = -1;
  hsize_t dims = (hsize_t)n;
  if (!buf) return IL_ERR(IL_ERR_NOMEM, "results file '%s': no memory for attribute '%s'", path, name);
  for (int i = 0; i < n; i++) memcpy(buf + (size_t)i * w, v[i], strlen(v[i]));
  if ((t = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_size(t, w) < 0 || H5Tset_strpad(t, H5T_STR_NULLTERM) < 0 ||
      (sp = H5Screate_simple(1, &dims, NULL)) < 0 ||
      (a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT)) < 0 || H5Awrite(a, t, buf) < 0)
    st = IL_H5_FAIL(IL_ERR_IO, path, "cannot write attribute '%s'", name);
  if (a >= 0) H5Aclose(a);
  if (sp >= 0) H5Sclose(sp);
  if (t >= 0) H5Tclose(t);
  free(buf);
  return st;
}

/* The inputs are listed up to MERGE_CMD_LIST bytes, then counted: an HDF5
 * attribute in the default (compact) storage must stay under 64 KiB, and
 * merged_from lists them all anyway. */
#define MERGE_CMD_LIST 8192
static char *merge_command_line(const char *out_path, const char *const *inputs, int n, const char *first_cmd) {
  size_t len = strlen(out_path) + strlen(first_cmd) + MERGE_CMD_LIST + 256;
  char *s = malloc(len);
  if (!s) return NULL;
  size_t off = (size_t)snprintf(s, len, "merge of %d results file%s:", n, n == 1 ? "" : "s");
  int i = 0;
  for (; i < n && off + strlen(inputs[i]) + 1 <= MERGE_CMD_LIST; i++)
    off += (size_t)snprintf(s + off, len - off, " %s", inputs[i]);
  if (i < n) off += (size_t)snprintf(s + off, len - off, " ... and %d more (merged_from lists them all)", n - i);
  snprintf(s + off, len - off, " -> %s (command line of the first input: %s)", out_path, first_cmd);
  return s;
}

/* 1 when merged_from (n strings of the longest input's size) would pass what
 * an attribute in compact storage can hold (64 KiB a message). */
static int needs_dense_attrs(const char *const *inputs, int n) {
  size_t w = 1;
  for (int i = 0; i < n; i++)
    if (strlen(inputs[i]) + 1 > w) w = strlen(inputs[i]) + 1;
  return (double)w * n > 60000.0;
}

/* ---- the temporary file and its publication ------------------------------ */

static uint64_t fnv1a64(const char *s) {
  uint64_t h = 14695981039346656037ULL;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  return h;
}

static uint64_t random64(void) {
  uint64_t r = 0;
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    if (read(fd, &r, sizeof r) != (ssize_t)sizeof r) r = 0;
    close(fd);
  }
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return r ^ ((uint64_t)t.tv_nsec << 20) ^ (uint64_t)t.tv_sec ^ ((uint64_t)getpid() << 40);
}

/* dir gets the directory of path ("." when it has none), tmp a fresh hidden
 * name in it: ".<base>.tmp-<pid>-<random>", or ".ilbench-<hash>.tmp-..." when
 * that would pass NAME_MAX. Both malloc'd. */
static il_status temp_name(const char *path, char **dir, char **tmp) {
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  size_t dlen = slash ? (size_t)(slash - path) + 1 : 0; /* with the slash */
  size_t cap = dlen + strlen(base) + 96;
  *dir = malloc(dlen + 2);
  *tmp = malloc(cap);
  if (!*dir || !*tmp) {
    free(*dir);
    free(*tmp);
    *dir = *tmp = NULL;
    return IL_ERR(IL_ERR_NOMEM, "merge: out of memory");
  }
  if (dlen) snprintf(*dir, dlen + 2, "%.*s", dlen > 1 ? (int)dlen - 1 : 1, path); /* "a/b" -> "a", "/b" -> "/" */
  else snprintf(*dir, 2, ".");
  char suffix[64];
  snprintf(suffix, sizeof suffix, ".tmp-%ld-%016llx", (long)getpid(), (unsigned long long)random64());
  if (1 + strlen(base) + strlen(suffix) <= NAME_MAX)
    snprintf(*tmp, cap, "%.*s.%s%s", (int)dlen, path, base, suffix);
  else
    snprintf(*tmp, cap, "%.*s.ilbench-%016llx%s", (int)dlen, path, (unsigned long long)fnv1a64(base), suffix);
  return IL_OK;
}

/* 1 when name is a temporary of a merge into the file with base name base:
 * ".<base>.tmp-<pid>-<16 hex>" or ".ilbench-<hash of base>.tmp-<pid>-<16 hex>". */
static int is_temp_of(const char *name, const char *base) {
  char hashed[64];
  snprintf(hashed, sizeof hashed, ".ilbench-%016llx.tmp-", (unsigned long long)fnv1a64(base));
  const char *rest = NULL;
  size_t bl = strlen(base);
  if (name[0] == '.' && strncmp(name + 1, base, bl) == 0 && strncmp(name + 1 + bl, ".tmp-", 5) == 0)
    rest = name + 1 + bl + 5;
  else if (strncmp(name, hashed, strlen(hashed)) == 0)
    rest = name + strlen(hashed);
  if (!rest) return 0;
  size_t nd = strspn(rest, "0123456789");
  return nd > 0 && rest[nd] == '-' && strspn(rest + nd + 1, "0123456789abcdef") == 16 && rest[nd + 17] == '\0';
}

il_status il_h5_merge_remove_stale(const char *out_path, int *removed) {
  if (removed) *removed = 0;
  if (!out_path || !out_path[0]) return IL_ERR(IL_ERR_ARG, "merge: output path is empty");
  char *dir = NULL, *tmp = NULL;
  IL_CHECK(temp_name(out_path, &dir, &tmp));
  const char *slash = strrchr(out_path, '/');
  const char *base = slash ? slash + 1 : out_path;
  il_status st = IL_OK;
  DIR *d = opendir(dir);
  if (!d) {
    st = IL_ERR(IL_ERR_IO, "results file '%s': cannot list its directory '%s' (%s)", out_path, dir, strerror(errno));
    goto out;
  }
  size_t dl = strlen(dir);
  for (struct dirent *e; (e = readdir(d));) {
    if (!is_temp_of(e->d_name, base)) continue;
    size_t n = dl + strlen(e->d_name) + 2;
    char *p = malloc(n);
    if (!p) {
      st = IL_ERR(IL_ERR_NOMEM, "merge: out of memory");
      break;
    }
    snprintf(p, n, "%s/%s", dir, e->d_name);
    struct stat sb;
    if (lstat(p, &sb) == 0 && S_ISREG(sb.st_mode) && unlink(p) == 0 && removed) (*removed)++;
    free(p);
  }
  closedir(d);
out:
  free(dir);
  free(tmp);
  return st;
}

/* Why a write may have failed, for the message ("" when the disk is not
 * the reason): HDF5's own message does not always say. err: errno after the
 * failing call; a filesystem with under 1 MiB free counts as full. */
static void space_hint(int err, const char *dir, char *buf, size_t n) {
  buf[0] = '\0';
  struct statvfs vf;
  int known = statvfs(dir, &vf) == 0;
  unsigned long long avail = known ? (unsigned long long)vf.f_bavail * vf.f_frsize : 0;
  if (err == ENOSPC || err == EDQUOT)
    snprintf(buf, n, "; %llu bytes free in '%s'", avail, dir);
  else if (known && avail < (1ULL << 20))
    snprintf(buf, n, "; No space left on device? (%llu bytes free in '%s')", avail, dir);
}

static il_status fsync_path(const char *path, int directory, const char *out_path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0));
  if (fd < 0)
    return IL_ERR(IL_ERR_IO, "results file '%s': cannot open '%s' to sync it (%s)", out_path, path, strerror(errno));
  int r = fsync(fd), e = errno;
  close(fd);
  /* some filesystems cannot sync a directory; the rename itself has happened */
  if (r != 0 && !(directory && (e == EINVAL || e == EROFS || e == EOPNOTSUPP)))
    return IL_ERR(IL_ERR_IO, "results file '%s': cannot sync '%s' (%s)%s", out_path, path, strerror(e),
                  directory ? "; the merged file is in place but may not survive a crash" : "");
  return IL_OK;
}

/* Move tmp to out: replacing it (force), or only when out does not exist. */
static int publish(const char *tmp, const char *out, int force) {
  if (force) return rename(tmp, out);
#ifdef RENAME_NOREPLACE
  if (renameat2(AT_FDCWD, tmp, AT_FDCWD, out, RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP) return -1;
#endif
  if (link(tmp, out) == 0) {
    unlink(tmp);
    return 0;
  }
  if (errno == EEXIST) return -1;
  /* no hard links on this filesystem: out was checked absent under the writer lock */
  struct stat sb;
  if (stat(out, &sb) == 0) {
    errno = EEXIST;
    return -1;
  }
  return rename(tmp, out);
}

/* Write the file image into a new file tmp, synced and closed. *created is
 * set once tmp exists (the caller removes it on failure). Messages name the
 * output, and say when the disk is full. */
static il_status write_image(const char *tmp, const void *image, size_t n, const char *out_path, const char *dir,
                             int *created) {
  char hint[256];
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) {
    int e = errno;
    space_hint(e, dir, hint, sizeof hint);
    return IL_ERR(IL_ERR_IO, "results file '%s': cannot create the temporary file '%s' (%s)%s", out_path, tmp,
                  strerror(e), hint);
  }
  *created = 1;
  const char *p = image;
  size_t off = 0;
  while (off < n) {
    ssize_t w = write(fd, p + off, n - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      int e = w < 0 ? errno : ENOSPC; /* a write of 0 bytes: no room */
      space_hint(e, dir, hint, sizeof hint);
      close(fd);
      return IL_ERR(IL_ERR_IO,
                    "results file '%s': cannot write the merged file (%zu of %zu bytes written to '%s': %s)%s",
                    out_path, off, n, tmp, strerror(e), hint);
    }
    off += (size_t)w;
  }
  /* fsync and close report a delayed write failure (NFS, a full disk) */
  int r = fsync(fd), e = errno;
  if (close(fd) != 0 && r == 0) {
    r = -1;
    e = errno;
  }
  if (r != 0) {
    space_hint(e, dir, hint, sizeof hint);
    return IL_ERR(IL_ERR_IO, "results file '%s': cannot sync the merged temporary file '%s' (%s)%s", out_path, tmp,
                  strerror(e), hint);
  }
  return IL_OK;
}

/* Bob Jenkins' lookup3 (hashlittle, public domain): the checksum HDF5 puts
 * on its metadata. */
#define L3_ROT(x, k) (((x) << (k)) | ((x) >> (32 - (k))))
static uint32_t lookup3(const unsigned char *k, size_t n, uint32_t init) {
  uint32_t a, b, c;
  a = b = c = 0xdeadbeefu + (uint32_t)n + init;
  while (n > 12) {
    a += k[0] | (uint32_t)k[1] << 8 | (uint32_t)k[2] << 16 | (uint32_t)k[3] << 24;
    b += k[4] | (uint32_t)k[5] << 8 | (uint32_t)k[6] << 16 | (uint32_t)k[7] << 24;
    c += k[8] | (uint32_t)k[9] << 8 | (uint32_t)k[10] << 16 | (uint32_t)k[11] << 24;
    a -= c; a ^= L3_ROT(c, 4); c += b;
    b -= a; b ^= L3_ROT(a, 6); a += c;
    c -= b; c ^= L3_ROT(b, 8); b += a;
    a -= c; a ^= L3_ROT(c, 16); c += b;
    b -= a; b ^= L3_ROT(a, 19); a += c;
    c -= b; c ^= L3_ROT(b, 4); b += a;
    n -= 12;
    k += 12;
  }
  if (n == 0) return c;
  unsigned char t[12] = {0};
  memcpy(t, k, n);
  a += t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 | (uint32_t)t[3] << 24;
  b += t[4] | (uint32_t)t[5] << 8 | (uint32_t)t[6] << 16 | (uint32_t)t[7] << 24;
  c += t[8] | (uint32_t)t[9] << 8 | (uint32_t)t[10] << 16 | (uint32_t)t[11] << 24;
  c ^= b; c -= L3_ROT(b, 14);
  a ^= c; a -= L3_ROT(c, 11);
  b ^= a; b -= L3_ROT(a, 25);
  c ^= b; c -= L3_ROT(b, 16);
  a ^= c; a -= L3_ROT(c, 4);
  b ^= a; b -= L3_ROT(a, 14);
  c ^= b; c -= L3_ROT(b, 24);
  return c;
}

/* HDF5 1.10's H5Fget_file_image clears the status flags of a version 2 or 3
 * superblock (the 1.8+ formats) in the image of a file open for writing but
 * keeps the checksum of the flags as they were: that image would not open
 * ("incorrect metadata checksum"). Recompute the checksum; a no-op where it
 * is already right. The superblock is at offset 0 (no user block). */
static void fix_superblock_checksum(unsigned char *img, size_t n) {
  if (n < 48 || memcmp(img, "\211HDF\r\n\032\n", 8) != 0 || (img[8] != 2 && img[8] != 3)) return;
  const size_t so = img[9]; /* size of offsets */
  const size_t len = 12 + 4 * so; /* signature, version, sizes, flags and four addresses */
  if (so == 0 || so > 8 || len + 4 > n) return;
  uint32_t c = lookup3(img, len, 0);
  for (int i = 0; i < 4; i++) img[len + (size_t)i] = (unsigned char)(c >> (8 * i));
}

/* The written temporary opens as an ilbench results file holding nruns runs:
 * checked before it replaces anything. */
static il_status verify_written(const char *tmp, const char *out_path, size_t nruns) {
  il_status st = IL_OK;
  hid_t fa = H5Pcreate(H5P_FILE_ACCESS), fid = -1, g = -1;
  int64_t ver = 0;
  H5G_info_t gi;
  if (fa < 0 || H5Pset_fapl_sec2(fa) < 0 || H5Pset_file_locking(fa, 0, 1) < 0 ||
      (fid = H5Fopen(tmp, H5F_ACC_RDONLY, fa)) < 0) {
    st = IL_H5_FAIL(IL_ERR_INTERNAL, out_path, "the merged temporary file '%s' does not open", tmp);
    goto out;
  }
  if ((st = il_h5i_read_schema(fid, tmp, &ver)) != IL_OK) goto out;
  if ((g = H5Gopen2(fid, "runs", H5P_DEFAULT)) < 0 || H5Gget_info(g, &gi) < 0 || gi.nlinks != (hsize_t)nruns)
    st = IL_ERR(IL_ERR_INTERNAL, "results file '%s': the merged temporary file '%s' does not hold the %zu runs merged",
                out_path, tmp, nruns);
out:
  if (g >= 0) H5Gclose(g);
  if (fid >= 0) H5Fclose(fid);
  if (fa >= 0) H5Pclose(fa);
  return st;
}

static il_status open_input(const char *path, hid_t *fid) {
  if ((*fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0)
    return IL_H5_FAIL(IL_ERR_IO, path, "cannot open the file");
  return IL_OK;
}

static int cmp_input(const void *a, const void *b) {
  const run_ref *x = a, *y = b;
  if (x->input != y->input) return (x->input > y->input) - (x->input < y->input);
  return strcmp(x->name, y->name);
}

il_status il_h5_merge(const char *out_path, int force, const char *const *inputs, int ninputs) {
  if (!out_path || !out_path[0]) return IL_ERR(IL_ERR_ARG, "merge: output path is empty");
  if (!inputs || ninputs < 1) return IL_ERR(IL_ERR_ARG, "merge: no input files");
  for (int i = 0; i < ninputs; i++)
    if (!inputs[i] || !inputs[i][0]) return IL_ERR(IL_ERR_ARG, "merge: input %d has an empty path", i + 1);

  il_status st = IL_OK;
  il_h5i_quiet q;
  il_h5i_quiet_begin(&q);
  run_list runs = {0};
  hid_t fid = -1, src = -1, out = -1, out_runs = -1, fapl = -1; /* one input open at a time: no fd limit */
  int fid_input = -1, created = 0, published = 0;
  char *dir = NULL, *tmp = NULL;
  void *image = NULL;
  int64_t first_ver = 0; /* the first input's major version; all inputs must match it */
  char *cmd = NULL, *first_cmd = NULL;

  struct stat osb;
  int out_exists = stat(out_path, &osb) == 0;
  if (out_exists && !force) {
    st = IL_ERR(IL_ERR_ARG, "results file '%s' exists; use --force to replace it", out_path);
    goto done;
  }
  if (out_exists && !S_ISREG(osb.st_mode)) {
    st = IL_ERR(IL_ERR_IO, "results file '%s' exists and is not a regular file", out_path);
    goto done;
  }

  /* Check every input before writing anything. */
  for (int i = 0; i < ninputs; i++) {
    struct stat isb;
    if (stat(inputs[i], &isb) != 0) {
      st = IL_ERR(IL_ERR_IO, "results file '%s': cannot open it (%s)", inputs[i], strerror(errno));
      goto done;
    }
    if (out_exists && isb.st_dev == osb.st_dev && isb.st_ino == osb.st_ino) {
      st = IL_ERR(IL_ERR_ARG, "merge: output '%s' is also input '%s'; write the merge to a new file", out_path,
                  inputs[i]);
      goto done;
    }
    htri_t is = H5Fis_hdf5(inputs[i]);
    if (is <= 0) {
      st = IL_ERR(IL_ERR_FORMAT, "results file '%s' is not an HDF5 file", inputs[i]);
      goto done;
    }
    IL_CHECK_GOTO(st, open_input(inputs[i], &fid), done);
    int64_t ver = 0;
    IL_CHECK_GOTO(st, il_h5i_read_schema(fid, inputs[i], &ver), done);
    if (ver < IL_H5_SCHEMA_VERSION_OLDEST || ver > IL_H5_SCHEMA_VERSION) {
      st = IL_ERR(IL_ERR_FORMAT,
                  "results file '%s' has schema version %lld; this ilbench merges versions %d to %d "
                  "(it writes version %d)",
                  inputs[i], (long long)ver, IL_H5_SCHEMA_VERSION_OLDEST, IL_H5_SCHEMA_VERSION,
                  IL_H5_SCHEMA_VERSION);
      goto done;
    }
    if (i == 0) {
      first_ver = ver;
    } else if (ver != first_ver) {
      st = IL_ERR(IL_ERR_FORMAT,
                  "merge: cannot mix schema versions: '%s' has schema version %lld but '%s' has schema version "
                  "%lld; merge files of one version only (a merged file has a single version)",
                  inputs[0], (long long)first_ver, inputs[i], (long long)ver);
      goto done;
    }
    htri_t ex = H5Lexists(fid, "runs", H5P_DEFAULT);
    if (ex < 0) {
      st = IL_H5_FAIL(IL_ERR_FORMAT, inputs[i], "cannot look up group /runs");
      goto done;
    }
    runs.input = i;
    if (ex > 0 &&
        H5Literate_by_name(fid, "runs", H5_INDEX_NAME, H5_ITER_INC, NULL, collect_cb, &runs, H5P_DEFAULT) < 0) {
      if (runs.nomem)
        st = IL_ERR(IL_ERR_NOMEM, "merge: out of memory listing the runs of '%s'", inputs[i]);
      else
        st = IL_H5_FAIL(IL_ERR_FORMAT, inputs[i], "cannot list group /runs");
      goto done;
    }
    H5Fclose(fid);
    fid = -1;
  }
  if (runs.n) qsort(runs.v, runs.n, sizeof *runs.v, cmp_run);
  for (size_t k = 1; k < runs.n; k++)
    if (strcmp(runs.v[k - 1].name, runs.v[k].name) == 0) {
      st = IL_ERR(IL_ERR_ARG, "merge: run '%s' is in both '%s' and '%s'; run ids must be unique", runs.v[k].name,
                  inputs[runs.v[k - 1].input], inputs[runs.v[k].input]);
      goto done;
    }

  /* Build the output in memory (HDF5's core driver, no backing store), then
   * write the image ourselves into a temporary file that is renamed over
   * out_path. HDF5 so never sees a failed write: its error paths on a full
   * disk (ENOSPC inside H5Ocopy or H5Fcreate) crash HDF5 1.10 or leave it
   * unable to close the file; our write fails cleanly. Costs memory: about
   * twice the output's size, for a moment. */
  IL_CHECK_GOTO(st, temp_name(out_path, &dir, &tmp), done);
  /* A long merged_from needs dense attribute storage, which HDF5 has from the
   * 1.8 file format on; other merges keep the default (oldest) format. */
  if ((fapl = H5Pcreate(H5P_FILE_ACCESS)) < 0 || H5Pset_fapl_core(fapl, (size_t)4 << 20, 0) < 0 ||
      H5Pset_file_locking(fapl, 0, 1) < 0 ||
      (needs_dense_attrs(inputs, ninputs) && H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18) < 0)) {
    st = IL_H5_FAIL(IL_ERR_INTERNAL, out_path, "cannot make a file access property list");
    goto done;
  }
  if ((out = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl)) < 0) {
    st = IL_H5_FAIL(IL_ERR_NOMEM, out_path, "cannot create the merged file in memory");
    goto done;
  }
  IL_CHECK_GOTO(st, open_input(inputs[0], &fid), done);
  fid_input = 0;
  static const char *const skip[] = {"command_line", "merged_from", NULL};
  IL_CHECK_GOTO(st, copy_root_attrs(fid, out, inputs[0], out_path, skip), done);
  first_cmd = malloc(4096);
  int found = 0;
  if (!first_cmd) {
    st = IL_ERR(IL_ERR_NOMEM, "merge: out of memory");
    goto done;
  }
  IL_CHECK_GOTO(st, il_h5i_get_str_attr(fid, "command_line", first_cmd, 4096, &found, inputs[0]), done);
  if (!(cmd = merge_command_line(out_path, inputs, ninputs, first_cmd))) {
    st = IL_ERR(IL_ERR_NOMEM, "merge: out of memory");
    goto done;
  }
  IL_CHECK_GOTO(st, il_h5i_set_str_attr(out, "command_line", cmd, out_path), done);
  IL_CHECK_GOTO(st, set_str_array_attr(out, "merged_from", inputs, ninputs, out_path), done);
  if ((out_runs = H5Gcreate2(out, "runs", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0) {
    st = IL_H5_FAIL(IL_ERR_IO, out_path, "cannot create group /runs");
    goto done;
  }
  /* input by input (the output's /runs is indexed by name whatever the order) */
  if (runs.n) qsort(runs.v, runs.n, sizeof *runs.v, cmp_input);
  for (size_t k = 0; k < runs.n; k++) {
    const int in = runs.v[k].input;
    if (in != fid_input) {
      if (src >= 0) H5Gclose(src);
      if (fid >= 0) H5Fclose(fid);
      src = fid = -1;
      IL_CHECK_GOTO(st, open_input(inputs[in], &fid), done);
      fid_input = in;
    }
    if (src < 0 && (src = H5Gopen2(fid, "runs", H5P_DEFAULT)) < 0) {
      st = IL_H5_FAIL(IL_ERR_FORMAT, inputs[in], "cannot open group /runs");
      goto done;
    }
    if (H5Ocopy(src, runs.v[k].name, out_runs, runs.v[k].name, H5P_DEFAULT, H5P_DEFAULT) < 0) {
      st = IL_H5_FAIL(IL_ERR_IO, out_path, "cannot copy run '%s' from '%s'", runs.v[k].name, inputs[in]);
      goto done;
    }
  }
  H5Gclose(out_runs);
  out_runs = -1;
  if (H5Fflush(out, H5F_SCOPE_GLOBAL) < 0) {
    st = IL_H5_FAIL(IL_ERR_IO, out_path, "cannot flush the merged file in memory");
    goto done;
  }
  ssize_t isz = H5Fget_file_image(out, NULL, 0);
  if (isz <= 0 || !(image = malloc((size_t)isz)) || H5Fget_file_image(out, image, (size_t)isz) != isz) {
    st = isz > 0 && !image ? IL_ERR(IL_ERR_NOMEM, "results file '%s': no memory for the merged file (%zd bytes)",
                                    out_path, isz)
                           : IL_H5_FAIL(IL_ERR_INTERNAL, out_path, "cannot get the merged file's image");
    goto done;
  }
  fix_superblock_checksum(image, (size_t)isz);
  herr_t cr = H5Fclose(out);
  out = -1;
  if (cr < 0) {
    st = IL_H5_FAIL(IL_ERR_INTERNAL, out_path, "cannot close the merged file in memory");
    goto done;
  }
  IL_CHECK_GOTO(st, write_image(tmp, image, (size_t)isz, out_path, dir, &created), done);
  free(image);
  image = NULL;
  IL_CHECK_GOTO(st, verify_written(tmp, out_path, runs.n), done);
  if (publish(tmp, out_path, force) != 0) {
    if (errno == EEXIST)
      st = IL_ERR(IL_ERR_ARG, "results file '%s' exists; use --force to replace it", out_path);
    else
      st = IL_ERR(IL_ERR_IO, "results file '%s': cannot rename the merged temporary file '%s' to it (%s)", out_path,
                  tmp, strerror(errno));
    goto done;
  }
  published = 1;
  st = fsync_path(dir, 1, out_path);

done:
  if (src >= 0) H5Gclose(src);
  if (fid >= 0) H5Fclose(fid);
  if (out_runs >= 0) H5Gclose(out_runs);
  if (out >= 0) H5Fclose(out); /* only on failure: the error is already recorded */
  free(image);
  if (fapl >= 0) H5Pclose(fapl);
  if (created && !published) unlink(tmp); /* no half-merged output; the old one is untouched */
  for (size_t k = 0; k < runs.n; k++) free(runs.v[k].name);
  free(runs.v);
  free(cmd);
  free(first_cmd);
  free(dir);
  free(tmp);
  il_h5i_quiet_end(&q);
  return st;
}
