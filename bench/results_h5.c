/* bench/results_h5.c: the HDF5 results writer. Schema and units:
 * analysis/SCHEMA.md. Rank 0 alone opens and writes the file, through HDF5's
 * serial (sec2) driver; the other ranks send it what only they know (their
 * row of the `ranks` table) and wait for its verdict. Why not collective
 * parallel HDF5: a write that fails on one rank inside a collective HDF5 call
 * (a full disk) cannot be agreed before the call, and the ranks then hang in
 * mismatched collectives; and Open MPI's MPI-IO aborts on paths of 245 or more
 * characters. The rows are kilobytes per epoch, so one writer costs nothing.
 * Each public call ends by agreeing on a status, so all ranks return the same
 * status and the first failing rank's message, and no rank ever waits inside
 * HDF5 for another. */
#define _GNU_SOURCE /* fallocate */
#include "results_h5.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "results_h5_internal.h"
#include "results_lock.h"

#ifndef ILBENCH_GIT
#define ILBENCH_GIT "unknown"
#endif

#define EPOCH_CHUNK_ROWS 64 /* ~10 KB chunks */
#define TRACE_CHUNK_ROWS 512 /* ~25 KB chunks: a traced step adds tens to hundreds of rows */
#define STEP_CHUNK_ROWS 256 /* ~41 KB chunks */

/* ---- helpers shared with results_merge.c --------------------------------- */

void il_h5i_quiet_begin(il_h5i_quiet *q) {
  q->func = NULL;
  q->data = NULL;
  H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void il_h5i_quiet_end(const il_h5i_quiet *q) { H5Eset_auto2(H5E_DEFAULT, q->func, q->data); }

typedef struct walk_ctx {
  char *buf;
  size_t n;
  int count;
} walk_ctx;

/* Walked from the innermost error outwards: keep the two most specific descriptions. */
static herr_t walk_cb(unsigned k, const H5E_error2_t *e, void *p) {
  walk_ctx *w = p;
  (void)k;
  if (w->count >= 2) return 0;
  char minor[128] = "";
  const char *d = e->desc;
  if (!d || !d[0]) {
    if (H5Eget_msg(e->min_num, NULL, minor, sizeof minor) < 0) minor[0] = '\0';
    d = minor;
  }
  if (!d[0]) return 0;
  /* the sec2 driver's "file write failed: time = ..., buf = 0x..., error message = 'X', ...": keep X */
  char sys[160];
  const char *em = strstr(d, "error message = '");
  if (em) {
    em += strlen("error message = '");
    const char *q = strchr(em, '\'');
    snprintf(sys, sizeof sys, "%s: %.*s", strstr(d, "read") && !strstr(d, "write") ? "read failed" : "write failed",
             q ? (int)(q - em) : (int)strlen(em), em);
    d = sys;
  }
  size_t used = strlen(w->buf);
  if (used + 4 >= w->n) return 0;
  snprintf(w->buf + used, w->n - used, "%s%s", w->count ? "; " : "", d);
  w->count++;
  return 0;
}

il_status il_h5i_fail(il_status s, const char *path, const char *file, int line, const char *fmt, ...) {
  char what[512], detail[512] = "";
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  walk_ctx w = {detail, sizeof detail, 0};
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, &w);
  if (detail[0])
    return il_error_set(s, file, line, "results file '%s': %s (HDF5: %s)", path, what, detail);
  return il_error_set(s, file, line, "results file '%s': %s", path, what);
}

il_status il_h5i_put_attr(hid_t obj, const char *name, hid_t type, hsize_t n, const void *v, const char *path) {
  il_status st = IL_OK;
  hid_t a = -1, sp = -1, ft = -1;
  htri_t ex = H5Aexists(obj, name);
  if (ex < 0) return IL_H5_FAIL(IL_ERR_IO, path, "cannot look up attribute '%s'", name);
  if (ex > 0) { /* the same shape and type: write the bytes in place */
    int same = 0;
    if ((a = H5Aopen(obj, name, H5P_DEFAULT)) >= 0 && (sp = H5Aget_space(a)) >= 0 && (ft = H5Aget_type(a)) >= 0)
      same = H5Sget_simple_extent_npoints(sp) == (hssize_t)n && H5Tequal(ft, type) > 0 &&
             (n > 1) == (H5Sget_simple_extent_type(sp) == H5S_SIMPLE);
    if (ft >= 0) H5Tclose(ft);
    if (sp >= 0) H5Sclose(sp);
    sp = ft = -1;
    if (!same) {
      if (a >= 0) H5Aclose(a);
      a = -1;
      if (H5Adelete(obj, name) < 0) return IL_H5_FAIL(IL_ERR_IO, path, "cannot replace attribute '%s'", name);
    }
  }
  if (a < 0 && ((sp = n == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, NULL)) < 0 ||
                (a = H5Acreate2(obj, name, type, sp, H5P_DEFAULT, H5P_DEFAULT)) < 0)) {
    st = IL_H5_FAIL(IL_ERR_IO, path, "cannot create attribute '%s'", name);
    goto out;
  }
  if (H5Awrite(a, type, v) < 0) st = IL_H5_FAIL(IL_ERR_IO, path, "cannot write attribute '%s'", name);
out:
  if (a >= 0) H5Aclose(a);
  if (sp >= 0) H5Sclose(sp);
  return st;
}

static il_status set_attr(hid_t obj, const char *name, hid_t type, const void *v, const char *path) {
  return il_h5i_put_attr(obj, name, type, 1, v, path);
}

/* Fixed-length string of `size` bytes (>= strlen(v) + 1), NUL-terminated. */
static il_status set_str_attr_sized(hid_t obj, const char *name, const char *v, size_t size, const char *path) {
  il_status st = IL_OK;
  char *buf = calloc(size, 1);
  if (!buf) return IL_ERR(IL_ERR_NOMEM, "results file '%s': no memory for attribute '%s'", path, name);
  memcpy(buf, v, strlen(v));
  hid_t t = H5Tcopy(H5T_C_S1);
  if (t < 0 || H5Tset_size(t, size) < 0 || H5Tset_strpad(t, H5T_STR_NULLTERM) < 0 || H5Tset_cset(t, H5T_CSET_ASCII) < 0)
    st = IL_H5_FAIL(IL_ERR_IO, path, "cannot make a string type for attribute '%s'", name);
  else
    st = set_attr(obj, name, t, buf, path);
  if (t >= 0) H5Tclose(t);
  free(buf);
  return st;
}

il_status il_h5i_set_str_attr(hid_t obj, const char *name, const char *v, const char *path) {
  if (!v) v = "";
  return set_str_attr_sized(obj, name, v, strlen(v) + 1, path);
}

il_status il_h5i_set_i64_attr(hid_t obj, const char *name, int64_t v, const char *path) {
  return set_attr(obj, name, H5T_NATIVE_INT64, &v, path);
}

