/* tests/test_results_h5.c: the HDF5 results file, written by 2 MPI ranks
 * (run under mpirun -n 2) and read back serially on rank 0 with plain HDF5.
 *
 * Collective calls are asserted on every rank (the writer gives all ranks the
 * same status). Serial checks on rank 0 count failures with VCHECK instead of
 * cmocka asserts (an assert would jump out on rank 0 alone and leave rank 1
 * waiting in the next collective call); the count is then broadcast and
 * asserted on all ranks. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include <hdf5.h>
#include <mpi.h>

#include "results.h"
#include "results_h5.h"
#include "test_util.h"

static int g_rank, g_size;
static char g_dir[256];
static char *g_argv[] = {"ilbench", "train", "--solver", "newton", "--note", "two words", "it's", NULL};
static const int g_argc = 7;
static const char *g_cmdline = "ilbench train --solver newton --note 'two words' 'it'\\''s'";

static int g_bad; /* rank 0's failed serial checks since the last sync_bad() */
#define VCHECK(cond, ...)                                                     \
  do {                                                                        \
    if (!(cond)) {                                                            \
      fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                           \
      fputc('\n', stderr);                                                    \
      g_bad++;                                                                \
    }                                                                         \
  } while (0)

/* Share rank 0's verdict and assert it on every rank. */
static void sync_bad(void) {
  int bad = g_bad;
  MPI_Bcast(&bad, 1, MPI_INT, 0, MPI_COMM_WORLD);
  g_bad = 0;
  assert_int_equal(bad, 0);
}

static void path_in(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", g_dir, name); }

/* ---- deterministic content --------------------------------------------------- */

static il_epoch_row make_epoch(int run, int ep) {
  il_epoch_row e;
  memset(&e, 0, sizeof e);
  double b = 100.0 * run + ep;
  e.epoch = ep;
  e.lr = 0.1 / (1 + ep) + run;
  e.train_err = 0.5 / (b + 2);
  e.train_loss = 1.0 / 3.0 + b;
  e.train_iters = 7.25 + b;
  e.train_bwd_iters = 9.5 + b;
  e.test_err = 0.125 + b;
  e.test_loss = 0.3 + b;
  e.test_iters = 11.0 + b;
  e.max_grad_norm = 1e300 + b;
  e.nan_batches = 1 + run;
  e.nonconverged = 123456789012LL + ep;
  e.maxiter_batches = 3 + ep;
  e.diverged_batches = 5000000000LL + 7 * run + ep; /* > 2^32: a truncating writer would show */
  e.nonfinite_batches = 4 + ep;
  e.train_batches = 600 + ep;
  e.train_s = 12.5 + b;
  e.test_s = 1.5 + b;
  e.forward_s = 0.25 + b;
  e.backward_s = 0.5 + b;
  e.wait_s = 0.0625 + b;
  e.allreduce_s = 0.125 + b;
  e.update_s = 0.03125 + b;
  e.ranks = 2 + run;
  e.peak_mem_bytes = (1ULL << 62) + (uint64_t)(run * 1000 + ep);
  e.saved_peak_bytes = 4096ULL * (uint64_t)(ep + 1);
  e.workspace_peak_bytes = 8192ULL * (uint64_t)(run + 1);
  return e;
}

static il_step_row make_step(int run, int ep, int s) {
  il_step_row r;
  memset(&r, 0, sizeof r);
  double b = 10000.0 * run + 100.0 * ep + s;
  r.global_step = 1000 * ep + s;
  r.epoch = ep;
  r.step = s;
  r.loss = 2.0 / 7.0 + b;
  r.err = 0.0625 + b;
  r.fwd_iters = 20 + s;
  r.fwd_residual = 1e-7 * (b + 1);
  r.fwd_reason = s % 4;
  r.bwd_iters = 30 + s;
  r.bwd_residual = 1e-9 * (b + 1);
  r.bwd_reason = (s + 1) % 4;
  r.nonconverged = s;
  r.nan_skipped = s % 2;
  r.grad_norm = 0.75 + b;
  r.forward_s = 0.001 + b;
  r.backward_s = 0.002 + b;
  r.wait_s = 0.0025 + b;
  r.allreduce_s = 0.003 + b;
  r.update_s = 0.004 + b;
  /* diagnostics: distinct, non-NaN, and not representable in float32 */
  r.diag_rho_max = 0.9 + 1e-12 * (b + 1);
  r.diag_rho_mean = 0.5 + 1e-12 * (b + 1);
  r.diag_cond = 1.0e7 + 0.123456789 * b;
  r.diag_grad_cos = -0.999999999 + 1e-15 * s;
  r.diag_grad_relerr = 3.0e-9 * (b + 1);
  r.diag_preact_max = 89.4 + 1e-10 * (b + 1);
  r.nan_origin = 1 + (s + run) % 4; /* 1..4 */
  r.nan_iter = s == 0 ? -1 : 1000000 * run + 100 * ep + s;
  return r;
}

static il_rank_row make_rank(int run, int rank) {
  il_rank_row r;
  memset(&r, 0, sizeof r);
  r.rank = rank;
  r.local_batch = 50 + rank;
  r.forward_s = 1.5 + rank + 10 * run;
  r.backward_s = 2.5 + rank + 10 * run;
  r.wait_s = 0.5 + rank;
  r.allreduce_s = 0.25 + rank;
  r.update_s = 0.125 + rank;
  r.test_s = 3.0 + rank;
  r.peak_mem_bytes = 1000000ULL * (uint64_t)(rank + 1) + (uint64_t)run;
  return r;
}

static il_memstats make_peak(int run) {
  il_memstats m;
  memset(&m, 0, sizeof m);
  for (int c = 0; c < IL_MEM_NCAT; c++) m.peak[c] = (size_t)(1000 * (c + 1) + run);
  m.peak_total = (size_t)(1ULL << 33) + (size_t)run;
  return m;
}

static void make_info(il_run_info *ri, const char *id, int run) {
  il_run_info_init(ri, id);
  assert_ok(il_run_attr_s(ri, "solver", run ? "fp" : "newton"));
  assert_ok(il_run_attr_s(ri, "backward", "implicit"));
  assert_ok(il_run_attr_d(ri, "tol", 1e-6 * (run + 1)));
  assert_ok(il_run_attr_i(ri, "max_iter", 50 + run));
  assert_ok(il_run_attr_i(ri, "hidden", 64));
  assert_ok(il_run_attr_i(ri, "batch", 100));
  assert_ok(il_run_attr_i(ri, "epochs", 3));
  assert_ok(il_run_attr_d(ri, "lr", 0.01));
  assert_ok(il_run_attr_s(ri, "lr_drop", ""));
  assert_ok(il_run_attr_i(ri, "seed", -42 - run));
  assert_ok(il_run_attr_s(ri, "device", "cpu"));
  assert_ok(il_run_attr_s(ri, "precision", "float32"));
  assert_ok(il_run_attr_i(ri, "world_size", g_size));
  assert_ok(il_run_attr_i(ri, "run_index", run));
  assert_ok(il_run_attr_i(ri, "big", INT64_MIN + 7));
}

/* The event names of core/il_events.c, in il_event_id order. */
static const char *const g_event_names[] = {"fwd_solve", "bwd_solve", "map", "jacobian", "lu_factor", "lu_solve",
                                            "jvp", "vjp", "vjp2", "head", "allreduce", "update"};
#define N_EVENT_NAMES ((int)(sizeof g_event_names / sizeof g_event_names[0]))

/* Row i of run `run`'s events table: distinct values, time_sum >= time_max, calls and flops past 2^32. */
static il_event_row make_event(int run, int i) {
  il_event_row r;
  memset(&r, 0, sizeof r);
  snprintf(r.name, sizeof r.name, "%s", g_event_names[i % N_EVENT_NAMES]);
  r.calls = 5000000000LL + 1000 * run + i;
  r.time_max = 0.125 + 1e-9 * (i + 1) + run;
  r.time_sum = 2 * r.time_max + 1e-12 * i;
  r.flops = 1.0e15 + 12345.0 * i + run;
  return r;
}

/* All ranks: one complete run. Only rank 0 passes rows and run info. With
 * nev >= 0 the run gets an events table of nev make_event rows before it ends
 * (every rank passes the same rows). */
static void write_run_events(il_h5_file *f, const char *id, int run, int nepochs, int nsteps, int nev) {
  il_run_info ri;
  make_info(&ri, id, run);
  assert_ok(il_h5_run_begin(f, g_rank == 0 ? &ri : NULL));
  for (int ep = 0; ep < nepochs; ep++) {
    il_step_row steps[16];
    for (int s = 0; s < nsteps; s++) steps[s] = make_step(run, ep, s);
    il_epoch_row e = make_epoch(run, ep);
    if (g_rank == 0)
      assert_ok(il_h5_run_epoch(f, &e, steps, nsteps));
    else
      assert_ok(il_h5_run_epoch(f, NULL, NULL, 0)); /* ignored off rank 0 */
  }
  if (nev >= 0) {
    il_event_row ev[2 * N_EVENT_NAMES];
    assert_true(nev <= 2 * N_EVENT_NAMES);
    for (int i = 0; i < nev; i++) ev[i] = make_event(run, i);
    assert_ok(il_h5_run_events(f, ev, nev));
  }
  il_memstats peak = make_peak(run);
  il_rank_row mine = make_rank(run, g_rank);
  mine.rank = 99; /* the writer stores the communicator rank */
  assert_ok(il_h5_run_end(f, "completed", g_rank == 0 ? &peak : NULL, &mine));
}

static void write_run(il_h5_file *f, const char *id, int run, int nepochs, int nsteps) {
  write_run_events(f, id, run, nepochs, nsteps, -1);
}

/* ---- serial readers (rank 0) ------------------------------------------------ */

/* Memory types from the column tables (bench/results_columns.h): the reasons
 * and NaN origins as HDF5 enums over int32 with the names the writer stores
 * (reading them into plain integers has no HDF5 conversion path). */
static hid_t enum_type(il_col_type t) {
  hid_t e = H5Tenum_create(H5T_NATIVE_INT32);
#define EI(nm, val) { int32_t v_ = (val); H5Tenum_insert(e, nm, &v_); }
  if (t == IL_COL_REASON) { IL_REASON_ENUM(EI) }
  else { IL_NANORIGIN_ENUM(EI) }
#undef EI
  return e;
}

static hid_t table_type(int table) {
  const il_table_desc *d = &il_results_tables[table];
  hid_t t = H5Tcreate(H5T_COMPOUND, d->row_size);
  for (int i = 0; i < d->ncols; i++) {
    const il_column *c = &d->cols[i];
    hid_t mt = -1, tmp = -1;
    switch (c->type) {
    case IL_COL_I32: mt = H5T_NATIVE_INT32; break;
    case IL_COL_I64: mt = H5T_NATIVE_INT64; break;
    case IL_COL_U64: mt = H5T_NATIVE_UINT64; break;
    case IL_COL_F64: mt = H5T_NATIVE_DOUBLE; break;
    case IL_COL_STR16:
      mt = tmp = H5Tcopy(H5T_C_S1);
      H5Tset_size(tmp, IL_STR16_LEN);
      H5Tset_strpad(tmp, H5T_STR_NULLTERM);
      break;
    case IL_COL_REASON:
    case IL_COL_NANORIGIN: mt = tmp = enum_type(c->type); break;
    }
    VCHECK(H5Tinsert(t, c->name, c->offset, mt) >= 0, "insert %s.%s", d->name, c->name);
    if (tmp >= 0) H5Tclose(tmp);
  }
  return t;
}

static hid_t epoch_type(void) { return table_type(IL_TABLE_EPOCHS); }
static hid_t step_type(void) { return table_type(IL_TABLE_STEPS); }
static hid_t rank_type(void) { return table_type(IL_TABLE_RANKS); }

/* il_event_row as read back: name a 16-byte NUL-terminated string. */
static hid_t event_type(void) {
  hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(il_event_row)), sname = H5Tcopy(H5T_C_S1);
  H5Tset_size(sname, sizeof(((il_event_row *)0)->name));
  H5Tset_strpad(sname, H5T_STR_NULLTERM);
  H5Tinsert(t, "name", HOFFSET(il_event_row, name), sname);
  H5Tinsert(t, "calls", HOFFSET(il_event_row, calls), H5T_NATIVE_INT64);
  H5Tinsert(t, "time_max", HOFFSET(il_event_row, time_max), H5T_NATIVE_DOUBLE);
  H5Tinsert(t, "time_sum", HOFFSET(il_event_row, time_sum), H5T_NATIVE_DOUBLE);
  H5Tinsert(t, "flops", HOFFSET(il_event_row, flops), H5T_NATIVE_DOUBLE);
  H5Tclose(sname);
  return t;
}

