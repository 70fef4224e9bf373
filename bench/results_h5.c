/* bench/results_h5.c: the HDF5 results writer (parallel HDF5 over MPI-IO).
 * Schema and units: analysis/SCHEMA.md. Collective rules followed here:
 *  - every metadata change (create, extend, attribute write, flush, close) is
 *    made by all ranks with identical arguments, so values that only rank 0
 *    knows (path, host, time, command line, run info, rows count, status,
 *    peak memory) are broadcast from rank 0 first;
 *  - table rows are written with collective transfers: rank 0 selects the new
 *    rows, the other ranks select nothing (the `events` table too: its rows
 *    are the same on every rank, so rank 0's are written); the `ranks` table
 *    gets one row per rank in one collective write;
 *  - each public call ends by agreeing on a status, so all ranks return the
 *    same status and the first failing rank's message. */
#include "results_h5.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "results_h5_internal.h"

#ifndef ILBENCH_GIT
#define ILBENCH_GIT "unknown"
#endif

#define EPOCH_CHUNK_ROWS 64 /* ~10 KB chunks */
#define STEP_CHUNK_ROWS 256 /* ~41 KB chunks; parallel HDF5 allocates them up front */
#define STATUS_LEN 16 /* fixed size of the run `status` attribute */
#define EVENT_NAME_LEN ((size_t)sizeof(((il_event_row *)0)->name)) /* fixed size of events.name */

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

static il_status delete_if_exists(hid_t obj, const char *name, const char *path) {
  htri_t ex = H5Aexists(obj, name);
  if (ex < 0) return IL_H5_FAIL(IL_ERR_IO, path, "cannot look up attribute '%s'", name);
  if (ex > 0 && H5Adelete(obj, name) < 0)
    return IL_H5_FAIL(IL_ERR_IO, path, "cannot replace attribute '%s'", name);
  return IL_OK;
}