il_status il_h5i_set_f64_attr(hid_t obj, const char *name, double v, const char *path) {
  return set_attr(obj, name, H5T_NATIVE_DOUBLE, &v, path);
}

il_status il_h5i_get_str_attr(hid_t obj, const char *name, char *buf, size_t n, int *found, const char *path) {
  il_status st = IL_OK;
  hid_t a = -1, ft = -1, mt = -1;
  *found = 0;
  buf[0] = '\0';
  htri_t ex = H5Aexists(obj, name);
  if (ex < 0) return IL_H5_FAIL(IL_ERR_FORMAT, path, "cannot look up attribute '%s'", name);
  if (ex == 0) return IL_OK;
  *found = 1;
  if ((a = H5Aopen(obj, name, H5P_DEFAULT)) < 0 || (ft = H5Aget_type(a)) < 0) {
    st = IL_H5_FAIL(IL_ERR_FORMAT, path, "cannot open attribute '%s'", name);
    goto out;
  }
  if (H5Tget_class(ft) != H5T_STRING) {
    st = IL_ERR(IL_ERR_FORMAT, "results file '%s': attribute '%s' is not a string", path, name);
    goto out;
  }
  hid_t sp = H5Aget_space(a);
  const hssize_t npts = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
  if (sp >= 0) H5Sclose(sp);
  if (npts != 1) { /* an array of strings would be read past buf */
    st = IL_ERR(IL_ERR_FORMAT, "results file '%s': attribute '%s' is not a single string (%lld elements)", path, name,
                (long long)npts);
    goto out;
  }
  htri_t vl = H5Tis_variable_str(ft);
  const H5T_cset_t cset = H5Tget_cset(ft); /* ASCII or UTF-8 (h5py writes UTF-8): read it as it is */
  if (vl < 0 || cset < 0 || (mt = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_cset(mt, cset) < 0) {
    st = IL_H5_FAIL(IL_ERR_FORMAT, path, "cannot read attribute '%s'", name);
    goto out;
  }
  if (vl > 0) {
    char *s = NULL;
    if (H5Tset_size(mt, H5T_VARIABLE) < 0 || H5Aread(a, mt, &s) < 0) {
      st = IL_H5_FAIL(IL_ERR_FORMAT, path, "cannot read attribute '%s'", name);
      goto out;
    }
    snprintf(buf, n, "%s", s ? s : "");
    H5free_memory(s);
  } else {
    if (H5Tset_size(mt, n) < 0 || H5Tset_strpad(mt, H5T_STR_NULLTERM) < 0 || H5Aread(a, mt, buf) < 0) {
      st = IL_H5_FAIL(IL_ERR_FORMAT, path, "cannot read attribute '%s'", name);
      goto out;
    }
    buf[n - 1] = '\0';
  }
out:
  if (mt >= 0) H5Tclose(mt);
  if (ft >= 0) H5Tclose(ft);
  if (a >= 0) H5Aclose(a);
  return st;
}

il_status il_h5i_get_i64_attr(hid_t obj, const char *name, int64_t *v, int *found, const char *path) {
  il_status st = IL_OK;
  hid_t a = -1, ft = -1, sp = -1;
  *found = 0;
  htri_t ex = H5Aexists(obj, name);
  if (ex < 0) return IL_H5_FAIL(IL_ERR_FORMAT, path, "cannot look up attribute '%s'", name);
  if (ex == 0) return IL_OK;
  *found = 1;
  if ((a = H5Aopen(obj, name, H5P_DEFAULT)) < 0 || (ft = H5Aget_type(a)) < 0 || (sp = H5Aget_space(a)) < 0) {
    st = IL_H5_FAIL(IL_ERR_FORMAT, path, "cannot open attribute '%s'", name);
    goto out;
  }
  if (H5Tget_class(ft) != H5T_INTEGER || H5Sget_simple_extent_npoints(sp) != 1) {
    st = IL_ERR(IL_ERR_FORMAT, "results file '%s': attribute '%s' is not a single integer", path, name);
    goto out;
  }
  if (H5Aread(a, H5T_NATIVE_INT64, v) < 0) st = IL_H5_FAIL(IL_ERR_FORMAT, path, "cannot read attribute '%s'", name);
out:
  if (sp >= 0) H5Sclose(sp);
  if (ft >= 0) H5Tclose(ft);
  if (a >= 0) H5Aclose(a);
  return st;
}

il_status il_h5i_read_schema(hid_t fid, const char *path, int64_t *version) {
  char name[128];
  int found;
  IL_CHECK(il_h5i_get_str_attr(fid, "schema", name, sizeof name, &found, path));
  if (!found)
    return IL_ERR(IL_ERR_FORMAT, "results file '%s' is not an ilbench results file (no 'schema' attribute)", path);
  if (strcmp(name, IL_H5_SCHEMA) != 0)
    return IL_ERR(IL_ERR_FORMAT, "results file '%s' has schema '%s', expected '%s'", path, name, IL_H5_SCHEMA);
  IL_CHECK(il_h5i_get_i64_attr(fid, "schema_version", version, &found, path));
  if (!found)
    return IL_ERR(IL_ERR_FORMAT, "results file '%s' has no 'schema_version' attribute", path);
  return IL_OK;
}

il_status il_h5i_check_schema(hid_t fid, const char *path) {
  int64_t ver = 0;
  IL_CHECK(il_h5i_read_schema(fid, path, &ver));
  if (ver != IL_H5_SCHEMA_VERSION)
    return IL_ERR(IL_ERR_FORMAT,
                  "results file '%s' has schema version %lld; this ilbench writes schema version %d and adds "
                  "runs only to a file of that version (a different major version is incompatible)",
                  path, (long long)ver, IL_H5_SCHEMA_VERSION);
  return IL_OK;
}

void il_h5i_now_iso(char buf[32]) {
  time_t t = time(NULL);
  struct tm tm;
  if (!gmtime_r(&t, &tm) || strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) snprintf(buf, 32, "unknown");
}

/* ---- the writer: rank 0 writes, every rank agrees ------------------------- */

/* All ranks return the same status: the first failing rank's status and message. */
il_status il_h5i_agree(MPI_Comm comm, il_status st) {
  int rank, mine, first;
  MPI_Comm_rank(comm, &rank);
  mine = st != IL_OK ? rank : INT_MAX;
  MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm);
  if (first == INT_MAX) return IL_OK;
  char msg[1024];
  int code = (int)st;
  if (rank == first) snprintf(msg, sizeof msg, "%s", il_error_message());
  MPI_Bcast(&code, 1, MPI_INT, first, comm);
  MPI_Bcast(msg, (int)sizeof msg, MPI_CHAR, first, comm);
  msg[sizeof msg - 1] = '\0';
  if (rank == first) return st;
  il_error_clear();
  return IL_ERR((il_status)code, "%s", msg);
}
#define agree il_h5i_agree