static int attr_exists(hid_t obj, const char *name) { return H5Aexists(obj, name) > 0; }

/* String attribute into buf; "" (and a failed check) when missing or not a string. */
static void get_str(hid_t obj, const char *name, char *buf, size_t n) {
  buf[0] = '\0';
  if (!attr_exists(obj, name)) {
    VCHECK(0, "attribute '%s' missing", name);
    return;
  }
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT), ft = H5Aget_type(a), mt = H5Tcopy(H5T_C_S1);
  VCHECK(H5Tget_class(ft) == H5T_STRING, "attribute '%s' is not a string", name);
  if (H5Tget_class(ft) == H5T_STRING) {
    H5Tset_size(mt, n);
    VCHECK(H5Aread(a, mt, buf) >= 0, "read '%s'", name);
    buf[n - 1] = '\0';
  }
  H5Tclose(mt);
  H5Tclose(ft);
  H5Aclose(a);
}

static int64_t get_i64(hid_t obj, const char *name) {
  int64_t v = 0;
  if (!attr_exists(obj, name)) {
    VCHECK(0, "attribute '%s' missing", name);
    return 0;
  }
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT), ft = H5Aget_type(a);
  VCHECK(H5Tget_class(ft) == H5T_INTEGER && H5Tget_size(ft) == 8, "attribute '%s' is not a 64-bit integer", name);
  VCHECK(H5Aread(a, H5T_NATIVE_INT64, &v) >= 0, "read '%s'", name);
  H5Tclose(ft);
  H5Aclose(a);
  return v;
}

static double get_f64(hid_t obj, const char *name) {
  double v = 0;
  if (!attr_exists(obj, name)) {
    VCHECK(0, "attribute '%s' missing", name);
    return 0;
  }
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT), ft = H5Aget_type(a);
  VCHECK(H5Tget_class(ft) == H5T_FLOAT && H5Tget_size(ft) == 8, "attribute '%s' is not a double", name);
  VCHECK(H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0, "read '%s'", name);
  H5Tclose(ft);
  H5Aclose(a);
  return v;
}

static int iso_utc(const char *s) { /* YYYY-MM-DDTHH:MM:SSZ */
  if (strlen(s) != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != 'Z')
    return 0;
  return 1;
}

/* Rows of a 1-D dataset, or -1 when it does not exist. */
static long long table_rows(hid_t g, const char *name) {
  if (H5Lexists(g, name, H5P_DEFAULT) <= 0) return -1;
  hid_t d = H5Dopen2(g, name, H5P_DEFAULT), sp = H5Dget_space(d);
  hsize_t n = 0;
  H5Sget_simple_extent_dims(sp, &n, NULL);
  H5Sclose(sp);
  H5Dclose(d);
  return (long long)n;
}

/* The file's compound type has exactly the expected members (names = struct fields). */
static void check_members(hid_t g, const char *name, hid_t expect) {
  hid_t d = H5Dopen2(g, name, H5P_DEFAULT), ft = H5Dget_type(d);
  int n = H5Tget_nmembers(ft), m = H5Tget_nmembers(expect);
  VCHECK(n == m, "%s has %d members, expected %d", name, n, m);
  for (int i = 0; i < m; i++) {
    char *mn = H5Tget_member_name(expect, (unsigned)i);
    VCHECK(H5Tget_member_index(ft, mn) >= 0, "%s lacks member '%s'", name, mn);
    H5free_memory(mn);
  }
  H5Tclose(ft);
  H5Dclose(d);
}

/* Index of member `member` in table `name`'s stored compound type (-1 when absent). */
static int member_index(hid_t g, const char *name, const char *member) {
  hid_t d = H5Dopen2(g, name, H5P_DEFAULT), ft = H5Dget_type(d);
  int i = H5Tget_member_index(ft, member);
  H5Tclose(ft);
  H5Dclose(d);
  return i;
}

/* Member `member` of table `name` is stored with type class `cls` and `size` bytes (signed for integers). */
static void check_member_type(hid_t g, const char *name, const char *member, H5T_class_t cls, size_t size) {
  hid_t d = H5Dopen2(g, name, H5P_DEFAULT), ft = H5Dget_type(d);
  int i = H5Tget_member_index(ft, member);
  if (i < 0) {
    VCHECK(0, "%s lacks member '%s'", name, member);
  } else {
    hid_t mt = H5Tget_member_type(ft, (unsigned)i);
    VCHECK(H5Tget_class(mt) == cls && H5Tget_size(mt) == size &&
               (cls != H5T_INTEGER || H5Tget_sign(mt) == H5T_SGN_2),
           "%s.%s: class %d size %zu, expected class %d size %zu", name, member, (int)H5Tget_class(mt),
           H5Tget_size(mt), (int)cls, size);
    H5Tclose(mt);
  }
  H5Tclose(ft);
  H5Dclose(d);
}