/* Scalar attribute of type `type` holding *v. */
static il_status set_attr(hid_t obj, const char *name, hid_t type, const void *v, const char *path) {
  il_status st = IL_OK;
  hid_t sp = -1, a = -1;
  IL_CHECK(delete_if_exists(obj, name, path));
  if ((sp = H5Screate(H5S_SCALAR)) < 0 || (a = H5Acreate2(obj, name, type, sp, H5P_DEFAULT, H5P_DEFAULT)) < 0) {
    st = IL_H5_FAIL(IL_ERR_IO, path, "cannot create attribute '%s'", name);
    goto out;
  }
  if (H5Awrite(a, type, v) < 0) st = IL_H5_FAIL(IL_ERR_IO, path, "cannot write attribute '%s'", name);
out:
  if (a >= 0) H5Aclose(a);
  if (sp >= 0) H5Sclose(sp);
  return st;
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
  htri_t vl = H5Tis_variable_str(ft);
  if (vl < 0 || (mt = H5Tcopy(H5T_C_S1)) < 0) {
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

/* ---- the parallel writer ---------------------------------------------------- */

struct il_h5_file {
  MPI_Comm comm;
  int rank, size;
  char *path;      /* rank 0's path, on every rank */
  char *host;      /* rank 0's hostname */
  char *cmdline;   /* rank 0's argv, joined */
  hid_t fid, runs; /* file, /runs */
  hid_t xfer;      /* collective data transfer */
  hid_t t_epoch, t_step, t_rank, t_event;     /* memory (native struct) compound types */
  hid_t tf_epoch, tf_step, tf_rank, tf_event; /* the same, packed, as stored in the file */
  hid_t t_event_name;                         /* events.name: fixed-length NUL-terminated ASCII */
  hid_t t_reason, t_nanorigin;                /* HDF5 enums over int32: il_reason, il_nan_origin */
  /* current run (run >= 0 between run_begin and run_end) */
  hid_t run, d_epochs, d_steps;
  char run_id[sizeof(((il_run_info *)0)->run_id)];
};

/* All ranks return the same status: the first failing rank's status and message. */
static il_status agree(MPI_Comm comm, il_status st) {
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
      (f->t_event = make_compound(f, &il_results_tables[IL_TABLE_EVENTS])) < 0)
    goto fail;
  if ((f->tf_epoch = H5Tcopy(f->t_epoch)) < 0 || H5Tpack(f->tf_epoch) < 0 || (f->tf_step = H5Tcopy(f->t_step)) < 0 ||
      H5Tpack(f->tf_step) < 0 || (f->tf_rank = H5Tcopy(f->t_rank)) < 0 || H5Tpack(f->tf_rank) < 0 ||
      (f->tf_event = H5Tcopy(f->t_event)) < 0 || H5Tpack(f->tf_event) < 0)
    goto fail;
  return IL_OK;
fail:
  return IL_H5_FAIL(IL_ERR_INTERNAL, f->path, "cannot build the compound row types");
}

static void close_id(hid_t *id, herr_t (*fn)(hid_t)) {
  if (*id >= 0) fn(*id);
  *id = -1;
}

static void close_run(il_h5_file *f) {
  close_id(&f->d_epochs, H5Dclose);
  close_id(&f->d_steps, H5Dclose);
  close_id(&f->run, H5Gclose);
  f->run_id[0] = '\0';
}

/* Release everything; collective when the file is open (H5Fclose). */
static herr_t release(il_h5_file *f) {
  herr_t r = 0;
  close_run(f);
  close_id(&f->runs, H5Gclose);
  close_id(&f->xfer, H5Pclose);
  close_id(&f->t_epoch, H5Tclose);
  close_id(&f->t_step, H5Tclose);
  close_id(&f->t_rank, H5Tclose);
  close_id(&f->tf_epoch, H5Tclose);
  close_id(&f->tf_step, H5Tclose);
  close_id(&f->tf_rank, H5Tclose);
  close_id(&f->t_event, H5Tclose);
  close_id(&f->tf_event, H5Tclose);
  close_id(&f->t_event_name, H5Tclose);
  close_id(&f->t_reason, H5Tclose);
  close_id(&f->t_nanorigin, H5Tclose);
  if (f->fid >= 0) r = H5Fclose(f->fid);
  f->fid = -1;
  return r;
}

static void destroy(il_h5_file *f) {
  if (!f) return;
  release(f);
  if (f->comm != MPI_COMM_NULL) MPI_Comm_free(&f->comm);
  free(f->path);
  free(f->host);
  free(f->cmdline);
  free(f);
}

static il_status flush(il_h5_file *f) {
  if (H5Fflush(f->fid, H5F_SCOPE_GLOBAL) < 0) return IL_H5_FAIL(IL_ERR_IO, f->path, "cannot flush");
  return IL_OK;
}

/* Root attributes and /runs of a new file. */
static il_status init_new_file(il_h5_file *f) {
  char created[32] = "";
  char *created_all = NULL;
  il_status st;
  if (f->rank == 0) il_h5i_now_iso(created);
  IL_CHECK(bcast_str(f->comm, f->rank, created, &created_all));
  if ((st = il_h5i_set_str_attr(f->fid, "schema", IL_H5_SCHEMA, f->path)) != IL_OK ||
      (st = il_h5i_set_i64_attr(f->fid, "schema_version", IL_H5_SCHEMA_VERSION, f->path)) != IL_OK ||
      (st = il_h5i_set_str_attr(f->fid, "software_version", ILBENCH_GIT, f->path)) != IL_OK ||
      (st = il_h5i_set_str_attr(f->fid, "created", created_all, f->path)) != IL_OK ||
      (st = il_h5i_set_str_attr(f->fid, "host", f->host, f->path)) != IL_OK ||
      (st = il_h5i_set_str_attr(f->fid, "command_line", f->cmdline, f->path)) != IL_OK ||
      (st = il_h5i_set_i64_attr(f->fid, "world_size", f->size, f->path)) != IL_OK) {
    free(created_all);
    return il_error_trace(st, __FILE__, __LINE__);
  }
  free(created_all);
  if ((f->runs = H5Gcreate2(f->fid, "runs", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0)
    return IL_H5_FAIL(IL_ERR_IO, f->path, "cannot create group /runs");
  return IL_OK;
}

/* What rank 0 finds at the path before anything is opened. */
enum { PATH_MISSING = 0, PATH_HDF5 = 1, PATH_NOT_HDF5 = 2, PATH_NOT_FILE = 3 };

il_status il_h5_open(MPI_Comm comm, const char *path, int mode, int argc, char **argv, il_h5_file **out) {
  il_status st = IL_OK;
  il_h5_file *f = NULL;
  hid_t fapl = -1;
  il_h5i_quiet q;
  int rank, size;
  if (!out) return IL_ERR(IL_ERR_ARG, "il_h5_open: out is NULL");
  *out = NULL;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  MPI_Bcast(&mode, 1, MPI_INT, 0, comm); /* rank 0's choice, like the path */
  if (mode != IL_H5_CREATE && mode != IL_H5_APPEND && mode != IL_H5_FORCE)
    return IL_ERR(IL_ERR_ARG, "il_h5_open: unknown mode %d", mode);
  il_h5i_quiet_begin(&q);

  f = calloc(1, sizeof *f);
  int ok = f != NULL, all_ok;
  MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, comm);
  if (!all_ok) {
    free(f);
    il_h5i_quiet_end(&q);
    return IL_ERR(IL_ERR_NOMEM, "results file '%s': out of memory", path ? path : "");
  }
  f->comm = MPI_COMM_NULL;
  f->fid = f->runs = f->xfer = f->run = f->d_epochs = f->d_steps = -1;
  f->t_epoch = f->t_step = f->t_rank = f->tf_epoch = f->tf_step = f->tf_rank = -1;
  f->t_event = f->tf_event = f->t_event_name = f->t_reason = f->t_nanorigin = -1;
  MPI_Comm_dup(comm, &f->comm);
  f->rank = rank;
  f->size = size;

  /* rank 0's path, host and command line everywhere (MPI-IO needs one name) */
  char host[256] = "";
  char *cmd = NULL;
  if (rank == 0) {
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "unknown");
    host[sizeof host - 1] = '\0';
    cmd = join_argv(argc, argv);
  }
  st = bcast_str(f->comm, rank, path, &f->path);
  if (st == IL_OK) st = bcast_str(f->comm, rank, host, &f->host);
  if (st == IL_OK) st = bcast_str(f->comm, rank, cmd ? cmd : "", &f->cmdline);
  free(cmd);
  if (st != IL_OK) goto out;
  if (!f->path[0]) {
    st = IL_ERR(IL_ERR_ARG, "results file path is empty");
    goto out;
  }

  /* Decide on rank 0, before anything touches the file, and share the verdict. */
  int verdict = PATH_MISSING;
  if (rank == 0) {
    struct stat sb;
    if (stat(f->path, &sb) == 0) {
      if (!S_ISREG(sb.st_mode))
        verdict = PATH_NOT_FILE;
      else if (mode == IL_H5_APPEND)
        verdict = H5Fis_hdf5(f->path) > 0 ? PATH_HDF5 : PATH_NOT_HDF5;
      else
        verdict = PATH_HDF5; /* exists; content does not matter for create/force */
    }
  }
  MPI_Bcast(&verdict, 1, MPI_INT, 0, f->comm);
  if (verdict == PATH_NOT_FILE) {
    st = IL_ERR(IL_ERR_IO, "results file '%s' exists and is not a regular file", f->path);
    goto out;
  }
  if (mode == IL_H5_CREATE && verdict != PATH_MISSING) {
    st = IL_ERR(IL_ERR_ARG, "results file '%s' exists; use --append to add runs or --force to replace it", f->path);
    goto out;
  }
  if (mode == IL_H5_APPEND && verdict == PATH_NOT_HDF5) {
    st = IL_ERR(IL_ERR_FORMAT, "results file '%s' exists and is not an HDF5 file; refusing to append to it",
                f->path);
    goto out;
  }

  if ((fapl = H5Pcreate(H5P_FILE_ACCESS)) < 0 || H5Pset_fapl_mpio(fapl, f->comm, MPI_INFO_NULL) < 0 ||
      (f->xfer = H5Pcreate(H5P_DATASET_XFER)) < 0 || H5Pset_dxpl_mpio(f->xfer, H5FD_MPIO_COLLECTIVE) < 0) {
    st = IL_H5_FAIL(IL_ERR_INTERNAL, f->path, "cannot set up MPI-IO access");
    goto out;
  }
  int creating = mode != IL_H5_APPEND || verdict == PATH_MISSING;
  if (creating) {
    f->fid = H5Fcreate(f->path, mode == IL_H5_FORCE ? H5F_ACC_TRUNC : H5F_ACC_EXCL, H5P_DEFAULT, fapl);
    if (f->fid < 0) st = IL_H5_FAIL(IL_ERR_IO, f->path, "cannot create the file");
  } else {
    f->fid = H5Fopen(f->path, H5F_ACC_RDWR, fapl);
    if (f->fid < 0) st = IL_H5_FAIL(IL_ERR_IO, f->path, "cannot open the file for appending");
  }
  if ((st = agree(f->comm, st)) != IL_OK) goto out;
  IL_CHECK_GOTO(st, make_types(f), out);
  if (creating) {
    IL_CHECK_GOTO(st, init_new_file(f), out);
  } else {
    IL_CHECK_GOTO(st, il_h5i_check_schema(f->fid, f->path), out);
    htri_t ex = H5Lexists(f->fid, "runs", H5P_DEFAULT);
    if (ex > 0)
      f->runs = H5Gopen2(f->fid, "runs", H5P_DEFAULT);
    else if (ex == 0)
      f->runs = H5Gcreate2(f->fid, "runs", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (f->runs < 0) {
      st = IL_H5_FAIL(IL_ERR_FORMAT, f->path, "cannot open group /runs");
      goto out;
    }
  }
  IL_CHECK_GOTO(st, flush(f), out);

out:
  if (fapl >= 0) H5Pclose(fapl);
  st = f->comm != MPI_COMM_NULL ? agree(f->comm, st) : st;
  if (st != IL_OK)
    destroy(f);
  else
    *out = f;
  il_h5i_quiet_end(&q);
  return st;
}

static const char *const reserved_run_attrs[] = {"status", "started", "finished", "software_version", "host",
                                                  "command_line"};

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
    int reserved = strncmp(a->key, "peak_bytes_", 11) == 0;
    for (size_t r = 0; r < sizeof reserved_run_attrs / sizeof reserved_run_attrs[0]; r++)
      if (strcmp(a->key, reserved_run_attrs[r]) == 0) reserved = 1;
    if (reserved)
      return IL_ERR(IL_ERR_ARG, "results file '%s': run '%s': attribute name '%s' is reserved for the results writer",
                    p, id, a->key);
  }
  return IL_OK;
}

