/* distributed/il_bind.c: which CPUs a rank's T threads are pinned to (il_bind.h). */
#define _GNU_SOURCE
#include "il_bind.h"

#include <sched.h>
#include <stdio.h>
#include <string.h>

/* "0-3,8" */
static void mask_str(const cpu_set_t *m, char *buf, size_t cap) {
  size_t len = 0;
  buf[0] = '\0';
  for (int c = 0; c < CPU_SETSIZE && len + 16 < cap; c++) {
    if (!CPU_ISSET(c, m)) continue;
    int e = c;
    while (e + 1 < CPU_SETSIZE && CPU_ISSET(e + 1, m)) e++;
    len += (size_t)snprintf(buf + len, cap - len, "%s%d", len ? "," : "", c);
    if (e > c) len += (size_t)snprintf(buf + len, cap - len, "-%d", e);
    c = e;
  }
}

il_status il_bind_cpus(il_dist *d, int T, int *cpus, int *bound, char *desc, size_t cap) {
  *bound = 0;
  desc[0] = '\0';
  if (T <= 1) return IL_OK;
  if (T > IL_BIND_MAX) return IL_ERR(IL_ERR_ARG, "--threads %d: at most %d", T, IL_BIND_MAX);
  cpu_set_t mine;
  CPU_ZERO(&mine);
  int ok = sched_getaffinity(0, sizeof mine, &mine) == 0;
  static cpu_set_t all[IL_BIND_MAX]; /* only the MPI thread calls this */
  int group = 0, place = 0;
  if (d->node_size > IL_BIND_MAX) ok = 0; /* every rank of this node agrees: none gathers */
  else if (MPI_Allgather(&mine, (int)sizeof mine, MPI_BYTE, all, (int)sizeof mine, MPI_BYTE, d->node_comm) !=
           MPI_SUCCESS)
    return IL_ERR(IL_ERR_IO, "binding: MPI_Allgather of the CPU masks failed");
  /* the ranks with my mask, and my place among them */
  for (int r = 0; ok && r < d->node_size; r++)
    if (CPU_EQUAL(&all[r], &mine)) {
      if (r < d->node_rank) place++;
      group++;
    }
  int have = CPU_COUNT(&mine), got = 0;
  char m[256];
  mask_str(&mine, m, sizeof m);
  if (ok && have >= group * T)
    for (int c = 0, k = 0; c < CPU_SETSIZE && got < T; c++)
      if (CPU_ISSET(c, &mine) && k++ >= place * T) cpus[got++] = c;
  int mine_ok = ok && got == T, all_ok = mine_ok;
  MPI_Allreduce(&mine_ok, &all_ok, 1, MPI_INT, MPI_LAND, d->comm);
  if (!mine_ok) {
    if (!ok) return IL_ERR(IL_ERR_ARG, "rank %d on %s: cannot read its CPU mask", d->rank, d->host);
    return IL_ERR(IL_ERR_ARG,
                  "rank %d on %s: --threads %d needs %d CPUs for the %d rank(s) bound to CPUs %s, which has %d; "
                  "threads would share cores. Use fewer threads or ranks, or give each rank its own cores "
                  "(mpirun --map-by slot:PE=%d, or sbatch -c %d)", d->rank, d->host, T, group * T, group, m, have, T, T);
  }
  if (!all_ok) return IL_ERR(IL_ERR_ARG, "another rank cannot bind its %d threads (see its message)", T);
  size_t len = (size_t)snprintf(desc, cap, "threads bound to cpus ");
  for (int t = 0; t < T && len + 8 < cap; t++) len += (size_t)snprintf(desc + len, cap - len, "%s%d", t ? "," : "", cpus[t]);
  if (len + 8 < cap) snprintf(desc + len, cap - len, " of %s", m);
  *bound = 1;
  return IL_OK;
}
