/* core/il_layer_team.c: --threads T > 1 on a host-memory backend. The batch is
 * cut into T row shards; each OpenMP thread runs the whole layer (solver,
 * backward mode, cell) on its shard with its own single-threaded backend
 * instance, workspace and events, as data-parallel ranks do. The threads meet
 * once per solver iteration, in the stopping test's reduction (each waits for the
 * others' published values; two spin barriers with ranks), instead of forking and
 * joining inside every small op. dW is summed
 * over the shards in shard order, so a run is deterministic for a given T;
 * against T = 1 it differs by float rounding, as a different rank count does. */
#include "il_layer_team.h"

#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "il_layer.h"

#define TEAM_MAX 64
#define TEAM_VALS 16
#define TEAM_MIN_ROWS 8 /* below this a shard's GEMMs lose more than the team gains */

typedef struct shard_ctx {
  struct il_layer_team *tm;
  int t;
  unsigned long nred; /* reductions so far (all shards alike): parity picks the slots, +1 is the sequence */
} shard_ctx;

/* A shard's values of one reduction and, in the same cache line, the sequence number that
 * publishes them: a shard waits for the others' lines only (a shared counter plus a flag cost ~3
 * line transfers per reduction, each slow between these vCPUs). */
typedef struct team_slot {
  _Atomic unsigned long seq;
  double v[TEAM_VALS];
} __attribute__((aligned(64))) team_slot;

struct il_layer_team {
  int T;      /* shards created */
  int active; /* shards of the current call */
  il_backend *be[TEAM_MAX];
  il_events ev[TEAM_MAX];
  il_memstats st[TEAM_MAX];
  il_layer L[TEAM_MAX];
  il_arena grad[TEAM_MAX]; /* each shard's dW (ntheta), in its backend's space */
  il_real *dW[TEAM_MAX];
  shard_ctx sc[TEAM_MAX];
  int r0[TEAM_MAX + 1];
  il_memstats *parent_stats;
  il_reducer outer; /* across ranks; called by thread 0 (the MPI thread) only */
  /* the barrier and the reduction slots */
  atomic_int count, gen, abort;
  team_slot slot[2][TEAM_MAX]; /* by parity: reduction i + 1 cannot overwrite i's before all have read it */
  double res[TEAM_VALS];
  il_status status[TEAM_MAX];
};

/* A spin-wait hint: without it a waiting thread issues loads as fast as it can, and
 * 4000 spins last ~3 us, so the yields (a syscall each) began inside one solver
 * iteration (perf: sched_yield held ~20% of a 2-thread fp/unroll training's samples).
 * With it 4000 spins last ~0.1-0.5 ms, longer than an iteration. */
static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* Sense-free generation barrier. Spins (the team owns its cores), yields after a while so an
 * oversubscribed machine still makes progress. Returns 0 once any shard has failed. */
static int team_barrier(il_layer_team *tm) {
  const int g = atomic_load_explicit(&tm->gen, memory_order_acquire);
  if (atomic_fetch_add_explicit(&tm->count, 1, memory_order_acq_rel) == tm->active - 1) {
    atomic_store_explicit(&tm->count, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&tm->gen, 1, memory_order_release);
  } else {
    for (long spin = 0; atomic_load_explicit(&tm->gen, memory_order_acquire) == g; spin++) {
      if (atomic_load_explicit(&tm->abort, memory_order_relaxed)) return 0;
      cpu_relax();
      if (spin > 4000) sched_yield();
    }
  }
  return !atomic_load_explicit(&tm->abort, memory_order_relaxed);
}

/* Combine n values of every shard in shard order (then over ranks); NaN wins a max. */
static void team_combine(const il_layer_team *tm, int par, int n, il_reduce_op op, double *res) {
  for (int i = 0; i < n; i++) {
    double v = tm->slot[par][0].v[i];
    for (int s = 1; s < tm->active; s++) {
      const double w = tm->slot[par][s].v[i];
      v = op == IL_REDUCE_SUM ? v + w : (isnan(v) || isnan(w)) ? NAN : (w > v ? w : v);
    }
    res[i] = v;
  }
}

/* Wait until *seq reaches want; 0 once any shard has failed. Spins and yields as team_barrier. */
static int team_wait_seq(il_layer_team *tm, _Atomic unsigned long *seq, unsigned long want) {
  for (long spin = 0; atomic_load_explicit(seq, memory_order_acquire) < want; spin++) {
    if (atomic_load_explicit(&tm->abort, memory_order_relaxed)) return 0;
    cpu_relax();
    if (spin > 4000) sched_yield();
  }
  return !atomic_load_explicit(&tm->abort, memory_order_relaxed);
}