static il_status set_status(il_h5_file *f, const char *status) {
  return set_str_attr_sized(f->run, "status", status, STATUS_LEN, f->path);
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

il_status il_h5_run_begin(il_h5_file *f, const il_run_info *ri) {
  if (!f) return IL_ERR(IL_ERR_ARG, "il_h5_run_begin: file is NULL");
  il_status st = IL_OK;
  int ours = 0;
  il_h5i_quiet q;
  il_h5i_quiet_begin(&q);
  il_run_info *r = calloc(1, sizeof *r);
  int ok = r != NULL && (f->rank != 0 || ri != NULL), all_ok;
  MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, f->comm);
  if (!all_ok) {
    free(r);
    il_h5i_quiet_end(&q);
    return IL_ERR(IL_ERR_ARG, "results file '%s': no run info on rank 0 (or out of memory)", f->path);
  }
  if (f->rank == 0) memcpy(r, ri, sizeof *r);
  MPI_Bcast(r, (int)sizeof *r, MPI_BYTE, 0, f->comm);
  if (f->run >= 0) {
    st = IL_ERR(IL_ERR_ARG, "results file '%s': run '%s' is still open; end it before starting '%s'", f->path,
                f->run_id, r->run_id);
    goto out;
  }
  IL_CHECK_GOTO(st, check_run_info(f, r), out);
  htri_t ex = H5Lexists(f->runs, r->run_id, H5P_DEFAULT);
  if (ex < 0) {
    st = IL_H5_FAIL(IL_ERR_IO, f->path, "cannot look up run '%s'", r->run_id);
    goto out;
  }
  if (ex > 0) {
    st = IL_ERR(IL_ERR_ARG, "results file '%s' already has run '%s'; use another run id", f->path, r->run_id);
    goto out;
  }
  snprintf(f->run_id, sizeof f->run_id, "%s", r->run_id);
  ours = 1; /* from here on a failure closes this half-made run */
  if ((f->run = H5Gcreate2(f->runs, r->run_id, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0) {
    st = IL_H5_FAIL(IL_ERR_IO, f->path, "cannot create group /runs/%s", r->run_id);
    goto out;
  }
  for (int i = 0; i < r->nattrs; i++) {
    const il_attr *a = &r->attrs[i];
    if (a->kind == 's')
      st = il_h5i_set_str_attr(f->run, a->key, a->s, f->path);
    else if (a->kind == 'd')
      st = il_h5i_set_f64_attr(f->run, a->key, a->d, f->path);
    else
      st = il_h5i_set_i64_attr(f->run, a->key, a->i, f->path);
    if (st != IL_OK) goto out;
  }
  char started[32] = "";
  char *started_all = NULL;
  if (f->rank == 0) il_h5i_now_iso(started);
  IL_CHECK_GOTO(st, bcast_str(f->comm, f->rank, started, &started_all), out);
  st = il_h5i_set_str_attr(f->run, "started", started_all, f->path);
  free(started_all);
  if (st != IL_OK) goto out;
  IL_CHECK_GOTO(st, il_h5i_set_str_attr(f->run, "software_version", ILBENCH_GIT, f->path), out);
  IL_CHECK_GOTO(st, il_h5i_set_str_attr(f->run, "host", f->host, f->path), out);
  IL_CHECK_GOTO(st, il_h5i_set_str_attr(f->run, "command_line", f->cmdline, f->path), out);
  IL_CHECK_GOTO(st, set_status(f, "running"), out);
  IL_CHECK_GOTO(st, create_table(f, "epochs", f->tf_epoch, EPOCH_CHUNK_ROWS, &f->d_epochs), out);
  IL_CHECK_GOTO(st, create_table(f, "steps", f->tf_step, STEP_CHUNK_ROWS, &f->d_steps), out);
  IL_CHECK_GOTO(st, flush(f), out);
out:
  free(r);
  st = agree(f->comm, st);
  if (st != IL_OK && ours) close_run(f);
  il_h5i_quiet_end(&q);
  return st;
}

/* Extend table d by n rows (collective) and write rank 0's rows into them. */
static il_status append_rows(il_h5_file *f, hid_t d, hid_t mtype, const void *rows, hsize_t n, const char *name) {
  il_status st = IL_OK;
  hid_t fs = -1, ms = -1;
  hsize_t cur = 0, total;
  char dummy[8] = {0};
  if ((fs = H5Dget_space(d)) < 0 || H5Sget_simple_extent_dims(fs, &cur, NULL) < 0) goto fail;
  H5Sclose(fs);
  fs = -1;
  total = cur + n;
  if (H5Dset_extent(d, &total) < 0 || (fs = H5Dget_space(d)) < 0 || (ms = H5Screate_simple(1, &n, NULL)) < 0)
    goto fail;
  if (f->rank == 0) {
    if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, &cur, NULL, &n, NULL) < 0) goto fail;
  } else {
    if (H5Sselect_none(fs) < 0 || H5Sselect_none(ms) < 0) goto fail;
    rows = dummy;
  }
  if (H5Dwrite(d, mtype, ms, fs, f->xfer, rows) < 0) goto fail;
  goto out;
fail:
  st = IL_H5_FAIL(IL_ERR_IO, f->path, "cannot append %llu rows to /runs/%s/%s", (unsigned long long)n, f->run_id,
                  name);
out:
  if (ms >= 0) H5Sclose(ms);
  if (fs >= 0) H5Sclose(fs);
  return st;
}

