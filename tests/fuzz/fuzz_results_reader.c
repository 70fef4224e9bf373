/* tests/fuzz/fuzz_results_reader.c: libFuzzer target for the results-file readers:
 * il_h5_open in append mode with il_h5_run_status and il_h5_find_resumable (bench/results_h5.c,
 * bench/results_resume.c), and il_h5_merge (bench/results_merge.c).
 *
 * Raw bytes would mostly exercise libhdf5's own parser (Debian's 1.10.8, which we cannot fix;
 * README.md here), so the input is decoded as a small program that builds a VALID HDF5 file
 * through the HDF5 API with hostile contents, and our readers then run on that file. Every
 * decoded byte is a choice, and byte value 0 is always the writer's own choice, so an all-zero
 * (or empty) input builds a file like the one ilbench writes. The program, in input order:
 *   file flags (latest format, user block, dense attributes); the root attributes schema,
 *   schema_version, command_line, software_version, created, host, world_size, merged_from,
 *   each valid, missing or hostile (put_attr: another class, fixed, variable-length, padded or
 *   UTF-8 strings, several elements, arrays, compounds, vlen sequences, references, null
 *   dataspaces, huge or negative numbers); up to 15 extra root attributes; what /runs is (a
 *   group, missing, a dataset, a committed type, dangling or looping soft and external links,
 *   a hard link to the root, a link into the good file); up to 8 entries in /runs, each a run
 *   group (status and configuration attributes; epochs, steps, ranks and events tables of
 *   right or wrong compound types, ranks and shapes, or links and groups in their place) or a
 *   dataset, link or type in its place; extra objects at the root; how the merges are run.
 * The file is built with the core driver and its backing store in a private temporary
 * directory (/dev/shm when writable), since the readers open by path. Then, per input:
 *   il_h5_open(MPI_COMM_SELF, copy, IL_H5_APPEND), il_h5_run_status of every run and of a
 *   missing one, il_h5_find_resumable, il_h5_close, on a copy of the file (appending may add
 *   /runs); il_h5_merge(out, 1, {fuzzed}, 1); il_h5_merge of the fuzzed file and a fixed good
 *   file (written once at start up with the writer API), in either order, onto a missing or
 *   an existing output, with or without force.
 * Properties checked besides "no crash, no sanitizer report, no leak, no hang":
 *   - a failure records a message that names one of the files;
 *   - il_h5_open's output is NULL on failure; il_h5_close of a success succeeds;
 *   - a status query gives a NUL-terminated string, "" for a missing run; find_resumable gives
 *     "" or a run of the file;
 *   - a failed merge leaves the output path as it was (absent, or the old file byte for byte),
 *     and no other file behind (temporary or lock files);
 *   - a merge onto an existing output without force is refused;
 *   - a successful merge holds exactly the union of the inputs' runs, and when il_h5_open
 *     appends to its first input (whose root it copies), it appends to the merged file too;
 *   - no HDF5 object (file, group, dataset, attribute, datatype) stays open afterwards.
 * Triage: FUZZ_RESULTS_KEEP=PATH keeps a copy of the last file built (for h5dump), and
 * FUZZ_RESULTS_VERBOSE=1 prints what each reader call returned. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "il_status.h"
#include "results.h"
#include "results_h5.h"

/* ---- property failures: say what and why, then abort (libFuzzer saves the input) ---- */
#define PROP(cond, ...)                                                                           \
  do {                                                                                            \
    if (!(cond)) {                                                                                \
      fprintf(stderr, "fuzz_results_reader: property failed at line %d: %s\n  ", __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                                               \
      fprintf(stderr, "\n  last il_status message: %s\n", il_error_message());                    \
      abort();                                                                                    \
    }                                                                                             \
  } while (0)

static char g_dir[256], g_fuzz[300], g_good[300], g_out[300], g_probe[300];
static int g_appendable; /* il_h5_open appends to (a copy of) the fuzzed file */
static int g_verbose;    /* FUZZ_RESULTS_VERBOSE: say what each reader call returned */
static void said(const char *what, il_status st) {
  if (g_verbose) fprintf(stderr, "fuzz_results_reader: %s: %s%s%s\n", what, il_status_str(st), st ? ": " : "", st ? il_error_message() : "");
}
static uint8_t *g_good_bytes;
static size_t g_good_n;

/* ---- the input as a program ---- */
typedef struct prog {
  const uint8_t *p;
  size_t n, i;
} prog;
static unsigned u8(prog *g) { return g->i < g->n ? g->p[g->i++] : 0; }
static unsigned pick(prog *g, unsigned k) { return u8(g) % k; }
static uint64_t u64(prog *g) {
  uint64_t v = 0;
  for (int k = 0; k < 8; k++) v = v << 8 | u8(g);
  return v;
}

/* deterministic filler for table rows (their values do not steer the readers) */
static void fill(uint8_t *b, size_t n, unsigned seed) {
  uint32_t x = 2463534242u ^ (seed * 2654435761u);
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b[i] = (uint8_t)x;
  }
}

/* ---- text and numbers ---- */
static char g_text[12288];
static size_t gen_text(prog *g, const char *dflt) {
  size_t d = strlen(dflt), n = 0;
  switch (pick(g, 8)) {
  case 0: memcpy(g_text, dflt, d); n = d; break;
  case 1: n = 0; break;
  case 2: memcpy(g_text, dflt, d); g_text[d] = 'x'; n = d + 1; break;
  case 3: n = d ? d - 1 : 0; memcpy(g_text, dflt, n); break;
  case 4: /* arbitrary bytes, NULs included */
    n = pick(g, 48);
    for (size_t i = 0; i < n; i++) g_text[i] = (char)u8(g);
    break;
  case 5: n = 100 + 40 * (size_t)u8(g); memset(g_text, 'a', n); break; /* longer than any reader buffer */
  case 6:
    for (size_t i = 0; i < d; i++) g_text[i] = (char)(dflt[i] >= 'a' && dflt[i] <= 'z' ? dflt[i] - 32 : dflt[i]);
    n = d;
    break;
  default: /* a NUL inside */
    memcpy(g_text, dflt, d);
    g_text[d / 2] = '\0';
    n = d;
    break;
  }
  g_text[n] = '\0';
  return n;
}

static int64_t gen_int(prog *g, int64_t dflt) {
  switch (pick(g, 10)) {
  case 0: return dflt;
  case 1: return dflt + 1;
  case 2: return dflt - 1;
  case 3: return 0;
  case 4: return -1;
  case 5: return INT64_MAX;
  case 6: return INT64_MIN;
  case 7: return (int64_t)u64(g);
  case 8: return (int64_t)1 << 32 | (uint64_t)dflt; /* fits int64, not int32 */
  default: return 1;
  }
}