il_status il_h5i_settle(il_h5_file *f, il_status st) {
  st = il_h5i_agree(f->comm, st);
  if (st == IL_ERR_IO) f->storage_failed = 1;
  return st;
}

int il_h5_storage_failed(const il_h5_file *f) { return f && f->storage_failed; }

/* Broadcast rank 0's string (NULL counts as "") into a new allocation on every rank. */
static il_status bcast_str(MPI_Comm comm, int rank, const char *s0, char **out) {
  unsigned long long len = (rank == 0 && s0) ? strlen(s0) : 0;
  MPI_Bcast(&len, 1, MPI_UNSIGNED_LONG_LONG, 0, comm);
  char *s = malloc(len + 1);
  int ok = s != NULL, all_ok;
  MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, comm);
  if (!all_ok) {
    free(s);
    return IL_ERR(IL_ERR_NOMEM, "results file: no memory for a %llu-byte string", len);
  }
  if (rank == 0 && len) memcpy(s, s0, len);
  s[len] = '\0';
  for (unsigned long long off = 0; off < len; off += INT_MAX / 2) {
    unsigned long long chunk = len - off < INT_MAX / 2 ? len - off : INT_MAX / 2;
    MPI_Bcast(s + off, (int)chunk, MPI_CHAR, 0, comm);
  }
  *out = s;
  return IL_OK;
}

/* argv joined by spaces; arguments with shell-special characters are single-quoted. */
static char *join_argv(int argc, char **argv) {
  size_t n = 1;
  for (int i = 0; argv && i < argc; i++) n += 4 * (argv[i] ? strlen(argv[i]) : 0) + 3;
  char *s = malloc(n), *p = s;
  if (!s) return NULL;
  for (int i = 0; argv && i < argc; i++) {
    const char *a = argv[i] ? argv[i] : "";
    int plain = a[0] != '\0';
    for (const char *c = a; *c; c++)
      if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./=:,+@%-", *c)) plain = 0;
    if (i) *p++ = ' ';
    if (plain) {
      memcpy(p, a, strlen(a));
      p += strlen(a);
    } else {
      *p++ = '\'';
      for (const char *c = a; *c; c++) {
        if (*c == '\'') {
          memcpy(p, "'\\''", 4);
          p += 4;
        } else {
          *p++ = *c;
        }
      }
      *p++ = '\'';
    }
  }
  *p = '\0';
  return s;
}

/* The HDF5 type of a column type: enums are HDF5 enum types over int32 (names in the file). */
static hid_t col_h5type(const il_h5_file *f, il_col_type t) {
  switch (t) {
  case IL_COL_I32: return H5T_NATIVE_INT32;
  case IL_COL_I64: return H5T_NATIVE_INT64;
  case IL_COL_U64: return H5T_NATIVE_UINT64;
  case IL_COL_F64: return H5T_NATIVE_DOUBLE;
  case IL_COL_STR16: return f->t_event_name;
  case IL_COL_REASON: return f->t_reason;
  case IL_COL_NANORIGIN: return f->t_nanorigin;
  }
  return -1;
}

/* An HDF5 enum over native int32 with the (name, value) pairs of an X-macro list. */
#define ENUM_INSERT(nm, val) \
  if (ok) { int32_t v_ = (val); ok = H5Tenum_insert(e, nm, &v_) >= 0; }
static hid_t make_reason_enum(void) {
  hid_t e = H5Tenum_create(H5T_NATIVE_INT32);
  int ok = e >= 0;
  IL_REASON_ENUM(ENUM_INSERT)
  if (!ok && e >= 0) { H5Tclose(e); e = -1; }
  return e;
}
static hid_t make_nanorigin_enum(void) {
  hid_t e = H5Tenum_create(H5T_NATIVE_INT32);
  int ok = e >= 0;
  IL_NANORIGIN_ENUM(ENUM_INSERT)
  if (!ok && e >= 0) { H5Tclose(e); e = -1; }
  return e;
}
#undef ENUM_INSERT

/* One compound type per table, a member per column of results_columns.h (via il_results_tables). */
static hid_t make_compound(const il_h5_file *f, const il_table_desc *t) {
  hid_t c = H5Tcreate(H5T_COMPOUND, t->row_size);
  for (int i = 0; c >= 0 && i < t->ncols; i++)
    if (H5Tinsert(c, t->cols[i].name, t->cols[i].offset, col_h5type(f, t->cols[i].type)) < 0) {
      H5Tclose(c);
      c = -1;
    }
  return c;
}

static il_status make_types(il_h5_file *f) {
  hid_t tn = f->t_event_name = H5Tcopy(H5T_C_S1);
  if (tn < 0) goto fail;
  /* strings are stored as the writer's string attributes are: fixed-length, NUL-terminated ASCII */
  if (H5Tset_size(tn, EVENT_NAME_LEN) < 0 || H5Tset_strpad(tn, H5T_STR_NULLTERM) < 0 ||
      H5Tset_cset(tn, H5T_CSET_ASCII) < 0)
    goto fail;
  if ((f->t_reason = make_reason_enum()) < 0 || (f->t_nanorigin = make_nanorigin_enum()) < 0) goto fail;
  if ((f->t_epoch = make_compound(f, &il_results_tables[IL_TABLE_EPOCHS])) < 0 ||
      (f->t_step = make_compound(f, &il_results_tables[IL_TABLE_STEPS])) < 0 ||
      (f->t_rank = make_compound(f, &il_results_tables[IL_TABLE_RANKS])) < 0 ||
      (f->t_event = make_compound(f, &il_results_tables[IL_TABLE_EVENTS])) < 0 ||
      (f->t_trace = make_compound(f, &il_results_tables[IL_TABLE_TRACE])) < 0)
    goto fail;
  if ((f->tf_epoch = H5Tcopy(f->t_epoch)) < 0 || H5Tpack(f->tf_epoch) < 0 || (f->tf_step = H5Tcopy(f->t_step)) < 0 ||
      H5Tpack(f->tf_step) < 0 || (f->tf_rank = H5Tcopy(f->t_rank)) < 0 || H5Tpack(f->tf_rank) < 0 ||
      (f->tf_event = H5Tcopy(f->t_event)) < 0 || H5Tpack(f->tf_event) < 0 ||
      (f->tf_trace = H5Tcopy(f->t_trace)) < 0 || H5Tpack(f->tf_trace) < 0)
    goto fail;
  return IL_OK;
fail:
  return IL_H5_FAIL(IL_ERR_INTERNAL, f->path, "cannot build the compound row types");
}

static void close_id(hid_t *id, herr_t (*fn)(hid_t)) {
  if (*id >= 0) fn(*id);
  *id = -1;
}

void il_h5i_close_run(il_h5_file *f) {
  close_id(&f->d_epochs, H5Dclose);
  close_id(&f->d_steps, H5Dclose);
  close_id(&f->d_trace, H5Dclose);
  close_id(&f->run, H5Gclose);
  f->run_open = 0;
  f->run_id[0] = '\0';
}

