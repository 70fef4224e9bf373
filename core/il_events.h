/* core/il_events.h: named events with time, calls and FLOPs, as PETSc's
 * -log_view. An event's time and FLOPs are inclusive: everything done between
 * its begin and end, nested events included. FLOPs are counted where the work
 * is done, by the backend's ops (il_backend_ops.flops), and read at both ends.
 * Precision-neutral; recording costs two clock reads and is off (NULL) unless
 * a caller attaches an il_events to the backend instance. */
#ifndef IL_EVENTS_H
#define IL_EVENTS_H

typedef enum il_event_id {
  IL_EV_FWD_SOLVE = 0, /* the forward solver, whole */
  IL_EV_BWD_SOLVE,     /* the backward mode, whole */
  IL_EV_MAP,           /* f(z): the cell's map */
  IL_EV_JAC,           /* the per-sample Jacobian build */
  IL_EV_LU_FACTOR,     /* batched LU factorisation */
  IL_EV_LU_SOLVE,      /* batched LU solves (plain or transposed) */
  IL_EV_JVP,           /* (df/dz) v */
  IL_EV_VJP,           /* (df/dz, df/dx, df/dtheta)^T u */
  IL_EV_VJP2,          /* second-order vjp through the Jacobian (unrolled Newton) */
  IL_EV_HEAD,          /* the model outside the implicit layer: linear layers, softmax, loss, W's --w-norm */
  IL_EV_ALLREDUCE,     /* the gradient allreduce across ranks (with host staging) */
  IL_EV_UPDATE,        /* the SGD update */
  IL_EV_JAC_REG,       /* the Jacobian regulariser at z*: its map and probes, value and gradient */
  IL_EV_N
} il_event_id;

typedef struct il_event_stat {
  long calls;
  double time;  /* seconds, inclusive */
  double flops; /* counted by the backend, inclusive */
} il_event_stat;

typedef struct il_events {
  il_event_stat ev[IL_EV_N];
} il_events;

const char *il_event_name(il_event_id id); /* "fwd_solve", "map", ... */
double il_clock(void);                     /* monotonic seconds */
void il_events_reset(il_events *e);
void il_events_add(il_events *e, il_event_id id, double seconds, double flops);

#endif
