/* core/backends/cpu_rows.h: the CPU backend's per-row kernels (internal to
 * core/backends/): the dots of a row in double (row_dot, row_sub_dot, row_lowrank)
 * and the combination of rows (row_combine, row_lowrank). See cpu_rows.c for why
 * they have an AVX-512 path of their own. */
#ifndef IL_CPU_ROWS_H
#define IL_CPU_ROWS_H

#include <stddef.h>

#include "il_backend.h"

#define il_cpu_row_dots IL_P(il_cpu_row_dots)
#define il_cpu_combine_row IL_P(il_cpu_combine_row)

/* out[i] = sum_{j<n} X[i][off + j] y[j] accumulated in double, for i < k (any k >= 0). */
void il_cpu_row_dots(int n, int k, const il_real *const *X, size_t off, const il_real *y, double *out);
/* ob[j] = src[j] + sum_{i<k} cb[i] X[i][off + j], terms added in order of i, each one fused
 * multiply-add on the running sum; src NULL: 0; src may be ob; ob is none of the X rows. */
void il_cpu_combine_row(int n, int k, const il_real *const *X, size_t off, const il_real *cb, const il_real *src,
                        il_real *ob);

#endif
