/* distributed/il_grid.h: model-parallel process grids (--grid PRxPC).
 * The world is cut into D = size / (PR PC) groups of PR PC consecutive ranks;
 * each group is one BLACS grid (row-major ranks) built on its own
 * sub-communicator, and the ranks at the same position of every group form a
 * data-parallel "peers" communicator, across which gradients are summed as
 * they are across ranks without a grid. 1x1 is the plain data-parallel run:
 * every rank is its own group and the peers are the whole world. */
#ifndef IL_GRID_H
#define IL_GRID_H

#include <mpi.h>

#include "il_dist.h"
#include "il_status.h"

#define IL_GRID_NB_DEFAULT 64
#define IL_GRID_MAX 4096 /* PR, PC and PR PC at most */

typedef struct il_grid {
  int pr, pc, nb;       /* grid shape and block size (MB = NB: p?getrf needs it) */
  int D, group, pos;    /* data-parallel groups, this rank's group, its position in the group */
  int myrow, mycol;     /* BLACS coordinates (pos = myrow pc + mycol) */
  int ctxt;             /* BLACS context, -1 for 1x1 (no BLACS grid is built) */
  int sys_handle;       /* BLACS system handle of grid_comm, -1 when none */
  il_dist grid;         /* the ranks of this rank's grid */
  il_dist peers;        /* the ranks at the same position of every group */
} il_grid;

/* "PRxPC" (e.g. "2x2") into *pr, *pc; errors name --grid and the form. Pure. */
il_status il_grid_parse(const char *text, int *pr, int *pc);
/* The refusals that need only the world size: zero, larger than the world, not dividing it. */
il_status il_grid_check(int world, int pr, int pc);
/* Collective over comm: every rank builds its group's communicators and (pr pc > 1) its BLACS grid.
 * On an error nothing is left allocated. */
il_status il_grid_create(MPI_Comm comm, int pr, int pc, int nb, il_grid *g);
/* Collective: gridexit, the system handle, the communicators. Safe on a zeroed or freed grid. */
void il_grid_free(il_grid *g);
/* Register distributed/'s backends (scalapack, both precisions) in core's registry; idempotent. */
il_status il_grid_register_backends(void);
/* "2x2 nb 64 (D 1, context 2x2)" for logs, info and results. */
void il_grid_describe(const il_grid *g, char *buf, size_t cap);

#endif