/* Without ranks to reduce over, each shard publishes its slot and combines all slots itself once
 * the others' are published, in shard order, so all get the same bits (no barrier). With ranks,
 * shard 0 (the MPI thread) combines, reduces across ranks and publishes, between two barriers. */
static il_status team_reduce(shard_ctx *c, double *buf, int n, il_reduce_op op) {
  il_layer_team *tm = c->tm;
  if (n > TEAM_VALS) return IL_ERR(IL_ERR_ARG, "thread team: reduction of %d values (at most %d)", n, TEAM_VALS);
  const unsigned long i = c->nred++;
  const int par = (int)(i & 1u);
  team_slot *mine = &tm->slot[par][c->t];
  memcpy(mine->v, buf, (size_t)n * sizeof *buf);
  if (!tm->outer.allreduce && !tm->outer.sum && !tm->outer.max) {
    atomic_store_explicit(&mine->seq, i + 1, memory_order_release);
    for (int u = 0; u < tm->active; u++)
      if (u != c->t && !team_wait_seq(tm, &tm->slot[par][u].seq, i + 1)) goto aborted;
    team_combine(tm, par, n, op, buf);
    return IL_OK;
  }
  if (!team_barrier(tm)) goto aborted;
  if (c->t == 0) {
    team_combine(tm, par, n, op, tm->res);
    il_status s = IL_OK;
    if (tm->outer.allreduce) s = tm->outer.allreduce(tm->outer.ctx, tm->res, n, op);
    else if (n == 1 && op == IL_REDUCE_SUM && tm->outer.sum) tm->res[0] = tm->outer.sum(tm->outer.ctx, tm->res[0]);
    else if (n == 1 && op == IL_REDUCE_MAX && tm->outer.max) tm->res[0] = tm->outer.max(tm->outer.ctx, tm->res[0]);
    if (s != IL_OK) {
      atomic_store(&tm->abort, 1);
      return il_error_trace(s, __FILE__, __LINE__);
    }
  }
  if (!team_barrier(tm)) goto aborted;
  memcpy(buf, tm->res, (size_t)n * sizeof *buf);
  return IL_OK;
aborted: /* another shard failed: end this solve quickly (a NaN residual stops every solver) */
  for (int v = 0; v < n; v++) buf[v] = NAN;
  return IL_OK;
}

static double team_sum(void *ctx, double local) {
  (void)team_reduce(ctx, &local, 1, IL_REDUCE_SUM);
  return local;
}
static double team_max(void *ctx, double local) {
  (void)team_reduce(ctx, &local, 1, IL_REDUCE_MAX);
  return local;
}
static il_status team_allreduce(void *ctx, double *buf, int n, il_reduce_op op) {
  return team_reduce(ctx, buf, n, op);
}

static void merge_stats(il_layer_team *tm, const il_memstats *before);

int il_layer_team_wanted(const il_backend *be) { return be->threads > 1 && be->ops->host_accessible; }

il_status il_layer_team_create(il_layer *L, const il_layer_config *cfg, int n, const il_real *W,
                               il_memstats *stats) {
  const int T = L->be->threads < TEAM_MAX ? L->be->threads : TEAM_MAX;
  il_layer_team *tm = aligned_alloc(64, sizeof *tm); /* the slots' lines; sizeof is a multiple of 64 */
  if (!tm) return IL_ERR(IL_ERR_NOMEM, "layer: cannot allocate its thread team");
  memset(tm, 0, sizeof *tm);
  L->team = tm;
  tm->parent_stats = stats;
  const il_backend_options bo = {.threads = 1};
  for (int t = 0; t < T; t++) {
    IL_CHECK(il_backend_create(L->be->ops->name, &bo, &tm->be[t]));
    tm->T = t + 1; /* what destroy must undo */
    tm->be[t]->events = &tm->ev[t];
    IL_CHECK(il_layer_create(&tm->L[t], cfg, tm->be[t], n, W, &tm->st[t]));
    IL_CHECK(il_arena_init_for(&tm->grad[t], tm->be[t], IL_MEM_GRADS, &tm->st[t], 0));
    IL_CHECK(il_arena_alloc_n(&tm->grad[t], L->cell.ntheta, sizeof(il_real), (void **)&tm->dW[t]));
    tm->sc[t] = (shard_ctx){.tm = tm, .t = t};
  }
  static const il_memstats none[TEAM_MAX];
  merge_stats(tm, none); /* the shards' dW buffers are the caller's memory from now on */
  return IL_OK;
}

