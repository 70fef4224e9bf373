/* bench/results_resume.c: checkpoints in a run's group and resuming a run
 * from them (analysis/SCHEMA.md, "Checkpoints").
 *
 * Layout: /runs/<id>/checkpoint_0 and checkpoint_1 are two slots, each a group
 * of fixed-size datasets (one per item) with a `digest` attribute each and the
 * slot's `position` (epoch, step, global_step, epochs rows, steps rows),
 * `config_hash` and `digest`. The run's int64 attribute `checkpoint` names the
 * current slot. A new checkpoint overwrites the other slot in place, is
 * flushed, and only then does `checkpoint` point at it (flushed again): a
 * crash at any moment leaves one complete slot, and the digests tell a torn
 * slot from a whole one. Rank 0 does all of it; results_h5.c says why. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "results_h5.h"
#include "results_h5_internal.h"

#define NPOS 5 /* position: epoch, step, global_step, epochs rows, steps rows */

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
  return h;
}
#define FNV0 0xcbf29ce484222325ULL

static hid_t ck_h5type(il_ck_type t) {
  switch (t) {
  case IL_CK_U8: return H5T_NATIVE_UINT8;
  case IL_CK_I64: return H5T_NATIVE_INT64;
  case IL_CK_U64: return H5T_NATIVE_UINT64;
  case IL_CK_F32: return H5T_NATIVE_FLOAT;
  case IL_CK_F64: return H5T_NATIVE_DOUBLE;
  }
  return -1;
}

static size_t ck_size(il_ck_type t) {
  switch (t) {
  case IL_CK_U8: return 1;
  case IL_CK_F32: return 4;
  default: return 8;
  }
}

static uint64_t item_digest(const il_ck_item *it) {
  uint64_t h = fnv(FNV0, it->name, strnlen(it->name, sizeof it->name));
  const int64_t t = it->type, c = (int64_t)it->count;
  h = fnv(h, &t, sizeof t);
  h = fnv(h, &c, sizeof c);
  return fnv(h, it->data, it->count * ck_size(it->type));
}

static uint64_t pos_digest(const int64_t pos[NPOS], uint64_t config_hash) {
  return fnv(fnv(FNV0, pos, NPOS * sizeof *pos), &config_hash, sizeof config_hash);
}

#define put_attr il_h5i_put_attr

/* Read attribute `name` of exactly n elements as type; *found = 0 when absent
 * or of another shape or class (a damaged slot reads as no slot). */
static il_status get_attr(hid_t obj, const char *name, hid_t type, hsize_t n, void *v, int *found, const char *path) {
  il_status st = IL_OK;
  hid_t a = -1, sp = -1, ft = -1;
  *found = 0;
  htri_t ex = H5Aexists(obj, name);
  if (ex < 0) return IL_H5_FAIL(IL_ERR_FORMAT, path, "cannot look up attribute '%s'", name);
  if (ex == 0) return IL_OK;
  if ((a = H5Aopen(obj, name, H5P_DEFAULT)) < 0 || (sp = H5Aget_space(a)) < 0 || (ft = H5Aget_type(a)) < 0) {
    st = IL_H5_FAIL(IL_ERR_FORMAT, path, "cannot open attribute '%s'", name);
    goto out;
  }
  if (H5Sget_simple_extent_npoints(sp) == (hssize_t)n && H5Tget_class(ft) == H5Tget_class(type) &&
      H5Aread(a, type, v) >= 0)
    *found = 1;
out:
  if (ft >= 0) H5Tclose(ft);
  if (sp >= 0) H5Sclose(sp);
  if (a >= 0) H5Aclose(a);
  return st;
}

static il_status table_rows(il_h5_file *f, hid_t d, int64_t *n) {
  hsize_t cur = 0;
  hid_t fs = H5Dget_space(d);
  int ok = fs >= 0 && H5Sget_simple_extent_ndims(fs) == 1 && H5Sget_simple_extent_dims(fs, &cur, NULL) >= 0;
  if (fs >= 0) H5Sclose(fs);
  if (!ok) return IL_H5_FAIL(IL_ERR_FORMAT, f->path, "cannot read the size of a table of run '%s'", f->run_id);
  *n = (int64_t)cur;
  return IL_OK;
}

/* The item's dataset in slot g, created (space allocated now, so that a full
 * disk shows here and not half-way through a later write) when missing or of
 * another type or size. */