/* ---- attributes ---- */
static void attr_write(hid_t obj, const char *name, hid_t type, hid_t space, const void *buf) {
  hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  if (a >= 0) {
    if (buf) H5Awrite(a, type, buf);
    H5Aclose(a);
  }
}

static hid_t space_n(hsize_t n) { return H5Screate_simple(1, &n, NULL); }

static hid_t fixed_str_type(size_t size, H5T_str_t pad, H5T_cset_t cset) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, size ? size : 1);
  H5Tset_strpad(t, pad);
  H5Tset_cset(t, cset);
  return t;
}

/* A string attribute: the writer's form (fixed, NUL-terminated, scalar) or a legal variant. */
static void put_str_attr(hid_t obj, const char *name, prog *g, const char *dflt, int writer_form) {
  size_t n = gen_text(g, dflt);
  unsigned form = writer_form ? 0 : pick(g, 9);
  unsigned k = 1 + pick(g, 4); /* elements, for the forms with several */
  static char buf[4 * sizeof g_text];
  const char *ptrs[4] = {g_text, g_text, g_text, g_text};
  hid_t t = -1, s = -1;
  switch (form) {
  case 0: /* as results_h5.c writes it */
    t = fixed_str_type(n + 1, H5T_STR_NULLTERM, H5T_CSET_ASCII);
    s = H5Screate(H5S_SCALAR);
    attr_write(obj, name, t, s, g_text);
    break;
  case 1: /* variable length */
    t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    s = H5Screate(H5S_SCALAR);
    attr_write(obj, name, t, s, ptrs);
    break;
  case 2: /* no terminator: padded to exactly its length */
    t = fixed_str_type(n, (u8(g) & 1) ? H5T_STR_SPACEPAD : H5T_STR_NULLPAD, H5T_CSET_ASCII);
    s = H5Screate(H5S_SCALAR);
    memcpy(buf, g_text, n + 1);
    attr_write(obj, name, t, s, buf);
    break;
  case 3: /* k fixed strings instead of one */
    t = fixed_str_type(n + 1, H5T_STR_NULLTERM, H5T_CSET_ASCII);
    s = space_n(k);
    for (unsigned i = 0; i < k; i++) memcpy(buf + i * (n + 1), g_text, n + 1);
    attr_write(obj, name, t, s, buf);
    break;
  case 4: /* k variable-length strings */
    t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    s = space_n(k);
    attr_write(obj, name, t, s, ptrs);
    break;
  case 5: /* null dataspace: a string attribute with no value */
    t = fixed_str_type(n + 1, H5T_STR_NULLTERM, H5T_CSET_ASCII);
    s = H5Screate(H5S_NULL);
    attr_write(obj, name, t, s, NULL);
    break;
  case 6: /* UTF-8, wider than needed */
    t = fixed_str_type(n + 1 + pick(g, 64), H5T_STR_NULLTERM, H5T_CSET_UTF8);
    s = H5Screate(H5S_SCALAR);
    memset(buf, 0, H5Tget_size(t));
    memcpy(buf, g_text, n);
    attr_write(obj, name, t, s, buf);
    break;
  case 7: { /* an array type of fixed strings */
    hid_t st = fixed_str_type(n + 1, H5T_STR_NULLTERM, H5T_CSET_ASCII);
    hsize_t dk = k;
    t = H5Tarray_create2(st, 1, &dk);
    H5Tclose(st);
    s = H5Screate(H5S_SCALAR);
    for (unsigned i = 0; i < k; i++) memcpy(buf + i * (n + 1), g_text, n + 1);
    attr_write(obj, name, t, s, buf);
    break;
  }
  default: { /* a 2-D dataspace of one element: a single string, not a scalar */
    hsize_t d2[2] = {1, 1};
    t = fixed_str_type(n + 1, H5T_STR_NULLTERM, H5T_CSET_ASCII);
    s = H5Screate_simple(2, d2, NULL);
    attr_write(obj, name, t, s, g_text);
    break;
  }
  }
  if (t >= 0) H5Tclose(t);
  if (s >= 0) H5Sclose(s);
}

static hid_t int_file_type(unsigned k) {
  switch (k % 8) {
  case 0: return H5T_STD_I64LE;
  case 1: return H5T_STD_I8LE;
  case 2: return H5T_STD_I16LE;
  case 3: return H5T_STD_I32LE;
  case 4: return H5T_STD_U64LE;
  case 5: return H5T_STD_I64BE;
  case 6: return H5T_STD_U8LE;
  default: return H5T_STD_U32BE;
  }
}

enum {
  A_VALID, A_MISSING, A_STR, A_INT, A_INT_VEC, A_F64, A_ENUM, A_COMPOUND, A_VLEN_SEQ, A_ARRAY_INT, A_OPAQUE,
  A_CMPD_VLSTR, A_ARRAY_VLSTR, A_REF, A_INT_NULL, A_N
};

/* An attribute that should hold a string (is_int 0) or an integer (is_int 1): the writer's
 * form, missing, or any of the hostile kinds. */
