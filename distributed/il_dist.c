/* distributed/il_dist.c: see il_dist.h. */
#include <math.h>
#include <stdlib.h>
#include "il_dist.h"

#include <string.h>
#include <unistd.h>

#define MPI_TRY(call, what)                                                      \
  do {                                                                           \
    int mpi_rc_ = (call);                                                        \
    if (mpi_rc_ != MPI_SUCCESS) {                                                \
      char msg_[MPI_MAX_ERROR_STRING];                                           \
      int len_ = 0;                                                              \
      MPI_Error_string(mpi_rc_, msg_, &len_);                                    \
      return IL_ERR(IL_ERR_INTERNAL, "%s failed: %.*s", (what), len_, msg_);    \
    }                                                                            \
  } while (0)

il_status il_dist_init(il_dist *d, MPI_Comm comm) {
  memset(d, 0, sizeof *d);
  d->comm = comm;
  d->node_comm = MPI_COMM_NULL;
  /* report failures as return codes instead of aborting inside MPI */
  MPI_TRY(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  MPI_TRY(MPI_Comm_rank(comm, &d->rank), "MPI_Comm_rank");
  MPI_TRY(MPI_Comm_size(comm, &d->size), "MPI_Comm_size");
  MPI_TRY(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &d->node_comm),
          "MPI_Comm_split_type");
  MPI_TRY(MPI_Comm_rank(d->node_comm, &d->node_rank), "MPI_Comm_rank(node)");
  MPI_TRY(MPI_Comm_size(d->node_comm, &d->node_size), "MPI_Comm_size(node)");
  if (gethostname(d->host, sizeof d->host - 1) != 0) strcpy(d->host, "unknown");
  return IL_OK;
}

void il_dist_free(il_dist *d) {
  if (d->node_comm != MPI_COMM_NULL) MPI_Comm_free(&d->node_comm);
  d->node_comm = MPI_COMM_NULL;
}

void il_dist_shard(long global, int rank, int size, long *offset, long *count) {
  long base = global / size, extra = global % size;
  *count = base + (rank < extra ? 1 : 0);
  *offset = rank * base + (rank < extra ? rank : extra);
}

static double reduce_sum(void *ctx, double local) {
  il_dist *d = ctx;
  double global = local;
  /* a failed allreduce must not look like convergence: NaN stops the solver as non-finite */
  if (MPI_Allreduce(&local, &global, 1, MPI_DOUBLE, MPI_SUM, d->comm) != MPI_SUCCESS) return 0.0 / 0.0;
  return global;
}

/* MPI_MAX has no NaN rule: a NaN travels as a flag beside the value */
static double reduce_max(void *ctx, double local) {
  il_dist *d = ctx;
  double v[2] = {isnan(local) ? -INFINITY : local, isnan(local) ? 1.0 : 0.0};
  if (MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_DOUBLE, MPI_MAX, d->comm) != MPI_SUCCESS) return 0.0 / 0.0;
  return v[1] > 0 ? 0.0 / 0.0 : v[0];
}

static il_status reduce_buf(void *ctx, double *buf, int n, il_reduce_op op) {
  il_dist *d = ctx;
  if (op == IL_REDUCE_SUM) return il_dist_allreduce_sum(d, buf, (size_t)n, MPI_DOUBLE);
  double *v = malloc(2 * (size_t)n * sizeof *v); /* values, then NaN flags: one allreduce */
  if (!v) return IL_ERR(IL_ERR_NOMEM, "reducer: cannot allocate %d doubles", 2 * n);
  for (int i = 0; i < n; i++) v[i] = isnan(buf[i]) ? -INFINITY : buf[i], v[n + i] = isnan(buf[i]) ? 1.0 : 0.0;
  const int rc = MPI_Allreduce(MPI_IN_PLACE, v, 2 * n, MPI_DOUBLE, MPI_MAX, d->comm);
  for (int i = 0; i < n; i++) buf[i] = v[n + i] > 0 ? 0.0 / 0.0 : v[i];
  free(v);
  return rc == MPI_SUCCESS ? IL_OK : IL_ERR(IL_ERR_INTERNAL, "MPI_Allreduce(max) failed");
}

il_reducer il_dist_reducer(il_dist *d) {
  const int many = d->size > 1;
  il_reducer r = {.sum = many ? reduce_sum : NULL, .max = many ? reduce_max : NULL,
                  .allreduce = many ? reduce_buf : NULL, .ctx = d};
  return r;
}

