/* core/il_warm_start.h: per-sample warm starts (train --warm-start). Each training sample's
 * last fixed point is kept, by dataset index across epochs, in a (count, n) table in the
 * backend's space (an arena of its own; the table, the batch buffers and a host flag per
 * sample saying whether one was stored are all counted as IL_MEM_STATE). A batch starts from
 * its samples' stored rows; a sample never seen (or forgotten) starts where the solver starts
 * on its own (il_layer_cold_start), and a batch of only such samples passes no start at all,
 * exactly as without --warm-start.
 * Compiled once per precision. */
#ifndef IL_WARM_START_H
#define IL_WARM_START_H

#include <stdint.h>

#include "il_arena.h"
#include "il_backend.h"

#define il_warm_start IL_P(il_warm_start)
typedef struct il_warm_start {
  const il_backend *be;
  long count;            /* samples */
  int n, max_B;          /* row size; rows a call takes at most */
  il_arena state;        /* the table (space, IL_MEM_STATE) */
  il_arena hstate;       /* the flags (host, IL_MEM_STATE) */
  il_arena ws, hws;      /* the batch buffers (space, host; IL_MEM_STATE too) */
  il_real *table;        /* (count, n) */
  unsigned char *seen;   /* host (count): 1 when the sample's row holds a fixed point */
  il_real *z0;           /* (max_B, n) the batch's start */
  il_real *rows;         /* (max_B, n) the fixed points il_warm_start_store takes */
  unsigned char *cold;   /* host (max_B) the batch's rows without a stored fixed point */
  int *idx;              /* host (max_B) */
} il_warm_start;

#define il_warm_start_init IL_P(il_warm_start_init)
#define il_warm_start_begin IL_P(il_warm_start_begin)
#define il_warm_start_store IL_P(il_warm_start_store)
#define il_warm_start_get IL_P(il_warm_start_get)
#define il_warm_start_set IL_P(il_warm_start_set)
#define il_warm_start_destroy IL_P(il_warm_start_destroy)

/* count samples of n values on be, batches of up to max_B rows; nothing stored yet. */
il_status il_warm_start_init(il_warm_start *w, const il_backend *be, long count, int n, int max_B,
                             il_memstats *stats);
/* The start of a batch of the B samples idx (host, each < count): *z0 = NULL when none of them
 * has a fixed point stored, else w->z0 (B, n) with the stored rows, and *cold = w->cold marking
 * the rows the caller must give the solver's own start (NULL when every row has one). */
il_status il_warm_start_begin(il_warm_start *w, int B, const uint32_t *idx, il_real **z0, const unsigned char **cold);
/* Store w->rows (B, n) as the fixed points of samples idx (distinct); the rows with forget[b] != 0
 * (host (B), or NULL: none) are marked never seen instead. */
il_status il_warm_start_store(il_warm_start *w, int B, const uint32_t *idx, const unsigned char *forget);
/* The table (count * n values) to / from host memory, for checkpoints (w->seen is host memory). */
il_status il_warm_start_get(const il_warm_start *w, il_real *host);
il_status il_warm_start_set(il_warm_start *w, const il_real *host);
void il_warm_start_destroy(il_warm_start *w);

#endif