static void put_attr(hid_t obj, const char *name, prog *g, const char *text, int64_t ival, int is_int) {
  unsigned kind = pick(g, A_N);
  hid_t s = -1, t = -1;
  if (kind == A_VALID) {
    if (is_int) {
      int64_t v = ival;
      s = H5Screate(H5S_SCALAR);
      attr_write(obj, name, H5T_STD_I64LE, s, &v);
    } else {
      put_str_attr(obj, name, g, text, 1);
    }
  } else if (kind == A_STR) {
    char dflt[32];
    if (is_int) snprintf(dflt, sizeof dflt, "%lld", (long long)ival);
    put_str_attr(obj, name, g, is_int ? dflt : text, 0);
  } else if (kind == A_INT || kind == A_INT_VEC || kind == A_INT_NULL) {
    int64_t v[4];
    unsigned n = kind == A_INT ? 1 : pick(g, 5);
    hid_t ft = int_file_type(u8(g));
    for (unsigned i = 0; i < 4; i++) v[i] = gen_int(g, ival);
    s = kind == A_INT ? H5Screate(H5S_SCALAR) : kind == A_INT_NULL ? H5Screate(H5S_NULL) : space_n(n);
    hid_t a = H5Acreate2(obj, name, ft, s, H5P_DEFAULT, H5P_DEFAULT);
    /* converted from int64: out-of-range values clip, as HDF5 does */
    if (a >= 0) {
      if (kind != A_INT_NULL) H5Awrite(a, H5T_NATIVE_INT64, v);
      H5Aclose(a);
    }
  } else if (kind == A_F64) {
    double d = (u8(g) & 1) ? (double)gen_int(g, ival) : (double)ival + 0.5;
    s = H5Screate(H5S_SCALAR);
    attr_write(obj, name, H5T_IEEE_F64LE, s, &d);
  } else if (kind == A_ENUM) {
    int32_t v = (int32_t)gen_int(g, ival);
    t = H5Tenum_create(H5T_NATIVE_INT32);
    int32_t three = (int32_t)ival, zero = 0;
    H5Tenum_insert(t, "value", &three);
    if (three != 0) H5Tenum_insert(t, "zero", &zero);
    s = H5Screate(H5S_SCALAR);
    attr_write(obj, name, t, s, &v);
  } else if (kind == A_COMPOUND) {
    struct {
      int64_t a;
      double b;
    } c = {gen_int(g, ival), 1.0};
    t = H5Tcreate(H5T_COMPOUND, sizeof c);
    H5Tinsert(t, "value", 0, H5T_NATIVE_INT64);
    H5Tinsert(t, "b", sizeof(int64_t), H5T_NATIVE_DOUBLE);
    s = H5Screate(H5S_SCALAR);
    attr_write(obj, name, t, s, &c);
  } else if (kind == A_VLEN_SEQ) {
    int64_t v[3] = {ival, ival, ival};
    hvl_t h = {pick(g, 4), v};
    t = H5Tvlen_create(H5T_NATIVE_INT64);
    s = H5Screate(H5S_SCALAR);
    attr_write(obj, name, t, s, &h);
  } else if (kind == A_ARRAY_INT) {
    hsize_t k = 1 + pick(g, 3);
    int64_t v[3] = {ival, ival, ival};
    t = H5Tarray_create2(H5T_NATIVE_INT64, 1, &k);
    s = H5Screate(H5S_SCALAR);
    attr_write(obj, name, t, s, v);
  } else if (kind == A_OPAQUE) {
    uint8_t b[8] = {0};
    t = H5Tcreate(H5T_OPAQUE, 1 + pick(g, 8));
    H5Tset_tag(t, "fuzz");
    s = H5Screate(H5S_SCALAR);
    attr_write(obj, name, t, s, b);
  } else if (kind == A_CMPD_VLSTR) {
    gen_text(g, text);
    struct {
      const char *s;
      int64_t i;
    } c = {g_text, ival};
    hid_t vs = H5Tcopy(H5T_C_S1);
    H5Tset_size(vs, H5T_VARIABLE);
    t = H5Tcreate(H5T_COMPOUND, sizeof c);
    H5Tinsert(t, "s", 0, vs);
    H5Tinsert(t, "i", sizeof(char *), H5T_NATIVE_INT64);
    H5Tclose(vs);
    s = H5Screate(H5S_SCALAR);
    attr_write(obj, name, t, s, &c);
  } else if (kind == A_ARRAY_VLSTR) {
    gen_text(g, text);
    hsize_t k = 1 + pick(g, 3);
    const char *v[3] = {g_text, g_text, g_text};
    hid_t vs = H5Tcopy(H5T_C_S1);
    H5Tset_size(vs, H5T_VARIABLE);
    t = H5Tarray_create2(vs, 1, &k);
    H5Tclose(vs);
    s = H5Screate(H5S_SCALAR);
    attr_write(obj, name, t, s, v);
  } else if (kind == A_REF) {
    hobj_ref_t r;
    s = H5Screate(H5S_SCALAR);
    if (H5Rcreate(&r, obj, ".", H5R_OBJECT, -1) >= 0) attr_write(obj, name, H5T_STD_REF_OBJ, s, &r);
  }
  if (t >= 0) H5Tclose(t);
  if (s >= 0) H5Sclose(s);
}

/* ---- tables ---- */
static hid_t g_reason = -1, g_nanorigin = -1, g_str16 = -1;

static hid_t col_type(il_col_type t) {
  switch (t) {
  case IL_COL_I32: return H5T_NATIVE_INT32;
  case IL_COL_I64: return H5T_NATIVE_INT64;
  case IL_COL_U64: return H5T_NATIVE_UINT64;
  case IL_COL_F64: return H5T_NATIVE_DOUBLE;
  case IL_COL_STR16: return g_str16;
  case IL_COL_REASON: return g_reason;
  case IL_COL_NANORIGIN: return g_nanorigin;
  }
  return H5T_NATIVE_INT32;
}

/* A replacement member type; *vl set when it holds variable-length data. */
static hid_t odd_type(unsigned k, int *vl) {
  hid_t t;
  hsize_t two = 2;
  switch (k % 10) {
  case 0: return H5Tcopy(H5T_NATIVE_DOUBLE);
  case 1: return H5Tcopy(H5T_NATIVE_INT32);
  case 2: return H5Tcopy(H5T_STD_I64BE);
  case 3: return H5Tcopy(g_str16);
  case 4:
    *vl = 1;
    t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    return t;
  case 5: return H5Tcopy(H5T_NATIVE_UINT8);
  case 6:
    t = H5Tcreate(H5T_COMPOUND, 4);
    H5Tinsert(t, "x", 0, H5T_NATIVE_INT32);
    return t;
  case 7: return H5Tarray_create2(H5T_NATIVE_DOUBLE, 1, &two);
  case 8: return H5Tcopy(g_reason);
  default: return H5Tcopy(H5T_NATIVE_FLOAT);
  }
}

/* The table's packed compound type as the writer stores it, with column `drop` left out,
 * column `retype` given type `rt` (taken over), and an extra member when `extra`. */
static hid_t table_type(const il_table_desc *td, int drop, int retype, hid_t rt, int extra) {
  size_t size = 0;
  for (int i = 0; i < td->ncols; i++)
    if (i != drop) size += H5Tget_size(i == retype ? rt : col_type(td->cols[i].type));
  if (extra) size += 8;
  hid_t c = H5Tcreate(H5T_COMPOUND, size ? size : 1);
  size_t off = 0;
  for (int i = 0; c >= 0 && i < td->ncols; i++) {
    if (i == drop) continue;
    hid_t mt = i == retype ? rt : col_type(td->cols[i].type);
    H5Tinsert(c, td->cols[i].name, off, mt);
    off += H5Tget_size(mt);
  }
  if (c >= 0 && extra) H5Tinsert(c, "fuzz_extra", off, H5T_STD_I64LE);
  if (rt >= 0) H5Tclose(rt);
  return c;
}

static void put_dataset(hid_t loc, const char *name, hid_t type, hid_t space, hid_t dcpl, int vl, unsigned seed) {
  hid_t d = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  if (d < 0) return;
  hssize_t np = H5Sget_select_npoints(space);
  size_t ts = H5Tget_size(type);
  /* variable-length members would need real pointers: such tables keep their fill value */
  if (!vl && np > 0 && ts > 0 && (size_t)np * ts <= (1u << 20)) {
    uint8_t *b = malloc((size_t)np * ts);
    if (b) {
      fill(b, (size_t)np * ts, seed);
      H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, b);
      free(b);
    }
  }
  H5Dclose(d);
}

