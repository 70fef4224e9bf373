/* core/il_wnorm.h: parameterisations of the implicit layer's weight W (--w-norm).
 *   weight:   W_i = g_i V_i / ||V_i||, row by row (weight normalisation over each output row,
 *             PyTorch's weight_norm with dim = 0 and TorchDEQ's WeightNorm for a Linear);
 *             g starts at ||V_i||, so the first W is the seeded one.
 *   spectral: W = V / sigma, sigma = u^T V v from a power iteration whose u, v persist across
 *             steps, one iteration per training forward (torch.nn.utils.spectral_norm); the
 *             gradient holds u and v fixed (d sigma / dV = u v^T). No learned scale (TorchDEQ's
 *             SpectralNorm adds a per-row g, starting at 1, which would undo ||W||_2 = 1).
 * The parameters are V (n, n) and, for weight, g (n); u and v are training state. Every
 * operation is a backend op; the few scalars (row norms, sigma) come to the host through
 * sync points. Compiled once per precision. */
#ifndef IL_WNORM_H
#define IL_WNORM_H

#include <stdint.h>
#include <string.h>

#include "il_arena.h"
#include "il_backend.h"

typedef enum il_wnorm_kind { IL_WNORM_NONE = 0, IL_WNORM_WEIGHT = 1, IL_WNORM_SPECTRAL = 2 } il_wnorm_kind;

#define IL_WNORM_CHOICES "none|weight|spectral"
/* The kind named s, or -1. */
static inline int il_wnorm_from_name(const char *s) {
  return !s ? -1 : strcmp(s, "none") == 0 ? IL_WNORM_NONE : strcmp(s, "weight") == 0 ? IL_WNORM_WEIGHT
                 : strcmp(s, "spectral") == 0 ? IL_WNORM_SPECTRAL : -1;
}
static inline const char *il_wnorm_name(il_wnorm_kind k) {
  return k == IL_WNORM_WEIGHT ? "weight" : k == IL_WNORM_SPECTRAL ? "spectral" : "none";
}
/* Parameters beside V: g (n) for weight, none otherwise. */
static inline size_t il_wnorm_extra(il_wnorm_kind k, int n) { return k == IL_WNORM_WEIGHT ? (size_t)n : 0; }
/* Training state values (u and v) a checkpoint keeps. */
static inline size_t il_wnorm_state_count(il_wnorm_kind k, int n) { return k == IL_WNORM_SPECTRAL ? 2 * (size_t)n : 0; }

#define il_wnorm IL_P(il_wnorm)
typedef struct il_wnorm {
  il_wnorm_kind kind;
  int n;
  const il_backend *be;
  il_arena state;  /* u, v: training state (IL_MEM_STATE), in the space */
  il_arena ws;     /* one call's scratch (space) */
  il_arena hws;    /* its host scratch */
  il_real *u, *v;  /* (n), (n) spectral: the power iteration's unit vectors */
  double *rnorm;   /* host (n) weight: ||V_i|| at the last forward */
  double *hg;      /* host (n) weight: g at the last forward */
  double sigma;    /* spectral: u^T V v at the last forward */
} il_wnorm;

#define il_wnorm_init IL_P(il_wnorm_init)
#define il_wnorm_init_g IL_P(il_wnorm_init_g)
#define il_wnorm_forward IL_P(il_wnorm_forward)
#define il_wnorm_backward IL_P(il_wnorm_backward)
#define il_wnorm_get_state IL_P(il_wnorm_get_state)
#define il_wnorm_set_state IL_P(il_wnorm_set_state)
#define il_wnorm_destroy IL_P(il_wnorm_destroy)

/* kind over n x n weights on be; spectral draws u, v ~ N(0, I) normalised from seed (the
 * host stream torch draws them from too, in its own generator). Memory counted in stats. */
il_status il_wnorm_init(il_wnorm *w, il_wnorm_kind kind, const il_backend *be, int n, uint64_t seed,
                        il_memstats *stats);
/* weight: g (n) = ||V_i|| (so that W = V); other kinds: nothing. */
il_status il_wnorm_init_g(il_wnorm *w, const il_real *V, il_real *g);
/* W (n, n) from V (n, n) and g (n, weight; else NULL). power = 1 (training) first moves u, v
 * one power iteration on V; power = 0 (evaluation) keeps them, as torch does in eval mode. */
il_status il_wnorm_forward(il_wnorm *w, const il_real *V, const il_real *g, int power, il_real *W);
/* After il_wnorm_forward at the same V (and g, which it keeps): dV += (dW/dV)^T dW,
 * dg += (dW/dg)^T dW (weight; dg NULL otherwise), with u, v held fixed for spectral. */
il_status il_wnorm_backward(il_wnorm *w, const il_real *V, const il_real *dW, il_real *dV, il_real *dg);
/* u then v (il_wnorm_state_count values) to / from host memory. */
il_status il_wnorm_get_state(const il_wnorm *w, il_real *host);
il_status il_wnorm_set_state(il_wnorm *w, const il_real *host);
void il_wnorm_destroy(il_wnorm *w);

#endif
