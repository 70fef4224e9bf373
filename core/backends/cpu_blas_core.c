/* core/backends/cpu_blas_core.c: see cpu_blas_core.h. */
#include "cpu_blas_core.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#ifdef IL_HAVE_OPENBLAS_THREADS
char *openblas_get_corename(void);
#endif

static int one_of(const char *core, const char *const *names) {
  for (; *names; names++)
    if (strcasecmp(core, *names) == 0) return 1;
  return 0;
}

void il_blas_core_query(il_blas_core_info *info) {
  memset(info, 0, sizeof *info);
#ifdef IL_HAVE_OPENBLAS_THREADS
  const char *core = openblas_get_corename();
  snprintf(info->core, sizeof info->core, "%s", core ? core : "");
#endif
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  /* the AVX-512 subset OpenBLAS's SkylakeX kernels use */
  const int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                     __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                     __builtin_cpu_supports("avx512cd");
  const int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  static const char *const at_avx512[] = {"SkylakeX", "Cooperlake", "SapphireRapids", NULL};
  static const char *const at_avx2[] = {"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids", NULL};
  if (avx512) {
    snprintf(info->cpu_level, sizeof info->cpu_level, "AVX-512");
    if (info->core[0] && !one_of(info->core, at_avx512)) snprintf(info->suggest, sizeof info->suggest, "SkylakeX");
  } else if (avx2) {
    snprintf(info->cpu_level, sizeof info->cpu_level, "AVX2");
    if (info->core[0] && !one_of(info->core, at_avx2)) snprintf(info->suggest, sizeof info->suggest, "Haswell");
  }
#endif
}