il_status il_h5_run_epoch(il_h5_file *f, const il_epoch_row *e, const il_step_row *steps, int nsteps) {
  if (!f) return IL_ERR(IL_ERR_ARG, "il_h5_run_epoch: file is NULL");
  il_status st = IL_OK;
  il_h5i_quiet q;
  il_h5i_quiet_begin(&q);
  int hdr[2] = {1, nsteps}; /* valid, nsteps (rank 0's) */
  if (f->rank == 0 && (!e || nsteps < 0 || (nsteps > 0 && !steps))) hdr[0] = 0;
  MPI_Bcast(hdr, 2, MPI_INT, 0, f->comm);
  if (f->run < 0) {
    st = IL_ERR(IL_ERR_ARG, "results file '%s': no run is open (il_h5_run_begin first)", f->path);
    goto out;
  }
  if (!hdr[0]) {
    st = IL_ERR(IL_ERR_ARG, "results file '%s': run '%s': epoch row missing or bad step count %d on rank 0",
                f->path, f->run_id, hdr[1]);
    goto out;
  }
  /* Steps first, flushed, then the epoch row, flushed: HDF5 1.10 may write cached
   * metadata in any order, so without the middle flush a kill could leave an
   * epoch row whose steps are missing. This way an epoch row in the file means
   * its steps are there; a kill can only leave steps of an unfinished epoch. */
  if (hdr[1] > 0) IL_CHECK_GOTO(st, append_rows(f, f->d_steps, f->t_step, steps, (hsize_t)hdr[1], "steps"), out);
  IL_CHECK_GOTO(st, flush(f), out);
  IL_CHECK_GOTO(st, append_rows(f, f->d_epochs, f->t_epoch, e, 1, "epochs"), out);
  IL_CHECK_GOTO(st, flush(f), out);
out:
  st = agree(f->comm, st);
  il_h5i_quiet_end(&q);
  return st;
}

