/* distributed/il_backend_scalapack.h: the `scalapack` backend (il_backend_scalapack.c),
 * compiled once per precision. It is created like any backend (il_backend_create)
 * with il_backend_options.grid pointing at an il_grid (il_grid.h); without one it
 * runs on a 1x1 BLACS grid of the calling rank alone. */
#ifndef IL_BACKEND_SCALAPACK_H
#define IL_BACKEND_SCALAPACK_H

#include "il_backend.h"

#define il_backend_scalapack_ops IL_P(il_backend_scalapack_ops)
#define il_scalapack_comm_seconds IL_P(il_scalapack_comm_seconds)
#define il_scalapack_register IL_P(il_scalapack_register)
extern const il_backend_ops il_backend_scalapack_ops;
/* Seconds this instance spent in its own MPI calls (solution gathers, norm row sums); 0 for
 * another backend. ScaLAPACK's internal messages are not in it. */
double il_scalapack_comm_seconds(const il_backend *be);
/* Add the backend to core's registry (idempotent). */
il_status il_scalapack_register(void);

#endif
