#!/usr/bin/python3
"""Figures, a recommendation table and a summary from ilbench results files
(analysis/SCHEMA.md) and, optionally, the `ilbench layer` table.

usage: /usr/bin/python3 analysis/report.py RESULTS.h5 [...] [--layer LAYER.txt] -o OUTDIR [--force]

Runs that differ only in `seed` are replicates of one *configuration*; every
number and figure aggregates them (mean, and the min-max range over seeds as
error bars or bands). Writes into OUTDIR (created if needed), each figure as
NAME.png and NAME.pdf:

  summary.md, summary.csv  the recommendation table (rules below), the
                           separation statement, one row per run
  layer.csv                the layer table as CSV (with --layer)
  accuracy                 final test error per configuration: mean, min-max bars, every seed
  training_curve           training loss and forward iterations vs step (moving average)
  test_error_vs_epoch      test error vs epoch (only when runs have >= 2 epochs)
  iterations_cost          raw iterations next to time and FLOPs per batch (a common unit)
  time_per_batch           per-phase time per batch, every seed's wall time marked
  memory                   layer: saved-for-backward and workspace bytes; training peak by category
  memory_vs_hidden         peak memory vs hidden size (>= 2 hidden sizes)
  gradient_error           layer: gradient error vs exact IFT against backward time
  stability                NaN-skipped, non-converged and diverged rates; NaN origins and
                           the pre-activation of each step where the NaN study measured it
  pareto                   test error vs time per batch; the front only with >= 4 configurations
  scaling                  throughput vs ranks for configurations that ran at >= 2 world sizes
  convergence              residual / first residual vs iteration, forward and backward panels
                           (median and quartile band over the traced steps; runs with --trace N)
  grid                     with --grid-bench CSV (scripts/bench-grid): time per Newton step and
                           per-rank memory vs hidden size, one line per process grid, and the
                           single-rank LAPACK line

Comparison: the *reference setting* is the most common value of every
configuration key that is not a solver or backward choice or a swept
dimension (DIMENSION_KEYS: tol, hidden, world_size, ...). Configurations
with another setting (e.g. the NaN study's `sech2=seed diag=1`) are left out
of the comparison figures and the recommendation table, and listed in the
figure's footnote and in summary.md; swept dimensions are shown in the labels.
Timing figures warn when the runs' hosts or thread counts differ.

Verdict rules (one line per pair in the recommendation table, derived only
from the numbers):
  1. avoid: the mean NaN-skipped or diverged rate is > 1% of steps, or a seed
     ended above 50% test error.
  2. not recommended (less accurate): its seed range of final test error lies
     entirely above the best configuration's range (needs >= 2 seeds each).
  3. recommended: the fastest (mean train time per batch) of the remaining
     configurations.
  4. alternative: within the best's seed spread and <= 1.5x the recommended
     time; otherwise "not recommended: no accuracy gain for Nx the time".
  Suffixes: "approximate gradient" when the layer's gradient error > 1e-3;
  "time within noise" when its per-seed time range overlaps the recommended's.
  Layer-only pairs (not trained) get a verdict from the layer numbers:
  forward not converged, approximate gradient (> 1e-3), or exact with its
  fwd+bwd time relative to the fastest exact pair.
Accuracies "separate beyond the seed spread" when some configuration's seed
range does not overlap the best's.

Figures use completed runs only. A figure whose data is missing is skipped
with "skip NAME: why". Every figure is checked before it is saved
(lint_figure: no line series with one point, no empty panel, every labelled
series with visible data); a problem is an error (exit 3). Refuses to
overwrite summary.md/summary.csv without --force. Exit status: 0 done,
1 refused, 2 unreadable input or unsupported schema, 3 a figure failed its check.
"""

import argparse
import csv
import math
import os
import sys
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ilbench_results as ir  # noqa: E402

import matplotlib  # noqa: E402
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DPI = 150
FIGSIZE = (8.0, 5.4)  # 1200 x 810 pixels at 150 dpi
FIGURES = ("accuracy", "training_curve", "test_error_vs_epoch", "iterations_cost", "time_per_batch",
           "memory", "memory_vs_hidden", "gradient_error", "stability", "pareto", "scaling", "convergence")
FORMATS = ("png", "pdf")
CONFIG_KEYS = ("solver", "backward", "tol", "hidden", "batch", "world_size", "stop", "seed")
# Attributes that describe a run, not its configuration.
NOT_CONFIG = {"seed", "status", "started", "finished", "command_line", "run_index", "software_version",
              "host", "data", "parameters", "config_hash", "reason", "checkpoint", "resumes",
              "grid_nb", "grid_groups", "blacs_context"}  # --grid's details: `grid` itself is the dimension
PAIR_KEYS = ("solver", "backward", "options")
SOLVER_OWNED = {"max_iter", "eval_max_iter", "zero_nonconverged"}  # their defaults depend on the solver
DIMENSION_KEYS = ("tol", "hidden", "world_size", "stop", "stop_mode", "divtol", "best", "adjoint_refine",
                  "allreduce", "cell", "max_iter",
                  "stop_norm", "best_rule", "warm_start", "w_norm")
DIMENSION_KEYS += ("fp_correction",)  # a training-loss setting ("K:GAMMA", run_config) runs are compared across
TIMING_KEYS = ("threads", "device", "world_size", "diag")
CSV_COLUMNS = (("run_id", "file") + CONFIG_KEYS +
               ("status", "flag", "epochs_done", "epochs_requested",
                "final_test_err", "final_train_err", "mean_fwd_iters", "mean_bwd_iters",
                "nan_rate", "nonconv_rate", "train_s_per_epoch", "test_s_per_epoch",
                "forward_s_per_epoch", "backward_s_per_epoch", "wait_s_per_epoch",
                "allreduce_s_per_epoch", "update_s_per_epoch",
                "peak_mem_bytes", "peak_mem_source", "samples_per_s",
                "schema_version", "diverge_rate", "diag_rho_max", "diag_rho_mean", "diag_cond_max",
                "diag_grad_cos_min", "diag_grad_relerr_max", "diag_preact_max",
                "train_batches", "ms_per_batch", "fwd_ms_per_batch", "bwd_ms_per_batch",
                "fwd_flops_per_solve", "bwd_flops_per_solve", "config"))
REC_CSV = "recommendation.csv"
COSH_OVERFLOW = 89.4  # float32 cosh(a) overflows for |a| > 89.4 (SCHEMA.md, diag_preact_max)
UNSTABLE_RATE = 0.01
COLLAPSED_ERR = 0.5
APPROX_GRAD = 1e-3
ALT_TIME = 1.5
NOISY_CV = 0.25
ORIGIN_COLORS = {1: "tab:blue", 2: "tab:green", 3: "tab:red", 4: "tab:orange"}

# Called as FIGURE_HOOK(name, fig) just before a figure is saved (tests use it).
FIGURE_HOOK = None


class Skip(Exception):
    """A figure cannot be drawn from this data (the message says why)."""


class FigureProblem(Exception):
    """A drawn figure failed lint_figure."""


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def fmt_tol(t):
    return f"{t:g}" if isinstance(t, (int, float)) else str(t)


def finite(x):
    return x is not None and isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


class _quiet:
    """Silence numpy's RuntimeWarning for all-NaN slices."""
    def __enter__(self):
        import warnings
        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *a):
        return self._w.__exit__(*a)


def group_by(items, keyfn):
    groups = {}
    for r in items:
        groups.setdefault(keyfn(r), []).append(r)
    return groups


# Configuration keys that older files lack, with the value their runs had (SCHEMA.md).
CONFIG_DEFAULTS = {"fp_correction": 1}


def run_config(run):
    """The run's configuration: every attribute but NOT_CONFIG and peak_bytes_*."""
    cfg = {k: v for k, v in run.attrs.items()
           if k not in NOT_CONFIG and not k.startswith("peak_bytes_")}
    for k, v in CONFIG_DEFAULTS.items():
        cfg.setdefault(k, v)
    # one setting "K:GAMMA" (GAMMA means nothing when K = 1, off)
    gamma = cfg.pop("fp_correction_gamma", None)
    if cfg["fp_correction"] != 1 and gamma is not None:
        cfg["fp_correction"] = f"{cfg['fp_correction']}:{gamma:g}"
    return cfg


def _hashable(v):
    return tuple(v) if isinstance(v, list) else v


def fmt_key(k, v):
    if k == "tol":
        return f"tol={fmt_tol(v)}"
    if k == "hidden":
        return f"h={v}"
    if k == "world_size":
        return f"np={v}"
    return f"{k}={v}"


def run_metrics(run):
    """ir.metrics plus per-batch times, training batches and FLOPs per solve."""
    m = ir.metrics(run)
    st = run.steps
    nst = len(st) if st is not None else 0
    tb = int(ir._col(run.epochs, "train_batches").sum())
    ts = float(ir._col(run.epochs, "train_s").sum())
    m["train_batches"] = tb
    m["ms_per_batch"] = 1000.0 * ts / tb if tb > 0 else float("nan")
    m["fwd_ms_per_batch"] = 1000.0 * float(ir._col(st, "forward_s").sum()) / nst if nst else float("nan")
    m["bwd_ms_per_batch"] = 1000.0 * float(ir._col(st, "backward_s").sum()) / nst if nst else float("nan")
    ev = ir.event_totals(run)
    for name, col in (("fwd_solve", "fwd_flops_per_solve"), ("bwd_solve", "bwd_flops_per_solve")):
        e = ev.get(name)
        m[col] = (e["flops"] / e["calls"] / max(1, int(run.get("world_size", 1) or 1)) * 1.0
                  if e and e.get("calls", 0) > 0 else float("nan"))
    m["nan_origins"] = ir.nan_origin_counts(run)
    return m


class Group:
    """The completed runs of one configuration (replicates over seeds)."""

    def __init__(self, key, runs, mets):
        self.key = key
        self.runs = runs
        self.mets = mets
        self.config = run_config(runs[0])
        self.solver = str(self.config.get("solver"))
        self.backward = str(self.config.get("backward"))
        self.setting = {k: v for k, v in self.config.items() if k not in PAIR_KEYS and k not in SOLVER_OWNED}
        self.label = self.pair
        self.deviation = {}  # study keys where this setting differs from the reference

    @property
    def pair(self):
        opt = self.config.get("options")
        return f"{self.solver}/{self.backward}" + (f" [{opt}]" if opt else "")

    @property
    def n(self):
        return len(self.runs)

    @property
    def seeds(self):
        return [r.get("seed") for r in self.runs]

    def values(self, name):
        return np.array([m[name] if finite(m.get(name)) else np.nan for m in self.mets], dtype=float)

    def stat(self, name):
        """(mean, sd, min, max, n finite) over the runs."""
        v = self.values(name)
        v = v[np.isfinite(v)]
        if not v.size:
            return (float("nan"),) * 4 + (0,)
        sd = float(np.std(v, ddof=1)) if v.size > 1 else 0.0
        return float(v.mean()), sd, float(v.min()), float(v.max()), int(v.size)

    def mean(self, name):
        return self.stat(name)[0]