static void put_table(hid_t run, prog *g, int table, const char *good_path) {
  const il_table_desc *td = &il_results_tables[table];
  const char *name = td->name;
  unsigned kind = pick(g, 12), rows = pick(g, 5), seed = u8(g);
  int vl = 0;
  hid_t t = -1, s = -1, dcpl = H5P_DEFAULT;
  hsize_t dims[2] = {rows, 2}, maxd = H5S_UNLIMITED, chunk = 4;
  switch (kind) {
  case 0: /* the writer's type and layout (chunked, extendible) */
  case 1: /* ... contiguous */
    t = table_type(td, -1, -1, -1, 0);
    if (kind == 0) {
      s = H5Screate_simple(1, dims, &maxd);
      dcpl = H5Pcreate(H5P_DATASET_CREATE);
      H5Pset_chunk(dcpl, 1, &chunk);
      if (u8(g) & 1) H5Pset_deflate(dcpl, 1);
    } else {
      s = H5Screate_simple(1, dims, NULL);
    }
    break;
  case 2: return; /* missing */
  case 3: /* a member missing */
    t = table_type(td, (int)pick(g, (unsigned)td->ncols), -1, -1, 0);
    s = H5Screate_simple(1, dims, NULL);
    break;
  case 4: { /* a member of another type */
    int col = (int)pick(g, (unsigned)td->ncols);
    t = table_type(td, -1, col, odd_type(u8(g), &vl), 0);
    s = H5Screate_simple(1, dims, NULL);
    break;
  }
  case 5: /* an extra member */
    t = table_type(td, -1, -1, -1, 1);
    s = H5Screate_simple(1, dims, NULL);
    break;
  case 6: /* not a compound */
    t = H5Tcopy(H5T_NATIVE_INT32);
    s = H5Screate_simple(1, dims, NULL);
    break;
  case 7: /* 2-D */
    t = table_type(td, -1, -1, -1, 0);
    s = H5Screate_simple(2, dims, NULL);
    break;
  case 8: /* scalar */
    t = table_type(td, -1, -1, -1, 0);
    s = H5Screate(H5S_SCALAR);
    break;
  case 9: /* null dataspace */
    t = table_type(td, -1, -1, -1, 0);
    s = H5Screate(H5S_NULL);
    break;
  case 10: { /* a group, or a link, where the table should be */
    unsigned k = pick(g, 4);
    if (k == 0) {
      hid_t gr = H5Gcreate2(run, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      if (gr >= 0) H5Gclose(gr);
    } else if (k == 1) {
      H5Lcreate_soft("/nowhere", run, name, H5P_DEFAULT, H5P_DEFAULT);
    } else if (k == 2) {
      H5Lcreate_soft(name, run, name, H5P_DEFAULT, H5P_DEFAULT); /* to itself */
    } else {
      char target[64];
      snprintf(target, sizeof target, "/runs/good-run/%s", name);
      H5Lcreate_external(good_path, target, run, name, H5P_DEFAULT, H5P_DEFAULT);
    }
    return;
  }
  default: /* a committed (named) datatype */
    t = table_type(td, -1, -1, -1, 0);
    H5Tcommit2(run, name, t, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Tclose(t);
    return;
  }
  put_dataset(run, name, t, s, dcpl, vl, seed);
  if (dcpl != H5P_DEFAULT) H5Pclose(dcpl);
  H5Tclose(t);
  H5Sclose(s);
}

/* ---- runs ---- */
/* a 200-character run id */
#define LONG_NAME "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" \
  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
static const char *const run_names[] = {"r0", "good-run", "r1", "run with spaces", "\xc3\xbc-utf8", "-", "r0 ",
                                        LONG_NAME};
#define NRUN_NAMES (sizeof run_names / sizeof run_names[0])

/* The good file's real checkpoint slots copied into run, then damaged: items deleted, replaced
 * with other types or sizes, overwritten with junk (the digests no longer match), the slot's
 * attributes reshaped or changed, an extra item added, a slot made a dataset; and the run's
 * `checkpoint` attribute set to anything. */
static void put_ckpt(hid_t run, prog *g) {
  hid_t good = H5Fopen(g_good, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (good < 0) return;
  static const char *const slot[2] = {"checkpoint_0", "checkpoint_1"};
  static const char *const items[] = {"params", "shuffle_rng", "epoch_acc", "position", "digest", "config_hash"};
  for (int k = 0; k < 2; k++) {
    char src[64];
    snprintf(src, sizeof src, "/runs/ckpt-run/%s", slot[k]);
    if (pick(g, 5) == 0) continue; /* a missing slot */
    if (pick(g, 8) == 0) { /* a dataset in its place */
      hsize_t n = 4;
      hid_t sp = H5Screate_simple(1, &n, NULL);
      put_dataset(run, slot[k], H5T_NATIVE_INT64, sp, H5P_DEFAULT, 0, u8(g));
      H5Sclose(sp);
      continue;
    }
    if (H5Ocopy(good, src, run, slot[k], H5P_DEFAULT, H5P_DEFAULT) < 0) continue;
    hid_t sg = H5Gopen2(run, slot[k], H5P_DEFAULT);
    if (sg < 0) continue;
    for (unsigned d = 0, nd = pick(g, 4); d < nd; d++) {
      const char *it = items[pick(g, 6)];
      const int is_attr = H5Aexists(sg, it) > 0;
      switch (pick(g, 5)) {
      case 0: /* gone */
        if (is_attr) H5Adelete(sg, it);
        else H5Ldelete(sg, it, H5P_DEFAULT);
        break;
      case 1: { /* another type and size */
        if (is_attr) H5Adelete(sg, it);
        else H5Ldelete(sg, it, H5P_DEFAULT);
        hsize_t n = 1 + pick(g, 9);
        hid_t sp = H5Screate_simple(1, &n, NULL);
        int vl = 0;
        hid_t t = odd_type(pick(g, 10), &vl);
        if (is_attr) {
          if (!vl) {
            uint8_t junk[256];
            fill(junk, sizeof junk, u8(g));
            attr_write(sg, it, t, sp, junk);
          }
        } else {
          put_dataset(sg, it, t, sp, H5P_DEFAULT, vl, u8(g));
        }
        H5Tclose(t);
        H5Sclose(sp);
        break;
      }
      case 2: { /* same shape, junk bytes: a torn write */
        if (is_attr) break;
        hid_t ds = H5Dopen2(sg, it, H5P_DEFAULT);
        if (ds < 0) break;
        hid_t t = H5Dget_type(ds), sp = H5Dget_space(ds);
        const hssize_t np = H5Sget_simple_extent_npoints(sp);
        const size_t bytes = (size_t)(np > 0 ? np : 0) * H5Tget_size(t);
        uint8_t *junk = bytes && bytes < (1u << 20) ? malloc(bytes) : NULL;
        if (junk) {
          fill(junk, bytes, u8(g));
          H5Dwrite(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, junk);
        }
        free(junk);
        H5Tclose(t);
        H5Sclose(sp);
        H5Dclose(ds);
        break;
      }
      case 3: /* an extra item */
        put_attr(sg, "extra_attr", g, "x", 3, (int)(u8(g) & 1));
        {
          hsize_t n = 2;
          hid_t sp = H5Screate_simple(1, &n, NULL);
          put_dataset(sg, "extra_item", H5T_NATIVE_DOUBLE, sp, H5P_DEFAULT, 0, u8(g));
          H5Sclose(sp);
        }
        break;
      default: /* an attribute rewritten with a near value */
        if (is_attr) put_attr(sg, it, g, "", gen_int(g, 2), 1);
        break;
      }
    }
    H5Gclose(sg);
  }
  H5Fclose(good);
  if (pick(g, 4)) put_attr(run, "checkpoint", g, "", gen_int(g, pick(g, 2)), 1);
}

static void put_run_group(hid_t runs, const char *name, prog *g, const char *good_path) {
  hid_t run = H5Gcreate2(runs, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (run < 0) return;
  static const char *const statuses[] = {"completed", "running", "failed", "done", "interrupted", "interrupted"};
  put_attr(run, "status", g, statuses[pick(g, 6)], 0, 0);
  if (u8(g) % 3 == 0) put_ckpt(run, g);
  static const char *const keys[] = {"solver", "epochs", "run_index", "started", "world_size", "peak_bytes_total"};
  for (unsigned i = 0, n = pick(g, 4); i < n; i++) {
    unsigned k = pick(g, 6);
    put_attr(run, keys[k], g, "fp", 1, k == 1 || k == 2 || k >= 4);
  }
  for (int tb = 0; tb < IL_NTABLES; tb++) put_table(run, g, tb, good_path);
  if (u8(g) % 4 == 3) { /* an extra group with a table in it */
    hid_t sub = H5Gcreate2(run, "extra", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (sub >= 0) {
      put_table(sub, g, IL_TABLE_EPOCHS, good_path);
      H5Gclose(sub);
    }
  }
  H5Gclose(run);
}

static void put_run_entry(hid_t fid, hid_t runs, prog *g, const char *good_path) {
  const char *name = run_names[pick(g, NRUN_NAMES)];
  switch (pick(g, 10)) {
  case 0:
  case 1:
  case 2: put_run_group(runs, name, g, good_path); break;
  case 3: { /* a dataset */
    hsize_t n = 3;
    hid_t s = H5Screate_simple(1, &n, NULL);
    put_dataset(runs, name, H5T_NATIVE_INT32, s, H5P_DEFAULT, 0, u8(g));
    H5Sclose(s);
    break;
  }
  case 4: H5Lcreate_soft("/runs/nothing-here", runs, name, H5P_DEFAULT, H5P_DEFAULT); break;
  case 5: H5Lcreate_soft("/runs", runs, name, H5P_DEFAULT, H5P_DEFAULT); break; /* a loop */
  case 6: H5Lcreate_hard(fid, "/", runs, name, H5P_DEFAULT, H5P_DEFAULT); break; /* the root inside itself */
  case 7:
    H5Lcreate_external((u8(g) & 1) ? good_path : "/nonexistent/ilbench-fuzz.h5", "/runs/good-run", runs, name,
                       H5P_DEFAULT, H5P_DEFAULT);
    break;
  case 8: H5Tcommit2(runs, name, H5T_STD_I32LE, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT); break;
  default: { /* an empty group */
    hid_t e = H5Gcreate2(runs, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (e >= 0) H5Gclose(e);
  }
  }
}

/* What /runs is. A group (returned) or something else (-1 returned). */
static hid_t put_runs(hid_t fid, prog *g, const char *good_path, const char *fuzz_path) {
  hid_t gcpl = H5P_DEFAULT, runs = -1;
  switch (pick(g, 12)) {
  case 0:
  case 1: runs = H5Gcreate2(fid, "runs", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT); break;
  case 2: break; /* missing */
  case 3: { /* a dataset */
    hsize_t n = 2;
    hid_t s = H5Screate_simple(1, &n, NULL);
    put_dataset(fid, "runs", H5T_NATIVE_INT64, s, H5P_DEFAULT, 0, 1);
    H5Sclose(s);
    break;
  }
  case 4: H5Lcreate_soft("/nowhere", fid, "runs", H5P_DEFAULT, H5P_DEFAULT); break;
  case 5: H5Lcreate_soft("/runs", fid, "runs", H5P_DEFAULT, H5P_DEFAULT); break; /* to itself */
  case 6: H5Lcreate_external("/nonexistent/ilbench-fuzz.h5", "/runs", fid, "runs", H5P_DEFAULT, H5P_DEFAULT); break;
  case 7: H5Lcreate_external(good_path, "/runs", fid, "runs", H5P_DEFAULT, H5P_DEFAULT); break;
  case 8: H5Lcreate_external(fuzz_path, "/runs", fid, "runs", H5P_DEFAULT, H5P_DEFAULT); break; /* to itself */
  case 9: H5Lcreate_hard(fid, "/", fid, "runs", H5P_DEFAULT, H5P_DEFAULT); break;                 /* the root */
  case 10: H5Tcommit2(fid, "runs", H5T_STD_I32LE, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT); break;
  default: /* a real group elsewhere, reached by a soft link; new-style links in creation order */
    gcpl = H5Pcreate(H5P_GROUP_CREATE);
    H5Pset_link_creation_order(gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    H5Pset_link_phase_change(gcpl, 0, 0); /* dense storage from the first link */
    runs = H5Gcreate2(fid, "real_runs", H5P_DEFAULT, gcpl, H5P_DEFAULT);
    H5Pclose(gcpl);
    H5Lcreate_soft("/real_runs", fid, "runs", H5P_DEFAULT, H5P_DEFAULT);
    break;
  }
  return runs;
}

static const char *const root_extra_names[] = {"x0", "x1", "schema ", "Schema", "merged_from", "command_line",
                                               "x2", "a_very_long_attribute_name_that_goes_on_and_on_and_on"};

/* Build the fuzzed file at path with the core driver, written out on close. 0 on success. */
static int build_file(const char *path, prog *g) {
  unsigned flags = u8(g);
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), fcpl = H5Pcreate(H5P_FILE_CREATE);
  H5Pset_fapl_core(fapl, 1 << 16, 1);
  H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG); /* whatever the program left open is closed */
  if (flags & 1) H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
  if (flags & 2) H5Pset_userblock(fcpl, 512);
  if (flags & 4) H5Pset_attr_phase_change(fcpl, 0, 0); /* dense root attributes (latest format only) */
  hid_t fid = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, fapl);
  H5Pclose(fcpl);
  H5Pclose(fapl);
  if (fid < 0) return -1;
  put_attr(fid, "schema", g, IL_H5_SCHEMA, 0, 0);
  put_attr(fid, "schema_version", g, "", IL_H5_SCHEMA_VERSION, 1);
  put_attr(fid, "command_line", g, "ilbench train --out fuzz.h5", 0, 0);
  put_attr(fid, "software_version", g, "fuzz", 0, 0);
  put_attr(fid, "created", g, "2026-01-01T00:00:00Z", 0, 0);
  put_attr(fid, "host", g, "fuzzhost", 0, 0);
  put_attr(fid, "world_size", g, "", 1, 1);
  if (u8(g) & 1) put_attr(fid, "merged_from", g, "a.h5", 0, 0);
  for (unsigned i = 0, n = pick(g, 16); i < n; i++)
    put_attr(fid, root_extra_names[pick(g, sizeof root_extra_names / sizeof root_extra_names[0])], g, "x", 7,
             (int)(u8(g) & 1));
  hid_t runs = put_runs(fid, g, g_good, path);
  if (runs >= 0) {
    for (unsigned i = 0, n = pick(g, 9); i < n; i++) put_run_entry(fid, runs, g, g_good);
    H5Gclose(runs);
  }
  /* extra objects at the root */
  for (unsigned i = 0, n = pick(g, 4); i < n; i++) {
    char name[16];
    snprintf(name, sizeof name, "extra%u", i);
    switch (pick(g, 4)) {
    case 0: {
      hid_t e = H5Gcreate2(fid, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      if (e >= 0) {
        put_table(e, g, IL_TABLE_STEPS, g_good);
        H5Gclose(e);
      }
      break;
    }
    case 1: H5Lcreate_soft("/dangling", fid, name, H5P_DEFAULT, H5P_DEFAULT); break;
    case 2: H5Lcreate_external("/nonexistent.h5", "/", fid, name, H5P_DEFAULT, H5P_DEFAULT); break;
    default: put_table(fid, g, IL_TABLE_EVENTS, g_good); break;
    }
  }
  return H5Fclose(fid) < 0 ? -1 : 0;
}

/* ---- checks ---- */
static int message_names_a_file(void) {
  const char *m = il_error_message();
  return m && m[0] && (strstr(m, g_fuzz) || strstr(m, g_good) || strstr(m, g_out) || strstr(m, g_probe));
}

static uint8_t *slurp(const char *path, size_t *n) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return NULL;
  struct stat sb;
  uint8_t *b = NULL;
  if (fstat(fd, &sb) == 0 && (b = malloc((size_t)sb.st_size + 1))) {
    size_t got = 0;
    ssize_t r;
    while (got < (size_t)sb.st_size && (r = read(fd, b + got, (size_t)sb.st_size - got)) > 0) got += (size_t)r;
    *n = got;
  }
  close(fd);
  return b;
}

static void put_bytes(const char *path, const uint8_t *b, size_t n) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || write(fd, b, n) != (ssize_t)n) abort();
  close(fd);
}

/* Only the files this harness made are in the directory (no temporary or lock files left). */
static void check_dir_clean(int out_may_exist) {
  DIR *d = opendir(g_dir);
  if (!d) abort();
  struct dirent *e;
  while ((e = readdir(d))) {
    const char *n = e->d_name;
    if (!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, "fuzz.h5") || !strcmp(n, "good.h5") ||
        !strcmp(n, "probe.h5"))
      continue;
    if (out_may_exist && !strcmp(n, "out.h5")) continue;
    closedir(d);
    PROP(0, "file '%s' left in %s after a merge", n, g_dir);
  }
  closedir(d);
}

typedef struct names {
  char *v[64];
  int n, overflow;
} names;

static herr_t names_cb(hid_t gid, const char *name, const H5L_info_t *info, void *p) {
  names *l = p;
  (void)gid;
  (void)info;
  if (l->n == 64) {
    l->overflow = 1;
    return 1;
  }
  l->v[l->n++] = strdup(name);
  return 0;
}

static int by_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void free_names(names *l) {
  for (int i = 0; i < l->n; i++) free(l->v[i]);
  l->n = 0;
}

/* The names in path's /runs, as merge lists them; -1 (and none) when they cannot be listed. */
static int list_runs(const char *path, names *l) {
  memset(l, 0, sizeof *l);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) return -1;
  int r = 0;
  htri_t ex = H5Lexists(f, "runs", H5P_DEFAULT);
  if (ex < 0 ||
      (ex > 0 && H5Literate_by_name(f, "runs", H5_INDEX_NAME, H5_ITER_INC, NULL, names_cb, l, H5P_DEFAULT) < 0))
    r = -1;
  H5Fclose(f);
  if (r < 0) free_names(l);
  return r;
}