static void read_all(hid_t g, const char *name, hid_t mt, void *buf) {
  hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
  VCHECK(H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0, "read %s", name);
  H5Dclose(d);
}

static void verify_root(hid_t fid) {
  char s[1024], host[256] = "";
  gethostname(host, sizeof host);
  get_str(fid, "schema", s, sizeof s);
  VCHECK(strcmp(s, "ilbench-results") == 0, "schema '%s'", s);
  VCHECK(get_i64(fid, "schema_version") == 3, "schema_version");
  get_str(fid, "software_version", s, sizeof s);
  VCHECK(s[0] != '\0', "software_version empty");
  get_str(fid, "created", s, sizeof s);
  VCHECK(iso_utc(s), "created '%s'", s);
  get_str(fid, "host", s, sizeof s);
  VCHECK(strcmp(s, host) == 0, "host '%s' != '%s'", s, host);
  get_str(fid, "command_line", s, sizeof s);
  VCHECK(strcmp(s, g_cmdline) == 0, "command_line '%s' != '%s'", s, g_cmdline);
  VCHECK(get_i64(fid, "world_size") == 2, "world_size");
}

/* Everything write_run(run, nepochs, nsteps) wrote, read back from /runs/<id>. */
static void verify_run(hid_t fid, const char *id, int run, int nepochs, int nsteps) {
  char p[256], s[1024], host[256] = "";
  gethostname(host, sizeof host);
  snprintf(p, sizeof p, "/runs/%s", id);
  if (H5Lexists(fid, "runs", H5P_DEFAULT) <= 0 || H5Lexists(fid, p, H5P_DEFAULT) <= 0) {
    VCHECK(0, "group %s missing", p);
    return;
  }
  hid_t g = H5Gopen2(fid, p, H5P_DEFAULT);
  il_run_info ri;
  make_info(&ri, id, run);
  for (int i = 0; i < ri.nattrs; i++) {
    const il_attr *a = &ri.attrs[i];
    if (a->kind == 's') {
      get_str(g, a->key, s, sizeof s);
      VCHECK(strcmp(s, a->s) == 0, "%s: %s = '%s', expected '%s'", id, a->key, s, a->s);
    } else if (a->kind == 'd') {
      double v = get_f64(g, a->key);
      VCHECK(v == a->d, "%s: %s = %.17g, expected %.17g", id, a->key, v, a->d);
    } else {
      int64_t v = get_i64(g, a->key);
      VCHECK(v == a->i, "%s: %s = %lld, expected %lld", id, a->key, (long long)v, (long long)a->i);
    }
  }
  get_str(g, "status", s, sizeof s);
  VCHECK(strcmp(s, "completed") == 0, "%s: status '%s'", id, s);
  get_str(g, "started", s, sizeof s);
  VCHECK(iso_utc(s), "%s: started '%s'", id, s);
  get_str(g, "finished", s, sizeof s);
  VCHECK(iso_utc(s), "%s: finished '%s'", id, s);
  get_str(g, "host", s, sizeof s);
  VCHECK(strcmp(s, host) == 0, "%s: host '%s'", id, s);
  get_str(g, "command_line", s, sizeof s);
  VCHECK(strcmp(s, g_cmdline) == 0, "%s: command_line '%s'", id, s);
  get_str(g, "software_version", s, sizeof s);
  VCHECK(s[0], "%s: software_version empty", id);
  il_memstats pk = make_peak(run);
  for (int c = 0; c < IL_MEM_NCAT; c++) {
    char name[64];
    snprintf(name, sizeof name, "peak_bytes_%s", il_mem_category_name((il_mem_category)c));
    VCHECK(get_i64(g, name) == (int64_t)pk.peak[c], "%s: %s", id, name);
  }
  VCHECK(get_i64(g, "peak_bytes_total") == (int64_t)pk.peak_total, "%s: peak_bytes_total", id);

  hid_t te = epoch_type(), ts = step_type(), tr = rank_type();
  check_members(g, "epochs", te);
  check_members(g, "steps", ts);
  check_members(g, "ranks", tr);
  /* the members schema v2 added, with the types SCHEMA.md gives */
  static const char *const f64[] = {"diag_rho_max", "diag_rho_mean", "diag_cond", "diag_grad_cos",
                                    "diag_grad_relerr", "diag_preact_max"};
  for (size_t i = 0; i < sizeof f64 / sizeof f64[0]; i++) check_member_type(g, "steps", f64[i], H5T_FLOAT, 8);
  check_member_type(g, "steps", "nan_origin", H5T_ENUM, 4);
  check_member_type(g, "steps", "fwd_reason", H5T_ENUM, 4);
  check_member_type(g, "steps", "bwd_reason", H5T_ENUM, 4);
  {
    /* the enums carry the names of results_columns.h */
    hid_t d = H5Dopen2(g, "steps", H5P_DEFAULT), ft = H5Dget_type(d);
    hid_t fr = H5Tget_member_type(ft, (unsigned)H5Tget_member_index(ft, "fwd_reason"));
    hid_t no = H5Tget_member_type(ft, (unsigned)H5Tget_member_index(ft, "nan_origin"));
    char nm[32] = "";
    int32_t v = 1;
    VCHECK(H5Tenum_nameof(fr, &v, nm, sizeof nm) >= 0 && strcmp(nm, "max-iter") == 0, "%s: reason 1 is '%s'", id, nm);
    v = 3;
    VCHECK(H5Tenum_nameof(no, &v, nm, sizeof nm) >= 0 && strcmp(nm, "bwd_layer") == 0, "%s: origin 3 is '%s'", id, nm);
    H5Tclose(no);
    H5Tclose(fr);
    H5Tclose(ft);
    H5Dclose(d);
  }
  static const char *const v3[] = {"forward_s", "backward_s", "wait_s", "allreduce_s", "update_s"};
  for (size_t i = 0; i < 5; i++) {
    check_member_type(g, "epochs", v3[i], H5T_FLOAT, 8);
    check_member_type(g, "steps", v3[i], H5T_FLOAT, 8);
    check_member_type(g, "ranks", v3[i], H5T_FLOAT, 8);
  }
  check_member_type(g, "ranks", "test_s", H5T_FLOAT, 8);
  check_member_type(g, "epochs", "ranks", H5T_INTEGER, 4);
  check_member_type(g, "steps", "global_step", H5T_INTEGER, 4);
  check_member_type(g, "steps", "nan_iter", H5T_INTEGER, 4);
  {
    /* stored in il_step_row's order: diag_preact_max right after diag_grad_relerr, before nan_origin */
    int i_rel = member_index(g, "steps", "diag_grad_relerr"), i_pre = member_index(g, "steps", "diag_preact_max"),
        i_org = member_index(g, "steps", "nan_origin");
    VCHECK(i_rel >= 0 && i_pre == i_rel + 1 && i_org == i_pre + 1,
           "%s: steps member order diag_grad_relerr %d, diag_preact_max %d, nan_origin %d", id, i_rel, i_pre, i_org);
  }
  check_member_type(g, "epochs", "diverged_batches", H5T_INTEGER, 8);
  VCHECK(table_rows(g, "epochs") == nepochs, "%s: %lld epochs", id, table_rows(g, "epochs"));
  VCHECK(table_rows(g, "steps") == (long long)nepochs * nsteps, "%s: %lld steps", id, table_rows(g, "steps"));
  VCHECK(table_rows(g, "ranks") == g_size, "%s: %lld ranks rows", id, table_rows(g, "ranks"));
  if (table_rows(g, "epochs") == nepochs && table_rows(g, "steps") == (long long)nepochs * nsteps &&
      table_rows(g, "ranks") == g_size) {
    il_epoch_row *e = calloc((size_t)nepochs, sizeof *e);
    il_step_row *st = calloc((size_t)(nepochs * nsteps) + 1, sizeof *st);
    il_rank_row *rr = calloc((size_t)g_size, sizeof *rr);
    read_all(g, "epochs", te, e);
    if (nsteps) read_all(g, "steps", ts, st);
    read_all(g, "ranks", tr, rr);
    for (int ep = 0; ep < nepochs; ep++) {
      il_epoch_row x = make_epoch(run, ep);
      VCHECK(memcmp(&e[ep], &x, sizeof x) == 0, "%s: epoch row %d differs (epoch %d lr %g)", id, ep, e[ep].epoch,
             e[ep].lr);
      for (int k = 0; k < nsteps; k++) {
        il_step_row y = make_step(run, ep, k);
        VCHECK(memcmp(&st[ep * nsteps + k], &y, sizeof y) == 0, "%s: step row %d.%d differs", id, ep, k);
        /* the schema-v2 diagnostics, one by one, for a readable failure */
        const il_step_row *q = &st[ep * nsteps + k];
        VCHECK(q->diag_rho_max == y.diag_rho_max && q->diag_rho_mean == y.diag_rho_mean &&
                   q->diag_cond == y.diag_cond && q->diag_grad_cos == y.diag_grad_cos &&
                   q->diag_grad_relerr == y.diag_grad_relerr && q->diag_preact_max == y.diag_preact_max,
               "%s: step %d.%d diagnostics rho %.17g/%.17g cond %.17g cos %.17g relerr %.17g preact %.17g", id, ep, k,
               q->diag_rho_max, q->diag_rho_mean, q->diag_cond, q->diag_grad_cos, q->diag_grad_relerr,
               q->diag_preact_max);
        VCHECK(q->nan_origin == y.nan_origin && q->nan_iter == y.nan_iter, "%s: step %d.%d nan_origin %d nan_iter %d",
               id, ep, k, q->nan_origin, q->nan_iter);
      }
      VCHECK(e[ep].diverged_batches == x.diverged_batches, "%s: epoch %d diverged_batches %lld", id, ep,
             (long long)e[ep].diverged_batches);
    }
    for (int r = 0; r < g_size; r++) {
      il_rank_row y = make_rank(run, r);
      VCHECK(memcmp(&rr[r], &y, sizeof y) == 0, "%s: ranks row %d differs (rank %d t_forward %g)", id, r,
             rr[r].rank, rr[r].forward_s);
    }
    free(e);
    free(st);
    free(rr);
  }
  H5Tclose(te);
  H5Tclose(ts);
  H5Tclose(tr);
  H5Gclose(g);
}