static il_status write_ranks(il_h5_file *f, const il_rank_row *my_row) {
  il_status st = IL_OK;
  hsize_t n = (hsize_t)f->size, one = 1, me = (hsize_t)f->rank;
  hid_t sp = -1, ms = -1, d = -1;
  il_rank_row row;
  memset(&row, 0, sizeof row);
  if (my_row) row = *my_row;
  row.rank = f->rank;
  if ((sp = H5Screate_simple(1, &n, NULL)) < 0 || (ms = H5Screate_simple(1, &one, NULL)) < 0 ||
      (d = H5Dcreate2(f->run, "ranks", f->tf_rank, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0) {
    st = IL_H5_FAIL(IL_ERR_IO, f->path, "cannot create dataset /runs/%s/ranks", f->run_id);
    goto out;
  }
  if (H5Sselect_hyperslab(sp, H5S_SELECT_SET, &me, NULL, &one, NULL) < 0 ||
      H5Dwrite(d, f->t_rank, ms, sp, f->xfer, &row) < 0)
    st = IL_H5_FAIL(IL_ERR_IO, f->path, "cannot write rank %d's row of /runs/%s/ranks", f->rank, f->run_id);
out:
  if (d >= 0) H5Dclose(d);
  if (ms >= 0) H5Sclose(ms);
  if (sp >= 0) H5Sclose(sp);
  return st;
}

/* Rank 0's n event rows into a new fixed-size /runs/<id>/events (n is the same
 * on every rank: the dataset's shape is metadata). Rank 0 selects every row,
 * the others nothing, in one collective write, as append_rows does. Names are
 * copied into zeroed rows so that no bytes after a name's NUL reach the file. */
static il_status write_events(il_h5_file *f, const il_event_row *rows, int n) {
  il_status st = IL_OK;
  hsize_t dims = (hsize_t)n;
  hid_t sp = -1, ms = -1, d = -1;
  il_event_row *buf = NULL;
  int ok = 1, all_ok;
  if (f->rank == 0 && n > 0) {
    buf = calloc((size_t)n, sizeof *buf);
    if (buf) {
      for (int i = 0; i < n; i++) {
        snprintf(buf[i].name, sizeof buf[i].name, "%s", rows[i].name);
        buf[i].calls = rows[i].calls;
        buf[i].time_max = rows[i].time_max;
        buf[i].time_sum = rows[i].time_sum;
        buf[i].flops = rows[i].flops;
      }
    } else {
      ok = 0;
    }
  }
  MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, f->comm);
  if (!all_ok) return IL_ERR(IL_ERR_NOMEM, "results file '%s': no memory for %d event rows", f->path, n);
  if ((sp = H5Screate_simple(1, &dims, NULL)) < 0 || (ms = H5Screate_simple(1, &dims, NULL)) < 0 ||
      (d = H5Dcreate2(f->run, "events", f->tf_event, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0) {
    st = IL_H5_FAIL(IL_ERR_IO, f->path, "cannot create dataset /runs/%s/events", f->run_id);
    goto out;
  }
  if (n == 0) goto out; /* an empty table: nothing to transfer (n is the same everywhere) */
  il_event_row dummy;
  memset(&dummy, 0, sizeof dummy);
  if (f->rank != 0 && (H5Sselect_none(sp) < 0 || H5Sselect_none(ms) < 0)) goto fail;
  if (H5Dwrite(d, f->t_event, ms, sp, f->xfer, f->rank == 0 ? (const void *)buf : (const void *)&dummy) < 0)
    goto fail;
  goto out;
fail:
  st = IL_H5_FAIL(IL_ERR_IO, f->path, "cannot write the %d rows of /runs/%s/events", n, f->run_id);
out:
  if (d >= 0) H5Dclose(d);
  if (ms >= 0) H5Sclose(ms);
  if (sp >= 0) H5Sclose(sp);
  free(buf);
  return st;
}

il_status il_h5_run_events(il_h5_file *f, const il_event_row *rows, int n) {
  if (!f) return IL_ERR(IL_ERR_ARG, "il_h5_run_events: file is NULL");
  il_status st = IL_OK;
  il_h5i_quiet q;
  il_h5i_quiet_begin(&q);
  /* every rank's n must be rank 0's: the table's size is collective metadata */
  int n0 = n, lo = n, hi = n;
  MPI_Bcast(&n0, 1, MPI_INT, 0, f->comm);
  MPI_Allreduce(&n, &lo, 1, MPI_INT, MPI_MIN, f->comm);
  MPI_Allreduce(&n, &hi, 1, MPI_INT, MPI_MAX, f->comm);
  /* rank 0's rows are what is written: they must be there and well formed */
  int bad_row = -2; /* -2 fine, -1 rows NULL, else the first row with a bad name */
  if (f->rank == 0 && n0 > 0) {
    if (!rows)
      bad_row = -1;
    else
      for (int i = 0; i < n0 && bad_row == -2; i++)
        if (!memchr(rows[i].name, '\0', EVENT_NAME_LEN) || !rows[i].name[0]) bad_row = i;
  }
  MPI_Bcast(&bad_row, 1, MPI_INT, 0, f->comm);
  if (f->run < 0) {
    st = IL_ERR(IL_ERR_ARG, "results file '%s': no run is open (il_h5_run_begin first)", f->path);
    goto out;
  }
  if (lo != hi || n0 < 0) {
    st = IL_ERR(IL_ERR_ARG, "results file '%s': run '%s': events row count must be >= 0 and the same on every rank "
                "(got %d to %d)", f->path, f->run_id, lo, hi);
    goto out;
  }
  if (bad_row == -1) {
    st = IL_ERR(IL_ERR_ARG, "results file '%s': run '%s': %d event rows but no rows on rank 0", f->path, f->run_id,
                n0);
    goto out;
  }
  if (bad_row >= 0) {
    st = IL_ERR(IL_ERR_ARG, "results file '%s': run '%s': event row %d has an empty name or one without a NUL "
                "in its %zu bytes", f->path, f->run_id, bad_row, EVENT_NAME_LEN);
    goto out;
  }
  htri_t ex = H5Lexists(f->run, "events", H5P_DEFAULT);
  if (ex < 0) {
    st = IL_H5_FAIL(IL_ERR_IO, f->path, "cannot look up /runs/%s/events", f->run_id);
    goto out;
  }
  if (ex > 0) {
    st = IL_ERR(IL_ERR_ARG, "results file '%s': run '%s' already has an events table (write it once per run)",
                f->path, f->run_id);
    goto out;
  }
  IL_CHECK_GOTO(st, write_events(f, rows, n0), out);
  IL_CHECK_GOTO(st, flush(f), out);
out:
  st = agree(f->comm, st);
  il_h5i_quiet_end(&q);
  return st;
}

il_status il_h5_run_end(il_h5_file *f, const char *status, const il_memstats *peak, const il_rank_row *my_row) {
  if (!f) return IL_ERR(IL_ERR_ARG, "il_h5_run_end: file is NULL");
  il_status st = IL_OK;
  il_h5i_quiet q;
  il_h5i_quiet_begin(&q);
  struct {
    char status[STATUS_LEN];
    int has_peak;
    il_memstats peak;
  } b;
  memset(&b, 0, sizeof b);
  if (f->rank == 0) {
    snprintf(b.status, sizeof b.status, "%s", status ? status : "");
    if (peak) {
      b.has_peak = 1;
      b.peak = *peak;
    }
  }
  MPI_Bcast(&b, (int)sizeof b, MPI_BYTE, 0, f->comm);
  b.status[STATUS_LEN - 1] = '\0';
  if (f->run < 0) {
    st = IL_ERR(IL_ERR_ARG, "results file '%s': no run is open (il_h5_run_begin first)", f->path);
    goto out;
  }
  if (strcmp(b.status, "completed") != 0 && strcmp(b.status, "failed") != 0) {
    st = IL_ERR(IL_ERR_ARG, "results file '%s': run '%s': end status must be \"completed\" or \"failed\", not \"%s\"",
                f->path, f->run_id, b.status);
    goto out;
  }
  IL_CHECK_GOTO(st, write_ranks(f, my_row), out);
  if (b.has_peak) {
    char name[64];
    for (int c = 0; c < IL_MEM_NCAT; c++) {
      snprintf(name, sizeof name, "peak_bytes_%s", il_mem_category_name((il_mem_category)c));
      IL_CHECK_GOTO(st, il_h5i_set_i64_attr(f->run, name, (int64_t)b.peak.peak[c], f->path), out);
    }
    IL_CHECK_GOTO(st, il_h5i_set_i64_attr(f->run, "peak_bytes_total", (int64_t)b.peak.peak_total, f->path), out);
  }
  char fin[32] = "";
  char *fin_all = NULL;
  if (f->rank == 0) il_h5i_now_iso(fin);
  IL_CHECK_GOTO(st, bcast_str(f->comm, f->rank, fin, &fin_all), out);
  st = il_h5i_set_str_attr(f->run, "finished", fin_all, f->path);
  free(fin_all);
  if (st != IL_OK) goto out;
  IL_CHECK_GOTO(st, set_status(f, b.status), out);
  close_run(f);
  IL_CHECK_GOTO(st, flush(f), out);
out:
  st = agree(f->comm, st);
  il_h5i_quiet_end(&q);
  return st;
}

il_status il_h5_close(il_h5_file *f) {
  if (!f) return IL_OK;
  il_h5i_quiet q;
  il_h5i_quiet_begin(&q);
  il_status st = IL_OK;
  if (release(f) < 0) st = IL_H5_FAIL(IL_ERR_IO, f->path, "cannot close the file");
  st = agree(f->comm, st);
  destroy(f);
  il_h5i_quiet_end(&q);
  return st;
}
