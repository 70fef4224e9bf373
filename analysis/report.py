#!/usr/bin/python3
"""Figures and a summary table from ilbench results files (analysis/SCHEMA.md).

usage: /usr/bin/python3 analysis/report.py RESULTS.h5 [RESULTS.h5 ...] -o OUTDIR [--force]

Writes into OUTDIR (created if needed):
  summary.md, summary.csv    one row per run (all statuses; incomplete runs flagged)
  test_error_vs_epoch.png    test error vs epoch, one line per solver/backward/tol
  iterations_vs_epoch.png    forward and backward iterations vs epoch
  time_per_epoch.png         per-phase time per epoch, stacked bars per run
  memory_vs_hidden.png       peak memory vs hidden size per backward mode (>= 2 hidden sizes)
  stability.png              NaN-gradient and non-converged rates per configuration
  pareto.png                 final test error vs training time, Pareto front (>= 2 runs)
  scaling.png                throughput vs ranks against ideal scaling (>= 2 world sizes)

Figures use completed runs only (SCHEMA.md: analyses SHOULD use only
completed runs); a figure whose dimension is missing is skipped with a line
"skip NAME: why". Refuses to overwrite summary.md/summary.csv without
--force. Exit status: 0 done, 1 refused (existing summary), 2 unreadable input
or unsupported schema.
"""

import argparse
import csv
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ilbench_results as ir  # noqa: E402

import matplotlib  # noqa: E402
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DPI = 150
FIGSIZE = (8.0, 5.4)  # 1200 x 810 pixels at 150 dpi
CONFIG_KEYS = ("solver", "backward", "tol", "hidden", "batch", "world_size", "stop", "seed")
FIGURES = ("test_error_vs_epoch.png", "iterations_vs_epoch.png", "time_per_epoch.png",
           "memory_vs_hidden.png", "stability.png", "pareto.png", "scaling.png")
CSV_COLUMNS = (("run_id", "file") + CONFIG_KEYS +
               ("status", "flag", "epochs_done", "epochs_requested",
                "final_test_err", "final_train_err", "mean_fwd_iters", "mean_bwd_iters",
                "nan_rate", "nonconv_rate", "train_s_per_epoch", "test_s_per_epoch",
                "forward_s_per_epoch", "backward_s_per_epoch", "wait_s_per_epoch",
                "allreduce_s_per_epoch", "update_s_per_epoch",
                "peak_mem_bytes", "peak_mem_source", "samples_per_s",
                "schema_version", "diverge_rate", "rho_max", "rho_mean", "cond_max",
                "grad_cos_min", "grad_relerr_max", "preact_max"))


class Skip(Exception):
    """A figure cannot be drawn from this data (the message says why)."""


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def fmt_tol(t):
    return f"{t:g}" if isinstance(t, (int, float)) else str(t)


def sbt_key(run):
    return (str(run.get("solver")), str(run.get("backward")), run.get("tol"))


def sbt_label(key):
    s, b, t = key
    return f"{s}/{b} tol={fmt_tol(t)}"


def config_label(run, keys):
    parts = []
    for k in keys:
        v = run.get(k)
        if k in ("solver", "backward"):
            parts.append(str(v))
        elif k == "tol":
            parts.append(f"tol={fmt_tol(v)}")
        elif k == "hidden":
            parts.append(f"h={v}")
        elif k == "world_size":
            parts.append(f"np={v}")
        else:
            parts.append(f"{k}={v}")
    return " ".join(parts)


def varying_keys(runs, keys=CONFIG_KEYS):
    """Configuration keys with more than one value among `runs` (solver and
    backward always kept, for readable labels)."""
    out = []
    for k in keys:
        if k in ("solver", "backward") or len({repr(r.get(k)) for r in runs}) > 1:
            out.append(k)
    return out


def new_fig(nrows=1, ncols=1, width=FIGSIZE[0], height=FIGSIZE[1], **kw):
    fig, ax = plt.subplots(nrows, ncols, figsize=(max(width, FIGSIZE[0]), max(height, FIGSIZE[1])),
                           dpi=DPI, **kw)
    return fig, ax


