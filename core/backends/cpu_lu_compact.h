/* core/backends/cpu_lu_compact.h: the cpu backend's batched LU in the compact
 * (interleaved) layout, internal to core/backends/ (cpu.c dispatches to it by n;
 * selftest.c tests both sides of the crossover). Compiled once per precision.
 *
 * Layout: samples in groups of IL_LUC_VL (one 64-byte vector: 16 floats or 8
 * doubles); group g holds element (i, j) of its samples as one vector,
 *   a[((g n + i) n + j) VL + lane],  pivots p[(g n + k) VL + lane] (il_luc_int),
 * the last group padded with identity matrices. Factors are LAPACK's of the
 * row-major J itself (P J = L U, row interchanges applied to whole rows). */
#ifndef IL_CPU_LU_COMPACT_H
#define IL_CPU_LU_COMPACT_H

#include <stddef.h>
#include <stdint.h>

#include "il_prec.h"
#include "il_status.h"

#define IL_LUC_VL (64 / (int)sizeof(il_real))
/* A pivot has the width of a lane, so a compare mask selects it directly. */
#if IL_PREC == 32
typedef int32_t il_luc_int;
#else
typedef int64_t il_luc_int;
#endif

/* The compact path for n <= this, LAPACK per sample above; a constant of the build.
 * Measured here (Xeon with AVX-512, 1 thread, B = 100, median of 5-11 interleaved
 * runs; the table is in cpu_lu_compact.c): with -march=native the compact factor takes
 * 0.06 of LAPACK's time at n = 16, 0.27 at 100, 0.61 at 256, 0.85 at 320, 1.00 at 384
 * (float64 too), 1.38 at 448, 1.43 at 512. Without AVX-512 a 64-byte vector takes 2
 * (AVX2) or 4 (SSE2) registers and the register tile spills: built for haswell or the
 * x86-64 baseline it takes 0.5-0.7 of LAPACK's time at n = 32, 0.9-1.1 at 48,
 * 1.0-1.3 at 64, 1.5-2.0 at 100. */
#if defined(__AVX512F__)
#define IL_LUC_MAX_N 384
#else
#define IL_LUC_MAX_N 32
#endif

static inline int il_luc_use(int n) { return n >= 1 && n <= IL_LUC_MAX_N; }
static inline size_t il_luc_groups(int B) { return ((size_t)B + IL_LUC_VL - 1) / IL_LUC_VL; }

#define il_luc_jac IL_P(il_luc_jac)
#define il_luc_norm_inf IL_P(il_luc_norm_inf)
#define il_luc_factor IL_P(il_luc_factor)
#define il_luc_solve IL_P(il_luc_solve)
#define il_luc_rcond IL_P(il_luc_rcond)

/* The ops of il_backend.h on the compact parts a, p; T threads over groups. */
il_status il_luc_jac(int T, int B, int n, const il_real *s /* (B, n) */, const il_real *W /* (n, n) */, il_real *a);
il_status il_luc_norm_inf(int B, int n, const il_real *a, double *out /* host (B) */);
il_status il_luc_factor(int T, int B, int n, il_real *a, il_luc_int *p, int *info /* host (B) */);
il_status il_luc_solve(int T, int trans, int B, int n, const il_real *a, const il_luc_int *p, il_real *R /* (B, n) */);
il_status il_luc_rcond(int B, int n, const il_real *a, const double *anorm, double *rcond /* host (B) */);

#endif