static ssize_t g_open_baseline; /* the harness's own datatypes */

static void check_no_open_objects(const char *after) {
  ssize_t n = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) - g_open_baseline;
  if (n != 0) {
    hid_t ids[8];
    ssize_t k = H5Fget_obj_ids(H5F_OBJ_ALL, H5F_OBJ_ALL, 8, ids);
    for (ssize_t i = 0; i < k; i++) {
      if (ids[i] == g_str16 || ids[i] == g_reason || ids[i] == g_nanorigin) continue;
      char nm[256] = "";
      H5Iget_name(ids[i], nm, sizeof nm);
      fprintf(stderr, "  open: id type %d name '%s'\n", (int)H5Iget_type(ids[i]), nm);
    }
  }
  PROP(n == 0, "%zd HDF5 objects (files, groups, datasets, attributes, datatypes) still open after %s", n, after);
}

/* One merge and its checks. inputs are g_fuzz and/or g_good. */
static void merge_and_check(const char *const *inputs, int n, int force, int out_exists) {
  uint8_t *old = NULL;
  size_t old_n = 0;
  unlink(g_out);
  if (out_exists) {
    put_bytes(g_out, g_good_bytes, g_good_n);
    old = g_good_bytes;
    old_n = g_good_n;
  }
  il_error_clear();
  il_status st = il_h5_merge(g_out, force, inputs, n);
  said(n == 1 ? "il_h5_merge of 1 input" : "il_h5_merge of 2 inputs", st);
  check_no_open_objects("il_h5_merge");
  if (st != IL_OK) {
    PROP(message_names_a_file(), "merge failed (status %d) with a message that names no file", (int)st);
    struct stat sb;
    if (!out_exists) {
      PROP(stat(g_out, &sb) != 0, "a failed merge left an output behind");
    } else {
      size_t now_n = 0;
      uint8_t *now = slurp(g_out, &now_n);
      PROP(now && now_n == old_n && memcmp(now, old, old_n) == 0,
           "a failed merge (force %d) did not leave the existing output as it was (%s)", force,
           now ? "changed" : "removed");
      free(now);
    }
    check_dir_clean(out_exists);
    il_error_clear();
    return;
  }
  PROP(!out_exists || force, "merge onto an existing output without force succeeded");
  check_dir_clean(1);
  /* exactly the union of the inputs' runs */
  names want = {0}, got;
  for (int i = 0; i < n; i++) {
    names one;
    PROP(list_runs(inputs[i], &one) == 0 && !one.overflow, "merge succeeded but /runs of '%s' cannot be listed",
         inputs[i]);
    for (int k = 0; k < one.n && want.n < 64; k++) want.v[want.n++] = one.v[k];
  }
  PROP(list_runs(g_out, &got) == 0, "merge succeeded but its output's /runs cannot be listed");
  qsort(want.v, (size_t)want.n, sizeof *want.v, by_str);
  qsort(got.v, (size_t)got.n, sizeof *got.v, by_str);
  PROP(want.n == got.n, "merge output has %d runs, its inputs %d", got.n, want.n);
  for (int k = 0; k < want.n; k++) PROP(!strcmp(want.v[k], got.v[k]), "merge output run '%s' vs input run '%s'",
                                        got.v[k], want.v[k]);
  free_names(&want);
  free_names(&got);
  /* the root comes from the first input: when that one takes new runs, so does the merged file */
  if (inputs[0] == g_good || g_appendable) {
    il_h5_file *f = NULL;
    il_error_clear();
    st = il_h5_open(MPI_COMM_SELF, g_out, IL_H5_APPEND, 0, NULL, &f);
    PROP(st == IL_OK && f, "il_h5_open appends to the merge's first input but not to the merged file");
    PROP(il_h5_close(f) == IL_OK, "il_h5_close of a merged file failed");
    check_no_open_objects("il_h5_open of a merged file");
  }
  il_error_clear();
}