def build_groups(runs, mets):
    """Groups of replicates, the reference setting, and the comparison set.
    Returns (groups, comparison, reference setting)."""
    by = group_by(list(zip(runs, mets)), lambda rm: tuple(sorted(
        (k, _hashable(v)) for k, v in run_config(rm[0]).items())))
    groups = [Group(k, [r for r, _ in rms], [m for _, m in rms]) for k, rms in by.items()]
    groups.sort(key=lambda g: (PAIR_ORDER.get(g.pair, 99), g.pair, repr(sorted(g.setting.items(), key=str))))
    if not groups:
        return [], [], {}

    def study(g):
        return tuple(sorted((k, _hashable(v)) for k, v in g.setting.items() if k not in DIMENSION_KEYS))
    counts = Counter()
    for g in groups:
        counts[study(g)] += g.n
    ref_key = max(counts, key=lambda k: (counts[k], -list(counts).index(k)))
    ref = dict(ref_key)
    for g in groups:
        s = dict(study(g))
        g.deviation = {k: s.get(k) for k in sorted(set(s) | set(ref), key=str) if s.get(k) != ref.get(k)}
    comparison = [g for g in groups if not g.deviation]
    # labels: the pair plus the swept dimensions that vary among the comparison set
    for gs in (comparison, [g for g in groups if g.deviation]):
        dims = [k for k in DIMENSION_KEYS if len({repr(g.setting.get(k)) for g in gs}) > 1]
        for g in gs:
            extra = [fmt_key(k, g.setting.get(k)) for k in dims]
            g.label = g.pair + (" " + " ".join(extra) if extra else "")
    for g in groups:
        if g.deviation:
            keys = sorted(g.deviation, key=lambda k: (LABEL_PRIORITY.index(k) if k in LABEL_PRIORITY else 99, k))
            shown = " ".join(fmt_key(k, g.deviation[k]) for k in keys[:2]) + (" ..." if len(keys) > 2 else "")
            g.label += f" [{shown}]"
    return groups, comparison, ref


LABEL_PRIORITY = ("sech2", "diag", "device", "precision", "threads", "batch", "lr", "lr_drop", "epochs",
                  "max_batches", "test_batches")
PAIR_ORDER = {p: i for i, p in enumerate(("fp/unroll", "fp/implicit", "anderson/implicit", "broyden/implicit",
                                          "newton/implicit", "newton/unroll", "newton-ls/implicit",
                                          "newton-ls/unroll"))}


def left_out_note(groups, comparison):
    out = [g for g in groups if g not in comparison]
    if not out:
        return ""
    keys = sorted({k for g in out for k in g.deviation})
    return (f"left out: {sum(g.n for g in out)} run(s) whose configuration differs from the compared runs' "
            f"in {', '.join(keys)}: " + "; ".join(g.label for g in out))


def timing_warning(groups):
    """A warning when the groups' runs cannot be compared for time."""
    parts = []
    hosts = {str(r.get("host", r.host)) for g in groups for r in g.runs}
    if len(hosts) > 1:
        parts.append(f"hosts differ ({', '.join(sorted(hosts))})")
    for k in TIMING_KEYS:
        vals = {repr(g.setting.get(k)) for g in groups}
        if len(vals) > 1 and k != "world_size":
            parts.append(f"{k} differs")
    noisy = [g.label for g in groups if g.n > 1 and _cv(g, "ms_per_batch") > NOISY_CV]
    if noisy:
        parts.append(f"seed-to-seed time spread > {NOISY_CV:.0%} of the mean for {', '.join(noisy)}")
    return ("times not comparable: " + "; ".join(parts)) if parts else ""


def _cv(g, name):
    mean, sd, lo, hi, n = g.stat(name)
    return (hi - lo) / mean if n > 1 and mean > 0 else 0.0


def new_fig(nrows=1, ncols=1, width=FIGSIZE[0], height=FIGSIZE[1], **kw):
    return plt.subplots(nrows, ncols, figsize=(max(width, FIGSIZE[0]), max(height, FIGSIZE[1])), dpi=DPI, **kw)


def footnote(fig, lines, color="0.3"):
    """Lines of small text at the bottom of the figure, wrapped to its width;
    returns the fraction of the height they take."""
    import textwrap
    width = int(fig.get_figwidth() * 19)
    wrapped = [w for s in lines if s for w in textwrap.wrap(s, width)]
    h = 0.11 / fig.get_figheight() * 2.4  # one line of 6.5 pt text, in figure fractions
    for i, s in enumerate(wrapped):
        fig.text(0.01, 0.008 + h * (len(wrapped) - 1 - i), s, fontsize=6.5, color=color, ha="left", va="bottom")
    return 0.015 + h * len(wrapped)


# ---------------------------------------------------------------------------
# Figure checks (also used by tests/test_report.py through FIGURE_HOOK)
# ---------------------------------------------------------------------------

