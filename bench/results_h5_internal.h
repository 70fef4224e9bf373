/* bench/results_h5_internal.h: helpers shared by results_h5.c (the writer),
 * results_resume.c (checkpoints and resume) and results_merge.c (serial
 * merge). Not part of the public API. */
#ifndef IL_RESULTS_H5_INTERNAL_H
#define IL_RESULTS_H5_INTERNAL_H

#include <hdf5.h>
#include <mpi.h>
#include <stdint.h>

#include "il_status.h"
#include "results.h"
#include "results_lock.h"

#define IL_H5_STATUS_LEN 16 /* fixed size of the run `status` attribute */
#define EVENT_NAME_LEN ((size_t)sizeof(((il_event_row *)0)->name)) /* fixed size of events.name */

/* An open results file. HDF5 objects exist on rank 0 only (it alone writes). */
struct il_h5_file {
  MPI_Comm comm;
  int rank, size;
  char *path;      /* rank 0's path, on every rank */
  char *host;      /* rank 0's hostname (rank 0) */
  char *cmdline;   /* rank 0's argv, joined (rank 0) */
  il_results_lock *lock; /* rank 0: the writer lock, held until close */
  hid_t fid, runs; /* file, /runs */
  hid_t t_epoch, t_step, t_rank, t_event;     /* memory (native struct) compound types */
  hid_t tf_epoch, tf_step, tf_rank, tf_event; /* the same, packed, as stored in the file */
  hid_t t_event_name;                         /* events.name: fixed-length NUL-terminated ASCII */
  hid_t t_trace, tf_trace;                    /* the optional trace table (--trace): memory, file */
  hid_t t_reason, t_nanorigin;                /* HDF5 enums over int32: il_reason, il_nan_origin */
  /* the current run (rank 0; run_open between run_begin/resume and run_end) */
  int run_open;
  int storage_failed; /* a write failed for storage reasons (every rank knows) */
  hid_t run, d_epochs, d_steps;
  hid_t d_trace; /* the run's trace table once opened or created (il_h5_run_trace), else -1 */
  char run_id[sizeof(((il_run_info *)0)->run_id)];
};

/* The first failing rank's status and message, on every rank (collective). */
il_status il_h5i_agree(MPI_Comm comm, il_status st);
/* il_h5i_agree for a call that writes: an IL_ERR_IO verdict marks the file storage_failed. */
il_status il_h5i_settle(il_h5_file *f, il_status st);
/* Rank 0: flush the file; close the current run's handles; set its status. */
il_status il_h5i_flush(il_h5_file *f);
void il_h5i_close_run(il_h5_file *f);
il_status il_h5i_set_status(il_h5_file *f, const char *status);
/* Rank 0: IL_ERR_IO naming the file when its filesystem has fewer than need
 * bytes free (plus the writer's reserve when with_reserve). */
il_status il_h5i_space_check(const il_h5_file *f, uint64_t need, int with_reserve);
/* Rank 0: append n rows to table d; append steps rows to the current run and flush. */
il_status il_h5i_append_rows(il_h5_file *f, hid_t d, hid_t mtype, const void *rows, hsize_t n, const char *name);
uint64_t il_h5i_append_need(size_t row_size, int nrows, int chunk_rows);
/* Rank 0: the current run's trace table into f->d_trace, created empty when the run has none. */
il_status il_h5i_open_trace(il_h5_file *f);
il_status il_h5i_run_steps(il_h5_file *f, const il_step_row *steps, int nsteps);
/* The writer's file access: sec2, HDF5's own file locking off. -1 on failure. */
hid_t il_h5i_writer_fapl(void);

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

/* Attribute `name` of n elements of type holding v (a scalar when n = 1): written in place when
 * it exists with that shape and type (an update then rewrites bytes, not the object header),
 * else replaced. */
il_status il_h5i_put_attr(hid_t obj, const char *name, hid_t type, hsize_t n, const void *v, const char *path);
/* The same for a fixed-length, NUL-terminated string, an int64 scalar, a double scalar. */
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