def save(fig, path):
    fig.savefig(path, dpi=DPI)  # no bbox_inches="tight": it would shrink the canvas
    plt.close(fig)


def group_by(runs, keyfn):
    groups = {}
    for r in runs:
        groups.setdefault(keyfn(r), []).append(r)
    return groups


def finite(x):
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


# ---------------------------------------------------------------------------
# Figures: each takes (runs, metrics, path) and raises Skip
# ---------------------------------------------------------------------------

def _epoch_curves(runs, column):
    """{solver/backward/tol: (epochs, mean over runs, min, max, n runs)}."""
    out = {}
    for key, rs in sorted(group_by(runs, sbt_key).items(), key=lambda kv: repr(kv[0])):
        n_ep = max(len(r.epochs) for r in rs)
        if n_ep == 0:
            continue
        vals = np.full((len(rs), n_ep), np.nan)
        for i, r in enumerate(rs):
            if column in (r.epochs.dtype.names or ()):
                vals[i, :len(r.epochs)] = r.epochs[column]
        if not np.isfinite(vals).any():
            continue
        with np.errstate(all="ignore"), _quiet():
            out[key] = (np.arange(n_ep), np.nanmean(vals, 0), np.nanmin(vals, 0),
                        np.nanmax(vals, 0), len(rs))
    return out


class _quiet:
    """Silence numpy's RuntimeWarning for all-NaN slices."""
    def __enter__(self):
        import warnings
        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *a):
        return self._w.__exit__(*a)


STYLES = {"implicit": "-", "unroll": "--"}
MARKERS = "osD^v<>Pp*Xh"


def _draw_curves(ax, curves, ylabel):
    cmap = plt.get_cmap("tab10" if len(curves) <= 10 else "tab20")
    for i, (key, (x, mean, lo, hi, n)) in enumerate(curves.items()):
        label = sbt_label(key) + (f" (mean of {n} runs)" if n > 1 else "")
        c = cmap(i % cmap.N)
        ax.plot(x, mean, STYLES.get(key[1], "-."), marker=MARKERS[i % len(MARKERS)], ms=5,
                color=c, label=label, alpha=0.85)
        if n > 1 and np.any(hi > lo):
            ax.fill_between(x, lo, hi, color=c, alpha=0.06, lw=0)
    ax.set_xlabel("epoch (0-based)")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if len(curves) and max(len(v[0]) for v in curves.values()) <= 20:
        ax.set_xticks(np.arange(max(len(v[0]) for v in curves.values())))


def fig_test_error(runs, path):
    hiddens = sorted({r.get("hidden") for r in runs}, key=repr)
    panels = ([(f"hidden = {h}", [r for r in runs if r.get("hidden") == h]) for h in hiddens]
              if 1 < len(hiddens) <= 4 else [("", runs)])
    panels = [(t, _epoch_curves(rs, "test_err")) for t, rs in panels]
    panels = [(t, c) for t, c in panels if c]
    if not panels:
        raise Skip("no completed run has a finite test error (no epochs, or --test-batches 0)")
    fig, axes = new_fig(1, len(panels), width=6.0 * len(panels), height=5.4, sharey=True, squeeze=False)
    multi = False
    for ax, (t, curves) in zip(axes[0], panels):
        _draw_curves(ax, curves, "test error (fraction)")
        ax.set_title(t)
        ax.legend(fontsize=7)
        multi |= any(v[4] > 1 for v in curves.values())
    fig.suptitle("Test error vs epoch" + (" (mean over runs; band: min-max)" if multi else ""))
    fig.tight_layout()
    save(fig, path)


def fig_iterations(runs, path):
    fwd = _epoch_curves(runs, "train_iters")
    bwd = _epoch_curves(runs, "train_bwd_iters")
    if not fwd and not bwd:
        raise Skip("no completed run has epochs with iteration counts")
    fig, (a1, a2) = new_fig(1, 2, width=12, height=5.4)
    _draw_curves(a1, fwd, "mean forward iterations per training batch")
    a1.set_title("Forward solver iterations")
    _draw_curves(a2, bwd, "mean backward iterations per training batch")
    a2.set_title("Backward iterations")
    h, lab = a1.get_legend_handles_labels() if fwd else a2.get_legend_handles_labels()
    fig.legend(h, lab, loc="lower center", ncol=min(4, len(lab)), fontsize=7)
    fig.suptitle("Solver iterations vs epoch")
    fig.tight_layout(rect=(0, 0.06 + 0.03 * math.ceil(len(lab) / 4), 1, 1))
    save(fig, path)