/* ---- set up once: MPI, the directory, the good file ---- */
/* LeakSanitizer's interface, present only in sanitized builds: Open MPI's start up leaks by
 * design (it is never finalized here), and those are not ours to report. */
__attribute__((weak)) void __lsan_disable(void);
__attribute__((weak)) void __lsan_enable(void);
/* LeakSanitizer's scan of the dynamic TLS of the libraries Open MPI loads crashes LLVM 14's
 * tracer on Debian 12 ("Tracer caught signal 11" at a DTLS address); do not track it. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "intercept_tls_get_addr=0"; }

static void cleanup(void) {
  unlink(g_fuzz);
  unlink(g_good);
  unlink(g_out);
  unlink(g_probe);
  rmdir(g_dir);
}

/* The checkpoint items the harness's "trainer" keeps: what il_h5_run_resume is asked for. */
#define FZ_CONFIG_HASH 0x1234abcdULL
static float fz_params[8];
static uint64_t fz_rng[4];
static double fz_acc[3];
static void fz_layout(il_h5_ckpt *ck) {
  memset(ck, 0, sizeof *ck);
  ck->config_hash = FZ_CONFIG_HASH;
  const il_ck_item items[] = {{"params", IL_CK_F32, 8, fz_params}, {"shuffle_rng", IL_CK_U64, 4, fz_rng},
                              {"epoch_acc", IL_CK_F64, 3, fz_acc}};
  ck->nitems = 3;
  memcpy(ck->items, items, sizeof items);
}

