/* core/backends/registry.c: backends by name. Add one line per new built-in
 * backend; others (distributed/'s ScaLAPACK backend) register at run time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "il_backend.h"
#include "il_registry.h"

#define IL_BACKENDS_MAX 16

static const void *registry[IL_BACKENDS_MAX] = {
    &il_backend_cpu_ops,
    &il_backend_cpu_guard_ops,
    &il_backend_cuda_host_ops,
#ifdef IL_HAVE_CUDA
    &il_backend_cuda_ops,
#endif
};
static int nreg_ = -1; /* the built-in lines above, counted once */
static int count_reg(void) {
  if (nreg_ < 0)
    for (nreg_ = 0; nreg_ < IL_BACKENDS_MAX && registry[nreg_];) nreg_++;
  return nreg_;
}
#define nreg count_reg()

const il_backend_ops *il_backend_find(const char *name) { return il_registry_find(registry, (size_t)nreg, name); }

il_status il_backend_register(const il_backend_ops *ops) {
  if (!ops || !ops->name || !ops->create) return IL_ERR(IL_ERR_ARG, "backend registration without a name or create op");
  if (il_backend_find(ops->name)) return IL_ERR(IL_ERR_ARG, "a backend named '%s' is already registered", ops->name);
  if (nreg == IL_BACKENDS_MAX) return IL_ERR(IL_ERR_NOMEM, "backend registry full (%d)", IL_BACKENDS_MAX);
  registry[nreg_++] = ops;
  return IL_OK;
}

int il_backend_count(void) { return nreg; }
const il_backend_ops *il_backend_at(int i) { return i >= 0 && i < nreg ? registry[i] : NULL; }

const char *il_backend_names(void) {
  static char buf[256];
  return il_registry_names(registry, (size_t)nreg, buf, sizeof buf);
}

static il_status space_alloc(void *ctx, size_t bytes, void **p) {
  const il_backend *be = ctx;
  return be->ops->alloc(be->ctx, bytes, p);
}
static void space_release(void *ctx, void *p, size_t bytes) {
  const il_backend *be = ctx;
  be->ops->release(be->ctx, p, bytes);
}
static il_status space_zero(void *ctx, void *p, size_t bytes) {
  const il_backend *be = ctx;
  return be->ops->zero(be->ctx, p, bytes);
}

il_status il_backend_create(const char *name, const il_backend_options *o, il_backend **out) {
  *out = NULL;
  const il_backend_ops *ops = il_backend_find(name);
  if (!ops) return IL_ERR(IL_ERR_ARG, "unknown device '%s' (this build has: %s)", name ? name : "(null)", il_backend_names());
  il_backend *be = calloc(1, sizeof *be);
  if (!be) return IL_ERR(IL_ERR_NOMEM, "cannot allocate a backend instance");
  be->ops = ops;
  be->threads = o ? o->threads : 1;
  il_status s = ops->create(o, &be->ctx);
  if (s != IL_OK) {
    free(be);
    return il_error_trace(s, __FILE__, __LINE__);
  }
  be->space = (il_mspace){.name = ops->name, .host = ops->host_accessible, .ctx = be, .alloc = space_alloc,
                          .release = space_release, .zero = space_zero};
  *out = be;
  return IL_OK;
}

void il_backend_destroy(il_backend *be) {
  if (!be) return;
  be->ops->destroy(be->ctx);
  free(be);
}

il_status il_arena_init_for(il_arena *a, const il_backend *be, il_mem_category cat, il_memstats *stats,
                            size_t block_bytes) {
  return il_arena_init_space(a, be ? &be->space : NULL, cat, stats, block_bytes);
}

il_status il_dist_matrix(const il_backend *be, il_arena *a, il_real *p, int rows, int cols, size_t *kept) {
  const size_t whole = (size_t)rows * (size_t)cols * sizeof *p;
  size_t k = whole;
  if (be->ops->dist_matrix) IL_CHECK(be->ops->dist_matrix(be->ctx, p, rows, cols, &k));
  if (k < whole) il_arena_give_back(a, whole - k);
  if (kept) *kept = k;
  return IL_OK;
}

il_status il_lu_alloc(const il_backend *be, il_arena *a, int B, int n, il_lu *out) {
  size_t ba, bp;
  *out = (il_lu){.B = B, .n = n};
  be->ops->lu_layout(be->ctx, B, n, &ba, &bp);
  IL_CHECK(il_arena_alloc(a, ba, &out->a));
  IL_CHECK(il_arena_alloc(a, bp, &out->p));
  return IL_OK;
}
