/* core/il_events.c: see il_events.h. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200112L /* clock_gettime */
#endif
#include "il_events.h"

#include <string.h>
#include <time.h>

const char *il_event_name(il_event_id id) {
  static const char *names[IL_EV_N] = {"fwd_solve", "bwd_solve", "map", "jacobian", "lu_factor", "lu_solve",
                                       "jvp", "vjp", "vjp2", "head", "allreduce", "update",
                                       "jac_reg"};
  return (id >= 0 && id < IL_EV_N) ? names[id] : "unknown";
}

double il_clock(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void il_events_reset(il_events *e) { memset(e, 0, sizeof *e); }

void il_events_add(il_events *e, il_event_id id, double seconds, double flops) {
  if (!e || id < 0 || id >= IL_EV_N) return;
  e->ev[id].calls++;
  e->ev[id].time += seconds;
  e->ev[id].flops += flops;
}