/* An interrupted run with a real checkpoint, for the fuzzed files to copy and damage. */
static int make_ckpt_run(il_h5_file *f) {
  il_run_info ri;
  il_run_info_init(&ri, "ckpt-run");
  il_run_attr_s(&ri, "solver", "fp");
  il_h5_ckpt ck;
  fz_layout(&ck);
  for (int i = 0; i < 8; i++) fz_params[i] = (float)i / 3;
  fz_rng[0] = 42;
  ck.epoch = 0;
  ck.step = 2;
  ck.global_step = 2;
  il_step_row steps[2];
  for (int i = 0; i < 2; i++) {
    il_step_row_init(&steps[i]);
    steps[i].global_step = steps[i].step = i;
  }
  return il_h5_run_begin(f, &ri) == IL_OK && il_h5_run_checkpoint(f, steps, 2, &ck) == IL_OK &&
         il_h5_run_checkpoint(f, NULL, 0, &ck) == IL_OK && /* both slots filled */
         il_h5_run_finish(f, "interrupted", "SIGTERM (fuzz)", NULL, NULL) == IL_OK;
}

static void make_good_file(void) {
  il_h5_file *f = NULL;
  il_run_info ri;
  il_run_info_init(&ri, "good-run");
  il_run_attr_s(&ri, "solver", "fp");
  il_run_attr_i(&ri, "epochs", 1);
  il_epoch_row e;
  memset(&e, 0, sizeof e);
  e.lr = 0.1;
  e.train_batches = 2;
  e.ranks = 1;
  il_step_row steps[2];
  for (int i = 0; i < 2; i++) {
    il_step_row_init(&steps[i]);
    steps[i].global_step = steps[i].step = i;
    steps[i].loss = 2.0 - i;
  }
  il_event_row ev;
  memset(&ev, 0, sizeof ev);
  snprintf(ev.name, sizeof ev.name, "forward");
  ev.calls = 2;
  if (il_h5_open(MPI_COMM_SELF, g_good, IL_H5_CREATE, 0, NULL, &f) != IL_OK || il_h5_run_begin(f, &ri) != IL_OK ||
      il_h5_run_epoch(f, &e, steps, 2) != IL_OK || il_h5_run_events(f, &ev, 1) != IL_OK ||
      il_h5_run_end(f, "completed", NULL, NULL) != IL_OK || !make_ckpt_run(f) || il_h5_close(f) != IL_OK) {
    fprintf(stderr, "fuzz_results_reader: cannot write the good file %s: %s\n", g_good, il_error_message());
    abort();
  }
  g_good_bytes = slurp(g_good, &g_good_n);
  if (!g_good_bytes) abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  /* Open MPI's own SIGSEGV/SIGBUS handlers would hide the sanitizers' reports */
  setenv("OMPI_MCA_opal_signal", "", 0);
  setenv("OMPI_MCA_mpi_yield_when_idle", "1", 0);
  int inited = 0;
  if (__lsan_disable) __lsan_disable();
  MPI_Initialized(&inited);
  if (!inited && MPI_Init(NULL, NULL) != MPI_SUCCESS) abort();
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* the builder's refused calls are part of the game */
  /* no free lists: a freed HDF5 buffer goes back to malloc, so that LeakSanitizer does not
   * take a stale pointer in a cached block for a reference to leaked memory */
  H5set_free_list_limits(0, 0, 0, 0, 0, 0);
  const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(g_dir, sizeof g_dir, "%s/ilbench-fuzz-results.XXXXXX", base);
  if (!mkdtemp(g_dir)) {
    perror(g_dir);
    abort();
  }
  snprintf(g_fuzz, sizeof g_fuzz, "%s/fuzz.h5", g_dir);
  snprintf(g_good, sizeof g_good, "%s/good.h5", g_dir);
  snprintf(g_out, sizeof g_out, "%s/out.h5", g_dir);
  snprintf(g_probe, sizeof g_probe, "%s/probe.h5", g_dir);
  atexit(cleanup);
  g_str16 = H5Tcopy(H5T_C_S1);
  H5Tset_size(g_str16, IL_STR16_LEN);
  g_reason = H5Tenum_create(H5T_NATIVE_INT32);
  g_nanorigin = H5Tenum_create(H5T_NATIVE_INT32);
#define INS_REASON(nm, val) H5Tenum_insert(g_reason, nm, &(int32_t){val});
#define INS_NAN(nm, val) H5Tenum_insert(g_nanorigin, nm, &(int32_t){val});
  IL_REASON_ENUM(INS_REASON)
  IL_NANORIGIN_ENUM(INS_NAN)
#undef INS_REASON
#undef INS_NAN
  g_open_baseline = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
  make_good_file(); /* also the first MPI-IO open, which loads and sets up Open MPI's io modules */
  if (__lsan_enable) __lsan_enable();
  check_no_open_objects("writing the good file");
  return 0;
}

