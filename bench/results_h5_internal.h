/* bench/results_h5_internal.h: helpers shared by results_h5.c (parallel
 * writer) and results_merge.c (serial merge). Not part of the public API. */
#ifndef IL_RESULTS_H5_INTERNAL_H
#define IL_RESULTS_H5_INTERNAL_H

#include <hdf5.h>

#include "il_status.h"

/* HDF5 prints its error stack by default; we turn each failure into an
 * il_status instead. Every public entry point silences the stack on entry and
 * restores the caller's setting on return. */
typedef struct il_h5i_quiet {
  H5E_auto2_t func;
  void *data;
} il_h5i_quiet;
void il_h5i_quiet_begin(il_h5i_quiet *q);
void il_h5i_quiet_end(const il_h5i_quiet *q);

/* Record an HDF5 failure: "results file '<path>': <what> (HDF5: <innermost
 * messages of the HDF5 error stack>)" with status s. Call right after the
 * failing HDF5 call, before any other HDF5 call clears the stack. */
il_status il_h5i_fail(il_status s, const char *path, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
#define IL_H5_FAIL(s, path, ...) il_h5i_fail((s), (path), __FILE__, __LINE__, __VA_ARGS__)

/* Create or replace an attribute on obj (a fixed-length, NUL-terminated
 * string; an int64 scalar; a double scalar). In parallel HDF5 all ranks must
 * call these with identical values. */
il_status il_h5i_set_str_attr(hid_t obj, const char *name, const char *v, const char *path);
il_status il_h5i_set_i64_attr(hid_t obj, const char *name, int64_t v, const char *path);
il_status il_h5i_set_f64_attr(hid_t obj, const char *name, double v, const char *path);

/* Read a string attribute (fixed- or variable-length) into buf (truncated to
 * n-1 characters). *found = 0 and IL_OK when the attribute does not exist. */
il_status il_h5i_get_str_attr(hid_t obj, const char *name, char *buf, size_t n, int *found, const char *path);
/* Read an integer attribute; *found = 0 and IL_OK when it does not exist. */
il_status il_h5i_get_i64_attr(hid_t obj, const char *name, int64_t *v, int *found, const char *path);

/* Read an open file's schema identity: the root must say schema IL_H5_SCHEMA
 * with an integer schema_version, stored in *version. IL_ERR_FORMAT naming the
 * file if not. Does not judge the version. */
il_status il_h5i_read_schema(hid_t fid, const char *path, int64_t *version);

/* Check that an open file's root says schema IL_H5_SCHEMA with major version
 * IL_H5_SCHEMA_VERSION (the one this writer appends to); IL_ERR_FORMAT naming
 * the file and both versions if not. */
il_status il_h5i_check_schema(hid_t fid, const char *path);

/* Current UTC time as ISO 8601, e.g. "2025-01-31T12:00:00Z". */
void il_h5i_now_iso(char buf[32]);

#endif
