#!/usr/bin/python3
"""The process-grid figure from scripts/bench-grid's CSV: time per Newton step and
per-rank memory against hidden size, one line per grid, with the single-rank
LAPACK line (config "lapack") for comparison.

usage: /usr/bin/python3 analysis/grid_figure.py bench-grid.csv [...] --out grid.png

Left: ms per Newton step (the forward's time over its Newton steps; log-log), with
the time of one batched LU factorisation (B matrices) drawn dashed. Right: the layer's per-rank bytes (saved for
backward plus workspace, as the arenas count them: the Jacobians and factors are
one rank's blocks). Several CSVs are concatenated (rows keep their config names).
Exit status: 0 written, 2 bad input (no rows, a missing column).
"""
import argparse
import csv
import sys

NEEDED = ("config", "ranks", "hidden", "step_ms", "factor_ms", "lu_calls", "rank_bytes")


def load(paths):
    rows = []
    for p in paths:
        with open(p, newline="") as f:
            for r in csv.DictReader(f):
                missing = [k for k in NEEDED if k not in r]
                if missing:
                    raise ValueError(f"{p}: missing column(s) {', '.join(missing)}")
                rows.append({"config": r["config"], "ranks": int(r["ranks"]), "hidden": int(r["hidden"]),
                             "step_ms": float(r["step_ms"]), "iters": int(r["iters"]),
                             "factor_step_ms": float(r["factor_ms"]) / max(float(r["lu_calls"]), 1),
                             "rank_bytes": int(r["rank_bytes"])})
    return rows


def label(cfg, ranks):
    if cfg == "lapack":
        return "1 rank, LAPACK (--device cpu)"
    if cfg == "1x1":
        return "1 rank, ScaLAPACK 1x1"
    return f"--grid {cfg} ({ranks} ranks)"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="grid_figure.py", description=__doc__.split("\n")[0])
    ap.add_argument("csv", nargs="+")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    try:
        rows = load(a.csv)
    except (OSError, ValueError) as e:
        print(f"grid_figure.py: error: {e}", file=sys.stderr)
        return 2
    if not rows:
        print("grid_figure.py: error: no rows", file=sys.stderr)
        return 2
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax, am) = plt.subplots(1, 2, figsize=(11, 4.2))
    configs = list(dict.fromkeys(r["config"] for r in rows))
    for i, cfg in enumerate(configs):
        rs = sorted((r for r in rows if r["config"] == cfg), key=lambda r: r["hidden"])
        n = [r["hidden"] for r in rs]
        c = "k" if cfg == "lapack" else f"C{i}"
        lab = label(cfg, rs[0]["ranks"])
        ax.plot(n, [r["step_ms"] for r in rs], "o-", color=c, label=lab)
        ax.plot(n, [r["factor_step_ms"] for r in rs], "--", color=c, lw=1)
        am.plot(n, [r["rank_bytes"] / 2**20 for r in rs], "o-", color=c, label=lab)
    for x in (ax, am):
        x.set_xscale("log")
        x.set_yscale("log")
        x.set_xlabel("hidden size n")
        x.grid(True, alpha=0.3, which="both")
    ax.set_ylabel("ms per Newton step (dashed: one batched LU factor)")
    am.set_ylabel("MiB per rank (layer: saved + workspace)")
    ax.set_title("newton/implicit: time per Newton step", fontsize=10)
    am.set_title("per-rank memory (the arenas' count)", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    print(f"wrote {a.out} ({len(rows)} points, {len(configs)} configurations)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