/* A file whose H5Fclose failed (its last flush met an I/O error) stays in
 * HDF5's tables, and HDF5 1.10 crashes closing it again at MPI_Finalize. */
static int g_unclosed;

/* Release everything (rank 0 holds the HDF5 objects; the others have none). */
static herr_t release(il_h5_file *f) {
  herr_t r = 0;
  il_h5i_close_run(f);
  close_id(&f->runs, H5Gclose);
  close_id(&f->t_epoch, H5Tclose);
  close_id(&f->t_step, H5Tclose);
  close_id(&f->t_rank, H5Tclose);
  close_id(&f->tf_epoch, H5Tclose);
  close_id(&f->tf_step, H5Tclose);
  close_id(&f->tf_rank, H5Tclose);
  close_id(&f->t_event, H5Tclose);
  close_id(&f->tf_event, H5Tclose);
  close_id(&f->t_trace, H5Tclose);
  close_id(&f->tf_trace, H5Tclose);
  close_id(&f->t_event_name, H5Tclose);
  close_id(&f->t_reason, H5Tclose);
  close_id(&f->t_nanorigin, H5Tclose);
  if (f->fid >= 0) r = H5Fclose(f->fid);
  if (r < 0) g_unclosed = 1;
  f->fid = -1;
  return r;
}

int il_h5_unclosed(void) { return g_unclosed; }

static void destroy(il_h5_file *f) {
  if (!f) return;
  release(f);
  il_results_lock_release(f->lock);
  f->lock = NULL;
  if (f->comm != MPI_COMM_NULL) MPI_Comm_free(&f->comm);
  free(f->path);
  free(f->host);
  free(f->cmdline);
  free(f);
}

il_status il_h5i_flush(il_h5_file *f) {
  if (H5Fflush(f->fid, H5F_SCOPE_GLOBAL) < 0) return IL_H5_FAIL(IL_ERR_IO, f->path, "cannot flush");
  return IL_OK;
}
#define flush il_h5i_flush

/* Free bytes below which the writer refuses to start a write where it cannot
 * reserve the space for it (no fallocate): a write that fails inside HDF5
 * half-way leaves metadata pointing at blocks that never reached the disk,
 * and HDF5 1.10 then crashes at MPI_Finalize closing the file.
 * ILBENCH_H5_RESERVE_BYTES overrides it. */
static uint64_t space_reserve(void) {
  const char *e = getenv("ILBENCH_H5_RESERVE_BYTES");
  if (e && *e) {
    char *end;
    unsigned long long v = strtoull(e, &end, 10);
    if (*end == '\0') return v;
  }
  return 1u << 20;
}

static il_status no_space(const il_h5_file *f, uint64_t avail, uint64_t need, const char *how) {
  return IL_ERR(IL_ERR_IO,
                "results file '%s': no space left on its filesystem for the next write (about %llu bytes; %s%llu "
                "free); nothing more is written, runs already in the file are intact",
                f->path, (unsigned long long)need, how, (unsigned long long)avail);
}

/* Make sure the next write of about `need` bytes cannot meet a full disk
 * inside HDF5. With the file open, the blocks past its end are allocated now
 * (fallocate, FALLOC_FL_KEEP_SIZE: the size HDF5 sees is unchanged), so that
 * another process filling the disk afterwards cannot take them; a refusal
 * here is clean. Where fallocate is not supported (or the file is not open
 * yet), the filesystem's free space must exceed need plus the reserve. */