def fig_time(runs, mets, path):
    rows = [(r, m) for r, m in zip(runs, mets)
            if all(finite(m[f"{p}_s_per_epoch"]) for p in ("forward", "backward", "wait", "allreduce", "update"))]
    if not rows:
        raise Skip("no completed run has steps with phase times")
    keys = varying_keys([r for r, _ in rows])
    labels = [config_label(r, keys) for r, _ in rows]
    fwd = np.array([m["forward_s_per_epoch"] for _, m in rows])
    bwd = np.array([m["backward_s_per_epoch"] for _, m in rows])
    comm = np.array([m["allreduce_s_per_epoch"] + m["wait_s_per_epoch"] for _, m in rows])
    upd = np.array([m["update_s_per_epoch"] for _, m in rows])
    n = len(rows)
    fig, ax = new_fig(width=max(8.0, 0.45 * n + 2), height=6.0)
    x = np.arange(n)
    bottom = np.zeros(n)
    for vals, name, c in ((fwd, "forward", "tab:blue"), (bwd, "backward", "tab:orange"),
                          (comm, "allreduce + wait", "tab:green"), (upd, "update", "tab:red")):
        ax.bar(x, vals, 0.7, bottom=bottom, label=name, color=c)
        bottom += vals
    wall = np.array([m["train_s_per_epoch"] for _, m in rows])
    ax.scatter(x, wall, marker="_", s=300, color="k", lw=2, zorder=3,
               label="train_s (wall time of the training pass)")
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("time per epoch (s, sum of step phase times)")
    ax.set_title("Training time per epoch by phase (mean over epochs, max over ranks per step)")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    save(fig, path)


def fig_memory(runs, mets, path):
    pts = [(r, m) for r, m in zip(runs, mets)
           if m["peak_mem_bytes"] is not None and isinstance(r.get("hidden"), int)]
    # Rank 0's memory depends on its local batch: compare one world size only
    # (the one with the most runs).
    sizes = group_by(pts, lambda rm: rm[0].get("world_size"))
    note = ""
    if len(sizes) > 1:
        w = max(sizes, key=lambda k: (len(sizes[k]), repr(k)))
        pts, note = sizes[w], f", world_size={w} only"
    hiddens = sorted({r.get("hidden") for r, _ in pts})
    if len(hiddens) < 2:
        raise Skip(f"only one hidden size ({hiddens[0] if hiddens else 'none'})" if hiddens
                   else "no completed run with peak memory and a hidden size")
    solvers = sorted({str(r.get("solver")) for r, _ in pts})
    fig, ax = new_fig()
    cmap = plt.get_cmap("tab10")
    lines = group_by(pts, lambda rm: (str(rm[0].get("backward")), str(rm[0].get("solver"))))
    backs = sorted({k[0] for k in lines})
    styles = ["-", "--", ":", "-."]
    for (b, s), rms in sorted(lines.items()):
        by_h = group_by(rms, lambda rm: rm[0].get("hidden"))
        hs = sorted(by_h)
        peak = [max(m["peak_mem_bytes"] for _, m in by_h[h]) / 2**20 for h in hs]
        ax.plot(hs, peak, styles[solvers.index(s) % 4], marker="o", color=cmap(backs.index(b) % 10),
                label=f"backward={b}" + (f", solver={s}" if len(solvers) > 1 else ""))
    ax.set_xlabel("hidden size (units)")
    ax.set_ylabel("peak arena memory, rank 0 (MiB)")
    ax.set_title(f"Peak memory vs hidden size (max over other settings{note})")
    ax.set_xticks(hiddens)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, path)