static il_status item_dataset(il_h5_file *f, hid_t g, const il_ck_item *it, hid_t *out) {
  const hid_t type = ck_h5type(it->type);
  htri_t ex = H5Lexists(g, it->name, H5P_DEFAULT);
  if (ex < 0) return IL_H5_FAIL(IL_ERR_IO, f->path, "cannot look up checkpoint item '%s'", it->name);
  if (ex > 0) {
    hid_t d = H5Dopen2(g, it->name, H5P_DEFAULT), sp = -1, ft = -1;
    int same = 0;
    if (d >= 0 && (sp = H5Dget_space(d)) >= 0 && (ft = H5Dget_type(d)) >= 0)
      same = H5Sget_simple_extent_npoints(sp) == (hssize_t)it->count && H5Tequal(ft, type) > 0;
    if (ft >= 0) H5Tclose(ft);
    if (sp >= 0) H5Sclose(sp);
    if (same) {
      *out = d;
      return IL_OK;
    }
    if (d >= 0) H5Dclose(d);
    if (H5Ldelete(g, it->name, H5P_DEFAULT) < 0)
      return IL_H5_FAIL(IL_ERR_IO, f->path, "cannot replace checkpoint item '%s'", it->name);
  }
  hsize_t n = it->count;
  hid_t sp = H5Screate_simple(1, &n, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
  il_status st = IL_OK;
  if (sp < 0 || dcpl < 0 || H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY) < 0 ||
      (*out = H5Dcreate2(g, it->name, type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT)) < 0)
    st = IL_H5_FAIL(IL_ERR_IO, f->path, "cannot create checkpoint item '%s' of run '%s'", it->name, f->run_id);
  if (dcpl >= 0) H5Pclose(dcpl);
  if (sp >= 0) H5Sclose(sp);
  return st;
}

static il_status check_items(const il_h5_file *f, const il_h5_ckpt *ck) {
  if (ck->nitems < 0 || ck->nitems > IL_CK_MAX_ITEMS)
    return IL_ERR(IL_ERR_ARG, "results file '%s': bad checkpoint item count %d", f->path, ck->nitems);
  for (int i = 0; i < ck->nitems; i++) {
    const il_ck_item *it = &ck->items[i];
    if (!memchr(it->name, '\0', sizeof it->name) || !it->name[0] || strchr(it->name, '/') ||
        ck_h5type(it->type) < 0 || it->count == 0 || !it->data)
      return IL_ERR(IL_ERR_ARG, "results file '%s': checkpoint item %d is malformed", f->path, i);
  }
  return IL_OK;
}

