/* distributed/il_grid.c: see il_grid.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "il_grid.h"
#include "il_scalapack.h"

il_status il_grid_parse(const char *text, int *pr, int *pc) {
  *pr = *pc = 0;
  if (!text || !*text) return IL_ERR(IL_ERR_ARG, "--grid: empty (expected PRxPC, e.g. 1x2)");
  char *end;
  long a = strtol(text, &end, 10);
  if (end == text || (*end != 'x' && *end != 'X'))
    return IL_ERR(IL_ERR_ARG, "--grid: '%s' is not PRxPC (e.g. 1x1, 1x2, 2x2)", text);
  const char *q = end + 1;
  long b = strtol(q, &end, 10);
  if (end == q || *end || *text == '-' || *text == '+' || *q == '-' || *q == '+')
    return IL_ERR(IL_ERR_ARG, "--grid: '%s' is not PRxPC (e.g. 1x1, 1x2, 2x2)", text);
  if (a < 1 || b < 1) return IL_ERR(IL_ERR_ARG, "--grid: '%s' has a zero dimension (PR and PC must be >= 1)", text);
  if (a > IL_GRID_MAX || b > IL_GRID_MAX || a * b > IL_GRID_MAX)
    return IL_ERR(IL_ERR_ARG, "--grid: '%s' has more than %d ranks", text, IL_GRID_MAX);
  *pr = (int)a;
  *pc = (int)b;
  return IL_OK;
}

il_status il_grid_check(int world, int pr, int pc) {
  if (pr < 1 || pc < 1) return IL_ERR(IL_ERR_ARG, "--grid %dx%d: a zero dimension", pr, pc);
  const long p = (long)pr * pc;
  if (p > world)
    return IL_ERR(IL_ERR_ARG, "--grid %dx%d needs %ld ranks per group, more than the %d rank(s) of this run", pr, pc,
                  p, world);
  if (world % p)
    return IL_ERR(IL_ERR_ARG, "--grid %dx%d: the world size %d is not a multiple of PR*PC = %ld (run on a multiple)",
                  pr, pc, world, p);
  return IL_OK;
}

#define MPI_OK(call) ((call) == MPI_SUCCESS)

il_status il_grid_create(MPI_Comm comm, int pr, int pc, int nb, il_grid *g) {
  memset(g, 0, sizeof *g);
  g->ctxt = g->sys_handle = -1;
  g->grid.comm = g->peers.comm = MPI_COMM_NULL;
  int rank, size;
  if (!MPI_OK(MPI_Comm_rank(comm, &rank)) || !MPI_OK(MPI_Comm_size(comm, &size)))
    return IL_ERR(IL_ERR_INTERNAL, "grid: MPI_Comm_rank/size failed");
  IL_CHECK(il_grid_check(size, pr, pc));
  if (nb < 1) return IL_ERR(IL_ERR_ARG, "--grid-nb must be >= 1, got %d", nb);
  const int p = pr * pc;
  g->pr = pr, g->pc = pc, g->nb = nb;
  g->D = size / p, g->group = rank / p, g->pos = rank % p;
  g->myrow = g->pos / pc, g->mycol = g->pos % pc;
  MPI_Comm gc = MPI_COMM_NULL, pcm = MPI_COMM_NULL;
  /* every rank of comm takes part in both splits (collective) */
  if (!MPI_OK(MPI_Comm_split(comm, g->group, g->pos, &gc)) || !MPI_OK(MPI_Comm_split(comm, g->pos, g->group, &pcm))) {
    if (gc != MPI_COMM_NULL) MPI_Comm_free(&gc);
    return IL_ERR(IL_ERR_INTERNAL, "grid: MPI_Comm_split failed");
  }
  il_status s = il_dist_init(&g->grid, gc);
  if (s == IL_OK) s = il_dist_init(&g->peers, pcm);
  if (s != IL_OK) {
    il_dist_free(&g->grid);
    il_dist_free(&g->peers);
    MPI_Comm_free(&gc);
    MPI_Comm_free(&pcm);
    g->grid.comm = g->peers.comm = MPI_COMM_NULL;
    return il_error_trace(s, __FILE__, __LINE__);
  }
  if (p > 1) {
    /* BLACS on the group's communicator; every rank of the group calls it (collective) */
    g->sys_handle = Csys2blacs_handle(gc);
    g->ctxt = g->sys_handle;
    Cblacs_gridinit(&g->ctxt, "Row", pr, pc);
    int nr = 0, nc = 0, r = -1, c = -1;
    Cblacs_gridinfo(g->ctxt, &nr, &nc, &r, &c);
    if (nr != pr || nc != pc || r != g->myrow || c != g->mycol) {
      il_grid_free(g);
      return IL_ERR(IL_ERR_INTERNAL, "grid: BLACS made a %dx%d grid with this rank at (%d, %d), expected %dx%d at (%d, %d)",
                    nr, nc, r, c, pr, pc, g->myrow, g->mycol);
    }
  }
  return IL_OK;
}

void il_grid_free(il_grid *g) {
  if (!g) return;
  if (g->ctxt >= 0) Cblacs_gridexit(g->ctxt);
  if (g->sys_handle >= 0) Cfree_blacs_system_handle(g->sys_handle);
  g->ctxt = g->sys_handle = -1;
  MPI_Comm c[2] = {g->grid.comm, g->peers.comm};
  if (c[0] != MPI_COMM_NULL) il_dist_free(&g->grid);
  if (c[1] != MPI_COMM_NULL) il_dist_free(&g->peers);
  for (int i = 0; i < 2; i++)
    if (c[i] != MPI_COMM_NULL) MPI_Comm_free(&c[i]);
  g->grid.comm = g->peers.comm = MPI_COMM_NULL;
}

void il_grid_describe(const il_grid *g, char *buf, size_t cap) {
  snprintf(buf, cap, "%dx%d nb %d (D %d; BLACS context %s)", g->pr, g->pc, g->nb, g->D,
           g->ctxt >= 0 ? "row-major" : "none: 1x1 runs the plain path");
}

/* the backend's registration, once per precision (il_backend_scalapack.c) */
il_status il_scalapack_register_f32(void);
il_status il_scalapack_register_f64(void);
il_status il_grid_register_backends(void) {
  IL_CHECK(il_scalapack_register_f32());
  return il_scalapack_register_f64();
}