def fig_stability(runs, mets, path):
    rows = [(r, m) for r, m in zip(runs, mets) if finite(m["nan_rate"]) or finite(m["nonconv_rate"])]
    if not rows:
        raise Skip("no completed run has training batches")
    keys = varying_keys([r for r, _ in rows])
    labels = [config_label(r, keys) for r, _ in rows]
    n = len(rows)
    fig, (a1, a2) = new_fig(1, 2, width=12, height=max(5.4, 0.28 * n + 1.5), sharey=True)
    y = np.arange(n)
    nan = np.array([m["nan_rate"] for _, m in rows])
    nc = np.array([m["nonconv_rate"] for _, m in rows])
    a1.barh(y, np.nan_to_num(nan) * 100, color="tab:red")
    a2.barh(y, np.nan_to_num(nc) * 100, color="tab:purple")
    a1.set_yticks(y)
    a1.set_yticklabels(labels, fontsize=7)
    a1.invert_yaxis()
    a1.set_xlabel("NaN-gradient rate (% of training steps skipped)")
    a2.set_xlabel("non-converged rate (% of training rows)")
    a1.set_title("NaN-gradient rate")
    a2.set_title("Non-converged forward rows")
    for a, v in ((a1, nan), (a2, nc)):
        a.grid(True, axis="x", alpha=0.3)
        if not np.nanmax(np.nan_to_num(v)) > 0:
            a.set_xlim(0, 1)
            a.text(0.5, 0.02, "all zero", transform=a.transAxes, ha="center", color="gray")
    fig.suptitle("Stability per configuration")
    fig.tight_layout()
    save(fig, path)


def pareto_front(points):
    """Indices of the points (x, y), both minimised, not dominated by another."""
    idx = []
    for i, (x, y) in enumerate(points):
        if not any((x2 <= x and y2 <= y) and (x2 < x or y2 < y) for j, (x2, y2) in enumerate(points) if j != i):
            idx.append(i)
    return sorted(idx, key=lambda i: points[i])


def fig_pareto(runs, mets, path):
    rows = [(r, m) for r, m in zip(runs, mets)
            if finite(m["final_test_err"]) and finite(m["train_s_per_epoch"])]
    if len(rows) < 2:
        raise Skip(f"needs >= 2 completed runs with a test error and training time, got {len(rows)}")
    pts = [(m["train_s_per_epoch"], m["final_test_err"]) for _, m in rows]
    tols = sorted({r.get("tol") for r, _ in rows}, key=lambda t: (not isinstance(t, (int, float)), t))
    sb = sorted({(str(r.get("solver")), str(r.get("backward"))) for r, _ in rows})
    markers = "osD^v<>Pp*Xh"
    cmap = plt.get_cmap("viridis")
    fig, ax = new_fig()
    for (r, m), (x, y) in zip(rows, pts):
        c = cmap(tols.index(r.get("tol")) / max(1, len(tols) - 1))
        ax.scatter(x, y, marker=markers[sb.index((str(r.get("solver")), str(r.get("backward")))) % len(markers)],
                   color=c, s=40, edgecolor="k", lw=0.4, zorder=3)
    front = pareto_front(pts)
    ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "r-", lw=1.2, zorder=2,
            label=f"Pareto front ({len(front)} runs)")
    ax.scatter([pts[i][0] for i in front], [pts[i][1] for i in front], s=140, facecolor="none",
               edgecolor="r", lw=1.2, zorder=4)
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], ls="", marker=markers[i % len(markers)], color="gray", label=f"{s}/{b}")
               for i, (s, b) in enumerate(sb)]
    handles += [Line2D([], [], ls="", marker="o", color=cmap(i / max(1, len(tols) - 1)),
                       label=f"tol={fmt_tol(t)}") for i, t in enumerate(tols)]
    handles += [Line2D([], [], color="r", label=f"Pareto front ({len(front)} runs)")]
    ax.legend(handles=handles, fontsize=7, ncol=2)
    ax.set_xlabel("training time per epoch (s)")
    ax.set_ylabel("final test error (fraction)")
    ax.set_title("Accuracy vs time across tolerances (lower left is better)")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    save(fig, path)