void il_layer_team_destroy(il_layer *L) {
  il_layer_team *tm = L->team;
  if (!tm) return;
  il_memstats *p = tm->parent_stats;
  for (int t = 0; p && t < tm->T; t++) { /* hand back what the shards still hold */
    for (int c = 0; c < IL_MEM_NCAT; c++) p->current[c] -= tm->st[t].current[c];
    p->current_total -= tm->st[t].current_total;
    p->space_current -= tm->st[t].space_current;
  }
  for (int t = 0; t < tm->T; t++) {
    il_layer_destroy(&tm->L[t]);
    il_arena_destroy(&tm->grad[t]);
    il_backend_destroy(tm->be[t]);
  }
  free(tm);
  L->team = NULL;
}

static int shards_for(const il_layer_team *tm, int B) {
  int S = B / TEAM_MIN_ROWS;
  if (S > tm->T) S = tm->T;
  return S < 1 ? 1 : S;
}

static int shard_rows(int B, int S, int t) { return (int)((long)B * (t + 1) / S) - (int)((long)B * t / S); }

size_t il_layer_team_ws_bytes(const il_layer *L, int B) {
  const il_layer_team *tm = L->team;
  const int S = shards_for(tm, B);
  size_t sum = 0;
  for (int t = 0; t < S; t++) sum += il_layer_ws_bytes(&tm->L[t], shard_rows(B, S, t));
  return sum;
}

il_status il_layer_team_reserve(il_layer *L, int max_B) {
  il_layer_team *tm = L->team;
  for (int t = 0; t < tm->T; t++) { /* the most rows shard t gets at any batch up to max_B */
    int most = 1;
    for (int B = 1; B <= max_B; B++) {
      const int S = shards_for(tm, B);
      if (t < S && shard_rows(B, S, t) > most) most = shard_rows(B, S, t);
    }
    IL_CHECK(il_layer_reserve(&tm->L[t], most));
  }
  return IL_OK;
}

void il_layer_team_set_reducer(il_layer *L, il_reducer r) { L->team->outer = r; }

/* Fold what the shards allocated during a call into the caller's counters: their growth adds
 * up, and their peaks are taken as concurrent (an upper bound of what was live at once). */
static void merge_stats(il_layer_team *tm, const il_memstats *before) {
  il_memstats *p = tm->parent_stats;
  if (!p) return;
  size_t dcur = 0, dpeak = 0, scur = 0, speak = 0;
  for (int c = 0; c < IL_MEM_NCAT; c++) {
    size_t grow = 0, high = 0;
    for (int t = 0; t < tm->T; t++) {
      grow += tm->st[t].current[c] - before[t].current[c];
      high += tm->st[t].peak[c] - before[t].current[c];
    }
    if (p->current[c] + high > p->peak[c]) p->peak[c] = p->current[c] + high;
    p->current[c] += grow;
    dcur += grow;
    dpeak += high;
  }
  for (int t = 0; t < tm->T; t++) {
    scur += tm->st[t].space_current - before[t].space_current;
    speak += tm->st[t].space_peak - before[t].space_current;
  }
  if (p->current_total + dpeak > p->peak_total) p->peak_total = p->current_total + dpeak;
  if (p->space_current + speak > p->space_peak) p->space_peak = p->space_current + speak;
  p->current_total += dcur;
  p->space_current += scur;
}

static void begin_call(il_layer_team *tm, int S, il_memstats *before) {
  tm->active = S;
  atomic_store(&tm->count, 0);
  atomic_store(&tm->abort, 0);
  for (int t = 0; t < tm->T; t++) {
    il_memstats_reset_peaks(&tm->st[t]);
    before[t] = tm->st[t];
    il_events_reset(&tm->ev[t]);
    tm->status[t] = IL_OK;
  }
  /* every shard's count from the same value, above every published sequence (a failed call may
   * have left the counts apart) */
  unsigned long base = 0;
  for (int t = 0; t < tm->T; t++) base = tm->sc[t].nred > base ? tm->sc[t].nred : base;
  for (int t = 0; t < tm->T; t++) tm->sc[t].nred = base;
}

