/* core/il_warm_start.c: see il_warm_start.h. Rows move between the table and the batch
 * buffers through the backend's row_index_copy (a gather or a scatter by sample index). */
#include "il_warm_start.h"

#include <string.h>

il_status il_warm_start_init(il_warm_start *w, const il_backend *be, long count, int n, int max_B,
                             il_memstats *stats) {
  memset(w, 0, sizeof *w);
  if (count <= 0 || n <= 0 || max_B <= 0 || count > 0x7fffffffL)
    return IL_ERR(IL_ERR_ARG, "warm start: bad sizes (%ld samples, n %d, batch %d)", count, n, max_B);
  w->be = be;
  w->count = count;
  w->n = n;
  w->max_B = max_B;
  IL_CHECK(il_arena_init_for(&w->state, be, IL_MEM_STATE, stats, 0));
  IL_CHECK(il_arena_init(&w->hstate, IL_MEM_STATE, stats, 0));
  IL_CHECK(il_arena_init_for(&w->ws, be, IL_MEM_STATE, stats, 0));
  IL_CHECK(il_arena_init(&w->hws, IL_MEM_STATE, stats, 0));
  size_t cells;
  IL_CHECK(il_size_mul((size_t)count, (size_t)n, &cells, "the warm-start table"));
  IL_CHECK(il_arena_calloc(&w->state, cells, sizeof *w->table, (void **)&w->table)); /* 0: fp's own start */
  IL_CHECK(il_arena_calloc(&w->hstate, (size_t)count, 1, (void **)&w->seen));
  IL_CHECK(il_arena_alloc_n(&w->ws, (size_t)max_B * n, sizeof *w->z0, (void **)&w->z0));
  IL_CHECK(il_arena_alloc_n(&w->ws, (size_t)max_B * n, sizeof *w->rows, (void **)&w->rows));
  IL_CHECK(il_arena_calloc(&w->hws, (size_t)max_B, 1, (void **)&w->cold));
  IL_CHECK(il_arena_calloc(&w->hws, (size_t)max_B, sizeof *w->idx, (void **)&w->idx));
  return IL_OK;
}

void il_warm_start_destroy(il_warm_start *w) {
  il_arena_destroy(&w->state);
  il_arena_destroy(&w->hstate);
  il_arena_destroy(&w->ws);
  il_arena_destroy(&w->hws);
}

static il_status indices(il_warm_start *w, int B, const uint32_t *idx) {
  if (B <= 0 || B > w->max_B) return IL_ERR(IL_ERR_ARG, "warm start: batch %d outside [1, %d]", B, w->max_B);
  for (int b = 0; b < B; b++) {
    if (idx[b] >= (uint32_t)w->count)
      return IL_ERR(IL_ERR_ARG, "warm start: sample %u outside the %ld samples", idx[b], w->count);
    w->idx[b] = (int)idx[b];
  }
  return IL_OK;
}

il_status il_warm_start_begin(il_warm_start *w, int B, const uint32_t *idx, il_real **z0, const unsigned char **cold) {
  IL_CHECK(indices(w, B, idx));
  int nseen = 0;
  for (int b = 0; b < B; b++) {
    w->cold[b] = !w->seen[idx[b]];
    nseen += !w->cold[b];
  }
  *z0 = NULL;
  *cold = NULL;
  if (!nseen) return IL_OK;
  IL_CHECK(IL_BE(w->be, row_index_copy, B, w->n, w->idx, w->table, NULL, w->z0)); /* gather */
  *z0 = w->z0;
  if (nseen < B) *cold = w->cold;
  return IL_OK;
}

il_status il_warm_start_store(il_warm_start *w, int B, const uint32_t *idx, const unsigned char *forget) {
  IL_CHECK(indices(w, B, idx));
  IL_CHECK(IL_BE(w->be, row_index_copy, B, w->n, NULL, w->rows, w->idx, w->table)); /* scatter */
  for (int b = 0; b < B; b++) w->seen[idx[b]] = !(forget && forget[b]);
  return IL_OK;
}

il_status il_warm_start_get(const il_warm_start *w, il_real *host) {
  return il_download(w->be, host, w->table, (size_t)w->count * w->n);
}

il_status il_warm_start_set(il_warm_start *w, const il_real *host) {
  return il_upload(w->be, w->table, host, (size_t)w->count * w->n);
}
