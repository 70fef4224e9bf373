/* core/il_diag.h: codes shared by the core and the results writer (no precision). */
#ifndef IL_DIAG_H
#define IL_DIAG_H

/* Where a non-finite value first appeared in a training step (the steps table's
 * nan_origin column, analysis/SCHEMA.md). */
typedef enum il_nan_origin {
  IL_NAN_NONE = 0,      /* every value of the step was finite */
  IL_NAN_FWD_SOLVE = 1, /* in the forward solve of the implicit layer */
  IL_NAN_FWD_OTHER = 2, /* forward, outside the solve: layer output, head, loss */
  IL_NAN_BWD_LAYER = 3, /* backward of the implicit layer: unrolled or adjoint solve, or the Jacobian regulariser */
  IL_NAN_BWD_OTHER = 4, /* backward outside the layer (head) */
} il_nan_origin;

#endif
