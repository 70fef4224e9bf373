/* bench/stop_signal.c: see stop_signal.h. */
#include "stop_signal.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
  if (g_stop == SIGINT && sig == SIGINT) { /* Ctrl-C twice: do not wait for the step to end */
    signal(sig, SIG_DFL);
    raise(sig);
    return;
  }
  if (!g_stop) g_stop = sig;
}

void il_stop_install(void) {
  static int done;
  if (done) return;
  done = 1;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART; /* file and MPI calls in flight carry on; the flag is read between steps */
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
}

int il_stop_requested(void) { return (int)g_stop; }

const char *il_stop_name(int sig) {
  static char buf[32];
  if (sig == SIGTERM) return "SIGTERM";
  if (sig == SIGINT) return "SIGINT";
  snprintf(buf, sizeof buf, "signal %d", sig);
  return buf;
}
