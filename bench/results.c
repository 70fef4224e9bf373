/* bench/results.c: building a run's configuration as ordered key/value
 * attributes (il_run_info), and an empty step row. No HDF5 here;
 * results_h5.c writes them. */
#include "results.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* ---- the column tables of results_columns.h as data ---- */

#define IL_COL_DESC(S, name, T, fmt, unit, since, meaning) {#name, IL_COL_##T, fmt, unit, since, meaning, offsetof(S, name)},
#define EPOCH_COL(...) IL_COL_DESC(il_epoch_row, __VA_ARGS__)
#define STEP_COL(...) IL_COL_DESC(il_step_row, __VA_ARGS__)
#define RANK_COL(...) IL_COL_DESC(il_rank_row, __VA_ARGS__)
#define EVENT_COL(...) IL_COL_DESC(il_event_row, __VA_ARGS__)
#define TRACE_COL(...) IL_COL_DESC(il_trace_row, __VA_ARGS__)
static const il_column epoch_cols[] = {IL_EPOCH_COLUMNS(EPOCH_COL)};
static const il_column step_cols[] = {IL_STEP_COLUMNS(STEP_COL)};
static const il_column rank_cols[] = {IL_RANK_COLUMNS(RANK_COL)};
static const il_column event_cols[] = {IL_EVENT_COLUMNS(EVENT_COL)};
static const il_column trace_cols[] = {IL_TRACE_COLUMNS(TRACE_COL)};
#define NCOLS(a) (int)(sizeof a / sizeof a[0])
const il_table_desc il_results_tables[IL_NTABLES] = {
    {"epochs", epoch_cols, NCOLS(epoch_cols), sizeof(il_epoch_row)},
    {"steps", step_cols, NCOLS(step_cols), sizeof(il_step_row)},
    {"ranks", rank_cols, NCOLS(rank_cols), sizeof(il_rank_row)},
    {"events", event_cols, NCOLS(event_cols), sizeof(il_event_row)},
    {"trace", trace_cols, NCOLS(trace_cols), sizeof(il_trace_row)},
};

const char *il_col_enum_name(il_col_type t, int32_t v) {
#define ENUM_CASE(nm, val) if (v == (val)) return nm;
  if (t == IL_COL_REASON) { IL_REASON_ENUM(ENUM_CASE) }
  if (t == IL_COL_NANORIGIN) { IL_NANORIGIN_ENUM(ENUM_CASE) }
#undef ENUM_CASE
  return NULL;
}

void il_logfmt_row(FILE *out, const char *prefix, const il_table_desc *t, const void *row) {
  const char *base = row;
  fputs(prefix ? prefix : "", out);
  for (int i = 0; i < t->ncols; i++) {
    const il_column *c = &t->cols[i];
    const void *p = base + c->offset;
    fprintf(out, "%s%s=", i ? " " : "", c->name);
    switch (c->type) {
    case IL_COL_I32: { int32_t v; memcpy(&v, p, sizeof v); fprintf(out, c->fmt, (int)v); break; }
    case IL_COL_I64: { int64_t v; memcpy(&v, p, sizeof v); fprintf(out, c->fmt, (long long)v); break; }
    case IL_COL_U64: { uint64_t v; memcpy(&v, p, sizeof v); fprintf(out, c->fmt, (unsigned long long)v); break; }
    case IL_COL_F64: { double v; memcpy(&v, p, sizeof v); fprintf(out, c->fmt, v); break; }
    case IL_COL_STR16: fprintf(out, "%.*s", IL_STR16_LEN, (const char *)p); break;
    case IL_COL_REASON:
    case IL_COL_NANORIGIN: {
      int32_t v;
      memcpy(&v, p, sizeof v);
      const char *nm = il_col_enum_name(c->type, v);
      if (nm) fputs(nm, out);
      else fprintf(out, "%d", (int)v);
      break;
    }
    }
  }
  fputc('\n', out);
}

void il_step_row_init(il_step_row *r) {
  memset(r, 0, sizeof *r);
  r->diag_rho_max = r->diag_rho_mean = NAN;
  r->diag_cond = NAN;
  r->diag_grad_cos = r->diag_grad_relerr = NAN;
  r->diag_preact_max = NAN;
  r->nan_origin = IL_NAN_NONE;
  r->nan_iter = -1;
  r->jac_reg = NAN;
}

void il_run_info_init(il_run_info *ri, const char *run_id) {
  memset(ri, 0, sizeof *ri);
  if (run_id) snprintf(ri->run_id, sizeof ri->run_id, "%s", run_id);
}

/* A new slot for `key`, or an error: no room, empty/too long key, or a key already set. */
static il_status new_attr(il_run_info *ri, const char *key, il_attr **out) {
  if (!ri || !key || !key[0]) return IL_ERR(IL_ERR_ARG, "run attribute key is empty");
  if (strlen(key) >= sizeof ri->attrs[0].key)
    return IL_ERR(IL_ERR_ARG, "run attribute key '%s' is too long (at most %zu characters)", key,
                  sizeof ri->attrs[0].key - 1);
  for (int i = 0; i < ri->nattrs; i++)
    if (strcmp(ri->attrs[i].key, key) == 0) return IL_ERR(IL_ERR_ARG, "run attribute '%s' is set twice", key);
  if (ri->nattrs >= IL_RUN_ATTRS_MAX)
    return IL_ERR(IL_ERR_ARG, "too many run attributes (at most %d) when adding '%s'", IL_RUN_ATTRS_MAX, key);
  il_attr *a = &ri->attrs[ri->nattrs];
  memset(a, 0, sizeof *a);
  memcpy(a->key, key, strlen(key) + 1);
  *out = a;
  return IL_OK;
}

il_status il_run_attr_s(il_run_info *ri, const char *key, const char *v) {
  il_attr *a;
  if (!v) v = "";
  if (strlen(v) >= sizeof a->s)
    return IL_ERR(IL_ERR_ARG, "value of run attribute '%s' is too long (%zu characters, at most %zu)", key ? key : "",
                  strlen(v), sizeof a->s - 1);
  IL_CHECK(new_attr(ri, key, &a));
  a->kind = 's';
  memcpy(a->s, v, strlen(v) + 1);
  ri->nattrs++;
  return IL_OK;
}

il_status il_run_attr_d(il_run_info *ri, const char *key, double v) {
  il_attr *a;
  IL_CHECK(new_attr(ri, key, &a));
  a->kind = 'd';
  a->d = v;
  ri->nattrs++;
  return IL_OK;
}

il_status il_run_attr_i(il_run_info *ri, const char *key, int64_t v) {
  il_attr *a;
  IL_CHECK(new_attr(ri, key, &a));
  a->kind = 'i';
  a->i = v;
  ri->nattrs++;
  return IL_OK;
}