static il_status end_call(il_layer *L, const il_memstats *before) {
  il_layer_team *tm = L->team;
  const int S = tm->active;
  merge_stats(tm, before);
  if (L->be->events)
    for (int id = 0; id < IL_EV_N; id++) {
      double tmax = 0, fl = 0;
      for (int t = 0; t < S; t++) {
        if (tm->ev[t].ev[id].time > tmax) tmax = tm->ev[t].ev[id].time;
        fl += tm->ev[t].ev[id].flops;
      }
      il_event_stat *d = &L->be->events->ev[id];
      d->calls += tm->ev[0].ev[id].calls;
      d->time += tmax;
      d->flops += fl;
    }
  for (int t = 0; t < S; t++)
    if (tm->status[t] != IL_OK) return tm->status[t];
  return IL_OK;
}

/* Run fn(L, t, arg) on S threads, one parallel region per layer call. */
typedef void (*shard_fn)(il_layer *L, int t, void *arg);
static il_status run_team(il_layer *L, int S, shard_fn fn, void *arg) {
  int got = 1;
#ifdef _OPENMP
#pragma omp parallel num_threads(S)
  {
    const int t = omp_get_thread_num();
#pragma omp single
    got = omp_get_num_threads();
    if (got == S) fn(L, t, arg);
  }
#else
  got = S == 1;
  if (got) fn(L, 0, arg);
#endif
  if (got != S) return IL_ERR(IL_ERR_UNSUPPORTED, "layer: OpenMP gave %d of the %d threads asked for", got, S);
  return IL_OK;
}

static double max_nan(double a, double b) { return isnan(a) ? b : isnan(b) ? a : (b > a ? b : a); }

/* One solve result of the whole batch from the shards' (batch stopping makes most fields equal). */
static il_solve_result merge_result(const il_layer *L, const il_solve_result *r, int S) {
  il_solve_result m = r[0];
  double sq = 0;
  m.nonconverged_rows = 0;
  for (int t = 0; t < S; t++) {
    if (r[t].iters > m.iters) m.iters = r[t].iters;
    if (m.reason == IL_REASON_CONVERGED && r[t].reason != IL_REASON_CONVERGED) m.reason = r[t].reason;
    m.nonconverged_rows += r[t].nonconverged_rows;
    if (r[t].nonfinite_iter >= 0 && (m.nonfinite_iter < 0 || r[t].nonfinite_iter < m.nonfinite_iter))
      m.nonfinite_iter = r[t].nonfinite_iter;
    m.cond_max = max_nan(m.cond_max, r[t].cond_max);
    m.preact_max = max_nan(m.preact_max, r[t].preact_max);
  }
  /* rows stop on their own: the residual is that of the last step's moving rows, all of which sit in
   * the shards that ran longest */
  for (int t = 0; t < S; t++)
    if (r[t].iters == m.iters) sq += r[t].residual * r[t].residual;
  if (L->cfg.stop_per_sample) m.residual = sqrt(sq);
  return m;
}

typedef struct fwd_args {
  int B, train;
  const il_real *x, *z0;
  il_real *out;
  il_real *const *corr; /* fixed-point correction's outputs, or NULL */
} fwd_args;

#define TEAM_CORR 100 /* correction outputs at most (il_layer_correction.c's limit) */

static void fwd_shard(il_layer *L, int t, void *arg) {
  il_layer_team *tm = L->team;
  const fwd_args *a = arg;
  const size_t off = (size_t)tm->r0[t] * L->cell.n;
  il_layer *Ls = &tm->L[t];
  il_real *corr[TEAM_CORR]; /* this shard's rows of each output */
  for (int k = 0; a->corr && k < L->corr_K - 1; k++) corr[k] = a->corr[k] + off;
  Ls->diag_now = L->diag_now;
  Ls->trace_now = L->trace_now;
  tm->status[t] = il_layer_forward_corr(Ls, tm->r0[t + 1] - tm->r0[t], a->x + off, a->z0 ? a->z0 + off : NULL,
                                        a->out + off, a->corr ? corr : NULL, a->train);
  if (tm->status[t] != IL_OK) atomic_store(&tm->abort, 1);
}