static long long count_runs(hid_t fid) {
  H5G_info_t gi;
  if (H5Lexists(fid, "runs", H5P_DEFAULT) <= 0) return -1;
  hid_t g = H5Gopen2(fid, "runs", H5P_DEFAULT);
  H5Gget_info(g, &gi);
  H5Gclose(g);
  return (long long)gi.nlinks;
}

static hid_t open_serial(const char *path) {
  hid_t fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  VCHECK(fid >= 0, "serial H5Fopen('%s') failed", path);
  return fid;
}

typedef struct snapshot {
  struct stat sb;
  char *bytes;
  size_t n;
} snapshot;

static char *slurp(const char *path, size_t *n) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return NULL;
  fseek(fp, 0, SEEK_END);
  long len = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  char *b = malloc((size_t)len + 1);
  *n = fread(b, 1, (size_t)len, fp);
  fclose(fp);
  return b;
}

static void take_snapshot(const char *path, snapshot *s) {
  VCHECK(stat(path, &s->sb) == 0, "stat %s", path);
  s->bytes = slurp(path, &s->n);
}

/* Same size, mtime and content as before. */
static void check_snapshot(const char *path, snapshot *s) {
  struct stat now;
  size_t n = 0;
  VCHECK(stat(path, &now) == 0, "stat %s", path);
  VCHECK(now.st_size == s->sb.st_size, "%s size changed", path);
  VCHECK(now.st_mtim.tv_sec == s->sb.st_mtim.tv_sec && now.st_mtim.tv_nsec == s->sb.st_mtim.tv_nsec,
         "%s mtime changed", path);
  char *b = slurp(path, &n);
  VCHECK(b && s->bytes && n == s->n && memcmp(b, s->bytes, n) == 0, "%s content changed", path);
  free(b);
  free(s->bytes);
  s->bytes = NULL;
}

static void copy_file(const char *from, const char *to) {
  size_t n = 0;
  char *b = slurp(from, &n);
  FILE *fp = fopen(to, "wb");
  VCHECK(b && fp && fwrite(b, 1, n, fp) == n, "copy %s -> %s", from, to);
  if (fp) fclose(fp);
  free(b);
}

static void write_text(const char *path, const char *text) {
  FILE *fp = fopen(path, "w");
  VCHECK(fp != NULL, "create %s", path);
  if (fp) {
    fputs(text, fp);
    fclose(fp);
  }
}

/* Status and message of a call are the same on every rank, and the message contains `needle`. */
static void expect_fail(il_status got, il_status want, const char *needle, const char *needle2) {
  const char *m = il_error_message();
  if (g_rank == 0 && getenv("ILBENCH_SHOW_ERRORS")) printf("  expected error: %s\n", m);
  if (got != want || !strstr(m, needle) || (needle2 && !strstr(m, needle2)))
    print_error("rank %d: status %d (want %d), message: %s\n", g_rank, (int)got, (int)want, m);
  assert_int_equal(got, want);
  assert_non_null(strstr(m, needle));
  if (needle2) assert_non_null(strstr(m, needle2));
  il_error_clear();
}

/* ---- tests ------------------------------------------------------------------ */

static void test_run_info_helpers(void **state) {
  il_run_info ri;
  char key[64], longv[200];
  il_run_info_init(&ri, "r");
  assert_string_equal(ri.run_id, "r");
  for (int i = 0; i < IL_RUN_ATTRS_MAX; i++) {
    snprintf(key, sizeof key, "k%d", i);
    assert_ok(il_run_attr_i(&ri, key, i));
  }
  assert_int_equal(ri.nattrs, IL_RUN_ATTRS_MAX);
  il_error_clear();
  assert_int_equal(il_run_attr_d(&ri, "one_more", 1.0), IL_ERR_ARG);
  assert_non_null(strstr(il_error_message(), "too many"));
  il_error_clear();
  il_run_info_init(&ri, "r");
  memset(key, 'k', 48);
  key[48] = '\0';
  assert_int_equal(il_run_attr_s(&ri, key, "v"), IL_ERR_ARG); /* 48 chars: no room for the NUL */
  il_error_clear();
  key[47] = '\0';
  assert_ok(il_run_attr_s(&ri, key, "v")); /* 47 chars fit */
  memset(longv, 'v', 160);
  longv[160] = '\0';
  assert_int_equal(il_run_attr_s(&ri, "long", longv), IL_ERR_ARG);
  assert_non_null(strstr(il_error_message(), "too long"));
  il_error_clear();
  longv[159] = '\0';
  assert_ok(il_run_attr_s(&ri, "long", longv));
  assert_int_equal(il_run_attr_i(&ri, "long", 3), IL_ERR_ARG); /* duplicate key */
  il_error_clear();
  assert_int_equal(il_run_attr_i(&ri, "", 3), IL_ERR_ARG);
  il_error_clear();
  assert_int_equal(ri.nattrs, 2);
  assert_int_equal(ri.attrs[1].kind, 's');
  assert_string_equal(ri.attrs[1].s, longv);
}

/* An empty step row: numbers 0, diagnostics NaN, no NaN origin, nan_iter -1. */
static void test_step_row_init(void **state) {
  il_step_row r;
  memset(&r, 0x5a, sizeof r);
  il_step_row_init(&r);
  assert_int_equal(r.epoch, 0);
  assert_int_equal(r.fwd_reason, 0);
  assert_true(r.loss == 0.0 && r.update_s == 0.0 && r.grad_norm == 0.0);
  assert_true(isnan(r.diag_rho_max) && isnan(r.diag_rho_mean) && isnan(r.diag_cond));
  assert_true(isnan(r.diag_grad_cos) && isnan(r.diag_grad_relerr) && isnan(r.diag_preact_max));
  assert_int_equal(r.nan_origin, IL_NAN_NONE);
  assert_int_equal(r.nan_iter, -1);
  assert_int_equal(IL_NAN_FWD_SOLVE, 1);
  assert_int_equal(IL_NAN_FWD_OTHER, 2);
  assert_int_equal(IL_NAN_BWD_LAYER, 3);
  assert_int_equal(IL_NAN_BWD_OTHER, 4);
}

