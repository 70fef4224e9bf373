/* core/il_reason.c: names of solve outcomes (precision independent). */
#include "il_solver.h"

const char *il_reason_name(il_reason r) {
  switch (r) {
    case IL_REASON_CONVERGED: return "converged";
    case IL_REASON_MAX_ITER: return "max-iter";
    case IL_REASON_DIVERGED: return "diverged";
    case IL_REASON_NONFINITE: return "non-finite";
  }
  return "unknown";
}
