/* bench/results.h: what a run records, independent of the file format.
 * The HDF5 writer (results_h5.c) stores these rows as compound tables; the
 * columns are listed once, in results_columns.h, and documented in
 * analysis/SCHEMA.md (generated from analysis/schema.json). Times are seconds,
 * memory is bytes. */
#ifndef IL_RESULTS_H
#define IL_RESULTS_H

#include <stdint.h>
#include <stdio.h>

#include "il_arena.h"
#include "il_diag.h"
#include "il_status.h"
#include "results_columns.h"

/* The row structs are generated from the column tables in results_columns.h
 * (one field per column, in stored order; the meanings and units are there).
 * Times are seconds, memory bytes. */
#define IL_FIELD_I32(n) int32_t n
#define IL_FIELD_I64(n) int64_t n
#define IL_FIELD_U64(n) uint64_t n
#define IL_FIELD_F64(n) double n
#define IL_FIELD_STR16(n) char n[IL_STR16_LEN]
#define IL_FIELD_REASON(n) int32_t n    /* il_reason */
#define IL_FIELD_NANORIGIN(n) int32_t n /* il_nan_origin */
#define IL_ROW_FIELD(name, T, fmt, unit, since, meaning) IL_FIELD_##T(name);

/* One row per epoch (rank 0's aggregate over the global batch). */
typedef struct il_epoch_row { IL_EPOCH_COLUMNS(IL_ROW_FIELD) } il_epoch_row;

/* One row per training step. Phase times are the max over ranks (the step's critical path). */
typedef struct il_step_row { IL_STEP_COLUMNS(IL_ROW_FIELD) } il_step_row;

/* Values of il_step_row.nan_origin: il_nan_origin in core/il_diag.h. */

/* A step row with nothing measured yet: numbers 0, diagnostics NaN,
 * nan_origin IL_NAN_NONE and nan_iter -1. Fill in what the step measured. */
void il_step_row_init(il_step_row *r);

/* Per-rank totals over a run, written collectively (one row per rank). */
typedef struct il_rank_row { IL_RANK_COLUMNS(IL_ROW_FIELD) } il_rank_row;

/* One row of a run's events table (core/il_events.h, `--log-view`), reduced over ranks. */
typedef struct il_event_row { IL_EVENT_COLUMNS(IL_ROW_FIELD) } il_event_row;

/* One row of a run's trace table (--trace): one checked residual of a traced step's solve. */
typedef struct il_trace_row { IL_TRACE_COLUMNS(IL_ROW_FIELD) } il_trace_row;

/* The tables as data, for code that walks their columns (results_h5.c's types,
 * the logfmt lines, `ilbench schema --json`). */
typedef struct il_table_desc {
  const char *name; /* "epochs", "steps", "ranks", "events", "trace" */
  const il_column *cols;
  int ncols;
  size_t row_size;
} il_table_desc;
enum { IL_TABLE_EPOCHS, IL_TABLE_STEPS, IL_TABLE_RANKS, IL_TABLE_EVENTS, IL_TABLE_TRACE, IL_NTABLES };
extern const il_table_desc il_results_tables[IL_NTABLES];

/* The name of value v of an enum column type (REASON, NANORIGIN), or NULL when v is not one. */
const char *il_col_enum_name(il_col_type t, int32_t v);

/* A row as one logfmt line: "<prefix>name=value ..." for every column, in
 * table order, with the column's format (enum columns print their names). */
void il_logfmt_row(FILE *out, const char *prefix, const il_table_desc *t, const void *row);

/* A run's configuration as ordered key/value attributes (values are stored as
 * strings, doubles or integers according to `kind`). */
typedef struct il_attr {
  char key[48];
  char kind;                        /* 's' string, 'd' double, 'i' integer */
  char s[160];
  double d;
  int64_t i;
} il_attr;

#define IL_RUN_ATTRS_MAX 64
typedef struct il_run_info {
  char run_id[96];
  il_attr attrs[IL_RUN_ATTRS_MAX];
  int nattrs;
} il_run_info;

void il_run_info_init(il_run_info *ri, const char *run_id);
il_status il_run_attr_s(il_run_info *ri, const char *key, const char *v);
il_status il_run_attr_d(il_run_info *ri, const char *key, double v);
il_status il_run_attr_i(il_run_info *ri, const char *key, int64_t v);

#endif