static void test_roundtrip_two_runs(void **state) {
  char a[512];
  il_h5_file *f = NULL;
  path_in(a, sizeof a, "a.h5");
  assert_ok(il_h5_open(MPI_COMM_WORLD, a, IL_H5_CREATE, g_argc, g_argv, &f));
  assert_non_null(f);
  /* misuse is refused on every rank without breaking the file */
  expect_fail(il_h5_run_epoch(f, NULL, NULL, 0), IL_ERR_ARG, "no run is open", NULL);
  il_run_info bad;
  il_run_info_init(&bad, "a/b");
  expect_fail(il_h5_run_begin(f, g_rank == 0 ? &bad : NULL), IL_ERR_ARG, "invalid run id", NULL);
  il_run_info_init(&bad, "x");
  assert_ok(il_run_attr_s(&bad, "status", "mine"));
  expect_fail(il_h5_run_begin(f, g_rank == 0 ? &bad : NULL), IL_ERR_ARG, "reserved", NULL);

  write_run(f, "run-0", 0, 3, 4);
  /* run 1, with a bad end status tried first */
  il_run_info ri;
  make_info(&ri, "run-1", 1);
  assert_ok(il_h5_run_begin(f, g_rank == 0 ? &ri : NULL));
  expect_fail(il_h5_run_begin(f, g_rank == 0 ? &ri : NULL), IL_ERR_ARG, "still open", NULL);
  for (int ep = 0; ep < 2; ep++) {
    il_step_row steps[3];
    for (int s = 0; s < 3; s++) steps[s] = make_step(1, ep, s);
    il_epoch_row e = make_epoch(1, ep);
    assert_ok(il_h5_run_epoch(f, &e, steps, 3)); /* rank 1 passes rows too: ignored */
  }
  il_memstats peak = make_peak(1);
  il_rank_row mine = make_rank(1, g_rank);
  expect_fail(il_h5_run_end(f, g_rank == 0 ? "done" : "completed", &peak, &mine), IL_ERR_ARG, "\"done\"", NULL);
  assert_ok(il_h5_run_end(f, "completed", &peak, &mine));
  assert_ok(il_h5_close(f));

  if (g_rank == 0) {
    hid_t fid = open_serial(a);
    if (fid >= 0) {
      verify_root(fid);
      VCHECK(count_runs(fid) == 2, "%lld runs", count_runs(fid));
      verify_run(fid, "run-0", 0, 3, 4);
      verify_run(fid, "run-1", 1, 2, 3);
      H5Fclose(fid);
    }
  }
  sync_bad();
}

static void test_create_refuses_existing(void **state) {
  char a[512];
  il_h5_file *f = (il_h5_file *)&f;
  snapshot snap;
  path_in(a, sizeof a, "a.h5");
  if (g_rank == 0) take_snapshot(a, &snap);
  MPI_Barrier(MPI_COMM_WORLD);
  expect_fail(il_h5_open(MPI_COMM_WORLD, a, IL_H5_CREATE, g_argc, g_argv, &f), IL_ERR_ARG, a,
              "exists; use --append to add runs or --force to replace it");
  assert_null(f);
  MPI_Barrier(MPI_COMM_WORLD);
  if (g_rank == 0) check_snapshot(a, &snap);
  sync_bad();
}

static void test_append_adds_run(void **state) {
  char a[512], b[512];
  il_h5_file *f = NULL;
  path_in(a, sizeof a, "a.h5");
  path_in(b, sizeof b, "b.h5");
  assert_ok(il_h5_open(MPI_COMM_WORLD, a, IL_H5_APPEND, g_argc, g_argv, &f));
  il_run_info ri;
  make_info(&ri, "run-0", 0);
  expect_fail(il_h5_run_begin(f, g_rank == 0 ? &ri : NULL), IL_ERR_ARG, "already has run 'run-0'", a);
  /* run-2: one epoch without steps, failed, no peak stats and no rank rows given */
  make_info(&ri, "run-2", 2);
  assert_ok(il_h5_run_begin(f, g_rank == 0 ? &ri : NULL));
  il_epoch_row e = make_epoch(2, 0);
  assert_ok(il_h5_run_epoch(f, &e, NULL, 0));
  assert_ok(il_h5_run_end(f, "failed", NULL, NULL));
  assert_ok(il_h5_close(f));

  /* append to a missing file creates it */
  assert_ok(il_h5_open(MPI_COMM_WORLD, b, IL_H5_APPEND, g_argc, g_argv, &f));
  write_run(f, "run-b", 3, 2, 2);
  assert_ok(il_h5_close(f));

  if (g_rank == 0) {
    hid_t fid = open_serial(a);
    if (fid >= 0) {
      verify_root(fid);
      VCHECK(count_runs(fid) == 3, "%lld runs", count_runs(fid));
      verify_run(fid, "run-0", 0, 3, 4);
      verify_run(fid, "run-1", 1, 2, 3);
      hid_t g = H5Gopen2(fid, "/runs/run-2", H5P_DEFAULT);
      char s[64];
      get_str(g, "status", s, sizeof s);
      VCHECK(strcmp(s, "failed") == 0, "run-2 status '%s'", s);
      VCHECK(table_rows(g, "epochs") == 1 && table_rows(g, "steps") == 0, "run-2 table sizes");
      VCHECK(!attr_exists(g, "peak_bytes_total"), "run-2 has peak attributes");
      il_rank_row rr[2];
      hid_t tr = rank_type();
      read_all(g, "ranks", tr, rr);
      VCHECK(rr[0].rank == 0 && rr[1].rank == 1 && rr[1].forward_s == 0.0, "run-2 zero rank rows");
      H5Tclose(tr);
      H5Gclose(g);
      H5Fclose(fid);
    }
    fid = open_serial(b);
    if (fid >= 0) {
      verify_root(fid);
      VCHECK(count_runs(fid) == 1, "b: %lld runs", count_runs(fid));
      verify_run(fid, "run-b", 3, 2, 2);
      H5Fclose(fid);
    }
  }
  sync_bad();
}

static void test_force_replaces(void **state) {
  char c[512], t[512];
  il_h5_file *f = NULL;
  path_in(c, sizeof c, "c.h5");
  path_in(t, sizeof t, "text.h5");
  assert_ok(il_h5_open(MPI_COMM_WORLD, c, IL_H5_CREATE, g_argc, g_argv, &f));
  write_run(f, "old", 0, 1, 1);
  assert_ok(il_h5_close(f));
  assert_ok(il_h5_open(MPI_COMM_WORLD, c, IL_H5_FORCE, g_argc, g_argv, &f));
  write_run(f, "new", 1, 2, 1);
  assert_ok(il_h5_close(f));
  /* force also replaces a file that is not HDF5 */
  if (g_rank == 0) write_text(t, "not hdf5\n");
  MPI_Barrier(MPI_COMM_WORLD);
  assert_ok(il_h5_open(MPI_COMM_WORLD, t, IL_H5_FORCE, g_argc, g_argv, &f));
  assert_ok(il_h5_close(f));
  if (g_rank == 0) {
    hid_t fid = open_serial(c);
    if (fid >= 0) {
      VCHECK(count_runs(fid) == 1, "%lld runs after force", count_runs(fid));
      VCHECK(H5Lexists(fid, "/runs/old", H5P_DEFAULT) == 0, "old run survived --force");
      verify_run(fid, "new", 1, 2, 1);
      H5Fclose(fid);
    }
    fid = open_serial(t);
    if (fid >= 0) {
      verify_root(fid);
      VCHECK(count_runs(fid) == 0, "runs in a fresh file");
      H5Fclose(fid);
    }
  }
  sync_bad();
}

