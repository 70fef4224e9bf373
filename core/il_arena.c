/* core/il_arena.c: chunked bump allocator with per-category byte counting. */
#include "il_arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct il_arena_block {
  il_arena_block *next;
  size_t cap, off;
  unsigned char *data; /* aligned start inside raw */
  void *raw;
};

const char *il_mem_category_name(il_mem_category c) {
  static const char *names[IL_MEM_NCAT] = {"params", "grads", "activations", "saved", "workspace", "state"};
  return (c >= 0 && c < IL_MEM_NCAT) ? names[c] : "unknown";
}

void il_memstats_reset_peaks(il_memstats *st) {
  for (int c = 0; c < IL_MEM_NCAT; c++) st->peak[c] = st->current[c];
  st->peak_total = st->current_total;
  st->space_peak = st->space_current;
}

il_status il_size_mul(size_t a, size_t b, size_t *out, const char *what) {
  if (a != 0 && b > SIZE_MAX / a)
    return IL_ERR(IL_ERR_NOMEM, "size of %s overflows (%zu x %zu)", what, a, b);
  *out = a * b;
  return IL_OK;
}

static il_status block_new(const il_mspace *sp, size_t cap, il_arena_block **out) {
  il_arena_block *b = malloc(sizeof *b);
  if (!b) return IL_ERR(IL_ERR_NOMEM, "arena: cannot allocate block header");
  if (sp) { /* the space's allocator aligns */
    il_status s = sp->alloc(sp->ctx, cap, &b->raw);
    if (s != IL_OK) { free(b); return il_error_trace(s, __FILE__, __LINE__); }
    b->data = b->raw;
    b->cap = cap;
    b->off = 0;
    b->next = NULL;
    *out = b;
    return IL_OK;
  }
  if (cap > SIZE_MAX - IL_ARENA_ALIGN) { free(b); return IL_ERR(IL_ERR_NOMEM, "arena: block of %zu bytes too large", cap); }
  b->raw = malloc(cap + IL_ARENA_ALIGN);
  if (!b->raw) {
    free(b);
    return IL_ERR(IL_ERR_NOMEM, "arena: cannot allocate %zu bytes", cap);
  }
  uintptr_t p = ((uintptr_t)b->raw + IL_ARENA_ALIGN - 1) & ~(uintptr_t)(IL_ARENA_ALIGN - 1);
  b->data = (unsigned char *)p;
  b->cap = cap;
  b->off = 0;
  b->next = NULL;
  *out = b;
  return IL_OK;
}

il_status il_arena_init(il_arena *a, il_mem_category cat, il_memstats *stats, size_t block_bytes) {
  memset(a, 0, sizeof *a); /* also space = NULL: host */
  a->cat = cat;
  a->stats = stats;
  a->block_bytes = block_bytes ? block_bytes : ((size_t)1 << 20);
  return IL_OK;
}

il_status il_arena_init_space(il_arena *a, const il_mspace *space, il_mem_category cat, il_memstats *stats,
                              size_t block_bytes) {
  IL_CHECK(il_arena_init(a, cat, stats, block_bytes));
  a->space = space;
  return IL_OK;
}

static void uncount(il_arena *a, size_t bytes) {
  if (!a->stats) return;
  a->stats->current[a->cat] -= bytes;
  a->stats->current_total -= bytes;
  if (a->space) a->stats->space_current -= bytes;
}

static void count(il_arena *a, size_t bytes) {
  a->used += bytes;
  il_memstats *st = a->stats;
  if (!st) return;
  st->current[a->cat] += bytes;
  st->current_total += bytes;
  if (st->current[a->cat] > st->peak[a->cat]) st->peak[a->cat] = st->current[a->cat];
  if (st->current_total > st->peak_total) st->peak_total = st->current_total;
  if (a->space) {
    st->space_current += bytes;
    if (st->space_current > st->space_peak) st->space_peak = st->space_current;
  }
}

il_status il_arena_alloc(il_arena *a, size_t bytes, void **out) {
  *out = NULL;
  if (bytes > SIZE_MAX - IL_ARENA_ALIGN) return IL_ERR(IL_ERR_NOMEM, "arena: request of %zu bytes too large", bytes);
  size_t need = (bytes + IL_ARENA_ALIGN - 1) & ~(size_t)(IL_ARENA_ALIGN - 1);
  if (need == 0) need = IL_ARENA_ALIGN;
  const il_memstats *st = a->stats;
  if (st && st->limit && (need > st->limit || st->current_total > st->limit - need))
    return IL_ERR(IL_ERR_NOMEM, "memory limit: %s needs %zu more bytes with %zu held, %zu in all, over this rank's "
                  "limit of %zu bytes (--mem-limit)", il_mem_category_name(a->cat), need, st->current_total,
                  st->current_total + need, st->limit);
  /* Walk forward from the current block: after a reset, old blocks are reused in order. */
  il_arena_block *b = a->cur;
  while (b && b->cap - b->off < need) {
    if (b->next == NULL) break;
    b = b->next;
  }
  if (!b || b->cap - b->off < need) {
    il_arena_block *nb = NULL;
    size_t cap = need > a->block_bytes ? need : a->block_bytes;
    IL_CHECK(block_new(a->space, cap, &nb));
    a->reserved += cap;
    if (!a->first) a->first = nb;
    else {
      /* append at the end of the list so reuse order stays stable */
      il_arena_block *t = a->cur ? a->cur : a->first;
      while (t->next) t = t->next;
      t->next = nb;
    }
    b = nb;
  }
  a->cur = b;
  void *p = b->data + b->off;
  b->off += need;
  count(a, need);
  *out = p;
  return IL_OK;
}

il_status il_arena_calloc(il_arena *a, size_t n, size_t elem, void **out) {
  size_t bytes;
  IL_CHECK(il_size_mul(n, elem, &bytes, "arena allocation"));
  IL_CHECK(il_arena_alloc(a, bytes, out));
  if (a->space) return a->space->zero(a->space->ctx, *out, bytes);
  memset(*out, 0, bytes);
  return IL_OK;
}

il_status il_arena_alloc_n(il_arena *a, size_t n, size_t elem, void **out) {
  size_t bytes;
  IL_CHECK(il_size_mul(n, elem, &bytes, "arena allocation"));
  return il_arena_alloc(a, bytes, out);
}

il_arena_mark il_arena_get_mark(const il_arena *a) {
  il_arena_mark m = {a->cur, a->cur ? a->cur->off : 0, a->used};
  return m;
}

void il_arena_rewind(il_arena *a, il_arena_mark m) {
  if (!m.blk) { il_arena_reset(a); return; }
  for (il_arena_block *b = m.blk->next; b; b = b->next) b->off = 0;
  m.blk->off = m.off;
  a->cur = m.blk;
  uncount(a, a->used - m.used);
  a->used = m.used;
}

void il_arena_give_back(il_arena *a, size_t bytes) {
  if (bytes > a->used - a->given_back) bytes = a->used - a->given_back;
  uncount(a, bytes);
  a->given_back += bytes;
}

void il_arena_reset(il_arena *a) {
  for (il_arena_block *b = a->first; b; b = b->next) b->off = 0;
  a->cur = a->first;
  uncount(a, a->used - a->given_back);
  a->used = 0;
  a->given_back = 0;
}

void il_arena_destroy(il_arena *a) {
  il_arena_reset(a);
  il_arena_block *b = a->first;
  while (b) {
    il_arena_block *n = b->next;
    if (a->space) a->space->release(a->space->ctx, b->raw, b->cap);
    else free(b->raw);
    free(b);
    b = n;
  }
  memset(a, 0, sizeof *a);
}