/* il_h5_open(path, append), the status queries on every run it lists, il_h5_close; 1 when
 * the open succeeded. */
static int append_and_query(const char *path) {
  il_h5_file *f = NULL;
  names l;
  int listed = list_runs(path, &l) == 0; /* before: HDF5 will not open it twice */
  il_error_clear();
  il_status st = il_h5_open(MPI_COMM_SELF, path, IL_H5_APPEND, 0, NULL, &f);
  said("il_h5_open", st);
  if (st != IL_OK) {
    PROP(f == NULL, "il_h5_open failed but returned a file");
    PROP(message_names_a_file(), "il_h5_open failed (status %d) with a message that names no file", (int)st);
    check_no_open_objects("a failed il_h5_open");
    if (listed) free_names(&l);
    il_error_clear();
    return 0;
  }
  PROP(f != NULL, "il_h5_open succeeded without a file");
  char buf[40];
  for (int i = 0; listed && i <= l.n; i++) {
    const char *id = i < l.n ? l.v[i] : "no-such-run";
    memset(buf, 'x', sizeof buf);
    il_error_clear();
    if (il_h5_run_status(f, id, buf, sizeof buf) == IL_OK) {
      PROP(memchr(buf, '\0', sizeof buf) != NULL, "il_h5_run_status of '%s' gave an unterminated status", id);
      PROP(i < l.n || buf[0] == '\0', "il_h5_run_status of a missing run gave '%s'", buf);
    } else {
      PROP(message_names_a_file(), "il_h5_run_status of '%s' failed with a message that names no file", id);
    }
  }
  /* continue every listed run from its checkpoint, as train --resume would, then checkpoint and end it */
  for (int i = 0; listed && i < l.n; i++) {
    if (strlen(l.v[i]) >= sizeof(((il_run_info *)0)->run_id)) continue;
    il_run_info ri;
    il_run_info_init(&ri, l.v[i]);
    il_h5_ckpt ck;
    fz_layout(&ck);
    int have = -1;
    il_error_clear();
    il_status rs = il_h5_run_resume(f, &ri, &ck, &have);
    said("il_h5_run_resume", rs);
    if (rs != IL_OK) {
      PROP(message_names_a_file(), "il_h5_run_resume of '%s' failed with a message that names no file", l.v[i]);
      continue;
    }
    PROP(have == 0 || have == 1, "il_h5_run_resume of '%s' gave have = %d", l.v[i], have);
    PROP(!have || (ck.step >= 0 && ck.global_step >= 0), "il_h5_run_resume of '%s' gave a negative position", l.v[i]);
    il_error_clear();
    (void)il_h5_run_checkpoint(f, NULL, 0, &ck);
    il_error_clear();
    (void)il_h5_run_finish(f, "interrupted", "fuzz", NULL, NULL);
  }
  char id[128];
  memset(id, 'x', sizeof id);
  il_error_clear();
  if (il_h5_find_resumable(f, id, sizeof id) == IL_OK) {
    PROP(memchr(id, '\0', sizeof id) != NULL, "il_h5_find_resumable gave an unterminated name");
    int known = !id[0];
    for (int i = 0; listed && i < l.n; i++) known |= !strncmp(id, l.v[i], sizeof id - 1);
    PROP(!listed || known, "il_h5_find_resumable gave '%s', not a run of the file", id);
  } else {
    PROP(message_names_a_file(), "il_h5_find_resumable failed with a message that names no file");
  }
  if (listed) free_names(&l);
  il_error_clear();
  PROP(il_h5_close(f) == IL_OK, "il_h5_close failed after a successful open");
  check_no_open_objects("il_h5_open, the status queries and il_h5_close");
  il_error_clear();
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096) return 0; /* the program never needs more */
  prog g = {data, size, 0};
  unlink(g_fuzz);
  if (build_file(g_fuzz, &g) != 0) return 0;
  check_no_open_objects("building the file");
  g_verbose = getenv("FUZZ_RESULTS_VERBOSE") != NULL;
  const char *keep = getenv("FUZZ_RESULTS_KEEP"); /* triage: a copy of the built file */
  if (keep) {
    size_t n = 0;
    uint8_t *b = slurp(g_fuzz, &n);
    if (b) put_bytes(keep, b, n);
    free(b);
  }
  /* append to a copy first: appending may add /runs, which would change what merge sees */
  size_t n = 0;
  uint8_t *b = slurp(g_fuzz, &n);
  if (!b) abort();
  put_bytes(g_probe, b, n);
  free(b);
  g_appendable = append_and_query(g_probe);
  unsigned how = u8(&g);
  const char *one[1] = {g_fuzz};
  const char *two[2] = {(how & 1) ? g_good : g_fuzz, (how & 1) ? g_fuzz : g_good};
  merge_and_check(one, 1, 1, 0);
  merge_and_check(two, 2, (how & 2) != 0, (how & 4) != 0);
  unlink(g_out);
  unlink(g_probe);
  return 0;
}