static void test_bad_paths(void **state) {
  char p[512], txt[512], plain[512];
  il_h5_file *f = NULL;
  snapshot snap;
  /* unwritable: a missing directory, /proc, a directory, an empty path */
  snprintf(p, sizeof p, "%s/no-such-dir/x.h5", g_dir);
  expect_fail(il_h5_open(MPI_COMM_WORLD, p, IL_H5_CREATE, g_argc, g_argv, &f), IL_ERR_IO, p, "No such file");
  assert_null(f);
  expect_fail(il_h5_open(MPI_COMM_WORLD, p, IL_H5_APPEND, g_argc, g_argv, &f), IL_ERR_IO, p, NULL);
  expect_fail(il_h5_open(MPI_COMM_WORLD, "/proc/ilbench-x.h5", IL_H5_FORCE, g_argc, g_argv, &f), IL_ERR_IO,
              "/proc/ilbench-x.h5", NULL);
  expect_fail(il_h5_open(MPI_COMM_WORLD, g_dir, IL_H5_FORCE, g_argc, g_argv, &f), IL_ERR_IO, g_dir,
              "not a regular file");
  expect_fail(il_h5_open(MPI_COMM_WORLD, "", IL_H5_CREATE, g_argc, g_argv, &f), IL_ERR_ARG, "empty", NULL);
  expect_fail(il_h5_open(MPI_COMM_WORLD, p, 7, g_argc, g_argv, &f), IL_ERR_ARG, "mode", NULL);
  assert_null(f);
  /* append refuses a text file and an HDF5 file that is not ours, leaving them alone */
  path_in(txt, sizeof txt, "notes.txt");
  path_in(plain, sizeof plain, "plain.h5");
  if (g_rank == 0) {
    write_text(txt, "hello\n");
    hid_t fid = H5Fcreate(plain, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    VCHECK(fid >= 0, "create %s", plain);
    H5Fclose(fid);
    take_snapshot(txt, &snap);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  expect_fail(il_h5_open(MPI_COMM_WORLD, txt, IL_H5_APPEND, g_argc, g_argv, &f), IL_ERR_FORMAT, txt,
              "not an HDF5 file");
  expect_fail(il_h5_open(MPI_COMM_WORLD, plain, IL_H5_APPEND, g_argc, g_argv, &f), IL_ERR_FORMAT, plain,
              "not an ilbench results file");
  assert_null(f);
  MPI_Barrier(MPI_COMM_WORLD);
  if (g_rank == 0) check_snapshot(txt, &snap);
  sync_bad();
}

/* A copy of `from` whose schema_version attribute says `version`. */
static void make_version(const char *from, const char *to, int64_t version) {
  copy_file(from, to);
  hid_t fid = H5Fopen(to, H5F_ACC_RDWR, H5P_DEFAULT);
  VCHECK(fid >= 0, "open %s", to);
  hid_t a = H5Aopen(fid, "schema_version", H5P_DEFAULT);
  VCHECK(H5Awrite(a, H5T_NATIVE_INT64, &version) >= 0, "write schema_version");
  H5Aclose(a);
  H5Fclose(fid);
}

/* il_h5_merge refuses `in` (n files): status IL_ERR_FORMAT, the message holds
 * every needle, and `out` is not created. */
static void expect_merge_refused(const char *out, const char *const *in, int n, const char *const *needles) {
  il_error_clear();
  il_status st = il_h5_merge(out, 0, in, n);
  const char *m = il_error_message();
  VCHECK(st == IL_ERR_FORMAT, "merge status %d: %s", (int)st, m);
  for (const char *const *w = needles; *w; w++) VCHECK(strstr(m, *w) != NULL, "merge message lacks '%s': %s", *w, m);
  if (getenv("ILBENCH_SHOW_ERRORS")) printf("  expected error: %s\n", m);
  il_error_clear();
  VCHECK(access(out, F_OK) != 0, "refused merge wrote %s", out);
}

static void test_merge(void **state) {
  char a[512], b[512], m[512], a2[512], a1[512], b1[512], v3[512], m1[512], none[512];
  path_in(a, sizeof a, "a.h5");
  path_in(b, sizeof b, "b.h5");
  path_in(m, sizeof m, "merged.h5");
  path_in(a2, sizeof a2, "a-copy.h5");
  path_in(a1, sizeof a1, "a-v1.h5");
  path_in(b1, sizeof b1, "b-v1.h5");
  path_in(v3, sizeof v3, "v3.h5");
  path_in(m1, sizeof m1, "merged-v1.h5");
  path_in(none, sizeof none, "refused.h5");
  if (g_rank == 0) { /* merge is serial */
    const char *ab[] = {a, b};
    il_error_clear();
    il_status st = il_h5_merge(m, 0, ab, 2);
    VCHECK(st == IL_OK, "merge: %s", il_error_message());
    hid_t fid = open_serial(m), fa = open_serial(a);
    if (fid >= 0 && fa >= 0) {
      char s[1024], sa[1024];
      VCHECK(count_runs(fid) == 4, "%lld merged runs", count_runs(fid));
      verify_run(fid, "run-0", 0, 3, 4);
      verify_run(fid, "run-1", 1, 2, 3);
      verify_run(fid, "run-b", 3, 2, 2);
      VCHECK(H5Lexists(fid, "/runs/run-2", H5P_DEFAULT) > 0, "run-2 not merged");
      get_str(fid, "schema", s, sizeof s);
      VCHECK(strcmp(s, "ilbench-results") == 0, "merged schema");
      VCHECK(get_i64(fid, "schema_version") == 3, "merged schema_version");
      VCHECK(get_i64(fid, "world_size") == 2, "merged world_size");
      const char *same[] = {"created", "host", "software_version"};
      for (int i = 0; i < 3; i++) {
        get_str(fid, same[i], s, sizeof s);
        get_str(fa, same[i], sa, sizeof sa);
        VCHECK(strcmp(s, sa) == 0, "merged %s '%s' != first input's '%s'", same[i], s, sa);
      }
      get_str(fid, "command_line", s, sizeof s);
      VCHECK(strstr(s, "merge") && strstr(s, a) && strstr(s, b) && strstr(s, g_cmdline), "merged command_line '%s'",
             s);
      /* merged_from: 1-D array of the input paths */
      hid_t at = H5Aopen(fid, "merged_from", H5P_DEFAULT);
      VCHECK(at >= 0, "merged_from missing");
      if (at >= 0) {
        hid_t sp = H5Aget_space(at), mt = H5Tcopy(H5T_C_S1);
        VCHECK(H5Sget_simple_extent_npoints(sp) == 2, "merged_from length");
        char buf[2][512];
        H5Tset_size(mt, 512);
        VCHECK(H5Aread(at, mt, buf) >= 0, "read merged_from");
        VCHECK(strcmp(buf[0], a) == 0 && strcmp(buf[1], b) == 0, "merged_from '%s' '%s'", buf[0], buf[1]);
        H5Tclose(mt);
        H5Sclose(sp);
        H5Aclose(at);
      }
    }
    if (fid >= 0) H5Fclose(fid);
    if (fa >= 0) H5Fclose(fa);

    /* existing output: refused and untouched without force, replaced with it */
    snapshot snap;
    take_snapshot(m, &snap);
    const char *bb[] = {b};
    st = il_h5_merge(m, 0, bb, 1);
    VCHECK(st == IL_ERR_ARG && strstr(il_error_message(), m) && strstr(il_error_message(), "--force"),
           "merge onto existing: %d %s", (int)st, il_error_message());
    il_error_clear();
    check_snapshot(m, &snap);
    st = il_h5_merge(m, 1, bb, 1);
    VCHECK(st == IL_OK, "merge --force: %s", il_error_message());
    fid = open_serial(m);
    if (fid >= 0) {
      VCHECK(count_runs(fid) == 1, "forced merge has %lld runs", count_runs(fid));
      H5Fclose(fid);
    }
    /* output that is also an input */
    const char *mb[] = {m, b};
    st = il_h5_merge(m, 1, mb, 2);
    VCHECK(st == IL_ERR_ARG && strstr(il_error_message(), "also input"), "merge into an input: %s",
           il_error_message());
    il_error_clear();

    /* duplicate run ids: both files named, nothing written */
    copy_file(a, a2);
    const char *dup[] = {a, b, a2};
    st = il_h5_merge(none, 0, dup, 3);
    VCHECK(st == IL_ERR_ARG && strstr(il_error_message(), "run-0") && strstr(il_error_message(), a) &&
               strstr(il_error_message(), a2),
           "duplicate ids: %d %s", (int)st, il_error_message());
    il_error_clear();
    VCHECK(access(none, F_OK) != 0, "refused merge wrote %s", none);

    /* schema versions. A version-1 file and a version-3 file, in either order:
     * refused, naming both files and both versions, nothing written. */
    make_version(a, a1, 1);
    make_version(b, b1, 1);
    const char *v2v1[] = {a, b1}, *v1v2[] = {a1, b};
    expect_merge_refused(none, v2v1, 2,
                         (const char *const[]){a, b1, "schema version 3", "schema version 1", "cannot mix", NULL});
    expect_merge_refused(none, v1v2, 2,
                         (const char *const[]){a1, b, "schema version 1", "schema version 3", "cannot mix", NULL});
    /* a version this ilbench does not know (4): refused, naming the file and the versions it merges */
    make_version(b, v3, 4);
    const char *v2v3[] = {a, v3};
    expect_merge_refused(none, v2v3, 2, (const char *const[]){v3, "schema version 4", "versions 1 to 3", NULL});
    make_version(b, v3, 0);
    expect_merge_refused(none, v2v3, 2, (const char *const[]){v3, "schema version 0", NULL});
    /* files that are all version 1 merge as before: runs copied verbatim, the output stays version 1 */
    const char *v1v1[] = {a1, b1};
    il_error_clear();
    st = il_h5_merge(m1, 0, v1v1, 2);
    VCHECK(st == IL_OK, "merge of two version-1 files: %s", il_error_message());
    fid = open_serial(m1);
    if (fid >= 0) {
      VCHECK(get_i64(fid, "schema_version") == 1, "a merge of version-1 files must stay version 1");
      VCHECK(count_runs(fid) == 4, "%lld runs in the version-1 merge", count_runs(fid));
      verify_run(fid, "run-1", 1, 2, 3);
      H5Fclose(fid);
    }

    const char *miss[] = {a, none};
    st = il_h5_merge(m, 1, miss, 2);
    VCHECK(st == IL_ERR_IO && strstr(il_error_message(), none), "missing input: %s", il_error_message());
    il_error_clear();
  }
  sync_bad();
  /* appending version-3 runs to a version-1 (or an unknown version-4) file is refused too, on every rank */
  il_h5_file *f = NULL;
  expect_fail(il_h5_open(MPI_COMM_WORLD, a1, IL_H5_APPEND, g_argc, g_argv, &f), IL_ERR_FORMAT, a1,
              "has schema version 1; this ilbench writes schema version 3");
  assert_null(f);
  if (g_rank == 0) make_version(b, v3, 4);
  sync_bad();
  expect_fail(il_h5_open(MPI_COMM_WORLD, v3, IL_H5_APPEND, g_argc, g_argv, &f), IL_ERR_FORMAT, v3, "version 4");
  assert_null(f);
}

/* /runs/<id>/events holds nev make_event(run, i) rows, stored as SCHEMA.md says:
 * members name (fixed-length NUL-terminated ASCII string, 16 bytes), calls
 * (int64), time_max, time_sum, flops (float64); a fixed-size 1-D table.
 * nev < 0: the run has no events table. */
static void verify_events(hid_t fid, const char *id, int run, int nev) {
  char p[256];
  snprintf(p, sizeof p, "/runs/%s", id);
  if (H5Lexists(fid, p, H5P_DEFAULT) <= 0) {
    VCHECK(0, "group %s missing", p);
    return;
  }
  hid_t g = H5Gopen2(fid, p, H5P_DEFAULT);
  long long rows = table_rows(g, "events");
  if (nev < 0) {
    VCHECK(rows == -1, "%s: has an events table (%lld rows) it was never given", id, rows);
    H5Gclose(g);
    return;
  }
  VCHECK(rows == nev, "%s: %lld events rows, expected %d", id, rows, nev);
  if (rows != nev) {
    H5Gclose(g);
    return;
  }
  hid_t tv = event_type();
  check_members(g, "events", tv);
  check_member_type(g, "events", "calls", H5T_INTEGER, 8);
  check_member_type(g, "events", "time_max", H5T_FLOAT, 8);
  check_member_type(g, "events", "time_sum", H5T_FLOAT, 8);
  check_member_type(g, "events", "flops", H5T_FLOAT, 8);
  {
    hid_t d = H5Dopen2(g, "events", H5P_DEFAULT), ft = H5Dget_type(d), sp = H5Dget_space(d);
    int i = H5Tget_member_index(ft, "name");
    VCHECK(i >= 0, "%s: events lacks 'name'", id);
    if (i >= 0) {
      hid_t mt = H5Tget_member_type(ft, (unsigned)i);
      VCHECK(H5Tget_class(mt) == H5T_STRING && H5Tis_variable_str(mt) == 0 && H5Tget_size(mt) == 16 &&
                 H5Tget_strpad(mt) == H5T_STR_NULLTERM && H5Tget_cset(mt) == H5T_CSET_ASCII,
             "%s: events.name is not a 16-byte fixed-length NUL-terminated ASCII string (class %d size %zu)", id,
             (int)H5Tget_class(mt), H5Tget_size(mt));
      H5Tclose(mt);
    }
    hsize_t maxd = 0;
    H5Sget_simple_extent_dims(sp, NULL, &maxd);
    VCHECK(H5Sget_simple_extent_ndims(sp) == 1 && maxd == (hsize_t)nev, "%s: events is not a fixed-size 1-D table",
           id);
    H5Sclose(sp);
    H5Tclose(ft);
    H5Dclose(d);
  }
  if (nev > 0) {
    il_event_row *ev = calloc((size_t)nev, sizeof *ev);
    read_all(g, "events", tv, ev);
    for (int i = 0; i < nev; i++) {
      il_event_row x = make_event(run, i);
      VCHECK(strcmp(ev[i].name, x.name) == 0 && ev[i].calls == x.calls && ev[i].time_max == x.time_max &&
                 ev[i].time_sum == x.time_sum && ev[i].flops == x.flops,
             "%s: events row %d is '%s' calls %lld time_max %.17g time_sum %.17g flops %.17g", id, i, ev[i].name,
             (long long)ev[i].calls, ev[i].time_max, ev[i].time_sum, ev[i].flops);
    }
    free(ev);
  }
  H5Tclose(tv);
  H5Gclose(g);
}

/* The file's runs each as write_run_events wrote them (nev[i] < 0: no events). */
static void verify_event_runs(const char *path, const char *const *ids, const int *runs, const int *nev, int n) {
  hid_t fid = open_serial(path);
  if (fid < 0) return;
  verify_root(fid);
  VCHECK(count_runs(fid) == n, "%s: %lld runs, expected %d", path, count_runs(fid), n);
  for (int i = 0; i < n; i++) {
    verify_run(fid, ids[i], runs[i], 2, 3); /* everything else reads back as without events */
    verify_events(fid, ids[i], runs[i], nev[i]);
  }
  H5Fclose(fid);
}

/* analysis/check_schema.py on `path` (found from this source file's path):
 * 1 when it exits 0 and reports "0 errors", 0 when it does not, -1 when
 * /usr/bin/python3 with h5py or the checker is not there (skipped). */
static int check_schema_py(const char *path) {
  char checker[1024], cmd[2600], out[8192] = "";
  const char *src = __FILE__, *tail = strstr(src, "tests/test_results_h5.c");
  if (!tail) return -1;
  snprintf(checker, sizeof checker, "%.*sanalysis/check_schema.py", (int)(tail - src), src);
  if (access(checker, R_OK) != 0 || access("/usr/bin/python3", X_OK) != 0) return -1;
  if (system("/usr/bin/python3 -c 'import h5py, numpy' >/dev/null 2>&1") != 0) return -1;
  snprintf(cmd, sizeof cmd, "PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 '%s' '%s' 2>&1", checker, path);
  FILE *pp = popen(cmd, "r");
  if (!pp) return 0;
  size_t n = fread(out, 1, sizeof out - 1, pp);
  out[n] = '\0';
  int rc = pclose(pp);
  char want[1100];
  snprintf(want, sizeof want, "%s: 0 errors,", path);
  if (rc != 0 || !strstr(out, want)) {
    fprintf(stderr, "check_schema.py %s (status %d):\n%s", path, rc, out);
    return 0;
  }
  return 1;
}

/* The events table (il_h5_run_events): written collectively, read back with
 * the exact types SCHEMA.md gives, optional (a run without it and a file
 * without it are as before), refused when misused without harm to the run,
 * and carried along by merge. */
static void test_events_table(void **state) {
  char e[512], m[512];
  il_h5_file *f = NULL;
  path_in(e, sizeof e, "events.h5");
  path_in(m, sizeof m, "events-merged.h5");
  assert_ok(il_h5_open(MPI_COMM_WORLD, e, IL_H5_CREATE, g_argc, g_argv, &f));
  il_event_row ev[N_EVENT_NAMES + 1];
  for (int i = 0; i <= N_EVENT_NAMES; i++) ev[i] = make_event(7, i);
  expect_fail(il_h5_run_events(f, ev, N_EVENT_NAMES), IL_ERR_ARG, "no run is open", e);

  /* ev-all: one row per event name; misuse first, refused on every rank, the run unharmed */
  il_run_info ri;
  make_info(&ri, "ev-all", 4);
  assert_ok(il_h5_run_begin(f, g_rank == 0 ? &ri : NULL));
  for (int ep = 0; ep < 2; ep++) {
    il_step_row steps[3];
    for (int s = 0; s < 3; s++) steps[s] = make_step(4, ep, s);
    il_epoch_row er = make_epoch(4, ep);
    assert_ok(il_h5_run_epoch(f, &er, steps, 3));
  }
  expect_fail(il_h5_run_events(f, ev, g_rank == 0 ? N_EVENT_NAMES : N_EVENT_NAMES - 1), IL_ERR_ARG,
              "same on every rank", e);
  expect_fail(il_h5_run_events(f, ev, -1), IL_ERR_ARG, "events row count", "ev-all");
  expect_fail(il_h5_run_events(f, g_rank == 0 ? NULL : ev, 3), IL_ERR_ARG, "no rows on rank 0", e);
  il_event_row bad[3] = {ev[0], ev[1], ev[2]};
  if (g_rank == 0) memset(bad[2].name, 'x', sizeof bad[2].name); /* no NUL */
  expect_fail(il_h5_run_events(f, bad, 3), IL_ERR_ARG, "event row 2", "NUL");
  bad[2] = ev[2];
  if (g_rank == 0) bad[1].name[0] = '\0';
  expect_fail(il_h5_run_events(f, bad, 3), IL_ERR_ARG, "event row 1", "empty name");
  for (int i = 0; i < N_EVENT_NAMES; i++) ev[i] = make_event(4, i);
  assert_ok(il_h5_run_events(f, ev, N_EVENT_NAMES));
  expect_fail(il_h5_run_events(f, ev, N_EVENT_NAMES), IL_ERR_ARG, "already has an events table", e);
  il_memstats peak = make_peak(4);
  il_rank_row mine = make_rank(4, g_rank);
  assert_ok(il_h5_run_end(f, "completed", &peak, &mine));

  write_run_events(f, "ev-none", 5, 2, 3, -1); /* optional: no events table */
  write_run_events(f, "ev-empty", 6, 2, 3, 0); /* zero rows: an empty table */
  write_run_events(f, "ev-two", 8, 2, 3, 2);
  assert_ok(il_h5_close(f));

  /* append a run without events to the file with them */
  assert_ok(il_h5_open(MPI_COMM_WORLD, e, IL_H5_APPEND, g_argc, g_argv, &f));
  write_run_events(f, "ev-later", 9, 2, 3, -1);
  assert_ok(il_h5_close(f));

  const char *ids[] = {"ev-all", "ev-none", "ev-empty", "ev-two", "ev-later"};
  const int runs[] = {4, 5, 6, 8, 9}, nev[] = {N_EVENT_NAMES, -1, 0, 2, -1};
  if (g_rank == 0) {
    verify_event_runs(e, ids, runs, nev, 5);
    /* merge copies each run whole: the events tables (and their absence) come along */
    char b[512];
    path_in(b, sizeof b, "b.h5"); /* from test_append_adds_run: a file without events */
    const char *in[] = {e, b};
    il_error_clear();
    il_status st = il_h5_merge(m, 0, in, 2);
    VCHECK(st == IL_OK, "merge: %s", il_error_message());
    if (st == IL_OK) {
      hid_t fid = open_serial(m);
      if (fid >= 0) {
        VCHECK(count_runs(fid) == 6, "merged: %lld runs", count_runs(fid));
        for (int i = 0; i < 5; i++) {
          verify_run(fid, ids[i], runs[i], 2, 3);
          verify_events(fid, ids[i], runs[i], nev[i]);
        }
        verify_run(fid, "run-b", 3, 2, 2);
        verify_events(fid, "run-b", 3, -1);
        H5Fclose(fid);
      }
    }
  }
  sync_bad();
}

/* A file with and one without events tables, with otherwise schema-valid
 * content, pass analysis/check_schema.py (skipped without python3/h5py). */
static void write_valid_run(il_h5_file *f, const char *id, int nev) {
  il_run_info ri;
  make_info(&ri, id, 0);
  assert_ok(il_run_attr_s(&ri, "stop", "batch"));
  assert_ok(il_run_attr_i(&ri, "threads", 1));
  assert_ok(il_run_attr_s(&ri, "data", "data/mnist"));
  assert_ok(il_h5_run_begin(f, g_rank == 0 ? &ri : NULL));
  for (int ep = 0; ep < 3; ep++) { /* make_info asks for 3 epochs */
    il_step_row steps[2];
    for (int s = 0; s < 2; s++) {
      il_step_row_init(&steps[s]);
      steps[s].global_step = 2 * ep + s;
      steps[s].epoch = ep;
      steps[s].step = s;
      steps[s].loss = 1.0;
      steps[s].err = 0.25;
      steps[s].fwd_iters = 5;
      steps[s].grad_norm = 1.0 + s;
      steps[s].forward_s = 0.01;
    }
    il_epoch_row er;
    memset(&er, 0, sizeof er);
    er.epoch = ep;
    er.lr = 0.01;
    er.train_err = er.test_err = 0.25;
    er.train_loss = er.test_loss = 1.0;
    er.train_iters = er.test_iters = 5.0;
    er.max_grad_norm = 2.0;
    er.train_batches = 2;
    er.train_s = 0.1;
    er.forward_s = 0.02; /* the sum of its steps' forward_s */
    er.ranks = g_size;
    assert_ok(il_h5_run_epoch(f, &er, steps, 2));
  }
  il_event_row ev[N_EVENT_NAMES];
  for (int i = 0; i < nev; i++) ev[i] = make_event(0, i);
  if (nev >= 0) assert_ok(il_h5_run_events(f, ev, nev));
  il_memstats peak;
  memset(&peak, 0, sizeof peak);
  il_rank_row mine;
  memset(&mine, 0, sizeof mine);
  mine.local_batch = 50;
  assert_ok(il_h5_run_end(f, "completed", &peak, &mine));
}

static void test_events_pass_check_schema(void **state) {
  char with[512], without[512];
  il_h5_file *f = NULL;
  path_in(with, sizeof with, "valid-events.h5");
  path_in(without, sizeof without, "valid-no-events.h5");
  assert_ok(il_h5_open(MPI_COMM_WORLD, with, IL_H5_CREATE, g_argc, g_argv, &f));
  write_valid_run(f, "with-events", N_EVENT_NAMES);
  write_valid_run(f, "empty-events", 0);
  write_valid_run(f, "no-events", -1);
  assert_ok(il_h5_close(f));
  assert_ok(il_h5_open(MPI_COMM_WORLD, without, IL_H5_CREATE, g_argc, g_argv, &f));
  write_valid_run(f, "no-events", -1);
  assert_ok(il_h5_close(f));
  if (g_rank == 0) {
    int a = check_schema_py(with), b = check_schema_py(without);
    if (a < 0 || b < 0) {
      printf("  check_schema.py not run (no /usr/bin/python3 with h5py, or no analysis/check_schema.py)\n");
    } else {
      VCHECK(a == 1, "check_schema.py rejects %s", with);
      VCHECK(b == 1, "check_schema.py rejects %s", without);
    }
  }
  sync_bad();
}

/* Every file, group, dataset and attribute opened above has been closed
 * (by the writer and by the checks), on every rank. */
static void test_no_open_hdf5_objects(void **state) {
  ssize_t n = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
  if (n != 0) print_error("rank %d: %zd HDF5 objects still open\n", g_rank, n);
  assert_int_equal(n, 0);
}

/* ---- fixture and main --------------------------------------------------------- */

static int setup(void **state) {
  if (g_rank == 0) {
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/ilbench-h5test.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) g_dir[0] = '\0';
  }
  MPI_Bcast(g_dir, (int)sizeof g_dir, MPI_CHAR, 0, MPI_COMM_WORLD);
  return g_dir[0] ? 0 : -1;
}

static int clear_error(void **state) {
  il_error_clear(); /* a failed test must not leave its message to the next */
  return 0;
}

static int teardown(void **state) {
  MPI_Barrier(MPI_COMM_WORLD);
  if (g_rank == 0 && g_dir[0] && !getenv("ILBENCH_KEEP_TMP")) {
    DIR *d = opendir(g_dir);
    struct dirent *de;
    char p[1024];
    while (d && (de = readdir(d)) != NULL) {
      if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
      snprintf(p, sizeof p, "%s/%s", g_dir, de->d_name);
      unlink(p);
    }
    if (d) closedir(d);
    rmdir(g_dir);
  }
  return 0;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  if (g_size != 2) {
    if (g_rank == 0) fprintf(stderr, "test_results_h5: run with 2 MPI ranks (mpirun -n 2)\n");
    MPI_Finalize();
    return 1;
  }
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* the serial checks probe for missing objects */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_run_info_helpers, clear_error),
      cmocka_unit_test(test_step_row_init),
      cmocka_unit_test_setup(test_roundtrip_two_runs, clear_error),
      cmocka_unit_test_setup(test_create_refuses_existing, clear_error),
      cmocka_unit_test_setup(test_append_adds_run, clear_error),
      cmocka_unit_test_setup(test_force_replaces, clear_error),
      cmocka_unit_test_setup(test_bad_paths, clear_error),
      cmocka_unit_test_setup(test_merge, clear_error),
      cmocka_unit_test_setup(test_events_table, clear_error),
      cmocka_unit_test_setup(test_events_pass_check_schema, clear_error),
      cmocka_unit_test(test_no_open_hdf5_objects),
  };
  char name[64];
  snprintf(name, sizeof name, "results_h5 (rank %d of %d)", g_rank, g_size);
  int failed = _cmocka_run_group_tests(name, tests, sizeof tests / sizeof tests[0], setup, teardown);
  MPI_Finalize();
  return failed;
}