static double reduce2_sum(void *ctx, double local) {
  il_reducer2 *r = ctx;
  double v = r->inner->size > 1 ? reduce_sum(r->inner, local) : local;
  return r->outer->size > 1 ? reduce_sum(r->outer, v) : v;
}

static double reduce2_max(void *ctx, double local) {
  il_reducer2 *r = ctx;
  double v = r->inner->size > 1 ? reduce_max(r->inner, local) : local;
  return r->outer->size > 1 ? reduce_max(r->outer, v) : v;
}

static il_status reduce2_buf(void *ctx, double *buf, int n, il_reduce_op op) {
  il_reducer2 *r = ctx;
  if (r->inner->size > 1) IL_CHECK(reduce_buf(r->inner, buf, n, op));
  if (r->outer->size > 1) IL_CHECK(reduce_buf(r->outer, buf, n, op));
  return IL_OK;
}

il_reducer il_dist_reducer2(il_reducer2 *ctx) {
  const int many = ctx->inner->size * ctx->outer->size > 1;
  il_reducer r = {.sum = many ? reduce2_sum : NULL, .max = many ? reduce2_max : NULL,
                  .allreduce = many ? reduce2_buf : NULL, .ctx = ctx};
  return r;
}

/* MPI counts are int: move large buffers in pieces. */
#define IL_MPI_CHUNK ((size_t)1 << 30)

il_status il_dist_bcast(il_dist *d, void *buf, size_t count, MPI_Datatype type, int root) {
  int tsize;
  MPI_Type_size(type, &tsize);
  for (size_t off = 0; off < count; off += IL_MPI_CHUNK) {
    size_t n = count - off < IL_MPI_CHUNK ? count - off : IL_MPI_CHUNK;
    MPI_TRY(MPI_Bcast((char *)buf + off * (size_t)tsize, (int)n, type, root, d->comm), "MPI_Bcast");
  }
  return IL_OK;
}

il_status il_dist_allreduce_sum(il_dist *d, void *buf, size_t count, MPI_Datatype type) {
  if (d->size == 1) return IL_OK;
  int tsize;
  MPI_Type_size(type, &tsize);
  for (size_t off = 0; off < count; off += IL_MPI_CHUNK) {
    size_t n = count - off < IL_MPI_CHUNK ? count - off : IL_MPI_CHUNK;
    MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * (size_t)tsize, (int)n, type, MPI_SUM, d->comm),
            "MPI_Allreduce");
  }
  return IL_OK;
}

uint64_t il_hash_bytes(const void *p, size_t n) {
  const unsigned char *b = p;
  uint64_t h = 14695981039346656037ULL; /* the standard FNV-1a 64 offset basis */
  for (size_t i = 0; i < n; i++) {
    h ^= b[i];
    h *= 1099511628211ULL;
  }
  return h;
}

il_status il_dist_in_sync(il_dist *d, uint64_t hash, int *same) {
  /* one MAX allreduce of (h, ~h) gives max(h) and ~min(h): equal when every rank agrees */
  uint64_t v[2] = {hash, ~hash}, r[2];
  MPI_TRY(MPI_Allreduce(v, r, 2, MPI_UINT64_T, MPI_MAX, d->comm), "MPI_Allreduce(checksum)");
  *same = r[0] == ~r[1];
  return IL_OK;
}

il_status il_dist_minmeanmax(il_dist *d, const double *local, int n, il_minmeanmax *out) {
  double buf[3 * 16], res[3 * 16];
  if (n > 16) return IL_ERR(IL_ERR_ARG, "il_dist_minmeanmax: at most 16 values");
  /* one MAX allreduce of (-x, x, ...) gives min and max; a SUM gives the mean */
  for (int i = 0; i < n; i++) {
    buf[2 * i] = -local[i];
    buf[2 * i + 1] = local[i];
  }
  MPI_TRY(MPI_Allreduce(buf, res, 2 * n, MPI_DOUBLE, MPI_MAX, d->comm), "MPI_Allreduce(max)");
  MPI_TRY(MPI_Allreduce(local, buf, n, MPI_DOUBLE, MPI_SUM, d->comm), "MPI_Allreduce(sum)");
  for (int i = 0; i < n; i++) {
    out[i].min = -res[2 * i];
    out[i].max = res[2 * i + 1];
    out[i].mean = buf[i] / d->size;
  }
  return IL_OK;
}