il_status il_h5i_space_check(const il_h5_file *f, uint64_t need, int with_reserve) {
  const char *off = getenv("ILBENCH_H5_NO_SPACE_CHECK"); /* fault testing: let HDF5 meet ENOSPC itself */
  if (off && strcmp(off, "1") == 0) return IL_OK;
  const uint64_t want = 2 * need + (256u << 10); /* HDF5's metadata and aggregators overshoot the data */
  void *h = NULL;
  if (f->fid >= 0 && H5Fget_vfd_handle(f->fid, H5P_DEFAULT, &h) >= 0 && h) {
    const int fd = *(int *)h;
    struct stat sb;
    if (fstat(fd, &sb) == 0) {
      if (fallocate(fd, FALLOC_FL_KEEP_SIZE, sb.st_size, (off_t)want) == 0) return IL_OK;
      if (errno == ENOSPC || errno == EDQUOT) {
        struct statvfs sv;
        const uint64_t avail = statvfs(f->path, &sv) == 0 ? (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize : 0;
        return no_space(f, avail, want, errno == EDQUOT ? "the quota is exhausted; " : "");
      }
    } /* not supported here (e.g. NFS before 4.2): judge by the free space */
  }
  struct statvfs sv;
  if (statvfs(f->path, &sv) != 0) return IL_OK; /* cannot tell: the write itself will report */
  const uint64_t avail = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
  if (avail < want + (with_reserve ? space_reserve() : 0))
    return no_space(f, avail, want, with_reserve ? "keeping the ILBENCH_H5_RESERVE_BYTES reserve, " : "");
  return IL_OK;
}

/* Root attributes and /runs of a new file (rank 0). */
static il_status init_new_file(il_h5_file *f) {
  char created[32] = "";
  il_h5i_now_iso(created);
  IL_CHECK(il_h5i_set_str_attr(f->fid, "schema", IL_H5_SCHEMA, f->path));
  IL_CHECK(il_h5i_set_i64_attr(f->fid, "schema_version", IL_H5_SCHEMA_VERSION, f->path));
  IL_CHECK(il_h5i_set_str_attr(f->fid, "software_version", ILBENCH_GIT, f->path));
  IL_CHECK(il_h5i_set_str_attr(f->fid, "created", created, f->path));
  IL_CHECK(il_h5i_set_str_attr(f->fid, "host", f->host, f->path));
  IL_CHECK(il_h5i_set_str_attr(f->fid, "command_line", f->cmdline, f->path));
  IL_CHECK(il_h5i_set_i64_attr(f->fid, "world_size", f->size, f->path));
  if ((f->runs = H5Gcreate2(f->fid, "runs", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0)
    return IL_H5_FAIL(IL_ERR_IO, f->path, "cannot create group /runs");
  return IL_OK;
}

/* File access for the writer: HDF5's serial (sec2) driver on rank 0, and HDF5's
 * own flock off (the sibling lock of results_lock.h is the writer's lock, and
 * it leaves readers' shared HDF5 locks alone). */
hid_t il_h5i_writer_fapl(void) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl < 0) return -1;
  if (H5Pset_fapl_sec2(fapl) < 0 || H5Pset_file_locking(fapl, 0, 1) < 0) {
    H5Pclose(fapl);
    return -1;
  }
  return fapl;
}

/* Rank 0's half of il_h5_open: lock, look at the path, create or open, check. */
static il_status open_root(il_h5_file *f, int mode, double wait_lock_s) {
  IL_CHECK(il_results_lock_acquire(f->path, wait_lock_s, &f->lock));
  struct stat sb;
  int exists = 0;
  if (stat(f->path, &sb) == 0) {
    if (!S_ISREG(sb.st_mode))
      return IL_ERR(IL_ERR_IO, "results file '%s' exists and is not a regular file", f->path);
    exists = 1;
  } else if (errno != ENOENT) {
    return IL_ERR(IL_ERR_IO, "results file '%s': %s", f->path, strerror(errno));
  }
  if (mode == IL_H5_CREATE && exists)
    return IL_ERR(IL_ERR_ARG, "results file '%s' exists; use --append to add runs or --force to replace it",
                  f->path);
  if (mode == IL_H5_APPEND && exists && H5Fis_hdf5(f->path) <= 0)
    return IL_ERR(IL_ERR_FORMAT, "results file '%s' exists and is not an HDF5 file; refusing to append to it",
                  f->path);
  const int creating = mode != IL_H5_APPEND || !exists;
  hid_t fapl = il_h5i_writer_fapl();
  if (fapl < 0) return IL_H5_FAIL(IL_ERR_INTERNAL, f->path, "cannot set up file access");
  if (creating) {
    IL_CHECK(il_h5i_space_check(f, 0, 1));
    f->fid = H5Fcreate(f->path, mode == IL_H5_FORCE ? H5F_ACC_TRUNC : H5F_ACC_EXCL, H5P_DEFAULT, fapl);
  } else {
    f->fid = H5Fopen(f->path, H5F_ACC_RDWR, fapl);
  }
  H5Pclose(fapl);
  if (f->fid < 0)
    return IL_H5_FAIL(IL_ERR_IO, f->path, creating ? "cannot create the file" : "cannot open the file for appending");
  IL_CHECK(make_types(f));
  if (creating) {
    IL_CHECK(init_new_file(f));
  } else {
    IL_CHECK(il_h5i_check_schema(f->fid, f->path));
    htri_t ex = H5Lexists(f->fid, "runs", H5P_DEFAULT);
    if (ex > 0) {
      H5O_info_t oi;
      if (H5Oget_info_by_name2(f->fid, "runs", &oi, H5O_INFO_BASIC, H5P_DEFAULT) < 0 || oi.type != H5O_TYPE_GROUP)
        return IL_ERR(IL_ERR_FORMAT, "results file '%s': /runs is not a group", f->path);
      f->runs = H5Gopen2(f->fid, "runs", H5P_DEFAULT);
    } else if (ex == 0) {
      f->runs = H5Gcreate2(f->fid, "runs", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    }
    if (f->runs < 0) return IL_H5_FAIL(IL_ERR_FORMAT, f->path, "cannot open group /runs");
  }
  return flush(f);
}

il_status il_h5_open_ex(MPI_Comm comm, const char *path, int mode, int argc, char **argv, const il_h5_open_opts *opts,
                        il_h5_file **out) {
  il_status st = IL_OK;
  il_h5i_quiet q;
  int rank, size;
  if (!out) return IL_ERR(IL_ERR_ARG, "il_h5_open: out is NULL");
  *out = NULL;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  MPI_Bcast(&mode, 1, MPI_INT, 0, comm); /* rank 0's choice, like the path */
  if (mode != IL_H5_CREATE && mode != IL_H5_APPEND && mode != IL_H5_FORCE)
    return IL_ERR(IL_ERR_ARG, "il_h5_open: unknown mode %d", mode);
  double wait_lock_s = opts ? opts->wait_lock_s : 0;
  MPI_Bcast(&wait_lock_s, 1, MPI_DOUBLE, 0, comm);
  il_h5i_quiet_begin(&q);

  il_h5_file *f = calloc(1, sizeof *f);
  int ok = f != NULL, all_ok;
  MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, comm);
  if (!all_ok) {
    free(f);
    il_h5i_quiet_end(&q);
    return IL_ERR(IL_ERR_NOMEM, "results file '%s': out of memory", path ? path : "");
  }
  f->comm = MPI_COMM_NULL;
  f->fid = f->runs = f->run = f->d_epochs = f->d_steps = f->d_trace = -1;
  f->t_trace = f->tf_trace = -1;
  f->t_epoch = f->t_step = f->t_rank = f->tf_epoch = f->tf_step = f->tf_rank = -1;
  f->t_event = f->tf_event = f->t_event_name = f->t_reason = f->t_nanorigin = -1;
  MPI_Comm_dup(comm, &f->comm);
  f->rank = rank;
  f->size = size;
  /* rank 0's path everywhere (for messages); host and command line are rank 0's */
  st = bcast_str(f->comm, rank, path, &f->path);
  if (st == IL_OK && rank == 0) {
    char host[256] = "";
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "unknown");
    host[sizeof host - 1] = '\0';
    f->host = strdup(host);
    f->cmdline = join_argv(argc, argv);
    if (!f->host || !f->cmdline) st = IL_ERR(IL_ERR_NOMEM, "results file '%s': out of memory", f->path);
  }
  if (st == IL_OK && !f->path[0]) st = IL_ERR(IL_ERR_ARG, "results file path is empty");
  if (st == IL_OK && rank == 0) st = open_root(f, mode, wait_lock_s);
  st = agree(f->comm, st);
  if (st != IL_OK)
    destroy(f);
  else
    *out = f;
  il_h5i_quiet_end(&q);
  return st;
}

il_status il_h5_open(MPI_Comm comm, const char *path, int mode, int argc, char **argv, il_h5_file **out) {
  return il_h5_open_ex(comm, path, mode, argc, argv, NULL, out);
}

const char *il_h5_path(const il_h5_file *f) { return f ? f->path : ""; }

static const char *const reserved_run_attrs[] = {"status", "started", "finished", "software_version", "host",
                                                  "command_line", "reason", "checkpoint", "resumes"};