static il_status open_slot(il_h5_file *f, int s, int create, hid_t *g) {
  char name[32];
  snprintf(name, sizeof name, "checkpoint_%d", s);
  htri_t ex = H5Lexists(f->run, name, H5P_DEFAULT);
  if (ex < 0) return IL_H5_FAIL(IL_ERR_IO, f->path, "cannot look up /runs/%s/%s", f->run_id, name);
  if (ex > 0) {
    H5O_info_t oi;
    if (H5Oget_info_by_name2(f->run, name, &oi, H5O_INFO_BASIC, H5P_DEFAULT) >= 0 && oi.type == H5O_TYPE_GROUP &&
        (*g = H5Gopen2(f->run, name, H5P_DEFAULT)) >= 0)
      return IL_OK;
    if (!create) return IL_ERR(IL_ERR_FORMAT, "results file '%s': /runs/%s/%s is not a group", f->path, f->run_id, name);
    if (H5Ldelete(f->run, name, H5P_DEFAULT) < 0)
      return IL_H5_FAIL(IL_ERR_IO, f->path, "cannot replace /runs/%s/%s", f->run_id, name);
  } else if (!create) {
    *g = -1;
    return IL_OK;
  }
  if ((*g = H5Gcreate2(f->run, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0)
    return IL_H5_FAIL(IL_ERR_IO, f->path, "cannot create /runs/%s/%s", f->run_id, name);
  return IL_OK;
}

static il_status checkpoint_root(il_h5_file *f, const il_step_row *steps, int nsteps, const il_h5_ckpt *ck) {
  if (!f->run_open) return IL_ERR(IL_ERR_ARG, "results file '%s': no run is open for a checkpoint", f->path);
  IL_CHECK(check_items(f, ck));
  if (nsteps < 0 || (nsteps > 0 && !steps))
    return IL_ERR(IL_ERR_ARG, "results file '%s': bad pending step count %d", f->path, nsteps);
  IL_CHECK(il_h5i_run_steps(f, steps, nsteps));
  uint64_t bytes = 64u << 10;
  for (int i = 0; i < ck->nitems; i++) bytes += ck->items[i].count * ck_size(ck->items[i].type);
  IL_CHECK(il_h5i_space_check(f, bytes, 1));
  int64_t cur = -1;
  int found;
  IL_CHECK(get_attr(f->run, "checkpoint", H5T_NATIVE_INT64, 1, &cur, &found, f->path));
  const int s = found && cur == 0 ? 1 : 0;
  hid_t g = -1;
  il_status st = open_slot(f, s, 1, &g);
  for (int i = 0; st == IL_OK && i < ck->nitems; i++) {
    const il_ck_item *it = &ck->items[i];
    hid_t d = -1;
    st = item_dataset(f, g, it, &d);
    if (st == IL_OK && H5Dwrite(d, ck_h5type(it->type), H5S_ALL, H5S_ALL, H5P_DEFAULT, it->data) < 0)
      st = IL_H5_FAIL(IL_ERR_IO, f->path, "cannot write checkpoint item '%s' of run '%s'", it->name, f->run_id);
    const uint64_t dg = item_digest(it);
    if (st == IL_OK) st = put_attr(d, "digest", H5T_NATIVE_UINT64, 1, &dg, f->path);
    if (d >= 0) H5Dclose(d);
  }
  int64_t pos[NPOS] = {ck->epoch, ck->step, ck->global_step, 0, 0};
  if (st == IL_OK) st = table_rows(f, f->d_epochs, &pos[3]);
  if (st == IL_OK) st = table_rows(f, f->d_steps, &pos[4]);
  const uint64_t pd = pos_digest(pos, ck->config_hash);
  if (st == IL_OK) st = put_attr(g, "position", H5T_NATIVE_INT64, NPOS, pos, f->path);
  if (st == IL_OK) st = put_attr(g, "config_hash", H5T_NATIVE_UINT64, 1, &ck->config_hash, f->path);
  if (st == IL_OK) st = put_attr(g, "digest", H5T_NATIVE_UINT64, 1, &pd, f->path);
  if (g >= 0) H5Gclose(g);
  IL_CHECK(st);
  IL_CHECK(il_h5i_flush(f)); /* the slot is whole on disk before anything names it */
  const int64_t now = s;
  IL_CHECK(put_attr(f->run, "checkpoint", H5T_NATIVE_INT64, 1, &now, f->path));
  return il_h5i_flush(f);
}

il_status il_h5_run_checkpoint(il_h5_file *f, const il_step_row *steps, int nsteps, const il_h5_ckpt *ck) {
  if (!f) return IL_ERR(IL_ERR_ARG, "il_h5_run_checkpoint: file is NULL");
  il_h5i_quiet q;
  il_h5i_quiet_begin(&q);
  il_status st = IL_OK;
  if (f->rank == 0) st = ck ? checkpoint_root(f, steps, nsteps, ck) : IL_ERR(IL_ERR_ARG, "checkpoint is NULL");
  st = il_h5i_settle(f, st);
  il_h5i_quiet_end(&q);
  return st;
}

/* ---- status queries ---- */

/* Status of run `id` (rank 0); "" when missing. A run that is not a group is an error. */
static il_status status_root(il_h5_file *f, const char *id, char *buf, size_t n) {
  buf[0] = '\0';
  if (!id[0] || strchr(id, '/')) return IL_OK;
  htri_t ex = H5Lexists(f->runs, id, H5P_DEFAULT);
  if (ex < 0) return IL_H5_FAIL(IL_ERR_FORMAT, f->path, "cannot look up run '%s'", id);
  if (ex == 0) return IL_OK;
  H5O_info_t oi;
  if (H5Oget_info_by_name2(f->runs, id, &oi, H5O_INFO_BASIC, H5P_DEFAULT) < 0 || oi.type != H5O_TYPE_GROUP)
    return IL_ERR(IL_ERR_FORMAT, "results file '%s': /runs/%s is not a group", f->path, id);
  hid_t g = H5Gopen2(f->runs, id, H5P_DEFAULT);
  if (g < 0) return IL_H5_FAIL(IL_ERR_FORMAT, f->path, "cannot open run '%s'", id);
  int found;
  il_status st = il_h5i_get_str_attr(g, "status", buf, n, &found, f->path);
  H5Gclose(g);
  IL_CHECK(st);
  if (!found) snprintf(buf, n, "unknown");
  return IL_OK;
}

static il_status bcast_buf(il_h5_file *f, il_status st, char *buf, size_t n) {
  st = il_h5i_agree(f->comm, st);
  if (st == IL_OK) MPI_Bcast(buf, (int)n, MPI_CHAR, 0, f->comm);
  if (n) buf[n - 1] = '\0';
  return st;
}

il_status il_h5_run_status(il_h5_file *f, const char *run_id, char *buf, size_t n) {
  if (!f || !buf || n == 0 || n > INT_MAX) return IL_ERR(IL_ERR_ARG, "il_h5_run_status: bad arguments");
  il_h5i_quiet q;
  il_h5i_quiet_begin(&q);
  il_status st = f->rank == 0 ? status_root(f, run_id ? run_id : "", buf, n) : IL_OK;
  st = bcast_buf(f, st, buf, n);
  il_h5i_quiet_end(&q);
  return st;
}

typedef struct find_ctx {
  il_h5_file *f;
  char *best;
  size_t n;
  il_status st;
} find_ctx;

static herr_t find_cb(hid_t g, const char *name, const H5L_info_t *info, void *p) {
  (void)g;
  (void)info;
  find_ctx *c = p;
  char status[32];
  /* a damaged run is not a candidate; the others still are */
  if (status_root(c->f, name, status, sizeof status) != IL_OK) {
    il_error_clear();
    return 0;
  }
  if (strcmp(status, "running") == 0 || strcmp(status, "interrupted") == 0) snprintf(c->best, c->n, "%s", name);
  return 0;
}

il_status il_h5_find_resumable(il_h5_file *f, char *buf, size_t n) {
  if (!f || !buf || n == 0 || n > INT_MAX) return IL_ERR(IL_ERR_ARG, "il_h5_find_resumable: bad arguments");
  il_h5i_quiet q;
  il_h5i_quiet_begin(&q);
  il_status st = IL_OK;
  buf[0] = '\0';
  if (f->rank == 0) {
    find_ctx c = {f, buf, n, IL_OK};
    hsize_t idx = 0;
    if (H5Literate(f->runs, H5_INDEX_NAME, H5_ITER_INC, &idx, find_cb, &c) < 0)
      st = IL_H5_FAIL(IL_ERR_FORMAT, f->path, "cannot list /runs");
  }
  st = bcast_buf(f, st, buf, n);
  il_h5i_quiet_end(&q);
  return st;
}

/* ---- resume ---- */

/* The first few configuration attributes that differ from ri, as "k=v there, w now; ...". */
static il_status compare_config(il_h5_file *f, const il_run_info *ri) {
  char diff[768] = "";
  int ndiff = 0;
  for (int i = 0; i < ri->nattrs; i++) {
    const il_attr *a = &ri->attrs[i];
    char was[192] = "", now[192] = "";
    int found = 0, same = 0;
    if (a->kind == 's') {
      IL_CHECK(il_h5i_get_str_attr(f->run, a->key, was, sizeof was, &found, f->path));
      snprintf(now, sizeof now, "%s", a->s);
      same = found && strcmp(was, a->s) == 0;
    } else if (a->kind == 'i') {
      int64_t v = 0;
      il_status s = il_h5i_get_i64_attr(f->run, a->key, &v, &found, f->path);
      if (s != IL_OK) il_error_clear(), found = 0;
      if (found) snprintf(was, sizeof was, "%lld", (long long)v);
      snprintf(now, sizeof now, "%lld", (long long)a->i);
      same = found && v == a->i;
    } else {
      double v = 0;
      found = 0;
      get_attr(f->run, a->key, H5T_NATIVE_DOUBLE, 1, &v, &found, f->path);
      if (found) snprintf(was, sizeof was, "%.17g", v);
      snprintf(now, sizeof now, "%.17g", a->d);
      same = found && memcmp(&v, &a->d, sizeof v) == 0;
    }
    if (same) continue;
    if (ndiff++ < 3) {
      size_t used = strlen(diff);
      snprintf(diff + used, sizeof diff - used, "%s%s=%s there, %s now", used ? "; " : "", a->key,
               found ? was : "(absent)", now);
    }
  }
  if (ndiff)
    return IL_ERR(IL_ERR_ARG, "results file '%s': run '%s' was started with another configuration (%s%s); resume it "
                  "with the options it was started with", f->path, ri->run_id, diff, ndiff > 3 ? "; ..." : "");
  return IL_OK;
}

/* Read slot s into ck's buffers (rank 0); *ok = 0 when it is missing, torn or of other items. */
static il_status read_slot(il_h5_file *f, int s, il_h5_ckpt *ck, int64_t pos[NPOS], uint64_t *cfg, int *ok,
                           char *why, size_t whycap) {
  *ok = 0;
  hid_t g = -1;
  IL_CHECK(open_slot(f, s, 0, &g));
  if (g < 0) {
    snprintf(why, whycap, "slot %d is missing", s);
    return IL_OK;
  }
  int found_pos, found_cfg, found_dg;
  uint64_t dg = 0;
  il_status st = get_attr(g, "position", H5T_NATIVE_INT64, NPOS, pos, &found_pos, f->path);
  if (st == IL_OK) st = get_attr(g, "config_hash", H5T_NATIVE_UINT64, 1, cfg, &found_cfg, f->path);
  if (st == IL_OK) st = get_attr(g, "digest", H5T_NATIVE_UINT64, 1, &dg, &found_dg, f->path);
  if (st != IL_OK || !found_pos || !found_cfg || !found_dg || pos_digest(pos, *cfg) != dg) {
    snprintf(why, whycap, "slot %d's position is torn", s);
    goto out;
  }
  hsize_t nobj = 0;
  H5G_info_t gi;
  if (H5Gget_info(g, &gi) < 0) goto out;
  nobj = gi.nlinks;
  if (nobj != (hsize_t)ck->nitems) {
    snprintf(why, whycap, "slot %d holds %llu items, this ilbench keeps %d", s, (unsigned long long)nobj, ck->nitems);
    goto out;
  }
  for (int i = 0; i < ck->nitems; i++) {
    il_ck_item *it = &ck->items[i];
    hid_t d = -1, sp = -1, ft = -1;
    int good = 0, fdg = 0;
    uint64_t idg = 0;
    if (H5Lexists(g, it->name, H5P_DEFAULT) > 0 && (d = H5Dopen2(g, it->name, H5P_DEFAULT)) >= 0 &&
        (sp = H5Dget_space(d)) >= 0 && (ft = H5Dget_type(d)) >= 0 &&
        H5Sget_simple_extent_npoints(sp) == (hssize_t)it->count && H5Tequal(ft, ck_h5type(it->type)) > 0 &&
        H5Dread(d, ck_h5type(it->type), H5S_ALL, H5S_ALL, H5P_DEFAULT, it->data) >= 0 &&
        get_attr(d, "digest", H5T_NATIVE_UINT64, 1, &idg, &fdg, f->path) == IL_OK && fdg && idg == item_digest(it))
      good = 1;
    if (ft >= 0) H5Tclose(ft);
    if (sp >= 0) H5Sclose(sp);
    if (d >= 0) H5Dclose(d);
    if (!good) {
      il_error_clear();
      snprintf(why, whycap, "slot %d's item '%s' is missing, of another size or torn", s, it->name);
      goto out;
    }
  }
  *ok = 1;
out:
  H5Gclose(g);
  return st;
}

static il_status truncate_table(il_h5_file *f, hid_t d, int64_t rows, const char *name) {
  int64_t cur = 0;
  IL_CHECK(table_rows(f, d, &cur));
  if (rows > cur)
    return IL_ERR(IL_ERR_FORMAT, "results file '%s': run '%s': the checkpoint needs %lld %s rows, the table has %lld",
                  f->path, f->run_id, (long long)rows, name, (long long)cur);
  hsize_t n = (hsize_t)rows;
  if (rows < cur && H5Dset_extent(d, &n) < 0)
    return IL_H5_FAIL(IL_ERR_IO, f->path, "cannot cut /runs/%s/%s back to %lld rows", f->run_id, name, (long long)rows);
  return IL_OK;
}

/* The optional trace table (--trace) keeps the rows of the steps before global step gs: rows are
 * appended in step order, so the rows to keep are a prefix. */
static il_status cut_trace(il_h5_file *f, int64_t gs) {
  htri_t ex = H5Lexists(f->run, "trace", H5P_DEFAULT);
  if (ex < 0) return IL_H5_FAIL(IL_ERR_IO, f->path, "cannot look up /runs/%s/trace", f->run_id);
  if (ex == 0) return IL_OK;
  IL_CHECK(il_h5i_open_trace(f));
  int64_t rows = 0;
  IL_CHECK(table_rows(f, f->d_trace, &rows));
  if (rows == 0) return IL_OK;
  int32_t *g = malloc((size_t)rows * sizeof *g);
  if (!g) return IL_ERR(IL_ERR_NOMEM, "results file '%s': no memory to read %lld trace rows", f->path, (long long)rows);
  il_status st = IL_OK;
  hid_t mt = H5Tcreate(H5T_COMPOUND, sizeof *g);
  if (mt < 0 || H5Tinsert(mt, "global_step", 0, H5T_NATIVE_INT32) < 0 ||
      H5Dread(f->d_trace, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, g) < 0)
    st = IL_H5_FAIL(IL_ERR_FORMAT, f->path, "cannot read /runs/%s/trace's global_step", f->run_id);
  if (mt >= 0) H5Tclose(mt);
  int64_t keep = 0;
  while (st == IL_OK && keep < rows && g[keep] < gs) keep++;
  for (int64_t i = keep; st == IL_OK && i < rows; i++)
    if (g[i] < gs)
      st = IL_ERR(IL_ERR_FORMAT, "results file '%s': run '%s': trace rows are not in step order (row %lld has "
                  "global_step %d after one of %d)", f->path, f->run_id, (long long)i, (int)g[i], (int)g[keep]);
  free(g);
  IL_CHECK(st);
  hsize_t n = (hsize_t)keep;
  if (keep < rows && H5Dset_extent(f->d_trace, &n) < 0)
    return IL_H5_FAIL(IL_ERR_IO, f->path, "cannot cut /runs/%s/trace back to %lld rows", f->run_id, (long long)keep);
  return IL_OK;
}

static il_status drop_if_exists(il_h5_file *f, const char *name, int attr) {
  htri_t ex = attr ? H5Aexists(f->run, name) : H5Lexists(f->run, name, H5P_DEFAULT);
  if (ex < 0) return IL_H5_FAIL(IL_ERR_IO, f->path, "cannot look up '%s' in run '%s'", name, f->run_id);
  if (ex > 0 && (attr ? H5Adelete(f->run, name) : H5Ldelete(f->run, name, H5P_DEFAULT)) < 0)
    return IL_H5_FAIL(IL_ERR_IO, f->path, "cannot drop '%s' from run '%s'", name, f->run_id);
  return IL_OK;
}

static il_status open_table(il_h5_file *f, const char *name, hid_t *d) {
  if (H5Lexists(f->run, name, H5P_DEFAULT) <= 0 || (*d = H5Dopen2(f->run, name, H5P_DEFAULT)) < 0)
    return IL_ERR(IL_ERR_FORMAT, "results file '%s': run '%s' has no %s table to continue", f->path, f->run_id, name);
  return IL_OK;
}

static il_status resume_root(il_h5_file *f, const il_run_info *ri, il_h5_ckpt *ck, int *have) {
  char status[32];
  *have = 0;
  if (f->run_open) return IL_ERR(IL_ERR_ARG, "results file '%s': run '%s' is still open", f->path, f->run_id);
  IL_CHECK(check_items(f, ck));
  IL_CHECK(status_root(f, ri->run_id, status, sizeof status));
  if (!status[0]) return IL_ERR(IL_ERR_ARG, "results file '%s' has no run '%s' to resume", f->path, ri->run_id);
  if (strcmp(status, "running") != 0 && strcmp(status, "interrupted") != 0)
    return IL_ERR(IL_ERR_ARG, "results file '%s': run '%s' is %s, not running or interrupted: nothing to resume",
                  f->path, ri->run_id, status);
  IL_CHECK(il_h5i_space_check(f, 64u << 10, 1));
  snprintf(f->run_id, sizeof f->run_id, "%s", ri->run_id);
  if ((f->run = H5Gopen2(f->runs, ri->run_id, H5P_DEFAULT)) < 0)
    return IL_H5_FAIL(IL_ERR_FORMAT, f->path, "cannot open run '%s'", ri->run_id);
  IL_CHECK(compare_config(f, ri));
  IL_CHECK(open_table(f, "epochs", &f->d_epochs));
  IL_CHECK(open_table(f, "steps", &f->d_steps));
  int64_t cur = -1, pos[NPOS] = {0, 0, 0, 0, 0};
  int found;
  IL_CHECK(get_attr(f->run, "checkpoint", H5T_NATIVE_INT64, 1, &cur, &found, f->path));
  if (found && (cur == 0 || cur == 1)) {
    char why[2][160] = {"", ""};
    uint64_t cfg = 0;
    for (int k = 0; k < 2 && !*have; k++) { /* the current slot, else the other (a torn update) */
      const int s = k == 0 ? (int)cur : 1 - (int)cur;
      IL_CHECK(read_slot(f, s, ck, pos, &cfg, have, why[k], sizeof why[k]));
    }
    if (!*have)
      return IL_ERR(IL_ERR_FORMAT, "results file '%s': run '%s' has no usable checkpoint (%s; %s)", f->path,
                    ri->run_id, why[0], why[1]);
    if (cfg != ck->config_hash)
      return IL_ERR(IL_ERR_ARG, "results file '%s': run '%s''s checkpoint has configuration hash %016llx, these "
                    "options give %016llx; resume it with the options it was started with",
                    f->path, ri->run_id, (unsigned long long)cfg, (unsigned long long)ck->config_hash);
    ck->epoch = pos[0];
    ck->step = pos[1];
    ck->global_step = pos[2];
  } else {
    ck->epoch = ck->step = ck->global_step = 0;
  }
  IL_CHECK(truncate_table(f, f->d_epochs, pos[3], "epochs"));
  IL_CHECK(truncate_table(f, f->d_steps, pos[4], "steps"));
  IL_CHECK(cut_trace(f, pos[2]));
  static const char *const ends[] = {"finished", "reason", "peak_bytes_total"};
  for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) IL_CHECK(drop_if_exists(f, ends[i], 1));
  for (int c = 0; c < IL_MEM_NCAT; c++) {
    char name[64];
    snprintf(name, sizeof name, "peak_bytes_%s", il_mem_category_name((il_mem_category)c));
    IL_CHECK(drop_if_exists(f, name, 1));
  }
  IL_CHECK(drop_if_exists(f, "ranks", 0));
  IL_CHECK(drop_if_exists(f, "events", 0));
  int64_t resumes = 0;
  IL_CHECK(get_attr(f->run, "resumes", H5T_NATIVE_INT64, 1, &resumes, &found, f->path));
  resumes = found ? resumes + 1 : 1;
  IL_CHECK(put_attr(f->run, "resumes", H5T_NATIVE_INT64, 1, &resumes, f->path));
  IL_CHECK(il_h5i_set_status(f, "running"));
  IL_CHECK(il_h5i_flush(f));
  f->run_open = 1;
  return IL_OK;
}

il_status il_h5_run_resume(il_h5_file *f, const il_run_info *ri, il_h5_ckpt *ck, int *have) {
  if (!f || !ck || !have) return IL_ERR(IL_ERR_ARG, "il_h5_run_resume: bad arguments");
  il_h5i_quiet q;
  il_h5i_quiet_begin(&q);
  il_status st = IL_OK;
  *have = 0;
  if (f->rank == 0) {
    st = ri ? resume_root(f, ri, ck, have) : IL_ERR(IL_ERR_ARG, "results file '%s': no run info on rank 0", f->path);
    if (st != IL_OK) il_h5i_close_run(f);
  }
  st = il_h5i_settle(f, st);
  if (st == IL_OK) {
    int64_t pos[4] = {*have, ck->epoch, ck->step, ck->global_step};
    MPI_Bcast(pos, 4, MPI_INT64_T, 0, f->comm);
    *have = (int)pos[0];
    ck->epoch = pos[1];
    ck->step = pos[2];
    ck->global_step = pos[3];
    for (int i = 0; *have && i < ck->nitems; i++) { /* in pieces below INT_MAX bytes */
      const size_t bytes = ck->items[i].count * ck_size(ck->items[i].type);
      for (size_t off = 0; off < bytes; off += (size_t)1 << 30) {
        const size_t len = bytes - off < ((size_t)1 << 30) ? bytes - off : (size_t)1 << 30;
        MPI_Bcast((char *)ck->items[i].data + off, (int)len, MPI_BYTE, 0, f->comm);
      }
    }
  }
  il_h5i_quiet_end(&q);
  return st;
}