def fig_scaling(runs, mets, path):
    rows = [(r, m) for r, m in zip(runs, mets)
            if finite(m["samples_per_s"]) and isinstance(r.get("world_size"), int)]
    sizes = sorted({r.get("world_size") for r, _ in rows})
    if len(sizes) < 2:
        raise Skip(f"only one world size ({sizes[0]} ranks)" if sizes
                   else "no completed run with a throughput and a world size")
    others = ("solver", "backward", "tol", "hidden", "batch", "stop", "seed")
    groups = group_by(rows, lambda rm: tuple(repr(rm[0].get(k)) for k in others))
    spanning = {k: v for k, v in groups.items() if len({r.get("world_size") for r, _ in v}) >= 2}
    fig, ax = new_fig()
    cmap = plt.get_cmap("tab10")
    ax.scatter([r.get("world_size") for r, _ in rows], [m["samples_per_s"] for _, m in rows],
               color="lightgray", s=20, zorder=1, label="all runs")
    if spanning:
        for i, (k, rms) in enumerate(sorted(spanning.items())):
            by_w = group_by(rms, lambda rm: rm[0].get("world_size"))
            ws = sorted(by_w)
            thr = [np.mean([m["samples_per_s"] for _, m in by_w[w]]) for w in ws]
            c = cmap(i % 10)
            ax.plot(ws, thr, "o-", color=c, label=config_label(rms[0][0], ("solver", "backward", "tol", "hidden")))
            ax.plot(ws, [thr[0] * w / ws[0] for w in ws], ":", color=c, lw=1)
        title = "Throughput vs ranks (dotted: ideal linear scaling from the fewest ranks)"
    else:
        by_w = group_by(rows, lambda rm: rm[0].get("world_size"))
        thr = [np.mean([m["samples_per_s"] for _, m in by_w[w]]) for w in sizes]
        ax.plot(sizes, thr, "o-", color="tab:blue", label="mean over runs (configurations differ)")
        ax.plot(sizes, [thr[0] * w / sizes[0] for w in sizes], ":", color="tab:blue", label="ideal")
        title = "Throughput vs ranks (no configuration ran at two world sizes)"
    ax.plot([], [], "k:", lw=1, label="ideal linear scaling")
    ax.set_xticks(sizes)
    ax.set_xlabel("MPI ranks (world_size)")
    ax.set_ylabel("training throughput (samples/s)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save(fig, path)


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


def write_summary(outdir, paths, runs, rows, written, skipped, checks):
    with open(os.path.join(outdir, "summary.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for row in rows:
            w.writerow([csv_value(row.get(c)) for c in CSV_COLUMNS])

    L = ["# ilbench results summary", ""]
    L.append("## Provenance")
    L.append("")
    L.append("| file | schema version | software_version (git) | host | created | runs |")
    L.append("|---|---|---|---|---|---|")
    for p in paths:
        rs = [r for r in runs if r.file == p]
        root = rs[0].root_attrs if rs else {}
        L.append(f"| `{p}` | {root.get('schema_version', '?')} | `{root.get('software_version', '?')}` | "
                 f"{root.get('host', '?')} | {root.get('created', '?')} | {len(rs)} |")
    versions = sorted({str(r.get('software_version', r.software_version)) for r in runs})
    hosts = sorted({str(r.get('host', r.host)) for r in runs})
    L.append("")
    L.append(f"- Git version(s) of the runs: {', '.join(f'`{v}`' for v in versions) or 'none'}")
    L.append(f"- Host(s) of the runs: {', '.join(hosts) or 'none'}")
    if any(r.schema_version < ir.SCHEMA_VERSION for r in runs):
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
             "On several ranks the phase times are each a max over ranks, so their sum can exceed "
             "`train_s` (the slowest rank differs by phase; time_per_epoch.png marks `train_s`). "
             "summary.csv also has the diverged rate (diverged steps / training steps) and the "
             "step diagnostics over the run: largest spectral radius of df/dz (`rho_max`), mean of the "
             "steps' mean radius (`rho_mean`), largest LU condition estimate (`cond_max`), smallest "
             "gradient-check cosine (`grad_cos_min`), largest relative gradient error "
             "(`grad_relerr_max`) and largest |pre-activation| where a Newton solver built its "
             "Jacobian (`preact_max`; float32 cosh overflows above 89.4), NaN where not measured.")
    L.append("")
    hdr = ["run_id", "solver", "backward", "tol", "hidden", "batch", "world", "stop", "seed", "status",
           "epochs", "test err", "train err", "fwd it", "bwd it", "NaN rate", "nonconv rate",
           "train s", "test s", "fwd s", "bwd s", "wait s", "allred s", "upd s", "peak MiB"]
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + "---|" * len(hdr))
    for row in rows:
        status = row["status"] + (" ⚠" if row["flag"] else "")
        pm = row.get("peak_mem_bytes")
        cells = [f"`{row['run_id']}`", str(row["solver"]), str(row["backward"]), fmt_tol(row["tol"]),
                 str(row["hidden"]), str(row["batch"]), str(row["world_size"]), str(row["stop"]),
                 str(row["seed"]), status, f"{row['epochs_done']}/{row['epochs_requested']}",
                 md_num(row["final_test_err"], ".4f"), md_num(row["final_train_err"], ".4f"),
                 md_num(row["mean_fwd_iters"], ".2f"), md_num(row["mean_bwd_iters"], ".2f"),
                 md_num(row["nan_rate"], ".4f"), md_num(row["nonconv_rate"], ".4f"),
                 md_num(row["train_s_per_epoch"], ".4f"), md_num(row["test_s_per_epoch"], ".4f"),
                 md_num(row["forward_s_per_epoch"], ".4f"), md_num(row["backward_s_per_epoch"], ".4f"),
                 md_num(row["wait_s_per_epoch"], ".4f"), md_num(row["allreduce_s_per_epoch"], ".4f"),
                 md_num(row["update_s_per_epoch"], ".4f"),
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
    L.append("Full-precision numbers: [summary.csv](summary.csv).")
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


def main(argv=None):
    ap = argparse.ArgumentParser(prog="report.py", description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Exit status: 0 done, 1 refused to overwrite, 2 bad input.")
    ap.add_argument("files", nargs="+", metavar="RESULTS.h5")
    ap.add_argument("-o", "--outdir", required=True, metavar="OUTDIR")
    ap.add_argument("--force", action="store_true", help="overwrite existing summary.md / summary.csv")
    args = ap.parse_args(argv)

    try:
        runs = ir.load_many(args.files)
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

    mets = [ir.metrics(r) for r in runs]
    for r in runs:
        if r.status != "completed":
            print(f"note: run {r.run_id} ({r.file}) has status {r.status!r}: in the summary, flagged; "
                  f"left out of the figures")
    done = [(r, m) for r, m in zip(runs, mets) if r.status == "completed"]
    cruns = [r for r, _ in done]
    cmets = [m for _, m in done]
    jobs = {
        "test_error_vs_epoch.png": lambda p: fig_test_error(cruns, p),
        "iterations_vs_epoch.png": lambda p: fig_iterations(cruns, p),
        "time_per_epoch.png": lambda p: fig_time(cruns, cmets, p),
        "memory_vs_hidden.png": lambda p: fig_memory(cruns, cmets, p),
        "stability.png": lambda p: fig_stability(cruns, cmets, p),
        "pareto.png": lambda p: fig_pareto(cruns, cmets, p),
        "scaling.png": lambda p: fig_scaling(cruns, cmets, p),
    }
    written, skipped = [], []
    for name in FIGURES:
        path = os.path.join(args.outdir, name)
        try:
            if not cruns:
                raise Skip("no completed runs")
            jobs[name](path)
            written.append(name)
            print(f"wrote {path}")
        except Skip as e:
            plt.close("all")
            skipped.append((name, str(e)))
            print(f"skip {name}: {e}")
            if os.path.exists(path):  # a stale figure from an earlier report (--force)
                os.remove(path)
                print(f"removed stale {path}")
    write_summary(args.outdir, args.files, runs, summary_rows(runs, mets), written, skipped,
                  schema_checks(args.files))
    print(f"wrote {os.path.join(args.outdir, 'summary.md')} and summary.csv ({len(runs)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
