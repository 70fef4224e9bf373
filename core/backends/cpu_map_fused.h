/* core/backends/cpu_map_fused.h: the CPU backend's fused map (internal to
 * core/backends/). out = act(A W^T + add + bias) and its by-products in one
 * pass over registers, instead of OpenBLAS plus separate elementwise passes.
 * See cpu_map_fused.c for the design and the measurements behind its limits. */
#ifndef IL_CPU_MAP_FUSED_H
#define IL_CPU_MAP_FUSED_H

#include <stddef.h>

#include "il_backend.h"

#define il_cpu_map_fused_use IL_P(il_cpu_map_fused_use)
#define il_cpu_map_fused IL_P(il_cpu_map_fused)
#define il_cpu_tanh_sech2_vec IL_P(il_cpu_tanh_sech2_vec)
#define il_cpu_map_fused_built IL_P(il_cpu_map_fused_built)

/* 1 when this build has the fused kernel (float32 and AVX-512 at compile time). */
int il_cpu_map_fused_built(void);
/* 1 when the fused kernel is built and faster than OpenBLAS + passes at this shape. */
int il_cpu_map_fused_use(int B, int N, int K);
/* The gemm_ep op (il_backend.h) on `threads` threads over row blocks. Needs
 * il_cpu_map_fused_built(); FLOPs are counted by the caller. */
il_status il_cpu_map_fused(int threads, int B, int N, int K, const il_real *A, const il_real *W,
                           const il_epilogue *ep, il_real *out);
/* The epilogue's vector tanh and sech^2 over len elements (s may be NULL), for
 * tests against il_tanh_sech2_1. Falls back to the scalar kernel when not built. */
void il_cpu_tanh_sech2_vec(size_t len, const il_real *a, il_real *t, il_real *s);

#endif
