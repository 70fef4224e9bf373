/* bench/results_merge.c: merge results files (serial, one process).
 * Every input is checked (schema name and major version, run ids unique over
 * all inputs) before the output is created, so a refused merge writes nothing.
 *
 * Versions: the merge copies run groups verbatim and the first input's root
 * attributes, so merging inputs that all have one major version is safe for
 * any version this program knows (IL_H5_SCHEMA_VERSION_OLDEST..
 * IL_H5_SCHEMA_VERSION): the output is a file of that version. Inputs of
 * different major versions are refused: the output's root would claim one
 * version while some of its runs had another's tables. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "results_h5.h"
#include "results_h5_internal.h"

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
    int is_vlen = 0;
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
    is_vlen = H5Tdetect_class(t, H5T_VLEN) > 0 || H5Tis_variable_str(t) > 0;
    if (np < 0 || ts == 0 || !(buf = calloc((size_t)(np > 0 ? np : 1), ts))) {
      st = IL_ERR(IL_ERR_NOMEM, "results file '%s': cannot buffer root attribute '%s'", src_path, name);
      goto next;
    }
    if (H5Aread(a, t, buf) < 0) {
      is_vlen = 0; /* nothing to reclaim */
      st = IL_H5_FAIL(IL_ERR_FORMAT, src_path, "cannot read root attribute '%s'", name);
      goto next;
    }
    if ((na = H5Acreate2(dst, name, t, sp, H5P_DEFAULT, H5P_DEFAULT)) < 0 || H5Awrite(na, t, buf) < 0)
      st = IL_H5_FAIL(IL_ERR_IO, dst_path, "cannot write root attribute '%s'", name);
  next:
    if (buf && is_vlen) H5Dvlen_reclaim(t, sp, H5P_DEFAULT, buf);
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

static char *merge_command_line(const char *out_path, const char *const *inputs, int n, const char *first_cmd) {
  size_t len = strlen(out_path) + strlen(first_cmd) + 128;
  for (int i = 0; i < n; i++) len += strlen(inputs[i]) + 1;
  char *s = malloc(len);
  if (!s) return NULL;
  size_t off = (size_t)snprintf(s, len, "merge of %d results file%s:", n, n == 1 ? "" : "s");
  for (int i = 0; i < n; i++) off += (size_t)snprintf(s + off, len - off, " %s", inputs[i]);
  snprintf(s + off, len - off, " -> %s (command line of the first input: %s)", out_path, first_cmd);
  return s;
}

il_status il_h5_merge(const char *out_path, int force, const char *const *inputs, int ninputs) {
  if (!out_path || !out_path[0]) return IL_ERR(IL_ERR_ARG, "merge: output path is empty");
  if (!inputs || ninputs < 1) return IL_ERR(IL_ERR_ARG, "merge: no input files");
  for (int i = 0; i < ninputs; i++)
    if (!inputs[i] || !inputs[i][0]) return IL_ERR(IL_ERR_ARG, "merge: input %d has an empty path", i + 1);

  il_status st = IL_OK;
  il_h5i_quiet q;
  il_h5i_quiet_begin(&q);
  hid_t *fids = malloc((size_t)ninputs * sizeof *fids);
  run_list runs = {0};
  hid_t out = -1, out_runs = -1;
  int created = 0;
  int64_t first_ver = 0; /* the first input's major version; all inputs must match it */
  char *cmd = NULL, *first_cmd = NULL;
  if (!fids) {
    st = IL_ERR(IL_ERR_NOMEM, "merge: out of memory");
    goto done;
  }
  for (int i = 0; i < ninputs; i++) fids[i] = -1;

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
    if ((fids[i] = H5Fopen(inputs[i], H5F_ACC_RDONLY, H5P_DEFAULT)) < 0) {
      st = IL_H5_FAIL(IL_ERR_IO, inputs[i], "cannot open the file");
      goto done;
    }
    int64_t ver = 0;
    IL_CHECK_GOTO(st, il_h5i_read_schema(fids[i], inputs[i], &ver), done);
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
    htri_t ex = H5Lexists(fids[i], "runs", H5P_DEFAULT);
    if (ex < 0) {
      st = IL_H5_FAIL(IL_ERR_FORMAT, inputs[i], "cannot look up group /runs");
      goto done;
    }
    if (ex == 0) continue; /* no runs */
    runs.input = i;
    if (H5Literate_by_name(fids[i], "runs", H5_INDEX_NAME, H5_ITER_INC, NULL, collect_cb, &runs, H5P_DEFAULT) < 0) {
      if (runs.nomem)
        st = IL_ERR(IL_ERR_NOMEM, "merge: out of memory listing the runs of '%s'", inputs[i]);
      else
        st = IL_H5_FAIL(IL_ERR_FORMAT, inputs[i], "cannot list group /runs");
      goto done;
    }
  }
  if (runs.n) qsort(runs.v, runs.n, sizeof *runs.v, cmp_run);
  for (size_t k = 1; k < runs.n; k++)
    if (strcmp(runs.v[k - 1].name, runs.v[k].name) == 0) {
      st = IL_ERR(IL_ERR_ARG, "merge: run '%s' is in both '%s' and '%s'; run ids must be unique", runs.v[k].name,
                  inputs[runs.v[k - 1].input], inputs[runs.v[k].input]);
      goto done;
    }

  /* Write the output. */
  if ((out = H5Fcreate(out_path, force ? H5F_ACC_TRUNC : H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT)) < 0) {
    st = IL_H5_FAIL(IL_ERR_IO, out_path, "cannot create the file");
    goto done;
  }
  created = 1;
  static const char *const skip[] = {"command_line", "merged_from", NULL};
  IL_CHECK_GOTO(st, copy_root_attrs(fids[0], out, inputs[0], out_path, skip), done);
  first_cmd = malloc(4096);
  int found = 0;
  if (!first_cmd) {
    st = IL_ERR(IL_ERR_NOMEM, "merge: out of memory");
    goto done;
  }
  IL_CHECK_GOTO(st, il_h5i_get_str_attr(fids[0], "command_line", first_cmd, 4096, &found, inputs[0]), done);
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
  for (size_t k = 0; k < runs.n; k++) {
    hid_t src = H5Gopen2(fids[runs.v[k].input], "runs", H5P_DEFAULT);
    herr_t r = src < 0 ? -1 : H5Ocopy(src, runs.v[k].name, out_runs, runs.v[k].name, H5P_DEFAULT, H5P_DEFAULT);
    if (src >= 0) H5Gclose(src);
    if (r < 0) {
      st = IL_H5_FAIL(IL_ERR_IO, out_path, "cannot copy run '%s' from '%s'", runs.v[k].name,
                      inputs[runs.v[k].input]);
      goto done;
    }
  }
  if (H5Fflush(out, H5F_SCOPE_GLOBAL) < 0) st = IL_H5_FAIL(IL_ERR_IO, out_path, "cannot flush");

done:
  if (out_runs >= 0) H5Gclose(out_runs);
  if (out >= 0 && H5Fclose(out) < 0 && st == IL_OK) st = IL_H5_FAIL(IL_ERR_IO, out_path, "cannot close the file");
  if (created && st != IL_OK) unlink(out_path); /* no half-merged output */
  for (int i = 0; fids && i < ninputs; i++)
    if (fids[i] >= 0) H5Fclose(fids[i]);
  for (size_t k = 0; k < runs.n; k++) free(runs.v[k].name);
  free(runs.v);
  free(fids);
  free(cmd);
  free(first_cmd);
  il_h5i_quiet_end(&q);
  return st;
}