static il_status check_run_info(const il_h5_file *f, const il_run_info *ri) {
  const char *id = ri->run_id, *p = f->path;
  if (memchr(id, '\0', sizeof ri->run_id) == NULL)
    return IL_ERR(IL_ERR_ARG, "results file '%s': run id is not NUL-terminated", p);
  if (!id[0] || strchr(id, '/') || strcmp(id, ".") == 0 || strcmp(id, "..") == 0)
    return IL_ERR(IL_ERR_ARG, "results file '%s': invalid run id '%s' (must be non-empty, without '/')", p, id);
  if (ri->nattrs < 0 || ri->nattrs > IL_RUN_ATTRS_MAX)
    return IL_ERR(IL_ERR_ARG, "results file '%s': run '%s': bad attribute count %d", p, id, ri->nattrs);
  for (int i = 0; i < ri->nattrs; i++) {
    const il_attr *a = &ri->attrs[i];
    if (!memchr(a->key, '\0', sizeof a->key) || !a->key[0] || (a->kind == 's' && !memchr(a->s, '\0', sizeof a->s)))
      return IL_ERR(IL_ERR_ARG, "results file '%s': run '%s': attribute %d is malformed", p, id, i);
    if (a->kind != 's' && a->kind != 'd' && a->kind != 'i')
      return IL_ERR(IL_ERR_ARG, "results file '%s': run '%s': attribute '%s' has unknown kind '%c'", p, id, a->key,
                    a->kind);
    int reserved = strncmp(a->key, "peak_bytes_", 11) == 0 || strncmp(a->key, "checkpoint_", 11) == 0;
    for (size_t r = 0; r < sizeof reserved_run_attrs / sizeof reserved_run_attrs[0]; r++)
      if (strcmp(a->key, reserved_run_attrs[r]) == 0) reserved = 1;
    if (reserved)
      return IL_ERR(IL_ERR_ARG, "results file '%s': run '%s': attribute name '%s' is reserved for the results writer",
                    p, id, a->key);
  }
  return IL_OK;
}

il_status il_h5i_set_status(il_h5_file *f, const char *status) {
  return set_str_attr_sized(f->run, "status", status, IL_H5_STATUS_LEN, f->path);
}

static il_status create_table(il_h5_file *f, const char *name, hid_t ftype, hsize_t chunk, hid_t *out) {
  hsize_t dims = 0, maxdims = H5S_UNLIMITED;
  hid_t sp = H5Screate_simple(1, &dims, &maxdims), dcpl = H5Pcreate(H5P_DATASET_CREATE);
  il_status st = IL_OK;
  if (sp < 0 || dcpl < 0 || H5Pset_chunk(dcpl, 1, &chunk) < 0 ||
      (*out = H5Dcreate2(f->run, name, ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT)) < 0)
    st = IL_H5_FAIL(IL_ERR_IO, f->path, "cannot create dataset /runs/%s/%s", f->run_id, name);
  if (dcpl >= 0) H5Pclose(dcpl);
  if (sp >= 0) H5Sclose(sp);
  return st;
}

