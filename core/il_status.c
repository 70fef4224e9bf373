/* core/il_status.c: the error message and trace of the current failure.
 * Thread-local so that concurrent callers (OpenMP, future threads) do not mix messages. */
#include "il_status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char g_msg[1024];
static _Thread_local char g_trace[2048];

const char *il_status_str(il_status s) {
  switch (s) {
    case IL_OK: return "ok";
    case IL_ERR_ARG: return "invalid argument";
    case IL_ERR_NOMEM: return "out of memory";
    case IL_ERR_IO: return "I/O error";
    case IL_ERR_FORMAT: return "bad data format";
    case IL_ERR_NUMERIC: return "numerical failure";
    case IL_ERR_UNSUPPORTED: return "unsupported";
    case IL_ERR_INTERNAL: return "internal error";
  }
  return "unknown status";
}

static void append_trace(const char *file, int line) {
  size_t used = strlen(g_trace);
  if (used + 2 >= sizeof g_trace) return;
  snprintf(g_trace + used, sizeof g_trace - used, "  at %s:%d\n", file, line);
}

il_status il_error_set(il_status s, const char *file, int line, const char *fmt, ...) {
  if (g_msg[0] == '\0') { /* keep the root cause, not a later symptom */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
    g_trace[0] = '\0';
  }
  append_trace(file, line);
  return s;
}

il_status il_error_trace(il_status s, const char *file, int line) {
  if (g_msg[0] == '\0') snprintf(g_msg, sizeof g_msg, "%s", il_status_str(s));
  append_trace(file, line);
  return s;
}

const char *il_error_message(void) { return g_msg; }
const char *il_error_trace_text(void) { return g_trace; }
void il_error_clear(void) { g_msg[0] = '\0'; g_trace[0] = '\0'; }
