/* core/il_arena.h: bump arenas that count bytes by category.
 * One arena per lifetime (llm.c style): parameters and gradients live for the
 * run, activations and saved-for-backward state for one step, solver workspace
 * for one solve. Every byte handed out is counted in an il_memstats by category
 * with a high-water mark; that count is the memory the benchmarks report. */
#ifndef IL_ARENA_H
#define IL_ARENA_H

#include <stddef.h>

#include "il_status.h"

typedef enum il_mem_category {
  IL_MEM_PARAMS = 0,
  IL_MEM_GRADS,
  IL_MEM_ACTIVATIONS,
  IL_MEM_SAVED,     /* saved-for-backward state (tapes, factors kept for backward) */
  IL_MEM_WORKSPACE, /* solver and kernel scratch */
  IL_MEM_STATE,     /* training state besides the parameters (warm-start fixed points, power-iteration vectors) */
  IL_MEM_NCAT
} il_mem_category;

const char *il_mem_category_name(il_mem_category c);

typedef struct il_memstats {
  size_t current[IL_MEM_NCAT]; /* bytes handed out now */
  size_t peak[IL_MEM_NCAT];    /* high-water mark per category, bytes */
  size_t current_total;
  size_t peak_total;           /* high-water mark of the sum over categories, bytes */
  size_t space_current, space_peak; /* of those, bytes in a backend's space (not host bookkeeping) */
  size_t limit; /* > 0: an allocation that would take current_total above it is refused (--mem-limit: a
                   cluster node's per-rank memory, simulated); 0: none */
} il_memstats;

void il_memstats_reset_peaks(il_memstats *st); /* peaks := current */

/* Where an arena's blocks come from: host memory (NULL space) or a backend's
 * memory space (il_backend.h gives its view). Precision-neutral. */
typedef struct il_mspace {
  const char *name;
  int host;  /* 1: plain host memory the host may touch */
  void *ctx;
  il_status (*alloc)(void *ctx, size_t bytes, void **p); /* 64-byte aligned */
  void (*release)(void *ctx, void *p, size_t bytes);
  il_status (*zero)(void *ctx, void *p, size_t bytes);
} il_mspace;

typedef struct il_arena_block il_arena_block;
typedef struct il_arena {
  il_mem_category cat;
  il_memstats *stats;    /* may be NULL */
  il_arena_block *first; /* block list; reset keeps blocks for reuse */
  il_arena_block *cur;
  size_t block_bytes;    /* default size of a new block */
  size_t used;           /* bytes handed out since the last reset (incl. alignment) */
  size_t reserved;       /* bytes of blocks owned */
  size_t given_back;     /* of `used`, bytes a distributed backend gave back (il_arena_give_back) */
  const il_mspace *space; /* NULL: host memory (malloc) */
} il_arena;

#define IL_ARENA_ALIGN 64

/* block_bytes: size of the first and of further blocks (bigger requests get their own block). */
il_status il_arena_init(il_arena *a, il_mem_category cat, il_memstats *stats, size_t block_bytes);
/* The same over a memory space (NULL: host). The space must outlive the arena. */
il_status il_arena_init_space(il_arena *a, const il_mspace *space, il_mem_category cat, il_memstats *stats,
                              size_t block_bytes);
/* 64-byte aligned allocation, contents undefined (for buffers that are fully
 * written before being read, e.g. solver iterates); counted in stats. */
il_status il_arena_alloc(il_arena *a, size_t bytes, void **out);
/* n elements of `elem` bytes, zero-filled, with overflow check. */
il_status il_arena_calloc(il_arena *a, size_t n, size_t elem, void **out);
/* n elements of `elem` bytes, contents undefined, with overflow check. */
il_status il_arena_alloc_n(il_arena *a, size_t n, size_t elem, void **out);
/* Scoped scratch: take a mark, allocate, rewind to free everything since the mark. */
typedef struct il_arena_mark {
  il_arena_block *blk;
  size_t off, used;
} il_arena_mark;
il_arena_mark il_arena_get_mark(const il_arena *a);
void il_arena_rewind(il_arena *a, il_arena_mark m);

/* A distributed backend holds only a share of an allocation (il_dist_matrix): `bytes` of it stop
 * counting. For arenas that are only reset or destroyed, never rewound (parameters, gradients). */
void il_arena_give_back(il_arena *a, size_t bytes);
/* Mark everything free (blocks are kept); subtracts from stats->current. */
void il_arena_reset(il_arena *a);
void il_arena_destroy(il_arena *a);

/* Checked size arithmetic: returns IL_ERR_NOMEM naming `what` on overflow. */
il_status il_size_mul(size_t a, size_t b, size_t *out, const char *what);

#endif
