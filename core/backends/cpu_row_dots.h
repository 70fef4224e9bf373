/* core/backends/cpu_row_dots.h: the CPU backend's per-row dot products in double
 * (internal to core/backends/), the kernel of row_dot and row_sub_dot. See
 * cpu_row_dots.c for why it has its own AVX-512 path. */
#ifndef IL_CPU_ROW_DOTS_H
#define IL_CPU_ROW_DOTS_H

#include <stddef.h>

#include "il_backend.h"

#define il_cpu_row_dots IL_P(il_cpu_row_dots)

/* out[i] = sum_{j<n} X[i][off + j] y[j] accumulated in double, for i < k (any k >= 0). */
void il_cpu_row_dots(int n, int k, const il_real *const *X, size_t off, const il_real *y, double *out);

#endif