il_status il_layer_team_forward(il_layer *L, int B, const il_real *x, const il_real *z0, il_real *out,
                                il_real *const *corr, int train) {
  il_layer_team *tm = L->team;
  const int S = shards_for(tm, B);
  il_memstats before[TEAM_MAX];
  for (int t = 0; t <= S; t++) tm->r0[t] = (int)((long)B * t / S);
  for (int t = 0; t < S; t++)
    il_layer_set_reducer(&tm->L[t], S > 1 ? (il_reducer){.sum = team_sum, .max = team_max,
                                                          .allreduce = team_allreduce, .ctx = &tm->sc[t]}
                                          : tm->outer);
  begin_call(tm, S, before);
  if (corr && L->corr_K - 1 > TEAM_CORR)
    return IL_ERR(IL_ERR_ARG, "thread team: %d correction outputs (at most %d)", L->corr_K - 1, TEAM_CORR);
  fwd_args a = {.B = B, .train = train, .x = x, .z0 = z0, .out = out, .corr = corr};
  il_status s = run_team(L, S, fwd_shard, &a);
  const il_status se = end_call(L, before);
  IL_CHECK(s);
  IL_CHECK(se);
  /* the layer's view of the step, as callers read it */
  il_arena_reset(&L->hsaved);
  L->B = B;
  L->train = train;
  IL_CHECK(il_arena_calloc(&L->hsaved, (size_t)B, sizeof *L->row_res, (void **)&L->row_res));
  IL_CHECK(il_arena_calloc(&L->hsaved, (size_t)B, sizeof *L->zeroed, (void **)&L->zeroed));
  il_solve_result r[TEAM_MAX];
  double rho_sum = 0;
  int rho_n = 0;
  L->diag = tm->L[0].diag;
  for (int t = 0; t < S; t++) {
    const il_layer *Ls = &tm->L[t];
    const int Bt = tm->r0[t + 1] - tm->r0[t];
    memcpy(L->row_res + tm->r0[t], Ls->row_res, (size_t)Bt * sizeof *L->row_res);
    memcpy(L->zeroed + tm->r0[t], Ls->zeroed, (size_t)Bt);
    r[t] = Ls->fres;
    if (Ls->diag.rho_samples > 0) {
      rho_sum += Ls->diag.rho_mean * Ls->diag.rho_samples;
      rho_n += Ls->diag.rho_samples;
      L->diag.rho_max = t == 0 ? Ls->diag.rho_max : (isnan(Ls->diag.rho_max) ? NAN : max_nan(L->diag.rho_max, Ls->diag.rho_max));
    }
    L->diag.cond_max = max_nan(L->diag.cond_max, Ls->diag.cond_max);
    L->diag.preact_max = max_nan(L->diag.preact_max, Ls->diag.preact_max);
  }
  L->diag.rho_samples = rho_n;
  L->diag.rho_mean = rho_n ? rho_sum / rho_n : NAN;
  L->fres = merge_result(L, r, S);
  L->ftrace = tm->L[0].ftrace; /* --trace: shard 0's stand for the batch (its residuals are the team's) */
  L->btrace = tm->L[0].btrace;
  return IL_OK;
}

typedef struct bwd_args {
  const il_real *dout;
  const il_real *const *dcorr;
  il_real *dx, *dW;
} bwd_args;

static void bwd_shard(il_layer *L, int t, void *arg) {
  il_layer_team *tm = L->team;
  const bwd_args *a = arg;
  const int S = tm->active;
  const size_t off = (size_t)tm->r0[t] * L->cell.n, nw = L->cell.ntheta;
  const il_backend *be = tm->be[t];
  const il_real *dcorr[TEAM_CORR];
  for (int k = 0; a->dcorr && k < L->corr_K - 1; k++) dcorr[k] = a->dcorr[k] ? a->dcorr[k] + off : NULL;
  il_status s = IL_BE(be, zero, tm->dW[t], nw * sizeof *tm->dW[t]);
  if (s == IL_OK)
    s = il_layer_backward_corr(&tm->L[t], a->dout + off, a->dcorr ? dcorr : NULL, a->dx + off, tm->dW[t]);
  tm->status[t] = s;
  if (s != IL_OK) atomic_store(&tm->abort, 1);
  if (!team_barrier(tm)) return;
  /* dW += sum over shards in shard order, each thread on its slice of dW */
  const size_t lo = nw * (size_t)t / (size_t)S, hi = nw * (size_t)(t + 1) / (size_t)S;
  for (int u = 0; u < S && hi > lo; u++) {
    s = IL_BE(be, axpby, hi - lo, 1, tm->dW[u] + lo, 1, a->dW + lo);
    if (s != IL_OK) {
      tm->status[t] = s;
      return;
    }
  }
}

