/* core/il_status.h: status codes and error context, PETSc style.
 * Library code never exits: every fallible call returns il_status, and the
 * first failure records a message with file:line that callers can print. */
#ifndef IL_STATUS_H
#define IL_STATUS_H

#include <stddef.h>

typedef enum il_status {
  IL_OK = 0,
  IL_ERR_ARG,      /* invalid argument or option value */
  IL_ERR_NOMEM,    /* allocation failed or size refused */
  IL_ERR_IO,       /* cannot open/read/write a file */
  IL_ERR_FORMAT,   /* malformed or inconsistent data file */
  IL_ERR_NUMERIC,  /* singular matrix, non-finite where not allowed */
  IL_ERR_UNSUPPORTED,
  IL_ERR_INTERNAL
} il_status;

const char *il_status_str(il_status s);

/* Record an error (printf-style) with its location and return `s`.
 * The message of the first error since il_error_clear() is kept; later
 * calls on the way up append their location as a trace. */
il_status il_error_set(il_status s, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Add a trace line when passing an error upward. */
il_status il_error_trace(il_status s, const char *file, int line);
const char *il_error_message(void); /* "" when none */
const char *il_error_trace_text(void);
void il_error_clear(void);

#define IL_ERR(s, ...) il_error_set((s), __FILE__, __LINE__, __VA_ARGS__)
/* Propagate a failing status with file:line context. */
#define IL_CHECK(call)                                                  \
  do {                                                                  \
    il_status il_chk_s_ = (call);                                       \
    if (il_chk_s_ != IL_OK) return il_error_trace(il_chk_s_, __FILE__, __LINE__); \
  } while (0)
/* Same, but jump to a cleanup label with `st` set. */
#define IL_CHECK_GOTO(st, call, label)                                  \
  do {                                                                  \
    (st) = (call);                                                      \
    if ((st) != IL_OK) { il_error_trace((st), __FILE__, __LINE__); goto label; } \
  } while (0)

#endif