def _line_points(line):
    x = np.asarray(line.get_xdata(), dtype=float)
    y = np.asarray(line.get_ydata(), dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def _axes_has_data(ax):
    for ln in ax.get_lines():
        if len(_line_points(ln)[0]) and ln.get_visible():
            return True
    for c in ax.collections:
        if c.get_visible() and (len(c.get_offsets()) or len(c.get_paths())):
            return True
    for p in ax.patches:
        if p.get_visible() and (getattr(p, "get_width", lambda: 1)() != 0 and getattr(p, "get_height", lambda: 1)() != 0):
            return True
    return bool(ax.images)


def lint_figure(fig):
    """Problems of a drawn figure, as strings (empty: fine):
    - a Line2D drawn with a line style but fewer than 2 finite points;
    - a visible axes without any data artist (empty panel);
    - a labelled series without a finite point inside the axes' limits, or
      fully transparent;
    - two labelled line series that coincide (within 1%) drawn with the same
      colour and line style (one would hide the other)."""
    probs = []
    for i, ax in enumerate(fig.axes):
        if not ax.get_visible() or ax.get_label() == "<colorbar>":
            continue
        name = ax.get_title() or f"axes {i}"
        if not _axes_has_data(ax):
            probs.append(f"{name}: empty panel")
            continue
        x0, x1 = sorted(ax.get_xlim())
        y0, y1 = sorted(ax.get_ylim())
        seen = []
        for ln in ax.get_lines():
            x, y = _line_points(ln)
            lab = ln.get_label()
            if ln.get_linestyle() not in ("None", "none", "", " ") and len(x) < 2:
                probs.append(f"{name}: line series {lab!r} has {len(x)} point(s)")
            if lab.startswith("_"):
                continue
            if (ln.get_alpha() is not None and ln.get_alpha() == 0) or not ln.get_visible():
                probs.append(f"{name}: series {lab!r} is invisible")
            inside = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
            if ax.get_yscale() == "log":
                inside &= y > 0
            if not inside.any():
                probs.append(f"{name}: series {lab!r} has no point inside the axes")
            if len(x) >= 2:
                for (lab2, x2, y2, st2) in seen:
                    if len(x2) == len(x) and np.allclose(x2, x) and np.allclose(y2, y, rtol=0.01, atol=0):
                        st = (matplotlib.colors.to_hex(ln.get_color()), ln.get_linestyle())
                        if st == st2:
                            probs.append(f"{name}: series {lab!r} hides {lab2!r} (same data and style)")
                seen.append((lab, x, y, (matplotlib.colors.to_hex(ln.get_color()), ln.get_linestyle())))
        for c in ax.collections:
            lab = c.get_label()
            if lab.startswith("_") or not c.get_visible():
                continue
            off = np.asarray(c.get_offsets(), dtype=float)
            if off.ndim == 2 and len(off) and not (np.isfinite(off).all(axis=1)).any():
                probs.append(f"{name}: collection {lab!r} has no finite point")
    return probs


def save(fig, path_base, written):
    probs = lint_figure(fig)
    if probs:
        plt.close(fig)
        raise FigureProblem("; ".join(probs))
    if FIGURE_HOOK is not None:
        FIGURE_HOOK(os.path.basename(path_base), fig)
    for ext in FORMATS:
        fig.savefig(f"{path_base}.{ext}", dpi=DPI)  # no bbox_inches="tight": it would shrink the canvas
        written.append(f"{os.path.basename(path_base)}.{ext}")
    plt.close(fig)


COLORS = plt.get_cmap("tab10").colors
STYLES = {"implicit": "-", "unroll": "--", "phantom": "-.", "jfb": ":"}
MARKERS = "osD^v<>Pp*Xh"


def _maybe_log(ax, axis="y"):
    """Log scale on `axis` when every plotted value on it is > 0 (else linear)."""
    vals = []
    for ln in ax.get_lines():
        vals.append(np.asarray(ln.get_xdata() if axis == "x" else ln.get_ydata(), dtype=float))
    for c in ax.collections:
        off = np.asarray(c.get_offsets(), dtype=float)
        if off.ndim == 2 and len(off):
            vals.append(off[:, 0 if axis == "x" else 1])
    for p in ax.patches:
        vals.append(np.array([p.get_width() if axis == "x" else p.get_height()], dtype=float))
    v = np.concatenate(vals) if vals else np.zeros(0)
    v = v[np.isfinite(v)]
    if v.size and (v > 0).all():
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
        return True
    return False


def colour(i):
    return COLORS[i % len(COLORS)]


def _hbar_labels(ax, groups, fontsize=7):
    ax.set_yticks(np.arange(len(groups)))
    ax.set_yticklabels([g.label.replace(" [", "\n[") + (f" (n={g.n})" if g.n > 1 else " (1 run)") for g in groups],
                       fontsize=fontsize)
    ax.invert_yaxis()


# ---------------------------------------------------------------------------
# Figures: each takes a context dict and the path base (no extension); raises Skip
# ---------------------------------------------------------------------------

def fig_accuracy(ctx, base, written):
    gs = [g for g in ctx["comparison"] if g.stat("final_test_err")[4] > 0]
    if not gs:
        raise Skip("no completed run has a finite test error (no epochs, or --test-batches 0)")
    fig, ax = new_fig(width=max(8.0, 0.9 * len(gs) + 3), height=5.6)
    best = min(gs, key=lambda g: g.mean("final_test_err"))
    bmean, _, blo, bhi, bn = best.stat("final_test_err")
    if bn > 1:
        ax.axhspan(100 * blo, 100 * bhi, color="0.85", zorder=0, label=f"seed range of the best ({best.label})")
    for i, g in enumerate(gs):
        mean, sd, lo, hi, n = g.stat("final_test_err")
        v = g.values("final_test_err") * 100
        ax.errorbar([i], [100 * mean], yerr=[[100 * (mean - lo)], [100 * (hi - mean)]], fmt="o", ms=8,
                    color=colour(i), ecolor=colour(i), capsize=6, lw=1.5, zorder=3,
                    label="_nolegend_")
        jit = np.linspace(-0.12, 0.12, len(v)) if len(v) > 1 else np.zeros(1)
        ax.scatter(i + 0.25 + jit, v, s=18, facecolor="none", edgecolor=colour(i), zorder=3,
                   label="seeds" if i == 0 else "_nolegend_")
        ax.annotate(f"{100 * mean:.2f}%", (i, 100 * hi), textcoords="offset points", xytext=(0, 6),
                    ha="center", fontsize=7)
    ax.set_xticks(np.arange(len(gs)))
    ax.set_xticklabels([g.label + f"\n(n={g.n})" for g in gs], rotation=30 if len(gs) > 6 else 0,
                       ha="right" if len(gs) > 6 else "center", fontsize=7)
    ax.set_xlim(-0.6, len(gs) - 0.4)
    ax.set_ylabel("final test error (%)")
    batches = sorted({int(m["train_batches"]) for g in gs for m in g.mets})
    ax.set_title("Final test error: mean (dot), min-max over seeds (bar), each seed (circles)\n"
                 f"after {', '.join(map(str, batches))} training batches", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    lo_, hi_ = ax.get_ylim()
    ax.set_ylim(lo_, hi_ + 0.25 * (hi_ - lo_))  # room for the legend above the data
    ax.legend(fontsize=7, loc="upper right", ncol=2)
    bottom = footnote(fig, [ctx["separation_line"], left_out_note(ctx["groups"], ctx["comparison"])])
    fig.tight_layout(rect=(0, bottom, 1, 1))
    save(fig, base, written)


def _moving(y, w):
    if w <= 1 or len(y) < w:
        return y
    ok = np.isfinite(y).astype(float)
    yy = np.where(np.isfinite(y), y, 0.0)
    k = np.ones(w)
    num = np.convolve(yy, k, "valid")
    den = np.convolve(ok, k, "valid")
    with np.errstate(all="ignore"):
        out = num / den
    return np.concatenate([np.full(w - 1, np.nan), out])


def _step_curves(g, column, w):
    curves = []
    for r in g.runs:
        y = ir.column(r.steps, column)
        if y.size:
            curves.append(_moving(y, w))
    if not curves:
        return None
    n = max(len(c) for c in curves)
    a = np.full((len(curves), n), np.nan)
    for i, c in enumerate(curves):
        a[i, :len(c)] = c
    with _quiet():
        return np.arange(n), np.nanmean(a, 0), np.nanmin(a, 0), np.nanmax(a, 0)


def fig_training_curve(ctx, base, written):
    gs = [g for g in ctx["comparison"] if any(len(r.steps) for r in g.runs)]
    nmax = max([len(r.steps) for g in gs for r in g.runs] or [0])
    if nmax < 2:
        raise Skip("no completed run has 2 or more training steps")
    w = max(1, nmax // 30)
    fig, (a1, a2) = new_fig(1, 2, width=13, height=6.2)
    # Curves of different pairs can coincide (the solvers reach the same fixed point): draw the
    # earlier ones wider, so that every one stays visible as a stripe, and say which coincide.
    lws = np.linspace(4.5, 1.2, max(2, len(gs)))
    for ax, col, ylab in ((a1, "loss", "training loss (batch)"), (a2, "fwd_iters", "forward iterations per batch")):
        drawn = []
        for i, g in enumerate(gs):
            c = _step_curves(g, col, w)
            if c is None:
                continue
            x, mean, lo, hi = c
            ok = np.isfinite(mean)
            if ok.sum() >= 2:
                ax.plot(x[ok], mean[ok], STYLES.get(g.backward.split(":")[0], "-"), color=colour(i),
                        lw=lws[i], alpha=0.9, label=g.label + (f" (mean of {g.n})" if g.n > 1 else ""))
                drawn.append((g.pair, x[ok], mean[ok]))
                if g.n > 1:
                    ax.fill_between(x[ok], lo[ok], hi[ok], color=colour(i), alpha=0.12, lw=0)
            elif ok.sum() == 1:
                ax.plot(x[ok], mean[ok], MARKERS[i % len(MARKERS)], color=colour(i), label=g.label)
        same = _coinciding(drawn)
        if same:
            ax.text(0.02, 0.02, "coincide within 1%:\n" + "\n".join(", ".join(s) for s in same), fontsize=6.5,
                    transform=ax.transAxes, va="bottom", ha="left",
                    bbox=dict(boxstyle="round", fc="white", ec="0.7", alpha=0.9))
        ax.set_xlabel("training step")
        ax.set_ylabel(ylab + (f", moving average over {w} steps" if w > 1 else ""), fontsize=8)
        ax.grid(True, alpha=0.3)
        if col == "fwd_iters":
            _maybe_log(ax, "y")
    a1.set_title("Training loss")
    a2.set_title("Forward iterations (not comparable across solvers: see iterations_cost)")
    a2.title.set_fontsize(9)
    h, lab = a1.get_legend_handles_labels()
    fig.suptitle("Training curves (line: mean over seeds; band: min-max over seeds)")
    bottom = footnote(fig, [left_out_note(ctx["groups"], ctx["comparison"])])
    rows = math.ceil(len(lab) / 3)
    fig.legend(h, lab, loc="lower center", ncol=min(3, len(lab)), fontsize=7, bbox_to_anchor=(0.5, bottom))
    fig.tight_layout(rect=(0, bottom + 0.03 * rows + 0.03, 1, 1))
    save(fig, base, written)


def _coinciding(drawn):
    """Sets of curve names [(name, x, y)] whose curves agree within 1% everywhere."""
    sets = []
    for name, x, y in drawn:
        for s in sets:
            n0, x0, y0 = s[0]
            if len(x0) == len(x) and np.allclose(x0, x) and np.allclose(y0, y, rtol=0.01, atol=0):
                s.append((name, x, y))
                break
        else:
            sets.append([(name, x, y)])
    return [[n for n, _, _ in s] for s in sets if len(s) > 1]


def fig_test_error_epoch(ctx, base, written):
    gs = [g for g in ctx["comparison"] if any(len(r.epochs) for r in g.runs)]
    if not gs:
        raise Skip("no completed run has epochs")
    if max(len(r.epochs) for g in gs for r in g.runs) < 2:
        raise Skip("every run has one epoch (accuracy.png shows the final test error)")
    fig, ax = new_fig()
    for i, g in enumerate(gs):
        n_ep = max(len(r.epochs) for r in g.runs)
        a = np.full((g.n, n_ep), np.nan)
        for j, r in enumerate(g.runs):
            a[j, :len(r.epochs)] = 100 * ir.column(r.epochs, "test_err")
        with _quiet():
            mean, lo, hi = np.nanmean(a, 0), np.nanmin(a, 0), np.nanmax(a, 0)
        x = np.arange(n_ep)
        ok = np.isfinite(mean)
        lab = g.label + (f" (mean of {g.n})" if g.n > 1 else "")
        if ok.sum() >= 2:
            ax.plot(x[ok], mean[ok], STYLES.get(g.backward.split(":")[0], "-"), marker=MARKERS[i % len(MARKERS)],
                    ms=4, color=colour(i), label=lab)
            if g.n > 1:
                ax.fill_between(x[ok], lo[ok], hi[ok], color=colour(i), alpha=0.12, lw=0)
        elif ok.sum() == 1:
            ax.errorbar(x[ok], mean[ok], yerr=[mean[ok] - lo[ok], hi[ok] - mean[ok]], fmt=MARKERS[i % len(MARKERS)],
                        color=colour(i), capsize=4, label=lab + ", 1 epoch")
    ax.set_xlabel("epoch (0-based)")
    ax.set_ylabel("test error (%)")
    _maybe_log(ax, "y")
    ax.set_title("Test error vs epoch (mean over seeds; band: min-max)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    bottom = footnote(fig, [left_out_note(ctx["groups"], ctx["comparison"])])
    fig.tight_layout(rect=(0, bottom, 1, 1))
    save(fig, base, written)


def _hbars(ax, gs, series, xlabel, log=False):
    """Grouped horizontal bars: series = [(name, column or fn, colour)], error
    bars min-max over seeds."""
    h = 0.8 / len(series)
    for j, (name, col, c) in enumerate(series):
        stats = [g.stat(col) for g in gs]
        mean = np.array([s[0] for s in stats])
        lo = np.array([s[2] for s in stats])
        hi = np.array([s[3] for s in stats])
        y = np.arange(len(gs)) - 0.4 + h * (j + 0.5)
        ok = np.isfinite(mean)
        ax.barh(y[ok], mean[ok], h, color=c, label=name,
                xerr=[mean[ok] - lo[ok], hi[ok] - mean[ok]], error_kw=dict(lw=0.8, capsize=2))
        for yy, v in zip(y[ok], mean[ok]):
            ax.annotate(f"{v:.3g}", (v, yy), textcoords="offset points", xytext=(3, 0), va="center", fontsize=6)
    _hbar_labels(ax, gs)
    ax.set_xlabel(xlabel if not log or _maybe_log(ax, "x") else xlabel.replace("; log", ""), fontsize=8)
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")


def fig_iterations_cost(ctx, base, written):
    gs = [g for g in ctx["comparison"] if g.stat("mean_fwd_iters")[4] > 0]
    if not gs:
        raise Skip("no completed run has iteration counts")
    flops = all(g.stat("fwd_flops_per_solve")[4] > 0 for g in gs)
    for g in gs:
        for m in g.mets:
            m["fwd_gflop"] = m["fwd_flops_per_solve"] / 1e9
            m["bwd_gflop"] = m["bwd_flops_per_solve"] / 1e9
            m["ms_per_fwd_iter"] = (m["fwd_ms_per_batch"] / m["mean_fwd_iters"]
                                    if finite(m["mean_fwd_iters"]) and m["mean_fwd_iters"] > 0 else float("nan"))
    ncol = 3 if flops else 2
    fig, axes = new_fig(1, ncol, width=5.2 * ncol, height=max(5.6, 0.5 * len(gs) + 2.5), sharey=True)
    _hbars(axes[0], gs, [("forward", "mean_fwd_iters", "tab:blue"), ("backward", "mean_bwd_iters", "tab:orange")],
           "iterations per training batch (raw; log)", log=True)
    axes[0].set_title("Raw iterations", fontsize=9)
    _hbars(axes[1], gs, [("forward", "fwd_ms_per_batch", "tab:blue"), ("backward", "bwd_ms_per_batch", "tab:orange")],
           "ms per training batch (mean over steps)")
    axes[1].set_title("Time per batch: the common unit", fontsize=9)
    if flops:
        _hbars(axes[2], gs, [("forward solve", "fwd_gflop", "tab:blue"), ("backward", "bwd_gflop", "tab:orange")],
               "GFLOP per solve, counted by the backend (events table)")
        axes[2].set_title("FLOPs per solve", fontsize=9)
    per_it = ", ".join(f"{g.pair} {g.mean('ms_per_fwd_iter'):.2g}" for g in gs if finite(g.mean("ms_per_fwd_iter")))
    fig.suptitle("One iteration costs very different amounts per solver: iterations vs time and FLOPs "
                 "(bars: mean, whiskers: min-max over seeds)", fontsize=10)
    bottom = footnote(fig, [f"ms per forward iteration: {per_it}", timing_warning(gs),
                            left_out_note(ctx["groups"], ctx["comparison"])])
    fig.tight_layout(rect=(0, bottom, 1, 0.96))
    save(fig, base, written)


def fig_time(ctx, base, written):
    gs = [g for g in ctx["comparison"] if g.stat("ms_per_batch")[4] > 0]
    if not gs:
        raise Skip("no completed run has training time")
    for g in gs:
        for r, m in zip(g.runs, g.mets):
            nb = max(1, m["train_batches"])
            for ph in ("forward", "backward", "wait", "allreduce", "update"):
                m[f"{ph}_ms_pb"] = 1000.0 * m[f"{ph}_s_per_epoch"] * m["epochs_done"] / nb \
                    if finite(m[f"{ph}_s_per_epoch"]) else float("nan")
            m["comm_ms_pb"] = m["wait_ms_pb"] + m["allreduce_ms_pb"]
    fig, ax = new_fig(width=max(8.0, 0.9 * len(gs) + 3), height=6.0)
    x = np.arange(len(gs))
    bottom = np.zeros(len(gs))
    for col, name, c in (("forward_ms_pb", "forward", "tab:blue"), ("backward_ms_pb", "backward", "tab:orange"),
                         ("comm_ms_pb", "allreduce + wait", "tab:green"), ("update_ms_pb", "update", "tab:red")):
        v = np.nan_to_num(np.array([g.mean(col) for g in gs]))
        if not (v > 0).any():
            continue
        ax.bar(x, v, 0.6, bottom=bottom, label=name, color=c)
        bottom += v
    for i, g in enumerate(gs):
        v = g.values("ms_per_batch")
        ax.scatter(np.full(len(v), i) + np.linspace(-0.2, 0.2, len(v)) * (len(v) > 1), v, marker="_", s=160,
                   color="k", lw=1.5, zorder=3, label="wall time per batch, each seed" if i == 0 else "_nolegend_")
    ax.set_xticks(x)
    ax.set_xticklabels([g.label + f"\n(n={g.n})" for g in gs], rotation=30 if len(gs) > 6 else 0,
                       ha="right" if len(gs) > 6 else "center", fontsize=7)
    ax.set_ylabel("ms per training batch (phases: mean over seeds)")
    sec = ax.secondary_yaxis("right", functions=(lambda v: v * 0.6, lambda v: v / 0.6))
    sec.set_ylabel("s per 600-batch epoch (projected)")
    ax.set_title("Training time per batch by phase; ticks: each seed's wall time (the timing noise)", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(True, axis="y", alpha=0.3)
    warn = timing_warning(gs)
    bottom_ = footnote(fig, [warn, left_out_note(ctx["groups"], ctx["comparison"])],
                       color="tab:red" if warn else "0.3")
    fig.tight_layout(rect=(0, bottom_, 1, 1))
    save(fig, base, written)


def fig_memory(ctx, base, written):
    layer = [r for r in ctx["layer"] if finite(r.get("saved_bytes"))]
    gs = [g for g in ctx["comparison"] if g.runs[0].peak_bytes]
    if not layer and not gs:
        raise Skip("no layer table and no run with peak memory")
    ncol = (1 if layer else 0) + (1 if gs else 0)
    nrow = max(len(layer), len(gs))
    fig, axes = new_fig(1, ncol, width=6.5 * ncol, height=max(5.6, 0.3 * nrow + 2.5), squeeze=False)
    axes = list(axes[0])
    if layer:
        ax = axes.pop(0)
        y = np.arange(len(layer))
        for j, (col, name, c) in enumerate((("saved_bytes", "saved for backward", "tab:purple"),
                                            ("workspace_B", "solver + backward workspace", "tab:gray"))):
            v = np.array([float(r.get(col, np.nan)) for r in layer]) / 1024
            ax.barh(y - 0.2 + 0.4 * j, v, 0.4, color=c, label=name)
        ax.set_yticks(y)
        ax.set_yticklabels([f"{r['solver']}/{r['backward']}" for r in layer], fontsize=7)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("KiB (log)")
        h = layer[0]
        ax.set_title(f"Layer benchmark, n = {h.get('hidden')}, batch {h.get('batch')}", fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(True, axis="x", alpha=0.3)
    if gs:
        ax = axes.pop(0)
        cats = sorted({k for g in gs for k in g.runs[0].peak_bytes if k != "total"})
        left = np.zeros(len(gs))
        for j, cat in enumerate(cats):
            v = np.array([np.mean([r.peak_bytes.get(cat, 0) for r in g.runs]) for g in gs]) / 2**20
            if not (v > 0).any():
                continue
            ax.barh(np.arange(len(gs)), v, 0.6, left=left, label=cat, color=colour(j))
            left += v
        tot = np.array([np.mean([r.peak_bytes.get("total", 0) for r in g.runs]) for g in gs]) / 2**20
        ax.scatter(tot, np.arange(len(gs)), marker="|", s=200, color="k", zorder=3, label="peak total")
        _hbar_labels(ax, gs)
        ax.set_xlabel("MiB, rank 0 (peak per category; they need not peak together)")
        ax.set_title("Training: peak arena memory by category", fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
        ax.grid(True, axis="x", alpha=0.3)
    fig.suptitle("Memory per solver x backward pair")
    bottom = footnote(fig, [left_out_note(ctx["groups"], ctx["comparison"]) if gs else ""])
    fig.tight_layout(rect=(0, bottom, 1, 1))
    save(fig, base, written)


def fig_memory_hidden(ctx, base, written):
    gs = [g for g in ctx["comparison"] if g.mets[0]["peak_mem_bytes"] is not None
          and isinstance(g.setting.get("hidden"), int)]
    sizes = group_by(gs, lambda g: g.setting.get("world_size"))
    note = ""
    if len(sizes) > 1:
        w = max(sizes, key=lambda k: (sum(g.n for g in sizes[k]), repr(k)))
        gs, note = sizes[w], f", world_size={w} only"
    hiddens = sorted({g.setting.get("hidden") for g in gs})
    if len(hiddens) < 2:
        raise Skip(f"only one hidden size ({hiddens[0] if hiddens else 'none'})" if hiddens
                   else "no completed run with peak memory and a hidden size")
    fig, ax = new_fig()
    lines = group_by(gs, lambda g: (g.backward, g.solver))
    for i, ((b, s), ls) in enumerate(sorted(lines.items())):
        by_h = group_by(ls, lambda g: g.setting.get("hidden"))
        hs = sorted(by_h)
        peak = [max(m["peak_mem_bytes"] for g in by_h[h] for m in g.mets) / 2**20 for h in hs]
        ax.plot(hs, peak, (STYLES.get(b.split(":")[0], "-") if len(hs) > 1 else "") + MARKERS[i % len(MARKERS)],
                color=colour(i), label=f"{s}/{b}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(hiddens)
    ax.set_xticklabels([str(h) for h in hiddens])
    ax.set_xlabel("hidden size (units)")
    ax.set_ylabel("peak arena memory, rank 0 (MiB, log)")
    ax.set_title(f"Peak memory vs hidden size (max over other settings{note})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, base, written)


def fig_gradient_error(ctx, base, written):
    layer = [r for r in ctx["layer"] if finite(r.get("grad_relerr")) and finite(r.get("bwd_ms"))]
    if len(layer) < 2:
        raise Skip("needs the layer table (--layer) with >= 2 pairs")
    pos = [r["grad_relerr"] for r in layer if r["grad_relerr"] > 0]
    floor = 10 ** math.floor(math.log10(min(pos) / 10)) if pos else 1e-9
    solvers = sorted({r["solver"] for r in layer})
    backs = sorted({r["backward"] for r in layer})
    fig, ax = new_fig(width=9, height=6)
    clusters = {}
    for r in layer:
        e = r["grad_relerr"]
        bi, si = backs.index(r["backward"]), solvers.index(r["solver"])
        ax.scatter([r["bwd_ms"]], [e if e > 0 else floor], marker=MARKERS[si % len(MARKERS)] if e > 0 else "X",
                   s=60, color=colour(bi), edgecolor="k", lw=0.5, zorder=3, alpha=0.85)
        key = (r["backward"], float(f"{e:.1e}"))
        clusters.setdefault(key, []).append(r)
    for (b, e), rs in clusters.items():
        x = max(r["bwd_ms"] for r in rs)
        ax.annotate(f"{b}: {', '.join(r['solver'] for r in rs)}" + ("" if e > 0 else " (error 0)"),
                    (x, e if e > 0 else floor), textcoords="offset points", xytext=(7, -2), fontsize=6.5)
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], ls="", marker="s", color=colour(i), label=f"backward {b}") for i, b in enumerate(backs)]
    handles += [Line2D([], [], ls="", marker=MARKERS[i % len(MARKERS)], color="gray", label=f"solver {s}")
                for i, s in enumerate(solvers)]
    handles += [Line2D([], [], ls="", marker="X", color="gray", label="0 (by construction), drawn at the floor")]
    ax.legend(handles=handles, fontsize=7, loc="best")
    ax.set_xscale("log")
    ax.set_yscale("log")
    x0, x1 = ax.get_xlim()
    ax.set_xlim(x0, x1 * 3)  # room for the labels
    ax.axhline(APPROX_GRAD, color="0.5", ls=":", lw=1)
    ax.annotate(f"verdict threshold: approximate above {APPROX_GRAD:g}", (ax.get_xlim()[0], APPROX_GRAD),
                textcoords="offset points", xytext=(4, 3), fontsize=7, color="0.4")
    h = layer[0]
    ax.set_xlabel("backward time (ms, median of the layer benchmark's repeats)")
    ax.set_ylabel("gradient relative error vs exact IFT gradient")
    ax.set_title(f"Gradient error vs backward cost (layer benchmark, n = {h.get('hidden')}, "
                 f"batch {h.get('batch')}, tol {fmt_tol(h.get('tol'))})", fontsize=10)
    ax.grid(True, alpha=0.3, which="both")
    fig.tight_layout()
    save(fig, base, written)


def fig_stability(ctx, base, written):
    gs = [g for g in ctx["groups"] if g.stat("nan_rate")[4] > 0 or g.stat("nonconv_rate")[4] > 0]
    if not gs:
        raise Skip("no completed run has training batches")
    nan_gs = [g for g in gs if sum(sum(m["nan_origins"].values()) for m in g.mets) > 0
              or g.mean("nan_rate") > 0]
    diag = [(g, r) for g in nan_gs for r in g.runs
            if np.isfinite(ir.column(r.steps, "diag_preact_max")).any()]
    ncol = 1 + (1 if nan_gs else 0) + (1 if diag else 0)
    fig, axes = new_fig(1, ncol, width=6.0 * ncol, height=max(6.0, 0.45 * len(gs) + 3), squeeze=False,
                        gridspec_kw=dict(width_ratios=[1.3] + [1] * (ncol - 1)))
    axes = list(axes[0])
    ax = axes[0]
    y = np.arange(len(gs))
    for j, (col, name, c, mk) in enumerate((("nan_rate", "NaN-skipped steps", "tab:red", "o"),
                                            ("nonconv_rate", "non-converged rows", "tab:purple", "s"),
                                            ("diverge_rate", "diverged steps", "tab:orange", "^"))):
        st = [g.stat(col) for g in gs]
        mean = np.array([s[0] for s in st]) * 100
        lo = np.array([s[2] for s in st]) * 100
        hi = np.array([s[3] for s in st]) * 100
        ok = np.isfinite(mean)
        yy = y[ok] + (j - 1) * 0.2
        ax.errorbar(mean[ok], yy, xerr=[mean[ok] - lo[ok], hi[ok] - mean[ok]], fmt=mk, color=c, ms=6,
                    capsize=3, label=name)
        for v, yv in zip(mean[ok], yy):
            ax.annotate(f"{v:.2g}%", (v, yv), textcoords="offset points", xytext=(6, -2), fontsize=6, color=c)
    _hbar_labels(ax, gs, fontsize=6.5)
    ax.set_xscale("symlog", linthresh=0.1)
    ax.set_xlim(-0.02, 100)
    ax.set_xlabel("% of training steps (rows for non-converged); symlog, 0 drawn at 0")
    ax.set_title("Failure rates: mean, min-max over seeds", fontsize=9)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=3)
    ax.grid(True, axis="x", alpha=0.3)
    if nan_gs:
        ax = axes.pop(1)
        left = np.zeros(len(nan_gs))
        for code in (1, 2, 3, 4):
            v = np.array([sum(m["nan_origins"].get(code, 0) for m in g.mets) for g in nan_gs], dtype=float)
            if (v > 0).any():
                ax.barh(np.arange(len(nan_gs)), v, 0.6, left=left, color=ORIGIN_COLORS[code],
                        label=f"origin {code}: {ir.NAN_ORIGINS[code]}")
                left += v
        for i, g in enumerate(nan_gs):
            it = Counter()
            tot = 0
            for r in g.runs:
                o = ir.column(r.steps, "nan_origin")
                ni = ir.column(r.steps, "nan_iter")
                sk = ir.column(r.steps, "nan_skipped")
                tot += int(np.nansum(sk))
                it.update(int(v) for v in ni[(o > 0) & (ni >= 0)])
            txt = f"{tot} skipped"
            if it:
                txt += "; at iteration " + ", ".join(f"{k}: {v}" for k, v in sorted(it.items())[:4])
            ax.annotate(txt, (left[i], i), textcoords="offset points", xytext=(4, 0), va="center", fontsize=6)
        if not (left > 0).any():  # NaN-skipped steps without a recorded origin (version-1 files)
            v = np.array([sum(m["nan_rate"] * m["train_batches"] for m in g.mets) for g in nan_gs])
            ax.barh(np.arange(len(nan_gs)), v, 0.6, color="0.5", label="origin not recorded")
            left = v
        _hbar_labels(ax, nan_gs, fontsize=6.5)
        ax.set_xlim(0, max(left.max(), 1) * 1.9)
        ax.set_xlabel("steps with a non-finite value, by where it first appeared (nan_origin)", fontsize=8)
        ax.set_title("Where the NaNs come from", fontsize=9)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.09))
        ax.grid(True, axis="x", alpha=0.3)
    if diag:
        ax = axes.pop(1)
        g, r = diag[0]
        pre = ir.column(r.steps, "diag_preact_max")
        sk = ir.column(r.steps, "nan_skipped") > 0
        o = ir.column(r.steps, "nan_origin")
        x = np.arange(len(pre))
        ok = np.isfinite(pre) & (pre > 0)
        ax.scatter(x[ok & ~sk], pre[ok & ~sk], s=6, color="0.6", label="clean step")
        for code in (1, 2, 3, 4):
            sel = ok & sk & (o == code)
            if sel.any():
                ax.scatter(x[sel], pre[sel], s=28, marker="x", color=ORIGIN_COLORS[code],
                           label=f"NaN-skipped, origin: {ir.NAN_ORIGINS[code]}")
        sel = ok & sk & ~np.isin(o, (1, 2, 3, 4))
        if sel.any():
            ax.scatter(x[sel], pre[sel], s=28, marker="x", color="k", label="NaN-skipped, origin not recorded")
        ax.axhline(COSH_OVERFLOW, color="k", ls="--", lw=1, label=f"float32 cosh overflow |a| = {COSH_OVERFLOW}")
        ax.set_yscale("log")
        ax.set_xlabel("training step")
        ax.set_ylabel("largest |pre-activation| where Newton built its Jacobian")
        above = int((ok & (pre > COSH_OVERFLOW)).sum())
        ax.set_title(f"{g.label}\n{int(sk.sum())} NaN-skipped steps; {above} steps above |a| = {COSH_OVERFLOW}",
                     fontsize=8)
        ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=1)
        ax.grid(True, alpha=0.3)
    tot_nan = sum(g.mean("nan_rate") > 0 for g in gs)
    fig.suptitle("Stability: how often each configuration fails, and why" +
                 ("" if tot_nan else " (no NaN-skipped step in any run)"))
    fig.tight_layout(rect=(0, 0.02, 1, 0.95))
    save(fig, base, written)


def pareto_front(points):
    """Indices of the points (x, y), both minimised, not dominated by another."""
    idx = []
    for i, (x, y) in enumerate(points):
        if not any((x2 <= x and y2 <= y) and (x2 < x or y2 < y) for j, (x2, y2) in enumerate(points) if j != i):
            idx.append(i)
    return sorted(idx, key=lambda i: points[i])


PARETO_MIN = 4


def fig_pareto(ctx, base, written):
    gs = [g for g in ctx["comparison"] if finite(g.mean("final_test_err")) and finite(g.mean("ms_per_batch"))]
    if len(gs) < 2:
        raise Skip(f"needs >= 2 configurations with a test error and a training time, got {len(gs)}")
    fig, ax = new_fig(width=9, height=6)
    pts = []
    for i, g in enumerate(gs):
        tm, _, tlo, thi, _ = g.stat("ms_per_batch")
        em, _, elo, ehi, _ = g.stat("final_test_err")
        pts.append((tm, em))
        ax.errorbar([tm], [100 * em], xerr=[[tm - tlo], [thi - tm]], yerr=[[100 * (em - elo)], [100 * (ehi - em)]],
                    fmt=MARKERS[i % len(MARKERS)], color=colour(i), ms=7, capsize=3, label=f"{g.label} (n={g.n})")
    tols = sorted({repr(g.setting.get("tol")) for g in gs})
    what = "tolerances and pairs" if len(tols) > 1 else "solver x backward pairs"
    if len(gs) >= PARETO_MIN:
        front = pareto_front(pts)
        if len(front) >= 2:
            ax.plot([pts[i][0] for i in front], [100 * pts[i][1] for i in front], "r-", lw=1, zorder=1,
                    label=f"Pareto front of the means ({len(front)} of {len(gs)})")
        title = f"Test error vs time across {what} (lower left is better)"
        if len(front) < 2:
            title = (f"Test error vs time across {what}: no trade-off to draw, one configuration's means are "
                     f"best on both axes (compare the bars)")
    else:
        title = f"Test error vs time across {what}: {len(gs)} configurations, too few for a Pareto front"
    ax.set_xlabel("training time per batch (ms" + (", log)" if _maybe_log(ax, "x") else ")"))
    ax.set_ylabel("final test error (%)")
    ax.set_title(title + "\nmarkers: means; bars: min-max over seeds", fontsize=10)
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=7)
    warn = timing_warning(gs)
    bottom = footnote(fig, [warn, left_out_note(ctx["groups"], ctx["comparison"])],
                      color="tab:red" if warn else "0.3")
    fig.tight_layout(rect=(0, bottom, 1, 1))
    save(fig, base, written)


def fig_scaling(ctx, base, written):
    gs = [g for g in ctx["comparison"] if finite(g.mean("samples_per_s")) and isinstance(g.setting.get("world_size"), int)]
    sizes = sorted({g.setting.get("world_size") for g in gs})
    if len(sizes) < 2:
        raise Skip(f"only one world size ({sizes[0]} ranks)" if sizes
                   else "no completed run with a throughput and a world size")
    fam = group_by(gs, lambda g: (g.pair, tuple(sorted((k, _hashable(v)) for k, v in g.setting.items()
                                                       if k != "world_size"))))
    spanning = {k: v for k, v in fam.items() if len({g.setting.get("world_size") for g in v}) >= 2}
    if not spanning:
        raise Skip("no configuration ran at two world sizes with otherwise the same settings "
                   "(runs whose configurations differ are not compared)")
    fig, ax = new_fig()
    dims = [k for k in DIMENSION_KEYS if k != "world_size"
            and len({repr(g.setting.get(k)) for v in spanning.values() for g in v}) > 1]
    for i, (k, v) in enumerate(sorted(spanning.items(), key=repr)):
        v = sorted(v, key=lambda g: g.setting.get("world_size"))
        ws = [g.setting.get("world_size") for g in v]
        thr = [g.mean("samples_per_s") for g in v]
        lo = [g.stat("samples_per_s")[2] for g in v]
        hi = [g.stat("samples_per_s")[3] for g in v]
        c = colour(i)
        lab = v[0].pair + "".join(" " + fmt_key(d, v[0].setting.get(d)) for d in dims)
        ax.errorbar(ws, thr, yerr=[np.subtract(thr, lo), np.subtract(hi, thr)], fmt="o-", color=c, capsize=3,
                    label=lab)
        ax.plot(ws, [thr[0] * w / ws[0] for w in ws], ":", color=c, lw=1)
    from matplotlib.lines import Line2D
    h, lab = ax.get_legend_handles_labels()
    h.append(Line2D([], [], color="k", ls=":", lw=1))
    lab.append("ideal linear scaling from the fewest ranks")
    ax.set_xticks(sizes)
    ax.set_xlabel("MPI ranks (world_size)")
    ax.set_ylabel("training throughput (samples/s)")
    left = len(gs) - sum(len(v) for v in spanning.values())
    ax.set_title("Throughput vs ranks (configurations that ran at >= 2 world sizes)", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(h, lab, fontsize=7)
    bottom = footnote(fig, [f"not shown: {left} configuration(s) that ran at one world size only" if left else "",
                            timing_warning([g for v in spanning.values() for g in v]).replace(
                                "times not comparable: ", "note: ")])
    fig.tight_layout(rect=(0, bottom, 1, 1))
    save(fig, base, written)


def _pooled_curves(g, solve):
    """{solver name: (iterations, (steps, iterations) rel_residual)} over a group's runs' traces."""
    parts = {}
    for r in g.runs:
        for name, (it, a) in ir.trace_curves(r, solve).items():
            parts.setdefault(name, []).append((it, a))
    out = {}
    for name, ps in parts.items():
        iters = np.unique(np.concatenate([it for it, _ in ps]))
        rows = []
        for it, a in ps:
            b = np.full((a.shape[0], len(iters)), np.nan)
            b[:, np.searchsorted(iters, it)] = a
            rows.append(b)
        out[name] = (iters, np.vstack(rows))
    return out


def fig_convergence(ctx, base, written):
    gs = [g for g in ctx["groups"] if any(r.trace is not None and len(r.trace) for r in g.runs)]
    if not gs:
        raise Skip("no completed run has a trace table (train or sweep --trace N)")
    panels = [(solve, [(g, name, it, a) for g in gs for name, (it, a) in sorted(_pooled_curves(g, solve).items())])
              for solve in ("forward", "backward")]
    empty = [solve for solve, curves in panels if not curves]
    panels = [(solve, curves) for solve, curves in panels if curves]
    fig, axes = new_fig(1, len(panels), width=6.5 * len(panels), height=5.8, squeeze=False)
    for ax, (solve, curves) in zip(axes[0], panels):
        for g, name, it, a in curves:
            i = gs.index(g)
            with _quiet():
                med = np.nanmedian(a, 0)
                q1, q3 = np.nanpercentile(a, 25, 0), np.nanpercentile(a, 75, 0)
            reached = np.sum(np.isfinite(a), 0)
            ok = np.isfinite(med) & (med > 0)
            lab = f"{name} ({g.label}), {a.shape[0]} steps"
            style = STYLES.get(g.backward.split(":")[0], "-") if solve == "backward" else "-"
            if ok.sum() >= 2:
                ax.plot(it[ok], med[ok], style, color=colour(i), lw=1.6, label=lab)
            elif ok.sum() == 1:
                ax.plot(it[ok], med[ok], MARKERS[i % len(MARKERS)], color=colour(i), label=lab)
            band = ok & np.isfinite(q1) & (q1 > 0) & np.isfinite(q3) & (reached >= 2)
            if band.sum() >= 2:
                ax.fill_between(it[band], q1[band], q3[band], color=colour(i), alpha=0.15, lw=0)
        ax.set_yscale("log")  # every value drawn is > 0 (ok, band)
        ax.set_xlabel("iteration")
        ax.set_ylabel("residual / first residual of the solve")
        ax.set_title("Forward solve: ‖z − f(z)‖" if solve == "forward" else
                     "Backward: adjoint residual (implicit) or cotangent ‖∂L/∂z_k‖ (unroll)", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    every = sorted({r.get("trace") for g in gs for r in g.runs if r.get("trace") is not None})
    notes = [f"traced every {', '.join(map(str, every))} training steps; each curve: median over the traced steps "
             "whose solve was still running at that iteration (band: 25-75%), so late iterations show the slow steps",
             ("no backward rows: " + ", ".join(sorted({g.backward for g in gs})) + " solves no system (phantom/jfb)")
             if empty else ""]
    fig.suptitle("Convergence of the traced steps' solves (log scale)")
    bottom = footnote(fig, notes)
    fig.tight_layout(rect=(0, bottom, 1, 0.95))
    save(fig, base, written)


# ---------------------------------------------------------------------------
# Recommendation table
# ---------------------------------------------------------------------------

def overlap(a, b):
    """Do the seed ranges (lo, hi) of two stats overlap?"""
    return not (a[2] > b[3] or b[2] > a[3])


def separation(gs):
    """(line, {group label: True when beyond the best's seed spread})."""
    gs = [g for g in gs if g.stat("final_test_err")[4] > 0]
    if len(gs) < 2:
        return "Only one configuration: nothing to separate.", {}
    best = min(gs, key=lambda g: g.mean("final_test_err"))
    bst = best.stat("final_test_err")
    if min(g.stat("final_test_err")[4] for g in gs) < 2:
        return ("Cannot tell whether the accuracies separate: some configurations have a single seed "
                "(no spread)."), {}
    worse = {g.label: not overlap(g.stat("final_test_err"), bst) for g in gs if g is not best}
    means = [100 * g.mean("final_test_err") for g in gs]
    widest = max(100 * (g.stat("final_test_err")[3] - g.stat("final_test_err")[2]) for g in gs)
    sep = [k for k, v in worse.items() if v]
    if sep:
        line = (f"The accuracies separate beyond the seed spread: {', '.join(sep)} "
                f"{'is' if len(sep) == 1 else 'are'} worse than the best, {best.label} "
                f"({100 * bst[0]:.2f}%, seeds {100 * bst[2]:.2f}-{100 * bst[3]:.2f}%), with seed ranges that do not "
                f"overlap it. The others are within its spread.")
    else:
        line = (f"The accuracies do not separate beyond the seed spread: every configuration's seed range "
                f"overlaps the best's ({best.label}, {100 * bst[2]:.2f}-{100 * bst[3]:.2f}%). The means span "
                f"{min(means):.2f}-{max(means):.2f}%, the widest seed range is {widest:.2f} percentage points.")
    return line, worse


def layer_lookup(ctx):
    return {(r["solver"], r["backward"]): r for r in ctx["layer"]}


def layer_row_for(ctx, g):
    """The layer row of a group's pair, when the layer ran the same hidden size, batch and tol."""
    r = layer_lookup(ctx).get((g.solver, g.backward))
    if r is None:
        return None
    for k in ("hidden", "batch"):
        if r.get(k) != g.setting.get(k):
            return None
    if finite(r.get("tol")) and finite(g.setting.get("tol")) and not math.isclose(r["tol"], g.setting["tol"], rel_tol=1e-6):
        return None
    return r


def recommend(ctx):
    """Rows of the recommendation table: dicts with the numbers and the verdict."""
    gs = [g for g in ctx["comparison"] if g.stat("final_test_err")[4] > 0 or g.stat("ms_per_batch")[4] > 0]
    _, worse = separation(gs)
    rows = []
    for g in gs:
        lr = layer_row_for(ctx, g)
        acc = g.stat("final_test_err")
        row = dict(pair=g.label, solver=g.solver, backward=g.backward, trained=True, n=g.n, seeds=g.seeds,
                   test_err=acc, ms_per_batch=g.stat("ms_per_batch"), peak_mib=g.stat("peak_mem_bytes"),
                   nan_rate=g.stat("nan_rate"), nonconv_rate=g.stat("nonconv_rate"),
                   diverge_rate=g.stat("diverge_rate"), batches=sorted({m["train_batches"] for m in g.mets}),
                   layer=lr, group=g)
        row["unstable"] = (row["nan_rate"][0] > UNSTABLE_RATE or
                           (finite(row["diverge_rate"][0]) and row["diverge_rate"][0] > UNSTABLE_RATE) or
                           (finite(acc[3]) and acc[3] > COLLAPSED_ERR))
        row["worse"] = worse.get(g.label, False)
        rows.append(row)
    ok = [r for r in rows if not r["unstable"] and not r["worse"] and finite(r["ms_per_batch"][0])]
    rec = min(ok, key=lambda r: r["ms_per_batch"][0]) if ok else None
    for r in rows:
        v = []
        if r["unstable"]:
            why = []
            if r["nan_rate"][0] > UNSTABLE_RATE:
                why.append(f"{100 * r['nan_rate'][0]:.1f}% NaN-skipped steps")
            if finite(r["diverge_rate"][0]) and r["diverge_rate"][0] > UNSTABLE_RATE:
                why.append(f"{100 * r['diverge_rate'][0]:.1f}% diverged steps")
            if finite(r["test_err"][3]) and r["test_err"][3] > COLLAPSED_ERR:
                why.append(f"a seed ended at {100 * r['test_err'][3]:.1f}% test error")
            v.append("avoid: " + ", ".join(why))
        elif r["worse"]:
            v.append(f"not recommended: less accurate ({100 * r['test_err'][0]:.2f}%) beyond the seed spread of the best")
        elif r is rec:
            v.append(f"recommended: fastest ({r['ms_per_batch'][0]:.1f} ms/batch) of the pairs within the seed spread "
                     f"of the best accuracy")
        elif rec is not None and finite(r["ms_per_batch"][0]):
            ratio = r["ms_per_batch"][0] / rec["ms_per_batch"][0]
            if ratio <= ALT_TIME:
                v.append(f"alternative: accuracy within the seed spread, {ratio:.1f}x the recommended time")
            else:
                v.append(f"not recommended: no accuracy gain for {ratio:.1f}x the recommended time")
            if r["n"] > 1 and rec["n"] > 1 and overlap(r["ms_per_batch"], rec["ms_per_batch"]):
                v.append("time within noise")
        else:
            v.append("no verdict: no training time")
        lr = r["layer"]
        if lr is not None and finite(lr.get("grad_relerr")) and lr["grad_relerr"] > APPROX_GRAD:
            v.append(f"approximate gradient ({lr['grad_relerr']:.1e})")
        r["verdict"] = "; ".join(v)
    # layer-only pairs
    trained = {(r["solver"], r["backward"]) for r in rows}
    exact = [lr for lr in ctx["layer"] if finite(lr.get("grad_relerr")) and lr["grad_relerr"] <= APPROX_GRAD
             and lr.get("reason") == "converged"]
    fastest = min((lr["fwd_ms"] + lr["bwd_ms"] for lr in exact), default=float("nan"))
    for lr in ctx["layer"]:
        if (lr["solver"], lr["backward"]) in trained:
            continue
        t = lr["fwd_ms"] + lr["bwd_ms"]
        if lr.get("reason") != "converged":
            verdict = f"layer only: forward solve ended {lr.get('reason')}"
        elif lr["grad_relerr"] > APPROX_GRAD:
            verdict = f"layer only: approximate gradient ({lr['grad_relerr']:.1e}); not trained here"
        else:
            verdict = f"layer only: exact gradient, {t / fastest:.1f}x the fastest exact layer time; not trained here"
        rows.append(dict(pair=f"{lr['solver']}/{lr['backward']}", solver=lr["solver"], backward=lr["backward"],
                         trained=False, layer=lr, verdict=verdict))
    return rows, rec


def _pm(st, scale=1.0, fmt=".2f"):
    mean, sd, lo, hi, n = st
    if n == 0:
        return "–"
    if n == 1:
        return f"{format(mean * scale, fmt)} (1 run)"
    return f"{format(mean * scale, fmt)} ± {format(sd * scale, fmt)} ({format(lo * scale, fmt)}–{format(hi * scale, fmt)})"


def _rate(st):
    mean, sd, lo, hi, n = st
    if n == 0:
        return "–"
    return f"{100 * mean:.2f}%" + (f" ({100 * lo:.2f}–{100 * hi:.2f})" if n > 1 and hi > lo else "")


def recommendation_md(ctx, rows):
    L = ["## Recommendation", ""]
    if not rows:
        return L + ["No configuration to recommend (no completed run of the reference setting, no layer table).", ""]
    sep_line = ctx["separation_line"]
    batches = sorted({b for r in rows if r["trained"] for b in r["batches"]})
    lay = ctx["layer"][0] if ctx["layer"] else {}
    L.append(f"Trained pairs: {', '.join(map(str, batches))} MNIST training batches per run, full numbers per seed "
             f"in summary.csv; layer columns: `ilbench layer`, n = {lay.get('hidden', '–')}, batch "
             f"{lay.get('batch', '–')}, tol {fmt_tol(lay.get('tol', '–'))}. Test error: mean ± sd (min–max) over "
             f"seeds. Time: wall time of the training pass per batch (× 600 for a full epoch). Memory: peak arena "
             f"bytes of training (rank 0). Gradient error: ‖g − g_IFT‖/‖g_IFT‖ of the layer benchmark. NaN: "
             f"NaN-skipped steps; non-converged: rows over training rows.")
    L.append("")
    L.append("**" + sep_line + "**")
    L.append("")
    hdr = ["pair", "seeds", "test error %", "ms/batch", "s/epoch (600 batches)", "peak MiB", "layer fwd+bwd ms",
           "layer saved KiB", "grad rel. error", "NaN-skipped", "non-converged", "verdict"]
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + "---|" * len(hdr))
    for r in rows:
        lr = r["layer"]
        lay_cells = (["–"] * 3 if lr is None else
                     [f"{lr['fwd_ms'] + lr['bwd_ms']:.2f}", f"{lr['saved_bytes'] / 1024:.0f}", f"{lr['grad_relerr']:.1e}"])
        if r["trained"]:
            t = r["ms_per_batch"]
            cells = [r["pair"], str(r["n"]), _pm(r["test_err"], 100), _pm(t, 1, ".1f"),
                     f"{0.6 * t[0]:.1f}" if finite(t[0]) else "–",
                     f"{r['peak_mib'][0] / 2**20:.1f}" if finite(r["peak_mib"][0]) else "–"]
            cells += lay_cells + [_rate(r["nan_rate"]), _rate(r["nonconv_rate"]), r["verdict"]]
        else:
            cells = [r["pair"], "0", "–", "–", "–", "–"] + lay_cells + ["–", "–", r["verdict"]]
        L.append("| " + " | ".join(cells) + " |")
    if ctx["unsupported"]:
        L.append("")
        L.append("Unsupported pairs (the layer benchmark refuses them): "
                 + ", ".join(f"{s}/{b}" for s, b in ctx["unsupported"]) + ".")
    warn = timing_warning([r["group"] for r in rows if r["trained"]])
    if warn:
        L.append("")
        L.append(f"⚠ {warn}.")
    L.append("")
    L.append("Verdict rules (analysis/report.py, applied to the numbers above): *avoid* when the mean NaN-skipped "
             f"or diverged rate exceeds {UNSTABLE_RATE:.0%} of steps or a seed ends above {COLLAPSED_ERR:.0%} test error; "
             "*not recommended (less accurate)* when the seed range of test error lies entirely above the best's; "
             "*recommended*: the fastest of the rest; *alternative* when within "
             f"{ALT_TIME}x its time, else *not recommended (no accuracy gain)*; *time within noise* when the seed "
             f"ranges of time overlap the recommended's; *approximate gradient* when the layer's error exceeds "
             f"{APPROX_GRAD:g}. Layer-only pairs are judged on the layer numbers alone.")
    others = [g for g in ctx["groups"] if g.deviation]
    if others:
        L.append("")
        L.append("### Other runs (a different configuration; not in the comparison)")
        L.append("")
        L.append("| configuration | runs | test error % | NaN-skipped | NaN origins (steps) | non-converged | "
                 "largest pre-activation |")
        L.append("|---|---|---|---|---|---|---|")
        for g in others:
            orig = Counter()
            for m in g.mets:
                orig.update(m["nan_origins"])
            o = ", ".join(f"{ir.NAN_ORIGINS[k]}: {v}" for k, v in sorted(orig.items())) or "none"
            pre = g.stat("diag_preact_max")
            L.append(f"| {g.label} | {g.n} | {_pm(g.stat('final_test_err'), 100)} | {_rate(g.stat('nan_rate'))} "
                     f"| {o} | {_rate(g.stat('nonconv_rate'))} | {pre[3]:.4g} |" if pre[4] else
                     f"| {g.label} | {g.n} | {_pm(g.stat('final_test_err'), 100)} | {_rate(g.stat('nan_rate'))} "
                     f"| {o} | {_rate(g.stat('nonconv_rate'))} | – |")
    L.append("")
    return L


def write_recommendation_csv(outdir, rows):
    cols = ["pair", "solver", "backward", "trained", "seeds", "test_err_mean", "test_err_sd", "test_err_min",
            "test_err_max", "ms_per_batch_mean", "ms_per_batch_min", "ms_per_batch_max", "peak_mem_bytes_mean",
            "nan_rate_mean", "nonconv_rate_mean", "diverge_rate_mean", "layer_fwd_ms", "layer_bwd_ms",
            "layer_saved_bytes", "layer_grad_relerr", "verdict"]
    with open(os.path.join(outdir, REC_CSV), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in rows:
            lr = r["layer"] or {}
            tr = r["trained"]
            w.writerow([r["pair"], r["solver"], r["backward"], int(tr), r.get("n", 0),
                        *(repr(r["test_err"][i]) if tr else "" for i in (0, 1, 2, 3)),
                        *(repr(r["ms_per_batch"][i]) if tr else "" for i in (0, 2, 3)),
                        repr(r["peak_mib"][0]) if tr else "",
                        repr(r["nan_rate"][0]) if tr else "", repr(r["nonconv_rate"][0]) if tr else "",
                        repr(r["diverge_rate"][0]) if tr else "",
                        lr.get("fwd_ms", ""), lr.get("bwd_ms", ""), lr.get("saved_bytes", ""),
                        lr.get("grad_relerr", ""), r["verdict"]])


# ---------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------

def flag_of(run):
    if run.status == "running":
        return "INCOMPLETE (status running: killed or crashed, or still being written)"
    if run.status == "failed":
        return "failed"
    if run.status != "completed":
        return f"unknown status {run.status!r}"
    return ""


def summary_rows(runs, mets):
    rows = []
    for r, m in zip(runs, mets):
        row = {"run_id": r.run_id, "file": r.file}
        for k in CONFIG_KEYS:
            row[k] = r.get(k)
        row.update(status=r.status, flag=flag_of(r), epochs_requested=r.get("epochs"),
                   schema_version=r.schema_version)
        row.update({k: m[k] for k in CSV_COLUMNS if k in m})
        row["config"] = " ".join(f"{k}={v}" for k, v in sorted(run_config(r).items()))
        rows.append(row)
    return rows


def csv_value(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)  # full precision; nan stays "nan"
    return str(v)


def md_num(v, fmt):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return format(v, fmt)


def write_summary(outdir, paths, runs, rows, written, skipped, checks, rec_lines, layer_path):
    with open(os.path.join(outdir, "summary.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for row in rows:
            w.writerow([csv_value(row.get(c)) for c in CSV_COLUMNS])

    L = ["# ilbench results summary", ""]
    L += rec_lines
    L.append("## Provenance")
    L.append("")
    L.append("| file | schema version | software_version (git) | host | created | runs |")
    L.append("|---|---|---|---|---|---|")
    for p in paths:
        rs = [r for r in runs if r.file == p]
        root = rs[0].root_attrs if rs else {}
        L.append(f"| `{p}` | {root.get('schema_version', '?')} | `{root.get('software_version', '?')}` | "
                 f"{root.get('host', '?')} | {root.get('created', '?')} | {len(rs)} |")
    if layer_path:
        L.append(f"| `{layer_path}` (layer table) | – | – | – | – | – |")
    versions = sorted({str(r.get('software_version', r.software_version)) for r in runs})
    hosts = sorted({str(r.get('host', r.host)) for r in runs})
    L.append("")
    L.append(f"- Git version(s) of the runs: {', '.join(f'`{v}`' for v in versions) or 'none'}")
    L.append(f"- Host(s) of the runs: {', '.join(hosts) or 'none'}")
    if any(r.schema_version < 2 for r in runs):
        L.append("- Note: runs from schema version 1 files have no diagnostics (spectral radius, condition "
                 "number, gradient check, pre-activation maximum, NaN origin) and no diverged count; those columns are NaN in "
                 "summary.csv.")
    if any(v.endswith("-dirty") for v in versions):
        L.append("- Note: a `-dirty` version means uncommitted changes in the ilbench that wrote the run.")
    for p, (ne, nw) in checks.items():
        if ne or nw:
            L.append(f"- `check_schema.py {p}`: {ne} errors, {nw} warnings")
    L.append("")
    flagged = [r for r in runs if r.status != "completed"]
    L.append("## Runs")
    L.append("")
    L.append(f"{len(runs)} runs, {len(runs) - len(flagged)} completed. Figures use completed runs only.")
    if flagged:
        L.append("")
        L.append("**Flagged runs** (not completed; their numbers cover only the epochs written):")
        for r in flagged:
            L.append(f"- `{r.run_id}` ({r.file}): {flag_of(r)}, {len(r.epochs)} of {r.get('epochs')} epochs")
    L.append("")
    L.append("Times are seconds per epoch (phase times: sum over the epoch's steps of the per-step max "
             "over ranks, then mean over epochs). NaN rate = NaN-skipped steps / training steps; "
             "non-converged rate = non-converged rows / (training steps × batch). "
             "Peak memory: `peak_bytes_total` (rank 0), else max of `epochs.peak_mem_bytes`. "
             "summary.csv also has the diverged rate, the per-batch times, the FLOPs per solve (events table) "
             "and the step diagnostics over the run (`diag_rho_max`, `diag_rho_mean`, `diag_cond_max`, "
             "`diag_grad_cos_min`, `diag_grad_relerr_max`, `diag_preact_max`: the steps column's max, mean "
             "or min; NaN where not measured).")
    L.append("")
    hdr = ["run_id", "solver", "backward", "tol", "hidden", "batch", "world", "stop", "seed", "status",
           "epochs", "batches", "test err", "train err", "fwd it", "bwd it", "NaN rate", "nonconv rate",
           "train s", "ms/batch", "test s", "peak MiB"]
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + "---|" * len(hdr))
    for row in rows:
        status = row["status"] + (" ⚠" if row["flag"] else "")
        pm = row.get("peak_mem_bytes")
        cells = [f"`{row['run_id']}`", str(row["solver"]), str(row["backward"]), fmt_tol(row["tol"]),
                 str(row["hidden"]), str(row["batch"]), str(row["world_size"]), str(row["stop"]),
                 str(row["seed"]), status, f"{row['epochs_done']}/{row['epochs_requested']}",
                 str(row.get("train_batches")),
                 md_num(row["final_test_err"], ".4f"), md_num(row["final_train_err"], ".4f"),
                 md_num(row["mean_fwd_iters"], ".2f"), md_num(row["mean_bwd_iters"], ".2f"),
                 md_num(row["nan_rate"], ".4f"), md_num(row["nonconv_rate"], ".4f"),
                 md_num(row["train_s_per_epoch"], ".4f"), md_num(row.get("ms_per_batch"), ".2f"),
                 md_num(row["test_s_per_epoch"], ".4f"),
                 md_num(pm / 2**20 if pm is not None else None, ".2f")]
        L.append("| " + " | ".join(cells) + " |")
    L.append("")
    L.append("## Figures")
    L.append("")
    for name in written:
        L.append(f"- written: [{name}]({name})")
    for name, why in skipped:
        L.append(f"- skipped: {name}: {why}")
    L.append("")
    L.append("Full-precision numbers: [summary.csv](summary.csv), [recommendation.csv](recommendation.csv).")
    with open(os.path.join(outdir, "summary.md"), "w") as f:
        f.write("\n".join(L) + "\n")


def schema_checks(paths):
    """{path: (errors, warnings)} from check_schema.check_file, when available."""
    out = {}
    try:
        import check_schema
    except ImportError:
        return out
    for p in paths:
        try:
            e, w = check_schema.check_file(p)
            out[p] = (len(e), len(w))
        except Exception:  # the loader already accepted the file; this is informational
            continue
    return out


def write_layer_csv(outdir, layer):
    cols = []
    for r in layer["rows"]:
        cols += [k for k in r if k not in cols]
    if not cols:
        cols = ["solver", "backward"]
    with open(os.path.join(outdir, "layer.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols + ["supported"])
        for r in layer["rows"]:
            w.writerow([csv_value(r.get(c)) for c in cols] + ["1"])
        for s, b in layer["unsupported"]:
            w.writerow([s if c == "solver" else b if c == "backward" else "" for c in cols] + ["0"])


# ---------------------------------------------------------------------------
# scripts/reproduce-seed: the seed table over seeds
# ---------------------------------------------------------------------------

SEED_PRINTED = {  # the seed's printed final epochs (seed/000_818119073713901f.txt)
    "fp/unroll": "test err 3.07% (epoch 9), no divergence",
    "newton/unroll": "test err 90.61% (diverged at epoch 2), about 5% NaN-skipped batches",
    "newton/implicit": "test err 3.01% (epoch 9), no divergence",
}
DIVERGED_ERR = 0.5


def seed_table(runs):
    """Markdown lines: per layer and sech^2 mode, the distribution over seeds
    of the final test error, the diverged seeds (first epoch with test error
    > DIVERGED_ERR) and the NaN-skipped rate."""
    groups = group_by([r for r in runs if r.status == "completed"],
                      lambda r: (f"{r.get('solver')}/{r.get('backward')}", str(r.get("sech2", "stable"))))
    L = ["| layer | sech² | seeds | epochs | final test error: mean (min–max) | diverged seeds (epoch) | "
         "NaN-skipped batches | the seed printed |", "|---|---|---|---|---|---|---|---|"]
    for (layer, mode), rs in sorted(groups.items(), key=lambda kv: (PAIR_ORDER.get(kv[0][0], 99), kv[0])):
        errs = np.array([float(r.epochs["test_err"][-1]) if len(r.epochs) else np.nan for r in rs]) * 100
        div = []
        for r in rs:
            te = ir.column(r.epochs, "test_err")
            bad = np.nonzero(te > DIVERGED_ERR)[0]
            if bad.size:
                div.append(f"seed {r.get('seed')}: {int(r.epochs['epoch'][bad[0]])}")
        nan = sum(int(ir._col(r.epochs, "nan_batches").sum()) for r in rs)
        tb = sum(int(ir._col(r.epochs, "train_batches").sum()) for r in rs)
        eps = sorted({len(r.epochs) for r in rs})
        L.append(f"| {layer} | {mode} | {len(rs)} | {'/'.join(map(str, eps))} | {np.nanmean(errs):.2f}% "
                 f"({np.nanmin(errs):.2f}–{np.nanmax(errs):.2f}) | {len(div)} of {len(rs)}"
                 f"{' (' + ', '.join(div) + ')' if div else ''} | {nan} of {tb} ({100 * nan / max(tb, 1):.2f}%) | "
                 f"{SEED_PRINTED.get(layer, '–') if mode == 'seed' or layer != 'newton/unroll' else '–'} |")
    L.append("")
    L.append(f"Diverged: the first epoch whose test error exceeds {DIVERGED_ERR:.0%}. "
             "The seed's own run used its 1/cosh² (`--sech2 seed`).")
    return L


def seed_table_main(argv):
    try:
        runs = ir.load_many(argv)
    except (ir.Unreadable, ir.SchemaError) as e:
        print(f"reproduce-seed: error: {e}", file=sys.stderr)
        return 2
    print("\n".join(seed_table(runs)))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="report.py", description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Exit status: 0 done, 1 refused to overwrite, 2 bad input, 3 figure check failed.")
    ap.add_argument("files", nargs="+", metavar="RESULTS.h5")
    ap.add_argument("-o", "--outdir", required=True, metavar="OUTDIR")
    ap.add_argument("--layer", metavar="LAYER.txt", help="`ilbench layer` output (text table) or its layer.csv")
    ap.add_argument("--force", action="store_true", help="overwrite existing summary.md / summary.csv")
    ap.add_argument("--grid-bench", metavar="CSV", action="append",
                    help="scripts/bench-grid's bench-grid.csv: also draw grid.png (time per Newton step and "
                         "per-rank memory against hidden size, one line per grid; analysis/grid_figure.py)")
    args = ap.parse_args(argv)

    try:
        runs = ir.load_many(args.files)
        layer = ir.load_layer_table(args.layer) if args.layer else {"rows": [], "unsupported": []}
    except (ir.Unreadable, ir.SchemaError) as e:
        print(f"report.py: error: {e}", file=sys.stderr)
        return 2
    existing = [n for n in ("summary.md", "summary.csv") if os.path.exists(os.path.join(args.outdir, n))]
    if existing and not args.force:
        print(f"report.py: error: {', '.join(os.path.join(args.outdir, n) for n in existing)} "
              f"exists; use --force to overwrite", file=sys.stderr)
        return 1
    if os.path.exists(args.outdir) and not os.path.isdir(args.outdir):
        print(f"report.py: error: {args.outdir} exists and is not a directory", file=sys.stderr)
        return 2
    os.makedirs(args.outdir, exist_ok=True)

    mets = [run_metrics(r) for r in runs]
    for r in runs:
        if r.status != "completed":
            print(f"note: run {r.run_id} ({r.file}) has status {r.status!r}: in the summary, flagged; "
                  f"left out of the figures")
    done = [(r, m) for r, m in zip(runs, mets) if r.status == "completed"]
    groups, comparison, ref = build_groups([r for r, _ in done], [m for _, m in done])
    ctx = {"groups": groups, "comparison": comparison, "reference": ref, "layer": layer["rows"],
           "unsupported": layer["unsupported"]}
    ctx["separation_line"] = separation(comparison)[0]
    jobs = {
        "accuracy": fig_accuracy, "training_curve": fig_training_curve, "test_error_vs_epoch": fig_test_error_epoch,
        "iterations_cost": fig_iterations_cost, "time_per_batch": fig_time, "memory": fig_memory,
        "memory_vs_hidden": fig_memory_hidden, "gradient_error": fig_gradient_error, "stability": fig_stability,
        "pareto": fig_pareto, "scaling": fig_scaling, "convergence": fig_convergence,
    }
    written, skipped, failed = [], [], []
    for name in FIGURES:
        base = os.path.join(args.outdir, name)
        try:
            if not groups and name not in ("gradient_error", "memory"):
                raise Skip("no completed runs")
            jobs[name](ctx, base, written)
            print(f"wrote {base}.png (+ .pdf)")
        except Skip as e:
            plt.close("all")
            skipped.append((f"{name}.png", str(e)))
            print(f"skip {name}.png: {e}")
            for ext in FORMATS:  # a stale figure from an earlier report (--force)
                if os.path.exists(f"{base}.{ext}"):
                    os.remove(f"{base}.{ext}")
                    print(f"removed stale {base}.{ext}")
        except FigureProblem as e:
            plt.close("all")
            failed.append(name)
            skipped.append((f"{name}.png", f"FAILED its check: {e}"))
            print(f"report.py: error: {name}: figure check failed: {e}", file=sys.stderr)
    if args.grid_bench:
        import grid_figure
        if grid_figure.main(args.grid_bench + ["--out", os.path.join(args.outdir, "grid.png")]) != 0:
            return 2
        written.append(os.path.join(args.outdir, "grid.png"))
    rows, _ = recommend(ctx)
    write_recommendation_csv(args.outdir, rows)
    if args.layer:
        write_layer_csv(args.outdir, layer)
    write_summary(args.outdir, args.files, runs, summary_rows(runs, mets), [w for w in written if w.endswith(".png")],
                  skipped, schema_checks(args.files), recommendation_md(ctx, rows), args.layer)
    print(f"wrote {os.path.join(args.outdir, 'summary.md')}, summary.csv and {REC_CSV} ({len(runs)} runs)")
    return 3 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
