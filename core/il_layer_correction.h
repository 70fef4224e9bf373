/* core/il_layer_correction.h: the layer's part of fixed-point correction
 * (il_layer_correction.c), internal to core/il_layer.c and il_layer_team.c. */
#ifndef IL_LAYER_CORRECTION_H
#define IL_LAYER_CORRECTION_H

#include "il_layer.h"

#define il_corr_setup IL_P(il_corr_setup)
#define il_corr_ws_bytes IL_P(il_corr_ws_bytes)
#define il_corr_begin IL_P(il_corr_begin)
#define il_corr_forward IL_P(il_corr_forward)
#define il_corr_backward IL_P(il_corr_backward)

/* At create, after the backward mode's state exists: K, the steps, and what cannot take corrections. */
il_status il_corr_setup(il_layer *L, const il_layer_config *cfg);
/* Space workspace of the correction at batch B, given the forward solve's fwd and the backward mode's
 * bwd (0 when off). */
size_t il_corr_ws_bytes(const il_layer *L, int B, size_t fwd, size_t bwd);
/* Before a training solve: an empty il_corr_points for L->prob.corr. */
il_status il_corr_begin(il_layer *L);
/* After the training solve (z* zeroed where it is): select the points, corr[k] = their outputs. */
il_status il_corr_forward(il_layer *L, il_real *const *corr);
/* dcorr[k] on corr[k] -> dx += ..., dW += ... (a non-finite result is the model's to attribute). */
il_status il_corr_backward(il_layer *L, const il_real *const *dcorr, il_real *dx, il_real *dW);

#endif
