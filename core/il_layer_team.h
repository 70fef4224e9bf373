/* core/il_layer_team.h: the layer's thread team (il_layer_team.c), internal to
 * core/il_layer.c: with --threads T > 1 on a host-memory backend the layer runs
 * T row shards in parallel and meets once per solver iteration. */
#ifndef IL_LAYER_TEAM_H
#define IL_LAYER_TEAM_H

#include "il_layer.h"

#define il_layer_team_wanted IL_P(il_layer_team_wanted)
#define il_layer_team_create IL_P(il_layer_team_create)
#define il_layer_team_destroy IL_P(il_layer_team_destroy)
#define il_layer_team_ws_bytes IL_P(il_layer_team_ws_bytes)
#define il_layer_team_reserve IL_P(il_layer_team_reserve)
#define il_layer_team_set_reducer IL_P(il_layer_team_set_reducer)
#define il_layer_team_forward IL_P(il_layer_team_forward)
#define il_layer_team_backward IL_P(il_layer_team_backward)
#define il_layer_team_jac_reg IL_P(il_layer_team_jac_reg)
#define il_layer_team_trace_init IL_P(il_layer_team_trace_init)
#define il_layer_team_get_zstar IL_P(il_layer_team_get_zstar)

int il_layer_team_wanted(const il_backend *be);
il_status il_layer_team_create(il_layer *L, const il_layer_config *cfg, int n, const il_real *W, il_memstats *stats);
void il_layer_team_destroy(il_layer *L);
size_t il_layer_team_ws_bytes(const il_layer *L, int B);
il_status il_layer_team_reserve(il_layer *L, int max_B);
void il_layer_team_set_reducer(il_layer *L, il_reducer r);
il_status il_layer_team_jac_reg(il_layer *L, int K, const il_real *eps, size_t kstride, il_real scale, il_real *dx,
                                il_real *dW, double *sq);
/* corr, dcorr: fixed-point correction's K-1 outputs and their cotangents (il_layer_forward_corr), or NULL */
il_status il_layer_team_forward(il_layer *L, int B, const il_real *x, const il_real *z0, il_real *out,
                                il_real *const *corr, int train);
il_status il_layer_team_backward(il_layer *L, const il_real *dout, const il_real *const *dcorr, il_real *dx,
                                 il_real *dW);
/* --trace: every shard records (they meet in the traces' reductions); L shows shard 0's traces. */
il_status il_layer_team_trace_init(il_layer *L);
il_status il_layer_team_get_zstar(const il_layer *L, il_real *dst);

#endif