il_status il_layer_team_backward(il_layer *L, const il_real *dout, const il_real *const *dcorr, il_real *dx,
                                 il_real *dW) {
  il_layer_team *tm = L->team;
  const int S = tm->active;
  il_memstats before[TEAM_MAX];
  begin_call(tm, S, before);
  bwd_args a = {.dout = dout, .dcorr = dcorr, .dx = dx, .dW = dW};
  il_status s = run_team(L, S, bwd_shard, &a);
  const il_status se = end_call(L, before);
  IL_CHECK(s);
  IL_CHECK(se);
  il_solve_result r[TEAM_MAX];
  double cmp[4] = {0, 0, 0, 0};
  L->bwd_nan_iter = -1;
  for (int t = 0; t < S; t++) {
    const il_layer *Ls = &tm->L[t];
    r[t] = Ls->bres;
    if (Ls->bwd_nan_iter >= 0 && (L->bwd_nan_iter < 0 || Ls->bwd_nan_iter < L->bwd_nan_iter))
      L->bwd_nan_iter = Ls->bwd_nan_iter;
    for (int i = 0; i < 4; i++) cmp[i] += Ls->diag_cmp[i];
    L->diag.cond_max = max_nan(L->diag.cond_max, Ls->diag.cond_max);
  }
  L->bres = merge_result(L, r, S);
  if (L->diag_now) il_layer_grad_diag(L, cmp);
  L->btrace = tm->L[0].btrace;
  return IL_OK;
}

il_status il_layer_team_trace_init(il_layer *L) {
  il_layer_team *tm = L->team;
  for (int t = 0; t < tm->T; t++) IL_CHECK(il_layer_trace_init(&tm->L[t]));
  L->btrace_solver = tm->L[0].btrace_solver;
  L->ftrace = tm->L[0].ftrace;
  L->btrace = tm->L[0].btrace;
  return IL_OK;
}

il_status il_layer_team_get_zstar(const il_layer *L, il_real *dst) {
  const il_layer_team *tm = L->team;
  const int n = L->cell.n;
  for (int t = 0; t < tm->active; t++)
    IL_CHECK(il_copy(L->be, dst + (size_t)tm->r0[t] * n, tm->L[t].zstar, (size_t)(tm->r0[t + 1] - tm->r0[t]) * n));
  return IL_OK;
}

typedef struct jr_args {
  int K;
  const il_real *eps;
  size_t kstride;
  il_real scale;
  il_real *dx, *dW;
  double sq[TEAM_MAX];
} jr_args;

static void jr_shard(il_layer *L, int t, void *arg) {
  il_layer_team *tm = L->team;
  jr_args *a = arg;
  const int S = tm->active;
  const size_t off = (size_t)tm->r0[t] * L->cell.n, nw = L->cell.ntheta;
  const il_backend *be = tm->be[t];
  il_status s = a->dW ? IL_BE(be, zero, tm->dW[t], nw * sizeof *tm->dW[t]) : IL_OK;
  if (s == IL_OK)
    s = il_layer_jac_reg(&tm->L[t], a->K, a->eps + off, a->kstride, a->scale, a->dx ? a->dx + off : NULL,
                         a->dW ? tm->dW[t] : NULL, &a->sq[t]);
  tm->status[t] = s;
  if (s != IL_OK) atomic_store(&tm->abort, 1);
  if (!a->dW || !team_barrier(tm)) return;
  /* dW += sum over shards in shard order, each thread on its slice of dW (as in backward) */
  const size_t lo = nw * (size_t)t / (size_t)S, hi = nw * (size_t)(t + 1) / (size_t)S;
  for (int u = 0; u < S && hi > lo; u++) {
    s = IL_BE(be, axpby, hi - lo, 1, tm->dW[u] + lo, 1, a->dW + lo);
    if (s != IL_OK) {
      tm->status[t] = s;
      return;
    }
  }
}

il_status il_layer_team_jac_reg(il_layer *L, int K, const il_real *eps, size_t kstride, il_real scale, il_real *dx,
                                il_real *dW, double *sq) {
  il_layer_team *tm = L->team;
  const int S = tm->active;
  il_memstats before[TEAM_MAX];
  begin_call(tm, S, before);
  jr_args a = {.K = K, .eps = eps, .kstride = kstride, .scale = scale, .dx = dx, .dW = dW};
  il_status s = run_team(L, S, jr_shard, &a);
  const il_status se = end_call(L, before);
  IL_CHECK(s);
  IL_CHECK(se);
  double total = 0;
  for (int t = 0; t < S; t++) total += a.sq[t]; /* shard order: deterministic for a given T */
  *sq = total;
  return IL_OK;
}
