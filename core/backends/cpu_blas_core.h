/* core/backends/cpu_blas_core.h: which kernels OpenBLAS chose, and whether they fall short of
 * the CPU's SIMD level. OpenBLAS 0.3.21's DYNAMIC_ARCH maps CPU models it does not know (e.g.
 * family 6 model 207) to its Prescott (SSE3) kernels: sgemm then runs at a third of the machine's
 * speed, in ilbench and in torch alike. OPENBLAS_CORETYPE, read when the library loads, fixes it,
 * so the program (not the library) decides whether to re-exec with it (bench/ilbench.c). */
#ifndef IL_CPU_BLAS_CORE_H
#define IL_CPU_BLAS_CORE_H

#include <stddef.h>

typedef struct {
  char core[32];       /* OpenBLAS's kernel set ("SkylakeX", "Prescott"), "" when not OpenBLAS */
  char cpu_level[16];  /* "AVX-512", "AVX2" or "" (older or unknown) */
  char suggest[32];    /* an OPENBLAS_CORETYPE matching cpu_level when core falls short, else "" */
} il_blas_core_info;

/* Fills *info; never fails (an unknown BLAS leaves core empty). */
void il_blas_core_query(il_blas_core_info *info);

#endif