/* Rank 0's half of il_h5_run_begin. */
static il_status run_begin_root(il_h5_file *f, const il_run_info *r, int *ours) {
  IL_CHECK(check_run_info(f, r));
  htri_t ex = H5Lexists(f->runs, r->run_id, H5P_DEFAULT);
  if (ex < 0) return IL_H5_FAIL(IL_ERR_IO, f->path, "cannot look up run '%s'", r->run_id);
  if (ex > 0) return IL_ERR(IL_ERR_ARG, "results file '%s' already has run '%s'; use another run id", f->path, r->run_id);
  IL_CHECK(il_h5i_space_check(f, 64u << 10, 1));
  snprintf(f->run_id, sizeof f->run_id, "%s", r->run_id);
  *ours = 1; /* from here on a failure closes this half-made run */
  if ((f->run = H5Gcreate2(f->runs, r->run_id, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0)
    return IL_H5_FAIL(IL_ERR_IO, f->path, "cannot create group /runs/%s", r->run_id);
  for (int i = 0; i < r->nattrs; i++) {
    const il_attr *a = &r->attrs[i];
    if (a->kind == 's')
      IL_CHECK(il_h5i_set_str_attr(f->run, a->key, a->s, f->path));
    else if (a->kind == 'd')
      IL_CHECK(il_h5i_set_f64_attr(f->run, a->key, a->d, f->path));
    else
      IL_CHECK(il_h5i_set_i64_attr(f->run, a->key, a->i, f->path));
  }
  char started[32] = "";
  il_h5i_now_iso(started);
  IL_CHECK(il_h5i_set_str_attr(f->run, "started", started, f->path));
  IL_CHECK(il_h5i_set_str_attr(f->run, "software_version", ILBENCH_GIT, f->path));
  IL_CHECK(il_h5i_set_str_attr(f->run, "host", f->host, f->path));
  IL_CHECK(il_h5i_set_str_attr(f->run, "command_line", f->cmdline, f->path));
  IL_CHECK(il_h5i_set_status(f, "running"));
  IL_CHECK(create_table(f, "epochs", f->tf_epoch, EPOCH_CHUNK_ROWS, &f->d_epochs));
  IL_CHECK(create_table(f, "steps", f->tf_step, STEP_CHUNK_ROWS, &f->d_steps));
  IL_CHECK(flush(f));
  f->run_open = 1;
  return IL_OK;
}

il_status il_h5_run_begin(il_h5_file *f, const il_run_info *ri) {
  if (!f) return IL_ERR(IL_ERR_ARG, "il_h5_run_begin: file is NULL");
  il_status st = IL_OK;
  int ours = 0;
  il_h5i_quiet q;
  il_h5i_quiet_begin(&q);
  int open_now = f->run_open;
  MPI_Bcast(&open_now, 1, MPI_INT, 0, f->comm);
  if (f->rank == 0) {
    if (!ri)
      st = IL_ERR(IL_ERR_ARG, "results file '%s': no run info on rank 0", f->path);
    else if (open_now)
      st = IL_ERR(IL_ERR_ARG, "results file '%s': run '%s' is still open; end it before starting '%s'", f->path,
                  f->run_id, ri->run_id);
    else
      st = run_begin_root(f, ri, &ours);
    if (st != IL_OK && ours) il_h5i_close_run(f);
  }
  st = il_h5i_settle(f, st);
  il_h5i_quiet_end(&q);
  return st;
}

/* Extend table d by n rows and write them (rank 0). */
il_status il_h5i_append_rows(il_h5_file *f, hid_t d, hid_t mtype, const void *rows, hsize_t n, const char *name) {
  il_status st = IL_OK;
  hid_t fs = -1, ms = -1;
  hsize_t cur = 0, total;
  if ((fs = H5Dget_space(d)) < 0 || H5Sget_simple_extent_dims(fs, &cur, NULL) < 0) goto fail;
  H5Sclose(fs);
  fs = -1;
  total = cur + n;
  if (H5Dset_extent(d, &total) < 0 || (fs = H5Dget_space(d)) < 0 || (ms = H5Screate_simple(1, &n, NULL)) < 0 ||
      H5Sselect_hyperslab(fs, H5S_SELECT_SET, &cur, NULL, &n, NULL) < 0 ||
      H5Dwrite(d, mtype, ms, fs, H5P_DEFAULT, rows) < 0)
    goto fail;
  goto out;
fail:
  st = IL_H5_FAIL(IL_ERR_IO, f->path, "cannot append %llu rows to /runs/%s/%s", (unsigned long long)n, f->run_id,
                  name);
out:
  if (ms >= 0) H5Sclose(ms);
  if (fs >= 0) H5Sclose(fs);
  return st;
}

/* Bytes a table append may take on disk: its rows and up to two new chunks. */
uint64_t il_h5i_append_need(size_t row_size, int nrows, int chunk_rows) {
  return (uint64_t)row_size * ((uint64_t)(nrows > 0 ? nrows : 0) + 2u * (uint64_t)chunk_rows) + (16u << 10);
}

il_status il_h5i_run_steps(il_h5_file *f, const il_step_row *steps, int nsteps) {
  if (nsteps <= 0) return IL_OK;
  IL_CHECK(il_h5i_space_check(f, il_h5i_append_need(sizeof *steps, nsteps, STEP_CHUNK_ROWS), 1));
  IL_CHECK(il_h5i_append_rows(f, f->d_steps, f->t_step, steps, (hsize_t)nsteps, "steps"));
  return flush(f);
}

il_status il_h5_run_epoch(il_h5_file *f, const il_epoch_row *e, const il_step_row *steps, int nsteps) {
  if (!f) return IL_ERR(IL_ERR_ARG, "il_h5_run_epoch: file is NULL");
  il_status st = IL_OK;
  il_h5i_quiet q;
  il_h5i_quiet_begin(&q);
  if (f->rank == 0) {
    if (!f->run_open)
      st = IL_ERR(IL_ERR_ARG, "results file '%s': no run is open (il_h5_run_begin first)", f->path);
    else if (!e || nsteps < 0 || (nsteps > 0 && !steps))
      st = IL_ERR(IL_ERR_ARG, "results file '%s': run '%s': epoch row missing or bad step count %d on rank 0",
                  f->path, f->run_id, nsteps);
    /* Steps first, flushed, then the epoch row, flushed: HDF5 1.10 may write cached
     * metadata in any order, so without the middle flush a kill could leave an
     * epoch row whose steps are missing. This way an epoch row in the file means
     * its steps are there; a kill can only leave steps of an unfinished epoch. */
    if (st == IL_OK) st = il_h5i_run_steps(f, steps, nsteps);
    if (st == IL_OK)
      st = il_h5i_space_check(f, il_h5i_append_need(sizeof *e, 1, EPOCH_CHUNK_ROWS), 1);
    if (st == IL_OK) st = il_h5i_append_rows(f, f->d_epochs, f->t_epoch, e, 1, "epochs");
    if (st == IL_OK) st = flush(f);
  }
  st = il_h5i_settle(f, st);
  il_h5i_quiet_end(&q);
  return st;
}

il_status il_h5i_open_trace(il_h5_file *f) {
  if (f->d_trace >= 0) return IL_OK;
  htri_t ex = H5Lexists(f->run, "trace", H5P_DEFAULT);
  if (ex < 0) return IL_H5_FAIL(IL_ERR_IO, f->path, "cannot look up /runs/%s/trace", f->run_id);
  if (ex == 0) return create_table(f, "trace", f->tf_trace, TRACE_CHUNK_ROWS, &f->d_trace);
  if ((f->d_trace = H5Dopen2(f->run, "trace", H5P_DEFAULT)) < 0)
    return IL_H5_FAIL(IL_ERR_FORMAT, f->path, "cannot open /runs/%s/trace", f->run_id);
  return IL_OK;
}

static il_status run_trace_root(il_h5_file *f, const il_trace_row *rows, int n) {
  if (!f->run_open) return IL_ERR(IL_ERR_ARG, "results file '%s': no run is open (il_h5_run_begin first)", f->path);
  if (n < 0 || (n > 0 && !rows))
    return IL_ERR(IL_ERR_ARG, "results file '%s': run '%s': bad trace row count %d on rank 0", f->path, f->run_id, n);
  for (int i = 0; i < n; i++)
    if (!memchr(rows[i].solve, '\0', IL_STR16_LEN) || !memchr(rows[i].solver, '\0', IL_STR16_LEN))
      return IL_ERR(IL_ERR_ARG, "results file '%s': run '%s': trace row %d has a name without a NUL in its %d "
                    "bytes", f->path, f->run_id, i, IL_STR16_LEN);
  IL_CHECK(il_h5i_space_check(f, il_h5i_append_need(sizeof *rows, n, TRACE_CHUNK_ROWS), 1));
  IL_CHECK(il_h5i_open_trace(f));
  if (n > 0) IL_CHECK(il_h5i_append_rows(f, f->d_trace, f->t_trace, rows, (hsize_t)n, "trace"));
  return flush(f);
}

il_status il_h5_run_trace(il_h5_file *f, const il_trace_row *rows, int n) {
  if (!f) return IL_ERR(IL_ERR_ARG, "il_h5_run_trace: file is NULL");
  il_status st = IL_OK;
  il_h5i_quiet q;
  il_h5i_quiet_begin(&q);
  if (f->rank == 0) st = run_trace_root(f, rows, n);
  st = il_h5i_settle(f, st);
  il_h5i_quiet_end(&q);
  return st;
}

/* Every rank's row of the ranks table, gathered to rank 0. */
static il_status write_ranks(il_h5_file *f, const il_rank_row *all) {
  il_status st = IL_OK;
  hsize_t n = (hsize_t)f->size;
  hid_t sp = -1, d = -1;
  if ((sp = H5Screate_simple(1, &n, NULL)) < 0 ||
      (d = H5Dcreate2(f->run, "ranks", f->tf_rank, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0)
    st = IL_H5_FAIL(IL_ERR_IO, f->path, "cannot create dataset /runs/%s/ranks", f->run_id);
  else if (H5Dwrite(d, f->t_rank, H5S_ALL, H5S_ALL, H5P_DEFAULT, all) < 0)
    st = IL_H5_FAIL(IL_ERR_IO, f->path, "cannot write /runs/%s/ranks", f->run_id);
  if (d >= 0) H5Dclose(d);
  if (sp >= 0) H5Sclose(sp);
  return st;
}

/* Rank 0's n event rows into a new fixed-size /runs/<id>/events. Names are
 * copied into zeroed rows so that no bytes after a name's NUL reach the file. */
static il_status write_events(il_h5_file *f, const il_event_row *rows, int n) {
  il_status st = IL_OK;
  hsize_t dims = (hsize_t)n;
  hid_t sp = -1, d = -1;
  il_event_row *buf = n > 0 ? calloc((size_t)n, sizeof *buf) : NULL;
  if (n > 0 && !buf) return IL_ERR(IL_ERR_NOMEM, "results file '%s': no memory for %d event rows", f->path, n);
  for (int i = 0; i < n; i++) {
    snprintf(buf[i].name, sizeof buf[i].name, "%s", rows[i].name);
    buf[i].calls = rows[i].calls;
    buf[i].time_max = rows[i].time_max;
    buf[i].time_sum = rows[i].time_sum;
    buf[i].flops = rows[i].flops;
  }
  if ((sp = H5Screate_simple(1, &dims, NULL)) < 0 ||
      (d = H5Dcreate2(f->run, "events", f->tf_event, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0)
    st = IL_H5_FAIL(IL_ERR_IO, f->path, "cannot create dataset /runs/%s/events", f->run_id);
  else if (n > 0 && H5Dwrite(d, f->t_event, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
    st = IL_H5_FAIL(IL_ERR_IO, f->path, "cannot write the %d rows of /runs/%s/events", n, f->run_id);
  if (d >= 0) H5Dclose(d);
  if (sp >= 0) H5Sclose(sp);
  free(buf);
  return st;
}

static il_status run_events_root(il_h5_file *f, const il_event_row *rows, int n, int lo, int hi) {
  if (!f->run_open) return IL_ERR(IL_ERR_ARG, "results file '%s': no run is open (il_h5_run_begin first)", f->path);
  if (lo != hi || n < 0)
    return IL_ERR(IL_ERR_ARG, "results file '%s': run '%s': events row count must be >= 0 and the same on every rank "
                  "(got %d to %d)", f->path, f->run_id, lo, hi);
  if (n > 0 && !rows)
    return IL_ERR(IL_ERR_ARG, "results file '%s': run '%s': %d event rows but no rows on rank 0", f->path, f->run_id,
                  n);
  for (int i = 0; i < n; i++)
    if (!memchr(rows[i].name, '\0', EVENT_NAME_LEN) || !rows[i].name[0])
      return IL_ERR(IL_ERR_ARG, "results file '%s': run '%s': event row %d has an empty name or one without a NUL "
                    "in its %zu bytes", f->path, f->run_id, i, EVENT_NAME_LEN);
  htri_t ex = H5Lexists(f->run, "events", H5P_DEFAULT);
  if (ex < 0) return IL_H5_FAIL(IL_ERR_IO, f->path, "cannot look up /runs/%s/events", f->run_id);
  if (ex > 0)
    return IL_ERR(IL_ERR_ARG, "results file '%s': run '%s' already has an events table (write it once per run)",
                  f->path, f->run_id);
  IL_CHECK(il_h5i_space_check(f, (uint64_t)n * sizeof *rows + (16u << 10), 1));
  IL_CHECK(write_events(f, rows, n));
  return flush(f);
}

il_status il_h5_run_events(il_h5_file *f, const il_event_row *rows, int n) {
  if (!f) return IL_ERR(IL_ERR_ARG, "il_h5_run_events: file is NULL");
  il_status st = IL_OK;
  il_h5i_quiet q;
  il_h5i_quiet_begin(&q);
  /* every rank must pass rank 0's count: a mismatch is a caller bug worth naming */
  int lo = n, hi = n;
  MPI_Allreduce(&n, &lo, 1, MPI_INT, MPI_MIN, f->comm);
  MPI_Allreduce(&n, &hi, 1, MPI_INT, MPI_MAX, f->comm);
  if (f->rank == 0) st = run_events_root(f, rows, n, lo, hi);
  st = il_h5i_settle(f, st);
  il_h5i_quiet_end(&q);
  return st;
}

static int valid_end_status(const char *s) {
  return strcmp(s, "completed") == 0 || strcmp(s, "failed") == 0 || strcmp(s, "interrupted") == 0;
}

/* Rank 0's half of il_h5_run_finish. A full disk still gets the status when a
 * little room is left (no reserve: this is what the reserve was kept for). */
static il_status run_end_root(il_h5_file *f, const char *status, const char *reason, const il_memstats *peak,
                              const il_rank_row *all) {
  if (!f->run_open) return IL_ERR(IL_ERR_ARG, "results file '%s': no run is open (il_h5_run_begin first)", f->path);
  if (!valid_end_status(status))
    return IL_ERR(IL_ERR_ARG, "results file '%s': run '%s': end status must be \"completed\", \"failed\" or "
                  "\"interrupted\", not \"%s\"", f->path, f->run_id, status);
  IL_CHECK(il_h5i_space_check(f, (uint64_t)f->size * sizeof *all + (32u << 10), 0));
  IL_CHECK(write_ranks(f, all));
  if (peak) {
    char name[64];
    for (int c = 0; c < IL_MEM_NCAT; c++) {
      snprintf(name, sizeof name, "peak_bytes_%s", il_mem_category_name((il_mem_category)c));
      IL_CHECK(il_h5i_set_i64_attr(f->run, name, (int64_t)peak->peak[c], f->path));
    }
    IL_CHECK(il_h5i_set_i64_attr(f->run, "peak_bytes_total", (int64_t)peak->peak_total, f->path));
  }
  if (reason && reason[0]) IL_CHECK(il_h5i_set_str_attr(f->run, "reason", reason, f->path));
  char fin[32] = "";
  il_h5i_now_iso(fin);
  IL_CHECK(il_h5i_set_str_attr(f->run, "finished", fin, f->path));
  IL_CHECK(il_h5i_set_status(f, status));
  return flush(f);
}

il_status il_h5_run_finish(il_h5_file *f, const char *status, const char *reason, const il_memstats *peak,
                           const il_rank_row *my_row) {
  if (!f) return IL_ERR(IL_ERR_ARG, "il_h5_run_end: file is NULL");
  il_status st = IL_OK;
  il_h5i_quiet q;
  il_h5i_quiet_begin(&q);
  il_rank_row row, *all = NULL;
  memset(&row, 0, sizeof row);
  if (my_row) row = *my_row;
  row.rank = f->rank;
  int ok = f->rank != 0 || (all = calloc((size_t)f->size, sizeof *all)) != NULL;
  MPI_Bcast(&ok, 1, MPI_INT, 0, f->comm);
  if (!ok) {
    il_h5i_quiet_end(&q);
    return agree(f->comm, IL_ERR(IL_ERR_NOMEM, "results file '%s': no memory for the ranks table", f->path));
  }
  MPI_Gather(&row, (int)sizeof row, MPI_BYTE, all, (int)sizeof row, MPI_BYTE, 0, f->comm);
  if (f->rank == 0) {
    const int valid = status && valid_end_status(status);
    st = run_end_root(f, status ? status : "", reason, peak, all);
    if (valid && f->run_open) il_h5i_close_run(f); /* ended or failing to, the run takes no more rows */
  }
  free(all);
  st = il_h5i_settle(f, st);
  il_h5i_quiet_end(&q);
  return st;
}

il_status il_h5_run_end(il_h5_file *f, const char *status, const il_memstats *peak, const il_rank_row *my_row) {
  return il_h5_run_finish(f, status, NULL, peak, my_row);
}

il_status il_h5_close(il_h5_file *f) {
  if (!f) return IL_OK;
  il_h5i_quiet q;
  il_h5i_quiet_begin(&q);
  il_status st = IL_OK;
  if (f->rank == 0 && release(f) < 0) st = IL_H5_FAIL(IL_ERR_IO, f->path, "cannot close the file");
  st = agree(f->comm, st);
  destroy(f);
  il_h5i_quiet_end(&q);
  return st;
}
